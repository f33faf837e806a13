//! [`WireFrame`]: what the driver exchanges with a WebSocket library, independent of
//! which one.

use crate::core::{CloseFrame, CrateClose, Message};

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

/// A socket's error, as the driver reads it: the `E` of the socket passed to
/// [`Service::run`](super::Service::run).
///
/// When a read fails because the peer broke the protocol, RFC 6455 §7.4.1 asks for a
/// Close that says why: [`failure`](Self::failure) names it — 1002
/// ([`CrateClose::ProtocolError`]), 1007 ([`CrateClose::InvalidPayload`]), 1009
/// ([`CrateClose::MessageTooBig`]). The driver then sends that Close, stops reading
/// and ends the transport once it is written; the close is recorded with the row's
/// cause. `None` (the default) is a lost transport (`transport_lost`). The
/// adapters' error types (`tungstenite::Error`, `axum::Error`) classify their
/// library's errors; a socket of your own can use `String`, `std::io::Error` or an
/// error type of its own:
///
/// ```
/// use ws_lifecycle::core::CrateClose;
/// use ws_lifecycle::driver::SocketError;
///
/// #[derive(Debug)]
/// enum MyError { BadFrame, Io }
/// impl std::fmt::Display for MyError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str(match self { MyError::BadFrame => "bad frame", MyError::Io => "i/o" })
///     }
/// }
/// impl SocketError for MyError {
///     fn failure(&self) -> Option<CrateClose> {
///         matches!(self, MyError::BadFrame).then_some(CrateClose::ProtocolError)
///     }
/// }
/// assert_eq!(MyError::BadFrame.failure().map(|c| c.code().as_u16()), Some(1002));
/// assert_eq!("gone".to_owned().failure(), None); // `String`: a lost transport
/// ```
pub trait SocketError: std::fmt::Display {
    /// The close a failed read calls for, if the peer broke the protocol; `None`: the
    /// transport is lost.
    fn failure(&self) -> Option<CrateClose> {
        None
    }
}

impl SocketError for String {}
impl SocketError for &'static str {}
impl SocketError for std::io::Error {}
impl SocketError for std::convert::Infallible {}
impl SocketError for Box<dyn std::error::Error + Send + Sync> {}
