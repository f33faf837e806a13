//! Benchmark 4, broadcast fan-out: one message to [`RECEIVERS`] `Ready` connections
//! listed in a [`Registry`], every one of them drained — against
//! `tokio::sync::broadcast` with as many receivers, each receiving it, and a naive
//! baseline (a `Mutex<VecDeque>` per receiver, pushed to in turn), in the same run.
//!
//! Two ways of draining, each applied to the library and to `tokio::sync::broadcast`
//! alike:
//!
//! - `parked`: as in real use, every receiver's task is parked on its queue
//!   ([`Transport::poll_transmit_batch`], as the crate's driver does; a `recv()`
//!   future for tokio), so the broadcast wakes every one of them, and each then takes
//!   the message and parks again;
//! - `polled`: the receivers just take what is queued (`Transport::next_frames`;
//!   `try_recv` until empty), no waker registered.
//!
//! Time per iteration is one broadcast plus all the deliveries; the figure of merit
//! is ns per delivery (time / [`RECEIVERS`]) and the speed ratio against
//! `tokio::sync::broadcast` (its time / ours: ≥ 1.0 means as fast or faster).
//! Everything runs on one thread, so the figures are CPU cost, not latency.

mod support;

use std::collections::VecDeque;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use support::counting_waker;
use tokio::sync::broadcast;
use ws_lifecycle::{
    Config, Connection, ConnectionId, Frame, Message, Ready, Registration, Registry,
    RegistryConfig, Transport,
};

/// Receivers per broadcast.
const RECEIVERS: usize = 10_000;

/// Frames a driver takes per call (the crate's driver takes up to 64).
const BATCH: usize = 64;

/// The broadcast payload (shared, as a chat server's `said` message is).
const PAYLOAD: &str = "{\"type\":\"said\",\"from\":\"ada\",\"text\":\"hello, everyone\"}";

/// [`RECEIVERS`] `Ready` connections in an open registry, with their drivers' sides.
struct Connections {
    registry: Registry,
    transports: Vec<Transport>,
    wakers: Vec<Waker>,
    _conns: Vec<Connection<Ready>>,
    _registrations: Vec<Registration>,
}

impl Connections {
    fn new() -> Connections {
        let now = Instant::now();
        let registry = Registry::new(RegistryConfig::default());
        registry.open();
        let (mut conns, mut transports, mut registrations) = (vec![], vec![], vec![]);
        for i in 0..RECEIVERS {
            let conn = Connection::new(ConnectionId::new(i as u64 + 1), Config::default());
            transports.push(conn.transport());
            let conn = conn.accept(now).expect("accept");
            registrations.push(registry.register(&conn, now).expect("register"));
            let conn = conn.authenticate(None, now).expect("authenticate");
            registry
                .identify(&conn, &format!("user{i}"))
                .expect("identify");
            conns.push(conn.ready(now).expect("ready"));
        }
        let wakers = (0..RECEIVERS).map(|_| counting_waker()).collect();
        let this = Connections {
            registry,
            transports,
            wakers,
            _conns: conns,
            _registrations: registrations,
        };
        this.park_all(now);
        this
    }

    /// Every driver drains its outbox and parks, as the crate's driver does: one
    /// `poll_transmit_batch` takes what is queued and, having emptied it, registers
    /// the waker; returns how many messages were taken.
    fn park_all(&self, now: Instant) -> usize {
        let mut taken = 0;
        let mut batch = Vec::with_capacity(BATCH);
        for (transport, waker) in self.transports.iter().zip(&self.wakers) {
            let mut cx = Context::from_waker(waker);
            loop {
                match transport.poll_transmit_batch(&mut cx, now, &mut batch, BATCH) {
                    Poll::Ready(Some(n)) => {
                        taken += n;
                        black_box(batch.drain(..).count());
                        if n < BATCH {
                            break; // drained, and parked
                        }
                    }
                    Poll::Ready(None) => panic!("a connection closed"),
                    Poll::Pending => break,
                }
            }
        }
        taken
    }

    /// Every driver takes what is queued (`next_frames`), without parking.
    fn poll_all(&self, now: Instant) -> usize {
        let mut taken = 0;
        let mut batch = Vec::with_capacity(BATCH);
        for transport in &self.transports {
            loop {
                let n = transport.next_frames(now, &mut batch, BATCH);
                debug_assert!(batch.iter().all(|f| matches!(f, Frame::Message(_))));
                taken += n;
                black_box(batch.drain(..).count());
                if n < BATCH {
                    break;
                }
            }
        }
        taken
    }

    /// One broadcast, and every connection drained (`parked`: drivers park again).
    fn round(&self, message: &Message, parked: bool) -> Duration {
        let now = Instant::now();
        let start = Instant::now();
        let report = self.registry.broadcast(message.clone());
        let taken = if parked {
            self.park_all(now)
        } else {
            self.poll_all(now)
        };
        let elapsed = start.elapsed();
        assert_eq!(report.delivered, RECEIVERS, "every Ready connection (G7)");
        assert_eq!(taken, RECEIVERS);
        elapsed
    }
}

/// A receiver task of the tokio baseline: receives forever, parking on `recv()`.
type RecvTask = Pin<Box<dyn Future<Output = ()>>>;

/// `tokio::sync::broadcast` with [`RECEIVERS`] receivers.
struct Tokio {
    tx: broadcast::Sender<Arc<str>>,
    /// `parked`: one task per receiver, each parked in `recv().await`.
    tasks: Vec<(RecvTask, Waker)>,
    received: Arc<AtomicUsize>,
    /// `polled`: bare receivers, drained with `try_recv`.
    receivers: Vec<broadcast::Receiver<Arc<str>>>,
}

impl Tokio {
    fn new(parked: bool) -> Tokio {
        let (tx, _) = broadcast::channel(16);
        let received = Arc::new(AtomicUsize::new(0));
        let mut this = Tokio {
            tx,
            tasks: Vec::new(),
            received,
            receivers: Vec::new(),
        };
        for _ in 0..RECEIVERS {
            let mut rx = this.tx.subscribe();
            if parked {
                let received = this.received.clone();
                let task: RecvTask = Box::pin(async move {
                    while let Ok(message) = rx.recv().await {
                        black_box(message);
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                });
                this.tasks.push((task, counting_waker()));
            } else {
                this.receivers.push(rx);
            }
        }
        // Park every task.
        for (task, waker) in &mut this.tasks {
            assert!(
                task.as_mut()
                    .poll(&mut Context::from_waker(waker))
                    .is_pending()
            );
        }
        this
    }

    fn round(&mut self, payload: &Arc<str>) -> Duration {
        let start = Instant::now();
        let before = self.received.load(Ordering::Relaxed);
        self.tx.send(payload.clone()).expect("receivers");
        let mut taken = 0;
        for (task, waker) in &mut self.tasks {
            // Woken by the send: it takes the message and parks again.
            let _ = task.as_mut().poll(&mut Context::from_waker(waker));
        }
        for rx in &mut self.receivers {
            while let Ok(message) = rx.try_recv() {
                black_box(message);
                taken += 1;
            }
        }
        let elapsed = start.elapsed();
        taken += self.received.load(Ordering::Relaxed) - before;
        assert_eq!(taken, RECEIVERS);
        elapsed
    }
}

/// The naive baseline: a `Mutex<VecDeque>` per receiver, pushed to in turn.
struct Naive {
    queues: Vec<Arc<Mutex<VecDeque<Arc<str>>>>>,
}

impl Naive {
    fn new() -> Naive {
        Naive {
            queues: (0..RECEIVERS)
                .map(|_| Arc::new(Mutex::new(VecDeque::new())))
                .collect(),
        }
    }

    fn round(&self, payload: &Arc<str>) -> Duration {
        let start = Instant::now();
        for queue in &self.queues {
            queue
                .lock()
                .expect("not poisoned")
                .push_back(payload.clone());
        }
        let mut taken = 0;
        for queue in &self.queues {
            while let Some(message) = queue.lock().expect("not poisoned").pop_front() {
                black_box(message);
                taken += 1;
            }
        }
        let elapsed = start.elapsed();
        assert_eq!(taken, RECEIVERS);
        elapsed
    }
}

/// The five measurements, in one group; throughput is deliveries.
fn fanout(c: &mut Criterion) {
    let payload: Arc<str> = Arc::from(PAYLOAD);
    let message = Message::Text(payload.clone());
    let connections = Connections::new();
    let mut tokio_parked = Tokio::new(true);
    let mut tokio_polled = Tokio::new(false);
    let naive = Naive::new();
    let mut group = c.benchmark_group("fanout");
    group.throughput(Throughput::Elements(RECEIVERS as u64));
    group.sample_size(30);
    let repeat = |iters: u64, mut round: Box<dyn FnMut() -> Duration + '_>| {
        (0..iters).map(|_| round()).sum::<Duration>()
    };
    group.bench_function(BenchmarkId::new("ws_lifecycle", "parked"), |b| {
        b.iter_custom(|iters| repeat(iters, Box::new(|| connections.round(&message, true))))
    });
    group.bench_function(BenchmarkId::new("tokio_broadcast", "parked"), |b| {
        b.iter_custom(|iters| repeat(iters, Box::new(|| tokio_parked.round(&payload))))
    });
    group.bench_function(BenchmarkId::new("ws_lifecycle", "polled"), |b| {
        b.iter_custom(|iters| repeat(iters, Box::new(|| connections.round(&message, false))))
    });
    group.bench_function(BenchmarkId::new("tokio_broadcast", "polled"), |b| {
        b.iter_custom(|iters| repeat(iters, Box::new(|| tokio_polled.round(&payload))))
    });
    group.bench_function(BenchmarkId::new("naive_queues", "polled"), |b| {
        b.iter_custom(|iters| repeat(iters, Box::new(|| naive.round(&payload))))
    });
    group.finish();
}

/// Runs the group with criterion's command-line options (`--measurement-time`, …).
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    fanout(&mut criterion);
    criterion.final_summary();
}
