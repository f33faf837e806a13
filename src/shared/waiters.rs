//! Who waits on a connection, and the wakeups collected under its lock.

use std::task::Waker;
use std::time::Instant;

use crate::core::Effects;

/// What a waiting future waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitFor {
    /// A change of state (observers); woken by every change.
    State,
    /// Room in the outbox (async senders); also woken by every change of state.
    Room,
    /// An inbound message (receivers); also woken by every change of state.
    Inbound,
}

/// A registered waiting future.
struct Waiter {
    id: u32,
    wants: WaitFor,
    /// When the wait gives up, if it does: woken once the time input reaches it.
    until: Option<Instant>,
    waker: Waker,
}

/// Everyone who waits on one connection besides its driver: observers, async
/// senders, receivers, each with what it waits for, so a freed slot or an arrival
/// wakes only those who care. Keyed by a per-future id so that a re-poll replaces its
/// waker instead of adding one (bounded by the number of live futures).
#[derive(Default)]
pub(crate) struct Waiters {
    list: Vec<Waiter>,
    /// How many of `list` have a timeout: the clock scan is skipped when none do.
    /// Sticky at `u16::MAX` (the scan then always runs).
    timed: u16,
    /// The last id handed out (ids wrap, skipping 0; a future alive across four
    /// billion others on one connection is not a case to design for).
    last_id: u32,
}

impl Waiters {
    /// True when some wait has a timeout.
    #[inline]
    pub(crate) fn any_timed(&self) -> bool {
        self.timed > 0
    }

    /// The earliest timeout of a pending wait.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        if self.timed == 0 {
            return None;
        }
        self.list.iter().filter_map(|w| w.until).min()
    }

    /// Registers (or refreshes) the waker of the future `id` (0: a new future, which
    /// gets an id). Returns true when this adds a timeout (the driver must then feed
    /// the time by it, **G6**).
    pub(crate) fn register(
        &mut self,
        id: &mut u32,
        wants: WaitFor,
        until: Option<Instant>,
        waker: &Waker,
        wakeups: &mut Wakeups,
    ) -> bool {
        if *id != 0 {
            if let Some(w) = self.list.iter_mut().find(|w| w.id == *id) {
                if !w.waker.will_wake(waker) {
                    let old = std::mem::replace(&mut w.waker, waker.clone());
                    wakeups.discard(Some(old));
                }
                return false;
            }
        } else {
            self.last_id = self.last_id.wrapping_add(1).max(1);
            *id = self.last_id;
        }
        if until.is_some() {
            self.timed = self.timed.saturating_add(1);
        }
        self.list.push(Waiter {
            id: *id,
            wants,
            until,
            waker: waker.clone(),
        });
        until.is_some()
    }

    /// Forgets the future `id`; its waker is handed back, to be dropped after the
    /// lock is released.
    pub(crate) fn unregister(&mut self, id: u32) -> Option<Waker> {
        let at = self.list.iter().position(|w| w.id == id)?;
        Some(self.take(at).waker)
    }

    /// Wakes the waits whose timeout the clock has reached: they re-check (and give
    /// up).
    pub(crate) fn expire(&mut self, clock: Instant, wakeups: &mut Wakeups) {
        let mut i = 0;
        while self.timed > 0 && i < self.list.len() {
            if self.list[i].until.is_some_and(|until| until <= clock) {
                wakeups.push(self.take(i).waker);
            } else {
                i += 1;
            }
        }
    }

    /// Wakes the waiters that wait for `wants`: they re-check their condition and
    /// wait again if it still fails.
    pub(crate) fn wake(&mut self, wants: WaitFor, wakeups: &mut Wakeups) {
        let mut i = 0;
        while i < self.list.len() {
            if self.list[i].wants == wants {
                wakeups.push(self.take(i).waker);
            } else {
                i += 1;
            }
        }
    }

    /// Wakes everyone (a change of state).
    pub(crate) fn wake_all(&mut self, wakeups: &mut Wakeups) {
        wakeups.many.extend(self.list.drain(..).map(|w| w.waker));
        self.timed = 0;
    }

    /// Removes waiter `i`, keeping the count of timed ones.
    fn take(&mut self, i: usize) -> Waiter {
        let waiter = self.list.swap_remove(i);
        // Sticky at `u16::MAX`: past that many timed waits the count is no longer
        // exact, and the clock scan simply always runs.
        if waiter.until.is_some() && self.timed != u16::MAX {
            self.timed -= 1;
        }
        waiter
    }
}

/// Wakers collected under the lock and woken — or, for wakers that were replaced or
/// unregistered, dropped — after it is released: dropping a waker can run arbitrary
/// code (the last reference to a task), which must not run under our lock.
#[derive(Default)]
#[must_use = "wake them after the lock is released"]
pub(crate) struct Wakeups {
    pub(crate) one: Option<Waker>,
    many: Vec<Waker>,
    discard: Vec<Waker>,
}

impl Wakeups {
    /// Wakes everything collected, then drops the discarded wakers.
    pub(crate) fn wake(self) {
        if let Some(w) = self.one {
            w.wake();
        }
        for w in self.many {
            w.wake();
        }
        drop(self.discard);
    }

    /// Wakes `waker` after the lock is released.
    pub(crate) fn push(&mut self, waker: Waker) {
        self.many.push(waker);
    }

    /// Keeps `waker` alive until the lock is released.
    pub(crate) fn discard(&mut self, waker: Option<Waker>) {
        self.discard.extend(waker);
    }
}

/// Which waiters an effect of the core concerns, besides the driver.
pub(crate) fn wants_of(effects: Effects) -> impl Iterator<Item = WaitFor> {
    [
        (Effects::ROOM, WaitFor::Room),
        (Effects::INBOUND, WaitFor::Inbound),
    ]
    .into_iter()
    .filter(move |(flag, _)| effects.contains(*flag))
    .map(|(_, wants)| wants)
}
