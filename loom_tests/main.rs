//! loom models of the shared connection state: every interleaving of the real code,
//! within a preemption bound, for each race the shared state must win.
//!
//! Run (the suite does this): `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3
//! CARGO_TARGET_DIR=target-loom cargo test --release --no-default-features --test loom`.
//!
//! One model per race, each named for the guarantee it checks (G1–G8). Built with
//! `--cfg loom`, ws-lifecycle's locks and atomics are loom's (`src/sync.rs`), so loom
//! explores them; `downstream.rs` shows the same from a user's side.
#![cfg(loom)]

mod close;
mod downstream;
mod ready;
mod registry;
mod send;

use std::collections::BTreeSet;
use std::time::Instant;

use ws_lifecycle::{Config, Connection, ConnectionId, Frame, Message, Ready, Transport};

/// A connection brought to `Ready` on the model's thread, and its driver handle.
pub fn ready_connection(config: Config, now: Instant) -> (Connection<Ready>, Transport) {
    let conn = Connection::new(ConnectionId::new(1), config);
    let transport = conn.transport();
    let conn = conn.accept(now).unwrap();
    let conn = conn.authenticate(None, now).unwrap();
    (conn.ready(now).unwrap(), transport)
}

/// A numbered text message.
pub fn msg(n: u32) -> Message {
    Message::text(n.to_string())
}

/// The number of a message made by [`msg`].
pub fn num(m: &Message) -> u32 {
    m.as_text()
        .and_then(|t| t.parse().ok())
        .expect("a numbered message")
}

/// Everything the driver can write now (bounded: models queue a handful of frames).
pub fn drain(transport: &Transport, now: Instant) -> Vec<Frame> {
    let mut frames = Vec::new();
    for _ in 0..16 {
        match transport.next_frame(now) {
            Some(frame) => frames.push(frame),
            None => break,
        }
    }
    assert_eq!(
        transport.next_frame(now),
        None,
        "more frames than a model queues"
    );
    frames
}

/// Checks the frame stream (G3, G4): messages, then at most one Close, nothing after
/// it; returns the delivered message numbers in order.
pub fn delivered(frames: &[Frame]) -> Vec<u32> {
    let mut out = Vec::new();
    let mut closed = false;
    for frame in frames {
        assert!(!closed, "G3: a frame after our Close: {frames:?}");
        match frame {
            Frame::Message(m) => out.push(num(m)),
            Frame::Close(_) => closed = true,
        }
    }
    out
}

/// Message accounting (G3): every sent message was delivered or returned — exactly
/// once — and nothing else appeared.
pub fn accounted(sent: &[u32], delivered: &[u32], returned: &[u32]) {
    let mut seen = BTreeSet::new();
    for n in delivered.iter().chain(returned) {
        assert!(
            seen.insert(*n),
            "G3: message {n} delivered or returned twice ({delivered:?} / {returned:?})"
        );
    }
    let sent: BTreeSet<u32> = sent.iter().copied().collect();
    assert_eq!(
        seen, sent,
        "G3: delivered {delivered:?} + returned {returned:?} != sent"
    );
}
