//! Opening a bag and streaming its messages in file order, with what was damaged counted.
//!
//! A bag is a rosbag2 directory (`metadata.yaml` naming `.mcap` or `.db3` files), a bare
//! `.mcap` or a bare `.db3`. Messages stream: one MCAP chunk or one page of sqlite rows is in
//! memory at a time, so a bag larger than memory reads in constant space. A damaged chunk is
//! skipped whole and counted; a file cut short ends where the cut is; either way the messages
//! that are intact come out and [`Damage`] says what was not.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::metadata::MetadataFile;
use crate::{BagError, mcap_file, sqlite_file};

/// A topic of the bag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicInfo {
    /// `/camera/image_raw`.
    pub name: String,
    /// `sensor_msgs/msg/Image` (the MCAP schema name, the rosbag2 `type`).
    pub type_name: String,
    /// Serialization (`cdr` for ROS 2).
    pub encoding: String,
    /// Messages, as the bag's index says (counted by reading when it has none).
    pub count: u64,
}

/// One message as stored: its topic (index into [`Bag::topics`]), its receive time and its
/// serialized bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BagMessage {
    /// Index into [`Bag::topics`].
    pub topic: usize,
    /// When the recorder received it, nanoseconds (the header stamp is inside `data`).
    pub log_time_ns: u64,
    /// CDR bytes.
    pub data: Vec<u8>,
}

/// What could not be read, by kind, with the first few reasons in words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Damage {
    /// MCAP chunks skipped whole (bad CRC, undecompressable, oversized).
    pub skipped_chunks: u64,
    /// Records that did not parse (skipped).
    pub bad_records: u64,
    /// Messages on a channel that was never declared, or not CDR.
    pub unusable_messages: u64,
    /// Files that ended before their end (cut short, or unreadable from some point on).
    pub truncated_files: u64,
    /// The first [`MAX_NOTES`] problems, in words.
    pub notes: Vec<String>,
}

/// Problems described in words in [`Damage::notes`] (all are counted).
pub const MAX_NOTES: usize = 20;

impl Damage {
    /// Nothing was damaged.
    pub fn is_clean(&self) -> bool {
        self.skipped_chunks + self.bad_records + self.unusable_messages + self.truncated_files == 0
    }

    pub(crate) fn note(&mut self, note: String) {
        tracing::warn!("{note}");
        if self.notes.len() < MAX_NOTES {
            self.notes.push(note);
        }
    }
}

/// A message as a storage file yields it, before its topic is numbered.
pub(crate) struct RawMessage {
    pub topic: Arc<str>,
    pub type_name: Arc<str>,
    pub log_time_ns: u64,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone)]
enum StorageFile {
    Mcap(PathBuf),
    Sqlite(PathBuf),
}

impl StorageFile {
    fn path(&self) -> &Path {
        match self {
            Self::Mcap(path) | Self::Sqlite(path) => path,
        }
    }
}

/// An opened bag: its files and topics. Reading the messages is [`Bag::messages`].
#[derive(Debug, Clone)]
pub struct Bag {
    path: PathBuf,
    files: Vec<StorageFile>,
    topics: Vec<TopicInfo>,
    index: HashMap<(String, String), usize>,
}

impl Bag {
    /// Opens a bag directory, a bare `.mcap` or a bare `.db3`, and learns its topics (from the
    /// files' own indexes; an MCAP file without a summary, e.g. one cut short, is read once to
    /// count).
    pub fn open(path: &Path) -> Result<Self, BagError> {
        let meta = std::fs::metadata(path).map_err(|e| BagError::io(path, e))?;
        let files = if meta.is_dir() {
            directory_files(path)?
        } else {
            vec![file_kind(path)?]
        };
        let mut topics: Vec<TopicInfo> = Vec::new();
        let mut index = HashMap::new();
        for file in &files {
            let found = match file {
                StorageFile::Mcap(p) => mcap_file::topics(p)?,
                StorageFile::Sqlite(p) => sqlite_file::topics(p)?,
            };
            for topic in found {
                let key = (topic.name.clone(), topic.type_name.clone());
                match index.get(&key) {
                    Some(&i) => {
                        let known: &mut TopicInfo = &mut topics[i];
                        known.count += topic.count;
                    }
                    None => {
                        index.insert(key, topics.len());
                        topics.push(topic);
                    }
                }
            }
        }
        Ok(Self {
            path: path.to_owned(),
            files,
            topics,
            index,
        })
    }

    /// Where the bag is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its topics, in the order they were found.
    pub fn topics(&self) -> &[TopicInfo] {
        &self.topics
    }

    /// The storage files, in reading order.
    pub fn files(&self) -> Vec<&Path> {
        self.files.iter().map(StorageFile::path).collect()
    }

    /// Its messages in file order (the order the recorder wrote them: receive time).
    pub fn messages(&self) -> Messages<'_> {
        Messages {
            bag: self,
            next_file: 0,
            current: None,
            damage: Damage::default(),
        }
    }
}

/// The storage files of a bag directory, from its `metadata.yaml`.
fn directory_files(dir: &Path) -> Result<Vec<StorageFile>, BagError> {
    let yaml_path = dir.join("metadata.yaml");
    let text = std::fs::read_to_string(&yaml_path).map_err(|e| BagError::io(&yaml_path, e))?;
    let meta: MetadataFile = serde_yaml_ng::from_str(&text)
        .map_err(|e| BagError::format(&yaml_path, format!("not rosbag2 metadata: {e}")))?;
    let info = meta.rosbag2_bagfile_information;
    if !info.compression_mode.is_empty() {
        return Err(BagError::format(
            &yaml_path,
            format!(
                "compressed bag ({} {}): decompress it first (`ros2 bag decompress`)",
                info.compression_mode, info.compression_format
            ),
        ));
    }
    if info.relative_file_paths.is_empty() {
        return Err(BagError::format(
            &yaml_path,
            "the bag lists no storage files",
        ));
    }
    info.relative_file_paths
        .iter()
        .map(|relative| {
            // Older writers stored paths with the bag directory in front; the file name is
            // what is inside the directory.
            let name = Path::new(relative)
                .file_name()
                .ok_or_else(|| BagError::format(&yaml_path, format!("bad file path {relative}")))?;
            let path = dir.join(name);
            match info.storage_identifier.as_str() {
                "mcap" => Ok(StorageFile::Mcap(path)),
                "sqlite3" => Ok(StorageFile::Sqlite(path)),
                other => Err(BagError::format(
                    &yaml_path,
                    format!("storage `{other}` is not supported (mcap and sqlite3 are)"),
                )),
            }
        })
        .collect()
}

/// A bare storage file, by its extension.
fn file_kind(path: &Path) -> Result<StorageFile, BagError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("mcap") => Ok(StorageFile::Mcap(path.to_owned())),
        Some("db3") => Ok(StorageFile::Sqlite(path.to_owned())),
        _ => Err(BagError::format(
            path,
            "not a bag: expected a rosbag2 directory, a .mcap or a .db3 file",
        )),
    }
}

enum FileMessages {
    Mcap(Box<mcap_file::McapMessages>),
    Sqlite(Box<sqlite_file::SqliteMessages>),
}

/// The messages of a bag, file after file; [`Messages::damage`] says what was skipped so far.
pub struct Messages<'a> {
    bag: &'a Bag,
    next_file: usize,
    current: Option<FileMessages>,
    damage: Damage,
}

impl Messages<'_> {
    /// What was skipped so far.
    pub fn damage(&self) -> &Damage {
        &self.damage
    }
}

impl Iterator for Messages<'_> {
    type Item = BagMessage;

    fn next(&mut self) -> Option<BagMessage> {
        loop {
            let raw = match &mut self.current {
                Some(FileMessages::Mcap(file)) => file.next(&mut self.damage),
                Some(FileMessages::Sqlite(file)) => file.next(&mut self.damage),
                None => {
                    let file = self.bag.files.get(self.next_file)?;
                    self.next_file += 1;
                    let opened = match file {
                        StorageFile::Mcap(path) => mcap_file::McapMessages::open(path)
                            .map(|file| FileMessages::Mcap(Box::new(file))),
                        StorageFile::Sqlite(path) => sqlite_file::SqliteMessages::open(path)
                            .map(|file| FileMessages::Sqlite(Box::new(file))),
                    };
                    match opened {
                        Ok(file) => self.current = Some(file),
                        Err(error) => {
                            self.damage.truncated_files += 1;
                            self.damage.note(format!("skipped: {error}"));
                        }
                    }
                    continue;
                }
            };
            let Some(raw) = raw else {
                self.current = None;
                continue;
            };
            let key = (raw.topic.to_string(), raw.type_name.to_string());
            match self.bag.index.get(&key) {
                Some(&topic) => {
                    return Some(BagMessage {
                        topic,
                        log_time_ns: raw.log_time_ns,
                        data: raw.data,
                    });
                }
                None => {
                    // A topic the index did not list (a file without a complete summary).
                    self.damage.unusable_messages += 1;
                    if self.damage.unusable_messages == 1 {
                        self.damage.note(format!(
                            "messages on {} ({}) that the bag's index does not list are skipped",
                            raw.topic, raw.type_name
                        ));
                    }
                }
            }
        }
    }
}
