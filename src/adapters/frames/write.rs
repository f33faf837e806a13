//! The writing half of [`ServerSocket`](super::ServerSocket): frames queued as a
//! header and a *shared* payload, written with vectored writes.
//!
//! A broadcast's payload is one `Arc` that every connection's queue points at; it is
//! never copied into a per-connection buffer (gorilla/websocket's `PreparedMessage`
//! idea, without even the one prepared copy: a server frame is unmasked, so its wire
//! form is the header, at most 10 bytes per connection, and the payload as it is).

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;

use crate::core::{CloseFrame, Message};
use crate::driver::WireFrame;

/// Slices handed to one vectored write (two per frame: its header, its payload).
pub(crate) const MAX_SLICES: usize = 128;

/// Frames the queue keeps room for once empty: a connection that writes a frame at
/// a time reuses it rather than allocating on every write; what a burst grew
/// beyond it is freed when the queue empties. A connection never written to holds
/// no queue storage.
const KEPT: usize = 4;

/// A frame's payload, shared where the application's message is.
#[derive(Debug)]
enum Payload {
    Text(Arc<str>),
    Binary(Arc<[u8]>),
    /// A control frame's (at most 125 bytes).
    Owned(Vec<u8>),
}

impl Payload {
    fn bytes(&self) -> &[u8] {
        match self {
            Payload::Text(text) => text.as_bytes(),
            Payload::Binary(bytes) => bytes,
            Payload::Owned(bytes) => bytes,
        }
    }
}

/// One frame waiting to be written: its header, its payload, how much of both is out.
#[derive(Debug)]
struct Out {
    head: [u8; 10],
    head_len: u8,
    payload: Payload,
    /// Bytes of header then payload already written.
    written: usize,
}

impl Out {
    fn new(opcode: u8, payload: Payload) -> Out {
        let length = payload.bytes().len();
        let mut head = [0_u8; 10];
        head[0] = 0x80 | opcode; // FIN, no extension bits
        let head_len = if length < 126 {
            head[1] = length as u8;
            2
        } else if let Ok(short) = u16::try_from(length) {
            head[1] = 126;
            head[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            head[1] = 127;
            head[2..10].copy_from_slice(&(length as u64).to_be_bytes());
            10
        };
        Out {
            head,
            head_len,
            payload,
            written: 0,
        }
    }

    fn len(&self) -> usize {
        usize::from(self.head_len) + self.payload.bytes().len()
    }

    /// What is left to write, as up to two slices.
    fn remaining(&self) -> (&[u8], &[u8]) {
        let head_len = usize::from(self.head_len);
        let payload = self.payload.bytes();
        if self.written < head_len {
            (&self.head[self.written..head_len], payload)
        } else {
            (&[], &payload[self.written - head_len..])
        }
    }
}

/// Frames queued for the socket, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    queue: VecDeque<Out>,
    /// Bytes queued and not yet written (headers included).
    queued: usize,
    /// Our Close is queued: nothing may follow it.
    closed: bool,
}

impl Encoder {
    /// Bytes queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Queues `frame`; fails (and queues nothing) after our Close.
    pub(crate) fn push(&mut self, frame: WireFrame) -> Result<(), WireFrame> {
        if self.closed {
            return Err(frame);
        }
        let out = match frame {
            WireFrame::Message(Message::Text(text)) => Out::new(0x1, Payload::Text(text)),
            WireFrame::Message(Message::Binary(bytes)) => Out::new(0x2, Payload::Binary(bytes)),
            WireFrame::Ping(payload) => Out::new(0x9, Payload::Owned(control(payload))),
            WireFrame::Pong(payload) => Out::new(0xA, Payload::Owned(control(payload))),
            WireFrame::Close(frame) => {
                self.closed = true;
                Out::new(0x8, Payload::Owned(close_payload(frame.as_ref())))
            }
        };
        self.queued += out.len();
        if self.queue.capacity() == 0 {
            self.queue.reserve_exact(KEPT);
        }
        self.queue.push_back(out);
        Ok(())
    }

    /// Fills `slices` with what is queued, oldest first; returns how many.
    pub(crate) fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for out in &self.queue {
            let (head, payload) = out.remaining();
            for part in [head, payload] {
                if part.is_empty() {
                    continue;
                }
                if n == slices.len() {
                    return n;
                }
                slices[n] = IoSlice::new(part);
                n += 1;
            }
        }
        n
    }

    /// The oldest frame's unwritten bytes, header and payload, for a socket that
    /// writes one slice at a time.
    pub(crate) fn front(&self) -> Option<(&[u8], &[u8])> {
        self.queue.front().map(Out::remaining)
    }

    /// `written` bytes went out: drops the frames done.
    pub(crate) fn advance(&mut self, mut written: usize) {
        self.queued -= written;
        while written > 0 {
            let out = self.queue.front_mut().expect("written bytes were queued");
            let left = out.len() - out.written;
            if written < left {
                out.written += written;
                return;
            }
            written -= left;
            self.queue.pop_front();
        }
        self.shrink();
    }

    /// Takes every application message queued and not written whole — a frame cut
    /// short by a failed write never reached the peer as a message — in order, for
    /// the driver to hand back (**G3**). Control frames and our Close are dropped.
    pub(crate) fn take_unwritten(&mut self) -> Vec<Message> {
        self.queued = 0;
        let taken = std::mem::take(&mut self.queue);
        taken
            .into_iter()
            .filter_map(|out| match out.payload {
                Payload::Text(text) => Some(Message::Text(text)),
                Payload::Binary(bytes) => Some(Message::Binary(bytes)),
                Payload::Owned(_) => None,
            })
            .collect()
    }

    /// Frames the queue has room for (its storage), for the tests.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    /// Once the queue is empty, frees what a burst grew it to beyond [`KEPT`].
    fn shrink(&mut self) {
        if self.queue.is_empty() && self.queue.capacity() > KEPT {
            self.queue = VecDeque::new(); // freed, not copied to a smaller one
        }
    }
}

/// A control frame's payload, cut to the 125 bytes RFC 6455 §5.5 allows.
fn control(mut payload: Vec<u8>) -> Vec<u8> {
    payload.truncate(125);
    payload
}

/// A Close frame's payload: the code, big-endian, then the reason.
fn close_payload(frame: Option<&CloseFrame>) -> Vec<u8> {
    let Some(frame) = frame else {
        return Vec::new();
    };
    let mut payload = Vec::with_capacity(2 + frame.reason().len());
    payload.extend_from_slice(&frame.code().as_u16().to_be_bytes());
    payload.extend_from_slice(frame.reason().as_bytes());
    payload
}
