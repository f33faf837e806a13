//! The driver's authentication modes and its end-to-end guarantees, over real sockets
//! (127.0.0.1, OS-assigned ports, tokio-tungstenite clients), each scenario against
//! both adapters: axum (`ws_lifecycle::axum::serve` in a `Router` served with
//! `into_make_service_with_connect_info::<SocketAddr>()`) and tokio-tungstenite
//! (`ws_lifecycle::tungstenite::accept` in a `TcpListener` loop). The harness is in
//! `tests/driver_modes/harness.rs`; every wait is bounded.
//!
//! 1. upgrade-time success: Ready without a message, the welcome first;
//! 2. upgrade-time refusal: 401 / 403 with the reason, nothing registered, no handler;
//!    and a request that is not an upgrade at all gets an HTTP error answer, before
//!    the authenticator runs;
//! 3. first-message mode, with and without `hand_on_first_message`;
//! 4. no authentication (`Service::public`);
//! 5. the subprotocol: chosen by the authenticator, or from `DriverConfig::protocols`;
//! 6. two services sharing one registry;
//! 7. a handler that never returns is cut `handler_grace` after the close;
//! 8. the messages never written are handed back, exactly, after the peer vanishes;
//! 9. the per-connection state and the peer reach every handler call;
//! 10. `Registry::send_to`, `groups_of` and `deliver` from another connection's handler;
//! 11. a forgotten `Registry::open` is loud (one warning);
//! 12. one Pong per Ping;
//! 13. credential expiry at the upgrade (1008), and a re-authentication extending it.
#![cfg(all(feature = "axum", feature = "tungstenite"))]

#[path = "driver_modes/harness.rs"]
mod harness;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::{self, Message as TMessage};
use tracing::Level;
use ws_lifecycle::core::{CloseCause, OverflowPolicy};
use ws_lifecycle::driver::{AtUpgrade, AuthRequest, Closed, Refusal, UpgradeRequest};
use ws_lifecycle::registry::{Audience, StartupPolicy};
use ws_lifecycle::{
    Authenticator, CloseFrame, ConnectionId, DriverConfig, Emitter, Handler, Identity, Message,
    Registry, RegistryConfig, Sender, Service, Session,
};

use harness::{
    Adapter, Outcome, Recorder, Ws, connect, connect_small_receive_buffer, eventually, local_addr,
    next, next_close, next_text, raw_exchange, raw_upgrade, small_send_buffer_listener, start,
    start_on, tcp, try_connect,
};

/// Runs each named `async fn(Adapter)` scenario once per adapter: a module per
/// scenario, with one test per adapter (`upgrade_accept::axum`, `…::tungstenite`).
macro_rules! on_both_adapters {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn axum() {
                super::$scenario(super::Adapter::Axum).await;
            }
            #[tokio::test]
            async fn tungstenite() {
                super::$scenario(super::Adapter::Tungstenite).await;
            }
        }
    )*};
}

on_both_adapters!(
    upgrade_accept,
    upgrade_refusal,
    not_an_upgrade_is_answered,
    first_message_mode,
    public_mode,
    subprotocols,
    two_services_one_registry,
    pending_handler_is_cut,
    unsent_handed_back,
    state_reaches_every_call,
    send_to_and_groups_of,
    forgotten_open_is_loud,
    one_pong_per_ping,
    credential_expiry,
    reauthentication_extends,
    grace_is_per_connection,
    a_lapsed_credential_is_refused_at_the_upgrade,
);

/// Two services on different adapters, one registry.
#[tokio::test]
async fn two_services_one_registry_across_adapters() {
    two_services(Adapter::Axum, Adapter::Tungstenite).await;
}

const fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

// ── the application ─────────────────────────────────────────────────────────

/// The per-connection state of scenario 9 (every other scenario's is `()`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Room {
    name: String,
    /// Drawn by the authenticator: distinct for every connection.
    serial: u64,
}

/// How a handler call shows the state it was handed.
trait Tag {
    fn tag(&self) -> String;
}

impl Tag for () {
    fn tag(&self) -> String {
        String::new()
    }
}

impl Tag for Room {
    fn tag(&self) -> String {
        format!("{}#{}", self.name, self.serial)
    }
}

/// One handler call, as the handler saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    call: &'static str,
    id: ConnectionId,
    user: Option<String>,
    tag: String,
    peer: Option<SocketAddr>,
}

/// The handler of every scenario: records every call, emits `welcome:<id>` when
/// authenticated (joining the groups of `?groups=a,b`), and answers commands:
///
/// - `hang`: never returns (`std::future::pending`);
/// - `flood`: queues one message of `huge` bytes, then `flood` small ones `m0`, `m1`, …;
/// - `refresh`: re-authenticates until `refresh` from now, answers `refreshed`;
/// - `to:<id>:<text>`: `Registry::send_to(id, text)`, answers `sent` or `err:<kind>`;
/// - `groups:<id>`: answers `groups:` and `Registry::groups_of(id)`, comma-separated;
/// - anything else: answers `echo:<text>`.
#[derive(Default)]
struct Probe {
    calls: Mutex<Vec<Call>>,
    /// The texts `on_message` was handed, in order.
    messages: Mutex<Vec<String>>,
    /// What `on_close` was handed, by connection.
    closed: Mutex<Vec<(ConnectionId, Closed)>>,
    hanging: AtomicUsize,
    flooded: AtomicUsize,
    flood: usize,
    huge: usize,
    refresh: Duration,
    /// `on_close` never returns either.
    hang_on_close: bool,
}

impl Probe {
    fn record<S: Tag>(&self, call: &'static str, session: &Session<S>) {
        self.calls.lock().unwrap().push(Call {
            call,
            id: session.id,
            user: session.user().map(str::to_owned),
            tag: session.state.tag(),
            peer: session.request.peer,
        });
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    fn closed(&self) -> Vec<(ConnectionId, Closed)> {
        self.closed.lock().unwrap().clone()
    }

    fn count(&self, call: &str) -> usize {
        self.calls().iter().filter(|c| c.call == call).count()
    }
}

fn reply(sender: &Sender, text: String) {
    sender.send(Message::text(text)).expect("room for a reply");
}

impl<S: Tag + Send + Sync + 'static> Handler<S> for Probe {
    async fn on_authenticated(&self, session: &Session<S>, emitter: &Emitter) {
        self.record("on_authenticated", session);
        for group in (session
            .request
            .query_param("groups")
            .unwrap_or_default()
            .split(','))
        .filter(|g| !g.is_empty())
        {
            session.registry.join(session.id, group).unwrap();
        }
        let _ = emitter.emit(Message::text(format!("welcome:{}", session.id)));
    }

    async fn on_message(
        &self,
        session: &Session<S>,
        sender: &Sender,
        message: Message,
    ) -> Result<(), CloseFrame> {
        self.record("on_message", session);
        let text = message.as_text().unwrap_or("<binary>").to_owned();
        self.messages.lock().unwrap().push(text.clone());
        if text == "slow" {
            tokio::time::sleep(ms(300)).await;
        } else if text == "hang" {
            self.hanging.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        } else if text == "flood" {
            let huge = Message::binary(vec![0_u8; self.huge]);
            sender.send(huge).expect("queued: a large outbox");
            for i in 0..self.flood {
                let small = Message::text(format!("m{i}"));
                sender.send(small).expect("queued: a large outbox");
            }
            self.flooded.store(self.flood, Ordering::SeqCst);
        } else if text == "refresh" {
            let until = tokio::time::Instant::now().into_std() + self.refresh;
            sender
                .reauthenticate(Some(until))
                .expect("refreshed in time");
            reply(sender, "refreshed".to_owned());
        } else if let Some(rest) = text.strip_prefix("to:") {
            let (id, body) = rest.split_once(':').unwrap();
            let id = ConnectionId::new(id.parse().unwrap());
            let answer = match session.registry.send_to(id, Message::text(body)) {
                Ok(()) => "sent".to_owned(),
                Err(error) => format!("err:{:?}", error.kind),
            };
            reply(sender, answer);
        } else if let Some(id) = text.strip_prefix("groups:") {
            let groups = session
                .registry
                .groups_of(ConnectionId::new(id.parse().unwrap()));
            let names: Vec<&str> = groups.iter().map(|g| &**g).collect();
            reply(sender, format!("groups:{}", names.join(",")));
        } else {
            reply(sender, format!("echo:{text}"));
        }
        Ok(())
    }

    async fn on_close(&self, session: &Session<S>, closed: &Closed) {
        self.record("on_close", session);
        self.closed
            .lock()
            .unwrap()
            .push((session.id, closed.clone()));
        if self.hang_on_close {
            std::future::pending::<()>().await;
        }
    }
}

/// The upgrade-time mode: `?token=good` is ada, `?token=banned` is forbidden (403),
/// anything else unauthorized (401). An optional `?ttl=<ms>` makes the credential
/// expire that long after the upgrade (on tokio's clock, the driver's).
fn tokens() -> impl Authenticator<State = ()> + 'static {
    AtUpgrade(|request: Arc<UpgradeRequest>| async move {
        let identity = match request.query_param("token").as_deref() {
            Some("good") => Identity::user("ada"),
            Some("banned") => return Err(Refusal::forbidden("banned user")),
            _ => return Err(Refusal::unauthorized("missing or bad token")),
        };
        Ok(match request.query_param("ttl").as_deref() {
            Some(ttl) => {
                let ttl = ms(ttl.parse().unwrap());
                identity.expiring_at(tokio::time::Instant::now().into_std() + ttl)
            }
            None => identity,
        })
    })
}

/// The first-message mode: the first message must be `token:<user>`.
fn first_message() -> impl Authenticator<State = ()> + 'static {
    |request: AuthRequest| async move {
        let text = request.first_message.as_text().unwrap_or_default();
        match text.strip_prefix("token:") {
            Some(user) => Ok(Identity::user(user)),
            None => Err("send token:<user> first"),
        }
    }
}

/// A service on `registry`, shared by the server and the test (which reads its
/// handler).
fn service<A>(
    registry: &Registry,
    config: DriverConfig,
    auth: A,
    probe: Probe,
) -> Arc<Service<A, Probe>>
where
    A: Authenticator,
    Probe: Handler<A::State>,
{
    Arc::new(Service::new(registry.clone(), config, auth, probe))
}

/// The id in a `welcome:<id>` message.
fn welcomed(text: &str) -> ConnectionId {
    let id = text
        .strip_prefix("welcome:")
        .unwrap_or_else(|| panic!("not a welcome: {text}"));
    ConnectionId::new(id.parse().unwrap())
}

async fn send(ws: &mut Ws, text: &str) {
    send_frame(ws, TMessage::text(text)).await;
}

async fn send_frame(ws: &mut Ws, frame: TMessage) {
    tokio::time::timeout(harness::WAIT, ws.send(frame))
        .await
        .expect("sent in time")
        .unwrap();
}

/// Closes from the client and reads the server's answering Close.
async fn close(ws: &mut Ws) {
    tokio::time::timeout(harness::WAIT, ws.close(None))
        .await
        .expect("closed in time")
        .unwrap();
    let _ = next_close(ws).await;
}

// ── 1. upgrade-time success ────────────────────────────────────────────────

/// Authenticated by its query at the upgrade, a client is Ready without sending
/// anything: the handler's `on_authenticated` emit is the first thing it receives,
/// within a second of connecting; the registry lists it Ready under its user.
async fn upgrade_accept(adapter: Adapter) {
    let registry = Registry::open_now();
    let service = service(
        &registry,
        DriverConfig::default(),
        tokens(),
        Probe::default(),
    );
    let mut server = start(adapter, service.clone()).await;

    let t0 = Instant::now();
    let mut ws = connect(&server.url("?token=good")).await;
    let welcome = next_text(&mut ws).await; // the client has sent nothing
    let elapsed = t0.elapsed();
    let id = welcomed(&welcome);
    assert!(elapsed < ms(1000), "welcome after {elapsed:?}");
    let snapshot = registry.snapshot();
    assert_eq!(
        (snapshot.open, snapshot.by_phase.ready, snapshot.users),
        (1, 1, 1),
        "{snapshot:?}"
    );
    assert_eq!(registry.connections_of("ada"), [id]);
    assert!(
        service.handler().messages().is_empty(),
        "no message was needed"
    );

    // A client that sends at once still gets the welcome first (G2).
    let mut eager = connect(&server.url("?token=good")).await;
    send(&mut eager, "hi").await;
    assert!(next_text(&mut eager).await.starts_with("welcome:"));
    assert_eq!(next_text(&mut eager).await, "echo:hi");

    for ws in [&mut ws, &mut eager] {
        close(ws).await;
        let closed = server.closed().await;
        assert!(closed.record.is_clean(), "{closed:?}");
        assert!(closed.unsent.is_empty(), "{closed:?}");
    }
}

// ── 2. upgrade-time refusal ────────────────────────────────────────────────

/// A refusal at the upgrade is the HTTP answer — 401, or 403 for
/// `Refusal::forbidden`, with the reason as the body — and no WebSocket: nothing
/// registered, no handler call, and the adapter reports no socket.
async fn upgrade_refusal(adapter: Adapter) {
    let registry = Registry::open_now();
    let service = service(
        &registry,
        DriverConfig::default(),
        tokens(),
        Probe::default(),
    );
    let mut server = start(adapter, service.clone()).await;
    let before = registry.snapshot();

    let cases = [
        ("", 401, "missing or bad token"),
        ("?token=guess", 401, "missing or bad token"),
        ("?token=banned", 403, "banned user"),
    ];
    for (query, status, reason) in cases {
        match try_connect(&server.url(query), None).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), status, "{query}");
            }
            Err(other) => panic!("{query}: expected an HTTP refusal, got {other}"),
            Ok(_) => panic!("{query}: expected an HTTP refusal, got a WebSocket"),
        }
        let answer = raw_upgrade(server.addr, query, "").await;
        assert_eq!(answer.status, status, "{answer:?}");
        assert_eq!(answer.body, reason, "{answer:?}");
        let head = answer.head.to_ascii_lowercase();
        assert!(head.contains("content-type: text/plain"), "{answer:?}");
        for _ in 0..2 {
            match server.outcome().await {
                Outcome::NoSocket(why) => {
                    if adapter == Adapter::Tungstenite {
                        assert!(why.contains(reason), "{why}");
                    }
                }
                Outcome::Closed(closed) => panic!("a WebSocket ran: {closed:?}"),
            }
        }
    }

    let after = registry.snapshot();
    assert_eq!(after, before, "nothing was ever registered");
    assert_eq!(after.totals.registered, 0);
    assert!(after.totals.refused.is_empty() && after.totals.rejected.is_empty());
    assert!(registry.is_empty());
    assert!(
        service.handler().calls().is_empty(),
        "the handler never ran"
    );
}

/// A request that is not a WebSocket upgrade (a plain `GET`, here with a valid
/// token) gets an HTTP error answer from both adapters (axum's extractor: 400; the
/// tungstenite adapter checks the upgrade headers before the authenticator) — not a
/// silently closed connection — and nothing is registered.
///
/// Found by this suite: the tungstenite adapter asked the authenticator first, then
/// tungstenite's handshake rejected the request without writing any answer (the
/// client read end-of-stream with no status line).
async fn not_an_upgrade_is_answered(adapter: Adapter) {
    let registry = Registry::open_now();
    let service = service(
        &registry,
        DriverConfig::default(),
        tokens(),
        Probe::default(),
    );
    let server = start(adapter, service.clone()).await;
    let request = format!(
        "GET /ws?token=good HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    let answer = raw_exchange(server.addr, &request).await;
    let status = answer.lines().next().unwrap_or_default();
    assert!(
        status.starts_with("HTTP/1.1 4"),
        "{adapter:?}: a plain GET must get an HTTP error answer, got {answer:?}"
    );
    assert_eq!(registry.snapshot().totals.registered, 0);
    assert!(
        service.handler().calls().is_empty(),
        "the handler never ran"
    );
}

// ── 3. first-message mode ──────────────────────────────────────────────────

/// Authentication by the first message is unchanged: the connection opens
/// unauthenticated, the first message goes to the authenticator and not to
/// `on_message`; with `hand_on_first_message` it reaches `on_message` too, first,
/// before the later ones, in order.
async fn first_message_mode(adapter: Adapter) {
    for hand_on in [false, true] {
        let registry = Registry::open_now();
        let mut config = DriverConfig::default();
        config.hand_on_first_message = hand_on;
        let service = service(&registry, config, first_message(), Probe::default());
        let mut server = start(adapter, service.clone()).await;

        let mut ws = connect(&server.url("")).await;
        eventually("listed, not authenticated", || {
            registry.snapshot().by_phase.accepted == 1
        })
        .await;
        assert_eq!(registry.snapshot().by_phase.ready, 0);
        for text in ["token:ada", "one", "two"] {
            send(&mut ws, text).await;
        }
        assert!(next_text(&mut ws).await.starts_with("welcome:"));
        let mut expected = vec!["one", "two"];
        if hand_on {
            expected.insert(0, "token:ada");
        }
        for text in &expected {
            assert_eq!(
                next_text(&mut ws).await,
                format!("echo:{text}"),
                "{hand_on}"
            );
        }
        assert_eq!(service.handler().messages(), expected, "{hand_on}");
        assert_eq!(registry.connections_of("ada").len(), 1);
        close(&mut ws).await;
        assert!(server.closed().await.record.is_clean());
    }
}

// ── 4. no authentication ───────────────────────────────────────────────────

/// `Service::public`: a client is Ready with no credential, its session has no user,
/// and it receives broadcasts.
async fn public_mode(adapter: Adapter) {
    let registry = Registry::open_now();
    let service = Arc::new(Service::public(
        registry.clone(),
        DriverConfig::default(),
        Probe::default(),
    ));
    let _server = start(adapter, service.clone()).await;
    let url = _server.url("");
    let (mut a, mut b) = (connect(&url).await, connect(&url).await);
    for ws in [&mut a, &mut b] {
        assert!(next_text(ws).await.starts_with("welcome:"));
    }
    let snapshot = registry.snapshot();
    assert_eq!(
        (snapshot.by_phase.ready, snapshot.users),
        (2, 0),
        "{snapshot:?}"
    );
    let users: Vec<Option<String>> = (service.handler().calls().into_iter())
        .map(|c| c.user)
        .collect();
    assert_eq!(users, [None, None]);

    let report = registry.broadcast(Message::text("news"));
    assert_eq!(report.delivered, 2, "{report:?}");
    for ws in [&mut a, &mut b] {
        assert_eq!(next_text(ws).await, "news");
    }
}

// ── 5. the subprotocol ─────────────────────────────────────────────────────

/// The authenticator's choice (`Identity::selecting_protocol`) answers the upgrade;
/// without one, the first of `DriverConfig::protocols` the client offered; none if
/// the client offered none of them.
async fn subprotocols(adapter: Adapter) {
    const PROTOCOL: &str = "sec-websocket-protocol";
    // The token rides in the subprotocol list; the authenticator selects `chat`.
    let by_protocol = AtUpgrade(|request: Arc<UpgradeRequest>| async move {
        let user = request.protocols().find_map(|p| p.strip_prefix("token."));
        match user.map(str::to_owned) {
            Some(user) => Ok(Identity::user(user).selecting_protocol("chat")),
            None => Err(Refusal::unauthorized("no token")),
        }
    });
    let registry = Registry::open_now();
    let chosen = service(
        &registry,
        DriverConfig::default(),
        by_protocol,
        Probe::default(),
    );
    let server = start(adapter, chosen).await;
    let (mut ws, response) = try_connect(&server.url(""), Some("chat, token.x"))
        .await
        .expect("the upgrade succeeds");
    assert_eq!(response.headers()[PROTOCOL], "chat");
    assert!(next_text(&mut ws).await.starts_with("welcome:"));
    assert_eq!(registry.connections_of("x").len(), 1);

    let mut config = DriverConfig::default();
    config.protocols = vec!["v2".to_owned()];
    let registry = Registry::open_now();
    let configured = Arc::new(Service::public(registry, config, Probe::default()));
    let server = start(adapter, configured).await;
    let (mut ws, response) = try_connect(&server.url(""), Some("v1, v2"))
        .await
        .expect("the upgrade succeeds");
    assert_eq!(response.headers()[PROTOCOL], "v2");
    assert!(next_text(&mut ws).await.starts_with("welcome:"));
    // The authenticator selects one the client did not offer: dropped (a client
    // fails a 101 naming a protocol it did not offer), the upgrade still succeeds.
    let off_list = AtUpgrade(|_: Arc<UpgradeRequest>| async {
        Ok::<_, Refusal>(Identity::user("y").selecting_protocol("bogus"))
    });
    let bogus = start(
        adapter,
        service(
            &Registry::open_now(),
            DriverConfig::default(),
            off_list,
            Probe::default(),
        ),
    )
    .await;
    let answer = raw_upgrade(bogus.addr, "", "Sec-WebSocket-Protocol: chat\r\n").await;
    assert_eq!(answer.status, 101, "{answer:?}");
    assert!(
        !answer.head.to_ascii_lowercase().contains(PROTOCOL),
        "{answer:?}"
    );

    // Offered none the server speaks: answered without a subprotocol.
    let answer = raw_upgrade(server.addr, "", "Sec-WebSocket-Protocol: v1\r\n").await;
    assert_eq!(answer.status, 101, "{answer:?}");
    assert!(
        !answer.head.to_ascii_lowercase().contains(PROTOCOL),
        "{answer:?}"
    );
}

// ── 6. two services, one registry ──────────────────────────────────────────

async fn two_services_one_registry(adapter: Adapter) {
    two_services(adapter, adapter).await;
}

/// Two services (different authenticators, on `first` and `second`) sharing one
/// registry: their connections get distinct ids, all receive a broadcast, and
/// nothing is refused or rejected.
async fn two_services(first: Adapter, second: Adapter) {
    let registry = Registry::open_now();
    let public = Arc::new(Service::public(
        registry.clone(),
        DriverConfig::default(),
        Probe::default(),
    ));
    let private = service(
        &registry,
        DriverConfig::default(),
        tokens(),
        Probe::default(),
    );
    let one = start(first, public).await;
    let two = start(second, private).await;
    let mut clients = Vec::new();
    for _ in 0..2 {
        clients.push(connect(&one.url("")).await);
        clients.push(connect(&two.url("?token=good")).await);
    }
    let mut ids = Vec::new();
    for ws in &mut clients {
        ids.push(welcomed(&next_text(ws).await));
    }
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "ids {ids:?}");

    let report = registry.broadcast(Message::text("news"));
    assert_eq!(report.delivered, 4, "{report:?}");
    for ws in &mut clients {
        assert_eq!(next_text(ws).await, "news");
    }
    let snapshot = registry.snapshot();
    assert_eq!(
        (snapshot.open, snapshot.by_phase.ready),
        (4, 4),
        "{snapshot:?}"
    );
    assert_eq!(snapshot.totals.registered, 4, "{snapshot:?}");
    assert!(snapshot.totals.refused.is_empty(), "{snapshot:?}");
    assert!(snapshot.totals.rejected.is_empty(), "{snapshot:?}");
}

// ── 7. a handler that never returns ────────────────────────────────────────

/// `on_message` awaits forever; the client closes. The close handshake completes
/// anyway, the pending call is cut `handler_grace` after the close began, `on_close`
/// runs exactly once, and the adapter's `Closed` arrives within the grace and a
/// margin (and not before the grace: the call is given all of it). An `on_close`
/// that never returns either is given one more grace, then dropped.
async fn pending_handler_is_cut(adapter: Adapter) {
    const GRACE: Duration = ms(200);
    for hang_on_close in [false, true] {
        let registry = Registry::open_now();
        let mut config = DriverConfig::default();
        config.handler_grace = GRACE;
        let probe = Probe {
            hang_on_close,
            ..Probe::default()
        };
        let service = Arc::new(Service::public(registry.clone(), config, probe));
        let mut server = start(adapter, service.clone()).await;
        let mut ws = connect(&server.url("")).await;
        let id = welcomed(&next_text(&mut ws).await);
        send(&mut ws, "hang").await;
        let probe = service.handler();
        eventually("on_message is hanging", || {
            probe.hanging.load(Ordering::SeqCst) == 1
        })
        .await;

        let t0 = Instant::now();
        close(&mut ws).await; // answered while the handler hangs
        let closed = server.closed().await;
        let elapsed = t0.elapsed(); // from the client's Close
        let graces = if hang_on_close { 2 } else { 1 };
        assert!(
            elapsed >= GRACE * graces,
            "cut before its grace: {elapsed:?} ({hang_on_close})"
        );
        assert!(
            elapsed < GRACE * graces + ms(800),
            "Closed {elapsed:?} after the client's Close ({hang_on_close})"
        );
        assert_eq!(closed.record.cause, CloseCause::Peer, "{closed:?}");
        assert_eq!(probe.count("on_close"), 1);
        assert_eq!(probe.closed(), [(id, closed)]);
        tokio::time::sleep(ms(100)).await;
        assert_eq!(probe.count("on_close"), 1, "on_close exactly once");
        assert!(registry.is_empty());
    }
}

// ── 8. unsent messages after the peer vanishes ─────────────────────────────

/// The client authenticates, then stops reading; the server queues one huge message
/// and then `N` small ones; the client's TCP connection is dropped with data unread
/// (the kernel answers with a reset: no Close). Both the adapter's `Closed` and the
/// one `on_close` is handed report exactly the huge message and the `N` small ones
/// as unsent, in order.
///
/// Why exactly those: the socket buffers are small on both sides (`SO_SNDBUF` on the
/// server's listener, `SO_RCVBUF` on the client, about 64 KiB each once the kernel
/// doubles them) and the huge message is 8 MiB, so it can never be written out: the
/// pump hands it to the socket and then waits for it forever. The pump takes nothing
/// more from the outbox while its flush is pending, and messages taken with it in the
/// same batch but not yet handed to the socket are put back (`requeue_unwritten`) —
/// so every small message queued after the huge one is still the crate's when the
/// transport is lost, and none of them can have reached the wire. The huge message
/// was written in part (the client sees its first bytes before it is dropped), but
/// never whole: the adapters' framing hands it back as it is dropped (G3 through
/// the socket; under tungstenite's framing it was lost in tungstenite's buffer, and
/// this test expected only the `N`). Hence `unsent == [huge, m0, …, m(N-1)]`.
async fn unsent_handed_back(adapter: Adapter) {
    const N: usize = 20;
    const BUFFER: u32 = 32 * 1024;
    let registry = Registry::open_now();
    let mut config = DriverConfig::default();
    config.connection.outbox_capacity = 4096;
    // Room for the huge message and the small ones behind it (an empty outbox takes
    // the huge one whatever the budget; the small ones must fit beside it).
    config.connection.outbox_bytes = 16 << 20;
    config.connection.overflow = OverflowPolicy::Reject;
    let probe = Probe {
        flood: N,
        huge: 8 << 20,
        ..Probe::default()
    };
    let service = Arc::new(Service::public(registry.clone(), config, probe));
    let listener = small_send_buffer_listener(BUFFER);
    let mut server = start_on(adapter, service.clone(), listener);
    let mut ws = connect_small_receive_buffer(server.addr, &server.url(""), BUFFER).await;
    let id = welcomed(&next_text(&mut ws).await);

    send(&mut ws, "flood").await;
    // The huge message's first bytes arrive: it was handed to the socket library.
    let mut first = [0_u8; 16];
    let peeked = tokio::time::timeout(harness::WAIT, tcp(&ws).peek(&mut first))
        .await
        .expect("the huge message starts arriving")
        .unwrap();
    assert!(peeked > 0);
    let probe = service.handler();
    eventually("all queued", || probe.flooded.load(Ordering::SeqCst) == N).await;
    drop(ws); // unread data: a reset, no Close

    let closed = server.closed().await;
    let expected: Vec<Message> = (0..N).map(|i| Message::text(format!("m{i}"))).collect();
    assert!(
        matches!(closed.record.cause, CloseCause::TransportLost(_)),
        "{:?}",
        closed.record
    );
    assert_eq!(closed.unsent.len(), N + 1, "{:?}", closed.record);
    assert_eq!(
        closed.unsent[0],
        Message::binary(vec![0_u8; 8 << 20]),
        "the huge one"
    );
    assert_eq!(closed.unsent[1..], expected);
    assert_eq!(probe.closed(), [(id, closed)], "on_close got the same");
}

// ── 9. per-connection state ────────────────────────────────────────────────

/// The authenticator's state (`Identity::with_state`: the room of `?room=` and a
/// serial of its own) reaches `on_authenticated`, every `on_message` and `on_close`,
/// unchanged, with the same peer address (the client's, for both adapters).
async fn state_reaches_every_call(adapter: Adapter) {
    static SERIAL: AtomicU64 = AtomicU64::new(1);
    let rooms = AtUpgrade(|request: Arc<UpgradeRequest>| async move {
        let name = (request.query_param("room").as_deref())
            .ok_or_else(|| Refusal::unauthorized("no room"))?
            .to_owned();
        let serial = SERIAL.fetch_add(1, Ordering::SeqCst);
        Ok::<_, Refusal>(Identity::user("ada").with_state(Room { name, serial }))
    });
    let registry = Registry::open_now();
    let service = service(&registry, DriverConfig::default(), rooms, Probe::default());
    let mut server = start(adapter, service.clone()).await;

    let mut seen = Vec::new();
    for room in ["42", "7"] {
        let mut ws = connect(&server.url(&format!("?room={room}"))).await;
        let id = welcomed(&next_text(&mut ws).await);
        for text in ["a", "b"] {
            send(&mut ws, text).await;
            assert_eq!(next_text(&mut ws).await, format!("echo:{text}"));
        }
        let peer = local_addr(&ws);
        close(&mut ws).await;
        server.closed().await;
        seen.push((id, room, peer));
    }
    let calls = service.handler().calls();
    let mut tags = Vec::new();
    for (id, room, peer) in seen {
        let mine: Vec<&Call> = calls.iter().filter(|c| c.id == id).collect();
        let names: Vec<&str> = mine.iter().map(|c| c.call).collect();
        assert_eq!(
            names,
            ["on_authenticated", "on_message", "on_message", "on_close"]
        );
        let tag = &mine[0].tag;
        assert!(tag.starts_with(&format!("{room}#")), "{tag}");
        for call in &mine {
            assert_eq!(&call.tag, tag, "the same state in every call: {call:?}");
            assert_eq!(call.peer, Some(peer), "the peer in every call: {call:?}");
            assert_eq!(call.user.as_deref(), Some("ada"));
        }
        assert!(peer.ip().is_loopback());
        tags.push(tag.clone());
    }
    assert_ne!(tags[0], tags[1], "each connection its own state");
}

// ── 10. send_to, groups_of, deliver ────────────────────────────────────────

/// From one connection's handler, the registry reaches another connection by id
/// (`send_to`) and tells its groups (`groups_of`, sorted); after it closed, neither
/// finds it. `deliver` to a group names no refused connection when all are Ready.
async fn send_to_and_groups_of(adapter: Adapter) {
    let registry = Registry::open_now();
    let service = Arc::new(Service::public(
        registry.clone(),
        DriverConfig::default(),
        Probe::default(),
    ));
    let mut server = start(adapter, service).await;
    let mut a = connect(&server.url("?groups=red,blue")).await;
    let a_id = welcomed(&next_text(&mut a).await);
    let mut b = connect(&server.url("")).await;
    let b_id = welcomed(&next_text(&mut b).await);

    send(&mut b, &format!("to:{a_id}:hello")).await;
    assert_eq!(next_text(&mut b).await, "sent");
    assert_eq!(next_text(&mut a).await, "hello");
    send(&mut b, &format!("groups:{a_id}")).await;
    assert_eq!(next_text(&mut b).await, "groups:blue,red");
    send(&mut b, &format!("groups:{b_id}")).await;
    assert_eq!(next_text(&mut b).await, "groups:");
    send(&mut b, "to:999999:anyone").await;
    assert_eq!(next_text(&mut b).await, "err:NotListed");

    let report = registry.deliver(Audience::Group("red"), Message::text("to red"));
    assert_eq!(report.counts.delivered, 1, "{report:?}");
    assert!(report.refused.is_empty(), "{report:?}");
    assert_eq!(next_text(&mut a).await, "to red");

    close(&mut a).await;
    server.closed().await; // unlisted before its adapter reports it closed (G7)
    send(&mut b, &format!("to:{a_id}:late")).await;
    assert_eq!(next_text(&mut b).await, "err:NotListed");
    send(&mut b, &format!("groups:{a_id}")).await;
    assert_eq!(next_text(&mut b).await, "groups:");
}

// ── 11. a forgotten open ───────────────────────────────────────────────────

/// A service over a registry never opened: the first connection held logs one
/// warning naming `Registry::open` (the second connection none); at the hold's
/// timeout both are closed with 1013, and one more warning says `open` was never
/// called.
async fn forgotten_open_is_loud(adapter: Adapter) {
    // This test's tasks all run on this thread (a current-thread runtime), so a
    // thread-default subscriber sees every event of its server.
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let mut config = RegistryConfig::default();
    config.startup = StartupPolicy::Hold {
        capacity: 16,
        timeout: ms(400),
    };
    let registry = Registry::new(config); // never opened
    let service = Arc::new(Service::public(
        registry.clone(),
        DriverConfig::default(),
        Probe::default(),
    ));
    let mut server = start(adapter, service).await;
    let naming_open = || -> Vec<String> {
        (recorder.events().into_iter())
            .filter(|e| e.level == Level::WARN && e.message.contains("Registry::open"))
            .map(|e| e.message)
            .collect()
    };

    let mut a = connect(&server.url("")).await;
    eventually("held", || registry.snapshot().held == 1).await;
    assert_eq!(naming_open().len(), 1, "{:#?}", recorder.events());
    let mut b = connect(&server.url("")).await;
    eventually("both held", || registry.snapshot().held == 2).await;
    assert_eq!(
        naming_open().len(),
        1,
        "once per registry: {:?}",
        naming_open()
    );
    assert!(naming_open()[0].contains("held"), "{:?}", naming_open());

    for ws in [&mut a, &mut b] {
        assert_eq!(next_close(ws).await, Some(1013), "the hold timed out");
    }
    for _ in 0..2 {
        let closed = server.closed().await;
        assert_eq!(closed.record.cause, CloseCause::NotAdmitted, "{closed:?}");
        // The welcome emitted while held was never sent (G2): handed back (G3).
        assert_eq!(closed.unsent.len(), 1, "{closed:?}");
        assert!(closed.unsent[0].as_text().unwrap().starts_with("welcome:"));
    }
    let warnings = naming_open();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[1].contains("never opened"), "{warnings:?}");
}

// ── 12. pings ──────────────────────────────────────────────────────────────

/// A client Ping gets exactly one Pong on both adapters: the socket library answers
/// it, and the driver (whose `answer_pings` default is true) adds none of its own.
///
/// While the connection is idle an extra Pong from the driver would not show:
/// tungstenite keeps its own answer pending until its next read or write, and a Pong
/// written meanwhile replaces it. So the second half pings while the server is busy
/// writing a large message the client does not read yet: the server's next read
/// (of a message sent after the Ping) moves the library's Pong into its write buffer,
/// behind the large message, and a Pong of the driver's would follow as a second.
async fn one_pong_per_ping(adapter: Adapter) {
    const BUFFER: u32 = 32 * 1024;
    assert!(
        DriverConfig::default().answer_pings,
        "the default the adapters override"
    );
    let registry = Registry::open_now();
    let probe = Probe {
        huge: 2 << 20,
        ..Probe::default()
    };
    let service = Arc::new(Service::public(registry, DriverConfig::default(), probe));
    let server = start_on(adapter, service.clone(), small_send_buffer_listener(BUFFER));
    let mut ws = connect_small_receive_buffer(server.addr, &server.url(""), BUFFER).await;
    assert!(next_text(&mut ws).await.starts_with("welcome:"));
    let ping = |payload: &str| TMessage::Ping(payload.as_bytes().to_vec().into());
    let pong = |payload: &str| TMessage::Pong(payload.as_bytes().to_vec().into());

    // Idle: one Pong, then the echo of what was sent after it.
    for payload in ["p1", "p2", "p3"] {
        send_frame(&mut ws, ping(payload)).await;
        assert_eq!(next(&mut ws).await, pong(payload));
        let after = format!("after {payload}");
        send(&mut ws, &after).await;
        assert_eq!(next(&mut ws).await, TMessage::text(format!("echo:{after}")));
    }

    // Busy writing 2 MiB the client does not read yet (`flood` with no small ones).
    send(&mut ws, "flood").await;
    let mut first = [0_u8; 16];
    tokio::time::timeout(harness::WAIT, tcp(&ws).peek(&mut first))
        .await
        .expect("the large message starts arriving")
        .unwrap();
    send_frame(&mut ws, ping("busy")).await;
    send(&mut ws, "after busy").await;
    let probe = service.handler();
    eventually("the message after the Ping was read", || {
        probe.messages().contains(&"after busy".to_owned())
    })
    .await;
    match next(&mut ws).await {
        TMessage::Binary(bytes) => assert_eq!(bytes.len(), 2 << 20),
        other => panic!("expected the large message, got {other:?}"),
    }
    let mut pongs = 0;
    loop {
        match next(&mut ws).await {
            TMessage::Pong(payload) => {
                assert_eq!(&payload[..], b"busy");
                pongs += 1;
            }
            TMessage::Text(text) if text.as_str() == "echo:after busy" => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pongs, 1, "exactly one Pong for the Ping");
}

// ── 13. credential expiry at the upgrade ───────────────────────────────────

/// A credential accepted at the upgrade that lapses 300 ms later closes the
/// connection with 1008 at about that time (G5).
async fn credential_expiry(adapter: Adapter) {
    const TTL: Duration = ms(300);
    let registry = Registry::open_now();
    let service = service(
        &registry,
        DriverConfig::default(),
        tokens(),
        Probe::default(),
    );
    let mut server = start(adapter, service).await;
    let t0 = Instant::now();
    let mut ws = connect(&server.url(&format!("?token=good&ttl={}", TTL.as_millis()))).await;
    assert!(next_text(&mut ws).await.starts_with("welcome:"));
    assert_eq!(next_close(&mut ws).await, Some(1008));
    let elapsed = t0.elapsed();
    // Admitted after t0: the credential lapsed no earlier than t0 + TTL.
    assert!(
        elapsed >= TTL && elapsed < TTL + ms(700),
        "closed after {elapsed:?}"
    );
    let closed = server.closed().await;
    assert_eq!(
        closed.record.cause,
        CloseCause::CredentialExpired,
        "{closed:?}"
    );
}

/// The same credential, refreshed from `on_message` (`Sender::reauthenticate`) before
/// it lapses: the connection outlives the first expiry, and is closed with 1008 at
/// the new one.
async fn reauthentication_extends(adapter: Adapter) {
    const TTL: Duration = ms(300);
    const REFRESH: Duration = ms(500);
    let registry = Registry::open_now();
    let probe = Probe {
        refresh: REFRESH,
        ..Probe::default()
    };
    let service = service(&registry, DriverConfig::default(), tokens(), probe);
    let mut server = start(adapter, service).await;
    let t0 = Instant::now();
    let mut ws = connect(&server.url(&format!("?token=good&ttl={}", TTL.as_millis()))).await;
    assert!(next_text(&mut ws).await.starts_with("welcome:"));
    let refreshed_at = Instant::now();
    send(&mut ws, "refresh").await;
    assert_eq!(next_text(&mut ws).await, "refreshed");
    assert!(t0.elapsed() < TTL, "refreshed in time: {:?}", t0.elapsed());

    // Past the first expiry, still open.
    tokio::time::sleep_until((t0 + TTL + ms(100)).into()).await;
    send(&mut ws, "still here").await;
    assert_eq!(next_text(&mut ws).await, "echo:still here");
    assert_eq!(next_close(&mut ws).await, Some(1008));
    let elapsed = refreshed_at.elapsed();
    assert!(
        elapsed >= REFRESH && elapsed < REFRESH + ms(700),
        "closed {elapsed:?} after the refresh"
    );
    let closed = server.closed().await;
    assert_eq!(
        closed.record.cause,
        CloseCause::CredentialExpired,
        "{closed:?}"
    );
}

// ── found by review ────────────────────────────────────────────────────────

/// One `handler_grace` per connection, not per call: a slow handler (300 ms a
/// message) with 20 messages held when the client closes is cut `grace` after the
/// close — it cannot stretch the grace call by call over the held messages (that
/// took 6 s before the fix).
async fn grace_is_per_connection(adapter: Adapter) {
    const GRACE: Duration = ms(500);
    let registry = Registry::open_now();
    let mut config = DriverConfig::default();
    config.handler_grace = GRACE;
    let service = Arc::new(Service::public(registry.clone(), config, Probe::default()));
    let mut server = start(adapter, service.clone()).await;
    let mut ws = connect(&server.url("")).await;
    welcomed(&next_text(&mut ws).await);
    for _ in 0..20 {
        send(&mut ws, "slow").await;
    }
    let handler = service.handler();
    eventually("the first slow call started", || {
        handler.messages().len() == 1
    })
    .await;
    let t0 = Instant::now();
    close(&mut ws).await;
    let closed = server.closed().await;
    let elapsed = t0.elapsed();
    assert!(
        elapsed < GRACE + ms(400),
        "{adapter:?}: Closed {elapsed:?} after the client's Close (grace {GRACE:?})"
    );
    assert!(
        handler.messages().len() < 20,
        "the held messages were cut short"
    );
    assert_eq!(closed.record.cause, CloseCause::Peer, "{closed:?}");
    assert_eq!(handler.count("on_close"), 1);
}

/// Requests that look like upgrades but that tungstenite's handshake refuses (an
/// HTTP/1.0 request, `Upgrade: websocket, foo/1`, `upgrade` only in a second
/// `Connection` header, a frame sent with the head before the answer) are answered
/// 4xx before the authenticator runs: nothing registered, no handler call. (The
/// tungstenite adapter checked them more loosely than tungstenite, authenticated
/// them, then closed them without an answer; found by review.)
#[tokio::test]
async fn not_quite_an_upgrade_is_answered_before_authentication() {
    // axum's side is hyper's and axum's extractor's (they keep such a connection
    // open or answer it themselves); this is the tungstenite adapter's own check.
    let adapter = Adapter::Tungstenite;
    let checked = Arc::new(AtomicUsize::new(0));
    let counted = checked.clone();
    let counting = AtUpgrade(move |_: Arc<UpgradeRequest>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Refusal>(Identity::user("ada")) }
    });
    let registry = Registry::open_now();
    let service = service(
        &registry,
        DriverConfig::default(),
        counting,
        Probe::default(),
    );
    let server = start(adapter, service.clone()).await;
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    let host = format!("Host: {}\r\n", server.addr);
    let requests = [
        format!("GET /ws HTTP/1.0\r\n{host}Upgrade: websocket\r\nConnection: Upgrade\r\n{key}\r\n"),
        format!(
            "GET /ws HTTP/1.1\r\n{host}Upgrade: websocket, foo/1\r\nConnection: Upgrade\r\n{key}\r\n"
        ),
        format!(
            "GET /ws HTTP/1.1\r\n{host}Upgrade: websocket\r\nConnection: keep-alive\r\nConnection: Upgrade\r\n{key}\r\n"
        ),
        format!(
            "GET /ws HTTP/1.1\r\n{host}Upgrade: websocket\r\nConnection: Upgrade\r\n{key}\r\nearly-bytes"
        ),
    ];
    for request in &requests {
        let answer = raw_exchange(server.addr, request).await;
        let status = answer.lines().next().unwrap_or_default();
        let first_line = request.lines().next().unwrap_or_default();
        assert!(
            status.starts_with("HTTP/1.1 4"),
            "{first_line}: answered {answer:?}"
        );
    }
    assert_eq!(checked.load(Ordering::SeqCst), 0, "the authenticator ran");
    assert!(service.handler().calls().is_empty(), "the handler ran");
    assert!(registry.is_empty());
}

/// An identity whose credential lapsed already is refused at the upgrade (401), not
/// upgraded and then closed with 1008 (found by review).
async fn a_lapsed_credential_is_refused_at_the_upgrade(adapter: Adapter) {
    let registry = Registry::open_now();
    let service = service(
        &registry,
        DriverConfig::default(),
        tokens(),
        Probe::default(),
    );
    let server = start(adapter, service.clone()).await;
    match try_connect(&server.url("?token=good&ttl=0"), None).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected a 401, got {:?}", other.map(|(_, r)| r.status())),
    }
    assert_eq!(registry.snapshot().totals.registered, 0);
}

/// A panic in the synchronous part of an authenticator (before its future's first
/// `.await`) is answered 500, like one inside it, instead of unwinding through the
/// caller's task (found by review).
#[tokio::test]
async fn a_synchronous_panic_in_the_authenticator_is_a_500() {
    let panicking = AtUpgrade(|request: Arc<UpgradeRequest>| {
        let token = request.query_param("token").expect("a token").into_owned();
        async move { Ok::<_, Refusal>(Identity::user(token)) }
    });
    let service = Service::new(
        Registry::open_now(),
        DriverConfig::default(),
        panicking,
        Probe::default(),
    );
    let bare = UpgradeRequest::new("/ws".parse().unwrap(), Default::default());
    let refusal = service.admit(bare).await.expect_err("refused");
    assert_eq!(refusal.status(), 500);
}
