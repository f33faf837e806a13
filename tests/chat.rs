//! The example chat server over real sockets (127.0.0.1, OS-assigned ports, a
//! tokio-tungstenite client, every wait bounded): the protocol of
//! `docs/example-protocol.md`, close codes, and clients that misbehave.

mod support;

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::json;
use support::{Got, Server, close_code, connect, json, login, next, send};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn auth_then_ready_then_welcome_then_live_messages() {
    let server = Server::start_default().await;
    let mut ws = login(&server, "ada").await; // checks ready → welcome
    send(&mut ws, json!({"type": "say", "text": "hello"})).await;
    let said = json(&mut ws).await;
    assert_eq!(
        said,
        json!({"type": "said", "from": "ada", "text": "hello"})
    );
    let stats = server.stats().await;
    assert_eq!(stats["open"], 1);
    assert_eq!(stats["by_phase"]["ready"], 1);
    drop(ws);
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_token_closes_with_1008() {
    let server = Server::start_default().await;
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"type": "auth", "token": "ada:wrong"})).await;
    assert_eq!(close_code(&mut ws).await, Some(1008));
    server.shutdown().await;
}

#[tokio::test]
async fn any_other_first_message_closes_with_1008() {
    let server = Server::start_default().await;
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"type": "say", "text": "hi"})).await;
    assert_eq!(close_code(&mut ws).await, Some(1008));
    let mut ws = connect(&server).await;
    ws.send(Message::text("not json")).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1008));
    server.shutdown().await;
}

#[tokio::test]
async fn no_auth_within_the_timeout_closes_with_1008() {
    let server = Server::start(support::args(300)).await;
    let started = Instant::now();
    let mut ws = connect(&server).await;
    assert_eq!(close_code(&mut ws).await, Some(1008));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "not before the timeout"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_json_after_auth_is_an_error_and_the_connection_stays_open() {
    let server = Server::start_default().await;
    let mut ws = login(&server, "ada").await;
    ws.send(Message::text("{nope")).await.unwrap();
    let error = json(&mut ws).await;
    assert_eq!(error["type"], "error", "{error}");
    send(&mut ws, json!({"type": "say", "text": "still here"})).await;
    assert_eq!(json(&mut ws).await["text"], "still here");
    server.shutdown().await;
}

#[tokio::test]
async fn binary_frames_close_with_1003() {
    let server = Server::start_default().await;
    let mut ws = login(&server, "ada").await;
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1003));
    server.shutdown().await;
}

#[tokio::test]
async fn say_reaches_every_ready_connection_and_no_unauthenticated_one() {
    let server = Server::start_default().await;
    let mut ada = login(&server, "ada").await;
    let mut bob = login(&server, "bob").await;
    let mut lurker = connect(&server).await; // never authenticates
    send(&mut ada, json!({"type": "say", "text": "hi all"})).await;
    for ws in [&mut ada, &mut bob] {
        assert_eq!(
            json(ws).await,
            json!({"type": "said", "from": "ada", "text": "hi all"})
        );
    }
    // The lurker gets nothing but, at its auth timeout, a 1008 Close.
    match next(&mut lurker).await {
        Got::Close(code) => assert_eq!(code, Some(1008)),
        other => panic!("an unauthenticated client got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn whisper_reaches_only_that_users_connections() {
    let server = Server::start_default().await;
    let mut ada = login(&server, "ada").await;
    let mut bob_phone = login(&server, "bob").await;
    let mut bob_laptop = login(&server, "bob").await;
    let mut cy = login(&server, "cy").await;
    send(
        &mut ada,
        json!({"type": "whisper", "to": "bob", "text": "psst"}),
    )
    .await;
    for ws in [&mut bob_phone, &mut bob_laptop] {
        assert_eq!(
            json(ws).await,
            json!({"type": "whispered", "from": "ada", "text": "psst"})
        );
    }
    // Neither ada nor cy got it: the next thing each sees is a later `said`.
    send(&mut cy, json!({"type": "say", "text": "marker"})).await;
    for ws in [&mut ada, &mut cy] {
        assert_eq!(json(ws).await["text"], "marker", "no whisper leaked");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_every_client_with_1001_and_empties_the_registry() {
    let server = Server::start_default().await;
    let mut ada = login(&server, "ada").await;
    let mut lurker = connect(&server).await;
    let drained = tokio::spawn(server.shutdown());
    assert_eq!(close_code(&mut ada).await, Some(1001));
    assert_eq!(close_code(&mut lurker).await, Some(1001));
    drop((ada, lurker));
    let report = drained.await.unwrap();
    assert_eq!(report.closing, 2, "{report:?}");
}
