"""Independent check of the planner's part of a recording with the rerun SDK (rerun-sdk 0.36.3).

usage: check_planner_recording.py FILE.rrd NODES EDGES ROUTE_PLACES PATH_POSES HEADINGS DISTANCES TURNING

The newest memory graph has NODES points on the ground (z = 0) and EDGES two-point strips
between them; the newest route is one strip of ROUTE_PLACES points, each at a node. The path
followed was drawn as one strip of PATH_POSES finite points and then cleared (no longer
followed). The goal seen by the relative-pose head is a time series of headings (degrees,
HEADINGS comma-separated, in time order), distances (metres, DISTANCES) and turning flags
(TURNING, comma-separated 1 or 0). The blueprint (a planner's layout) has a view of
/planner/goal_seen, and the world view draws the memory, route and path but not those
scalars. Prints "planner recording OK", exits 1 on any failure.
"""

import math
import sys

from rerun.experimental import RrdReader

path, nodes, edges, places, poses = sys.argv[1], *map(int, sys.argv[2:6])
headings = [float(v) for v in sys.argv[6].split(",")]
expected_distances = [float(v) for v in sys.argv[7].split(",")]
turning = [float(v) for v in sys.argv[8].split(",")]
failures = []
store = RrdReader(path).stream().collect()


def newest(entity, archetype, field):
    table = store.reader(index="sim_time", contents=entity).to_arrow_table()
    name = f"{entity}:{archetype}:{field}"
    if name not in table.column_names:
        failures.append(f"missing column {name}")
        return None
    rows = [v for v in table.column(name).to_pylist() if v is not None]
    return rows[-1] if rows else None


points = newest("/planner/memory/nodes", "Points3D", "positions") or []
if len(points) != nodes:
    failures.append(f"{len(points)} memory nodes, expected {nodes}")
if not all(len(p) == 3 and p[2] == 0.0 and all(math.isfinite(v) for v in p) for p in points):
    failures.append(f"memory nodes are not finite points on the ground: {points}")
strips = newest("/planner/memory/edges", "LineStrips3D", "strips") or []
if len(strips) != edges or not all(len(s) == 2 for s in strips):
    failures.append(f"memory edges: {strips}")
on_node = lambda p: any(abs(p[0] - n[0]) < 1e-6 and abs(p[1] - n[1]) < 1e-6 for n in points)
if not all(on_node(p) for s in strips for p in s):
    failures.append("an edge ends off the memory's nodes")
route = newest("/planner/route", "LineStrips3D", "strips") or []
if len(route) != 1 or len(route[0]) != places:
    failures.append(f"route: {route}")
elif not all(on_node(p) for p in route[0]):
    failures.append("the route leaves the memory's nodes")

table = store.reader(index="sim_time", contents="/planner/path").to_arrow_table()
column = "/planner/path:LineStrips3D:strips"
drawn = table.column(column).to_pylist() if column in table.column_names else []
if not drawn or drawn[0] is None or len(drawn[0]) != 1 or len(drawn[0][0]) != poses:
    failures.append(f"the followed path was not drawn as one strip of {poses} points: {drawn}")
elif not all(math.isfinite(v) for p in drawn[0][0] for v in p):
    failures.append(f"the followed path is not finite: {drawn[0]}")
if len(drawn) < 2 or drawn[-1]:
    failures.append(f"the followed path was not cleared when it was no longer followed: {drawn}")


def series(entity):
    table = store.reader(index="sim_time", contents=entity).to_arrow_table()
    name = f"{entity}:Scalars:scalars"
    if name not in table.column_names:
        failures.append(f"missing column {name}")
        return []
    return [v[0] for v in table.column(name).to_pylist() if v is not None]


seen = series("/planner/goal_seen/heading_deg")
if len(seen) != len(headings) or any(abs(a - b) > 1e-9 for a, b in zip(seen, headings)):
    failures.append(f"goal seen: headings {seen}, expected {headings}")
distances = series("/planner/goal_seen/distance_m")
if len(distances) != len(expected_distances) or any(
    abs(a - b) > 1e-9 for a, b in zip(distances, expected_distances)
):
    failures.append(f"goal seen: distances {distances}, expected {expected_distances}")
flags = series("/planner/goal_seen/turning")
if flags != turning:
    failures.append(f"goal seen: turning {flags}, expected {turning}")


# The blueprint: each view's display name, space origin and contents query, by view entity
# (`/view/<id>`; its query lives at `/view/<id>/ViewContents`).
reader = RrdReader(path)
views = {}
if not reader.blueprints():
    failures.append("no blueprint in the recording")
else:
    layout = reader.stream(store=reader.blueprints()[0]).collect()
    table = layout.reader(index="blueprint").to_arrow_table()
    for name in table.column_names:
        entity, _, component = name.partition(":")
        values = [v for v in table.column(name).to_pylist() if v is not None]
        if values and component in ("ViewBlueprint:display_name", "ViewBlueprint:space_origin"):
            views.setdefault(entity, {})[component] = values[-1]
        elif values and component == "ViewContents:query":
            views.setdefault(entity.removesuffix("/ViewContents"), {})[component] = values[-1]
named = {tuple(v.get("ViewBlueprint:display_name", [])): v for v in views.values()}
goal_view = named.get(("goal seen by the relative-pose head",), {})
if goal_view.get("ViewBlueprint:space_origin") != ["/planner/goal_seen"]:
    failures.append(f"no view of /planner/goal_seen in the blueprint: {sorted(named)}")
world = named.get(("world",), {}).get("ViewContents:query", [])
if sorted(q for q in world if q.startswith("/planner/")) != [
    "/planner/memory/**",
    "/planner/path",
    "/planner/route",
]:
    failures.append(f"the world view's contents: {world}")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("planner recording OK")
