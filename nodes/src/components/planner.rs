//! The planner node: goal-image latent MPC. It is given a goal image, and for every camera frame
//! it embeds the frame, plans with the latent dynamics towards the goal's embedding and sends
//! the first command (`cmd_vel`).
//!
//! The goal is kept as an image, not as an embedding. The encoder keeps learning, and an
//! embedding from an older weight version lives in another space, so the goal is embedded
//! again whenever the encoder's version changes.

use autodidact_learn::inference::DynamicsSnapshot;
use autodidact_learn::{EncoderSnapshot, LatentPlanner, Plan, PlannerConfig};
use serde::{Deserialize, Serialize};

use crate::NodeError;
use crate::components::collector::Frame;
use crate::msg::TwistMsg;

/// Planner node settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlannerNodeConfig {
    /// The CEM planner.
    pub planner: PlannerConfig,
    /// Embed the goal image with the robot's current proprio instead of the proprio recorded
    /// with the goal (at rest). Off by default: measured, the goal at rest makes the robot stop
    /// at the goal instead of keeping the speed it has.
    pub goal_with_current_proprio: bool,
}

/// What the planner decided for one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannerOutput {
    /// The command to send, stamped with the frame's stamp.
    pub command: TwistMsg,
    /// The plan behind it.
    pub plan: Plan,
}

/// Planner counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlannerStats {
    /// Frames planned for.
    pub plans: u64,
    /// Frames that arrived with no goal set.
    pub without_goal: u64,
    /// Times the goal was embedded (once per goal and encoder version).
    pub goal_embeddings: u64,
}

struct Goal {
    frame: Frame,
    /// Embedding with the encoder version it came from.
    embedding: Option<(u64, Vec<f32>)>,
}

/// See the module documentation.
pub struct PlannerNode {
    config: PlannerNodeConfig,
    planner: LatentPlanner,
    goal: Option<Goal>,
    stats: PlannerStats,
}

impl PlannerNode {
    /// A planner with no goal yet.
    pub fn new(config: PlannerNodeConfig) -> Result<Self, NodeError> {
        Ok(Self {
            planner: LatentPlanner::new(config.planner.clone())?,
            config,
            goal: None,
            stats: PlannerStats::default(),
        })
    }

    /// Counters.
    pub fn stats(&self) -> &PlannerStats {
        &self.stats
    }

    /// Sets the goal: the frame the camera would see there (with its proprio, normally at
    /// rest). The previous plan is forgotten.
    pub fn set_goal(&mut self, goal: Frame) {
        self.goal = Some(Goal {
            frame: goal,
            embedding: None,
        });
        self.planner.reset();
    }

    /// Drops the goal; frames then produce no command.
    pub fn clear_goal(&mut self) {
        self.goal = None;
        self.planner.reset();
    }

    /// Plans for `frame` with the newest encoder and dynamics. `None` without a goal.
    pub fn on_frame(
        &mut self,
        frame: &Frame,
        encoder: &EncoderSnapshot,
        dynamics: &DynamicsSnapshot,
    ) -> Result<Option<PlannerOutput>, NodeError> {
        let Some(goal) = &mut self.goal else {
            self.stats.without_goal += 1;
            return Ok(None);
        };
        let current = encoder.embed(&frame.image, &frame.proprio)?;
        let goal_embedding = if self.config.goal_with_current_proprio {
            self.stats.goal_embeddings += 1;
            encoder.embed(&goal.frame.image, &frame.proprio)?
        } else {
            match &goal.embedding {
                Some((version, embedding)) if *version == encoder.version => embedding.clone(),
                _ => {
                    self.stats.goal_embeddings += 1;
                    let embedding = encoder.embed(&goal.frame.image, &goal.frame.proprio)?;
                    goal.embedding = Some((encoder.version, embedding.clone()));
                    embedding
                }
            }
        };
        let plan = self.planner.plan(dynamics, &current, &goal_embedding)?;
        self.stats.plans += 1;
        Ok(Some(PlannerOutput {
            command: TwistMsg {
                stamp_ns: frame.stamp_ns,
                linear_x: plan.action[0],
                angular_z: plan.action[1],
            },
            plan,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use autodidact_learn::model::ImageEncoderConfig;
    use autodidact_learn::{Trainer, TrainerConfig};

    use super::*;

    const SIDE: usize = 32;

    fn frame(stamp_ns: u64, grey: u8) -> Frame {
        Frame {
            stamp_ns,
            episode: 0,
            image: Arc::from(vec![grey; SIDE * SIDE * 3]),
            proprio: vec![0.0; 7],
            frame_id: Arc::from("camera"),
        }
    }

    #[test]
    fn plans_only_with_a_goal_and_re_embeds_the_goal_for_each_encoder_version() {
        let mut config = TrainerConfig::for_inputs(SIDE, SIDE, 7);
        config.model.encoder.image = ImageEncoderConfig::new()
            .with_width(SIDE)
            .with_height(SIDE)
            .with_channels(vec![8, 16, 16])
            .with_feature_dim(32);
        config.model.encoder.embed_dim = 32;
        let trainer = Trainer::new(config).expect("trainer");
        let encoder = trainer.snapshot();
        let dynamics = trainer.dynamics_snapshot();
        let mut node = PlannerNode::new(PlannerNodeConfig::default()).expect("planner");

        assert!(
            node.on_frame(&frame(1, 90), &encoder, &dynamics)
                .expect("plan")
                .is_none()
        );
        assert_eq!(node.stats().without_goal, 1);

        node.set_goal(frame(0, 30));
        let output = node
            .on_frame(&frame(2, 90), &encoder, &dynamics)
            .expect("plan")
            .expect("a command");
        assert_eq!(output.command.stamp_ns, 2, "stamped with its frame");
        let max = PlannerConfig::default().max_action;
        assert!(output.command.linear_x.abs() <= max[0]);
        assert!(output.command.angular_z.abs() <= max[1]);
        assert_eq!(
            output.plan.action,
            [output.command.linear_x, output.command.angular_z]
        );
        node.on_frame(&frame(3, 90), &encoder, &dynamics)
            .expect("plan");
        assert_eq!(
            node.stats().goal_embeddings,
            1,
            "same version, same goal embedding"
        );

        let newer = EncoderSnapshot::new(
            trainer.published_encoder(),
            trainer.config().model.encoder.clone(),
            encoder.version + 1,
            0,
            encoder.device(),
        );
        node.on_frame(&frame(4, 90), &newer, &dynamics)
            .expect("plan");
        assert_eq!(
            node.stats().goal_embeddings,
            2,
            "a new version re-embeds the goal"
        );
        assert_eq!(node.stats().plans, 3);

        // A frame of the wrong size is an error, not a panic.
        let mut bad = frame(5, 90);
        bad.image = Arc::from(vec![0u8; 10]);
        assert!(node.on_frame(&bad, &encoder, &dynamics).is_err());
    }
}
