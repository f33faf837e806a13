//! The framing checked without a network: every way a valid stream of client
//! frames can be cut into reads decodes to the same frames; arbitrary bytes never
//! panic; each violation RFC 6455 names fails with its close code before the bytes
//! after it are read; what the encoder writes is what a client parses, sharing the
//! payload.

use std::io::IoSlice;
use std::sync::Arc;

use proptest::prelude::*;

use super::FrameError;
use super::read::{Decoder, Limits};
use super::write::{Encoder, MAX_SLICES};
use crate::core::{CloseCode, CloseFrame, Message};
use crate::driver::WireFrame;

const OPEN: Limits = Limits {
    frame: None,
    message: None,
    pre_auth: false,
};

/// A client frame: FIN and opcode in `first`, masked with `mask`.
fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
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

/// Feeds `bytes` to a decoder in reads of the given sizes (cycled); returns the
/// frames and the error that ended decoding, if one did.
fn decode_in_reads(
    bytes: &[u8],
    reads: &[usize],
    limits: Limits,
) -> (Vec<WireFrame>, Option<FrameError>) {
    let mut decoder = Decoder::default();
    let mut frames = Vec::new();
    let mut at = 0;
    let mut read = 0;
    while at < bytes.len() && !decoder.is_closed() {
        let size = reads[read % reads.len()].max(1);
        read += 1;
        let chunk = &bytes[at..(at + size).min(bytes.len())];
        let mut used = 0;
        while used < chunk.len() && !decoder.is_closed() {
            match decoder.decode(&chunk[used..], limits) {
                Ok((n, frame)) => {
                    used += n;
                    frames.extend(frame);
                }
                Err(error) => return (frames, Some(error)),
            }
        }
        at += chunk.len();
    }
    (frames, None)
}

/// A message as fragments: text or binary, the payload cut at `cuts`, with a Ping
/// between fragments where `pings` says so.
#[derive(Debug, Clone)]
struct Spec {
    text: bool,
    payload: Vec<u8>,
    cuts: Vec<usize>,
    ping_between: bool,
    mask: [u8; 4],
}

fn spec() -> impl Strategy<Value = Spec> {
    let payload = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..200),
        1 => proptest::collection::vec(any::<u8>(), 60_000..70_000),
    ];
    (
        any::<bool>(),
        payload,
        proptest::collection::vec(any::<usize>(), 0..4),
        any::<bool>(),
        any::<[u8; 4]>(),
    )
        .prop_map(|(text, payload, cuts, ping_between, mask)| {
            // Text must be valid UTF-8: map bytes to printable ASCII and some
            // multi-byte characters, cut anywhere (fragments may split a character).
            let payload = if text {
                String::from_utf8_lossy(&payload)
                    .chars()
                    .map(|c| if c.is_control() { 'é' } else { c })
                    .collect::<String>()
                    .into_bytes()
            } else {
                payload
            };
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (payload.len() + 1)).collect();
            cuts.sort_unstable();
            Spec {
                text,
                payload,
                cuts,
                ping_between,
                mask,
            }
        })
}

/// The wire bytes of `spec` and the frames a decoder must yield for them.
fn encode_spec(spec: &Spec, wire: &mut Vec<u8>, expected: &mut Vec<WireFrame>) {
    let mut bounds = vec![0];
    bounds.extend(&spec.cuts);
    bounds.push(spec.payload.len());
    let pieces = bounds.len() - 1;
    for i in 0..pieces {
        let opcode = match (i, spec.text) {
            (0, true) => 0x1,
            (0, false) => 0x2,
            _ => 0x0,
        };
        let fin = if i + 1 == pieces { 0x80 } else { 0 };
        let piece = &spec.payload[bounds[i]..bounds[i + 1]];
        wire.extend(client_frame(fin | opcode, piece, spec.mask));
        if spec.ping_between && i + 1 < pieces {
            wire.extend(client_frame(0x89, b"between", spec.mask));
            expected.push(WireFrame::Ping(b"between".to_vec()));
        }
    }
    expected.push(WireFrame::Message(if spec.text {
        Message::text(String::from_utf8(spec.payload.clone()).unwrap())
    } else {
        Message::binary(spec.payload.clone())
    }));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// However a valid stream is cut into reads, it decodes to the same frames, in
    /// order, ending with the Close.
    #[test]
    fn every_cut_decodes_the_same(
        specs in proptest::collection::vec(spec(), 1..6),
        reads in proptest::collection::vec(1..300_usize, 1..8),
    ) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for spec in &specs {
            encode_spec(spec, &mut wire, &mut expected);
        }
        let close = CloseFrame::new(CloseCode::NORMAL, "bye").unwrap();
        let mut payload = 1000_u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        wire.extend(client_frame(0x88, &payload, [1, 2, 3, 4]));
        expected.push(WireFrame::Close(Some(close)));
        wire.extend(client_frame(0x81, b"after the close: never read", [1, 2, 3, 4]));
        let (frames, error) = decode_in_reads(&wire, &reads, OPEN);
        prop_assert!(error.is_none(), "{error:?}");
        prop_assert_eq!(frames, expected);
    }

    /// Arbitrary bytes: frames or an error, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        reads in proptest::collection::vec(1..64_usize, 1..4),
    ) {
        let limits = Limits { frame: Some(256), message: Some(300), pre_auth: false };
        let _ = decode_in_reads(&bytes, &reads, limits);
    }
}

/// The error `bytes` end with, read one byte at a time (so failing at a header
/// means failing before the payload is read).
fn error_of(bytes: &[u8], limits: Limits) -> FrameError {
    let (_, error) = decode_in_reads(bytes, &[1], limits);
    error.expect("the stream is refused")
}

fn code(error: &FrameError) -> Option<u16> {
    use crate::driver::SocketError;
    error.failure().map(|close| close.code().as_u16())
}

#[test]
fn each_violation_fails_with_its_code() {
    let mask = [9, 8, 7, 6];
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("reserved bit", client_frame(0xC1, b"x", mask), 1002),
        ("reserved opcode", client_frame(0x83, b"x", mask), 1002),
        (
            "reserved control opcode",
            client_frame(0x8B, b"x", mask),
            1002,
        ),
        ("unmasked", vec![0x81, 0x01, b'x'], 1002),
        ("fragmented ping", client_frame(0x09, b"x", mask), 1002),
        ("ping over 125", client_frame(0x89, &[0; 126], mask), 1002),
        ("continuation first", client_frame(0x80, b"x", mask), 1002),
        (
            "text inside a fragmented text",
            [
                client_frame(0x01, b"a", mask),
                client_frame(0x81, b"b", mask),
            ]
            .concat(),
            1002,
        ),
        ("one-byte close", client_frame(0x88, &[3], mask), 1002),
        (
            "close 1005",
            client_frame(0x88, &1005_u16.to_be_bytes(), mask),
            1002,
        ),
        (
            "close 999",
            client_frame(0x88, &999_u16.to_be_bytes(), mask),
            1002,
        ),
        (
            "close reason not UTF-8",
            client_frame(0x88, &[0x03, 0xE8, 0xFF], mask),
            1007,
        ),
        (
            "text not UTF-8",
            client_frame(0x81, &[b'a', 0xC0, 0x80], mask),
            1007,
        ),
        (
            "64-bit length, top bit",
            [
                vec![0x82, 0xFF],
                vec![0x80, 0, 0, 0, 0, 0, 0, 0],
                mask.to_vec(),
            ]
            .concat(),
            1002,
        ),
    ];
    for (what, bytes, expected) in cases {
        let error = error_of(&bytes, OPEN);
        assert_eq!(code(&error), Some(expected), "{what}: {error}");
    }
}

/// Invalid UTF-8 in a fragmented text fails at the fragment that carries it, not
/// at the end of the message (Autobahn 6.4: fail fast).
#[test]
fn invalid_text_fails_before_the_message_ends() {
    let mask = [1, 2, 3, 4];
    let wire = [
        client_frame(0x01, "κόσμε".as_bytes(), mask),
        client_frame(0x00, &[0xF4, 0x90, 0x80, 0x80], mask), // beyond U+10FFFF
    ]
    .concat();
    let (frames, error) = decode_in_reads(&wire, &[1], OPEN);
    assert!(frames.is_empty());
    assert_eq!(code(&error.unwrap()), Some(1007));
    // A character cut between fragments is not an error.
    let euro = "€".as_bytes();
    let wire = [
        client_frame(0x01, &euro[..1], mask),
        client_frame(0x80, &euro[1..], mask),
    ]
    .concat();
    let (frames, error) = decode_in_reads(&wire, &[3], OPEN);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(frames, [WireFrame::Message(Message::text("€"))]);
}

/// The size limits are checked at the header: a frame announcing more than the
/// limit is refused before one byte of its payload arrives (1009), and before
/// authentication the pre-auth limit applies (1008); a message whose fragments add
/// up past the limit is refused at the fragment that crosses it.
#[test]
fn limits_refuse_at_the_header() {
    let header_only = |length: usize| {
        let mut frame = client_frame(0x82, &vec![0; length], [0; 4]);
        frame.truncate(if length < 126 {
            6
        } else if length <= 0xFFFF {
            8
        } else {
            14
        });
        frame
    };
    let limits = Limits {
        frame: Some(1000),
        message: Some(1500),
        pre_auth: false,
    };
    assert_eq!(code(&error_of(&header_only(1001), limits)), Some(1009));
    assert_eq!(code(&error_of(&header_only(70_000), limits)), Some(1009));
    let mut second = client_frame(0x00, &[0; 501], [0; 4]);
    second.truncate(8); // a continuation's header: 501 more bytes would make 1501
    let fragments = [client_frame(0x02, &[0; 1000], [0; 4]), second].concat();
    assert_eq!(code(&error_of(&fragments, limits)), Some(1009));
    let pre_auth = Limits {
        frame: Some(1000),
        message: Some(64),
        pre_auth: true,
    };
    assert_eq!(code(&error_of(&header_only(65), pre_auth)), Some(1008));
    let (frames, error) = decode_in_reads(&client_frame(0x82, &[7; 64], [0; 4]), &[5], pre_auth);
    assert!(error.is_none());
    assert_eq!(frames, [WireFrame::Message(Message::binary(vec![7; 64]))]);
}

/// A server frame as a client parses it: (first byte, payload).
fn parse_server_frames(mut wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while !wire.is_empty() {
        let first = wire[0];
        assert_eq!(wire[1] & 0x80, 0, "a server frame is not masked");
        let (length, header) = match wire[1] {
            126 => (u16::from_be_bytes([wire[2], wire[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(wire[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        frames.push((first, wire[header..header + length].to_vec()));
        wire = &wire[header + length..];
    }
    frames
}

/// Drains the encoder as a socket that takes `step` bytes per write would.
fn drain(encoder: &mut Encoder, step: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    while encoder.queued() > 0 {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let n = encoder.slices(&mut slices);
        let mut took = 0;
        for slice in &slices[..n] {
            let take = (step - took).min(slice.len());
            wire.extend_from_slice(&slice[..take]);
            took += take;
            if took == step {
                break;
            }
        }
        encoder.advance(took);
    }
    wire
}

#[test]
fn the_encoder_writes_what_a_client_parses_and_nothing_after_its_close() {
    for step in [1, 7, 4096] {
        let mut encoder = Encoder::default();
        let sizes = [0, 125, 126, 65_535, 65_536, 70_000];
        for size in sizes {
            encoder
                .push(WireFrame::Message(Message::binary(vec![size as u8; size])))
                .unwrap();
        }
        encoder
            .push(WireFrame::Message(Message::text("hé")))
            .unwrap();
        encoder.push(WireFrame::Ping(vec![1; 200])).unwrap(); // cut to 125
        let close = CloseFrame::new(CloseCode::GOING_AWAY, "bye").unwrap();
        encoder.push(WireFrame::Close(Some(close))).unwrap();
        assert!(
            encoder.push(WireFrame::Pong(vec![])).is_err(),
            "nothing after our Close"
        );
        let frames = parse_server_frames(&drain(&mut encoder, step));
        let mut expected: Vec<(u8, Vec<u8>)> =
            sizes.iter().map(|&n| (0x82, vec![n as u8; n])).collect();
        expected.push((0x81, "hé".as_bytes().to_vec()));
        expected.push((0x89, vec![1; 125]));
        expected.push((0x88, [&1001_u16.to_be_bytes()[..], b"bye"].concat()));
        assert_eq!(frames, expected, "written {step} bytes at a time");
    }
}

/// A queued message is the application's own payload, not a copy: one 10 MB
/// broadcast to many connections is 10 MB, whatever their sockets accept.
#[test]
fn a_queued_message_shares_its_payload() {
    let payload: Arc<str> = "x".repeat(10 << 20).into();
    let mut encoders: Vec<Encoder> = (0..100).map(|_| Encoder::default()).collect();
    for encoder in &mut encoders {
        encoder
            .push(WireFrame::Message(Message::Text(payload.clone())))
            .unwrap();
    }
    assert_eq!(Arc::strong_count(&payload), 101);
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    let n = encoders[0].slices(&mut slices);
    assert_eq!(n, 2, "header and payload");
    assert!(
        std::ptr::eq(slices[1].as_ptr(), payload.as_ptr()),
        "the payload is written in place"
    );
    drop(encoders);
    assert_eq!(Arc::strong_count(&payload), 1);
}

/// A connection never written to holds no queue; one written a frame at a time
/// reuses the same small queue (no allocation per write); a burst's storage is
/// freed once it is written.
#[test]
fn the_queue_is_kept_small_not_made_anew_per_write() {
    let mut encoder = Encoder::default();
    assert_eq!(encoder.capacity(), 0);
    let mut kept = None;
    for _ in 0..10 {
        encoder
            .push(WireFrame::Message(Message::text("hi")))
            .unwrap();
        drain(&mut encoder, 4096);
        let capacity = encoder.capacity();
        assert!(capacity > 0, "kept for the next write");
        assert_eq!(*kept.get_or_insert(capacity), capacity);
    }
    for _ in 0..1_000 {
        encoder
            .push(WireFrame::Message(Message::text("hi")))
            .unwrap();
    }
    assert!(encoder.capacity() >= 1_000);
    drain(&mut encoder, 4096);
    assert!(
        encoder.capacity() <= 8,
        "the burst's storage freed: {}",
        encoder.capacity()
    );
}
