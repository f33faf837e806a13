//! [`RegistryError`]: why a registry refused a connection or a request.

use serde::{Deserialize, Serialize};

/// Why a [`Registry`](crate::registry::Registry) refused a connection or a request. Where the
/// refusal closed the connection, [`close_code`](Self::close_code) says with what.
///
/// Serde form: the snake-case name, e.g. `"at_capacity"` (**G9**).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RegistryError {
    /// Closed with 1013: the registry is not open yet and its startup policy is
    /// [`Refuse`](crate::registry::StartupPolicy::Refuse) (**G8**). The client should retry.
    #[error(
        "the registry is not open yet (closed with 1013, retry later); call Registry::open once the handlers are in place"
    )]
    NotOpen,
    /// Closed with 1013: the registry is not open yet and already holds as many
    /// connections as [`StartupPolicy::Hold`](crate::registry::StartupPolicy::Hold) allows.
    #[error(
        "the registry is not open yet and its startup hold is full (closed with 1013, retry later)"
    )]
    HoldFull,
    /// Closed with 1013: [`RegistryConfig::max_connections`](crate::registry::RegistryConfig::max_connections)
    /// connections are listed.
    #[error("the registry is at its connection cap (closed with 1013, retry later)")]
    AtCapacity,
    /// Closed with 1008: the user already holds
    /// [`RegistryConfig::max_connections_per_user`](crate::registry::RegistryConfig::max_connections_per_user)
    /// connections.
    #[error("the user holds too many connections (closed with 1008)")]
    UserLimit,
    /// Closed with 1001: the registry is draining.
    #[error("the registry is shutting down (closed with 1001)")]
    ShuttingDown,
    /// The connection is already closed: there is nothing to list.
    #[error("the connection is already closed: drop it")]
    Closed,
    /// The connection is already listed in a registry: keep the first registration.
    #[error("the connection is already registered: keep the first registration")]
    AlreadyRegistered,
    /// Another listed connection has the same id: ids must be unique per registry.
    #[error("another listed connection has this id: give each connection a unique ConnectionId")]
    DuplicateId,
    /// The connection is not listed in this registry (never registered, or closed).
    #[error("the connection is not listed in this registry (never registered, or closed since)")]
    NotRegistered,
}

impl RegistryError {
    /// The snake-case name (the serde form).
    pub const fn name(self) -> &'static str {
        match self {
            RegistryError::NotOpen => "not_open",
            RegistryError::HoldFull => "hold_full",
            RegistryError::AtCapacity => "at_capacity",
            RegistryError::UserLimit => "user_limit",
            RegistryError::ShuttingDown => "shutting_down",
            RegistryError::Closed => "closed",
            RegistryError::AlreadyRegistered => "already_registered",
            RegistryError::DuplicateId => "duplicate_id",
            RegistryError::NotRegistered => "not_registered",
        }
    }

    /// The code the connection was closed with, for the refusals that close it.
    pub fn close_code(self) -> Option<crate::core::CloseCode> {
        self.close_frame().map(|frame| frame.code())
    }

    pub(crate) fn close_frame(self) -> Option<crate::core::CloseFrame> {
        use crate::core::{CloseCode, CloseFrame};
        let (code, reason) = match self {
            RegistryError::NotOpen | RegistryError::HoldFull => {
                (CloseCode::TRY_AGAIN_LATER, "server starting")
            }
            RegistryError::AtCapacity => (CloseCode::TRY_AGAIN_LATER, "server at capacity"),
            RegistryError::UserLimit => (CloseCode::POLICY_VIOLATION, "too many connections"),
            RegistryError::ShuttingDown => (CloseCode::GOING_AWAY, "server shutting down"),
            _ => return None,
        };
        Some(CloseFrame::internal(code, reason))
    }
}
