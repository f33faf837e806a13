//! 2 000 rapid connect/disconnect cycles against the example chat server on real
//! sockets, some of them mid-authentication, some authenticated or refused (401) at
//! the upgrade: `/stats` ends with nothing open and
//! every index empty (G7), and the process's live heap does not grow with the
//! number of cycles. Its own test binary, because it counts every allocation of the
//! process (server and clients alike) with a counting global allocator.

mod support;

use std::alloc::System;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::json;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use support::{Server, connect, http, login, login_at_upgrade, send, upgrade_head};
use tokio_tungstenite::tungstenite::Message;

/// `System`, counting allocations and bytes.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Cycles in all.
const CYCLES: usize = 2_000;
/// Cycles running at once.
const AT_ONCE: usize = 25;
/// Cycles between two heap measurements.
const CHECKPOINT: usize = 250;
/// How much the live heap may differ between the first checkpoint after warm-up and
/// the last: allocator and runtime noise, far below what one leaked connection per
/// cycle would add (several hundred KiB over 1 500 cycles).
const SLACK: i64 = 64 * 1024;

/// Bytes allocated and not yet freed, process-wide.
fn live_bytes() -> i64 {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
}

/// The ways a cycle ends (below).
const ENDINGS: usize = 8;
/// The one ending that never opens a WebSocket (answered 401 at the upgrade).
const REFUSED_AT_UPGRADE: usize = 7;

/// One connection's life, ended one of [`ENDINGS`] ways.
async fn cycle(server: &Server, i: usize) {
    match i % ENDINGS {
        // Authenticated, then the TCP connection vanishes.
        0 => drop(login(server, &format!("u{}", i % 50)).await),
        // Authenticated, says something, closes properly.
        1 => {
            let mut ws = login(server, &format!("u{}", i % 50)).await;
            send(&mut ws, json!({"type": "say", "text": "bye"})).await;
            let _ = ws.close(None).await;
        }
        // Mid-authentication: the auth message is on its way, then a Close.
        2 => {
            let mut ws = connect(server).await;
            send(&mut ws, json!({"type": "auth", "token": "mid:secret"})).await;
            let _ = ws.close(None).await;
        }
        // Mid-authentication: the auth message is on its way, then nothing.
        3 => {
            let mut ws = connect(server).await;
            send(&mut ws, json!({"type": "auth", "token": "gone:secret"})).await;
            drop(ws);
        }
        // Upgraded, never authenticated, dropped.
        4 => drop(connect(server).await),
        // Refused: a wrong token.
        5 => {
            let mut ws = connect(server).await;
            let _ = ws
                .send(Message::text(
                    json!({"type": "auth", "token": "x:wrong"}).to_string(),
                ))
                .await;
            let _ = support::next(&mut ws).await;
        }
        // Authenticated at the upgrade, then the TCP connection vanishes.
        6 => drop(login_at_upgrade(server, &format!("u{}", i % 50)).await),
        // Refused at the upgrade: HTTP 401, no WebSocket, nothing listed.
        REFUSED_AT_UPGRADE => {
            let head = upgrade_head(server.addr, "/ws?token=x:wrong");
            assert_eq!(http(server.addr, &head).await.status, 401);
        }
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_connect_disconnect_cycles_leave_nothing_and_the_heap_flat() {
    let server = Server::start_default().await;
    let started = Instant::now();
    let mut heap = Vec::new();
    let mut done = 0;
    while done < CYCLES {
        let batch = (done..(done + AT_ONCE).min(CYCLES)).map(|i| cycle(&server, i));
        tokio::time::timeout(support::WAIT, futures_util::future::join_all(batch))
            .await
            .expect("a batch of cycles finished in time");
        done = (done + AT_ONCE).min(CYCLES);
        if done % CHECKPOINT == 0 {
            let stats = server.until_empty().await;
            assert_eq!(stats["open"], 0, "after {done} cycles: {stats}");
            // Let the runtime finish tearing down what the last cycles left.
            tokio::time::sleep(Duration::from_millis(100)).await;
            heap.push((done, live_bytes()));
        }
    }
    let elapsed = started.elapsed();
    let stats = server.until_empty().await;
    assert_eq!(stats["open"], 0, "{stats}");
    assert_eq!(stats["users"], 0, "no stale user entry: {stats}");
    assert_eq!(stats["groups"], 0, "{stats}");
    // Every cycle but those refused at the upgrade was listed, then unlisted.
    let listed = (0..CYCLES)
        .filter(|i| i % ENDINGS != REFUSED_AT_UPGRADE)
        .count();
    assert_eq!(stats["totals"]["registered"], listed, "{stats}");
    assert_eq!(stats["totals"]["closed"], listed, "{stats}");
    eprintln!("{CYCLES} cycles in {elapsed:?}; live heap at each checkpoint: {heap:?}");
    // The first checkpoints warm up (runtime slabs, buffers, the registry's maps
    // reaching their peak size); from the second one on, the heap is flat.
    let (_, warm) = heap[1];
    let (_, last) = *heap.last().unwrap();
    assert!(
        (last - warm).abs() <= SLACK,
        "the live heap moved by {} bytes from {} to {CYCLES} cycles: {heap:?}",
        last - warm,
        heap[1].0
    );
    server.shutdown().await;
}
