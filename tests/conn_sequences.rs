//! Bounded exhaustive check of the sans-IO connection, [`Conn`], for **G2**
//! (ready-gating) and **G3** (close-gating).
//!
//! **What runs.** Sequences over the eleven-letter [`ALPHABET`] — accept,
//! authenticate, services ready, send, emit, take one frame, take two frames, hand the
//! frames of the last take back with `requeue` (as a write that failed does), local
//! close, the peer's Close, `take_unsent` — are run against a real [`Conn`] and, side
//! by side, against [`Model`], a reference model written in this file from the
//! documented behaviour (its lifecycle part is the flag-based [`Reference`] of
//! `tests/reference/`, which `tests/sequences.rs` checks against the machine). The
//! capacities are tiny (outbox 2, pre-ready buffer 2), so full queues are a few
//! operations away, and time is one fixed instant plus a millisecond per operation, so
//! no deadline fires (they keep their defaults, 10 s and 5 s). `Conn::send` before
//! `Ready` is refused as `SendErrorKind::NotReady` (the typed handles cannot send
//! there at all, G1).
//!
//! The sequences are: every sequence of 1 to [`MAX_LEN`] = 5 operations from a new
//! connection, and every continuation by 1 to 5 operations of each of three longer
//! starting sequences ([`ROOTS`]: accepted with a full pre-ready buffer; `Ready` with
//! nothing queued; `Ready` with a full outbox), so that the bound reaches as far past
//! `Ready` as past the start. That is 4 × (11 + 11² + … + 11⁵) = 708 620 sequences per
//! overflow policy and byte budget, and the whole enumeration runs four times, under
//! [`OverflowPolicy::Reject`] and under [`OverflowPolicy::slow_consumer`], each with the
//! default byte budget (1 MiB: the count bound is met first) and with a budget of one
//! byte (a second one-digit message is refused for its bytes while the count bound
//! has room; the pre-ready flush and `requeue` take the outbox past the budget):
//! 2 834 480 sequences, each followed by the end checks below, which take it up to four
//! operations further (the longest run is 14 operations). The tests print the counts,
//! what was reached, and the time: 11 to 14 s per run in a debug build on this
//! project's two-core machine, the four tests two at a time. (A bound of 6 from a new
//! connection alone would be 1.9 million sequences per policy, about 25 s each, and
//! would reach only three operations past `Ready`. `CONN_SEQUENCES_LEN=6` continues
//! every root by up to 6 operations: 7 794 864 sequences per policy, about three
//! minutes each.)
//!
//! **After every step** of every sequence:
//!
//! - the model predicts the outcome of the step and the real `Conn` must agree:
//!   `handle`'s step or rejection, the `Ok`/`Err` kind of every `send` and `emit`,
//!   the exact frames every `next_frames` yields (message numbers, and our Close frame
//!   with its code), how many messages `requeue` puts back, and exactly which messages
//!   `take_unsent` hands back;
//! - the observable state must agree: machine state, phase, `check_send`,
//!   `close_deferred`, `queued`, `queued_bytes`, `has_room`, and the close record when
//!   it changed;
//! - `take_effects` must be exactly what the documentation of [`Effects`] says:
//!   `STATE` when the machine changed state, `TRANSMIT` for an accepted send (and a
//!   slow-consumer close request), `ROOM` when the outbox went from full to not full
//!   or a message is taken after one was refused for the byte budget (and when a
//!   slow-consumer close request shuts the gate), nothing else;
//! - and, independently of the model, the guarantees, on the frames actually yielded:
//!   - **G2**: no message frame before the connection was `Ready`; events emitted
//!     before `Ready` are written in emission order, at most once, before any message
//!     sent after `Ready`; `take_unsent` hands nothing back before a close;
//!   - **G3**: nothing follows our Close frame (it is yielded at most once, and last);
//!     once a close was requested (locally, or by the slow-consumer policy) or the
//!     peer's Close came in, `send` and `emit` are refused as `Closed`; a refused
//!     message comes back intact inside its `SendError`; every message ever handed to
//!     `send` or `emit` is in exactly one place — written (yielded by `next_frames`
//!     and not handed back by `requeue`), returned in its `SendError`, handed back by
//!     `take_unsent`, or still queued — never duplicated, never lost; and written
//!     messages appear in the order they were accepted (`requeue` puts them back at
//!     the front, in order).
//!
//! **At the end of every sequence**: a final `take_unsent` when the connection is
//! closing or closed, after which the accounting must balance; then a close-out — a
//! local close, every frame taken, `take_unsent` — after which nothing may be queued,
//! every message must have been written, refused or handed back exactly once, and our
//! Close must have been yielded exactly once, last (none if the close refused the
//! upgrade).
//!
//! **How.** `Conn` cannot be copied, so the search is depth-first over the tree of
//! sequences, and each node replays its prefix on a new `Conn` (unchecked: the same
//! calls were checked when the prefix was a node itself) before the checked step; the
//! model and the bookkeeping are cloned from the parent. A failure is reported with a
//! shortest failing sequence (the search is rerun with growing bounds).
//! `CONN_SEQUENCES_LEN=<n>` runs a different bound.

mod reference;

use std::collections::VecDeque;
use std::fmt::Display;
use std::time::{Duration, Instant};

use reference::{Expected, OurFrame, Reference};
use ws_lifecycle::core::{
    CloseCause, CloseFrame, Config, Conn, ConnectionId, CrateClose, Effects, Frame, Input,
    MachineState, Message, OverflowPolicy, Phase, Rejected, SendError, SendErrorKind, SendRefused,
    Step,
};

/// The most operations run from a new connection, and after each of the other
/// [`ROOTS`] (overridable with `CONN_SEQUENCES_LEN`).
const MAX_LEN: usize = 5;

/// The outbox's bound: small, so that a full outbox is a few sends away.
const OUTBOX_CAPACITY: usize = 2;

/// The pre-ready buffer's bound: two, so that the emission order of buffered events
/// is visible, and a third is refused.
const PENDING_CAPACITY: usize = 2;

/// The most frames the close-out takes in one go (more than any sequence queues).
const TAKE_ALL: usize = 64;

/// One operation of a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `handle(Input::Accept)`.
    Accept,
    /// `handle(Input::AuthSucceeded { expires_at: None })`.
    Auth,
    /// `handle(Input::ServicesReady)`.
    Ready,
    /// `send` of the next numbered message.
    Send,
    /// `emit` of the next numbered message.
    Emit,
    /// `next_frames(now, out, 1)`.
    Take1,
    /// `next_frames(now, out, 2)`.
    Take2,
    /// `requeue` of every frame the last take yielded: the driver's write failed.
    /// (After a requeue there is nothing left to hand back until the next take.)
    Requeue,
    /// `handle(Input::Close(CloseFrame::normal()))`.
    Close,
    /// `handle(Input::PeerClose(None))`: the peer's Close, without a status code.
    PeerClose,
    /// `take_unsent()`.
    TakeUnsent,
    /// Not in the alphabet: the close-out's `next_frames(now, out, TAKE_ALL)`.
    TakeAll,
}

/// Every operation a sequence is made of.
const ALPHABET: [Op; 11] = [
    Op::Accept,
    Op::Auth,
    Op::Ready,
    Op::Send,
    Op::Emit,
    Op::Take1,
    Op::Take2,
    Op::Requeue,
    Op::Close,
    Op::PeerClose,
    Op::TakeUnsent,
];

impl Op {
    /// The input an op feeds to `handle`, if it is one.
    fn input(self) -> Option<Input> {
        Some(match self {
            Op::Accept => Input::Accept,
            Op::Auth => Input::AuthSucceeded { expires_at: None },
            Op::Ready => Input::ServicesReady,
            Op::Close => Input::Close(CloseFrame::normal()),
            Op::PeerClose => Input::PeerClose(None),
            _ => return None,
        })
    }

    /// How many frames a take asks for, if it is one.
    fn max_frames(self) -> Option<usize> {
        match self {
            Op::Take1 => Some(1),
            Op::Take2 => Some(2),
            Op::TakeAll => Some(TAKE_ALL),
            _ => None,
        }
    }
}

/// The byte budget of the byte-budget runs: one byte, so that a second one-digit
/// message is refused for its bytes while the count bound has room.
const TINY_BYTE_BUDGET: usize = 1;

fn config(overflow: OverflowPolicy, outbox_bytes: Option<usize>) -> Config {
    let mut config = Config::default();
    if let Some(bytes) = outbox_bytes {
        config.outbox_bytes = bytes;
    }
    // Deadlines keep their defaults (readiness 10 s, close handshake 5 s): a sequence
    // spans a few milliseconds, so none of them fires.
    config.outbox_capacity = OUTBOX_CAPACITY;
    config.pending_capacity = PENDING_CAPACITY;
    config.overflow = overflow;
    config
}

/// The time of the `step`-th operation of a sequence: one fixed instant plus
/// `step` milliseconds.
fn at(base: Instant, step: usize) -> Instant {
    base + Duration::from_millis(step as u64)
}

/// Message number `n`: its text is the number, so a frame says which message it is.
fn message(n: u32) -> Message {
    Message::text(n.to_string())
}

/// The number of a message made by [`message`].
fn number(message: &Message) -> u32 {
    message
        .as_text()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("not a numbered message: {message:?}"))
}

// ── the reference model ─────────────────────────────────────────────────────────

/// A frame as the model predicts it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    /// Message number `n`.
    Message(u32),
    /// Our Close frame, carrying this (`None`: an empty Close).
    Close(Option<OurFrame>),
}

impl Want {
    fn matches(&self, frame: &Frame) -> bool {
        match (self, frame) {
            (Want::Message(n), Frame::Message(m)) => *n == number(m),
            (Want::Close(want), Frame::Close(got)) => {
                reference::frame_matches(want.as_ref(), got.as_ref())
            }
            _ => false,
        }
    }
}

/// The reference model of one [`Conn`]: the lifecycle (the flag-based [`Reference`])
/// plus two queues of message numbers and the slow-consumer flag. Every rule is
/// written from the documentation of `Conn`, `Config`, `OverflowPolicy` and `Effects`:
///
/// - `send` queues at the back of the outbox while the send gate is open and the
///   outbox has room; a full outbox hands the message back as `Full` under `Reject`,
///   and under `Close` shuts the gate at once ("from that send on, every send is
///   refused"), hands the message back as `Closed`, and leaves the close itself to the
///   next operation that carries the time;
/// - `emit` is `send` once `Ready`; before it, it buffers (bounded, `Full` beyond);
///   once closing, `Closed`;
/// - on the transition to `Ready` the buffer moves into the outbox, ahead of anything
///   sent later (**G2**);
/// - `next_frames` writes queued messages, oldest first, while messages may be
///   written — while `Ready`, and during a local (or slow-consumer) close until our
///   Close is out and unless the peer's Close came in — then our Close once it is
///   owed, always last (**G3**);
/// - `requeue` puts messages back at the front, in their order; `take_unsent` hands
///   back, once closing, the buffer, and the outbox when no message may be written.
#[derive(Debug, Clone)]
struct Model {
    life: Reference,
    /// Message numbers queued for the peer, oldest first.
    outbox: VecDeque<u32>,
    /// Events emitted before `Ready`, in emission order.
    pending: VecDeque<u32>,
    outbox_capacity: usize,
    /// The byte budget: a message fits while the outbox is empty, or its bytes plus
    /// the queued bytes are within it.
    outbox_bytes: usize,
    /// A message did not fit the byte budget (the count having room) since the last
    /// message was taken: the next one taken records `ROOM`.
    room_wanted: bool,
    pending_capacity: usize,
    /// The slow-consumer policy's frame; `None` under `Reject`.
    overflow_close: Option<CloseFrame>,
    /// A full outbox requested the slow-consumer close; the next timed input applies it.
    deferred: bool,
    /// The close under way is the slow-consumer close.
    slow_consumer: bool,
}

impl Model {
    fn new(config: &Config) -> Model {
        // The normalization documented on `Config`: at least 1, and the buffer no
        // larger than the outbox.
        let outbox_capacity = config.outbox_capacity.max(1);
        Model {
            life: Reference::new(config),
            outbox: VecDeque::new(),
            pending: VecDeque::new(),
            outbox_capacity,
            outbox_bytes: config.outbox_bytes.max(1),
            room_wanted: false,
            pending_capacity: config.pending_capacity.max(1).min(outbox_capacity),
            overflow_close: match &config.overflow {
                OverflowPolicy::Close(frame) => Some(frame.clone()),
                _ => None,
            },
            deferred: false,
            slow_consumer: false,
        }
    }

    fn state(&self) -> MachineState {
        self.life.state()
    }

    /// The bytes queued in the outbox.
    fn bytes(&self) -> usize {
        self.outbox.iter().map(|&n| message(n).len()).sum()
    }

    /// Room for a message of `len` bytes: under the count bound, and the outbox
    /// empty or the bytes within the budget.
    fn has_room_for(&self, len: usize) -> bool {
        self.outbox.len() < self.outbox_capacity
            && (self.outbox.is_empty() || self.bytes() + len <= self.outbox_bytes)
    }

    fn phase(&self) -> Phase {
        self.life.phase()
    }

    /// Messages may be written (the outbox flows). The slow-consumer close is fed to
    /// the lifecycle model as an ordinary local close (see [`Model::tick`]), and both
    /// flush what was queued before our Close.
    fn may_write(&self) -> bool {
        self.life.messages_may_flow()
    }

    /// What `check_send` returns: the lifecycle's gate, shut early by a requested
    /// slow-consumer close.
    fn check_send(&self) -> Result<(), SendRefused> {
        if self.deferred {
            Err(SendRefused::Closed)
        } else if self.life.send_permitted() {
            Ok(())
        } else if self.phase().is_closing_or_closed() {
            Err(SendRefused::Closed)
        } else {
            Err(SendRefused::NotReady(self.phase()))
        }
    }

    /// The time input: a requested slow-consumer close takes effect.
    fn tick(&mut self, now: Instant) {
        if std::mem::take(&mut self.deferred) {
            let frame = self
                .overflow_close
                .clone()
                .expect("deferred only under Close");
            // The lifecycle records it as `SlowConsumer` instead of `Local`; the
            // transition and the flush rule are the same.
            let step = self.life.apply(&Input::Close(frame), now);
            assert_eq!(
                step,
                Expected::Transition(MachineState::SendingClose),
                "the model requested a slow-consumer close on a connection that was not ready"
            );
            self.slow_consumer = true;
        }
    }

    /// `handle(input, now)`.
    fn handle(&mut self, input: &Input, now: Instant) -> Expected {
        self.tick(now);
        let was_ready = self.phase() == Phase::Ready;
        let expected = self.life.apply(input, now);
        if !was_ready && self.phase() == Phase::Ready {
            // G2: the buffered events go first (nothing can be in the outbox yet).
            self.outbox.extend(self.pending.drain(..));
        }
        expected
    }

    /// `send(n)`: the outcome and the effects it records.
    fn send(&mut self, n: u32) -> (Result<(), SendErrorKind>, Effects) {
        match self.check_send() {
            // Not yet ready (the typed handles cannot send there at all, G1).
            Err(SendRefused::NotReady(_)) => return (Err(SendErrorKind::NotReady), Effects::NONE),
            // Closing or closed (G3), or a slow-consumer close requested.
            Err(_) => return (Err(SendErrorKind::Closed), Effects::NONE),
            Ok(()) => {}
        }
        if self.has_room_for(message(n).len()) {
            self.outbox.push_back(n);
            return (Ok(()), Effects::TRANSMIT);
        }
        if self.outbox.len() < self.outbox_capacity {
            // Refused for its bytes: the next message taken wakes a waiting sender.
            self.room_wanted = true;
        }
        if self.overflow_close.is_some() {
            // The gate shuts now; the driver is woken to apply the close, and
            // senders waiting for room learn that it shut.
            self.deferred = true;
            return (
                Err(SendErrorKind::Closed),
                Effects::TRANSMIT | Effects::ROOM,
            );
        }
        (Err(SendErrorKind::Full), Effects::NONE)
    }

    /// `emit(n)`: the outcome and the effects it records.
    fn emit(&mut self, n: u32) -> (Result<(), SendErrorKind>, Effects) {
        if self.phase() == Phase::Ready {
            return self.send(n);
        }
        if self.deferred || self.phase().is_closing_or_closed() {
            return (Err(SendErrorKind::Closed), Effects::NONE);
        }
        if self.pending.len() >= self.pending_capacity {
            return (Err(SendErrorKind::Full), Effects::NONE);
        }
        // Buffered: nothing for the driver to write yet, so no effect.
        self.pending.push_back(n);
        (Ok(()), Effects::NONE)
    }

    /// `next_frames(now, out, max)`: the frames, and the effects other than `STATE`.
    fn take(&mut self, now: Instant, max: usize) -> (Vec<Want>, Effects) {
        self.tick(now);
        let mut frames = Vec::new();
        let mut effects = Effects::NONE;
        while frames.len() < max {
            if self.may_write() {
                if let Some(n) = self.outbox.pop_front() {
                    let before = self.outbox.len() + 1;
                    let wanted = std::mem::take(&mut self.room_wanted);
                    if wanted
                        || before >= self.outbox_capacity
                            && self.outbox.len() < self.outbox_capacity
                    {
                        // Full → not full, or bytes freed for a message that did not
                        // fit.
                        effects |= Effects::ROOM;
                    }
                    frames.push(Want::Message(n));
                    continue;
                }
            }
            match self.life.poll_close(now) {
                Some(frame) => {
                    frames.push(Want::Close(frame));
                    break; // G3: our Close is the last frame
                }
                None => break,
            }
        }
        (frames, effects)
    }

    /// `requeue` of messages `numbers` (oldest first): back at the front, in order.
    fn requeue(&mut self, numbers: &[u32]) {
        for &n in numbers.iter().rev() {
            self.outbox.push_front(n);
        }
    }

    /// `take_unsent()`.
    fn take_unsent(&mut self) -> Vec<u32> {
        let mut unsent = Vec::new();
        if self.phase().is_closing_or_closed() {
            unsent.extend(self.pending.drain(..));
            if !self.may_write() {
                unsent.extend(self.outbox.drain(..));
            }
        }
        unsent
    }
}

// ── the real connection ─────────────────────────────────────────────────────────

/// The real side of a sequence: the connection, and what a driver keeps between
/// calls. The same [`Real::apply`] serves the checked step and the unchecked replay
/// of a prefix, so both make exactly the same calls.
struct Real {
    conn: Conn,
    /// The frames the latest take yielded, for `requeue`.
    last_take: Vec<Frame>,
    /// The number of the next message handed to `send` or `emit`.
    next: u32,
}

/// What one operation on the real connection returned.
enum Got {
    /// `handle`'s result.
    Handled(Result<Step, Rejected>),
    /// `send`'s or `emit`'s result, for message `n`.
    Sent(u32, Result<(), SendError>),
    /// `next_frames`: what it appended and what it returned.
    Frames(Vec<Frame>, usize),
    /// `requeue`: the frames handed back and the count it returned.
    Requeued(Vec<Frame>, usize),
    /// `take_unsent`'s messages.
    Unsent(Vec<Message>),
}

impl Real {
    fn new(config: &Config) -> Real {
        Real {
            conn: Conn::new(ConnectionId::new(1), config.clone()),
            last_take: Vec::new(),
            next: 0,
        }
    }

    fn apply(&mut self, op: Op, now: Instant) -> Got {
        if let Some(input) = op.input() {
            return Got::Handled(self.conn.handle(input, now));
        }
        if let Some(max) = op.max_frames() {
            let mut frames = Vec::new();
            let taken = self.conn.next_frames(now, &mut frames, max);
            self.last_take.clone_from(&frames);
            return Got::Frames(frames, taken);
        }
        match op {
            Op::Send | Op::Emit => {
                let n = self.next;
                self.next += 1;
                Got::Sent(
                    n,
                    if op == Op::Send {
                        self.conn.send(message(n))
                    } else {
                        self.conn.emit(message(n))
                    },
                )
            }
            Op::Requeue => {
                let back = std::mem::take(&mut self.last_take);
                let count = self.conn.requeue(back.clone());
                Got::Requeued(back, count)
            }
            Op::TakeUnsent => Got::Unsent(self.conn.take_unsent()),
            _ => unreachable!("{op:?} is an input or a take"),
        }
    }
}

// ── the checks ──────────────────────────────────────────────────────────────────

/// A broken rule: its label ([`G2`], [`G3`] or [`MODEL`]) and what happened.
struct Failure {
    guarantee: &'static str,
    what: String,
}

fn fail(guarantee: &'static str, what: impl Display) -> Failure {
    Failure {
        guarantee,
        what: what.to_string(),
    }
}

type Checked = Result<(), Failure>;

/// The label of a broken G2 rule, checked on its own (without the model).
const G2: &str = "G2 violated";

/// The label of a broken G3 rule, checked on its own (without the model).
const G3: &str = "G3 violated";

/// The label of a disagreement with the reference model: every rule of the model is
/// part of what G2 and G3 promise (what is queued, buffered, written, refused or
/// handed back, and when), or of the effects that wake whoever waits for it.
const MODEL: &str = "G2/G3: the reference model disagrees";

/// What the enumeration reached, so that the tests can insist that the interesting
/// paths really were exercised (counted over every checked step, end checks too).
#[derive(Debug, Default, Clone, Copy)]
struct Coverage {
    sequences: u64,
    /// A send or emit refused as `Full` (outbox or buffer).
    full: u64,
    /// A send that requested the slow-consumer close.
    overflow_closes: u64,
    /// A send refused (`Full`, or the slow-consumer close) for the byte budget, the
    /// count bound having room.
    byte_refusals: u64,
    /// Messages taken from an outbox holding more than its bound (after a requeue).
    over_bound: u64,
    /// Messages handed back by `requeue`.
    requeued: u64,
    /// A requeue of a batch that ended with our Close.
    requeued_after_close: u64,
    /// Messages handed back by `take_unsent`.
    unsent: u64,
    /// Events emitted before `Ready`, written.
    early_events_written: u64,
    /// Our Close frame, written.
    closes: u64,
    /// The slow-consumer Close frame (1013), written.
    slow_consumer_closes: u64,
}

impl Coverage {
    fn add(&mut self, other: &Coverage) {
        self.sequences += other.sequences;
        self.full += other.full;
        self.overflow_closes += other.overflow_closes;
        self.byte_refusals += other.byte_refusals;
        self.over_bound += other.over_bound;
        self.requeued += other.requeued;
        self.requeued_after_close += other.requeued_after_close;
        self.unsent += other.unsent;
        self.early_events_written += other.early_events_written;
        self.closes += other.closes;
        self.slow_consumer_closes += other.slow_consumer_closes;
    }
}

/// The checked side of a sequence: the model, and where every message went.
#[derive(Debug, Clone)]
struct Checker {
    model: Model,
    /// Written messages, in order: yielded by `next_frames` and not handed back by
    /// `requeue` (the stream the peer sees).
    written: Vec<u32>,
    /// Every frame ever yielded: a message's number, or `None` for our Close.
    yielded: Vec<Option<u32>>,
    /// Messages returned inside a `SendError`.
    refused: Vec<u32>,
    /// Messages handed back by `take_unsent`.
    unsent: Vec<u32>,
    /// Events accepted by `emit` before the connection was `Ready`.
    early: Vec<u32>,
    /// Messages accepted once the connection was `Ready`.
    late: Vec<u32>,
    /// The real connection has been `Ready`.
    was_ready: bool,
    /// A close was requested (locally or by the overflow policy) or the peer's Close
    /// came in: from then on `send` and `emit` must be refused (G3).
    close_requested: bool,
}

impl Checker {
    fn new(config: &Config) -> Checker {
        Checker {
            model: Model::new(config),
            written: Vec::new(),
            yielded: Vec::new(),
            refused: Vec::new(),
            unsent: Vec::new(),
            early: Vec::new(),
            late: Vec::new(),
            was_ready: false,
            close_requested: false,
        }
    }

    /// One operation on the real connection and on the model: the outcome compared,
    /// the guarantees checked, then (when `observe`) every observable.
    fn step(
        &mut self,
        real: &mut Real,
        op: Op,
        now: Instant,
        observe: bool,
        coverage: &mut Coverage,
    ) -> Checked {
        let before = self.model.state();
        let over_bound = real.conn.queued().0 > OUTBOX_CAPACITY;
        let effects = match real.apply(op, now) {
            Got::Handled(result) => self.handled(op, now, &result)?,
            Got::Sent(n, result) => self.sent(op, n, result, coverage)?,
            Got::Frames(frames, taken) => {
                let max = op.max_frames().expect("a take");
                let effects = self.frames(now, max, &frames, taken, coverage)?;
                if over_bound {
                    coverage.over_bound += frames.len() as u64;
                }
                effects
            }
            Got::Requeued(back, count) => self.requeued(&back, count, coverage)?,
            Got::Unsent(messages) => self.unsent(real.conn.phase(), &messages, coverage)?,
        };
        if observe {
            self.observe(real, effects, self.model.state() != before)?;
        }
        Ok(())
    }

    /// `handle`: the step or rejection the model predicts.
    fn handled(
        &mut self,
        op: Op,
        now: Instant,
        result: &Result<Step, Rejected>,
    ) -> Result<Effects, Failure> {
        let input = op.input().expect("an input");
        let expected = self.model.handle(&input, now);
        let actual = Expected::of(result);
        if actual != expected {
            return Err(fail(
                MODEL,
                format_args!("handle({input:?}): expected {expected:?}, got {actual:?}"),
            ));
        }
        if matches!(op, Op::Close | Op::PeerClose) && result.is_ok() {
            self.close_requested = true;
        }
        Ok(Effects::NONE)
    }

    /// `send` or `emit` of message `n`.
    fn sent(
        &mut self,
        op: Op,
        n: u32,
        result: Result<(), SendError>,
        coverage: &mut Coverage,
    ) -> Result<Effects, Failure> {
        let name = if op == Op::Send { "send" } else { "emit" };
        // G3, independently of the model: after a close, always refused as Closed.
        if self.close_requested && !matches!(&result, Err(e) if e.kind == SendErrorKind::Closed) {
            return Err(fail(
                G3,
                format_args!(
                    "{name}({n}) after a close was requested or the peer closed must be \
                     refused as Closed, got {result:?}"
                ),
            ));
        }
        let ready = self.model.phase() == Phase::Ready;
        let byte_refusal = op == Op::Send
            && self.model.check_send().is_ok()
            && self.model.outbox.len() < self.model.outbox_capacity
            && !self.model.has_room_for(message(n).len());
        if byte_refusal {
            coverage.byte_refusals += 1;
        }
        let (expected, effects) = if op == Op::Send {
            self.model.send(n)
        } else {
            self.model.emit(n)
        };
        let kind = result.as_ref().map(|_| ()).map_err(|e| e.kind);
        if kind != expected {
            return Err(fail(
                MODEL,
                format_args!("{name}({n}): expected {expected:?}, got {result:?}"),
            ));
        }
        match result {
            Ok(()) if ready => self.late.push(n),
            Ok(()) => self.early.push(n),
            Err(error) => {
                // G3: the very message comes back, inside the error.
                if number(&error.message) != n {
                    return Err(fail(
                        G3,
                        format_args!(
                            "{name}({n}) refused, but the error holds {:?}",
                            error.message
                        ),
                    ));
                }
                self.refused.push(n);
                if error.kind == SendErrorKind::Full {
                    coverage.full += 1;
                }
                if effects.contains(Effects::ROOM) {
                    // The overflow policy requested the slow-consumer close.
                    self.close_requested = true;
                    coverage.overflow_closes += 1;
                }
            }
        }
        Ok(effects)
    }

    /// `next_frames(now, out, max)`: the guarantees on the stream of frames, then the
    /// frames the model predicts.
    fn frames(
        &mut self,
        now: Instant,
        max: usize,
        frames: &[Frame],
        taken: usize,
        coverage: &mut Coverage,
    ) -> Result<Effects, Failure> {
        if taken != frames.len() {
            return Err(fail(
                MODEL,
                format_args!("next_frames returned {taken} but appended {}", frames.len()),
            ));
        }
        // The guarantees first, so that a break is reported by the rule it breaks.
        for frame in frames {
            if self.yielded.contains(&None) {
                return Err(fail(
                    G3,
                    format_args!(
                        "{frame:?} yielded after our Close (the Close must be the last \
                         frame); yielded before: {:?} (None: our Close)",
                        self.yielded
                    ),
                ));
            }
            match frame {
                Frame::Message(m) => {
                    let n = number(m);
                    if !self.was_ready {
                        return Err(fail(
                            G2,
                            format_args!("message {n} yielded before the connection was Ready"),
                        ));
                    }
                    self.written.push(n);
                    self.yielded.push(Some(n));
                    if self.early.contains(&n) {
                        coverage.early_events_written += 1;
                    }
                }
                Frame::Close(close) => {
                    self.yielded.push(None);
                    coverage.closes += 1;
                    if close.as_ref() == Some(&CrateClose::SlowConsumer.frame()) {
                        coverage.slow_consumer_closes += 1;
                    }
                }
            }
        }
        self.check_stream()?;
        let (expected, effects) = self.model.take(now, max);
        let agree = frames.len() == expected.len()
            && expected
                .iter()
                .zip(frames)
                .all(|(want, got)| want.matches(got));
        if !agree {
            return Err(fail(
                MODEL,
                format_args!("next_frames(max {max}): expected {expected:?}, got {frames:?}"),
            ));
        }
        Ok(effects)
    }

    /// The written stream, independently of the model (**G2**, **G3**): each message
    /// at most once, in the order accepted, the early events before any later message.
    fn check_stream(&self) -> Checked {
        // Message numbers are handed out in call order, so "the order accepted" is
        // "increasing"; this also rules out duplicates.
        if let Some(pair) = self.written.windows(2).find(|w| w[0] >= w[1]) {
            let guarantee = if self.early.contains(&pair[1]) {
                G2
            } else {
                G3
            };
            return Err(fail(
                guarantee,
                format_args!(
                    "written out of order or twice: {} after {} (written: {:?})",
                    pair[1], pair[0], self.written
                ),
            ));
        }
        if let Some(first_late) = self.written.iter().position(|n| self.late.contains(n)) {
            if let Some(early) = self.written[first_late..]
                .iter()
                .find(|n| self.early.contains(n))
            {
                return Err(fail(
                    G2,
                    format_args!(
                        "event {early}, emitted before Ready, written after message {}, \
                         sent after Ready (written: {:?})",
                        self.written[first_late], self.written
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `requeue` of the frames the latest take yielded.
    fn requeued(
        &mut self,
        back: &[Frame],
        count: usize,
        coverage: &mut Coverage,
    ) -> Result<Effects, Failure> {
        let numbers: Vec<u32> = back
            .iter()
            .filter_map(|frame| match frame {
                Frame::Message(m) => Some(number(m)),
                Frame::Close(_) => None,
            })
            .collect();
        if matches!(back.last(), Some(Frame::Close(_))) {
            coverage.requeued_after_close += 1;
        }
        // They were the last written: nothing was written since that take.
        let keep = self.written.len() - numbers.len();
        assert_eq!(
            self.written[keep..],
            numbers[..],
            "test bug: the requeued messages are not the last written"
        );
        self.written.truncate(keep);
        coverage.requeued += numbers.len() as u64;
        if count != numbers.len() {
            return Err(fail(
                MODEL,
                format_args!("requeue of messages {numbers:?} reported {count}"),
            ));
        }
        self.model.requeue(&numbers);
        Ok(Effects::NONE)
    }

    /// `take_unsent()`: nothing before a close (**G2**), exactly what the model hands
    /// back, in order.
    fn unsent(
        &mut self,
        phase: Phase,
        messages: &[Message],
        coverage: &mut Coverage,
    ) -> Result<Effects, Failure> {
        let actual: Vec<u32> = messages.iter().map(number).collect();
        if !phase.is_closing_or_closed() && !actual.is_empty() {
            return Err(fail(
                G2,
                format_args!(
                    "take_unsent handed back {actual:?} while {phase}: they may still be \
                     written (or flushed at Ready)"
                ),
            ));
        }
        let expected = self.model.take_unsent();
        if actual != expected {
            return Err(fail(
                MODEL,
                format_args!("take_unsent: expected {expected:?}, got {actual:?}"),
            ));
        }
        coverage.unsent += actual.len() as u64;
        self.unsent.extend(actual);
        Ok(Effects::NONE)
    }

    /// Every observable after a step: state, gates, queues, close record, effects,
    /// and the accounting of every message.
    fn observe(&mut self, real: &mut Real, effects: Effects, state_changed: bool) -> Checked {
        let (conn, model) = (&real.conn, &self.model);
        if conn.state() != model.state() || conn.phase() != model.phase() {
            return Err(fail(
                MODEL,
                format_args!(
                    "state: expected {} ({}), got {} ({})",
                    model.state(),
                    model.phase(),
                    conn.state(),
                    conn.phase()
                ),
            ));
        }
        if conn.check_send() != model.check_send() {
            return Err(fail(
                G3,
                format_args!(
                    "check_send: expected {:?}, got {:?}",
                    model.check_send(),
                    conn.check_send()
                ),
            ));
        }
        if conn.close_deferred() != model.deferred {
            return Err(fail(
                G3,
                format_args!(
                    "close_deferred: expected {}, got {}",
                    model.deferred,
                    conn.close_deferred()
                ),
            ));
        }
        let queued = (model.outbox.len(), model.pending.len());
        if conn.queued() != queued {
            return Err(fail(
                MODEL,
                format_args!(
                    "queued (outbox, buffer): expected {queued:?}, i.e. {:?}, got {:?}",
                    (&model.outbox, &model.pending),
                    conn.queued()
                ),
            ));
        }
        if conn.queued_bytes() != model.bytes() {
            return Err(fail(
                MODEL,
                format_args!(
                    "queued_bytes: expected {}, got {}",
                    model.bytes(),
                    conn.queued_bytes()
                ),
            ));
        }
        if conn.has_room() != model.has_room_for(0) {
            return Err(fail(
                MODEL,
                format_args!("has_room: got {} with {queued:?} queued", conn.has_room()),
            ));
        }
        if state_changed {
            // The record changes only with the state.
            self.check_record(conn)?;
        }
        let mut expected = effects;
        if state_changed {
            expected |= Effects::STATE;
        }
        let actual = real.conn.take_effects();
        if actual != expected {
            return Err(fail(
                MODEL,
                format_args!("take_effects: expected {expected:?}, got {actual:?}"),
            ));
        }
        if real.conn.phase() == Phase::Ready {
            self.was_ready = true;
        }
        self.check_accounting()
    }

    /// The close record: the lifecycle model's, except that a slow-consumer close is
    /// recorded with its own cause and the policy's frame.
    fn check_record(&self, conn: &Conn) -> Checked {
        let record = conn.close_record();
        let problem = if self.model.slow_consumer {
            match record {
                Some(r)
                    if r.cause == CloseCause::SlowConsumer
                        && r.frame == Some(CrateClose::SlowConsumer.frame()) =>
                {
                    None
                }
                other => Some(format!(
                    "expected a slow-consumer close record, got {other:?}"
                )),
            }
        } else {
            self.model.life.check_record(record).err()
        };
        match problem {
            Some(problem) => Err(fail(MODEL, format_args!("close record: {problem}"))),
            None => Ok(()),
        }
    }

    /// **G3**: every message ever handed to `send` or `emit` is in exactly one place:
    /// written, refused (in its error), handed back by `take_unsent`, or queued.
    fn check_accounting(&self) -> Checked {
        let model = &self.model;
        let mut places = [0u8; 64];
        assert!(self.refused.len() + self.early.len() + self.late.len() <= places.len());
        for &n in self
            .written
            .iter()
            .chain(&self.refused)
            .chain(&self.unsent)
            .chain(&model.outbox)
            .chain(&model.pending)
        {
            places[n as usize] += 1;
        }
        let next = self.refused.len() + self.early.len() + self.late.len();
        let Some(n) = (0..next).find(|&n| places[n] != 1) else {
            return Ok(());
        };
        let what = if places[n] == 0 { "lost" } else { "duplicated" };
        Err(fail(
            G3,
            format_args!(
                "message {n} {what}: written {:?}, refused {:?}, handed back by take_unsent \
                 {:?}, queued (outbox, buffer) {:?}",
                self.written,
                self.refused,
                self.unsent,
                (&model.outbox, &model.pending)
            ),
        ))
    }

    /// The end of a sequence of `len` operations: a final `take_unsent` when closing
    /// or closed, then the close-out (a local close, every frame, `take_unsent`), after
    /// which nothing may be queued, every message is accounted for, and our Close went
    /// out exactly once, last. `Err` says which of the two failed.
    fn finish(
        mut self,
        real: &mut Real,
        base: Instant,
        len: usize,
        coverage: &mut Coverage,
    ) -> Result<(), (&'static str, Failure)> {
        let mut step = len;
        if real.conn.phase().is_closing_or_closed() {
            const STAGE: &str = "the final take_unsent";
            step += 1;
            self.step(real, Op::TakeUnsent, at(base, step), true, coverage)
                .map_err(|f| (STAGE, f))?;
        }
        const STAGE: &str = "the close-out (Close, TakeAll, TakeUnsent)";
        for op in [Op::Close, Op::TakeAll, Op::TakeUnsent] {
            step += 1;
            self.step(real, op, at(base, step), false, coverage)
                .map_err(|f| (STAGE, f))?;
        }
        if real.conn.queued() != (0, 0) {
            return Err((
                STAGE,
                fail(
                    G3,
                    format_args!(
                        "{:?} still queued after the close-out: never to be written nor \
                         handed back",
                        real.conn.queued()
                    ),
                ),
            ));
        }
        self.check_accounting().map_err(|f| (STAGE, f))?;
        // A close before accept refuses the upgrade: no Close frame at all.
        let accepted = real
            .conn
            .close_record()
            .is_some_and(|r| r.cause != CloseCause::Refused);
        let closes = self.yielded.iter().filter(|f| f.is_none()).count();
        if closes != usize::from(accepted) || (accepted && self.yielded.last() != Some(&None)) {
            return Err((
                STAGE,
                fail(
                    G3,
                    format_args!(
                        "expected {} Close frame, the last frame; yielded {:?} (None: our Close)",
                        usize::from(accepted),
                        self.yielded
                    ),
                ),
            ));
        }
        Ok(())
    }
}

// ── the enumeration ─────────────────────────────────────────────────────────────

/// Where the enumeration starts: a new connection, and three states a few steps in,
/// so that the bound reaches as far past `Ready` (and past a full buffer or outbox)
/// as it reaches past the start. Every prefix of a root is itself checked step by
/// step on the way in.
const ROOTS: [&[Op]; 4] = [
    // A new connection: every sequence of up to `MAX_LEN` operations.
    &[],
    // Accepted, the pre-ready buffer full (an event from before the accept, one from
    // after): the G2 flush at `Ready`.
    &[Op::Emit, Op::Accept, Op::Emit],
    // Ready, nothing queued.
    &[Op::Accept, Op::Auth, Op::Ready],
    // Ready, the outbox full: an event flushed at `Ready`, then a send.
    &[Op::Accept, Op::Emit, Op::Auth, Op::Ready, Op::Send],
];

/// Depth-first over every continuation of `root` by up to `extra` operations.
struct Search<'a> {
    config: &'a Config,
    base: Instant,
    root: &'static [Op],
    max_len: usize,
    path: Vec<Op>,
    coverage: Coverage,
}

impl<'a> Search<'a> {
    fn new(config: &'a Config, root: &'static [Op], extra: usize) -> Search<'a> {
        Search {
            config,
            base: Instant::now(),
            root,
            max_len: root.len() + extra,
            path: Vec::with_capacity(root.len() + extra),
            coverage: Coverage::default(),
        }
    }

    /// The failure report: the guarantee, the sequence, the failing step.
    fn report(&self, stage: Option<&str>, failure: Failure) -> String {
        let at = match stage {
            Some(stage) => format!("in {stage} after it"),
            None => format!("at its last step, {:?}", self.path.last()),
        };
        format!(
            "{}: sequence {:?} (policy {:?}), {at}:\n  {}",
            failure.guarantee, self.path, self.config.overflow, failure.what
        )
    }

    /// A new connection with the current path replayed on it, its effects taken.
    fn replay(&self) -> Real {
        let mut real = Real::new(self.config);
        for (i, &op) in self.path.iter().enumerate() {
            let _ = real.apply(op, at(self.base, i + 1));
        }
        let _ = real.conn.take_effects();
        real
    }

    /// Every continuation of the current path, whose checked state is `parent`.
    fn explore(&mut self, parent: &Checker) -> Result<(), String> {
        let depth = self.path.len();
        if depth == self.max_len {
            return Ok(());
        }
        for op in ALPHABET {
            let mut real = self.replay();
            let mut checker = parent.clone();
            self.path.push(op);
            let now = at(self.base, depth + 1);
            checker
                .step(&mut real, op, now, true, &mut self.coverage)
                .map_err(|f| self.report(None, f))?;
            self.coverage.sequences += 1;
            self.explore(&checker)?;
            checker
                .finish(&mut real, self.base, depth + 1, &mut self.coverage)
                .map_err(|(stage, f)| self.report(Some(stage), f))?;
            self.path.pop();
        }
        Ok(())
    }

    /// The root, checked step by step, then every continuation.
    fn run(&mut self) -> Result<Coverage, String> {
        let mut checker = Checker::new(self.config);
        let mut real = Real::new(self.config);
        for (i, &op) in self.root.iter().enumerate() {
            self.path.push(op);
            checker
                .step(
                    &mut real,
                    op,
                    at(self.base, i + 1),
                    true,
                    &mut self.coverage,
                )
                .map_err(|f| self.report(None, f))?;
        }
        self.explore(&checker)?;
        Ok(self.coverage)
    }
}

fn max_len() -> usize {
    std::env::var("CONN_SEQUENCES_LEN")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(MAX_LEN)
}

/// Runs the enumeration from every root under `overflow`, fails with a shortest
/// failing sequence, and checks that the enumeration reached what it is meant to.
fn check_all(overflow: OverflowPolicy, outbox_bytes: Option<usize>) -> Coverage {
    let started = Instant::now();
    let extra = max_len();
    let config = config(overflow, outbox_bytes);
    let mut total = Coverage::default();
    for root in ROOTS {
        let coverage = match Search::new(&config, root, extra).run() {
            Ok(coverage) => coverage,
            Err(first) => {
                // Depth-first finds *a* failing sequence; report a shortest one too.
                let shortest = (0..=extra)
                    .find_map(|len| Search::new(&config, root, len).run().err())
                    .unwrap_or_default();
                panic!("{shortest}\n\n(first found depth-first: {first})");
            }
        };
        total.add(&coverage);
    }
    let per_root: u64 = (1..=extra as u32)
        .map(|len| (ALPHABET.len() as u64).pow(len))
        .sum();
    assert_eq!(
        total.sequences,
        per_root * ROOTS.len() as u64,
        "every sequence ran"
    );
    println!(
        "{:?}, {} bytes: checked {} sequences ({} roots, each continued by 1..={extra} \
         of {} ops) in {:.1?}; reached: {total:?}",
        config.overflow,
        config.outbox_bytes,
        total.sequences,
        ROOTS.len(),
        ALPHABET.len(),
        started.elapsed()
    );
    for (count, what) in [
        (total.full, "a send or emit refused as Full"),
        (total.requeued, "a message handed back by requeue"),
        (
            total.requeued_after_close,
            "a requeue of a batch ending with our Close",
        ),
        (total.unsent, "a message handed back by take_unsent"),
        (
            total.early_events_written,
            "an event emitted before Ready, written",
        ),
        (total.closes, "our Close written"),
        (
            if outbox_bytes.is_some() {
                total.byte_refusals
            } else {
                total.over_bound
            },
            "a send refused for the byte budget (with one), a message taken from an \
             outbox past its count bound (without)",
        ),
    ] {
        assert!(
            count > 0,
            "never reached: {what} (the sequences are too short)"
        );
    }
    total
}

/// **G2** and **G3** under [`OverflowPolicy::Reject`]: every sequence of up to
/// [`MAX_LEN`] operations agrees with the model after every step, and the guarantees
/// hold on the frames yielded (see the module docs).
#[test]
fn g2_g3_every_sequence_up_to_max_len_matches_model_reject() {
    check_all(OverflowPolicy::Reject, None);
}

/// The byte budget under [`OverflowPolicy::Reject`]: as above with a budget of
/// [`TINY_BYTE_BUDGET`] = 1 byte, so that a second message is refused as `Full` for
/// its bytes while the count bound (2) has room, the pre-ready flush and `requeue`
/// take the outbox past the budget, and taking a message after a refusal for bytes
/// records `ROOM`.
#[test]
fn g2_g3_every_sequence_matches_model_with_a_byte_budget_reject() {
    check_all(OverflowPolicy::Reject, Some(TINY_BYTE_BUDGET));
}

/// The byte budget under [`OverflowPolicy::slow_consumer`]: a send past the budget
/// requests the 1013 close exactly as a count overflow does.
#[test]
fn g2_g3_every_sequence_matches_model_with_a_byte_budget_slow_consumer() {
    let coverage = check_all(OverflowPolicy::slow_consumer(), Some(TINY_BYTE_BUDGET));
    assert!(
        coverage.overflow_closes > 0 && coverage.slow_consumer_closes > 0,
        "never reached: a send past the byte budget that requested the slow-consumer \
         close, and its 1013 Close written"
    );
}

/// **G2** and **G3** under [`OverflowPolicy::slow_consumer`]: as above; besides, a
/// send to a full outbox shuts the gate at once, the next timed input applies the
/// close, what was queued is still written, and the 1013 Close comes last.
#[test]
fn g2_g3_every_sequence_up_to_max_len_matches_model_slow_consumer() {
    let coverage = check_all(OverflowPolicy::slow_consumer(), None);
    assert!(
        coverage.overflow_closes > 0 && coverage.slow_consumer_closes > 0,
        "never reached: a send that requested the slow-consumer close, and its 1013 \
         Close written"
    );
}
