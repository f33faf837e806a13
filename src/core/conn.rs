//! The sans-IO connection: the lifecycle plus its queues (to come), and the errors of
//! handing it messages: [`SendError`] and [`InboundError`].

use super::Message;

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

/// Why the driver could not hand an inbound message to the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboundError {
    /// The connection is closing or closed: the application will not read it; stop
    /// reading application data and finish the close.
    #[error("connection is closing or closed: the message cannot be delivered")]
    Closed,
    /// The inbound hold is full while ready: wait with
    /// [`Transport::poll_inbound_room`](crate::handle::Transport::poll_inbound_room), then
    /// hand the message over again.
    #[error("inbound hold is full: wait for room and retry (the message is returned)")]
    Full(Message),
}
