//! [`Service`]: what a server shares across its connections, and [`Admission`], a
//! connection let through the upgrade.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::{FutureExt, Sink, Stream};
use http::StatusCode;

use crate::core::ConnectionId;
use crate::registry::Registry;

use super::SocketLink;
use super::app::{self, Verdict};
use super::pump::Wiring;
use super::{
    Authenticator, Closed, DriverConfig, Handler, Public, Refusal, UpgradeRequest, UpgradeVerdict,
    WireFrame, now,
};

/// Runs connections: the registry they are listed in, the configuration, the
/// authenticator and the handler, shared by every connection of a server. Wrap it in
/// an `Arc`; the adapters ([`axum::serve`](crate::axum::serve),
/// [`tungstenite::accept`](crate::tungstenite::accept)) take it from there.
///
/// Per connection: [`admit`](Service::admit) checks the upgrade request before the
/// `101` (the upgrade-time mode of the [`Authenticator`]; a refusal becomes the HTTP
/// answer), then [`run_admitted`](Service::run_admitted) runs the WebSocket until it
/// is closed and returns the [`Closed`] connection. [`run`](Service::run) does both
/// for a socket whose handshake is already done.
///
/// A whole server over tokio-tungstenite — upgrade-time authentication from a query
/// token, per-connection state (the room from `?room=`), a broadcast to a group,
/// the startup gate, and a drain at shutdown — with one client over loopback:
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use futures_util::{SinkExt, StreamExt};
/// use tokio_tungstenite::tungstenite::Message as WsMessage;
/// use ws_lifecycle::driver::{AtUpgrade, UpgradeRequest};
/// use ws_lifecycle::{CloseFrame, DriverConfig, Handler, Identity, Message};
/// use ws_lifecycle::{Registry, Sender, Service, Session};
///
/// /// Everything said in a room goes to everyone Ready in it (G7).
/// struct Rooms;
///
/// impl Handler<String> for Rooms {
///     async fn on_authenticated(&self, session: &Session<String>, _: &ws_lifecycle::Emitter) {
///         let _ = session.registry.join(session.id, session.state.as_str()); // the room
///     }
///     async fn on_message(
///         &self,
///         session: &Session<String>,
///         _: &Sender,
///         message: Message,
///     ) -> Result<(), CloseFrame> {
///         let text = format!("{}: {}", session.user().unwrap_or("?"), message.as_text().unwrap_or(""));
///         session.registry.send_to_group(&session.state, Message::text(text));
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tokens = AtUpgrade(|request: Arc<UpgradeRequest>| async move {
///     let user = match request.query_param("token").as_deref() {
///         Some("t-ada") => "ada",
///         _ => return Err("bad or missing token"), // HTTP 401, no WebSocket
///     };
///     let room = request.query_param("room").as_deref().unwrap_or("lobby").to_owned();
///     Ok(Identity::user(user).with_state(room)) // the handler's per-connection state
/// });
/// let registry = Registry::default(); // starting: early connections are held (G8)
/// let service = Arc::new(Service::new(registry.clone(), DriverConfig::default(), tokens, Rooms));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let server = service.clone();
/// tokio::spawn(async move {
///     while let Ok((stream, peer)) = listener.accept().await {
///         let service = server.clone();
///         tokio::spawn(async move { ws_lifecycle::tungstenite::accept(stream, Some(peer), &service).await });
///     }
/// });
/// registry.open(); // the application is ready: admit connections
///
/// let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token=guess")).await;
/// assert!(refused.is_err()); // answered 401
/// let url = format!("ws://{addr}/ws?token=t-ada&room=rust");
/// let (mut ada, _) = tokio_tungstenite::connect_async(url).await?; // no auth message needed
/// ada.send(WsMessage::text("hello")).await?;
/// assert_eq!(ada.next().await.transpose()?, Some(WsMessage::text("ada: hello")));
///
/// // Shutdown: 1001 to everyone; the client reads on, so it answers in time.
/// let reading = async {
///     let close = ada.next().await;
///     while let Some(Ok(_)) = ada.next().await {}
///     close
/// };
/// let (report, close) = tokio::join!(registry.drain(tokio::time::sleep(Duration::from_secs(5))), reading);
/// assert_eq!((report.closing, report.dropped), (1, 0));
/// assert!(matches!(close, Some(Ok(WsMessage::Close(Some(frame)))) if u16::from(frame.code) == 1001));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Service<A, H> {
    registry: Registry,
    config: DriverConfig,
    authenticator: A,
    handler: H,
}

/// A connection let through the upgrade by [`Service::admit`]: its id (drawn from the
/// registry), the request, and what the authenticator decided at the upgrade. Hand
/// it to [`Service::run_admitted`] once the WebSocket handshake is done, answering
/// the handshake with [`protocol`](Admission::protocol).
#[derive(Debug)]
pub struct Admission<S = ()> {
    pub(super) id: ConnectionId,
    pub(super) request: Arc<UpgradeRequest>,
    pub(super) verdict: Verdict<S>,
    pub(super) protocol: Option<String>,
}

impl<S> Admission<S> {
    /// The connection's id, unique in the service's registry.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// The upgrade request.
    pub fn request(&self) -> &Arc<UpgradeRequest> {
        &self.request
    }

    /// The subprotocol to answer the upgrade with (`Sec-WebSocket-Protocol`), if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// True if the client was authenticated at the upgrade (no message needed);
    /// false if its first message decides.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.verdict, Verdict::Accepted(_))
    }
}

impl<H: Handler> Service<Public, H> {
    /// A service for a public endpoint: no authentication, every client is accepted
    /// at the upgrade as [`Identity::anonymous`](super::Identity::anonymous). Same as `Service::new(registry,
    /// config, Public, handler)`.
    ///
    /// ```
    /// use ws_lifecycle::{CloseFrame, DriverConfig, Handler, Message, Registry, Sender, Service, Session};
    ///
    /// struct Ticker;
    /// impl Handler for Ticker {
    ///     async fn on_message(&self, _: &Session, _: &Sender, _: Message) -> Result<(), CloseFrame> {
    ///         Ok(()) // read-only feed
    ///     }
    /// }
    /// let service = Service::public(Registry::open_now(), DriverConfig::default(), Ticker);
    /// # let _ = service;
    /// ```
    pub fn public(registry: Registry, config: DriverConfig, handler: H) -> Self {
        Service::new(registry, config, Public, handler)
    }
}

impl<A: Authenticator, H: Handler<A::State>> Service<A, H> {
    /// A service listing its connections in `registry`.
    ///
    /// **The startup gate.** A registry starts *starting*: connections are held
    /// (not `Ready`, not routed) until [`Registry::open`] — so that nothing is
    /// delivered before the application is ready (**G8**) — and refused with 1013 if
    /// it is never called within the hold timeout. Call `registry.open()` once the
    /// rest of the application has started; the first connection held by a registry
    /// that is not open logs a warning naming `Registry::open`. A server with nothing
    /// to wait for passes [`Registry::open_now`]`()`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ws_lifecycle::driver::AuthRequest;
    /// use ws_lifecycle::registry::RegistryState;
    /// use ws_lifecycle::{CloseFrame, DriverConfig, Handler, Identity, Message};
    /// use ws_lifecycle::{Registry, Sender, Service, Session};
    ///
    /// struct Quiet; // reads everything, answers nothing
    /// impl Handler for Quiet {
    ///     async fn on_message(&self, _: &Session, _: &Sender, _: Message) -> Result<(), CloseFrame> {
    ///         Ok(())
    ///     }
    /// }
    /// let by_name = |request: AuthRequest| async move {
    ///     request.first_message.as_text().map(Identity::user).ok_or("send a name")
    /// };
    /// let registry = Registry::default(); // starting: early connections are held (G8)
    /// let service = Arc::new(Service::new(registry.clone(), DriverConfig::default(), by_name, Quiet));
    /// // ...the rest of the application starts, then:
    /// registry.open();
    /// assert_eq!(service.registry().state(), RegistryState::Open); // one registry, shared
    /// ```
    pub fn new(registry: Registry, config: DriverConfig, authenticator: A, handler: H) -> Self {
        // Calls without a time (`Sender::close`, `Registry::shutdown`, `drain`) read
        // the clock the driver feeds its connections: tokio's, paused or not.
        registry.adopt_clock(now);
        Service {
            registry,
            config,
            authenticator,
            handler,
        }
    }

    /// The registry the connections are listed in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The driver's configuration.
    pub fn config(&self) -> &DriverConfig {
        &self.config
    }

    /// The handler (e.g. to read counters it keeps).
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &A {
        &self.authenticator
    }

    /// Checks an upgrade request before the `101 Switching Protocols`: draws the
    /// connection's id from the registry and asks the authenticator's
    /// [`at_upgrade`](Authenticator::at_upgrade). `Err`: answer the request with the
    /// refusal's status and reason, and open no WebSocket. The check is bounded by
    /// the connection's readiness timeout (503 when it runs out); a panicking check
    /// is answered 500.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use ws_lifecycle::{CloseFrame, DriverConfig, Handler, Identity, Message, Registry, Sender, Service, Session};
    /// # struct Quiet;
    /// # impl Handler for Quiet {
    /// #     async fn on_message(&self, _: &Session, _: &Sender, _: Message) -> Result<(), CloseFrame> { Ok(()) }
    /// # }
    /// use ws_lifecycle::driver::{AtUpgrade, UpgradeRequest};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let tokens = AtUpgrade(|request: Arc<UpgradeRequest>| async move {
    ///     match request.query_param("token").as_deref() {
    ///         Some("t-ada") => Ok(Identity::user("ada")),
    ///         _ => Err("bad token"),
    ///     }
    /// });
    /// let service = Service::new(Registry::open_now(), DriverConfig::default(), tokens, Quiet);
    /// let refused = service.admit(UpgradeRequest::new("/ws?token=x".parse()?, Default::default())).await;
    /// assert_eq!(refused.unwrap_err().status(), 401);
    /// let admitted = service.admit(UpgradeRequest::new("/ws?token=t-ada".parse()?, Default::default())).await?;
    /// assert!(admitted.is_authenticated());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn admit(&self, request: UpgradeRequest) -> Result<Admission<A::State>, Refusal> {
        let mut admission = self.examine(request).await;
        match std::mem::replace(&mut admission.verdict, Verdict::AwaitFirstMessage) {
            Verdict::Refused(refusal) => Err(refusal),
            verdict => {
                admission.verdict = verdict;
                Ok(admission)
            }
        }
    }

    /// [`admit`](Self::admit), keeping a refusal in the admission (for `run`, where
    /// it can no longer be an HTTP answer).
    async fn examine(&self, request: UpgradeRequest) -> Admission<A::State> {
        let request = Arc::new(request);
        let id = self.registry.next_id();
        let refused = |refusal| Admission {
            id,
            request: request.clone(),
            verdict: Verdict::Refused(refusal),
            protocol: None,
        };
        // The call itself inside the future, so that a panic before its first
        // `.await` is answered 500 too.
        let check = async { self.authenticator.at_upgrade(request.clone()).await };
        let check = AssertUnwindSafe(check).catch_unwind();
        let timeout = self.config.connection.readiness_timeout;
        let (verdict, chosen) = match tokio::time::timeout(timeout, check).await {
            Ok(Ok(UpgradeVerdict::Accept(identity)))
                if identity.expires_at.is_some_and(|at| at <= now()) =>
            {
                // Answered before the 101 rather than with a 1008 right after it.
                tracing::info!(%id, "the credential lapsed already; answering 401");
                return refused(Refusal::unauthorized("credential expired"));
            }
            Ok(Ok(UpgradeVerdict::Accept(identity))) => {
                let chosen = identity.protocol.clone();
                (Verdict::Accepted(identity), chosen)
            }
            Ok(Ok(UpgradeVerdict::AwaitFirstMessage)) => (Verdict::AwaitFirstMessage, None),
            Ok(Ok(UpgradeVerdict::Refuse(refusal))) => {
                tracing::info!(%id, %refusal, "upgrade refused");
                return refused(refusal);
            }
            Ok(Err(_panic)) => {
                tracing::error!(%id, "the authenticator panicked at the upgrade; answering 500");
                let status = StatusCode::INTERNAL_SERVER_ERROR;
                return refused(Refusal::with_status(status, "internal error"));
            }
            Err(_elapsed) => {
                tracing::warn!(%id, ?timeout, "authentication at the upgrade timed out; answering 503");
                let status = StatusCode::SERVICE_UNAVAILABLE;
                return refused(Refusal::with_status(status, "authentication timed out"));
            }
        };
        // No allocation: most clients offer no subprotocol, and the header is read
        // in place for each question.
        let offered = |protocol: &str| request.protocols().any(|p| p == protocol);
        // RFC 6455 §4.2.2: the server selects one of the protocols the client
        // offered; a client fails a connection answered with another.
        let chosen = chosen.filter(|protocol| {
            let ok = offered(protocol);
            if !ok {
                tracing::warn!(%id, %protocol, "the authenticator selected a subprotocol the client did not offer; none is selected");
            }
            ok
        });
        let protocol =
            chosen.or_else(|| (self.config.protocols.iter()).find(|p| offered(p)).cloned());
        if protocol.is_none() && request.protocols().next().is_some() {
            // A browser fails a connection whose 101 names none of the protocols it
            // offered: say so where the server's author will look.
            tracing::warn!(
                %id,
                offered = request.protocols().count(),
                "the client offered subprotocols and none was selected (DriverConfig::protocols, \
                 Identity::selecting_protocol): browsers will fail this connection"
            );
        }
        Admission {
            id,
            request,
            verdict,
            protocol,
        }
    }

    /// Runs one admitted connection whose WebSocket handshake has completed, until it
    /// is `Closed` and the transport has been ended; returns how it ended and what
    /// was never written.
    ///
    /// `socket` is any `Stream<Item = Result<WireFrame, E>> + Sink<WireFrame>`; the
    /// adapters (`axum`, `tungstenite` features) wrap their library's socket. Always
    /// returns: a handler that never completes is dropped
    /// [`handler_grace`](DriverConfig::handler_grace) after the connection starts
    /// closing.
    pub async fn run_admitted<S, E>(&self, socket: S, admission: Admission<A::State>) -> Closed
    where
        S: Stream<Item = Result<WireFrame, E>> + Sink<WireFrame, Error = E> + Unpin + Send,
        E: super::SocketError,
    {
        app::run(self, socket, admission, Wiring::of(&self.config)).await
    }

    /// [`admit`](Self::admit) then [`run_admitted`](Self::run_admitted), for a socket
    /// whose WebSocket handshake is already done (so an upgrade-time refusal can no
    /// longer be an HTTP answer: the connection is closed with 1008 instead).
    ///
    /// One connection, end to end, over an in-memory stream (a TCP stream in
    /// production), in the first-message mode:
    ///
    /// ```
    /// use futures_util::{SinkExt, StreamExt};
    /// use tokio_tungstenite::WebSocketStream;
    /// use tokio_tungstenite::tungstenite::{Message as TMessage, protocol::Role};
    /// use ws_lifecycle::driver::{AuthRequest, UpgradeRequest};
    /// use ws_lifecycle::tungstenite::TungsteniteSocket;
    /// use ws_lifecycle::{CloseFrame, DriverConfig, Handler, Identity, Message};
    /// use ws_lifecycle::{Registry, Sender, Service, Session};
    ///
    /// struct Echo;
    /// impl Handler for Echo {
    ///     async fn on_message(&self, _: &Session, sender: &Sender, message: Message) -> Result<(), CloseFrame> {
    ///         let _ = sender.send(message);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let anyone = |_: AuthRequest| async { Ok::<_, String>(Identity::user("ada")) };
    /// let service = Service::new(Registry::open_now(), DriverConfig::default(), anyone, Echo);
    /// let (server_io, client_io) = tokio::io::duplex(4096);
    /// let ws = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
    /// let socket = TungsteniteSocket::new(ws);
    /// let client = async {
    ///     let mut ws = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
    ///     ws.send(TMessage::text("hello")).await?; // the first message goes to the authenticator
    ///     ws.send(TMessage::text("echo?")).await?;
    ///     let echo = ws.next().await.transpose()?;
    ///     ws.close(None).await?;
    ///     while let Some(Ok(_)) = ws.next().await {} // until the server's answer
    ///     Ok::<_, Box<dyn std::error::Error>>(echo)
    /// };
    /// let (closed, echo) = tokio::join!(service.run(socket, UpgradeRequest::default()), client);
    /// assert_eq!(echo?, Some(TMessage::text("echo?")));
    /// assert!(closed.record.is_clean());
    /// assert!(closed.unsent.is_empty()); // everything queued was written (G3)
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run<S, E>(&self, socket: S, request: UpgradeRequest) -> Closed
    where
        S: Stream<Item = Result<WireFrame, E>> + Sink<WireFrame, Error = E> + Unpin + Send,
        E: super::SocketError,
    {
        let admission = self.examine(request).await;
        app::run(self, socket, admission, Wiring::of(&self.config)).await
    }

    /// [`run_admitted`](Self::run_admitted), for the adapters: their framing leaves
    /// Pings to the driver, and shares `link` with the pump (the size limit in force,
    /// the bytes written).
    #[cfg_attr(not(any(feature = "axum", feature = "tungstenite")), allow(dead_code))]
    pub(crate) async fn run_admitted_socket<S, E>(
        &self,
        socket: S,
        admission: Admission<A::State>,
        link: SocketLink,
    ) -> Closed
    where
        S: Stream<Item = Result<WireFrame, E>> + Sink<WireFrame, Error = E> + Unpin + Send,
        E: super::SocketError,
    {
        let wiring = Wiring {
            answer_pings: true,
            link: Some(link),
        };
        app::run(self, socket, admission, wiring).await
    }

    /// The service's parts, for the connection's run (`app`).
    pub(super) fn parts(&self) -> (&Registry, &DriverConfig, &A, &H) {
        (
            &self.registry,
            &self.config,
            &self.authenticator,
            &self.handler,
        )
    }
}
