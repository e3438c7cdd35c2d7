//! Counted drops: every message a node refuses is counted by reason and reported, with a
//! throttled log line, never a panic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Why a message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Zero width/height or no data.
    EmptyImage,
    /// An encoding the nodes do not read (see `components/image/decode.rs` for those they do).
    UnknownEncoding,
    /// More pixels than the largest image taken (8192 × 8192), or a Bayer image without one
    /// whole 2×2 cell.
    WrongImageSize,
    /// `step` shorter than a row, fewer bytes than `step × height`, or an odd width in 4:2:2.
    BadImageStep,
    /// A NaN or infinite value.
    NonFinite,
    /// A configured joint is missing, or names and values do not line up.
    MissingJoint,
    /// Not newer than the previous message of the same stream.
    StampNotIncreasing,
    /// No proprio within the pairing tolerance of the image stamp.
    ProprioStale,
    /// The next component was busy and its queue full (the newest data wins).
    QueueFull,
    /// A header stamp that is not a time (negative seconds, nanoseconds ≥ 1 s).
    BadStamp,
    /// A stamp further ahead of the node's clock than `max_future_s`.
    StampInFuture,
    /// Compressed image bytes that do not decode (garbage, cut short, or a header claiming
    /// more pixels than the largest image taken: a decompression bomb).
    UndecodableImage,
    /// A compressed image format other than JPEG or PNG.
    UnsupportedFormat,
}

impl DropReason {
    /// Every reason, in report order.
    pub const ALL: [DropReason; 13] = [
        Self::EmptyImage,
        Self::UnknownEncoding,
        Self::WrongImageSize,
        Self::BadImageStep,
        Self::NonFinite,
        Self::MissingJoint,
        Self::StampNotIncreasing,
        Self::ProprioStale,
        Self::QueueFull,
        Self::BadStamp,
        Self::StampInFuture,
        Self::UndecodableImage,
        Self::UnsupportedFormat,
    ];

    /// snake_case name (as in reports and ROS status messages).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmptyImage => "empty_image",
            Self::UnknownEncoding => "unknown_encoding",
            Self::WrongImageSize => "wrong_image_size",
            Self::BadImageStep => "bad_image_step",
            Self::NonFinite => "non_finite",
            Self::MissingJoint => "missing_joint",
            Self::StampNotIncreasing => "stamp_not_increasing",
            Self::ProprioStale => "proprio_stale",
            Self::QueueFull => "queue_full",
            Self::BadStamp => "bad_stamp",
            Self::StampInFuture => "stamp_in_future",
            Self::UndecodableImage => "undecodable_image",
            Self::UnsupportedFormat => "unsupported_format",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Drops per reason, with a log line at most every `log_every_ns` per reason.
#[derive(Debug, Clone, Default)]
pub struct DropCounter {
    counts: BTreeMap<DropReason, u64>,
    last_log_ns: BTreeMap<DropReason, u64>,
    unlogged: BTreeMap<DropReason, u64>,
    log_every_ns: u64,
    component: &'static str,
}

impl DropCounter {
    /// A counter for `component` that logs each reason at most every `log_every_ns`.
    pub fn new(component: &'static str, log_every_ns: u64) -> Self {
        Self {
            component,
            log_every_ns,
            ..Self::default()
        }
    }

    /// Counts one drop at time `now_ns`, with what was dropped.
    pub fn record(&mut self, reason: DropReason, now_ns: u64, what: &str) {
        *self.counts.entry(reason).or_default() += 1;
        *self.unlogged.entry(reason).or_default() += 1;
        let due = self
            .last_log_ns
            .get(&reason)
            .is_none_or(|last| now_ns.saturating_sub(*last) >= self.log_every_ns);
        if due {
            let since = self.unlogged.insert(reason, 0).unwrap_or(0);
            self.last_log_ns.insert(reason, now_ns);
            tracing::warn!(
                component = self.component,
                %reason,
                dropped = since,
                total = self.counts[&reason],
                "dropped {what}"
            );
        }
    }

    /// Drops of one reason so far.
    pub fn count(&self, reason: DropReason) -> u64 {
        self.counts.get(&reason).copied().unwrap_or(0)
    }

    /// All drops so far.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Non-zero counts by reason name.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts
            .iter()
            .map(|(reason, count)| (reason.as_str().to_owned(), *count))
            .collect()
    }
}
