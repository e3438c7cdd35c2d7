//! `autodidact sim`: the simulator alone. The robot explores a world with its exploration policy;
//! a few frames are written as PNG (with a contact sheet and depth images) together with a summary.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use autodidact_sim::{
    CameraFrame, ExplorationConfig, ExplorationPolicy, Observation, ObservationDigest, Sim,
    SimConfig,
};
use serde::Serialize;

/// What `autodidact run` is asked to do.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Simulator configuration.
    pub sim: SimConfig,
    /// Exploration policy configuration.
    pub exploration: ExplorationConfig,
    /// Episode seed (world layout and policy noise).
    pub seed: u64,
    /// Control periods to run.
    pub steps: u64,
    /// Where frames and the summary go.
    pub out_dir: PathBuf,
    /// How many evenly spaced frames to save as PNG.
    pub frames_to_save: u32,
    /// Also record the run as a rosbag2 MCAP directory here (a new directory).
    pub bag_out: Option<PathBuf>,
}

/// What a demo run did, also written as `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    /// Episode seed.
    pub seed: u64,
    /// Control periods stepped.
    pub steps: u64,
    /// Sim time covered, seconds.
    pub sim_seconds: f64,
    /// Wall-clock time, seconds.
    pub wall_seconds: f64,
    /// Control periods (each with one camera frame) per wall-clock second.
    pub frames_per_second: f64,
    /// Distance the robot drove, metres (ground truth).
    pub distance_m: f64,
    /// Share of the arena's 0.25 m cells the robot's centre visited.
    pub coverage: f64,
    /// Final odometry position error against ground truth, metres.
    pub odometry_error_m: f64,
    /// How far the objects were pushed in total, metres.
    pub objects_pushed_m: f64,
    /// Actions the simulator rejected (non-finite).
    pub rejected_actions: u64,
    /// Digest of every observation (same seed and build → same digest).
    pub digest: String,
    /// PNG files written (RGB; each has a `depth_` twin).
    pub frames: Vec<PathBuf>,
    /// All saved frames on one sheet: RGB above depth, scaled up ×4.
    pub contact_sheet: Option<PathBuf>,
}

/// Runs the demo; `on_step` is called after every step (for a progress bar).
pub fn run_demo(options: &DemoOptions, mut on_step: impl FnMut(u64)) -> Result<DemoSummary> {
    std::fs::create_dir_all(&options.out_dir)
        .with_context(|| format!("creating {}", options.out_dir.display()))?;
    let mut sim = Sim::new(&options.sim).context("building the simulator")?;
    let mut observation = sim.reset(options.seed).context("resetting the simulator")?;
    let mut policy = ExplorationPolicy::new(options.exploration.clone(), options.seed);
    let period = options.sim.control_period_s as f32;

    let arena = &options.sim.arena;
    let cell = 0.25;
    let cells_x = (arena.size_x_m as f64 / cell).ceil() as usize;
    let cells_y = (arena.size_y_m as f64 / cell).ceil() as usize;
    let mut visited = vec![false; cells_x * cells_y];
    let start_objects = sim.ground_truth().objects;
    let mut digest = ObservationDigest::new();
    digest.add(&observation);
    let save_every = (options.steps / u64::from(options.frames_to_save.max(1))).max(1);
    let mut saved = Vec::new();
    let mut sheet_frames = Vec::new();
    let mut distance = 0.0;
    let mut last_pose = sim.ground_truth().robot_pose;
    let mut recorder = match &options.bag_out {
        Some(dir) => Some(autodidact_nodes::bags::SimRecorder::create(
            dir,
            options.sim.camera.clone(),
            autodidact_nodes::bags::record::CAMERA_FRAME,
        )?),
        None => None,
    };
    let started = Instant::now();
    for step in 0..options.steps {
        let action = policy.act(&observation, period);
        if let Some(bag) = &mut recorder {
            // What the sim node publishes for this tick: proprio, image, then the command.
            let stamp_ns = observation.stamp.nanos;
            let mut messages = autodidact_nodes::sim::sensor_messages(&observation, stamp_ns);
            messages.push(autodidact_nodes::msg::SensorMsg::Action(
                autodidact_nodes::msg::TwistMsg {
                    stamp_ns,
                    linear_x: action.linear_x,
                    angular_z: action.angular_z,
                },
            ));
            let mut truth = sim.ground_truth();
            truth.stamp.nanos = stamp_ns;
            bag.record(&autodidact_nodes::sim::SimTick { messages, truth })?;
        }
        observation = sim.step(&action);
        digest.add(&observation);
        let truth = sim.ground_truth();
        let pose = truth.robot_pose;
        distance += (pose.x - last_pose.x).hypot(pose.y - last_pose.y);
        last_pose = pose;
        let cx = (((pose.x + arena.size_x_m as f64 / 2.0) / cell) as usize).min(cells_x - 1);
        let cy = (((pose.y + arena.size_y_m as f64 / 2.0) / cell) as usize).min(cells_y - 1);
        visited[cy * cells_x + cx] = true;
        if step % save_every == 0 && saved.len() < options.frames_to_save as usize {
            saved.push(save_frame(&options.out_dir, saved.len(), &observation)?);
            sheet_frames.push(observation.frame.clone());
        }
        on_step(step + 1);
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    if let Some(bag) = recorder {
        bag.finish()?;
    }
    let truth = sim.ground_truth();
    let odom_truth = truth.start_pose.relative(&truth.robot_pose);
    let objects_pushed_m = start_objects
        .iter()
        .zip(&truth.objects)
        .map(|(a, b)| (a.position[0] - b.position[0]).hypot(a.position[1] - b.position[1]))
        .sum();
    let mut summary = DemoSummary {
        seed: options.seed,
        steps: options.steps,
        sim_seconds: observation.stamp.as_secs_f64(),
        wall_seconds,
        frames_per_second: options.steps as f64 / wall_seconds.max(1e-9),
        distance_m: distance,
        coverage: visited.iter().filter(|v| **v).count() as f64 / visited.len() as f64,
        odometry_error_m: (observation.odom.x - odom_truth.x)
            .hypot(observation.odom.y - odom_truth.y),
        objects_pushed_m,
        rejected_actions: sim.stats().rejected_actions,
        digest: format!("{:016x}", digest.value()),
        frames: saved,
        contact_sheet: None,
    };
    if !sheet_frames.is_empty() {
        let path = options.out_dir.join("frames.png");
        contact_sheet(&sheet_frames, 4)
            .save(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        summary.contact_sheet = Some(path);
    }
    let summary_path = options.out_dir.join("summary.json");
    write_atomically(
        &summary_path,
        serde_json::to_vec_pretty(&summary)?.as_slice(),
    )?;
    Ok(summary)
}

/// Writes `rgb_NNN.png` and `depth_NNN.png` (near = bright, no return = black).
fn save_frame(dir: &Path, index: usize, observation: &Observation) -> Result<PathBuf> {
    let frame = &observation.frame;
    let rgb_path = dir.join(format!("rgb_{index:03}.png"));
    let rgb = image::RgbImage::from_raw(frame.width, frame.height, frame.rgb.clone())
        .context("frame buffer does not match its size")?;
    rgb.save(&rgb_path)
        .with_context(|| format!("writing {}", rgb_path.display()))?;
    let depth_path = dir.join(format!("depth_{index:03}.png"));
    depth_image(frame)
        .save(&depth_path)
        .with_context(|| format!("writing {}", depth_path.display()))?;
    Ok(rgb_path)
}

/// RGB frames in a row with their depth below, each pixel scaled to `scale`×`scale`.
fn contact_sheet(frames: &[CameraFrame], scale: u32) -> image::RgbImage {
    let (w, h) = (frames[0].width, frames[0].height);
    let gap = 2;
    let mut sheet = image::RgbImage::from_pixel(
        frames.len() as u32 * (w * scale + gap),
        2 * (h * scale + gap),
        image::Rgb([255, 255, 255]),
    );
    for (i, frame) in frames.iter().enumerate() {
        let depth = depth_image(frame);
        let x0 = i as u32 * (w * scale + gap);
        for v in 0..(h * scale).min(frame.height * scale) {
            for u in 0..(w * scale).min(frame.width * scale) {
                sheet.put_pixel(x0 + u, v, image::Rgb(frame.rgb_at(u / scale, v / scale)));
                let level = depth.get_pixel(u / scale, v / scale).0[0];
                sheet.put_pixel(x0 + u, h * scale + gap + v, image::Rgb([level; 3]));
            }
        }
    }
    sheet
}

fn depth_image(frame: &CameraFrame) -> image::GrayImage {
    let far = frame
        .depth
        .iter()
        .copied()
        .filter(|d| d.is_finite())
        .fold(0.1f32, f32::max);
    image::GrayImage::from_fn(frame.width, frame.height, |u, v| {
        let d = frame.depth_at(u, v);
        let level = if d.is_finite() {
            (255.0 * (1.0 - d / far).clamp(0.0, 1.0) * 0.8 + 50.0) as u8
        } else {
            0
        };
        image::Luma([level])
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
