//! The cluster layer (issue 15) over a real `redis-server`: nodes are `Registry`s in
//! this process, each joined with `Cluster::start`, their connections driven with
//! the core handles (no sockets needed to watch what each connection is sent).
//!
//! - two and three nodes: a broadcast reaches exactly the `Ready` connections on
//!   every node, each once, in the publisher's order; a whisper reaches the user on
//!   whichever node they are; group membership on another node is honoured, join
//!   and leave; presence converges within two heartbeats;
//! - faults: Redis killed mid-run and restarted — local delivery never stops, the
//!   failure is counted and shown (`connected: false`), cross-node delivery
//!   resumes; a node that dies without a word (its runtime dropped) disappears from
//!   presence within the TTL; a node that leaves disappears at once and is no
//!   longer a target, and so does a node that drains; a subscriber that stops
//!   reading does not slow anyone; a node that falls behind subscribes afresh and
//!   counts what it skipped; a subscription whose connection goes silent is found
//!   by its ping and made again; a node that leaves with Redis gone counts what it
//!   could not send.
#![cfg(all(feature = "redis", target_os = "linux"))]

#[path = "support/redis.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use redis_server::RedisServer;
use ws_lifecycle::cluster::{Cluster, ClusterConfig};
use ws_lifecycle::handle::{Connection, Ready, Transport};
use ws_lifecycle::registry::{Published, Registration};
use ws_lifecycle::{Config, Frame, Message, Registry};

/// Every wait in this file is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

/// A node: its registry, its cluster membership, its connections.
struct Node {
    registry: Registry,
    cluster: Cluster,
    conns: Vec<Conn>,
}

/// One connection of a node, and what it has been sent so far.
struct Conn {
    transport: Transport,
    _ready: Option<Connection<Ready>>,
    _registration: Registration,
    got: Vec<String>,
}

fn config(redis: &RedisServer, node: &str, prefix: &str) -> ClusterConfig {
    let mut config = ClusterConfig::new(redis.url(), node);
    config.prefix = prefix.to_owned();
    config.heartbeat = Duration::from_millis(100);
    config.presence_ttl = Duration::from_millis(500);
    config.backoff_max = Duration::from_millis(200);
    config.command_timeout = Duration::from_millis(500);
    config
}

impl Node {
    fn start(redis: &RedisServer, name: &str, prefix: &str) -> Node {
        Node::with_config(config(redis, name, prefix))
    }

    fn with_config(config: ClusterConfig) -> Node {
        let registry = Registry::open_now();
        let cluster = Cluster::start(registry.clone(), config).unwrap();
        Node {
            registry,
            cluster,
            conns: Vec::new(),
        }
    }

    /// A connection of `user` (in `group`, if any), made `Ready` if `ready`.
    fn connect(&mut self, user: &str, group: Option<&str>, ready: bool) -> usize {
        let now = Instant::now();
        let conn = Connection::new(self.registry.next_id(), Config::default())
            .accept(now)
            .unwrap();
        let registration = self.registry.register(&conn, now).unwrap();
        let conn = conn.authenticate(None, now).unwrap();
        self.registry.identify(&conn, user).unwrap();
        if let Some(group) = group {
            self.registry.join(conn.id(), group).unwrap();
        }
        let transport = conn.transport();
        let ready = ready.then(|| conn.ready(now).unwrap());
        self.conns.push(Conn {
            transport,
            _ready: ready,
            _registration: registration,
            got: Vec::new(),
        });
        self.conns.len() - 1
    }

    /// Takes every frame sent so far to each connection.
    fn collect(&mut self) {
        let now = Instant::now();
        for conn in &mut self.conns {
            while let Some(frame) = conn.transport.next_frame(now) {
                if let Frame::Message(message) = frame {
                    conn.got.push(message.as_text().unwrap_or("").to_owned());
                }
            }
        }
    }
}

/// Waits (bounded) until `done` holds for the nodes, collecting their frames.
async fn until(nodes: &mut [&mut Node], what: &str, done: impl Fn(&[&mut Node]) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        for node in nodes.iter_mut() {
            node.collect();
        }
        if done(nodes) {
            return;
        }
        assert!(Instant::now() < deadline, "in time: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn connected(nodes: &mut [&mut Node]) {
    until(nodes, "connected to Redis", |nodes| {
        nodes.iter().all(|n| n.cluster.snapshot().connected)
    })
    .await;
}

/// Nodes `a` with ada and `b` with bob (both `Ready`), connected to Redis.
async fn pair(mut a: Node, mut b: Node) -> (Node, Node) {
    a.connect("ada", None, true);
    b.connect("bob", None, true);
    connected(&mut [&mut a, &mut b]).await;
    (a, b)
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Three nodes: a burst of broadcasts from A, and one from C, reach exactly the
/// `Ready` connections on all three nodes — once each, A's in A's order — and no
/// connection that is not `Ready` (G7 at each node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reaches_every_ready_connection_on_every_node_once_in_order() {
    let redis = RedisServer::start();
    let (mut a, mut b, mut c) = (
        Node::start(&redis, "a", "t1"),
        Node::start(&redis, "b", "t1"),
        Node::start(&redis, "c", "t1"),
    );
    for node in [&mut a, &mut b, &mut c] {
        node.connect("ada", None, true);
        node.connect("bob", None, true);
        node.connect("eve", None, false); // authenticated, not Ready: nothing
    }
    connected(&mut [&mut a, &mut b, &mut c]).await;
    let burst = numbered("a-", 200);
    for text in &burst {
        let report = a.registry.broadcast(Message::text(text.as_str()));
        assert_eq!(report.delivered, 2, "the local Ready ones");
        assert_eq!(report.published, Some(Published::Queued));
    }
    c.registry.broadcast(Message::text("from-c"));
    until(
        &mut [&mut a, &mut b, &mut c],
        "every Ready connection has all",
        |nodes| {
            nodes
                .iter()
                .all(|n| n.conns[..2].iter().all(|c| c.got.len() == 201))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await; // anything extra would show
    for node in [&mut a, &mut b, &mut c] {
        node.collect();
        for conn in &node.conns[..2] {
            let from_a: Vec<&String> = conn.got.iter().filter(|t| t.starts_with("a-")).collect();
            assert_eq!(
                from_a,
                burst.iter().collect::<Vec<_>>(),
                "A's order, each once"
            );
            assert_eq!(conn.got.iter().filter(|t| *t == "from-c").count(), 1);
        }
        assert!(node.conns[2].got.is_empty(), "not Ready: nothing (G7)");
    }
    let snapshot = b.cluster.snapshot();
    assert_eq!(
        (snapshot.received, snapshot.missed),
        (201, 0),
        "{snapshot:?}"
    );
    assert_eq!(snapshot.delivered, 402, "{snapshot:?}");
}

/// A whisper reaches the user's connections on whichever nodes they are; a group
/// send reaches the group's members on other nodes, and stops after they leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_groups_are_reached_across_nodes() {
    let redis = RedisServer::start();
    let (mut a, mut b) = (
        Node::start(&redis, "a", "t2"),
        Node::start(&redis, "b", "t2"),
    );
    a.connect("ada", None, true);
    let bob_phone = b.connect("bob", Some("room"), true);
    b.connect("carol", None, true);
    connected(&mut [&mut a, &mut b]).await;
    let report = a.registry.send_to_user("bob", Message::text("psst"));
    assert_eq!(
        (report.selected(), report.published),
        (0, Some(Published::Queued))
    );
    a.registry
        .send_to_group("room", Message::text("to the room"));
    until(&mut [&mut a, &mut b], "bob has both", |nodes| {
        nodes[1].conns[0].got == ["psst", "to the room"]
    })
    .await;
    let id = {
        let ids = b.registry.connections_of("bob");
        ids[0]
    };
    assert!(b.registry.leave(id, "room"));
    // carol joins after the room has been written to: membership is read at each
    // delivery, here, not when anything was published.
    let carol = b.registry.connections_of("carol")[0];
    b.registry.join(carol, "room").unwrap();
    a.registry
        .send_to_group("room", Message::text("after leaving"));
    a.registry.broadcast(Message::text("marker"));
    until(&mut [&mut a, &mut b], "the marker", |nodes| {
        nodes[1].conns[bob_phone].got.last().map(String::as_str) == Some("marker")
    })
    .await;
    assert_eq!(b.conns[bob_phone].got, ["psst", "to the room", "marker"]);
    assert_eq!(
        b.conns[1].got,
        ["after leaving", "marker"],
        "carol: the room since she joined, and the broadcast"
    );
    assert_eq!(a.conns[0].got, ["marker"], "ada: only the broadcast");
}

/// Presence converges within two heartbeats on every node; a node that leaves is
/// gone from the others' view at their next heartbeat and no longer receives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_converges_and_a_leaving_node_goes_at_once() {
    let redis = RedisServer::start();
    let (mut a, mut b, mut c) = (
        Node::start(&redis, "a", "t3"),
        Node::start(&redis, "b", "t3"),
        Node::start(&redis, "c", "t3"),
    );
    a.connect("ada", None, true);
    b.connect("ada", None, true);
    b.connect("bob", None, true);
    c.connect("carol", None, false);
    connected(&mut [&mut a, &mut b, &mut c]).await;
    let started = Instant::now();
    until(
        &mut [&mut a, &mut b, &mut c],
        "presence converged",
        |nodes| {
            nodes.iter().all(|n| {
                let presence = n.cluster.presence();
                let users = presence.users();
                presence.nodes.len() == 3
                    && users.get("ada") == Some(&2)
                    && users.get("bob") == Some(&1)
                    && users.get("carol") == Some(&1)
            })
        },
    )
    .await;
    let converged = started.elapsed();
    assert_eq!(a.cluster.presence().nodes_of("ada"), ["a", "b"]);
    assert_eq!(a.cluster.snapshot().nodes, ["a", "b", "c"]);
    b.cluster.leave().await;
    let left = Instant::now();
    assert_eq!(
        b.registry.broadcast(Message::text("x")).published,
        Some(Published::Left)
    );
    until(&mut [&mut a, &mut c], "b gone from the others", |nodes| {
        nodes
            .iter()
            .all(|n| !n.cluster.presence().nodes.contains_key("b"))
    })
    .await;
    let gone = left.elapsed();
    // Gone by deletion at their next heartbeat, not by the TTL (500 ms).
    assert!(gone < Duration::from_millis(450), "gone after {gone:?}");
    a.registry.broadcast(Message::text("after b left"));
    c.registry.broadcast(Message::text("marker"));
    until(&mut [&mut a], "the marker", |nodes| {
        nodes[0].conns[0].got.last().map(String::as_str) == Some("marker")
    })
    .await;
    b.collect();
    for conn in &b.conns {
        assert_eq!(
            conn.got,
            ["x"],
            "b left: its own broadcast only, no one else's"
        );
    }
    println!("presence converged in {converged:?}; b gone from the others after {gone:?}");
}

/// A node that drains leaves the cluster as the drain begins, without a call to
/// `leave`: its broadcasts are no longer published, the others stop seeing it at
/// their next heartbeat (deleted, not expired), and a target name too long for an
/// envelope is refused and counted rather than sent cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_leaves_the_cluster_at_once() {
    let redis = RedisServer::start();
    let (mut a, mut b) = pair(
        Node::start(&redis, "a", "t7"),
        Node::start(&redis, "b", "t7"),
    )
    .await;
    until(&mut [&mut a, &mut b], "presence converged", |nodes| {
        nodes.iter().all(|n| n.cluster.presence().nodes.len() == 2)
    })
    .await;

    let long = "u".repeat(70_000);
    let report = a.registry.send_to_user(&long, Message::text("x"));
    assert_eq!(report.published, Some(Published::Dropped));
    assert_eq!(a.cluster.snapshot().dropped, 1);

    let began = Instant::now();
    let report = b
        .registry
        .drain(tokio::time::sleep(Duration::from_millis(50)))
        .await;
    assert_eq!(report.closing, 1);
    assert!(b.cluster.snapshot().left, "draining left the cluster");
    assert_eq!(
        b.registry
            .broadcast(Message::text("after the drain"))
            .published,
        Some(Published::Left)
    );
    until(&mut [&mut a], "b gone from a's presence", |nodes| {
        !nodes[0].cluster.presence().nodes.contains_key("b")
    })
    .await;
    let gone = began.elapsed();
    // Deleted at once (the TTL is 500 ms; the drain itself waited 50 ms).
    assert!(gone < Duration::from_millis(450), "gone after {gone:?}");
    println!("a draining node gone from the others' presence after {gone:?}");
}

/// A node that falls behind the bus (here: `max_lag` of 100 µs, so a burst is
/// enough) drops its subscription — and the backlog the Redis client would hold
/// for it without bound — and subscribes afresh: counted as an error, and what it
/// skipped counted as missed, so received + missed = published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_falls_behind_subscribes_afresh_and_counts_what_it_skipped() {
    let redis = RedisServer::start();
    let mut a = Node::start(&redis, "a", "t8");
    let mut config = config(&redis, "b", "t8");
    config.max_lag = Duration::from_micros(100);
    let mut b = Node::with_config(config);
    b.connect("bob", None, true);
    connected(&mut [&mut a, &mut b]).await;
    const BURST: usize = 20_000;
    let mut published = 0;
    for i in 0..BURST {
        loop {
            match a
                .registry
                .broadcast(Message::text(format!("{i}")))
                .published
            {
                Some(Published::Queued) => break,
                Some(Published::Dropped) => tokio::time::sleep(Duration::from_millis(1)).await,
                other => panic!("{other:?}"),
            }
        }
        published += 1;
        if i % 1_000 == 0 {
            b.collect(); // keep b's outbox under its budget
        }
    }
    // Gaps are seen by what follows them: markers until one arrives after b is
    // subscribed again.
    let deadline = Instant::now() + WAIT;
    loop {
        a.registry.broadcast(Message::text("marker"));
        published += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        b.collect();
        let snapshot = b.cluster.snapshot();
        let got = b.conns[0].got.len() as u64;
        if snapshot.connected && got + snapshot.missed == published {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "received {got} + missed {} != published {published}: {snapshot:?}",
            snapshot.missed
        );
    }
    let snapshot = b.cluster.snapshot();
    assert!(
        snapshot.errors >= 1,
        "fell behind at least once: {snapshot:?}"
    );
    assert!(snapshot.reconnects >= 1, "{snapshot:?}");
    println!(
        "b fell behind {} times; received {}, missed {} of {published}",
        snapshot.errors,
        b.conns[0].got.len(),
        snapshot.missed
    );
}

/// A TCP proxy to Redis whose open connections can be silenced: nothing forwarded
/// either way and nothing closed, as a partition or a failover leaves a connection;
/// connections made afterwards are forwarded.
struct SilencingProxy {
    port: u16,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SilencingProxy {
    async fn start(redis: &RedisServer) -> SilencingProxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let generation = Arc::new(AtomicU64::new(0));
        let upstream = format!("127.0.0.1:{}", redis.port());
        let current = generation.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let born = current.load(Ordering::SeqCst);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                for (mut from, mut to) in [(client_read, server_write), (server_read, client_write)]
                {
                    let current = current.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if current.load(Ordering::SeqCst) != born {
                                // Silenced: hold both ends open, pass nothing on.
                                let _held = (&from, &to);
                                std::future::pending::<()>().await;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        SilencingProxy { port, generation }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Every connection open now goes silent.
    fn silence(&self) {
        (self.generation).fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A subscription whose connection goes silent (no data, no close: nothing a
/// reader of it would ever notice) is found by the ping every heartbeat and made
/// again: the node hears the others again within a heartbeat and the command
/// timeout, and counts the loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_gone_silent_is_found_and_made_again() {
    let redis = RedisServer::start();
    let proxy = SilencingProxy::start(&redis).await;
    let mut config = config(&redis, "b", "t9");
    config.url = proxy.url();
    let (mut a, mut b) = pair(Node::start(&redis, "a", "t9"), Node::with_config(config)).await;
    a.registry.broadcast(Message::text("before"));
    until(&mut [&mut a, &mut b], "before", |n| {
        n[1].conns[0].got == ["before"]
    })
    .await;

    proxy.silence();
    let silenced = Instant::now();
    let errors_before = b.cluster.snapshot().errors;
    let deadline = silenced + Duration::from_secs(5);
    let mut i = 0;
    loop {
        a.registry.broadcast(Message::text(format!("after-{i}")));
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        b.collect();
        if b.conns[0].got.len() > 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b deaf 5 s after its connections went silent: {:?}",
            b.cluster.snapshot()
        );
    }
    let heard = silenced.elapsed();
    // A heartbeat (100 ms) and the command timeout (500 ms) to notice, a backoff
    // (50 ms) and a subscription to recover.
    assert!(
        heard < Duration::from_secs(2),
        "heard again after {heard:?}"
    );
    assert!(b.cluster.snapshot().errors > errors_before);
    println!("b heard the others again {heard:?} after its connections went silent");
}

/// Redis killed mid-run: every node keeps delivering to its own connections, sees
/// the failure (`connected: false`, errors counted), and — once Redis is back —
/// cross-node delivery resumes. What was published during the outage is held in
/// the bounded queue and sent after the reconnection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_then_back_local_delivery_never_stops() {
    let mut redis = RedisServer::start();
    let (mut a, mut b) = pair(
        Node::start(&redis, "a", "t4"),
        Node::start(&redis, "b", "t4"),
    )
    .await;
    a.registry.broadcast(Message::text("before"));
    until(&mut [&mut a, &mut b], "before", |n| {
        n[1].conns[0].got == ["before"]
    })
    .await;

    redis.kill();
    until(&mut [&mut a, &mut b], "both see Redis gone", |nodes| {
        nodes.iter().all(|n| !n.cluster.snapshot().connected)
    })
    .await;
    // Local delivery does not wait: each broadcast returns at once, delivered here.
    let started = Instant::now();
    for i in 0..100 {
        let report = a.registry.broadcast(Message::text(format!("during-{i}")));
        assert_eq!(report.delivered, 1);
        assert_eq!(
            report.published,
            Some(Published::Queued),
            "held in the queue"
        );
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(100),
        "100 local broadcasts took {took:?}"
    );
    a.collect();
    assert_eq!(a.conns[0].got.len(), 101, "ada got every one, Redis or not");
    assert!(a.cluster.snapshot().errors > 0);

    redis.restart();
    connected(&mut [&mut a, &mut b]).await;
    // The held publications reach b once both are back (b may have resubscribed
    // after some were sent: those are counted as missed, never silently gone).
    a.registry.broadcast(Message::text("after"));
    until(&mut [&mut a, &mut b], "after", |n| {
        n[1].conns[0].got.last().map(String::as_str) == Some("after")
    })
    .await;
    let snapshot = b.cluster.snapshot();
    let got = b.conns[0].got.len() as u64;
    assert_eq!(
        got + snapshot.missed,
        102,
        "received + missed = published: {snapshot:?}"
    );
    assert!(b.cluster.snapshot().reconnects > 0);
    println!(
        "after the outage: b received {} of the 100 held, missed {}",
        got - 2,
        snapshot.missed
    );
}

/// A node that leaves while Redis is gone cannot send what it queued: those
/// publications are counted in `dropped` (and logged), not lost silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_with_redis_gone_counts_what_it_could_not_send() {
    let mut redis = RedisServer::start();
    let (mut a, _b) = pair(
        Node::start(&redis, "a", "t10"),
        Node::start(&redis, "b", "t10"),
    )
    .await;
    redis.kill();
    until(&mut [&mut a], "a sees Redis gone", |nodes| {
        !nodes[0].cluster.snapshot().connected
    })
    .await;
    for i in 0..10 {
        let report = a.registry.broadcast(Message::text(format!("held-{i}")));
        assert_eq!(report.published, Some(Published::Queued));
    }
    a.cluster.leave().await;
    until(&mut [&mut a], "the unsent counted", |nodes| {
        nodes[0].cluster.snapshot().dropped == 10
    })
    .await;
    let snapshot = a.cluster.snapshot();
    assert_eq!(
        (snapshot.published, snapshot.queued),
        (0, 0),
        "{snapshot:?}"
    );
}

/// A node that dies without leaving (its runtime dropped: no goodbye, its tasks
/// gone) disappears from the others' presence within the TTL (500 ms here) plus a
/// heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_leaves_presence_within_the_ttl() {
    let redis = RedisServer::start();
    let mut a = Node::start(&redis, "a", "t5");
    let url_config = config(&redis, "doomed", "t5");
    // The doomed node lives on a runtime of its own, dropped to kill it.
    let (registry, runtime) = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let registry = Registry::open_now();
        runtime.block_on(async {
            Cluster::start(registry.clone(), url_config).unwrap();
        });
        (registry, runtime)
    })
    .join()
    .unwrap();
    let now = Instant::now();
    let conn = Connection::new(registry.next_id(), Config::default())
        .accept(now)
        .unwrap();
    let _registration = registry.register(&conn, now).unwrap();
    let conn = conn.authenticate(None, now).unwrap();
    registry.identify(&conn, "zed").unwrap();
    until(&mut [&mut a], "zed seen", |n| {
        n[0].cluster.presence().users().contains_key("zed")
    })
    .await;
    std::thread::spawn(move || drop(runtime)).join().unwrap();
    let died = Instant::now();
    until(&mut [&mut a], "zed gone", |n| {
        !n[0].cluster.presence().users().contains_key("zed")
    })
    .await;
    let gone = died.elapsed();
    assert!(
        gone < Duration::from_millis(500 + 100 + 200),
        "gone after {gone:?}"
    );
    assert_eq!(a.cluster.snapshot().nodes, ["a"]);
    println!("a dead node left presence after {gone:?} (TTL 500 ms, heartbeat 100 ms)");
}

/// A subscriber that stops reading (a raw client subscribed to the bus that never
/// reads a byte) slows no one: a burst still reaches the live node at full speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_slows_no_one() {
    use tokio::io::AsyncWriteExt;
    let redis = RedisServer::start();
    let (a, mut b) = pair(
        Node::start(&redis, "a", "t6"),
        Node::start(&redis, "b", "t6"),
    )
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = socket
        .connect(format!("127.0.0.1:{}", redis.port()).parse().unwrap())
        .await
        .unwrap();
    stuck
        .write_all(b"*2\r\n$9\r\nSUBSCRIBE\r\n$6\r\nt6:bus\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // 2 000 x 256 B: under the outbox's 1 MiB budget, which this test's reader
    // (polling every 10 ms) must not meet.
    let payload = "x".repeat(256);
    let started = Instant::now();
    for i in 0..2000 {
        a.registry
            .broadcast(Message::text(format!("{i}:{payload}")));
    }
    let deadline = Instant::now() + WAIT;
    while b.conns[0].got.len() < 2000 && Instant::now() < deadline {
        b.collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        b.conns[0].got.len(),
        2000,
        "a: {:?}\nb: {:?}",
        a.cluster.snapshot(),
        b.cluster.snapshot()
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "0.5 MB across nodes took {took:?}"
    );
    println!("2 000 x 256 B across nodes beside a stuck subscriber: {took:?}");
    drop(stuck);
}

/// One connection anywhere, by its node and id: delivered by that node alone, to
/// that connection alone, if it is `Ready` (G7); on this node, the registry's own
/// answer (a refusal hands the message back, G3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_by_node_and_id() {
    use ws_lifecycle::cluster::Routed;
    let redis = RedisServer::start();
    let (mut a, mut b, mut c) = (
        Node::start(&redis, "a", "t7"),
        Node::start(&redis, "b", "t7"),
        Node::start(&redis, "c", "t7"),
    );
    a.connect("ada", None, true);
    b.connect("bob", None, true);
    b.connect("bob", None, true); // bob's other device: not addressed
    b.connect("eve", None, false); // not Ready
    c.connect("carol", None, true);
    connected(&mut [&mut a, &mut b, &mut c]).await;
    let ids = b.registry.connections_of("bob");
    let (bob_first, bob_second) = (ids[0], ids[1]);
    let eve = b.registry.connections_of("eve")[0];
    let sent = a.cluster.send_to("b", bob_first, Message::text("only you"));
    assert!(
        matches!(sent, Routed::Remote(Published::Queued)),
        "{sent:?}"
    );
    a.cluster.send_to("b", eve, Message::text("not ready"));
    // The same id on another node is another connection: c's, if any, gets nothing.
    a.cluster.send_to(
        "b",
        ws_lifecycle::ConnectionId::new(9_999),
        Message::text("gone"),
    );
    let local = a
        .cluster
        .send_to("a", a.registry.ids()[0], Message::text("here"));
    assert!(matches!(local, Routed::Local(Ok(()))), "{local:?}");
    a.registry.broadcast(Message::text("marker"));
    until(
        &mut [&mut a, &mut b, &mut c],
        "the marker everywhere",
        |nodes| {
            nodes.iter().all(|n| {
                n.conns
                    .iter()
                    .filter(|c| c._ready.is_some())
                    .all(|c| c.got.last().map(String::as_str) == Some("marker"))
            })
        },
    )
    .await;
    let index = |node: &Node, id| {
        let ids: Vec<_> = node.conns.iter().map(|c| c.transport.id()).collect();
        ids.iter().position(|x| *x == id).unwrap()
    };
    assert_eq!(b.conns[index(&b, bob_first)].got, ["only you", "marker"]);
    assert_eq!(b.conns[index(&b, bob_second)].got, ["marker"]);
    assert!(
        b.conns[index(&b, eve)].got.is_empty(),
        "not Ready: nothing (G7)"
    );
    assert_eq!(c.conns[0].got, ["marker"]);
    assert_eq!(a.conns[0].got, ["here", "marker"]);
    let snapshot = b.cluster.snapshot();
    assert_eq!(
        snapshot.delivered, 3,
        "only you, and two markers: {snapshot:?}"
    );
}
