"""Writes rosbag2 bags with the Python `rosbags` library (an independent writer) for
`tests/bags.rs`: one scene, a camera gliding over it, in every input kind a real robot records.

    python write_bags.py OUT_DIR

OUT_DIR/<kind>/ for each kind below: 30 frames at 10 Hz of the same scene (the same pixels
before encoding), joint_states, imu/data and odom at 10 Hz, cmd_vel as TwistStamped, and
camera_info and /tf besides (topics the learner does not use). All MCAP except `db3`
(sqlite3, Humble's storage) and `bare_mcap` (the .mcap file alone, no metadata.yaml).
`rgb8` is the reference: the scene's pixels as they are.
"""

import io
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image as PilImage
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

STORE = get_typestore(Stores.ROS2_JAZZY)
T = STORE.types
W, H = 640, 480
FRAMES = 30
PERIOD_NS = 100_000_000
START_NS = 1_700_000_000_000_000_000


def scene(i: int) -> np.ndarray:
    """A smooth colourful scene (low frequencies survive JPEG and Bayer alike), moving with i."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    shift = 9.0 * i
    r = 128 + 100 * np.sin((x + shift) / 71.0)
    g = 128 + 100 * np.cos((y - shift) / 53.0)
    b = 128 + 90 * np.sin((x + y + 2 * shift) / 97.0)
    rgb = np.stack([r, g, b], axis=-1)
    # A dark disc that moves across: something to tell frames apart.
    cx, cy = 120 + 12 * i, 240
    disc = (x - cx) ** 2 + (y - cy) ** 2 < 60.0**2
    rgb[disc] = [30, 40, 200]
    return np.clip(rgb, 0, 255).astype(np.uint8)


def grey(rgb: np.ndarray) -> np.ndarray:
    return (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).round().astype(np.uint8)


def stamp(ns: int):
    return T['builtin_interfaces/msg/Time'](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def header(ns: int, frame: str):
    return T['std_msgs/msg/Header'](stamp=stamp(ns), frame_id=frame)


def raw_image(ns, encoding, width, height, step, data, bigendian=0):
    return T['sensor_msgs/msg/Image'](
        header=header(ns, 'camera'), height=height, width=width, encoding=encoding,
        is_bigendian=bigendian, step=step, data=np.frombuffer(bytes(data), dtype=np.uint8))


def compressed(ns, fmt, data):
    return T['sensor_msgs/msg/CompressedImage'](
        header=header(ns, 'camera'), format=fmt, data=np.frombuffer(data, dtype=np.uint8))


def yuv422_uyvy(rgb):
    """BT.601 studio swing as ROS drivers publish (U Y0 V Y1)."""
    f = rgb.astype(np.float32)
    y = 16 + 0.257 * f[..., 0] + 0.504 * f[..., 1] + 0.098 * f[..., 2]
    u = 128 - 0.148 * f[..., 0] - 0.291 * f[..., 1] + 0.439 * f[..., 2]
    v = 128 + 0.439 * f[..., 0] - 0.368 * f[..., 1] - 0.071 * f[..., 2]
    u2 = (u[:, 0::2] + u[:, 1::2]) / 2
    v2 = (v[:, 0::2] + v[:, 1::2]) / 2
    out = np.empty((H, W * 2), dtype=np.float32)
    out[:, 0::4], out[:, 1::4], out[:, 2::4], out[:, 3::4] = u2, y[:, 0::2], v2, y[:, 1::2]
    return np.clip(out.round(), 0, 255).astype(np.uint8)


def bayer_rggb(rgb):
    out = np.empty((H, W), dtype=np.uint8)
    out[0::2, 0::2] = rgb[0::2, 0::2, 0]
    out[0::2, 1::2] = rgb[0::2, 1::2, 1]
    out[1::2, 0::2] = rgb[1::2, 0::2, 1]
    out[1::2, 1::2] = rgb[1::2, 1::2, 2]
    return out


def image_for(kind: str, ns: int, rgb: np.ndarray):
    if kind in ('rgb8', 'db3', 'bare_mcap'):
        return T['sensor_msgs/msg/Image'].__msgtype__, raw_image(ns, 'rgb8', W, H, W * 3, rgb.tobytes())
    if kind == 'jpeg':
        buf = io.BytesIO()
        PilImage.fromarray(rgb).save(buf, format='JPEG', quality=90)
        return 'sensor_msgs/msg/CompressedImage', compressed(ns, 'rgb8; jpeg compressed bgr8', buf.getvalue())
    if kind == 'png':
        buf = io.BytesIO()
        PilImage.fromarray(rgb).save(buf, format='PNG')
        return 'sensor_msgs/msg/CompressedImage', compressed(ns, 'png', buf.getvalue())
    if kind == 'bgr8_padded':
        step = W * 3 + 64
        rows = np.zeros((H, step), dtype=np.uint8)
        rows[:, : W * 3] = rgb[..., ::-1].reshape(H, W * 3)
        return 'sensor_msgs/msg/Image', raw_image(ns, 'bgr8', W, H, step, rows.tobytes())
    if kind == 'yuv422':
        return 'sensor_msgs/msg/Image', raw_image(ns, 'yuv422', W, H, W * 2, yuv422_uyvy(rgb).tobytes())
    if kind == 'bayer_rggb8':
        return 'sensor_msgs/msg/Image', raw_image(ns, 'bayer_rggb8', W, H, W, bayer_rggb(rgb).tobytes())
    if kind == 'mono16':
        g16 = grey(rgb).astype('>u2') * 257
        return 'sensor_msgs/msg/Image', raw_image(ns, 'mono16', W, H, W * 2, g16.tobytes(), bigendian=1)
    raise ValueError(kind)


KINDS = ['rgb8', 'jpeg', 'png', 'bgr8_padded', 'yuv422', 'bayer_rggb8', 'mono16', 'db3', 'bare_mcap']


def write(out: Path, kind: str):
    path = out / kind
    plugin = StoragePlugin.SQLITE3 if kind == 'db3' else StoragePlugin.MCAP
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        image_type = image_for(kind, 0, scene(0))[0]
        camera_topic = '/camera/image_raw/compressed' if image_type.endswith('CompressedImage') else '/camera/image_raw'
        c_img = writer.add_connection(camera_topic, image_type, typestore=STORE)
        c_info = writer.add_connection('/camera/camera_info', 'sensor_msgs/msg/CameraInfo', typestore=STORE)
        c_js = writer.add_connection('/joint_states', 'sensor_msgs/msg/JointState', typestore=STORE)
        c_imu = writer.add_connection('/imu/data', 'sensor_msgs/msg/Imu', typestore=STORE)
        c_odom = writer.add_connection('/odom', 'nav_msgs/msg/Odometry', typestore=STORE)
        c_cmd = writer.add_connection('/cmd_vel', 'geometry_msgs/msg/TwistStamped', typestore=STORE)
        c_tf = writer.add_connection('/tf', 'tf2_msgs/msg/TFMessage', typestore=STORE)
        Vector3 = T['geometry_msgs/msg/Vector3']
        Quaternion = T['geometry_msgs/msg/Quaternion']
        for i in range(FRAMES):
            ns = START_NS + i * PERIOD_NS
            js = T['sensor_msgs/msg/JointState'](
                header=header(ns - 5_000_000, ''), name=['left_wheel_joint', 'right_wheel_joint'],
                position=np.array([0.1 * i, 0.1 * i]), velocity=np.array([1.0, 1.2]), effort=np.array([], dtype=np.float64))
            writer.write(c_js, ns - 5_000_000, STORE.serialize_cdr(js, js.__msgtype__))
            imu = T['sensor_msgs/msg/Imu'](
                header=header(ns - 4_000_000, 'base_link'), orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0),
                orientation_covariance=np.zeros(9), angular_velocity=Vector3(x=0.0, y=0.0, z=0.1),
                angular_velocity_covariance=np.zeros(9), linear_acceleration=Vector3(x=0.2, y=0.0, z=9.81),
                linear_acceleration_covariance=np.zeros(9))
            writer.write(c_imu, ns - 4_000_000, STORE.serialize_cdr(imu, imu.__msgtype__))
            pose = T['geometry_msgs/msg/Pose'](
                position=T['geometry_msgs/msg/Point'](x=0.05 * i, y=0.0, z=0.0),
                orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0))
            odom = T['nav_msgs/msg/Odometry'](
                header=header(ns - 3_000_000, 'odom'), child_frame_id='base_link',
                pose=T['geometry_msgs/msg/PoseWithCovariance'](pose=pose, covariance=np.zeros(36)),
                twist=T['geometry_msgs/msg/TwistWithCovariance'](
                    twist=T['geometry_msgs/msg/Twist'](linear=Vector3(x=0.5, y=0.0, z=0.0), angular=Vector3(x=0.0, y=0.0, z=0.1)),
                    covariance=np.zeros(36)))
            writer.write(c_odom, ns - 3_000_000, STORE.serialize_cdr(odom, odom.__msgtype__))
            info = T['sensor_msgs/msg/CameraInfo'](
                header=header(ns, 'camera'), height=H, width=W, distortion_model='plumb_bob',
                d=np.zeros(5), k=np.eye(3).flatten(), r=np.eye(3).flatten(), p=np.zeros(12),
                binning_x=0, binning_y=0,
                roi=T['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
            writer.write(c_info, ns, STORE.serialize_cdr(info, info.__msgtype__))
            _, img = image_for(kind, ns, scene(i))
            writer.write(c_img, ns + 2_000_000, STORE.serialize_cdr(img, img.__msgtype__))
            cmd = T['geometry_msgs/msg/TwistStamped'](
                header=header(ns + 1_000_000, 'base_link'),
                twist=T['geometry_msgs/msg/Twist'](linear=Vector3(x=0.5, y=0.0, z=0.0), angular=Vector3(x=0.0, y=0.0, z=0.1 * (i % 3 - 1))))
            writer.write(c_cmd, ns + 1_000_000, STORE.serialize_cdr(cmd, cmd.__msgtype__))
            tf = T['tf2_msgs/msg/TFMessage'](transforms=[])
            writer.write(c_tf, ns, STORE.serialize_cdr(tf, tf.__msgtype__))
    if kind == 'bare_mcap':
        (mcap,) = path.glob('*.mcap')
        shutil.move(str(mcap), out / 'bare.mcap')
        shutil.rmtree(path)


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        write(out, kind)
    print('bags written')


if __name__ == '__main__':
    main()
