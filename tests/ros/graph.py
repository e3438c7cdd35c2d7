"""sim_node + autodidact_node on sim time: the learner trains on what the sim publishes
(training status advances, encoder versions go up), embeddings flow stamped with sim images'
stamps, embedding health is published; then sim_node + trainer_node + encoder_node: the
encoder follows the trainer's checkpoints (weights_source:=checkpoint); then planner_node,
following the trainer's weights on autodidact/weights (the default), publishes the path it
follows through the memory of the exploring robot's drive, and drives sim_node
(drive:=cmd_vel) towards a goal image. Every node stops cleanly on SIGINT."""

import os

import math

from autodidact_msgs.msg import Embedding, EmbeddingHealth, TrainerStatus
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry, Path
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from harness import WORK, NodeProcess, Peer, log, run, stamp

# A planner remembers its own drive and routes through it.
REMEMBER = "[planner.remember]\nenabled = true\nevery_s = 0.05\nrebuild_after = 10\n"

FAST_TRAINING = {
    "use_sim_time": True,
    "min_replay": 48,
    "publish_every": 1,
    "health_every": 2,
    "trainer_threads": 1,
}


def check_planar_paths(paths):
    """Each nav_msgs/Path is in odom's frame, with finite planar poses and unit quaternions."""
    for path in paths:
        assert path.header.frame_id == "odom", path.header.frame_id
        for pose in path.poses:
            p, q = pose.pose.position, pose.pose.orientation
            assert all(math.isfinite(v) for v in (p.x, p.y, q.z, q.w)), pose
            assert abs(q.z * q.z + q.w * q.w - 1.0) < 1e-6, "a unit quaternion about z"


def main(nodes):
    peer = Peer()
    images = peer.record(Image, "camera/image_raw", qos_profile_sensor_data)
    embeddings = peer.record(Embedding, "autodidact/embedding")
    statuses = peer.record(TrainerStatus, "autodidact/trainer/status")
    health = peer.record(EmbeddingHealth, "autodidact/health")

    sim = NodeProcess("sim_node", "sim", params={"seed": 3, "realtime_factor": 1.0})
    nodes.append(sim)
    recording = os.path.join(WORK, "learner.rrd")
    learner = NodeProcess("autodidact_node", "autodidact", params={**FAST_TRAINING, "rerun": recording})
    nodes.append(learner)

    peer.wait_for(
        "training step 3",
        lambda: statuses and statuses[-1].train_step >= 3,
        300,
        nodes,
    )
    peer.wait_for("an embedding health report", lambda: len(health) > 0, 120, nodes)
    newest = statuses[-1]
    log(f"train step {newest.train_step}, version {newest.model_version}, replay {newest.replay_len}")
    assert newest.model_version >= 2, "no new encoder version was published"
    losses = dict(zip(newest.loss_names, newest.loss_values))
    assert "total" in losses and all(v == v for v in losses.values()), losses
    versions = sorted({m.model_version for m in embeddings})
    assert len(versions) >= 2, f"embeddings did not follow training: versions {versions}"
    image_stamps = {stamp(m.header.stamp) for m in images}
    matched = [m for m in embeddings if stamp(m.header.stamp) in image_stamps]
    assert len(matched) >= 0.9 * len(embeddings) > 0, (len(matched), len(embeddings))
    report = health[-1]
    assert report.dimension > 0 and 1.0 <= report.effective_rank <= report.dimension
    assert report.mean_std > 0.0
    drops = dict(zip(newest.drop_reasons, newest.drop_counts))
    log(f"{len(embeddings)} embeddings over versions {versions[0]}..{versions[-1]}, drops {drops}")
    assert sum(drops.values()) <= 0.05 * max(newest.transitions, 1), drops
    # The sim's commands (stamped on arrival, on /clock) pair with its frames: the learner follows
    # sim time. On another clock, every transition would get the default stop.
    log(f"{newest.actions_defaulted} of {newest.transitions} transitions without a command in effect")
    assert newest.actions_defaulted <= 0.1 * newest.transitions, (newest.actions_defaulted, newest.transitions)
    learner_code = learner.stop()
    nodes.remove(learner)
    assert learner_code == 0, learner.tail()
    with open(recording, "rb") as f:
        head = f.read(4)
    size = os.path.getsize(recording)
    assert head.startswith(b"RRF") and size > 100_000, (head, size)
    log(f"rerun recording of the learner: {size} bytes")

    # The split deployment: the trainer writes checkpoints, the encoder follows them.
    checkpoint = os.path.join(WORK, "checkpoint")
    trainer = NodeProcess(
        "trainer_node",
        "trainer",
        params={**FAST_TRAINING, "checkpoint_dir": checkpoint, "checkpoint_every": 2},
    )
    nodes.append(trainer)
    del statuses[:]
    peer.wait_for(
        "the first checkpoint",
        lambda: os.path.exists(os.path.join(checkpoint, "meta.json")),
        300,
        nodes,
    )
    encoder = NodeProcess(
        "encoder_node",
        "encoder",
        params={
            "use_sim_time": True,
            "checkpoint": checkpoint,
            "weights_source": "checkpoint",
            "reload_every_s": 0.5,
        },
    )
    nodes.append(encoder)
    del embeddings[:]
    peer.wait_for("embeddings from encoder_node", lambda: len(embeddings) > 5, 120, nodes)
    first_version = embeddings[0].model_version
    peer.wait_for(
        "encoder_node to load a newer checkpoint",
        lambda: embeddings[-1].model_version > first_version,
        300,
        nodes,
    )
    log(f"encoder_node followed the trainer from version {first_version} to {embeddings[-1].model_version}")

    # The planner follows a route through the memory of the robot's own drive by odometry,
    # and publishes the path it follows. Here it rides along on the exploring sim (its commands
    # go to a topic nothing drives by): its goal is a view this robot had a few seconds before,
    # so the goal is a place of its memory that the robot has since left.
    paths = peer.record(Path, "autodidact/planner/path")
    follow_routes = peer.record(Path, "autodidact/planner/route")
    follow_config = os.path.join(WORK, "follow.toml")
    with open(follow_config, "w") as f:
        f.write(
            REMEMBER + "\n[planner.remember.graph.follow]\nenabled = true\n"
        )
    follower = NodeProcess(
        "planner_node",
        "planner_follow",
        params={"use_sim_time": True, "config_file": follow_config},
        remaps={"cmd_vel": "follow/cmd_vel"},
    )
    nodes.append(follower)
    goals = peer.publisher(Image, "autodidact/goal_image", 10)
    peer.wait_for(
        "the following planner to subscribe to the goal",
        lambda: peer.node.count_subscribers("autodidact/goal_image") > 0,
        60,
        nodes,
    )
    # A first goal, the view now: once it routes, it has weights and remembers its drive.
    peer.spin_for(0.5)
    goals.publish(images[-1])
    peer.wait_for("a first route of the following planner", lambda: len(follow_routes) > 0, 120, nodes)
    remembered_from = stamp(images[-1].header.stamp)

    def seconds_remembered():
        return (stamp(images[-1].header.stamp) - remembered_from) * 1e-9

    # Each try: a view from 1 s after it began remembering (or later, on later tries), sent
    # once 5 s more of the drive are remembered.
    for attempt in range(4):
        peer.wait_for("5 s of the drive remembered", lambda: seconds_remembered() > 5 + 3 * attempt, 60, nodes)
        goal_stamp = remembered_from + int((1 + 3 * attempt) * 1e9)
        goals.publish(next(m for m in images if stamp(m.header.stamp) >= goal_stamp))
        peer.spin_for(8.0)
        if any(p.poses for p in paths):
            break
    assert any(p.poses for p in paths), (
        f"no path followed; routes of {sorted({len(r.poses) for r in follow_routes})} places"
    )
    check_planar_paths(paths)
    log(
        f"the following planner published {len(paths)} paths, the longest "
        f"{max(len(p.poses) for p in paths)} poses, after {attempt + 1} goal(s)"
    )
    nodes.remove(follower)
    assert follower.stop() == 0, follower.tail()
    # The next planner's goal must not go to this one's subscription.
    peer.wait_for(
        "the following planner to leave the goal topic",
        lambda: peer.node.count_subscribers("autodidact/goal_image") == 0,
        30,
        nodes,
    )

    # The planner drives: a goal image (a view the sim showed earlier) in, cmd_vel out, and the
    # robot of a sim that now takes its commands from cmd_vel moves.
    goal = images[len(images) // 2]
    nodes.remove(sim)
    assert sim.stop() == 0, sim.tail()
    commands = peer.record(Twist, "cmd_vel")
    routes = peer.record(Path, "autodidact/planner/route")
    odoms = peer.record(Odometry, "odom", qos_profile_sensor_data)
    driven = NodeProcess("sim_node", "sim_driven", params={"seed": 4, "realtime_factor": 1.0, "drive": "cmd_vel"})
    nodes.append(driven)
    # What is checked here is the graph: goal in, commands out, the sim moving with them. A
    # model trained for a few steps predicts about the same distance to the goal for every
    # command. With the default effort penalty, and a goal embedded with the proprio of a robot
    # at rest, standing still then wins every plan, correctly for that model. That says nothing
    # about the graph, so this planner has no effort penalty and takes the goal with the
    # robot's current proprio. How well plans reach goals is measured by `autodidact eval`.
    planner_config = os.path.join(WORK, "planner.toml")
    with open(planner_config, "w") as f:
        f.write(
            "[planner]\ngoal_proprio = \"current\"\n\n[planner.planner]\neffort_weight = 0.0\n"
            # The route through the memory of its own drive comes out as a Path.
            "\n" + REMEMBER
        )
    planner = NodeProcess(
        "planner_node",
        "planner",
        params={
            "use_sim_time": True,
            "config_file": planner_config,
        },
    )
    nodes.append(planner)
    goal_publisher = peer.publisher(Image, "autodidact/goal_image", 10)
    peer.wait_for(
        "planner_node to subscribe to the goal",
        lambda: peer.node.count_subscribers("autodidact/goal_image") > 0,
        60,
        nodes,
    )
    peer.spin_for(0.5)
    goal_publisher.publish(goal)
    peer.wait_for("20 planner commands", lambda: len(commands) >= 20, 180, nodes)
    # Standing still stays one candidate of each plan; the robot must get others too. The
    # trainer keeps training and the planner follows its weights, so wait for one.
    peer.wait_for(
        "a planner command other than stop",
        lambda: any(abs(c.linear.x) + abs(c.angular.z) > 1e-3 for c in commands),
        120,
        nodes,
    )
    for command in commands:
        assert math.isfinite(command.linear.x) and math.isfinite(command.angular.z)
        assert abs(command.linear.x) <= 0.5 + 1e-6 and abs(command.angular.z) <= 2.0 + 1e-6, command

    # The sim drives with what it receives: its odometry reports the commanded motion. (How far
    # the robot gets depends on what the briefly trained model plans; that is eval's business.)
    def motion():
        return max((abs(o.twist.twist.linear.x) + abs(o.twist.twist.angular.z) for o in odoms), default=0.0)

    peer.wait_for("the planner's commands to move the robot", lambda: motion() > 0.02, 120, nodes)

    # The route through the memory of its own drive: places at odometry poses, in odom's frame.
    peer.wait_for("a route through the planner's memory", lambda: len(routes) > 0, 60, nodes)
    assert all(route.poses for route in routes)
    check_planar_paths(routes)
    log(f"planner published {len(routes)} routes, the longest {max(len(r.poses) for r in routes)} places")
    largest = max(abs(c.linear.x) + abs(c.angular.z) for c in commands)
    log(f"planner sent {len(commands)} commands (largest |v|+|w| {largest:.2f}); odometry |v|+|w| up to {motion():.2f}")
    peer.close()


if __name__ == "__main__":
    run(main)
