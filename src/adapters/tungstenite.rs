//! The tokio-tungstenite adapter (feature `tungstenite`): accept a TCP (or any
//! `AsyncRead + AsyncWrite`) stream and run a ws-lifecycle connection on it in one
//! call.
//!
//! ```no_run
//! # async fn example<A: ws_lifecycle::Authenticator, H: ws_lifecycle::Handler>(
//! #     service: std::sync::Arc<ws_lifecycle::Service<A, H>>,
//! # ) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! loop {
//!     let (stream, _) = listener.accept().await?;
//!     let service = service.clone();
//!     tokio::spawn(async move { ws_lifecycle::tungstenite::accept(stream, &service).await });
//! }
//! # }
//! ```
//!
//! tungstenite answers pings and echoes the peer's Close by itself; see the note in
//! the [`axum`](crate::axum) adapter (the same applies).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as TCloseFrame;
use tokio_tungstenite::tungstenite::{self, Message as TMessage};

use crate::core::{CloseCode, CloseFrame, CloseRecord, Message};
use crate::driver::{Authenticator, Handler, Service, UpgradeRequest, WireFrame};

/// Performs the WebSocket handshake on `stream` (keeping the request's URI and
/// headers for the authenticator), then runs the connection on `service` until it is
/// closed. Fails only if the handshake does.
pub async fn accept<S, A, H>(
    stream: S,
    service: &Service<A, H>,
) -> Result<CloseRecord, tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    A: Authenticator,
    H: Handler,
{
    let mut request = UpgradeRequest::default();
    // The callback's types are tungstenite's (its error is an HTTP response).
    #[allow(clippy::result_large_err)]
    let socket = tokio_tungstenite::accept_hdr_async(
        stream,
        |req: &tungstenite::handshake::server::Request, resp| {
            request.uri = req.uri().clone();
            request.headers = req.headers().clone();
            Ok(resp)
        },
    )
    .await?;
    Ok(service.run(TungsteniteSocket::new(socket), request).await)
}

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
