//! rosbag2 bags without a ROS install: a bag directory (`metadata.yaml` with `.mcap` or
//! `.db3` files), a bare `.mcap` or a bare `.db3`, read as a stream of messages in file order,
//! and rosbag2 MCAP directories written; the standard message types as CDR.
//!
//! - [`read`]: [`Bag::open`] and [`Bag::messages`], damage counted and skipped, never a panic.
//! - [`write`]: [`BagWriter`], a rosbag2 directory with one MCAP file and `metadata.yaml`.
//! - [`msgs`] and [`cdr`]: the standard message types and their bytes.
//! - [`roles`]: which topic feeds which of the learner's inputs, found by type.

pub mod cdr;
#[cfg(test)]
mod fuzz;
mod mcap_check;
mod mcap_file;
pub mod metadata;
pub mod msgs;
pub mod read;
pub mod roles;
mod sqlite_file;
#[cfg(test)]
mod tests;
pub mod write;

pub use read::{Bag, BagMessage, Damage, TopicInfo};
pub use roles::{Inputs, Role, TopicChoice};
pub use write::BagWriter;

/// What can go wrong with a bag as a whole (damage inside a readable bag is counted in
/// [`Damage`] instead).
#[derive(Debug, thiserror::Error)]
pub enum BagError {
    /// The file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a bag, or a bag this reader cannot open.
    #[error("{path}: {reason}")]
    Format {
        /// Where.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
}

impl BagError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn format(path: &std::path::Path, reason: impl Into<String>) -> Self {
        Self::Format {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}
