//! What the benchmarks share: a parked task's waker that only counts its wake-ups,
//! so that what is measured is the cost of reaching the waker, not a scheduler.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Wake, Waker};

/// Counts the wake-ups of the task it stands for.
pub struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A fresh counting waker (each receiver or driver gets its own).
pub fn counting_waker() -> Waker {
    Waker::from(Arc::new(CountingWaker(AtomicUsize::new(0))))
}
