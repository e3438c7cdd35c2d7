//! ROS parameters of the nodes, declared with descriptions and units (r2r `RosParams`), and how
//! they refine the configuration file (`config_file`: the same TOML as `autodidact run --config`,
//! see [`FileConfig`]); parameters override what they name. `launch/params/*.yaml` mirrors the
//! declarations, and a test checks that they agree.

use std::path::PathBuf;

use autodidact_learn::TrainerConfig;
use r2r::RosParams;

use crate::NodeError;
use crate::components::collector::CollectorConfig;
use crate::components::encoder::EncoderConfig;
use crate::components::trainer::TrainerNodeConfig;
use crate::components::viz::{VizConfig, VizSink};
use crate::config::FileConfig;
use crate::ros::rollout::RolloutLimits;

/// Parameters of the learner nodes (`autodidact_node`, `trainer_node`, `encoder_node`).
#[derive(RosParams, Debug, Clone, PartialEq)]
pub struct LearnerParams {
    /// Configuration file (TOML, as for `autodidact run --config`); empty: built-in defaults
    pub config_file: String,
    /// Image width the model takes; other widths are dropped and counted [px]
    pub image_width: i64,
    /// Image height the model takes [px]
    pub image_height: i64,
    /// Seed of weight initialisation, sampling and augmentation
    pub seed: i64,
    /// Train online (false: serve the initial or loaded weights as they are)
    pub train: bool,
    /// Checkpoint directory to start from; empty: fresh weights
    pub checkpoint: String,
    /// Directory to write checkpoints to (atomically); empty: never
    pub checkpoint_dir: String,
    /// Training steps between checkpoints; 0: only at shutdown [steps]
    pub checkpoint_every: i64,
    /// Transitions in the replay buffer before the first training step
    pub min_replay: i64,
    /// Training steps between published encoder versions [steps]
    pub publish_every: i64,
    /// Training steps between embedding health reports; 0: never [steps]
    pub health_every: i64,
    /// Stop training after this many steps (data is still taken in); 0: never [steps]
    pub max_train_steps: i64,
    /// Threads of the trainer's compute pool; 0: one per core
    pub trainer_threads: i64,
    /// Niceness added to the trainer's compute threads (Linux), so inference gets a core first; 0: same priority
    pub trainer_nice: i64,
    /// Threads of the encoder's compute pool
    pub encoder_threads: i64,
    /// Largest difference between an image stamp and its proprio stamps [s]
    pub proprio_tolerance_s: f64,
    /// A command older than this when the next image arrives counts as a stop [s]
    pub action_timeout_s: f64,
    /// A gap between images longer than this starts a new episode [s]
    pub episode_gap_s: f64,
    /// Newest camera frames kept for rollouts that start at a frame stamp (at most 10000)
    pub rollout_frames: i64,
    /// Largest number of candidate action sequences one rollout request may ask for
    pub rollout_max_candidates: i64,
    /// Largest number of steps per candidate one rollout request may ask for [steps]
    pub rollout_max_horizon: i64,
    /// Largest candidates × steps one rollout request may ask for [steps]
    pub rollout_max_steps: i64,
    /// Rollout requests waiting for the rollout thread before new ones are answered "busy"
    pub rollout_queue: i64,
    /// Seconds between reloads of `checkpoint` when not training and weights_source is "checkpoint" (encoder_node following a trainer_node on a shared disk); 0: never [s]
    pub reload_every_s: f64,
    /// Telemetry to rerun: empty = off, a path = an .rrd file, rerun+http://HOST:PORT/proxy = a running viewer (the node runs on without it)
    pub rerun: String,
    /// cmd_vel is geometry_msgs/TwistStamped (Nav2's default from Kilted; its header stamp is the command's time) instead of Twist (stamped on arrival); planner_node then publishes TwistStamped too
    pub cmd_vel_stamped: bool,
    /// How camera images arrive: "raw" (sensor_msgs/Image on camera/image_raw) or "compressed" (sensor_msgs/CompressedImage, JPEG or PNG, on camera/image_raw/compressed, as image_transport publishes it)
    pub image_transport: String,
    /// Where training runs: "auto" (a hardware GPU if wgpu finds one, else the CPU), "flex" (CPU) or "wgpu" (GPU; a software Vulkan driver such as lavapipe too)
    pub backend: String,
    /// Where frames are encoded and rollouts run: "auto" (the CPU without a GPU; with one, whichever encodes a frame faster, timed at start), "flex" or "wgpu"
    pub inference_backend: String,
    /// trainer_node: namespaces of the robots it learns from (NS/camera/image_raw, NS/joint_states, ...), each with its own collector, episodes and drop counts; empty: one robot on the node's own topics
    pub robots: NameList,
    /// Seconds between weight versions the trainer publishes on autodidact/weights (reliable, transient local) for encoder_node and planner_node on any host; 0: never [s]
    pub weights_every_s: f64,
    /// Where a node that does not train gets its weights: "topic" (autodidact/weights, from a trainer anywhere on the network) or "checkpoint" (reload `checkpoint` every reload_every_s, on a shared disk)
    pub weights_source: String,
}

/// A list of names as a ROS string-array parameter (`robots:="[robot1, robot2]"`); a single
/// string is a list of one name, or of several separated by commas (`robots:=robot1,robot2`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NameList(pub Vec<String>);

impl NameList {
    fn from_value(value: &r2r::ParameterValue) -> r2r::Result<Self> {
        match value {
            r2r::ParameterValue::StringArray(names) => Ok(Self(names.clone())),
            // `robots: []` in a params file: rcl cannot tell the type of an empty list.
            r2r::ParameterValue::NotSet => Ok(Self::default()),
            r2r::ParameterValue::BoolArray(v) if v.is_empty() => Ok(Self::default()),
            r2r::ParameterValue::IntegerArray(v) if v.is_empty() => Ok(Self::default()),
            r2r::ParameterValue::DoubleArray(v) if v.is_empty() => Ok(Self::default()),
            r2r::ParameterValue::ByteArray(v) if v.is_empty() => Ok(Self::default()),
            r2r::ParameterValue::String(text) => Ok(Self(
                text.split(',')
                    .map(str::trim)
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            _ => Err(r2r::Error::InvalidParameterType {
                name: String::new(),
                ty: "string array",
            }),
        }
    }

    fn only_here(name: &str) -> r2r::Result<()> {
        if name.is_empty() {
            Ok(())
        } else {
            Err(r2r::Error::InvalidParameterName {
                name: name.to_owned(),
            })
        }
    }
}

impl RosParams for NameList {
    fn register_parameters(
        &mut self,
        prefix: &str,
        param: Option<r2r::Parameter>,
        params: &mut r2r::indexmap::IndexMap<String, r2r::Parameter>,
    ) -> r2r::Result<()> {
        if let Some(given) = params.shift_remove(prefix) {
            *self = Self::from_value(&given.value).map_err(|e| e.update_param_name(prefix))?;
        }
        let mut param = param.unwrap_or_else(r2r::Parameter::empty);
        param.value = r2r::ParameterValue::StringArray(self.0.clone());
        params.insert(prefix.to_owned(), param);
        Ok(())
    }

    fn get_parameter(&mut self, param_name: &str) -> r2r::Result<r2r::ParameterValue> {
        Self::only_here(param_name)?;
        Ok(r2r::ParameterValue::StringArray(self.0.clone()))
    }

    fn set_parameter(
        &mut self,
        param_name: &str,
        param_val: &r2r::ParameterValue,
    ) -> r2r::Result<()> {
        Self::only_here(param_name)?;
        *self = Self::from_value(param_val)?;
        Ok(())
    }

    fn check_parameter(
        &self,
        param_name: &str,
        param_val: &r2r::ParameterValue,
    ) -> r2r::Result<()> {
        Self::only_here(param_name)?;
        Self::from_value(param_val).map(|_| ())
    }
}

/// Where a node that does not train gets its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsSource {
    /// `autodidact/weights`, published by a trainer anywhere on the network.
    Topic,
    /// The `checkpoint` directory, reloaded every `reload_every_s` (a shared disk).
    Checkpoint,
}

/// Whether `name` can be a ROS namespace: tokens of letters, digits and underscores, not
/// starting with a digit, separated by `/` (a leading `/` makes it absolute).
fn is_namespace(name: &str) -> bool {
    let relative = name.strip_prefix('/').unwrap_or(name);
    !relative.is_empty()
        && relative.split('/').all(|token| {
            !token.is_empty()
                && !token.starts_with(|c: char| c.is_ascii_digit())
                && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

fn to_usize(name: &str, value: i64) -> Result<usize, NodeError> {
    usize::try_from(value)
        .map_err(|_| NodeError::Setup(format!("parameter {name} must be ≥ 0, got {value}")))
}

fn to_u64(name: &str, value: i64) -> Result<u64, NodeError> {
    u64::try_from(value)
        .map_err(|_| NodeError::Setup(format!("parameter {name} must be ≥ 0, got {value}")))
}

/// Longest duration a parameter in seconds may name (a day).
const MAX_PERIOD_S: f64 = 86_400.0;

/// Robots one trainer takes (each has its own subscriptions and collector).
pub const MAX_TRAINER_ROBOTS: usize = 64;

/// Camera frames a node may keep for stamp-addressed rollouts (each holds an image).
const MAX_ROLLOUT_FRAMES: i64 = 10_000;

/// `value` as a size, refused with its name unless `min ≤ value ≤ max`.
fn in_range(name: &str, value: i64, min: i64, max: i64) -> Result<usize, NodeError> {
    if !(min..=max).contains(&value) {
        return Err(NodeError::Setup(format!(
            "parameter {name} must be in {min}..={max}, got {value}"
        )));
    }
    to_usize(name, value)
}

fn optional_path(value: &str) -> Option<PathBuf> {
    (!value.is_empty()).then(|| PathBuf::from(value))
}

/// Everything a learner node runs with, after the file and the parameters.
#[derive(Debug, Clone)]
pub struct LearnerSetup {
    /// The collector.
    pub collector: CollectorConfig,
    /// The model and its training.
    pub trainer: TrainerConfig,
    /// The trainer loop.
    pub trainer_node: TrainerNodeConfig,
    /// The encoder loop.
    pub encoder: EncoderConfig,
    /// Start from this checkpoint.
    pub checkpoint: Option<PathBuf>,
    /// Train at all.
    pub train: bool,
    /// Frames kept for stamp-addressed rollouts.
    pub rollout_frames: usize,
    /// What one rollout request may ask for, and how many may wait.
    pub rollouts: RolloutLimits,
    /// Reload period of `checkpoint` when not training, seconds (0: never).
    pub reload_every_s: f64,
    /// Telemetry.
    pub viz: VizConfig,
    /// cmd_vel carries geometry_msgs/TwistStamped.
    pub cmd_vel_stamped: bool,
    /// Camera images come as sensor_msgs/CompressedImage on camera/image_raw/compressed.
    pub compressed_images: bool,
    /// The robots' namespaces (empty: one robot on the node's own topics).
    pub robots: Vec<String>,
    /// Seconds between published weight versions (0: none published).
    pub weights_every_s: f64,
    /// Where a node that does not train gets its weights.
    pub weights_source: WeightsSource,
}

impl LearnerParams {
    /// Defaults taken from `file`.
    pub fn from_file(config_file: &str, file: &FileConfig) -> Self {
        let node = &file.trainer_node;
        let collector = &file.collector;
        let trainer = file.trainer.clone().unwrap_or_else(|| {
            TrainerConfig::for_inputs(
                collector.width as usize,
                collector.height as usize,
                collector.proprio.dim(),
            )
        });
        Self {
            config_file: config_file.to_owned(),
            image_width: i64::from(collector.width),
            image_height: i64::from(collector.height),
            seed: trainer.seed as i64,
            train: true,
            checkpoint: String::new(),
            checkpoint_dir: node
                .checkpoint_dir
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            checkpoint_every: node.checkpoint_every as i64,
            min_replay: node.min_replay as i64,
            publish_every: trainer.publish_every as i64,
            health_every: node.health_every as i64,
            max_train_steps: node.max_steps.unwrap_or(0) as i64,
            trainer_threads: node.threads as i64,
            trainer_nice: i64::from(node.nice),
            encoder_threads: file.encoder.threads as i64,
            proprio_tolerance_s: collector.proprio_tolerance_s,
            action_timeout_s: collector.action_timeout_s,
            episode_gap_s: collector.episode_gap_s,
            rollout_frames: 64,
            rollout_max_candidates: RolloutLimits::default().max_candidates as i64,
            rollout_max_horizon: RolloutLimits::default().max_horizon as i64,
            rollout_max_steps: RolloutLimits::default().max_steps as i64,
            rollout_queue: RolloutLimits::default().queue as i64,
            reload_every_s: 0.0,
            rerun: String::new(),
            cmd_vel_stamped: false,
            image_transport: "raw".to_owned(),
            backend: trainer.backend.to_string(),
            inference_backend: trainer.inference_backend.to_string(),
            robots: NameList::default(),
            weights_every_s: 2.0,
            weights_source: "topic".to_owned(),
        }
    }

    /// The file's configuration with these parameters applied, checked.
    pub fn apply(&self, file: &FileConfig) -> Result<LearnerSetup, NodeError> {
        let mut collector = file.collector.clone();
        collector.width = u32::try_from(self.image_width)
            .map_err(|_| NodeError::Setup(format!("image_width {}", self.image_width)))?;
        collector.height = u32::try_from(self.image_height)
            .map_err(|_| NodeError::Setup(format!("image_height {}", self.image_height)))?;
        collector.proprio_tolerance_s = self.proprio_tolerance_s;
        collector.action_timeout_s = self.action_timeout_s;
        collector.episode_gap_s = self.episode_gap_s;
        let mut trainer = file.trainer.clone().unwrap_or_else(|| {
            TrainerConfig::for_inputs(
                collector.width as usize,
                collector.height as usize,
                collector.proprio.dim(),
            )
        });
        trainer.seed = to_u64("seed", self.seed)?;
        trainer.publish_every = to_u64("publish_every", self.publish_every)?.max(1);
        for (name, text, choice) in [
            ("backend", &self.backend, &mut trainer.backend),
            (
                "inference_backend",
                &self.inference_backend,
                &mut trainer.inference_backend,
            ),
        ] {
            *choice = text.parse().map_err(|_| {
                NodeError::Setup(format!(
                    "parameter {name} must be \"auto\", \"flex\" or \"wgpu\", got {text:?}"
                ))
            })?;
        }
        collector.check_model(&trainer)?;
        trainer.validate()?;
        let mut trainer_node = file.trainer_node.clone();
        trainer_node.min_replay = to_usize("min_replay", self.min_replay)?;
        trainer_node.threads = to_usize("trainer_threads", self.trainer_threads)?;
        trainer_node.nice = i32::try_from(self.trainer_nice)
            .ok()
            .filter(|nice| (0..=19).contains(nice))
            .ok_or_else(|| {
                NodeError::Setup(format!(
                    "trainer_nice must be in 0..=19, got {}",
                    self.trainer_nice
                ))
            })?;
        trainer_node.health_every = to_u64("health_every", self.health_every)?;
        trainer_node.checkpoint_dir = optional_path(&self.checkpoint_dir);
        trainer_node.checkpoint_every = to_u64("checkpoint_every", self.checkpoint_every)?;
        let max_steps = to_u64("max_train_steps", self.max_train_steps)?;
        trainer_node.max_steps = (max_steps > 0).then_some(max_steps);
        // Previews are a viewer feature of the in-process graph; the ROS nodes do not decode.
        trainer_node.preview_every = 0;
        trainer_node.validate(trainer.replay.capacity)?;
        let mut encoder = file.encoder.clone();
        encoder.threads = to_usize("encoder_threads", self.encoder_threads)?.max(1);
        encoder.validate()?;
        for (name, value) in [
            ("reload_every_s", self.reload_every_s),
            ("weights_every_s", self.weights_every_s),
        ] {
            if !(value.is_finite() && (0.0..=MAX_PERIOD_S).contains(&value)) {
                return Err(NodeError::Setup(format!(
                    "{name} must be in 0..={MAX_PERIOD_S} s, got {value}"
                )));
            }
        }
        let mut robots: Vec<String> = Vec::with_capacity(self.robots.0.len());
        for name in &self.robots.0 {
            if !is_namespace(name) {
                return Err(NodeError::Setup(format!(
                    "parameter robots: {name:?} is not a namespace (letters, digits, _ and /)"
                )));
            }
            let name = name.trim_end_matches('/').to_owned();
            if robots.contains(&name) {
                return Err(NodeError::Setup(format!(
                    "parameter robots names {name:?} twice"
                )));
            }
            robots.push(name);
        }
        if robots.len() > MAX_TRAINER_ROBOTS {
            return Err(NodeError::Setup(format!(
                "parameter robots names {} robots; one trainer takes at most {MAX_TRAINER_ROBOTS}",
                robots.len()
            )));
        }
        for (name, value) in [
            ("proprio_tolerance_s", self.proprio_tolerance_s),
            ("action_timeout_s", self.action_timeout_s),
            ("episode_gap_s", self.episode_gap_s),
        ] {
            if !(value.is_finite() && value > 0.0 && value <= MAX_PERIOD_S) {
                return Err(NodeError::Setup(format!(
                    "{name} must be in (0, {MAX_PERIOD_S}] s, got {value}"
                )));
            }
        }
        collector.validate()?;
        let mut viz = file.viz.clone();
        viz.sink = if self.rerun.is_empty() {
            VizSink::Off
        } else if self.rerun.starts_with("rerun+http") {
            VizSink::Connect(self.rerun.clone())
        } else {
            VizSink::File(PathBuf::from(&self.rerun))
        };
        Ok(LearnerSetup {
            collector,
            trainer,
            trainer_node,
            encoder,
            checkpoint: optional_path(&self.checkpoint),
            train: self.train,
            rollout_frames: in_range("rollout_frames", self.rollout_frames, 1, MAX_ROLLOUT_FRAMES)?,
            rollouts: RolloutLimits {
                max_candidates: in_range(
                    "rollout_max_candidates",
                    self.rollout_max_candidates,
                    1,
                    1 << 20,
                )?,
                max_horizon: in_range("rollout_max_horizon", self.rollout_max_horizon, 1, 1 << 20)?,
                max_steps: in_range("rollout_max_steps", self.rollout_max_steps, 1, 1 << 24)?,
                queue: in_range("rollout_queue", self.rollout_queue, 1, 1024)?,
            },
            reload_every_s: self.reload_every_s,
            viz,
            cmd_vel_stamped: self.cmd_vel_stamped,
            compressed_images: match self.image_transport.as_str() {
                "raw" => false,
                "compressed" => true,
                other => {
                    return Err(NodeError::Setup(format!(
                        "parameter image_transport must be \"raw\" or \"compressed\", got {other:?}"
                    )));
                }
            },
            robots,
            weights_every_s: self.weights_every_s,
            weights_source: match self.weights_source.as_str() {
                "topic" => WeightsSource::Topic,
                "checkpoint" => WeightsSource::Checkpoint,
                other => {
                    return Err(NodeError::Setup(format!(
                        "parameter weights_source must be \"topic\" or \"checkpoint\", got {other:?}"
                    )));
                }
            },
        })
    }
}

/// Parameters of `sim_node`.
#[derive(RosParams, Debug, Clone, PartialEq)]
pub struct SimParams {
    /// Configuration file (TOML, sections [sim] and [exploration] are used); empty: defaults
    pub config_file: String,
    /// Seed of the first world (episode k uses seed + k)
    pub seed: i64,
    /// Who drives: "explore" (the built-in exploration policy; its commands are published on cmd_vel) or "cmd_vel" (the newest command received; a stop when it is older than command_timeout_s)
    pub drive: String,
    /// A received command older than this is replaced by a stop [s]
    pub command_timeout_s: f64,
    /// Sim seconds per wall second; 0: as fast as possible
    pub realtime_factor: f64,
    /// Control steps before the node exits; 0: run until shut down [steps]
    pub steps: i64,
    /// Control steps per episode before the world is reset; 0: one episode [steps]
    pub episode_steps: i64,
    /// Publish the sim clock on /clock (for use_sim_time in the other nodes)
    pub publish_clock: bool,
    /// frame_id of the camera image and camera_info
    pub camera_frame_id: String,
    /// How messages are stamped: "sim" (sim time from 0, the time /clock publishes) or "system" (the system clock at each step, as a real robot's drivers stamp: for several simulated robots feeding one trainer, which cannot follow several /clock)
    pub stamps: String,
}

/// What sim_node drives with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drive {
    /// The exploration policy, publishing its commands.
    Explore,
    /// Received commands.
    CmdVel,
}

impl SimParams {
    /// Defaults taken from `file`.
    pub fn from_file(config_file: &str, _file: &FileConfig) -> Self {
        Self {
            config_file: config_file.to_owned(),
            seed: 0,
            drive: "explore".to_owned(),
            command_timeout_s: 0.5,
            realtime_factor: 1.0,
            steps: 0,
            episode_steps: 0,
            publish_clock: true,
            camera_frame_id: "camera".to_owned(),
            stamps: "sim".to_owned(),
        }
    }

    /// Whether messages carry the system clock's time (`stamps:=system`) rather than sim time.
    pub fn system_stamps(&self) -> Result<bool, NodeError> {
        match self.stamps.as_str() {
            "sim" => Ok(false),
            "system" => Ok(true),
            other => Err(NodeError::Setup(format!(
                "stamps must be \"sim\" or \"system\", got {other:?}"
            ))),
        }
    }

    /// How the robot is driven (and a check of the durations).
    pub fn drive(&self) -> Result<Drive, NodeError> {
        if !self.command_timeout_s.is_finite() || self.command_timeout_s < 0.0 {
            return Err(NodeError::Setup(format!(
                "command_timeout_s must be a finite number ≥ 0, got {}",
                self.command_timeout_s
            )));
        }
        match self.drive.as_str() {
            "explore" => Ok(Drive::Explore),
            "cmd_vel" => Ok(Drive::CmdVel),
            other => Err(NodeError::Setup(format!(
                "drive must be \"explore\" or \"cmd_vel\", got {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parameter as `--ros-args -p` may set it: usually near the default, sometimes anything.
    #[derive(Debug, Clone, Copy, bolero::TypeGenerator)]
    enum Int {
        Default,
        Small(i8),
        Any(i64),
    }

    #[derive(Debug, Clone, Copy, bolero::TypeGenerator)]
    enum Real {
        Default,
        Small(i8),
        Any(f64),
    }

    fn int(value: Int, default: i64) -> i64 {
        match value {
            Int::Default => default,
            Int::Small(v) => default + i64::from(v),
            Int::Any(v) => v,
        }
    }

    fn real(value: Real, default: f64) -> f64 {
        match value {
            Real::Default => default,
            Real::Small(v) => default * f64::from(v) / 8.0,
            Real::Any(v) => v,
        }
    }

    #[test]
    fn fuzz_learner_parameters_are_applied_within_their_bounds_or_refused_by_name() {
        let file = FileConfig::default();
        let defaults = LearnerParams::from_file("", &file);
        bolero::check!()
            .with_iterations(5_000)
            .with_type::<([Int; 16], [Real; 4])>()
            .for_each(|(ints, reals)| {
                let d = &defaults;
                let params = LearnerParams {
                    image_width: int(ints[0], d.image_width),
                    image_height: int(ints[1], d.image_height),
                    seed: int(ints[2], d.seed),
                    checkpoint_every: int(ints[3], d.checkpoint_every),
                    min_replay: int(ints[4], d.min_replay),
                    publish_every: int(ints[5], d.publish_every),
                    health_every: int(ints[6], d.health_every),
                    max_train_steps: int(ints[7], d.max_train_steps),
                    trainer_threads: int(ints[8], d.trainer_threads),
                    trainer_nice: int(ints[9], d.trainer_nice),
                    encoder_threads: int(ints[10], d.encoder_threads),
                    rollout_frames: int(ints[11], d.rollout_frames),
                    rollout_max_candidates: int(ints[12], d.rollout_max_candidates),
                    rollout_max_horizon: int(ints[13], d.rollout_max_horizon),
                    rollout_max_steps: int(ints[14], d.rollout_max_steps),
                    rollout_queue: int(ints[15], d.rollout_queue),
                    proprio_tolerance_s: real(reals[0], d.proprio_tolerance_s),
                    action_timeout_s: real(reals[1], d.action_timeout_s),
                    episode_gap_s: real(reals[2], d.episode_gap_s),
                    reload_every_s: real(reals[3], d.reload_every_s),
                    ..defaults.clone()
                };
                match params.apply(&file) {
                    Ok(setup) => {
                        // What was accepted can be started: pools of a sane size, finite
                        // periods, rollout limits of at least one.
                        let max = crate::components::trainer::MAX_THREADS;
                        assert!(setup.trainer_node.threads <= max, "{params:?}");
                        assert!((1..=max).contains(&setup.encoder.threads), "{params:?}");
                        assert!(setup.reload_every_s.is_finite());
                        assert!(setup.rollouts.queue >= 1 && setup.rollouts.max_steps >= 1);
                    }
                    Err(error) => assert!(!error.to_string().is_empty()),
                }
            });
    }
}
