//! The configuration file: one TOML that `autodidact run --config`, `autodidact eval --config`
//! and the ROS nodes' `config_file` parameter all read. Every section is optional and every
//! field has a default; an unknown or misspelt section or field is an error that names it.
//!
//! Sections: `[sim]`, `[exploration]`, `[collector]`, `[trainer]` (the whole model and its
//! training; every model field it does not set is the standard model's for the image size, e.g.
//! with only `[trainer.replay]` or `[trainer.model] inverse_head = true`), `[trainer_node]`,
//! `[encoder]`,
//! `[planner]`, `[viz]` and `[eval]` (read by `autodidact eval`, which checks its fields; the
//! nodes keep it as it is).

use std::path::Path;

use autodidact_learn::{ReplayConfig, TrainerConfig};
use autodidact_sim::{ExplorationConfig, SimConfig};
use serde::Deserialize;

use crate::NodeError;
use crate::components::collector::CollectorConfig;
use crate::components::encoder::EncoderConfig;
use crate::components::planner::PlannerNodeConfig;
use crate::components::trainer::TrainerNodeConfig;
use crate::components::viz::VizConfig;

/// The configuration file (see the module docs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// The simulator (`autodidact run`, `sim_node`).
    pub sim: SimConfig,
    /// The exploration policy.
    pub exploration: ExplorationConfig,
    /// Pairing, validation and the proprio layout.
    pub collector: CollectorConfig,
    /// The world model and its training, in full (default: the standard model for the images).
    pub trainer: Option<TrainerConfig>,
    /// Replay warm-up, health, previews, checkpoints.
    pub trainer_node: TrainerNodeConfig,
    /// The encoder's thread pool.
    pub encoder: EncoderConfig,
    /// The reference planner (`planner_node`).
    pub planner: PlannerNodeConfig,
    /// Telemetry settings (where it goes is a flag or a parameter).
    pub viz: VizConfig,
    /// `autodidact eval`: held-out data, planning pairs and the planner it evaluates with. Its
    /// fields are checked by `autodidact eval`.
    pub eval: Option<toml::Table>,
}

impl FileConfig {
    /// [`load`](Self::load)s `path` when one is given, else the defaults.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, NodeError> {
        path.map_or_else(|| Ok(Self::default()), Self::load)
    }

    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        Self::load_camera(path, None)
    }

    /// [`load`](Self::load), with the camera `side` × `side` where the file does not set it.
    fn load_camera(path: &Path, side: Option<u32>) -> Result<Self, NodeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| NodeError::Setup(format!("reading config {}: {e}", path.display())))?;
        Self::parse_with_camera(&text, side)
            .map_err(|e| NodeError::Setup(format!("config {}: {e}", path.display())))
    }

    /// [`load_or_default`](Self::load_or_default) for a program whose simulated camera is
    /// `side` × `side` pixels where the file's `[sim.camera]` does not set its width or height
    /// (`autodidact eval` trains 32² models; the simulator's own default is larger): a
    /// `[trainer]` section's standard model is then made for that camera (unless `[collector]`
    /// sets the input size).
    pub fn load_with_camera(path: Option<&Path>, side: u32) -> Result<Self, NodeError> {
        match path {
            Some(path) => Self::load_camera(path, Some(side)),
            None => Self::parse_with_camera("", Some(side)),
        }
    }

    /// Parses and checks the text of a configuration file.
    pub fn parse(text: &str) -> Result<Self, NodeError> {
        Self::parse_with_camera(text, None)
    }

    /// [`parse`](Self::parse), with the camera `side` × `side` where the text does not set it.
    fn parse_with_camera(text: &str, side: Option<u32>) -> Result<Self, NodeError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| NodeError::Setup(e.to_string()))?;
        if let Some(side) = side {
            with_camera(&mut table, side)?;
        }
        with_default_model(&mut table)?;
        let config: Self = table
            .try_into()
            .map_err(|e: toml::de::Error| NodeError::Setup(e.to_string()))?;
        // burn's `Config` derive (the model's shapes) lets unknown fields through: what the
        // `[trainer]` section holds must come back when the parsed section is written out.
        if let Some(trainer) = &config.trainer {
            let given: toml::Table =
                toml::from_str(text).map_err(|e| NodeError::Setup(e.to_string()))?;
            let known = toml::Table::try_from(trainer)
                .map_err(|e| NodeError::Setup(format!("[trainer]: {e}")))?;
            if let Some(toml::Value::Table(given)) = given.get("trainer")
                && let Some(unknown) = first_unknown_key(given, &known, "trainer")
            {
                return Err(NodeError::Setup(format!("unknown field `{unknown}`")));
            }
        }
        config.sim.validate()?;
        config.collector.validate()?;
        config.viz.validate()?;
        config.encoder.validate()?;
        let capacity = config
            .trainer
            .as_ref()
            .map_or(ReplayConfig::default().capacity, |t| t.replay.capacity);
        config.trainer_node.validate(capacity)?;
        if let Some(trainer) = &config.trainer {
            trainer.validate()?;
        }
        Ok(config)
    }
}

/// Sets `[sim.camera]` `width` and `height` to `side` where the table does not set them.
fn with_camera(table: &mut toml::Table, side: u32) -> Result<(), NodeError> {
    let section = |parent: &mut toml::Table, name: &str, path: &str| match parent.remove(name) {
        None => Ok(toml::Table::new()),
        Some(toml::Value::Table(child)) => Ok(child),
        Some(_) => Err(NodeError::Setup(format!("[{path}] must be a table"))),
    };
    let mut sim = section(table, "sim", "sim")?;
    let mut camera = section(&mut sim, "camera", "sim.camera")?;
    for key in ["width", "height"] {
        camera
            .entry(key)
            .or_insert(toml::Value::Integer(i64::from(side)));
    }
    sim.insert("camera".into(), toml::Value::Table(camera));
    table.insert("sim".into(), toml::Value::Table(sim));
    Ok(())
}

/// A `[trainer]` section gets the standard model for the input size (the collector's when
/// `[collector]` sets it, otherwise the simulated camera's) for every model field it does not set:
/// a section without `[trainer.model]` (e.g. only `[trainer.replay]`) gets the whole standard
/// model, and one that sets some model fields (e.g. `[trainer.model] inverse_head = true`) gets
/// them on top of it.
fn with_default_model(table: &mut toml::Table) -> Result<(), NodeError> {
    if !matches!(table.get("trainer"), Some(toml::Value::Table(_))) {
        return Ok(());
    }
    let section = |name: &str| {
        table
            .get(name)
            .cloned()
            .unwrap_or(toml::Value::Table(toml::Table::new()))
    };
    let collector: CollectorConfig = section("collector")
        .try_into()
        .map_err(|e: toml::de::Error| NodeError::Setup(format!("[collector]: {e}")))?;
    let sim: SimConfig = section("sim")
        .try_into()
        .map_err(|e: toml::de::Error| NodeError::Setup(format!("[sim]: {e}")))?;
    let collector_sets = |key: &str| matches!(table.get("collector"), Some(toml::Value::Table(c)) if c.contains_key(key));
    let width = if collector_sets("width") {
        collector.width
    } else {
        sim.camera.width
    };
    let height = if collector_sets("height") {
        collector.height
    } else {
        sim.camera.height
    };
    let standard =
        TrainerConfig::for_inputs(width as usize, height as usize, collector.proprio.dim()).model;
    let mut model = toml::Table::try_from(&standard)
        .map_err(|e| NodeError::Setup(format!("[trainer.model]: {e}")))?;
    if let Some(toml::Value::Table(trainer)) = table.get_mut("trainer") {
        if let Some(given) = trainer.remove("model") {
            let toml::Value::Table(given) = given else {
                return Err(NodeError::Setup(
                    "[trainer.model] must be a table of the model's fields".into(),
                ));
            };
            overlay(&mut model, given);
        }
        trainer.insert("model".to_owned(), toml::Value::Table(model));
    }
    Ok(())
}

/// Writes every key of `given` over `base`, descending into tables both have.
fn overlay(base: &mut toml::Table, given: toml::Table) {
    for (key, value) in given {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(value)) => overlay(inner, value),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The first key path of `given` that `known` does not have (descending into tables).
fn first_unknown_key(given: &toml::Table, known: &toml::Table, prefix: &str) -> Option<String> {
    given.iter().find_map(|(key, value)| {
        let path = format!("{prefix}.{key}");
        match (value, known.get(key)) {
            (_, None) => Some(path),
            (toml::Value::Table(given), Some(toml::Value::Table(known))) => {
                first_unknown_key(given, known, &path)
            }
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_is_read_and_defaults_fill_the_rest() {
        let config = FileConfig::parse(
            "[sim.camera]\nwidth = 32\nheight = 32\n[trainer_node]\nmin_replay = 7\n\
             [planner]\ngoal_with_current_proprio = true\n[eval]\npairs = 3\n",
        )
        .expect("parsed");
        assert_eq!(config.sim.camera.width, 32);
        assert_eq!(config.trainer_node.min_replay, 7);
        assert_eq!(
            config.planner.goal_proprio,
            crate::planner::GoalProprio::Current
        );
        assert_eq!(config.encoder, EncoderConfig::default());
        let eval = config.eval.expect("kept for autodidact eval");
        assert_eq!(eval.get("pairs").and_then(toml::Value::as_integer), Some(3));
    }

    #[test]
    fn a_trainer_section_without_a_model_gets_the_standard_one_for_the_input_size() {
        let config = FileConfig::parse(
            "[sim.camera]\nwidth = 32\nheight = 32\n[trainer.replay]\ncapacity = 500\n\
             [trainer.objectives.contrastive]\ntemporal_window = 8\n",
        )
        .expect("parsed");
        let trainer = config.trainer.expect("[trainer]");
        assert_eq!(trainer.replay.capacity, 500);
        assert_eq!(trainer.objectives.contrastive.temporal_window, 8);
        let standard =
            TrainerConfig::for_inputs(32, 32, CollectorConfig::default().proprio.dim()).model;
        assert_eq!(
            toml::Value::try_from(&trainer.model).expect("the model as TOML"),
            toml::Value::try_from(&standard).expect("the model as TOML")
        );
    }

    /// `autodidact eval` trains 32² models: a file with only a `[trainer]` setting gets the
    /// standard model for that camera, and a file that sets its camera keeps it.
    #[test]
    fn a_program_camera_fills_in_what_the_file_does_not_set() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("revisits.toml");
        std::fs::write(
            &path,
            "[trainer.objectives.odometry]\nrevisit_share = 0.5\n",
        )
        .expect("written");
        let config = FileConfig::load_with_camera(Some(&path), 32).expect("loaded");
        assert_eq!(
            (config.sim.camera.width, config.sim.camera.height),
            (32, 32)
        );
        let trainer = config.trainer.expect("[trainer]");
        assert_eq!(trainer.objectives.odometry.revisit_share, 0.5);
        let proprio = CollectorConfig::default().proprio.dim();
        assert_eq!(
            toml::Value::try_from(&trainer.model).expect("the model as TOML"),
            toml::Value::try_from(&TrainerConfig::for_inputs(32, 32, proprio).model)
                .expect("the model as TOML")
        );
        // Plain parsing keeps the simulator's default camera, and its model.
        let plain = FileConfig::parse("[trainer.objectives.odometry]\nrevisit_share = 0.5\n")
            .expect("parsed");
        let sim = SimConfig::default().camera;
        assert_eq!(plain.sim.camera.width, sim.width);
        assert_ne!(
            sim.width, 32,
            "the test needs a simulator camera other than eval's"
        );
        assert_eq!(
            plain.trainer.expect("[trainer]").model.encoder.image.width,
            sim.width as usize
        );
        // A camera the file sets, in part or whole, is kept.
        let set =
            FileConfig::parse_with_camera("[sim.camera]\nwidth = 48\n", Some(32)).expect("parsed");
        assert_eq!((set.sim.camera.width, set.sim.camera.height), (48, 32));
        // No file: the program's camera.
        let none = FileConfig::load_with_camera(None, 24).expect("defaults");
        assert_eq!((none.sim.camera.width, none.sim.camera.height), (24, 24));
        let error = FileConfig::parse_with_camera("[sim]\ncamera = 3\n", Some(32))
            .expect_err("a camera that is not a table");
        assert!(error.to_string().contains("[sim.camera]"), "{error}");
    }

    /// A `[trainer.model]` that sets a few fields keeps the standard model's others, down to
    /// the image encoder's.
    #[test]
    fn a_partial_model_section_sets_its_fields_over_the_standard_model() {
        let config = FileConfig::parse(
            "[sim.camera]\nwidth = 32\nheight = 32\n[trainer.model]\ninverse_head = true\n\
             [trainer.model.encoder.image]\nfeature_dim = 96\n\
             [trainer.objectives.inverse]\nenabled = true\n",
        )
        .expect("parsed");
        let trainer = config.trainer.expect("[trainer]");
        let mut expected =
            TrainerConfig::for_inputs(32, 32, CollectorConfig::default().proprio.dim()).model;
        expected.inverse_head = true;
        expected.encoder.image.feature_dim = 96;
        assert_eq!(
            toml::Value::try_from(&trainer.model).expect("the model as TOML"),
            toml::Value::try_from(&expected).expect("the model as TOML")
        );
        assert!(trainer.objectives.inverse.enabled);
        let error = FileConfig::parse("[trainer]\nmodel = 3\n")
            .expect_err("refused")
            .to_string();
        assert!(error.contains("trainer.model"), "{error}");
    }

    #[test]
    fn an_unknown_section_or_field_is_an_error_that_names_it() {
        for (text, name) in [
            ("[trainr_node]\nmin_replay = 7\n", "trainr_node"),
            ("[trainer_node]\nmin_replai = 7\n", "min_replai"),
            ("[collector]\nwidht = 64\n", "widht"),
            ("[collector.proprio]\ngyro_scale = 0.0\n", "gyro_scale"),
            ("[collector]\naction_timeout_s = nan\n", "action_timeout_s"),
            ("[viz]\nqueue = 1000000000000\n", "viz.queue"),
            ("[trainer_node]\nnice = 40\n", "nice"),
        ] {
            let error = FileConfig::parse(text).expect_err("refused").to_string();
            assert!(error.contains(name), "{text:?}: {error}");
        }
    }

    /// A whole `[trainer]` section as `TrainerConfig` writes it, with `extra` added to
    /// `[trainer.model.encoder.image]`.
    fn trainer_section(extra: Option<(&str, toml::Value)>) -> String {
        let mut trainer =
            toml::Table::try_from(TrainerConfig::for_inputs(32, 32, 2)).expect("as toml");
        if let Some((key, value)) = extra {
            let image = ["model", "encoder", "image"]
                .iter()
                .try_fold(&mut trainer, |table, key| {
                    table.get_mut(*key).and_then(toml::Value::as_table_mut)
                })
                .expect("the image section");
            image.insert(key.to_owned(), value);
        }
        let mut file = toml::Table::new();
        file.insert("trainer".into(), toml::Value::Table(trainer));
        toml::to_string(&file).expect("written")
    }

    #[test]
    fn the_model_section_is_strict_too() {
        let parsed = FileConfig::parse(&trainer_section(None)).expect("a whole section");
        assert_eq!(
            parsed.trainer.map(|t| t.model.encoder.image.width),
            Some(32)
        );
        let error = FileConfig::parse(&trainer_section(Some(("chanels", toml::Value::Integer(8)))))
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains("trainer.model.encoder.image.chanels"),
            "{error}"
        );
    }
}
