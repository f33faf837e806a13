//! [`Message`] and [`Frame`]: what the application sends and what the transport writes.

use std::sync::Arc;

use crate::core::CloseFrame;

/// An application message. Cheap to clone (the payload is shared), so one message
/// can go to many connections.
///
/// ```
/// use ws_lifecycle::Message;
///
/// let hello = Message::text("hello");
/// assert_eq!(hello.as_text(), Some("hello"));
/// assert_eq!(hello.len(), 5);
/// let bytes = Message::binary(vec![0xde, 0xad]);
/// assert_eq!((bytes.as_text(), bytes.len()), (None, 2));
/// // A clone shares the payload: one message, many connections, one allocation.
/// let (Message::Text(a), Message::Text(b)) = (&hello, &hello.clone()) else { unreachable!() };
/// assert!(std::sync::Arc::ptr_eq(a, b));
/// ```
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
/// driver's `WireFrame` (feature `tokio`), which may grow. A driver's
/// `match` over `Frame` stays complete across releases.
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Frame, Message};
///
/// let now = Instant::now();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// let mut conn = conn.authenticate(None, now)?.ready(now)?;
/// conn.send(Message::text("bye"))?;
/// let mut closing = conn.close(CloseFrame::normal(), now);
/// let mut written = Vec::new();
/// while let Some(frame) = closing.poll_transmit(now) {
///     written.push(match frame { // complete without a `_` arm
///         Frame::Message(message) => format!("data {}", message.as_text().unwrap_or("<binary>")),
///         Frame::Close(frame) => format!("close {}", frame.map_or("".into(), |f| f.to_string())),
///     });
/// }
/// assert_eq!(written, ["data bye", "close 1000"]); // our Close last (G3)
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// An application message.
    Message(Message),
    /// Our Close frame (`None`: an empty Close body). Always the last frame (**G3**).
    Close(Option<CloseFrame>),
}
