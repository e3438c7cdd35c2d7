//! `autodidact bag info`: what a bag holds and what the learner would make of it — per topic
//! its type, count, time span and rate, which input it feeds or why it feeds none, and every
//! message of an input topic checked to decode as its type.

use std::path::{Path, PathBuf};

use autodidact_bag::{Bag, Damage, Role, TopicChoice};
use serde::Serialize;

use super::convert::{BagInputError, sensor_in};
use crate::NodeError;

/// One topic of the bag.
#[derive(Debug, Clone, Serialize)]
pub struct TopicSummary {
    /// Name.
    pub name: String,
    /// ROS 2 type.
    pub type_name: String,
    /// Messages read.
    pub count: u64,
    /// First and last receive time, nanoseconds.
    pub first_ns: Option<u64>,
    /// See `first_ns`.
    pub last_ns: Option<u64>,
    /// Messages per second between the first and the last.
    pub rate_hz: Option<f64>,
    /// The input it feeds.
    pub role: Option<Role>,
    /// Why it feeds none.
    pub unused_because: Option<String>,
    /// Messages of an input topic that do not decode as its type, or carry a bad stamp.
    pub undecodable: u64,
}

/// What `bag info` reports.
#[derive(Debug, Clone, Serialize)]
pub struct BagInfo {
    /// The bag.
    pub path: PathBuf,
    /// Its storage files.
    pub files: Vec<PathBuf>,
    /// Messages read.
    pub messages: u64,
    /// First to last receive time, seconds.
    pub duration_s: f64,
    /// Per topic, in the bag's order.
    pub topics: Vec<TopicSummary>,
    /// Why the inputs could not be chosen (several candidates, a named topic missing).
    pub inputs_error: Option<String>,
    /// What the storage layer skipped.
    pub damage: Damage,
}

/// Reads the whole bag once and summarises it.
pub fn bag_info(path: &Path, choice: &TopicChoice) -> Result<BagInfo, NodeError> {
    let bag = Bag::open(path)?;
    let (inputs, inputs_error) = match autodidact_bag::roles::choose(bag.topics(), choice) {
        Ok(inputs) => (Some(inputs), None),
        Err(error) => (None, Some(error)),
    };
    let mut topics: Vec<TopicSummary> = bag
        .topics()
        .iter()
        .enumerate()
        .map(|(i, topic)| TopicSummary {
            name: topic.name.clone(),
            type_name: topic.type_name.clone(),
            count: 0,
            first_ns: None,
            last_ns: None,
            rate_hz: None,
            role: inputs.as_ref().and_then(|inputs| inputs.role_of(i)),
            unused_because: inputs.as_ref().and_then(|inputs| {
                inputs
                    .unused
                    .iter()
                    .find_map(|(index, why)| (*index == i).then(|| why.clone()))
            }),
            undecodable: 0,
        })
        .collect();
    let mut messages = bag.messages();
    let mut total = 0u64;
    let (mut first, mut last) = (u64::MAX, 0u64);
    for message in messages.by_ref() {
        total += 1;
        first = first.min(message.log_time_ns);
        last = last.max(message.log_time_ns);
        let topic = &mut topics[message.topic];
        topic.count += 1;
        topic.first_ns = Some(
            topic
                .first_ns
                .map_or(message.log_time_ns, |f| f.min(message.log_time_ns)),
        );
        topic.last_ns = Some(
            topic
                .last_ns
                .map_or(message.log_time_ns, |l| l.max(message.log_time_ns)),
        );
        if topic.role.is_some() || Role::of_type(&topic.type_name).is_some() {
            match sensor_in(&topic.type_name, &message.data, message.log_time_ns) {
                Ok(_) => {}
                Err(BagInputError::NotAnInput(_)) => {}
                Err(_) => topic.undecodable += 1,
            }
        }
    }
    for topic in &mut topics {
        if let (Some(first), Some(last)) = (topic.first_ns, topic.last_ns)
            && last > first
            && topic.count > 1
        {
            topic.rate_hz = Some((topic.count - 1) as f64 / ((last - first) as f64 * 1e-9));
        }
    }
    Ok(BagInfo {
        path: path.to_owned(),
        files: bag.files().iter().map(|p| p.to_path_buf()).collect(),
        messages: total,
        duration_s: if total > 0 {
            last.saturating_sub(first) as f64 * 1e-9
        } else {
            0.0
        },
        topics,
        inputs_error,
        damage: messages.damage().clone(),
    })
}
