"""Shared pieces of the ROS 2 tests: start the r2r node executables with --ros-args, an rclpy
peer node, bounded waits, clean shutdown. Run by nodes/tests/ros.rs, which sets:

  AUTODIDACT_BIN_DIR     where sim_node, autodidact_node, trainer_node, encoder_node are
  AUTODIDACT_REPO        the repository root (launch/, tests/ros/)
  AUTODIDACT_WORK        a scratch directory for logs and checkpoints
  ROS_DOMAIN_ID, FASTDDS_DEFAULT_PROFILES_FILE (loopback only)
"""

import os
import signal
import subprocess
import sys
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data

BIN_DIR = os.environ["AUTODIDACT_BIN_DIR"]
REPO = os.environ["AUTODIDACT_REPO"]
WORK = os.environ["AUTODIDACT_WORK"]
WHEELS = ["left_wheel_joint", "right_wheel_joint"]


def log(*parts):
    print("[ros-test]", *parts, flush=True)


def param_arg(name, value):
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    return ["-p", f"{name}:={text}"]


class NodeProcess:
    """One node executable, started with --ros-args; its output goes to a log file."""

    def __init__(self, exe, name, params=None, params_files=(), remaps=None, namespace=None, prefix=(), env=None, log_name=None):
        """`namespace`: the node's namespace; `prefix`: a command the node runs under (such as
        `ip netns exec HOST`); `env`: variables added to the environment."""
        self.exe = exe
        self.name = name
        self.log_path = os.path.join(WORK, f"{log_name or name}.log")
        args = list(prefix) + [os.path.join(BIN_DIR, exe), "--ros-args", "-r", f"__node:={name}"]
        if namespace:
            # As ros2 launch does, a relative namespace is taken from the root.
            args += ["-r", f"__ns:=/{namespace.lstrip('/')}"]
        for path in params_files:
            args += ["--params-file", path]
        for key, value in (params or {}).items():
            args += param_arg(key, value)
        for source, target in (remaps or {}).items():
            args += ["-r", f"{source}:={target}"]
        # No LD_PRELOAD: the executables must run as built (nodes/build.rs links libpython for
        # the wheels' libraries when scripts/ros-env asked for it).
        env = {**os.environ, **(env or {})}
        env.setdefault("RUST_LOG", "info")
        self.args = args
        self.log_file = open(self.log_path, "w")
        log("start", " ".join(args))
        self.proc = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT, env=env)

    def alive(self):
        return self.proc.poll() is None

    def tail(self, lines=40):
        self.log_file.flush()
        with open(self.log_path) as f:
            return "".join(f.readlines()[-lines:])

    def stop(self, timeout=60):
        """SIGINT (as ros2 launch does), then the exit code; kill after `timeout` s."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.name} ignored SIGINT for {timeout} s\n{self.tail()}")
        self.log_file.close()
        return self.proc.returncode


class Peer:
    """An rclpy node that publishes and records; everything is spun from here."""

    def __init__(self, name="autodidact_test_peer"):
        rclpy.init()
        self.node = rclpy.create_node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.received = {}

    def record(self, msg_type, topic, qos=10):
        bucket = self.received.setdefault(topic, [])
        self.node.create_subscription(msg_type, topic, bucket.append, qos)
        return bucket

    def publisher(self, msg_type, topic, qos=qos_profile_sensor_data):
        return self.node.create_publisher(msg_type, topic, qos)

    def spin_for(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(0.0, end - time.monotonic())))

    def wait_for(self, what, predicate, timeout, nodes=()):
        """Spins until `predicate()` holds; fails with `what` and the nodes' logs after `timeout`."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return
            for node in nodes:
                if not node.alive():
                    raise AssertionError(f"{node.name} exited while waiting for {what}\n{node.tail()}")
            self.executor.spin_once(timeout_sec=0.05)
        logs = "\n".join(f"--- {n.name}\n{n.tail()}" for n in nodes)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs}")

    def call(self, srv_type, name, request, timeout=30, nodes=(), ask_again_after=5.0):
        """Calls a service and returns the response. A request whose reply does not come within
        `ask_again_after` s is sent again: Fast DDS drops a reply (the server logs it) when the
        server has not yet discovered the client's reply reader, which happens on a loaded
        machine. Only idempotent services are called this way."""
        client = self.node.create_client(srv_type, name)
        self.wait_for(f"service {name}", lambda: client.service_is_ready(), timeout, nodes)
        end = time.monotonic() + timeout
        attempts = 0
        while True:
            attempts += 1
            future = client.call_async(request)
            patience = min(ask_again_after, end - time.monotonic())
            try:
                self.wait_for(f"response from {name}", future.done, patience, nodes)
                return future.result()
            except AssertionError:
                if not future.done() and all(node.alive() for node in nodes) and time.monotonic() < end:
                    client.remove_pending_request(future)
                    log(f"no response from {name} after {patience:.1f} s; asking again (attempt {attempts + 1})")
                    continue
                raise

    def close(self):
        self.node.destroy_node()
        rclpy.shutdown()


def stamp(msg_time):
    return msg_time.sec * 1_000_000_000 + msg_time.nanosec


def set_stamp(header, ns):
    header.stamp.sec = ns // 1_000_000_000
    header.stamp.nanosec = ns % 1_000_000_000


def run(main):
    """Runs a test body, stopping every node it started, with a nonzero exit on failure."""
    nodes = []
    try:
        main(nodes)
    except Exception:
        import traceback

        traceback.print_exc()
        for node in nodes:
            try:
                node.stop(timeout=10)
            except Exception:
                pass
        sys.exit(1)
    for node in nodes:
        code = node.stop()
        if code != 0:
            print(node.tail(), flush=True)
            sys.exit(f"{node.name} exited with {code}")
    log("passed")
