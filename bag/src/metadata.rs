//! `metadata.yaml` of a rosbag2 directory: which storage, which files, which topics. Read by
//! name, so versions 4 to 9 (Foxy to Kilted) all load; written as version 9.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The document: everything under `rosbag2_bagfile_information`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetadataFile {
    /// The bag's information.
    pub rosbag2_bagfile_information: Metadata,
}

/// A bag directory's metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metadata {
    /// Format version (9 for Jazzy and Kilted).
    pub version: u32,
    /// `mcap` or `sqlite3`.
    pub storage_identifier: String,
    /// The storage files, relative to the directory, in time order.
    pub relative_file_paths: Vec<String>,
    /// From the first message to the last.
    pub duration: Nanoseconds,
    /// The first message's receive time.
    pub starting_time: NanosecondsSinceEpoch,
    /// Messages in the bag.
    pub message_count: u64,
    /// Each topic with its count.
    pub topics_with_message_count: Vec<TopicWithCount>,
    /// `zstd` or empty.
    #[serde(default)]
    pub compression_format: String,
    /// `file`, `message` or empty.
    #[serde(default)]
    pub compression_mode: String,
    /// Per storage file (version 5 on).
    #[serde(default)]
    pub files: Vec<FileInformation>,
    /// Free key/values (version 6 on).
    #[serde(default)]
    pub custom_data: Option<BTreeMap<String, String>>,
    /// The writer's distribution (version 8 on).
    #[serde(default)]
    pub ros_distro: String,
}

/// A duration in nanoseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Nanoseconds {
    /// ns.
    pub nanoseconds: u64,
}

/// A time in nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct NanosecondsSinceEpoch {
    /// ns.
    pub nanoseconds_since_epoch: u64,
}

/// One topic and its count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicWithCount {
    /// The topic.
    pub topic_metadata: TopicMetadata,
    /// Its messages.
    pub message_count: u64,
}

/// A topic as rosbag2 describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicMetadata {
    /// `/camera/image_raw`.
    pub name: String,
    /// `sensor_msgs/msg/Image`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// `cdr`.
    pub serialization_format: String,
    /// QoS the publishers offered: a YAML string before version 9, a list from 9 on.
    #[serde(default)]
    pub offered_qos_profiles: serde_yaml_ng::Value,
    /// `RIHS01_…` (version 7 on); empty when unknown.
    #[serde(default)]
    pub type_description_hash: String,
}

/// One storage file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileInformation {
    /// Relative path.
    pub path: String,
    /// First message.
    pub starting_time: NanosecondsSinceEpoch,
    /// First to last message.
    pub duration: Nanoseconds,
    /// Messages in the file.
    pub message_count: u64,
}
