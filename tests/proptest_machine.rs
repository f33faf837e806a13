//! Model-based property test of the typed API ([`Connection<S>`] through
//! [`AnyConnection`]) against the independent reference model in `tests/reference/`,
//! with message accounting.
//!
//! The reference side ([`TypedModel`]) tracks what the owner holds (the type state of
//! the handle), the flag-based lifecycle model, the virtual clock and the expected
//! outbox, and for every operation records what the real connection must answer. The
//! concrete side ([`Sut`]) drives a real connection and, independently of the model,
//! keeps a ledger of every message handed to `send`.
//!
//! [`Connection<S>`]: ws_lifecycle::Connection

mod reference;

use std::collections::{BTreeMap, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use reference::{Expected, OurFrame, Reference, frame_matches};
use ws_lifecycle::core::{CloseCause, Input, MachineState, SendErrorKind, TransportLoss};
use ws_lifecycle::handle::AnyConnection;
use ws_lifecycle::{
    CloseCode, CloseFrame, CloseRecord, Config, Connection, ConnectionId, Frame, Message, Phase,
};

// ── shared setup ────────────────────────────────────────────────────────────────

/// The virtual clock's origin, shared by the model and the real connection.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn at(ms: u64) -> Instant {
    base() + Duration::from_millis(ms)
}

/// Short timeouts (relative to `AdvanceTime`) so deadlines fire, and a small outbox so
/// `SendErrorKind::Full` happens: three messages, and a byte budget of 7 bytes, so
/// that three short messages ([`message`]: 2 to 5 bytes) meet the count bound and
/// two or three longer ones the byte budget.
fn config() -> Config {
    let mut config = Config::default();
    config.readiness_timeout = Duration::from_millis(300);
    config.close_timeout = Duration::from_millis(200);
    config.outbox_capacity = 3;
    config.outbox_bytes = 7;
    config
}

fn close_frame(code: u16) -> CloseFrame {
    let code = CloseCode::from_wire(code).expect("a sendable code");
    CloseFrame::new(code, format!("close {code}")).expect("a valid frame")
}

/// Message `id`: `m<id>` padded with `id % 3` dots, so that sizes vary (2 to 5 bytes
/// in a run) and the byte budget is met by some bursts and the count bound by others.
fn message(id: u32) -> Message {
    Message::text(format!("m{id}{}", ".".repeat(id as usize % 3)))
}

fn message_id(message: &Message) -> u32 {
    message
        .as_text()
        .and_then(|t| t.strip_prefix('m'))
        .map(|n| n.trim_end_matches('.'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not one of ours: {message:?}"))
}

// ── operations ──────────────────────────────────────────────────────────────────

/// An operation on the typed API.
#[derive(Debug, Clone)]
enum Op {
    /// `Connection<Connecting>::accept`.
    Accept,
    /// `Connection<Accepted>::authenticate`, the credential expiring after this many
    /// milliseconds (`None`: never).
    Authenticate { expires_in: Option<u64> },
    /// `Connection<Accepted>::reject`.
    Reject,
    /// `Connection<Authenticated>::ready`.
    Ready,
    /// `Connection<Authenticated>::reauthenticate` or
    /// `Connection<Ready>::reauthenticate`.
    Reauthenticate { expires_in: Option<u64> },
    /// `Connection<Ready>::reauthentication_failed`.
    ReauthenticationFailed,
    /// `Connection<Ready>::send` of message number `n` (numbers are unique, increasing).
    Send(u32),
    /// `AnyConnection::close` with this code.
    Close(u16),
    /// `handle_peer_close` with this code (`None`: no status code).
    PeerClose(Option<u16>),
    /// `handle_transport_lost`.
    TransportLost(TransportLoss),
    /// `poll_transmit`.
    PollTransmit,
    /// Advance the virtual clock by this many milliseconds, then `handle_timeout`.
    AdvanceTime(u64),
    /// Advance the virtual clock by this many milliseconds and do nothing else: the
    /// next input meets deadlines that passed unattended (a driver that woke late).
    Sleep(u64),
    /// `take_unsent`.
    TakeUnsent,
}

/// Which typed handle the owner holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handle {
    Connecting,
    Accepted,
    Authenticated,
    Ready,
    Closing,
}

fn handle_of(any: &AnyConnection) -> Handle {
    match any {
        AnyConnection::Connecting(_) => Handle::Connecting,
        AnyConnection::Accepted(_) => Handle::Accepted,
        AnyConnection::Authenticated(_) => Handle::Authenticated,
        AnyConnection::Ready(_) => Handle::Ready,
        AnyConnection::Closing(_) => Handle::Closing,
    }
}

/// Calls a method available on every `Connection<S>`.
macro_rules! each {
    ($any:expr, $c:ident => $body:expr) => {
        match $any {
            AnyConnection::Connecting($c) => $body,
            AnyConnection::Accepted($c) => $body,
            AnyConnection::Authenticated($c) => $body,
            AnyConnection::Ready($c) => $body,
            AnyConnection::Closing($c) => $body,
        }
    };
}

/// A frame the model expects `poll_transmit` to yield.
#[derive(Debug, Clone)]
enum ExpectedFrame {
    Message(u32),
    Close(Option<OurFrame>),
}

/// What the model expects the real connection to answer to the last operation.
#[derive(Debug, Clone)]
enum Expect {
    /// Nothing applied yet.
    Start,
    /// A typed transition: `true` for the next handle, `false` for `Gone`.
    Typed(bool),
    /// A call returning `()` that cannot fail (`close`, `reject`,
    /// `reauthentication_failed`), or the clock moving on.
    Done,
    /// A call returning `Result<Step, Rejected>`, or `reauthenticate`.
    Step(Expected),
    /// `send`: `Ok`, or the message back with this kind.
    Send(Result<(), SendErrorKind>),
    /// `poll_transmit`.
    Transmit(Option<ExpectedFrame>),
    /// `handle_timeout`.
    Timer(Option<Expected>),
    /// `take_unsent`: these messages, in this order.
    Unsent(Vec<u32>),
}

// ── the reference side ──────────────────────────────────────────────────────────

/// The reference state: the lifecycle model plus what the typed layer adds.
#[derive(Debug, Clone)]
struct ModelState {
    lifecycle: Reference,
    handle: Handle,
    now_ms: u64,
    outbox: VecDeque<u32>,
    capacity: usize,
    /// The byte budget: a message fits an empty outbox, or within it.
    budget: usize,
    next_message: u32,
    expect: Expect,
}

struct TypedModel;

fn expiry() -> impl Strategy<Value = Option<u64>> {
    prop::option::of(0u64..=500)
}

impl ReferenceStateMachine for TypedModel {
    type State = ModelState;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<ModelState> {
        let config = config();
        Just(ModelState {
            lifecycle: Reference::new(&config),
            handle: Handle::Connecting,
            now_ms: 0,
            outbox: VecDeque::new(),
            capacity: config.outbox_capacity,
            budget: config.outbox_bytes,
            next_message: 0,
            expect: Expect::Start,
        })
        .boxed()
    }

    fn transitions(state: &ModelState) -> BoxedStrategy<Op> {
        let common = prop_oneof![
            2 => prop::sample::select(vec![1000u16, 1001, 1011, 4000, 4999]).prop_map(Op::Close),
            2 => prop::option::of(prop::sample::select(vec![1000u16, 1002, 4001]))
                .prop_map(Op::PeerClose),
            1 => prop::sample::select(vec![TransportLoss::Eof, TransportLoss::Error])
                .prop_map(Op::TransportLost),
            6 => Just(Op::PollTransmit),
            4 => (0u64..=400).prop_map(Op::AdvanceTime),
            2 => (0u64..=400).prop_map(Op::Sleep),
            1 => Just(Op::TakeUnsent),
        ]
        .boxed();
        match state.handle {
            Handle::Connecting => prop_oneof![3 => Just(Op::Accept), 1 => common].boxed(),
            Handle::Accepted => prop_oneof![
                6 => expiry().prop_map(|expires_in| Op::Authenticate { expires_in }),
                1 => Just(Op::Reject),
                3 => common,
            ]
            .boxed(),
            Handle::Authenticated => prop_oneof![
                6 => Just(Op::Ready),
                1 => expiry().prop_map(|expires_in| Op::Reauthenticate { expires_in }),
                2 => common,
            ]
            .boxed(),
            Handle::Ready => prop_oneof![
                6 => Just(Op::Send(state.next_message)),
                1 => expiry().prop_map(|expires_in| Op::Reauthenticate { expires_in }),
                1 => Just(Op::ReauthenticationFailed),
                6 => common,
            ]
            .boxed(),
            Handle::Closing => common,
        }
    }

    fn preconditions(state: &ModelState, op: &Op) -> bool {
        match op {
            Op::Accept => state.handle == Handle::Connecting,
            Op::Authenticate { .. } | Op::Reject => state.handle == Handle::Accepted,
            Op::Ready => state.handle == Handle::Authenticated,
            Op::Send(n) => state.handle == Handle::Ready && *n >= state.next_message,
            Op::Reauthenticate { .. } => {
                matches!(state.handle, Handle::Authenticated | Handle::Ready)
            }
            Op::ReauthenticationFailed => state.handle == Handle::Ready,
            _ => true,
        }
    }

    fn apply(mut s: ModelState, op: &Op) -> ModelState {
        let now = at(s.now_ms);
        s.expect = match op {
            Op::Accept => s.typed(Input::Accept, Handle::Accepted, now),
            Op::Authenticate { expires_in } => s.typed(
                Input::AuthSucceeded {
                    expires_at: expires_in.map(|ms| at(s.now_ms + ms)),
                },
                Handle::Authenticated,
                now,
            ),
            Op::Ready => s.typed(Input::ServicesReady, Handle::Ready, now),
            Op::Reject | Op::ReauthenticationFailed => {
                s.lifecycle.apply(&Input::AuthFailed, now);
                s.handle = Handle::Closing;
                Expect::Done
            }
            Op::Reauthenticate { expires_in } => Expect::Step(s.lifecycle.apply(
                &Input::AuthSucceeded {
                    expires_at: expires_in.map(|ms| at(s.now_ms + ms)),
                },
                now,
            )),
            Op::Send(n) => {
                s.next_message = n + 1;
                if !s.lifecycle.send_permitted() {
                    Expect::Send(Err(SendErrorKind::Closed))
                } else if s.outbox.len() >= s.capacity
                    || !s.outbox.is_empty()
                        && s.outbox.iter().map(|&m| message(m).len()).sum::<usize>()
                            + message(*n).len()
                            > s.budget
                {
                    Expect::Send(Err(SendErrorKind::Full))
                } else {
                    s.outbox.push_back(*n);
                    Expect::Send(Ok(()))
                }
            }
            Op::Close(code) => {
                if s.handle != Handle::Closing {
                    s.lifecycle.apply(&Input::Close(close_frame(*code)), now);
                    s.handle = Handle::Closing;
                }
                Expect::Done
            }
            Op::PeerClose(code) => Expect::Step(
                s.lifecycle
                    .apply(&Input::PeerClose(code.map(close_frame)), now),
            ),
            Op::TransportLost(loss) => {
                Expect::Step(s.lifecycle.apply(&Input::TransportLost(*loss), now))
            }
            Op::PollTransmit => Expect::Transmit(if s.lifecycle.phase() == Phase::Closed {
                None
            } else if let Some(n) = s
                .outbox
                .front()
                .copied()
                .filter(|_| s.lifecycle.messages_may_flow())
            {
                s.outbox.pop_front();
                Some(ExpectedFrame::Message(n))
            } else {
                s.lifecycle.poll_close(now).map(ExpectedFrame::Close)
            }),
            Op::AdvanceTime(ms) => {
                s.now_ms += ms;
                Expect::Timer(s.lifecycle.handle_timeout(at(s.now_ms)))
            }
            Op::Sleep(ms) => {
                s.now_ms += ms;
                Expect::Done
            }
            Op::TakeUnsent => Expect::Unsent(if s.lifecycle.unsent_are_returned() {
                s.outbox.drain(..).collect()
            } else {
                Vec::new()
            }),
        };
        s
    }
}

impl ModelState {
    /// A typed transition to `next`: it succeeds when the machine reaches `next`'s
    /// phase; otherwise the connection is gone and the owner holds `Closing`.
    fn typed(&mut self, input: Input, next: Handle, now: Instant) -> Expect {
        let target = match next {
            Handle::Accepted => MachineState::Accepted,
            Handle::Authenticated => MachineState::Authenticated,
            Handle::Ready => MachineState::Ready,
            Handle::Connecting | Handle::Closing => unreachable!(),
        };
        let ok = self.lifecycle.apply(&input, now) == Expected::Transition(target);
        self.handle = if ok { next } else { Handle::Closing };
        Expect::Typed(ok)
    }
}

// ── the concrete side ───────────────────────────────────────────────────────────

/// Where a message handed to `send` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Accepted by `send`, not yet yielded.
    Queued,
    /// Yielded by `poll_transmit` as `Frame::Message`.
    Yielded,
    /// Handed back, inside `SendError` or by `take_unsent`.
    Returned,
}

struct Sut {
    conn: Option<AnyConnection>,
    now_ms: u64,
    /// Every message ever handed to `send`, by number.
    ledger: BTreeMap<u32, Fate>,
    accepted: bool,
    reached_ready: bool,
    close_frames: usize,
}

impl Sut {
    fn conn(&self) -> &AnyConnection {
        self.conn.as_ref().expect("a connection")
    }

    fn conn_mut(&mut self) -> &mut AnyConnection {
        self.conn.as_mut().expect("a connection")
    }

    fn queued(&self) -> Vec<u32> {
        self.ledger
            .iter()
            .filter(|(_, fate)| **fate == Fate::Queued)
            .map(|(n, _)| *n)
            .collect()
    }

    /// Records one frame from `poll_transmit` in the ledger and checks G1-G4.
    /// `record`: the close record after the frame was yielded.
    fn account_frame(&mut self, frame: &Frame, record: Option<&CloseRecord>) {
        assert_eq!(
            self.close_frames, 0,
            "G3/G4: a frame after our Close: {frame:?}"
        );
        match frame {
            Frame::Message(m) => {
                assert!(self.reached_ready, "G2: a message before Ready: {m:?}");
                if let Some(r) = record {
                    assert!(
                        r.cause == CloseCause::Local && !r.peer_closed,
                        "G3: a message written during a close that skips the outbox \
                         (the peer's, or one the crate forced): {m:?}, {r:?}"
                    );
                }
                let n = message_id(m);
                let oldest = self.queued().first().copied();
                assert_eq!(
                    Some(n),
                    oldest,
                    "messages are yielded once, in the order they were sent"
                );
                self.ledger.insert(n, Fate::Yielded);
            }
            Frame::Close(_) => {
                assert!(
                    self.accepted,
                    "G1: a Close before the handshake was accepted"
                );
                let record = record.expect("G4: a Close frame without a close record");
                if !self.queued().is_empty() {
                    // They will never be written (nothing follows our Close); the
                    // teardown checks that take_unsent hands them back.
                    assert!(
                        record.cause != CloseCause::Local || record.peer_closed,
                        "G3: our Close overtook messages queued before a local close: \
                         {:?}",
                        self.queued()
                    );
                }
                self.close_frames += 1;
            }
        }
    }

    /// `poll_transmit`, accounted.
    fn poll_transmit(&mut self, now: Instant) -> Option<Frame> {
        let frame = self.conn_mut().poll_transmit(now);
        if let Some(frame) = &frame {
            let record = self.conn().close_record();
            self.account_frame(frame, record.as_ref());
        }
        frame
    }

    fn account_returned(&mut self, n: u32, how: &str) {
        let previous = self.ledger.insert(n, Fate::Returned);
        assert!(
            matches!(previous, Some(Fate::Queued)),
            "message {n} returned by {how} but it was {previous:?}"
        );
    }

    fn take_unsent(&mut self) -> Vec<Message> {
        each!(self.conn_mut(), c => c.take_unsent())
    }

    /// A typed transition: `f` consumes the handle and returns the next one.
    fn typed(&mut self, f: impl FnOnce(AnyConnection) -> AnyConnection) -> Handle {
        let next = f(self.conn.take().expect("a connection"));
        let handle = handle_of(&next);
        self.conn = Some(next);
        handle
    }
}

/// The handle after a typed transition: the next one, or the closing one from `Gone`.
fn next_handle<S: ws_lifecycle::handle::TypeState>(
    result: Result<Connection<S>, ws_lifecycle::Gone>,
) -> AnyConnection
where
    AnyConnection: From<Connection<S>>,
{
    match result {
        Ok(c) => c.into_any(),
        Err(gone) => gone.connection.into_any(),
    }
}

impl StateMachineTest for Sut {
    type SystemUnderTest = Sut;
    type Reference = TypedModel;

    fn init_test(_: &ModelState) -> Sut {
        Sut {
            conn: Some(Connection::new(ConnectionId::new(1), config()).into_any()),
            now_ms: 0,
            ledger: BTreeMap::new(),
            accepted: false,
            reached_ready: false,
            close_frames: 0,
        }
    }

    fn apply(mut sut: Sut, model: &ModelState, op: Op) -> Sut {
        let now = at(sut.now_ms);
        match (op, &model.expect) {
            (Op::Accept, Expect::Typed(ok)) => {
                let handle = sut.typed(|any| match any {
                    AnyConnection::Connecting(c) => next_handle(c.accept(now)),
                    other => panic!("accept on {other:?}"),
                });
                assert_eq!(handle == Handle::Accepted, *ok, "accept");
                sut.accepted |= handle == Handle::Accepted;
            }
            (Op::Authenticate { expires_in }, Expect::Typed(ok)) => {
                let expires_at = expires_in.map(|ms| at(sut.now_ms + ms));
                let handle = sut.typed(|any| match any {
                    AnyConnection::Accepted(c) => next_handle(c.authenticate(expires_at, now)),
                    other => panic!("authenticate on {other:?}"),
                });
                assert_eq!(handle == Handle::Authenticated, *ok, "authenticate");
            }
            (Op::Ready, Expect::Typed(ok)) => {
                let handle = sut.typed(|any| match any {
                    AnyConnection::Authenticated(c) => next_handle(c.ready(now)),
                    other => panic!("ready on {other:?}"),
                });
                assert_eq!(handle == Handle::Ready, *ok, "ready");
                sut.reached_ready |= handle == Handle::Ready;
            }
            (Op::Reject, Expect::Done) => {
                sut.typed(|any| match any {
                    AnyConnection::Accepted(c) => c.reject(now).into_any(),
                    other => panic!("reject on {other:?}"),
                });
            }
            (Op::Reauthenticate { expires_in }, Expect::Step(expected)) => {
                let expires_at = expires_in.map(|ms| at(sut.now_ms + ms));
                let result = match sut.conn_mut() {
                    AnyConnection::Authenticated(c) => c.reauthenticate(expires_at, now),
                    AnyConnection::Ready(c) => c.reauthenticate(expires_at, now),
                    other => panic!("reauthenticate on {other:?}"),
                };
                let actual = match result {
                    Ok(()) => Expected::Unchanged,
                    Err(rejected) => Expected::Rejected {
                        state: rejected.state,
                        reason: rejected.reason,
                    },
                };
                assert_eq!(actual, *expected, "reauthenticate");
            }
            (Op::ReauthenticationFailed, Expect::Done) => {
                sut.typed(|any| match any {
                    AnyConnection::Ready(c) => c.reauthentication_failed(now).into_any(),
                    other => panic!("reauthentication_failed on {other:?}"),
                });
            }
            (Op::Sleep(ms), Expect::Done) => {
                sut.now_ms += ms;
            }
            (Op::Send(n), Expect::Send(expected)) => {
                let AnyConnection::Ready(c) = sut.conn_mut() else {
                    panic!("send on {:?}", sut.conn());
                };
                let result = c.send(message(n));
                assert!(
                    !sut.ledger.contains_key(&n),
                    "message {n} handed to send twice"
                );
                match result {
                    Ok(()) => {
                        assert_eq!(Ok(()), *expected, "send {n}");
                        sut.ledger.insert(n, Fate::Queued);
                    }
                    Err(error) => {
                        assert_eq!(Err(error.kind), *expected, "send {n}");
                        assert_eq!(error.message, message(n), "G3: the message comes back");
                        sut.ledger.insert(n, Fate::Returned);
                    }
                }
            }
            (Op::Close(code), Expect::Done) => {
                let frame = close_frame(code);
                sut.typed(|any| any.close(frame, now).into_any());
            }
            (Op::PeerClose(code), Expect::Step(expected)) => {
                let result = sut.conn_mut().handle_peer_close(code.map(close_frame), now);
                assert_eq!(
                    Expected::of(&result),
                    *expected,
                    "handle_peer_close: {result:?}"
                );
            }
            (Op::TransportLost(loss), Expect::Step(expected)) => {
                let result = sut.conn_mut().handle_transport_lost(loss, now);
                assert_eq!(
                    Expected::of(&result),
                    *expected,
                    "handle_transport_lost: {result:?}"
                );
            }
            (Op::PollTransmit, Expect::Transmit(expected)) => {
                let frame = sut.poll_transmit(now);
                let agree = match (expected, &frame) {
                    (None, None) => true,
                    (Some(ExpectedFrame::Message(n)), Some(Frame::Message(m))) => *m == message(*n),
                    (Some(ExpectedFrame::Close(ours)), Some(Frame::Close(actual))) => {
                        frame_matches(ours.as_ref(), actual.as_ref())
                    }
                    _ => false,
                };
                assert!(agree, "poll_transmit: expected {expected:?}, got {frame:?}");
            }
            (Op::AdvanceTime(ms), Expect::Timer(expected)) => {
                sut.now_ms += ms;
                let later = at(sut.now_ms);
                let step = sut.conn_mut().handle_timeout(later);
                let actual = step.map(|step| Expected::of(&Ok(step)));
                assert_eq!(actual, *expected, "handle_timeout at {} ms", sut.now_ms);
            }
            (Op::TakeUnsent, Expect::Unsent(expected)) => {
                let unsent: Vec<u32> = sut.take_unsent().iter().map(message_id).collect();
                for n in &unsent {
                    sut.account_returned(*n, "take_unsent");
                }
                assert_eq!(unsent, *expected, "take_unsent");
                let conn = sut.conn();
                let flushing = conn.close_record().is_some_and(|r| {
                    r.cause == CloseCause::Local && conn.state() == MachineState::SendingClose
                });
                if conn.phase().is_closing_or_closed() && !flushing {
                    assert_eq!(
                        sut.queued(),
                        Vec::<u32>::new(),
                        "G3: once queued messages can no longer be written, take_unsent \
                         returns every one of them"
                    );
                }
            }
            (op, expect) => panic!("the model expected {expect:?} for {op:?}"),
        }
        sut
    }

    fn check_invariants(sut: &Sut, model: &ModelState) {
        let conn = sut.conn();
        assert_eq!(handle_of(conn), model.handle, "the typed handle");
        assert_eq!(conn.state(), model.lifecycle.state(), "state");
        assert_eq!(conn.phase(), model.lifecycle.phase(), "phase");
        assert_eq!(
            conn.check_send().is_ok(),
            model.lifecycle.send_permitted(),
            "G1/G2/G3: the send gate"
        );
        if let Err(problem) = model.lifecycle.check_record(conn.close_record().as_ref()) {
            panic!("close record: {problem}");
        }
        assert_eq!(
            conn.poll_timeout(),
            model.lifecycle.next_deadline(),
            "poll_timeout"
        );
        assert_eq!(sut.queued(), Vec::from(model.outbox.clone()), "the outbox");
        assert!(sut.close_frames <= 1, "G4: one Close frame");
    }

    /// Drains the connection and checks that every message was accounted for once.
    fn teardown(mut sut: Sut, _: ModelState) {
        let now = at(sut.now_ms);
        // Bounded: at most the outbox plus our Close.
        for _ in 0..=config().outbox_capacity + 1 {
            if sut.poll_transmit(now).is_none() {
                break;
            }
        }
        assert_eq!(
            sut.conn_mut().poll_transmit(now),
            None,
            "G3: nothing after Close"
        );
        let _ = sut
            .conn_mut()
            .handle_transport_lost(TransportLoss::Error, now);
        assert_eq!(sut.conn().phase(), Phase::Closed);
        for m in sut.take_unsent() {
            sut.account_returned(message_id(&m), "take_unsent");
        }
        let stranded = sut.queued();
        assert!(
            stranded.is_empty(),
            "G3: messages neither yielded nor returned: {stranded:?}"
        );
        assert!(sut.close_frames <= 1, "G4: one Close frame");
    }
}

// proptest's default configuration runs 256 cases and honours `PROPTEST_CASES`.
prop_state_machine! {
    /// Random sequences (1..=64 operations) on the typed API, checked step by step
    /// against the reference model (outcome, type state, machine state, phase, send
    /// gate, close record, next deadline, outbox) and with message accounting:
    ///
    /// - **G1**: nothing is yielded before the handshake is accepted;
    /// - **G2**: no message is yielded before `Ready`; only a Close may be;
    /// - **G3**: every message handed to `send` is yielded before our Close, handed
    ///   back in `SendError`, or returned by `take_unsent` — exactly one of these, in
    ///   order, never dropped — and no frame follows our Close; messages are written
    ///   only while `Ready` or while a local close flushes them, never after the peer's
    ///   Close or in a close the crate forced;
    /// - **G4**: at most one Close frame, carrying the first close's frame; the
    ///   record's reported code (RFC 6455 §7.1.5);
    /// - **G5**: deadlines fire through `handle_timeout` as the virtual clock advances,
    ///   or, when the driver slept through them, before the next input (a success
    ///   after its deadline is `Gone`).
    #[test]
    fn typed_api_upholds_g1_g2_g3_g4_g5_against_reference(sequential 1..=64 => Sut);
}
