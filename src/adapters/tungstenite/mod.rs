//! The tokio-tungstenite adapter (feature `tungstenite`): accept a TCP (or any
//! `AsyncRead + AsyncWrite`) stream and run a ws-lifecycle connection on it in one
//! call — [`accept`] reads the HTTP upgrade request, asks the service's
//! authenticator before answering (a refusal is an HTTP response, no WebSocket
//! opens), answers `101` with the selected subprotocol, and runs the connection
//! until it is closed on the crate's own framing with the
//! [`SocketConfig`](crate::driver::SocketConfig) applied: frames written with their
//! payload shared, not copied per connection; no read buffer held while idle; each
//! frame's size checked at its header, against the pre-authentication limit until
//! the connection is authenticated. (tokio-tungstenite's framing copies every frame
//! into a per-connection buffer; [`TungsteniteSocket`] remains for a server that
//! runs a `WebSocketStream` of its own with [`Service::run`].) The handshake is
//! checked by RFC 6455 §4.2.1, as tungstenite checks it, plus the key's form.
//!
//! A complete server: upgrade-time authentication from a JWT-like token carried in
//! `Sec-WebSocket-Protocol` (answered with the `chat` subprotocol), per-connection
//! state, a broadcast, and a drain; one client connects over loopback.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use futures_util::{SinkExt, StreamExt};
//! use tokio_tungstenite::tungstenite::{Message as WsMessage, client::IntoClientRequest};
//! use ws_lifecycle::driver::{AtUpgrade, Refusal, UpgradeRequest};
//! use ws_lifecycle::{CloseFrame, DriverConfig, Emitter, Handler, Identity, Message};
//! use ws_lifecycle::{Registry, Sender, Service, Session};
//!
//! /// Per connection: when the client connected (the handler's state).
//! struct Since(std::time::Instant);
//!
//! struct Announce;
//!
//! impl Handler<Since> for Announce {
//!     async fn on_authenticated(&self, session: &Session<Since>, emitter: &Emitter) {
//!         let _ = emitter.emit(Message::text("welcome")); // before anything else (G2)
//!     }
//!     async fn on_message(&self, session: &Session<Since>, _: &Sender, message: Message) -> Result<(), CloseFrame> {
//!         let age = session.state.0.elapsed().as_secs();
//!         let text = format!("{} ({age}s): {}", session.user().unwrap_or("?"), message.as_text().unwrap_or(""));
//!         session.registry.broadcast(Message::text(text)); // to every Ready connection (G7)
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // `Sec-WebSocket-Protocol: chat, token.<user>`: the token rides in the subprotocol list.
//! let tokens = AtUpgrade(|request: Arc<UpgradeRequest>| async move {
//!     let token = request.protocols().find_map(|p| p.strip_prefix("token."));
//!     match token {
//!         Some(user @ ("ada" | "bob")) => Ok(Identity::user(user)
//!             .with_state(Since(std::time::Instant::now()))
//!             .selecting_protocol("chat")),
//!         Some(_) => Err(Refusal::forbidden("unknown user")), // HTTP 403
//!         None => Err(Refusal::unauthorized("no token")),     // HTTP 401
//!     }
//! });
//! let registry = Registry::default();
//! let service = Arc::new(Service::new(registry.clone(), DriverConfig::default(), tokens, Announce));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let server = service.clone();
//! tokio::spawn(async move {
//!     while let Ok((stream, peer)) = listener.accept().await {
//!         let service = server.clone();
//!         tokio::spawn(async move {
//!             match ws_lifecycle::tungstenite::accept(stream, Some(peer), &service).await {
//!                 Ok(closed) => assert!(closed.unsent.is_empty() || !closed.record.is_clean()),
//!                 Err(error) => eprintln!("{peer}: {error}"), // refused, or a failed handshake
//!             }
//!         });
//!     }
//! });
//! registry.open();
//!
//! let mut request = format!("ws://{addr}/ws").into_client_request()?;
//! request.headers_mut().insert("sec-websocket-protocol", "chat, token.ada".parse()?);
//! let (mut ada, response) = tokio_tungstenite::connect_async(request).await?;
//! assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
//! assert_eq!(ada.next().await.transpose()?, Some(WsMessage::text("welcome")));
//! ada.send(WsMessage::text("hi")).await?;
//! assert_eq!(ada.next().await.transpose()?, Some(WsMessage::text("ada (0s): hi")));
//!
//! let mut eve = format!("ws://{addr}/ws").into_client_request()?;
//! eve.headers_mut().insert("sec-websocket-protocol", "chat, token.eve".parse()?);
//! let refused = tokio_tungstenite::connect_async(eve).await.unwrap_err();
//! assert!(matches!(refused, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 403));
//!
//! // Shutdown: 1001 to everyone; ada reads on, so she answers in time.
//! let deadline = tokio::time::sleep(Duration::from_secs(5));
//! let (report, ()) = tokio::join!(registry.drain(deadline), async { while let Some(Ok(_)) = ada.next().await {} });
//! assert_eq!((report.closing, report.dropped), (1, 0));
//! # Ok(())
//! # }
//! ```
//!
//! tungstenite answers pings and echoes the peer's Close by itself: the driver adds
//! no Pong of its own on these sockets, and its own Close reply is absorbed by the
//! library, so the peer gets exactly one.
//!
//! ## Bounding the handshakes
//!
//! [`accept`] bounds each upgrade request's head in size (16 KiB, else 431) and in
//! time (the connection's
//! [`readiness_timeout`](crate::core::Config::readiness_timeout): a client that sends
//! nothing or half a head is dropped then), and a first-message client has the same
//! timeout to authenticate. What it cannot bound is how many connections the accept
//! loop runs at once: each holds a file descriptor and a task. Bound them in the loop,
//! with a semaphore whose permit lives as long as the `accept` call, and close a
//! connection beyond the cap at once; a flood of silent or slow clients then holds at
//! most that many descriptors, each for at most the readiness timeout. Keep the cap
//! under the process's open-files limit.
//!
//! ```no_run
//! # async fn example<A: ws_lifecycle::Authenticator + 'static, H: ws_lifecycle::Handler<A::State>>(
//! #     service: std::sync::Arc<ws_lifecycle::Service<A, H>>,
//! # ) -> std::io::Result<()> {
//! use std::sync::Arc;
//!
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! let connections = Arc::new(tokio::sync::Semaphore::new(10_000));
//! loop {
//!     let (stream, peer) = listener.accept().await?;
//!     let Ok(permit) = connections.clone().try_acquire_owned() else {
//!         continue; // over the cap: the stream is dropped, closed at once
//!     };
//!     let service = service.clone();
//!     tokio::spawn(async move {
//!         let _ = ws_lifecycle::tungstenite::accept(stream, Some(peer), &service).await;
//!         drop(permit); // the handshake and the connection are over
//!     });
//! }
//! # }
//! ```

mod socket;

use std::net::SocketAddr;
use std::time::Duration;

use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, Uri};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::adapters::frames::{ServerSocket, check_upgrade, switching_head};
use crate::driver::{
    Authenticator, Closed, Handler, Refusal, Service, SocketConfig, SocketLink, UpgradeRequest,
};

pub use socket::{TungsteniteSocket, from_tungstenite, to_tungstenite};

/// The longest upgrade request head read before answering 431.
const MAX_HEAD: usize = 16 * 1024;

/// Why [`accept`] returned without running a connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The authenticator refused the upgrade: the client was answered with this
    /// refusal's HTTP status and reason, and no WebSocket opened.
    #[error("upgrade refused: {0}")]
    Refused(Refusal),
    /// The request was not a readable HTTP request or not a WebSocket upgrade
    /// (answered 400, 405, 426 or 431 where the stream still allowed it, before the
    /// authenticator ran), or it did not arrive within the readiness timeout.
    #[error("bad upgrade request: {0}")]
    BadRequest(String),
    /// Reading the request or writing the answer failed.
    #[error("i/o error during the upgrade: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads the upgrade request on `stream` (from `peer`, if known), checks it with the
/// service's authenticator ([`Service::admit`]), completes the WebSocket handshake,
/// and runs the connection until it is closed. Returns the [`Closed`] connection (its
/// record and every message never written, **G3**); fails only if the upgrade does,
/// and then no WebSocket opened.
///
/// ```no_run
/// # async fn example<A: ws_lifecycle::Authenticator + 'static, H: ws_lifecycle::Handler<A::State>>(
/// #     service: std::sync::Arc<ws_lifecycle::Service<A, H>>,
/// # ) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// loop {
///     let (stream, peer) = listener.accept().await?;
///     let service = service.clone();
///     tokio::spawn(async move { ws_lifecycle::tungstenite::accept(stream, Some(peer), &service).await });
/// }
/// # }
/// ```
pub async fn accept<S, A, H>(
    mut stream: S,
    peer: Option<SocketAddr>,
    service: &Service<A, H>,
) -> Result<Closed, AcceptError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    A: Authenticator,
    H: Handler<A::State>,
{
    let limit = service.config().connection.readiness_timeout;
    let read = tokio::time::timeout(limit, read_head(&mut stream)).await;
    let (mut request, version, tail) = match read {
        Ok(Ok(Head::Complete(request, version, tail))) => (request, version, tail),
        Ok(Ok(Head::TooLarge)) => {
            let refusal = Refusal::with_status(
                http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request head too large",
            );
            let _ = answer(&mut stream, &refusal).await;
            return Err(AcceptError::BadRequest(refusal.reason().to_owned()));
        }
        Ok(Ok(Head::Malformed(why))) => {
            let refusal = Refusal::with_status(http::StatusCode::BAD_REQUEST, why.clone());
            let _ = answer(&mut stream, &refusal).await;
            return Err(AcceptError::BadRequest(why));
        }
        Ok(Err(error)) => return Err(AcceptError::Io(error)),
        Err(_) => {
            return Err(AcceptError::BadRequest(format!(
                "no upgrade request within {limit:?}"
            )));
        }
    };
    request.peer = peer;
    // Not a WebSocket upgrade: answered here, before the authenticator runs (as
    // axum's extractor does), since tungstenite would close without a word.
    let checked = check_upgrade(&request, version >= 1).and_then(|key| match tail {
        0 => Ok(key),
        _ => Err(Refusal::with_status(
            http::StatusCode::BAD_REQUEST,
            "data sent after the upgrade request, before its answer",
        )),
    });
    let key = match checked {
        Ok(key) => key,
        Err(refusal) => {
            let _ = answer(&mut stream, &refusal).await;
            return Err(AcceptError::BadRequest(refusal.reason().to_owned()));
        }
    };
    let admission = match service.admit(*request).await {
        Ok(admission) => admission,
        Err(refusal) => {
            // The refusal is what matters to the caller, written or not.
            let _ = answer(&mut stream, &refusal).await;
            return Err(AcceptError::Refused(refusal));
        }
    };
    // The handshake's answer, then our own framing on the raw stream (no byte
    // follows the head: `check_upgrade` refused a client that sent any).
    write_bounded(&mut stream, &switching_head(&key, admission.protocol())).await?;
    let link = SocketLink::new(admission.is_authenticated());
    let config = service.config();
    let socket = ServerSocket::new(
        stream,
        &config.socket,
        config.max_pre_auth_message_bytes,
        link.clone(),
    );
    // The driver answers Pings itself (our framing does not).
    Ok(service.run_admitted_socket(socket, admission, link).await)
}

/// Writes `bytes` and flushes, within a second (a peer that reads nothing cannot hold
/// the task).
async fn write_bounded<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    tokio::time::timeout(Duration::from_secs(1), write)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// The [`SocketConfig`] as tungstenite's.
pub fn websocket_config(socket: &SocketConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(socket.read_buffer_size)
        .write_buffer_size(socket.write_buffer_size)
        .max_message_size(socket.max_message_size)
        .max_frame_size(socket.max_frame_size)
}

/// An upgrade request head as read.
enum Head {
    /// The request, its HTTP minor version, and how many bytes followed the head.
    Complete(Box<UpgradeRequest>, u8, usize),
    TooLarge,
    Malformed(String),
}

/// Reads until the end of the request head (or `MAX_HEAD` bytes).
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Head> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 1024];
    loop {
        let room = chunk.len().min(MAX_HEAD - buffer.len());
        let read = stream.read(&mut chunk[..room]).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buffer) {
            Ok(httparse::Status::Complete(length)) => {
                let request = match to_request(&parsed) {
                    Ok(request) => request,
                    Err(why) => return Ok(Head::Malformed(why)),
                };
                let (version, tail) = (parsed.version.unwrap_or(0), buffer.len() - length);
                return Ok(Head::Complete(Box::new(request), version, tail));
            }
            Ok(httparse::Status::Partial) if buffer.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => return Ok(Head::TooLarge),
            Err(httparse::Error::TooManyHeaders) => return Ok(Head::TooLarge),
            Err(error) => return Ok(Head::Malformed(error.to_string())),
        }
    }
}

/// httparse's request as an [`UpgradeRequest`].
fn to_request(parsed: &httparse::Request<'_, '_>) -> Result<UpgradeRequest, String> {
    let method =
        Method::from_bytes(parsed.method.unwrap_or("").as_bytes()).map_err(|e| e.to_string())?;
    let uri: Uri = parsed
        .path
        .unwrap_or("")
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())?;
    let mut headers = HeaderMap::new();
    for header in parsed.headers.iter() {
        let name =
            http::HeaderName::from_bytes(header.name.as_bytes()).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_bytes(header.value).map_err(|e| e.to_string())?;
        headers.append(name, value);
    }
    let mut request = UpgradeRequest::new(uri, headers);
    request.method = method;
    Ok(request)
}

/// Answers the request with the refusal (status, `text/plain` reason) and closes.
async fn answer<S: AsyncWrite + Unpin>(stream: &mut S, refusal: &Refusal) -> std::io::Result<()> {
    let status = refusal.status();
    let body = refusal.reason();
    let head = format!(
        "HTTP/1.1 {} {}\r\n{CONTENT_TYPE}: text/plain; charset=utf-8\r\n{CONTENT_LENGTH}: {}\r\n{CONNECTION}: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    );
    let response = [head.as_bytes(), body.as_bytes()].concat(); // one write
    let write = async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    };
    tokio::time::timeout(Duration::from_secs(1), write)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}
