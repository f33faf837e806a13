//! What the application plugs into the driver beside its authenticator: a
//! [`Handler`], the [`Session`] it sees, and the [`Closed`] connection it is handed
//! at the end.

use std::future::Future;
use std::sync::Arc;

use crate::core::{CloseFrame, CloseRecord, ConnectionId, Message};
use crate::handle::{Emitter, Sender};
use crate::registry::Registry;

use super::UpgradeRequest;

/// One connection as the handler sees it: who, with what state, from which request,
/// and the registry to reach the others.
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::{Config, Connection, ConnectionId, Registry, Session};
///
/// let registry = Registry::default();
/// registry.open();
/// let now = Instant::now();
/// let conn = Connection::new(registry.next_id(), Config::default()).accept(now)?;
/// let _registration = registry.register(&conn, now)?;
/// let session = Session::new(conn.id(), "ada", registry.clone()) // as the driver builds it
///     .with_state(42_u32); // the authenticator's per-connection value
/// session.registry.join(session.id, "lobby")?; // what a handler does with it
/// assert_eq!(registry.members("lobby"), [conn.id()]); // clones share one registry
/// assert_eq!((session.user(), session.state), (Some("ada"), 42));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Session<S = ()> {
    /// The connection's id (unique in its registry: the driver draws it from
    /// [`Registry::next_id`]).
    pub id: ConnectionId,
    /// The authenticated user; `None` for an anonymous client
    /// ([`Identity::anonymous`](super::Identity::anonymous)).
    pub user: Option<Arc<str>>,
    /// The registry the connection is listed in: broadcast, route to a user, a group
    /// or one connection, join groups.
    pub registry: Registry,
    /// The upgrade request the connection came from (method, URI, headers, peer).
    pub request: Arc<UpgradeRequest>,
    /// The application's own value for this connection, from
    /// [`Identity::state`](super::Identity::state).
    pub state: S,
}

impl Session {
    /// A session of `user`, as the driver builds it (for testing a handler), with an
    /// empty upgrade request and no state.
    pub fn new(id: ConnectionId, user: impl Into<Arc<str>>, registry: Registry) -> Session {
        Session {
            id,
            user: Some(user.into()),
            registry,
            request: Arc::default(),
            state: (),
        }
    }

    /// An anonymous session (for testing a handler of a public endpoint).
    pub fn anonymous(id: ConnectionId, registry: Registry) -> Session {
        Session {
            id,
            user: None,
            registry,
            request: Arc::default(),
            state: (),
        }
    }
}

impl<S> Session<S> {
    /// The user, if the client is not anonymous.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The same session, carrying `state`.
    pub fn with_state<T>(self, state: T) -> Session<T> {
        Session {
            id: self.id,
            user: self.user,
            registry: self.registry,
            request: self.request,
            state,
        }
    }

    /// The same session, from `request`.
    pub fn with_request(self, request: impl Into<Arc<UpgradeRequest>>) -> Session<S> {
        Session {
            request: request.into(),
            ..self
        }
    }
}

/// A connection at its end, as [`Handler::on_close`] gets it and
/// [`Service::run`](super::Service::run) returns it: how it closed, and every
/// message that was queued for the peer and never written (**G3** end to end: the
/// driver drops none of them silently).
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::TransportLoss;
/// use ws_lifecycle::driver::Closed;
/// use ws_lifecycle::{Config, Connection, ConnectionId, Message};
///
/// let now = Instant::now();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// let mut conn = conn.authenticate(None, now)?.ready(now)?;
/// conn.send(Message::text("never written"))?;
/// let transport = conn.transport();
/// transport.handle_transport_lost(TransportLoss::Eof, now)?; // the peer vanished
/// // What the driver builds once the connection is over:
/// let closed = Closed::new(conn.close_record().unwrap(), transport.take_unsent());
/// assert_eq!(closed.unsent, [Message::text("never written")]); // e.g. to store for later
/// assert!(!closed.record.is_clean());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Closed {
    /// How the connection closed.
    pub record: CloseRecord,
    /// The messages queued for the peer and never written, in queue order: what was
    /// still queued when the transport was lost or the close handshake cut short,
    /// and what was taken for writing but never handed to the socket. A message the
    /// socket's library accepted (into its own write buffer, see
    /// [`SocketConfig::write_buffer_size`](super::SocketConfig::write_buffer_size))
    /// is the library's: if the transport is lost before it reaches the wire, it is
    /// in neither. At most the
    /// outbox's capacity plus the driver's write batch (64) plus the pre-ready
    /// buffer's capacity.
    pub unsent: Vec<Message>,
}

impl Closed {
    /// A closed connection (for testing a handler's `on_close`).
    pub fn new(record: CloseRecord, unsent: Vec<Message>) -> Closed {
        Closed { record, unsent }
    }
}

/// The application's side of a connection; `S` is the per-connection state its
/// [`Authenticator`](super::Authenticator) returns (`()` unless it says otherwise).
///
/// The driver calls, in order: [`on_authenticated`](Handler::on_authenticated)
/// (before `Ready`: what it emits is delivered first, **G2**), then
/// [`on_message`](Handler::on_message) for every message in order — the ones that
/// arrived before `Ready` first — and [`on_close`](Handler::on_close) exactly once,
/// for every connection that reached `on_authenticated`, after the connection is
/// `Closed` and its transport ended.
///
/// **Calls end with their connection.** Once the connection is closing, a pending
/// `on_authenticated` or `on_message` gets
/// [`DriverConfig::handler_grace`](super::DriverConfig::handler_grace) to finish and
/// is then dropped (cancelled at its next `.await`); `on_close` gets the same grace.
/// So a handler that awaits forever cannot keep a closed connection's task alive, and
/// [`Service::run`](super::Service::run) always returns.
///
/// A panic in any of them touches no other connection: in the first two it closes
/// this one with 1011; in `on_close` it is caught and logged.
///
/// A real server: a bearer token checked at the upgrade, a per-connection message
/// counter as the handler's state (mutable through an atomic: calls for one
/// connection never overlap, but the state is shared with `on_close`), a broadcast,
/// and at shutdown a drain whose closes reach `on_close` with what was never written:
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
/// use futures_util::{SinkExt, StreamExt};
/// use http::header::AUTHORIZATION;
/// use tokio_tungstenite::tungstenite::{Message as WsMessage, client::IntoClientRequest};
/// use ws_lifecycle::driver::{AtUpgrade, Closed, UpgradeRequest};
/// use ws_lifecycle::{CloseFrame, DriverConfig, Handler, Identity, Message};
/// use ws_lifecycle::{Registry, Sender, Service, Session};
///
/// /// Per connection: how many messages it sent.
/// #[derive(Default)]
/// struct Said(AtomicU64);
///
/// /// Broadcasts every message with its rank; remembers who left and how.
/// #[derive(Default)]
/// struct Numbered {
///     left: std::sync::Mutex<Vec<String>>,
/// }
///
/// impl Handler<Said> for Numbered {
///     async fn on_message(&self, session: &Session<Said>, _: &Sender, message: Message) -> Result<(), CloseFrame> {
///         let n = session.state.0.fetch_add(1, Ordering::Relaxed) + 1;
///         let text = format!("{} #{n}: {}", session.user().unwrap_or("?"), message.as_text().unwrap_or(""));
///         session.registry.broadcast(Message::text(text)); // every Ready connection (G7)
///         Ok(())
///     }
///     async fn on_close(&self, session: &Session<Said>, closed: &Closed) {
///         let said = session.state.0.load(Ordering::Relaxed);
///         let line = format!("{} said {said}, closed {}, {} unsent", session.user().unwrap_or("?"),
///             closed.record.code(), closed.unsent.len());
///         self.left.lock().unwrap().push(line); // exactly once per connection
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bearer = AtUpgrade(|request: Arc<UpgradeRequest>| async move {
///     let header = request.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
///     match header.and_then(|v| v.strip_prefix("Bearer user-")) {
///         Some(user) => Ok(Identity::user(user).with_state(Said::default())),
///         None => Err("missing bearer token"), // HTTP 401
///     }
/// });
/// let registry = Registry::default();
/// let service = Arc::new(Service::new(registry.clone(), DriverConfig::default(), bearer, Numbered::default()));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let server = service.clone();
/// tokio::spawn(async move {
///     while let Ok((stream, peer)) = listener.accept().await {
///         let service = server.clone();
///         tokio::spawn(async move { ws_lifecycle::tungstenite::accept(stream, Some(peer), &service).await });
///     }
/// });
/// registry.open();
///
/// let mut request = format!("ws://{addr}/feed").into_client_request()?;
/// request.headers_mut().insert(AUTHORIZATION, "Bearer user-ada".parse()?);
/// let (mut ada, _) = tokio_tungstenite::connect_async(request).await?;
/// ada.send(WsMessage::text("one")).await?;
/// ada.send(WsMessage::text("two")).await?;
/// assert_eq!(ada.next().await.transpose()?, Some(WsMessage::text("ada #1: one")));
/// assert_eq!(ada.next().await.transpose()?, Some(WsMessage::text("ada #2: two")));
/// let deadline = tokio::time::sleep(Duration::from_secs(5)); // shutdown: 1001, then on_close
/// tokio::join!(registry.drain(deadline), async { while let Some(Ok(_)) = ada.next().await {} });
/// for _ in 0..200 { // on_close runs in the server's task, once the transport ended
///     if !service.handler().left.lock().unwrap().is_empty() { break }
///     tokio::time::sleep(Duration::from_millis(10)).await;
/// }
/// assert_eq!(*service.handler().left.lock().unwrap(), ["ada said 2, closed 1001, 0 unsent"]);
/// # Ok(())
/// # }
/// ```
///
/// A chat room, tested without a socket ([`Session::new`] builds what the driver would):
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Frame, Handler};
/// use ws_lifecycle::{Message, Registry, Sender, Session};
///
/// /// Every message goes to every Ready connection (G7), signed by its author.
/// struct Chat;
///
/// impl Handler for Chat {
///     async fn on_message(
///         &self,
///         session: &Session,
///         _: &Sender,
///         message: Message,
///     ) -> Result<(), CloseFrame> {
///         let author = session.user().unwrap_or("anonymous");
///         let text = format!("{author}: {}", message.as_text().unwrap_or("<binary>"));
///         session.registry.broadcast(Message::text(text));
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (registry, now) = (Registry::default(), Instant::now());
/// registry.open();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// let _registration = registry.register(&conn, now)?;
/// let conn = conn.authenticate(None, now)?.ready(now)?;
/// let session = Session::new(conn.id(), "ada", registry.clone());
/// Chat.on_message(&session, &conn.sender(), Message::text("hi")).await.unwrap();
/// assert_eq!(conn.transport().next_frame(now), Some(Frame::Message(Message::text("ada: hi"))));
/// # Ok(())
/// # }
/// ```
pub trait Handler<S: Send + Sync + 'static = ()>: Send + Sync + 'static {
    /// The connection is authenticated and listed under its user, not `Ready` yet:
    /// events emitted here reach the client before anything sent later (**G2**).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Emitter, Frame, Handler};
    /// use ws_lifecycle::{Message, Registry, Sender, Session};
    ///
    /// struct Welcome;
    ///
    /// impl Handler for Welcome {
    ///     async fn on_authenticated(&self, session: &Session, emitter: &Emitter) {
    ///         let _ = emitter.emit(Message::text(format!("welcome, {}", session.user().unwrap_or("guest"))));
    ///     }
    ///     async fn on_message(&self, _: &Session, _: &Sender, _: Message) -> Result<(), CloseFrame> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let conn = conn.authenticate(None, now)?;
    /// let session = Session::new(conn.id(), "ada", Registry::default());
    /// Welcome.on_authenticated(&session, &conn.emitter()).await;
    /// let mut conn = conn.ready(now)?;
    /// conn.send(Message::text("live"))?;
    /// let first = conn.poll_transmit(now); // the welcome, before anything sent later (G2)
    /// assert_eq!(first, Some(Frame::Message(Message::text("welcome, ada"))));
    /// # Ok(())
    /// # }
    /// ```
    fn on_authenticated(
        &self,
        session: &Session<S>,
        emitter: &Emitter,
    ) -> impl Future<Output = ()> + Send {
        let _ = (session, emitter);
        async {}
    }

    /// A message from the client. `Err(frame)` closes the connection with `frame`.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Frame, Handler};
    /// use ws_lifecycle::{Message, Registry, Sender, Session};
    ///
    /// /// Echoes; "bye" ends the session with 1000.
    /// struct Echo;
    ///
    /// impl Handler for Echo {
    ///     async fn on_message(
    ///         &self,
    ///         _: &Session,
    ///         sender: &Sender,
    ///         message: Message,
    ///     ) -> Result<(), CloseFrame> {
    ///         if message.as_text() == Some("bye") {
    ///             return Err(CloseFrame::normal());
    ///         }
    ///         let _ = sender.send(message); // Full or Closed: the message comes back; an echo drops it
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let conn = conn.authenticate(None, now)?.ready(now)?;
    /// let (session, sender) = (Session::new(conn.id(), "ada", Registry::default()), conn.sender());
    /// assert_eq!(Echo.on_message(&session, &sender, Message::text("hi")).await, Ok(()));
    /// assert_eq!(conn.transport().next_frame(now), Some(Frame::Message(Message::text("hi"))));
    /// let bye = Echo.on_message(&session, &sender, Message::text("bye")).await;
    /// assert_eq!(bye, Err(CloseFrame::normal())); // the driver closes with it
    /// # Ok(())
    /// # }
    /// ```
    fn on_message(
        &self,
        session: &Session<S>,
        sender: &Sender,
        message: Message,
    ) -> impl Future<Output = Result<(), CloseFrame>> + Send;

    /// The connection is closed and its transport ended. Called exactly once, for
    /// connections that reached [`on_authenticated`](Handler::on_authenticated), with
    /// how it closed and the messages that were never written (**G3**): nothing the
    /// application queued is dropped without being handed back here.
    ///
    /// By then the registry no longer lists the connection (it is unlisted as it
    /// reaches `Closed`, **G7**), so a `/stats` showing no open connection may still
    /// have `on_close` calls to come; count them here if you need to know they ran.
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use std::time::Instant;
    /// use ws_lifecycle::driver::Closed;
    /// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Handler};
    /// use ws_lifecycle::{Message, Registry, Sender, Session};
    ///
    /// /// Keeps an audit log of who left, why, and what they missed.
    /// #[derive(Default)]
    /// struct Audit(Mutex<Vec<String>>);
    ///
    /// impl Handler for Audit {
    ///     async fn on_message(&self, _: &Session, _: &Sender, _: Message) -> Result<(), CloseFrame> {
    ///         Ok(())
    ///     }
    ///     async fn on_close(&self, session: &Session, closed: &Closed) {
    ///         let (user, cause) = (session.user().unwrap_or("?"), closed.record.cause.as_str());
    ///         let line = format!("{user} left: {cause} ({}), {} unsent", closed.record.code(), closed.unsent.len());
    ///         self.0.lock().unwrap().push(line);
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let mut closing = conn.authenticate(None, now)?.ready(now)?.close(CloseFrame::normal(), now);
    /// closing.poll_transmit(now);
    /// closing.handle_peer_close(Some(CloseFrame::normal()), now)?;
    /// let audit = Audit::default();
    /// let session = Session::new(closing.id(), "ada", Registry::default());
    /// let closed = Closed::new(closing.close_record().unwrap(), closing.take_unsent());
    /// audit.on_close(&session, &closed).await;
    /// assert_eq!(*audit.0.lock().unwrap(), ["ada left: local (1000), 0 unsent"]);
    /// # Ok(())
    /// # }
    /// ```
    fn on_close(&self, session: &Session<S>, closed: &Closed) -> impl Future<Output = ()> + Send {
        let _ = (session, closed);
        async {}
    }
}
