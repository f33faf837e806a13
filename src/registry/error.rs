//! [`RegistryError`]: why a registry refused a connection or a request.

use serde::{Deserialize, Serialize};

use crate::core::{CloseCode, CrateClose};

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
