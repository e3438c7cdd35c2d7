"""Images in every encoding (with row padding) plus proprio in -> autodidact/embedding out, each
with its source image's stamp and the model's dimension; the same pixels give the same embedding
whatever the encoding; a malformed corpus is dropped and counted while the node keeps serving;
rollout requests get answers, and clear errors for wrong dimensions or empty action lists."""

import math
import random

from autodidact_msgs.msg import Embedding, TrainerStatus
from autodidact_msgs.srv import Rollout
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Image, Imu, JointState

from harness import WHEELS, NodeProcess, Peer, log, run, set_stamp, stamp

SIDE = 64
NS = 1_000_000_000


def pixels(seed):
    rng = random.Random(seed)
    return [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(SIDE * SIDE)]


def encode(rgb, encoding, pad):
    """rgb pixels -> (data, step) in `encoding`, each row followed by `pad` junk bytes.
    `rgb8@2x` is the scene at twice the resolution (each pixel a 2×2 block); the 16-bit
    encodings carry the 8-bit value in their high byte and junk in the low one."""
    if encoding == "rgb8@2x":
        data = bytearray()
        for row in range(SIDE):
            line = bytearray()
            for r, g, b in rgb[row * SIDE:(row + 1) * SIDE]:
                line += bytes((r, g, b)) * 2
            line += bytes([0xAB] * pad)
            data += line + line
        return bytes(data), 2 * SIDE * 3 + pad
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1,
                "rgb16": 6, "bgr16": 6, "mono16": 2}[encoding]
    data = bytearray()
    for row in range(SIDE):
        for r, g, b in rgb[row * SIDE:(row + 1) * SIDE]:
            if encoding == "rgb8":
                data += bytes((r, g, b))
            elif encoding == "bgr8":
                data += bytes((b, g, r))
            elif encoding == "rgba8":
                data += bytes((r, g, b, 255))
            elif encoding == "bgra8":
                data += bytes((b, g, r, 255))
            elif encoding == "rgb16":  # little-endian: the low (junk) byte first
                data += bytes((0x5A, r, 0x5A, g, 0x5A, b))
            elif encoding == "bgr16":  # sent big-endian: the high byte first
                data += bytes((b, 0x5A, g, 0x5A, r, 0x5A))
            elif encoding == "mono16":
                data += bytes((0x5A, g))
            else:
                data.append(g)
        data += bytes([0xAB] * pad)
    return bytes(data), SIDE * channels + pad


class Robot:
    """Publishes proprio + images the way a robot's drivers would."""

    def __init__(self, peer):
        self.images = peer.publisher(Image, "camera/image_raw")
        self.joints = peer.publisher(JointState, "joint_states")
        self.imu = peer.publisher(Imu, "imu/data")
        self.odom = peer.publisher(Odometry, "odom")

    def proprio(self, ns, velocity=(1.0, 1.2), names=WHEELS):
        joints = JointState()
        set_stamp(joints.header, ns)
        joints.name = list(names)
        joints.position = [0.0] * len(names)
        joints.velocity = [float(v) for v in velocity][: len(names)]
        self.joints.publish(joints)
        imu = Imu()
        set_stamp(imu.header, ns)
        imu.orientation.w = 1.0
        imu.angular_velocity.z = 0.1
        imu.linear_acceleration.z = 9.81
        self.imu.publish(imu)
        odom = Odometry()
        set_stamp(odom.header, ns)
        odom.pose.pose.orientation.w = 1.0
        odom.twist.twist.linear.x = 0.2
        self.odom.publish(odom)

    def image(self, ns, data, step, encoding, width=SIDE, height=SIDE, sec=None,
              frame_id="test_camera", bigendian=False):
        image = Image()
        image.is_bigendian = 1 if bigendian else 0
        set_stamp(image.header, ns)
        if sec is not None:
            image.header.stamp.sec = sec
        image.header.frame_id = frame_id
        image.width, image.height = width, height
        image.encoding = encoding
        image.step = step
        image.data = data
        self.images.publish(image)


def main(nodes):
    learner = NodeProcess(
        "autodidact_node",
        "autodidact",
        # Training on, but it never starts (the replay buffer never fills): the weights stay
        # fixed, and the trainer's status reports the drop counts.
        params={"seed": 7, "min_replay": 1_000_000, "rollout_frames": 64},
    )
    nodes.append(learner)
    peer = Peer()
    embeddings = peer.record(Embedding, "autodidact/embedding")
    statuses = peer.record(TrainerStatus, "autodidact/trainer/status")
    robot = Robot(peer)
    peer.wait_for(
        "the learner to subscribe to camera/image_raw",
        lambda: peer.node.count_subscribers("camera/image_raw") > 0
        and peer.node.count_publishers("autodidact/embedding") > 0,
        60,
        nodes,
    )
    peer.spin_for(1.0)

    scene_a, scene_b = pixels(1), pixels(2)
    sent = {}  # stamp -> (scene, encoding)
    ns = 10 * NS
    cases = []
    for repeat in range(2):
        for scene_name, scene in (("a", scene_a), ("b", scene_b)):
            for encoding in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "rgb16", "bgr16",
                             "mono16", "rgb8@2x"):
                pad = 0 if encoding == "rgb8" else 5
                cases.append((scene_name, scene, encoding, pad))
    for scene_name, scene, encoding, pad in cases:
        data, step = encode(scene, encoding, pad)
        ns += NS // 10
        robot.proprio(ns)
        peer.spin_for(0.02)
        wire, side = ("rgb8", 2 * SIDE) if encoding == "rgb8@2x" else (encoding, SIDE)
        robot.image(ns, data, step, wire, width=side, height=side, bigendian=encoding == "bgr16")
        sent[ns] = (scene_name, encoding)
        peer.spin_for(0.25)
    newest_image = ns
    peer.wait_for(
        f"{len(sent)} embeddings", lambda: len(embeddings) >= len(sent), 60, nodes
    )
    log(f"{len(embeddings)} embeddings for {len(sent)} images")

    by_stamp = {}
    for message in embeddings:
        source = stamp(message.header.stamp)
        assert source in sent, f"embedding stamped {source} matches no image sent"
        assert message.header.frame_id == "test_camera", message.header.frame_id
        by_stamp[source] = list(message.data)
    assert set(by_stamp) == set(sent), f"missing embeddings for {set(sent) - set(by_stamp)}"
    dimensions = {len(v) for v in by_stamp.values()}
    versions = {m.model_version for m in embeddings}
    assert len(dimensions) == 1 and min(dimensions) > 0, dimensions
    assert len(versions) == 1, f"weights changed without training: {versions}"
    assert all(math.isfinite(x) for v in by_stamp.values() for x in v)

    def same(u, v):
        return max(abs(x - y) for x, y in zip(u, v)) <= 1e-6

    groups = {}
    for source, vector in by_stamp.items():
        scene_name, encoding = sent[source]
        key = (scene_name, "grey" if encoding in ("mono8", "mono16") else "colour")
        groups.setdefault(key, []).append(vector)
    for key, vectors in groups.items():
        for vector in vectors[1:]:
            assert same(vectors[0], vector), f"{key}: same pixels, different embedding"
    assert not same(groups[("a", "colour")][0], groups[("b", "colour")][0]), "scenes a and b embed alike"
    dimension = dimensions.pop()
    log(f"embedding dimension {dimension}; every encoding of a scene, and the scene at twice "
        "the resolution, embeds identically")

    # --- malformed corpus: each is dropped and counted; the node keeps serving.
    good, good_step = encode(scene_a, "rgb8", 0)
    ns += NS
    robot.proprio(ns)
    expected = {}

    def expect(reason, count=1):
        expected[reason] = expected.get(reason, 0) + count

    corpus_ns = ns

    def bad_image(reason, *args, **kwargs):
        # Paced like a camera: the node subscribes with the sensor-data QoS (best effort, keep
        # the last 5), so a burst of more than 5 images may lose the oldest by design.
        robot.image(corpus_ns, *args, **kwargs)
        expect(reason)
        peer.spin_for(0.05)

    bad_image("bad_image_step", good[:-10], good_step, "rgb8")
    bad_image("bad_image_step", good, SIDE * 3 - 1, "rgb8")
    bad_image("unknown_encoding", good, good_step, "32FC1")
    bad_image("empty_image", b"", 0, "rgb8", width=0, height=0)
    # A header claiming 1e10 pixels over a few bytes is refused before anything is allocated;
    # and a refused image does not rename the camera frame of the embeddings, however long its id.
    bad_image("wrong_image_size", good, 100_000 * 3, "rgb8", width=100_000, height=100_000,
              frame_id="refused_" + "x" * 100_000)
    bad_image("bad_stamp", good, good_step, "rgb8", sec=-5)
    peer.spin_for(0.3)
    ns += NS // 10
    robot.proprio(ns, velocity=(float("nan"), 1.0)); expect("non_finite")
    peer.spin_for(0.1)
    ns += NS // 10
    robot.proprio(ns, names=WHEELS[:1]); expect("missing_joint")
    peer.spin_for(0.1)
    # A stamp going back a little: older than the newest image the node has accepted.
    # (A jump back of more than restart_after_s, 1 s, would start a new episode instead.)
    robot.image(newest_image - NS // 2, good, good_step, "rgb8"); expect("stamp_not_increasing")
    peer.spin_for(0.5)
    def embedded(stamp_ns, what, frame_id="test_camera"):
        """Sends a good frame stamped stamp_ns and returns its embedding."""
        robot.proprio(stamp_ns)
        peer.spin_for(0.05)
        robot.image(stamp_ns, good, good_step, "rgb8", frame_id=frame_id)
        peer.wait_for(
            what, lambda: any(stamp(m.header.stamp) == stamp_ns for m in embeddings), 30, nodes
        )
        return next(m for m in embeddings if stamp(m.header.stamp) == stamp_ns)

    # Still serving: a good frame after all that is embedded, still named by the good frames'
    # frame_id (the refused image's did not stick).
    ns += NS // 10
    after = embedded(ns, "an embedding after the malformed corpus")
    assert after.header.frame_id == "test_camera", after.header.frame_id[:40]
    # A good image's frame_id is carried over, bounded to 256 bytes.
    ns += NS // 10
    long_id = "long_" + "y" * 5000
    carried = embedded(ns, "an embedding of an image with a long frame_id", long_id).header.frame_id
    assert carried.startswith("long_y") and len(carried) == 256, (carried[:20], len(carried))
    last_good = ns

    def counts():
        if not statuses:
            return {}
        newest = statuses[-1]
        return dict(zip(newest.drop_reasons, newest.drop_counts))

    peer.wait_for(
        f"drop counts {expected}",
        lambda: all(counts().get(r, 0) >= n for r, n in expected.items()),
        30,
        nodes,
    )
    log("drops counted:", {r: c for r, c in counts().items() if c})
    assert learner.alive(), "the learner died on malformed input"

    # --- rollouts: answers and clear errors.
    K, H = 3, 4
    request = Rollout.Request()
    request.start = by_stamp[min(by_stamp)]
    request.candidates, request.horizon = K, H
    request.actions = [0.2, 0.5] * (K * H)
    request.goal = by_stamp[max(by_stamp)]
    answer = peer.call(Rollout, "autodidact/rollout", request, nodes=nodes)
    assert answer.success, answer.message
    assert (answer.candidates, answer.horizon, answer.dimension) == (K, H, dimension)
    assert len(answer.predicted) == K * H * dimension and len(answer.distances) == K * H
    assert all(math.isfinite(x) for x in answer.predicted)
    # From a frame stamp instead of an embedding: the frame the node saw at that stamp.
    by_frame = Rollout.Request()
    by_frame.start_stamp.sec, by_frame.start_stamp.nanosec = divmod(last_good, NS)
    by_frame.candidates, by_frame.horizon = K, H
    by_frame.actions = list(request.actions)
    answer_frame = peer.call(Rollout, "autodidact/rollout", by_frame, nodes=nodes)
    assert answer_frame.success, answer_frame.message
    assert len(answer_frame.predicted) == K * H * dimension and len(answer_frame.distances) == 0

    def refused(req, words):
        reply = peer.call(Rollout, "autodidact/rollout", req, nodes=nodes)
        assert not reply.success, f"accepted a bad request ({words})"
        assert words in reply.message, f"{words!r} not in {reply.message!r}"
        log("refused:", reply.message)

    wrong_start = Rollout.Request()
    wrong_start.start = [0.0] * (dimension + 1)
    wrong_start.candidates, wrong_start.horizon, wrong_start.actions = 1, 1, [0.0, 0.0]
    refused(wrong_start, "start")
    empty = Rollout.Request()
    empty.start = request.start
    refused(empty, "empty action list")
    ragged = Rollout.Request()
    ragged.start, ragged.candidates, ragged.horizon, ragged.actions = request.start, 2, 2, [0.0] * 7
    refused(ragged, "actions has 7 values")
    wrong_goal = Rollout.Request()
    wrong_goal.start, wrong_goal.candidates, wrong_goal.horizon = request.start, 1, 1
    wrong_goal.actions, wrong_goal.goal = [0.0, 0.0], [1.0, 2.0]
    refused(wrong_goal, "goal")
    # Requests that would ask for gigabytes are refused before anything is allocated for them.
    huge = Rollout.Request()
    huge.start, huge.candidates, huge.horizon = request.start, 100_000, 100
    huge.actions = [0.0, 0.0]
    refused(huge, "too large")
    wide_start = Rollout.Request()
    wide_start.start = [0.0] * (dimension * 1000)
    wide_start.candidates, wide_start.horizon = 1000, 1
    wide_start.actions = [0.0, 0.0] * 1000
    refused(wide_start, "start has")
    unknown = Rollout.Request()
    unknown.start_stamp.sec = 1
    unknown.candidates, unknown.horizon, unknown.actions = 1, 1, [0.0, 0.0]
    refused(unknown, "no camera frame stamped")
    assert learner.alive()
    peer.close()


if __name__ == "__main__":
    run(main)
