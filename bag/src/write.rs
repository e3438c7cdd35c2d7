//! Writing a rosbag2 directory as `ros2 bag record` does with the MCAP storage: one `.mcap` file
//! (profile `ros2`, `ros2msg` schemas with the standard definitions, CDR messages, zstd chunks)
//! and a version 9 `metadata.yaml`, which `ros2 bag play` and `rosbags` read.
//!
//! The directory must not exist (or be empty): a bag is never written over anything. The
//! metadata is written last, after the MCAP file is complete and synced; a writer that dies
//! before [`BagWriter::finish`] leaves an MCAP file that [`crate::Bag::open`] still reads up
//! to where it stopped.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use mcap::records::MessageHeader;
use serde::Serialize;

use crate::metadata::{
    FileInformation, Metadata, MetadataFile, Nanoseconds, NanosecondsSinceEpoch, TopicMetadata,
    TopicWithCount,
};
use crate::{BagError, cdr, msgs};

struct Channel {
    id: u16,
    type_name: String,
    count: u64,
    sequence: u32,
}

/// A rosbag2 MCAP directory being written.
pub struct BagWriter {
    dir: PathBuf,
    file_name: String,
    writer: mcap::Writer<BufWriter<File>>,
    channels: HashMap<String, Channel>,
    /// Topics in the order they were first written.
    order: Vec<String>,
    first_ns: Option<u64>,
    last_ns: u64,
}

/// The QoS a topic is recorded with (reliable, volatile, keep last 10: rclcpp's default), as
/// version 9 metadata writes it.
fn offered_qos() -> serde_yaml_ng::Value {
    let infinite = || {
        serde_yaml_ng::to_value(BTreeMap::from([
            ("sec", 9_223_372_036u64),
            ("nsec", 854_775_807),
        ]))
        .unwrap_or_default()
    };
    let mut profile = serde_yaml_ng::Mapping::new();
    let mut put = |key: &str, value: serde_yaml_ng::Value| {
        profile.insert(key.into(), value);
    };
    put("history", "keep_last".into());
    put("depth", 10u64.into());
    put("reliability", "reliable".into());
    put("durability", "volatile".into());
    put("deadline", infinite());
    put("lifespan", infinite());
    put("liveliness", "automatic".into());
    put("liveliness_lease_duration", infinite());
    put("avoid_ros_namespace_conventions", false.into());
    serde_yaml_ng::Value::Sequence(vec![serde_yaml_ng::Value::Mapping(profile)])
}

impl BagWriter {
    /// Starts a bag in `dir`, which must not exist or be empty.
    pub fn create(dir: &Path) -> Result<Self, BagError> {
        if dir.exists() {
            let empty = std::fs::read_dir(dir)
                .map_err(|e| BagError::io(dir, e))?
                .next()
                .is_none();
            if !empty {
                return Err(BagError::format(
                    dir,
                    "exists and is not empty: a bag is written into a new directory",
                ));
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| BagError::io(dir, e))?;
        let stem = dir
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty())
            .unwrap_or("bag");
        let file_name = format!("{stem}_0.mcap");
        let path = dir.join(&file_name);
        let file = File::create_new(&path).map_err(|e| BagError::io(&path, e))?;
        let writer = mcap::WriteOptions::new()
            .profile("ros2")
            .library("autodidact")
            .compression(Some(mcap::Compression::Zstd))
            .create(BufWriter::new(file))
            .map_err(|e| BagError::format(&path, e.to_string()))?;
        Ok(Self {
            dir: dir.to_owned(),
            file_name,
            writer,
            channels: HashMap::new(),
            order: Vec::new(),
            first_ns: None,
            last_ns: 0,
        })
    }

    /// Writes `message` (a type of [`msgs`]) on `topic` as `type_name`, received at
    /// `log_time_ns`.
    pub fn write<T: Serialize>(
        &mut self,
        topic: &str,
        type_name: &str,
        log_time_ns: u64,
        message: &T,
    ) -> Result<(), BagError> {
        self.write_cdr(topic, type_name, log_time_ns, &cdr::encode(message))
    }

    /// Writes already serialized CDR bytes.
    pub fn write_cdr(
        &mut self,
        topic: &str,
        type_name: &str,
        log_time_ns: u64,
        data: &[u8],
    ) -> Result<(), BagError> {
        let path = self.dir.join(&self.file_name);
        let mcap_error = |e: mcap::McapError| BagError::format(&path, e.to_string());
        if !self.channels.contains_key(topic) {
            let definition = msgs::definition(type_name).ok_or_else(|| {
                BagError::format(&path, format!("no message definition for {type_name}"))
            })?;
            let schema = self
                .writer
                .add_schema(type_name, "ros2msg", definition.as_bytes())
                .map_err(mcap_error)?;
            let qos = serde_yaml_ng::to_string(&offered_qos())
                .map_err(|e| BagError::format(&path, e.to_string()))?;
            let metadata = BTreeMap::from([("offered_qos_profiles".to_owned(), qos)]);
            let id = self
                .writer
                .add_channel(schema, topic, "cdr", &metadata)
                .map_err(mcap_error)?;
            self.channels.insert(
                topic.to_owned(),
                Channel {
                    id,
                    type_name: type_name.to_owned(),
                    count: 0,
                    sequence: 0,
                },
            );
            self.order.push(topic.to_owned());
        }
        let Some(channel) = self.channels.get_mut(topic) else {
            return Err(BagError::format(&path, "channel vanished"));
        };
        if channel.type_name != type_name {
            return Err(BagError::format(
                &path,
                format!(
                    "{topic} is {}; a {type_name} cannot be written on it",
                    channel.type_name
                ),
            ));
        }
        channel.sequence = channel.sequence.wrapping_add(1);
        channel.count += 1;
        let header = MessageHeader {
            channel_id: channel.id,
            sequence: channel.sequence,
            log_time: log_time_ns,
            publish_time: log_time_ns,
        };
        self.writer
            .write_to_known_channel(&header, data)
            .map_err(mcap_error)?;
        self.first_ns = Some(self.first_ns.map_or(log_time_ns, |f| f.min(log_time_ns)));
        self.last_ns = self.last_ns.max(log_time_ns);
        Ok(())
    }

    /// Completes the MCAP file (summary and footer), syncs it, then writes `metadata.yaml`
    /// through a temporary file. Returns the bag directory.
    pub fn finish(mut self) -> Result<PathBuf, BagError> {
        let path = self.dir.join(&self.file_name);
        self.writer
            .finish()
            .map_err(|e| BagError::format(&path, e.to_string()))?;
        let file = self
            .writer
            .into_inner()
            .into_inner()
            .map_err(|e| BagError::io(&path, e.into_error()))?;
        file.sync_all().map_err(|e| BagError::io(&path, e))?;
        let start = self.first_ns.unwrap_or(0);
        let duration = self.last_ns.saturating_sub(start);
        let count: u64 = self.channels.values().map(|c| c.count).sum();
        let metadata = MetadataFile {
            rosbag2_bagfile_information: Metadata {
                version: 9,
                storage_identifier: "mcap".into(),
                relative_file_paths: vec![self.file_name.clone()],
                duration: Nanoseconds {
                    nanoseconds: duration,
                },
                starting_time: NanosecondsSinceEpoch {
                    nanoseconds_since_epoch: start,
                },
                message_count: count,
                topics_with_message_count: self
                    .order
                    .iter()
                    .filter_map(|topic| {
                        let channel = self.channels.get(topic)?;
                        Some(TopicWithCount {
                            topic_metadata: TopicMetadata {
                                name: topic.clone(),
                                type_name: channel.type_name.clone(),
                                serialization_format: "cdr".into(),
                                offered_qos_profiles: offered_qos(),
                                type_description_hash: String::new(),
                            },
                            message_count: channel.count,
                        })
                    })
                    .collect(),
                compression_format: String::new(),
                compression_mode: String::new(),
                files: vec![FileInformation {
                    path: self.file_name.clone(),
                    starting_time: NanosecondsSinceEpoch {
                        nanoseconds_since_epoch: start,
                    },
                    duration: Nanoseconds {
                        nanoseconds: duration,
                    },
                    message_count: count,
                }],
                custom_data: None,
                ros_distro: "autodidact".into(),
            },
        };
        let yaml_path = self.dir.join("metadata.yaml");
        let text = serde_yaml_ng::to_string(&metadata)
            .map_err(|e| BagError::format(&yaml_path, e.to_string()))?;
        let temporary = self.dir.join(".metadata.yaml.tmp");
        let mut out = File::create(&temporary).map_err(|e| BagError::io(&temporary, e))?;
        out.write_all(text.as_bytes())
            .and_then(|()| out.sync_all())
            .map_err(|e| BagError::io(&temporary, e))?;
        std::fs::rename(&temporary, &yaml_path).map_err(|e| BagError::io(&yaml_path, e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| BagError::io(&self.dir, e))?;
        Ok(self.dir)
    }
}
