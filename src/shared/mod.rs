//! The one authoritative shared state of a connection: the lifecycle, the outbox, the
//! pre-ready buffer and the inbound hold, behind one lock, plus a published copy of
//! the phase for lock-free reads.
//!
//! Every handle — the type-state [`Connection`](crate::handle::Connection), [`Sender`](crate::handle::Sender)
//! clones, [`Emitter`](crate::handle::Emitter)s, [`Observer`](crate::handle::Observer)s, the driver's
//! [`Transport`](crate::handle::Transport) — holds an `Arc` of this and nothing else. Because
//! "check the phase + enqueue" and "start the close + owe the Close frame" run under the
//! same lock, they are atomic with respect to each other (**G3**, **G4**); because the
//! transition to `Ready` moves the pre-ready buffer into the outbox under that lock,
//! buffered events precede every later send (**G2**); and because every change of
//! state wakes every waiter after the lock is released, no wait is lost (**G6**).

pub(crate) mod sync;
pub(crate) mod wait;

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::core::Outbox;
use crate::core::{
    CloseCause, CloseCode, CloseFrame, CloseRecord, Config, ConnectionId, Frame, Input, Lifecycle,
    MachineState, Message, OverflowPolicy, Phase, Rejected, SendError, SendErrorKind, SendRefused,
    Step, TransportLoss,
};
use crate::registry::{Link, Stamps};
use crate::shared::sync::{AtomicU8, Mutex, MutexGuard, Ordering, lock};

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

/// What the lock guards.
///
/// Laid out in declaration order (`repr(C)`), hottest first. A broadcast's delivery
/// and the driver taking frames touch only the first 128 bytes of the allocation
/// (the `Arc`'s counts, the phase and the lock, then the stamps, the clock, the
/// outbox with its inline oldest message, the driver's waker, the gates and the
/// lifecycle's state byte: two or three cache lines, by where the allocator puts
/// it); the outbox's buffer only when a backlog builds. With ten
/// thousand connections a broadcast touches every one of them, and each extra line
/// is a cache miss per delivery (`benches/fanout.rs`).
/// What only the handshake, the inbound side or waiting futures use comes after.
#[repr(C)]
pub(crate) struct Inner {
    /// The registry's epoch stamps (**G7**), read by every broadcast.
    pub(crate) stamps: Stamps,
    /// The latest time any timed call carried: the clock for waits with a timeout
    /// (**G6**), which expire when the time input passes their deadline.
    clock: Option<Instant>,
    /// Messages for the peer, written by the driver in order (**G3**); the oldest
    /// inline, on this hot line.
    outbox: Outbox,
    /// The driver, waiting for a frame or a change of deadline.
    transmit: Option<Waker>,
    /// Normalized bound (see `Shared::new`), as `u32`: a bound past `u32::MAX`
    /// messages is no bound a server can hold in memory anyway.
    outbox_capacity: u32,
    /// A slow-consumer close requested by a send, which carries no time: send is
    /// refused from the request on (**G3**), and the close itself (the frame of
    /// `overflow_close`) is applied by the next input that carries `now` — normally
    /// the driver's `poll_transmit`, which the request wakes — so its handshake
    /// timeout is armed from a real time.
    deferred_close: bool,
    /// Admitted before the registry opened: held by the startup gate until it does
    /// (**G8**; see `Inner::is_held`).
    pub(crate) held: bool,
    /// How many of `waiters` have a timeout: the clock scan is skipped when none do.
    /// Sticky at `u16::MAX` (the scan then always runs).
    timed_waiters: u16,
    /// Its first field, the machine state, is the last hot byte (offset 120).
    pub(crate) lifecycle: Lifecycle,
    /// Everyone else who waits: observers, async senders, receivers, each with what
    /// it waits for, so a freed slot or an arrival wakes only those who care. Keyed by
    /// a per-future id so a re-poll replaces its waker instead of adding one (bounded
    /// by the number of live futures).
    waiters: Vec<Waiter>,
    /// The registry this connection is listed in, if any (**G7**, **G8**).
    pub(crate) link: Option<Link>,
    pending_capacity: u32,
    inbound_capacity: u32,
    /// Events emitted before `Ready`, moved to the outbox at the transition (**G2**).
    pending: VecDeque<Message>,
    /// Application messages from the peer, held until the application reads them; the
    /// application can only get a reader from `Connection<Ready>` (**G2**).
    inbound: VecDeque<Message>,
    /// `OverflowPolicy::Close`'s frame; `None` for `OverflowPolicy::Reject`, the
    /// default. Boxed: a connection under the default policy carries 8 bytes for it
    /// instead of a whole frame.
    overflow_close: Option<Box<CloseFrame>>,
    /// The driver, waiting for room in the inbound hold.
    inbound_room: Option<Waker>,
    next_waiter: u64,
}

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
    id: u64,
    wants: WaitFor,
    /// When the wait gives up, if it does: woken once the time input reaches it.
    until: Option<Instant>,
    waker: Waker,
}

/// Wakers collected under the lock and woken — or, for wakers that were replaced or
/// unregistered, dropped — after it is released: dropping a waker can run arbitrary
/// code (the last reference to a task), which must not run under our lock.
#[derive(Default)]
#[must_use = "wake them after the lock is released"]
pub(crate) struct Wakeups {
    one: Option<Waker>,
    many: Vec<Waker>,
    discard: Vec<Waker>,
}

impl Wakeups {
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

/// Why the driver could not hand an inbound message over.
#[derive(Debug)]
pub(crate) enum InboundRefused {
    /// The connection is closing or closed; the message is dropped by design (the
    /// application can no longer be reached).
    Closed,
    /// The hold is full while `Ready`: wait for room (`poll_inbound_room`).
    Full(Message),
}

impl Shared {
    pub(crate) fn id(&self) -> ConnectionId {
        self.id
    }

    pub(crate) fn new(id: ConnectionId, config: Config) -> Shared {
        // Normalized (documented on `Config`): every bound at least 1 (and at most
        // `u32::MAX`), and the pre-ready buffer no larger than the outbox it is flushed
        // into.
        let bound = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).max(1);
        let outbox_capacity = bound(config.outbox_capacity);
        let inner = Inner {
            stamps: Stamps::UNSTAMPED,
            clock: None,
            outbox: Outbox::default(),
            transmit: None,
            outbox_capacity,
            deferred_close: false,
            held: false,
            timed_waiters: 0,
            waiters: Vec::new(),
            link: None,
            pending_capacity: bound(config.pending_capacity).min(outbox_capacity),
            inbound_capacity: bound(config.inbound_capacity),
            pending: VecDeque::new(),
            inbound: VecDeque::new(),
            overflow_close: match &config.overflow {
                OverflowPolicy::Close(frame) => Some(Box::new(frame.clone())),
                _ => None,
            },
            inbound_room: None,
            next_waiter: 0,
            lifecycle: Lifecycle::new(id, config),
        };
        Shared {
            id,
            phase: AtomicU8::new(Phase::Connecting.code()),
            inner: Mutex::new(inner),
        }
    }

    /// The phase, without taking the lock.
    pub(crate) fn phase(&self) -> Phase {
        Phase::from_code(self.phase.load(Ordering::Acquire)).unwrap_or(Phase::Closed)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Runs `f` under the lock, publishes the phase if it changed, and wakes whoever
    /// must be woken after the lock is released.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Inner, &mut Wakeups) -> R) -> R {
        self.run(f, true)
    }

    /// [`with`](Self::with) for the hot path — a send, a broadcast's delivery, the
    /// driver taking frames, when their lean paths (`Shared::send`,
    /// `Shared::deliver`, `Shared::take_frames`) must fall back, and the driver's
    /// single-frame `next_frame`/`poll_transmit` — none of which can bring a deadline
    /// forward without also changing the state: it skips comparing the next deadline
    /// before and after (two walks over the deadlines, the waiters and the registry
    /// link per call).
    pub(crate) fn with_hot<R>(&self, f: impl FnOnce(&mut Inner, &mut Wakeups) -> R) -> R {
        self.run(f, false)
    }

    /// `Sender::send` (**G1**, **G3**): the gate and the enqueue under one lock, as in
    /// `Inner::send`. The common case — open, with room — skips the wrapper of
    /// `run` (a send never changes the state, so there is nothing to settle) and
    /// wakes the parked driver, if any, after the lock is released (**G6**); a full
    /// outbox or a closed gate takes the general path.
    pub(crate) fn send(&self, message: Message) -> Result<(), SendError> {
        let queued = self.lock().try_enqueue_lean(message);
        match queued {
            Ok(waker) => {
                if let Some(waker) = waker {
                    waker.wake();
                }
                Ok(())
            }
            Err(message) => self.with_hot(|inner, wakeups| inner.send(message, wakeups)),
        }
    }

    /// `Transport::next_frames` and `poll_transmit_batch` (with `cx`). The common
    /// case — `Ready`, nothing deferred, held or timed, the outbox not full — takes
    /// the messages without the wrapper of `run`: nothing it does can change the
    /// state, arm a deadline or free room an async sender waits for. Anything else
    /// takes the general path (`Inner::next_frames`, `Inner::poll_frames`).
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
        let (taken, old_waker) =
            {
                let mut inner = self.lock();
                match inner.take_ready(now, out, max) {
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
                        return match cx {
                            Some(cx) => self.with_hot(|inner, wakeups| {
                                inner.poll_frames(cx, now, out, max, wakeups)
                            }),
                            None => Poll::Ready(Some(self.with_hot(|inner, wakeups| {
                                inner.next_frames(now, out, max, wakeups)
                            }))),
                        };
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

    /// `Transport::poll_busy` (**G5**, **G6**): the time input, then `cx`'s waker as
    /// the driver's, without taking anything; `Ready` once the connection is
    /// `Closed`. Registered after the time input, so a state change that input makes
    /// wakes it at once (`run` settles after `f`).
    pub(crate) fn poll_busy(&self, cx: &mut Context<'_>, now: Instant) -> Poll<()> {
        self.with(|inner, wakeups| {
            inner.at(now, wakeups);
            if inner.lifecycle.phase() == Phase::Closed {
                return Poll::Ready(());
            }
            inner.park_transmit(cx, wakeups);
            Poll::Pending
        })
    }

    fn run<R>(&self, f: impl FnOnce(&mut Inner, &mut Wakeups) -> R, deadline_may_move: bool) -> R {
        let mut wakeups = Wakeups::default();
        let result = {
            let mut inner = self.lock();
            let before = inner.lifecycle.state();
            let deadline = deadline_may_move.then(|| inner.next_deadline());
            let result = f(&mut inner, &mut wakeups);
            if inner.lifecycle.state() != before {
                inner.settle(&mut wakeups);
                self.phase
                    .store(inner.lifecycle.phase().code(), Ordering::Release);
            } else if deadline.is_some_and(|deadline| inner.next_deadline() != deadline) {
                // A re-authentication moved the credential's expiry, or a wait with an
                // earlier timeout began: the driver must re-read `poll_timeout` (**G5**,
                // **G6**).
                inner.wake_transmit(&mut wakeups);
            }
            result
        };
        wakeups.wake();
        result
    }

    /// Feeds an input (the lifecycle's clock rules apply).
    pub(crate) fn handle(&self, input: Input, now: Instant) -> Result<Step, Rejected> {
        self.with(|inner, wakeups| {
            let inner = inner.at(now, wakeups);
            if matches!(input, Input::ServicesReady) {
                // The startup gate: a held connection is not routed to handlers that
                // are not there yet (**G8**).
                inner.enforce_hold(now, true);
            }
            inner.lifecycle.handle(input, now)
        })
    }

    /// Ends a connection nobody will drive any more (its registration was dropped):
    /// straight to `Closed`, which unlists it (**G7**). Uses the latest time the
    /// connection has seen, so no deadline fires early.
    pub(crate) fn abandon(&self) {
        self.with(|inner, wakeups| {
            let now = inner.clock_or_now();
            let _ = inner
                .at(now, wakeups)
                .lifecycle
                .handle(Input::TransportLost(TransportLoss::Dropped), now);
        });
    }

    /// See `Lifecycle::handle_timeout`; the startup gate's hold deadline (**G8**)
    /// counts as one of the connection's deadlines.
    pub(crate) fn handle_timeout(&self, now: Instant) -> Option<Step> {
        self.with(|inner, wakeups| {
            let from = inner.lifecycle.state();
            let hold_fires =
                !inner.deferred_close && inner.hold_deadline().is_some_and(|until| until <= now);
            let fired = inner.at(now, wakeups).lifecycle.handle_timeout(now);
            let to = inner.lifecycle.state();
            match fired {
                Some(step) if hold_fires => Some(Step { from, ..step }),
                None if hold_fires => Some(Step { from, to }),
                fired => fired,
            }
        })
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
        let (queued, pending) = (inner.outbox.len(), inner.pending.len());
        if queued + pending > 0 {
            let _span = inner.lifecycle.span().enter();
            tracing::warn!(
                queued,
                pending,
                state = %inner.lifecycle.state(),
                "connection dropped with messages never written nor taken back (take_unsent)"
            );
        }
    }
}

impl Inner {
    /// After a change of state: move the pre-ready buffer on `Ready` (**G2**), and wake
    /// every waiter — the phase, the deadline or what may be written changed (**G6**).
    fn settle(&mut self, wakeups: &mut Wakeups) {
        if self.lifecycle.phase() == Phase::Ready {
            // Nothing can be in the outbox before Ready, so the buffered events go
            // first, in emission order, and exactly once (they leave `pending`).
            self.outbox.extend(self.pending.drain(..));
        }
        self.wake_transmit(wakeups);
        wakeups.many.extend(self.inbound_room.take());
        wakeups.many.extend(self.waiters.drain(..).map(|w| w.waker));
        self.timed_waiters = 0;
        let id = self.lifecycle.id();
        self.registry_settle(id, wakeups);
    }

    /// Applies a deferred slow-consumer close with the first real time that comes
    /// in; every operation that carries `now` calls this first.
    pub(crate) fn at(&mut self, now: Instant, wakeups: &mut Wakeups) -> &mut Self {
        // Set only under `OverflowPolicy::Close`, whose frame it applies.
        debug_assert!(!self.deferred_close || self.overflow_close.is_some());
        if std::mem::take(&mut self.deferred_close) {
            if let Some(frame) = &self.overflow_close {
                let frame = CloseFrame::clone(frame);
                self.lifecycle
                    .close_as(frame, CloseCause::SlowConsumer, now);
            }
        }
        let clock = self.clock.map_or(now, |c| c.max(now));
        self.clock = Some(clock);
        self.enforce_hold(now, false);
        // Waits whose timeout has passed re-check (and give up).
        let mut i = 0;
        while self.timed_waiters > 0 && i < self.waiters.len() {
            if self.waiters[i].until.is_some_and(|until| until <= clock) {
                wakeups.many.push(self.take_waiter(i).waker);
            } else {
                i += 1;
            }
        }
        self
    }

    /// Removes waiter `i`, keeping the count of timed ones.
    fn take_waiter(&mut self, i: usize) -> Waiter {
        let waiter = self.waiters.swap_remove(i);
        // Sticky at `u16::MAX`: past that many timed waits the count is no longer
        // exact, and the clock scan simply always runs.
        if waiter.until.is_some() && self.timed_waiters != u16::MAX {
            self.timed_waiters -= 1;
        }
        waiter
    }

    /// The latest time input, or the system clock if there was none yet.
    pub(crate) fn clock_or_now(&self) -> Instant {
        self.clock.unwrap_or_else(Instant::now)
    }

    /// True once the time input has reached `until`.
    pub(crate) fn passed(&self, until: Instant) -> bool {
        self.clock.is_some_and(|clock| clock >= until)
    }

    /// The next time the driver must feed: the lifecycle's next deadline or the
    /// earliest timeout of a pending wait.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let timed: &[Waiter] = if self.timed_waiters > 0 {
            &self.waiters
        } else {
            &[]
        };
        let waits = timed
            .iter()
            .filter_map(|w| w.until)
            .chain(self.hold_deadline())
            .min();
        match (self.lifecycle.poll_timeout(), waits) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The send gate (**G1**, **G3**): the lifecycle's, shut early by a requested
    /// slow-consumer close.
    pub(crate) fn check_send(&self) -> Result<(), SendRefused> {
        if self.deferred_close {
            return Err(SendRefused::Closed);
        }
        self.lifecycle.check_send()
    }

    fn wake_transmit(&mut self, wakeups: &mut Wakeups) {
        if wakeups.one.is_none() {
            wakeups.one = self.transmit.take();
        }
    }

    /// Wakes the waiters that wait for `wants`: they re-check their condition and
    /// wait again if it still fails.
    pub(crate) fn wake_waiters(&mut self, wants: WaitFor, wakeups: &mut Wakeups) {
        let mut i = 0;
        while i < self.waiters.len() {
            if self.waiters[i].wants == wants {
                wakeups.many.push(self.take_waiter(i).waker);
            } else {
                i += 1;
            }
        }
    }

    /// Registers (or refreshes) the waker of the future `id` (0: a new future).
    pub(crate) fn register(
        &mut self,
        id: &mut u64,
        wants: WaitFor,
        until: Option<Instant>,
        waker: &Waker,
        wakeups: &mut Wakeups,
    ) {
        if *id != 0 {
            if let Some(w) = self.waiters.iter_mut().find(|w| w.id == *id) {
                if !w.waker.will_wake(waker) {
                    let old = std::mem::replace(&mut w.waker, waker.clone());
                    wakeups.discard(Some(old));
                }
                return;
            }
        } else {
            self.next_waiter += 1;
            *id = self.next_waiter;
        }
        if until.is_some() {
            self.timed_waiters = self.timed_waiters.saturating_add(1);
        }
        self.waiters.push(Waiter {
            id: *id,
            wants,
            until,
            waker: waker.clone(),
        });
    }

    /// Forgets the future `id`; its waker is handed back, to be dropped after the
    /// lock is released.
    pub(crate) fn unregister(&mut self, id: u64) -> Option<Waker> {
        let at = self.waiters.iter().position(|w| w.id == id)?;
        Some(self.take_waiter(at).waker)
    }

    /// The send gate and the enqueue, atomically (**G1**, **G3**).
    pub(crate) fn send(
        &mut self,
        message: Message,
        wakeups: &mut Wakeups,
    ) -> Result<(), SendError> {
        let message = match self.try_enqueue(message) {
            Ok(()) => {
                self.wake_transmit(wakeups);
                return Ok(());
            }
            Err(message) => message,
        };
        if self.check_send().is_err() {
            return Err(SendError::new(SendErrorKind::Closed, message));
        }
        // The gate is open, so the outbox is full.
        if self.overflow_close.is_some() {
            // The slow-consumer close. A send carries no time, so the close is
            // applied by the driver's next call with `now`, which this wakes.
            self.deferred_close = true;
            self.wake_transmit(wakeups);
            // Async senders waiting for room learn that the gate is shut.
            self.wake_waiters(WaitFor::Room, wakeups);
            return Err(SendError::new(SendErrorKind::Closed, message));
        }
        Err(SendError::new(SendErrorKind::Full, message))
    }

    /// The send gate and the enqueue (**G1**, **G3**), the one place a message joins
    /// the outbox from a sender or a broadcast: queued if the gate is open and there
    /// is room, else handed back for the caller to decide (`Inner::send`: a refusal
    /// or the overflow policy). The caller wakes the driver.
    pub(crate) fn try_enqueue(&mut self, message: Message) -> Result<(), Message> {
        if self.check_send().is_err() || !self.room() {
            return Err(message);
        }
        self.outbox.push_back(message);
        Ok(())
    }

    /// [`try_enqueue`](Self::try_enqueue) for the lean paths, which run outside
    /// `Shared::run`: on success it hands back the parked driver's waker, to be
    /// woken once the lock is released (**G6**).
    pub(crate) fn try_enqueue_lean(&mut self, message: Message) -> Result<Option<Waker>, Message> {
        self.try_enqueue(message)?;
        Ok(self.transmit.take())
    }

    /// The messages a `Ready` connection can hand the driver without anything else
    /// happening (see `Shared::take_frames`): up to `max` appended to `out`, or `None`
    /// when the general path must run.
    fn take_ready(&mut self, now: Instant, out: &mut Vec<Frame>, max: usize) -> Option<usize> {
        let plain = self.lifecycle.state() == MachineState::Ready
            && !self.deferred_close
            && !self.held
            && self.timed_waiters == 0
            && self.room();
        if !plain {
            return None;
        }
        self.clock = Some(self.clock.map_or(now, |c| c.max(now)));
        let mut taken = 0;
        while taken < max {
            let Some(message) = self.outbox.pop_front() else {
                break;
            };
            out.push(Frame::Message(message));
            taken += 1;
        }
        Some(taken)
    }

    /// Makes `waker` the driver's; hands back the one it replaces, to be dropped after
    /// the lock is released.
    fn replace_transmit(&mut self, waker: &Waker) -> Option<Waker> {
        if self.transmit.as_ref().is_some_and(|w| w.will_wake(waker)) {
            return None;
        }
        self.transmit.replace(waker.clone())
    }

    /// `send` for async senders: `Full` means "wait for room".
    pub(crate) fn room(&self) -> bool {
        self.outbox.len() < self.outbox_capacity as usize
    }

    /// An event from a component that may run before `Ready` (**G2**).
    pub(crate) fn emit(
        &mut self,
        message: Message,
        wakeups: &mut Wakeups,
    ) -> Result<(), SendError> {
        match self.lifecycle.phase() {
            Phase::Ready => self.send(message, wakeups),
            _ if self.deferred_close => Err(SendError::new(SendErrorKind::Closed, message)),
            Phase::Closing | Phase::Closed => Err(SendError::new(SendErrorKind::Closed, message)),
            _ if self.pending.len() >= self.pending_capacity as usize => {
                Err(SendError::new(SendErrorKind::Full, message))
            }
            _ => {
                self.pending.push_back(message);
                Ok(())
            }
        }
    }

    /// The next frame for the driver (see `Connection::poll_transmit`).
    pub(crate) fn next_frame(&mut self, now: Instant, wakeups: &mut Wakeups) -> Option<Frame> {
        self.at(now, wakeups);
        if self.lifecycle.may_write_messages() {
            if let Some(message) = self.outbox.pop_front() {
                if self.outbox.len() + 1 == self.outbox_capacity as usize {
                    // Full → not full: room for an async sender.
                    self.wake_waiters(WaitFor::Room, wakeups);
                }
                return Some(Frame::Message(message));
            }
        }
        self.lifecycle.poll_transmit(now)
    }

    /// Like `next_frame`, registering the driver's waker when there is nothing yet.
    /// `Ready(None)`: the connection is closed and nothing will ever be written.
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
        wakeups: &mut Wakeups,
    ) -> Poll<Option<Frame>> {
        match self.next_frame(now, wakeups) {
            Some(frame) => Poll::Ready(Some(frame)),
            None if self.lifecycle.phase() == Phase::Closed => Poll::Ready(None),
            None => {
                self.park_transmit(cx, wakeups);
                Poll::Pending
            }
        }
    }

    /// Up to `max` frames for the driver in one critical section, appended to `out`
    /// in order; it stops after our Close, which is always the last frame (**G3**).
    /// Returns how many it appended.
    pub(crate) fn next_frames(
        &mut self,
        now: Instant,
        out: &mut Vec<Frame>,
        max: usize,
        wakeups: &mut Wakeups,
    ) -> usize {
        let mut taken = 0;
        while taken < max {
            let Some(frame) = self.next_frame(now, wakeups) else {
                break;
            };
            taken += 1;
            let close = matches!(frame, Frame::Close(_));
            out.push(frame);
            if close {
                break;
            }
        }
        taken
    }

    /// `next_frames`, registering the driver's waker whenever the batch emptied what
    /// was ready (fewer than `max` frames, or none): the driver may write the batch
    /// and wait without polling again, and is woken by the next frame, state or
    /// deadline change (**G6**) — at once, by `settle`, when the batch itself changed
    /// the state. `Ready(None)`: closed, nothing will ever be written.
    pub(crate) fn poll_frames(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
        out: &mut Vec<Frame>,
        max: usize,
        wakeups: &mut Wakeups,
    ) -> Poll<Option<usize>> {
        // A batch of none could never register the waker: it counts as one.
        let max = max.max(1);
        let taken = self.next_frames(now, out, max, wakeups);
        let closed = self.lifecycle.phase() == Phase::Closed;
        if taken < max && !closed {
            self.park_transmit(cx, wakeups);
        }
        match taken {
            0 if closed => Poll::Ready(None),
            0 => Poll::Pending,
            n => Poll::Ready(Some(n)),
        }
    }

    /// Keeps `cx`'s waker as the driver's, to be woken by the next frame or change.
    fn park_transmit(&mut self, cx: &mut Context<'_>, wakeups: &mut Wakeups) {
        let old = self.replace_transmit(cx.waker());
        wakeups.discard(old);
    }

    /// Messages the driver took but could not write, back at the front of the outbox,
    /// in their order and ahead of anything queued since (**G3**); a Close among them
    /// is dropped. Returns how many messages went back.
    pub(crate) fn requeue(&mut self, frames: impl IntoIterator<Item = Frame>) -> usize {
        let messages: Vec<Message> = frames
            .into_iter()
            .filter_map(|frame| match frame {
                Frame::Message(message) => Some(message),
                Frame::Close(_) => None,
            })
            .collect();
        let n = messages.len();
        for message in messages.into_iter().rev() {
            self.outbox.push_front(message);
        }
        n
    }

    /// Messages that will never be written or flushed, handed back (**G2**, **G3**).
    pub(crate) fn take_unsent(&mut self) -> Vec<Message> {
        let mut unsent = Vec::new();
        if self.lifecycle.phase().is_closing_or_closed() {
            unsent.extend(self.pending.drain(..));
            if !self.lifecycle.may_write_messages() {
                unsent.extend(self.outbox.drain());
            }
        }
        unsent
    }

    /// A message from the peer (**G2** inbound hold).
    pub(crate) fn push_inbound(
        &mut self,
        message: Message,
        now: Instant,
        wakeups: &mut Wakeups,
    ) -> Result<(), InboundRefused> {
        self.at(now, wakeups);
        let phase = self.lifecycle.phase();
        if phase.is_closing_or_closed() {
            return Err(InboundRefused::Closed);
        }
        if self.inbound.len() >= self.inbound_capacity as usize {
            if phase == Phase::Ready {
                return Err(InboundRefused::Full(message));
            }
            // Before Ready nobody reads: a peer that floods the hold is closed.
            let frame = CloseFrame::internal(
                CloseCode::POLICY_VIOLATION,
                "too many messages before ready",
            );
            self.lifecycle
                .close_as(frame, CloseCause::InboundOverflow, now);
            return Err(InboundRefused::Closed);
        }
        self.inbound.push_back(message);
        if phase == Phase::Ready && self.inbound.len() == 1 {
            // Empty → not empty: a receiver has something to read.
            self.wake_waiters(WaitFor::Inbound, wakeups);
        }
        Ok(())
    }

    /// Registers the driver's waker until the inbound hold has room.
    pub(crate) fn poll_inbound_room(
        &mut self,
        cx: &mut Context<'_>,
        wakeups: &mut Wakeups,
    ) -> Poll<()> {
        if self.inbound.len() < self.inbound_capacity as usize
            || self.lifecycle.phase().is_closing_or_closed()
        {
            Poll::Ready(())
        } else {
            let old = self.inbound_room.replace(cx.waker().clone());
            wakeups.discard(old);
            Poll::Pending
        }
    }

    /// The next held message for the application (only reachable from `Ready`).
    pub(crate) fn pop_inbound(&mut self, wakeups: &mut Wakeups) -> Option<Message> {
        let message = self.inbound.pop_front()?;
        wakeups.many.extend(self.inbound_room.take());
        Some(message)
    }

    /// Number of queued messages (outbox) and buffered events (pending).
    pub(crate) fn queued(&self) -> (usize, usize) {
        (self.outbox.len(), self.pending.len())
    }

    pub(crate) fn close_record(&self) -> Option<CloseRecord> {
        self.lifecycle.close_record().cloned()
    }
}

impl SendError {
    pub(crate) fn new(kind: SendErrorKind, message: Message) -> SendError {
        SendError { kind, message }
    }
}
