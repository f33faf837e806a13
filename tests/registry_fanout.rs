//! Broadcast fan-out (**G7**): one slow connection with a full outbox does not delay
//! delivery to 10 000 others.
//!
//! A broadcast copies its targets under the registry's lock, then visits them one
//! connection lock at a time and never waits: a full outbox is a refusal (counted
//! `full`, the connection's [`OverflowPolicy`] applied), not a wait. Checked here:
//!
//! - with 10 000 `Ready` connections and one whose outbox (capacity 4) is full, one
//!   broadcast reports `delivered` 10 000 and `full` 1; each of the 10 000 transports
//!   yields the message, the slow one yields its 4 old messages and not the
//!   broadcast;
//! - the same under [`OverflowPolicy::slow_consumer`]: the slow one is counted `full`,
//!   and at its driver's next timed call it is closing with 1013;
//! - under real threads: one thread broadcasts 100 messages while nobody drains the
//!   slow connection and 4 driver threads drain the 10 000 others: every one of them
//!   gets all 100, in order (bounded by a deadline — a hang fails, speed is not
//!   asserted);
//! - connections still authenticating at a broadcast are counted `not_ready` and never
//!   receive it, not even once they are `Ready`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ws_lifecycle::core::{CloseCause, OverflowPolicy, SendErrorKind};
use ws_lifecycle::registry::BroadcastReport;
use ws_lifecycle::{
    CloseCode, Config, Connection, ConnectionId, Frame, Message, Phase, Ready, Registration,
    Registry, RegistryConfig, Transport,
};

/// The connections that must not be delayed.
const OTHERS: usize = 10_000;
/// The slow connection's outbox.
const SLOW_CAPACITY: usize = 4;
/// Broadcasts in the threaded variant (fits the others' default outbox, 1024).
const BROADCASTS: usize = 100;
const DRIVERS: usize = 4;
/// The threaded variant fails if it has not finished by then (a hang, not slowness).
const HANG: Duration = Duration::from_secs(60);

/// A registered `Ready` connection with its driver's handle and its registration.
struct Listed {
    conn: Connection<Ready>,
    transport: Transport,
    registration: Registration,
}

fn open_registry() -> Registry {
    let registry = Registry::new(RegistryConfig::default());
    registry.open();
    registry
}

fn ready(registry: &Registry, id: u64, config: Config, now: Instant) -> Listed {
    let conn = Connection::new(ConnectionId::new(id), config)
        .accept(now)
        .expect("accept");
    let transport = conn.transport();
    let registration = registry.register(&conn, now).expect("G7: admitted");
    let conn = conn
        .authenticate(None, now)
        .expect("authenticate")
        .ready(now)
        .expect("ready");
    Listed {
        conn,
        transport,
        registration,
    }
}

/// `OTHERS` ready connections with the default config, ids 1..=OTHERS.
fn others(registry: &Registry, now: Instant) -> Vec<Listed> {
    (1..=OTHERS as u64)
        .map(|id| ready(registry, id, Config::default(), now))
        .collect()
}

/// A broadcast's counts as `(delivered, full, not_ready, closing)`.
fn counts(report: &BroadcastReport) -> (usize, usize, usize, usize) {
    (
        report.delivered,
        report.full,
        report.not_ready,
        report.closing,
    )
}

fn old(i: usize) -> Message {
    Message::text(format!("old-{i}"))
}

/// The slow connection (id 0): outbox capacity 4 under `overflow`, filled to full.
fn slow(registry: &Registry, overflow: OverflowPolicy, now: Instant) -> Listed {
    let mut config = Config::default();
    config.outbox_capacity = SLOW_CAPACITY;
    config.overflow = overflow;
    let slow = ready(registry, 0, config, now);
    let sender = slow.conn.sender();
    for i in 0..SLOW_CAPACITY {
        sender.send(old(i)).expect("room for the old messages");
    }
    slow
}

/// Asserts the slow connection's transport yields exactly its old messages.
fn assert_only_old_messages(slow: &Transport, now: Instant) {
    for i in 0..SLOW_CAPACITY {
        assert_eq!(
            slow.next_frame(now),
            Some(Frame::Message(old(i))),
            "G7: the slow connection keeps its old messages, in order"
        );
    }
}

/// Ends every connection by dropping its registration, and checks the listing is
/// empty after (G7).
fn end_all(registry: &Registry, conns: Vec<Listed>) {
    for c in conns {
        drop(c.transport.take_unsent());
        drop(c.registration);
    }
    assert!(registry.is_empty(), "G7: every ended connection left");
}

/// G7: one broadcast, one full outbox among 10 001 `Ready` connections: the 10 000
/// others get the message, the slow one is counted `full` and keeps its old ones.
#[test]
fn full_outbox_is_refused_and_the_others_get_the_broadcast_g7() {
    let now = Instant::now();
    let registry = open_registry();
    let mut all = others(&registry, now);
    let slow = slow(&registry, OverflowPolicy::Reject, now);
    assert_eq!(
        slow.conn
            .sender()
            .send(Message::text("one more"))
            .unwrap_err()
            .kind,
        SendErrorKind::Full,
        "the slow connection's outbox is full before the broadcast"
    );

    let news = Message::text("news");
    let started = Instant::now();
    let report = registry.broadcast(news.clone());
    println!(
        "registry_fanout: one broadcast to {} connections (one full) took {:.2?}",
        OTHERS + 1,
        started.elapsed()
    );
    assert_eq!(
        counts(&report),
        (OTHERS, 1, 0, 0),
        "G7: delivered to the 10 000 others, refused (full) for the slow one: {report:?}"
    );

    for c in &all {
        assert_eq!(
            c.transport.next_frame(now),
            Some(Frame::Message(news.clone())),
            "G7: connection {} got the broadcast",
            c.conn.id()
        );
        assert_eq!(c.transport.next_frame(now), None, "exactly once");
    }
    assert_only_old_messages(&slow.transport, now);
    assert_eq!(
        slow.transport.next_frame(now),
        None,
        "G7: a full outbox refuses the broadcast: the slow connection never gets it"
    );
    assert_eq!(slow.conn.phase(), Phase::Ready, "Reject does not close");

    all.push(slow);
    end_all(&registry, all);
}

/// G7 with the slow-consumer policy: the full one is counted `full` and closes with
/// 1013 at its driver's next timed call; the 10 000 others got the message.
#[test]
fn slow_consumer_is_counted_full_then_closes_1013_others_get_the_broadcast_g7() {
    let now = Instant::now();
    let registry = open_registry();
    let mut all = others(&registry, now);
    let slow = slow(&registry, OverflowPolicy::slow_consumer(), now);

    let news = Message::text("news");
    let report = registry.broadcast(news.clone());
    assert_eq!(
        counts(&report),
        (OTHERS, 1, 0, 0),
        "G7: delivered to the 10 000 others, the slow consumer counted full: {report:?}"
    );

    // The broadcast carries no time: the close takes effect at the driver's next
    // timed call.
    assert!(
        slow.conn.check_send().is_err(),
        "the send gate shut at once"
    );
    slow.transport.handle_timeout(now);
    assert_eq!(slow.transport.phase(), Phase::Closing);
    let record = slow.transport.close_record().expect("closing");
    assert_eq!(record.cause, CloseCause::SlowConsumer);
    assert_eq!(
        record.frame.as_ref().map(|f| f.code()),
        Some(CloseCode::TRY_AGAIN_LATER),
        "G7: the slow consumer is closed with 1013"
    );
    // Its queued messages are still written, then the Close; never the broadcast.
    assert_only_old_messages(&slow.transport, now);
    assert_eq!(
        slow.transport.next_frame(now),
        Some(Frame::Close(record.frame.clone())),
        "G7: the broadcast is not written to the slow consumer: its Close follows"
    );
    assert_eq!(slow.transport.next_frame(now), None);
    slow.transport
        .handle_peer_close(None, now)
        .expect("the peer acknowledges");
    assert!(!registry.contains(slow.conn.id()), "G7: Closed, unlisted");

    for c in &all {
        assert_eq!(
            c.transport.next_frame(now),
            Some(Frame::Message(news.clone())),
            "G7: connection {} got the broadcast",
            c.conn.id()
        );
        assert_eq!(c.transport.next_frame(now), None, "exactly once");
    }

    all.push(slow);
    end_all(&registry, all);
}

/// G7 under real threads: 100 broadcasts while the slow connection's outbox stays
/// full and 4 drivers drain the 10 000 others concurrently; all of them get all 100,
/// in order. Bounded by `HANG`; the speed is not asserted.
#[test]
fn threaded_broadcasts_reach_everyone_in_order_despite_a_full_outbox_g7() {
    let now = Instant::now();
    let registry = open_registry();
    let others = others(&registry, now);
    let slow = slow(&registry, OverflowPolicy::Reject, now);
    let abort = Arc::new(AtomicBool::new(false));

    let mut handles = Vec::new();
    let mut kept = Vec::new(); // the connections and registrations stay here
    let mut chunks: Vec<Vec<Transport>> = (0..DRIVERS).map(|_| Vec::new()).collect();
    for (i, c) in others.into_iter().enumerate() {
        chunks[i % DRIVERS].push(c.transport.clone());
        kept.push(c);
    }
    for transports in chunks {
        let abort = abort.clone();
        handles.push(thread::spawn(move || {
            drive(&transports, &abort, now);
            transports.len()
        }));
    }
    {
        let registry = registry.clone();
        let abort = abort.clone();
        handles.push(thread::spawn(move || {
            for n in 0..BROADCASTS {
                if abort.load(Ordering::SeqCst) {
                    break;
                }
                let report = registry.broadcast(Message::text(format!("m{n}")));
                assert_eq!(
                    counts(&report),
                    (OTHERS, 1, 0, 0),
                    "G7: broadcast {n}: delivered to the 10 000, refused for the full one"
                );
            }
            BROADCASTS
        }));
    }

    let started = Instant::now();
    let done: usize = join_all(handles, &abort).into_iter().sum();
    assert_eq!(done, OTHERS + BROADCASTS);
    println!(
        "registry_fanout: {BROADCASTS} broadcasts to {OTHERS} connections drained by \
         {DRIVERS} drivers (one outbox full throughout) took {:.2?}",
        started.elapsed()
    );

    assert_only_old_messages(&slow.transport, now);
    assert_eq!(
        slow.transport.next_frame(now),
        None,
        "G7: none of the 100 broadcasts reached the full outbox"
    );
    kept.push(slow);
    end_all(&registry, kept);
}

/// Joins `handles` with a deadline, polling `is_finished`: a thread's panic fails
/// the test at once, and threads still running after `HANG` fail it too (a hang,
/// not slowness); either way `abort` tells the others to stop.
fn join_all(handles: Vec<thread::JoinHandle<usize>>, abort: &AtomicBool) -> Vec<usize> {
    let deadline = Instant::now() + HANG;
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results = Vec::new();
    while pending.iter().any(Option::is_some) {
        for slot in &mut pending {
            if slot.as_ref().is_some_and(|h| h.is_finished()) {
                match slot.take().expect("checked").join() {
                    Ok(value) => results.push(value),
                    Err(panic) => {
                        abort.store(true, Ordering::SeqCst);
                        std::panic::resume_unwind(panic);
                    }
                }
            }
        }
        if Instant::now() >= deadline {
            abort.store(true, Ordering::SeqCst);
            panic!("G7: the broadcaster or a driver did not finish within {HANG:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
    results
}

/// A driver thread: drains its transports until each has yielded `m0`..`m99`, in
/// order and nothing else.
fn drive(transports: &[Transport], abort: &AtomicBool, now: Instant) {
    let mut received = vec![0usize; transports.len()];
    let mut left = transports.len();
    while left > 0 {
        assert!(!abort.load(Ordering::SeqCst), "aborted: the test timed out");
        let mut progress = false;
        for (transport, n) in transports.iter().zip(&mut received) {
            if *n == BROADCASTS {
                continue;
            }
            while let Some(frame) = transport.next_frame(now) {
                assert_eq!(
                    frame,
                    Frame::Message(Message::text(format!("m{n}"))),
                    "G7: connection {} gets every broadcast, in order",
                    transport.id()
                );
                *n += 1;
                progress = true;
            }
            if *n == BROADCASTS {
                left -= 1;
            }
        }
        if !progress {
            thread::yield_now();
        }
    }
    for transport in transports {
        assert_eq!(transport.next_frame(now), None, "exactly 100 messages");
    }
}

/// G7: connections still authenticating at the broadcast's linearization point are
/// counted `not_ready` and never receive it, not even once they are `Ready`; a later
/// broadcast reaches them.
#[test]
fn authenticating_connections_are_not_ready_and_never_get_the_broadcast_g7() {
    let now = Instant::now();
    let registry = open_registry();
    let mut all = others(&registry, now);

    // One accepted (its credential being checked), one authenticated (its services
    // not ready yet); both listed and identified or grouped.
    let accepted = Connection::new(ConnectionId::new(100_001), Config::default())
        .accept(now)
        .expect("accept");
    let accepted_transport = accepted.transport();
    let accepted_registration = registry.register(&accepted, now).expect("G7: admitted");
    registry.join(accepted.id(), "late").expect("listed");
    let authenticated = Connection::new(ConnectionId::new(100_002), Config::default())
        .accept(now)
        .expect("accept");
    let authenticated_transport = authenticated.transport();
    let authenticated_registration = registry
        .register(&authenticated, now)
        .expect("G7: admitted");
    let authenticated = authenticated.authenticate(None, now).expect("authenticate");
    registry.identify(&authenticated, "ada").expect("listed");

    let first = Message::text("first");
    let report = registry.broadcast(first.clone());
    assert_eq!(
        counts(&report),
        (OTHERS, 0, 2, 0),
        "G7: the two authenticating connections are counted not_ready: {report:?}"
    );
    assert_eq!(
        registry.send_to_user("ada", first.clone()).not_ready,
        1,
        "G7: not ready for a user's broadcast either"
    );
    assert_eq!(
        registry.send_to_group("late", first.clone()).not_ready,
        1,
        "G7: nor for a group's"
    );

    // Both become Ready: nothing of the broadcasts before.
    let accepted = accepted
        .authenticate(None, now)
        .expect("authenticate")
        .ready(now)
        .expect("ready");
    let authenticated = authenticated.ready(now).expect("ready");
    for t in [&accepted_transport, &authenticated_transport] {
        assert_eq!(
            t.next_frame(now),
            None,
            "G7: connection {} was not Ready at the broadcast: it never gets it",
            t.id()
        );
    }

    // A broadcast after they became Ready reaches them, and everyone else once.
    let second = Message::text("second");
    let report = registry.broadcast(second.clone());
    assert_eq!(
        counts(&report),
        (OTHERS + 2, 0, 0, 0),
        "G7: Ready now, so targets of the next broadcast: {report:?}"
    );
    for t in [&accepted_transport, &authenticated_transport] {
        assert_eq!(t.next_frame(now), Some(Frame::Message(second.clone())));
        assert_eq!(t.next_frame(now), None);
    }
    for c in &all {
        assert_eq!(
            c.transport.next_frame(now),
            Some(Frame::Message(first.clone()))
        );
        assert_eq!(
            c.transport.next_frame(now),
            Some(Frame::Message(second.clone()))
        );
        assert_eq!(c.transport.next_frame(now), None);
    }

    all.push(Listed {
        conn: accepted,
        transport: accepted_transport,
        registration: accepted_registration,
    });
    all.push(Listed {
        conn: authenticated,
        transport: authenticated_transport,
        registration: authenticated_registration,
    });
    end_all(&registry, all);
}
