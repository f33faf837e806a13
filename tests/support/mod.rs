//! Shared by the real-socket tests: the example chat server (included from
//! `examples/chat.rs`), started on 127.0.0.1 with an OS-assigned port, and a
//! tokio-tungstenite client with every wait bounded in time.

#![allow(dead_code)] // each test binary uses part of it

pub mod raw;
pub mod redis;

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

    /// The `/ws` URL with a query, e.g. `token=ada:secret`.
    pub fn url_with(&self, query: &str) -> String {
        format!("ws://{}/ws?{query}", self.addr)
    }

    /// `GET path`, answered (bounded by [`WAIT`]).
    pub async fn get(&self, path: &str) -> HttpResponse {
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        http(self.addr, &head).await
    }

    /// `GET /stats`'s body as the server wrote it.
    pub async fn stats_body(&self) -> String {
        let response = self.get("/stats").await;
        assert_eq!(response.status, 200, "{response:?}");
        response.body
    }

    /// `GET /stats`, parsed.
    pub async fn stats(&self) -> Value {
        let body = self.stats_body().await;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    /// Polls `/stats` until nothing is open (bounded); returns the last snapshot.
    pub async fn until_empty(&self) -> Value {
        self.until_open(0).await
    }

    /// Polls `/stats` until exactly `open` connections are open (bounded by about
    /// 10 s); returns the last snapshot, which the caller checks.
    pub async fn until_open(&self, open: u64) -> Value {
        self.until(|stats| stats["open"] == open).await
    }

    /// Polls `/stats` until `done` holds (bounded by about 10 s); returns the last
    /// snapshot, which the caller checks.
    pub async fn until(&self, done: impl Fn(&Value) -> bool) -> Value {
        let mut stats = self.stats().await;
        for _ in 0..200 {
            if done(&stats) {
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

/// An HTTP response, as read off the socket.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The status line and the headers, as sent.
    pub head: String,
    /// The body (`Content-Length` bytes, or up to the end of the stream).
    pub body: String,
}

impl HttpResponse {
    /// The value of header `name` (case-insensitive), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Sends `head` (a whole request without a body) to `addr` and reads the response
/// (bounded by [`WAIT`]).
pub async fn http(addr: SocketAddr, head: &str) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut bytes = Vec::new();
        let mut chunk = [0_u8; 16 * 1024];
        let end = loop {
            if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the server hung up before the end of the head");
            bytes.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(bytes[..end].to_vec()).unwrap();
        let mut response = HttpResponse {
            status: head
                .split(' ')
                .nth(1)
                .and_then(|code| code.parse().ok())
                .unwrap_or_else(|| panic!("a status line: {head}")),
            head,
            body: String::new(),
        };
        let mut body = bytes[end + 4..].to_vec();
        match response.header("content-length") {
            Some(length) => {
                let length: usize = length.parse().unwrap();
                while body.len() < length {
                    let n = stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "the server hung up in the body");
                    body.extend_from_slice(&chunk[..n]);
                }
                body.truncate(length);
            }
            None => {
                stream.read_to_end(&mut body).await.unwrap();
            }
        }
        response.body = String::from_utf8(body).unwrap();
        response
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("answered in time")
}

/// A WebSocket upgrade request for `path` on `addr`, as a client would send it.
pub fn upgrade_head(addr: SocketAddr, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Connects to `url` (bounded): the socket, or the handshake's error.
pub async fn try_connect(url: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("answered in time")
        .map(|(ws, _)| ws)
}

/// Connects to `/ws?token=<token>`, authenticated at the upgrade; checks `ready`
/// (as `user`) then `welcome`, sending nothing.
pub async fn login_at_upgrade(server: &Server, user: &str) -> Ws {
    let url = server.url_with(&format!("token={user}:secret"));
    let mut ws = try_connect(&url).await.expect("the upgrade succeeds");
    let ready = json(&mut ws).await;
    assert_eq!(
        ready["type"], "ready",
        "the first message is ready: {ready}"
    );
    assert_eq!(ready["user"], user);
    let welcome = json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "then welcome: {welcome}");
    ws
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

/// `target/<profile>/examples/chat`, next to the running test's own `deps/`
/// directory: the example binary `cargo test` builds (a `--test` run alone does not
/// rebuild it).
pub fn chat_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let binary = profile_dir.join("examples").join("chat");
    assert!(
        binary.exists(),
        "{} is built by `cargo test` with the axum feature",
        binary.display()
    );
    binary
}

/// Starts the example chat binary ([`chat_binary`]) on 127.0.0.1 with an
/// OS-assigned port and `args`; returns the process (killed when dropped) and the
/// address it printed. Its output is drained in the background, so it never blocks
/// on a full pipe.
pub async fn chat_process(args: &[&str]) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(chat_binary())
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("chat listening on http://") {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the chat exited before printing its address");
    })
    .await
    .expect("the chat printed its address in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// A process's resident set (`VmRSS`), in kB.
pub fn rss_kb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A client of the example chat ([`chat_process`]) authenticated at the upgrade as
/// `user` (`?token=<user>:secret`), with its `ready` and `welcome` read: it is
/// `Ready`.
pub async fn chat_login(
    addr: &str,
    user: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let url = format!("ws://{addr}/ws?token={user}:secret");
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connected in time")
        .unwrap();
    for expected in ["\"ready\"", "\"welcome\""] {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("in time");
        match frame {
            Some(Ok(Message::Text(text))) => assert!(text.contains(expected), "{text}"),
            other => panic!("expected {expected}, got {other:?}"),
        }
    }
    ws
}

/// The `/stats` of a chat started with [`chat_process`].
pub async fn process_stats(addr: &str) -> Value {
    let head = format!("GET /stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let response = http(addr.parse().unwrap(), &head).await;
    assert_eq!(response.status, 200, "{}", response.body);
    serde_json::from_str(&response.body).unwrap()
}
