"""Independent check of an autodidact recording with the rerun SDK (rerun-sdk 0.36.3).

usage: check_recording.py FILE.rrd WIDTH HEIGHT [ROBOTS]

Reads the file back, checks that every entity of the documented tree is there with the
expected archetype and plausible content, prints a JSON summary, exits 1 on any failure.
With ROBOTS > 1 (`autodidact run --robots N`), robots 2..N have their own camera, proprio, pose
and world under /robots/robotK/, and the blueprint has a tab for each.
"""

import json
import math
import sys

from rerun.experimental import RrdReader

path, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
robots = int(sys.argv[4]) if len(sys.argv) > 4 else 1
failures = []
summary = {}


def check(ok, message):
    if not ok:
        failures.append(message)
    return ok


reader = RrdReader(path)
store = reader.stream().collect()
check(len(reader.blueprints()) >= 1, "no blueprint in the recording")


def table(index, contents):
    return store.reader(index=index, contents=contents).to_arrow_table()


def column(tbl, entity, archetype, field):
    name = f"{entity}:{archetype}:{field}"
    if not check(name in tbl.column_names, f"missing column {name}"):
        return []
    return [v for v in tbl.column(name).to_pylist() if v is not None]


def finite(values):
    flat = []
    stack = list(values)
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, float):
            flat.append(v)
    return all(math.isfinite(v) for v in flat)


# Camera images at sim time, of the camera's size.
cam = table("sim_time", "/camera/rgb")
formats = column(cam, "/camera/rgb", "Image", "format")
summary["camera_rows"] = len(formats)
check(len(formats) >= 50, f"only {len(formats)} camera images")
check(
    all(f[0]["width"] == width and f[0]["height"] == height for f in formats),
    f"camera images are not {width}x{height}",
)
buffers = column(cam, "/camera/rgb", "Image", "buffer")
check(all(len(b[0]) == width * height * 3 for b in buffers[:20]), "camera buffer is not rgb8")

# Proprio series.
proprio = table("sim_time", "/proprio/**")
proprio_cols = [c for c in proprio.column_names if c.startswith("/proprio/")]
summary["proprio_series"] = len(proprio_cols)
check(len(proprio_cols) >= 5, f"only {len(proprio_cols)} proprio series")
for name in proprio_cols:
    values = [v for v in proprio.column(name).to_pylist() if v is not None]
    check(len(values) >= 50 and finite(values), f"{name}: too few or non-finite values")

# Every loss on the train_step timeline.
losses = table("train_step", "/train/loss/**")
for loss in ["total", "contrastive", "temporal", "forward", "reconstruction"]:
    values = column(losses, f"/train/loss/{loss}", "Scalars", "scalars")
    summary[f"loss_{loss}_rows"] = len(values)
    check(len(values) >= 10 and finite(values), f"loss {loss}: {len(values)} rows or non-finite")

# Health.
health = table("train_step", "/train/health/**")
for series in ["mean_std", "min_std", "effective_rank", "prediction_vs_copy_last/k1"]:
    values = column(health, f"/train/health/{series}", "Scalars", "scalars")
    summary[f"health_{series}_rows"] = len(values)
    check(len(values) >= 1 and finite(values), f"health {series}: missing or non-finite")
ranks = column(health, "/train/health/effective_rank", "Scalars", "scalars")
check(all(v[0] >= 1.0 for v in ranks), "effective rank below 1")

# Embedding projection (PCA to 3-D) and latency.
emb = table("sim_time", "/embedding/**")
positions = column(emb, "/embedding/projection", "Points3D", "positions")
summary["projection_logs"] = len(positions)
check(len(positions) >= 1, "no embedding projection")
check(all(len(p) >= 4 and all(len(xyz) == 3 for xyz in p) for p in positions), "projection is not 3-D points")
check(finite(positions), "projection has non-finite points")
colors = column(emb, "/embedding/projection", "Points3D", "colors")
check(len(colors) == len(positions), "projection points are not coloured")
latency = column(emb, "/embedding/latency_ms", "Scalars", "scalars")
summary["embedding_rows"] = len(latency)
check(len(latency) >= 50 and finite(latency) and all(v[0] > 0 for v in latency), "embedding latency")

# Predicted vs actual futures.
pred = table("train_step", "/predict/**")
for entity in ["/predict/actual", "/predict/predicted", "/predict/reconstruction"]:
    fmts = column(pred, entity, "Image", "format")
    summary[f"{entity}_rows"] = len(fmts)
    check(len(fmts) >= 1, f"no {entity} image")
    check(all(f[0]["height"] == height for f in fmts), f"{entity} height")

# Robot pose and trajectory from the sim.
robot = table("sim_time", "/robot/**")
translations = column(robot, "/robot/pose", "Transform3D", "translation")
summary["pose_rows"] = len(translations)
check(len(translations) >= 50 and finite(translations), "robot pose")
check(all(abs(t[0][0]) < 2.0 and abs(t[0][1]) < 2.0 for t in translations), "robot left the arena")
strips = column(robot, "/robot/trajectory", "LineStrips3D", "strips")
check(len(strips) >= 1, "no trajectory")

# The other robots of a fleet, each under its own prefix, in a world of its own.
first_world = column(table("sim_time", "/world/**"), "/world/objects", "Points3D", "positions")
for k in range(2, robots + 1):
    prefix = f"/robots/robot{k}"
    images = column(table("sim_time", f"{prefix}/camera/rgb"), f"{prefix}/camera/rgb", "Image", "format")
    summary[f"robot{k}_camera_rows"] = len(images)
    check(len(images) >= 50, f"robot{k}: only {len(images)} camera images")
    series = [c for c in table("sim_time", f"{prefix}/proprio/**").column_names if c.startswith(f"{prefix}/proprio/")]
    check(len(series) >= 5, f"robot{k}: only {len(series)} proprio series")
    poses = column(table("sim_time", f"{prefix}/robot/**"), f"{prefix}/robot/pose", "Transform3D", "translation")
    summary[f"robot{k}_pose_rows"] = len(poses)
    check(len(poses) >= 50 and finite(poses), f"robot{k}: robot pose")
    world = column(table("sim_time", f"{prefix}/world/**"), f"{prefix}/world/objects", "Points3D", "positions")
    check(len(world) >= 1, f"robot{k}: no world objects")
    check(world[:1] != first_world[:1], f"robot{k}'s objects stand where robot1's do: not a world of its own")

print(json.dumps(summary, indent=1))
if failures:
    print("FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
    sys.exit(1)
print("recording OK")
