//! Stress test with real OS threads, bounded in count and time: per iteration a
//! connection brought to `Ready`, three sender threads (one of them using
//! `send_async` on a parking waker), one emitter thread started before `Ready`, one
//! driver thread taking frames, and one closer thread that closes at a random moment
//! (a local close through a `Sender`, or the peer's Close through the `Transport`).
//!
//! Checked per iteration, independently of any model:
//!
//! - **G2**: events emitted before `Ready` are delivered before every message a
//!   sender sent (senders only exist after `Ready`);
//! - **G3**: delivered (yielded as `Frame::Message` before our Close) + returned (in a
//!   `SendError`, or by `take_unsent`) = sent/emitted, no duplicates, per-sender and
//!   per-emitter order kept, nothing after our Close;
//! - **G4**: exactly one Close frame, carrying the close record's frame, which is the
//!   frame every `Sender::close` caller was told;
//! - **G6**: an async sender and an async driver on parking wakers are never left
//!   waiting (a missed wakeup fails after `LOST_WAKEUP` instead of hanging).
//!
//! `STRESS_SEED` replays a run; `STRESS_ITERATIONS` changes the iteration count.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use ws_lifecycle::core::{CloseCause, OverflowPolicy, SendErrorKind};
use ws_lifecycle::{
    CloseCode, CloseFrame, CloseRecord, Config, Connection, ConnectionId, Frame, Message, Phase,
};

const ITERATIONS: usize = 200;
/// The whole test stops starting iterations after this long.
const TIME_CAP: Duration = Duration::from_secs(10);
/// At most this many messages per sender; a sender stops after `REFUSALS` `Closed`s.
const PER_SENDER: u32 = 2000;
const REFUSALS: u32 = 3;
const EVENTS: u32 = 200;
/// How long a parked task may wait for a wakeup that must come before the test calls
/// it lost (G6).
const LOST_WAKEUP: Duration = Duration::from_secs(3);

// ── helpers ─────────────────────────────────────────────────────────────────

/// xorshift64*: a tiny seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Message source: sender thread `k` (0..3) or the emitter (`k == EMITTER`).
const EMITTER: u8 = 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Msg {
    k: u8,
    seq: u32,
}

impl Msg {
    fn message(self) -> Message {
        Message::text(format!("{}#{}", self.k, self.seq))
    }

    fn parse(message: &Message) -> Msg {
        let (k, seq) = message.as_text().unwrap().split_once('#').unwrap();
        Msg {
            k: k.parse().unwrap(),
            seq: seq.parse().unwrap(),
        }
    }
}

/// A waker that sets a flag and unparks the thread that waits on it.
struct ParkWaker {
    woken: AtomicBool,
    thread: thread::Thread,
}

impl Wake for ParkWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Polls `fut` to completion on this thread; a wakeup that does not come within
/// `LOST_WAKEUP` is a G6 failure.
fn block_on<F: Future>(fut: F, what: &str) -> F::Output {
    let park = Arc::new(ParkWaker {
        woken: AtomicBool::new(false),
        thread: thread::current(),
    });
    let waker = Waker::from(park.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        park.woken.store(false, Ordering::SeqCst);
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        let deadline = Instant::now() + LOST_WAKEUP;
        while !park.woken.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "G6: lost wakeup in {what}");
            thread::park_timeout(left);
        }
    }
}

/// What a producer thread saw.
#[derive(Default)]
struct ProducerLog {
    attempted: Vec<Msg>,
    returned: Vec<Msg>,
    /// Emitter only: events certainly buffered before `Ready` (the phase was still
    /// not `Ready` after the emit returned `Ok`).
    buffered: Vec<Msg>,
}

#[derive(Default)]
struct Totals {
    iterations: usize,
    attempted: usize,
    delivered: usize,
    returned: usize,
    buffered: usize,
    peer_closes: usize,
    slow_consumer_closes: usize,
}

// ── one iteration ───────────────────────────────────────────────────────────

fn iteration(iter: usize, rng: &mut Rng, totals: &mut Totals) {
    let mut config = Config::default();
    config.outbox_capacity = [4, 64, 1024][rng.below(3) as usize];
    config.pending_capacity = [16, 256][rng.below(2) as usize];
    let slow_consumer = rng.below(3) == 0;
    config.overflow = if slow_consumer {
        OverflowPolicy::slow_consumer()
    } else {
        OverflowPolicy::Reject
    };
    let async_driver = rng.below(2) == 0;
    let peer_close = rng.below(3) == 0;
    let close_delay_us = rng.below(5000);
    // Sometimes the close waits until every sender is done, so that nothing but the
    // driver taking frames can wake an async sender waiting for room (G6).
    let close_after_senders = rng.below(4) == 0;
    let driver_pause_every = 1 + rng.below(64);
    let now = Instant::now();

    let conn = Connection::new(ConnectionId::new(iter as u64), config);
    let transport = conn.transport();
    let observer = conn.observer();
    let conn = conn.accept(now).unwrap().authenticate(None, now).unwrap();

    // The emitter starts before Ready.
    let emitted = Arc::new(AtomicU32::new(0));
    let emitter_thread = {
        let emitter = conn.emitter();
        let emitted = emitted.clone();
        thread::spawn(move || {
            let mut log = ProducerLog::default();
            for seq in 0..EVENTS {
                let msg = Msg { k: EMITTER, seq };
                log.attempted.push(msg);
                match emitter.emit(msg.message()) {
                    Ok(()) => {
                        if matches!(emitter.phase(), Phase::Accepted | Phase::Authenticated) {
                            log.buffered.push(msg);
                        }
                        emitted.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        assert_eq!(Msg::parse(&e.message), msg, "G3: the event comes back");
                        log.returned.push(msg);
                        if e.kind == SendErrorKind::Closed {
                            break;
                        }
                    }
                }
            }
            log
        })
    };
    // Let a few events get buffered, then become ready while the emitter runs on.
    let spin_until = Instant::now() + Duration::from_secs(1);
    while emitted.load(Ordering::SeqCst) < 3 && Instant::now() < spin_until {
        thread::yield_now();
    }
    let ready = conn.ready(now).expect("nothing closes before Ready here");
    let sender = ready.sender();

    // The driver.
    let done = Arc::new(AtomicBool::new(false));
    let close_seen = Arc::new(AtomicBool::new(false));
    let driver_thread = {
        let transport = transport.clone();
        let done = done.clone();
        let close_seen = close_seen.clone();
        thread::spawn(move || {
            let mut frames: Vec<Frame> = Vec::new();
            let mut taken = 0u64;
            loop {
                let frame = if async_driver {
                    block_on(
                        std::future::poll_fn(|cx| transport.poll_transmit(cx, now)),
                        "the driver's poll_transmit",
                    )
                } else {
                    match transport.next_frame(now) {
                        Some(frame) => Some(frame),
                        None if done.load(Ordering::SeqCst) => None,
                        None => {
                            thread::yield_now();
                            continue;
                        }
                    }
                };
                let Some(frame) = frame else { break };
                if matches!(frame, Frame::Close(_)) {
                    close_seen.store(true, Ordering::SeqCst);
                }
                frames.push(frame);
                taken += 1;
                if taken % driver_pause_every == 0 {
                    thread::yield_now(); // a slow reader: lets the outbox fill
                }
            }
            frames
        })
    };

    // Three senders; sender 2 waits for room with `send_async`.
    let senders_done = Arc::new(AtomicU32::new(0));
    let sender_threads: Vec<_> = (0..3u8)
        .map(|k| {
            let sender = sender.clone();
            let senders_done = senders_done.clone();
            thread::spawn(move || {
                let mut log = ProducerLog::default();
                let mut refusals = 0;
                for seq in 0..PER_SENDER {
                    let msg = Msg { k, seq };
                    log.attempted.push(msg);
                    let result = if k == 2 {
                        block_on(sender.send_async(msg.message()), "send_async")
                    } else {
                        sender.send(msg.message())
                    };
                    if let Err(e) = result {
                        assert_eq!(Msg::parse(&e.message), msg, "G3: the message comes back");
                        log.returned.push(msg);
                        if e.kind == SendErrorKind::Closed {
                            refusals += 1;
                            if refusals == REFUSALS {
                                break;
                            }
                        }
                    }
                }
                senders_done.fetch_add(1, Ordering::SeqCst);
                log
            })
        })
        .collect();

    // The closer.
    let closer_thread = {
        let sender = sender.clone();
        let transport = transport.clone();
        thread::spawn(move || -> Option<CloseRecord> {
            if close_after_senders {
                while senders_done.load(Ordering::SeqCst) < 3 {
                    thread::yield_now();
                }
            }
            let until = Instant::now() + Duration::from_micros(close_delay_us);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            if peer_close {
                let going_away = CloseFrame::new(CloseCode::GOING_AWAY, "bye").unwrap();
                transport.handle_peer_close(Some(going_away), now).unwrap();
                None
            } else {
                let code = CloseCode::application(4000 + (iter % 100) as u16).unwrap();
                sender.close_at(CloseFrame::new(code, "closer").unwrap(), now)
            }
        })
    };

    // Join the producers and the closer, then let the driver finish.
    let emitter_log = emitter_thread.join().expect("emitter thread");
    let sender_logs: Vec<ProducerLog> = sender_threads
        .into_iter()
        .map(|t| t.join().expect("sender thread"))
        .collect();
    let closer_record = closer_thread.join().expect("closer thread");
    let spin_until = Instant::now() + LOST_WAKEUP;
    while !close_seen.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < spin_until,
            "iteration {iter}: the driver never got our Close frame"
        );
        thread::yield_now();
    }
    // Nothing must follow the Close, even while the driver keeps polling.
    thread::yield_now();
    done.store(true, Ordering::SeqCst);
    if transport.phase() == Phase::Closing {
        // The peer acknowledges our Close: closed, and an async driver is woken.
        transport.handle_peer_close(None, now).unwrap();
    }
    let frames = driver_thread.join().expect("driver thread");
    assert_eq!(transport.phase(), Phase::Closed);
    assert_eq!(observer.phase(), Phase::Closed);
    assert_eq!(
        transport.next_frame(now),
        None,
        "G3: nothing after our Close"
    );
    let unsent: Vec<Msg> = transport.take_unsent().iter().map(Msg::parse).collect();

    // ── checks ──
    let record = transport.close_record().expect("a close record");
    let close_positions: Vec<usize> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f, Frame::Close(_)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        close_positions.len(),
        1,
        "G4: exactly one Close frame, iteration {iter}"
    );
    assert_eq!(
        close_positions[0],
        frames.len() - 1,
        "G3: a frame after our Close, iteration {iter}"
    );
    let Frame::Close(close) = &frames[close_positions[0]] else {
        unreachable!()
    };
    assert_eq!(close, &record.frame, "G4: the Close frame is the record's");
    if let Some(told) = &closer_record {
        assert_eq!(
            told.frame, record.frame,
            "G4: the closer was told the winning close"
        );
        assert_eq!(told.cause, record.cause);
    }
    if record
        .frame
        .as_ref()
        .is_some_and(|f| f.code() == CloseCode::TRY_AGAIN_LATER)
    {
        assert_eq!(
            record.cause,
            CloseCause::SlowConsumer,
            "1013 is only ever ours for a slow consumer"
        );
        totals.slow_consumer_closes += 1;
    }
    if record
        .peer_frame
        .as_ref()
        .is_some_and(|f| f.reason() == "bye")
        && peer_close
    {
        totals.peer_closes += 1;
    }

    let delivered: Vec<Msg> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Message(m) => Some(Msg::parse(m)),
            Frame::Close(_) => None,
        })
        .collect();
    if matches!(record.cause, CloseCause::Local | CloseCause::SlowConsumer) && !peer_close {
        // G2/G3: a local close (ours or the slow-consumer one) writes everything that
        // was queued before it, buffered events included: nothing is left over. (A
        // peer Close crossing it skips the queue by design: then they come back.)
        assert_eq!(
            unsent,
            [],
            "G3: a local close left accepted messages unwritten, iteration {iter}"
        );
    }
    let mut returned: Vec<Msg> = unsent;
    let mut attempted: Vec<Msg> = Vec::new();
    for log in sender_logs.iter().chain([&emitter_log]) {
        returned.extend(&log.returned);
        attempted.extend(&log.attempted);
    }
    let delivered_set: HashSet<Msg> = delivered.iter().copied().collect();
    let returned_set: HashSet<Msg> = returned.iter().copied().collect();
    assert_eq!(
        delivered_set.len(),
        delivered.len(),
        "G2/G3: a message delivered twice, iteration {iter}"
    );
    assert_eq!(
        returned_set.len(),
        returned.len(),
        "G3: a message returned twice, iteration {iter}"
    );
    assert!(
        delivered_set.is_disjoint(&returned_set),
        "G3: delivered and returned, iteration {iter}"
    );
    let mut accounted: Vec<Msg> = delivered.iter().chain(&returned).copied().collect();
    accounted.sort();
    attempted.sort();
    assert_eq!(
        accounted.len(),
        attempted.len(),
        "G3: delivered + returned != sent, iteration {iter}"
    );
    assert_eq!(
        accounted, attempted,
        "G3: delivered + returned != sent, iteration {iter}"
    );

    let mut last: BTreeMap<u8, u32> = BTreeMap::new();
    for m in &delivered {
        if let Some(prev) = last.insert(m.k, m.seq) {
            assert!(
                prev < m.seq,
                "G3: order of source {} broken ({prev} then {}), iteration {iter}",
                m.k,
                m.seq
            );
        }
    }

    let buffered: HashSet<Msg> = emitter_log.buffered.iter().copied().collect();
    let first_sent = delivered.iter().position(|m| m.k != EMITTER);
    let last_buffered = delivered.iter().rposition(|m| buffered.contains(m));
    if let (Some(s), Some(b)) = (first_sent, last_buffered) {
        assert!(
            b < s,
            "G2: a buffered event after a message sent after Ready, iteration {iter}"
        );
    }

    totals.iterations += 1;
    totals.attempted += attempted.len();
    totals.delivered += delivered.len();
    totals.returned += returned.len();
    totals.buffered += buffered.len();
}

/// G2, G3, G4, G6 under real threads: senders, an emitter, a driver and a closer race
/// on one connection; every message is accounted for.
#[test]
fn stress_send_emit_close_accounting_g2_g3_g4_g6() {
    let seed = std::env::var("STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
        | 1;
    let iterations = std::env::var("STRESS_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ITERATIONS);
    println!("stress_threads: STRESS_SEED={seed}");
    let mut rng = Rng(seed);
    let mut t = Totals::default();
    let start = Instant::now();
    for iter in 0..iterations {
        if start.elapsed() >= TIME_CAP {
            println!("stress_threads: time cap reached after {iter} iterations");
            break;
        }
        iteration(iter, &mut rng, &mut t);
    }
    println!(
        "stress_threads: {} iterations in {:.2?}; {} messages checked ({} delivered, {} returned), \
         {} events certainly buffered before Ready, {} peer closes, {} slow-consumer closes",
        t.iterations,
        start.elapsed(),
        t.attempted,
        t.delivered,
        t.returned,
        t.buffered,
        t.peer_closes,
        t.slow_consumer_closes
    );
    assert!(t.iterations > 0);
}
