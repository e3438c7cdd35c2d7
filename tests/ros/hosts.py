"""Hosts for real: each "host" is its own network namespace on a bridge, with its own scratch
directory, so nothing passes but the network (Fast DDS over UDPv4 with the others as static
peers). Host A runs trainer_node for a fleet of two robots; hosts B and C each run one simulated
robot (sim_node in /robot1 or /robot2, stamping with the system clock) and its encoder_node,
which follows the weights A publishes on /autodidact/weights. The test watches from a fourth
namespace:

- the trainer learns from both robots, each with its own collector, episodes and counters;
- embeddings on B and C carry versions that A published;
- an encoder started after A has published gets the newest version at once;
- A's link goes down for 10 s: B and C keep embedding with the last weights, nothing crashes,
  versions flow again when the link is back, and the versions that could not be delivered are
  counted by the encoders (and the outage is a new episode of each robot at the trainer).

Wire sizes and publish->applied times are printed for the notes. Needs root and `ip`; without
them the test says so and passes, unless AUTODIDACT_REQUIRE_ROS is set.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

from harness import WORK, log

DOMAIN = int(os.environ.get("ROS_DOMAIN_ID", "66"))
# Names of this run's namespaces and devices (the body, in another process, inherits them).
PREFIX = os.environ.get("AUTODIDACT_HOSTS_PREFIX") or f"ad{DOMAIN}p{os.getpid() % 1000}"
SUBNET = f"10.201.{DOMAIN % 250}"
HOSTS = {"a": 1, "b": 2, "c": 3, "o": 9}
OUTAGE_S = 10.0


def sh(*args):
    subprocess.run(args, check=True, capture_output=True, text=True)


def netns(host):
    return f"{PREFIX}{host}"


def device(host):
    return f"{PREFIX}{host}"


def make_hosts():
    """A bridge in its own namespace and one namespace per host, each joined to it by a veth."""
    switch = netns("sw")
    sh("ip", "netns", "add", switch)
    sh("ip", "-n", switch, "link", "set", "lo", "up")
    sh("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", switch, "link", "set", "br0", "up")
    for host, number in HOSTS.items():
        ns, dev = netns(host), device(host)
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", dev, "type", "veth", "peer", "name", dev + "s")
        sh("ip", "link", "set", dev, "netns", ns)
        sh("ip", "link", "set", dev + "s", "netns", switch)
        sh("ip", "-n", switch, "link", "set", dev + "s", "master", "br0")
        sh("ip", "-n", switch, "link", "set", dev + "s", "up")
        sh("ip", "-n", ns, "addr", "add", f"{SUBNET}.{number}/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")


def plain_log(node):
    """A node's log without terminal colours."""
    node.log_file.flush()
    with open(node.log_path) as f:
        return re.sub(r"\x1b\[[0-9;]*m", "", f.read())


def remove_hosts():
    for host in list(HOSTS) + ["sw"]:
        subprocess.run(["ip", "netns", "del", netns(host)], capture_output=True)


def outside():
    """Makes the hosts, runs the test body in the watcher's namespace, removes the hosts."""
    reason = None
    if os.geteuid() != 0:
        reason = "network namespaces need root"
    elif shutil.which("ip") is None:
        reason = "no `ip` command (iproute2)"
    if reason is None:
        try:
            make_hosts()
        except subprocess.CalledProcessError as error:
            reason = f"cannot make network namespaces: {' '.join(error.cmd)}: {error.stderr.strip()}"
            remove_hosts()
    if reason is not None:
        if os.environ.get("AUTODIDACT_REQUIRE_ROS"):
            sys.exit(f"AUTODIDACT_REQUIRE_ROS is set but the hosts test cannot run: {reason}")
        log("skipped:", reason)
        return
    try:
        env = dict(os.environ)
        # Fast DDS between hosts: UDPv4 only (the namespaces share /dev/shm, and shared memory
        # would pass around a cut link), the other hosts as static peers; not the loopback-only
        # profile of the other tests.
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
        env["FASTDDS_BUILTIN_TRANSPORTS"] = "UDPv4"
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "SUBNET"
        env["ROS_STATIC_PEERS"] = ";".join(f"{SUBNET}.{n}" for n in HOSTS.values())
        env["AUTODIDACT_HOSTS"] = json.dumps({h: netns(h) for h in HOSTS})
        env["AUTODIDACT_HOSTS_PREFIX"] = PREFIX
        inside = ["ip", "netns", "exec", netns("o"), sys.executable, "-u", __file__, "--inside"]
        code = subprocess.run(inside, env=env).returncode
    finally:
        remove_hosts()
    if code != 0:
        sys.exit(code)


def inside():
    from autodidact_msgs.msg import Embedding, ModelWeights, TrainerStatus
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from harness import NodeProcess, Peer, run

    hosts = json.loads(os.environ["AUTODIDACT_HOSTS"])

    def on(host):
        return ["ip", "netns", "exec", hosts[host]]

    def host_dir(host):
        path = os.path.join(WORK, f"host_{host}")
        os.makedirs(path, exist_ok=True)
        return path

    def link(host, state):
        sh("ip", "-n", hosts[host], "link", "set", device(host), state)

    weights_qos = QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    )
    weights_remap = {"autodidact/weights": "/autodidact/weights"}

    def main(nodes):
        peer = Peer("autodidact_hosts_watcher")
        statuses = peer.record(TrainerStatus, "/autodidact/trainer/status")
        published = peer.record(ModelWeights, "/autodidact/weights", weights_qos)
        embedded = {r: peer.record(Embedding, f"/{r}/autodidact/embedding", 50) for r in ("robot1", "robot2")}
        late = peer.record(Embedding, "/robot1/late/embedding", 50)

        trainer = NodeProcess(
            "trainer_node",
            "trainer",
            params={
                "robots": ["robot1", "robot2"],
                "min_replay": 48,
                "publish_every": 1,
                "trainer_threads": 1,
                "health_every": 0,
                "weights_every_s": 1.0,
                "checkpoint_dir": os.path.join(host_dir("a"), "checkpoint"),
                "checkpoint_every": 20,
            },
            prefix=on("a"),
        )
        nodes.append(trainer)
        robots = {}
        for host, robot, seed in (("b", "robot1", 11), ("c", "robot2", 22)):
            sim = NodeProcess(
                "sim_node",
                "sim",
                params={"seed": seed, "stamps": "system", "publish_clock": False},
                namespace=f"/{robot}",
                prefix=on(host),
                log_name=f"{robot}_sim",
            )
            encoder = NodeProcess(
                "encoder_node",
                "encoder",
                remaps=weights_remap,
                namespace=f"/{robot}",
                prefix=on(host),
                log_name=f"{robot}_encoder",
            )
            nodes += [sim, encoder]
            robots[robot] = encoder

        # 1. One trainer, two robots: each its own collector, episodes and counters.
        def both_robots_trained():
            if not statuses or statuses[-1].train_step < 3:
                return False
            inputs = statuses[-1].robots
            return len(inputs) == 2 and all(r.transitions > 20 for r in inputs)

        peer.wait_for("training on both robots' data", both_robots_trained, 300, nodes)
        status = statuses[-1]
        names = [r.name for r in status.robots]
        assert names == ["robot1", "robot2"], names
        for robot in status.robots:
            drops = dict(zip(robot.drop_reasons, robot.drop_counts))
            assert robot.episodes >= 1 and robot.frames >= robot.transitions > 0, robot
            assert robot.replay_len > 0, robot
            assert sum(drops.values()) <= 0.1 * robot.received, (robot.name, drops)
            log(f"{robot.name}: {robot.received} received, {robot.transitions} transitions, "
                f"{robot.episodes} episodes, replay {robot.replay_len}, drops {drops}")
        assert status.transitions == sum(r.transitions for r in status.robots), status
        assert status.replay_len == sum(r.replay_len for r in status.robots), status

        # 2. The encoders on B and C follow the versions A publishes.
        def following(robot, above=0):
            return any(m.model_version > above for m in embedded[robot])

        for robot in embedded:
            peer.wait_for(f"{robot}'s encoder on a published version", lambda r=robot: following(r), 180, nodes)
        sent = {m.model_version for m in published}
        assert published and all(m.architecture.startswith("sha256:") for m in published), len(published)
        for robot, messages in embedded.items():
            versions = sorted({m.model_version for m in messages} - {0})
            assert set(versions) <= sent, (robot, versions, sorted(sent))
            log(f"{robot} embedded with versions {versions[0]}..{versions[-1]}")
        size = len(published[-1].weights)
        log(f"one version on the wire: {size} bytes of safetensors ({size / 2**20:.2f} MiB)")

        # 3. An encoder that starts after A has published gets the newest version at once.
        newest = max(sent)
        started = time.monotonic()
        late_encoder = NodeProcess(
            "encoder_node",
            "encoder_late",
            remaps={**weights_remap, "autodidact/embedding": "late/embedding"},
            namespace="/robot1",
            prefix=on("b"),
            log_name="robot1_encoder_late",
        )
        nodes.append(late_encoder)
        peer.wait_for(
            "the late encoder on the newest version",
            lambda: any(m.model_version >= newest for m in late),
            60,
            nodes,
        )
        log(f"late encoder on version >= {newest} after {time.monotonic() - started:.1f} s")
        older = [m.model_version for m in late if 0 < m.model_version < newest]
        assert not older, f"the late encoder served older versions first: {older}"
        nodes.remove(late_encoder)
        assert late_encoder.stop() == 0, late_encoder.tail()

        # 4. A's link goes down for OUTAGE_S: B and C keep embedding with the last weights.
        def caught_up():
            newest = max(m.model_version for m in published)
            return newest >= 2 and all(m and m[-1].model_version == newest for m in embedded.values())

        peer.wait_for("both encoders on the newest version", caught_up, 120, nodes)
        before = {r: len(m) for r, m in embedded.items()}
        episodes_before = [r.episodes for r in statuses[-1].robots]
        link("a", "down")
        cut_at = time.monotonic()
        try:
            peer.spin_for(OUTAGE_S)
        finally:
            link("a", "up")
        # Newer than anything delivered before or during the outage.
        last_version = max(m.model_version for m in published)
        for robot, messages in embedded.items():
            during = messages[before[robot]:]
            last_version = max([last_version] + [m.model_version for m in during])
            assert len(during) >= 20, f"{robot} stopped embedding while A was away ({len(during)})"
            versions = {m.model_version for m in during}
            log(f"{robot}: {len(during)} embeddings during the {OUTAGE_S:.0f} s outage, versions {sorted(versions)}")
        for node in nodes:
            assert node.alive(), f"{node.name} died during the outage\n{node.tail()}"

        # Versions flow again, and what could not be delivered was counted.
        for robot in embedded:
            peer.wait_for(
                f"{robot} on a version newer than before the outage",
                lambda r=robot: embedded[r][-1].model_version > last_version,
                90,
                nodes,
            )
        log(f"versions flowed again {time.monotonic() - cut_at - OUTAGE_S:.1f} s after the link came back")
        peer.wait_for(
            "the outage as a new episode of each robot",
            lambda: all(r.episodes > e for r, e in zip(statuses[-1].robots, episodes_before)),
            60,
            nodes,
        )
        for robot, encoder in robots.items():
            missed = [int(n) for n in re.findall(r"published but not received[^\n]*\bmissed=(\d+)", plain_log(encoder))]
            assert missed and sum(missed) >= 1, f"{robot}: versions lost in the outage were not counted\n{encoder.tail()}"
            log(f"{robot}'s encoder counted {sum(missed)} versions published but not received")

        # Publish -> applied on the other hosts, for the notes.
        after = []
        for encoder in robots.values():
            after += [float(x) for x in re.findall(r"weights applied[^\n]*\bafter_ms=([0-9.]+)", plain_log(encoder))]
        after.sort()
        assert after, "no applied versions were logged"
        p50 = after[len(after) // 2]
        p99 = after[min(len(after) - 1, int(len(after) * 0.99))]
        log(f"publish -> applied over {len(after)} versions: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {after[-1]:.1f} ms")
        peer.close()

    run(main)


if __name__ == "__main__":
    if "--inside" in sys.argv:
        inside()
    else:
        outside()
