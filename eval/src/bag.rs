//! `autodidact eval --bag`: a model scored on held-out bags of a real robot, where there is no
//! ground truth but the robot's own odometry and wheels: linear probe and k-NN from the
//! embedding to the odometry pose (x, y, sin yaw, cos yaw), a probe to the wheel velocities,
//! k-step prediction ÷ copy-last under the recorded commands, and the collapse monitors —
//! each beside a random-init model of the same architecture. Probes are fitted on the first
//! 70 % of the frames (in time) and scored on the last 30 %.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use autodidact_bag::{Bag, Role, TopicChoice};
use autodidact_learn::metrics::LinearProbe;
use autodidact_learn::{HealthReport, Trainer, TrainerConfig, Transition, embedding_health};
use autodidact_nodes::bags::convert::sensor_in;
use autodidact_nodes::msg::SensorMsg;
use autodidact_nodes::{Collector, CollectorConfig, ManualClock};
use serde::Serialize;

use crate::data::embed_transitions;
use crate::representation::knn_pose_errors;
use crate::{EvalError, EvalModel, Progress};

/// Schema name of the `eval --bag` JSON report.
pub const BAG_REPORT_SCHEMA: &str = "autodidact.eval.bag/1";

/// Share of the frames (the earliest) the probes are fitted on.
const FIT_SHARE: f64 = 0.7;

/// Ridge of the probes.
const RIDGE: f64 = 1e-3;

/// Scores of one model on the bags.
#[derive(Debug, Clone, Serialize)]
pub struct BagScores {
    /// Pose probe R², mean over x, y, sin yaw, cos yaw (odometry frame).
    pub pose_r2: f64,
    /// Per target.
    pub pose_r2_per_target: Vec<f64>,
    /// Wheel-velocity probe R², mean over the configured joints.
    pub wheel_velocity_r2: Option<f64>,
    /// Median distance between a scored frame's odometry position and that of its nearest
    /// neighbour (cosine) among the fit frames, metres.
    pub knn_position_error_m: f64,
    /// Median heading error of that neighbour, degrees.
    pub knn_yaw_error_deg: f64,
    /// Prediction ÷ copy-last for k = 1..=H under the recorded commands, and collapse
    /// monitors, on the scored frames.
    pub health: HealthReport,
}

/// What `eval --bag` reports.
#[derive(Debug, Clone, Serialize)]
pub struct BagEvalReport {
    /// [`BAG_REPORT_SCHEMA`].
    pub schema: String,
    /// Where the model came from.
    pub model_source: String,
    /// Its training step.
    pub train_step: u64,
    /// The bags.
    pub bags: Vec<PathBuf>,
    /// Frames with an odometry pose, fitted on.
    pub fit_frames: usize,
    /// Frames scored.
    pub score_frames: usize,
    /// The model.
    pub model: BagScores,
    /// A random-init model of the same architecture.
    pub random_init: BagScores,
}

/// A frame of the bag with its labels.
struct Labelled {
    transition: Transition,
    pose: [f32; 4],
    wheels: Vec<f32>,
}

/// The bags' frames (through the collector the model was trained with) labelled with the
/// newest odometry pose and wheel velocities at each frame's stamp.
fn labelled_frames(
    bags: &[PathBuf],
    topics: &TopicChoice,
    collector: &CollectorConfig,
) -> Result<Vec<Labelled>, EvalError> {
    let mut out = Vec::new();
    for path in bags {
        let bag = Bag::open(path).map_err(|e| EvalError::Data(e.to_string()))?;
        let inputs = autodidact_bag::roles::choose(bag.topics(), topics)
            .map_err(|e| EvalError::Data(format!("{}: {e}", path.display())))?;
        for (role, what) in [
            (Role::Camera, "camera"),
            (Role::Odometry, "odometry (the probe's target)"),
        ] {
            if inputs.topic(role).is_none() {
                return Err(EvalError::Data(format!(
                    "{}: no {what} topic",
                    path.display()
                )));
            }
        }
        let clock = ManualClock::new();
        let mut collector = Collector::new(collector.clone(), Arc::new(clock.clone()));
        let mut pose: Option<[f32; 4]> = None;
        let mut wheels: Vec<f32> = Vec::new();
        let mut labels: HashMap<u64, ([f32; 4], Vec<f32>)> = HashMap::new();
        let take = |transition: Transition,
                    labels: &mut HashMap<u64, ([f32; 4], Vec<f32>)>,
                    out: &mut Vec<Labelled>| {
            if let Some((pose, wheels)) = labels.remove(&transition.frame_stamp_ns) {
                out.push(Labelled {
                    transition,
                    pose,
                    wheels,
                });
            }
        };
        let joints = collector.config().proprio.joints.clone();
        for message in bag.messages() {
            if inputs.role_of(message.topic).is_none() {
                continue;
            }
            clock.set_ns(message.log_time_ns);
            let type_name = &bag.topics()[message.topic].type_name;
            let Ok(sensor) = sensor_in(type_name, &message.data, message.log_time_ns) else {
                continue;
            };
            match &sensor {
                SensorMsg::Odometry(odom) => {
                    pose = Some([
                        odom.x as f32,
                        odom.y as f32,
                        odom.yaw.sin() as f32,
                        odom.yaw.cos() as f32,
                    ]);
                }
                SensorMsg::JointState(state) => {
                    let found: Option<Vec<f32>> = joints
                        .iter()
                        .map(|j| {
                            let i = state.name.iter().position(|n| n == j)?;
                            state.velocity.get(i).map(|v| *v as f32)
                        })
                        .collect();
                    if let Some(found) = found {
                        wheels = found;
                    }
                }
                _ => {}
            }
            let collected = collector.on_message(&sensor);
            if let (Some(frame), Some(pose)) = (&collected.frame, pose) {
                labels.insert(frame.stamp_ns, (pose, wheels.clone()));
            }
            if let Some(transition) = collected.transition {
                take(transition, &mut labels, &mut out);
            }
        }
        if let Some(transition) = collector.flush() {
            take(transition, &mut labels, &mut out);
        }
    }
    Ok(out)
}

fn embed(
    encoder: &autodidact_learn::EncoderSnapshot,
    frames: &[&Labelled],
) -> Result<Vec<Vec<f32>>, EvalError> {
    let transitions: Vec<&Transition> = frames.iter().map(|f| &f.transition).collect();
    embed_transitions(encoder, &transitions)
}

fn scores(
    trainer: &Trainer,
    fit: &[&Labelled],
    score: &[&Labelled],
) -> Result<BagScores, EvalError> {
    let encoder = trainer.snapshot();
    let dynamics = trainer.dynamics_snapshot();
    let fit_z = embed(&encoder, fit)?;
    let score_z = embed(&encoder, score)?;
    let poses = |frames: &[&Labelled]| -> Vec<Vec<f32>> {
        frames.iter().map(|f| f.pose.to_vec()).collect()
    };
    let pose_r2_per_target =
        LinearProbe::fit(&fit_z, &poses(fit), RIDGE)?.r2_per_target(&score_z, &poses(score))?;
    let wheels = |frames: &[&Labelled]| -> Vec<Vec<f32>> {
        frames.iter().map(|f| f.wheels.clone()).collect()
    };
    let wheel_velocity_r2 = if fit.iter().chain(score).all(|f| !f.wheels.is_empty()) {
        let per = LinearProbe::fit(&fit_z, &wheels(fit), RIDGE)?
            .r2_per_target(&score_z, &wheels(score))?;
        Some(per.iter().sum::<f64>() / per.len().max(1) as f64)
    } else {
        None
    };
    let (knn_position_error_m, knn_yaw_error_deg) = knn_pose_errors(
        &fit_z,
        &fit.iter().map(|f| f.pose).collect::<Vec<_>>(),
        &score_z,
        &score.iter().map(|f| f.pose).collect::<Vec<_>>(),
    );
    let transitions: Vec<Transition> = score.iter().map(|f| f.transition.clone()).collect();
    let horizon = trainer.config().forward_horizon().max(1);
    let health = embedding_health(&encoder, &dynamics, &transitions, horizon, 2)?;
    Ok(BagScores {
        pose_r2: pose_r2_per_target.iter().sum::<f64>() / pose_r2_per_target.len().max(1) as f64,
        pose_r2_per_target,
        wheel_velocity_r2,
        knn_position_error_m,
        knn_yaw_error_deg,
        health,
    })
}

/// Scores `model` on `bags` (read with the collector settings `collector`, whose image size and
/// proprio layout must be the model's) beside a random-init twin.
pub fn evaluate_bags(
    model: &EvalModel,
    bags: &[PathBuf],
    topics: &TopicChoice,
    collector: &CollectorConfig,
    progress: Progress<'_>,
) -> Result<BagEvalReport, EvalError> {
    let config = model.trainer.config().clone();
    collector.check_model(&config)?;
    let frames = labelled_frames(bags, topics, collector)?;
    progress("bags read", 1, 3);
    let split = (frames.len() as f64 * FIT_SHARE) as usize;
    let needed = config.forward_horizon().max(1) + 2;
    if split < needed || frames.len() - split < needed {
        return Err(EvalError::Data(format!(
            "{} labelled frames: too few to fit on 70 % and score the rest",
            frames.len()
        )));
    }
    let all: Vec<&Labelled> = frames.iter().collect();
    let (fit, score) = all.split_at(split);
    let model_scores = scores(&model.trainer, fit, score)?;
    progress("model scored", 2, 3);
    let random = Trainer::new(TrainerConfig {
        seed: config.seed.wrapping_add(0x5eed),
        ..config.clone()
    })?;
    let random_scores = scores(&random, fit, score)?;
    progress("random init scored", 3, 3);
    Ok(BagEvalReport {
        schema: BAG_REPORT_SCHEMA.to_owned(),
        model_source: model.source.clone(),
        train_step: model.trainer.step_count(),
        bags: bags.to_vec(),
        fit_frames: fit.len(),
        score_frames: score.len(),
        model: model_scores,
        random_init: random_scores,
    })
}

/// The table rows of a bag evaluation: metric, model, random init.
pub fn bag_report_rows(report: &BagEvalReport) -> Vec<[String; 3]> {
    let pair = |f: &dyn Fn(&BagScores) -> String| [f(&report.model), f(&report.random_init)];
    let mut rows = Vec::new();
    let mut push = |name: &str, values: [String; 2]| {
        let [a, b] = values;
        rows.push([name.to_owned(), a, b]);
    };
    push(
        "pose probe R² (odometry x, y, sin, cos)",
        pair(&|s| format!("{:.3}", s.pose_r2)),
    );
    push(
        "wheel velocity probe R²",
        pair(&|s| {
            s.wheel_velocity_r2
                .map_or_else(|| "-".into(), |r| format!("{r:.3}"))
        }),
    );
    push(
        "k-NN position error",
        pair(&|s| format!("{:.2} m", s.knn_position_error_m)),
    );
    push(
        "k-NN heading error",
        pair(&|s| format!("{:.0}°", s.knn_yaw_error_deg)),
    );
    push(
        "prediction ÷ copy-last (k = 1..H)",
        pair(&|s| {
            s.health
                .prediction_vs_copy_last
                .iter()
                .map(|v| format!("{v:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        }),
    );
    push(
        "effective rank",
        pair(&|s| format!("{:.1}", s.health.collapse.effective_rank)),
    );
    rows
}
