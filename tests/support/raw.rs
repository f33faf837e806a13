//! A raw WebSocket client over a bare TCP stream, for clients that misbehave in ways
//! a WebSocket library will not: stop reading, never answer a Close, vanish in the
//! middle of a frame. It also sees every frame exactly as the server wrote it, so a
//! test can check that nothing follows the server's Close (G3).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::WAIT;

/// One frame the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawFrame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// A ping.
    Ping,
    /// A pong.
    Pong,
    /// A Close, with its code when it has one.
    Close(Option<u16>),
}

impl RawFrame {
    /// Whether this is a data frame (text or binary).
    pub fn is_data(&self) -> bool {
        matches!(self, RawFrame::Text(_) | RawFrame::Binary(_))
    }
}

/// A client speaking the wire protocol by hand.
pub struct Raw {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// Opcodes (RFC 6455 §5.2).
pub const TEXT: u8 = 0x1;
/// Binary opcode.
pub const BINARY: u8 = 0x2;
/// Close opcode.
pub const CLOSE: u8 = 0x8;

impl Raw {
    /// Connects to `ws://addr/ws` and completes the upgrade.
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw::connect_to(addr, "/ws", None).await
    }

    /// Connects to `ws://addr{path}` (e.g. `/ws?token=ada:secret`) and completes the
    /// upgrade; with `receive_buffer`, the socket's receive buffer (`SO_RCVBUF`) is
    /// set to about that many bytes before connecting, so a client that stops reading
    /// advertises a tiny window and the server's writes stall early.
    pub async fn connect_to(addr: SocketAddr, path: &str, receive_buffer: Option<u32>) -> Raw {
        let connect = async {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            };
            let socket = socket.unwrap();
            if let Some(size) = receive_buffer {
                socket.set_recv_buffer_size(size).unwrap();
            }
            let mut stream = socket.connect(addr).await.unwrap();
            let request = super::upgrade_head(addr, path);
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut buffer = Vec::new();
            let end = loop {
                if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
                let mut chunk = [0_u8; 1024];
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the server hung up during the upgrade");
                buffer.extend_from_slice(&chunk[..n]);
            };
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            assert!(
                head.starts_with("HTTP/1.1 101"),
                "the upgrade is accepted: {head}"
            );
            buffer.drain(..end);
            Raw { stream, buffer }
        };
        tokio::time::timeout(WAIT, connect)
            .await
            .expect("upgraded in time")
    }

    /// The bytes of one final, masked client frame.
    pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37_u8, 0xfa, 0x21, 0x3d];
        let mut out = vec![0x80 | opcode];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    /// Writes `bytes` as they are; `false` if the server has gone.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> bool {
        tokio::time::timeout(WAIT, self.stream.write_all(bytes))
            .await
            .expect("wrote in time")
            .is_ok()
    }

    /// Writes one text frame; `false` if the server has gone.
    pub async fn text(&mut self, text: &str) -> bool {
        self.write_raw(&Raw::frame(TEXT, text.as_bytes())).await
    }

    /// Writes a Close frame with `code`; `false` if the server has gone.
    pub async fn close(&mut self, code: u16) -> bool {
        self.write_raw(&Raw::frame(CLOSE, &code.to_be_bytes()))
            .await
    }

    /// The next frame, or `None` once the server ended the stream (EOF or reset).
    pub async fn read(&mut self) -> Option<RawFrame> {
        tokio::time::timeout(WAIT, self.read_unbounded())
            .await
            .expect("the server sent a frame or hung up in time")
    }

    /// Every frame until the server ends the stream.
    pub async fn read_to_end(&mut self) -> Vec<RawFrame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.read().await {
            frames.push(frame);
            assert!(frames.len() < 1_000_000, "a bounded stream");
        }
        frames
    }

    async fn read_unbounded(&mut self) -> Option<RawFrame> {
        loop {
            if let Some((frame, used)) = parse(&self.buffer) {
                self.buffer.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0_u8; 16 * 1024];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// One whole server frame from the front of `bytes`, and how many bytes it took.
fn parse(bytes: &[u8]) -> Option<(RawFrame, usize)> {
    let [b0, b1, ..] = *bytes else { return None };
    assert_eq!(b0 & 0x80, 0x80, "the server does not fragment our messages");
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (
            usize::try_from(u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?)).ok()?,
            10,
        ),
        n => (usize::from(n), 2),
    };
    assert!(!masked, "server frames are not masked (RFC 6455 §5.1)");
    let payload = bytes.get(at..at + len)?.to_vec();
    at += len;
    let frame = match b0 & 0x0f {
        0x1 => RawFrame::Text(String::from_utf8(payload).expect("UTF-8 text")),
        0x2 => RawFrame::Binary(payload),
        0x8 => RawFrame::Close(
            payload
                .get(..2)
                .map(|code| u16::from_be_bytes([code[0], code[1]])),
        ),
        0x9 => RawFrame::Ping,
        0xa => RawFrame::Pong,
        other => panic!("unexpected opcode {other:#x}"),
    };
    Some((frame, at))
}
