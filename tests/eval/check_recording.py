"""Independent check of an `autodidact eval --rrd` recording with the rerun SDK (0.36.3).

usage: check_recording.py FILE.rrd REPORT.json

Reads the recording back and checks it against the JSON report of the same run, for both
protocols (new worlds under /eval, home under /eval/home): the report text, every score on the
train_step timeline (the success and passed rates included), the success bar charts, one path
per agent and pair with the setting's plan_steps + 1 positions, the start/goal arrows, the memory
planner's graph and route, the goal image strip. Exits 1 on any failure.
"""

import json
import math
import sys

from rerun.experimental import RrdReader

path, report_path = sys.argv[1], sys.argv[2]
with open(report_path) as handle:
    report = json.load(handle)
failures = []


def check(ok, message):
    if not ok:
        failures.append(message)
    return ok


reader = RrdReader(path)
store = reader.stream().collect()
check(len(reader.blueprints()) >= 1, "no blueprint in the recording")


def column(index, entity, archetype, field):
    tbl = store.reader(index=index, contents=entity).to_arrow_table()
    name = f"{entity}:{archetype}:{field}"
    if not check(name in tbl.column_names, f"missing column {name}"):
        return []
    return [v for v in tbl.column(name).to_pylist() if v is not None]


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


text = column("train_step", "/eval/report", "TextDocument", "text")
check(len(text) == 1 and "pose probe R²" in text[0][0], "report text")

for prefix, scores in [("/eval/scores", report), ("/eval/scores/home", report["home"])]:
    for model, field in [
        ("trained", "representation"),
        ("random_init", "random_init_representation"),
        ("raw_pixels", "raw_pixels_representation"),
    ]:
        for key in ["pose_r2", "nearest_object_r2", "knn_position_error_m"]:
            values = column("train_step", f"{prefix}/{key}/{model}", "Scalars", "scalars")
            check(
                len(values) == 1 and close(values[0][0], scores[field][key]),
                f"score {prefix}/{key}/{model}",
            )
for k, ratio in enumerate(report["prediction_vs_copy_last"], start=1):
    values = column("train_step", f"/eval/scores/prediction_vs_copy_last/k{k}", "Scalars", "scalars")
    check(len(values) == 1 and close(values[0][0], ratio), f"prediction k{k}")
# Beyond the trained horizon the series goes on as far as the planner looks.
trained = len(report["prediction_vs_copy_last"])
rollout = report.get("planner_rollout_vs_copy_last", [])
for k, ratio in enumerate(rollout[trained:], start=trained + 1):
    values = column("train_step", f"/eval/scores/prediction_vs_copy_last/k{k}", "Scalars", "scalars")
    check(len(values) == 1 and close(values[0][0], ratio), f"prediction k{k} (planner's rollout)")
rank = column("train_step", "/eval/scores/effective_rank", "Scalars", "scalars")
check(len(rank) == 1 and close(rank[0][0], report["collapse"]["effective_rank"]), "effective rank")

agents = ["planner", "memory_planner", "random_policy", "random_init_planner"]
for prefix, planning in [("/eval", report["planning"]), ("/eval/home", report["home"]["planning"])]:
    check([s["setting"] for s in planning] == report["config"]["settings"], f"{prefix} settings")
    for setting in planning:
        name = setting["setting"]
        plan_steps = setting["plan_steps"]
        bars = column("train_step", f"{prefix}/success/{name}", "BarChart", "values")
        expected = [setting[agent]["success_rate"] for agent in agents]
        # One BarChart row: a tensor of shape [4], in the order of `agents`.
        values = bars[0][0]["buffer"] if len(bars) == 1 and len(bars[0]) == 1 else None
        check(
            values is not None
            and len(values) == 4
            and all(close(a, b) for a, b in zip(values, expected)),
            f"success bars {prefix} {name}: {values} != {expected}",
        )
        scores = prefix.replace("/eval", "/eval/scores", 1)
        for agent in agents:
            for key in ["success_rate", "passed_rate"]:
                values = column("train_step", f"{scores}/{key}/{name}/{agent}", "Scalars", "scalars")
                check(
                    len(values) == 1 and close(values[0][0], setting[agent][key]),
                    f"score {scores}/{key}/{name}/{agent}",
                )
            check(
                setting[agent]["passed_rate"] >= setting[agent]["success_rate"],
                f"{prefix} {name} {agent}: passed on the way less often than reached",
            )
        reached = {agent: 0 for agent in agents}
        for pair in range(setting["pairs"]):
            base = f"{prefix}/paths/{name}/pair_{pair:02d}"
            for agent in agents:
                strips = column("train_step", f"{base}/{agent}", "LineStrips2D", "strips")
                check(
                    len(strips) == 1 and len(strips[0]) == 1 and len(strips[0][0]) == plan_steps + 1,
                    f"{base}/{agent}: one path of {plan_steps + 1} positions",
                )
                labels = column("train_step", f"{base}/{agent}", "LineStrips2D", "labels")
                reached[agent] += sum("(reached)" in label for row in labels for label in row)
            arrows = column("train_step", f"{base}/start_goal", "Arrows2D", "vectors")
            check(len(arrows) == 1 and len(arrows[0]) == 2, f"{base}: start and goal arrows")
            nodes = column("train_step", f"{base}/memory/nodes", "Points2D", "positions")
            check(len(nodes) == 1 and len(nodes[0]) >= 2, f"{base}: the memory graph's nodes")
            route = column("train_step", f"{base}/memory/route", "LineStrips2D", "strips")
            check(len(route) == 1 and len(route[0]) == 1, f"{base}: the memory planner's route")
        # The paths marked reached are as many as the report's success rates say.
        for agent in agents:
            check(
                reached[agent] == round(setting[agent]["success_rate"] * setting["pairs"]),
                f"{prefix} {name}: {reached[agent]} {agent} paths marked reached",
            )

width, height = report["model"]["image"]
pairs = max(setting["pairs"] for setting in report["planning"])
formats = column("train_step", "/eval/goals", "Image", "format")
check(
    len(formats) == 1
    and formats[0][0]["width"] == pairs * width
    and formats[0][0]["height"] == len(report["planning"]) * height,
    f"goal strip format {formats}",
)

if failures:
    print("FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
    sys.exit(1)
print("eval recording OK")
