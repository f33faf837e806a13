//! The example chat server: axum, the ws-lifecycle driver and a registry.
//!
//! ```sh
//! cargo run --example chat            # serves http://127.0.0.1:8080
//! cargo run --example chat -- --addr 127.0.0.1:9000 --secret s3cret \
//!     --auth-timeout-ms 5000 --max-conns 10000
//! ```
//!
//! - `GET /` — a page that connects, authenticates and chats;
//! - `GET /stats` — the registry's snapshot as JSON (`open`, `by_phase`, totals);
//! - `GET /ws` — the WebSocket. The protocol is in `docs/example-protocol.md`: the
//!   first message must be `{"type":"auth","token":"<user>:<secret>"}`; then
//!   `{"type":"say","text":..}` goes to every ready connection and
//!   `{"type":"whisper","to":..,"text":..}` to one user's connections.
//!
//! SIGINT or SIGTERM drains: every client gets Close 1001, and the process exits 0
//! once they are closed (at most `DRAIN_TIMEOUT` later).
//!
//! Tests include this file as a module (`tests/chat.rs`) and call [`serve`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use ws_lifecycle::core::OverflowPolicy;
use ws_lifecycle::driver::{AuthRequest, UpgradeRequest};
use ws_lifecycle::registry::DrainReport;
use ws_lifecycle::{
    CloseCode, CloseFrame, DriverConfig, Emitter, Handler, Identity, Message, Registry,
    RegistryConfig, Sender, Service, Session,
};

/// How long a drain waits for the close handshakes before dropping what is left.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The command line, with its embedded defaults.
#[derive(Debug, Clone)]
pub struct Args {
    /// `--addr`: where to listen. Default `127.0.0.1:8080`.
    pub addr: SocketAddr,
    /// `--secret`: the shared secret in every token. Default `secret`.
    pub secret: String,
    /// `--auth-timeout-ms`: how long a client has to authenticate. Default 5000.
    pub auth_timeout_ms: u64,
    /// `--max-conns`: the most connections at once (more are refused with 1013).
    /// Default: no cap.
    pub max_conns: Option<usize>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            secret: "secret".to_owned(),
            auth_timeout_ms: 5000,
            max_conns: None,
        }
    }
}

impl Args {
    /// Parses `--flag value` pairs; unknown flags and bad values are errors.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args::default();
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            if flag == "--help" || flag == "-h" {
                return Err(USAGE.to_owned());
            }
            let value = args
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let bad = |e: &dyn std::fmt::Display| format!("bad {flag} {value:?}: {e}\n{USAGE}");
            match flag.as_str() {
                "--addr" => parsed.addr = value.parse().map_err(|e| bad(&e))?,
                "--secret" => parsed.secret = value,
                "--auth-timeout-ms" => {
                    parsed.auth_timeout_ms = value.parse().map_err(|e| bad(&e))?
                }
                "--max-conns" => parsed.max_conns = Some(value.parse().map_err(|e| bad(&e))?),
                _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
            }
        }
        Ok(parsed)
    }
}

const USAGE: &str = "usage: chat [--addr 127.0.0.1:8080] [--secret secret] \
                     [--auth-timeout-ms 5000] [--max-conns N]";

/// The authenticator: `{"type":"auth","token":"<user>:<secret>"}` with the right
/// secret and a non-empty user name; anything else is refused (1008).
async fn authenticate(secret: Arc<str>, request: AuthRequest) -> Result<Identity, String> {
    let text = request
        .first_message
        .as_text()
        .ok_or("first message is binary")?;
    let value: Value = serde_json::from_str(text).map_err(|_| "first message is not JSON")?;
    if value["type"] != "auth" {
        return Err("first message is not auth".to_owned());
    }
    let token = value["token"].as_str().ok_or("no token")?;
    let (user, given) = token.rsplit_once(':').ok_or("token is not user:secret")?;
    if user.is_empty() || given != &*secret {
        return Err("wrong token".to_owned());
    }
    Ok(Identity::user(user))
}

/// The chat's handler.
pub struct Chat;

fn text(value: Value) -> Message {
    Message::text(value.to_string())
}

impl Handler for Chat {
    async fn on_authenticated(&self, session: &Session, emitter: &Emitter) {
        // Both are emitted before Ready and delivered first, in this order (G2).
        let _ = emitter.emit(text(json!({
            "type": "ready",
            "user": session.user(),
            "conn": session.id.to_string(),
        })));
        let _ = emitter.emit(text(json!({
            "type": "welcome",
            "text": format!("welcome, {}", session.user().unwrap_or_default()),
            // Open connections, this one included: O(1), where counting the
            // `Ready` ones would walk every connection on every connect.
            "online": session.registry.len(),
        })));
    }

    async fn on_message(
        &self,
        session: &Session,
        sender: &Sender,
        message: Message,
    ) -> Result<(), CloseFrame> {
        let Some(body) = message.as_text() else {
            return Err(CloseFrame::new(
                CloseCode::UNSUPPORTED_DATA,
                "binary frames are not supported",
            )
            .expect("a valid close frame"));
        };
        let error = |what: &str| {
            let _ = sender.send(text(json!({"type": "error", "error": what})));
            Ok(())
        };
        let Ok(value) = serde_json::from_str::<Value>(body) else {
            return error("malformed JSON");
        };
        let from = session.user().unwrap_or_default();
        match (value["type"].as_str(), value["text"].as_str()) {
            (Some("say"), Some(said)) => {
                let out = text(json!({"type": "said", "from": from, "text": said}));
                session.registry.broadcast(out);
                Ok(())
            }
            (Some("whisper"), Some(said)) => match value["to"].as_str() {
                Some(to) => {
                    let out = text(json!({"type": "whispered", "from": from, "text": said}));
                    session.registry.send_to_user(to, out);
                    Ok(())
                }
                None => error("whisper needs \"to\""),
            },
            (Some("say" | "whisper"), None) => error("missing \"text\""),
            (Some("auth"), _) => error("already authenticated"),
            _ => error("unknown message type"),
        }
    }
}

type ChatService = Service<
    Box<
        dyn Fn(
                AuthRequest,
            )
                -> std::pin::Pin<Box<dyn Future<Output = Result<Identity, String>> + Send>>
            + Send
            + Sync,
    >,
    Chat,
>;

/// Serves the chat on `listener` until `shutdown` completes, then drains; returns
/// what the drain did.
pub async fn serve(
    listener: TcpListener,
    args: Args,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<DrainReport> {
    let mut registry_config = RegistryConfig::default();
    registry_config.max_connections = args.max_conns;
    let registry = Registry::new(registry_config);
    let mut config = DriverConfig::default();
    config.connection.readiness_timeout = Duration::from_millis(args.auth_timeout_ms);
    config.answer_pings = false; // axum does it
    // A client that reads so slowly that its outbox fills is closed with 1013 "slow
    // consumer" rather than left open with a gap in what it heard.
    config.connection.overflow = OverflowPolicy::slow_consumer();
    let secret: Arc<str> = Arc::from(args.secret);
    let service: Arc<ChatService> = Arc::new(Service::new(
        registry.clone(),
        config,
        Box::new(move |request| Box::pin(authenticate(secret.clone(), request))),
        Chat,
    ));
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/stats", get(stats))
        .route("/ws", get(ws))
        .with_state(service);
    // The handlers are in place: admit connections (G8).
    registry.open();
    let drained = registry.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .into_future(),
    );
    shutdown.await;
    let report = drained.drain(tokio::time::sleep(DRAIN_TIMEOUT)).await;
    let _ = stop_tx.send(());
    // Plain HTTP requests in flight finish; upgraded sockets are already closed.
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, server).await;
    Ok(report)
}

async fn stats(
    State(service): State<Arc<ChatService>>,
) -> Json<ws_lifecycle::registry::RegistrySnapshot> {
    Json(service.registry().snapshot())
}

async fn ws(
    State(service): State<Arc<ChatService>>,
    upgrade: WebSocketUpgrade,
    request: UpgradeRequest,
) -> Response {
    ws_lifecycle::axum::serve(upgrade, request, service)
        .await
        .into_response()
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[tokio::main]
async fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(args.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {}: {error}", args.addr);
            std::process::exit(1);
        }
    };
    let addr = listener.local_addr().expect("a bound address");
    println!("chat listening on http://{addr}  (Ctrl-C drains and exits)");
    match serve(listener, args, signal()).await {
        Ok(report) => println!(
            "drained: {} asked to close, {} closed in time, {} dropped",
            report.closing, report.closed, report.dropped
        ),
        Err(error) => {
            eprintln!("server error: {error}");
            std::process::exit(1);
        }
    }
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>ws-lifecycle chat</title>
<style>
  body { font: 15px system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
  #log { border: 1px solid #ccc; height: 20em; overflow-y: auto; padding: .5em; white-space: pre-wrap; }
  input { padding: .3em; }
</style>
<h1>ws-lifecycle chat</h1>
<p>
  <input id="user" placeholder="user" value="guest">
  <input id="secret" placeholder="secret" value="secret">
  <button id="connect">connect</button>
</p>
<div id="log"></div>
<p>
  <input id="to" placeholder="whisper to (optional)" size="14">
  <input id="text" placeholder="message" size="40">
  <button id="send" disabled>send</button>
</p>
<script>
  const $ = (id) => document.getElementById(id);
  const log = (line) => { $("log").textContent += line + "\n"; $("log").scrollTop = 1e9; };
  let ws = null;
  $("connect").onclick = () => {
    if (ws) ws.close(1000);
    ws = new WebSocket(`ws://${location.host}/ws`);
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: `${$("user").value}:${$("secret").value}` }));
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === "ready") { $("send").disabled = false; log(`ready as ${m.user} (connection ${m.conn})`); }
      else if (m.type === "welcome") log(m.text + ` — ${m.online} online`);
      else if (m.type === "said") log(`${m.from}: ${m.text}`);
      else if (m.type === "whispered") log(`${m.from} (whisper): ${m.text}`);
      else if (m.type === "error") log(`error: ${m.error}`);
    };
    ws.onclose = (e) => { $("send").disabled = true; log(`closed ${e.code} ${e.reason}`); };
  };
  $("send").onclick = () => {
    const text = $("text").value;
    const to = $("to").value;
    ws.send(JSON.stringify(to ? { type: "whisper", to, text } : { type: "say", text }));
    $("text").value = "";
  };
  $("text").onkeydown = (e) => { if (e.key === "Enter") $("send").click(); };
</script>
"#;
