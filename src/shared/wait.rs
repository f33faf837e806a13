//! Runtime-agnostic futures over the shared state (`std::task::Waker` only, no
//! runtime): each re-checks its condition under the lock and, if it does not hold
//! yet, leaves its waker there. Every change of state wakes every waiter after the
//! lock is released, so no wakeup is lost (**G6**).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::shared::sync::Arc;
use crate::shared::{Inner, Shared, WaitFor, Wakeups};

/// One step of a wait: `Some(output)` when done, `None` to keep waiting.
pub(crate) type StepFn<S, T> = fn(&mut Inner, &mut S, &mut Wakeups) -> Option<T>;

/// A future that completes when `step` says so.
pub(crate) struct Wait<S, T> {
    shared: Arc<Shared>,
    wants: WaitFor,
    until: Option<Instant>,
    /// The waiter's id in the shared state (0: not registered).
    id: u32,
    state: S,
    step: StepFn<S, T>,
}

impl<S, T> Wait<S, T> {
    pub(crate) fn new(shared: Arc<Shared>, wants: WaitFor, state: S, step: StepFn<S, T>) -> Self {
        Wait {
            shared,
            wants,
            until: None,
            id: 0,
            state,
            step,
        }
    }
}

impl<S, T> Wait<S, T> {
    /// The same wait, also woken when the time input passes `until` (its step then
    /// decides, with `Inner::passed`, to give up).
    pub(crate) fn until(mut self, until: Instant) -> Self {
        self.until = Some(until);
        self
    }
}

impl<S: Unpin, T> Future for Wait<S, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        let (shared, id, state, step, wants, until) = (
            &this.shared,
            &mut this.id,
            &mut this.state,
            this.step,
            this.wants,
            this.until,
        );
        shared.run(|inner, wakeups| match step(inner, state, wakeups) {
            Some(output) => {
                if *id != 0 {
                    wakeups.discard(inner.unregister(*id));
                    *id = 0;
                }
                Poll::Ready(output)
            }
            None => {
                inner.register(id, wants, until, cx.waker(), wakeups);
                Poll::Pending
            }
        })
    }
}

impl<S, T> Drop for Wait<S, T> {
    fn drop(&mut self) {
        if self.id != 0 {
            // The waker is dropped after the lock is released (it may be the last
            // reference to a task whose drop locks this connection again).
            let waker = self.shared.lock().unregister(self.id);
            drop(waker);
        }
    }
}
