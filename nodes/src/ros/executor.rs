//! The async side of a ROS node, on tokio: subscription streams, services, timers, signals and
//! shutdown run as tasks of one current-thread runtime, while rcl is spun on its own thread.
//! The compute (training, encoding, planning, the simulator) keeps its own threads
//! ([`crate::runtime`]).
//!
//! Tasks run on a [`LocalSet`], so they may share `Rc` state with no locks (the parameter
//! services do). r2r delivers messages by waking the stream's task from the spinning thread.

use std::future::Future;
use std::os::unix::net::UnixStream;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::{Either, select};
use tokio::task::LocalSet;

use crate::NodeError;

/// How long one `spin_once` waits for work before it looks at the stop flag again.
const SPIN_WAIT: Duration = Duration::from_millis(20);

/// Why a node's executor stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// SIGINT or SIGTERM (`ros2 launch` stops nodes with SIGINT; Ctrl-C).
    Signal,
    /// The node's own work finished or failed (the `until` future resolved).
    Done,
}

/// A node's tasks, and the tokio runtime they run on.
pub(crate) struct Executor {
    runtime: tokio::runtime::Runtime,
    tasks: LocalSet,
}

impl Executor {
    /// A current-thread tokio runtime with timers and I/O (the signal pipe).
    pub(crate) fn new() -> Result<Self, NodeError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .enable_io()
            .build()
            .map_err(|e| NodeError::Setup(format!("tokio runtime: {e}")))?;
        Ok(Self {
            runtime,
            tasks: LocalSet::new(),
        })
    }

    /// Adds a task; it starts when [`Executor::run`] does.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        // The handle is not needed: tasks end with the executor.
        drop(self.tasks.spawn_local(task));
    }

    /// Spins `node` on its own thread and runs the tasks until SIGINT/SIGTERM or until `until`
    /// resolves. Then the spinning stops and every task is dropped (subscriptions end); the
    /// node is handed back, so publishers still work for the shutdown that follows.
    pub(crate) fn run(
        self,
        mut node: r2r::Node,
        until: impl Future<Output = ()>,
    ) -> Result<(Ended, r2r::Node), NodeError> {
        let signal = shutdown_signal()?;
        let spinning = Arc::new(AtomicBool::new(true));
        let spin = Arc::clone(&spinning);
        let spinner = std::thread::Builder::new()
            .name("spin".into())
            .spawn(move || {
                while spin.load(Ordering::Relaxed) {
                    node.spin_once(SPIN_WAIT);
                }
                node
            })
            .map_err(|e| NodeError::Setup(format!("spin thread: {e}")))?;
        let Self { runtime, tasks } = self;
        let ended = runtime.block_on(tasks.run_until(async move {
            let signal = match signal.into_async() {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::error!(%error, "no shutdown signal; stopping");
                    return Ended::Done;
                }
            };
            match select(pin!(signal), pin!(until)).await {
                Either::Left(_) => Ended::Signal,
                Either::Right(_) => Ended::Done,
            }
        }));
        spinning.store(false, Ordering::Relaxed);
        drop(tasks);
        drop(runtime);
        let node = spinner.join().map_err(|_| NodeError::Crashed("spin"))?;
        tracing::info!(?ended, "node executor stopped");
        Ok((ended, node))
    }
}

/// The read end of a pipe that SIGINT and SIGTERM write to (registered with signal-hook, which
/// tokio's `signal` feature would otherwise bring; that feature would rebuild tokio and rerun's
/// network stack). A second signal while shutting down exits at once (exit code 1).
struct ShutdownSignal(UnixStream);

fn shutdown_signal() -> Result<ShutdownSignal, NodeError> {
    let failed = |e: std::io::Error| NodeError::Setup(format!("signal handler: {e}"));
    let (read, write) = UnixStream::pair().map_err(failed)?;
    let first = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&first))
            .map_err(failed)?;
        signal_hook::flag::register(signal, Arc::clone(&first)).map_err(failed)?;
        signal_hook::low_level::pipe::register(signal, write.try_clone().map_err(failed)?)
            .map_err(failed)?;
    }
    read.set_nonblocking(true).map_err(failed)?;
    Ok(ShutdownSignal(read))
}

impl ShutdownSignal {
    /// Resolves at the first signal (inside the runtime: it needs its I/O driver).
    fn into_async(self) -> std::io::Result<impl Future<Output = ()>> {
        let read = tokio::net::UnixStream::from_std(self.0)?;
        Ok(async move {
            // Readable means a signal byte arrived (or the pipe broke): either way, stop.
            let _ = read.readable().await;
        })
    }
}
