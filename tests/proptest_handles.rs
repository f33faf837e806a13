//! Model-based property test of the shared-state handles, with the issuing handle
//! encoded in each operation (`SendFrom(k, n)`: sender clone `k` sends `n` messages;
//! `EmitFrom(k, n)`; `CloseFrom(k, code)`; ...), checked step by step against a small
//! reference model of the shared state (phase, outbox, pre-ready buffer, close
//! record, deadlines), and with message accounting at the end:
//!
//! - **G2**: no message frame before `Ready`; events emitted before `Ready` are
//!   delivered exactly once, in emission order, before every message sent (or
//!   emitted) after `Ready`;
//! - **G3**: delivered (yielded as `Frame::Message` before our Close) + returned (in a
//!   `SendError`, or by `take_unsent`) = sent/emitted, with no duplicates, per-sender
//!   and per-emitter order kept, and no frame after our Close;
//! - **G4**: at most one Close frame; the first close's frame wins; every closer sees
//!   the same record;
//! - **G5**: the readiness and close-handshake deadlines fire through
//!   `Transport::handle_timeout` as virtual time advances.
//!
//! 256 cases by default; `PROPTEST_CASES` overrides.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::Union;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use ws_lifecycle::core::{OverflowPolicy, SendErrorKind, TransportLoss};
use ws_lifecycle::handle::AnyConnection;
use ws_lifecycle::{
    CloseCode, CloseFrame, Config, Connection, ConnectionId, Emitter, Frame, Message, Phase,
    Sender, Transport,
};

// ── setup ───────────────────────────────────────────────────────────────────

const READINESS_MS: u64 = 200;
const CLOSE_MS: u64 = 400;

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn at(ms: u64) -> Instant {
    base() + Duration::from_millis(ms)
}

fn frame(code: u16) -> CloseFrame {
    CloseFrame::new(CloseCode::from_wire(code).unwrap(), "").unwrap()
}

/// A frame the crate writes itself.
fn crate_frame(code: u16, reason: &'static str) -> CloseFrame {
    CloseFrame::new(CloseCode::from_wire(code).unwrap(), reason).unwrap()
}

/// Where a message came from: sender clone `k` or emitter `k`, its `seq`-th message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Msg {
    emitter: bool,
    k: u8,
    seq: u32,
}

impl Msg {
    fn message(self) -> Message {
        let src = if self.emitter { 'E' } else { 'S' };
        Message::text(format!("{src}{}#{}", self.k, self.seq))
    }

    fn parse(message: &Message) -> Msg {
        let text = message.as_text().expect("a text message");
        let (src, seq) = text.split_once('#').expect("SRC#SEQ");
        Msg {
            emitter: src.starts_with('E'),
            k: src[1..].parse().unwrap(),
            seq: seq.parse().unwrap(),
        }
    }
}

/// What the owner of the type-state handle holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Connecting,
    Accepted,
    Authenticated,
    Ready,
    Closing,
}

fn owner_of(any: &AnyConnection) -> Owner {
    match any {
        AnyConnection::Connecting(_) => Owner::Connecting,
        AnyConnection::Accepted(_) => Owner::Accepted,
        AnyConnection::Authenticated(_) => Owner::Authenticated,
        AnyConnection::Ready(_) => Owner::Ready,
        AnyConnection::Closing(_) => Owner::Closing,
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Owner: `Connection<Connecting>::accept`; emitters 0 and 1 are taken here.
    Accept,
    /// Owner: `authenticate`; emitter 2 is taken here.
    Authenticate,
    /// Owner: `ready`; sender clones 0..3 are taken here.
    Ready,
    /// Sender clone `k` sends `n` numbered messages.
    SendFrom(usize, u32),
    /// Emitter `k` emits `n` numbered events.
    EmitFrom(usize, u32),
    /// Close with `code`: `k < 3` sender clone `k` (the transport before `Ready`),
    /// `k == 3` the owner's typed handle (the transport once it is closing).
    CloseFrom(usize, u16),
    /// The peer's Close (with that code, or none).
    PeerClose(Option<u16>),
    TransportLost,
    /// `Transport::next_frame`.
    PollTransmit,
    /// `Transport::take_unsent`.
    TakeUnsent,
    /// Virtual time moves on; `Transport::handle_timeout`.
    AdvanceTime(u64),
}

// ── the reference model ─────────────────────────────────────────────────────

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Connecting,
    Accepted,
    Authenticated,
    Ready,
    SendingClose,
    AwaitingPeer,
    ReplyingClose,
    Closed,
}

impl St {
    fn phase(self) -> Phase {
        match self {
            St::Connecting => Phase::Connecting,
            St::Accepted => Phase::Accepted,
            St::Authenticated => Phase::Authenticated,
            St::Ready => Phase::Ready,
            St::SendingClose | St::AwaitingPeer | St::ReplyingClose => Phase::Closing,
            St::Closed => Phase::Closed,
        }
    }

    fn open(self) -> bool {
        matches!(self, St::Accepted | St::Authenticated | St::Ready)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ExpFrame {
    Message(Msg),
    Close(Option<CloseFrame>),
}

/// What the last operation must produce.
#[derive(Debug, Clone)]
enum Expect {
    Nothing,
    /// A typed transition: `true` = the next handle, `false` = `Gone`.
    Typed(bool),
    /// One outcome per message of a burst.
    Sends(Vec<(Msg, Result<(), SendErrorKind>)>),
    /// The record's frame after the close (`None`: no record).
    Closed(Option<Option<CloseFrame>>),
    /// `handle_peer_close` accepted or rejected.
    PeerClose(bool),
    Frame(Option<ExpFrame>),
    Unsent(Vec<Msg>),
    /// `handle_timeout` fired a deadline.
    Timeout(bool),
}

#[derive(Debug, Clone)]
struct Model {
    outbox_capacity: usize,
    /// The byte budget: a message fits an empty outbox, or within it with the queued
    /// bytes.
    outbox_bytes: usize,
    pending_capacity: usize,
    slow_consumer: bool,

    owner: Owner,
    emitters: usize,
    senders: bool,
    /// Next sequence number per (emitter?, k).
    seqs: BTreeMap<(bool, u8), u32>,

    st: St,
    /// The first close was the application's (queued messages are flushed).
    local: bool,
    /// The close record's frame (`None`: no record yet).
    record: Option<Option<CloseFrame>>,
    outbox: VecDeque<Msg>,
    pending: VecDeque<Msg>,
    now: u64,
    /// A slow-consumer close requested by a send (which carries no time), applied by
    /// the next operation that does.
    deferred: Option<CloseFrame>,
    readiness_at: Option<u64>,
    close_at: Option<u64>,

    expect: Expect,
}

impl Model {
    fn next_msg(&mut self, emitter: bool, k: usize) -> Msg {
        let seq = self.seqs.entry((emitter, k as u8)).or_insert(0);
        *seq += 1;
        Msg {
            emitter,
            k: k as u8,
            seq: *seq,
        }
    }

    /// Every operation that carries the time applies a deferred slow-consumer close
    /// first, as an ordinary close at that time.
    fn apply_deferred(&mut self, now: u64) {
        if let Some(frame) = self.deferred.take() {
            self.close(frame, now);
        }
    }

    fn disarm(&mut self) {
        self.readiness_at = None;
        self.close_at = None;
    }

    fn may_write(&self) -> bool {
        self.st == St::Ready || (self.st == St::SendingClose && self.local)
    }

    fn start_close(&mut self, frame: Option<CloseFrame>, local: bool, now: u64) {
        debug_assert!(self.st.open());
        if self.record.is_none() {
            self.record = Some(frame);
            self.local = local;
        }
        self.st = St::SendingClose;
        self.readiness_at = None;
        self.close_at = Some(now + CLOSE_MS);
    }

    /// `handle_timeout(now)`: the earliest due deadline fires (ties: close first).
    fn fire_due(&mut self, now: u64) -> bool {
        let close = self.close_at.filter(|&t| t <= now);
        let ready = self.readiness_at.filter(|&t| t <= now);
        match (close, ready) {
            (Some(c), r) if r.is_none_or(|r| c <= r) => {
                self.st = St::Closed;
                self.disarm();
                true
            }
            (_, Some(_)) => {
                self.start_close(
                    Some(crate_frame(1008, "not ready before the deadline")),
                    false,
                    now,
                );
                true
            }
            _ => false,
        }
    }

    /// Before any non-timer input: every due deadline fires (time is authoritative).
    fn before_input(&mut self, now: u64) {
        while self.fire_due(now) {}
    }

    fn close(&mut self, frame: CloseFrame, now: u64) {
        self.before_input(now);
        match self.st {
            St::Connecting => {
                self.record = Some(Some(frame));
                self.local = false;
                self.st = St::Closed;
                self.disarm();
            }
            st if st.open() => self.start_close(Some(frame), true, now),
            _ => {}
        }
    }

    fn peer_close(&mut self, theirs: Option<CloseFrame>, now: u64) -> bool {
        self.before_input(now);
        match self.st {
            St::Connecting => return false,
            st if st.open() => {
                self.record = Some(theirs.map(|f| CloseFrame::new(f.code(), "").unwrap()));
                self.local = false;
                self.st = St::ReplyingClose;
                self.readiness_at = None;
                self.close_at = Some(now + CLOSE_MS);
            }
            St::SendingClose => self.st = St::ReplyingClose,
            St::AwaitingPeer => {
                self.st = St::Closed;
                self.disarm();
            }
            _ => {}
        }
        true
    }

    fn transport_lost(&mut self, now: u64) {
        self.before_input(now);
        if self.st != St::Closed {
            if self.record.is_none() {
                self.record = Some(None);
                self.local = false;
            }
            self.st = St::Closed;
            self.disarm();
        }
    }

    fn send(&mut self, msg: Msg) -> Result<(), SendErrorKind> {
        if self.st != St::Ready || self.deferred.is_some() {
            return Err(SendErrorKind::Closed);
        }
        let queued: usize = self.outbox.iter().map(|m| m.message().len()).sum();
        let over_budget =
            !self.outbox.is_empty() && queued + msg.message().len() > self.outbox_bytes;
        if self.outbox.len() >= self.outbox_capacity || over_budget {
            if self.slow_consumer {
                self.deferred = Some(crate_frame(1013, "slow consumer"));
                return Err(SendErrorKind::Closed);
            }
            return Err(SendErrorKind::Full);
        }
        self.outbox.push_back(msg);
        Ok(())
    }

    fn emit(&mut self, msg: Msg) -> Result<(), SendErrorKind> {
        match self.st {
            St::Ready => self.send(msg),
            St::Accepted | St::Authenticated => {
                if self.pending.len() >= self.pending_capacity {
                    Err(SendErrorKind::Full)
                } else {
                    self.pending.push_back(msg);
                    Ok(())
                }
            }
            _ => Err(SendErrorKind::Closed),
        }
    }

    fn next_frame(&mut self) -> Option<ExpFrame> {
        if self.may_write() {
            if let Some(msg) = self.outbox.pop_front() {
                return Some(ExpFrame::Message(msg));
            }
        }
        let close = || ExpFrame::Close(self.record.clone().flatten());
        match self.st {
            St::SendingClose => {
                let f = close();
                self.st = St::AwaitingPeer;
                Some(f)
            }
            St::ReplyingClose => {
                let f = close();
                self.st = St::Closed;
                self.disarm();
                Some(f)
            }
            _ => None,
        }
    }

    fn take_unsent(&mut self) -> Vec<Msg> {
        let mut unsent = Vec::new();
        if matches!(self.st.phase(), Phase::Closing | Phase::Closed) {
            unsent.extend(self.pending.drain(..));
            if !self.may_write() {
                unsent.extend(self.outbox.drain(..));
            }
        }
        unsent
    }

    fn deadline(&self) -> Option<u64> {
        [self.readiness_at, self.close_at]
            .into_iter()
            .flatten()
            .min()
    }
}

struct HandlesModel;

impl ReferenceStateMachine for HandlesModel {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        // The byte budget: the default (1 MiB, never met here), or a few messages'
        // worth (each is 4 or 5 bytes), met before or after the count bound.
        let budget = prop_oneof![Just(1usize << 20), 1usize..=24];
        (1usize..=6, 1usize..=6, any::<bool>(), budget)
            .prop_map(
                |(outbox_capacity, pending_capacity, slow_consumer, outbox_bytes)| Model {
                    outbox_capacity,
                    outbox_bytes,
                    // `Config` is normalized: the pre-ready buffer fits in the outbox.
                    pending_capacity: pending_capacity.clamp(1, outbox_capacity.max(1)),
                    slow_consumer,
                    owner: Owner::Connecting,
                    emitters: 0,
                    senders: false,
                    seqs: BTreeMap::new(),
                    st: St::Connecting,
                    local: false,
                    record: None,
                    outbox: VecDeque::new(),
                    pending: VecDeque::new(),
                    now: 0,
                    deferred: None,
                    readiness_at: None,
                    close_at: None,
                    expect: Expect::Nothing,
                },
            )
            .boxed()
    }

    fn transitions(s: &Model) -> BoxedStrategy<Op> {
        // Weights by phase: before Ready mostly the next lifecycle step (so that most
        // cases reach Ready), while open mostly sends and frames, once closing a mix
        // of late sends, frames, deadlines and further closes.
        let ending = matches!(s.st.phase(), Phase::Closing | Phase::Closed);
        let (close, peer, lost, poll, take, time, send, emit) = match s.st {
            St::Connecting | St::Accepted | St::Authenticated => (1, 1, 1, 2, 1, 2, 0, 5),
            St::Ready => (2, 1, 1, 14, 1, 2, 8, 3),
            _ => (2, 2, 1, 8, 3, 3, 1, 1),
        };
        let mut ops: Vec<(u32, BoxedStrategy<Op>)> = vec![
            (
                close,
                (0usize..4, 4000u16..4004)
                    .prop_map(|(k, code)| Op::CloseFrom(k, code))
                    .boxed(),
            ),
            (
                peer,
                prop::option::of(prop::sample::select(vec![1000u16, 1001, 4000, 4001]))
                    .prop_map(Op::PeerClose)
                    .boxed(),
            ),
            (lost, Just(Op::TransportLost).boxed()),
            (poll, Just(Op::PollTransmit).boxed()),
            (take, Just(Op::TakeUnsent).boxed()),
            (time, (0u64..=300).prop_map(Op::AdvanceTime).boxed()),
        ];
        let step = if ending { 1 } else { 12 };
        match s.owner {
            Owner::Connecting => ops.push((step, Just(Op::Accept).boxed())),
            Owner::Accepted => ops.push((step, Just(Op::Authenticate).boxed())),
            Owner::Authenticated => ops.push((step, Just(Op::Ready).boxed())),
            Owner::Ready | Owner::Closing => {}
        }
        if s.senders && send > 0 {
            ops.push((
                send,
                (0usize..3, 1u32..=3)
                    .prop_map(|(k, n)| Op::SendFrom(k, n))
                    .boxed(),
            ));
        }
        if s.emitters > 0 && emit > 0 {
            ops.push((
                emit,
                (0..s.emitters, 1u32..=3)
                    .prop_map(|(k, n)| Op::EmitFrom(k, n))
                    .boxed(),
            ));
        }
        Union::new_weighted(ops).boxed()
    }

    fn preconditions(s: &Model, op: &Op) -> bool {
        match op {
            Op::Accept => s.owner == Owner::Connecting,
            Op::Authenticate => s.owner == Owner::Accepted,
            Op::Ready => s.owner == Owner::Authenticated,
            Op::SendFrom(..) => s.senders,
            Op::EmitFrom(k, _) => *k < s.emitters,
            _ => true,
        }
    }

    fn apply(mut s: Model, op: &Op) -> Model {
        let now = s.now;
        if !matches!(
            op,
            Op::SendFrom(..) | Op::EmitFrom(..) | Op::TakeUnsent | Op::AdvanceTime(_)
        ) {
            s.apply_deferred(now);
        }
        s.expect = match *op {
            Op::Accept => {
                s.before_input(now);
                let ok = s.st == St::Connecting;
                if ok {
                    s.st = St::Accepted;
                    s.readiness_at = Some(now + READINESS_MS);
                    s.owner = Owner::Accepted;
                    s.emitters = 2;
                } else {
                    s.owner = Owner::Closing;
                }
                Expect::Typed(ok)
            }
            Op::Authenticate => {
                s.before_input(now);
                let ok = s.st == St::Accepted;
                if ok {
                    s.st = St::Authenticated;
                    s.owner = Owner::Authenticated;
                    s.emitters = 3;
                } else {
                    s.owner = Owner::Closing;
                }
                Expect::Typed(ok)
            }
            Op::Ready => {
                s.before_input(now);
                let ok = s.st == St::Authenticated;
                if ok {
                    s.st = St::Ready;
                    s.readiness_at = None;
                    let pending: Vec<_> = s.pending.drain(..).collect();
                    s.outbox.extend(pending);
                    s.owner = Owner::Ready;
                    s.senders = true;
                } else {
                    s.owner = Owner::Closing;
                }
                Expect::Typed(ok)
            }
            Op::SendFrom(k, n) => Expect::Sends(
                (0..n)
                    .map(|_| {
                        let msg = s.next_msg(false, k);
                        (msg, s.send(msg))
                    })
                    .collect(),
            ),
            Op::EmitFrom(k, n) => Expect::Sends(
                (0..n)
                    .map(|_| {
                        let msg = s.next_msg(true, k);
                        (msg, s.emit(msg))
                    })
                    .collect(),
            ),
            Op::CloseFrom(k, code) => {
                if k == 3 && s.owner != Owner::Closing {
                    s.owner = Owner::Closing;
                }
                s.close(frame(code), now);
                Expect::Closed(s.record.clone())
            }
            Op::PeerClose(code) => Expect::PeerClose(s.peer_close(code.map(frame), now)),
            Op::TransportLost => {
                s.transport_lost(now);
                Expect::Nothing
            }
            Op::PollTransmit => Expect::Frame(s.next_frame()),
            Op::TakeUnsent => Expect::Unsent(s.take_unsent()),
            Op::AdvanceTime(ms) => {
                s.now += ms;
                let now = s.now;
                s.apply_deferred(now);
                Expect::Timeout(s.fire_due(now))
            }
        };
        s
    }
}

// ── the system under test ───────────────────────────────────────────────────

struct Sut {
    owner: Option<AnyConnection>,
    transport: Transport,
    emitters: Vec<Emitter>,
    senders: Vec<Sender>,
    /// Every message handed to `send`/`emit`, in order.
    attempted: Vec<Msg>,
    /// Yielded as `Frame::Message`, in order.
    delivered: Vec<Msg>,
    /// Handed back in a `SendError` or by `take_unsent`.
    returned: Vec<Msg>,
    /// Events accepted while the connection was not ready yet (buffered).
    buffered: BTreeSet<Msg>,
    /// Messages and events accepted while the connection was ready.
    after_ready: BTreeSet<Msg>,
    ready_reached: bool,
    close_frames: usize,
}

impl Sut {
    fn take_owner(&mut self) -> AnyConnection {
        self.owner.take().expect("the owner's handle")
    }

    fn record_frame(&mut self, frame: Option<Frame>) -> Option<ExpFrame> {
        let frame = frame?;
        assert_eq!(
            self.close_frames, 0,
            "G3: a frame after our Close: {frame:?}"
        );
        Some(match frame {
            Frame::Message(m) => {
                assert!(self.ready_reached, "G2: a message before Ready: {m:?}");
                let msg = Msg::parse(&m);
                self.delivered.push(msg);
                ExpFrame::Message(msg)
            }
            Frame::Close(f) => {
                self.close_frames += 1;
                ExpFrame::Close(f)
            }
        })
    }

    fn next_frame(&mut self, now: u64) -> Option<ExpFrame> {
        let frame = self.transport.next_frame(at(now));
        self.record_frame(frame)
    }

    fn take_unsent(&mut self) -> Vec<Msg> {
        let unsent: Vec<Msg> = self
            .transport
            .take_unsent()
            .iter()
            .map(Msg::parse)
            .collect();
        self.returned.extend(&unsent);
        unsent
    }
}

struct HandlesTest;

impl StateMachineTest for HandlesTest {
    type SystemUnderTest = Sut;
    type Reference = HandlesModel;

    fn init_test(model: &Model) -> Sut {
        let mut config = Config::default();
        config.readiness_timeout = Duration::from_millis(READINESS_MS);
        config.close_timeout = Duration::from_millis(CLOSE_MS);
        config.outbox_capacity = model.outbox_capacity;
        config.outbox_bytes = model.outbox_bytes;
        config.pending_capacity = model.pending_capacity;
        config.overflow = if model.slow_consumer {
            OverflowPolicy::slow_consumer()
        } else {
            OverflowPolicy::Reject
        };
        let conn = Connection::new(ConnectionId::new(7), config);
        Sut {
            transport: conn.transport(),
            owner: Some(conn.into_any()),
            emitters: Vec::new(),
            senders: Vec::new(),
            attempted: Vec::new(),
            delivered: Vec::new(),
            returned: Vec::new(),
            buffered: BTreeSet::new(),
            after_ready: BTreeSet::new(),
            ready_reached: false,
            close_frames: 0,
        }
    }

    fn apply(mut sut: Sut, model: &Model, op: Op) -> Sut {
        let now = model.now;
        let emitter = matches!(op, Op::EmitFrom(..));
        match (op, &model.expect) {
            (Op::Accept, Expect::Typed(ok)) => {
                let AnyConnection::Connecting(c) = sut.take_owner() else {
                    panic!("owner not Connecting")
                };
                match c.accept(at(now)) {
                    Ok(c) => {
                        assert!(ok, "accept succeeded, the model says Gone");
                        sut.emitters = vec![c.emitter(), c.emitter()];
                        sut.owner = Some(c.into_any());
                    }
                    Err(gone) => {
                        assert!(!ok, "accept Gone, the model says ok");
                        sut.owner = Some(gone.into_connection().into_any());
                    }
                }
            }
            (Op::Authenticate, Expect::Typed(ok)) => {
                let AnyConnection::Accepted(c) = sut.take_owner() else {
                    panic!("owner not Accepted")
                };
                match c.authenticate(None, at(now)) {
                    Ok(c) => {
                        assert!(ok, "authenticate succeeded, the model says Gone");
                        sut.emitters.push(c.emitter());
                        sut.owner = Some(c.into_any());
                    }
                    Err(gone) => {
                        assert!(!ok, "authenticate Gone, the model says ok");
                        sut.owner = Some(gone.into_connection().into_any());
                    }
                }
            }
            (Op::Ready, Expect::Typed(ok)) => {
                let AnyConnection::Authenticated(c) = sut.take_owner() else {
                    panic!("owner not Authenticated")
                };
                match c.ready(at(now)) {
                    Ok(c) => {
                        assert!(ok, "ready succeeded, the model says Gone");
                        sut.ready_reached = true;
                        let first = c.sender();
                        sut.senders = vec![first.clone(), first, c.sender()];
                        sut.owner = Some(c.into_any());
                    }
                    Err(gone) => {
                        assert!(!ok, "ready Gone, the model says ok");
                        sut.owner = Some(gone.into_connection().into_any());
                    }
                }
            }
            (Op::SendFrom(k, _) | Op::EmitFrom(k, _), Expect::Sends(outcomes)) => {
                for &(msg, expected) in outcomes {
                    assert_eq!((msg.emitter, msg.k as usize), (emitter, k));
                    let before = sut.transport.phase();
                    let result = if emitter {
                        sut.emitters[k].emit(msg.message())
                    } else {
                        sut.senders[k].send(msg.message())
                    };
                    sut.attempted.push(msg);
                    match result {
                        Ok(()) => {
                            assert_eq!(
                                expected,
                                Ok(()),
                                "{msg:?} was queued; the model expected otherwise"
                            );
                            if before == Phase::Ready {
                                sut.after_ready.insert(msg);
                            } else {
                                assert!(emitter && !before.is_closing_or_closed());
                                sut.buffered.insert(msg);
                            }
                        }
                        Err(e) => {
                            assert_eq!(Err(e.kind), expected, "{msg:?}");
                            assert_eq!(
                                Msg::parse(&e.message),
                                msg,
                                "G3: the message itself comes back"
                            );
                            sut.returned.push(msg);
                        }
                    }
                }
            }
            (Op::CloseFrom(k, code), Expect::Closed(record)) => {
                let f = frame(code);
                if k < 3 && !sut.senders.is_empty() {
                    let got = sut.senders[k].close_at(f, at(now));
                    assert_eq!(
                        &got.map(|r| r.frame),
                        record,
                        "G4: the closer sees the record of the first close"
                    );
                } else if k == 3 && !matches!(sut.owner, Some(AnyConnection::Closing(_))) {
                    let owner = sut.take_owner();
                    sut.owner = Some(owner.close(f, at(now)).into_any());
                } else {
                    sut.transport
                        .close(f, at(now))
                        .expect("a close is never rejected");
                }
            }
            (Op::PeerClose(code), Expect::PeerClose(ok)) => {
                let result = sut.transport.handle_peer_close(code.map(frame), at(now));
                assert_eq!(result.is_ok(), *ok, "{result:?}");
            }
            (Op::TransportLost, _) => {
                sut.transport
                    .handle_transport_lost(TransportLoss::Eof, at(now))
                    .expect("transport loss is never rejected");
            }
            (Op::PollTransmit, Expect::Frame(expected)) => {
                let got = sut.next_frame(now);
                assert_eq!(&got, expected, "G2/G3/G4: the next frame");
            }
            (Op::TakeUnsent, Expect::Unsent(expected)) => {
                let got = sut.take_unsent();
                assert_eq!(&got, expected, "G2/G3: take_unsent");
            }
            (Op::AdvanceTime(_), Expect::Timeout(fired)) => {
                let step = sut.transport.handle_timeout(at(now));
                assert_eq!(step.is_some(), *fired, "G5: deadline fired: {step:?}");
            }
            (op, expect) => panic!("model and op disagree: {op:?} / {expect:?}"),
        }
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        assert_eq!(sut.transport.phase(), model.st.phase(), "the phase");
        assert_eq!(
            sut.transport.close_record().map(|r| r.frame),
            model.record,
            "G4: the close record's frame"
        );
        assert_eq!(
            sut.transport.poll_timeout(),
            model.deadline().map(at),
            "G5: the next deadline"
        );
        assert_eq!(
            sut.owner.as_ref().map(owner_of),
            Some(model.owner),
            "the owner's type state"
        );
        assert!(sut.close_frames <= 1, "G4: one Close frame");
    }

    fn teardown(mut sut: Sut, model: Model) {
        // Drain everything: close if still open, write every frame, finish the close
        // handshake, take back what will never be written.
        let now = model.now;
        if !sut.transport.phase().is_closing_or_closed() {
            sut.transport.close(CloseFrame::normal(), at(now)).unwrap();
        }
        while sut.next_frame(now).is_some() {}
        if sut.transport.phase() == Phase::Closing {
            sut.transport.handle_peer_close(None, at(now)).unwrap();
        }
        assert_eq!(sut.transport.phase(), Phase::Closed);
        sut.take_unsent();
        assert_eq!(sut.next_frame(now), None, "G3: nothing after Close");
        assert_eq!(sut.take_unsent(), [], "handed back once");

        // Accounting (independent of the model): delivered + returned = attempted.
        let delivered: HashSet<_> = sut.delivered.iter().collect();
        let returned: HashSet<_> = sut.returned.iter().collect();
        assert_eq!(
            delivered.len(),
            sut.delivered.len(),
            "G2/G3: delivered twice"
        );
        assert_eq!(returned.len(), sut.returned.len(), "G3: returned twice");
        assert!(
            delivered.is_disjoint(&returned),
            "G3: delivered and returned: {:?}",
            delivered.intersection(&returned).collect::<Vec<_>>()
        );
        let mut accounted: Vec<Msg> = sut.delivered.iter().chain(&sut.returned).copied().collect();
        accounted.sort();
        let mut attempted = sut.attempted.clone();
        attempted.sort();
        assert_eq!(
            accounted, attempted,
            "G3: delivered + returned = sent/emitted"
        );

        // Per-sender and per-emitter order in the delivered sequence.
        let mut last: BTreeMap<(bool, u8), u32> = BTreeMap::new();
        for m in &sut.delivered {
            let prev = last.insert((m.emitter, m.k), m.seq);
            assert!(
                prev.is_none_or(|p| p < m.seq),
                "G2/G3: order of {:?} broken: {prev:?} then {}",
                (m.emitter, m.k),
                m.seq
            );
        }

        // G2: every buffered event before every message accepted after Ready.
        let last_buffered = sut.delivered.iter().rposition(|m| sut.buffered.contains(m));
        let first_after = sut
            .delivered
            .iter()
            .position(|m| sut.after_ready.contains(m));
        if let (Some(b), Some(a)) = (last_buffered, first_after) {
            assert!(
                b < a,
                "G2: a buffered event was delivered after a later send: {:?}",
                sut.delivered
            );
        }
        assert!(sut.close_frames <= 1, "G4: one Close frame");
    }
}

// proptest's default configuration runs 256 cases and honours `PROPTEST_CASES`.
prop_state_machine! {
    /// G2, G3, G4, G5 through the handles, the issuing handle encoded in each op,
    /// against the reference model, with message accounting at the end.
    #[test]
    fn handles_uphold_g2_g3_g4_against_model(sequential 1..=80 => HandlesTest);
}
