//! With the `ros` feature and `AUTODIDACT_LIBPYTHON` set (by `scripts/ros-env`, for the ROS 2
//! Python wheels used in tests here), links libpython into this package's executables: the
//! wheels' `*__rosidl_generator_py` libraries, which librcl pulls in, need its symbols. A normal
//! ROS 2 install does not set the variable, and nothing changes.

fn main() {
    println!("cargo:rerun-if-env-changed=AUTODIDACT_LIBPYTHON");
    if std::env::var_os("CARGO_FEATURE_ROS").is_none() {
        return;
    }
    if let Some(libpython) = std::env::var_os("AUTODIDACT_LIBPYTHON") {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg={}", libpython.to_string_lossy());
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
