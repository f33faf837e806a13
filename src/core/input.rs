//! [`Input`]: everything that can happen to a connection, as the machine sees it.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::core::CloseFrame;

/// An input to the lifecycle machine.
///
/// The typed [`Connection`](crate::handle::Connection) API and a driver produce these; code that
/// drives a [`Lifecycle`](crate::core::Lifecycle) directly passes them to
/// [`Lifecycle::handle`](crate::core::Lifecycle::handle). Every (state, input) pair has a
/// defined outcome — see [`transition_table`](crate::core::transition_table) and
/// [`docs/state-diagram.md`].
///
/// [`docs/state-diagram.md`]: https://github.com/ws-lifecycle/ws-lifecycle/blob/main/docs/state-diagram.md
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::{Input, Lifecycle, RejectReason};
/// use ws_lifecycle::{Config, ConnectionId, Phase};
///
/// let now = Instant::now();
/// let mut lc = Lifecycle::new(ConnectionId::new(1), Config::default());
/// for input in [Input::Accept, Input::AuthSucceeded { expires_at: None }, Input::ServicesReady] {
///     lc.handle(input, now)?;
/// }
/// assert_eq!(lc.phase(), Phase::Ready);
/// // A second accept has its defined outcome too: refused, and nothing changes.
/// let rejected = lc.handle(Input::Accept, now).unwrap_err();
/// assert_eq!(rejected.reason, RejectReason::AlreadyDone);
/// assert_eq!(lc.phase(), Phase::Ready);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// The WebSocket handshake was accepted (the upgrade response is being sent).
    Accept,
    /// The peer proved who it is. `expires_at` is when its credential lapses, if it
    /// does. While `Ready` (or `Authenticated`) this is a re-authentication: the
    /// credential's expiry is replaced and the phase does not change.
    AuthSucceeded {
        /// When the credential expires; `None` for a credential that does not.
        expires_at: Option<Instant>,
    },
    /// The peer's credential was refused: the connection closes with 1008.
    AuthFailed,
    /// The application's services for this connection are ready: messages may flow.
    ServicesReady,
    /// The application asks to close with this frame (the first close wins — **G4**).
    Close(CloseFrame),
    /// The peer's Close frame arrived (`None`: it carried no status code). While we
    /// wait for the answer to our own Close this is the *close acknowledgement*.
    PeerClose(Option<CloseFrame>),
    /// Our Close frame was handed to the transport.
    CloseSent,
    /// The close handshake did not finish in time: the transport is dropped (**G5**).
    CloseTimeout,
    /// The connection was not `Ready` by its readiness deadline: close 1008 (**G5**).
    ReadinessDeadline,
    /// The credential of an authenticated connection expired: close 1008 (**G5**).
    CredentialExpired,
    /// The transport ended without a close handshake (EOF or an I/O error).
    TransportLost(TransportLoss),
}

/// How the transport was lost.
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::{CloseCause, CloseEnd, TransportLoss};
/// use ws_lifecycle::{CloseCode, Config, Connection, ConnectionId};
///
/// let now = Instant::now();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// conn.transport().handle_transport_lost(TransportLoss::Eof, now)?; // TCP ended, no Close
/// let record = conn.close_record().unwrap();
/// assert_eq!(record.cause, CloseCause::TransportLost(TransportLoss::Eof));
/// assert_eq!(record.end, Some(CloseEnd::TransportLost(TransportLoss::Eof)));
/// assert_eq!(record.code(), CloseCode::ABNORMAL); // 1006: no Close from the peer
/// assert_eq!(serde_json::to_string(&TransportLoss::Eof)?, r#""eof""#); // G9
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TransportLoss {
    /// The peer closed the TCP stream without a Close frame.
    Eof,
    /// A read or write failed.
    Error,
    /// Our side let go of the connection before its close finished: its
    /// [`Registration`](crate::registry::Registration) was dropped while it was open, or a
    /// registry drain's deadline passed (**G7**, **G8**).
    Dropped,
}

crate::core::names::named! {
    /// The kind of an [`Input`], without its payload: the columns of the transition table.
    ///
    /// Serde form: the snake-case name, e.g. `"peer_close"` (**G9**).
    ///
    /// ```
    /// use ws_lifecycle::core::{Input, InputKind};
    ///
    /// assert_eq!(Input::PeerClose(None).kind(), InputKind::PeerClose);
    /// assert_eq!(InputKind::PeerClose.as_str(), "peer_close");
    /// assert_eq!(serde_json::to_string(&InputKind::PeerClose)?, r#""peer_close""#); // G9
    /// assert_eq!(InputKind::ALL.len(), 11); // the table's columns
    /// assert!(InputKind::ALL.iter().all(|kind| kind.example().kind() == *kind));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[non_exhaustive]
    pub enum InputKind {
        /// [`Input::Accept`].
        Accept => "accept",
        /// [`Input::AuthSucceeded`].
        AuthSucceeded => "auth_succeeded",
        /// [`Input::AuthFailed`].
        AuthFailed => "auth_failed",
        /// [`Input::ServicesReady`].
        ServicesReady => "services_ready",
        /// [`Input::Close`].
        Close => "close",
        /// [`Input::PeerClose`].
        PeerClose => "peer_close",
        /// [`Input::CloseSent`].
        CloseSent => "close_sent",
        /// [`Input::CloseTimeout`].
        CloseTimeout => "close_timeout",
        /// [`Input::ReadinessDeadline`].
        ReadinessDeadline => "readiness_deadline",
        /// [`Input::CredentialExpired`].
        CredentialExpired => "credential_expired",
        /// [`Input::TransportLost`].
        TransportLost => "transport_lost",
    }
}

impl InputKind {
    /// Every input kind, in table order.
    pub const ALL: [InputKind; 11] = [
        InputKind::Accept,
        InputKind::AuthSucceeded,
        InputKind::AuthFailed,
        InputKind::ServicesReady,
        InputKind::Close,
        InputKind::PeerClose,
        InputKind::CloseSent,
        InputKind::CloseTimeout,
        InputKind::ReadinessDeadline,
        InputKind::CredentialExpired,
        InputKind::TransportLost,
    ];
}

impl std::fmt::Display for InputKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl Input {
    /// The kind of this input.
    pub fn kind(&self) -> InputKind {
        match self {
            Input::Accept => InputKind::Accept,
            Input::AuthSucceeded { .. } => InputKind::AuthSucceeded,
            Input::AuthFailed => InputKind::AuthFailed,
            Input::ServicesReady => InputKind::ServicesReady,
            Input::Close(_) => InputKind::Close,
            Input::PeerClose(_) => InputKind::PeerClose,
            Input::CloseSent => InputKind::CloseSent,
            Input::CloseTimeout => InputKind::CloseTimeout,
            Input::ReadinessDeadline => InputKind::ReadinessDeadline,
            Input::CredentialExpired => InputKind::CredentialExpired,
            Input::TransportLost(_) => InputKind::TransportLost,
        }
    }
}
