//! The example chat server over real sockets (127.0.0.1, OS-assigned ports, a
//! tokio-tungstenite client, every wait bounded): the protocol of
//! `docs/example-protocol.md` — authentication by first message and at the upgrade,
//! close codes, `/stats` with the driver's unsent count (G3 end to end), the page.

mod support;

use std::fmt;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::json;
use support::raw::{Raw, RawFrame};
use support::{
    Got, Server, close_code, connect, http, json, login, login_at_upgrade, next, send, try_connect,
    upgrade_head,
};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use ws_lifecycle::registry::RegistrySnapshot;

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

#[tokio::test]
async fn a_query_token_authenticates_at_the_upgrade_ready_then_welcome_with_no_message() {
    let server = Server::start_default().await;
    let started = Instant::now();
    let url = server.url_with("token=ada:secret");
    let mut ada = try_connect(&url).await.expect("the upgrade succeeds");
    // Nothing sent: the server's first two messages are ready, then welcome (G2).
    let ready = json(&mut ada).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    assert_eq!(ready["user"], "ada", "{ready}");
    let welcome = json(&mut ada).await;
    assert_eq!(
        welcome,
        json!({"type": "welcome", "text": "welcome, ada", "online": 1})
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(1),
        "within the connect time, not at an auth timeout: {elapsed:?}"
    );
    eprintln!("upgrade-time auth: connected to welcome in {elapsed:?}");
    // The token is percent-decoded, as a browser's `encodeURIComponent` sends it.
    let mut bob = try_connect(&server.url_with("token=bob%3Asecret"))
        .await
        .expect("the upgrade succeeds");
    assert_eq!(json(&mut bob).await["user"], "bob");
    assert_eq!(json(&mut bob).await["type"], "welcome");
    // Then the chat as usual, with first-message clients alike.
    let mut cy = login(&server, "cy").await;
    send(&mut ada, json!({"type": "say", "text": "hello"})).await;
    for ws in [&mut ada, &mut bob, &mut cy] {
        assert_eq!(
            json(ws).await,
            json!({"type": "said", "from": "ada", "text": "hello"})
        );
    }
    let stats = server.stats().await;
    assert_eq!(stats["by_phase"]["ready"], 3, "{stats}");
    assert_eq!(stats["users"], 3, "{stats}");
    drop((ada, bob, cy));
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_query_token_is_answered_401_with_the_reason_and_opens_no_websocket() {
    let server = Server::start_default().await;
    // The client library sees the handshake fail with 401.
    match try_connect(&server.url_with("token=ada:wrong")).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 401),
        Err(other) => panic!("expected HTTP 401, got {other}"),
        Ok(_) => panic!("a WebSocket opened on a wrong token"),
    }
    // On the wire: 401, the reason as a text body, no upgrade.
    for (query, reason) in [
        ("token=ada:wrong", "wrong token"),
        ("token=ada", "token is not <user>:<secret>"),
        ("token=", "token is not <user>:<secret>"),
        ("token=:secret", "token has no user name"),
    ] {
        let response = http(
            server.addr,
            &upgrade_head(server.addr, &format!("/ws?{query}")),
        )
        .await;
        assert_eq!(response.status, 401, "{query}: {response:?}");
        assert_eq!(response.body, reason, "{query}: {response:?}");
        assert!(
            (response.header("content-type")).is_some_and(|t| t.starts_with("text/plain")),
            "{response:?}"
        );
        assert!(response.header("upgrade").is_none(), "{response:?}");
    }
    // Nothing was ever listed.
    let stats = server.stats().await;
    assert_eq!(stats["open"], 0, "{stats}");
    assert_eq!(stats["totals"]["registered"], 0, "{stats}");
    // A `token` decides at the upgrade; without one, first-message auth as before.
    let mut ws = connect(&server).await;
    send(&mut ws, json!({"type": "auth", "token": "ada:secret"})).await;
    assert_eq!(json(&mut ws).await["type"], "ready");
    drop(ws); // not left for the drain to wait out
    server.shutdown().await;
}

#[tokio::test]
async fn an_auth_message_after_upgrade_time_auth_is_the_already_authenticated_error() {
    let server = Server::start_default().await;
    // Sent at once, before ready arrives: held until Ready (G2), then handled.
    let url = server.url_with("token=ada:secret");
    let mut ada = try_connect(&url).await.expect("the upgrade succeeds");
    send(&mut ada, json!({"type": "auth", "token": "ada:secret"})).await;
    assert_eq!(json(&mut ada).await["type"], "ready");
    assert_eq!(json(&mut ada).await["type"], "welcome");
    assert_eq!(
        json(&mut ada).await,
        json!({"type": "error", "error": "already authenticated"})
    );
    // And after: the same error, the connection stays open.
    let mut bob = login_at_upgrade(&server, "bob").await;
    send(&mut bob, json!({"type": "auth", "token": "eve:secret"})).await;
    assert_eq!(
        json(&mut bob).await,
        json!({"type": "error", "error": "already authenticated"})
    );
    send(&mut bob, json!({"type": "say", "text": "still bob"})).await;
    assert_eq!(
        json(&mut bob).await,
        json!({"type": "said", "from": "bob", "text": "still bob"})
    );
    drop((ada, bob));
    server.shutdown().await;
}

/// The top-level keys of a JSON object, in the order they were written.
struct Keys(Vec<String>);

impl<'de> serde::Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Keys, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Keys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Keys, M::Error> {
                let mut keys = Vec::new();
                while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(key);
                }
                Ok(Keys(keys))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

#[tokio::test]
async fn stats_is_the_registry_snapshot_as_before_then_the_driver_counts() {
    let server = Server::start_default().await;
    let body = server.stats_body().await;
    // The snapshot's own keys, in its own order, then "driver", "http", "admission".
    let snapshot = serde_json::to_string(&RegistrySnapshot::default()).unwrap();
    let mut expected = serde_json::from_str::<Keys>(&snapshot).unwrap().0;
    expected.extend(["driver", "http", "admission"].map(str::to_owned));
    assert_eq!(
        serde_json::from_str::<Keys>(&body).unwrap().0,
        expected,
        "{body}"
    );
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    let registry_part = serde_json::from_str::<serde_json::Value>(&snapshot).unwrap();
    for part in ["by_phase", "totals"] {
        let keys = |v: &serde_json::Value| {
            let mut keys: Vec<String> = v[part].as_object().unwrap().keys().cloned().collect();
            keys.sort();
            keys
        };
        assert_eq!(keys(&stats), keys(&registry_part), "{part}: {body}");
    }
    assert_eq!(
        stats["driver"],
        json!({"unsent": 0, "closed_with_unsent": 0, "sessions_closed": 0}),
        "{body}"
    );
    // A connection that ends with nothing queued counts as closed, with no unsent.
    let mut ada = login_at_upgrade(&server, "ada").await;
    ada.close(None).await.unwrap();
    assert!(matches!(next(&mut ada).await, Got::Close(_)));
    let stats = server
        .until(|s| s["open"] == 0 && s["driver"]["sessions_closed"] == 1)
        .await;
    assert_eq!(
        stats["driver"],
        json!({"unsent": 0, "closed_with_unsent": 0, "sessions_closed": 1}),
        "{stats}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn stats_driver_unsent_counts_what_a_vanished_client_was_never_sent() {
    let server = Server::start_default().await;
    let mut bob = login(&server, "bob").await;
    // Slow is authenticated at the upgrade, reads its ready and welcome, then never
    // reads again, with a receive window of a few kB.
    let mut slow = Raw::connect_to(server.addr, "/ws?token=slow:secret", Some(4096)).await;
    for expected in ["ready", "welcome"] {
        match slow.read().await {
            Some(RawFrame::Text(text)) => assert!(text.contains(expected), "{text}"),
            other => panic!("expected {expected}, got {other:?}"),
        }
    }
    // Bob whispers 1 kB messages to slow until its outbox (1 024 messages) is full
    // behind the stalled socket: the next one closes it with 1013 "slow consumer",
    // and the whole queue is still there, waiting to be written.
    const LIMIT: usize = 40_000;
    let mut said = 0;
    loop {
        assert!(
            said < LIMIT,
            "no overflow after {said}: {}",
            server.stats().await
        );
        let text = format!("{said:0>1000}");
        send(
            &mut bob,
            json!({"type": "whisper", "to": "slow", "text": text}),
        )
        .await;
        said += 1;
        if said % 100 == 0 && server.stats().await["by_phase"]["closing"] == 1 {
            break;
        }
    }
    // Then slow vanishes: its TCP connection is gone with everything unread.
    drop(slow);
    let stats = server
        .until(|s| s["open"] == 1 && s["driver"]["sessions_closed"] == 1)
        .await;
    assert_eq!(stats["open"], 1, "{stats}");
    assert_eq!(stats["driver"]["sessions_closed"], 1, "{stats}");
    assert_eq!(
        stats["totals"]["closed_by_cause"]["slow_consumer"], 1,
        "{stats}"
    );
    assert_eq!(stats["driver"]["closed_with_unsent"], 1, "{stats}");
    let unsent = stats["driver"]["unsent"].as_u64().unwrap();
    assert!(
        unsent > 0 && unsent <= said as u64,
        "slow's queue came back unsent: {unsent} of the {said} whispered"
    );
    eprintln!("slow was closing after {said} whispers; {unsent} came back unsent (G3)");
    // Bob leaves properly with nothing queued for him: the figures do not move.
    bob.close(None).await.unwrap();
    assert!(matches!(next(&mut bob).await, Got::Close(_)));
    let stats = server
        .until(|s| s["open"] == 0 && s["driver"]["sessions_closed"] == 2)
        .await;
    assert_eq!(stats["open"], 0, "{stats}");
    assert_eq!(
        stats["driver"],
        json!({"unsent": unsent, "closed_with_unsent": 1, "sessions_closed": 2}),
        "{stats}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_page_charts_the_registry_from_stats_and_can_authenticate_at_the_upgrade() {
    let server = Server::start_default().await;
    let page = server.get("/").await;
    assert_eq!(page.status, 200, "{}", page.head);
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{}",
        page.head
    );
    let html = page.body;
    for needed in [
        // The live chart: two canvases, fed by /stats every second.
        r#"<canvas id="phases""#,
        r#"<canvas id="causes""#,
        r#"fetch("/stats""#,
        "setTimeout(poll, 1000)",
        "by_phase",
        "closed_by_cause",
        "driver.unsent",
        // The chat, by message or at the upgrade.
        r#"id="at-upgrade""#,
        "?token=${encodeURIComponent(token)}",
        r#"type: "auth""#,
        r#"id="connect""#,
        r#"id="send""#,
    ] {
        assert!(html.contains(needed), "the page has {needed:?}");
    }
    // No build step, no external assets.
    for absent in ["<script src", "<link", "https://", "http://"] {
        assert!(!html.contains(absent), "the page has no {absent:?}");
    }
    server.shutdown().await;
}
