//! [`TungsteniteSocket`]: a tokio-tungstenite `WebSocketStream` as the driver's
//! `Stream + Sink` of [`WireFrame`]s.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as TCloseFrame;
use tokio_tungstenite::tungstenite::{self, Message as TMessage};

use crate::core::{CloseCode, CloseFrame, CrateClose, Message};
use crate::driver::{SocketError, WireFrame};

/// A tokio-tungstenite `WebSocketStream` as the driver's `Stream + Sink` of
/// [`WireFrame`]s.
///
/// Over an in-memory stream (a TCP stream in production):
///
/// ```
/// use futures_util::{SinkExt, StreamExt};
/// use tokio_tungstenite::WebSocketStream;
/// use tokio_tungstenite::tungstenite::{Message as TMessage, protocol::Role};
/// use ws_lifecycle::driver::WireFrame;
/// use ws_lifecycle::tungstenite::TungsteniteSocket;
/// use ws_lifecycle::{CloseFrame, Message};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (server_io, client_io) = tokio::io::duplex(4096);
/// let ws = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
/// let mut socket = TungsteniteSocket::new(ws);
/// let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
/// client.send(TMessage::text("hi")).await?;
/// assert_eq!(socket.next().await.transpose()?, Some(WireFrame::Message(Message::text("hi"))));
/// socket.send(WireFrame::Close(Some(CloseFrame::normal()))).await?;
/// let close = client.next().await.transpose()?;
/// assert!(matches!(close, Some(TMessage::Close(Some(f))) if u16::from(f.code) == 1000));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TungsteniteSocket<S> {
    inner: WebSocketStream<S>,
}

impl<S> TungsteniteSocket<S> {
    /// Wraps a socket whose handshake is complete.
    pub fn new(inner: WebSocketStream<S>) -> Self {
        TungsteniteSocket { inner }
    }
}

/// tungstenite's message as a [`WireFrame`] (`None` for a raw frame, which a reader
/// never yields). A Close whose code may not appear on the wire reads as a Close
/// without a status.
pub fn from_tungstenite(message: TMessage) -> Option<WireFrame> {
    Some(match message {
        TMessage::Text(text) => WireFrame::Message(Message::text(text.as_str())),
        TMessage::Binary(bytes) => WireFrame::Message(Message::binary(&bytes[..])),
        TMessage::Ping(bytes) => WireFrame::Ping(bytes.to_vec()),
        TMessage::Pong(bytes) => WireFrame::Pong(bytes.to_vec()),
        TMessage::Close(frame) => WireFrame::Close(frame.and_then(|f| {
            let code = CloseCode::from_wire(u16::from(f.code)).ok()?;
            CloseFrame::new(code, f.reason.as_str().to_owned()).ok()
        })),
        TMessage::Frame(_) => return None,
    })
}

/// A [`WireFrame`] as tungstenite's message.
pub fn to_tungstenite(frame: WireFrame) -> TMessage {
    match frame {
        WireFrame::Message(Message::Text(text)) => TMessage::Text(text.as_ref().into()),
        WireFrame::Message(Message::Binary(bytes)) => {
            TMessage::Binary(bytes.as_ref().to_vec().into())
        }
        WireFrame::Ping(payload) => TMessage::Ping(payload.into()),
        WireFrame::Pong(payload) => TMessage::Pong(payload.into()),
        WireFrame::Close(frame) => TMessage::Close(frame.map(|f| TCloseFrame {
            code: f.code().as_u16().into(),
            reason: f.reason().into(),
        })),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for TungsteniteSocket<S> {
    type Item = Result<WireFrame, tungstenite::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(message))) => {
                    if let Some(frame) = from_tungstenite(message) {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                }
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<WireFrame> for TungsteniteSocket<S> {
    type Error = tungstenite::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: WireFrame) -> Result<(), Self::Error> {
        Pin::new(&mut self.inner).start_send(to_tungstenite(item))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// tungstenite's read errors as RFC 6455 §7.4.1 closes: a protocol violation is
/// 1002, invalid UTF-8 (in a text message or a Close reason) 1007, a message or
/// frame over the size limit 1009; anything else (I/O, a reset without a Close) is a
/// lost transport.
impl SocketError for tungstenite::Error {
    fn failure(&self) -> Option<CrateClose> {
        use tungstenite::error::{CapacityError, ProtocolError as P};
        match self {
            tungstenite::Error::Capacity(CapacityError::MessageTooLong { .. }) => {
                Some(CrateClose::MessageTooBig)
            }
            tungstenite::Error::Utf8(_) => Some(CrateClose::InvalidPayload),
            tungstenite::Error::Protocol(
                P::NonZeroReservedBits
                | P::UnmaskedFrameFromClient
                | P::MaskedFrameFromServer
                | P::FragmentedControlFrame
                | P::ControlFrameTooBig
                | P::UnknownControlFrameType(_)
                | P::UnknownDataFrameType(_)
                | P::UnexpectedContinueFrame
                | P::ExpectedFragment(_)
                | P::InvalidOpcode(_)
                | P::InvalidCloseSequence,
            ) => Some(CrateClose::ProtocolError),
            _ => None,
        }
    }
}
