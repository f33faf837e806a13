//! Races around readiness: emit ∥ the transition to Ready, auth success ∥ the
//! readiness deadline, and waiters ∥ transitions.

use std::future::Future;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;
use ws_lifecycle::core::CloseCause;
use ws_lifecycle::{Config, Connection, ConnectionId, Phase};

use crate::{delivered, drain, msg};

/// Model 4 (G2): two producers emit while the owner makes the connection ready and
/// then sends. Every event exactly once, per-producer order kept, and every event
/// emitted before the transition precedes the send made after it.
#[test]
fn g2_emit_races_transition_to_ready() {
    loom::model(|| {
        let now = Instant::now();
        let conn = Connection::new(ConnectionId::new(4), Config::default());
        let transport = conn.transport();
        let conn = conn.accept(now).unwrap().authenticate(None, now).unwrap();
        let ready_started = Arc::new(AtomicBool::new(false));
        // Producer A emits 10, 11; producer B emits 20 — during the flush too.
        let spawn = |events: Vec<u32>| {
            let emitter = conn.emitter();
            let ready_started = ready_started.clone();
            thread::spawn(move || {
                let mut before_ready = Vec::new();
                for n in events {
                    emitter.emit(msg(n)).unwrap();
                    // If the owner had not even started `ready` when this emit
                    // returned, the event was buffered before the transition.
                    if !ready_started.load(Ordering::SeqCst) {
                        before_ready.push(n);
                    }
                }
                before_ready
            })
        };
        let (a, b) = (spawn(vec![10, 11]), spawn(vec![20]));
        ready_started.store(true, Ordering::SeqCst);
        let mut conn = conn.ready(now).unwrap();
        conn.send(msg(99)).unwrap();
        let mut buffered = a.join().unwrap();
        buffered.extend(b.join().unwrap());
        let got = delivered(&drain(&transport, now));
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            [10, 11, 20, 99],
            "G2: every event exactly once: {got:?}"
        );
        let pos = |n: u32| got.iter().position(|x| *x == n).unwrap();
        assert!(pos(10) < pos(11), "G2: per-producer order: {got:?}");
        for n in buffered {
            assert!(
                pos(n) < pos(99),
                "G2: event {n} buffered before ready must precede the later send: {got:?}"
            );
        }
    });
}

/// Model 5 (G5): authentication and readiness complete while the readiness deadline
/// fires. Exactly one wins, and the final state agrees with the winner.
#[test]
fn g5_auth_success_races_readiness_deadline() {
    loom::model(|| {
        let t0 = Instant::now();
        let conn = Connection::new(ConnectionId::new(5), Config::default());
        let transport = conn.transport();
        let conn = conn.accept(t0).unwrap();
        let deadline = transport.poll_timeout().unwrap();
        let before = deadline - Duration::from_millis(1);
        let timer = thread::spawn(move || {
            transport.handle_timeout(deadline);
            transport
        });
        let won = conn
            .authenticate(None, before)
            .and_then(|c| c.ready(before))
            .map(|c| c.phase());
        let transport = timer.join().unwrap();
        match won {
            Ok(phase) => {
                assert_eq!(phase, Phase::Ready);
                assert_eq!(
                    transport.phase(),
                    Phase::Ready,
                    "G5: the deadline was stale"
                );
                assert_eq!(transport.close_record(), None);
            }
            Err(gone) => {
                let record = gone.record().expect("closed by the deadline");
                assert_eq!(
                    record.cause,
                    CloseCause::ReadinessDeadline,
                    "G5: one winner"
                );
                assert_eq!(transport.phase(), Phase::Closing);
            }
        }
    });
}

/// A waker that counts its wakes.
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: StdArc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Model 6a (G6): a task polls `wait_ready` (its own counting waker) while the owner
/// makes the connection ready — and nothing else happens, so only that transition
/// can wake it. A poll that returned `Pending` is always followed by a wake.
#[test]
fn g6_wait_ready_races_transition() {
    loom::model(|| {
        let now = Instant::now();
        let conn = Connection::new(ConnectionId::new(6), Config::default());
        let observer = conn.observer();
        let conn = conn.accept(now).unwrap().authenticate(None, now).unwrap();
        let counter = StdArc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let t = thread::spawn(move || {
            let mut fut = Box::pin(observer.wait_ready());
            let pending = fut
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending();
            (pending, fut)
        });
        let _ready = conn.ready(now).unwrap();
        let (pending, mut fut) = t.join().unwrap();
        if pending {
            assert_eq!(
                counter.0.load(Ordering::SeqCst),
                1,
                "G6: the pending waiter was not woken by ready"
            );
        }
        let noop = Waker::from(StdArc::new(Counter(AtomicUsize::new(0))));
        let done = fut.as_mut().poll(&mut Context::from_waker(&noop));
        assert!(
            matches!(done, Poll::Ready(Ok(()))),
            "G6: wait_ready completes once ready"
        );
    });
}

/// Model 6b (G6): a task polls `wait_closed` while the owner closes and the driver
/// finishes the close handshake. A poll that returned `Pending` is always followed by
/// a wake, and the future then completes.
#[test]
fn g6_wait_closed_races_close_handshake() {
    loom::model(|| {
        let now = Instant::now();
        let (conn, transport) = crate::ready_connection(Config::default(), now);
        let observer = conn.observer();
        let counter = StdArc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let t = thread::spawn(move || {
            let mut fut = Box::pin(observer.wait_closed());
            let pending = fut
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending();
            (pending, fut)
        });
        let closing = conn.close(ws_lifecycle::CloseFrame::normal(), now);
        let _ = drain(&transport, now);
        transport.handle_peer_close(None, now).unwrap();
        let (pending, mut fut) = t.join().unwrap();
        if pending {
            assert!(
                counter.0.load(Ordering::SeqCst) >= 1,
                "G6: the pending waiter was never woken"
            );
        }
        let noop = Waker::from(StdArc::new(Counter(AtomicUsize::new(0))));
        let done = fut.as_mut().poll(&mut Context::from_waker(&noop));
        assert!(
            matches!(done, Poll::Ready(_)),
            "G6: wait_closed completes once closed"
        );
        assert!(closing.is_closed());
    });
}

/// Model 12 (G5): a re-authentication races the expiry of the current credential.
/// Exactly one wins: either the credential was renewed first (and the connection
/// stays ready), or it expired first (and the renewal is refused).
#[test]
fn g5_reauthentication_races_credential_expiry() {
    loom::model(|| {
        let t0 = Instant::now();
        let expiry = t0 + Duration::from_secs(1);
        let conn = Connection::new(ConnectionId::new(12), Config::default());
        let transport = conn.transport();
        let conn = conn.accept(t0).unwrap();
        let mut conn = conn
            .authenticate(Some(expiry), t0)
            .unwrap()
            .ready(t0)
            .unwrap();
        assert_eq!(transport.poll_timeout(), Some(expiry));
        let timer = thread::spawn(move || {
            transport.handle_timeout(expiry);
            transport
        });
        let before = expiry - Duration::from_millis(1);
        let renewed = conn.reauthenticate(Some(expiry + Duration::from_secs(3600)), before);
        let transport = timer.join().unwrap();
        match renewed {
            Ok(()) => {
                assert_eq!(
                    transport.phase(),
                    Phase::Ready,
                    "G5: the old expiry was superseded"
                );
                assert_eq!(transport.close_record(), None);
            }
            Err(rejected) => {
                assert_eq!(rejected.reason, ws_lifecycle::core::RejectReason::Closing);
                let record = transport.close_record().expect("closed by the expiry");
                assert_eq!(
                    record.cause,
                    CloseCause::CredentialExpired,
                    "G5: one winner"
                );
            }
        }
    });
}
