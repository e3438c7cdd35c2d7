//! The planner's goal: the goal image, embedded with the proprio [`GoalProprio`] names, once per
//! encoder version where it can be.

use std::fmt;

use autodidact_learn::inference::DynamicsSnapshot;
use autodidact_learn::plan::Goal as Target;
use autodidact_learn::{EncoderSnapshot, LearnError};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::components::collector::Frame;

/// Which proprio the goal image is embedded with. The embedding fuses the image with the
/// proprio (wheel and body speeds), so a goal embedded at rest lies nearer a prediction that
/// ends slow than one that ends facing the goal (docs/eval.md, "Which candidate the model would
/// choose").
///
/// In a configuration file: `goal_proprio = "rest"`, `"current"` or `"predicted"`. The older
/// spelling `goal_with_current_proprio = true` (or `false`) is read as `"current"` (or
/// `"rest"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GoalProprio {
    /// The proprio recorded with the goal image (the robot at rest there).
    #[default]
    Rest,
    /// The robot's current proprio, at every frame.
    Current,
    /// At every predicted step, the proprio the model predicts there (its proprio head): the
    /// distance is the image's alone. Needs dynamics that carry the proprio head (a model
    /// whose forward objective trains it, from the trainer, a checkpoint or
    /// `autodidact/weights`; weights sent by a node of a version that packed no proprio head
    /// carry none): without it the goal is embedded at rest, and the frames are counted
    /// ([`PlannerStats::goal_at_rest_without_proprio_head`](super::PlannerStats)).
    Predicted,
}

impl<'de> Deserialize<'de> for GoalProprio {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Spelling;
        impl Visitor<'_> for Spelling {
            type Value = GoalProprio;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#""rest", "current" or "predicted" (or a boolean: true is "current")"#)
            }

            fn visit_bool<E: de::Error>(self, current: bool) -> Result<GoalProprio, E> {
                Ok(if current {
                    GoalProprio::Current
                } else {
                    GoalProprio::Rest
                })
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<GoalProprio, E> {
                match name {
                    "rest" => Ok(GoalProprio::Rest),
                    "current" => Ok(GoalProprio::Current),
                    "predicted" => Ok(GoalProprio::Predicted),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
        }
        deserializer.deserialize_any(Spelling)
    }
}

/// The goal given to the planner, with what was made of it for one encoder version.
pub(super) struct GoalImage {
    pub(super) frame: Frame,
    /// Embedding at rest, with the encoder version it came from.
    at_rest: Option<(u64, Vec<f32>)>,
    /// The image branch's features, with the encoder version they came from.
    features: Option<(u64, Vec<f32>)>,
}

/// What the planner steers towards for one frame.
pub(super) struct Embedded {
    /// The goal's embedding: at rest, or at the frame's proprio under [`GoalProprio::Current`].
    pub(super) embedding: Vec<f32>,
    /// The goal's embedding at rest, the memory's place for it; `None` under
    /// [`GoalProprio::Current`], whose embedding is no place.
    pub(super) place: Option<Vec<f32>>,
    /// The image's features, to be fused with the predicted proprio
    /// ([`GoalProprio::Predicted`] with dynamics that carry the proprio head).
    pub(super) features: Option<Vec<f32>>,
    /// Embeddings computed for this frame (for [`super::PlannerStats::goal_embeddings`]).
    pub(super) computed: u64,
    /// [`GoalProprio::Predicted`] fell back to the goal at rest: the dynamics carry no head.
    pub(super) without_head: bool,
}

impl Embedded {
    /// Where the MPC steers when it drives to the goal itself.
    pub(super) fn target<'a>(&'a self, encoder: &'a EncoderSnapshot) -> Target<'a> {
        match &self.features {
            Some(image_features) => Target::ImageAtPredictedProprio {
                encoder,
                image_features,
            },
            None => Target::Embedding(&self.embedding),
        }
    }
}

impl GoalImage {
    pub(super) fn new(frame: Frame) -> Self {
        Self {
            frame,
            at_rest: None,
            features: None,
        }
    }

    /// The goal for `frame` under `mode`, with `encoder`'s version (what is kept per version
    /// is computed again only when the version changes).
    pub(super) fn embed(
        &mut self,
        mode: GoalProprio,
        frame: &Frame,
        encoder: &EncoderSnapshot,
        dynamics: &DynamicsSnapshot,
    ) -> Result<Embedded, LearnError> {
        let mut computed = 0;
        if mode == GoalProprio::Current {
            return Ok(Embedded {
                embedding: encoder.embed(&self.frame.image, &frame.proprio)?,
                place: None,
                features: None,
                computed: 1,
                without_head: false,
            });
        }
        let at_rest = match &self.at_rest {
            Some((version, embedding)) if *version == encoder.version => embedding.clone(),
            _ => {
                computed += 1;
                let embedding = encoder.embed(&self.frame.image, &self.frame.proprio)?;
                self.at_rest = Some((encoder.version, embedding.clone()));
                embedding
            }
        };
        let predicted = mode == GoalProprio::Predicted;
        let features = match &self.features {
            _ if !predicted || !dynamics.predicts_proprio() => None,
            Some((version, features)) if *version == encoder.version => Some(features.clone()),
            _ => {
                computed += 1;
                let features = encoder.image_features(&self.frame.image)?;
                self.features = Some((encoder.version, features.clone()));
                Some(features)
            }
        };
        Ok(Embedded {
            without_head: predicted && features.is_none(),
            place: Some(at_rest.clone()),
            embedding: at_rest,
            features,
            computed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        #[serde(default, alias = "goal_with_current_proprio")]
        goal_proprio: GoalProprio,
    }

    fn read(text: &str) -> Result<GoalProprio, toml::de::Error> {
        toml::from_str::<Settings>(text).map(|s| s.goal_proprio)
    }

    #[test]
    fn goal_proprio_reads_its_names_and_the_older_boolean_spelling() {
        assert_eq!(read("").expect("default"), GoalProprio::Rest);
        for (text, expected) in [
            ("goal_proprio = \"rest\"", GoalProprio::Rest),
            ("goal_proprio = \"current\"", GoalProprio::Current),
            ("goal_proprio = \"predicted\"", GoalProprio::Predicted),
            ("goal_with_current_proprio = true", GoalProprio::Current),
            ("goal_with_current_proprio = false", GoalProprio::Rest),
        ] {
            assert_eq!(read(text).expect(text), expected, "{text}");
        }
        let error = read("goal_proprio = \"moving\"").expect_err("unknown name");
        assert!(error.to_string().contains("\"predicted\""), "{error}");
    }
}
