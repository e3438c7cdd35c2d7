//! The rollout service's work. A request is checked against the limits before anything is
//! allocated for it, then answered on a worker thread behind a bounded queue: a long rollout
//! never stops the spinning thread (subscriptions, parameter services, SIGINT), and a full queue
//! answers "busy" at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use autodidact_learn::inference::DynamicsSnapshot;
use autodidact_learn::{ACTION_DIM, EncoderHandle, rollout};
use futures::channel::oneshot;
use r2r::autodidact_msgs::srv::Rollout;

use super::convert;
use crate::NodeError;
use crate::components::collector::Frame;

/// The largest request the service answers, and how many may wait (parameters
/// `rollout_max_candidates`, `rollout_max_horizon`, `rollout_max_steps`, `rollout_queue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutLimits {
    /// Candidate action sequences `K`.
    pub max_candidates: usize,
    /// Steps per sequence `H`.
    pub max_horizon: usize,
    /// Predicted embeddings `K × H` (each `D` floats in the answer).
    pub max_steps: usize,
    /// Requests waiting for the worker before new ones are answered "busy".
    pub queue: usize,
}

impl Default for RolloutLimits {
    fn default() -> Self {
        Self {
            max_candidates: 1024,
            max_horizon: 256,
            max_steps: 65_536,
            queue: 4,
        }
    }
}

/// A refusal: `success = false` and the reason.
pub fn rollout_error(message: String) -> Rollout::Response {
    Rollout::Response {
        success: false,
        message,
        ..Rollout::Response::default()
    }
}

/// Checks what a request asks for, without allocating anything for it: sizes against the
/// limits, the action list against `K × H`, the start and goal against the model's `dimension`.
pub fn check_request(
    request: &Rollout::Request,
    limits: &RolloutLimits,
    dimension: usize,
) -> Result<(usize, usize), Rollout::Response> {
    let (k, h) = (request.candidates as usize, request.horizon as usize);
    if k == 0 || h == 0 {
        return Err(rollout_error(format!(
            "empty action list: candidates = {k}, horizon = {h} (both must be ≥ 1)"
        )));
    }
    if k > limits.max_candidates || h > limits.max_horizon || k.saturating_mul(h) > limits.max_steps
    {
        return Err(rollout_error(format!(
            "too large: candidates = {k}, horizon = {h}; this node answers at most {} candidates, \
             {} steps each and {} in all (parameters rollout_max_candidates, \
             rollout_max_horizon, rollout_max_steps)",
            limits.max_candidates, limits.max_horizon, limits.max_steps
        )));
    }
    let expected = k * h * ACTION_DIM;
    if expected != request.actions.len() {
        return Err(rollout_error(format!(
            "actions has {} values, candidates × horizon × {ACTION_DIM} = {k} × {h} × {ACTION_DIM}",
            request.actions.len(),
        )));
    }
    if !request.start.is_empty() && request.start.len() != dimension {
        return Err(rollout_error(format!(
            "start has {} values, the model's embeddings have {dimension}",
            request.start.len()
        )));
    }
    if !request.goal.is_empty() && request.goal.len() != dimension {
        return Err(rollout_error(format!(
            "goal has {} values, the model's embeddings have {dimension}",
            request.goal.len()
        )));
    }
    Ok((k, h))
}

/// The camera frame a request starts from when it gives a stamp instead of an embedding: one of
/// the `recent` frames (cloned; its image is shared).
pub fn start_frame(
    request: &Rollout::Request,
    recent: &VecDeque<Frame>,
) -> Result<Option<Frame>, Rollout::Response> {
    if !request.start.is_empty() {
        return Ok(None);
    }
    let stamp = convert::stamp_ns(&request.start_stamp)
        .map_err(|_| rollout_error("start_stamp is not a valid time".into()))?;
    recent
        .iter()
        .find(|f| f.stamp_ns == stamp)
        .cloned()
        .map(Some)
        .ok_or_else(|| {
            rollout_error(format!(
                "no camera frame stamped {stamp} ns among the newest {} (give `start` instead)",
                recent.len()
            ))
        })
}

/// Answers one request (checked again here); every refusal is a response with
/// `success = false` and the reason, never a dropped request.
pub fn answer_rollout(
    request: &Rollout::Request,
    start_frame: Option<&Frame>,
    encoder: &EncoderHandle,
    dynamics: &DynamicsSnapshot,
    limits: &RolloutLimits,
) -> Rollout::Response {
    let (k, h) = match check_request(request, limits, dynamics.embed_dim()) {
        Ok(sizes) => sizes,
        Err(refused) => return refused,
    };
    let start = match start_frame {
        Some(frame) => match encoder.current().embed(&frame.image, &frame.proprio) {
            Ok(embedding) => embedding,
            Err(error) => return rollout_error(format!("embedding the start frame: {error}")),
        },
        None if request.start.is_empty() => {
            return rollout_error("no start: give `start` or `start_stamp`".into());
        }
        None => request.start.clone(),
    };
    let candidates: Vec<Vec<[f32; ACTION_DIM]>> = request
        .actions
        .chunks_exact(h * ACTION_DIM)
        .map(|sequence| {
            sequence
                .chunks_exact(ACTION_DIM)
                .map(|a| [a[0], a[1]])
                .collect()
        })
        .collect();
    let goal = (!request.goal.is_empty()).then_some(request.goal.as_slice());
    match rollout(dynamics, &start, &candidates, goal) {
        Ok(result) => Rollout::Response {
            success: true,
            message: String::new(),
            model_version: result.model_version,
            candidates: k as u32,
            horizon: h as u32,
            dimension: dynamics.embed_dim() as u32,
            predicted: result.predicted.into_iter().flatten().flatten().collect(),
            distances: result
                .goal_distances
                .map(|d| d.into_iter().flatten().collect())
                .unwrap_or_default(),
        },
        Err(error) => rollout_error(error.to_string()),
    }
}

/// A request on its way to the worker, with where its answer goes.
struct RolloutJob {
    request: Rollout::Request,
    start_frame: Option<Frame>,
    reply: oneshot::Sender<Rollout::Response>,
}

/// The rollout worker thread and its bounded queue. The thread ends when the worker is dropped.
pub struct RolloutWorker {
    jobs: SyncSender<RolloutJob>,
    limits: RolloutLimits,
    /// Embedding size of the model (a new version of another architecture is never applied).
    dimension: usize,
}

impl RolloutWorker {
    /// Starts the worker: it answers with the `encoder` weights and the dynamics `dynamics`
    /// returns, both the newest when a job starts.
    pub fn start(
        encoder: EncoderHandle,
        dynamics: impl Fn() -> Arc<DynamicsSnapshot> + Send + 'static,
        limits: RolloutLimits,
    ) -> Result<Self, NodeError> {
        let (jobs, inbox) = sync_channel::<RolloutJob>(limits.queue.max(1));
        let dimension = dynamics().embed_dim();
        std::thread::Builder::new()
            .name("rollout".into())
            .spawn(move || {
                for job in inbox {
                    let snapshot = dynamics();
                    let response = answer_rollout(
                        &job.request,
                        job.start_frame.as_ref(),
                        &encoder,
                        &snapshot,
                        &limits,
                    );
                    // The caller may have gone; nothing to do then.
                    let _ = job.reply.send(response);
                }
            })
            .map_err(|e| NodeError::Setup(format!("rollout thread: {e}")))?;
        Ok(Self {
            jobs,
            limits,
            dimension,
        })
    }

    /// Queues `request` (checked first, its start frame taken from `recent`): the receiver gets
    /// the answer. `Err` is the answer now: a refusal, or "busy" when the queue is full.
    pub fn submit(
        &self,
        request: Rollout::Request,
        recent: &VecDeque<Frame>,
    ) -> Result<oneshot::Receiver<Rollout::Response>, Rollout::Response> {
        check_request(&request, &self.limits, self.dimension)?;
        let start_frame = start_frame(&request, recent)?;
        let (reply, answer) = oneshot::channel();
        let job = RolloutJob {
            request,
            start_frame,
            reply,
        };
        match self.jobs.try_send(job) {
            Ok(()) => Ok(answer),
            Err(TrySendError::Full(_)) => Err(rollout_error(format!(
                "busy: {} rollouts are waiting (parameter rollout_queue); try again",
                self.limits.queue
            ))),
            Err(TrySendError::Disconnected(_)) => {
                Err(rollout_error("the rollout worker has stopped".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use autodidact_learn::{Trainer, TrainerConfig};

    use crate::runtime::lock;

    use super::*;

    fn request(candidates: u32, horizon: u32, start: Vec<f32>) -> Rollout::Request {
        Rollout::Request {
            start,
            candidates,
            horizon,
            actions: vec![0.1; (candidates * horizon) as usize * ACTION_DIM],
            ..Rollout::Request::default()
        }
    }

    #[test]
    fn requests_beyond_the_limits_are_refused_before_anything_is_read() {
        let limits = RolloutLimits::default();
        for (k, h) in [(100_000, 1), (1, 100_000), (1024, 256)] {
            let huge = Rollout::Request {
                candidates: k,
                horizon: h,
                actions: vec![0.0; 2],
                ..Rollout::Request::default()
            };
            let refused = check_request(&huge, &limits, 8).expect_err("too large");
            assert!(refused.message.contains("too large"), "{}", refused.message);
        }
        let wide = request(1000, 1, vec![0.0; 8 * 1000]);
        let refused = check_request(&wide, &limits, 8).expect_err("start too long");
        assert!(
            refused.message.contains("start has 8000"),
            "{}",
            refused.message
        );
        assert_eq!(
            check_request(&request(4, 3, vec![0.0; 8]), &limits, 8),
            Ok((4, 3))
        );
    }

    #[test]
    fn a_full_queue_answers_busy_and_every_queued_request_is_answered() {
        let mut trainer = Trainer::new(TrainerConfig::for_inputs(16, 16, 2)).expect("trainer");
        let dimension = trainer.config().model.embed_dim();
        let dynamics = Arc::new(Mutex::new(Arc::new(trainer.dynamics_snapshot())));
        let limits = RolloutLimits {
            queue: 1,
            ..RolloutLimits::default()
        };
        let newest = Arc::clone(&dynamics);
        let worker = RolloutWorker::start(
            trainer.encoder_handle(),
            move || Arc::clone(&lock(&newest)),
            limits,
        )
        .expect("worker");
        let answers = {
            // The worker waits for the weights while this is held: at most one request is
            // being worked on and one queued, so the third at the latest finds the queue full.
            let _held = lock(&dynamics);
            let mut answers = Vec::new();
            let mut busy = None;
            for _ in 0..3 {
                match worker.submit(request(2, 3, vec![0.5; dimension]), &VecDeque::new()) {
                    Ok(answer) => answers.push(answer),
                    Err(refused) => {
                        busy = Some(refused);
                        break;
                    }
                }
            }
            let busy = busy.expect("a full queue answers at once");
            assert!(
                !busy.success && busy.message.contains("busy"),
                "{}",
                busy.message
            );
            answers
        };
        assert!(!answers.is_empty());
        for answer in answers {
            let response = futures::executor::block_on(answer).expect("answered");
            assert!(response.success, "{}", response.message);
            assert_eq!(response.predicted.len(), 2 * 3 * dimension);
        }
    }

    /// A request as a client may send one: sizes near and far beyond the limits, vectors of
    /// any length, values that may be NaN or infinite.
    #[derive(Debug, bolero::TypeGenerator)]
    struct FuzzRequest {
        candidates: u16,
        horizon: u16,
        start_len: u16,
        actions_len: i8,
        goal_len: Option<u16>,
        value: f32,
        start_stamp: (i32, u32),
        recent_stamp: bool,
    }

    #[test]
    fn fuzz_rollout_requests_are_answered_or_refused_and_answers_have_the_asked_shape() {
        let mut trainer = Trainer::new(TrainerConfig::for_inputs(16, 16, 2)).expect("trainer");
        let dimension = trainer.config().model.embed_dim();
        let (encoder, dynamics) = (trainer.encoder_handle(), trainer.dynamics_snapshot());
        let limits = RolloutLimits {
            max_candidates: 16,
            max_horizon: 16,
            max_steps: 64,
            queue: 1,
        };
        let frame = Frame {
            stamp_ns: 2_000_000_000,
            episode: 0,
            image: vec![7u8; 16 * 16 * 3].into(),
            proprio: vec![0.0; 2],
            frame_id: Arc::from("camera"),
            odometry: None,
        };
        let recent = VecDeque::from([frame]);
        // The model is only read; a panic ends the test, so nothing sees it half-changed.
        let model = std::panic::AssertUnwindSafe((&encoder, &dynamics));
        bolero::check!()
            .with_iterations(2_000)
            .with_type::<FuzzRequest>()
            .for_each(|fuzz| {
                let (k, h) = (
                    u32::from(fuzz.candidates % 40),
                    u32::from(fuzz.horizon % 40),
                );
                let near = |len: u16, size: usize| {
                    let len = if len.is_multiple_of(4) {
                        size
                    } else {
                        usize::from(len % 300)
                    };
                    vec![fuzz.value; len]
                };
                let asked = (k * h) as usize * ACTION_DIM;
                let request = Rollout::Request {
                    start: near(fuzz.start_len, dimension),
                    start_stamp: if fuzz.recent_stamp {
                        r2r::builtin_interfaces::msg::Time { sec: 2, nanosec: 0 }
                    } else {
                        r2r::builtin_interfaces::msg::Time {
                            sec: fuzz.start_stamp.0,
                            nanosec: fuzz.start_stamp.1,
                        }
                    },
                    candidates: k,
                    horizon: h,
                    actions: vec![
                        fuzz.value;
                        asked.saturating_add_signed(isize::from(fuzz.actions_len % 3))
                    ],
                    goal: fuzz
                        .goal_len
                        .map_or_else(Vec::new, |len| near(len, dimension)),
                };
                let start_frame = match start_frame(&request, &recent) {
                    Ok(found) => found,
                    Err(refused) => {
                        assert!(!refused.success && !refused.message.is_empty());
                        return;
                    }
                };
                let (encoder, dynamics) = *model;
                let response =
                    answer_rollout(&request, start_frame.as_ref(), encoder, dynamics, &limits);
                if response.success {
                    assert_eq!(response.predicted.len(), asked / ACTION_DIM * dimension);
                    assert!(response.predicted.iter().all(|v| v.is_finite()));
                } else {
                    assert!(!response.message.is_empty());
                }
            });
    }
}
