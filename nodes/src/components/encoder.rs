//! The encoder node: embeds every frame with the newest published weights. It reads the
//! snapshot handle (an `Arc` clone under a lock held for nanoseconds) and never waits for the
//! trainer; its inference runs in its own thread pool so training cannot starve it.

use std::sync::Arc;
use std::time::Instant;

use autodidact_learn::EncoderHandle;
use serde::{Deserialize, Serialize};

use crate::NodeError;
use crate::components::collector::Frame;
use crate::msg::Embedding;

/// Encoder settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncoderConfig {
    /// Threads of the encoder's own compute pool.
    pub threads: usize,
    /// Frames waiting for the encoder before new ones are dropped (counted).
    pub queue: usize,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            threads: 1,
            queue: 4,
        }
    }
}

impl EncoderConfig {
    /// Checks the sizes, naming the field of the one that is unusable.
    pub fn validate(&self) -> Result<(), NodeError> {
        let max_threads = crate::components::trainer::MAX_THREADS;
        if !(1..=max_threads).contains(&self.threads) {
            return Err(NodeError::Setup(format!(
                "encoder.threads must be in 1..={max_threads}, got {}",
                self.threads
            )));
        }
        if !(1..=1 << 20).contains(&self.queue) {
            return Err(NodeError::Setup(format!(
                "encoder.queue must be in 1..={}, got {}",
                1 << 20,
                self.queue
            )));
        }
        Ok(())
    }
}

/// A frame on its way to the encoder, with the instant it was handed over.
#[derive(Debug, Clone)]
pub struct EncodeRequest {
    /// The frame.
    pub frame: Frame,
    /// When the collector produced it (start of the image→embedding latency).
    pub queued_at: Instant,
}

/// Encoder counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EncoderStats {
    /// Embeddings produced.
    pub embedded: u64,
    /// Frames the model refused (logged; should stay 0 behind a collector).
    pub failed: u64,
    /// Image→embedding latencies, seconds, in arrival order: the newest
    /// [`MAX_LATENCIES`] (a node that runs for days keeps bounded memory).
    pub latencies_s: Vec<f64>,
}

/// Latencies an encoder keeps for its report.
pub const MAX_LATENCIES: usize = 1 << 16;

/// Embeds frames from `inbox` until it ends (a closed channel, a closed
/// [`LatestCell`](crate::runtime::latest::LatestCell)), handing each embedding to `publish`.
pub fn run_encoder(
    config: &EncoderConfig,
    handle: &EncoderHandle,
    inbox: impl IntoIterator<Item = EncodeRequest>,
    mut publish: impl FnMut(Embedding),
) -> Result<EncoderStats, NodeError> {
    let pool = crate::runtime::pool::compute_pool("encoder", config.threads, 0)?;
    let mut stats = EncoderStats::default();
    {
        for request in inbox {
            let snapshot = handle.current();
            let frame = &request.frame;
            match pool.install(|| snapshot.embed(&frame.image, &frame.proprio)) {
                Ok(data) => {
                    let latency_s = request.queued_at.elapsed().as_secs_f64();
                    stats.embedded += 1;
                    if stats.latencies_s.len() == MAX_LATENCIES {
                        stats.latencies_s.drain(..MAX_LATENCIES / 2);
                    }
                    stats.latencies_s.push(latency_s);
                    publish(Embedding {
                        source_stamp_ns: request.frame.stamp_ns,
                        model_version: snapshot.version,
                        train_step: snapshot.train_step,
                        data,
                        latency_s,
                        frame_id: Arc::clone(&request.frame.frame_id),
                    });
                }
                Err(error) => {
                    stats.failed += 1;
                    tracing::warn!(%error, stamp_ns = request.frame.stamp_ns, "frame not embedded");
                }
            }
        }
    }
    Ok(stats)
}
