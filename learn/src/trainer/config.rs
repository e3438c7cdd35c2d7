//! What shapes training: the objectives with their weights, the optimiser's numbers, the model.

use serde::{Deserialize, Serialize};

use crate::LearnError;
use crate::augment::AugmentConfig;
use crate::device::BackendChoice;
use crate::model::WorldModelConfig;
use crate::replay::{ACTION_DIM, ReplayConfig};

/// InfoNCE between two augmented views, plus temporal positives, against the EMA target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContrastiveConfig {
    /// Use this objective.
    pub enabled: bool,
    /// Weight in the total loss.
    pub weight: f32,
    /// Softmax temperature.
    pub temperature: f32,
    /// Weight of the temporal-positive term (a frame within `temporal_window` steps).
    pub temporal_weight: f32,
    /// Largest step distance of a temporal positive.
    pub temporal_window: usize,
}

impl Default for ContrastiveConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            weight: 1.0,
            temperature: 0.1,
            temporal_weight: 0.5,
            temporal_window: 30,
        }
    }
}

/// Action-conditioned latent dynamics rolled out over `horizon` steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardConfig {
    /// Use this objective.
    pub enabled: bool,
    /// Weight of the latent prediction loss.
    pub weight: f32,
    /// Steps rolled out (`H`). Planners roll the dynamics out much further than this (the
    /// reference planner 24 steps), so it is not small: measured on the easy planning goals of
    /// `autodidact eval`, models trained with `H = 3` reached 37–43 %, with `H = 6` 47 %, with
    /// `H = 8` 67 % and with `H = 12` 70 % of the goals (a train step costs about 1.2× at 8 what it does at 3).
    pub horizon: usize,
    /// Weight of the next-proprio head.
    pub proprio_weight: f32,
    /// Weight of the proprio the dynamics carry (`[trainer.model] dynamics_proprio`): its
    /// read-out from the start state and each step of the rollout, against the proprio felt
    /// there (mean squared error over the entries).
    pub carried_proprio_weight: f32,
    /// The rollout is also started from the EMA target's state of frame `t` (a constant: this
    /// term trains the dynamics only), with this weight relative to the rollout from the online
    /// state; `forward` reports their weighted mean. Published embeddings come from the EMA
    /// encoder, so this is the start a rollout at inference time has.
    pub target_start_weight: f32,
    /// Share of the sampled sequences replayed as "the robot stood still here": the first
    /// frame held for the whole horizon, the proprio at rest (all zeros: every default proprio
    /// entry is a rate — wheel and odometry speeds, IMU yaw rate and planar specific force)
    /// and the commands zero. A static world looks the same to a robot that stands still, but
    /// an exploration that seldom stops never shows the dynamics so; a planner holding a goal
    /// asks them exactly that. `0` (the default) samples the drive as it was.
    pub rest_share: f32,
    /// Each step `k` of the rollout weighs by how much the target's embedding moved in `k`
    /// steps to this power (the copy-last error `c_k = |n(z_t+k) - n(z_t)|²`, batch mean, a
    /// constant): weight `c̄^p / (F · c_k^p)`, so that steps that moved alike keep the plain
    /// mean. `0` is the plain mean over steps, ruled by the far steps, whose errors are largest;
    /// `1` the mean of error ÷ copy-last error, the ratio `autodidact eval` reports per step. In
    /// `[0, 1]`; `0` by default: measured with the ten-minute budget on four seeds (docs/eval.md,
    /// "Prediction weighed per step"), `1` predicts better at every step (k = 1: 0.36–0.47 of
    /// copy-last against 0.53–0.60) with the same probes, and one model in four reaches fewer
    /// easy goals.
    pub copy_last_power: f32,
    /// Weigh by [`copy_last_power`](Self::copy_last_power) only the rollout from the target's
    /// start, which trains the dynamics alone; the rollout from the online state, whose
    /// gradient also shapes the encoder, keeps the plain mean. Needs `target_start_weight > 0`
    /// and `copy_last_power > 0` (without weights it would change nothing).
    /// Measured with the ten-minute budget (docs/eval.md, "A wider dynamics predicts one step
    /// ahead"): with `[trainer.model] dynamics_hidden = 512` and `copy_last_power = 1`, one-step
    /// prediction 0.34–0.45 of copy-last (0.53–0.60) on four seeds, easy goals 299 of 320 (305).
    pub copy_last_dynamics_only: bool,
    /// Start the rollout from the target (the target-start term) and measure the steps'
    /// copy-last errors from frame `t` as the camera saw it, instead of from augmented view A.
    /// The future frames the rollout is compared with are never augmented, and neither is the
    /// frame a rollout starts from at inference: from view A the first step has to undo a
    /// random shift of up to `augment.max_shift_px` as well as predict the motion. The target
    /// encodes the plain frame in view A's place, or beside it where the masked objective needs
    /// view A. Needs `target_start_weight > 0` or `copy_last_power > 0` (it would change
    /// nothing). Measured with the ten-minute budget (docs/eval.md, "Where the dynamics'
    /// rollout starts"): with 512 dynamics units weighed on the dynamics, one step at 0.42 and
    /// 0.304 of copy-last on two seeds (0.45 and 0.34); with `target_start_weight = 3` as
    /// well, 0.27–0.39 on four seeds (0.34–0.45), and with three layers of 256 ≤ 0.3 at every
    /// k on three seeds of four, for fewer easy and far goals. Off by default.
    pub target_start_plain: bool,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            weight: 10.0,
            horizon: 8,
            proprio_weight: 0.1,
            carried_proprio_weight: 1.0,
            target_start_weight: 1.0,
            rest_share: 0.0,
            copy_last_power: 0.0,
            copy_last_dynamics_only: false,
            target_start_plain: false,
        }
    }
}

/// Predict the target embedding of the full image from an image with masked patches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaskedConfig {
    /// Use this objective (needs `model.masked_head`).
    pub enabled: bool,
    /// Weight in the total loss.
    pub weight: f32,
    /// Side of a square patch, pixels.
    pub patch_px: usize,
    /// Share of patches masked.
    pub ratio: f32,
}

impl Default for MaskedConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 0.5,
            patch_px: 8,
            ratio: 0.5,
        }
    }
}

/// Decode the image from the state embedding (MSE).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconstructionConfig {
    /// Use this objective (needs `model.decoder`).
    pub enabled: bool,
    /// Weight in the total loss.
    pub weight: f32,
}

impl Default for ReconstructionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            weight: 20.0,
        }
    }
}

/// Inverse dynamics (as PLDM trains): the command at `t` predicted from the image-only
/// embeddings of frames `t` (online) and `t+1` (EMA target). The image, not the proprio, must
/// carry the motion: the wheel velocities alone would give the command away.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InverseConfig {
    /// Use this objective (needs `model.inverse_head` and the forward objective, whose next
    /// frame it uses).
    pub enabled: bool,
    /// Weight of the mean squared error of the scaled command.
    pub weight: f32,
}

impl Default for InverseConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 1.0,
        }
    }
}

/// Relative pose from wheel odometry: where frame `t + δ` (`δ` drawn from `1..=window`; or a
/// revisit of frame `t`'s place, `revisit_share`) lies seen from frame `t`, predicted from the
/// image-only embeddings of `t` (online) and `t + δ` (EMA target). The two images are encoded
/// apart, so to tell how the robot moved between them each embedding has to say where the
/// robot stands among what it sees: places, not only looks. Every pair is also trained the
/// other way round, the first frame seen from the second (the inverse pose): a robot that
/// mostly drives forward sees later frames ahead, and a head trained on one order answered
/// "ahead" whichever way round it was asked (docs/eval.md). Pairs without odometry at both
/// frames, or further apart than `max_m`, do not count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OdometryConfig {
    /// Use this objective (needs `model.odometry_head`). On by default: measured on four
    /// seeds (docs/eval.md), the planner turned by its head reaches 247 of 320 easy goals
    /// against 202 for the same seeds' models without it, and the pose probes hold.
    pub enabled: bool,
    /// Weight of the loss: the squared error of `[x / metres_scale, y / metres_scale]` plus
    /// `2 (1 − cos Δyaw)` of the turn (its square for small errors, and the same for a turn
    /// and that turn ± 2π), averaged over the three and over both orders of each pair.
    /// Default 3: a head weighted 10 turned the planner to fewer goals (docs/eval.md).
    pub weight: f32,
    /// Metres that count as much as a radian of heading.
    pub metres_scale: f32,
    /// Most steps between the two frames (sequences are at least this long plus one).
    /// Measured (docs/eval.md): up to 20 steps (1 s at 20 frames/s) the head learns visual
    /// odometry that holds in worlds it never saw; up to 100 it learns next to nothing in 900
    /// steps.
    pub window: usize,
    /// Pairs whose odometry puts them further apart than this (metres) are left out: a jump
    /// of the odometry, not a drive.
    pub max_m: f32,
    /// The head is served (in snapshots, to the planner, in packed weights) only once the
    /// objective has trained on this many pairs (sampled pairs, repeats included; about 310
    /// steps at the default batch of 64 with odometry in every sequence): data without
    /// odometry never train it, and a head that has not learned would turn the planner by
    /// chance.
    pub serve_after_pairs: u64,
    /// Share of the pairs whose second frame is a revisit rather than a frame of the same
    /// drive: a frame of the same robot and episode, more than `window` and at most
    /// `revisit_within_steps` steps away, whose odometry puts it within `revisit_max_m` and
    /// `revisit_max_deg` of the first (drawn among up to 64 frames; where none is so near, the
    /// pair is one of the same drive). Frames of one drive lie ahead of each other, rarely
    /// beside: a head taught only on them reads no sideways offset (docs/eval.md, "Near
    /// goals"); a place passed again lies beside as often as ahead. `0` turns revisits off
    /// (the default). Measured (docs/eval.md, "Revisits"): at 0.5 the head's reading of what
    /// lies aside of a nearby view goes from a rank correlation of 0.17 to 0.62 at home, but
    /// near a goal it reads a tenth of the offset, and the pose probes move by a few hundredths
    /// either way by seed.
    pub revisit_share: f32,
    /// Most steps between a frame and its revisit: the odometry drifts with distance driven,
    /// and a revisit's relative pose is only as good as the odometry between the two.
    pub revisit_within_steps: usize,
    /// Farthest a revisit lies from the first frame by odometry, metres (at most `max_m`).
    pub revisit_max_m: f32,
    /// Most the heading of a revisit differs from the first frame's, degrees: the two frames
    /// must see much of the same.
    pub revisit_max_deg: f32,
    /// Nearest a revisit lies to the first frame's side by odometry, metres (at most
    /// `revisit_max_m`): 0 (the default) takes any revisit. Most places passed again lie a few
    /// centimetres aside, and a head taught on them reads a side offset at a tenth of its size
    /// (docs/eval.md, "Revisits"). Measured at 0.1 in the ten-minute budget (docs/eval.md,
    /// "Revisits drawn aside"): the head reads 0.14–0.19 m per metre aside instead of
    /// 0.05–0.14 and ranks side offsets better at home, and the far goals do not gain.
    pub revisit_min_aside_m: f32,
}

impl Default for OdometryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            weight: 3.0,
            metres_scale: 0.5,
            window: 20,
            max_m: 3.0,
            serve_after_pairs: 20_000,
            revisit_share: 0.0,
            revisit_within_steps: 600,
            revisit_max_m: 0.5,
            revisit_max_deg: 45.0,
            revisit_min_aside_m: 0.0,
        }
    }
}

/// Keeps the state embedding spread out (VICReg's variance and covariance terms, Bardes et al.
/// 2022) so that it uses its dimensions: a hinge pulls every dimension's batch std up to
/// `target_std`, and a penalty on off-diagonal covariance decorrelates the dimensions. The
/// contrastive terms only see a normalised projection, the forward term normalised states:
/// nothing else stops the raw state from living in a few directions (low effective rank).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpreadConfig {
    /// Use this regulariser.
    pub enabled: bool,
    /// Weight of the std hinge `mean(relu(target_std - std_d))`.
    pub variance_weight: f32,
    /// Weight of `sum_{i≠j} cov_ij² / D`.
    pub covariance_weight: f32,
    /// Per-dimension batch std the hinge asks for.
    pub target_std: f32,
}

impl Default for SpreadConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            variance_weight: 1.0,
            covariance_weight: 0.04,
            target_std: 1.0,
        }
    }
}

/// SIGReg (LeJEPA, Balestriero & LeCun 2025; LeWM trains with it): the state embedding's
/// distribution pushed towards an isotropic standard normal. Each step projects the batch on
/// `directions` random unit vectors and, on each, measures the Epps–Pulley statistic: the
/// batch size × the squared distance between the projections' empirical characteristic function
/// and the standard normal's, weighted by `exp(-t²/2)` and integrated over `t ∈ [-t_max, t_max]`
/// by the trapezoid rule on `knots` points of its positive half. An alternative to `spread`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigRegConfig {
    /// Use this regulariser.
    pub enabled: bool,
    /// Weight of the mean statistic over directions.
    pub weight: f32,
    /// Random directions per step.
    pub directions: usize,
    /// Quadrature points on `[0, t_max]` (at least 2).
    pub knots: usize,
    /// End of the integration interval.
    pub t_max: f32,
}

impl Default for SigRegConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 1.0,
            directions: 64,
            knots: 17,
            t_max: 3.0,
        }
    }
}

/// Which objectives train the model, and how much each counts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectivesConfig {
    /// Contrastive (InfoNCE + temporal positives).
    pub contrastive: ContrastiveConfig,
    /// Forward prediction.
    pub forward: ForwardConfig,
    /// Masked-patch prediction.
    pub masked: MaskedConfig,
    /// Reconstruction.
    pub reconstruction: ReconstructionConfig,
    /// Variance/covariance regulariser of the state embedding.
    pub spread: SpreadConfig,
    /// Inverse dynamics.
    pub inverse: InverseConfig,
    /// Isotropic-Gaussian regulariser of the state embedding.
    pub sigreg: SigRegConfig,
    /// Relative pose between two frames, from wheel odometry.
    pub odometry: OdometryConfig,
}

/// Everything that shapes training. The model's shapes are part of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerConfig {
    /// Network shapes.
    pub model: WorldModelConfig,
    /// Objectives and weights.
    #[serde(default)]
    pub objectives: ObjectivesConfig,
    /// Augmentations of the contrastive views.
    #[serde(default)]
    pub augment: AugmentConfig,
    /// Replay buffer.
    #[serde(default)]
    pub replay: ReplayConfig,
    /// Sequences per batch.
    #[serde(default = "defaults::batch_size")]
    pub batch_size: usize,
    /// Adam learning rate.
    #[serde(default = "defaults::learning_rate")]
    pub learning_rate: f64,
    /// How the learning rate falls over a run of known length (`None`: it stays at
    /// `learning_rate`).
    #[serde(default)]
    pub learning_rate_decay: Option<LearningRateDecay>,
    /// EMA momentum of the target network (`target = m·target + (1-m)·online`).
    #[serde(default = "defaults::ema_momentum")]
    pub ema_momentum: f32,
    /// Per-parameter gradient norm clip (`None`: no clipping).
    #[serde(default = "defaults::grad_clip")]
    pub grad_clip_norm: Option<f32>,
    /// Divide actions by this before they reach the model (`[m/s, rad/s]`).
    #[serde(default = "defaults::action_scale")]
    pub action_scale: [f32; ACTION_DIM],
    /// Seed of initialisation, sampling and augmentation.
    #[serde(default)]
    pub seed: u64,
    /// Where training runs: `auto` (a hardware GPU if wgpu finds one, else flex), `flex` or
    /// `wgpu`. Decided on the machine that runs it, also when a checkpoint is resumed
    /// elsewhere ([`crate::Trainer::resume_on`]).
    #[serde(default)]
    pub backend: BackendChoice,
    /// Where published snapshots encode frames and roll out: `auto` (flex where there is no
    /// GPU; with one, whichever encodes one frame faster, measured at start), `flex` or `wgpu`.
    #[serde(default)]
    pub inference_backend: BackendChoice,
    /// Publish an encoder snapshot every this many steps.
    #[serde(default = "defaults::publish_every")]
    pub publish_every: u64,
    /// Publish (and export) the EMA target encoder rather than the online one: it moves
    /// smoothly, and it is the space the dynamics learn to predict, so rollouts and published
    /// embeddings agree.
    #[serde(default = "defaults::publish_ema_encoder")]
    pub publish_ema_encoder: bool,
    /// Images per forward pass of the EMA target encoder on GPU backends (0: all at once). The
    /// target encodes several frames per sequence (views, positive, future); in slices its
    /// intermediate feature maps stay small. The result is the same. (On the CPU the target's
    /// direct convolutions slice the batch themselves, see `crate::cpu::direct`.)
    #[serde(default = "defaults::target_chunk")]
    pub target_chunk: usize,
}

/// A learning rate that falls along half a cosine from `learning_rate` at step 0 to
/// `learning_rate × final_fraction` at step `steps`, and stays there: for training of a known
/// length (`autodidact eval --train-steps`, a bag), where the last steps refine what the first
/// found. A robot that learns for as long as it runs keeps learning at the final rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearningRateDecay {
    /// Steps over which the rate falls (at least 1).
    pub steps: u64,
    /// The final rate as a fraction of `learning_rate`, in (0, 1].
    pub final_fraction: f64,
}

impl LearningRateDecay {
    /// The factor on the learning rate at optimiser step `step` (0 for the first).
    pub fn factor(&self, step: u64) -> f64 {
        let progress = (step as f64 / self.steps as f64).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.final_fraction + (1.0 - self.final_fraction) * cosine
    }
}

mod defaults {
    pub fn batch_size() -> usize {
        64
    }
    pub fn learning_rate() -> f64 {
        1e-3
    }
    pub fn ema_momentum() -> f32 {
        0.99
    }
    pub fn grad_clip() -> Option<f32> {
        Some(5.0)
    }
    pub fn action_scale() -> [f32; 2] {
        [0.5, 2.0]
    }
    pub fn publish_every() -> u64 {
        10
    }
    pub fn publish_ema_encoder() -> bool {
        true
    }
    pub fn target_chunk() -> usize {
        64
    }
}

impl TrainerConfig {
    /// Defaults for images of `width × height` and `proprio_dim` proprio features.
    pub fn for_inputs(width: usize, height: usize, proprio_dim: usize) -> Self {
        Self {
            model: WorldModelConfig::for_inputs(width, height, proprio_dim),
            objectives: ObjectivesConfig::default(),
            augment: AugmentConfig::default(),
            replay: ReplayConfig::default(),
            batch_size: defaults::batch_size(),
            learning_rate: defaults::learning_rate(),
            learning_rate_decay: None,
            ema_momentum: defaults::ema_momentum(),
            grad_clip_norm: defaults::grad_clip(),
            action_scale: defaults::action_scale(),
            seed: 0,
            backend: BackendChoice::default(),
            inference_backend: BackendChoice::default(),
            publish_every: defaults::publish_every(),
            publish_ema_encoder: defaults::publish_ema_encoder(),
            target_chunk: defaults::target_chunk(),
        }
    }

    /// The learning rate at optimiser step `step` (0 for the first), after
    /// [`learning_rate_decay`](Self::learning_rate_decay).
    pub fn learning_rate_at(&self, step: u64) -> f64 {
        self.learning_rate
            * self
                .learning_rate_decay
                .map_or(1.0, |decay| decay.factor(step))
    }

    /// Steps of the forward rollout (0 when the forward objective is off).
    pub fn forward_horizon(&self) -> usize {
        if self.objectives.forward.enabled {
            self.objectives.forward.horizon
        } else {
            0
        }
    }

    /// Whether batches carry frame `t` unaugmented for the target's rollout start
    /// ([`ForwardConfig::target_start_plain`] with a rollout to start). Validation refuses the
    /// switch where neither that rollout nor the copy-last weights would use it.
    pub fn plain_start_on(&self) -> bool {
        self.objectives.forward.target_start_plain && self.forward_horizon() > 0
    }

    /// Transitions per sampled sequence: enough for the rollout, the farthest temporal
    /// positive and the farthest odometry pair.
    pub fn sequence_length(&self) -> usize {
        let temporal = if self.objectives.contrastive.enabled {
            self.objectives.contrastive.temporal_window
        } else {
            0
        };
        let odometry = if self.objectives.odometry.enabled {
            self.objectives.odometry.window
        } else {
            0
        };
        self.forward_horizon().max(temporal).max(odometry) + 1
    }

    /// Metres to one unit of the relative-pose head's output, for a model that serves the head
    /// (built, and trained by the odometry objective); `None` otherwise. What the trainer's
    /// snapshots carry and what packed weights hold both follow from it.
    pub fn served_relative_pose_scale(&self) -> Option<f32> {
        let odometry = &self.objectives.odometry;
        (self.model.odometry_head && odometry.enabled).then_some(odometry.metres_scale)
    }

    /// Whether the model serves its proprio head (a model with proprio, whose forward objective
    /// trains the head: `forward.enabled` and `forward.proprio_weight > 0`). What the trainer's
    /// snapshots carry and what packed weights hold both follow from it.
    pub fn serves_proprio_head(&self) -> bool {
        let forward = &self.objectives.forward;
        self.model.encoder.proprio_dim > 0 && forward.enabled && forward.proprio_weight > 0.0
    }

    /// Checks that the objectives, model and numbers fit together.
    pub fn validate(&self) -> Result<(), LearnError> {
        self.model.validate()?;
        let o = &self.objectives;
        let invalid = |m: &str| Err(LearnError::InvalidConfig(m.to_owned()));
        if !(o.contrastive.enabled
            || o.forward.enabled
            || o.masked.enabled
            || o.reconstruction.enabled)
        {
            return invalid("enable at least one objective");
        }
        if o.masked.enabled && !self.model.masked_head {
            return invalid("objectives.masked needs model.masked_head = true");
        }
        if o.reconstruction.enabled && !self.model.decoder {
            return invalid("objectives.reconstruction needs model.decoder = true");
        }
        if o.inverse.enabled && !(self.model.inverse_head && o.forward.enabled) {
            return invalid(
                "objectives.inverse needs model.inverse_head = true and objectives.forward (its next frame)",
            );
        }
        if o.sigreg.enabled
            && !(o.sigreg.weight.is_finite()
                && o.sigreg.weight >= 0.0
                && o.sigreg.directions >= 1
                && o.sigreg.knots >= 2
                && o.sigreg.t_max.is_finite()
                && o.sigreg.t_max > 0.0)
        {
            return invalid(
                "objectives.sigreg: weight >= 0, directions >= 1, knots >= 2 and t_max > 0",
            );
        }
        if o.odometry.enabled && !self.model.odometry_head {
            return invalid("objectives.odometry needs model.odometry_head = true");
        }
        if o.odometry.enabled
            && !(o.odometry.weight.is_finite()
                && o.odometry.weight >= 0.0
                && o.odometry.metres_scale.is_finite()
                && o.odometry.metres_scale > 0.0
                && o.odometry.window >= 1
                && o.odometry.max_m.is_finite()
                && o.odometry.max_m > 0.0)
        {
            return invalid(
                "objectives.odometry: weight >= 0, metres_scale > 0, window >= 1 and max_m > 0",
            );
        }
        if o.odometry.enabled
            && o.odometry.revisit_share != 0.0
            && !((0.0..=1.0).contains(&o.odometry.revisit_share)
                && o.odometry.revisit_within_steps > o.odometry.window
                && o.odometry.revisit_max_m > 0.0
                && o.odometry.revisit_max_m <= o.odometry.max_m
                && (0.0..=180.0).contains(&o.odometry.revisit_max_deg)
                && (0.0..=o.odometry.revisit_max_m).contains(&o.odometry.revisit_min_aside_m))
        {
            return invalid(
                "objectives.odometry: revisit_share in [0, 1], revisit_within_steps > window, \
                 revisit_max_m in (0, max_m], revisit_max_deg in [0, 180] and \
                 revisit_min_aside_m in [0, revisit_max_m]",
            );
        }
        if o.inverse.enabled && !(o.inverse.weight.is_finite() && o.inverse.weight >= 0.0) {
            return invalid("objectives.inverse.weight must be finite and >= 0");
        }
        if o.forward.enabled
            && !(o.forward.target_start_weight.is_finite() && o.forward.target_start_weight >= 0.0)
        {
            return invalid("objectives.forward.target_start_weight must be >= 0");
        }
        if o.forward.enabled
            && !(o.forward.carried_proprio_weight.is_finite()
                && o.forward.carried_proprio_weight >= 0.0)
        {
            return invalid("objectives.forward.carried_proprio_weight must be finite and >= 0");
        }
        if !(0.0..=1.0).contains(&o.forward.rest_share) {
            return invalid("objectives.forward.rest_share must be in [0, 1]");
        }
        if !(0.0..=1.0).contains(&o.forward.copy_last_power) {
            return invalid("objectives.forward.copy_last_power must be in [0, 1]");
        }
        if o.forward.copy_last_dynamics_only
            && (o.forward.target_start_weight <= 0.0 || o.forward.copy_last_power <= 0.0)
        {
            return invalid(
                "objectives.forward.copy_last_dynamics_only needs target_start_weight > 0 and \
                 copy_last_power > 0",
            );
        }
        if o.forward.target_start_plain
            && (o.forward.target_start_weight <= 0.0 && o.forward.copy_last_power <= 0.0)
        {
            return invalid(
                "objectives.forward.target_start_plain needs target_start_weight > 0 or \
                 copy_last_power > 0",
            );
        }
        if o.forward.enabled && o.forward.horizon == 0 {
            return invalid("objectives.forward.horizon must be >= 1");
        }
        if o.contrastive.enabled
            && (!(o.contrastive.temperature.is_finite() && o.contrastive.temperature > 0.0)
                || o.contrastive.temporal_window == 0)
        {
            return invalid(
                "objectives.contrastive.temperature must be a finite number > 0 and temporal_window >= 1",
            );
        }
        if o.spread.enabled
            && !(o.spread.target_std.is_finite()
                && o.spread.target_std > 0.0
                && o.spread.variance_weight >= 0.0
                && o.spread.covariance_weight >= 0.0)
        {
            return invalid("spread: target_std must be > 0 and weights >= 0");
        }
        if self.batch_size < 2 {
            return invalid("batch_size must be >= 2 (InfoNCE needs negatives)");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return invalid("learning_rate must be a finite number > 0");
        }
        if let Some(decay) = &self.learning_rate_decay
            && (decay.steps == 0 || !(decay.final_fraction > 0.0 && decay.final_fraction <= 1.0))
        {
            return invalid("learning_rate_decay: steps must be >= 1 and final_fraction in (0, 1]");
        }
        if !(0.0..1.0).contains(&self.ema_momentum) {
            return invalid("ema_momentum must be in [0, 1)");
        }
        if self
            .action_scale
            .iter()
            .any(|s| !(s.is_finite() && *s > 0.0))
        {
            return invalid("action_scale must be finite and > 0");
        }
        if self.model.action_dim != ACTION_DIM {
            return invalid("model.action_dim must be 2 (linear_x, angular_z)");
        }
        if self.publish_every == 0 {
            return invalid("publish_every must be >= 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_falls_along_half_a_cosine_and_stays_at_its_floor() {
        let mut config = TrainerConfig::for_inputs(32, 32, 7);
        assert_eq!(config.learning_rate_at(0), config.learning_rate);
        assert_eq!(config.learning_rate_at(1_000_000), config.learning_rate);
        config.learning_rate_decay = Some(LearningRateDecay {
            steps: 100,
            final_fraction: 0.1,
        });
        let rate = |step| config.learning_rate_at(step) / config.learning_rate;
        assert!((rate(0) - 1.0).abs() < 1e-12);
        assert!((rate(50) - 0.55).abs() < 1e-12, "half way: {}", rate(50));
        assert!((rate(100) - 0.1).abs() < 1e-12);
        assert!(
            (rate(5_000) - 0.1).abs() < 1e-12,
            "after the decay it stays"
        );
        assert!((1..=100).all(|s| rate(s) < rate(s - 1)), "falls every step");
    }

    #[test]
    fn a_learning_rate_decay_without_steps_or_floor_is_refused() {
        for (steps, final_fraction) in [(0, 0.1), (10, 0.0), (10, 1.5), (10, f64::NAN)] {
            let mut config = TrainerConfig::for_inputs(32, 32, 7);
            config.learning_rate_decay = Some(LearningRateDecay {
                steps,
                final_fraction,
            });
            assert!(
                matches!(config.validate(), Err(LearnError::InvalidConfig(_))),
                "steps {steps}, final_fraction {final_fraction}"
            );
        }
    }
}
