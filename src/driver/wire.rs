//! [`WireFrame`]: what the driver exchanges with a WebSocket library, independent of
//! which one.

use crate::core::{CloseFrame, Message};

/// One WebSocket frame (or reassembled message) as the driver reads and writes it.
/// The adapters convert their library's message type to and from this.
///
/// ```
/// use ws_lifecycle::driver::WireFrame;
/// use ws_lifecycle::{CloseFrame, Message};
///
/// let read = [
///     WireFrame::Message(Message::text("hi")),
///     WireFrame::Ping(b"are you there".to_vec()),
///     WireFrame::Close(Some(CloseFrame::normal())),
/// ];
/// let kinds = read.map(|frame| match frame {
///     WireFrame::Message(_) => "data",
///     WireFrame::Ping(_) | WireFrame::Pong(_) => "control",
///     WireFrame::Close(_) => "close",
///     _ => "other", // `#[non_exhaustive]`: more frame kinds may come
/// });
/// assert_eq!(kinds, ["data", "control", "close"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireFrame {
    /// A text or binary message.
    Message(Message),
    /// A Ping with its payload.
    Ping(Vec<u8>),
    /// A Pong with its payload.
    Pong(Vec<u8>),
    /// A Close, with its status and reason if it had any.
    Close(Option<CloseFrame>),
}
