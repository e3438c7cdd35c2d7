//! A latest-value cell: a producer overwrites, a consumer takes the newest value. Camera frames
//! go to the encoder through one, so a slow encoder always embeds the newest frame instead of
//! working through a backlog (a ROS KeepLast(1) queue that really holds one value).

use std::sync::{Condvar, Mutex, PoisonError};

/// Holds at most one value; `put` replaces an unread one and counts it as superseded.
#[derive(Debug, Default)]
pub struct LatestCell<T> {
    state: Mutex<CellState<T>>,
    changed: Condvar,
}

#[derive(Debug)]
struct CellState<T> {
    value: Option<T>,
    superseded: u64,
    closed: bool,
}

impl<T> Default for CellState<T> {
    fn default() -> Self {
        Self {
            value: None,
            superseded: 0,
            closed: false,
        }
    }
}

impl<T> LatestCell<T> {
    /// An empty, open cell.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(CellState::default()),
            changed: Condvar::new(),
        }
    }

    /// Stores `value`; returns `true` when it replaced one nobody had taken.
    pub fn put(&self, value: T) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let replaced = state.value.replace(value).is_some();
        if replaced {
            state.superseded += 1;
        }
        self.changed.notify_one();
        replaced
    }

    /// Takes the newest value, waiting for one; `None` once the cell is closed and empty.
    pub fn take(&self) -> Option<T> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut state = self
            .changed
            .wait_while(state, |s| s.value.is_none() && !s.closed)
            .unwrap_or_else(PoisonError::into_inner);
        state.value.take()
    }

    /// No more values will come: wakes the consumer (a value still inside can be taken).
    pub fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.closed = true;
        self.changed.notify_all();
    }

    /// Values replaced before anyone took them.
    pub fn superseded(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .superseded
    }
}

/// Iterates over the values taken from a cell until it is closed (for [`crate::components::encoder::run_encoder`]).
#[derive(Debug)]
pub struct Drain<'a, T>(pub &'a LatestCell<T>);

impl<T> Iterator for Drain<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.0.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_slow_consumer_gets_the_newest_value_and_the_rest_are_counted() {
        let cell = LatestCell::new();
        assert!(!cell.put(1));
        assert!(cell.put(2));
        assert!(cell.put(3));
        assert_eq!(cell.take(), Some(3));
        assert_eq!(cell.superseded(), 2);
        cell.close();
        assert_eq!(cell.take(), None, "closed and empty");
    }

    #[test]
    fn closing_wakes_a_waiting_consumer_and_ends_the_drain() {
        let cell = Arc::new(LatestCell::new());
        let consumer = {
            let cell = Arc::clone(&cell);
            std::thread::spawn(move || Drain(&cell).collect::<Vec<u32>>())
        };
        cell.put(7);
        cell.close();
        // A value put before closing is still delivered, then the drain ends.
        let taken = consumer.join().expect("consumer thread");
        assert_eq!(taken, vec![7]);
    }
}
