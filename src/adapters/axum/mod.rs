//! The axum adapter (feature `axum`): run a ws-lifecycle connection from an axum
//! route in one call. [`UpgradeRequest`] is an extractor (method, URI, headers, the
//! peer address when the server is built with
//! `into_make_service_with_connect_info::<SocketAddr>()`, and hyper's handle on the
//! connection's upgrade); [`serve`] checks the request is a WebSocket upgrade, asks
//! the service's authenticator before answering (a refusal is the HTTP response, no
//! WebSocket opens), answers `101` with the selected subprotocol, and runs the
//! connection on the crate's own framing with the
//! [`SocketConfig`](crate::driver::SocketConfig) applied: frames written with their
//! payload shared, not copied per connection; no read buffer held while idle; each
//! frame's size checked at its header, against the pre-authentication limit until
//! the connection is authenticated. axum's `WebSocketUpgrade` is not needed (it runs
//! tungstenite's framing, which copies every frame into a per-connection buffer);
//! for a server that wants it, [`AxumSocket`] and [`configure`] remain.
//!
//! A complete server: a query token checked at the upgrade (401 without a valid
//! one), the room as per-connection state, group broadcast, the startup gate and a
//! drain; one client over loopback.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//! use std::time::Duration;
//! use axum::extract::State;
//! use axum::{Router, routing::get};
//! use futures_util::{SinkExt, StreamExt};
//! use tokio_tungstenite::tungstenite::Message as WsMessage;
//! use ws_lifecycle::axum::Served;
//! use ws_lifecycle::driver::{Refusal, UpgradeRequest, UpgradeVerdict};
//! use ws_lifecycle::{Authenticator, CloseFrame, DriverConfig, Handler, Identity, Message};
//! use ws_lifecycle::{Registry, Sender, Service, Session};
//!
//! struct Chat;
//!
//! impl Handler<String> for Chat {
//!     async fn on_authenticated(&self, session: &Session<String>, _: &ws_lifecycle::Emitter) {
//!         let _ = session.registry.join(session.id, session.state.as_str());
//!     }
//!     async fn on_message(&self, session: &Session<String>, _: &Sender, message: Message) -> Result<(), CloseFrame> {
//!         let from = session.request.peer.map(|peer| peer.ip().to_string()).unwrap_or_default();
//!         let text = format!("{}@{from}: {}", session.user().unwrap_or("?"), message.as_text().unwrap_or(""));
//!         session.registry.send_to_group(&session.state, Message::text(text)); // Ready members only (G7)
//!         Ok(())
//!     }
//! }
//!
//! /// `?token=` checked at the upgrade; the room from `?room=` becomes the state.
//! struct Tokens;
//!
//! impl Authenticator for Tokens {
//!     type State = String;
//!
//!     async fn at_upgrade(&self, request: Arc<UpgradeRequest>) -> UpgradeVerdict<String> {
//!         let room = request.query_param("room").unwrap_or("lobby".into()).into_owned();
//!         match request.query_param("token").as_deref() {
//!             Some("t-ada") => UpgradeVerdict::Accept(Identity::user("ada").with_state(room)),
//!             _ => UpgradeVerdict::Refuse(Refusal::unauthorized("bad or missing token")), // HTTP 401
//!         }
//!     }
//! }
//!
//! type Chats = Service<Tokens, Chat>;
//!
//! async fn ws(State(service): State<Arc<Chats>>, request: UpgradeRequest) -> Served {
//!     ws_lifecycle::axum::serve(request, service).await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::default();
//! let service = Arc::new(Service::new(registry.clone(), DriverConfig::default(), Tokens, Chat));
//! let app = Router::new().route("/ws", get(ws)).with_state(service);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>());
//! tokio::spawn(server.into_future());
//! registry.open(); // the application is ready (G8)
//!
//! let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token=nope")).await;
//! assert!(matches!(refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 401));
//! let (mut ada, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token=t-ada&room=rust")).await?;
//! ada.send(WsMessage::text("hi")).await?;
//! assert_eq!(ada.next().await.transpose()?, Some(WsMessage::text("ada@127.0.0.1: hi")));
//! // Shutdown: 1001 to everyone; the client reads on, so it answers in time.
//! let reading = async {
//!     let close = ada.next().await;
//!     while let Some(Ok(_)) = ada.next().await {}
//!     close
//! };
//! let (report, close) = tokio::join!(registry.drain(tokio::time::sleep(Duration::from_secs(5))), reading);
//! assert_eq!((report.closing, report.dropped), (1, 0));
//! assert!(matches!(close, Some(Ok(WsMessage::Close(Some(frame)))) if u16::from(frame.code) == 1001));
//! # Ok(())
//! # }
//! ```
//!
//! axum (through tungstenite) answers pings and echoes the peer's Close by itself:
//! the driver adds no Pong of its own on these sockets, and its own Close reply is
//! absorbed by the library, so the peer gets exactly one.
//!
//! ## The HTTP server in front of it
//!
//! `axum::serve`, as above, arms no header-read timeout (hyper's needs a timer, which
//! it does not set) and bounds nothing before the upgrade: a client that connects and
//! sends nothing, sends half a request, or idles on a keep-alive connection holds a
//! file descriptor for ever, and enough of them lock everyone out. Exposed to the
//! internet, serve each connection with hyper's HTTP/1 builder in an accept loop of
//! your own:
//!
//! - a timer and a `header_read_timeout` (hyper applies it to the first request head
//!   and to the wait for each next one on a keep-alive connection: the connection is
//!   closed when it runs out);
//! - `with_upgrades()`, for the WebSocket; the connection's future resolves at the
//!   upgrade (the WebSocket runs on in the task axum spawns), so a permit held until
//!   then counts exactly the connections that have not upgraded — cap them, and close
//!   a connection beyond the cap at once (or answer it 503);
//! - the peer's address, if the authenticator wants it in
//!   [`UpgradeRequest::peer`], as a `ConnectInfo` extension.
//!
//! Unauthenticated WebSockets (the first-message mode) are bounded in time by the
//! readiness timeout; to bound their number apart from the authenticated ones, count
//! them in the route (the example chat server does, `--max-unauthenticated`).
//! `examples/chat.rs` (`serve_http`) is this loop in full, with shutdown.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//! use std::time::Duration;
//! use axum::Extension;
//! use axum::extract::connect_info::ConnectInfo;
//! use hyper::server::conn::http1;
//! use hyper_util::rt::{TokioIo, TokioTimer};
//! use hyper_util::service::TowerToHyperService;
//!
//! # async fn run(app: axum::Router) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! let mut http = http1::Builder::new();
//! http.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(5));
//! let not_upgraded = Arc::new(tokio::sync::Semaphore::new(1024));
//! loop {
//!     let (stream, peer) = listener.accept().await?;
//!     let Ok(permit) = not_upgraded.clone().try_acquire_owned() else {
//!         continue; // over the cap: the stream is dropped, closed at once
//!     };
//!     let app = app.clone().layer(Extension(ConnectInfo::<SocketAddr>(peer)));
//!     let connection = http
//!         .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
//!         .with_upgrades();
//!     tokio::spawn(async move {
//!         let _ = connection.await; // closed, timed out, or upgraded
//!         drop(permit);
//!     });
//! }
//! # }
//! ```

mod socket;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use crate::adapters::frames::{ServerSocket, check_upgrade, switching_headers};
use crate::driver::{
    Authenticator, Closed, Handler, Refusal, Service, SocketConfig, SocketLink, UpgradeRequest,
};

pub use socket::{AxumSocket, from_axum, to_axum};

/// What [`serve`] answered: the HTTP response (the `101`, or the refusal), and the
/// connection's end to come. Return it from the route (it is `IntoResponse`), or take
/// [`ended`](Served::ended) to learn how the connection closed.
#[derive(Debug)]
#[non_exhaustive]
pub struct Served {
    /// The answer to the upgrade request.
    pub response: Response,
    /// Resolves to the [`Closed`] connection once it is closed, or to `None` if no
    /// WebSocket opened (refused, or the upgrade failed).
    pub ended: Ended,
}

impl IntoResponse for Served {
    fn into_response(self) -> Response {
        self.response
    }
}

/// The end of a connection [`serve`] started: a future of its [`Closed`] record and
/// unsent messages (`None` if no WebSocket opened). Dropping it changes nothing: the
/// connection runs on, and the same [`Closed`] reaches
/// [`Handler::on_close`](crate::driver::Handler::on_close).
#[derive(Debug)]
pub struct Ended {
    receiver: Option<oneshot::Receiver<Closed>>,
}

impl Future for Ended {
    type Output = Option<Closed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Closed>> {
        match self.receiver.as_mut() {
            None => Poll::Ready(None),
            Some(receiver) => Pin::new(receiver).poll(cx).map(Result::ok),
        }
    }
}

/// Answers an upgrade request: checks it is a WebSocket upgrade (405, 426 or 400
/// if not, before the authenticator runs), asks the service's authenticator
/// ([`Service::admit`]); on a refusal answers with its status and reason (no
/// WebSocket); otherwise answers `101 Switching Protocols` (with the selected
/// subprotocol) and runs the connection on `service`, over the crate's own framing
/// with the [`SocketConfig`] applied, in a task of its own once hyper hands over the
/// connection.
///
/// Only HTTP/1.1 upgrades: a request that cannot be upgraded (HTTP/2, or a server
/// that does not offer hyper's upgrades) is answered 426.
///
/// ```no_run
/// use std::sync::Arc;
/// use axum::extract::State;
/// use ws_lifecycle::axum::Served;
/// use ws_lifecycle::driver::UpgradeRequest;
/// use ws_lifecycle::{Authenticator, Handler, Service};
///
/// async fn ws<A: Authenticator + 'static, H: Handler<A::State>>(
///     State(service): State<Arc<Service<A, H>>>,
///     request: UpgradeRequest, // method, URI, headers, peer: the adapter builds it
/// ) -> Served {
///     ws_lifecycle::axum::serve(request, service).await
/// }
/// ```
pub async fn serve<A, H>(mut request: UpgradeRequest, service: Arc<Service<A, H>>) -> Served
where
    A: Authenticator + 'static,
    H: Handler<A::State>,
{
    let on_upgrade = request.extensions.remove::<OnUpgrade>();
    let http11 = request
        .extensions
        .remove::<http::Version>()
        .is_some_and(|version| version >= http::Version::HTTP_11);
    let key = match check_upgrade(&request, http11) {
        Ok(key) => key,
        Err(refusal) => return refused(&refusal),
    };
    let Some(on_upgrade) = on_upgrade else {
        let refusal =
            Refusal::with_status(StatusCode::UPGRADE_REQUIRED, "connection not upgradable");
        return refused(&refusal);
    };
    let admission = match service.admit(request).await {
        Ok(admission) => admission,
        Err(refusal) => return refused(&refusal),
    };
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *response.headers_mut() = switching_headers(&key, admission.protocol());
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(id = %admission.id(), %error, "upgrade failed");
                return;
            }
        };
        let config = service.config();
        let link = SocketLink::new(admission.is_authenticated());
        let socket = ServerSocket::new(
            TokioIo::new(upgraded),
            &config.socket,
            config.max_pre_auth_message_bytes,
            link.clone(),
        );
        let closed = service.run_admitted_socket(socket, admission, link).await;
        let _ = tx.send(closed);
    });
    Served {
        response,
        ended: Ended { receiver: Some(rx) },
    }
}

/// A refusal as the HTTP answer: its status, its reason as a `text/plain` body.
fn refused(refusal: &Refusal) -> Served {
    let body = refusal.reason().to_owned();
    let content_type = [(CONTENT_TYPE, "text/plain; charset=utf-8")];
    Served {
        response: (refusal.status(), content_type, body).into_response(),
        ended: Ended { receiver: None },
    }
}

/// The [`SocketConfig`] applied to axum's own upgrade, for a server that runs
/// [`AxumSocket`] with [`Service::run`] itself ([`serve`] uses the crate's framing,
/// which reads the same settings).
pub fn configure(upgrade: WebSocketUpgrade, socket: &SocketConfig) -> WebSocketUpgrade {
    upgrade
        .read_buffer_size(socket.read_buffer_size)
        .write_buffer_size(socket.write_buffer_size)
        .max_message_size(socket.max_message_size.unwrap_or(usize::MAX))
        .max_frame_size(socket.max_frame_size.unwrap_or(usize::MAX))
}

/// The upgrade request as an axum extractor: method, URI, headers, and the peer's
/// address when the server was built with
/// `into_make_service_with_connect_info::<SocketAddr>()` (else `None`); it also
/// takes hyper's handle on the connection's upgrade, for [`serve`]. Never fails.
impl<S: Send + Sync> FromRequestParts<S> for UpgradeRequest {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let mut request = UpgradeRequest::new(parts.uri.clone(), parts.headers.clone());
        request.method = parts.method.clone();
        request.peer = (parts.extensions.get::<ConnectInfo<SocketAddr>>()).map(|info| info.0);
        if let Some(on_upgrade) = parts.extensions.get::<OnUpgrade>().cloned() {
            request.extensions.insert(on_upgrade);
        }
        request.extensions.insert(parts.version);
        Ok(request)
    }
}
