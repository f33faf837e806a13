//! [`ServerSocket`]: the WebSocket framing both adapters run their connections on,
//! over any tokio `AsyncRead + AsyncWrite` whose handshake is done.
//!
//! Why our own and not tungstenite's (issue 14): tungstenite formats every frame into
//! a per-connection write buffer, so one broadcast of 10 MB to 100 connections that
//! do not read holds 100 copies (1 GB); it keeps a read buffer per connection for
//! its whole life; and its size limits are fixed when the socket is made, so a limit
//! that should be tighter before authentication cannot be. Here:
//!
//! - **Writes share the payload.** A queued frame is a header (at most 10 bytes) and
//!   the message's own `Arc`, written with vectored writes: the broadcast above
//!   costs its 10 MB once ([`write`]).
//! - **Reads hold nothing while idle.** Bytes are read into a buffer on the stack and
//!   consumed at once; only an unfinished frame's header bytes (≤ 14), a message
//!   being reassembled and a control frame's payload (≤ 125) outlive a read
//!   ([`read`]). A large frame's payload is read straight into its message.
//! - **Limits follow the lifecycle.** Before authentication a message may be at
//!   most `DriverConfig::max_pre_auth_message_bytes` (1008 "pre-auth limit"); after,
//!   `SocketConfig::max_message_size` (1009). Both are checked at each frame's
//!   header, before its payload is read: a client can make the server hold at most
//!   the limit in force (`driver::SocketLink`, which also tells the pump of partial
//!   writes: a large frame written slowly is progress, not a stall).
//! - **Protocol errors are named.** Every violation RFC 6455 lists fails fast with
//!   1002, 1007 or 1009 ([`FrameError`]).
//!
//! The handshake stays with the adapters: the tungstenite adapter writes its own
//! `101`, the axum adapter lets hyper send it.

mod handshake;
mod read;
#[cfg(test)]
mod tests;
mod write;

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::core::CrateClose;
use crate::driver::{SocketConfig, SocketError, SocketLink, WireFrame};

pub(crate) use handshake::check_upgrade;
#[cfg(feature = "tungstenite")]
pub(crate) use handshake::switching_head;
#[cfg(feature = "axum")]
pub(crate) use handshake::switching_headers;
use read::{Decoder, Limits};
use write::{Encoder, MAX_SLICES};

/// Bytes read from the socket at a time, on the stack (and the payload left to read
/// from which a frame is read straight into its message instead).
const READ_CHUNK: usize = 4096;

/// The most read straight into a message at a time.
const DIRECT_STEP: usize = 64 * 1024;

/// Why reading or writing a [`ServerSocket`] failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The socket failed or the peer went away.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The peer broke RFC 6455 (1002).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// Invalid UTF-8 in a text message or a Close reason (1007).
    #[error("invalid UTF-8 in a {0}")]
    InvalidUtf8(&'static str),
    /// A frame or message over the size limit (1009).
    #[error("frame or message over the {limit}-byte limit")]
    TooBig {
        /// The limit it went over.
        limit: usize,
    },
    /// A message over the pre-authentication limit (1008).
    #[error("message over the {limit}-byte limit before authentication")]
    PreAuthTooBig {
        /// The limit it went over.
        limit: usize,
    },
    /// A frame handed to the socket after our Close (the driver never does).
    #[error("frame sent after our Close")]
    AfterClose,
}

impl SocketError for FrameError {
    fn failure(&self) -> Option<CrateClose> {
        match self {
            FrameError::Protocol(_) => Some(CrateClose::ProtocolError),
            FrameError::InvalidUtf8(_) => Some(CrateClose::InvalidPayload),
            FrameError::TooBig { .. } => Some(CrateClose::MessageTooBig),
            FrameError::PreAuthTooBig { .. } => Some(CrateClose::PreAuthTooBig),
            FrameError::Io(_) | FrameError::AfterClose => None,
        }
    }
}

/// A server's WebSocket over `io`, as the driver's `Stream + Sink` of
/// [`WireFrame`]s (see the module docs).
#[derive(Debug)]
pub(crate) struct ServerSocket<IO> {
    io: IO,
    decoder: Decoder,
    encoder: Encoder,
    /// Bytes read and not yet decoded (only after a read that held more than one
    /// frame; empty, with no storage, otherwise).
    unread: Vec<u8>,
    link: SocketLink,
    max_frame: Option<usize>,
    max_message: Option<usize>,
    max_pre_auth: usize,
    /// `start_send` accepts frames while fewer than this many bytes wait.
    write_buffer: usize,
    /// The read side ended (the peer's Close, its end of stream, or a failure).
    read_done: bool,
}

impl<IO> ServerSocket<IO> {
    /// The server side of a WebSocket whose handshake is done on `io`, with the
    /// limits of `config` and `max_pre_auth` bytes per message until `link` is
    /// marked authenticated.
    pub(crate) fn new(
        io: IO,
        config: &SocketConfig,
        max_pre_auth: usize,
        link: SocketLink,
    ) -> ServerSocket<IO> {
        ServerSocket {
            io,
            decoder: Decoder::default(),
            encoder: Encoder::default(),
            unread: Vec::new(),
            link,
            max_frame: config.max_frame_size,
            max_message: config.max_message_size,
            max_pre_auth,
            write_buffer: config.write_buffer_size.max(1),
            read_done: false,
        }
    }

    fn limits(&self) -> Limits {
        let pre_auth = !self.link.is_authenticated();
        let message = if pre_auth {
            Some(
                self.max_message
                    .map_or(self.max_pre_auth, |m| m.min(self.max_pre_auth)),
            )
        } else {
            self.max_message
        };
        Limits {
            frame: self.max_frame,
            message,
            pre_auth,
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> ServerSocket<IO> {
    /// Decodes what is buffered in `unread`; a frame if one completed.
    fn decode_unread(&mut self) -> Result<Option<WireFrame>, FrameError> {
        if self.unread.is_empty() {
            return Ok(None);
        }
        let limits = self.limits();
        let (used, frame) = self.decoder.decode(&self.unread, limits)?;
        self.unread.drain(..used);
        if self.unread.is_empty() {
            self.unread = Vec::new();
        }
        Ok(frame)
    }

    fn poll_read_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<WireFrame>, FrameError>> {
        loop {
            if self.decoder.is_closed() {
                // Nothing the peer sends after its Close is read (RFC 6455 §5.5.1).
                return Poll::Ready(Ok(None));
            }
            if let Some(frame) = self.decode_unread()? {
                return Poll::Ready(Ok(Some(frame)));
            }
            // A large payload is read straight into its message: no copy through
            // the read chunk. (Zero-filled first: the crate has no `unsafe` to read
            // into spare capacity; a 64 KiB memset costs far less than the read.)
            if let Some((data, remaining)) = self.decoder.direct_room() {
                if remaining >= READ_CHUNK {
                    let before = data.len();
                    data.resize(before + remaining.min(DIRECT_STEP), 0);
                    let mut buf = ReadBuf::new(&mut data[before..]);
                    let polled = Pin::new(&mut self.io).poll_read(cx, &mut buf);
                    let read = buf.filled().len();
                    data.truncate(before + read);
                    ready!(polled)?;
                    if read == 0 {
                        return Poll::Ready(Err(eof_mid_frame()));
                    }
                    if let Some(frame) = self.decoder.direct_done(read)? {
                        return Poll::Ready(Ok(Some(frame)));
                    }
                    continue;
                }
            }
            let mut chunk = [0_u8; READ_CHUNK];
            let mut buf = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
            let read = buf.filled().len();
            if read == 0 {
                if self.decoder.is_idle() {
                    return Poll::Ready(Ok(None));
                }
                return Poll::Ready(Err(eof_mid_frame()));
            }
            let limits = self.limits();
            let (used, frame) = self.decoder.decode(&chunk[..read], limits)?;
            if used < read {
                self.unread.extend_from_slice(&chunk[used..read]);
            }
            if let Some(frame) = frame {
                return Poll::Ready(Ok(Some(frame)));
            }
        }
    }

    /// Writes queued frames until none is left or the socket is busy.
    fn poll_write_queued(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        while self.encoder.queued() > 0 {
            let written = if self.io.is_write_vectored() {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let n = self.encoder.slices(&mut slices);
                ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]))?
            } else {
                let (head, payload) = self.encoder.front().expect("bytes are queued");
                let part = if head.is_empty() { payload } else { head };
                ready!(Pin::new(&mut self.io).poll_write(cx, part))?
            };
            if written == 0 {
                return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()));
            }
            self.encoder.advance(written);
            self.link.wrote(written);
        }
        Poll::Ready(Ok(()))
    }
}

fn eof_mid_frame() -> FrameError {
    FrameError::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the peer's stream ended inside a frame",
    ))
}

/// What the socket never wrote whole goes back through the link, for the pump to
/// hand back with the connection's other unsent messages (**G3** end to end: a
/// socket's queue is not a place where messages disappear).
impl<IO> Drop for ServerSocket<IO> {
    fn drop(&mut self) {
        let unwritten = self.encoder.take_unwritten();
        if !unwritten.is_empty() {
            self.link.hand_back(unwritten);
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Stream for ServerSocket<IO> {
    type Item = Result<WireFrame, FrameError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.read_done {
            return Poll::Ready(None);
        }
        let read = ready!(self.poll_read_frame(cx));
        if !matches!(read, Ok(Some(_))) {
            self.read_done = true;
        }
        Poll::Ready(read.transpose())
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Sink<WireFrame> for ServerSocket<IO> {
    type Error = FrameError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        if self.encoder.queued() >= self.write_buffer {
            // Over the bound: write what waits first (`Pending` while the socket is busy).
            ready!(self.poll_write_queued(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, item: WireFrame) -> Result<(), FrameError> {
        self.encoder.push(item).map_err(|_| FrameError::AfterClose)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        ready!(self.poll_write_queued(cx))?;
        Pin::new(&mut self.io)
            .poll_flush(cx)
            .map_err(FrameError::from)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.io)
            .poll_shutdown(cx)
            .map_err(FrameError::from)
    }
}
