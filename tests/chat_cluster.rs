//! The example chat as a cluster: three processes of the example binary (the one
//! `cargo test --all-features` builds, with the `redis` feature), each started with
//! `--redis` on one real `redis-server`, and clients on every node.
//!
//! - a `say` on one node reaches every `Ready` client on all three, each message
//!   exactly once and each sender's in order, with two senders on two nodes at once;
//! - a `whisper` from node A reaches a user whose only connection is on node C, and
//!   no one else;
//! - `/stats`'s `cluster` object: every node lists all three within about 2 s, the
//!   presence counts every node's users, and the welcome's `online` is cluster-wide;
//! - a node killed with SIGKILL (no goodbye) disappears from the others' `nodes` and
//!   presence within the presence TTL and a heartbeat (bounded here at 5 s), and the
//!   survivors still chat.
//!
//! Like `tests/chat_signal.rs`, it runs the binary `cargo test` builds (a `--test
//! chat_cluster` run alone does not rebuild it: `cargo build --example chat
//! --features axum,redis` first).
#![cfg(all(feature = "axum", feature = "redis", target_os = "linux"))]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::redis::RedisServer;
use support::{WAIT, process_stats};
use tokio_tungstenite::tungstenite::Message;
use ws_lifecycle::cluster::ClusterSnapshot;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Says per sender.
const SAYS: usize = 25;

/// A node: the process, its address and its name.
struct Node {
    child: tokio::process::Child,
    addr: String,
    name: &'static str,
}

async fn start_node(redis: &RedisServer, name: &'static str) -> Node {
    let url = redis.url();
    let (child, addr) = support::chat_process(&["--redis", &url, "--node", name]).await;
    Node { child, addr, name }
}

/// A client authenticated at the upgrade as `user`; returns it `Ready` and its
/// welcome message.
async fn login(addr: &str, user: &str) -> (Ws, Value) {
    let url = format!("ws://{addr}/ws?token={user}:secret");
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connected in time")
        .expect("the upgrade succeeds");
    let ready = read(&mut ws).await.expect("ready");
    assert_eq!(ready["type"], "ready", "{ready}");
    assert_eq!(ready["user"], user);
    let welcome = read(&mut ws).await.expect("welcome");
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (ws, welcome)
}

/// The next JSON message within `WAIT`; `None` if the socket ended.
async fn read(ws: &mut Ws) -> Option<Value> {
    read_within(ws, WAIT)
        .await
        .expect("the server sent something in time")
}

/// The next JSON message within `limit` (`Err` if none came), skipping pings.
async fn read_within(ws: &mut Ws, limit: Duration) -> Result<Option<Value>, ()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err(()),
            Ok(Some(Ok(Message::Text(text)))) => {
                return Ok(Some(serde_json::from_str(&text).unwrap()));
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => {
                println!("socket ended: {other:?}");
                return Ok(None);
            }
        }
    }
}

async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

/// Polls every node's `/stats` until `done` holds for all of them, at most `limit`;
/// returns how long it took, or panics with the last `/stats` seen.
async fn until_all(nodes: &[&Node], limit: Duration, done: impl Fn(&Value) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let mut last = Vec::new();
        for node in nodes {
            last.push(process_stats(&node.addr).await);
        }
        if last.iter().all(&done) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "not within {limit:?}; last /stats' cluster objects: {:#?}",
            last.iter().map(|s| &s["cluster"]).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn node_names(stats: &Value) -> Vec<&str> {
    stats["cluster"]["nodes"]
        .as_array()
        .map(|nodes| nodes.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn presence_users(stats: &Value) -> BTreeMap<String, u64> {
    let users = stats["cluster"]["presence"]["users"].as_object();
    (users.into_iter().flatten())
        .map(|(user, n)| (user.clone(), n.as_u64().unwrap()))
        .collect()
}

/// Reads `ws` until it has `said` `end` from every one of `senders`, then 300 ms
/// more (nothing may follow); returns every message, in arrival order, and when the
/// last `end` arrived.
async fn collect_until_end(ws: &mut Ws, senders: &[&str]) -> (Vec<Value>, Instant) {
    let mut got = Vec::new();
    let mut ended = 0;
    while ended < senders.len() {
        let message = read(ws).await.expect("the socket stays open");
        if message["type"] == "said" && message["text"] == "end" {
            ended += 1;
        }
        got.push(message);
    }
    let ended_at = Instant::now();
    if let Ok(Some(extra)) = read_within(ws, Duration::from_millis(300)).await {
        got.push(extra);
    }
    (got, ended_at)
}

/// What each client should have heard from `sender`: the says, in order, then `end`.
fn says_of(sender: &str) -> Vec<Value> {
    let mut says: Vec<Value> = (0..SAYS)
        .map(|i| json!({"type": "said", "from": sender, "text": format!("{sender} {i}")}))
        .collect();
    says.push(json!({"type": "said", "from": sender, "text": "end"}));
    says
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_chat_as_one_and_a_killed_node_disappears() {
    let redis = RedisServer::start();
    let started = Instant::now();
    let a = start_node(&redis, "a").await;
    let mut b = start_node(&redis, "b").await;
    let c = start_node(&redis, "c").await;

    // (c) Every node lists all three, connected to Redis.
    let all = ["a", "b", "c"];
    let took = until_all(&[&a, &b, &c], Duration::from_secs(3), |stats| {
        node_names(stats) == all && stats["cluster"]["connected"] == true
    })
    .await;
    println!(
        "all three nodes listed and connected on every node {:?} after the last start ({:?} after the first)",
        took,
        started.elapsed()
    );
    assert!(took <= Duration::from_secs(2), "{took:?}");
    let stats = process_stats(&a.addr).await;
    let cluster = stats["cluster"].as_object().expect("a cluster object");
    // ClusterSnapshot's fields, all of them, then `presence`.
    let snapshot = serde_json::to_value(ClusterSnapshot::default()).unwrap();
    let mut want: Vec<&str> = snapshot
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    want.push("presence");
    want.sort_unstable();
    let mut keys: Vec<&str> = cluster.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, want, "{stats}");
    assert_eq!(cluster["node"], "a");
    assert_eq!(cluster["left"], false);

    // Two clients on each node; carol's only connection is on C.
    let mut clients: Vec<(String, Ws)> = Vec::new();
    for node in [&a, &b, &c] {
        for i in 1..=2 {
            let user = format!("{}{i}", node.name);
            let (ws, _) = login(&node.addr, &user).await;
            clients.push((user, ws));
        }
    }
    let (carol, _) = login(&c.addr, "carol").await;
    clients.push(("carol".to_owned(), carol));

    // (c) Presence: every node counts every node's users; the welcome of a new
    // connection counts every node's connections, its own included.
    let expected: BTreeMap<String, u64> = clients.iter().map(|(u, _)| (u.clone(), 1)).collect();
    let took = until_all(&[&a, &b, &c], Duration::from_secs(3), |stats| {
        presence_users(stats) == expected && stats["cluster"]["presence"]["connections"] == 7
    })
    .await;
    println!("7 users in every node's presence {took:?} after the last login");
    let (late, welcome) = login(&b.addr, "late").await;
    assert_eq!(
        welcome["online"], 8,
        "cluster-wide: 7 + this one: {welcome}"
    );
    assert_eq!(process_stats(&b.addr).await["open"], 3, "locally 3 on B");
    drop(late);

    // (b) A whisper from a1 (node A) to carol, whose only connection is on C; then
    // (a) says from a1 (node A) and c1 (node C) at once.
    let index = |user: &str| clients.iter().position(|(u, _)| u == user).unwrap();
    let (i_a1, i_c1) = (index("a1"), index("c1"));
    send(
        &mut clients[i_a1].1,
        json!({"type": "whisper", "to": "carol", "text": "psst"}),
    )
    .await;
    let say_start = Instant::now();
    for i in 0..SAYS {
        for (at, sender) in [(i_a1, "a1"), (i_c1, "c1")] {
            let text = format!("{sender} {i}");
            send(&mut clients[at].1, json!({"type": "say", "text": text})).await;
        }
    }
    for at in [i_a1, i_c1] {
        send(&mut clients[at].1, json!({"type": "say", "text": "end"})).await;
    }
    let mut readers = Vec::new();
    for (user, mut ws) in clients {
        readers.push(tokio::spawn(async move {
            let (got, ended_at) = collect_until_end(&mut ws, &["a1", "c1"]).await;
            (user, ws, got, ended_at)
        }));
    }
    let mut clients = Vec::new();
    let mut last_end = say_start;
    for reader in readers {
        let (user, ws, got, ended_at) = reader.await.unwrap();
        last_end = last_end.max(ended_at);
        for sender in ["a1", "c1"] {
            let from: Vec<&Value> = got.iter().filter(|m| m["from"] == sender).collect();
            let mut want = says_of(sender);
            if user == "carol" && sender == "a1" {
                want.insert(
                    0,
                    json!({"type": "whispered", "from": "a1", "text": "psst"}),
                );
            }
            let want: Vec<&Value> = want.iter().collect();
            assert_eq!(
                from, want,
                "{user} heard from {sender}, once each and in order"
            );
        }
        assert!(
            got.iter().all(|m| m["from"] == "a1" || m["from"] == "c1"),
            "{user}: {got:?}"
        );
        clients.push((user, ws));
    }
    println!(
        "{} says and a whisper heard by 7 clients on 3 nodes, exactly once each and in order; the last one heard {:?} after the first was sent",
        2 * (SAYS + 1),
        last_end - say_start
    );
    let stats = process_stats(&b.addr).await;
    println!("B's cluster stats after the says: {}", stats["cluster"]);
    assert!(stats["cluster"]["received"].as_u64() >= Some(2 * (SAYS as u64 + 1) + 1));
    assert_eq!(stats["cluster"]["missed"], 0);

    // (d) B dies without a word: gone from A's and C's nodes and presence within the
    // TTL (2 s) and a heartbeat (0.5 s); bounded here at 3 s (the 2.5 s, plus room
    // for the beat itself and this test's polling).
    b.child.kill().await.unwrap();
    clients.retain(|(user, _)| !user.starts_with('b'));
    let gone = |stats: &Value| {
        let users = presence_users(stats);
        node_names(stats) == ["a", "c"]
            && !users.contains_key("b1")
            && !users.contains_key("b2")
            && users.len() == 5
    };
    let took = until_all(&[&a, &c], Duration::from_secs(3), gone).await;
    println!("node B (SIGKILL) gone from A's and C's nodes and presence {took:?} after the kill");
    // The survivors still chat across nodes.
    send(
        &mut clients[0].1,
        json!({"type": "say", "text": "still here"}),
    )
    .await;
    for (user, ws) in &mut clients {
        let said = read(ws).await.expect("open");
        assert_eq!(
            said,
            json!({"type": "said", "from": "a1", "text": "still here"}),
            "{user}"
        );
    }

    // (e) C is stopped with SIGTERM: it leaves the cluster before its drain, so A
    // sees it gone at its next heartbeat (0.5 s), well before C's presence would
    // have expired (2 s); C's clients get 1001 and it exits 0.
    let pid = c.child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let stopped = Instant::now();
    let took = until_all(&[&a], Duration::from_millis(1500), |stats| {
        node_names(stats) == ["a"] && presence_users(stats).keys().all(|u| u.starts_with('a'))
    })
    .await;
    println!("node C (SIGTERM) gone from A's nodes and presence {took:?} after the signal");
    for (user, ws) in &mut clients {
        if user.starts_with('c') {
            let end = tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("in time");
            match end {
                Some(Ok(Message::Close(Some(frame)))) => {
                    assert_eq!(u16::from(frame.code), 1001, "{user}")
                }
                other => panic!("{user}: expected Close 1001, got {other:?}"),
            }
            // Polled on, the client sends its answering Close (the drain waits for it).
            let _ = tokio::time::timeout(WAIT, ws.next()).await;
        }
    }
    let mut c = c;
    let exit = tokio::time::timeout(WAIT, c.child.wait())
        .await
        .expect("C exited in time")
        .unwrap();
    assert!(exit.success(), "{exit:?} after {:?}", stopped.elapsed());
    println!("node C exited 0 {:?} after the signal", stopped.elapsed());
    drop((a, c, redis));
}
