//! Errors, one type per concern. Each says what the caller can do next.

use serde::{Deserialize, Serialize};

use crate::state::Closing;
use crate::{CloseRecord, Connection, InputKind, MachineState, Message, Phase};

/// Why the machine refused an input.
///
/// Serde form: the snake-case name, e.g. `"not_yet"` (**G9**).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectReason {
    /// The input comes too early (authentication before accept, ready before
    /// authentication): perform the missing step first.
    NotYet,
    /// That step already happened (a second accept or ready); nothing to do.
    AlreadyDone,
    /// Peer frames cannot arrive before the handshake is accepted: the driver fed an
    /// input for a connection that is not open.
    NotOpen,
    /// No Close frame of ours is owed: `CloseSent` was reported without one.
    NoCloseOwed,
    /// The connection is closing: it will not open further. Finish the close
    /// handshake and drop it.
    Closing,
    /// The connection is closed: drop it.
    Closed,
    /// No handler took the input. This is a bug in ws-lifecycle; please report it.
    Unhandled,
}

impl RejectReason {
    /// What the reason means and what to do next, in a sentence.
    pub const fn advice(self) -> &'static str {
        match self {
            RejectReason::NotYet => "too early: perform the missing lifecycle step first",
            RejectReason::AlreadyDone => "that step already happened: nothing to do",
            RejectReason::NotOpen => {
                "the handshake is not accepted, so no peer frame can arrive: the driver fed the wrong connection"
            }
            RejectReason::NoCloseOwed => {
                "no Close frame of ours is owed: do not report one as sent"
            }
            RejectReason::Closing => {
                "the connection is closing: finish the close handshake and drop it"
            }
            RejectReason::Closed => "the connection is closed: drop it",
            RejectReason::Unhandled => {
                "no handler took the input: a bug in ws-lifecycle, please report it"
            }
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.advice())
    }
}

/// The machine refused an input; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("input {input} rejected in state {state}: {reason}")]
#[non_exhaustive]
pub struct Rejected {
    /// The state the input arrived in.
    pub state: MachineState,
    /// The refused input.
    pub input: InputKind,
    /// Why; its documentation says what to do next.
    pub reason: RejectReason,
}

/// Why the send gate is shut ([`Lifecycle::check_send`](crate::Lifecycle::check_send)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendRefused {
    /// Not `Ready` yet (**G1**/**G2**): wait until the connection is ready.
    #[error("connection is {0}, not ready: nothing may be sent before ready")]
    NotReady(Phase),
    /// A close was requested, received or forced (**G3**): stop sending.
    #[error("connection is closing or closed: nothing may follow the Close frame")]
    Closed,
}

/// Why a message was not sent. The message itself is in [`SendError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendErrorKind {
    /// The connection is closing or closed (**G3**): stop sending to it.
    Closed,
    /// The outbox is full: the peer is not reading fast enough. Retry later, drop the
    /// message, or close the connection.
    Full,
}

/// A message that was not sent, handed back with the reason (**G3**: never silently
/// dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message not sent: {}", match .kind {
    SendErrorKind::Closed => "the connection is closing or closed; stop sending to it (the message is returned in the error)",
    SendErrorKind::Full => "the outbox is full because the peer reads slowly; retry later, drop the message or close the connection (the message is returned in the error)",
})]
#[non_exhaustive]
pub struct SendError {
    /// Why.
    pub kind: SendErrorKind,
    /// The message, returned to the caller.
    pub message: Message,
}

impl SendError {
    /// Takes the message back.
    pub fn into_message(self) -> Message {
        self.message
    }
}

/// Why a wait with a timeout ended without what it waited for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The connection closed first; here is how. Stop waiting for it.
    #[error("the connection closed first ({:?})", .0.cause)]
    Closed(CloseRecord),
    /// The time input passed the deadline first. Wait again, or give up on the
    /// connection (close it).
    #[error("the deadline passed before the connection got there")]
    TimedOut,
}

/// Why the driver could not hand an inbound message to the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboundError {
    /// The connection is closing or closed: the application will not read it; stop
    /// reading application data and finish the close.
    #[error("connection is closing or closed: the message cannot be delivered")]
    Closed,
    /// The inbound hold is full while ready: wait with
    /// [`Transport::poll_inbound_room`](crate::Transport::poll_inbound_room), then
    /// hand the message over again.
    #[error("inbound hold is full: wait for room and retry (the message is returned)")]
    Full(Message),
}

/// A type-state transition failed because the connection is closing or closed: the
/// peer left, a deadline fired, or a close was requested first.
///
/// It carries the connection in its closing state, so the close handshake can still
/// be driven to the end (`poll_transmit`, `handle_*`); [`Gone::record`] says why.
#[derive(Debug, thiserror::Error)]
#[error(
    "connection {} is gone ({}); take it back with `Gone::into_connection` and drive its close to the end",
    .connection.id(),
    .connection.close_record().map_or("closing".to_owned(), |r| format!("{:?}", r.cause))
)]
#[must_use = "the connection inside still owes its close handshake: call `into_connection` and drive it"]
#[non_exhaustive]
pub struct Gone {
    /// The connection, now closing or closed (boxed: this is the rare path, and it
    /// keeps `Result<Connection<_>, Gone>` small).
    pub connection: Box<Connection<Closing>>,
}

impl Gone {
    /// Takes the closing connection, to drive its close handshake to the end.
    pub fn into_connection(self) -> Connection<Closing> {
        *self.connection
    }

    /// How the connection closed.
    pub fn record(&self) -> Option<CloseRecord> {
        self.connection.close_record()
    }
}

/// Why a [`Registry`](crate::Registry) refused a connection or a request. Where the
/// refusal closed the connection, [`close_code`](Self::close_code) says with what.
///
/// Serde form: the snake-case name, e.g. `"at_capacity"` (**G9**).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RegistryError {
    /// Closed with 1013: the registry is not open yet and its startup policy is
    /// [`Refuse`](crate::StartupPolicy::Refuse) (**G8**). The client should retry.
    #[error(
        "the registry is not open yet (closed with 1013, retry later); call Registry::open once the handlers are in place"
    )]
    NotOpen,
    /// Closed with 1013: the registry is not open yet and already holds as many
    /// connections as [`StartupPolicy::Hold`](crate::StartupPolicy::Hold) allows.
    #[error(
        "the registry is not open yet and its startup hold is full (closed with 1013, retry later)"
    )]
    HoldFull,
    /// Closed with 1013: [`RegistryConfig::max_connections`](crate::RegistryConfig::max_connections)
    /// connections are listed.
    #[error("the registry is at its connection cap (closed with 1013, retry later)")]
    AtCapacity,
    /// Closed with 1008: the user already holds
    /// [`RegistryConfig::max_connections_per_user`](crate::RegistryConfig::max_connections_per_user)
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
    pub fn close_code(self) -> Option<crate::CloseCode> {
        self.close_frame().map(|frame| frame.code())
    }

    pub(crate) fn close_frame(self) -> Option<crate::CloseFrame> {
        use crate::{CloseCode, CloseFrame};
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
