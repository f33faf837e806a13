//! The seam between a connection and the registry that lists it: what a connection
//! must know of its registry so that the registry's guarantees hold under the
//! *connection's* lock, without the shared state knowing the registry's types.
//!
//! - **G7, broadcast**: the registry numbers broadcasts with an epoch counter (the
//!   increment is a broadcast's linearization point). Under its own lock a connection
//!   stamps the epoch when it becomes `Ready` and when it starts closing; a broadcast
//!   numbered `b` queues its message only where `ready_at < b` (ready before the
//!   broadcast) and the send gate is still open — so never to a connection that was
//!   authenticating, and never after a Close (**G3**).
//! - **G7, listing**: in the critical section of its transition to `Closed`, a
//!   connection leaves the listing and every index ([`Membership::remove`]).
//! - **G8, startup gate**: a held connection cannot become `Ready` while the registry
//!   is starting; its hold deadline is one of its deadlines, fed by its driver.

use std::sync::Arc as StdArc;
use std::time::Instant;

use crate::core::{CloseCause, ConnectionId};

use super::{Inner, WaitFor, Wakeups};
use crate::core::{CrateClose, Phase};

/// What a registry offers the connections it lists; implemented by the registry.
/// Called under the connection's lock (the registry's lock may be taken inside,
/// never the other way round).
pub(crate) trait Membership: Send + Sync {
    /// Broadcasts so far (**G7**).
    fn epoch(&self) -> u64;
    /// True once the registry has opened: the startup gate's release (**G8**).
    fn opened(&self) -> bool;
    /// The time now, on the clock of the registry's connections (the driver's).
    fn now(&self) -> Instant;
    /// The connection `id`, closing, no longer takes a place in the startup hold.
    fn unhold(&self, id: ConnectionId);
    /// The connection `id` reached `Closed`: unlist it (**G7**); wake whoever waits
    /// for the listing to empty, after the connection's lock is released.
    fn remove(&self, id: ConnectionId, cause: Option<CloseCause>, wakeups: &mut Wakeups);
}

/// A registry, as its connections hold it: one thin pointer per connection (a
/// `dyn` behind one more box, made once per registry), so that the link costs a
/// connection 8 bytes, not a fat pointer's 16.
pub(crate) type Member = StdArc<Box<dyn Membership>>;

/// A registered connection's link to its registry. What every broadcast and every
/// frame the driver takes read — the epoch stamps and the hold flag — is in
/// [`Stamps`] and `Inner::held`, on the shared state's hot cache lines; this part is
/// read only at transitions and by the startup gate.
pub(crate) struct Link {
    pub(crate) member: Member,
    /// When the hold gives up (`None`: never — a timeout too large to represent; the
    /// readiness deadline still bounds the connection, **G5** — or not held). Boxed:
    /// only connections that arrive before the registry opens have one.
    hold_until: Option<Box<Instant>>,
}

impl Link {
    pub(crate) fn new(member: Member, hold_until: Option<Instant>) -> Link {
        Link {
            member,
            hold_until: hold_until.map(Box::new),
        }
    }

    /// When the startup hold gives up, if it does.
    pub(crate) fn hold_until(&self) -> Option<Instant> {
        self.hold_until.as_deref().copied()
    }
}

/// The epochs a registered connection stamps under its own lock (**G7**).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct Stamps {
    /// The epoch when the connection became `Ready` ([`NEVER`] until it does).
    pub(crate) ready_at: u64,
    /// The epoch when it started closing ([`NEVER`] until it does).
    pub(crate) closing_at: u64,
}

/// "Not yet" for an epoch stamp: no broadcast is ever numbered this high (a `u64`
/// counter incremented once per broadcast), and a stamp of `NEVER` is later than every
/// broadcast. Plain `u64`s instead of `Option<u64>` keep the stamps — which every
/// broadcast reads — 16 bytes smaller.
pub(crate) const NEVER: u64 = u64::MAX;

impl Stamps {
    /// Not registered, or not yet stamped.
    pub(crate) const UNSTAMPED: Stamps = Stamps {
        ready_at: NEVER,
        closing_at: NEVER,
    };

    /// The epoch rule (**G7**): broadcast `epoch` is for this connection only if it
    /// became `Ready` before the broadcast and had not started closing; `Some` with
    /// the refusal otherwise. An unlisted connection was stamped closing before it
    /// left the listing; one never listed is never visited.
    #[inline]
    pub(crate) fn refusal(&self, epoch: u64) -> Option<Delivery> {
        if self.closing_at < epoch {
            return Some(Delivery::Closing);
        }
        if self.ready_at >= epoch {
            return Some(Delivery::NotReady);
        }
        None
    }
}

/// The outcome of one broadcast for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Queued.
    Delivered,
    /// Not `Ready` before the broadcast (**G7**).
    NotReady,
    /// Closing, or its send gate shut (**G3**).
    Closing,
    /// Its outbox is full (the overflow policy applied).
    Full,
}

/// The connection's side of its membership, under its lock (**G7**, **G8**).
impl Inner {
    /// Lists the connection in `link`'s registry (**G7**): a connection registered
    /// while closing is stamped as closing at once; `held` is the startup gate's
    /// (**G8**), whose hold deadline the driver must now feed.
    pub(crate) fn attach(&mut self, link: Link, held: bool, wakeups: &mut Wakeups) {
        self.stamps = Stamps::UNSTAMPED;
        if self.conn.phase().is_closing_or_closed() {
            self.stamps.closing_at = link.member.epoch();
        }
        self.conn.held = held;
        self.link = Some(link);
        self.wake_transmit(wakeups);
    }

    /// True while listed in a registry.
    pub(crate) fn is_listed(&self) -> bool {
        self.link.is_some()
    }

    /// Held by the startup gate right now: admitted before the registry opened, and
    /// it has not opened since — a drain that begins before `open` does not release
    /// anyone (**G8**). The hot flag first: most connections were never held.
    pub(crate) fn is_held(&self) -> bool {
        self.conn.held && self.link.as_ref().is_some_and(|link| !link.member.opened())
    }

    /// The registry opened: release the hold, wake whoever waits for admission, and
    /// the driver, whose hold deadline is gone.
    pub(crate) fn release_hold(&mut self, wakeups: &mut Wakeups) {
        self.conn.held = false;
        self.waiters.wake(WaitFor::State, wakeups);
        self.conn.timed_waits = self.waiters.any_timed();
        self.wake_transmit(wakeups);
    }

    /// The startup gate's deadline, while it can still close the connection: held,
    /// the registry starting, and the connection not closing already (a closing
    /// connection's driver must sleep until its close deadline, not spin on a hold
    /// deadline that can no longer fire).
    pub(super) fn hold_deadline(&self) -> Option<Instant> {
        if !self.is_held() || self.conn.phase().is_closing_or_closed() {
            return None;
        }
        self.link.as_ref()?.hold_until()
    }

    /// Closes a held connection whose hold deadline has passed, or — `ready` — that
    /// the application tries to make ready while the registry is starting: it must
    /// not be routed to handlers that are not there yet (**G8**). 1013.
    pub(super) fn enforce_hold(&mut self, now: Instant, ready: bool) {
        let Some(until) = self.hold_deadline() else {
            return;
        };
        // The hold's close happens at the hold deadline itself, so a late driver sees
        // the deadlines in the order they passed: one due earlier (readiness, say)
        // still wins, one due later fires after the hold's close (G5, G8).
        if until <= now {
            self.conn.raise(CrateClose::HoldExpired, until);
        } else if ready {
            self.conn.raise(CrateClose::ReadyBeforeOpen, now);
        }
    }

    /// After a change of state of a registered connection: stamp the epochs, and on
    /// `Closed` leave the listing (**G7**).
    pub(super) fn settle_membership(&mut self, wakeups: &mut Wakeups) {
        let phase = self.conn.phase();
        let Some(link) = self.link.as_ref() else {
            return;
        };
        if phase == Phase::Ready && self.stamps.ready_at == NEVER {
            self.stamps.ready_at = link.member.epoch();
        }
        if phase.is_closing_or_closed() && self.stamps.closing_at == NEVER {
            self.stamps.closing_at = link.member.epoch();
            if std::mem::take(&mut self.conn.held) {
                // A closing connection no longer takes a place in the hold.
                link.member.unhold(self.conn.id());
            }
        }
        if phase == Phase::Closed {
            let cause = self.conn.close_record().map(|r| r.cause);
            if let Some(link) = self.link.take() {
                link.member.remove(self.conn.id(), cause, wakeups);
            }
        }
    }
}
