//! Benchmark 2, the full lifecycle in process, no I/O: connecting → accepted →
//! authenticated → ready → one send → close → (our Close written, the peer's Close
//! received) → closed, per connection. Three variants in one run:
//!
//! - `ws_lifecycle/bare`: the type-state [`Connection`] alone;
//! - `ws_lifecycle/registered`: the same, listed in an open [`Registry`] at accept,
//!   identified as a user after authentication, unlisted at `Closed`;
//! - `hand_rolled`: the baseline — what a careful hand-written server does without
//!   the crate: one `Arc<Mutex<..>>` per connection holding a phase byte and an
//!   outbox, with the same phase checks, one send, a close and the drain.
//!
//! Allocations per connection are counted by `benches/footprint.rs`, which runs the
//! same sequence under a counting global allocator (kept out of this binary so the
//! counter's atomics do not weigh on these timings).

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use criterion::{BenchmarkId, Criterion};
use ws_lifecycle::{
    CloseFrame, Config, Connection, ConnectionId, Frame, Message, Registry, RegistryConfig,
};

/// One connection's whole life on the type-state API; with `registry`, listed in it.
fn ws_lifecycle_once(id: u64, message: &Message, registry: Option<&Registry>, now: Instant) {
    let conn = Connection::new(ConnectionId::new(id), Config::default())
        .accept(now)
        .expect("accept");
    let registration = registry.map(|r| r.register(&conn, now).expect("register"));
    let conn = conn.authenticate(None, now).expect("authenticate");
    if let Some(registry) = registry {
        registry.identify(&conn, "ada").expect("identify");
    }
    let mut conn = conn.ready(now).expect("ready");
    conn.send(message.clone()).expect("send");
    let mut closing = conn.close(CloseFrame::normal(), now);
    let written = closing.poll_transmit(now);
    debug_assert!(matches!(written, Some(Frame::Message(_))));
    black_box(written);
    let close = closing.poll_transmit(now);
    debug_assert!(matches!(close, Some(Frame::Close(_))));
    black_box(close);
    closing.handle_peer_close(None, now).expect("peer close");
    debug_assert!(closing.is_closed());
    drop(registration);
}

/// The hand-rolled baseline's phases.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HandPhase {
    Connecting,
    Accepted,
    Authenticated,
    Ready,
    Closing,
    Closed,
}

/// The hand-rolled baseline's shared state: a phase and an outbox behind one lock.
struct HandState {
    phase: HandPhase,
    outbox: VecDeque<Message>,
    close_code: Option<u16>,
    close_sent: bool,
}

/// Moves `state` from `from` to `to`, as a hand-written server checks its phase.
fn hand_step(state: &Mutex<HandState>, from: HandPhase, to: HandPhase) {
    let mut s = state.lock().expect("not poisoned");
    assert!(s.phase == from, "wrong phase");
    s.phase = to;
}

/// The baseline's whole life of one connection.
fn hand_rolled_once(message: &Message) {
    let state = Arc::new(Mutex::new(HandState {
        phase: HandPhase::Connecting,
        outbox: VecDeque::new(),
        close_code: None,
        close_sent: false,
    }));
    hand_step(&state, HandPhase::Connecting, HandPhase::Accepted);
    hand_step(&state, HandPhase::Accepted, HandPhase::Authenticated);
    hand_step(&state, HandPhase::Authenticated, HandPhase::Ready);
    {
        let mut s = state.lock().expect("not poisoned");
        if s.phase == HandPhase::Ready {
            s.outbox.push_back(message.clone());
        }
    }
    {
        let mut s = state.lock().expect("not poisoned");
        if s.close_code.is_none() {
            s.close_code = Some(1000);
            s.phase = HandPhase::Closing;
        }
    }
    {
        let mut s = state.lock().expect("not poisoned");
        while let Some(m) = s.outbox.pop_front() {
            black_box(m);
        }
        s.close_sent = true;
        black_box(s.close_code);
    }
    {
        let mut s = state.lock().expect("not poisoned");
        if s.close_sent {
            s.phase = HandPhase::Closed;
        }
    }
    black_box(state);
}

/// The three variants, in one group.
fn lifecycle(c: &mut Criterion) {
    let message = Message::text("{\"type\":\"said\",\"from\":\"ada\",\"text\":\"hello\"}");
    let registry = Registry::new(RegistryConfig::default());
    registry.open();
    let now = Instant::now();
    let mut group = c.benchmark_group("lifecycle");
    let mut id = 0;
    group.bench_function(BenchmarkId::new("ws_lifecycle", "bare"), |b| {
        b.iter(|| {
            id += 1;
            ws_lifecycle_once(id, &message, None, now)
        })
    });
    group.bench_function(BenchmarkId::new("ws_lifecycle", "registered"), |b| {
        b.iter(|| {
            id += 1;
            ws_lifecycle_once(id, &message, Some(&registry), now)
        })
    });
    group.bench_function(BenchmarkId::new("hand_rolled", "mutex_vecdeque"), |b| {
        b.iter(|| hand_rolled_once(&message))
    });
    group.finish();
    assert!(
        registry.is_empty(),
        "every connection left the registry (G7)"
    );
}

/// Runs the group with criterion's command-line options (`--measurement-time`, …).
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    lifecycle(&mut criterion);
    criterion.final_summary();
}
