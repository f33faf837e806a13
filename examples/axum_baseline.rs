//! The end-to-end baseline (`docs/performance.md`, benchmark 5): a chat server written
//! the way axum's own chat example is — one `tokio::sync::broadcast` channel, and per
//! socket a task that forwards the channel to the client and a task that reads the
//! client — with no ws-lifecycle in it. It speaks the example chat's protocol
//! (`docs/example-protocol.md`) as far as the load generator uses it, so
//! `examples/loadgen.rs` can drive both servers alike:
//!
//! - the first message must be `{"type":"auth","token":"<user>:<secret>"}`, else
//!   Close 1008; then `{"type":"ready",..}` and `{"type":"welcome",..}`;
//! - `{"type":"say","text":..}` → `{"type":"said","from":..,"text":..}` to every
//!   authenticated client, the sender's included.
//!
//! It has none of the lifecycle's guarantees (no auth deadline, no close-gating, no
//! registry): it is the floor the chat example is measured against.
//!
//! ```sh
//! cargo run --release --example axum_baseline -- --addr 127.0.0.1:8081 --secret secret
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// The channel's capacity: as many messages as a ws-lifecycle outbox holds by
/// default (1024), so both servers buffer the same amount per client.
const CAPACITY: usize = 1024;

/// What every socket shares. The channel carries `String`s, as in axum's example:
/// each receiver gets its own copy.
struct AppState {
    /// Every `said` message, to every authenticated client.
    tx: broadcast::Sender<String>,
    secret: String,
    /// Authenticated clients (the `welcome` message's `online`).
    online: AtomicUsize,
    /// Messages a slow client missed (the channel lagged past it).
    lagged: AtomicUsize,
}

/// `--addr` and `--secret`.
fn parse_args() -> Result<(SocketAddr, String), String> {
    let mut addr = SocketAddr::from(([127, 0, 0, 1], 8081));
    let mut secret = "secret".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--addr" => addr = value.parse().map_err(|e| format!("bad --addr: {e}"))?,
            "--secret" => secret = value,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok((addr, secret))
}

#[tokio::main]
async fn main() {
    let (addr, secret) = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}\nusage: axum_baseline [--addr 127.0.0.1:8081] [--secret secret]");
            std::process::exit(2);
        }
    };
    let (tx, _) = broadcast::channel(CAPACITY);
    let state = Arc::new(AppState {
        tx,
        secret,
        online: AtomicUsize::new(0),
        lagged: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/ws", get(websocket_handler))
        .with_state(state.clone());
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    println!("axum baseline listening on ws://{addr}/ws");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        result = axum::serve(listener, app).into_future() => {
            if let Err(e) = result {
                eprintln!("server error: {e}");
            }
        }
        () = shutdown => {}
        () = term => {}
    }
    println!(
        "axum baseline: exiting; {} messages lagged past slow clients",
        state.lagged.load(Ordering::Relaxed)
    );
}

async fn websocket_handler(
    ws: WebSocketUpgrade,
    State(state): State<Arc<AppState>>,
) -> impl IntoResponse {
    ws.on_upgrade(|socket| websocket(socket, state))
}

/// The user named by a valid auth message.
fn authenticate(message: &str, secret: &str) -> Option<String> {
    let value: Value = serde_json::from_str(message).ok()?;
    if value["type"] != "auth" {
        return None;
    }
    let (user, given) = value["token"].as_str()?.rsplit_once(':')?;
    (!user.is_empty() && given == secret).then(|| user.to_owned())
}

/// One client: auth, then a forwarding task and a reading task, as in axum's chat.
async fn websocket(stream: WebSocket, state: Arc<AppState>) {
    let (mut sender, mut receiver) = stream.split();
    // The first message must authenticate.
    let user = loop {
        match receiver.next().await {
            Some(Ok(Message::Text(text))) => match authenticate(&text, &state.secret) {
                Some(user) => break user,
                None => {
                    let _ = sender
                        .send(Message::Close(Some(CloseFrame {
                            code: 1008,
                            reason: "wrong token".into(),
                        })))
                        .await;
                    return;
                }
            },
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            _ => return,
        }
    };
    // Subscribe before announcing readiness, so every later `said` reaches us.
    let mut rx = state.tx.subscribe();
    let online = state.online.fetch_add(1, Ordering::Relaxed) + 1;
    let ready = json!({"type": "ready", "user": &user, "conn": online.to_string()});
    let welcome = json!({"type": "welcome", "text": format!("welcome, {user}"), "online": online});
    if sender.send(Message::text(ready.to_string())).await.is_err()
        || sender
            .send(Message::text(welcome.to_string()))
            .await
            .is_err()
    {
        state.online.fetch_sub(1, Ordering::Relaxed);
        return;
    }

    let lag_state = state.clone();
    let mut send_task = tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(msg) => {
                    if sender.send(Message::text(msg)).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    lag_state.lagged.fetch_add(n as usize, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });

    let tx = state.tx.clone();
    let mut recv_task = tokio::spawn(async move {
        while let Some(Ok(message)) = receiver.next().await {
            let Message::Text(text) = message else {
                if matches!(message, Message::Close(_)) {
                    break;
                }
                continue;
            };
            let Ok(value) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if let (Some("say"), Some(said)) = (value["type"].as_str(), value["text"].as_str()) {
                let out = json!({"type": "said", "from": &user, "text": said});
                let _ = tx.send(out.to_string());
            }
        }
    });

    // If any one of the tasks runs to completion, we abort the other.
    tokio::select! {
        _ = &mut send_task => recv_task.abort(),
        _ = &mut recv_task => send_task.abort(),
    };
    state.online.fetch_sub(1, Ordering::Relaxed);
}
