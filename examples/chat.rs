//! The example chat server: axum, the ws-lifecycle driver and a registry.
//!
//! ```sh
//! cargo run --example chat --features axum            # serves http://127.0.0.1:8080
//! cargo run --example chat --features axum -- --addr 127.0.0.1:9000 --secret s3cret \
//!     --auth-timeout-ms 5000 --max-conns 10000 --max-unauthenticated 1000 \
//!     --header-timeout-ms 5000 --max-pending 1024
//! # a node of a cluster over Redis (feature `redis`): say and whisper reach every node
//! cargo run --example chat --features axum,redis -- --redis redis://127.0.0.1:6379 --node a
//! ```
//!
//! - `GET /` — a page that connects, authenticates (by message, or at the upgrade),
//!   chats, and charts the registry live from `/stats`;
//! - `GET /stats` — the registry's snapshot as JSON (`open`, `by_phase`, totals),
//!   a `driver` object (the messages the driver handed back unsent, **G3**), an
//!   `http` object (connections that have not upgraded) and an `admission` object
//!   (the unauthenticated and authenticated WebSockets against their caps);
//! - `GET /ws` — the WebSocket. The protocol is in `docs/example-protocol.md`:
//!   `/ws?token=<user>:<secret>` is authenticated at the upgrade (a wrong token is
//!   answered 401, no WebSocket); without a `token`, the first message must be
//!   `{"type":"auth","token":"<user>:<secret>"}`. Then `{"type":"say","text":..}`
//!   goes to every ready connection and `{"type":"whisper","to":..,"text":..}` to one
//!   user's connections.
//!
//! SIGINT or SIGTERM drains: every client gets Close 1001, and the process exits 0
//! once they are closed (at most `DRAIN_TIMEOUT` later, HTTP requests in flight and
//! half-sent ones included).
//!
//! The HTTP layer is hyper's HTTP/1 server in an accept loop of its own
//! ([`serve_http`]), not `axum::serve`, for three bounds `axum::serve` does not set:
//! a request head must arrive within `--header-timeout-ms` (a silent client, half a
//! request, an idle keep-alive connection are closed then); at most `--max-pending`
//! connections may be open and not upgraded (beyond, a new connection is answered
//! 503 and closed at once); and shutdown drops what has not finished by the drain's
//! deadline. WebSockets that have not authenticated have their own cap,
//! `--max-unauthenticated`, apart from `--max-conns` (authenticated ones).
//!
//! With `--redis URL` (feature `redis`), the registry joins a cluster over Redis
//! ([`ws_lifecycle::cluster`]) before anything is served: `say` and `whisper` go
//! through `Registry::broadcast` and `Registry::send_to_user`, which also publish to
//! the other nodes; `/stats` gains a `cluster` object and the welcome's `online`
//! counts the connections of every node. On a signal the node leaves the cluster,
//! then drains. Without `--redis` it is a single server, exactly as without the
//! feature.
//!
//! Tests include this file as a module (`tests/chat.rs`) and call [`serve`].

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
#[cfg(feature = "redis")]
use ws_lifecycle::cluster::{Cluster, ClusterConfig, ClusterSnapshot};
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
    /// `--max-conns`: the most *authenticated* connections at once. Default: no cap.
    /// See [`Limits`] for how it is enforced.
    pub max_conns: Option<usize>,
    /// `--max-unauthenticated`: the most WebSockets still waiting for their auth
    /// message; more are answered 503 at the upgrade. Default 1000.
    pub max_unauthenticated: usize,
    /// `--header-timeout-ms`: how long a connection has to send a whole request head
    /// (the first one, and each next one on a keep-alive connection) before it is
    /// closed. Default 5000.
    pub header_timeout_ms: u64,
    /// `--max-pending`: the most TCP connections open and not upgraded to a
    /// WebSocket (waiting for a request head, being answered, or idle between
    /// requests); more are answered 503 and closed at once. Default 1024.
    pub max_pending: usize,
    /// `--max-message-bytes`: the largest message (and frame) a client may send;
    /// larger is refused as it arrives, with Close 1009, never buffered whole.
    /// Default 1 MiB (`SocketConfig`'s).
    pub max_message_bytes: usize,
    /// `--redis`: the Redis server of a cluster to join (feature `redis`), e.g.
    /// `redis://127.0.0.1:6379`. Default: none, a single server.
    pub redis: Option<String>,
    /// `--node`: this node's name in the cluster, unique in it. Default: a random
    /// `node-<8 hex digits>` ([`random_node_name`]).
    pub node: Option<String>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            secret: "secret".to_owned(),
            auth_timeout_ms: 5000,
            max_conns: None,
            max_unauthenticated: 1000,
            header_timeout_ms: 5000,
            max_pending: 1024,
            max_message_bytes: 1 << 20,
            redis: None,
            node: None,
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
                "--max-unauthenticated" => {
                    parsed.max_unauthenticated = value.parse().map_err(|e| bad(&e))?
                }
                "--header-timeout-ms" => {
                    parsed.header_timeout_ms = value.parse().map_err(|e| bad(&e))?
                }
                "--max-pending" => parsed.max_pending = value.parse().map_err(|e| bad(&e))?,
                "--max-message-bytes" => {
                    parsed.max_message_bytes = value.parse().map_err(|e| bad(&e))?
                }
                "--redis" if !cfg!(feature = "redis") => return Err(NO_REDIS.to_owned()),
                "--redis" => parsed.redis = Some(value),
                "--node" if value.is_empty() => return Err(bad(&"an empty name")),
                "--node" => parsed.node = Some(value),
                _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
            }
        }
        Ok(parsed)
    }
}

const USAGE: &str = "usage: chat [--addr 127.0.0.1:8080] [--secret secret] \
                     [--auth-timeout-ms 5000] [--max-conns N] [--max-unauthenticated 1000] \
                     [--header-timeout-ms 5000] [--max-pending 1024] \
                     [--max-message-bytes 1048576] [--redis redis://HOST:PORT] [--node NAME]";

/// `--redis` on a build without the cluster layer.
const NO_REDIS: &str = "--redis: built without the `redis` feature: \
                        cargo run --example chat --features axum,redis -- --redis ...";

/// A node name for a cluster member started without `--node`: `node-` and 8 hex
/// digits, from std's randomly seeded hasher, the clock and the process id (no
/// dependency).
pub fn random_node_name() -> String {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let random = std::collections::hash_map::RandomState::new();
    format!(
        "node-{:08x}",
        random.hash_one((nanos, std::process::id())) as u32
    )
}

/// The chat's authenticator: a token `<user>:<secret>` with the shared secret and a
/// non-empty user name, checked in one of two places.
///
/// - At the upgrade, when the request's query has a `token` (`/ws?token=ada:secret`,
///   percent-decoded): a right token opens the WebSocket already authenticated, a
///   wrong one is answered `401` with the reason as the body, and no WebSocket opens.
/// - Otherwise in the first message, `{"type":"auth","token":"<user>:<secret>"}`;
///   anything else closes the connection with 1008.
///
/// The identity's state says which ([`Via`]), for the counts in [`Limits`].
pub struct Tokens {
    secret: Arc<str>,
    limits: Arc<Limits>,
}

/// How a connection authenticated: the handler's per-connection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A `token` in the upgrade request's query.
    Upgrade,
    /// The first message.
    FirstMessage,
}

/// The query's `token`, decoded (`Ok(None)`: none, the first message decides;
/// `Err`: a malformed query). The one reading of the query for the authenticator
/// and the `/ws` route's count of unauthenticated connections.
fn query_token(uri: &axum::http::Uri) -> Result<Option<String>, ()> {
    // axum's query decoder, not `UpgradeRequest::query_param`: a browser sends
    // `ada%3Asecret` (`encodeURIComponent`), and user names may hold spaces.
    match Query::<HashMap<String, String>>::try_from_uri(uri) {
        Ok(Query(mut query)) => Ok(query.remove("token")),
        Err(_) => Err(()),
    }
}

impl Tokens {
    /// Tokens checked against `secret`, counting against `limits`.
    pub fn new(secret: impl Into<Arc<str>>, limits: Arc<Limits>) -> Tokens {
        Tokens {
            secret: secret.into(),
            limits,
        }
    }

    /// The identity a token stands for, or why it does not stand for one.
    fn check(&self, token: &str, via: Via) -> Result<Identity<Via>, Refusal> {
        let (user, given) = token
            .rsplit_once(':')
            .ok_or("token is not <user>:<secret>")?;
        if user.is_empty() {
            return Err("token has no user name".into());
        }
        if given != &*self.secret {
            return Err("wrong token".into());
        }
        Ok(Identity::user(user).with_state(via))
    }
}

impl Authenticator for Tokens {
    type State = Via;

    async fn at_upgrade(&self, request: Arc<UpgradeRequest>) -> UpgradeVerdict<Via> {
        match query_token(&request.uri) {
            Err(()) => {
                let refusal = Refusal::with_status(StatusCode::BAD_REQUEST, "malformed query");
                UpgradeVerdict::Refuse(refusal)
            }
            Ok(None) => UpgradeVerdict::AwaitFirstMessage, // the first message decides
            Ok(Some(token)) => match self.check(&token, Via::Upgrade) {
                Ok(identity) => UpgradeVerdict::Accept(identity),
                Err(refusal) => UpgradeVerdict::Refuse(refusal), // 401, the reason as body
            },
        }
    }

    async fn authenticate(&self, request: AuthRequest) -> Result<Identity<Via>, Refusal> {
        let text = request
            .first_message
            .as_text()
            .ok_or("first message is binary")?;
        let value: Value = serde_json::from_str(text).map_err(|_| "first message is not JSON")?;
        if value["type"] != "auth" {
            return Err("first message is not auth".into());
        }
        let identity = self.check(
            value["token"].as_str().ok_or("no token")?,
            Via::FirstMessage,
        )?;
        // `--max-conns` filled up while this client was authenticating: closed with
        // 1008 (a refusal after the upgrade), the reason logged.
        if self.limits.is_full() {
            self.limits.refused_full.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::with_status(
                StatusCode::SERVICE_UNAVAILABLE,
                "server full",
            ));
        }
        Ok(identity)
    }
}

/// The chat's handler. It counts what the driver hands back at each connection's
/// end (**G3** end to end), for `/stats`, and the authenticated connections for
/// [`Limits`].
#[derive(Debug, Default)]
pub struct Chat {
    /// The caps and counts shared with the authenticator and the HTTP layer.
    limits: Arc<Limits>,
    /// Messages queued for a client and never written to it, over all connections.
    unsent: AtomicU64,
    /// Connections that ended with at least one such message.
    closed_with_unsent: AtomicU64,
    /// Connections handed to `on_close` (every one that was authenticated).
    sessions_closed: AtomicU64,
    /// The cluster this node has joined (`--redis`), for the welcome's `online`.
    #[cfg(feature = "redis")]
    cluster: Option<Cluster>,
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
    /// A handler counting against `limits`.
    pub fn new(limits: Arc<Limits>) -> Chat {
        Chat {
            limits,
            ..Chat::default()
        }
    }

    /// The handler of a node of `cluster`: the welcome's `online` counts the
    /// connections of every node.
    #[cfg(feature = "redis")]
    pub fn clustered(limits: Arc<Limits>, cluster: Option<Cluster>) -> Chat {
        Chat {
            cluster,
            ..Chat::new(limits)
        }
    }

    /// The connections open, the one authenticating included: on every node of the
    /// cluster (the others' as of their last heartbeat), or on this server alone.
    fn online(&self, session: &Session<Via>) -> usize {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return cluster.connections();
        }
        // O(1), where counting the `Ready` ones would walk every connection on
        // every connect.
        session.registry.len()
    }

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

impl Handler<Via> for Chat {
    async fn on_authenticated(&self, session: &Session<Via>, emitter: &Emitter) {
        // Paired with `on_close` by the driver: every connection that reaches this
        // call reaches that one, exactly once.
        self.limits.authenticated(session.state, 1);
        // Both are emitted before Ready and delivered first, in this order (G2).
        let _ = emitter.emit(text(json!({
            "type": "ready",
            "user": session.user(),
            "conn": session.id.to_string(),
        })));
        let _ = emitter.emit(text(json!({
            "type": "welcome",
            "text": format!("welcome, {}", session.user().unwrap_or_default()),
            // Open connections, this one included (cluster-wide on a cluster node).
            "online": self.online(session),
        })));
    }

    async fn on_message(
        &self,
        session: &Session<Via>,
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
            // `broadcast` and `send_to_user` deliver here, then publish to the other
            // nodes when the registry is attached to a cluster (`--redis`).
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

    async fn on_close(&self, session: &Session<Via>, closed: &Closed) {
        self.limits.authenticated(session.state, -1);
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

/// The caps in front of the registry and their counts, shared by the accept loop,
/// the `/ws` route, the authenticator and the handler; `/stats` shows them under
/// `"http"` and `"admission"`.
///
/// - **Not upgraded** (`--max-pending`): the accept loop counts every TCP connection
///   from its accept until it upgrades to a WebSocket or closes; one more is answered
///   503 and closed at once, before anything is read.
/// - **Unauthenticated** (`--max-unauthenticated`): a client with no `token` in its
///   query counts from its upgrade until it has authenticated or its connection has
///   ended. The `/ws` route counts such upgrades (`awaiting`, down again when the
///   connection's [`Ended`](ws_lifecycle::axum::Ended) resolves: a task per
///   connection waits for it), the handler counts those of them that authenticated
///   (`on_authenticated` up, `on_close` down, which the driver pairs exactly); the
///   difference is the unauthenticated count. One more is answered 503 at the
///   upgrade: nothing is listed, no WebSocket opens.
/// - **Authenticated** (`--max-conns`): `on_authenticated` up, `on_close` down. At
///   the cap the upgrade is answered 503 `server full`, in both modes; a client whose
///   auth message arrives once the cap has filled is closed with 1008 (an
///   authenticator's refusal after the upgrade). The registry's own cap is
///   `--max-conns` + `--max-unauthenticated`: with the unauthenticated ones capped, it
///   can refuse (Close 1013) only connections beyond `--max-conns` authenticated
///   ones, and it is the hard bound on everything listed when many authentications
///   race for the last places.
#[derive(Debug, Default)]
pub struct Limits {
    max_conns: Option<usize>,
    max_unauthenticated: usize,
    max_pending: usize,
    /// TCP connections open and not upgraded.
    pending: AtomicUsize,
    refused_pending: AtomicU64,
    header_timeouts: AtomicU64,
    /// First-message upgrades whose connection has not ended.
    awaiting: AtomicUsize,
    /// Those of them that authenticated (and have not reached `on_close`).
    awaiting_authenticated: AtomicUsize,
    refused_unauthenticated: AtomicU64,
    /// Authenticated connections (`on_authenticated` without `on_close` yet).
    sessions: AtomicUsize,
    refused_full: AtomicU64,
}

/// `/stats`'s `"http"`: connections that have not upgraded to a WebSocket.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HttpStats {
    /// TCP connections open and not upgraded: waiting for a request head, being
    /// answered, or idle between requests.
    pub pending: usize,
    /// `--max-pending`.
    pub max_pending: usize,
    /// Connections answered 503 and closed at accept because `pending` was at the cap.
    pub refused_pending: u64,
    /// Connections closed because a request head did not arrive within
    /// `--header-timeout-ms` (a silent or slow client, an idle keep-alive).
    pub header_timeouts: u64,
}

/// `/stats`'s `"admission"`: the WebSocket caps.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AdmissionStats {
    /// WebSockets open and still waiting for their auth message.
    pub unauthenticated: usize,
    /// `--max-unauthenticated`.
    pub max_unauthenticated: usize,
    /// Upgrades answered 503 because `unauthenticated` was at the cap.
    pub refused_unauthenticated: u64,
    /// Authenticated connections not yet handed to `on_close`.
    pub authenticated: usize,
    /// `--max-conns` (`null`: no cap).
    pub max_conns: Option<usize>,
    /// Upgrades answered 503 and auth messages closed with 1008 because
    /// `authenticated` was at `--max-conns`.
    pub refused_full: u64,
}

impl Limits {
    /// The caps of `args`, nothing counted yet.
    pub fn new(args: &Args) -> Limits {
        Limits {
            max_conns: args.max_conns,
            max_unauthenticated: args.max_unauthenticated,
            max_pending: args.max_pending,
            ..Limits::default()
        }
    }

    fn is_full(&self) -> bool {
        (self.max_conns).is_some_and(|max| self.sessions.load(Ordering::Acquire) >= max)
    }

    fn authenticated(&self, via: Via, delta: isize) {
        let add = |counter: &AtomicUsize| match delta {
            1 => counter.fetch_add(1, Ordering::AcqRel),
            _ => counter.fetch_sub(1, Ordering::AcqRel),
        };
        add(&self.sessions);
        if via == Via::FirstMessage {
            add(&self.awaiting_authenticated);
        }
    }

    fn unauthenticated(&self) -> usize {
        // Read in this order, a connection that authenticates and ends meanwhile is
        // over-counted for a moment, never under-counted.
        let authenticated = self.awaiting_authenticated.load(Ordering::Acquire);
        (self.awaiting.load(Ordering::Acquire)).saturating_sub(authenticated)
    }

    /// A place for one more unauthenticated WebSocket, held until the guard drops.
    fn await_first_message(self: &Arc<Self>) -> Option<Counted> {
        let counted = Counted::new(self.clone(), |limits| &limits.awaiting);
        if self.unauthenticated() > self.max_unauthenticated {
            return None; // released by the drop
        }
        Some(counted)
    }

    /// A place for one more connection that has not upgraded, held until the guard
    /// drops.
    fn pend(self: &Arc<Self>) -> Option<Counted> {
        let counted = Counted::new(self.clone(), |limits| &limits.pending);
        if self.pending.load(Ordering::Acquire) > self.max_pending {
            return None;
        }
        Some(counted)
    }

    /// What `/stats` shows under `"http"`.
    pub fn http_stats(&self) -> HttpStats {
        HttpStats {
            pending: self.pending.load(Ordering::Acquire),
            max_pending: self.max_pending,
            refused_pending: self.refused_pending.load(Ordering::Relaxed),
            header_timeouts: self.header_timeouts.load(Ordering::Relaxed),
        }
    }

    /// What `/stats` shows under `"admission"`.
    pub fn admission_stats(&self) -> AdmissionStats {
        AdmissionStats {
            unauthenticated: self.unauthenticated(),
            max_unauthenticated: self.max_unauthenticated,
            refused_unauthenticated: self.refused_unauthenticated.load(Ordering::Relaxed),
            authenticated: self.sessions.load(Ordering::Acquire),
            max_conns: self.max_conns,
            refused_full: self.refused_full.load(Ordering::Relaxed),
        }
    }
}

/// One unit of a [`Limits`] count, given back on drop.
struct Counted {
    limits: Arc<Limits>,
    counter: fn(&Limits) -> &AtomicUsize,
}

impl Counted {
    fn new(limits: Arc<Limits>, counter: fn(&Limits) -> &AtomicUsize) -> Counted {
        counter(&limits).fetch_add(1, Ordering::AcqRel);
        Counted { limits, counter }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        (self.counter)(&self.limits).fetch_sub(1, Ordering::AcqRel);
    }
}

/// The router's state.
#[derive(Clone)]
struct App {
    service: Arc<ChatService>,
    limits: Arc<Limits>,
    /// The cluster this node has joined (`--redis`), for `/stats`.
    #[cfg(feature = "redis")]
    cluster: Option<Cluster>,
}

/// Serves the chat on `listener` until `shutdown` completes, then drains; returns
/// what the drain did. Everything is over within [`DRAIN_TIMEOUT`] of `shutdown`:
/// the WebSockets' drain, the HTTP requests in flight, and the connections that
/// have not sent a whole request (dropped at the deadline, or at once if they are
/// not in a request).
pub async fn serve(
    listener: TcpListener,
    args: Args,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<DrainReport> {
    let limits = Arc::new(Limits::new(&args));
    let mut registry_config = RegistryConfig::default();
    // The hard bound on what is listed; see `Limits`.
    registry_config.max_connections =
        (args.max_conns).map(|max| max.saturating_add(args.max_unauthenticated));
    let registry = Registry::new(registry_config);
    // Joined before anything is served: every connection's broadcasts reach the
    // other nodes. `start` returns at once; Redis is reached in the background.
    #[cfg(feature = "redis")]
    let cluster = match &args.redis {
        Some(url) => {
            let node = args.node.clone().unwrap_or_else(random_node_name);
            let cluster =
                Cluster::start(registry.clone(), ClusterConfig::new(url.clone(), node))
                    .map_err(|error| std::io::Error::other(format!("--redis {url}: {error}")))?;
            println!("cluster node {} on {url}", cluster.node());
            Some(cluster)
        }
        None => None,
    };
    #[cfg(not(feature = "redis"))]
    if args.redis.is_some() {
        return Err(std::io::Error::other(NO_REDIS));
    }
    let mut config = DriverConfig::default();
    config.connection.readiness_timeout = Duration::from_millis(args.auth_timeout_ms);
    // A client that reads so slowly that its outbox fills is closed with 1013 "slow
    // consumer" rather than left open with a gap in what it heard.
    config.connection.overflow = OverflowPolicy::slow_consumer();
    // Refused at the frame's header or as the message grows (Close 1009).
    config.socket.max_message_size = Some(args.max_message_bytes);
    config.socket.max_frame_size = Some(args.max_message_bytes);
    // `hand_on_first_message` stays false (the default): an auth message is the
    // authenticator's, never the handler's.
    let service: Arc<ChatService> = Arc::new(Service::new(
        registry.clone(),
        config,
        Tokens::new(args.secret.clone(), limits.clone()),
        #[cfg(feature = "redis")]
        Chat::clustered(limits.clone(), cluster.clone()),
        #[cfg(not(feature = "redis"))]
        Chat::new(limits.clone()),
    ));
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/stats", get(stats))
        .route("/ws", get(ws))
        .with_state(App {
            service,
            limits: limits.clone(),
            #[cfg(feature = "redis")]
            cluster: cluster.clone(),
        });
    // The handlers are in place: admit connections (G8).
    registry.open();
    let (stop_tx, stop_rx) = watch::channel(Stop::Serving);
    let mut http = tokio::spawn(serve_http(
        listener,
        app,
        limits,
        args.header_timeout_ms,
        stop_rx,
    ));
    shutdown.await;
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    // No new connection from now on; connections idle or still sending a request
    // head are closed at once, requests in flight are answered.
    let _ = stop_tx.send(Stop::Finishing);
    // A cluster node leaves first: no longer a delivery target, its presence gone
    // from the other nodes at once (bounded by the same deadline).
    #[cfg(feature = "redis")]
    if let Some(cluster) = &cluster {
        let _ = tokio::time::timeout_at(deadline, cluster.leave()).await;
    }
    let report = registry.drain(tokio::time::sleep_until(deadline)).await;
    // Whatever HTTP is left at the deadline is dropped (`serve_http` returns once
    // every connection task has ended).
    if tokio::time::timeout_at(deadline, &mut http).await.is_err() {
        let _ = stop_tx.send(Stop::Now);
        let _ = tokio::time::timeout(Duration::from_millis(100), http).await;
    }
    Ok(report)
}

/// What [`serve_http`] is told: serve on, finish, or stop now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Accept and serve.
    Serving,
    /// Finish the request in flight, if any, then close.
    Finishing,
    /// Close now.
    Now,
}

/// The HTTP layer: accepts connections on `listener` and serves each with hyper's
/// HTTP/1 builder — a `header_timeout_ms` bound on every request head (the first,
/// and each next one on a keep-alive connection), upgrades for the WebSocket — and
/// at most `limits.max_pending` of them not upgraded at once. Returns once told to
/// stop and every connection task has ended (an upgraded connection's task ends
/// at its upgrade; the WebSocket runs in a task of its own).
///
/// This is the setup the axum adapter's documentation recommends; `axum::serve` arms
/// no header-read timeout (hyper's needs a timer) and has no such cap.
pub async fn serve_http(
    listener: TcpListener,
    app: Router,
    limits: Arc<Limits>,
    header_timeout_ms: u64,
    mut stop: watch::Receiver<Stop>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(header_timeout_ms))
        // A request head over 16 KiB is answered 431 (hyper's default buffers up
        // to ~400 KiB per connection: 1 024 slow clients could hold 400 MB); the
        // tungstenite adapter's bound.
        .max_buf_size(16 * 1024)
        .keep_alive(true);
    // Each connection task holds a receiver; `closed()` resolves once all are gone.
    let (tasks, alive) = watch::channel(());
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors (EMFILE) or a connection reset before
                    // it was accepted: wait a little rather than spin.
                    if !matches!(error.kind(), std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset) {
                        eprintln!("accept: {error}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            _ = async { stop.wait_for(|stop| *stop != Stop::Serving).await.is_ok() } => break,
        };
        let Some(pending) = limits.pend() else {
            limits.refused_pending.fetch_add(1, Ordering::Relaxed);
            refuse_busy(stream);
            continue;
        };
        // Requests being answered on this connection (0 while it waits for a head).
        let in_flight = Arc::new(AtomicUsize::new(0));
        let service = {
            let (router, in_flight) = (TowerToHyperService::new(app.clone()), in_flight.clone());
            hyper::service::service_fn(move |request| {
                let answer = hyper::service::Service::call(&router, request);
                let counted = InFlight::new(in_flight.clone());
                async move {
                    let _counted = counted;
                    answer.await
                }
            })
        };
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let (limits, mut stop, alive) = (limits.clone(), stop.clone(), alive.clone());
        tokio::spawn(async move {
            let _alive = alive;
            let _pending = pending;
            let mut connection = std::pin::pin!(connection);
            let ended = loop {
                tokio::select! {
                    ended = connection.as_mut() => break ended,
                    changed = stop.changed() => {
                        let finishing =
                            matches!(changed.map(|()| *stop.borrow_and_update()), Ok(Stop::Finishing));
                        // Stopping, and no request in flight (waiting for a head, idle
                        // or half-sent): nothing is owed, close now.
                        if !finishing || in_flight.load(Ordering::Acquire) == 0 {
                            return;
                        }
                        // The response in flight is written, then the connection closes.
                        connection.as_mut().graceful_shutdown();
                    }
                }
            };
            if let Err(error) = ended {
                if error.is_timeout() {
                    limits.header_timeouts.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    drop((listener, alive));
    tasks.closed().await;
}

/// One request in flight on a connection, until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::AcqRel);
        InFlight(count)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers a connection over `--max-pending` with 503 (if its send buffer takes the
/// few bytes at once) and closes it, without reading or waiting for anything.
fn refuse_busy(stream: TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
        content-length: 20\r\nretry-after: 1\r\nconnection: close\r\n\r\ntoo many connections";
    let _ = stream.try_write(BUSY);
}

/// What `/stats` serves: the registry's snapshot, its keys as they are and in their
/// order, then `"driver"`, `"http"` and `"admission"`, and `"cluster"` on a cluster
/// node only.
#[derive(Debug, Serialize)]
struct Stats {
    #[serde(flatten)]
    registry: RegistrySnapshot,
    driver: DriverStats,
    http: HttpStats,
    admission: AdmissionStats,
    #[cfg(feature = "redis")]
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterStats>,
}

/// `/stats`'s `"cluster"`: the node's [`ClusterSnapshot`], its keys as they are and
/// in their order, then `"presence"`.
#[cfg(feature = "redis")]
#[derive(Debug, Serialize)]
struct ClusterStats {
    #[serde(flatten)]
    snapshot: ClusterSnapshot,
    presence: ClusterPresenceStats,
}

/// Who is online on every node: this one as of now, the others as of their last
/// heartbeat.
#[cfg(feature = "redis")]
#[derive(Debug, Serialize)]
struct ClusterPresenceStats {
    /// Listed connections on all nodes.
    connections: usize,
    /// Each user online anywhere, with their connections on all nodes.
    users: std::collections::BTreeMap<String, usize>,
}

#[cfg(feature = "redis")]
fn cluster_stats(cluster: &Cluster) -> ClusterStats {
    let presence = cluster.presence();
    ClusterStats {
        snapshot: cluster.snapshot(),
        presence: ClusterPresenceStats {
            connections: presence.connections(),
            users: presence.users(),
        },
    }
}

async fn stats(State(app): State<App>) -> Json<Stats> {
    Json(Stats {
        registry: app.service.registry().snapshot(),
        driver: app.service.handler().driver_stats(),
        http: app.limits.http_stats(),
        admission: app.limits.admission_stats(),
        #[cfg(feature = "redis")]
        cluster: app.cluster.as_ref().map(cluster_stats),
    })
}

/// 503 with a `text/plain` reason.
fn unavailable(reason: &'static str) -> Response {
    let content_type = [(
        axum::http::header::CONTENT_TYPE,
        "text/plain; charset=utf-8",
    )];
    (StatusCode::SERVICE_UNAVAILABLE, content_type, reason).into_response()
}

async fn ws(State(app): State<App>, request: UpgradeRequest) -> Response {
    if app.limits.is_full() {
        app.limits.refused_full.fetch_add(1, Ordering::Relaxed);
        return unavailable("server full");
    }
    // A first-message client counts as unauthenticated from here (see `Limits`).
    let awaiting = match query_token(&request.uri) {
        Ok(None) => match app.limits.await_first_message() {
            Some(counted) => Some(counted),
            None => {
                app.limits
                    .refused_unauthenticated
                    .fetch_add(1, Ordering::Relaxed);
                return unavailable("too many unauthenticated connections");
            }
        },
        _ => None,
    };
    let served = ws_lifecycle::axum::serve(request, app.service).await;
    if let Some(counted) = awaiting {
        let ws_lifecycle::axum::Served {
            response, ended, ..
        } = served;
        // Until the connection ends (or the upgrade fails: `None` at once).
        tokio::spawn(async move {
            let _counted = counted;
            ended.await;
        });
        return response;
    }
    served.into_response()
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
    // The first line, which `tests/chat_signal.rs` reads for the address.
    println!("chat listening on http://{addr}  (Ctrl-C drains and exits)");
    // Every connection is a file descriptor: the soft limit (often 1 024) up to the
    // hard one.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            println!("open files: up to {limit}");
            // Connections not upgraded alone could take every descriptor: the
            // WebSockets and the listener would find none left.
            if limit <= args.max_pending as u64 + 64 {
                eprintln!(
                    "warning: --max-pending {} leaves little of the {limit} open files to the \
                     WebSockets; lower it",
                    args.max_pending
                );
            }
        }
        Err(error) => eprintln!("open files: the limit stays as it is ({error})"),
    }
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
