//! One MCAP file (rosbag2's default storage since Iron): its topics from the summary section,
//! its messages streamed front to back with mcap's sans-io reader, chunk by chunk.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcap::records::{ChunkHeader, Record};
use mcap::sans_io::{
    LinearReadEvent, LinearReader, LinearReaderOptions, SummaryReadEvent, SummaryReader,
    SummaryReaderOptions,
};

use crate::BagError;
use crate::mcap_check::{FOOTER_AND_MAGIC, lengths_fit, summary_fits, summary_start};
use crate::read::{Damage, RawMessage, TopicInfo};

/// Largest record (a chunk, compressed or not) read into memory; rosbag2 writes 768 KiB
/// chunks by default, a huge message makes a chunk of its size. Beyond this the file is
/// treated as damaged from there on (a length field of a cut file can claim anything).
pub const MAX_RECORD_BYTES: u64 = 1 << 30;

/// The topics of the file: from its summary, or by reading it once when it has none.
pub(crate) fn topics(path: &Path) -> Result<Vec<TopicInfo>, BagError> {
    if let Some(topics) = summary_topics(path)? {
        return Ok(topics);
    }
    let mut messages = McapMessages::open(path)?;
    let mut damage = Damage::default();
    let mut counts: BTreeMap<(Arc<str>, Arc<str>), u64> = BTreeMap::new();
    let mut order = Vec::new();
    while let Some(message) = messages.next(&mut damage) {
        let key = (message.topic, message.type_name);
        let count = counts.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            0
        });
        *count += 1;
    }
    Ok(order
        .into_iter()
        .map(|(name, type_name)| TopicInfo {
            count: counts
                .get(&(name.clone(), type_name.clone()))
                .copied()
                .unwrap_or(0),
            name: name.to_string(),
            type_name: type_name.to_string(),
            encoding: "cdr".into(),
        })
        .collect())
}

/// The topics listed in the summary section, or `None` when there is no usable summary.
fn summary_topics(path: &Path) -> Result<Option<Vec<TopicInfo>>, BagError> {
    let mut file = File::open(path).map_err(|e| BagError::io(path, e))?;
    let size = file.metadata().map_err(|e| BagError::io(path, e))?.len();
    if !summary_is_sound(&mut file, size).map_err(|e| BagError::io(path, e))? {
        return Ok(None);
    }
    let mut reader = SummaryReader::new_with_options(
        SummaryReaderOptions::default()
            .with_file_size(size)
            .with_record_length_limit(MAX_RECORD_BYTES as usize),
    );
    while let Some(event) = reader.next_event() {
        match event {
            Ok(SummaryReadEvent::ReadRequest(need)) => {
                let read = file
                    .read(reader.insert(need))
                    .map_err(|e| BagError::io(path, e))?;
                reader.notify_read(read);
            }
            Ok(SummaryReadEvent::SeekRequest(to)) => {
                let at = file.seek(to).map_err(|e| BagError::io(path, e))?;
                reader.notify_seeked(at);
            }
            Err(error) => {
                tracing::info!(path = %path.display(), %error, "no usable MCAP summary; counting by reading");
                return Ok(None);
            }
        }
    }
    let Some(summary) = reader.finish() else {
        return Ok(None);
    };
    let Some(stats) = summary.stats else {
        return Ok(None);
    };
    let mut channels: Vec<_> = summary.channels.values().collect();
    channels.sort_by_key(|c| c.id);
    Ok(Some(
        channels
            .into_iter()
            .map(|channel| TopicInfo {
                name: channel.topic.clone(),
                type_name: channel
                    .schema
                    .as_ref()
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
                encoding: channel.message_encoding.clone(),
                count: stats
                    .channel_message_counts
                    .get(&channel.id)
                    .copied()
                    .unwrap_or(0),
            })
            .collect(),
    ))
}

struct ChannelInfo {
    topic: Arc<str>,
    type_name: Arc<str>,
    cdr: bool,
}

/// The messages of one MCAP file, in file order.
pub(crate) struct McapMessages {
    file: File,
    /// Bytes of the file not yet handed to the reader.
    unread: u64,
    reader: LinearReader,
    records: Records,
    done: bool,
}

/// What the records read so far declared, and the messages not yet handed out.
struct Records {
    path: PathBuf,
    schemas: HashMap<u16, Arc<str>>,
    channels: HashMap<u16, ChannelInfo>,
    pending: VecDeque<RawMessage>,
}

impl McapMessages {
    pub(crate) fn open(path: &Path) -> Result<Self, BagError> {
        let file = File::open(path).map_err(|e| BagError::io(path, e))?;
        let unread = file.metadata().map_err(|e| BagError::io(path, e))?.len();
        Ok(Self {
            file,
            unread,
            // Chunks come whole, so that one with a bad CRC is skipped whole.
            reader: LinearReader::new_with_options(
                LinearReaderOptions::default()
                    .with_emit_chunks(true)
                    .with_skip_end_magic(false)
                    .with_record_length_limit(MAX_RECORD_BYTES as usize),
            ),
            records: Records {
                path: path.to_owned(),
                schemas: HashMap::new(),
                channels: HashMap::new(),
                pending: VecDeque::new(),
            },
            done: false,
        })
    }

    /// The next message, or `None` at the end of the file (or of its intact part).
    pub(crate) fn next(&mut self, damage: &mut Damage) -> Option<RawMessage> {
        loop {
            if let Some(message) = self.records.pending.pop_front() {
                return Some(message);
            }
            if self.done {
                return None;
            }
            let event = match self.reader.next_event() {
                None => {
                    self.done = true;
                    continue;
                }
                Some(Err(error)) => {
                    self.cut_short(damage, &error.to_string());
                    continue;
                }
                Some(Ok(event)) => event,
            };
            match event {
                LinearReadEvent::ReadRequest(need) => {
                    // More than the file still holds is a cut (or a damaged length): the
                    // reader would first make room for all of it.
                    if self.unread == 0 {
                        self.reader.notify_read(0);
                        continue;
                    }
                    if need as u64 > MAX_RECORD_BYTES.min(self.unread) {
                        self.cut_short(
                            damage,
                            &format!(
                                "a record needs {need} bytes, {} are left in the file",
                                self.unread
                            ),
                        );
                        continue;
                    }
                    match self.file.read(self.reader.insert(need)) {
                        Ok(read) => {
                            self.unread = self.unread.saturating_sub(read as u64);
                            self.reader.notify_read(read);
                        }
                        Err(error) => self.cut_short(damage, &error.to_string()),
                    }
                }
                LinearReadEvent::Record { opcode, data } if !lengths_fit(opcode, data) => {
                    damage.bad_records += 1;
                    damage.note(format!(
                        "{}: a record (opcode {opcode:#04x}) claims more bytes than it holds",
                        self.records.path.display()
                    ));
                }
                LinearReadEvent::Record { opcode, data } => {
                    match mcap::parse_record(opcode, data) {
                        Ok(Record::Chunk { header, .. }) => {
                            let records = chunk_records(&header, data, &self.records.path, damage);
                            for record in records {
                                self.records.take(record, damage);
                            }
                        }
                        Ok(Record::DataEnd(_)) | Ok(Record::Footer(_)) => self.done = true,
                        Ok(record) => self.records.take(record, damage),
                        Err(error) => {
                            damage.bad_records += 1;
                            damage.note(format!(
                                "{}: a record (opcode {opcode:#04x}) does not parse: {error}",
                                self.records.path.display()
                            ));
                        }
                    }
                }
            }
        }
    }

    fn cut_short(&mut self, damage: &mut Damage, why: &str) {
        damage.truncated_files += 1;
        damage.note(format!(
            "{}: read up to where it is damaged or cut ({why}); the rest is skipped",
            self.records.path.display()
        ));
        self.done = true;
    }
}

impl Records {
    /// A schema, channel or message record (inside a chunk or not).
    fn take(&mut self, record: Record<'_>, damage: &mut Damage) {
        match record {
            Record::Schema { header, .. } => {
                self.schemas
                    .insert(header.id, Arc::from(header.name.as_str()));
            }
            Record::Channel(channel) => {
                let type_name = self
                    .schemas
                    .get(&channel.schema_id)
                    .cloned()
                    .unwrap_or_else(|| Arc::from(""));
                self.channels.insert(
                    channel.id,
                    ChannelInfo {
                        topic: Arc::from(channel.topic.as_str()),
                        type_name,
                        cdr: channel.message_encoding == "cdr",
                    },
                );
            }
            Record::Message { header, data } => match self.channels.get(&header.channel_id) {
                Some(channel) if channel.cdr => self.pending.push_back(RawMessage {
                    topic: Arc::clone(&channel.topic),
                    type_name: Arc::clone(&channel.type_name),
                    log_time_ns: header.log_time,
                    data: data.into_owned(),
                }),
                Some(channel) => {
                    damage.unusable_messages += 1;
                    if damage.unusable_messages == 1 {
                        damage.note(format!(
                            "{}: messages on {} are not CDR; skipped",
                            self.path.display(),
                            channel.topic
                        ));
                    }
                }
                None => {
                    damage.unusable_messages += 1;
                    if damage.unusable_messages == 1 {
                        damage.note(format!(
                            "{}: a message on undeclared channel {}; skipped",
                            self.path.display(),
                            header.channel_id
                        ));
                    }
                }
            },
            _ => {}
        }
    }
}

/// Whether the summary section (if any) is whole records whose lengths fit inside them, checked
/// before mcap's summary reader parses it (see [`crate::mcap_check`]).
fn summary_is_sound(file: &mut File, size: u64) -> std::io::Result<bool> {
    let Some(footer_at) = size.checked_sub(FOOTER_AND_MAGIC) else {
        return Ok(true);
    };
    let mut end = [0u8; FOOTER_AND_MAGIC as usize];
    file.seek(SeekFrom::Start(footer_at))?;
    file.read_exact(&mut end)?;
    let Some(start) = summary_start(&end) else {
        return Ok(true);
    };
    let Some(len) = footer_at
        .checked_sub(start)
        .filter(|len| *len <= MAX_RECORD_BYTES)
    else {
        return Ok(false);
    };
    let mut section = vec![0u8; len as usize];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut section)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(summary_fits(&section))
}

/// The records of a chunk (`body`: the chunk record without its opcode and length), all or
/// none: a bad CRC, undecompressable data or a record inside claiming more than the chunk holds
/// skips the chunk. (mcap's own `ChunkReader` puts no limit on the records inside a chunk: one
/// claiming 2⁶³ bytes aborted the process; found by `fuzz_damaged_mcap_bags_…`.)
fn chunk_records(
    header: &ChunkHeader,
    body: &[u8],
    path: &Path,
    damage: &mut Damage,
) -> Vec<Record<'static>> {
    let start = header.message_start_time;
    if header.uncompressed_size > MAX_RECORD_BYTES {
        damage.skipped_chunks += 1;
        damage.note(format!(
            "{}: a chunk claims {} bytes uncompressed; skipped",
            path.display(),
            header.uncompressed_size
        ));
        return Vec::new();
    }
    let limit = header.uncompressed_size.max(header.compressed_size);
    let mut reader = LinearReader::new_with_options(
        LinearReaderOptions::default()
            .with_skip_start_magic(true)
            .with_skip_end_magic(true)
            .with_prevalidate_chunk_crcs(true)
            .with_record_length_limit(usize::try_from(limit).unwrap_or(usize::MAX)),
    );
    // The chunk record as the reader expects it: opcode, length, then the body, not copied.
    let mut head = [mcap::records::op::CHUNK; 9];
    head[1..].copy_from_slice(&(body.len() as u64).to_le_bytes());
    let mut input = head.as_slice().chain(body);
    let mut records = Vec::new();
    while let Some(event) = reader.next_event() {
        let failure = match event {
            Ok(LinearReadEvent::ReadRequest(need)) => {
                // Reading from memory cannot fail; 0 bytes tell the reader the chunk ended.
                let n = input.read(reader.insert(need)).unwrap_or(0);
                reader.notify_read(n);
                continue;
            }
            Ok(LinearReadEvent::Record { opcode, data }) => {
                match mcap::parse_record(opcode, data) {
                    Ok(record) => {
                        records.push(record.into_owned());
                        continue;
                    }
                    Err(error) => error,
                }
            }
            Err(error) => error,
        };
        damage.skipped_chunks += 1;
        damage.note(format!(
            "{}: the chunk starting at {:.3} s is damaged ({failure}); skipped",
            path.display(),
            start as f64 * 1e-9
        ));
        return Vec::new();
    }
    records
}
