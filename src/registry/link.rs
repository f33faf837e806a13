//! The connection's side of a registration: what a connection must know about its
//! registry so that the registry's guarantees hold under the *connection's* lock.
//!
//! - **G7, broadcast**: the registry numbers broadcasts with an epoch counter (the
//!   increment is a broadcast's linearization point). Under its own lock a connection
//!   stamps the epoch when it becomes `Ready` and when it starts closing; a broadcast
//!   numbered `b` queues its message only where `ready_at < b` (ready before the
//!   broadcast) and the send gate is still open — so never to a connection that was
//!   authenticating, and never after a Close (**G3**).
//! - **G7, listing**: in the critical section of its transition to `Closed`, a
//!   connection leaves the listing and every index.
//! - **G8, startup gate**: a held connection cannot become `Ready` while the registry
//!   is starting; its hold deadline is one of its deadlines, fed by its driver.

use std::time::Instant;

use crate::core::{CloseCause, CloseCode, CloseFrame, ConnectionId, Message, Phase, SendErrorKind};
use crate::shared::sync::Arc;
use crate::shared::{Inner, Shared, WaitFor, Wakeups};

use super::Core;

/// A registered connection's link to its registry, in the connection's state. What
/// every broadcast and every frame the driver takes read — the epoch stamps and the
/// hold flag — is in [`Stamps`] and `Inner::held`, on the shared state's hot cache
/// lines; this part is read only at transitions and by the startup gate.
pub(crate) struct Link {
    pub(crate) core: Arc<Core>,
    /// When the hold gives up (`None`: never — a timeout too large to represent; the
    /// readiness deadline still bounds the connection, **G5** — or not held). Boxed:
    /// only connections that arrive before the registry opens have one, and the
    /// others carry 8 bytes for it instead of 16.
    hold_until: Option<Box<Instant>>,
}

/// The epochs a registered connection stamps under its own lock (**G7**).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct Stamps {
    /// The epoch when the connection became `Ready` ([`NEVER`] until it does).
    ready_at: u64,
    /// The epoch when it started closing ([`NEVER`] until it does).
    closing_at: u64,
}

impl Stamps {
    /// Not registered, or not yet stamped.
    pub(crate) const UNSTAMPED: Stamps = Stamps {
        ready_at: NEVER,
        closing_at: NEVER,
    };
}

/// "Not yet" for an epoch stamp: no broadcast is ever numbered this high (a `u64`
/// counter incremented once per broadcast), and a stamp of `NEVER` is later than every
/// broadcast. Plain `u64`s instead of `Option<u64>` keep the stamps — which every
/// broadcast reads — 16 bytes smaller.
const NEVER: u64 = u64::MAX;

/// The outcome of one broadcast for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Delivered,
    NotReady,
    Closing,
    Full,
}

impl Link {
    pub(crate) fn new(core: Arc<Core>, hold_until: Option<Instant>) -> Link {
        Link {
            core,
            hold_until: hold_until.map(Box::new),
        }
    }
}

impl Shared {
    /// One broadcast's visit to this connection, decided in one critical section.
    /// The common case — ready before the broadcast, not closing, room in the
    /// outbox — queues the message without the wrapper of `Shared::with_hot` (a
    /// delivery never changes the state) and wakes the parked driver after the lock
    /// is released (**G6**). A refusal by the send gate or a full outbox changes
    /// nothing there and is decided again, in a second critical section, by the
    /// general path, `Inner::deliver`, which applies the overflow policy.
    pub(crate) fn deliver(&self, epoch: u64, message: &Message) -> Delivery {
        let queued = {
            let mut inner = self.lock();
            if let Some(refusal) = inner.epoch_refusal(epoch) {
                return refusal;
            }
            inner.try_enqueue_lean(message.clone())
        };
        match queued {
            Ok(waker) => {
                if let Some(waker) = waker {
                    waker.wake();
                }
                Delivery::Delivered
            }
            Err(message) => self.with_hot(|inner, wakeups| inner.deliver(epoch, message, wakeups)),
        }
    }
}

impl Inner {
    /// Lists the connection in `link`'s registry (**G7**): a connection registered
    /// while closing is stamped as closing at once; `held` is the startup gate's
    /// (**G8**).
    pub(crate) fn attach(&mut self, link: Link, held: bool) {
        self.stamps = Stamps::UNSTAMPED;
        if self.lifecycle.phase().is_closing_or_closed() {
            self.stamps.closing_at = link.core.epoch();
        }
        self.held = held;
        self.link = Some(link);
    }

    /// Held by the startup gate right now: admitted before the registry opened, and
    /// it has not opened since — a drain that begins before `open` does not release
    /// anyone (**G8**). The hot flag first: most connections were never held.
    pub(crate) fn is_held(&self) -> bool {
        self.held && self.link.as_ref().is_some_and(|link| !link.core.opened())
    }

    /// After a change of state of a registered connection: stamp the epochs, and on
    /// `Closed` leave the listing (**G7**).
    pub(crate) fn registry_settle(&mut self, id: ConnectionId, wakeups: &mut Wakeups) {
        let phase = self.lifecycle.phase();
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if phase == Phase::Ready && self.stamps.ready_at == NEVER {
            self.stamps.ready_at = link.core.epoch();
        }
        if phase.is_closing_or_closed() && self.stamps.closing_at == NEVER {
            self.stamps.closing_at = link.core.epoch();
            if std::mem::take(&mut self.held) {
                // A closing connection no longer takes a place in the hold.
                link.core.lock().unhold(id);
            }
        }
        if phase == Phase::Closed {
            let cause = self.lifecycle.close_record().map(|r| r.cause);
            if let Some(link) = self.link.take() {
                link.core.lock().remove(id, cause, wakeups);
            }
        }
    }

    /// The epoch rule (**G7**): broadcast `epoch` is for this connection only if it
    /// became `Ready` before the broadcast and had not started closing; `Some` with
    /// the refusal otherwise. An unlisted connection was stamped closing before it
    /// left the listing; one never listed is never visited.
    fn epoch_refusal(&self, epoch: u64) -> Option<Delivery> {
        if self.stamps.closing_at < epoch {
            return Some(Delivery::Closing);
        }
        if self.stamps.ready_at >= epoch {
            return Some(Delivery::NotReady);
        }
        None
    }

    /// Queues a broadcast numbered `epoch` if this connection was `Ready` before it
    /// (**G7**) and may still be sent to (**G3**); the general path of
    /// `Shared::deliver`.
    pub(crate) fn deliver(
        &mut self,
        epoch: u64,
        message: Message,
        wakeups: &mut Wakeups,
    ) -> Delivery {
        if let Some(refusal) = self.epoch_refusal(epoch) {
            return refusal;
        }
        let (open, room) = (self.check_send().is_ok(), self.room());
        match self.send(message, wakeups) {
            Ok(()) => Delivery::Delivered,
            Err(e) if e.kind == SendErrorKind::Full || (open && !room) => Delivery::Full,
            Err(_) => Delivery::Closing,
        }
    }

    /// The startup gate's deadline, while it can still close the connection: held,
    /// the registry starting, and the connection not closing already (a closing
    /// connection's driver must sleep until its close deadline, not spin on a hold
    /// deadline that can no longer fire).
    pub(crate) fn hold_deadline(&self) -> Option<Instant> {
        if !self.is_held() || self.lifecycle.phase().is_closing_or_closed() {
            return None;
        }
        self.link.as_ref()?.hold_until.as_deref().copied()
    }

    /// Closes a held connection whose hold deadline has passed, or — `ready` — that
    /// the application tries to make ready while the registry is starting: it must
    /// not be routed to handlers that are not there yet (**G8**). 1013.
    pub(crate) fn enforce_hold(&mut self, now: Instant, ready: bool) {
        let Some(until) = self.hold_deadline() else {
            return;
        };
        // The hold's close happens at the hold deadline itself, so a late driver sees
        // the deadlines in the order they passed: one due earlier (readiness, say)
        // still wins, one due later fires after the hold's close (G5, G8).
        let (reason, at) = if until <= now {
            ("server still starting", until)
        } else if ready {
            ("made ready before the server opened", now)
        } else {
            return;
        };
        let frame = CloseFrame::internal(CloseCode::TRY_AGAIN_LATER, reason);
        self.lifecycle.close_as(frame, CloseCause::NotAdmitted, at);
    }

    /// The registry opened: release the hold and wake whoever waits for admission.
    pub(crate) fn release_hold(&mut self, wakeups: &mut Wakeups) {
        self.held = false;
        self.wake_waiters(WaitFor::State, wakeups);
    }
}
