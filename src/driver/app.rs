//! What the application plugs into the driver: an [`Authenticator`] and a [`Handler`].

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use crate::core::{CloseFrame, CloseRecord, ConnectionId, Message};
use crate::handle::{Emitter, Sender};
use crate::registry::Registry;

use super::UpgradeRequest;

/// What the authenticator sees: the upgrade request and the client's first message.
///
/// ```
/// use std::sync::Arc;
/// use ws_lifecycle::driver::{AuthRequest, UpgradeRequest};
/// use ws_lifecycle::{ConnectionId, Message};
///
/// let upgrade = UpgradeRequest::new("/ws?room=42".parse()?, Default::default());
/// let request = AuthRequest::new(ConnectionId::new(1), Arc::new(upgrade), Message::text("token:ada"));
/// assert_eq!(request.request.query(), Some("room=42"));
/// let token = request.first_message.as_text().and_then(|t| t.strip_prefix("token:"));
/// assert_eq!(token, Some("ada"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthRequest {
    /// The connection's id.
    pub id: ConnectionId,
    /// The upgrade request's URI and headers.
    pub request: Arc<UpgradeRequest>,
    /// The first message the client sent.
    pub first_message: Message,
}

/// A successful authentication.
///
/// ```
/// use std::time::{Duration, Instant};
/// use ws_lifecycle::Identity;
///
/// let forever = Identity::user("ada");
/// assert_eq!(forever.expires_at, None);
/// let hour = Identity::user("ada").expiring_at(Instant::now() + Duration::from_secs(3600));
/// assert!(hour.expires_at.is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identity {
    /// Who the client is: the registry indexes the connection under this user.
    pub user: String,
    /// When the credential lapses, if it does: the connection is then closed with
    /// 1008 (**G5**).
    pub expires_at: Option<Instant>,
}

impl Identity {
    /// An identity whose credential does not expire.
    pub fn user(user: impl Into<String>) -> Identity {
        Identity {
            user: user.into(),
            expires_at: None,
        }
    }

    /// The same identity, with a credential that lapses at `at` (**G5**).
    pub fn expiring_at(self, at: Instant) -> Identity {
        Identity {
            expires_at: Some(at),
            ..self
        }
    }
}

impl AuthRequest {
    /// A request, as the driver builds it (for testing an authenticator).
    pub fn new(
        id: ConnectionId,
        request: Arc<UpgradeRequest>,
        first_message: Message,
    ) -> AuthRequest {
        AuthRequest {
            id,
            request,
            first_message,
        }
    }
}

/// Checks a client's credential. The driver calls it once per connection, with the
/// first message the client sent; `Err` closes the connection with 1008. The
/// connection's readiness deadline bounds it (**G5**): a slow authenticator loses to
/// the deadline, and its answer is then ignored.
///
/// Implemented for closures `Fn(AuthRequest) -> impl Future<Output = Result<Identity, String>>`.
///
/// ```
/// use std::sync::Arc;
/// use ws_lifecycle::driver::{AuthRequest, UpgradeRequest};
/// use ws_lifecycle::{Authenticator, ConnectionId, Identity, Message};
///
/// /// The first message is `token:<user>`.
/// struct Tokens;
///
/// impl Authenticator for Tokens {
///     async fn authenticate(&self, request: AuthRequest) -> Result<Identity, String> {
///         match request.first_message.as_text().and_then(|t| t.strip_prefix("token:")) {
///             Some(user) => Ok(Identity::user(user)),
///             None => Err("expected token:<user>".into()), // closes with 1008
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let first = |text: &str| {
///     AuthRequest::new(ConnectionId::new(1), Arc::new(UpgradeRequest::default()), Message::text(text))
/// };
/// assert_eq!(Tokens.authenticate(first("token:ada")).await, Ok(Identity::user("ada")));
/// assert!(Tokens.authenticate(first("hello")).await.is_err());
/// # }
/// ```
pub trait Authenticator: Send + Sync + 'static {
    /// Checks `request`. `Err(reason)`: refused (the reason is logged, not sent).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ws_lifecycle::driver::{AuthRequest, UpgradeRequest};
    /// use ws_lifecycle::{Authenticator, ConnectionId, Identity, Message};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // A closure is an authenticator: here, a token in the upgrade request's query.
    /// let by_query = |request: AuthRequest| async move {
    ///     match request.request.query() {
    ///         Some("token=secret") => Ok(Identity::user("ada")),
    ///         _ => Err("bad or missing token".to_owned()),
    ///     }
    /// };
    /// let upgrade = UpgradeRequest::new("/ws?token=secret".parse()?, Default::default());
    /// let request = AuthRequest::new(ConnectionId::new(1), Arc::new(upgrade), Message::text("hi"));
    /// assert_eq!(by_query.authenticate(request).await?.user, "ada");
    /// # Ok(())
    /// # }
    /// ```
    fn authenticate(
        &self,
        request: AuthRequest,
    ) -> impl Future<Output = Result<Identity, String>> + Send;
}

impl<F, Fut> Authenticator for F
where
    F: Fn(AuthRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Identity, String>> + Send,
{
    fn authenticate(
        &self,
        request: AuthRequest,
    ) -> impl Future<Output = Result<Identity, String>> + Send {
        self(request)
    }
}

/// One connection as the handler sees it.
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::{Config, Connection, ConnectionId, Registry, Session};
///
/// let registry = Registry::default();
/// registry.open();
/// let now = Instant::now();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// let _registration = registry.register(&conn, now)?;
/// let session = Session::new(conn.id(), "ada", registry.clone()); // as the driver builds it
/// session.registry.join(session.id, "lobby")?; // what a handler does with it
/// assert_eq!(registry.members("lobby"), [conn.id()]); // clones share one registry
/// assert_eq!(&*session.user, "ada");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Session {
    /// The connection's id.
    pub id: ConnectionId,
    /// The authenticated user.
    pub user: Arc<str>,
    /// The registry the connection is listed in: broadcast, route to a user or a
    /// group, join groups.
    pub registry: Registry,
}

impl Session {
    /// A session, as the driver builds it (for testing a handler).
    pub fn new(id: ConnectionId, user: impl Into<Arc<str>>, registry: Registry) -> Session {
        Session {
            id,
            user: user.into(),
            registry,
        }
    }
}

/// The application's side of a connection. The driver calls, in order:
/// [`on_authenticated`](Handler::on_authenticated) (before `Ready`: what it emits is
/// delivered first, **G2**), then [`on_message`](Handler::on_message) for every
/// message in order — the ones that arrived before `Ready` first — and
/// [`on_close`](Handler::on_close) once. A panic in any of them touches no other
/// connection: in the first two it closes this one with 1011; in `on_close`, which
/// runs once the connection is closed, it is caught and logged.
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
///         let text = format!("{}: {}", session.user, message.as_text().unwrap_or("<binary>"));
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
pub trait Handler: Send + Sync + 'static {
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
    ///         let _ = emitter.emit(Message::text(format!("welcome, {}", session.user)));
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
        session: &Session,
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
        session: &Session,
        sender: &Sender,
        message: Message,
    ) -> impl Future<Output = Result<(), CloseFrame>> + Send;

    /// The connection is closed. Called once, for connections that reached
    /// [`on_authenticated`](Handler::on_authenticated).
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use std::time::Instant;
    /// use ws_lifecycle::{CloseFrame, CloseRecord, Config, Connection, ConnectionId, Handler};
    /// use ws_lifecycle::{Message, Registry, Sender, Session};
    ///
    /// /// Keeps an audit log of who left, and why.
    /// #[derive(Default)]
    /// struct Audit(Mutex<Vec<String>>);
    ///
    /// impl Handler for Audit {
    ///     async fn on_message(&self, _: &Session, _: &Sender, _: Message) -> Result<(), CloseFrame> {
    ///         Ok(())
    ///     }
    ///     async fn on_close(&self, session: &Session, record: &CloseRecord) {
    ///         let cause = record.cause.as_str();
    ///         let line = format!("{} left: {cause} ({})", session.user, record.code());
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
    /// audit.on_close(&session, &closing.close_record().unwrap()).await;
    /// assert_eq!(*audit.0.lock().unwrap(), ["ada left: local (1000)"]);
    /// # Ok(())
    /// # }
    /// ```
    fn on_close(&self, session: &Session, record: &CloseRecord) -> impl Future<Output = ()> + Send {
        let _ = (session, record);
        async {}
    }
}
