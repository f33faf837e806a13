//! Shared by the real-socket tests: the example chat server (included from
//! `examples/chat.rs`), started on 127.0.0.1 with an OS-assigned port, and a
//! tokio-tungstenite client with every wait bounded in time.

#![allow(dead_code)] // each test binary uses part of it

pub mod raw;

#[path = "../../examples/chat.rs"]
#[allow(dead_code, unreachable_pub)]
pub mod chat;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Every single wait in these tests gives up after this long (a hang is a failure,
/// not a stuck CI job).
pub const WAIT: Duration = Duration::from_secs(10);

/// A client socket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A chat server running in this process.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<ws_lifecycle::registry::DrainReport>>,
}

impl Server {
    /// Starts the chat on 127.0.0.1 with an OS-assigned port.
    pub async fn start(args: chat::Args) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(chat::serve(listener, args, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Starts it with the default arguments but a short authentication timeout.
    pub async fn start_default() -> Server {
        Server::start(args(2_000)).await
    }

    /// The `/ws` URL.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// `GET /stats`, parsed.
    pub async fn stats(&self) -> Value {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let fetch = async {
            let mut stream = TcpStream::connect(self.addr).await.unwrap();
            let request = format!(
                "GET /stats HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.addr
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            let body = response
                .split("\r\n\r\n")
                .nth(1)
                .expect("a body")
                .to_owned();
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {response}"))
        };
        tokio::time::timeout(WAIT, fetch)
            .await
            .expect("/stats answered in time")
    }

    /// Polls `/stats` until nothing is open (bounded); returns the last snapshot.
    pub async fn until_empty(&self) -> Value {
        self.until_open(0).await
    }

    /// Polls `/stats` until exactly `open` connections are open (bounded by about
    /// 10 s); returns the last snapshot, which the caller checks.
    pub async fn until_open(&self, open: u64) -> Value {
        let mut stats = self.stats().await;
        for _ in 0..200 {
            if stats["open"] == open {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            stats = self.stats().await;
        }
        stats
    }

    /// Stops the server (as a signal would) and returns the drain report.
    pub async fn shutdown(mut self) -> ws_lifecycle::registry::DrainReport {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the server drained in time")
            .unwrap()
            .unwrap()
    }
}

/// Default arguments with `auth_timeout_ms`.
pub fn args(auth_timeout_ms: u64) -> chat::Args {
    chat::Args {
        auth_timeout_ms,
        ..chat::Args::default()
    }
}

/// Connects to `/ws`.
pub async fn connect(server: &Server) -> Ws {
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(server.url()))
        .await
        .expect("connected in time")
        .expect("the upgrade succeeds");
    ws
}

/// Sends a JSON text frame.
pub async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

/// What the server sent next, skipping pings and pongs.
#[derive(Debug)]
pub enum Got {
    /// A JSON text message.
    Json(Value),
    /// A Close, with its code.
    Close(Option<u16>),
    /// The stream ended without a Close.
    End,
}

/// The next thing the server sends (bounded by [`WAIT`]).
pub async fn next(ws: &mut Ws) -> Got {
    loop {
        let item = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the server answered in time");
        return match item {
            Some(Ok(Message::Text(text))) => Got::Json(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(frame))) => Got::Close(frame.map(|f| u16::from(f.code))),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => panic!("unexpected {other:?}"),
            Some(Err(_)) | None => Got::End,
        };
    }
}

/// The next JSON message; panics on anything else.
pub async fn json(ws: &mut Ws) -> Value {
    match next(ws).await {
        Got::Json(value) => value,
        other => panic!("expected a JSON message, got {other:?}"),
    }
}

/// The close code the server sends next; text before it fails the test.
pub async fn close_code(ws: &mut Ws) -> Option<u16> {
    match next(ws).await {
        Got::Close(code) => code,
        other => panic!("expected a Close, got {other:?}"),
    }
}

/// Connects and authenticates as `user`; checks `ready` then `welcome`.
pub async fn login(server: &Server, user: &str) -> Ws {
    let mut ws = connect(server).await;
    send(
        &mut ws,
        json!({"type": "auth", "token": format!("{user}:secret")}),
    )
    .await;
    let ready = json(&mut ws).await;
    assert_eq!(
        ready["type"], "ready",
        "the first message is ready: {ready}"
    );
    assert_eq!(ready["user"], user);
    let welcome = json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "then welcome: {welcome}");
    assert!(
        welcome["online"].as_u64().is_some_and(|n| n >= 1),
        "online counts this connection at least: {welcome}"
    );
    ws
}

/// The close code as a number.
pub fn code(code: CloseCode) -> u16 {
    u16::from(code)
}

/// Connects a [`raw::Raw`] client and authenticates as `user`; checks `ready` then
/// `welcome`.
pub async fn raw_login(server: &Server, user: &str) -> raw::Raw {
    let mut raw = raw::Raw::connect(server.addr).await;
    let auth = json!({"type": "auth", "token": format!("{user}:secret")});
    assert!(raw.text(&auth.to_string()).await);
    for expected in ["ready", "welcome"] {
        match raw.read().await {
            Some(raw::RawFrame::Text(text)) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(value["type"], expected, "{value}");
            }
            other => panic!("expected {expected}, got {other:?}"),
        }
    }
    raw
}
