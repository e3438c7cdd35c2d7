"""The launch files, checked without ros2 launch (which no registry here offers):

- statically: every <arg> has a default; every <node pkg exec> is an executable we build; every
  <param name> and every key of launch/params/*.yaml is a parameter the node declares (asked
  from the running node over the parameter services), with the yaml's value equal to the node's
  own default; every <remap from> is a topic the node uses; parameters are read-only at run
  time (described so, a set refused with a reason);
- dynamically: the node set each launch file implies (args at their defaults, `if`/`unless`
  evaluated), started with the --ros-args ros2 launch would give, then seen through rclpy's
  graph API: node names, topics and their types.
"""

import os
import re
import time
import xml.etree.ElementTree as ET

import yaml
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, GetParameters, ListParameters, SetParameters

from harness import BIN_DIR, REPO, WORK, NodeProcess, Peer, log, run

LAUNCH = os.path.join(REPO, "launch")
PARAMS = os.path.join(LAUNCH, "params")

# What each executable publishes (p) and subscribes (s), with types: the contract DESIGN.md states.
SENSORS = {
    "camera/image_raw": "sensor_msgs/msg/Image",
    "joint_states": "sensor_msgs/msg/JointState",
    "imu/data": "sensor_msgs/msg/Imu",
    "odom": "nav_msgs/msg/Odometry",
    "cmd_vel": "geometry_msgs/msg/Twist",
}
TOPICS = {
    "sim_node": {
        "p": {
            **SENSORS,
            "camera/camera_info": "sensor_msgs/msg/CameraInfo",
            "/clock": "rosgraph_msgs/msg/Clock",
        },
        "s": {},
    },
    "autodidact_node": {
        "p": {
            "autodidact/embedding": "autodidact_msgs/msg/Embedding",
            "autodidact/trainer/status": "autodidact_msgs/msg/TrainerStatus",
            "autodidact/health": "autodidact_msgs/msg/EmbeddingHealth",
            "autodidact/weights": "autodidact_msgs/msg/ModelWeights",
        },
        "s": SENSORS,
    },
    "trainer_node": {
        "p": {
            "autodidact/trainer/status": "autodidact_msgs/msg/TrainerStatus",
            "autodidact/health": "autodidact_msgs/msg/EmbeddingHealth",
            "autodidact/weights": "autodidact_msgs/msg/ModelWeights",
        },
        "s": SENSORS,
    },
    "planner_node": {
        "p": {"cmd_vel": "geometry_msgs/msg/Twist"},
        "s": {
            **SENSORS,
            "autodidact/goal_image": "sensor_msgs/msg/Image",
            "autodidact/weights": "autodidact_msgs/msg/ModelWeights",
        },
    },
    "encoder_node": {
        "p": {
            "autodidact/embedding": "autodidact_msgs/msg/Embedding",
        },
        "s": {**SENSORS, "autodidact/weights": "autodidact_msgs/msg/ModelWeights"},
    },
}
# Parameters every rclcpp/r2r node has, which launch files may set.
STANDARD_PARAMS = {"use_sim_time"}


def substitute(text, args, here=LAUNCH):
    """$(var x), $(find-pkg-share autodidact), $(env X default), $(dirname) (the launch file's
    directory, `here`) and $(eval 'python expression'): what ros2 launch would give."""

    def one(body):
        kind, _, rest = body.partition(" ")
        if kind == "var":
            return args[rest]
        if kind == "find-pkg-share":
            assert rest == "autodidact", f"unknown package {rest}"
            return LAUNCH
        if kind == "env":
            name, _, default = rest.partition(" ")
            return os.environ.get(name, default)
        if kind == "dirname":
            return here
        if kind == "eval":
            expression = rest.strip()
            assert expression[0] == expression[-1] and expression[0] in "'\"", body
            return str(eval(expression[1:-1], {"__builtins__": {"range": range, "str": str, "min": min, "max": max}}))
        raise AssertionError(f"unsupported substitution $({body})")

    # Innermost first: a substitution's body ends at its matching parenthesis (outside quotes).
    while "$(" in text:
        start = text.rindex("$(")
        depth, quote, end = 0, None, None
        for index in range(start + 1, len(text)):
            char = text[index]
            if quote:
                quote = None if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    end = index
                    break
        assert end is not None, f"unbalanced substitution in {text!r}"
        text = text[:start] + one(text[start + 2:end]) + text[end + 1:]
    return text


def truthy(text):
    assert text in ("true", "false", "True", "False", "1", "0"), f"not a boolean: {text}"
    return text in ("true", "True", "1")


def enabled(element, args, here):
    if "if" in element.attrib and not truthy(substitute(element.attrib["if"], args, here)):
        return False
    if "unless" in element.attrib and truthy(substitute(element.attrib["unless"], args, here)):
        return False
    return True


def launch_nodes(path, overrides=None):
    """The nodes a launch file starts with its args at their defaults (plus `overrides`),
    through the files it includes."""
    root = ET.parse(path).getroot()
    here = os.path.dirname(path)
    args = {}
    for arg in root.findall("arg"):
        assert "default" in arg.attrib, f"{path}: <arg {arg.attrib['name']}> has no default"
        assert arg.attrib.get("description"), f"{path}: <arg {arg.attrib['name']}> has no description"
        args[arg.attrib["name"]] = arg.attrib["default"]
    unknown = set(overrides or {}) - set(args)
    assert not unknown, f"{path} has no args {sorted(unknown)}"
    args.update(overrides or {})
    for name in list(args):
        args[name] = substitute(args[name], args, here)
    nodes = []

    def walk(element):
        for child in element:
            if not enabled(child, args, here):
                continue
            if child.tag == "group":
                walk(child)
            elif child.tag == "include":
                given = {a.attrib["name"]: substitute(a.attrib["value"], args, here) for a in child.findall("arg")}
                nodes.extend(launch_nodes(substitute(child.attrib["file"], args, here), given))
            elif child.tag == "node":
                assert child.attrib["pkg"] == "autodidact", child.attrib
                node = {
                    "exec": child.attrib["exec"],
                    "name": child.attrib["name"],
                    "namespace": substitute(child.attrib.get("namespace", ""), args, here),
                    "files": [],
                    "params": {},
                    "remaps": {},
                }
                for item in child:
                    if item.tag == "param" and "from" in item.attrib:
                        node["files"].append(substitute(item.attrib["from"], args, here))
                    elif item.tag == "param":
                        node["params"][item.attrib["name"]] = substitute(item.attrib["value"], args, here)
                    elif item.tag == "remap":
                        node["remaps"][item.attrib["from"]] = substitute(item.attrib["to"], args, here)
                nodes.append(node)

    walk(root)
    return nodes


def yaml_params(path):
    with open(path) as f:
        document = yaml.safe_load(f)
    assert list(document) == ["/**"], f"{path}: expected one '/**' section"
    return document["/**"]["ros__parameters"]


def declared(peer, name, nodes):
    """The node's parameters and their values, over its parameter services."""
    listed = peer.call(ListParameters, f"/{name}/list_parameters", ListParameters.Request(), nodes=nodes)
    names = list(listed.result.names)
    request = GetParameters.Request()
    request.names = names
    values = peer.call(GetParameters, f"/{name}/get_parameters", request, nodes=nodes).values
    out = {}
    for key, value in zip(names, values):
        if value.type == ParameterType.PARAMETER_STRING_ARRAY:
            out[key] = list(value.string_array_value)
            continue
        out[key] = [None, value.bool_value, value.integer_value, value.double_value, value.string_value][
            value.type
        ] if value.type <= 4 else value
    return out


def check_read_only(peer, name, nodes, values):
    """Parameters are read at start: described read-only with their description, a set is
    refused with a reason, and the value stays."""
    request = DescribeParameters.Request()
    request.names = ["seed"]
    described = peer.call(DescribeParameters, f"/{name}/describe_parameters", request, nodes=nodes).descriptors
    assert len(described) == 1 and described[0].read_only, described
    assert described[0].type == ParameterType.PARAMETER_INTEGER and described[0].description, described
    change = SetParameters.Request()
    value = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=values["seed"] + 1)
    change.parameters = [Parameter(name="seed", value=value)]
    results = peer.call(SetParameters, f"/{name}/set_parameters", change, nodes=nodes).results
    assert len(results) == 1 and not results[0].successful and "read-only" in results[0].reason, results
    assert declared(peer, name, nodes)["seed"] == values["seed"], "a refused set changed the value"


def as_value(text):
    """A launch <param value> typed as launch_ros types it (YAML rules; empty stays a string)."""
    if text == "":
        return ""
    value = yaml.safe_load(text)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return value if isinstance(value, (bool, int, float, str)) else text


def main(processes):
    files = sorted(f for f in os.listdir(LAUNCH) if f.endswith(".launch.xml"))
    assert files == ["fleet.launch.xml", "fleet_robot.launch.xml", "robot.launch.xml", "sim.launch.xml"], files
    peer = Peer("autodidact_launch_check")

    # 1. Declared parameters of each executable, with their defaults (no overrides given).
    defaults = {}
    for exe in TOPICS:
        assert os.access(os.path.join(BIN_DIR, exe), os.X_OK), f"{exe} is not built"
        process = NodeProcess(exe, f"probe_{exe}")
        processes.append(process)
        defaults[exe] = declared(peer, f"probe_{exe}", processes)
        check_read_only(peer, f"probe_{exe}", processes, defaults[exe])
        processes.remove(process)
        assert process.stop() == 0, process.tail()
    log("declared:", {exe: len(p) for exe, p in defaults.items()})

    # 2. The yaml files mirror the declarations, value for value.
    for exe, yaml_file in [("sim_node", "sim.yaml")] + [(e, "learner.yaml") for e in ("autodidact_node", "trainer_node", "encoder_node", "planner_node")]:
        for key, value in yaml_params(os.path.join(PARAMS, yaml_file)).items():
            assert key in defaults[exe], f"{yaml_file}: {key} is not a parameter of {exe}"
            assert defaults[exe][key] == value, f"{yaml_file}: {key} = {value!r}, {exe} default {defaults[exe][key]!r}"
        missing = set(defaults[exe]) - set(yaml_params(os.path.join(PARAMS, yaml_file))) - STANDARD_PARAMS
        assert not missing, f"{yaml_file} does not list {sorted(missing)} of {exe}"

    # 3. Each launch file, in each of its configurations.
    recording = os.path.join(WORK, "launch.rrd")
    configurations = [
        ("sim.launch.xml", {"rerun": recording}),
        ("sim.launch.xml", {"composed": "false", "rerun": ""}),
        ("sim.launch.xml", {"plan": "true", "drive": "cmd_vel", "rerun": ""}),
        ("robot.launch.xml", {}),
        ("fleet.launch.xml", {"robots": "2", "seed": "5"}),
    ]
    for launch_file, overrides in configurations:
        implied = launch_nodes(os.path.join(LAUNCH, launch_file), overrides)
        for node in implied:
            exe = node["exec"]
            assert exe in TOPICS, f"{launch_file}: unknown executable {exe}"
            for key in node["params"]:
                assert key in defaults[exe] or key in STANDARD_PARAMS, f"{launch_file}: {exe} has no parameter {key}"
            for path in node["files"]:
                assert os.path.isfile(path), f"{launch_file}: missing {path}"
            used = set(TOPICS[exe]["p"]) | set(TOPICS[exe]["s"])
            for source in node["remaps"]:
                assert source in used, f"{launch_file}: {exe} does not use {source}"
        log(launch_file, overrides, "->", [f"{n['namespace']}/{n['name']}".lstrip("/") for n in implied])

    # 4. The installed package (cmake install of launch/, as colcon does on a robot) holds every
    #    executable the launch files name, the launch files and the params they read.
    install = os.environ.get("AUTODIDACT_ROS_INSTALL")
    if install:
        share = os.path.join(install, "share", "autodidact")
        for launch_file in files:
            assert os.path.isfile(os.path.join(share, "launch", launch_file)), launch_file
            for node in launch_nodes(os.path.join(LAUNCH, launch_file)):
                exe = os.path.join(install, "lib", "autodidact", node["exec"])
                assert os.access(exe, os.X_OK), f"{exe} not installed"
        for yaml_file in ("sim.yaml", "learner.yaml"):
            assert os.path.isfile(os.path.join(share, "params", yaml_file)), yaml_file
        assert os.path.isfile(os.path.join(install, "share", "ament_index", "resource_index", "packages", "autodidact"))
        log("installed package complete:", install)
    elif os.environ.get("AUTODIDACT_REQUIRE_ROS"):
        raise AssertionError("AUTODIDACT_ROS_INSTALL is not set: the package install was not checked")

    # 5. Start the node sets and look at the graph.
    for launch_file, overrides in configurations:
        implied = launch_nodes(os.path.join(LAUNCH, launch_file), overrides)
        started = []
        for node in implied:
            params = {k: as_value(v) for k, v in node["params"].items()}
            if node["exec"] != "sim_node":
                params["min_replay"] = 1_000_000  # the graph is checked here, not learning
                params.pop("checkpoint", None)
            # As launch_ros does: <param name value> go to a parameters file after the <param from>
            # files, so they win; values are typed the YAML way.
            inline = os.path.join(WORK, f"{launch_file}.{node['namespace'].strip('/')}.{node['name']}.params.yaml")
            with open(inline, "w") as f:
                yaml.safe_dump({"/**": {"ros__parameters": params}}, f)
            process = NodeProcess(
                node["exec"],
                node["name"],
                params_files=node["files"] + [inline],
                remaps=node["remaps"],
                namespace=node["namespace"] or None,
                log_name=f"{node['namespace'].strip('/').replace('/', '_')}_{node['name']}",
            )
            processes.append(process)
            started.append((node, process))

        def expected():
            """Every topic of every node, resolved as rcl does: remapped, then a relative name
            in the node's namespace; a trainer of several robots takes each robot's sensors in
            the robot's namespace."""
            out = {}
            for node, _ in started:
                remaps, namespace = node["remaps"], node["namespace"].strip("/")
                robots = as_value(node["params"].get("robots", "")) or [""]
                for kind in ("p", "s"):
                    for topic, msg_type in TOPICS[node["exec"]][kind].items():
                        if topic == "/clock" and as_value(node["params"].get("publish_clock", "true")) is False:
                            continue
                        per_robot = kind == "s" and topic in SENSORS
                        for robot in robots if per_robot else [""]:
                            name = remaps.get(topic, topic)
                            if robot:
                                name = f"{robot}/{name}"
                            if not name.startswith("/") and namespace:
                                name = f"{namespace}/{name}"
                            out["/" + name.lstrip("/")] = msg_type
            return out

        want = expected()

        missing = []

        def graph_ok():
            # A node is its name in its namespace (a fleet has an encoder in each robot's).
            names = set(peer.node.get_node_names_and_namespaces())
            topics = dict(peer.node.get_topic_names_and_types())
            missing[:] = [
                node["name"] for node, _ in started if (node["name"], "/" + node["namespace"].strip("/")) not in names
            ] + [
                f"{t} ({msg_type})" for t, msg_type in want.items() if msg_type not in topics.get(t, [])
            ]
            return not missing

        try:
            peer.wait_for(f"the graph of {launch_file} {overrides}", graph_ok, 90, processes)
        except AssertionError as error:
            raise AssertionError(f"missing from the graph: {missing}") from error
        log(launch_file, overrides, "graph ok:", sorted(want))
        for node, process in started:
            processes.remove(process)
            assert process.stop() == 0, process.tail()
        time.sleep(1.0)
    peer.close()


if __name__ == "__main__":
    run(main)
