//! Independent pieces of an evaluation (a world's drive, a start/goal pair) run side by side on
//! [`EvalConfig::jobs`](crate::EvalConfig::jobs) threads. Each piece seeds its own simulator
//! and random numbers, and the results come back in the pieces' order: the report is the same
//! for any number of threads.

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::{EvalError, Progress};

/// The threads `jobs` asks for: itself, or one per core for `0`.
fn threads(jobs: usize) -> usize {
    match jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Runs `work` on a pool of `jobs` threads ([`threads`]): [`map_in_order`] and the k-NN
/// searches within it use those threads.
pub(crate) fn on_threads<R: Send>(
    jobs: usize,
    work: impl FnOnce() -> Result<R, EvalError> + Send,
) -> Result<R, EvalError> {
    let threads = threads(jobs);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("eval-{i}"))
        .build()
        .map_err(|source| EvalError::Threads { threads, source })?
        .install(work)
}

/// `run` on each of `items`, side by side on the threads of the pool it is called on
/// ([`on_threads`]; else rayon's global one), the results in `items`' order; the first error in
/// that order is returned. `progress` hears `(stage, done, total)` as each piece finishes.
pub(crate) fn map_in_order<T, R>(
    items: &[T],
    stage: &str,
    progress: Progress<'_>,
    run: impl Fn(&T) -> Result<R, EvalError> + Sync,
) -> Result<Vec<R>, EvalError>
where
    T: Sync,
    R: Send,
{
    let total = items.len() as u64;
    let done = AtomicU64::new(0);
    // Every piece runs, so that the first error in order is the one a single thread meets.
    let results: Vec<Result<R, EvalError>> = items
        .par_iter()
        .map(|item| {
            let result = run(item);
            progress(stage, done.fetch_add(1, Ordering::Relaxed) + 1, total);
            result
        })
        .collect();
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order_for_any_number_of_threads() {
        let items: Vec<u64> = (0..37).collect();
        let square = |x: &u64| -> Result<u64, EvalError> { Ok(x * x) };
        let heard = std::sync::Mutex::new(Vec::new());
        let progress = |_: &str, done: u64, total: u64| {
            heard.lock().expect("lock").push((done, total));
        };
        let squares = |jobs| {
            on_threads(jobs, || map_in_order(&items, "squares", &progress, square)).expect("run")
        };
        let one = squares(1);
        assert_eq!(one, items.iter().map(|x| x * x).collect::<Vec<_>>());
        for jobs in [2, 3, 0] {
            assert_eq!(squares(jobs), one, "{jobs} threads");
        }
        let mut heard = heard.into_inner().expect("lock");
        assert_eq!(heard.len(), 4 * items.len(), "one report per piece and run");
        heard.sort_unstable();
        assert_eq!(heard.last(), Some(&(37, 37)));
    }

    #[test]
    fn the_first_error_in_order_is_returned_whatever_finishes_first() {
        let items: Vec<u64> = (0..16).collect();
        let failing = |x: &u64| -> Result<u64, EvalError> {
            match x {
                // The later failure is met first by the threads that start at the front.
                3 => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    Err(EvalError::Data("piece 3".into()))
                }
                9 => Err(EvalError::Data("piece 9".into())),
                x => Ok(*x),
            }
        };
        for jobs in [1, 4] {
            let error = on_threads(jobs, || {
                map_in_order(&items, "pieces", &|_, _, _| {}, failing)
            })
            .expect_err("a piece failed");
            assert!(
                error.to_string().contains("piece 3"),
                "{jobs} threads: {error}"
            );
        }
    }
}
