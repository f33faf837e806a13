//! Authentication: when the client's credential arrives, what a refusal looks like,
//! and what a success carries (the user, the credential's expiry, the application's
//! own per-connection state, the chosen subprotocol). The three modes are in
//! [`Authenticator`]'s docs.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::StatusCode;

use crate::core::{ConnectionId, Message};

use super::UpgradeRequest;

/// A successful authentication: who the client is, until when, and what the
/// application keeps for the connection (`S`, handed to every [`Handler`](super::Handler)
/// call through [`Session::state`](super::Session::state)).
///
/// ```
/// use std::time::{Duration, Instant};
/// use ws_lifecycle::Identity;
///
/// let forever = Identity::user("ada");
/// assert_eq!((forever.user.as_deref(), forever.expires_at), (Some("ada"), None));
/// let hour = Identity::user("ada").expiring_at(Instant::now() + Duration::from_secs(3600));
/// assert!(hour.expires_at.is_some()); // closed with 1008 when it lapses (G5)
/// let with_room = Identity::user("ada").with_state(String::from("lobby")); // Identity<String>
/// assert_eq!(with_room.state, "lobby");
/// assert_eq!(Identity::anonymous().user, None); // listed under no user
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identity<S = ()> {
    /// The user the connection is listed under in the registry
    /// ([`Registry::send_to_user`](crate::registry::Registry::send_to_user)); `None`
    /// for an anonymous client, which is listed under no user.
    pub user: Option<String>,
    /// When the credential lapses, if it does: the connection is then closed with
    /// 1008 (**G5**). An instant on the driver's clock (tokio's): build it with
    /// [`expiring_in`](Identity::expiring_in) or
    /// [`expiring_at_system`](Identity::expiring_at_system) rather than from
    /// `std::time::Instant::now()`, which a paused test clock does not move. A handler that receives a fresh credential moves it with
    /// [`Sender::reauthenticate`](crate::handle::Sender::reauthenticate).
    pub expires_at: Option<Instant>,
    /// The application's own value for this connection.
    pub state: S,
    /// At the upgrade: the subprotocol to answer with, one the client offered (see
    /// [`UpgradeRequest::protocols`]; another is dropped, with a warning, since the
    /// client would fail the connection). `None`: the first of
    /// [`DriverConfig::protocols`](super::DriverConfig::protocols) the client
    /// offered, if any.
    pub protocol: Option<String>,
}

impl Identity {
    /// An identity whose credential does not expire, with no state of its own.
    pub fn user(user: impl Into<String>) -> Identity {
        Identity {
            user: Some(user.into()),
            expires_at: None,
            state: (),
            protocol: None,
        }
    }

    /// An anonymous client: listed under no user (so no per-user cap applies).
    pub fn anonymous() -> Identity {
        Identity {
            user: None,
            expires_at: None,
            state: (),
            protocol: None,
        }
    }
}

impl<S> Identity<S> {
    /// The same identity, with a credential that lapses at `at` (**G5**).
    pub fn expiring_at(self, at: Instant) -> Identity<S> {
        Identity {
            expires_at: Some(at),
            ..self
        }
    }

    /// The same identity, with a credential that lapses `ttl` from now on the
    /// driver's clock (tokio's, so that a paused test clock moves it too), **G5**.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_lifecycle::Identity;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let identity = Identity::user("ada").expiring_in(Duration::from_secs(60));
    /// assert!(identity.expires_at.is_some());
    /// # }
    /// ```
    pub fn expiring_in(self, ttl: Duration) -> Identity<S> {
        let at = super::now().checked_add(ttl);
        Identity {
            expires_at: at,
            ..self
        }
    }

    /// The same identity, with a credential that lapses at a wall-clock time (e.g. a
    /// JWT's `exp`, as `UNIX_EPOCH + Duration::from_secs(exp)`), converted to the
    /// driver's clock; a time already past lapses at once (**G5**).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime, UNIX_EPOCH};
    /// use ws_lifecycle::Identity;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600;
    /// let identity = Identity::user("ada").expiring_at_system(UNIX_EPOCH + Duration::from_secs(exp));
    /// assert!(identity.expires_at.is_some());
    /// # }
    /// ```
    pub fn expiring_at_system(self, at: SystemTime) -> Identity<S> {
        let left = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        self.expiring_in(left)
    }

    /// The same identity carrying `state`, the application's value for this
    /// connection.
    pub fn with_state<T>(self, state: T) -> Identity<T> {
        Identity {
            user: self.user,
            expires_at: self.expires_at,
            state,
            protocol: self.protocol,
        }
    }

    /// The same identity, answering the upgrade with this subprotocol (it should be
    /// one the client offered).
    pub fn selecting_protocol(self, protocol: impl Into<String>) -> Identity<S> {
        Identity {
            protocol: Some(protocol.into()),
            ..self
        }
    }
}

/// Why a client was refused. At the upgrade it is the HTTP response (its status,
/// and its reason as a `text/plain` body: the client sees it, so keep secrets out);
/// after the upgrade it closes the connection with 1008 and the reason is logged, not
/// sent.
///
/// A `String` or `&str` converts to a 401, so a closure may answer `Err("…")`.
///
/// ```
/// use http::StatusCode;
/// use ws_lifecycle::driver::Refusal;
///
/// let missing = Refusal::from("missing token");
/// assert_eq!((missing.status(), missing.reason()), (StatusCode::UNAUTHORIZED, "missing token"));
/// assert_eq!(Refusal::forbidden("banned").status(), StatusCode::FORBIDDEN);
/// let busy = Refusal::with_status(StatusCode::SERVICE_UNAVAILABLE, "try later");
/// assert_eq!(busy.to_string(), "503 Service Unavailable: try later");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    status: StatusCode,
    reason: String,
}

impl Refusal {
    /// 401: no credential, or one that does not check out.
    pub fn unauthorized(reason: impl Into<String>) -> Refusal {
        Refusal::with_status(StatusCode::UNAUTHORIZED, reason)
    }

    /// 403: a valid credential that does not allow this.
    pub fn forbidden(reason: impl Into<String>) -> Refusal {
        Refusal::with_status(StatusCode::FORBIDDEN, reason)
    }

    /// Any status (a 4xx or 5xx; a status below 400 is answered as 403).
    pub fn with_status(status: StatusCode, reason: impl Into<String>) -> Refusal {
        let status = if status.is_client_error() || status.is_server_error() {
            status
        } else {
            StatusCode::FORBIDDEN
        };
        Refusal {
            status,
            reason: reason.into(),
        }
    }

    /// The HTTP status of the refusal at the upgrade.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The reason given.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.reason)
    }
}

impl std::error::Error for Refusal {}

impl From<String> for Refusal {
    fn from(reason: String) -> Refusal {
        Refusal::unauthorized(reason)
    }
}

impl From<&str> for Refusal {
    fn from(reason: &str) -> Refusal {
        Refusal::unauthorized(reason)
    }
}

/// What [`Authenticator::at_upgrade`] decided, before the `101 Switching Protocols`.
///
/// ```
/// use ws_lifecycle::Identity;
/// use ws_lifecycle::driver::{Refusal, UpgradeVerdict};
///
/// let verdicts: [UpgradeVerdict; 3] = [
///     UpgradeVerdict::Accept(Identity::user("ada")), // Authenticated at once, no message needed
///     UpgradeVerdict::Refuse(Refusal::unauthorized("bad token")), // HTTP 401, no WebSocket
///     UpgradeVerdict::AwaitFirstMessage, // the first message decides
/// ];
/// assert!(matches!(verdicts[1], UpgradeVerdict::Refuse(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeVerdict<S = ()> {
    /// Authenticated: the connection starts `Authenticated` and becomes `Ready`
    /// through the usual gate (**G2**, **G8**) without waiting for any message.
    Accept(Identity<S>),
    /// Refused: the upgrade is answered with this HTTP response, no WebSocket opens.
    Refuse(Refusal),
    /// No verdict yet: the WebSocket opens and the client's first message goes to
    /// [`Authenticator::authenticate`], within the readiness deadline (**G5**).
    AwaitFirstMessage,
}

/// What the authenticator sees in the first-message mode: the upgrade request and
/// the client's first message.
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
    /// The upgrade request: method, URI, headers, peer address.
    pub request: Arc<UpgradeRequest>,
    /// The first message the client sent.
    pub first_message: Message,
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

/// Checks a client's credential, at the upgrade, in its first message, or both.
///
/// Three modes, chosen by the [`Authenticator`] a [`Service`](super::Service) is
/// built with:
///
/// | mode | credential | a refusal is | build it with |
/// |---|---|---|---|
/// | at the upgrade | the HTTP request (URI, headers, cookies, subprotocol, peer) | an HTTP response (401, 403, …), no WebSocket | [`AtUpgrade`] or [`Authenticator::at_upgrade`] |
/// | by first message | the client's first WebSocket message | Close 1008 | a closure, or [`Authenticator::authenticate`] |
/// | none | — | — | [`Public`] (or [`Service::public`](crate::driver::Service::public)) |
///
/// An authenticator may mix the first two: [`at_upgrade`](Authenticator::at_upgrade)
/// answers [`UpgradeVerdict::AwaitFirstMessage`] for requests that carry no
/// credential, and the first message decides.
///
/// A closure `Fn(AuthRequest) -> impl Future<Output = Result<Identity<S>, E>>` (with
/// `E: Into<Refusal>`, e.g. `String`) is a first-message authenticator; wrap a
/// closure over the upgrade request in [`AtUpgrade`] for the upgrade-time mode.
///
/// Both checks are bounded: at the upgrade by the connection's readiness timeout (a
/// slow check is answered 503), after it by the readiness deadline (**G5**: a slow
/// authenticator loses to the deadline, and its answer is then ignored).
///
/// A real server whose authenticator reads a session cookie at the upgrade (a bad
/// one is answered 401 before any WebSocket opens), falls back to a token in the
/// first message for clients without one, and keeps the user's plan as the
/// handler's per-connection state; it broadcasts, and drains at shutdown:
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use futures_util::{SinkExt, StreamExt};
/// use http::header::COOKIE;
/// use tokio_tungstenite::tungstenite::{Message as WsMessage, client::IntoClientRequest};
/// use ws_lifecycle::driver::{AuthRequest, Refusal, UpgradeRequest, UpgradeVerdict};
/// use ws_lifecycle::{Authenticator, CloseFrame, DriverConfig, Handler, Identity, Message};
/// use ws_lifecycle::{Registry, Sender, Service, Session};
///
/// #[derive(Debug, PartialEq)]
/// enum Plan { Free, Pro }
///
/// struct Accounts;
///
/// impl Accounts {
///     fn check(&self, token: &str) -> Result<Identity<Plan>, Refusal> {
///         match token {
///             "pro-ada" => Ok(Identity::user("ada").with_state(Plan::Pro)),
///             "free-bob" => Ok(Identity::user("bob").with_state(Plan::Free)),
///             _ => Err(Refusal::unauthorized("unknown token")),
///         }
///     }
/// }
///
/// impl Authenticator for Accounts {
///     type State = Plan;
///
///     async fn at_upgrade(&self, request: Arc<UpgradeRequest>) -> UpgradeVerdict<Plan> {
///         let cookie = request.headers.get(COOKIE).and_then(|v| v.to_str().ok());
///         match cookie.and_then(|c| c.strip_prefix("session=")) {
///             Some(token) => match self.check(token) {
///                 Ok(identity) => UpgradeVerdict::Accept(identity),
///                 Err(refusal) => UpgradeVerdict::Refuse(refusal), // HTTP 401
///             },
///             None => UpgradeVerdict::AwaitFirstMessage, // no cookie: a token message
///         }
///     }
///
///     async fn authenticate(&self, request: AuthRequest) -> Result<Identity<Plan>, Refusal> {
///         self.check(request.first_message.as_text().unwrap_or_default()) // Err: Close 1008
///     }
/// }
///
/// /// Pro users' messages go to everyone; free users' only echo back.
/// struct Plans;
///
/// impl Handler<Plan> for Plans {
///     async fn on_message(&self, session: &Session<Plan>, sender: &Sender, message: Message) -> Result<(), CloseFrame> {
///         let text = format!("{}: {}", session.user().unwrap_or("?"), message.as_text().unwrap_or(""));
///         match session.state {
///             Plan::Pro => drop(session.registry.broadcast(Message::text(text))),
///             Plan::Free => drop(sender.send(Message::text(text))),
///         }
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = Registry::default();
/// let service = Arc::new(Service::new(registry.clone(), DriverConfig::default(), Accounts, Plans));
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
/// let with_cookie = |cookie: &'static str| -> Result<_, Box<dyn std::error::Error>> {
///     let mut request = format!("ws://{addr}/ws").into_client_request()?;
///     request.headers_mut().insert(COOKIE, cookie.parse()?);
///     Ok(request)
/// };
///
/// let refused = tokio_tungstenite::connect_async(with_cookie("session=stolen")?).await;
/// assert!(matches!(refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 401));
/// let (mut ada, _) = tokio_tungstenite::connect_async(with_cookie("session=pro-ada")?).await?; // Pro
/// let (mut bob, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await?;
/// bob.send(WsMessage::text("free-bob")).await?; // no cookie: the first message decides
/// bob.send(WsMessage::text("hello?")).await?;
/// assert_eq!(bob.next().await.transpose()?, Some(WsMessage::text("bob: hello?"))); // Free: echoed
/// ada.send(WsMessage::text("hi all")).await?;
/// assert_eq!(bob.next().await.transpose()?, Some(WsMessage::text("ada: hi all"))); // Pro: to everyone
/// // Shutdown: 1001 to both; they answer it (they read on), so none is dropped.
/// let deadline = tokio::time::sleep(Duration::from_secs(5));
/// let (report, ..) = tokio::join!(
///     registry.drain(deadline),
///     async { while let Some(Ok(_)) = ada.next().await {} },
///     async { while let Some(Ok(_)) = bob.next().await {} },
/// );
/// assert_eq!((report.closing, report.dropped), (2, 0));
/// # Ok(())
/// # }
/// ```
pub trait Authenticator: Send + Sync {
    /// The application's per-connection value, carried by [`Identity::state`] and
    /// handed to the handler in [`Session::state`](super::Session::state).
    type State: Send + Sync + 'static;

    /// Checks the upgrade request before the `101 Switching Protocols`. Default:
    /// [`UpgradeVerdict::AwaitFirstMessage`] (the first-message mode).
    fn at_upgrade(
        &self,
        request: Arc<UpgradeRequest>,
    ) -> impl Future<Output = UpgradeVerdict<Self::State>> + Send {
        let _ = request;
        async { UpgradeVerdict::AwaitFirstMessage }
    }

    /// Checks the client's first message (only called when
    /// [`at_upgrade`](Self::at_upgrade) answered
    /// [`AwaitFirstMessage`](UpgradeVerdict::AwaitFirstMessage)). `Err`: closed with
    /// 1008, the reason logged, not sent. Default: refuses every message.
    fn authenticate(
        &self,
        request: AuthRequest,
    ) -> impl Future<Output = Result<Identity<Self::State>, Refusal>> + Send {
        let _ = request;
        async {
            Err(Refusal::unauthorized(
                "this endpoint does not authenticate by message",
            ))
        }
    }
}

impl<F, Fut, S, E> Authenticator for F
where
    F: Fn(AuthRequest) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Identity<S>, E>> + Send,
    S: Send + Sync + 'static,
    E: Into<Refusal>,
{
    type State = S;

    fn authenticate(
        &self,
        request: AuthRequest,
    ) -> impl Future<Output = Result<Identity<S>, Refusal>> + Send {
        // The future owns only the closure's future, not `&self`: an `async fn` here
        // would borrow `self`, and its `Send` could no longer be proved for every
        // lifetime of that borrow (rustc #110338) — `Service::admit` and `run` would
        // not be `Send` for a boxed authenticator.
        let checking = self(request);
        async move { checking.await.map_err(Into::into) }
    }
}

/// The upgrade-time mode from a closure over the upgrade request: `Ok` accepts, `Err`
/// answers the upgrade with the refusal's HTTP status. No message is needed.
///
/// ```
/// use std::sync::Arc;
/// use ws_lifecycle::driver::{AtUpgrade, UpgradeRequest, UpgradeVerdict};
/// use ws_lifecycle::{Authenticator, Identity};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let by_query = AtUpgrade(|request: Arc<UpgradeRequest>| async move {
///     match request.query_param("token").as_deref() {
///         Some("s3cret") => Ok(Identity::user("ada")),
///         _ => Err("bad or missing token"), // HTTP 401
///     }
/// });
/// let good = Arc::new(UpgradeRequest::new("/ws?token=s3cret".parse()?, Default::default()));
/// assert!(matches!(by_query.at_upgrade(good).await, UpgradeVerdict::Accept(_)));
/// let bad = Arc::new(UpgradeRequest::new("/ws?token=guess".parse()?, Default::default()));
/// assert!(matches!(by_query.at_upgrade(bad).await, UpgradeVerdict::Refuse(r) if r.status() == 401));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AtUpgrade<F>(pub F);

impl<F, Fut, S, E> Authenticator for AtUpgrade<F>
where
    F: Fn(Arc<UpgradeRequest>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Identity<S>, E>> + Send,
    S: Send + Sync + 'static,
    E: Into<Refusal>,
{
    type State = S;

    fn at_upgrade(
        &self,
        request: Arc<UpgradeRequest>,
    ) -> impl Future<Output = UpgradeVerdict<S>> + Send {
        // Owns the closure's future, not `&self` (see the closure impl above).
        let checking = (self.0)(request);
        async move {
            match checking.await {
                Ok(identity) => UpgradeVerdict::Accept(identity),
                Err(refusal) => UpgradeVerdict::Refuse(refusal.into()),
            }
        }
    }
}

/// No authentication, for public endpoints: every client is accepted at the upgrade
/// as [`Identity::anonymous`].
///
/// ```
/// use std::sync::Arc;
/// use ws_lifecycle::driver::{Public, UpgradeRequest, UpgradeVerdict};
/// use ws_lifecycle::{Authenticator, Identity};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let verdict = Public.at_upgrade(Arc::new(UpgradeRequest::default())).await;
/// assert_eq!(verdict, UpgradeVerdict::Accept(Identity::anonymous()));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Public;

impl Authenticator for Public {
    type State = ();

    async fn at_upgrade(&self, _: Arc<UpgradeRequest>) -> UpgradeVerdict {
        UpgradeVerdict::Accept(Identity::anonymous())
    }
}
