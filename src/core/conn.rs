//! [`Conn`]: the sans-IO connection — the lifecycle plus its outbox, pre-ready buffer,
//! inbound hold and overflow policy — and the errors of handing it messages,
//! [`SendError`] and [`InboundError`].
//!
//! **G2** and **G3** are decided here, without locks or wakers: the send gate and the
//! enqueue are one operation; the move of the pre-ready buffer into the outbox happens
//! in the same operation as the transition to `Ready`; our Close is taken only once no
//! message may be written any more; whatever will never be written is handed back by
//! [`Conn::take_unsent`]. The layers above put a `Conn` behind a lock and turn its
//! [`Effects`] into wakeups.

use std::collections::VecDeque;
use std::time::Instant;

use super::{
    CloseCause, CloseFrame, CloseRecord, Config, ConnectionId, CrateClose, Effects, Frame, Input,
    Lifecycle, MachineState, Message, Outbox, OverflowPolicy, Phase, Rejected, SendRefused, Step,
};

/// One connection, sans-IO: its [`Lifecycle`] and the queues around it. Time is an
/// input; what changed is recorded as [`Effects`] for the caller to act on.
///
/// This is what every handle of the crate drives, behind one lock; use it directly to
/// write a driver of one's own, or to test a protocol with virtual time. Its methods
/// fall into groups, as quinn-proto's `Connection`'s do:
///
/// - **getters**: [`id`](Self::id), [`phase`](Self::phase), [`state`](Self::state),
///   [`lifecycle`](Self::lifecycle), [`close_record`](Self::close_record),
///   [`check_send`](Self::check_send), [`queued`](Self::queued),
///   [`clock`](Self::clock), [`poll_timeout`](Self::poll_timeout);
/// - **inputs**: [`handle`](Self::handle), [`handle_timeout`](Self::handle_timeout),
///   [`tick`](Self::tick) (the time alone), [`push_inbound`](Self::push_inbound)
///   (a message from the peer);
/// - **application commands**: [`send`](Self::send), [`emit`](Self::emit),
///   [`pop_inbound`](Self::pop_inbound), [`raise`](Self::raise);
/// - **outputs**: [`next_frame`](Self::next_frame) / [`next_frames`](Self::next_frames)
///   (messages, then our Close, always last), [`requeue`](Self::requeue) (frames a
///   write did not take), [`take_unsent`](Self::take_unsent) (what will never be
///   written), [`take_effects`](Self::take_effects).
///
/// A driver loop: hand over what the peer sent (`push_inbound`, `handle`), write what
/// `next_frames` yields, sleep until `poll_timeout`, call `handle_timeout(now)`, and
/// after each call act on `take_effects`; stop at [`Phase::Closed`].
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::{CloseFrame, Config, Conn, ConnectionId, Frame, Input, Message};
///
/// let now = Instant::now();
/// let mut conn = Conn::new(ConnectionId::new(1), Config::default());
/// conn.handle(Input::Accept, now)?;
/// conn.emit(Message::text("history"))?;            // held until Ready (G2)
/// conn.handle(Input::AuthSucceeded { expires_at: None }, now)?;
/// conn.handle(Input::ServicesReady, now)?;          // the buffer moves to the outbox
/// conn.send(Message::text("live"))?;
/// conn.handle(Input::Close(CloseFrame::normal()), now)?;
/// assert!(conn.send(Message::text("late")).is_err()); // refused, handed back (G3)
/// let mut frames = Vec::new();
/// conn.next_frames(now, &mut frames, 10);
/// assert_eq!(frames[0], Frame::Message(Message::text("history")));
/// assert_eq!(frames[1], Frame::Message(Message::text("live")));
/// assert!(matches!(frames[2], Frame::Close(_)));      // always last (G3)
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// `repr(C)`, hottest first: a broadcast's delivery and the driver taking frames read
/// the clock, the outbox with its inline oldest message, its bound, the deferred-close
/// flag and the lifecycle's state byte, which the shared state keeps on its first
/// cache lines.
#[repr(C)]
pub struct Conn {
    /// The latest time any timed input carried.
    clock: Option<Instant>,
    /// Messages for the peer, written in order (**G3**); the oldest inline.
    outbox: Outbox,
    /// Normalized bound (see [`Conn::new`]), as `u32`: a bound past `u32::MAX`
    /// messages is no bound a server can hold in memory anyway.
    outbox_capacity: u32,
    /// The byte budget ([`Config::outbox_bytes`]), normalized as the capacities are
    /// (at least 1, at most `u32::MAX`); beside the count bound, in its padding.
    outbox_bytes: u32,
    /// A message was found not to fit the byte budget (while the count had room)
    /// since the outbox last gave one up: the next message taken records `ROOM`, so
    /// that a sender waiting for room for a large message is woken (**G6**).
    room_wanted: bool,
    /// A slow-consumer close requested by a send, which carries no time: sending is
    /// refused from the request on (**G3**), and the close itself is applied by the
    /// next input that carries `now` ([`tick`](Conn::tick)), so its handshake timeout
    /// is armed from a real time.
    deferred_close: bool,
    /// What changed since the effects were last taken.
    effects: Effects,
    /// Held by the admission gate of the layer above — the registry's startup gate
    /// (**G8**) — which sets and clears it; the core only keeps it, beside its other
    /// flags, on the hot cache line (the driver's fast path reads it).
    pub(crate) held: bool,
    /// Set by the layer above while it has waits with a timeout (it may be left set
    /// longer, never cleared early): taking frames advances the clock, which may pass
    /// one of them, so [`take_ready`](Conn::take_ready) leaves that to the general
    /// path. Beside `held`, in the byte before the lifecycle, on the hot line.
    pub(crate) timed_waits: bool,
    /// Its first field, the machine state, is the last hot byte.
    lifecycle: Lifecycle,
    pending_capacity: u32,
    inbound_capacity: u32,
    /// Events emitted before `Ready`, moved to the outbox at the transition (**G2**).
    pending: VecDeque<Message>,
    /// Application messages from the peer, held until the application reads them
    /// (**G2**: only a `Ready` connection's reader can take them).
    inbound: VecDeque<Message>,
    /// `OverflowPolicy::Close`'s frame; `None` under `OverflowPolicy::Reject`, the
    /// default. Boxed: 8 bytes under the default instead of a whole frame.
    overflow_close: Option<Box<CloseFrame>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("lifecycle", &self.lifecycle)
            .field("queued", &self.queued())
            .field("inbound", &self.inbound.len())
            .finish()
    }
}

impl Conn {
    /// A new connection in [`Phase::Connecting`].
    ///
    /// The capacities of `config` are normalized (documented on [`Config`]): each at
    /// least 1 and at most `u32::MAX`, and the pre-ready buffer no larger than the
    /// outbox it is flushed into.
    pub fn new(id: ConnectionId, config: Config) -> Conn {
        let bound = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).max(1);
        let outbox_capacity = bound(config.outbox_capacity);
        Conn {
            clock: None,
            outbox: Outbox::default(),
            outbox_capacity,
            outbox_bytes: bound(config.outbox_bytes),
            room_wanted: false,
            deferred_close: false,
            effects: Effects::NONE,
            held: false,
            timed_waits: false,
            pending_capacity: bound(config.pending_capacity).min(outbox_capacity),
            inbound_capacity: bound(config.inbound_capacity),
            pending: VecDeque::new(),
            inbound: VecDeque::new(),
            overflow_close: match &config.overflow {
                OverflowPolicy::Close(frame) => Some(Box::new(frame.clone())),
                _ => None,
            },
            lifecycle: Lifecycle::new(id, config),
        }
    }

    // --- getters -------------------------------------------------------------------

    /// The connection's id.
    pub fn id(&self) -> ConnectionId {
        self.lifecycle.id()
    }

    /// The current phase.
    #[inline]
    pub fn phase(&self) -> Phase {
        self.lifecycle.phase()
    }

    /// The current fine-grained machine state.
    #[inline]
    pub fn state(&self) -> MachineState {
        self.lifecycle.state()
    }

    /// The lifecycle inside.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// How the connection is closing or closed; `None` while it is not.
    pub fn close_record(&self) -> Option<&CloseRecord> {
        self.lifecycle.close_record()
    }

    /// The send gate (**G1**, **G3**): the lifecycle's, shut early by a requested
    /// slow-consumer close.
    #[inline]
    pub fn check_send(&self) -> Result<(), SendRefused> {
        if self.deferred_close {
            return Err(SendRefused::Closed);
        }
        self.lifecycle.check_send()
    }

    /// Queued messages (the outbox) and buffered events (the pre-ready buffer).
    pub fn queued(&self) -> (usize, usize) {
        (self.outbox.len(), self.pending.len())
    }

    /// The bytes queued in the outbox (the sum of their [`Message::len`]), which
    /// [`Config::outbox_bytes`] bounds.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.bytes()
    }

    /// Held inbound messages.
    pub fn inbound_len(&self) -> usize {
        self.inbound.len()
    }

    /// True while the outbox has room for one more message: under its count bound
    /// and under its byte budget (an empty message would fit).
    #[inline]
    pub fn has_room(&self) -> bool {
        self.has_room_for(0)
    }

    /// True while the outbox has room for a message of `len` bytes: under its count
    /// bound, and empty or with `len` more bytes within [`Config::outbox_bytes`].
    #[inline]
    pub fn has_room_for(&self, len: usize) -> bool {
        self.outbox.len() < self.outbox_capacity as usize
            && (self.outbox.is_empty()
                || self.outbox.bytes().saturating_add(len) <= self.outbox_bytes as usize)
    }

    /// [`has_room_for`](Self::has_room_for), remembering a refusal for the byte
    /// budget so that the next message taken records `ROOM` (**G6**).
    #[inline]
    pub(crate) fn check_room_for(&mut self, len: usize) -> bool {
        let room = self.has_room_for(len);
        if !room && self.outbox.len() < self.outbox_capacity as usize {
            self.room_wanted = true;
        }
        room
    }

    /// True while the inbound hold has room for one more message, or the connection
    /// is closing (the driver then stops waiting: nothing more will be held).
    pub fn inbound_has_room(&self) -> bool {
        self.inbound.len() < self.inbound_capacity as usize
            || self.lifecycle.phase().is_closing_or_closed()
    }

    /// The latest time an input carried; `None` before the first.
    #[inline]
    pub fn clock(&self) -> Option<Instant> {
        self.clock
    }

    /// True once the time input has reached `until`.
    pub fn passed(&self, until: Instant) -> bool {
        self.clock.is_some_and(|clock| clock >= until)
    }

    /// The lifecycle's next deadline: when to call [`handle_timeout`](Self::handle_timeout).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.lifecycle.poll_timeout()
    }

    /// True while a slow-consumer close waits for the next time input.
    pub fn close_deferred(&self) -> bool {
        self.deferred_close
    }

    /// What changed since the last call, and forget it.
    #[inline]
    pub fn take_effects(&mut self) -> Effects {
        std::mem::take(&mut self.effects)
    }

    // --- inputs --------------------------------------------------------------------

    /// The time input alone: applies a deferred slow-consumer close, then advances
    /// the clock. Every operation that carries `now` calls this first.
    pub fn tick(&mut self, now: Instant) {
        // Set only under `OverflowPolicy::Close`, whose frame it applies.
        debug_assert!(!self.deferred_close || self.overflow_close.is_some());
        if std::mem::take(&mut self.deferred_close) {
            if let Some(frame) = &self.overflow_close {
                let frame = CloseFrame::clone(frame);
                self.close_with(frame, CloseCause::SlowConsumer, now);
            }
        }
        self.clock = Some(self.clock.map_or(now, |c| c.max(now)));
    }

    /// Feeds one input at `now` (the lifecycle's clock rules apply: every deadline due
    /// at `now` fires first, **G5**). On the transition to `Ready` the pre-ready
    /// buffer moves into the outbox, ahead of anything sent later (**G2**).
    pub fn handle(&mut self, input: Input, now: Instant) -> Result<Step, Rejected> {
        self.tick(now);
        let before = (self.lifecycle.state(), self.lifecycle.poll_timeout());
        let result = self.lifecycle.handle(input, now);
        self.settle(before);
        result
    }

    /// Fires the deadline that passed first, if any (see
    /// [`Lifecycle::handle_timeout`]).
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Step> {
        self.tick(now);
        let before = (self.lifecycle.state(), self.lifecycle.poll_timeout());
        let step = self.lifecycle.handle_timeout(now);
        self.settle(before);
        step
    }

    /// A message from the peer, into the inbound hold (**G2**). Before `Ready` a
    /// peer that overfills the hold is closed with 1008 (nobody reads yet); once
    /// `Ready`, a full hold hands the message back for the driver to retry when
    /// [`inbound_has_room`](Self::inbound_has_room).
    pub fn push_inbound(&mut self, message: Message, now: Instant) -> Result<(), InboundError> {
        self.tick(now);
        let phase = self.lifecycle.phase();
        if phase.is_closing_or_closed() {
            return Err(InboundError::Closed);
        }
        if self.inbound.len() >= self.inbound_capacity as usize {
            if phase == Phase::Ready {
                return Err(InboundError::Full(message));
            }
            self.raise(CrateClose::InboundOverflow, now);
            return Err(InboundError::Closed);
        }
        self.inbound.push_back(message);
        if phase == Phase::Ready && self.inbound.len() == 1 {
            self.effects |= Effects::INBOUND;
        }
        Ok(())
    }

    // --- application commands ----------------------------------------------------

    /// The send gate and the enqueue, in one step (**G1**, **G3**). A full outbox
    /// applies the overflow policy: [`OverflowPolicy::Reject`] hands the message back
    /// as `Full`; [`OverflowPolicy::Close`] shuts the gate at once and hands it back
    /// as `Closed`, and the close itself is applied by the next time input.
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        let message = match self.try_enqueue(message) {
            Ok(()) => {
                self.effects |= Effects::TRANSMIT;
                return Ok(());
            }
            Err(message) => message,
        };
        match self.check_send() {
            Err(SendRefused::NotReady(_)) => {
                return Err(SendError::new(SendErrorKind::NotReady, message));
            }
            Err(SendRefused::Closed) => return Err(SendError::new(SendErrorKind::Closed, message)),
            Ok(()) => {}
        }
        // The gate is open, so the outbox is full.
        if self.overflow_close.is_some() {
            self.deferred_close = true;
            // The driver applies it; waiting senders learn that the gate is shut.
            self.effects |= Effects::TRANSMIT | Effects::ROOM;
            return Err(SendError::new(SendErrorKind::Closed, message));
        }
        Err(SendError::new(SendErrorKind::Full, message))
    }

    /// The send gate and the enqueue without the overflow policy: queued if the gate
    /// is open and there is room, else handed back. Records nothing: the hot paths
    /// wake the driver themselves.
    #[inline]
    pub(crate) fn try_enqueue(&mut self, message: Message) -> Result<(), Message> {
        if self.check_send().is_err() || !self.check_room_for(message.len()) {
            return Err(message);
        }
        self.outbox.push_back(message);
        Ok(())
    }

    /// An event from a component that may run before `Ready` (**G2**): buffered
    /// (bounded) until the transition to `Ready`, then written before anything sent
    /// later; once `Ready`, exactly [`send`](Self::send).
    pub fn emit(&mut self, message: Message) -> Result<(), SendError> {
        match self.lifecycle.phase() {
            Phase::Ready => self.send(message),
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

    /// The next held message from the peer, for the application (the handles reach
    /// this only from `Ready`, **G2**).
    pub fn pop_inbound(&mut self) -> Option<Message> {
        let message = self.inbound.pop_front()?;
        self.effects |= Effects::INBOUND_ROOM;
        Some(message)
    }

    /// Closes with one of the closes the crate raises itself: its cause, code and
    /// reason from the one table ([`CrateClose`]). Like any close, the first one
    /// stands (**G4**).
    pub fn raise(&mut self, close: CrateClose, now: Instant) {
        self.close_with(close.frame(), close.cause(), now);
    }

    /// A close with `frame`, recorded with `cause` (the crate's own closes; a
    /// slow-consumer close carries the frame its policy names).
    pub(crate) fn close_with(&mut self, frame: CloseFrame, cause: CloseCause, now: Instant) {
        let before = self.lifecycle.state();
        self.lifecycle.close_as(frame, cause, now);
        self.settle_state(before);
    }

    // --- outputs -------------------------------------------------------------------

    /// The next frame to write: a queued message while messages may be written, else
    /// our Close once it is owed (recorded as sent), else `None` (**G3**: the Close is
    /// always the last frame).
    pub fn next_frame(&mut self, now: Instant) -> Option<Frame> {
        self.tick(now);
        if self.lifecycle.may_write_messages() {
            if let Some(message) = self.outbox.pop_front() {
                let wanted = std::mem::take(&mut self.room_wanted);
                if wanted || self.outbox.len() + 1 == self.outbox_capacity as usize {
                    // Full → not full, or bytes freed for a message that did not
                    // fit: room for a waiting sender.
                    self.effects |= Effects::ROOM;
                }
                return Some(Frame::Message(message));
            }
        }
        let before = self.lifecycle.state();
        let frame = self.lifecycle.poll_transmit(now);
        self.settle_state(before);
        frame
    }

    /// Up to `max` frames appended to `out`, in order; stops after our Close.
    /// Returns how many it appended.
    pub fn next_frames(&mut self, now: Instant, out: &mut Vec<Frame>, max: usize) -> usize {
        let mut taken = 0;
        while taken < max {
            let Some(frame) = self.next_frame(now) else {
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

    /// The frames a `Ready` connection can hand over with nothing else happening —
    /// nothing deferred, not held, no wait with a timeout above, the outbox not full
    /// (so taking frees no room anyone waits for): up to `max` messages appended to
    /// `out`, or `None` when [`next_frames`](Self::next_frames) must run instead.
    /// Records nothing.
    #[inline]
    pub(crate) fn take_ready(
        &mut self,
        now: Instant,
        out: &mut Vec<Frame>,
        max: usize,
    ) -> Option<usize> {
        if self.lifecycle.state() != MachineState::Ready
            || self.deferred_close
            || self.held
            || self.timed_waits
            || self.room_wanted
            || self.outbox.len() >= self.outbox_capacity as usize
        {
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

    /// Messages taken by [`next_frames`](Self::next_frames) that a write did not take,
    /// back at the front of the outbox in their order, ahead of anything queued since
    /// (**G3**); a Close among them is dropped (it was recorded as sent). Returns how
    /// many messages went back.
    pub fn requeue(&mut self, frames: impl IntoIterator<Item = Frame>) -> usize {
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

    /// Messages that will never be written or flushed, handed back (**G2**, **G3**):
    /// once closing, the pre-ready buffer, and the outbox when no message may be
    /// written any more (after the peer's Close, a forced close, or our Close).
    pub fn take_unsent(&mut self) -> Vec<Message> {
        let mut unsent = Vec::new();
        if self.lifecycle.phase().is_closing_or_closed() {
            unsent.extend(self.pending.drain(..));
            if !self.lifecycle.may_write_messages() {
                unsent.extend(self.outbox.drain());
            }
        }
        unsent
    }

    /// After an input: on a change of state record it, and on `Ready` move the
    /// pre-ready buffer into the outbox (**G2**: nothing can be in the outbox before
    /// `Ready`, so the buffered events go first, in emission order, exactly once); a
    /// deadline that moved without a change of state is recorded too (**G5**).
    fn settle(&mut self, (state, deadline): (MachineState, Option<Instant>)) {
        if !self.settle_state(state) && self.lifecycle.poll_timeout() != deadline {
            self.effects |= Effects::DEADLINE;
        }
    }

    /// [`settle`](Self::settle) for the operations that cannot move a deadline
    /// without changing the state (a close, taking our Close): no walk over the
    /// deadlines before and after — the driver's every poll of an empty outbox comes
    /// here. Returns whether the state changed.
    fn settle_state(&mut self, state: MachineState) -> bool {
        if self.lifecycle.state() == state {
            return false;
        }
        if self.lifecycle.phase() == Phase::Ready {
            self.outbox.extend(self.pending.drain(..));
        }
        self.effects |= Effects::STATE;
        true
    }
}

/// Why a message was not sent. The message itself is in [`SendError`].
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::SendErrorKind;
/// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Message};
///
/// let now = Instant::now();
/// let mut config = Config::default();
/// config.outbox_capacity = 1; // under the default policy, OverflowPolicy::Reject
/// let conn = Connection::new(ConnectionId::new(1), config).accept(now)?;
/// let mut conn = conn.authenticate(None, now)?.ready(now)?;
/// conn.send(Message::text("1"))?;
/// let full = conn.send(Message::text("2")).unwrap_err();
/// assert_eq!(full.kind, SendErrorKind::Full); // retry later, or drop it
/// let sender = conn.sender();
/// let _closing = conn.close(CloseFrame::normal(), now);
/// let closed = sender.send(Message::text("3")).unwrap_err();
/// assert_eq!(closed.kind, SendErrorKind::Closed); // stop sending to it (G3)
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendErrorKind {
    /// The connection is closing or closed (**G3**): stop sending to it.
    Closed,
    /// The connection is not `Ready` yet (**G1**, **G2**): [`emit`](Conn::emit) the
    /// message instead (buffered until ready), or send once it is ready. Only a
    /// [`Conn`] driven directly meets this: the handles that send exist only from
    /// `Ready`.
    NotReady,
    /// The outbox is full: the peer is not reading fast enough. Retry later, drop the
    /// message, or close the connection.
    Full,
}

/// A message that was not sent, handed back with the reason (**G3**: never silently
/// dropped).
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::SendErrorKind;
/// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Message};
///
/// let now = Instant::now();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// let conn = conn.authenticate(None, now)?.ready(now)?;
/// let sender = conn.sender();
/// let _closing = conn.close(CloseFrame::normal(), now);
/// let err = sender.send(Message::text("late")).unwrap_err();
/// assert_eq!(err.kind, SendErrorKind::Closed);
/// assert_eq!(err.into_message(), Message::text("late")); // handed back, never lost (G3)
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message not sent: {}", match .kind {
    SendErrorKind::Closed => "the connection is closing or closed; stop sending to it (the message is returned in the error)",
    SendErrorKind::NotReady => "the connection is not ready yet; emit the message to have it buffered until ready, or send once ready (the message is returned in the error)",
    SendErrorKind::Full => "the outbox is full because the peer reads slowly; retry later, drop the message or close the connection (the message is returned in the error)",
})]
#[non_exhaustive]
pub struct SendError {
    /// Why.
    pub kind: SendErrorKind,
    /// The message, returned to the caller.
    pub message: Message,
}

impl SendError {
    pub(crate) fn new(kind: SendErrorKind, message: Message) -> SendError {
        SendError { kind, message }
    }

    /// Takes the message back.
    pub fn into_message(self) -> Message {
        self.message
    }
}

/// Why the driver could not hand an inbound message to the connection.
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::InboundError;
/// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Message};
///
/// let now = Instant::now();
/// let mut config = Config::default();
/// config.inbound_capacity = 1;
/// let conn = Connection::new(ConnectionId::new(1), config).accept(now)?;
/// let conn = conn.authenticate(None, now)?.ready(now)?;
/// let transport = conn.transport(); // the driver's side
/// transport.handle_message(Message::text("1"), now)?;
/// let Err(InboundError::Full(back)) = transport.handle_message(Message::text("2"), now) else {
///     panic!("the hold takes one message");
/// };
/// assert_eq!(conn.receiver().try_recv(), Some(Message::text("1"))); // the application reads
/// transport.handle_message(back, now)?; // room again: hand it over again
/// let _closing = conn.close(CloseFrame::normal(), now);
/// assert_eq!(transport.handle_message(Message::text("3"), now), Err(InboundError::Closed));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboundError {
    /// The connection is closing or closed: the application will not read it; stop
    /// reading application data and finish the close.
    #[error("connection is closing or closed: the message cannot be delivered")]
    Closed,
    /// The inbound hold is full while ready: wait with
    /// [`Transport::poll_inbound_room`](crate::handle::Transport::poll_inbound_room), then
    /// hand the message over again.
    #[error("inbound hold is full: wait for room and retry (the message is returned)")]
    Full(Message),
}
