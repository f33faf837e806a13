//! The reading half of [`ServerSocket`](super::ServerSocket): a client's RFC 6455
//! frames, checked as their bytes arrive and reassembled into [`WireFrame`]s.
//!
//! Sans-IO: [`Decoder::decode`] takes whatever bytes were read and keeps only what
//! it must between reads — a frame header's first bytes (at most 14), the message
//! being reassembled, a control frame's payload (at most 125). An idle connection
//! holds no buffer at all.

use crate::core::{CloseCode, CloseFrame, Message};
use crate::driver::WireFrame;

use super::FrameError;

/// A client frame's longest header: 2 bytes, an 8-byte length, a 4-byte mask.
const MAX_HEADER: usize = 14;

/// The longest control frame payload (RFC 6455 §5.5).
const MAX_CONTROL: usize = 125;

/// The limits a frame and its message are held to as they arrive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The longest frame payload (`None`: no limit).
    pub(crate) frame: Option<usize>,
    /// The longest message, fragments summed (`None`: no limit).
    pub(crate) message: Option<usize>,
    /// True while the connection is not yet authenticated: a message over `message`
    /// is then the pre-authentication limit's (1008), not the size limit's (1009).
    pub(crate) pre_auth: bool,
}

/// A frame's opcode (RFC 6455 §5.2); the reserved ones are refused as they are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpCode {
    Continue,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Result<OpCode, FrameError> {
        Ok(match bits {
            0x0 => OpCode::Continue,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return Err(FrameError::Protocol("reserved opcode")),
        })
    }

    fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// The frame whose payload is being read.
#[derive(Debug)]
struct Payload {
    opcode: OpCode,
    fin: bool,
    mask: [u8; 4],
    /// Payload bytes already read (the mask's phase).
    read: usize,
    /// Payload bytes still to read.
    remaining: usize,
}

/// A text or binary message whose fragments are still arriving.
#[derive(Debug)]
struct Partial {
    text: bool,
    data: Vec<u8>,
    /// For text: the prefix of `data` known to be valid UTF-8 (the rest is at most an
    /// incomplete character).
    checked: usize,
}

/// Reassembles a client's frames into [`WireFrame`]s, failing fast on anything
/// RFC 6455 forbids.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    head: [u8; MAX_HEADER],
    head_len: usize,
    payload: Option<Payload>,
    message: Option<Partial>,
    control: Vec<u8>,
    /// The peer's Close was read: nothing after it is.
    closed: bool,
}

impl Decoder {
    /// True once the peer's Close has been read.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// True while nothing is half read: no header bytes, no payload, no fragments.
    pub(crate) fn is_idle(&self) -> bool {
        self.head_len == 0 && self.payload.is_none() && self.message.is_none()
    }

    /// Consumes bytes from `input` until a frame is complete or `input` is used up;
    /// returns how many bytes were used and the frame, if one completed.
    pub(crate) fn decode(
        &mut self,
        input: &[u8],
        limits: Limits,
    ) -> Result<(usize, Option<WireFrame>), FrameError> {
        let mut used = 0;
        while !self.closed {
            if self.payload.is_none() {
                let taken = self.fill_header(&input[used..]);
                used += taken;
                let Some(length) = header_length(&self.head[..self.head_len]) else {
                    return Ok((used, None));
                };
                if self.head_len < length {
                    return Ok((used, None));
                }
                self.start_frame(limits)?;
            }
            let payload = self.payload.as_mut().expect("a frame is being read");
            let take = payload.remaining.min(input.len() - used);
            let chunk = &input[used..used + take];
            used += take;
            let into = match payload.opcode {
                OpCode::Text | OpCode::Binary | OpCode::Continue => {
                    &mut self.message.as_mut().expect("a message is open").data
                }
                _ => &mut self.control,
            };
            let start = into.len();
            into.extend_from_slice(chunk);
            unmask(&mut into[start..], payload.mask, payload.read);
            payload.read += take;
            payload.remaining -= take;
            self.check_text()?;
            if self.payload.as_ref().is_some_and(|p| p.remaining > 0) {
                return Ok((used, None));
            }
            if let Some(frame) = self.finish_frame()? {
                return Ok((used, Some(frame)));
            }
        }
        Ok((used, None))
    }

    /// How many payload bytes may be read straight into the message being
    /// reassembled (skipping a copy), if a data frame's payload is being read.
    pub(crate) fn direct_room(&mut self) -> Option<(&mut Vec<u8>, usize)> {
        let payload = self.payload.as_ref()?;
        if payload.opcode.is_control() || payload.remaining == 0 {
            return None;
        }
        let remaining = payload.remaining;
        let message = self.message.as_mut()?;
        Some((&mut message.data, remaining))
    }

    /// `read` payload bytes were appended to the message by a direct read (see
    /// [`direct_room`](Self::direct_room)): unmasks and checks them.
    pub(crate) fn direct_done(&mut self, read: usize) -> Result<Option<WireFrame>, FrameError> {
        let payload = self.payload.as_mut().expect("a direct read is a frame's");
        let message = self.message.as_mut().expect("a direct read is a message's");
        let start = message.data.len() - read;
        unmask(&mut message.data[start..], payload.mask, payload.read);
        payload.read += read;
        payload.remaining -= read;
        self.check_text()?;
        if self.payload.as_ref().is_some_and(|p| p.remaining > 0) {
            return Ok(None);
        }
        self.finish_frame()
    }

    /// Copies header bytes from `input` until the header is complete (its length is
    /// known from its first two bytes); returns how many were taken.
    fn fill_header(&mut self, input: &[u8]) -> usize {
        let mut taken = 0;
        loop {
            let want = header_length(&self.head[..self.head_len]).unwrap_or(2);
            if self.head_len >= want || taken == input.len() {
                return taken;
            }
            let n = (want - self.head_len).min(input.len() - taken);
            self.head[self.head_len..self.head_len + n].copy_from_slice(&input[taken..taken + n]);
            self.head_len += n;
            taken += n;
        }
    }

    /// The header is complete: checks it and opens its payload.
    fn start_frame(&mut self, limits: Limits) -> Result<(), FrameError> {
        let head = &self.head[..self.head_len];
        let (first, second) = (head[0], head[1]);
        if first & 0x70 != 0 {
            return Err(FrameError::Protocol(
                "reserved bits set (no extension agreed)",
            ));
        }
        let fin = first & 0x80 != 0;
        let opcode = OpCode::from_bits(first & 0x0F)?;
        if second & 0x80 == 0 {
            return Err(FrameError::Protocol("unmasked frame from a client"));
        }
        let length = match second & 0x7F {
            126 => u64::from(u16::from_be_bytes([head[2], head[3]])),
            127 => u64::from_be_bytes(head[2..10].try_into().expect("8 bytes")),
            short => u64::from(short),
        };
        if length >> 63 != 0 {
            return Err(FrameError::Protocol("payload length with its top bit set"));
        }
        let mask: [u8; 4] = head[self.head_len - 4..].try_into().expect("4 bytes");
        self.head_len = 0;
        if opcode.is_control() {
            if !fin {
                return Err(FrameError::Protocol("fragmented control frame"));
            }
            if length > MAX_CONTROL as u64 {
                return Err(FrameError::Protocol("control frame over 125 bytes"));
            }
        } else {
            if let Some(max) = limits.frame {
                if length > max as u64 {
                    return Err(FrameError::TooBig { limit: max });
                }
            }
            let so_far = self.message.as_ref().map_or(0, |m| m.data.len() as u64);
            if let Some(max) = limits.message {
                if so_far + length > max as u64 {
                    return Err(if limits.pre_auth {
                        FrameError::PreAuthTooBig { limit: max }
                    } else {
                        FrameError::TooBig { limit: max }
                    });
                }
            }
            match (opcode, self.message.is_some()) {
                (OpCode::Continue, false) => {
                    return Err(FrameError::Protocol("continuation without a message"));
                }
                (OpCode::Text | OpCode::Binary, true) => {
                    return Err(FrameError::Protocol("new message inside a fragmented one"));
                }
                (OpCode::Text | OpCode::Binary, false) => {
                    self.message = Some(Partial {
                        text: opcode == OpCode::Text,
                        data: Vec::new(),
                        checked: 0,
                    });
                }
                _ => {}
            }
        }
        let length =
            usize::try_from(length).map_err(|_| FrameError::TooBig { limit: usize::MAX })?;
        if let Some(message) = self.message.as_mut().filter(|_| !opcode.is_control()) {
            // The frame's size is checked against the limits: reserve it at once.
            message.data.reserve_exact(length);
        }
        self.payload = Some(Payload {
            opcode,
            fin,
            mask,
            read: 0,
            remaining: length,
        });
        Ok(())
    }

    /// Validates the text received so far, failing as soon as a byte cannot be part
    /// of valid UTF-8 (not only at the message's end).
    fn check_text(&mut self) -> Result<(), FrameError> {
        let Some(message) = self.message.as_mut().filter(|m| m.text) else {
            return Ok(());
        };
        if self.payload.as_ref().is_some_and(|p| p.opcode.is_control()) {
            return Ok(());
        }
        match std::str::from_utf8(&message.data[message.checked..]) {
            Ok(_) => message.checked = message.data.len(),
            Err(error) if error.error_len().is_none() => message.checked += error.valid_up_to(),
            Err(_) => return Err(FrameError::InvalidUtf8("text message")),
        }
        Ok(())
    }

    /// The frame's payload is complete: a control frame, or a message's last
    /// fragment, becomes a [`WireFrame`].
    fn finish_frame(&mut self) -> Result<Option<WireFrame>, FrameError> {
        let payload = self.payload.take().expect("a frame was being read");
        let frame = match payload.opcode {
            OpCode::Ping => WireFrame::Ping(std::mem::take(&mut self.control)),
            OpCode::Pong => WireFrame::Pong(std::mem::take(&mut self.control)),
            OpCode::Close => {
                self.closed = true;
                WireFrame::Close(close_frame(&std::mem::take(&mut self.control))?)
            }
            OpCode::Text | OpCode::Binary | OpCode::Continue => {
                if !payload.fin {
                    return Ok(None);
                }
                let message = self.message.take().expect("a message is open");
                if message.text {
                    let text = String::from_utf8(message.data)
                        .map_err(|_| FrameError::InvalidUtf8("text message"))?;
                    WireFrame::Message(Message::text(text))
                } else {
                    WireFrame::Message(Message::binary(message.data))
                }
            }
        };
        Ok(Some(frame))
    }
}

/// A Close frame's payload: empty, or a legal code and a UTF-8 reason.
fn close_frame(payload: &[u8]) -> Result<Option<CloseFrame>, FrameError> {
    match payload {
        [] => Ok(None),
        [_] => Err(FrameError::Protocol("one-byte Close payload")),
        [high, low, reason @ ..] => {
            let code = CloseCode::from_wire(u16::from_be_bytes([*high, *low]))
                .map_err(|_| FrameError::Protocol("illegal close code"))?;
            let reason =
                std::str::from_utf8(reason).map_err(|_| FrameError::InvalidUtf8("close reason"))?;
            let frame = CloseFrame::new(code, reason.to_owned())
                .map_err(|_| FrameError::Protocol("illegal Close frame"))?;
            Ok(Some(frame))
        }
    }
}

/// The full header's length, once its first two bytes are known.
fn header_length(head: &[u8]) -> Option<usize> {
    let second = *head.get(1)?;
    let extended = match second & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    Some(2 + extended + mask)
}

/// XORs `data` with the mask, `offset` bytes into the payload.
fn unmask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let rotated: [u8; 4] = std::array::from_fn(|i| mask[(offset + i) & 3]);
    let word = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2],
        rotated[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let value = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ word;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= rotated[i & 3];
    }
}
