//! The example chat server: axum, the ws-lifecycle driver and a registry.
//!
//! ```sh
//! cargo run --example chat --features axum            # serves http://127.0.0.1:8080
//! cargo run --example chat --features axum -- --addr 127.0.0.1:9000 --secret s3cret \
//!     --auth-timeout-ms 5000 --max-conns 10000
//! ```
//!
//! - `GET /` — a page that connects, authenticates (by message, or at the upgrade),
//!   chats, and charts the registry live from `/stats`;
//! - `GET /stats` — the registry's snapshot as JSON (`open`, `by_phase`, totals),
//!   and a `driver` object: the messages the driver handed back unsent (**G3**);
//! - `GET /ws` — the WebSocket. The protocol is in `docs/example-protocol.md`:
//!   `/ws?token=<user>:<secret>` is authenticated at the upgrade (a wrong token is
//!   answered 401, no WebSocket); without a `token`, the first message must be
//!   `{"type":"auth","token":"<user>:<secret>"}`. Then `{"type":"say","text":..}`
//!   goes to every ready connection and `{"type":"whisper","to":..,"text":..}` to one
//!   user's connections.
//!
//! SIGINT or SIGTERM drains: every client gets Close 1001, and the process exits 0
//! once they are closed (at most `DRAIN_TIMEOUT` later).
//!
//! Tests include this file as a module (`tests/chat.rs`) and call [`serve`].

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use ws_lifecycle::core::OverflowPolicy;
use ws_lifecycle::driver::{AuthRequest, Closed, Refusal, UpgradeRequest, UpgradeVerdict};
use ws_lifecycle::registry::{DrainReport, RegistrySnapshot};
use ws_lifecycle::{
    Authenticator, CloseCode, CloseFrame, DriverConfig, Emitter, Handler, Identity, Message,
    Registry, RegistryConfig, Sender, Service, Session,
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

/// The chat's authenticator: a token `<user>:<secret>` with the shared secret and a
/// non-empty user name, checked in one of two places.
///
/// - At the upgrade, when the request's query has a `token` (`/ws?token=ada:secret`,
///   percent-decoded): a right token opens the WebSocket already authenticated, a
///   wrong one is answered `401` with the reason as the body, and no WebSocket opens.
/// - Otherwise in the first message, `{"type":"auth","token":"<user>:<secret>"}`;
///   anything else closes the connection with 1008.
pub struct Tokens {
    secret: Arc<str>,
}

impl Tokens {
    /// Tokens checked against `secret`.
    pub fn new(secret: impl Into<Arc<str>>) -> Tokens {
        Tokens {
            secret: secret.into(),
        }
    }

    /// The identity a token stands for, or why it does not stand for one.
    fn check(&self, token: &str) -> Result<Identity, Refusal> {
        let (user, given) = token
            .rsplit_once(':')
            .ok_or("token is not <user>:<secret>")?;
        if user.is_empty() {
            return Err("token has no user name".into());
        }
        if given != &*self.secret {
            return Err("wrong token".into());
        }
        Ok(Identity::user(user))
    }
}

impl Authenticator for Tokens {
    type State = ();

    async fn at_upgrade(&self, request: Arc<UpgradeRequest>) -> UpgradeVerdict {
        // axum's query decoder, not `UpgradeRequest::query_param`: a browser sends
        // `ada%3Asecret` (`encodeURIComponent`), and user names may hold spaces.
        let query = match Query::<HashMap<String, String>>::try_from_uri(&request.uri) {
            Ok(Query(query)) => query,
            Err(_) => {
                let refusal = Refusal::with_status(StatusCode::BAD_REQUEST, "malformed query");
                return UpgradeVerdict::Refuse(refusal);
            }
        };
        match query.get("token") {
            None => UpgradeVerdict::AwaitFirstMessage, // the first message decides
            Some(token) => match self.check(token) {
                Ok(identity) => UpgradeVerdict::Accept(identity),
                Err(refusal) => UpgradeVerdict::Refuse(refusal), // 401, the reason as body
            },
        }
    }

    async fn authenticate(&self, request: AuthRequest) -> Result<Identity, Refusal> {
        let text = request
            .first_message
            .as_text()
            .ok_or("first message is binary")?;
        let value: Value = serde_json::from_str(text).map_err(|_| "first message is not JSON")?;
        if value["type"] != "auth" {
            return Err("first message is not auth".into());
        }
        self.check(value["token"].as_str().ok_or("no token")?)
    }
}

/// The chat's handler. It counts what the driver hands back at each connection's
/// end (**G3** end to end), for `/stats`.
#[derive(Debug, Default)]
pub struct Chat {
    /// Messages queued for a client and never written to it, over all connections.
    unsent: AtomicU64,
    /// Connections that ended with at least one such message.
    closed_with_unsent: AtomicU64,
    /// Connections handed to `on_close` (every one that was authenticated).
    sessions_closed: AtomicU64,
}

/// The handler's counters, as `/stats` shows them under `"driver"`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DriverStats {
    /// Messages queued for a client and never written to it (`Closed::unsent`).
    pub unsent: u64,
    /// Connections that ended with `unsent` not empty.
    pub closed_with_unsent: u64,
    /// Authenticated connections that have ended (`Handler::on_close` calls). The
    /// registry unlists a connection just before, so this can lag `totals.closed`
    /// for a moment.
    pub sessions_closed: u64,
}

impl Chat {
    /// The counters now. Once `sessions_closed` reads `n`, the other two include
    /// those `n` connections.
    pub fn driver_stats(&self) -> DriverStats {
        let sessions_closed = self.sessions_closed.load(Ordering::Acquire);
        DriverStats {
            unsent: self.unsent.load(Ordering::Relaxed),
            closed_with_unsent: self.closed_with_unsent.load(Ordering::Relaxed),
            sessions_closed,
        }
    }
}

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

    async fn on_close(&self, _: &Session, closed: &Closed) {
        // What the connection was sent and never got: a vanished client's queue, or
        // a slow consumer's when its close handshake was cut short. A real server
        // might store it for the user's next visit; the example counts it.
        let unsent = closed.unsent.len() as u64;
        if unsent > 0 {
            self.unsent.fetch_add(unsent, Ordering::Relaxed);
            self.closed_with_unsent.fetch_add(1, Ordering::Relaxed);
        }
        // Last, and released: whoever reads this count sees the two above.
        self.sessions_closed.fetch_add(1, Ordering::Release);
    }
}

type ChatService = Service<Tokens, Chat>;

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
    // A client that reads so slowly that its outbox fills is closed with 1013 "slow
    // consumer" rather than left open with a gap in what it heard.
    config.connection.overflow = OverflowPolicy::slow_consumer();
    // `hand_on_first_message` stays false (the default): an auth message is the
    // authenticator's, never the handler's.
    let service: Arc<ChatService> = Arc::new(Service::new(
        registry.clone(),
        config,
        Tokens::new(args.secret),
        Chat::default(),
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

/// What `/stats` serves: the registry's snapshot, its keys as they are and in their
/// order, then `"driver"`.
#[derive(Debug, Serialize)]
struct Stats {
    #[serde(flatten)]
    registry: RegistrySnapshot,
    driver: DriverStats,
}

async fn stats(State(service): State<Arc<ChatService>>) -> Json<Stats> {
    Json(Stats {
        registry: service.registry().snapshot(),
        driver: service.handler().driver_stats(),
    })
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
#[path = "common/signal.rs"]
mod signal;
use signal::signal;

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

const PAGE: &str = r##"<!doctype html>
<meta charset="utf-8">
<title>ws-lifecycle chat</title>
<style>
  body { font: 15px system-ui, sans-serif; max-width: 42em; margin: 2em auto; }
  #log { border: 1px solid #ccc; height: 16em; overflow-y: auto; padding: .5em; white-space: pre-wrap; }
  input { padding: .3em; }
  canvas { display: block; border: 1px solid #ccc; width: 100%; }
  .legend span { display: inline-block; margin-right: 1em; }
  .legend i { display: inline-block; width: .8em; height: .8em; margin-right: .3em; vertical-align: -.05em; }
  #figures { font-variant-numeric: tabular-nums; }
</style>
<h1>ws-lifecycle chat</h1>
<p>
  <input id="user" placeholder="user" value="guest">
  <input id="secret" placeholder="secret" value="secret">
  <button id="connect">connect</button><br>
  <label><input type="checkbox" id="at-upgrade"> authenticate at the upgrade
    (<code>/ws?token=&lt;user&gt;:&lt;secret&gt;</code>, no auth message)</label>
</p>
<div id="log"></div>
<p>
  <input id="to" placeholder="whisper to (optional)" size="14">
  <input id="text" placeholder="message" size="40">
  <button id="send" disabled>send</button>
</p>
<h2>The registry, live</h2>
<p id="figures">waiting for /stats…</p>
<p class="legend" id="legend"></p>
<canvas id="phases" width="640" height="180" aria-label="connections by phase over the last 60 s"></canvas>
<p>Closes by cause (totals since the server started):</p>
<canvas id="causes" width="640" height="150" aria-label="closes by cause"></canvas>
<script>
  const $ = (id) => document.getElementById(id);
  const log = (line) => { $("log").textContent += line + "\n"; $("log").scrollTop = 1e9; };

  // The chat.
  let ws = null;
  $("connect").onclick = () => {
    if (ws) ws.close(1000);
    const token = `${$("user").value}:${$("secret").value}`;
    const atUpgrade = $("at-upgrade").checked;
    const query = atUpgrade ? `?token=${encodeURIComponent(token)}` : "";
    const sock = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws${query}`);
    let opened = false;
    ws = sock;
    sock.onopen = () => {
      opened = true;
      if (!atUpgrade) sock.send(JSON.stringify({ type: "auth", token }));
    };
    sock.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === "ready") { if (sock === ws) $("send").disabled = false; log(`ready as ${m.user} (connection ${m.conn})`); }
      else if (m.type === "welcome") log(m.text + ` — ${m.online} online`);
      else if (m.type === "said") log(`${m.from}: ${m.text}`);
      else if (m.type === "whispered") log(`${m.from} (whisper): ${m.text}`);
      else if (m.type === "error") log(`error: ${m.error}`);
    };
    sock.onclose = (e) => {
      if (sock === ws) $("send").disabled = true;
      if (opened) log(`closed ${e.code} ${e.reason}`);
      else log(`no WebSocket (${e.code}): the upgrade was refused — a wrong token is answered 401, whose body the browser does not show`);
    };
  };
  $("send").onclick = () => {
    const text = $("text").value;
    const to = $("to").value;
    ws.send(JSON.stringify(to ? { type: "whisper", to, text } : { type: "say", text }));
    $("text").value = "";
  };
  $("text").onkeydown = (e) => { if (e.key === "Enter") $("send").click(); };

  // The registry: GET /stats every second; connections by phase over the last 60 s
  // (stacked), closes by cause (bars), and what the driver handed back unsent.
  const PHASES = [["accepted", "#e6a23c"], ["authenticated", "#409eff"], ["ready", "#67c23a"], ["closing", "#f56c6c"]];
  const SPAN = 60;
  const history = [];
  $("legend").innerHTML = PHASES.map(([p, c]) => `<span><i style="background:${c}"></i>${p}</span>`).join("");

  function drawPhases() {
    const canvas = $("phases"), g = canvas.getContext("2d");
    const [w, h, left, bottom, top] = [canvas.width, canvas.height, 36, 18, 8];
    g.clearRect(0, 0, w, h);
    const totals = history.map((s) => PHASES.reduce((n, [p]) => n + (s[p] || 0), 0));
    const max = Math.max(1, ...totals);
    const x = (i) => left + (w - left - 4) * (SPAN - history.length + i) / (SPAN - 1);
    const y = (n) => h - bottom - (h - bottom - top) * n / max;
    const below = history.map(() => 0);
    for (const [phase, color] of PHASES) {
      const above = history.map((s, i) => below[i] + (s[phase] || 0));
      g.beginPath();
      above.forEach((n, i) => (i ? g.lineTo(x(i), y(n)) : g.moveTo(x(i), y(n))));
      for (let i = history.length - 1; i >= 0; i--) g.lineTo(x(i), y(below[i]));
      g.closePath();
      g.fillStyle = color;
      g.fill();
      above.forEach((n, i) => (below[i] = n));
    }
    g.fillStyle = "#555";
    g.font = "11px system-ui, sans-serif";
    g.fillText(String(max), 4, top + 8);
    g.fillText("0", 4, h - bottom);
    g.fillText(`−${SPAN} s`, left, h - 4);
    g.fillText("now", w - 28, h - 4);
    g.strokeStyle = "#999";
    g.beginPath(); g.moveTo(left, top); g.lineTo(left, h - bottom); g.lineTo(w, h - bottom); g.stroke();
  }

  function drawCauses(causes) {
    const canvas = $("causes"), g = canvas.getContext("2d");
    const [w, h, bottom, top] = [canvas.width, canvas.height, 18, 16];
    g.clearRect(0, 0, w, h);
    g.font = "11px system-ui, sans-serif";
    const names = Object.keys(causes).sort();
    if (!names.length) { g.fillStyle = "#555"; g.fillText("no connection has closed yet", 8, h / 2); return; }
    const max = Math.max(1, ...names.map((n) => causes[n]));
    const slot = Math.min(110, w / names.length);
    names.forEach((name, i) => {
      const barH = (h - bottom - top) * causes[name] / max;
      const x = i * slot + 6;
      g.fillStyle = "#909399";
      g.fillRect(x, h - bottom - barH, slot - 12, barH);
      g.fillStyle = "#333";
      g.fillText(String(causes[name]), x, h - bottom - barH - 3);
      g.fillText(name, x, h - 4, slot - 8);
    });
  }

  async function poll() {
    try {
      const s = await (await fetch("/stats", { cache: "no-store" })).json();
      history.push(s.by_phase);
      if (history.length > SPAN) history.shift();
      drawPhases();
      drawCauses(s.totals.closed_by_cause);
      $("figures").textContent = `${s.open} open (${s.by_phase.ready} ready), ${s.users} users · `
        + `${s.totals.registered} registered, ${s.totals.closed} closed · `
        + `unsent: ${s.driver.unsent} messages never written, to ${s.driver.closed_with_unsent} connection${s.driver.closed_with_unsent === 1 ? "" : "s"}`;
    } catch (e) {
      $("figures").textContent = `/stats unavailable: ${e}`;
    }
    setTimeout(poll, 1000);
  }
  poll();
</script>
"##;
