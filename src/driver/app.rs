//! What the application plugs into the driver: an [`Authenticator`] and a [`Handler`].

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use crate::core::{CloseFrame, CloseRecord, ConnectionId, Message};
use crate::handle::{Emitter, Sender};
use crate::registry::Registry;

use super::UpgradeRequest;

/// What the authenticator sees: the upgrade request and the client's first message.
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
pub trait Authenticator: Send + Sync + 'static {
    /// Checks `request`. `Err(reason)`: refused (the reason is logged, not sent).
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
/// [`on_close`](Handler::on_close) once. A panic in any of them closes that
/// connection with 1011 and touches no other.
pub trait Handler: Send + Sync + 'static {
    /// The connection is authenticated and listed under its user, not `Ready` yet:
    /// events emitted here reach the client before anything sent later (**G2**).
    fn on_authenticated(
        &self,
        session: &Session,
        emitter: &Emitter,
    ) -> impl Future<Output = ()> + Send {
        let _ = (session, emitter);
        async {}
    }

    /// A message from the client. `Err(frame)` closes the connection with `frame`.
    fn on_message(
        &self,
        session: &Session,
        sender: &Sender,
        message: Message,
    ) -> impl Future<Output = Result<(), CloseFrame>> + Send;

    /// The connection is closed. Called once, for connections that reached
    /// [`on_authenticated`](Handler::on_authenticated).
    fn on_close(&self, session: &Session, record: &CloseRecord) -> impl Future<Output = ()> + Send {
        let _ = (session, record);
        async {}
    }
}
