//! A simulation of the registry's cluster seam (issue 15): two or three nodes, each a
//! [`Registry`] with a simulated [`Broker`] attached, and a simulated network between
//! them that delays and reorders publications *across* publishers but never *within*
//! one — each (publisher, destination) pair is a FIFO, as Redis pub/sub over one
//! connection per node is. A case is a random sequence of up to 40 operations: open a
//! connection on a node (a user or anonymous, maybe in a group), make one `Ready`,
//! close one (local close, completed close handshake, or the `Registration` dropped),
//! `broadcast` / `send_to_user` / `send_to_group` a numbered message from a node, and
//! a delivery step (the oldest publication of a chosen publisher not yet delivered to
//! a chosen node is handed to that node's [`Registry::deliver_published`]). At the
//! end every pending delivery is flushed. After every operation, and every flushed
//! delivery, every connection's transport is read and checked against a model that
//! records, at each delivery call on a node, which of that node's connections were
//! `Ready` and matched the target:
//!
//! 1. **per-publisher order**: a connection receives each node's messages in that
//!    node's publish order (messages are numbered per node);
//! 2. **ready-only** (**G7** across the cluster): it receives a message only if it was
//!    `Ready` on its node at that delivery and matches the target (everyone, its user,
//!    its group) — never while in the handshake, closing or closed;
//! 3. **exactly once**: it never receives a message twice;
//! 4. **nothing lost**: it receives exactly what the model says (and in delivery
//!    order), and each delivery's [`BroadcastReport`] counts (`delivered`, `not_ready`,
//!    `closing`, none `full`) are those of the model;
//! 5. **no republication**: `deliver_published` reports `published: None` and the
//!    destination's broker sees nothing, while each local send reports
//!    `Published::Queued` and its broker sees exactly it. At the end, every
//!    publication reached every other node exactly once.
//!
//! Why: the seam's promise is the single-node **G7** rule stretched over a broker —
//! a broker may only delay, and a node that delivers what another published must
//! apply the same `Ready` gate at its own linearization point and must not loop the
//! message back into the cluster. The checks run against an independent model, not
//! against the registry's own counters.
//!
//! The checks bite: [`reordering_within_a_publisher_is_caught`] runs a fixed case on a
//! network that delivers each publisher's newest pending publication first, and the
//! per-publisher order check rejects it. 256 cases by default (`PROPTEST_CASES`
//! overrides).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use ws_lifecycle::handle::AnyConnection;
use ws_lifecycle::registry::{BroadcastReport, Broker, Publication, Published, Target};
use ws_lifecycle::{
    CloseFrame, Config, Connection, Frame, Message, Registration, Registry, Transport,
};

const USERS: [&str; 3] = ["ada", "bob", "cy"];
const GROUPS: [&str; 2] = ["red", "blue"];
const MAX_OPS: usize = 40;

/// One instant for the whole simulation: no deadline ever passes.
fn now() -> Instant {
    static NOW: OnceLock<Instant> = OnceLock::new();
    *NOW.get_or_init(Instant::now)
}

/// A message: (publishing node, its per-node number).
type Msg = (usize, u32);

fn message((node, seq): Msg) -> Message {
    Message::text(format!("n{node}:{seq}"))
}

fn parse(m: &Message) -> Msg {
    let text = m.as_text().expect("a text message");
    let (node, seq) = text
        .strip_prefix('n')
        .and_then(|t| t.split_once(':'))
        .expect("n<node>:<seq>");
    (node.parse().unwrap(), seq.parse().unwrap())
}

// ── the simulated network ───────────────────────────────────────────────────

/// How the network picks among a publisher's pending publications for one
/// destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// The oldest first: what a broker must do.
    Fifo,
    /// The newest first: a broken broker, to show the order check bites.
    NewestFirst,
}

struct Network {
    order: Order,
    /// Per publisher, everything its broker was handed, in order.
    published: Vec<Vec<Publication>>,
    /// Per (publisher, destination), the indexes into `published` not delivered yet.
    pending: Vec<Vec<VecDeque<usize>>>,
    /// How many times each (publisher, index, destination) was delivered.
    deliveries: BTreeMap<(usize, usize, usize), usize>,
}

impl Network {
    fn new(nodes: usize, order: Order) -> Network {
        Network {
            order,
            published: vec![Vec::new(); nodes],
            pending: vec![vec![VecDeque::new(); nodes]; nodes],
            deliveries: BTreeMap::new(),
        }
    }

    /// The next publication of `publisher` for `dest`, taken off the wire.
    fn take(&mut self, publisher: usize, dest: usize) -> Option<Publication> {
        let queue = &mut self.pending[publisher][dest];
        let index = match self.order {
            Order::Fifo => queue.pop_front()?,
            Order::NewestFirst => queue.pop_back()?,
        };
        *self.deliveries.entry((publisher, index, dest)).or_default() += 1;
        Some(self.published[publisher][index].clone())
    }

    fn is_empty(&self) -> bool {
        self.pending.iter().flatten().all(VecDeque::is_empty)
    }
}

/// A node's broker: appends to the node's queue on the shared network, for every
/// other node.
struct SimBroker {
    node: usize,
    net: Arc<Mutex<Network>>,
}

impl Broker for SimBroker {
    fn publish(&self, publication: Publication) -> Published {
        let mut net = self.net.lock().unwrap();
        let index = net.published[self.node].len();
        net.published[self.node].push(publication);
        let nodes = net.pending.len();
        for dest in (0..nodes).filter(|&d| d != self.node) {
            net.pending[self.node][dest].push_back(index);
        }
        Published::Queued
    }
}

// ── operations ──────────────────────────────────────────────────────────────

/// Whom a send is for (indexes into `USERS` and `GROUPS`).
#[derive(Debug, Clone, Copy)]
enum To {
    All,
    User(usize),
    Group(usize),
}

impl To {
    fn target(self) -> Target {
        match self {
            To::All => Target::All,
            To::User(u) => Target::User(USERS[u].into()),
            To::Group(g) => Target::Group(GROUPS[g].into()),
        }
    }

    fn from_target(target: &Target) -> To {
        match target {
            Target::All => To::All,
            Target::User(u) => To::User(USERS.iter().position(|x| **x == **u).unwrap()),
            Target::Group(g) => To::Group(GROUPS.iter().position(|x| **x == **g).unwrap()),
            other => panic!("unknown target {other:?}"),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// A new connection on `node`: accepted and registered; with a user, also
    /// authenticated and identified; maybe in a group.
    Open {
        node: usize,
        user: Option<usize>,
        group: Option<usize>,
    },
    /// One of `node`'s connections not yet `Ready` (and not closing) is made `Ready`.
    Ready { node: usize, pick: usize },
    /// One of `node`'s unclosed connections: its `Registration` dropped (closed at
    /// once), or else closed locally (open) or its close handshake completed
    /// (closing).
    Close {
        node: usize,
        pick: usize,
        drop: bool,
    },
    /// `broadcast` / `send_to_user` / `send_to_group` of `node`'s next message.
    Send { node: usize, to: To },
    /// The network delivers `publisher`'s oldest pending publication to node
    /// `publisher + hop` (mod the node count).
    Step { publisher: usize, hop: usize },
}

fn to_strategy() -> impl Strategy<Value = To> {
    prop_oneof![
        2 => Just(To::All),
        2 => (0..USERS.len()).prop_map(To::User),
        1 => (0..GROUPS.len()).prop_map(To::Group),
    ]
}

fn op_strategy(nodes: usize) -> impl Strategy<Value = Op> {
    let node = 0..nodes;
    prop_oneof![
        3 => (
            node.clone(),
            proptest::option::weighted(0.75, 0..USERS.len()),
            proptest::option::of(0..GROUPS.len()),
        )
            .prop_map(|(node, user, group)| Op::Open { node, user, group }),
        4 => (node.clone(), 0..64usize).prop_map(|(node, pick)| Op::Ready { node, pick }),
        1 => (node.clone(), 0..64usize, any::<bool>())
            .prop_map(|(node, pick, drop)| Op::Close { node, pick, drop }),
        3 => (node.clone(), to_strategy()).prop_map(|(node, to)| Op::Send { node, to }),
        4 => (node, 1..nodes).prop_map(|(publisher, hop)| Op::Step { publisher, hop }),
    ]
}

fn case_strategy() -> impl Strategy<Value = (usize, Vec<Op>)> {
    (2..=3usize).prop_flat_map(|nodes| {
        (
            Just(nodes),
            prop::collection::vec(op_strategy(nodes), 1..=MAX_OPS),
        )
    })
}

// ── the nodes, their connections and the model ──────────────────────────────

/// The model's view of a connection's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Registered, not `Ready` yet (accepted or authenticated).
    Opening,
    Ready,
    /// Our Close sent, the peer's not received: still listed.
    Closing,
    /// Unlisted.
    Closed,
}

struct Conn {
    owner: Option<AnyConnection>,
    transport: Transport,
    registration: Option<Registration>,
    state: State,
    user: Option<usize>,
    group: Option<usize>,
    /// The model: what it must receive, in order (each delivery that found it
    /// `Ready` and matching).
    expected: Vec<Msg>,
    /// What its transport wrote.
    received: Vec<Msg>,
}

impl Conn {
    fn matches(&self, to: To) -> bool {
        match to {
            To::All => true,
            To::User(u) => self.user == Some(u),
            To::Group(g) => self.group == Some(g),
        }
    }
}

struct Node {
    registry: Registry,
    conns: Vec<Conn>,
    /// How many messages this node has sent (its broker must have seen as many).
    sent: u32,
}

struct Sim {
    nodes: Vec<Node>,
    net: Arc<Mutex<Network>>,
}

impl Sim {
    fn new(nodes: usize, order: Order) -> Sim {
        let net = Arc::new(Mutex::new(Network::new(nodes, order)));
        let nodes = (0..nodes)
            .map(|node| {
                let registry = Registry::open_now();
                let broker = SimBroker {
                    node,
                    net: net.clone(),
                };
                assert!(registry.attach(Arc::new(broker)));
                Node {
                    registry,
                    conns: Vec::new(),
                    sent: 0,
                }
            })
            .collect();
        Sim { nodes, net }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Open { node, user, group } => self.open(node, user, group),
            Op::Ready { node, pick } => {
                let candidates = self.pick(node, |s| s == State::Opening);
                if !candidates.is_empty() {
                    let k = candidates[pick % candidates.len()];
                    let c = &mut self.nodes[node].conns[k];
                    let conn = match c.owner.take() {
                        Some(AnyConnection::Accepted(conn)) => {
                            conn.authenticate(None, now()).expect("authenticates")
                        }
                        Some(AnyConnection::Authenticated(conn)) => conn,
                        other => panic!("connection {k} on node {node} is {other:?}"),
                    };
                    c.owner = Some(conn.ready(now()).expect("becomes Ready").into_any());
                    c.state = State::Ready;
                }
            }
            Op::Close { node, pick, drop } => {
                let candidates = self.pick(node, |s| s != State::Closed);
                if !candidates.is_empty() {
                    let k = candidates[pick % candidates.len()];
                    let c = &mut self.nodes[node].conns[k];
                    if drop {
                        c.registration = None; // the driver task is gone
                        c.state = State::Closed;
                    } else if c.state == State::Closing {
                        // Our Close was read (every op drains); the peer answers.
                        c.transport
                            .handle_peer_close(None, now())
                            .expect("the peer's Close is accepted");
                        c.state = State::Closed;
                    } else {
                        let owner = c.owner.take().expect("an owner");
                        let closing = owner.close(CloseFrame::normal(), now());
                        c.owner = Some(closing.into_any());
                        c.state = State::Closing;
                    }
                }
            }
            Op::Send { node, to } => self.send(node, to)?,
            Op::Step { publisher, hop } => {
                let dest = (publisher + hop) % self.nodes.len();
                self.step(publisher, dest)?;
            }
        }
        self.drain();
        self.check()
    }

    /// The indexes of `node`'s connections whose model state passes `keep`.
    fn pick(&self, node: usize, keep: impl Fn(State) -> bool) -> Vec<usize> {
        let conns = &self.nodes[node].conns;
        (0..conns.len()).filter(|&k| keep(conns[k].state)).collect()
    }

    fn open(&mut self, node: usize, user: Option<usize>, group: Option<usize>) {
        let registry = &self.nodes[node].registry;
        let conn = Connection::new(registry.next_id(), Config::default())
            .accept(now())
            .expect("accepts");
        let transport = conn.transport();
        let registration = registry.register(&conn, now()).expect("registers");
        let owner = match user {
            Some(u) => {
                let conn = conn.authenticate(None, now()).expect("authenticates");
                registry.identify(&conn, USERS[u]).expect("identifies");
                conn.into_any()
            }
            None => conn.into_any(),
        };
        if let Some(g) = group {
            registry.join(owner.id(), GROUPS[g]).expect("joins");
        }
        self.nodes[node].conns.push(Conn {
            owner: Some(owner),
            transport,
            registration: Some(registration),
            state: State::Opening,
            user,
            group,
            expected: Vec::new(),
            received: Vec::new(),
        });
    }

    /// The counts the model expects of a delivery of `to` on `node` now.
    fn expected_report(&self, node: usize, to: To) -> BroadcastReport {
        let mut report = BroadcastReport::default();
        for c in self.nodes[node].conns.iter().filter(|c| c.matches(to)) {
            match c.state {
                State::Opening => report.not_ready += 1,
                State::Ready => report.delivered += 1,
                State::Closing => report.closing += 1,
                State::Closed => {}
            }
        }
        report
    }

    /// Records `msg` as due to every `Ready` connection of `node` that matches `to`.
    fn record(&mut self, node: usize, to: To, msg: Msg) {
        for c in self.nodes[node].conns.iter_mut() {
            if c.state == State::Ready && c.matches(to) {
                c.expected.push(msg);
            }
        }
    }

    fn send(&mut self, node: usize, to: To) -> Result<(), TestCaseError> {
        let n = &mut self.nodes[node];
        n.sent += 1;
        let msg = (node, n.sent);
        let mut want = self.expected_report(node, to);
        want.published = Some(Published::Queued);
        let registry = &self.nodes[node].registry;
        let got = match to {
            To::All => registry.broadcast(message(msg)),
            To::User(u) => registry.send_to_user(USERS[u], message(msg)),
            To::Group(g) => registry.send_to_group(GROUPS[g], message(msg)),
        };
        prop_assert_eq!(
            got,
            want,
            "local delivery of {:?} to {:?} on node {}",
            msg,
            to,
            node
        );
        self.record(node, to, msg);
        // The broker was handed exactly this, after the earlier ones (5).
        let net = self.net.lock().unwrap();
        let last = net.published[node].last().expect("published");
        prop_assert_eq!(&last.message, &message(msg));
        prop_assert_eq!(&last.target, &to.target());
        Ok(())
    }

    /// The network hands `publisher`'s next publication to `dest`, if any.
    fn step(&mut self, publisher: usize, dest: usize) -> Result<(), TestCaseError> {
        let Some(publication) = self.net.lock().unwrap().take(publisher, dest) else {
            return Ok(());
        };
        let msg = parse(&publication.message);
        prop_assert_eq!(
            msg.0,
            publisher,
            "a publication carries its publisher's number"
        );
        let to = To::from_target(&publication.target);
        let want = self.expected_report(dest, to);
        let before = self.net.lock().unwrap().published[dest].len();
        let got = self.nodes[dest].registry.deliver_published(&publication);
        prop_assert_eq!(
            got,
            want,
            "node {} delivering {:?} to {:?} from node {}",
            dest,
            msg,
            to,
            publisher
        );
        let after = self.net.lock().unwrap().published[dest].len();
        prop_assert_eq!(
            before,
            after,
            "deliver_published republished {:?} on node {}",
            msg,
            dest
        );
        self.record(dest, to, msg);
        Ok(())
    }

    /// Reads every frame every connection was sent.
    fn drain(&mut self) {
        for c in self.nodes.iter_mut().flat_map(|n| n.conns.iter_mut()) {
            while let Some(frame) = c.transport.next_frame(now()) {
                if let Frame::Message(m) = frame {
                    c.received.push(parse(&m));
                }
            }
        }
    }

    fn check(&self) -> Result<(), TestCaseError> {
        for (node, n) in self.nodes.iter().enumerate() {
            for (k, c) in n.conns.iter().enumerate() {
                let who = format!("connection {k} ({:?}) on node {node}", c.state);
                // (3) exactly once.
                let distinct: BTreeSet<Msg> = c.received.iter().copied().collect();
                prop_assert_eq!(
                    distinct.len(),
                    c.received.len(),
                    "exactly once: {} received {:?}",
                    &who,
                    &c.received
                );
                // (1) per-publisher order.
                let mut last: BTreeMap<usize, u32> = BTreeMap::new();
                for &(publisher, seq) in &c.received {
                    if let Some(&prev) = last.get(&publisher) {
                        prop_assert!(
                            prev < seq,
                            "per-publisher order: {} received node {}'s #{} after #{}: {:?}",
                            &who,
                            publisher,
                            seq,
                            prev,
                            &c.received
                        );
                    }
                    last.insert(publisher, seq);
                }
                // (2) ready-only, and only the target.
                for msg in &c.received {
                    prop_assert!(
                        c.expected.contains(msg),
                        "ready-only: {} received {:?}, not Ready or not a target when it was delivered",
                        &who,
                        msg
                    );
                }
                // (4) nothing lost, in delivery order.
                prop_assert_eq!(&c.received, &c.expected, "nothing lost: {}", &who);
                let listed = n.registry.contains(c.transport.id());
                prop_assert_eq!(listed, c.state != State::Closed, "listed: {}", &who);
            }
            // (5) the broker saw this node's own sends and nothing else.
            let seen = self.net.lock().unwrap().published[node].len();
            prop_assert_eq!(seen, n.sent as usize, "node {}'s broker", node);
        }
        Ok(())
    }

    /// Delivers everything pending, one publisher and destination after another.
    fn flush(&mut self) -> Result<(), TestCaseError> {
        let nodes = self.nodes.len();
        while !self.net.lock().unwrap().is_empty() {
            for publisher in 0..nodes {
                for dest in (0..nodes).filter(|&d| d != publisher) {
                    self.step(publisher, dest)?;
                    self.drain();
                    self.check()?;
                }
            }
        }
        // Every publication reached every other node exactly once.
        let net = self.net.lock().unwrap();
        for (publisher, publications) in net.published.iter().enumerate() {
            for index in 0..publications.len() {
                for dest in (0..nodes).filter(|&d| d != publisher) {
                    let times = net.deliveries.get(&(publisher, index, dest)).copied();
                    prop_assert_eq!(
                        times,
                        Some(1),
                        "node {}'s publication {} at node {}",
                        publisher,
                        index,
                        dest
                    );
                }
            }
        }
        Ok(())
    }
}

fn run(nodes: usize, ops: &[Op], order: Order) -> Result<(), TestCaseError> {
    let mut sim = Sim::new(nodes, order);
    sim.check()?;
    for op in ops {
        sim.apply(op)?;
    }
    sim.flush()
}

proptest! {
    #[test]
    fn cluster_seam_keeps_per_publisher_order_and_ready_only((nodes, ops) in case_strategy()) {
        run(nodes, &ops, Order::Fifo)?;
    }
}

/// The order check is not vacuous: a network that delivers a publisher's newest
/// pending publication first is caught.
#[test]
fn reordering_within_a_publisher_is_caught() {
    let ops = [
        Op::Open {
            node: 1,
            user: Some(0),
            group: None,
        },
        Op::Ready { node: 1, pick: 0 },
        Op::Send {
            node: 0,
            to: To::All,
        },
        Op::Send {
            node: 0,
            to: To::User(0),
        },
        Op::Step {
            publisher: 0,
            hop: 1,
        },
        Op::Step {
            publisher: 0,
            hop: 1,
        },
    ];
    run(2, &ops, Order::Fifo).expect("a FIFO network passes");
    let err = run(2, &ops, Order::NewestFirst).expect_err("reordering is caught");
    assert!(err.to_string().contains("per-publisher order"), "{err}");
}
