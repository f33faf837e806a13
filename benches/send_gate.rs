//! Benchmark 1, the send gate: [`Sender::send`] into a `Ready` connection's outbox,
//! with the driver parked on [`Transport::poll_transmit`] as in real use, against two
//! baselines doing the same job without ws-lifecycle in the same run:
//!
//! - `tokio::sync::mpsc` unbounded send, its receiver parked on `poll_recv`;
//! - a bare `Mutex<VecDeque>` push behind a phase check (the floor).
//!
//! Each is measured uncontended (one sending thread) and with two sending threads.
//! The driver side drains outside the timed sections: sends are timed in rounds of
//! [`ROUND`] messages (one thread) or [`CONTENDED_ROUND`] per thread (two), after each
//! of which the queue is drained and the driver's waker registered again — so in
//! every round the first send wakes the parked driver and the others find it already
//! woken, as when a real driver drains its outbox in batches. The connection's outbox
//! is sized ([`CAPACITY`]) so that a round never fills it.
//!
//! `scripts/bench.sh` runs this with short warm-up and measurement times; the figures
//! and ratios are in `docs/performance.md`.

mod support;

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use support::counting_waker;
use tokio::sync::mpsc;
use ws_lifecycle::{Config, Connection, ConnectionId, Message, Sender, Transport};

/// Messages sent per timed round, before the untimed drain (one thread).
const ROUND: usize = 256;

/// Messages each of the two threads sends per timed round: long enough (tens of µs)
/// that the skew between the two threads' release from the barrier is small against
/// the round, so the two really contend.
const CONTENDED_ROUND: usize = 4096;

/// The outbox capacity of the benchmarked connection: room for a whole contended
/// round (two threads × [`CONTENDED_ROUND`]); nothing else depends on it.
const CAPACITY: usize = 4 * CONTENDED_ROUND;

/// The message every send carries: one shared payload, cloned (an atomic increment)
/// per send, in the baselines too.
fn payload() -> Message {
    Message::text("{\"type\":\"said\",\"from\":\"ada\",\"text\":\"hello\"}")
}

/// The job each contender does: a queue with a sending side and a draining side.
trait Gate: Send + Sync + 'static {
    /// Queues one message (the timed operation).
    fn send(&self, message: Message);
    /// Drains everything queued and parks the driver again (untimed).
    fn drain_and_park(&self, waker: &Waker);
}

/// ws-lifecycle: a `Ready` connection's `Sender`, and its `Transport` for the driver.
struct Lifecycle {
    sender: Sender,
    transport: Transport,
    /// The `Connection<Ready>` itself, kept alive (dropping it would not close the
    /// connection, but keeps the setup honest: the owner is still there).
    _conn: Mutex<Connection<ws_lifecycle::Ready>>,
}

impl Lifecycle {
    fn new() -> Lifecycle {
        let now = Instant::now();
        let mut config = Config::default();
        config.outbox_capacity = CAPACITY;
        let conn = Connection::new(ConnectionId::new(1), config);
        let transport = conn.transport();
        let conn = conn
            .accept(now)
            .expect("accept")
            .authenticate(None, now)
            .expect("authenticate")
            .ready(now)
            .expect("ready");
        Lifecycle {
            sender: conn.sender(),
            transport,
            _conn: Mutex::new(conn),
        }
    }
}

impl Gate for Lifecycle {
    fn send(&self, message: Message) {
        let sent = self.sender.send(message);
        debug_assert!(sent.is_ok());
        black_box(sent).ok();
    }

    fn drain_and_park(&self, waker: &Waker) {
        let mut cx = Context::from_waker(waker);
        let now = Instant::now();
        loop {
            match self.transport.poll_transmit(&mut cx, now) {
                Poll::Ready(Some(frame)) => drop(black_box(frame)),
                Poll::Ready(None) => panic!("the connection closed"),
                Poll::Pending => break,
            }
        }
    }
}

/// Baseline (a): `tokio::sync::mpsc` unbounded.
struct Mpsc {
    tx: mpsc::UnboundedSender<Message>,
    rx: Mutex<mpsc::UnboundedReceiver<Message>>,
}

impl Mpsc {
    fn new() -> Mpsc {
        let (tx, rx) = mpsc::unbounded_channel();
        Mpsc {
            tx,
            rx: Mutex::new(rx),
        }
    }
}

impl Gate for Mpsc {
    fn send(&self, message: Message) {
        black_box(self.tx.send(message)).ok();
    }

    fn drain_and_park(&self, waker: &Waker) {
        let mut cx = Context::from_waker(waker);
        let mut rx = self.rx.lock().expect("not poisoned");
        while let Poll::Ready(message) = rx.poll_recv(&mut cx) {
            drop(black_box(message));
        }
    }
}

/// Baseline (b), the floor: a phase check and a push under a `Mutex`, no waker.
struct BarePush {
    phase: AtomicU8,
    queue: Mutex<(u8, VecDeque<Message>)>,
}

/// The bare baseline's "Ready" phase code.
const READY: u8 = 3;

impl BarePush {
    fn new() -> BarePush {
        BarePush {
            phase: AtomicU8::new(READY),
            queue: Mutex::new((READY, VecDeque::new())),
        }
    }
}

impl Gate for BarePush {
    fn send(&self, message: Message) {
        let mut queue = self.queue.lock().expect("not poisoned");
        if queue.0 == READY {
            queue.1.push_back(message);
        }
        black_box(self.phase.load(Ordering::Relaxed));
    }

    fn drain_and_park(&self, _waker: &Waker) {
        let mut queue = self.queue.lock().expect("not poisoned");
        queue.1.drain(..).for_each(|m| drop(black_box(m)));
    }
}

/// `iters` sends from one thread, in timed rounds of [`ROUND`].
fn uncontended(gate: &dyn Gate, iters: u64) -> Duration {
    let waker = counting_waker();
    let message = payload();
    gate.drain_and_park(&waker);
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let n = left.min(ROUND);
        let start = Instant::now();
        for _ in 0..n {
            gate.send(message.clone());
        }
        total += start.elapsed();
        gate.drain_and_park(&waker);
        left -= n;
    }
    total
}

/// `iters` sends split between two threads sending at once, in rounds of
/// [`CONTENDED_ROUND`] per thread. A round's time is the longer of the two threads' times (the barrier
/// that starts and ends a round is not timed); the result is the wall-clock time per
/// send with two senders contending for one queue.
fn contended(gate: Arc<dyn Gate>, iters: u64) -> Duration {
    let waker = counting_waker();
    gate.drain_and_park(&waker);
    let rounds = (iters as usize).div_ceil(2 * CONTENDED_ROUND);
    let start = Arc::new(Barrier::new(3));
    let done = Arc::new(Barrier::new(3));
    let spawn = |share: usize| {
        let (gate, start, done) = (gate.clone(), start.clone(), done.clone());
        std::thread::spawn(move || {
            let message = payload();
            let mut times = Vec::with_capacity(rounds);
            for round in 0..rounds {
                // The last round may be short so that exactly `iters` are sent.
                let sent_before = round * 2 * CONTENDED_ROUND;
                let in_round = (iters as usize - sent_before).min(2 * CONTENDED_ROUND);
                let mine = in_round / 2 + if share == 0 { in_round % 2 } else { 0 };
                start.wait();
                let t = Instant::now();
                for _ in 0..mine {
                    gate.send(message.clone());
                }
                times.push(t.elapsed());
                done.wait();
            }
            times
        })
    };
    let (a, b) = (spawn(0), spawn(1));
    for _ in 0..rounds {
        start.wait();
        done.wait();
        gate.drain_and_park(&waker);
    }
    let (a, b) = (a.join().expect("sender a"), b.join().expect("sender b"));
    a.iter().zip(&b).map(|(a, b)| *a.max(b)).sum()
}

/// The six measurements, in one group so the report shows them side by side.
fn send_gate(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_gate");
    let lifecycle: Arc<dyn Gate> = Arc::new(Lifecycle::new());
    let mpsc: Arc<dyn Gate> = Arc::new(Mpsc::new());
    let bare: Arc<dyn Gate> = Arc::new(BarePush::new());
    for (name, gate) in [
        ("ws_lifecycle", &lifecycle),
        ("tokio_mpsc_unbounded", &mpsc),
        ("mutex_vecdeque", &bare),
    ] {
        group.bench_function(BenchmarkId::new(name, "1_thread"), |b| {
            b.iter_custom(|iters| uncontended(&**gate, iters))
        });
        group.bench_function(BenchmarkId::new(name, "2_threads"), |b| {
            b.iter_custom(|iters| contended(gate.clone(), iters))
        });
    }
    group.finish();
}

/// Runs the group with criterion's command-line options (`--measurement-time`, …).
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    send_gate(&mut criterion);
    criterion.final_summary();
}
