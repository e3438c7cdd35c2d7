//! A small, fast graph for the integration tests.

#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::AtomicBool;

use autodidact_nodes::viz::VizSink;
use autodidact_nodes::{GraphConfig, run_graph};

/// A small, fast graph: 32×32 camera, a narrow model, paced at 4× real time.
pub fn small_graph(steps: u64, sink: VizSink) -> GraphConfig {
    let mut config = GraphConfig::new(steps);
    config.sim.sim.camera.width = 32;
    config.sim.sim.camera.height = 32;
    config.sim.realtime_factor = 4.0;
    config.collector.width = 32;
    config.collector.height = 32;
    let model = &mut config.trainer.model;
    model.encoder.image.width = 32;
    model.encoder.image.height = 32;
    model.encoder.image.channels = vec![16, 16, 32];
    model.encoder.image.feature_dim = 64;
    model.encoder.embed_dim = 64;
    model.dynamics_hidden = 128;
    config.trainer.batch_size = 16;
    config.trainer.publish_every = 5;
    config.trainer_node.min_replay = 64;
    config.trainer_node.health_every = 10;
    config.trainer_node.preview_every = 20;
    config.viz.sink = sink;
    config.viz.projection_every = 50;
    config
}

pub fn run_small(steps: u64, rrd: &Path) -> autodidact_nodes::GraphReport {
    let config = small_graph(steps, VizSink::File(rrd.to_path_buf()));
    run_graph(&config, &AtomicBool::new(false), |_| {}).expect("graph runs")
}
