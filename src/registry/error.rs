//! [`RegistryError`]: why a registry refused a connection or a request;
//! [`SendToError`]: why it did not queue a message for one connection.

use serde::{Deserialize, Serialize};

use crate::core::{CloseCode, CrateClose, Message};

crate::core::names::named! {
    /// Why a [`Registry`](crate::registry::Registry) refused a connection or a request. Where the
    /// refusal closed the connection, [`close_code`](Self::close_code) says with what.
    ///
    /// Serde form: the snake-case name, e.g. `"at_capacity"` (**G9**).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::registry::RegistryError;
    /// use ws_lifecycle::{CloseCode, Config, Connection, ConnectionId, Registry};
    ///
    /// let registry = Registry::default();
    /// registry.shutdown(); // draining: admits nothing
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let err = registry.register(&conn, now).unwrap_err();
    /// assert_eq!(err, RegistryError::ShuttingDown);
    /// assert_eq!(err.close_code(), Some(CloseCode::GOING_AWAY)); // `conn` was closed with 1001
    /// assert_eq!(registry.snapshot().totals.refused["shutting_down"], 1); // counted by name (G9)
    /// assert_eq!(RegistryError::NotRegistered.close_code(), None); // a refusal that closes nothing
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
    #[non_exhaustive]
    pub enum RegistryError {
        /// Closed with 1013: the registry is not open yet and its startup policy is
        /// [`Refuse`](crate::registry::StartupPolicy::Refuse) (**G8**). The client should retry.
        #[error(
            "the registry is not open yet (closed with 1013, retry later); call Registry::open once the handlers are in place"
        )]
        NotOpen => "not_open",
        /// Closed with 1013: the registry is not open yet and already holds as many
        /// connections as [`StartupPolicy::Hold`](crate::registry::StartupPolicy::Hold) allows.
        #[error(
            "the registry is not open yet and its startup hold is full (closed with 1013, retry later)"
        )]
        HoldFull => "hold_full",
        /// Closed with 1013: [`RegistryConfig::max_connections`](crate::registry::RegistryConfig::max_connections)
        /// connections are listed.
        #[error("the registry is at its connection cap (closed with 1013, retry later)")]
        AtCapacity => "at_capacity",
        /// Closed with 1008: the user already holds
        /// [`RegistryConfig::max_connections_per_user`](crate::registry::RegistryConfig::max_connections_per_user)
        /// connections.
        #[error("the user holds too many connections (closed with 1008)")]
        UserLimit => "user_limit",
        /// Closed with 1001: the registry is draining.
        #[error("the registry is shutting down (closed with 1001)")]
        ShuttingDown => "shutting_down",
        /// The connection is already closed: there is nothing to list.
        #[error("the connection is already closed: drop it")]
        Closed => "closed",
        /// The connection is already listed in a registry: keep the first registration.
        #[error("the connection is already registered: keep the first registration")]
        AlreadyRegistered => "already_registered",
        /// Another listed connection has the same id: ids must be unique per registry.
        #[error("another listed connection has this id: give each connection a unique ConnectionId")]
        DuplicateId => "duplicate_id",
        /// The connection is not listed in this registry (never registered, or closed).
        #[error("the connection is not listed in this registry (never registered, or closed since)")]
        NotRegistered => "not_registered",
    }
}

impl RegistryError {
    /// The code the connection was closed with, for the refusals that close it.
    pub fn close_code(self) -> Option<CloseCode> {
        self.crate_close().map(CrateClose::code)
    }

    /// The close this refusal raised, for the refusals that close the connection
    /// (from the one table of the crate's own closes).
    pub(crate) const fn crate_close(self) -> Option<CrateClose> {
        match self {
            RegistryError::NotOpen => Some(CrateClose::NotOpen),
            RegistryError::HoldFull => Some(CrateClose::HoldFull),
            RegistryError::AtCapacity => Some(CrateClose::AtCapacity),
            RegistryError::UserLimit => Some(CrateClose::UserLimit),
            RegistryError::ShuttingDown => Some(CrateClose::Shutdown),
            _ => None,
        }
    }
}

/// Why [`Registry::send_to`](crate::registry::Registry::send_to) did not queue its
/// message: the counts a broadcast would have put the connection in
/// ([`BroadcastReport`](crate::registry::BroadcastReport)), and one more for an id
/// that is not listed.
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::registry::SendToErrorKind;
/// use ws_lifecycle::{Config, Connection, ConnectionId, Message, Registry};
///
/// let registry = Registry::default();
/// registry.open();
/// let now = Instant::now();
/// let conn = Connection::new(registry.next_id(), Config::default()).accept(now)?;
/// let _registration = registry.register(&conn, now)?;
/// let err = registry.send_to(conn.id(), Message::text("hi")).unwrap_err();
/// assert_eq!(err.kind, SendToErrorKind::NotReady); // still in its handshake (G7)
/// let err = registry.send_to(ConnectionId::new(999), Message::text("hi")).unwrap_err();
/// assert_eq!(err.kind, SendToErrorKind::NotListed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SendToErrorKind {
    /// No connection with this id is listed: never registered here, or `Closed`
    /// since (**G7**).
    NotListed,
    /// Listed, but not `Ready` (still in its handshake, or held by the startup gate,
    /// **G8**): nothing is routed to it before `Ready` (**G7**).
    NotReady,
    /// Closing: nothing is queued after its Close (**G3**).
    Closing,
    /// `Ready`, but its outbox is full: refused without waiting, and the connection's
    /// [`OverflowPolicy`](crate::core::OverflowPolicy) applied (under
    /// [`OverflowPolicy::Close`](crate::core::OverflowPolicy::Close) it is now closing).
    Full,
}

/// A message [`Registry::send_to`](crate::registry::Registry::send_to) did not queue,
/// handed back with the reason (**G3**: never silently dropped).
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::registry::SendToErrorKind;
/// use ws_lifecycle::{CloseFrame, Config, Connection, Message, Registry};
///
/// let registry = Registry::default();
/// registry.open();
/// let now = Instant::now();
/// let conn = Connection::new(registry.next_id(), Config::default()).accept(now)?;
/// let _registration = registry.register(&conn, now)?;
/// let conn = conn.authenticate(None, now)?.ready(now)?;
/// let id = conn.id();
/// let _closing = conn.close(CloseFrame::normal(), now);
/// let err = registry.send_to(id, Message::text("late")).unwrap_err();
/// assert_eq!(err.kind, SendToErrorKind::Closing);
/// assert_eq!(err.into_message(), Message::text("late")); // handed back, never lost (G3)
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message not sent: {}", match .kind {
    SendToErrorKind::NotListed => "no connection with this id is listed (never registered here, or closed since); the message is returned in the error",
    SendToErrorKind::NotReady => "the connection is not ready yet; send once it is ready (the message is returned in the error)",
    SendToErrorKind::Closing => "the connection is closing or closed; stop sending to it (the message is returned in the error)",
    SendToErrorKind::Full => "the outbox is full because the peer reads slowly; retry later, drop the message or close the connection (the message is returned in the error)",
})]
#[non_exhaustive]
pub struct SendToError {
    /// Why.
    pub kind: SendToErrorKind,
    /// The message, returned to the caller.
    pub message: Message,
}

impl SendToError {
    pub(crate) fn new(kind: SendToErrorKind, message: Message) -> SendToError {
        SendToError { kind, message }
    }

    /// Takes the message back (**G3**).
    ///
    /// ```
    /// use ws_lifecycle::{ConnectionId, Message, Registry};
    ///
    /// let registry = Registry::default();
    /// let err = registry.send_to(ConnectionId::new(7), Message::text("hi")).unwrap_err();
    /// let message = err.into_message(); // to retry, or to send elsewhere
    /// assert_eq!(message, Message::text("hi"));
    /// ```
    pub fn into_message(self) -> Message {
        self.message
    }
}
