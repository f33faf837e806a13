//! The harness of `tests/driver_modes.rs`: one [`Service`] served by either adapter
//! on 127.0.0.1 (OS-assigned port), every connection's end reported on a channel,
//! tokio-tungstenite clients, a raw HTTP client for refusals, and a tracing recorder.
//! Every wait is bounded by [`WAIT`] (or a count of short sleeps).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response as WsResponse;
use tokio_tungstenite::tungstenite::{self, Message as TMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use ws_lifecycle::axum::Served;
use ws_lifecycle::driver::{Closed, UpgradeRequest};
use ws_lifecycle::{Authenticator, Handler, Service};

/// Every single wait gives up after this long: a hang is a failure, not a stuck run.
pub const WAIT: Duration = Duration::from_secs(10);

/// A client socket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Which adapter serves the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// `ws_lifecycle::axum::serve` in an axum `Router`, served with
    /// `into_make_service_with_connect_info::<SocketAddr>()`.
    Axum,
    /// `ws_lifecycle::tungstenite::accept` on each stream of a `TcpListener` loop.
    Tungstenite,
}

/// How one connection attempt ended, as its adapter reported it.
#[derive(Debug)]
pub enum Outcome {
    /// A WebSocket opened and ran; its [`Closed`] (axum: `Served::ended`,
    /// tungstenite: `accept`'s `Ok`).
    Closed(Closed),
    /// No WebSocket opened (axum: `ended` resolved to `None`; tungstenite: `accept`'s
    /// `Err`, displayed).
    NoSocket(String),
}

/// A server running one service on one adapter.
pub struct Server {
    pub addr: SocketAddr,
    outcomes: UnboundedReceiver<Outcome>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds 127.0.0.1 on an OS-assigned port.
pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A listener whose accepted sockets have a small send buffer (Linux: accepted
/// sockets inherit `SO_SNDBUF` from the listener; setting it also turns the send
/// buffer's autotuning off), so that a peer that stops reading blocks the server's
/// writes after a few kilobytes.
pub fn small_send_buffer_listener(bytes: u32) -> TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(bytes).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    socket.listen(64).unwrap()
}

/// Serves `service` on `adapter`, on a fresh listener.
pub async fn start<A, H>(adapter: Adapter, service: Arc<Service<A, H>>) -> Server
where
    A: Authenticator + 'static,
    H: Handler<A::State>,
{
    start_on(adapter, service, listener().await)
}

/// Serves `service` on `adapter`, on `listener`.
pub fn start_on<A, H>(
    adapter: Adapter,
    service: Arc<Service<A, H>>,
    listener: TcpListener,
) -> Server
where
    A: Authenticator + 'static,
    H: Handler<A::State>,
{
    let addr = listener.local_addr().unwrap();
    let (outcomes_tx, outcomes) = unbounded_channel();
    let task = match adapter {
        Adapter::Axum => {
            let state = AxumState {
                service,
                outcomes: outcomes_tx,
            };
            let app = Router::new()
                .route("/ws", get(axum_route::<A, H>))
                .with_state(state);
            let server = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            );
            tokio::spawn(async move {
                let _ = server.await;
            })
        }
        Adapter::Tungstenite => tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let (service, outcomes) = (service.clone(), outcomes_tx.clone());
                tokio::spawn(async move {
                    let accepted =
                        ws_lifecycle::tungstenite::accept(stream, Some(peer), &service).await;
                    let outcome = match accepted {
                        Ok(closed) => Outcome::Closed(closed),
                        Err(error) => Outcome::NoSocket(error.to_string()),
                    };
                    let _ = outcomes.send(outcome);
                });
            }
        }),
    };
    Server {
        addr,
        outcomes,
        task,
    }
}

struct AxumState<A, H> {
    service: Arc<Service<A, H>>,
    outcomes: UnboundedSender<Outcome>,
}

impl<A, H> Clone for AxumState<A, H> {
    fn clone(&self) -> Self {
        AxumState {
            service: self.service.clone(),
            outcomes: self.outcomes.clone(),
        }
    }
}

/// The route: the adapter's `serve`, with its `ended` reported on the channel.
async fn axum_route<A, H>(State(state): State<AxumState<A, H>>, request: UpgradeRequest) -> Response
where
    A: Authenticator + 'static,
    H: Handler<A::State>,
{
    let Served {
        response, ended, ..
    } = ws_lifecycle::axum::serve(request, state.service.clone()).await;
    let outcomes = state.outcomes.clone();
    tokio::spawn(async move {
        let outcome = match ended.await {
            Some(closed) => Outcome::Closed(closed),
            None => Outcome::NoSocket("no WebSocket opened".to_owned()),
        };
        let _ = outcomes.send(outcome);
    });
    response
}

impl Server {
    /// `ws://addr/ws` followed by `query` (e.g. `"?token=good"`, or `""`).
    pub fn url(&self, query: &str) -> String {
        format!("ws://{}/ws{query}", self.addr)
    }

    /// The next connection's end, in the order they ended (bounded).
    pub async fn outcome(&mut self) -> Outcome {
        tokio::time::timeout(WAIT, self.outcomes.recv())
            .await
            .expect("a connection ended in time")
            .expect("the server is running")
    }

    /// The next connection's end, which must be a WebSocket's [`Closed`].
    pub async fn closed(&mut self) -> Closed {
        match self.outcome().await {
            Outcome::Closed(closed) => closed,
            Outcome::NoSocket(why) => panic!("expected a Closed connection, got no socket: {why}"),
        }
    }
}

// ── clients ─────────────────────────────────────────────────────────────────

/// Connects to `url`, offering `protocols` (`Sec-WebSocket-Protocol`) if given.
pub async fn try_connect(
    url: &str,
    protocols: Option<&str>,
) -> Result<(Ws, WsResponse), tungstenite::Error> {
    let mut request = url.into_client_request().unwrap();
    if let Some(protocols) = protocols {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocols.parse().unwrap());
    }
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("the upgrade was answered in time")
}

/// Connects to `url`; the upgrade must succeed.
pub async fn connect(url: &str) -> Ws {
    try_connect(url, None)
        .await
        .expect("the upgrade succeeds")
        .0
}

/// Connects to `url` from a socket with a small receive buffer (`SO_RCVBUF`, which
/// also turns the receive window's autotuning off).
pub async fn connect_small_receive_buffer(addr: SocketAddr, url: &str, bytes: u32) -> Ws {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(bytes).unwrap();
    let stream = tokio::time::timeout(WAIT, socket.connect(addr))
        .await
        .expect("connected in time")
        .unwrap();
    let handshake = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream));
    tokio::time::timeout(WAIT, handshake)
        .await
        .expect("the upgrade was answered in time")
        .expect("the upgrade succeeds")
        .0
}

/// The client's own address (what the server sees as the peer).
pub fn local_addr(ws: &Ws) -> SocketAddr {
    match ws.get_ref() {
        MaybeTlsStream::Plain(stream) => stream.local_addr().unwrap(),
        _ => unreachable!("plain TCP"),
    }
}

/// The TCP stream under a client.
pub fn tcp(ws: &Ws) -> &TcpStream {
    match ws.get_ref() {
        MaybeTlsStream::Plain(stream) => stream,
        _ => unreachable!("plain TCP"),
    }
}

/// The next frame the server sends, pings and pongs included (bounded).
pub async fn next(ws: &mut Ws) -> TMessage {
    tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("the server sent something in time")
        .expect("the stream is open")
        .expect("no error")
}

/// The next frame, which must be a text message.
pub async fn next_text(ws: &mut Ws) -> String {
    match next(ws).await {
        TMessage::Text(text) => text.as_str().to_owned(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// The next frame, which must be a Close; its code. Then reads on until the stream
/// ends, so that the client's library writes its answer to a Close the server began
/// (it sends it on its next read or write; without one the server would wait for
/// its close timeout).
pub async fn next_close(ws: &mut Ws) -> Option<u16> {
    let code = match next(ws).await {
        TMessage::Close(frame) => frame.map(|f| u16::from(f.code)),
        other => panic!("expected a Close, got {other:?}"),
    };
    let end = async { while let Some(Ok(_)) = ws.next().await {} };
    tokio::time::timeout(WAIT, end)
        .await
        .expect("the stream ended in time");
    code
}

/// Polls `done` every 5 ms until it holds (at most [`WAIT`]); panics naming `what`.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let step = Duration::from_millis(5);
    for _ in 0..(WAIT.as_millis() / step.as_millis()) {
        if done() {
            return;
        }
        tokio::time::sleep(step).await;
    }
    assert!(done(), "not in time: {what}");
}

/// An HTTP answer as read off the wire.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends a WebSocket upgrade request for `/ws{query}` by hand (with `extra` header
/// lines, each ending in `\r\n`) and reads the whole answer (head and
/// `Content-Length` body), bounded.
pub async fn raw_upgrade(addr: SocketAddr, query: &str, extra: &str) -> HttpAnswer {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /ws{query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{extra}\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buffer = Vec::new();
        let mut chunk = [0_u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&buffer).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                    return HttpAnswer {
                        status,
                        head: head.to_owned(),
                        body: body[..length].to_owned(),
                    };
                }
            }
            let read = stream.read(&mut chunk).await.unwrap();
            assert!(read > 0, "the answer ended early: {text:?}");
            buffer.extend_from_slice(&chunk[..read]);
        }
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("answered in time")
}

/// Sends `request` (a whole HTTP request) by hand and reads until the server closes
/// the connection, bounded; what was read, lossily as text.
pub async fn raw_exchange(addr: SocketAddr, request: &str) -> String {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await; // a reset ends it too
        String::from_utf8_lossy(&answer).into_owned()
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the server closed the connection in time")
}

// ── tracing ─────────────────────────────────────────────────────────────────

/// One event: its level and its message.
#[derive(Debug, Clone)]
pub struct Captured {
    pub level: Level,
    pub message: String,
}

/// Records every event of the thread it is the default subscriber of (a
/// current-thread runtime runs every task of the test on that thread).
#[derive(Clone, Default)]
pub struct Recorder {
    events: Arc<Mutex<Vec<Captured>>>,
    spans: Arc<AtomicU64>,
}

impl Recorder {
    pub fn events(&self) -> Vec<Captured> {
        self.events.lock().unwrap().clone()
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            value.clone_into(&mut self.0);
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.spans.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        self.events.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            message: message.0,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
