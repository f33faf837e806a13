//! The guarantees at the wire when the platform delays the first frames after the
//! upgrade (the incidents' shape): the JWT example (`examples/jwt.rs`, token in
//! `Sec-WebSocket-Protocol`, checked before the `101`) served by axum behind a proxy
//! (`delayed_upgrade/proxy.rs`) that holds the first bytes after the `101` in each
//! direction for a seeded 50–150 ms. 127.0.0.1, OS-assigned ports, a
//! tokio-tungstenite client, every wait bounded.
//!
//! The seed is printed by each test; set `DELAYED_UPGRADE_SEED` to replay one.
#![cfg(feature = "axum")]

#[path = "../examples/jwt.rs"]
#[allow(dead_code, unreachable_pub)]
mod jwt;

#[path = "delayed_upgrade/proxy.rs"]
#[allow(dead_code)]
mod proxy;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use ws_lifecycle::driver::Closed;
use ws_lifecycle::{DriverConfig, Emitter, Handler, Message, Registry, Sender, Service, Session};

use jwt::{AUDIENCE, Granted, JwtAuth, Keys};
use proxy::{DELAY, Proxy, Tap};

/// Every single wait gives up after this long.
const WAIT: Duration = Duration::from_secs(5);
/// A whole test gives up after this long.
const TEST_LIMIT: Duration = Duration::from_secs(12);
/// Clients per test.
const CLIENTS: usize = 20;
const SECRET: &str = "delayed-upgrade-secret";

/// The seed of a test's delays: `DELAYED_UPGRADE_SEED`, or a fixed one, mixed with
/// the test's own number so the tests do not share delays.
fn seed(test: u64) -> u64 {
    let base = std::env::var("DELAYED_UPGRADE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    let seed = base ^ test.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    eprintln!("delays seeded with DELAYED_UPGRADE_SEED={base} (test {test}: {seed:#x})");
    seed
}

async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {WAIT:?}: {what}"),
    }
}

/// Polls `check` every millisecond until it holds (bounded).
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    bounded(what, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------
// The server: the example's authenticator and handler, the handler wrapped in a
// probe that records what the driver hands it.

/// What the probe does before the example's `on_authenticated`, per user.
#[derive(Default)]
struct Plan {
    /// Work before the welcome (a history load): the connection stays
    /// `Authenticated`, not `Ready`, meanwhile.
    pause: HashMap<String, Duration>,
    /// Users held until the gate opens.
    gated: HashSet<String>,
}

/// The example's handler, recording every call.
struct Probe {
    chat: jwt::Chat,
    plan: Mutex<Plan>,
    gate: watch::Receiver<bool>,
    /// `on_message`'s texts, per user, in call order.
    seen: Mutex<HashMap<String, Vec<String>>>,
    /// When `on_authenticated` returned (the welcome emitted; `Ready` follows).
    welcomed: Mutex<HashMap<String, Instant>>,
    /// `on_close`'s record and unsent messages, per user.
    closed: Mutex<HashMap<String, Closed>>,
}

fn user_of(session: &Session<Granted>) -> String {
    session.user().unwrap_or_default().to_owned()
}

impl Handler<Granted> for Probe {
    async fn on_authenticated(&self, session: &Session<Granted>, emitter: &Emitter) {
        let user = user_of(session);
        let (pause, gated) = {
            let plan = self.plan.lock().unwrap();
            (plan.pause.get(&user).copied(), plan.gated.contains(&user))
        };
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
        if gated {
            let mut gate = self.gate.clone();
            let _ = gate.wait_for(|open| *open).await;
        }
        self.chat.on_authenticated(session, emitter).await;
        self.welcomed.lock().unwrap().insert(user, Instant::now());
    }

    async fn on_message(
        &self,
        session: &Session<Granted>,
        sender: &Sender,
        message: Message,
    ) -> Result<(), ws_lifecycle::CloseFrame> {
        let text = message.as_text().unwrap_or("<binary>").to_owned();
        self.seen
            .lock()
            .unwrap()
            .entry(user_of(session))
            .or_default()
            .push(text);
        self.chat.on_message(session, sender, message).await
    }

    async fn on_close(&self, session: &Session<Granted>, closed: &Closed) {
        self.closed
            .lock()
            .unwrap()
            .insert(user_of(session), closed.clone());
    }
}

struct Server {
    /// The proxy's address: where clients connect.
    addr: SocketAddr,
    registry: Registry,
    keys: Arc<Keys>,
    service: Arc<Service<JwtAuth, Probe>>,
    gate: watch::Sender<bool>,
    proxy: Proxy,
}

impl Server {
    async fn start(seed: u64) -> Server {
        let registry = Registry::default();
        let keys = Arc::new(Keys::new(SECRET));
        let (gate, gate_rx) = watch::channel(false);
        let probe = Probe {
            chat: jwt::Chat::new(keys.clone()),
            plan: Mutex::default(),
            gate: gate_rx,
            seen: Mutex::default(),
            welcomed: Mutex::default(),
            closed: Mutex::default(),
        };
        let service = jwt::service(
            registry.clone(),
            DriverConfig::default(),
            keys.clone(),
            probe,
        );
        let app = jwt::router(service.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap();
        let serving = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        );
        tokio::spawn(serving.into_future());
        registry.open();
        let proxy = Proxy::start(upstream, seed).await;
        Server {
            addr: proxy.addr,
            registry,
            keys,
            service,
            gate,
            proxy,
        }
    }

    fn probe(&self) -> &Probe {
        self.service.handler()
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.probe().plan.lock().unwrap()
    }

    /// A token for `user` that expires `lifetime` from now (to the second).
    fn token(&self, user: &str, lifetime: Duration) -> String {
        self.keys.mint(user, AUDIENCE, lifetime)
    }

    /// Connects as `user` with a token good for a minute.
    async fn connect(&self, user: &str) -> Client {
        self.connect_with(user, &self.token(user, Duration::from_secs(60)))
            .await
    }

    /// Connects as `user`, offering `chat.v1, jwt.<token>`.
    async fn connect_with(&self, user: &str, token: &str) -> Client {
        let offered = format!("{}, {}{token}", jwt::PROTOCOL, jwt::TOKEN_PREFIX);
        let (ws, response, local) = bounded("the upgrade", upgrade(self.addr, Some(&offered)))
            .await
            .expect("upgraded");
        let selected = response.headers().get("sec-websocket-protocol");
        assert_eq!(
            selected.map(|v| v.to_str().unwrap()),
            Some(jwt::PROTOCOL),
            "the server selects chat.v1, never the token"
        );
        Client {
            user: user.to_owned(),
            local,
            ws,
            closes: 0,
            after_close: Vec::new(),
        }
    }

    /// The connections listed, by phase: (authenticated, ready).
    fn phases(&self) -> (usize, usize) {
        let snapshot = self.registry.snapshot();
        (snapshot.by_phase.authenticated, snapshot.by_phase.ready)
    }
}

type Upgraded = (
    WebSocketStream<TcpStream>,
    tungstenite::handshake::client::Response,
    SocketAddr,
);

/// A WebSocket upgrade to `addr`, offering `protocols` if any.
async fn upgrade(
    addr: SocketAddr,
    protocols: Option<&str>,
) -> Result<Upgraded, tungstenite::Error> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let local = stream.local_addr()?;
    let mut request = format!("ws://{addr}/ws").into_client_request()?;
    if let Some(protocols) = protocols {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocols.parse().unwrap());
    }
    let (ws, response) = tokio_tungstenite::client_async(request, stream).await?;
    Ok((ws, response, local))
}

// ---------------------------------------------------------------------------------
// The client.

/// What a client received, as the example's protocol says.
#[derive(Debug, Clone, PartialEq)]
enum Got {
    Welcome(String),
    Tick(u64),
    Said { from: String, text: String },
    Refreshed(u64),
    Error(String),
    Other(String),
    Close(Option<u16>),
}

struct Client {
    user: String,
    /// The socket's local address: the proxy's tap is found by it.
    local: SocketAddr,
    ws: WebSocketStream<TcpStream>,
    /// Close frames received.
    closes: usize,
    /// Anything received after the first Close (G3: must stay empty).
    after_close: Vec<Got>,
}

impl Client {
    async fn send(&mut self, value: Value) {
        bounded("a send", self.ws.send(WsMessage::text(value.to_string())))
            .await
            .expect("sent");
    }

    /// The next message, `None` at the end of the stream.
    async fn next(&mut self) -> Option<Got> {
        let read = bounded(&format!("{}'s next frame", self.user), self.ws.next()).await;
        let got = match read? {
            Ok(WsMessage::Text(text)) => {
                let value: Value = serde_json::from_str(text.as_str()).expect("JSON");
                match value["type"].as_str() {
                    Some("welcome") => Got::Welcome(value["user"].as_str().unwrap().to_owned()),
                    Some("tick") => Got::Tick(value["n"].as_u64().unwrap()),
                    Some("said") => Got::Said {
                        from: value["from"].as_str().unwrap().to_owned(),
                        text: value["text"].as_str().unwrap().to_owned(),
                    },
                    Some("refreshed") => Got::Refreshed(value["exp"].as_u64().unwrap()),
                    Some("error") => Got::Error(value["error"].as_str().unwrap().to_owned()),
                    _ => Got::Other(value.to_string()),
                }
            }
            Ok(WsMessage::Close(frame)) => Got::Close(frame.map(|f| u16::from(f.code))),
            Ok(other) => Got::Other(format!("{other:?}")),
            Err(_) => return None, // closed, reset: the end
        };
        if self.closes > 0 {
            self.after_close.push(got.clone());
        }
        if matches!(got, Got::Close(_)) {
            self.closes += 1;
        }
        Some(got)
    }

    /// Reads to the end of the stream; what came, the Close included.
    async fn finish(&mut self) -> Vec<Got> {
        let mut rest = Vec::new();
        while let Some(got) = self.next().await {
            rest.push(got);
        }
        rest
    }

    /// Closes (1000) and reads to the end.
    async fn close(&mut self) -> Vec<Got> {
        let normal = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = bounded("closing", self.ws.close(Some(normal))).await;
        self.finish().await
    }
}

/// Checks the end of a connection at the wire and at the client: exactly one Close
/// from the server, with `code`, and nothing after it (G3/G4); nothing before the
/// `101` (G1).
fn check_end(server: &Server, client: &Client, code: u16) -> Tap {
    let tap = server.proxy.tap(client.local);
    let who = &client.user;
    assert!(
        tap.head.starts_with(b"HTTP/1.1 101"),
        "{who}: nothing before the 101 (G1)"
    );
    assert!(tap.s2c_ended, "{who}: the server's stream ended");
    assert_eq!(
        tap.s2c.incomplete(),
        0,
        "{who}: no partial frame at the end"
    );
    let closes: Vec<_> = tap.s2c.frames.iter().filter(|f| f.is_close()).collect();
    assert_eq!(closes.len(), 1, "{who}: exactly one Close on the wire (G4)");
    let last = tap.s2c.frames.last().unwrap();
    assert!(
        last.is_close(),
        "{who}: no frame after the Close on the wire (G3): {last:?}"
    );
    assert_eq!(last.close_code(), Some(code), "{who}: the close code");
    assert_eq!(client.closes, 1, "{who}: one Close received");
    assert!(
        client.after_close.is_empty(),
        "{who}: nothing after the Close: {:?}",
        client.after_close
    );
    tap
}

/// Checks that the proxy's delay was in force on this connection.
fn check_delayed(tap: &Tap, who: &str) {
    let upgraded = tap.upgraded_at.expect("the 101 went by");
    let released = tap
        .s2c_released_at
        .expect("the server's first frames went by");
    assert!(
        released >= upgraded + tap.s2c_delay,
        "{who}: the server's first frames held {:?}",
        tap.s2c_delay
    );
    assert!((DELAY.0..=DELAY.1).contains(&tap.s2c_delay));
    if let Some(released) = tap.c2s_released_at {
        assert!(
            released >= upgraded + tap.c2s_delay,
            "{who}: the client's first frames held"
        );
    }
}

/// Broadcasts `{"type":"tick","n":n}` every `period` through the registry, and in
/// bursts on demand: when each went out, and how many connections each was queued
/// for (`delivered`, from the broadcast's report).
struct Ticker {
    ticks: Arc<Ticks>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

struct Ticks {
    registry: Registry,
    /// When each tick went out; its length numbers the next.
    sent: Mutex<Vec<Instant>>,
    delivered: AtomicUsize,
}

impl Ticks {
    fn tick(&self) {
        // Numbered and broadcast under one lock: the numbers go out in order.
        let mut sent = self.sent.lock().unwrap();
        let n = sent.len();
        sent.push(Instant::now());
        let tick = Message::text(json!({"type": "tick", "n": n}).to_string());
        let report = self.registry.broadcast(tick);
        self.delivered.fetch_add(report.delivered, Ordering::SeqCst);
    }
}

impl Ticker {
    fn start(registry: Registry, period: Duration) -> Ticker {
        let (stop, mut stopped) = watch::channel(false);
        let ticks = Arc::new(Ticks {
            registry,
            sent: Mutex::default(),
            delivered: AtomicUsize::new(0),
        });
        let ticking = ticks.clone();
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = interval.tick() => ticking.tick(),
                    _ = stopped.changed() => break,
                }
            }
        });
        Ticker { ticks, stop, task }
    }

    /// `n` ticks back to back: a backlog in every outbox.
    fn burst(&self, n: usize) {
        (0..n).for_each(|_| self.ticks.tick());
    }

    /// Stops; when each tick went out, and the deliveries counted.
    async fn stop(self) -> (Vec<Instant>, usize) {
        let _ = self.stop.send(true);
        bounded("the ticker", self.task).await.unwrap();
        let sent = self.ticks.sent.lock().unwrap().clone();
        (sent, self.ticks.delivered.load(Ordering::SeqCst))
    }
}

/// True if the ticks are consecutive (none lost, none twice, in order).
fn consecutive(ticks: &[u64]) -> bool {
    ticks.windows(2).all(|w| w[1] == w[0] + 1)
}

fn tick_of(message: &Message) -> Option<u64> {
    let value: Value = serde_json::from_str(message.as_text()?).ok()?;
    (value["type"] == "tick").then(|| value["n"].as_u64())?
}

// ---------------------------------------------------------------------------------
// The tests.

/// Messages each client sends right after the upgrade, before it has received anything.
const EARLY: usize = 8;

/// G1/G2 through the delay: every client's first frame is its welcome (emitted in
/// `on_authenticated`), before the broadcasts made while its first frames were held;
/// what it sent right after the upgrade reaches the handler in order, none lost —
/// for half of the clients while their connection was still `Authenticated` (a
/// 200–260 ms history load before the welcome outlasts the 150 ms delay), for the
/// other half after `Ready`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1_g2_welcome_first_and_early_messages_in_order_through_the_delay() {
    let run = async {
        let server = Arc::new(Server::start(seed(1)).await);
        let users: Vec<String> = (0..CLIENTS).map(|i| format!("u{i:02}")).collect();
        for (i, user) in users.iter().enumerate() {
            if i % 2 == 0 {
                let pause = Duration::from_millis(200 + 3 * i as u64);
                server.plan().pause.insert(user.clone(), pause);
            }
        }
        let ticker = Ticker::start(server.registry.clone(), Duration::from_millis(3));
        let clients: Vec<_> = users
            .iter()
            .map(|user| {
                let (server, user) = (server.clone(), user.clone());
                tokio::spawn(async move {
                    let mut client = server.connect(&user).await;
                    for k in 0..EARLY {
                        client
                            .send(json!({"type": "say", "text": format!("{user}#{k}")}))
                            .await;
                    }
                    let first = client.next().await;
                    let welcomed_at = Instant::now();
                    assert_eq!(
                        first,
                        Some(Got::Welcome(user.clone())),
                        "{user}: the welcome first (G2)"
                    );
                    let (mut ticks, mut own) = (Vec::new(), Vec::new());
                    // Until its own messages are back, or a second passes (then the
                    // checks below say what is missing).
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        while own.len() < EARLY {
                            match client.next().await {
                                Some(Got::Tick(n)) => ticks.push(n),
                                Some(Got::Said { from, text }) if from == user => own.push(text),
                                Some(Got::Said { .. }) => {}
                                other => panic!("{user}: unexpected {other:?}"),
                            }
                        }
                    })
                    .await;
                    client.close().await;
                    (client, welcomed_at, ticks, own)
                })
            })
            .collect();
        let mut ended = Vec::new();
        for client in clients {
            ended.push(bounded("a client", client).await.unwrap());
        }
        let (sent, _) = ticker.stop().await;

        let (mut ticked_in_delay, mut held_before_ready) = (0, 0);
        for (client, welcomed_at, ticks, own) in &ended {
            let user = &client.user;
            let said: Vec<String> = (0..EARLY).map(|k| format!("{user}#{k}")).collect();
            let seen = server.probe().seen.lock().unwrap().get(user).cloned();
            let sent_texts: Vec<String> = said
                .iter()
                .map(|text| json!({"type": "say", "text": text}).to_string())
                .collect();
            assert_eq!(
                seen.unwrap_or_default(),
                sent_texts,
                "{user}: the handler got every early message, in order (G2)"
            );
            assert_eq!(own, &said, "{user}: its own messages, broadcast in order");
            assert!(
                consecutive(ticks),
                "{user}: ticks in order, none lost (G7): {ticks:?}"
            );
            let tap = check_end(&server, client, 1000);
            check_delayed(&tap, user);
            let first = tap
                .s2c
                .frames
                .first()
                .and_then(|f| f.text())
                .unwrap_or_default();
            let welcome: Value = serde_json::from_str(first).unwrap_or_default();
            assert_eq!(
                welcome["type"], "welcome",
                "{user}: the first frame on the wire (G1/G2)"
            );
            // Coverage: a tick it received was broadcast while its welcome was still
            // held by the proxy ...
            if ticks
                .first()
                .is_some_and(|&n| sent[n as usize] < *welcomed_at)
            {
                ticked_in_delay += 1;
            }
            // ... and its early messages reached the server before it was Ready.
            let welcomed = server.probe().welcomed.lock().unwrap()[user];
            if tap.c2s_released_at.is_some_and(|at| at < welcomed) {
                held_before_ready += 1;
            }
        }
        eprintln!(
            "{ticked_in_delay}/{CLIENTS} received a tick broadcast during their delay; \
             {held_before_ready}/{CLIENTS} sent while Authenticated"
        );
        assert!(
            ticked_in_delay >= CLIENTS / 4,
            "broadcasts made during the delay"
        );
        assert!(
            held_before_ready >= CLIENTS / 4,
            "messages that arrived before Ready"
        );
    };
    tokio::time::timeout(TEST_LIMIT, run)
        .await
        .expect("within the test's limit");
}

/// G3/G4 through the delay: a drain while ticks flow, right after a burst of 50, with
/// half of the clients settled and half still inside their delay (nothing of theirs
/// delivered yet):
/// every client gets its welcome, consecutive ticks, exactly one Close 1001 and
/// nothing after it, on the wire too; every tick queued for a connection is either
/// received or handed back in `on_close` (none lost, G3 end to end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_g4_drain_during_the_delay_one_close_last_nothing_lost() {
    let run = async {
        let server = Arc::new(Server::start(seed(2)).await);
        let ticker = Ticker::start(server.registry.clone(), Duration::from_millis(3));
        let reader = |client: Client| {
            tokio::spawn(async move {
                let mut client = client;
                let all = client.finish().await;
                (client, all)
            })
        };
        let mut readers = Vec::new();
        for i in 0..CLIENTS / 2 {
            let mut client = server.connect(&format!("s{i:02}")).await;
            assert_eq!(client.next().await, Some(Got::Welcome(client.user.clone())));
            readers.push((true, reader(client)));
        }
        let fresh = (CLIENTS / 2..CLIENTS).map(|i| {
            let server = server.clone();
            tokio::spawn(async move { server.connect(&format!("f{i:02}")).await })
        });
        for client in fresh.collect::<Vec<_>>() {
            let client = bounded("a fresh client", client).await.unwrap();
            readers.push((false, reader(client)));
        }
        // Every connection Ready (its welcome flushed to the socket, maybe still
        // held by the proxy), then the drain.
        until("all Ready", || server.phases().1 == CLIENTS).await;
        // A backlog queued in every outbox just before the Close: written before it,
        // or handed back (G3).
        ticker.burst(50);
        let drain_began = Instant::now();
        let report = server.registry.drain(tokio::time::sleep(WAIT)).await;
        assert_eq!(
            (report.closing, report.closed, report.dropped),
            (CLIENTS, CLIENTS, 0)
        );
        let mut ended = Vec::new();
        for (settled, reader) in readers {
            let (client, all) = bounded("a client", reader).await.unwrap();
            ended.push((settled, client, all));
        }
        let (_, delivered) = ticker.stop().await;

        let (mut received, mut unsent, mut drained_in_delay) = (0, 0, 0);
        until("every on_close", || {
            server.probe().closed.lock().unwrap().len() == CLIENTS
        })
        .await;
        for (settled, client, all) in &ended {
            let user = &client.user;
            let mut got = all.as_slice();
            if !settled {
                assert_eq!(
                    got.first(),
                    Some(&Got::Welcome(user.clone())),
                    "{user}: the welcome first"
                );
                got = &got[1..];
            }
            let (close, ticks) = got.split_last().expect("a Close");
            assert_eq!(
                close,
                &Got::Close(Some(1001)),
                "{user}: closed by the drain"
            );
            let ticks: Vec<u64> = ticks
                .iter()
                .map(|got| match got {
                    Got::Tick(n) => *n,
                    other => panic!("{user}: unexpected {other:?}"),
                })
                .collect();
            let closed = server.probe().closed.lock().unwrap()[user].clone();
            let back: Vec<u64> = closed.unsent.iter().filter_map(tick_of).collect();
            assert_eq!(
                back.len(),
                closed.unsent.len(),
                "{user}: only ticks handed back"
            );
            let both: Vec<u64> = ticks.iter().chain(&back).copied().collect();
            assert!(
                consecutive(&both),
                "{user}: received then handed back, in order (G3): {both:?}"
            );
            received += ticks.len();
            unsent += back.len();
            let tap = check_end(&server, client, 1001);
            check_delayed(&tap, user);
            if tap.s2c_released_at.is_some_and(|at| at > drain_began) {
                drained_in_delay += 1;
            }
        }
        assert_eq!(
            delivered,
            received + unsent,
            "every tick queued for a connection was received or handed back (G3)"
        );
        eprintln!(
            "{drained_in_delay}/{} fresh clients drained while their first frames were held; \
             {received} ticks received, {unsent} handed back",
            CLIENTS / 2
        );
        assert!(drained_in_delay >= CLIENTS / 4, "drains that hit the delay");
    };
    tokio::time::timeout(TEST_LIMIT, run)
        .await
        .expect("within the test's limit");
}

/// G5 through the delay: a token whose `exp` is 1–2 s ahead closes its connection
/// with 1008 once it lapses (not before, not much later), though its first frames
/// were delayed; one refreshed right after the upgrade (the refresh itself held by
/// the proxy) survives it; a refused refresh leaves the old expiry in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g5_expiry_closes_1008_through_the_delay_and_a_refresh_survives() {
    let run = async {
        let server = Server::start(seed(3)).await;
        let short = Duration::from_secs(2); // exp = now + 2 s, to the second: 1–2 s ahead
        let mint = |user: &str| {
            let token = server.token(user, short);
            let credential = server.keys.check(&token).expect("a valid token");
            (token, credential.exp, credential.expires_at)
        };
        let (lapse_token, _, lapse_at) = mint("lapse");
        let (fresh_token, fresh_exp, fresh_at) = mint("fresh");
        let (bad_token, _, bad_at) = mint("refused");
        let mut lapse = server.connect_with("lapse", &lapse_token).await;
        let mut fresh = server.connect_with("fresh", &fresh_token).await;
        let mut bad = server.connect_with("refused", &bad_token).await;
        // Right after the upgrade, inside the client → server delay.
        let renewed = server.token("fresh", Duration::from_secs(30));
        fresh
            .send(json!({"type": "refresh", "token": renewed}))
            .await;
        let forged = Keys::new("not-the-secret").mint("refused", AUDIENCE, Duration::from_secs(30));
        bad.send(json!({"type": "refresh", "token": forged})).await;

        assert_eq!(lapse.next().await, Some(Got::Welcome("lapse".into())));
        assert_eq!(fresh.next().await, Some(Got::Welcome("fresh".into())));
        assert_eq!(bad.next().await, Some(Got::Welcome("refused".into())));
        let refreshed = fresh.next().await;
        assert!(
            matches!(refreshed, Some(Got::Refreshed(exp)) if exp > fresh_exp),
            "{refreshed:?}"
        );
        let refused = bad.next().await;
        assert_eq!(
            refused,
            Some(Got::Error("refresh refused: bad token signature".into()))
        );

        for (client, lapses_at) in [(&mut lapse, lapse_at), (&mut bad, bad_at)] {
            let close = client.next().await;
            let closed_at = Instant::now();
            assert_eq!(
                close,
                Some(Got::Close(Some(1008))),
                "{}: credential expired (G5)",
                client.user
            );
            // `exp` and the clocks agree to a few milliseconds.
            let early = Duration::from_millis(30);
            assert!(
                closed_at + early >= lapses_at,
                "{}: not before the expiry",
                client.user
            );
            assert!(
                closed_at <= lapses_at + Duration::from_millis(500),
                "{}: at the expiry",
                client.user
            );
            assert_eq!(client.finish().await, []);
            let tap = check_end(&server, client, 1008);
            check_delayed(&tap, &client.user);
        }
        // The refreshed connection outlives its first token by half a second.
        tokio::time::sleep_until((fresh_at + Duration::from_millis(500)).into()).await;
        fresh
            .send(json!({"type": "say", "text": "still here"}))
            .await;
        let said = Got::Said {
            from: "fresh".into(),
            text: "still here".into(),
        };
        assert_eq!(
            fresh.next().await,
            Some(said),
            "the refreshed credential holds (G5)"
        );
        let rest = fresh.close().await;
        assert_eq!(rest, [Got::Close(Some(1000))]);
        let tap = check_end(&server, &fresh, 1000);
        check_delayed(&tap, "fresh");
        let closed = server.probe().closed.lock().unwrap().clone();
        let causes: Vec<_> = ["lapse", "refused"]
            .iter()
            .map(|user| closed.get(*user).map(|c| c.record.cause.as_str()))
            .collect();
        assert_eq!(causes, [Some("credential_expired"); 2]);
    };
    tokio::time::timeout(TEST_LIMIT, run)
        .await
        .expect("within the test's limit");
}

/// G7 through the delay: with half of the connections held before `Ready` (their
/// `on_authenticated` waits on a gate), a broadcast is queued for exactly the ten
/// `Ready` ones; once the gate opens, the next reaches all twenty. Each client
/// receives exactly its share, after its welcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g7_a_broadcast_reaches_exactly_the_ready_connections() {
    let run = async {
        let server = Arc::new(Server::start(seed(4)).await);
        let users: Vec<String> = (0..CLIENTS)
            .map(|i| format!("{}{i:02}", if i < CLIENTS / 2 { "r" } else { "h" }))
            .collect();
        server
            .plan()
            .gated
            .extend(users[CLIENTS / 2..].iter().cloned());
        let readers: Vec<_> = users
            .iter()
            .map(|user| {
                let (server, user) = (server.clone(), user.clone());
                tokio::spawn(async move {
                    let mut client = server.connect(&user).await;
                    let all = client.finish().await;
                    (client, all)
                })
            })
            .collect();
        until("10 Ready, 10 held", || {
            server.phases() == (CLIENTS / 2, CLIENTS / 2)
        })
        .await;
        let first = server
            .registry
            .broadcast(Message::text(json!({"type": "tick", "n": 1}).to_string()));
        assert_eq!(
            (first.delivered, first.not_ready, first.closing, first.full),
            (CLIENTS / 2, CLIENTS / 2, 0, 0)
        );
        server.gate.send_replace(true);
        until("20 Ready", || server.phases() == (0, CLIENTS)).await;
        let second = server
            .registry
            .broadcast(Message::text(json!({"type": "tick", "n": 2}).to_string()));
        assert_eq!((second.delivered, second.not_ready), (CLIENTS, 0));
        let report = server.registry.drain(tokio::time::sleep(WAIT)).await;
        assert_eq!((report.closing, report.dropped), (CLIENTS, 0));
        for reader in readers {
            let (client, all) = bounded("a client", reader).await.unwrap();
            let user = &client.user;
            let welcome = Got::Welcome(user.clone());
            let expected = if user.starts_with('r') {
                vec![welcome, Got::Tick(1), Got::Tick(2), Got::Close(Some(1001))]
            } else {
                vec![welcome, Got::Tick(2), Got::Close(Some(1001))]
            };
            assert_eq!(
                all, expected,
                "{user}: exactly the broadcasts made while Ready (G7)"
            );
            let tap = check_end(&server, &client, 1001);
            check_delayed(&tap, user);
        }
    };
    tokio::time::timeout(TEST_LIMIT, run)
        .await
        .expect("within the test's limit");
}

/// The example's refusals are HTTP answers, through the proxy (no `101`, no delay):
/// no token, a forged, malformed or expired one → 401; another audience → 403; no
/// `chat.v1` offered → 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_http_answers() {
    let run = async {
        let server = Server::start(seed(5)).await;
        let lapsed = server.keys.sign(&jwt::Claims {
            sub: "ada".into(),
            aud: AUDIENCE.into(),
            exp: jwt::unix_now().as_secs() - 10,
        });
        let forged = Keys::new("guess").mint("ada", AUDIENCE, Duration::from_secs(60));
        let elsewhere = server
            .keys
            .mint("ada", "another-service", Duration::from_secs(60));
        let good = server.token("ada", Duration::from_secs(60));
        let cases = [
            (None, 401),
            (Some("chat.v1".to_owned()), 401),
            (Some(format!("chat.v1, jwt.{forged}")), 401),
            (Some("chat.v1, jwt.not-a-token".to_owned()), 401),
            (Some(format!("chat.v1, jwt.{lapsed}")), 401),
            (Some(format!("chat.v1, jwt.{elsewhere}")), 403),
            (Some(format!("jwt.{good}")), 400),
        ];
        for (offered, status) in cases {
            let answer = bounded("an upgrade", upgrade(server.addr, offered.as_deref())).await;
            match answer {
                Err(tungstenite::Error::Http(response)) => {
                    assert_eq!(response.status(), status, "{offered:?}");
                }
                other => panic!(
                    "{offered:?}: expected {status}, got {:?}",
                    other.map(|_| ())
                ),
            }
        }
        assert_eq!(
            server.registry.snapshot().totals.registered,
            0,
            "no WebSocket opened"
        );
        let mut client = server.connect("ada").await;
        assert_eq!(client.next().await, Some(Got::Welcome("ada".into())));
        client.close().await;
        check_end(&server, &client, 1000);
    };
    tokio::time::timeout(TEST_LIMIT, run)
        .await
        .expect("within the test's limit");
}
