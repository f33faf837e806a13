//! Bounded exhaustive check of the sans-IO connection, [`Conn`], for **G2**
//! (ready-gating) and **G3** (close-gating).
//!
//! Every sequence of up to [`MAX_LEN`] operations over a twelve-letter alphabet
//! ([`ALPHABET`]: accept, authenticate, services ready, send, emit, take one or two
//! frames, hand all or the last of the frames just taken back with `requeue`, local
//! close, the peer's Close, `take_unsent`) is run against a fresh [`Conn`] and, side by
//! side, against [`Model`], a reference model written in this file from the documented
//! behaviour (the lifecycle part of it is the flag-based [`Reference`] of
//! `tests/reference/`, which `tests/sequences.rs` checks against the machine). The
//! capacities are tiny (outbox 2, pre-ready buffer 2), so a full outbox, a full buffer
//! and an outbox past its bound (after a `requeue`) are all reached, and the whole
//! enumeration runs twice: once under [`OverflowPolicy::Reject`], once under
//! [`OverflowPolicy::slow_consumer`]. With 12 letters and `MAX_LEN = 6` that is
//! 12 + 12² + … + 12⁶ = 3 257 436 sequences per policy, 6 514 872 in all (each run
//! from a new connection; the tests print the count and the time).
//!
//! After **every** step of every sequence:
//!
//! - the model predicts the outcome of the step — `handle`'s step or rejection, the
//!   `Ok`/`Err` kind of every `send` and `emit`, the exact frames every `next_frames`
//!   yields (message numbers and our Close frame), what `requeue` puts back and what
//!   `take_unsent` hands back — and the real `Conn` must agree;
//! - the observable state must agree: machine state, phase, `check_send`,
//!   `close_deferred`, `queued`, `has_room` and the close record;
//! - `take_effects` must be exactly what the documentation of [`Effects`] says:
//!   `STATE` when the machine changed state, `TRANSMIT` for an accepted send (and a
//!   slow-consumer close request), `ROOM` when the outbox went from full to not full
//!   (and when a slow-consumer close shuts the gate), nothing else;
//! - and, independently of the model, the guarantees themselves are checked on the
//!   stream of frames actually yielded:
//!   - **G2**: no message frame before the connection was `Ready`; events emitted
//!     before `Ready` are written in emission order, at most once, before any message
//!     sent after `Ready`;
//!   - **G3**: nothing follows our Close frame (it is yielded at most once, and it is
//!     the last frame); once a close was requested (locally, or by the slow-consumer
//!     policy) or the peer's Close came in, `send` and `emit` are refused with the
//!     message handed back intact; every message ever handed to `send` or `emit` is in
//!     exactly one place — written (yielded and not handed back by `requeue`), returned
//!     in its `SendError`, handed back by `take_unsent`, or still queued — never
//!     duplicated, never lost; written messages appear in the order they were
//!     accepted (`requeue` puts them back at the front, in order).
//!
//! At the end of each sequence a final `take_unsent` (when closing or closed) must
//! leave the accounting balanced; then the connection is closed out — a local close,
//! every frame taken, `take_unsent` — and afterwards nothing may be queued and every
//! message must have been written, refused or handed back exactly once.
//!
//! Sequences are enumerated shortest first, so the first failure reported is a
//! shortest failing sequence. `CONN_SEQUENCES_LEN=<n>` runs a different bound.

mod reference;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use reference::{Expected, OurFrame, Reference};
use ws_lifecycle::core::{
    CloseCause, CloseFrame, Config, Conn, ConnectionId, CrateClose, Effects, Frame, Input,
    MachineState, Message, OverflowPolicy, Phase, Rejected, SendErrorKind, SendRefused, Step,
};

/// The longest sequence checked (overridable with `CONN_SEQUENCES_LEN`).
const MAX_LEN: usize = 6;

/// The outbox's bound: small, so that a full outbox is a few sends away.
const OUTBOX_CAPACITY: usize = 2;

/// The pre-ready buffer's bound: two, so that the emission order of buffered events
/// is visible, and a third is refused.
const PENDING_CAPACITY: usize = 2;

/// The most frames the close-out at the end of a sequence takes in one go (more than
/// any sequence can queue).
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
    /// `requeue` of every frame the last take yielded (a write that took none).
    RequeueAll,
    /// `requeue` of the last frame the last take yielded (a write that took all but
    /// the last).
    RequeueLast,
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
const ALPHABET: [Op; 12] = [
    Op::Accept,
    Op::Auth,
    Op::Ready,
    Op::Send,
    Op::Emit,
    Op::Take1,
    Op::Take2,
    Op::RequeueAll,
    Op::RequeueLast,
    Op::Close,
    Op::PeerClose,
    Op::TakeUnsent,
];

fn config(overflow: OverflowPolicy) -> Config {
    let mut config = Config::default();
    // Deadlines keep their defaults (readiness 10 s, close handshake 5 s): a sequence
    // spans a few milliseconds, so none of them fires.
    config.outbox_capacity = OUTBOX_CAPACITY;
    config.pending_capacity = PENDING_CAPACITY;
    config.overflow = overflow;
    config
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

/// `handle`'s result in the reference model's terms.
fn outcome(result: Result<Step, Rejected>) -> Expected {
    match result {
        Ok(step) if step.changed() => Expected::Transition(step.to),
        Ok(_) => Expected::Unchanged,
        Err(rejected) => Expected::Rejected {
            state: rejected.state,
            reason: rejected.reason,
        },
    }
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
/// plus two queues of message numbers and the slow-consumer flag, every rule written
/// from the documentation of `Conn`, `Config`, `OverflowPolicy` and `Effects`:
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
        if self.check_send().is_err() {
            // Closing or closed (G3), a slow-consumer close requested, or — not
            // documented on `Conn::send`; what the implementation reports — not yet
            // ready (the typed handles cannot send there at all, G1).
            return (Err(SendErrorKind::Closed), Effects::NONE);
        }
        if self.outbox.len() < self.outbox_capacity {
            self.outbox.push_back(n);
            return (Ok(()), Effects::TRANSMIT);
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

    /// `next_frames(now, out, max)`: the frames and the effects other than `STATE`.
    fn take(&mut self, now: Instant, max: usize) -> (Vec<Want>, Effects) {
        self.tick(now);
        let mut frames = Vec::new();
        let mut effects = Effects::NONE;
        while frames.len() < max {
            if self.may_write() {
                if let Some(n) = self.outbox.pop_front() {
                    let before = self.outbox.len() + 1;
                    if before >= self.outbox_capacity && self.outbox.len() < self.outbox_capacity {
                        effects |= Effects::ROOM; // full → not full
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

// ── one sequence ───────────────────────────────────────────────────────────────

/// What the enumeration reached, so that a test can insist that the interesting
/// paths really were exercised.
#[derive(Debug, Default, Clone, Copy)]
struct Coverage {
    sequences: u64,
    /// A send or emit refused with `Full` (outbox or buffer).
    full: u64,
    /// A send that requested the slow-consumer close.
    overflow_closes: u64,
    /// A frame taken from an outbox holding more than its bound (after a requeue).
    over_bound: u64,
    /// Messages handed back by `requeue`.
    requeued: u64,
    /// A requeue of a batch that ended with our Close.
    requeued_after_close: u64,
    /// Messages handed back by `take_unsent` within a sequence.
    unsent: u64,
    /// Events emitted before `Ready` that were written.
    early_events_written: u64,
    /// A slow-consumer Close frame written.
    slow_consumer_closes: u64,
}

impl Coverage {
    fn add(&mut self, other: &Coverage) {
        self.sequences += other.sequences;
        self.full += other.full;
        self.overflow_closes += other.overflow_closes;
        self.over_bound += other.over_bound;
        self.requeued += other.requeued;
        self.requeued_after_close += other.requeued_after_close;
        self.unsent += other.unsent;
        self.early_events_written += other.early_events_written;
        self.slow_consumer_closes += other.slow_consumer_closes;
    }
}

/// One sequence, run on a real [`Conn`] and on the [`Model`], with the bookkeeping
/// of where every message went.
struct Run<'a> {
    /// The sequence (for messages).
    ops: &'a [Op],
    /// How many of `ops` ran.
    done: usize,
    /// Empty while the sequence runs; then says which end check runs.
    phase_of_run: &'static str,
    base: Instant,
    /// Milliseconds after `base` of the latest operation.
    tick: u64,
    conn: Conn,
    model: Model,
    /// The number of the next message handed to `send` or `emit`.
    next: u32,
    /// Written messages, in order: yielded by `next_frames` and not handed back by
    /// `requeue` (the stream the peer sees).
    written: Vec<u32>,
    /// Every frame ever yielded, as (message number or `None` for our Close).
    yielded: Vec<Option<u32>>,
    /// The frames of the latest take, for `requeue`.
    last_take: Vec<Frame>,
    /// Messages returned inside a `SendError`.
    refused: Vec<u32>,
    /// Messages handed back by `take_unsent`.
    unsent: Vec<u32>,
    /// Events accepted by `emit` before the connection was `Ready`.
    early: Vec<u32>,
    /// Messages accepted while (or after) the connection was `Ready`.
    late: Vec<u32>,
    /// The real connection has been `Ready`.
    was_ready: bool,
    /// A close was requested (locally or by the overflow policy) or the peer's Close
    /// came in: from then on `send` and `emit` must be refused (G3).
    close_requested: bool,
    coverage: Coverage,
}

type Checked = Result<(), String>;

impl<'a> Run<'a> {
    fn new(ops: &'a [Op], config: &Config, base: Instant) -> Run<'a> {
        Run {
            ops,
            done: 0,
            phase_of_run: "",
            base,
            tick: 0,
            conn: Conn::new(ConnectionId::new(1), config.clone()),
            model: Model::new(config),
            next: 0,
            written: Vec::new(),
            yielded: Vec::new(),
            last_take: Vec::new(),
            refused: Vec::new(),
            unsent: Vec::new(),
            early: Vec::new(),
            late: Vec::new(),
            was_ready: false,
            close_requested: false,
            coverage: Coverage::default(),
        }
    }

    /// A failure report: the guarantee, the sequence so far and what went wrong.
    fn fail(&self, guarantee: &str, what: impl std::fmt::Display) -> String {
        format!(
            "{guarantee} violated by the sequence {:?}{} (failed at step {}: {:?}):\n  {what}",
            &self.ops[..self.done.min(self.ops.len())],
            self.phase_of_run,
            self.done,
            self.ops.get(self.done.wrapping_sub(1)),
        )
    }

    /// Runs the whole sequence, checking after every step, then the end checks.
    fn run(mut self) -> Result<Coverage, String> {
        for &op in self.ops {
            self.done += 1;
            self.step(op)?;
        }
        self.finish()?;
        self.coverage.sequences = 1;
        Ok(self.coverage)
    }

    /// One operation on both, the outcome compared, then every observable.
    fn step(&mut self, op: Op) -> Checked {
        self.tick += 1;
        let now = self.base + Duration::from_millis(self.tick);
        let state_before = self.model.state();
        let effects = match op {
            Op::Accept => self.input(Input::Accept, now)?,
            Op::Auth => self.input(Input::AuthSucceeded { expires_at: None }, now)?,
            Op::Ready => self.input(Input::ServicesReady, now)?,
            Op::Close => self.input(Input::Close(CloseFrame::normal()), now)?,
            Op::PeerClose => self.input(Input::PeerClose(None), now)?,
            Op::Send | Op::Emit => self.send(op)?,
            Op::Take1 => self.take(now, 1)?,
            Op::Take2 => self.take(now, 2)?,
            Op::TakeAll => self.take(now, TAKE_ALL)?,
            Op::RequeueAll | Op::RequeueLast => self.requeue(op)?,
            Op::TakeUnsent => self.take_unsent()?,
        };
        let state_changed = self.model.state() != state_before;
        self.observe(effects, state_changed)
    }

    /// `handle(input, now)`: its step or rejection as the model predicts.
    fn input(&mut self, input: Input, now: Instant) -> Result<Effects, String> {
        let expected = self.model.handle(&input, now);
        let actual = outcome(self.conn.handle(input.clone(), now));
        if actual != expected {
            return Err(self.fail(
                "model",
                format_args!("handle({input:?}): expected {expected:?}, got {actual:?}"),
            ));
        }
        if matches!(input, Input::Close(_) | Input::PeerClose(_))
            && !matches!(actual, Expected::Rejected { .. })
        {
            self.close_requested = true;
        }
        Ok(Effects::NONE)
    }

    /// `send` or `emit` of the next numbered message.
    fn send(&mut self, op: Op) -> Result<Effects, String> {
        let n = self.next;
        self.next += 1;
        let ready = self.model.phase() == Phase::Ready;
        let (expected, effects) = if op == Op::Send {
            self.model.send(n)
        } else {
            self.model.emit(n)
        };
        let actual = if op == Op::Send {
            self.conn.send(message(n))
        } else {
            self.conn.emit(message(n))
        };
        let name = if op == Op::Send { "send" } else { "emit" };
        // G3, independently of the model: after a close, always refused as Closed.
        if self.close_requested && !matches!(&actual, Err(e) if e.kind == SendErrorKind::Closed) {
            return Err(self.fail(
                "G3",
                format_args!(
                    "{name}({n}) after a close was requested or the peer closed must be \
                     refused as Closed, got {actual:?}"
                ),
            ));
        }
        let kind = actual.as_ref().map(|_| ()).map_err(|e| e.kind);
        if kind != expected {
            return Err(self.fail(
                "model",
                format_args!("{name}({n}): expected {expected:?}, got {actual:?}"),
            ));
        }
        match actual {
            Ok(()) if ready => self.late.push(n),
            Ok(()) => self.early.push(n),
            Err(error) => {
                // G3: the very message comes back, inside the error.
                if error.message != message(n) {
                    return Err(self.fail(
                        "G3",
                        format_args!(
                            "{name}({n}) refused, but the error holds {:?}",
                            error.message
                        ),
                    ));
                }
                self.refused.push(n);
                if error.kind == SendErrorKind::Full {
                    self.coverage.full += 1;
                }
                if effects.contains(Effects::ROOM) {
                    // The overflow policy requested the slow-consumer close.
                    self.close_requested = true;
                    self.coverage.overflow_closes += 1;
                }
            }
        }
        Ok(effects)
    }

    /// `next_frames(now, out, max)`: the frames the model predicts, and the
    /// guarantees on the stream of frames.
    fn take(&mut self, now: Instant, max: usize) -> Result<Effects, String> {
        let over_bound = self.conn.queued().0 > OUTBOX_CAPACITY;
        let (expected, effects) = self.model.take(now, max);
        let mut frames = Vec::new();
        let taken = self.conn.next_frames(now, &mut frames, max);
        if taken != frames.len() {
            return Err(self.fail(
                "model",
                format_args!("next_frames returned {taken} but appended {}", frames.len()),
            ));
        }
        // The guarantees first, so that a break is reported by the rule it breaks.
        for frame in &frames {
            if self.yielded.last() == Some(&None) {
                return Err(self.fail(
                    "G3",
                    format_args!(
                        "{frame:?} yielded after our Close (the Close must be the last frame); \
                         all yielded before it: {:?}",
                        self.yielded
                    ),
                ));
            }
            match frame {
                Frame::Message(m) => {
                    let n = number(m);
                    if !self.was_ready {
                        return Err(self.fail(
                            "G2",
                            format_args!("message {n} yielded before the connection was Ready"),
                        ));
                    }
                    self.written.push(n);
                    self.yielded.push(Some(n));
                    if self.early.contains(&n) {
                        self.coverage.early_events_written += 1;
                    }
                }
                Frame::Close(frame) => {
                    self.yielded.push(None);
                    if frame.as_ref().map(|f| f.code())
                        == Some(CrateClose::SlowConsumer.frame().code())
                    {
                        self.coverage.slow_consumer_closes += 1;
                    }
                }
            }
        }
        self.check_stream()?;
        let agree = frames.len() == expected.len()
            && expected
                .iter()
                .zip(&frames)
                .all(|(want, got)| want.matches(got));
        if !agree {
            return Err(self.fail(
                "model",
                format_args!("next_frames(max {max}): expected {expected:?}, got {frames:?}"),
            ));
        }
        if over_bound && !frames.is_empty() {
            self.coverage.over_bound += 1;
        }
        self.last_take = frames;
        Ok(effects)
    }

    /// The written stream, independently of the model (**G2**, **G3**): each message
    /// at most once, in the order accepted, the early events before any later message.
    fn check_stream(&self) -> Checked {
        // Message numbers are handed out in call order, so "the order accepted" is
        // "increasing": this also rules out duplicates.
        if let Some(pair) = self.written.windows(2).find(|w| w[0] >= w[1]) {
            let guarantee = if self.early.contains(&pair[1]) {
                "G2"
            } else {
                "G3"
            };
            return Err(self.fail(
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
                return Err(self.fail(
                    "G2",
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

    /// `requeue` of all, or the last, of the frames the latest take yielded: what a
    /// driver does when a write took none, or all but the last, of a batch.
    fn requeue(&mut self, op: Op) -> Result<Effects, String> {
        let batch = std::mem::take(&mut self.last_take);
        let back: Vec<Frame> = match op {
            Op::RequeueAll => batch,
            _ => batch.into_iter().last().into_iter().collect(),
        };
        let numbers: Vec<u32> = back
            .iter()
            .filter_map(|frame| match frame {
                Frame::Message(m) => Some(number(m)),
                Frame::Close(_) => None,
            })
            .collect();
        if matches!(back.last(), Some(Frame::Close(_))) {
            self.coverage.requeued_after_close += 1;
        }
        // They were the last written (nothing was written since the take).
        let keep = self.written.len() - numbers.len();
        if self.written[keep..] != numbers[..] {
            return Err(self.fail(
                "test",
                format_args!(
                    "requeued {numbers:?} are not the last written {:?}",
                    self.written
                ),
            ));
        }
        self.written.truncate(keep);
        self.coverage.requeued += numbers.len() as u64;
        let count = self.conn.requeue(back);
        if count != numbers.len() {
            return Err(self.fail(
                "model",
                format_args!("requeue of {numbers:?} reported {count} messages"),
            ));
        }
        self.model.requeue(&numbers);
        Ok(Effects::NONE)
    }

    /// `take_unsent()`: exactly what the model hands back, in order.
    fn take_unsent(&mut self) -> Result<Effects, String> {
        let phase = self.conn.phase();
        let expected = self.model.take_unsent();
        let actual: Vec<u32> = self.conn.take_unsent().iter().map(number).collect();
        if !phase.is_closing_or_closed() && !actual.is_empty() {
            return Err(self.fail(
                "G2",
                format_args!(
                    "take_unsent handed back {actual:?} while {phase}: they may still be written"
                ),
            ));
        }
        if actual != expected {
            return Err(self.fail(
                "model",
                format_args!("take_unsent: expected {expected:?}, got {actual:?}"),
            ));
        }
        self.coverage.unsent += actual.len() as u64;
        self.unsent.extend(actual);
        Ok(Effects::NONE)
    }

    /// Every observable after a step: state, gates, queues, close record, effects,
    /// and the accounting of every message.
    fn observe(&mut self, effects: Effects, state_changed: bool) -> Checked {
        let (conn, model) = (&self.conn, &self.model);
        if conn.state() != model.state() || conn.phase() != model.phase() {
            return Err(self.fail(
                "model",
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
            return Err(self.fail(
                "G3",
                format_args!(
                    "check_send: expected {:?}, got {:?}",
                    model.check_send(),
                    conn.check_send()
                ),
            ));
        }
        if conn.close_deferred() != model.deferred {
            return Err(self.fail(
                "G3",
                format_args!(
                    "close_deferred: expected {}, got {}",
                    model.deferred,
                    conn.close_deferred()
                ),
            ));
        }
        let queued = (model.outbox.len(), model.pending.len());
        if conn.queued() != queued {
            return Err(self.fail(
                "model",
                format_args!(
                    "queued (outbox, buffer): expected {queued:?} = {:?}, got {:?}",
                    (&model.outbox, &model.pending),
                    conn.queued()
                ),
            ));
        }
        if conn.has_room() != (model.outbox.len() < model.outbox_capacity) {
            return Err(self.fail("model", format_args!("has_room: got {}", conn.has_room())));
        }
        self.check_record()?;
        // Effects: exactly the documented flags.
        let mut expected = effects;
        if state_changed {
            expected |= Effects::STATE;
        }
        let actual = self.conn.take_effects();
        if actual != expected {
            return Err(self.fail(
                "model",
                format_args!("take_effects: expected {expected:?}, got {actual:?}"),
            ));
        }
        if self.conn.phase() == Phase::Ready {
            self.was_ready = true;
        }
        self.check_accounting()
    }

    /// The close record: the lifecycle model's, except that a slow-consumer close is
    /// recorded with its own cause and the policy's frame.
    fn check_record(&self) -> Checked {
        let record = self.conn.close_record();
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
            Some(problem) => Err(self.fail("model", format_args!("close record: {problem}"))),
            None => Ok(()),
        }
    }

    /// **G3**: every message ever handed to `send` or `emit` is in exactly one place —
    /// written, refused (in its error), handed back by `take_unsent`, or queued.
    fn check_accounting(&self) -> Checked {
        let mut places = vec![Vec::new(); self.next as usize];
        let lists: [(&'static str, &mut dyn Iterator<Item = u32>); 5] = [
            ("written", &mut self.written.iter().copied()),
            ("refused", &mut self.refused.iter().copied()),
            (
                "handed back by take_unsent",
                &mut self.unsent.iter().copied(),
            ),
            (
                "queued in the outbox",
                &mut self.model.outbox.iter().copied(),
            ),
            (
                "buffered before Ready",
                &mut self.model.pending.iter().copied(),
            ),
        ];
        for (place, numbers) in lists {
            for n in numbers {
                places[n as usize].push(place);
            }
        }
        for (n, places) in places.iter().enumerate() {
            if places.len() != 1 {
                let what = if places.is_empty() {
                    "lost"
                } else {
                    "duplicated"
                };
                return Err(self.fail(
                    "G3",
                    format_args!(
                        "message {n} {what}: it is {places:?} (written {:?}, refused {:?}, \
                         unsent {:?}, queued {:?})",
                        self.written,
                        self.refused,
                        self.unsent,
                        (&self.model.outbox, &self.model.pending)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The end of the sequence: a final `take_unsent` when closing or closed, the
    /// accounting; then the close-out — a local close, every frame, `take_unsent` —
    /// after which nothing may remain queued and every message is accounted for.
    fn finish(&mut self) -> Checked {
        self.phase_of_run = " then the final take_unsent";
        if self.conn.phase().is_closing_or_closed() {
            self.step(Op::TakeUnsent)?;
        }
        self.phase_of_run = " then the close-out (Close, TakeAll, TakeUnsent)";
        for op in [Op::Close, Op::TakeAll, Op::TakeUnsent] {
            self.step(op)?;
        }
        if self.conn.queued() != (0, 0) {
            return Err(self.fail(
                "G3",
                format_args!(
                    "after the close-out {:?} are still queued: they will never be written \
                     nor handed back",
                    self.conn.queued()
                ),
            ));
        }
        // Our Close went out iff the handshake was accepted (a close before accept
        // refuses the upgrade without one), and it was the last frame.
        let accepted = self
            .conn
            .close_record()
            .is_some_and(|r| r.cause != CloseCause::Refused);
        let close_frames = self.yielded.iter().filter(|f| f.is_none()).count();
        let want = usize::from(accepted);
        if close_frames != want || (accepted && self.yielded.last() != Some(&None)) {
            return Err(self.fail(
                "G3",
                format_args!(
                    "expected {want} Close frame(s), the last frame; yielded: {:?}",
                    self.yielded
                ),
            ));
        }
        self.check_accounting()
    }
}

// ── the enumeration ─────────────────────────────────────────────────────────────

/// Runs every sequence of length 1 to `max_len` over [`ALPHABET`], shortest first;
/// the first failure is thus a shortest failing sequence.
fn enumerate(config: &Config, max_len: usize) -> Result<Coverage, String> {
    let base = Instant::now();
    let mut total = Coverage::default();
    let mut ops = Vec::with_capacity(max_len);
    for len in 1..=max_len {
        let count = ALPHABET.len().pow(len as u32);
        for code in 0..count {
            ops.clear();
            let mut c = code;
            for _ in 0..len {
                ops.push(ALPHABET[c % ALPHABET.len()]);
                c /= ALPHABET.len();
            }
            let coverage = Run::new(&ops, config, base).run()?;
            total.add(&coverage);
        }
    }
    Ok(total)
}

fn max_len() -> usize {
    std::env::var("CONN_SEQUENCES_LEN")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(MAX_LEN)
}

/// Runs the enumeration under `overflow`, fails with the first (shortest) failing
/// sequence, and checks that the enumeration reached what it is meant to reach.
fn check_all(overflow: OverflowPolicy) -> Coverage {
    let started = Instant::now();
    let max_len = max_len();
    let coverage = match enumerate(&config(overflow.clone()), max_len) {
        Ok(coverage) => coverage,
        Err(failure) => panic!("{failure}"),
    };
    let expected: u64 = (1..=max_len as u32)
        .map(|len| (ALPHABET.len() as u64).pow(len))
        .sum();
    assert_eq!(coverage.sequences, expected, "every sequence ran");
    println!(
        "{overflow:?}: checked {} sequences of length 1..={max_len} over {} ops in {:.1?}; \
         {coverage:?}",
        coverage.sequences,
        ALPHABET.len(),
        started.elapsed()
    );
    for (count, what) in [
        (coverage.full, "a send or emit refused as Full"),
        (coverage.requeued, "a message handed back by requeue"),
        (
            coverage.requeued_after_close,
            "a requeue of a batch ending with our Close",
        ),
        (coverage.unsent, "a message handed back by take_unsent"),
        (
            coverage.early_events_written,
            "an event emitted before Ready written",
        ),
    ] {
        assert!(
            count > 0,
            "never reached: {what} (the sequences are too short)"
        );
    }
    coverage
}

/// **G2** and **G3** under [`OverflowPolicy::Reject`]: every sequence of up to
/// [`MAX_LEN`] operations agrees with the model after every step, and the guarantees
/// hold on the frames yielded (see the module docs).
#[test]
fn g2_g3_every_sequence_up_to_max_len_matches_model_reject() {
    check_all(OverflowPolicy::Reject);
}

/// **G2** and **G3** under [`OverflowPolicy::slow_consumer`]: as above, and a send to
/// a full outbox shuts the gate at once, the next timed input applies the close, what
/// was queued is still written, and the 1013 Close comes last.
#[test]
fn g2_g3_every_sequence_up_to_max_len_matches_model_slow_consumer() {
    let coverage = check_all(OverflowPolicy::slow_consumer());
    assert!(
        coverage.overflow_closes > 0,
        "never reached: a send that requested the slow-consumer close"
    );
}
