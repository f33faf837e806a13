//! The whole server's memory per idle `Ready` connection, bounded: the example chat
//! server as a process (the binary `cargo test` builds next to this test), 400
//! clients authenticated at the upgrade and left idle, and the server's resident set
//! (`VmRSS`) sampled before and while they are held.
//!
//! The bound (48 kB a connection, on a debug build of the crate) is what keeps the
//! socket lean: with tungstenite's 128 KiB read buffer, allocated whole for every
//! connection, this measured 146 kB a connection and failed; with
//! `SocketConfig`'s 4 KiB it measures 17.6 kB. `scripts/memory.sh` measures the same
//! on a release build over 10 000 connections (docs/performance.md). Like
//! `tests/chat_signal.rs`, it runs the example binary `cargo test` builds (a
//! `--test memory_idle` run alone does not rebuild it: `cargo build --example chat
//! --features axum` first).
#![cfg(all(feature = "axum", target_os = "linux"))]

mod support;

use std::time::Duration;

const CLIENTS: usize = 400;
/// The most server memory an idle `Ready` connection may cost, in kB.
const BOUND_KB: f64 = 48.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_ready_connection_costs_the_server_a_bounded_amount_of_memory() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let (child, addr) = support::chat_process(&[]).await;
    let pid = child.id().unwrap();
    // One connection first, so that what is allocated once (tables, the runtime's
    // first task slabs) is in the baseline, not in the per-connection figure.
    let warm = support::chat_login(&addr, "warm").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = support::rss_kb(pid);
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        clients.push(support::chat_login(&addr, &format!("idle{i}")).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // settle
    let holding = support::rss_kb(pid);
    let per_connection = (holding - before) / CLIENTS as f64;
    println!(
        "server RSS {before} kB → {holding} kB with {CLIENTS} idle Ready clients: {per_connection:.1} kB each"
    );
    assert!(
        per_connection <= BOUND_KB,
        "{per_connection:.1} kB of server memory per idle connection (bound {BOUND_KB} kB)"
    );
    drop((warm, clients));
}

/// An unauthenticated client streaming one huge message in fragments is refused at
/// the header of the first fragment that takes the message past the
/// pre-authentication limit (`max_pre_auth_message_bytes`, 4 KiB: Close 1008), before
/// its payload is read, so twelve of them cost the server next to nothing. Under
/// tungstenite's defaults (64 MiB messages, checked after buffering), twelve clients
/// sending 60 MiB each took the example server from 48 MB to 728 MB (issue 14,
/// finding 1); with tungstenite's framing held to 1 MiB, each could still make the
/// server hold 1 MiB; here each tries 8 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_before_authentication_are_refused_as_they_grow() {
    use support::raw::{Raw, RawFrame, TEXT};
    const CLIENTS: usize = 12;
    const FRAGMENT: usize = 64 * 1024;
    const TOTAL: usize = 8 << 20;
    let (child, addr) = support::chat_process(&[]).await;
    let pid = child.id().unwrap();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let warm = Raw::connect(addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = support::rss_kb(pid);
    // Every client sends its fragments (until refused), then waits: the server's
    // memory is sampled while they all hold their unfinished messages.
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(tokio::spawn(async move {
            let mut raw = Raw::connect(addr).await;
            let payload = vec![b'x'; FRAGMENT];
            let mut sent = 0;
            while sent < TOTAL {
                // A text message's first fragment, then continuations; never final.
                let opcode = if sent == 0 { TEXT } else { 0x0 };
                let mut frame = Raw::frame(opcode, &payload);
                frame[0] &= 0x7f; // FIN off
                if !raw.write_raw(&frame).await {
                    break; // the server closed
                }
                sent += FRAGMENT;
            }
            (sent, raw)
        }));
    }
    let mut done = Vec::new();
    for client in clients {
        done.push(client.await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // what was sent, read
    let after = support::rss_kb(pid);
    let per_client_kb = (after - before) / CLIENTS as f64;
    println!(
        "server RSS {before} kB → {after} kB with {CLIENTS} oversized messages sent: {per_client_kb:.1} kB each"
    );
    // The pre-auth limit (4 KiB) plus the connection itself (≈ 18 kB idle) and
    // allocator noise; one 64 KiB fragment held would already break it.
    assert!(
        per_client_kb <= 48.0,
        "{per_client_kb:.1} kB of server memory per client streaming an oversized message"
    );
    for (sent, mut raw) in done {
        let frames = raw.read_to_end().await;
        assert!(
            frames.contains(&RawFrame::Close(Some(1008))),
            "after {sent} bytes: {frames:?}"
        );
    }
    drop(warm);
}
