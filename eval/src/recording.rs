//! `autodidact eval --rrd FILE`: the evaluation in rerun.
//!
//! - `eval/report`: the table as markdown;
//! - `eval/scores/...`: every score as a scalar on the `train_step` timeline, so evaluations of
//!   successive checkpoints (opened together) draw curves;
//! - `eval/success/<setting>`: success rate of planner, memory planner, random policy and
//!   random-init planner as a bar chart (new worlds; `eval/home/success/<setting>` at home);
//! - `eval/paths/<setting>/pair_NN/...`: each attempt's path through the arena (top view, metres)
//!   with its start and goal pose, and the memory planner's route at the start (new worlds;
//!   `eval/home/paths/...` at home); `eval/goals`: the new worlds' goal images, a row per
//!   setting.

use rerun::RecordingStream;
use rerun::blueprint::{
    BarChartView, Blueprint, Horizontal, Spatial2DView, Tabs, TextDocumentView, TimeSeriesView,
    Vertical,
};

use crate::EvalError;
use crate::report::{EvalReport, PlanningTrajectory, report_rows};

/// The layout the viewer opens an eval recording on.
pub fn eval_blueprint() -> Blueprint {
    let report = TextDocumentView::new("report").with_origin("eval/report");
    let scores = TimeSeriesView::new("scores by train step").with_origin("eval/scores");
    let mut paths = Vec::new();
    let mut success = Vec::new();
    for (protocol, prefix) in [("new worlds", "eval"), ("home", "eval/home")] {
        for setting in ["far", "across", "easy", "near"] {
            paths.push(
                Spatial2DView::new(format!("{protocol}: {setting} goals"))
                    .with_origin(format!("{prefix}/paths/{setting}"))
                    .into(),
            );
            success.push(
                BarChartView::new(format!("success {protocol}: {setting}"))
                    .with_origin(format!("{prefix}/success/{setting}"))
                    .into(),
            );
        }
    }
    let goals = Spatial2DView::new("goal images").with_origin("eval/goals");
    Blueprint::new(Horizontal::new([
        Vertical::new([report.into(), scores.into()]).into(),
        Tabs::new(paths).into(),
        Vertical::new([Tabs::new(success).into(), goals.into()]).into(),
    ]))
}

fn agent_colour(agent: &str) -> rerun::Color {
    match agent {
        "planner" => rerun::Color::from_rgb(60, 200, 90),
        "memory_planner" => rerun::Color::from_rgb(200, 80, 220),
        "random_policy" => rerun::Color::from_rgb(160, 160, 160),
        _ => rerun::Color::from_rgb(230, 140, 40),
    }
}

/// The markdown table of the report.
pub fn report_markdown(report: &EvalReport) -> String {
    let mut text = format!(
        "# autodidact eval\n\n{} — train step {}, {} held-out frames\n\n| metric | model | baseline |\n|---|---|---|\n",
        report.model.source, report.model.train_step, report.data.frames
    );
    for [metric, model, baseline] in report_rows(report) {
        text.push_str(&format!("| {metric} | {model} | {baseline} |\n"));
    }
    text
}

/// Logs `report` into `recording`.
pub fn record_report(
    recording: &RecordingStream,
    report: &EvalReport,
) -> Result<(), rerun::RecordingStreamError> {
    recording.set_time_sequence("train_step", report.model.train_step as i64);
    recording.log(
        "eval/report",
        &rerun::TextDocument::from_markdown(report_markdown(report)),
    )?;
    let scalar = |path: String, value: f64| -> Result<(), rerun::RecordingStreamError> {
        recording.log(path, &rerun::Scalars::single(value))
    };
    let home = &report.home;
    for (prefix, model, scores) in [
        ("eval/scores", "trained", &report.representation),
        (
            "eval/scores",
            "random_init",
            &report.random_init_representation,
        ),
        (
            "eval/scores",
            "raw_pixels",
            &report.raw_pixels_representation,
        ),
        ("eval/scores/home", "trained", &home.representation),
        (
            "eval/scores/home",
            "random_init",
            &home.random_init_representation,
        ),
        (
            "eval/scores/home",
            "raw_pixels",
            &home.raw_pixels_representation,
        ),
    ] {
        scalar(format!("{prefix}/pose_r2/{model}"), scores.pose_r2)?;
        scalar(
            format!("{prefix}/nearest_object_r2/{model}"),
            scores.nearest_object_r2,
        )?;
        scalar(
            format!("{prefix}/knn_position_error_m/{model}"),
            scores.knn_position_error_m,
        )?;
    }
    for (k, ratio) in report.prediction_vs_copy_last.iter().enumerate() {
        scalar(
            format!("eval/scores/prediction_vs_copy_last/k{}", k + 1),
            *ratio,
        )?;
    }
    // Beyond the trained horizon, as far as the planner looks: the same series.
    let trained = report.prediction_vs_copy_last.len();
    for (k, ratio) in report
        .planner_rollout_vs_copy_last
        .iter()
        .enumerate()
        .skip(trained)
    {
        scalar(
            format!("eval/scores/prediction_vs_copy_last/k{}", k + 1),
            *ratio,
        )?;
    }
    scalar(
        "eval/scores/effective_rank".into(),
        report.collapse.effective_rank,
    )?;
    scalar("eval/scores/mean_std".into(), report.collapse.mean_std)?;
    let settings = report
        .planning
        .iter()
        .map(|s| ("eval", s))
        .chain(home.planning.iter().map(|s| ("eval/home", s)));
    for (prefix, setting) in settings {
        let agents = [
            ("planner", &setting.planner),
            ("memory_planner", &setting.memory_planner),
            ("random_policy", &setting.random_policy),
            ("random_init_planner", &setting.random_init_planner),
        ];
        let scores = prefix.replacen("eval", "eval/scores", 1);
        for (agent, score) in agents {
            scalar(
                format!("{scores}/success_rate/{}/{agent}", setting.setting),
                score.success_rate,
            )?;
            scalar(
                format!("{scores}/passed_rate/{}/{agent}", setting.setting),
                score.passed_rate,
            )?;
        }
        recording.log(
            format!("{prefix}/success/{}", setting.setting),
            &rerun::BarChart::new(
                agents
                    .iter()
                    .map(|(_, score)| score.success_rate)
                    .collect::<Vec<f64>>(),
            ),
        )?;
    }
    for trajectory in &report.trajectories {
        record_trajectory(recording, trajectory)?;
    }
    if let Some((strip, size)) = goal_strip(report) {
        recording.log("eval/goals", &rerun::Image::from_rgb24(strip, size))?;
    }
    Ok(())
}

/// The goal images in one picture: a row per setting, the pairs side by side.
fn goal_strip(report: &EvalReport) -> Option<(Vec<u8>, [u32; 2])> {
    let [width, height] = report.model.image;
    let goals: Vec<&PlanningTrajectory> = report
        .trajectories
        .iter()
        .filter(|t| {
            t.protocol == "new_worlds"
                && t.agent == "planner"
                && t.goal_image.len() == width * height * 3
        })
        .collect();
    let settings: Vec<&str> = report.planning.iter().map(|p| p.setting.as_str()).collect();
    let pairs = goals.iter().map(|t| t.pair + 1).max()?;
    let (strip_width, strip_height) = (pairs * width, settings.len() * height);
    let mut strip = vec![0u8; strip_width * strip_height * 3];
    for goal in goals {
        let Some(row) = settings.iter().position(|s| *s == goal.setting) else {
            continue;
        };
        for line in 0..height {
            let from = line * width * 3;
            let to = ((row * height + line) * strip_width + goal.pair * width) * 3;
            strip[to..to + width * 3].copy_from_slice(&goal.goal_image[from..from + width * 3]);
        }
    }
    Some((strip, [strip_width as u32, strip_height as u32]))
}

fn record_trajectory(
    recording: &RecordingStream,
    trajectory: &PlanningTrajectory,
) -> Result<(), rerun::RecordingStreamError> {
    let prefix = if trajectory.protocol == "home" {
        "eval/home"
    } else {
        "eval"
    };
    let pair = format!(
        "{prefix}/paths/{}/pair_{:02}",
        trajectory.setting, trajectory.pair
    );
    let path: Vec<[f32; 2]> = trajectory
        .path
        .iter()
        .map(|[x, y]| [*x as f32, *y as f32])
        .collect();
    let label = format!(
        "{}{}",
        trajectory.agent,
        if trajectory.reached { " (reached)" } else { "" }
    );
    recording.log(
        format!("{pair}/{}", trajectory.agent),
        &rerun::LineStrips2D::new([path])
            .with_colors([agent_colour(&trajectory.agent)])
            .with_labels([label]),
    )?;
    if let Some(memory) = &trajectory.memory {
        let point = |p: &[f64; 2]| [p[0] as f32, p[1] as f32];
        recording.log(
            format!("{pair}/memory/nodes"),
            &rerun::Points2D::new(memory.nodes.iter().map(point))
                .with_radii([0.01])
                .with_colors([rerun::Color::from_rgb(120, 120, 160)]),
        )?;
        recording.log(
            format!("{pair}/memory/shortcuts"),
            &rerun::LineStrips2D::new(
                memory
                    .shortcuts
                    .iter()
                    .map(|[a, b]| [point(&memory.nodes[*a]), point(&memory.nodes[*b])]),
            )
            .with_colors([rerun::Color::from_rgb(90, 90, 200)]),
        )?;
        recording.log(
            format!("{pair}/memory/route"),
            &rerun::LineStrips2D::new([memory.route.iter().map(point).collect::<Vec<_>>()])
                .with_colors([rerun::Color::from_rgb(240, 200, 40)])
                .with_labels(["route at the start"]),
        )?;
    }
    // Start and goal are the same for every agent of a pair: log them once.
    if trajectory.agent == "planner" {
        let heading = |pose: &autodidact_sim::Pose2| {
            [0.15 * pose.yaw.cos() as f32, 0.15 * pose.yaw.sin() as f32]
        };
        recording.log(
            format!("{pair}/start_goal"),
            &rerun::Arrows2D::from_vectors([heading(&trajectory.start), heading(&trajectory.goal)])
                .with_origins([
                    [trajectory.start.x as f32, trajectory.start.y as f32],
                    [trajectory.goal.x as f32, trajectory.goal.y as f32],
                ])
                .with_colors([
                    rerun::Color::from_rgb(80, 140, 255),
                    rerun::Color::from_rgb(255, 80, 80),
                ])
                .with_labels(["start", "goal"]),
        )?;
    }
    Ok(())
}

/// Writes `report` to a new `.rrd` file at `path`.
pub fn save_report(path: &std::path::Path, report: &EvalReport) -> Result<(), EvalError> {
    let failed = |reason: String| EvalError::Recording {
        path: path.to_path_buf(),
        reason,
    };
    // One recording id for every evaluation: opened together, they merge into one recording
    // whose scores draw curves over `train_step`.
    let recording = rerun::RecordingStreamBuilder::new("autodidact-eval")
        .recording_id("autodidact-eval")
        .with_blueprint(eval_blueprint())
        .save(path)
        .map_err(|e| failed(format!("opening: {e}")))?;
    record_report(&recording, report).map_err(|e| failed(format!("logging the report: {e}")))?;
    recording
        .flush_blocking()
        .map_err(|e| failed(format!("writing: {e}")))?;
    Ok(())
}
