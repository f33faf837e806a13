//! Layer 2, the shared state: one connection's sans-IO [`Conn`] behind one lock, the
//! wakers of whoever waits on it, the published phase for lock-free reads, and the
//! connection's side of its registry membership (through [`Membership`], so this
//! layer never imports the registry).
//!
//! Every handle — the type-state [`Connection`](crate::handle::Connection),
//! [`Sender`](crate::handle::Sender) clones, [`Emitter`](crate::handle::Emitter)s,
//! [`Observer`](crate::handle::Observer)s, the driver's
//! [`Transport`](crate::handle::Transport) — holds an `Arc` of this and nothing else.
//! The core decides **G2** and **G3**; running each of its operations under the one
//! lock makes them atomic with respect to each other (a send racing a close is
//! written before the Close or handed back); and because every change the core
//! reports ([`Effects`]) wakes whoever waits for it after the lock is released, no
//! wakeup is lost (**G6**).
//!
//! One way to run under the lock, [`Shared::run`], and three fast paths beside it
//! for the hot operations — [`Shared::send`], [`Shared::deliver`] and
//! [`Shared::take_frames`] — each of which takes the general path whenever its common
//! case does not apply.

mod membership;
pub(crate) mod sync;
pub(crate) mod wait;
mod waiters;

use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::core::{
    CloseRecord, Config, Conn, ConnectionId, Effects, Frame, Input, Message, Phase, Rejected,
    SendError, SendErrorKind, Step, TransportLoss,
};

pub(crate) use membership::{Delivery, Link, Member, Membership, Stamps};
use sync::{AtomicU8, Mutex, MutexGuard, Ordering, lock};
pub(crate) use waiters::{WaitFor, Wakeups};
use waiters::{Waiters, wants_of};

/// The state behind every handle of one connection.
///
/// `repr(C)`: the published phase and the lock come first, right after the `Arc`'s
/// counts, so that cloning the `Arc`, reading the phase, taking the lock and the
/// first fields of [`Inner`] fall in the allocation's first bytes.
#[repr(C)]
pub(crate) struct Shared {
    /// The phase, published after every change under the lock (**G6**: readers that
    /// see a phase then wait will be woken by the next change).
    phase: AtomicU8,
    inner: Mutex<Inner>,
    id: ConnectionId,
}

/// What the lock guards: the core's connection and who waits on it.
///
/// Laid out in declaration order (`repr(C)`), hottest first. A broadcast's delivery
/// and the driver taking frames touch the `Arc`'s counts, the phase and the lock, the
/// stamps, the driver's waker, and the core's clock, outbox (with its
/// inline oldest message), bound, flags (the hold flag among them) and state byte: two or three cache lines, by
/// where the allocator puts it. With ten thousand connections a broadcast touches
/// every one of them, and each extra line is a cache miss per delivery
/// (`benches/fanout.rs`). What only the handshake, the inbound side or waiting
/// futures use comes after.
#[repr(C)]
pub(crate) struct Inner {
    /// The registry's epoch stamps (**G7**), read by every broadcast.
    pub(crate) stamps: Stamps,
    /// The driver, waiting for a frame or a change of deadline.
    transmit: Option<Waker>,
    /// The sans-IO connection.
    pub(crate) conn: Conn,
    /// Everyone else who waits: observers, async senders, receivers.
    waiters: Waiters,
    /// The registry this connection is listed in, if any (**G7**, **G8**).
    link: Option<Link>,
    /// The driver, waiting for room in the inbound hold.
    inbound_room: Option<Waker>,
}

impl Shared {
    pub(crate) fn new(id: ConnectionId, config: Config) -> Shared {
        Shared {
            id,
            phase: AtomicU8::new(Phase::Connecting.code()),
            inner: Mutex::new(Inner {
                stamps: Stamps::UNSTAMPED,
                transmit: None,
                conn: Conn::new(id, config),
                waiters: Waiters::default(),
                link: None,
                inbound_room: None,
            }),
        }
    }

    pub(crate) fn id(&self) -> ConnectionId {
        self.id
    }

    /// The phase, without taking the lock.
    pub(crate) fn phase(&self) -> Phase {
        Phase::from_code(self.phase.load(Ordering::Acquire)).unwrap_or(Phase::Closed)
    }

    /// The lock, for reads (and for the fast paths, which change nothing that
    /// anyone waits for besides the driver).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// The one way to change the state: runs `f` under the lock, acts on what the
    /// core reports changed — publishing the phase, stamping and unlisting the
    /// registry membership, collecting the wakers of whoever waits for it — and
    /// wakes them after the lock is released (**G6**).
    pub(crate) fn run<R>(&self, f: impl FnOnce(&mut Inner, &mut Wakeups) -> R) -> R {
        let mut wakeups = Wakeups::default();
        let result = {
            let mut inner = self.lock();
            let result = f(&mut inner, &mut wakeups);
            let effects = inner.conn.take_effects();
            if !effects.is_empty() {
                inner.apply(effects, &mut wakeups);
                if effects.contains(Effects::STATE) {
                    self.phase
                        .store(inner.conn.phase().code(), Ordering::Release);
                }
            }
            result
        };
        wakeups.wake();
        result
    }

    /// Fast path of `Sender::send` (**G1**, **G3**): the common case — open, with
    /// room — queues under the lock and wakes the parked driver, if any, after it is
    /// released (**G6**). A full outbox or a shut gate takes the general path, which
    /// applies the overflow policy.
    pub(crate) fn send(&self, message: Message) -> Result<(), SendError> {
        let queued = {
            let mut inner = self.lock();
            inner.try_enqueue(message)
        };
        match queued {
            Ok(waker) => {
                if let Some(waker) = waker {
                    waker.wake();
                }
                Ok(())
            }
            Err(message) => self.run(|inner, _| inner.conn.send(message)),
        }
    }

    /// Fast path of one broadcast's visit to this connection, decided in one critical
    /// section (**G7**): ready before the broadcast, not closing, room in the outbox —
    /// queue and wake the parked driver after the lock is released. A refusal by the
    /// send gate or a full outbox is decided again by the general path, which applies
    /// the overflow policy.
    pub(crate) fn deliver(&self, epoch: u64, message: &Message) -> Delivery {
        let queued = {
            let mut inner = self.lock();
            if let Some(refusal) = inner.stamps.refusal(epoch) {
                return refusal;
            }
            inner.try_enqueue(message.clone())
        };
        match queued {
            Ok(waker) => {
                if let Some(waker) = waker {
                    waker.wake();
                }
                Delivery::Delivered
            }
            Err(message) => self.run(|inner, _| inner.deliver(epoch, message)),
        }
    }

    /// Fast path of `Transport::next_frames` and `poll_transmit_batch` (with `cx`):
    /// when `Ready`, nothing deferred, held or timed and the outbox not full, the
    /// messages are taken with nothing else to do (nothing it does can change the
    /// state, arm a deadline or free room a sender waits for). Anything else takes
    /// the general path.
    pub(crate) fn take_frames(
        &self,
        cx: Option<&mut Context<'_>>,
        now: Instant,
        out: &mut Vec<Frame>,
        max: usize,
    ) -> Poll<Option<usize>> {
        // A poll for a batch of none could never register the waker: it counts as
        // one. `next_frames(.., 0)` takes nothing.
        let max = if cx.is_some() { max.max(1) } else { max };
        if max == 0 {
            return Poll::Ready(Some(0));
        }
        let (taken, old_waker) = {
            let mut inner = self.lock();
            match inner.conn.take_ready(now, out, max) {
                Some(taken) => {
                    // Emptied what was ready: the driver may wait without polling
                    // again (G6), as on the general path.
                    let old = match cx.as_ref() {
                        Some(cx) if taken < max => inner.replace_transmit(cx.waker()),
                        _ => None,
                    };
                    (taken, old)
                }
                None => {
                    drop(inner);
                    return self
                        .run(|inner, wakeups| inner.poll_frames(cx, now, out, max, wakeups));
                }
            }
        };
        // A replaced waker is dropped after the lock is released.
        drop(old_waker);
        match taken {
            0 if cx.is_some() => Poll::Pending,
            n => Poll::Ready(Some(n)),
        }
    }

    /// Feeds an input at `now` (the lifecycle's clock rules apply; **G8**: a held
    /// connection is not made ready while the registry is starting).
    pub(crate) fn handle(&self, input: Input, now: Instant) -> Result<Step, Rejected> {
        self.run(|inner, wakeups| {
            inner.tick(now, wakeups);
            if matches!(input, Input::ServicesReady) {
                inner.enforce_hold(now, true);
            }
            inner.conn.handle(input, now)
        })
    }

    /// Fires what is due at `now` — the lifecycle's deadlines and the startup gate's
    /// hold deadline (**G5**, **G8**) — and reports the step, if any.
    pub(crate) fn handle_timeout(&self, now: Instant) -> Option<Step> {
        self.run(|inner, wakeups| {
            let from = inner.conn.state();
            let hold_fires = !inner.conn.close_deferred()
                && inner.hold_deadline().is_some_and(|until| until <= now);
            inner.tick(now, wakeups);
            let fired = inner.conn.handle_timeout(now);
            let to = inner.conn.state();
            match fired {
                Some(step) if hold_fires => Some(Step { from, ..step }),
                None if hold_fires => Some(Step { from, to }),
                fired => fired,
            }
        })
    }

    /// `Transport::poll_busy` (**G5**, **G6**): the time input, then `cx`'s waker as
    /// the driver's, without taking anything; `Ready` once the connection is
    /// `Closed`. Registered after the time input, so a change of state it makes
    /// wakes it at once.
    pub(crate) fn poll_busy(&self, cx: &mut Context<'_>, now: Instant) -> Poll<()> {
        self.run(|inner, wakeups| {
            inner.tick(now, wakeups);
            if inner.conn.phase() == Phase::Closed {
                return Poll::Ready(());
            }
            inner.park_transmit(cx, wakeups);
            Poll::Pending
        })
    }

    /// Ends a connection nobody will drive any more (its registration was dropped):
    /// straight to `Closed`, which unlists it (**G7**). Uses the latest time the
    /// connection has seen, so no deadline fires early.
    pub(crate) fn abandon(&self) {
        self.run(|inner, wakeups| {
            let now = inner.clock_or_now();
            inner.tick(now, wakeups);
            let _ = inner
                .conn
                .handle(Input::TransportLost(TransportLoss::Dropped), now);
        });
    }
}

impl Drop for Shared {
    /// The last handle is gone. Messages or events still queued were neither written
    /// nor taken back with `take_unsent`: report them rather than lose them silently
    /// (**G2**, **G3**).
    fn drop(&mut self) {
        let inner = match self.inner.get_mut() {
            Ok(inner) => inner,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (queued, pending) = inner.conn.queued();
        if queued + pending > 0 {
            let _span = inner.conn.lifecycle().span().enter();
            tracing::warn!(
                queued,
                pending,
                state = %inner.conn.state(),
                "connection dropped with messages never written nor taken back (take_unsent)"
            );
        }
    }
}

impl Inner {
    /// Acts on what the core reports changed: on a change of state wake everyone and
    /// settle the registry membership; otherwise wake only whoever waits for what
    /// changed.
    fn apply(&mut self, effects: Effects, wakeups: &mut Wakeups) {
        if effects.contains(Effects::STATE) {
            self.wake_transmit(wakeups);
            if let Some(waker) = self.inbound_room.take() {
                wakeups.push(waker);
            }
            self.waiters.wake_all(wakeups);
            self.conn.timed_waits = false;
            self.settle_membership(wakeups);
            return;
        }
        if effects.contains(Effects::TRANSMIT) || effects.contains(Effects::DEADLINE) {
            self.wake_transmit(wakeups);
        }
        if effects.contains(Effects::INBOUND_ROOM) {
            if let Some(waker) = self.inbound_room.take() {
                wakeups.push(waker);
            }
        }
        for wants in wants_of(effects) {
            self.waiters.wake(wants, wakeups);
        }
        self.conn.timed_waits = self.waiters.any_timed();
    }

    /// The time input: the core's, then the startup gate's hold deadline (**G8**),
    /// then the waits whose timeout passed (**G6**).
    pub(crate) fn tick(&mut self, now: Instant, wakeups: &mut Wakeups) -> &mut Self {
        self.conn.tick(now);
        self.enforce_hold(now, false);
        if let Some(clock) = self.conn.clock() {
            self.waiters.expire(clock, wakeups);
            self.conn.timed_waits = self.waiters.any_timed();
        }
        self
    }

    /// The latest time input, or the system clock if there was none yet.
    pub(crate) fn clock_or_now(&self) -> Instant {
        self.conn.clock().unwrap_or_else(Instant::now)
    }

    /// The time for a call that carries none (an application's close, a drain): the
    /// clock of the connection's registry — the driver's, when a driver runs it, so a
    /// close is stamped on the clock that fires its timeout — or the system's
    /// monotonic clock; never behind the latest time the connection has seen.
    pub(crate) fn clock_now(&self) -> Instant {
        let now = match &self.link {
            Some(link) => link.member.now(),
            None => Instant::now(),
        };
        self.conn.clock().map_or(now, |clock| clock.max(now))
    }

    /// The next time the driver must feed: the lifecycle's next deadline, the
    /// startup gate's hold deadline, or the earliest timeout of a pending wait.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [
            self.conn.poll_timeout(),
            self.waiters.next_timeout(),
            self.hold_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The send gate and the enqueue of the fast paths: on success, the parked
    /// driver's waker, to be woken once the lock is released (**G6**).
    fn try_enqueue(&mut self, message: Message) -> Result<Option<Waker>, Message> {
        self.conn.try_enqueue(message)?;
        Ok(self.transmit.take())
    }

    /// The general path of a broadcast's delivery (**G7**): the epoch rule, then the
    /// core's send with its overflow policy.
    fn deliver(&mut self, epoch: u64, message: Message) -> Delivery {
        if let Some(refusal) = self.stamps.refusal(epoch) {
            return refusal;
        }
        let (open, room) = (
            self.conn.check_send().is_ok(),
            self.conn.has_room_for(message.len()),
        );
        match self.conn.send(message) {
            Ok(()) => Delivery::Delivered,
            Err(e) if e.kind == SendErrorKind::Full || (open && !room) => Delivery::Full,
            Err(_) => Delivery::Closing,
        }
    }

    /// The general path of the driver's taking frames: the time input, up to `max`
    /// frames, and — with `cx` — the driver's waker whenever the batch emptied what
    /// was ready, so that it may write and wait without polling again (**G6**).
    /// `Ready(None)`: closed, nothing will ever be written.
    fn poll_frames(
        &mut self,
        cx: Option<&mut Context<'_>>,
        now: Instant,
        out: &mut Vec<Frame>,
        max: usize,
        wakeups: &mut Wakeups,
    ) -> Poll<Option<usize>> {
        self.tick(now, wakeups);
        let taken = self.conn.next_frames(now, out, max);
        let Some(cx) = cx else {
            return Poll::Ready(Some(taken));
        };
        let closed = self.conn.phase() == Phase::Closed;
        if taken < max && !closed {
            self.park_transmit(cx, wakeups);
        }
        match taken {
            0 if closed => Poll::Ready(None),
            0 => Poll::Pending,
            n => Poll::Ready(Some(n)),
        }
    }

    /// The next frame for the driver, registering `cx`'s waker when there is none.
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
        wakeups: &mut Wakeups,
    ) -> Poll<Option<Frame>> {
        self.tick(now, wakeups);
        match self.conn.next_frame(now) {
            Some(frame) => Poll::Ready(Some(frame)),
            None if self.conn.phase() == Phase::Closed => Poll::Ready(None),
            None => {
                self.park_transmit(cx, wakeups);
                Poll::Pending
            }
        }
    }

    /// The next frame for the driver, without a waker.
    pub(crate) fn next_frame(&mut self, now: Instant, wakeups: &mut Wakeups) -> Option<Frame> {
        self.tick(now, wakeups);
        self.conn.next_frame(now)
    }

    /// Registers the driver's waker until the inbound hold has room.
    pub(crate) fn poll_inbound_room(
        &mut self,
        cx: &mut Context<'_>,
        wakeups: &mut Wakeups,
    ) -> Poll<()> {
        if self.conn.inbound_has_room() {
            return Poll::Ready(());
        }
        let old = self.inbound_room.replace(cx.waker().clone());
        wakeups.discard(old);
        Poll::Pending
    }

    /// Registers (or refreshes) the waker of the waiting future `id` (0: a new one);
    /// a wait with a timeout also wakes the driver, whose next deadline it may bring
    /// forward (**G6**).
    pub(crate) fn register(
        &mut self,
        id: &mut u32,
        wants: WaitFor,
        until: Option<Instant>,
        waker: &Waker,
        wakeups: &mut Wakeups,
    ) {
        if self.waiters.register(id, wants, until, waker, wakeups) {
            self.conn.timed_waits = true;
            self.wake_transmit(wakeups);
        }
    }

    /// Forgets the waiting future `id`; its waker is handed back, to be dropped after
    /// the lock is released.
    pub(crate) fn unregister(&mut self, id: u32) -> Option<Waker> {
        let waker = self.waiters.unregister(id);
        self.conn.timed_waits = self.waiters.any_timed();
        waker
    }

    /// How the connection is closing or closed.
    pub(crate) fn close_record(&self) -> Option<CloseRecord> {
        self.conn.close_record().cloned()
    }

    fn wake_transmit(&mut self, wakeups: &mut Wakeups) {
        if wakeups.one.is_none() {
            wakeups.one = self.transmit.take();
        }
    }

    /// Makes `waker` the driver's; hands back the one it replaces, to be dropped after
    /// the lock is released.
    fn replace_transmit(&mut self, waker: &Waker) -> Option<Waker> {
        if self.transmit.as_ref().is_some_and(|w| w.will_wake(waker)) {
            return None;
        }
        self.transmit.replace(waker.clone())
    }

    /// Keeps `cx`'s waker as the driver's, to be woken by the next frame or change.
    fn park_transmit(&mut self, cx: &mut Context<'_>, wakeups: &mut Wakeups) {
        let old = self.replace_transmit(cx.waker());
        wakeups.discard(old);
    }
}
