//! Model-based property test of the [`Registry`]: up to eight connections per case,
//! each opened, registered, advanced, identified, grouped, broadcast to, closed in
//! every way and drained, against an independent reference model (per connection its
//! lifecycle state, close record, deadlines, listing, hold, user, groups and queued
//! broadcasts; per registry its state, user index and totals), checked after every
//! operation:
//!
//! - **G7**: a connection is listed iff it was registered successfully and is not
//!   `Closed` — however it got there (local close and handshake, peer close, lost
//!   transport, dropped `Registration`, deadlines, drain) — and no index (`ids`,
//!   `contains`, `connections_of`, `members`, `user_of`, `observer`, `snapshot`)
//!   ever mentions an unlisted id; a broadcast queues its message for exactly the
//!   listed connections that are `Ready` (its `BroadcastReport` counts are exact), so
//!   a peer receives exactly the broadcasts sent while it was `Ready`, in order,
//!   before its Close and never after it;
//! - **G8**: the startup gate — `StartupPolicy::Hold` (held connections, the hold
//!   capacity, the hold deadline fired through `Transport::handle_timeout`, 1013 when
//!   made ready before `open`) or `StartupPolicy::Refuse` — the connection and
//!   per-user caps, and the drain (`shutdown` closes every listed open connection
//!   with 1001, `finish_drain` drops and unlists the rest), each refusal closing the
//!   connection with its documented code (1013, 1008, 1001).
//!
//! Virtual time moves either like a late driver (every connection's
//! `handle_timeout` at the new time) or like a punctual one (at each deadline on the
//! way). 256 cases by default; `PROPTEST_CASES` overrides.
//!
//! This test found that a held connection which had started closing kept reporting
//! its (past) hold deadline from `poll_timeout`, so a driver sleeping until it would
//! spin until the close timeout; and that a late driver passing both the hold and a
//! later readiness deadline saw the readiness close. Both are fixed: the hold deadline
//! applies only while the connection is open, and the hold's close happens at the
//! hold deadline itself.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::Union;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use ws_lifecycle::core::{CloseCause, OverflowPolicy, TransportLoss};
use ws_lifecycle::handle::AnyConnection;
use ws_lifecycle::registry::{BroadcastReport, RegistryError, RegistryState, StartupPolicy};
use ws_lifecycle::{
    CloseCode, CloseFrame, Config, Connection, ConnectionId, Frame, Message, Phase, Registration,
    Registry, RegistryConfig, Transport,
};

// ── setup ───────────────────────────────────────────────────────────────────

const READINESS_MS: u64 = 400;
const CLOSE_MS: u64 = 300;
/// Hold timeouts drawn per case; none equals `READINESS_MS` (no ties between the two
/// deadlines, which are armed in the same operation).
const HOLD_MS: [u64; 4] = [30, 120, 250, 600];
const MAX_CONNS: usize = 8;
const USERS: [&str; 3] = ["ada", "bob", "cy"];
const GROUPS: [&str; 2] = ["red", "blue"];

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn at(ms: u64) -> Instant {
    base() + Duration::from_millis(ms)
}

/// An instant as virtual milliseconds (for readable assertion messages).
fn ms_of(instant: Instant) -> u64 {
    u64::try_from((instant - base()).as_millis()).unwrap()
}

fn close_frame(code: u16, reason: &'static str) -> CloseFrame {
    CloseFrame::new(CloseCode::from_wire(code).unwrap(), reason).unwrap()
}

fn id_of(slot: usize) -> u64 {
    slot as u64 + 1
}

fn message(n: u32) -> Message {
    Message::text(format!("b{n}"))
}

fn parse(m: &Message) -> u32 {
    let text = m.as_text().expect("a text message");
    text.strip_prefix('b').expect("b<N>").parse().unwrap()
}

/// The documented close code of a refusal (G8).
fn documented_code(e: RegistryError) -> Option<u16> {
    match e {
        RegistryError::NotOpen | RegistryError::HoldFull | RegistryError::AtCapacity => Some(1013),
        RegistryError::UserLimit => Some(1008),
        RegistryError::ShuttingDown => Some(1001),
        _ => None,
    }
}

fn sut_cause(cause: CloseCause) -> &'static str {
    match cause {
        CloseCause::Local => "local",
        CloseCause::SlowConsumer => "slow_consumer",
        CloseCause::Peer => "peer",
        CloseCause::ReadinessDeadline => "readiness_deadline",
        CloseCause::TransportLost(TransportLoss::Dropped) => "dropped",
        CloseCause::TransportLost(_) => "transport_lost",
        CloseCause::NotAdmitted => "not_admitted",
        CloseCause::Shutdown => "shutdown",
        _ => "other",
    }
}

/// The per-case configuration.
#[derive(Debug, Clone)]
struct Setup {
    /// `Some((capacity, timeout_ms))`: `StartupPolicy::Hold`; `None`: `Refuse`.
    hold: Option<(usize, u64)>,
    max_connections: Option<usize>,
    max_per_user: Option<usize>,
    outbox_capacity: usize,
    slow_consumer: bool,
}

impl Setup {
    fn connection(&self) -> Config {
        let mut config = Config::default();
        config.readiness_timeout = Duration::from_millis(READINESS_MS);
        config.close_timeout = Duration::from_millis(CLOSE_MS);
        config.outbox_capacity = self.outbox_capacity;
        config.overflow = if self.slow_consumer {
            OverflowPolicy::slow_consumer()
        } else {
            OverflowPolicy::Reject
        };
        config
    }

    fn registry(&self) -> RegistryConfig {
        let mut config = RegistryConfig::default();
        config.startup = match self.hold {
            Some((capacity, timeout)) => StartupPolicy::Hold {
                capacity,
                timeout: Duration::from_millis(timeout),
            },
            None => StartupPolicy::Refuse,
        };
        config.max_connections = self.max_connections;
        config.max_connections_per_user = self.max_per_user;
        config
    }
}

/// Who a broadcast is for.
#[derive(Debug, Clone, Copy)]
enum Target {
    All,
    User(usize),
    Group(usize),
    /// `broadcast_where`: odd ids.
    OddIds,
    /// `broadcast_where`: even ids.
    EvenIds,
    /// `broadcast_where`: connections with no user.
    Anonymous,
}

#[derive(Debug, Clone)]
enum Op {
    /// A new connection (the next slot): accept, then `register`.
    Connect,
    /// The owner's next step: `authenticate` (then `identify` as `user`, if any) or
    /// `ready`.
    Advance {
        k: usize,
        user: Option<usize>,
    },
    /// `identify` again (an authenticated or ready owner).
    Identify {
        k: usize,
        user: usize,
    },
    /// `register` again with the same `Connection<Accepted>`.
    Reregister(usize),
    /// A fresh connection with the id of the listed slot `k`: `DuplicateId`.
    RegisterDuplicate(usize),
    OpenRegistry,
    /// The owner closes with `code`; `complete`: the driver writes every frame and the
    /// peer acknowledges.
    Close {
        k: usize,
        code: u16,
        complete: bool,
    },
    PeerClose {
        k: usize,
        code: Option<u16>,
    },
    TransportLost(usize),
    DropRegistration(usize),
    /// The driver writes up to `n` frames.
    Flush {
        k: usize,
        n: usize,
    },
    /// `join`/`leave` by id (the slot need not exist).
    Join {
        slot: usize,
        group: usize,
    },
    Leave {
        slot: usize,
        group: usize,
    },
    Broadcast(Target),
    Shutdown,
    FinishDrain,
    AdvanceTime {
        ms: u64,
        punctual: bool,
    },
}

// ── the reference model ─────────────────────────────────────────────────────

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
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

    fn closing(self) -> bool {
        matches!(
            self,
            St::SendingClose | St::AwaitingPeer | St::ReplyingClose
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Local,
    SlowConsumer,
    Peer,
    ReadinessDeadline,
    TransportLost,
    Dropped,
    NotAdmitted,
    Shutdown,
}

impl Cause {
    fn name(self) -> &'static str {
        match self {
            Cause::Local => "local",
            Cause::SlowConsumer => "slow_consumer",
            Cause::Peer => "peer",
            Cause::ReadinessDeadline => "readiness_deadline",
            Cause::TransportLost => "transport_lost",
            Cause::Dropped => "dropped",
            Cause::NotAdmitted => "not_admitted",
            Cause::Shutdown => "shutdown",
        }
    }

    /// The key `Totals::closed_by_cause` counts it under: its cause's serde tag
    /// (G9), so a dropped transport counts as `transport_lost`.
    fn counted_as(self) -> &'static str {
        match self {
            Cause::Dropped => "transport_lost",
            other => other.name(),
        }
    }

    /// Queued messages are still written before our Close (G3).
    fn flushes(self) -> bool {
        matches!(self, Cause::Local | Cause::SlowConsumer | Cause::Shutdown)
    }
}

/// The owner's type-state handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Accepted,
    Authenticated,
    Ready,
    Closing,
}

fn owner_of(any: &AnyConnection) -> Owner {
    match any {
        AnyConnection::Accepted(_) => Owner::Accepted,
        AnyConnection::Authenticated(_) => Owner::Authenticated,
        AnyConnection::Ready(_) => Owner::Ready,
        AnyConnection::Closing(_) => Owner::Closing,
        AnyConnection::Connecting(_) => panic!("no owner is left connecting"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ExpFrame {
    Message(u32),
    Close(Option<CloseFrame>),
}

/// One connection of the model.
#[derive(Debug, Clone)]
struct MConn {
    id: u64,
    owner: Owner,
    st: St,
    /// The close record: the first cause and our Close frame's payload.
    cause: Option<Cause>,
    frame: Option<CloseFrame>,
    readiness_at: Option<u64>,
    close_at: Option<u64>,
    /// A slow-consumer close requested by a broadcast, applied by the next timed input.
    deferred: bool,
    /// Broadcasts queued and not written yet.
    outbox: VecDeque<u32>,
    /// Every broadcast ever queued, in order.
    queued: Vec<u32>,
    /// In the registry's listing (the connection's link is set).
    listed: bool,
    /// The test still holds the `Registration`.
    registration: bool,
    /// Registered while starting under `Hold`, until the registry opens (G8).
    hold_until: Option<u64>,
    user: Option<usize>,
    groups: BTreeSet<usize>,
}

#[derive(Debug, Clone)]
enum Expect {
    Nothing,
    Register(Result<(), RegistryError>),
    Advance {
        ok: bool,
        identify: Option<Result<(), RegistryError>>,
    },
    Identify(Result<(), RegistryError>),
    Frames(Vec<Option<ExpFrame>>),
    Close {
        frames: Option<Vec<ExpFrame>>,
        acknowledged: bool,
    },
    Join(Result<(), RegistryError>),
    Leave(bool),
    /// The message number and `[delivered, not_ready, closing, full]`.
    Report(u32, [usize; 4]),
    Shutdown(usize),
    /// `[closing, closed, dropped]`.
    Drain([usize; 3]),
    /// The instants a punctual driver wakes at on the way.
    Times(Vec<u64>),
}

#[derive(Debug, Clone)]
struct Model {
    setup: Setup,
    state: RegistryState,
    now: u64,
    conns: Vec<MConn>,
    /// The user index: ids in the order they were identified.
    users: BTreeMap<usize, Vec<u64>>,
    registered: u64,
    refused: BTreeMap<String, u64>,
    closed: u64,
    closed_by_cause: BTreeMap<String, u64>,
    /// The drain once begun: [listed, asked to close, dropped].
    drain: Option<[usize; 3]>,
    broadcasts: u32,
    expect: Expect,
}

const DELIVERED: usize = 0;
const NOT_READY: usize = 1;
const CLOSING: usize = 2;
const FULL: usize = 3;

impl Model {
    fn listed(&self) -> Vec<usize> {
        (0..self.conns.len())
            .filter(|&k| self.conns[k].listed)
            .collect()
    }

    fn slot_of(&self, id: u64) -> Option<usize> {
        self.conns.iter().position(|c| c.id == id && c.listed)
    }

    /// The startup gate holds `k` (its link's `is_held`): admitted before `open`
    /// (which clears every `hold_until`), and not closing — a drain before `open`
    /// releases nobody, and a closing connection leaves the hold.
    fn hold_applies(&self, k: usize) -> bool {
        self.hold_applies_to(&self.conns[k])
    }

    fn hold_applies_to(&self, c: &MConn) -> bool {
        c.listed && c.hold_until.is_some() && c.st.open()
    }

    fn held_count(&self) -> usize {
        self.conns
            .iter()
            .filter(|c| self.hold_applies_to(c))
            .count()
    }

    /// `Closed`: the connection leaves the listing and every index (G7).
    fn set_closed(&mut self, k: usize) {
        let c = &mut self.conns[k];
        c.st = St::Closed;
        c.readiness_at = None;
        c.close_at = None;
        if !c.listed {
            return;
        }
        c.listed = false;
        c.hold_until = None;
        c.groups.clear();
        let cause = c.cause.expect("a closed connection has a close record");
        let id = c.id;
        if let Some(user) = c.user.take() {
            self.unlink_user(user, id);
        }
        self.closed += 1;
        *self
            .closed_by_cause
            .entry(cause.counted_as().to_owned())
            .or_default() += 1;
    }

    fn unlink_user(&mut self, user: usize, id: u64) {
        if let Some(ids) = self.users.get_mut(&user) {
            ids.retain(|&other| other != id);
            if ids.is_empty() {
                self.users.remove(&user);
            }
        }
    }

    /// Our close, from an open state.
    fn start_close(&mut self, k: usize, frame: CloseFrame, cause: Cause, t: u64) {
        let c = &mut self.conns[k];
        debug_assert!(c.st.open());
        if c.cause.is_none() {
            c.cause = Some(cause);
            c.frame = Some(frame);
        }
        c.st = St::SendingClose;
        c.readiness_at = None;
        c.close_at = Some(t + CLOSE_MS);
    }

    /// One due lifecycle deadline fires (the close handshake's, or readiness).
    fn fire_due(&mut self, k: usize, t: u64) -> bool {
        let c = &self.conns[k];
        if c.close_at.is_some_and(|d| d <= t) {
            self.set_closed(k);
            true
        } else if c.readiness_at.is_some_and(|d| d <= t) {
            let frame = close_frame(1008, "not ready before the deadline");
            self.start_close(k, frame, Cause::ReadinessDeadline, t);
            true
        } else {
            false
        }
    }

    /// Before any non-timer input, every due lifecycle deadline fires (G5).
    fn pre_loop(&mut self, k: usize, t: u64) {
        while self.fire_due(k, t) {}
    }

    /// A close the crate raises itself.
    fn close_as(&mut self, k: usize, frame: CloseFrame, cause: Cause, t: u64) {
        self.pre_loop(k, t);
        if self.conns[k].st.open() {
            self.start_close(k, frame, cause, t);
        }
    }

    /// What every timed input does first: a deferred slow-consumer close, then the
    /// hold deadline (G8), whose close happens at the hold deadline itself — so a late
    /// driver sees deadlines in the order they passed (G5).
    fn at_time(&mut self, k: usize, t: u64) {
        if std::mem::take(&mut self.conns[k].deferred) {
            self.close_as(
                k,
                close_frame(1013, "slow consumer"),
                Cause::SlowConsumer,
                t,
            );
        }
        if let Some(h) = self.conns[k].hold_until.filter(|&h| h <= t) {
            if self.hold_applies(k) {
                let frame = close_frame(1013, "server still starting");
                self.close_as(k, frame, Cause::NotAdmitted, h);
            }
        }
    }

    /// `Transport::handle_timeout`, until it changes nothing.
    fn timeout(&mut self, k: usize, t: u64) {
        self.at_time(k, t);
        self.pre_loop(k, t);
    }

    fn authenticate(&mut self, k: usize) -> bool {
        let t = self.now;
        self.at_time(k, t);
        self.pre_loop(k, t);
        let ok = self.conns[k].st == St::Accepted;
        if ok {
            self.conns[k].st = St::Authenticated;
        }
        ok
    }

    fn ready(&mut self, k: usize) -> bool {
        let t = self.now;
        self.at_time(k, t);
        if self.hold_applies(k) {
            let frame = close_frame(1013, "made ready before the server opened");
            self.close_as(k, frame, Cause::NotAdmitted, t);
        }
        self.pre_loop(k, t);
        let c = &mut self.conns[k];
        let ok = c.st == St::Authenticated;
        if ok {
            c.st = St::Ready;
            c.readiness_at = None;
        }
        ok
    }

    fn local_close(&mut self, k: usize, frame: CloseFrame) {
        let t = self.now;
        self.at_time(k, t);
        self.pre_loop(k, t);
        if self.conns[k].st.open() {
            self.start_close(k, frame, Cause::Local, t);
        }
    }

    fn peer_close(&mut self, k: usize, theirs: Option<u16>) {
        let t = self.now;
        self.at_time(k, t);
        self.pre_loop(k, t);
        let c = &mut self.conns[k];
        match c.st {
            st if st.open() => {
                if c.cause.is_none() {
                    c.cause = Some(Cause::Peer);
                    c.frame = theirs.map(|code| close_frame(code, ""));
                }
                c.st = St::ReplyingClose;
                c.readiness_at = None;
                c.close_at = Some(t + CLOSE_MS);
            }
            St::SendingClose => c.st = St::ReplyingClose,
            St::AwaitingPeer => self.set_closed(k),
            _ => {}
        }
    }

    fn lost(&mut self, k: usize, cause: Cause) {
        let t = self.now;
        self.at_time(k, t);
        self.pre_loop(k, t);
        let c = &mut self.conns[k];
        if c.st != St::Closed {
            c.cause.get_or_insert(cause);
            self.set_closed(k);
        }
    }

    fn may_write(&self, k: usize) -> bool {
        let c = &self.conns[k];
        c.st == St::Ready
            || (c.st == St::SendingClose && c.cause.is_some_and(|cause| cause.flushes()))
    }

    /// `Transport::next_frame`.
    fn next_frame(&mut self, k: usize) -> Option<ExpFrame> {
        let t = self.now;
        self.at_time(k, t);
        if self.may_write(k) {
            if let Some(n) = self.conns[k].outbox.pop_front() {
                return Some(ExpFrame::Message(n));
            }
        }
        let c = &mut self.conns[k];
        let close = ExpFrame::Close(c.frame.clone());
        match c.st {
            St::SendingClose => {
                c.st = St::AwaitingPeer;
                Some(close)
            }
            St::ReplyingClose => {
                self.set_closed(k);
                Some(close)
            }
            _ => None,
        }
    }

    /// `Registry::register` (G7, G8).
    fn register(&mut self, k: usize) -> Result<(), RegistryError> {
        let t = self.now;
        self.at_time(k, t);
        if self.conns[k].listed {
            return Err(RegistryError::AlreadyRegistered);
        }
        if self.conns[k].st == St::Closed {
            return Err(RegistryError::Closed);
        }
        let starting = self.state == RegistryState::Starting;
        let refusal = if self.state == RegistryState::Draining {
            Some(RegistryError::ShuttingDown)
        } else if starting && self.setup.hold.is_none() {
            Some(RegistryError::NotOpen)
        } else if starting
            && self
                .setup
                .hold
                .is_some_and(|(capacity, _)| self.held_count() >= capacity.max(1))
        {
            Some(RegistryError::HoldFull)
        } else if self
            .setup
            .max_connections
            .is_some_and(|max| self.listed().len() >= max)
        {
            Some(RegistryError::AtCapacity)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            *self.refused.entry(refusal.as_str().to_owned()).or_default() += 1;
            let (frame, cause) = match refusal {
                RegistryError::ShuttingDown => {
                    (close_frame(1001, "server shutting down"), Cause::Shutdown)
                }
                RegistryError::AtCapacity => {
                    (close_frame(1013, "server at capacity"), Cause::NotAdmitted)
                }
                _ => (close_frame(1013, "server starting"), Cause::NotAdmitted),
            };
            self.close_as(k, frame, cause, t);
            return Err(refusal);
        }
        let hold_until = match self.setup.hold {
            Some((_, timeout)) if starting => Some(t + timeout),
            _ => None,
        };
        let c = &mut self.conns[k];
        c.listed = true;
        c.registration = true;
        c.hold_until = hold_until;
        self.registered += 1;
        Ok(())
    }

    /// `Registry::identify`.
    fn identify(&mut self, k: usize, user: usize) -> Result<(), RegistryError> {
        let c = &self.conns[k];
        if !c.listed {
            return Err(RegistryError::NotRegistered);
        }
        if c.user == Some(user) {
            return Ok(());
        }
        let count = self.users.get(&user).map_or(0, Vec::len);
        if self.setup.max_per_user.is_some_and(|max| count >= max) {
            *self.refused.entry("user_limit".to_owned()).or_default() += 1;
            let t = self.now;
            self.at_time(k, t);
            let frame = close_frame(1008, "too many connections");
            self.close_as(k, frame, Cause::NotAdmitted, t);
            return Err(RegistryError::UserLimit);
        }
        let id = c.id;
        if let Some(old) = self.conns[k].user.replace(user) {
            self.unlink_user(old, id);
        }
        self.users.entry(user).or_default().push(id);
        Ok(())
    }

    /// One target of a broadcast (G7): the count it lands in.
    fn deliver(&mut self, k: usize, n: u32) -> usize {
        let capacity = self.setup.outbox_capacity;
        let slow = self.setup.slow_consumer;
        let c = &mut self.conns[k];
        if !c.st.open() {
            CLOSING
        } else if c.st != St::Ready {
            NOT_READY
        } else if c.deferred {
            CLOSING
        } else if c.outbox.len() >= capacity {
            c.deferred |= slow;
            FULL
        } else {
            c.outbox.push_back(n);
            c.queued.push(n);
            DELIVERED
        }
    }

    fn targets(&self, target: Target) -> Vec<usize> {
        let listed = self.listed();
        match target {
            Target::All => listed,
            Target::User(u) => self
                .users
                .get(&u)
                .into_iter()
                .flatten()
                .map(|&id| {
                    self.slot_of(id)
                        .expect("G7: the user index lists listed ids")
                })
                .collect(),
            Target::Group(g) => listed
                .into_iter()
                .filter(|&k| self.conns[k].groups.contains(&g))
                .collect(),
            Target::OddIds => listed
                .into_iter()
                .filter(|&k| self.conns[k].id % 2 == 1)
                .collect(),
            Target::EvenIds => listed
                .into_iter()
                .filter(|&k| self.conns[k].id % 2 == 0)
                .collect(),
            Target::Anonymous => listed
                .into_iter()
                .filter(|&k| self.conns[k].user.is_none())
                .collect(),
        }
    }

    fn open_registry(&mut self) {
        if self.state != RegistryState::Starting {
            return;
        }
        self.state = RegistryState::Open;
        for c in &mut self.conns {
            if c.listed {
                c.hold_until = None;
            }
        }
    }

    /// `Registry::shutdown` (G8).
    fn shutdown(&mut self) -> usize {
        if self.state == RegistryState::Draining {
            return 0;
        }
        self.state = RegistryState::Draining;
        let targets = self.listed();
        self.drain = Some([targets.len(), 0, 0]);
        let t = self.now;
        let mut closing = 0;
        for k in targets {
            self.at_time(k, t);
            if self.conns[k].st.open() {
                let frame = close_frame(1001, "server shutting down");
                self.close_as(k, frame, Cause::Shutdown, t);
                closing += 1;
            }
        }
        if let Some(drain) = self.drain.as_mut() {
            drain[1] = closing;
        }
        closing
    }

    /// `Registry::finish_drain` (G8).
    /// The report covers the whole drain, however often it is finished.
    fn finish_drain(&mut self) -> [usize; 3] {
        self.shutdown();
        let rest = self.listed();
        for &k in &rest {
            self.lost(k, Cause::Dropped);
        }
        let [listed, closing, dropped] = self.drain.get_or_insert([0, 0, 0]);
        *dropped += rest.len();
        [*closing, listed.saturating_sub(*dropped), *dropped]
    }

    /// The next instant the connection needs `handle_timeout`, as intended: the hold
    /// deadline only while it can still close the connection.
    fn deadline(&self, k: usize) -> Option<u64> {
        let c = &self.conns[k];
        let hold = c.hold_until.filter(|_| self.hold_applies(k) && c.st.open());
        [c.readiness_at, c.close_at, hold]
            .into_iter()
            .flatten()
            .min()
    }

    /// What `poll_timeout` returns: the same deadlines.
    fn poll_timeout(&self, k: usize) -> Option<u64> {
        self.deadline(k)
    }

    /// `Registration::admitted`, polled once: `None` while pending.
    fn admitted(&self, k: usize) -> Option<bool> {
        let c = &self.conns[k];
        if !c.st.open() {
            Some(false)
        } else if self.hold_applies(k) {
            None
        } else {
            Some(true)
        }
    }

    /// Virtual time moves to `now + ms`; returns the instants a punctual driver wakes
    /// at on the way.
    fn advance(&mut self, ms: u64, punctual: bool) -> Vec<u64> {
        let target = self.now + ms;
        let mut times = Vec::new();
        let next = |m: &Model| {
            (0..m.conns.len())
                .filter_map(|k| m.deadline(k))
                .filter(|&d| d <= target)
                .min()
        };
        while let Some(t) = next(self).filter(|_| punctual) {
            assert!(t > self.now && times.len() < 64, "model: time runs back");
            times.push(t);
            self.now = t;
            for k in 0..self.conns.len() {
                self.timeout(k, t);
            }
        }
        self.now = target;
        for k in 0..self.conns.len() {
            self.timeout(k, target);
        }
        times
    }
}

struct RegistryModel;

impl ReferenceStateMachine for RegistryModel {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        let hold = prop_oneof![
            3 => (1usize..=3, prop::sample::select(HOLD_MS.to_vec())).prop_map(Some),
            1 => Just(None),
        ];
        (
            hold,
            prop::option::weighted(0.4, 1usize..=5),
            prop::option::weighted(0.5, 1usize..=2),
            prop::sample::select(vec![1usize, 2, 3, 1024, 1024, 1024]),
            prop::bool::weighted(0.25),
        )
            .prop_map(
                |(hold, max_connections, max_per_user, outbox_capacity, slow_consumer)| Model {
                    setup: Setup {
                        hold,
                        max_connections,
                        max_per_user,
                        outbox_capacity,
                        slow_consumer,
                    },
                    state: RegistryState::Starting,
                    now: 0,
                    conns: Vec::new(),
                    users: BTreeMap::new(),
                    registered: 0,
                    refused: BTreeMap::new(),
                    closed: 0,
                    closed_by_cause: BTreeMap::new(),
                    drain: None,
                    broadcasts: 0,
                    expect: Expect::Nothing,
                },
            )
            .boxed()
    }

    fn transitions(s: &Model) -> BoxedStrategy<Op> {
        // Weights: mostly connections that open, advance and get broadcasts, with
        // closes of every kind mixed in; a drain is rarer (about a third of the cases
        // reach one), since nothing is admitted after it.
        let n = s.conns.len();
        let target = prop_oneof![
            3 => Just(Target::All),
            2 => (0..USERS.len()).prop_map(Target::User),
            2 => (0..GROUPS.len()).prop_map(Target::Group),
            1 => Just(Target::OddIds),
            1 => Just(Target::EvenIds),
            1 => Just(Target::Anonymous),
        ];
        // Mostly an existing slot, sometimes one that was never opened.
        let slot = prop_oneof![3 => 0..n.max(1), 1 => 0..=MAX_CONNS];
        let starting = s.state == RegistryState::Starting;
        let mut ops: Vec<(u32, BoxedStrategy<Op>)> = vec![
            (
                if starting { 30 } else { 1 },
                Just(Op::OpenRegistry).boxed(),
            ),
            (
                if s.conns.iter().any(|c| c.st == St::Ready) {
                    40
                } else {
                    20
                },
                target.prop_map(Op::Broadcast).boxed(),
            ),
            (
                8,
                (slot.clone(), 0..GROUPS.len())
                    .prop_map(|(slot, group)| Op::Join { slot, group })
                    .boxed(),
            ),
            (
                3,
                (slot, 0..GROUPS.len())
                    .prop_map(|(slot, group)| Op::Leave { slot, group })
                    .boxed(),
            ),
            (1, Just(Op::Shutdown).boxed()),
            (1, Just(Op::FinishDrain).boxed()),
            (
                12,
                (
                    prop_oneof![2 => 0u64..=50, 2 => 0u64..=250, 1 => 200u64..=700],
                    any::<bool>(),
                )
                    .prop_map(|(ms, punctual)| Op::AdvanceTime { ms, punctual })
                    .boxed(),
            ),
        ];
        if n < MAX_CONNS {
            let draining = s.state == RegistryState::Draining;
            ops.push((if draining { 3 } else { 16 }, Just(Op::Connect).boxed()));
        }
        if n > 0 {
            ops.extend([
                (
                    6,
                    (0..n, 4000u16..4004, any::<bool>())
                        .prop_map(|(k, code, complete)| Op::Close { k, code, complete })
                        .boxed(),
                ),
                (
                    4,
                    (
                        0..n,
                        prop::option::of(prop::sample::select(vec![1000u16, 1001, 4000])),
                    )
                        .prop_map(|(k, code)| Op::PeerClose { k, code })
                        .boxed(),
                ),
                (2, (0..n).prop_map(Op::TransportLost).boxed()),
                (2, (0..n).prop_map(Op::DropRegistration).boxed()),
                (
                    4,
                    (0..n, 1usize..=3)
                        .prop_map(|(k, n)| Op::Flush { k, n })
                        .boxed(),
                ),
            ]);
        }
        let slots = |f: &dyn Fn(&MConn) -> bool| -> Vec<usize> {
            (0..n).filter(|&k| f(&s.conns[k])).collect()
        };
        // An eligible slot and a number below `below`, made into an op.
        let mut push =
            |weight: u32, eligible: Vec<usize>, below: usize, op: fn(usize, usize) -> Op| {
                if !eligible.is_empty() {
                    ops.push((
                        weight,
                        (prop::sample::select(eligible), 0..below)
                            .prop_map(move |(k, u)| op(k, u))
                            .boxed(),
                    ));
                }
            };
        let advanceable = |c: &MConn| matches!(c.owner, Owner::Accepted | Owner::Authenticated);
        // `user` = USERS.len(): authenticate without identifying.
        let advance = |k, u| Op::Advance {
            k,
            user: (u < USERS.len()).then_some(u),
        };
        // Mostly live connections that may advance; sometimes one the startup gate
        // holds (made ready: 1013), or one whose owner does not know yet that it is
        // closing (the transition is then refused: Gone).
        let held = |c: &MConn| c.owner == Owner::Authenticated && s.hold_applies_to(c);
        push(
            40,
            slots(&|c| advanceable(c) && c.st.open() && !held(c)),
            USERS.len() + 1,
            advance,
        );
        push(2, slots(&|c| advanceable(c) && held(c)), 1, advance);
        push(2, slots(&advanceable), USERS.len() + 1, advance);
        push(
            6,
            slots(&|c| matches!(c.owner, Owner::Authenticated | Owner::Ready)),
            USERS.len(),
            |k, user| Op::Identify { k, user },
        );
        push(2, slots(&|c| c.owner == Owner::Accepted), 1, |k, _| {
            Op::Reregister(k)
        });
        push(2, slots(&|c| c.listed), 1, |k, _| Op::RegisterDuplicate(k));
        // The driver writes where there is something to write.
        push(
            8,
            slots(&|c| {
                !c.outbox.is_empty() || matches!(c.st, St::SendingClose | St::ReplyingClose)
            }),
            4,
            |k, n| Op::Flush { k, n },
        );
        Union::new_weighted(ops).boxed()
    }

    fn preconditions(s: &Model, op: &Op) -> bool {
        let owner = |k: usize| s.conns.get(k).map(|c| c.owner);
        match *op {
            Op::Connect => s.conns.len() < MAX_CONNS,
            Op::Advance { k, .. } => {
                matches!(owner(k), Some(Owner::Accepted | Owner::Authenticated))
            }
            Op::Identify { k, .. } => matches!(owner(k), Some(Owner::Authenticated | Owner::Ready)),
            Op::Reregister(k) => owner(k) == Some(Owner::Accepted),
            Op::RegisterDuplicate(k) => s.conns.get(k).is_some_and(|c| c.listed),
            Op::Close { k, .. }
            | Op::PeerClose { k, .. }
            | Op::TransportLost(k)
            | Op::DropRegistration(k)
            | Op::Flush { k, .. } => k < s.conns.len(),
            _ => true,
        }
    }

    fn apply(mut s: Model, op: &Op) -> Model {
        s.expect = match *op {
            Op::Connect => {
                let k = s.conns.len();
                s.conns.push(MConn {
                    id: id_of(k),
                    owner: Owner::Accepted,
                    st: St::Accepted,
                    cause: None,
                    frame: None,
                    readiness_at: Some(s.now + READINESS_MS),
                    close_at: None,
                    deferred: false,
                    outbox: VecDeque::new(),
                    queued: Vec::new(),
                    listed: false,
                    registration: false,
                    hold_until: None,
                    user: None,
                    groups: BTreeSet::new(),
                });
                Expect::Register(s.register(k))
            }
            Op::Advance { k, user } => match s.conns[k].owner {
                Owner::Accepted => {
                    let ok = s.authenticate(k);
                    s.conns[k].owner = if ok {
                        Owner::Authenticated
                    } else {
                        Owner::Closing
                    };
                    let identify = user.filter(|_| ok).map(|u| s.identify(k, u));
                    Expect::Advance { ok, identify }
                }
                Owner::Authenticated => {
                    let ok = s.ready(k);
                    s.conns[k].owner = if ok { Owner::Ready } else { Owner::Closing };
                    Expect::Advance { ok, identify: None }
                }
                _ => unreachable!("precondition"),
            },
            Op::Identify { k, user } => Expect::Identify(s.identify(k, user)),
            Op::Reregister(k) => Expect::Register(s.register(k)),
            Op::RegisterDuplicate(_) => Expect::Register(Err(RegistryError::DuplicateId)),
            Op::OpenRegistry => {
                s.open_registry();
                Expect::Nothing
            }
            Op::Close { k, code, complete } => {
                s.conns[k].owner = Owner::Closing;
                s.local_close(k, close_frame(code, ""));
                let frames = complete.then(|| {
                    let mut frames = Vec::new();
                    while let Some(f) = s.next_frame(k) {
                        frames.push(f);
                    }
                    frames
                });
                let acknowledged = complete && s.conns[k].st.closing();
                if acknowledged {
                    s.peer_close(k, None);
                }
                Expect::Close {
                    frames,
                    acknowledged,
                }
            }
            Op::PeerClose { k, code } => {
                s.peer_close(k, code);
                Expect::Nothing
            }
            Op::TransportLost(k) => {
                s.lost(k, Cause::TransportLost);
                Expect::Nothing
            }
            Op::DropRegistration(k) => {
                if std::mem::take(&mut s.conns[k].registration) && s.conns[k].st != St::Closed {
                    s.lost(k, Cause::Dropped);
                }
                Expect::Nothing
            }
            Op::Flush { k, n } => Expect::Frames((0..n).map(|_| s.next_frame(k)).collect()),
            Op::Join { slot, group } => match s.slot_of(id_of(slot)) {
                Some(k) => {
                    s.conns[k].groups.insert(group);
                    Expect::Join(Ok(()))
                }
                None => Expect::Join(Err(RegistryError::NotRegistered)),
            },
            Op::Leave { slot, group } => {
                let left = match s.slot_of(id_of(slot)) {
                    Some(k) => s.conns[k].groups.remove(&group),
                    None => false,
                };
                Expect::Leave(left)
            }
            Op::Broadcast(target) => {
                s.broadcasts += 1;
                let n = s.broadcasts;
                let mut counts = [0; 4];
                for k in s.targets(target) {
                    counts[s.deliver(k, n)] += 1;
                }
                Expect::Report(n, counts)
            }
            Op::Shutdown => Expect::Shutdown(s.shutdown()),
            Op::FinishDrain => Expect::Drain(s.finish_drain()),
            Op::AdvanceTime { ms, punctual } => Expect::Times(s.advance(ms, punctual)),
        };
        s
    }
}

// ── the system under test ───────────────────────────────────────────────────

struct SConn {
    owner: Option<AnyConnection>,
    transport: Transport,
    registration: Option<Registration>,
    /// `register` succeeded for it once (G7: listed iff this and not `Closed`).
    registered: bool,
    /// The broadcasts written as `Frame::Message`, in order.
    written: Vec<u32>,
    close_frames: usize,
    /// The broadcasts sent while its phase was `Ready`.
    ready_for: BTreeSet<u32>,
}

impl SConn {
    fn next_frame(&mut self, now: u64) -> Option<ExpFrame> {
        let frame = self.transport.next_frame(at(now))?;
        assert_eq!(
            self.close_frames,
            0,
            "G3: connection {} wrote {frame:?} after our Close",
            self.transport.id()
        );
        Some(match frame {
            Frame::Message(m) => {
                let n = parse(&m);
                self.written.push(n);
                ExpFrame::Message(n)
            }
            Frame::Close(f) => {
                self.close_frames += 1;
                ExpFrame::Close(f)
            }
        })
    }

    /// A driver that feeds the time: `handle_timeout` until it changes nothing.
    fn drive_timeout(&self, now: u64) {
        for _ in 0..8 {
            match self.transport.handle_timeout(at(now)) {
                Some(step) if step.changed() => {}
                _ => return,
            }
        }
        panic!("handle_timeout keeps changing state");
    }

    fn take_owner(&mut self) -> AnyConnection {
        self.owner.take().expect("the owner's handle")
    }
}

struct Sut {
    registry: Registry,
    conns: Vec<SConn>,
}

/// The refusal closed the connection with its documented code (G8).
fn check_refusal(e: RegistryError, transport: &Transport, was_open: bool) {
    let code = e.close_code().map(|c| c.as_u16());
    assert_eq!(code, documented_code(e), "G8: {e:?} closes with its code");
    if let (Some(code), true) = (code, was_open) {
        let record = transport.close_record().expect("G8: a refusal closes");
        assert_eq!(
            record.frame.map(|f| f.code().as_u16()),
            Some(code),
            "G8: {e:?} closed connection {} with {code}",
            transport.id()
        );
    }
}

struct RegistryTest;

impl StateMachineTest for RegistryTest {
    type SystemUnderTest = Sut;
    type Reference = RegistryModel;

    fn init_test(model: &Model) -> Sut {
        Sut {
            registry: Registry::new(model.setup.registry()),
            conns: Vec::new(),
        }
    }

    fn apply(mut sut: Sut, model: &Model, op: Op) -> Sut {
        let now = model.now;
        let registry = sut.registry.clone();
        match (op, &model.expect) {
            (Op::Connect, Expect::Register(expected)) => {
                let id = ConnectionId::new(id_of(sut.conns.len()));
                let conn = Connection::new(id, model.setup.connection())
                    .accept(at(now))
                    .expect("a new connection accepts");
                let transport = conn.transport();
                let result = registry.register(&conn, at(now));
                assert_eq!(
                    result.as_ref().map(|_| ()).map_err(|e| *e),
                    *expected,
                    "G7/G8: register {id}"
                );
                let registration = match result {
                    Ok(registration) => {
                        assert_eq!(registration.id(), id);
                        Some(registration)
                    }
                    Err(e) => {
                        check_refusal(e, &transport, true);
                        None
                    }
                };
                sut.conns.push(SConn {
                    owner: Some(conn.into_any()),
                    transport,
                    registered: registration.is_some(),
                    registration,
                    written: Vec::new(),
                    close_frames: 0,
                    ready_for: BTreeSet::new(),
                });
            }
            (Op::Advance { k, user }, &Expect::Advance { ok, identify }) => {
                let c = &mut sut.conns[k];
                let owner = c.take_owner();
                c.owner = Some(match owner {
                    AnyConnection::Accepted(conn) => match conn.authenticate(None, at(now)) {
                        Ok(conn) => {
                            assert!(ok, "authenticate succeeded, the model says Gone");
                            assert_eq!(identify.is_some(), user.is_some());
                            if let (Some(u), Some(expected)) = (user, identify) {
                                let got = registry.identify(&conn, USERS[u]);
                                assert_eq!(got, expected, "identify {} as {}", conn.id(), USERS[u]);
                                if let Err(e) = got {
                                    check_refusal(e, &c.transport, true);
                                }
                            }
                            conn.into_any()
                        }
                        Err(gone) => {
                            assert!(!ok, "authenticate Gone, the model says ok");
                            gone.into_connection().into_any()
                        }
                    },
                    AnyConnection::Authenticated(conn) => match conn.ready(at(now)) {
                        Ok(conn) => {
                            assert!(ok, "G8: ready succeeded, the model says Gone");
                            conn.into_any()
                        }
                        Err(gone) => {
                            assert!(!ok, "G8: ready Gone, the model says ok");
                            gone.into_connection().into_any()
                        }
                    },
                    other => panic!("advance from {:?}", owner_of(&other)),
                });
            }
            (Op::Identify { k, user }, Expect::Identify(expected)) => {
                let c = &sut.conns[k];
                // Open, and no slow-consumer close pending (which the refusal's own
                // close would apply first: the first close wins, G4).
                let phase = c.transport.phase();
                let owner = c.owner.as_ref().expect("the owner's handle");
                let was_open = !phase.is_closing_or_closed()
                    && (phase != Phase::Ready || owner.check_send().is_ok());
                let got = match c.owner.as_ref() {
                    Some(AnyConnection::Authenticated(conn)) => {
                        registry.identify(conn, USERS[user])
                    }
                    Some(AnyConnection::Ready(conn)) => registry.identify(conn, USERS[user]),
                    _ => panic!("identify needs an authorized owner"),
                };
                assert_eq!(got, *expected, "identify slot {k} as {}", USERS[user]);
                if let Err(e) = got {
                    check_refusal(e, &c.transport, was_open);
                }
            }
            (Op::Reregister(k), Expect::Register(expected)) => {
                let c = &mut sut.conns[k];
                let Some(AnyConnection::Accepted(conn)) = c.owner.as_ref() else {
                    panic!("register needs an accepted owner")
                };
                let result = registry.register(conn, at(now));
                assert_eq!(
                    result.as_ref().map(|_| ()).map_err(|e| *e),
                    *expected,
                    "G7/G8: register slot {k} again"
                );
                if let Ok(registration) = result {
                    assert!(c.registration.is_none(), "a second registration");
                    c.registration = Some(registration);
                    c.registered = true;
                }
            }
            (Op::RegisterDuplicate(k), Expect::Register(expected)) => {
                let id = sut.conns[k].transport.id();
                let conn = Connection::new(id, model.setup.connection())
                    .accept(at(now))
                    .expect("a new connection accepts");
                let result = registry.register(&conn, at(now)).map(|_| ());
                assert_eq!(result, *expected, "G7: a second connection with id {id}");
                assert_eq!(conn.phase(), Phase::Accepted, "DuplicateId closes nothing");
            }
            (Op::OpenRegistry, _) => registry.open(),
            (
                Op::Close { k, code, .. },
                Expect::Close {
                    frames,
                    acknowledged,
                },
            ) => {
                let c = &mut sut.conns[k];
                let frame = close_frame(code, "");
                match c.take_owner() {
                    AnyConnection::Closing(conn) => {
                        c.transport
                            .close(frame, at(now))
                            .expect("a close is never rejected");
                        c.owner = Some(conn.into_any());
                    }
                    owner => c.owner = Some(owner.close(frame, at(now)).into_any()),
                }
                if let Some(expected) = frames {
                    let mut got = Vec::new();
                    while let Some(f) = c.next_frame(now) {
                        got.push(f);
                        assert!(got.len() <= 1100, "endless frames");
                    }
                    assert_eq!(&got, expected, "G3/G7: the frames written at close");
                    assert_eq!(c.transport.phase() == Phase::Closing, *acknowledged);
                    if *acknowledged {
                        c.transport
                            .handle_peer_close(None, at(now))
                            .expect("the peer's acknowledgement");
                    }
                }
            }
            (Op::PeerClose { k, code }, _) => {
                let theirs = code.map(|code| close_frame(code, ""));
                sut.conns[k]
                    .transport
                    .handle_peer_close(theirs, at(now))
                    .expect("a peer Close is never rejected once accepted");
            }
            (Op::TransportLost(k), _) => {
                sut.conns[k]
                    .transport
                    .handle_transport_lost(TransportLoss::Eof, at(now))
                    .expect("transport loss is never rejected");
            }
            (Op::DropRegistration(k), _) => drop(sut.conns[k].registration.take()),
            (Op::Flush { k, .. }, Expect::Frames(expected)) => {
                let c = &mut sut.conns[k];
                for (i, expected) in expected.iter().enumerate() {
                    let got = c.next_frame(now);
                    assert_eq!(&got, expected, "G3/G7: frame {i} of slot {k}");
                }
            }
            (Op::Join { slot, group }, Expect::Join(expected)) => {
                let got = registry.join(ConnectionId::new(id_of(slot)), GROUPS[group]);
                assert_eq!(got, *expected, "G7: join {} {}", id_of(slot), GROUPS[group]);
            }
            (Op::Leave { slot, group }, Expect::Leave(expected)) => {
                let got = registry.leave(ConnectionId::new(id_of(slot)), GROUPS[group]);
                assert_eq!(got, *expected, "leave {} {}", id_of(slot), GROUPS[group]);
            }
            (Op::Broadcast(target), &Expect::Report(n, counts)) => {
                for c in &mut sut.conns {
                    if c.transport.phase() == Phase::Ready {
                        c.ready_for.insert(n);
                    }
                }
                let m = message(n);
                let report: BroadcastReport = match target {
                    Target::All => registry.broadcast(m),
                    Target::User(u) => registry.send_to_user(USERS[u], m),
                    Target::Group(g) => registry.send_to_group(GROUPS[g], m),
                    Target::OddIds => registry.broadcast_where(m, |id, _| id.get() % 2 == 1),
                    Target::EvenIds => registry.broadcast_where(m, |id, _| id.get() % 2 == 0),
                    Target::Anonymous => registry.broadcast_where(m, |_, user| user.is_none()),
                };
                assert_eq!(
                    [
                        report.delivered,
                        report.not_ready,
                        report.closing,
                        report.full
                    ],
                    counts,
                    "G7: the report of broadcast {n} to {target:?} \
                     ([delivered, not_ready, closing, full])"
                );
                assert_eq!(report.selected(), counts.iter().sum::<usize>());
            }
            (Op::Shutdown, &Expect::Shutdown(expected)) => {
                let got = registry.shutdown_at(at(now));
                assert_eq!(got, expected, "G8: shutdown asks the open ones to close");
            }
            (Op::FinishDrain, &Expect::Drain(expected)) => {
                let got = registry.finish_drain_at(at(now));
                assert_eq!(
                    [got.closing, got.closed, got.dropped],
                    expected,
                    "G8: finish_drain ([closing, closed, dropped])"
                );
            }
            (Op::AdvanceTime { .. }, Expect::Times(times)) => {
                for &t in times {
                    for c in &sut.conns {
                        c.drive_timeout(t);
                    }
                }
                for c in &sut.conns {
                    c.drive_timeout(now);
                }
            }
            (op, expect) => panic!("model and op disagree: {op:?} / {expect:?}"),
        }
        sut
    }

    fn check_invariants(sut: &Sut, m: &Model) {
        let r = &sut.registry;
        assert_eq!(r.state(), m.state, "G8: the registry's state");

        // The listing (G7), from the model and from the connections themselves.
        let ids: BTreeSet<u64> = r.ids().iter().map(|id| id.get()).collect();
        let listed: BTreeSet<u64> = m.conns.iter().filter(|c| c.listed).map(|c| c.id).collect();
        assert_eq!(ids, listed, "G7: the listed ids");
        assert_eq!(r.len(), listed.len(), "G7: len");
        assert_eq!(r.is_empty(), listed.is_empty(), "G7: is_empty");
        for (k, c) in sut.conns.iter().enumerate() {
            let phase = c.transport.phase();
            assert_eq!(
                r.contains(c.transport.id()),
                c.registered && phase != Phase::Closed,
                "G7: slot {k} ({phase:?}) is listed iff registered and not Closed"
            );
        }
        for slot in 0..=MAX_CONNS {
            let id = ConnectionId::new(id_of(slot));
            let k = m.slot_of(id.get());
            assert_eq!(r.contains(id), k.is_some(), "G7: contains({id})");
            assert_eq!(r.observer(id).is_some(), k.is_some(), "G7: observer({id})");
            let user = k.and_then(|k| m.conns[k].user).map(|u| USERS[u].to_owned());
            assert_eq!(
                r.user_of(id).as_deref(),
                user.as_deref(),
                "G7: user_of({id})"
            );
        }

        // The indexes (G7): exactly the model's, never an unlisted id.
        for (u, name) in USERS.iter().enumerate() {
            let got: Vec<u64> = r.connections_of(name).iter().map(|id| id.get()).collect();
            assert!(
                got.iter().all(|id| ids.contains(id)),
                "G7: connections_of({name}) names an unlisted id: {got:?} / {ids:?}"
            );
            let expected = m.users.get(&u).cloned().unwrap_or_default();
            assert_eq!(
                got, expected,
                "G7: connections_of({name}), in identify order"
            );
        }
        for (g, name) in GROUPS.iter().enumerate() {
            let got: BTreeSet<u64> = r.members(name).iter().map(|id| id.get()).collect();
            assert!(
                got.is_subset(&ids),
                "G7: members({name}) names an unlisted id: {got:?} / {ids:?}"
            );
            let expected: BTreeSet<u64> = m
                .conns
                .iter()
                .filter(|c| c.listed && c.groups.contains(&g))
                .map(|c| c.id)
                .collect();
            assert_eq!(got, expected, "G7: members({name})");
        }

        // The snapshot.
        let snap = r.snapshot();
        assert_eq!(snap.state, m.state, "G8: snapshot.state");
        assert_eq!(snap.open, listed.len(), "G7: snapshot.open");
        let count = |st: &[St]| {
            m.conns
                .iter()
                .filter(|c| c.listed && st.contains(&c.st))
                .count()
        };
        let by_phase = &snap.by_phase;
        assert_eq!(
            [
                by_phase.connecting,
                by_phase.accepted,
                by_phase.authenticated,
                by_phase.ready,
                by_phase.closing
            ],
            [
                0,
                count(&[St::Accepted]),
                count(&[St::Authenticated]),
                count(&[St::Ready]),
                count(&[St::SendingClose, St::AwaitingPeer, St::ReplyingClose]),
            ],
            "G7: snapshot.by_phase (never Closed)"
        );
        assert_eq!(snap.held, m.held_count(), "G8: snapshot.held");
        assert_eq!(snap.users, m.users.len(), "G7: snapshot.users");
        let groups = (0..GROUPS.len())
            .filter(|g| m.conns.iter().any(|c| c.listed && c.groups.contains(g)))
            .count();
        assert_eq!(snap.groups, groups, "G7: snapshot.groups");
        assert_eq!(
            snap.totals.registered, m.registered,
            "G7: totals.registered"
        );
        assert_eq!(snap.totals.closed, m.closed, "G7: totals.closed");
        assert_eq!(snap.totals.refused, m.refused, "G8: totals.refused");
        assert_eq!(
            snap.totals.closed_by_cause, m.closed_by_cause,
            "G7: totals.closed_by_cause"
        );

        // Each connection.
        assert_eq!(sut.conns.len(), m.conns.len());
        for (k, (c, mc)) in sut.conns.iter().zip(&m.conns).enumerate() {
            let t = &c.transport;
            assert_eq!(t.phase(), mc.st.phase(), "slot {k}: the phase");
            let record = t.close_record();
            assert_eq!(
                record.as_ref().map(|r| sut_cause(r.cause)),
                mc.cause.map(Cause::name),
                "slot {k}: the close cause"
            );
            assert_eq!(
                record.and_then(|r| r.frame),
                mc.frame,
                "G8: slot {k}: our Close frame"
            );
            assert_eq!(
                t.poll_timeout().map(ms_of),
                m.poll_timeout(k),
                "G5/G8: slot {k}: the next deadline"
            );
            assert_eq!(
                c.owner.as_ref().map(owner_of),
                Some(mc.owner),
                "slot {k}: the owner's type state"
            );
            assert_eq!(c.registration.is_some(), mc.registration);
            if let Some(registration) = &c.registration {
                assert_eq!(
                    registration.is_held(),
                    m.hold_applies(k),
                    "G8: slot {k}: is_held"
                );
                let admitted = pin!(registration.admitted());
                let got = match admitted.poll(&mut Context::from_waker(Waker::noop())) {
                    Poll::Pending => None,
                    Poll::Ready(result) => Some(result.is_ok()),
                };
                assert_eq!(got, m.admitted(k), "G8: slot {k}: admitted()");
            }
            assert!(c.close_frames <= 1, "G4: one Close frame");
        }
    }

    fn teardown(mut sut: Sut, mut m: Model) {
        // Every connection closes and finishes its handshake: the frames are exactly
        // the model's, the rest comes back from take_unsent.
        let now = m.now;
        for k in 0..sut.conns.len() {
            let c = &mut sut.conns[k];
            if m.conns[k].st.open() {
                m.local_close(k, CloseFrame::normal());
                m.conns[k].owner = Owner::Closing;
                let owner = c.take_owner();
                c.owner = Some(owner.close(CloseFrame::normal(), at(now)).into_any());
            }
            loop {
                let expected = m.next_frame(k);
                let got = c.next_frame(now);
                assert_eq!(got, expected, "G3/G7: slot {k}'s frames at the end");
                if got.is_none() {
                    break;
                }
            }
            if m.conns[k].st.closing() {
                m.peer_close(k, None);
                c.transport.handle_peer_close(None, at(now)).unwrap();
            }
            assert_eq!(c.transport.phase(), Phase::Closed);
            assert_eq!(m.conns[k].st, St::Closed);
            let unsent: Vec<u32> = c.transport.take_unsent().iter().map(parse).collect();
            let expected: Vec<u32> = m.conns[k].outbox.drain(..).collect();
            assert_eq!(unsent, expected, "G3: slot {k}'s unsent broadcasts");

            // Independently of the model: written + unsent = queued, and only
            // broadcasts sent while it was Ready (G7).
            let mut accounted = c.written.clone();
            accounted.extend(&unsent);
            assert_eq!(
                accounted, m.conns[k].queued,
                "G7: slot {k}: written + unsent = queued, in order"
            );
            for n in &accounted {
                assert!(
                    c.ready_for.contains(n),
                    "G7: slot {k} got broadcast {n}, sent while it was not Ready"
                );
            }
            assert!(c.close_frames <= 1, "G4: one Close frame");
        }
        Self::check_invariants(&sut, &m);
        let snap = sut.registry.snapshot();
        assert!(sut.registry.is_empty(), "G7: everything closed is unlisted");
        assert_eq!(
            snap.totals.closed, snap.totals.registered,
            "G7: every registered connection left the listing once"
        );
        assert_eq!((snap.users, snap.groups), (0, 0), "G7: empty indexes");
    }
}

// proptest's default configuration runs 256 cases and honours `PROPTEST_CASES`.
prop_state_machine! {
    /// G7 and G8 through the registry's API, against the reference model.
    #[test]
    fn registry_upholds_g7_g8_against_model(sequential 1..=48 => RegistryTest);
}
