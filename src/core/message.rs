//! [`Message`] and [`Frame`]: what the application sends and what the transport writes.

use std::sync::Arc;

use crate::core::CloseFrame;

/// An application message. Cheap to clone (the payload is shared), so one message
/// can go to many connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// A UTF-8 text message.
    Text(Arc<str>),
    /// A binary message.
    Binary(Arc<[u8]>),
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<Arc<str>>) -> Message {
        Message::Text(text.into())
    }

    /// A binary message.
    pub fn binary(bytes: impl Into<Arc<[u8]>>) -> Message {
        Message::Binary(bytes.into())
    }

    /// The text, for a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(text) => Some(text),
            Message::Binary(_) => None,
        }
    }

    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Message::Text(text) => text.len(),
            Message::Binary(bytes) => bytes.len(),
        }
    }

    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A frame for the transport to write, from `poll_transmit`.
///
/// Deliberately exhaustive (not `#[non_exhaustive]`): the core yields application
/// messages and our Close, nothing else — control frames (Ping, Pong) belong to the
/// driver's [`WireFrame`](crate::driver::WireFrame), which may grow. A driver's
/// `match` over `Frame` stays complete across releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// An application message.
    Message(Message),
    /// Our Close frame (`None`: an empty Close body). Always the last frame (**G3**).
    Close(Option<CloseFrame>),
}
