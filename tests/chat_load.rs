//! The example chat server under load on real sockets (127.0.0.1, OS-assigned port,
//! tokio-tungstenite clients, every wait bounded):
//!
//! - 500 clients each say 20 messages, in rounds: every Ready client hears every
//!   message exactly once, and each sender's messages in the order they were said
//!   (G7);
//! - a slowloris: 200 clients connect and never authenticate; each is closed with
//!   1008 once the authentication timeout has passed, within a small margin (G5).

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use support::{Server, close_code, connect, login};
use tokio::sync::{Barrier, Semaphore};
use tokio_tungstenite::tungstenite::Message;

/// Clients in the load test.
const CLIENTS: usize = 500;
/// Messages each of them says.
const SAYS: usize = 20;
/// Messages each client says per round. Everyone then listens until it has heard
/// the whole round (every client's messages of it) and waits for the others before
/// the next round, so no connection ever has more than `CLIENTS × PER_ROUND` = 1 000
/// messages queued for it: under the server's per-connection outbox of 1 024, which
/// is what lets the test demand "exactly once" (a client that fell further behind
/// would be closed with 1013 as a slow consumer). A per-sender window would not do:
/// a sender that hears its own messages quickly says on, however far behind a slow
/// reader is.
const PER_ROUND: usize = 2;
/// Upgrades in flight at once while the clients connect.
const CONNECTING: usize = 64;

/// A `said` event, borrowed from the frame.
#[derive(Deserialize)]
struct Said<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    from: &'a str,
    text: &'a str,
}

/// Raises the open-files limit: this process holds both ends of every socket.
fn enough_file_descriptors() {
    let needed = (2 * CLIENTS + 256) as u64;
    let got = rlimit::increase_nofile_limit(needed).unwrap_or(0);
    assert!(
        got >= needed,
        "the open-files limit is {got}, this test needs {needed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_clients_twenty_says_each_exactly_once_in_order() {
    enough_file_descriptors();
    let server = Arc::new(Server::start_default().await);
    let connecting = Arc::new(Semaphore::new(CONNECTING));
    let everyone_ready = Arc::new(Barrier::new(CLIENTS));
    let round_heard = Arc::new(Barrier::new(CLIENTS));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let server = server.clone();
            let connecting = connecting.clone();
            let everyone_ready = everyone_ready.clone();
            let round_heard = round_heard.clone();
            tokio::spawn(async move {
                let me = format!("u{i}");
                let permit = connecting.acquire().await.unwrap();
                let mut ws = login(&server, &me).await;
                drop(permit);
                // Nobody says anything before everyone is Ready: each message then
                // has all 500 clients as its audience.
                everyone_ready.wait().await;
                let heard = chat(&mut ws, &me, &round_heard).await;
                (heard, ws) // still connected: the server counts it below
            })
        })
        .collect();
    let mut connected = Vec::with_capacity(CLIENTS);
    let run = async {
        for client in clients {
            let (heard, ws) = client.await.expect("a client task panicked");
            connected.push(ws);
            assert_eq!(heard.len(), CLIENTS, "heard from every sender");
            assert!(
                heard.values().all(|&n| n == SAYS),
                "every message of every sender, once: {heard:?}"
            );
        }
    };
    tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the load test finished in time");
    let elapsed = started.elapsed();
    eprintln!(
        "{CLIENTS} clients × {SAYS} says: {} deliveries in {elapsed:?}",
        CLIENTS * CLIENTS * SAYS
    );
    let stats = server.stats().await;
    assert_eq!(stats["open"], CLIENTS, "{stats}");
    let server = Arc::into_inner(server).expect("the clients are done");
    let report = server.shutdown().await;
    assert_eq!(report.closing, CLIENTS, "{report:?}");
    drop(connected);
}

/// Says `SAYS` messages, `PER_ROUND` at a time: after saying its part of a round,
/// listens until it has heard the whole round, then waits at `round_heard` for
/// everyone else. Checks each sender's order; returns how many messages it heard
/// from each.
async fn chat(ws: &mut support::Ws, me: &str, round_heard: &Barrier) -> HashMap<String, usize> {
    let mut heard: HashMap<String, usize> = HashMap::with_capacity(CLIENTS);
    let mut total = 0;
    for round in 0..SAYS.div_ceil(PER_ROUND) {
        let this_round = (SAYS - round * PER_ROUND).min(PER_ROUND);
        for i in 0..this_round {
            let text = (round * PER_ROUND + i).to_string();
            let say = json!({"type": "say", "text": text});
            ws.send(Message::text(say.to_string())).await.unwrap();
        }
        let heard_by = total + CLIENTS * this_round;
        while total < heard_by {
            let frame = tokio::time::timeout(support::WAIT, ws.next())
                .await
                .unwrap_or_else(|_| panic!("{me} heard {total} messages, then nothing"));
            let text = match frame {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("{me} after {total} messages: {other:?}"),
            };
            let event: Said<'_> = serde_json::from_str(&text).unwrap();
            assert_eq!(event.kind, "said", "{text}");
            let next = heard.entry(event.from.to_owned()).or_insert(0);
            assert_eq!(
                event.text,
                next.to_string(),
                "{me}: {}'s messages in order, each once",
                event.from
            );
            *next += 1;
            total += 1;
        }
        // Bounded: a client that failed must not hold the others here unseen.
        tokio::time::timeout(support::WAIT, round_heard.wait())
            .await
            .unwrap_or_else(|_| panic!("{me}: the others did not finish round {round}"));
    }
    heard
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_two_hundred_silent_clients_are_all_closed_with_1008_in_time() {
    const SILENT: usize = 200;
    const TIMEOUT: Duration = Duration::from_millis(1_000);
    const MARGIN: Duration = Duration::from_millis(500);
    enough_file_descriptors();
    let server = Arc::new(Server::start(support::args(TIMEOUT.as_millis() as u64)).await);
    let clients: Vec<_> = (0..SILENT)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move {
                let mut ws = connect(&server).await;
                let connected = Instant::now(); // after the server accepted
                let code = close_code(&mut ws).await;
                (code, connected.elapsed())
            })
        })
        .collect();
    let mut latest = Duration::ZERO;
    for client in clients {
        let (code, after) = client.await.expect("a client task panicked");
        assert_eq!(code, Some(1008), "closed for not authenticating");
        assert!(
            after <= TIMEOUT + MARGIN,
            "closed {after:?} after connecting; the timeout is {TIMEOUT:?}"
        );
        latest = latest.max(after);
    }
    eprintln!("{SILENT} silent clients: the last was closed {latest:?} after connecting");
    let stats = server.until_empty().await;
    assert_eq!(stats["open"], 0, "{stats}");
    assert_eq!(
        stats["totals"]["closed_by_cause"]["readiness_deadline"], SILENT,
        "{stats}"
    );
    let server = Arc::into_inner(server).expect("the clients are done");
    server.shutdown().await;
}
