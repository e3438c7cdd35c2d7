//! Compute thread pools for the nodes: named, sized, and optionally below the process's
//! priority, so that training yields a core to inference.

use crate::NodeError;

/// A rayon pool of `threads` threads named `name-N`, each running `nice` steps below the
/// process's priority (see [`lower_thread_priority`]).
pub fn compute_pool(name: &str, threads: usize, nice: i32) -> Result<rayon::ThreadPool, NodeError> {
    let prefix = name.to_owned();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(move |i| format!("{prefix}-{i}"))
        .start_handler(move |_| lower_thread_priority(nice))
        .build()
        .map_err(|e| NodeError::Setup(format!("{name} thread pool: {e}")))
}

/// Raises the calling thread's niceness by `nice` (Linux keeps a nice value per thread). A
/// failure is logged; the thread then runs at the normal priority.
pub fn lower_thread_priority(nice: i32) {
    if nice <= 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let current = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
        if let Err(error) =
            rustix::process::setpriority_process(Some(tid), (current + nice).clamp(-20, 19))
        {
            tracing::warn!(%error, nice, "could not lower a compute thread's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn compute_pool_threads_run_below_the_callers_priority() {
        let priority = || {
            rustix::process::getpriority_process(Some(rustix::thread::gettid()))
                .expect("read the thread's priority")
        };
        let own = priority();
        let lowered = compute_pool("lowered", 2, 5).expect("pool");
        let inside: Vec<i32> = (0..2).map(|_| lowered.install(priority)).collect();
        assert!(
            inside.iter().all(|nice| *nice == (own + 5).min(19)),
            "pool threads at {inside:?}, caller at {own}"
        );
        let plain = compute_pool("plain", 1, 0).expect("pool");
        assert_eq!(
            plain.install(priority),
            own,
            "nice 0 leaves the priority alone"
        );
    }
}
