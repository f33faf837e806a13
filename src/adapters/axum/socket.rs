//! [`AxumSocket`]: axum's `WebSocket` as the driver's `Stream + Sink` of
//! [`WireFrame`]s.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::ws::{self, WebSocket};
use futures_util::{Sink, Stream};

use crate::core::{CloseCode, CloseFrame, CrateClose, Message};
use crate::driver::{SocketError, WireFrame};

/// axum's `WebSocket` as the driver's `Stream + Sink` of [`WireFrame`]s.
///
/// [`serve`](super::serve) wraps it for the driver; it can also be driven by hand, as this echo of one
/// message does, over a real connection on the loopback interface:
///
/// ```
/// use axum::{Router, extract::WebSocketUpgrade, routing::get};
/// use futures_util::{SinkExt, StreamExt};
/// use ws_lifecycle::axum::AxumSocket;
/// use ws_lifecycle::driver::WireFrame;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let echo_one = |upgrade: WebSocketUpgrade| async move {
///     upgrade.on_upgrade(|socket| async move {
///         let mut socket = AxumSocket::new(socket);
///         if let Some(Ok(WireFrame::Message(message))) = socket.next().await {
///             let _ = socket.send(WireFrame::Message(message)).await;
///         }
///     })
/// };
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let url = format!("ws://{}/ws", listener.local_addr()?);
/// tokio::spawn(axum::serve(listener, Router::new().route("/ws", get(echo_one))).into_future());
/// let (mut client, _) = tokio_tungstenite::connect_async(url).await?;
/// client.send("hi".into()).await?;
/// let reply = client.next().await.transpose()?;
/// assert_eq!(reply, Some("hi".into()));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AxumSocket {
    inner: WebSocket,
}

impl AxumSocket {
    /// Wraps an upgraded socket.
    pub fn new(inner: WebSocket) -> AxumSocket {
        AxumSocket { inner }
    }
}

/// axum's message as a [`WireFrame`]. A Close whose code may not appear on the wire
/// reads as a Close without a status.
pub fn from_axum(message: ws::Message) -> WireFrame {
    match message {
        ws::Message::Text(text) => WireFrame::Message(Message::text(text.as_str())),
        ws::Message::Binary(bytes) => WireFrame::Message(Message::binary(&bytes[..])),
        ws::Message::Ping(bytes) => WireFrame::Ping(bytes.to_vec()),
        ws::Message::Pong(bytes) => WireFrame::Pong(bytes.to_vec()),
        ws::Message::Close(frame) => WireFrame::Close(frame.and_then(|f| {
            let code = CloseCode::from_wire(f.code).ok()?;
            CloseFrame::new(code, f.reason.as_str().to_owned()).ok()
        })),
    }
}

/// A [`WireFrame`] as axum's message.
pub fn to_axum(frame: WireFrame) -> ws::Message {
    match frame {
        WireFrame::Message(Message::Text(text)) => ws::Message::Text(text.as_ref().into()),
        WireFrame::Message(Message::Binary(bytes)) => {
            ws::Message::Binary(bytes.as_ref().to_vec().into())
        }
        WireFrame::Ping(payload) => ws::Message::Ping(payload.into()),
        WireFrame::Pong(payload) => ws::Message::Pong(payload.into()),
        WireFrame::Close(frame) => ws::Message::Close(frame.map(|f| ws::CloseFrame {
            code: f.code().as_u16(),
            reason: f.reason().into(),
        })),
    }
}

impl Stream for AxumSocket {
    type Item = Result<WireFrame, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner)
            .poll_next(cx)
            .map(|item| item.map(|read| read.map(from_axum)))
    }
}

impl Sink<WireFrame> for AxumSocket {
    type Error = axum::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: WireFrame) -> Result<(), Self::Error> {
        Pin::new(&mut self.inner).start_send(to_axum(item))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// axum's read errors as RFC 6455 §7.4.1 closes (see the tungstenite adapter's):
/// axum wraps tungstenite's error, whose type this feature cannot name, so its
/// message is read — 1002 for a protocol violation, 1007 for invalid UTF-8, 1009 for
/// a message or frame over the size limit; anything else is a lost transport
/// (`tests/driver_hostile.rs` checks each class on a real socket).
impl SocketError for axum::Error {
    fn failure(&self) -> Option<CrateClose> {
        failure_of(&self.to_string())
    }
}

/// The close a tungstenite error's message calls for.
fn failure_of(message: &str) -> Option<CrateClose> {
    if let Some(protocol) = message.strip_prefix("WebSocket protocol error: ") {
        // Not the peer's fault, or not a violation: a reset, or a frame after a Close.
        let lost = [
            "Connection reset without closing handshake",
            "Sending after closing is not allowed",
            "Remote sent after having closed",
        ];
        (!lost.contains(&protocol)).then_some(CrateClose::ProtocolError)
    } else if message.starts_with("UTF-8 encoding error") {
        Some(CrateClose::InvalidPayload)
    } else if message.starts_with("Space limit exceeded: Message too long") {
        Some(CrateClose::MessageTooBig)
    } else {
        None
    }
}
