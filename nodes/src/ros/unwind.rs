//! Stopping a node's worker threads when its spinning thread panics.
//!
//! `std::thread::scope` joins every scoped thread before it passes a panic on. A worker that
//! waits for a stop signal would then wait for ever, and the node would hang instead of exiting.
//! An [`OnUnwind`] guard in the scope's closure sends that signal while the panic unwinds.

/// Runs its action when dropped during a panic, and never otherwise.
#[must_use = "the action runs when the guard is dropped; bind it to a variable"]
pub struct OnUnwind<F: FnOnce()> {
    action: Option<F>,
}

impl<F: FnOnce()> OnUnwind<F> {
    /// A guard that runs `action` if the thread unwinds past it.
    pub fn new(action: F) -> Self {
        Self {
            action: Some(action),
        }
    }
}

impl<F: FnOnce()> Drop for OnUnwind<F> {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(action) = self.action.take()
        {
            action();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use super::OnUnwind;

    /// A worker that waits (at most `patience`) for `stop` and says whether it came.
    fn wait_for(stop: &AtomicBool, patience: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < patience {
            if stop.load(Ordering::Relaxed) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn a_panicking_scope_stops_its_workers_instead_of_waiting_for_them() {
        let stop = AtomicBool::new(false);
        let worker_was_stopped = AtomicBool::new(false);
        let outcome = std::panic::catch_unwind(|| {
            std::thread::scope(|scope| {
                let _guard = OnUnwind::new(|| stop.store(true, Ordering::Relaxed));
                scope.spawn(|| {
                    let stopped = wait_for(&stop, Duration::from_secs(20));
                    worker_was_stopped.store(stopped, Ordering::Relaxed);
                });
                panic!("the spinning thread fails");
            })
        });
        assert!(outcome.is_err(), "the panic is passed on");
        assert!(
            worker_was_stopped.load(Ordering::Relaxed),
            "the worker ended because it was told to, not because it gave up"
        );
    }

    #[test]
    fn a_scope_that_ends_normally_does_not_run_the_action() {
        let ran = AtomicBool::new(false);
        std::thread::scope(|_| {
            let _guard = OnUnwind::new(|| ran.store(true, Ordering::Relaxed));
        });
        assert!(!ran.load(Ordering::Relaxed));
    }
}
