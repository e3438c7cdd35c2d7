"""A camera behind image_transport's `compressed` plugin and a Nav2-style base: the learner with
`image_transport:=compressed` and `cmd_vel_stamped:=true` takes 640×480 JPEG
sensor_msgs/CompressedImage on camera/image_raw/compressed and geometry_msgs/TwistStamped on
cmd_vel from an rclpy peer, embeds every frame (stamped with the image's own stamp), pairs each
with the command in effect, and counts garbage JPEG as undecodable while it keeps serving.

The JPEG files come from the Rust test ($AUTODIDACT_WORK/camera_*.jpg): the ROS venv has no
image library."""

import os
from pathlib import Path

from autodidact_msgs.msg import Embedding, TrainerStatus
from geometry_msgs.msg import TwistStamped
from sensor_msgs.msg import CompressedImage

from embeddings import Robot
from harness import NodeProcess, Peer, log, run, set_stamp, stamp

NS = 1_000_000_000


def main(nodes):
    frames = sorted(Path(os.environ["AUTODIDACT_WORK"]).glob("camera_*.jpg"))
    assert len(frames) >= 10, frames
    learner = NodeProcess(
        "autodidact_node",
        "autodidact",
        params={
            "seed": 3,
            "min_replay": 1_000_000,
            "image_transport": "compressed",
            "cmd_vel_stamped": True,
        },
    )
    nodes.append(learner)
    peer = Peer()
    embeddings = peer.record(Embedding, "autodidact/embedding")
    statuses = peer.record(TrainerStatus, "autodidact/trainer/status")
    robot = Robot(peer)
    camera = peer.publisher(CompressedImage, "camera/image_raw/compressed")
    commands = peer.publisher(TwistStamped, "cmd_vel", qos=10)
    peer.wait_for(
        "the learner to subscribe to camera/image_raw/compressed and cmd_vel",
        lambda: peer.node.count_subscribers("camera/image_raw/compressed") > 0
        and peer.node.count_subscribers("cmd_vel") > 0
        and peer.node.count_subscribers("camera/image_raw") == 0,
        60,
        nodes,
    )
    peer.spin_for(1.0)

    sent = []
    ns = 20 * NS
    for i, path in enumerate(frames):
        ns += NS // 10
        robot.proprio(ns)
        command = TwistStamped()
        set_stamp(command.header, ns - NS // 100)
        command.header.frame_id = "base_link"
        command.twist.linear.x = 0.2
        command.twist.angular.z = 0.1 * (i % 3 - 1)
        commands.publish(command)
        peer.spin_for(0.02)
        image = CompressedImage()
        set_stamp(image.header, ns)
        image.header.frame_id = "front_camera"
        image.format = "rgb8; jpeg compressed bgr8"
        image.data = path.read_bytes()
        camera.publish(image)
        sent.append(ns)
        peer.spin_for(0.25)
    peer.wait_for(f"{len(sent)} embeddings", lambda: len(embeddings) >= len(sent), 60, nodes)
    got = {stamp(m.header.stamp) for m in embeddings}
    assert got == set(sent), f"embeddings for {sorted(got)}, images sent at {sent}"
    assert all(m.header.frame_id == "front_camera" for m in embeddings)
    log(f"{len(embeddings)} embeddings of 640x480 JPEG frames, each at its image's stamp")

    # Garbage that claims to be a JPEG: dropped and counted, the node goes on.
    ns += NS // 10
    robot.proprio(ns)
    peer.spin_for(0.02)
    bad = CompressedImage()
    set_stamp(bad.header, ns)
    bad.format = "jpeg"
    bad.data = bytes([0xFF, 0xD8, 0x00, 0x11, 0x22])
    camera.publish(bad)
    peer.spin_for(0.25)

    def counts():
        if not statuses:
            return {}
        newest = statuses[-1]
        return dict(zip(newest.drop_reasons, newest.drop_counts)), newest

    peer.wait_for(
        "the garbage JPEG counted as undecodable_image",
        lambda: statuses and counts()[0].get("undecodable_image", 0) == 1,
        30,
        nodes,
    )
    drops, status = counts()
    assert status.transitions == len(sent) - 1, status.transitions
    assert status.actions_defaulted == 0, f"every frame paired with its TwistStamped: {status.actions_defaulted}"
    assert sum(v for k, v in drops.items() if k != "undecodable_image") == 0, drops
    assert learner.alive(), "the learner is still running"
    log("TwistStamped commands paired with every frame; garbage JPEG counted")


if __name__ == "__main__":
    run(main)
