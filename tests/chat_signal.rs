//! The example chat server as a process: started on 127.0.0.1 with an OS-assigned
//! port, sent SIGTERM or SIGINT, it closes every client with 1001 — authenticated or
//! not — and exits 0 once drained (G8), well within its drain timeout.
//!
//! The binary is the one `cargo test` builds next to this test
//! (`target/<profile>/examples/chat`).
#![cfg(unix)]

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Got, WAIT, Ws, json, next, send};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts the chat; returns the process and the address it printed.
async fn start() -> (Child, String) {
    let mut child = Command::new(support::chat_binary())
        .args(["--addr", "127.0.0.1:0", "--auth-timeout-ms", "10000"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(WAIT, stdout.read_line(&mut line))
        .await
        .expect("the chat printed its address in time")
        .unwrap();
    let addr = line
        .strip_prefix("chat listening on http://")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    child.stdout = Some(stdout.into_inner());
    (child, addr)
}

/// Connects to `addr`'s `/ws`.
async fn connect(addr: &str) -> Ws {
    let url = format!("ws://{addr}/ws");
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connected in time")
        .unwrap();
    ws
}

/// Connects and authenticates as `user`.
async fn login(addr: &str, user: &str) -> Ws {
    let mut ws = connect(addr).await;
    let token = format!("{user}:secret");
    send(&mut ws, json!({"type": "auth", "token": token})).await;
    assert_eq!(json(&mut ws).await["type"], "ready");
    assert_eq!(json(&mut ws).await["type"], "welcome");
    ws
}

/// Sends `signal` (`TERM` or `INT`) to the chat with a few clients on it.
async fn drain_on(signal: &str) {
    let (mut child, addr) = start().await;
    let mut clients = vec![
        login(&addr, "ada").await,
        login(&addr, "bob").await,
        login(&addr, "ada").await,
        connect(&addr).await, // upgraded, not authenticated
    ];
    // Every client listed before the signal: a client has its `101` a moment before
    // its connection is registered (axum hands the upgraded stream over in a task of
    // its own); one that registers during the drain is refused with the same 1001,
    // but not counted among the drained.
    let listed = async {
        while support::process_stats(&addr).await["open"] != 4 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(WAIT, listed)
        .await
        .expect("all four listed in time");
    let pid = child.id().unwrap().to_string();
    let started = Instant::now();
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
    for ws in &mut clients {
        assert!(
            matches!(next(ws).await, Got::Close(Some(1001))),
            "every client gets 1001"
        );
        // Reading on lets tungstenite answer the Close; then the server ends it.
        assert!(matches!(next(ws).await, Got::End));
    }
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the chat exited in time")
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Some(0), "exit 0 after SIG{signal}");
    assert!(
        elapsed < Duration::from_secs(5),
        "drained without waiting out the drain timeout: {elapsed:?}"
    );
    let mut rest = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut rest)
        .await
        .unwrap();
    assert!(
        rest.contains("drained: 4 asked to close, 4 closed in time, 0 dropped"),
        "{rest}"
    );
}

#[tokio::test]
async fn sigterm_closes_every_client_with_1001_and_exits_0() {
    drain_on("TERM").await;
}

#[tokio::test]
async fn sigint_closes_every_client_with_1001_and_exits_0() {
    drain_on("INT").await;
}
