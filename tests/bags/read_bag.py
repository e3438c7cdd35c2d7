"""Reads a bag written by `autodidact run --bag-out` with the Python `rosbags` library (an
independent reader) and reports what it found, for `tests/bags/mod.rs` to compare with the
simulator's own data.

    python read_bag.py BAG_DIR OUT_DIR

Every message is deserialized with rosbags' own definitions of the standard types (Jazzy).
OUT_DIR/report.json: per topic its type and count, the camera's header stamps, encodings and
sizes, the first CameraInfo's K; OUT_DIR/image_<i>.bin: the pixel data of each camera image.
"""

import json
import sys
from pathlib import Path

from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore


def main():
    bag, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    store = get_typestore(Stores.ROS2_JAZZY)
    report = {'topics': {}, 'image_stamps': [], 'image_shapes': [], 'frames': {}}
    with Reader(bag) as reader:
        for connection in reader.connections:
            report['topics'][connection.topic] = {'type': connection.msgtype, 'count': 0}
        images = 0
        for connection, timestamp, raw in reader.messages():
            msg = store.deserialize_cdr(raw, connection.msgtype)
            topic = report['topics'][connection.topic]
            topic['count'] += 1
            if connection.topic == '/camera/image_raw':
                ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                assert ns == timestamp, (ns, timestamp)
                report['image_stamps'].append(ns)
                report['image_shapes'].append([msg.width, msg.height, msg.step, msg.encoding])
                report['frames'].setdefault('camera', msg.header.frame_id)
                (out / f'image_{images}.bin').write_bytes(bytes(msg.data))
                images += 1
            elif connection.topic == '/camera/camera_info' and 'k' not in report:
                report['k'] = [float(v) for v in msg.k]
            elif connection.topic == '/odom':
                report['frames'].setdefault('odom', [msg.header.frame_id, msg.child_frame_id])
            elif connection.topic == '/ground_truth/odom':
                report['frames'].setdefault('ground_truth', [msg.header.frame_id, msg.child_frame_id])
            elif connection.topic == '/imu/data':
                report['frames'].setdefault('imu', msg.header.frame_id)
        report['duration_ns'] = reader.duration
        report['message_count'] = reader.message_count
    (out / 'report.json').write_text(json.dumps(report))
    print('bag read OK')


if __name__ == '__main__':
    main()
