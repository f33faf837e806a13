//! Deterministic behaviour tests of the [`Registry`] on one thread: the startup gate
//! (G8), the listing and its indexes (G7), ready-only broadcast (G7), limits, the
//! drain (G8) and the snapshot. Futures are polled by hand with a counting waker.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use ws_lifecycle::core::{CloseCause, TransportLoss};
use ws_lifecycle::registry::{DrainReport, RegistryError, RegistryState, StartupPolicy};
use ws_lifecycle::{
    Accepted, CloseCode, CloseFrame, Config, Connection, ConnectionId, Frame, Message, Phase,
    Registration, Registry, RegistryConfig, Transport,
};

// ── helpers ─────────────────────────────────────────────────────────────────

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker::default());
    (counter.clone(), Waker::from(counter))
}

fn poll_with<F: Future + ?Sized>(fut: std::pin::Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

fn t0() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn at(ms: u64) -> Instant {
    t0() + Duration::from_millis(ms)
}

fn hold(capacity: usize, timeout_ms: u64) -> RegistryConfig {
    let mut config = RegistryConfig::default();
    config.startup = StartupPolicy::Hold {
        capacity,
        timeout: Duration::from_millis(timeout_ms),
    };
    config
}

fn open_registry(config: RegistryConfig) -> Registry {
    let registry = Registry::new(config);
    registry.open();
    registry
}

fn accepted(id: u64) -> (Connection<Accepted>, Transport) {
    let conn = Connection::new(ConnectionId::new(id), Config::default())
        .accept(at(0))
        .unwrap();
    let transport = conn.transport();
    (conn, transport)
}

/// Every frame the driver can write now.
fn frames(transport: &Transport, now: Instant) -> Vec<Frame> {
    std::iter::from_fn(|| transport.next_frame(now))
        .take(64)
        .collect()
}

fn close_code(transport: &Transport) -> Option<u16> {
    let record = transport.close_record()?;
    Some(record.frame?.code().as_u16())
}

/// A listed connection brought to `Ready` as `user`.
struct Live {
    conn: Connection<ws_lifecycle::Ready>,
    transport: Transport,
    _registration: Registration,
}

fn live(registry: &Registry, id: u64, user: &str) -> Live {
    let (conn, transport) = accepted(id);
    let registration = registry.register(&conn, at(0)).unwrap();
    let conn = conn.authenticate(None, at(0)).unwrap();
    registry.identify(&conn, user).unwrap();
    Live {
        conn: conn.ready(at(0)).unwrap(),
        transport,
        _registration: registration,
    }
}

fn text(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Message(m) => m.as_text().map(str::to_owned),
            Frame::Close(_) => None,
        })
        .collect()
}

// ── startup gate (G8) ───────────────────────────────────────────────────────

#[test]
fn g8_refuse_policy_closes_early_connections_with_1013() {
    let mut config = RegistryConfig::default();
    config.startup = StartupPolicy::Refuse;
    let registry = Registry::new(config);
    let (conn, transport) = accepted(1);
    let err = registry.register(&conn, at(1)).unwrap_err();
    assert_eq!(err, RegistryError::NotOpen);
    assert_eq!(err.close_code(), Some(CloseCode::TRY_AGAIN_LATER));
    assert_eq!(close_code(&transport), Some(1013), "G8: refused with 1013");
    assert_eq!(
        transport.close_record().unwrap().cause,
        CloseCause::NotAdmitted
    );
    assert!(
        !registry.contains(conn.id()),
        "G7: a refused connection is not listed"
    );
    assert_eq!(registry.snapshot().totals.refused.get("not_open"), Some(&1));
}

#[test]
fn g8_held_connection_waits_for_open_then_becomes_ready() {
    let registry = Registry::new(hold(4, 1_000));
    let (conn, transport) = accepted(1);
    let registration = registry.register(&conn, at(0)).unwrap();
    assert!(registration.is_held());
    assert_eq!(registry.snapshot().held, 1);
    assert_eq!(
        transport.poll_timeout(),
        Some(at(1_000)),
        "G8: the hold deadline is one of the connection's deadlines"
    );

    let conn = conn.authenticate(None, at(10)).unwrap();
    let (woken, waker) = counting();
    let mut admitted = pin!(registration.admitted());
    assert!(poll_with(admitted.as_mut(), &waker).is_pending());

    registry.open();
    assert_eq!(woken.0.load(Ordering::SeqCst), 1, "G6: open wakes the held");
    assert_eq!(poll_with(admitted.as_mut(), &waker), Poll::Ready(Ok(())));
    assert!(!registration.is_held());
    assert_eq!(registry.snapshot().held, 0);
    assert_eq!(
        transport.poll_timeout(),
        Some(at(10_000)),
        "only the readiness deadline left"
    );
    let conn = conn.ready(at(20)).unwrap();
    assert_eq!(conn.phase(), Phase::Ready);
}

#[test]
fn g8_held_connection_is_closed_with_1013_at_its_hold_deadline() {
    let registry = Registry::new(hold(4, 1_000));
    let (conn, transport) = accepted(1);
    let registration = registry.register(&conn, at(0)).unwrap();
    let (_, waker) = counting();
    let mut admitted = pin!(registration.admitted());
    assert!(poll_with(admitted.as_mut(), &waker).is_pending());

    assert!(transport.handle_timeout(at(999)).is_none());
    assert_eq!(conn.phase(), Phase::Accepted);
    transport.handle_timeout(at(1_000));
    assert_eq!(conn.phase(), Phase::Closing);
    assert_eq!(
        close_code(&transport),
        Some(1013),
        "G8: hold deadline → 1013"
    );
    match poll_with(admitted.as_mut(), &waker) {
        Poll::Ready(Err(record)) => assert_eq!(record.cause, CloseCause::NotAdmitted),
        other => panic!("expected the close record, got {other:?}"),
    }
}

#[test]
fn g8_making_a_held_connection_ready_closes_it_instead_of_routing_it() {
    let registry = Registry::new(hold(4, 1_000));
    let (conn, transport) = accepted(1);
    let _registration = registry.register(&conn, at(0)).unwrap();
    let conn = conn.authenticate(None, at(1)).unwrap();
    conn.emitter().emit(Message::text("early")).unwrap();
    let gone = conn.ready(at(2)).unwrap_err();
    assert_eq!(gone.connection.phase(), Phase::Closing);
    assert_eq!(close_code(&transport), Some(1013));
    let written = frames(&transport, at(3));
    assert_eq!(
        text(&written),
        Vec::<String>::new(),
        "G8/G2: nothing routed"
    );
    assert!(matches!(written.last(), Some(Frame::Close(_))));
}

#[test]
fn g8_hold_capacity_refuses_the_overflow_with_1013() {
    let registry = Registry::new(hold(2, 1_000));
    let held: Vec<_> = (1..=2)
        .map(|id| {
            let (conn, _) = accepted(id);
            (registry.register(&conn, at(0)).unwrap(), conn)
        })
        .collect();
    let (conn, transport) = accepted(3);
    assert_eq!(
        registry.register(&conn, at(0)).unwrap_err(),
        RegistryError::HoldFull
    );
    assert_eq!(close_code(&transport), Some(1013));
    assert_eq!(registry.len(), 2);
    drop(held);
}

/// G8: a connection that is closing already takes no place in the startup hold when
/// it is registered (again) while the registry starts — the hold's capacity stays
/// for connections that can still become ready. Found by the registry proptest in a
/// fresh CI clone (its case is in the regressions file); seen failing before the fix.
#[test]
fn g8_a_closing_connection_registered_while_starting_is_not_held() {
    let registry = Registry::new(hold(2, 1_000));
    let (first, _) = accepted(1);
    let first_registration = registry.register(&first, at(0)).unwrap();
    // The peer closes before the owner registers it: the owner still holds the
    // `Connection<Accepted>`, the connection is closing.
    let (closing, transport) = accepted(2);
    transport.handle_peer_close(None, at(0)).unwrap();
    let registration = registry.register(&closing, at(0)).unwrap();
    assert_eq!(
        registry.snapshot().held,
        1,
        "only the open connection is held"
    );
    assert!(!registration.is_held());
    // The hold still has room for a second open connection.
    let (second, _) = accepted(3);
    let second_registration = registry.register(&second, at(0)).unwrap();
    assert_eq!(registry.snapshot().held, 2);
    drop((first_registration, registration, second_registration));
}

// ── listing and indexes (G7) ────────────────────────────────────────────────

#[test]
fn g7_listed_until_closed_and_every_index_emptied() {
    let registry = open_registry(RegistryConfig::default());
    let a = live(&registry, 1, "ada");
    let b = live(&registry, 2, "ada");
    registry.join(a.conn.id(), "room").unwrap();
    registry.join(b.conn.id(), "room").unwrap();
    assert_eq!(registry.connections_of("ada").len(), 2);
    assert_eq!(registry.members("room").len(), 2);
    assert_eq!(registry.user_of(a.conn.id()).as_deref(), Some("ada"));

    // A closing connection is still listed (it is not Closed yet).
    let closing = a.conn.close(CloseFrame::normal(), at(5));
    assert!(registry.contains(closing.id()), "G7: closing is listed");
    let written = frames(&a.transport, at(5));
    assert!(matches!(written.last(), Some(Frame::Close(_))));
    a.transport.handle_peer_close(None, at(6)).unwrap();
    assert_eq!(closing.phase(), Phase::Closed);
    assert!(!registry.contains(closing.id()), "G7: Closed is unlisted");
    assert_eq!(registry.connections_of("ada"), vec![b.conn.id()]);
    assert_eq!(registry.members("room"), vec![b.conn.id()]);

    b.transport
        .handle_transport_lost(TransportLoss::Eof, at(7))
        .unwrap();
    assert!(registry.is_empty());
    let snapshot = registry.snapshot();
    assert_eq!(
        (snapshot.open, snapshot.users, snapshot.groups),
        (0, 0, 0),
        "G7: {snapshot:?}"
    );
    assert_eq!(snapshot.totals.closed, 2);
    assert_eq!(snapshot.totals.closed_by_cause.get("local"), Some(&1));
    assert_eq!(
        snapshot.totals.closed_by_cause.get("transport_lost"),
        Some(&1)
    );
}

#[test]
fn g7_dropping_the_registration_ends_and_unlists_the_connection() {
    let registry = open_registry(RegistryConfig::default());
    let a = live(&registry, 1, "ada");
    registry.join(a.conn.id(), "room").unwrap();
    let Live {
        conn,
        transport,
        _registration,
    } = a;
    drop(_registration);
    assert_eq!(conn.phase(), Phase::Closed);
    assert_eq!(
        transport.close_record().unwrap().cause,
        CloseCause::TransportLost(TransportLoss::Dropped)
    );
    assert!(
        registry.is_empty(),
        "G7: no entry outlives its registration"
    );
    assert_eq!(
        registry
            .snapshot()
            .totals
            .closed_by_cause
            .get("transport_lost"),
        Some(&1)
    );
}

#[test]
fn register_errors_that_close_nothing() {
    let registry = open_registry(RegistryConfig::default());
    let (conn, transport) = accepted(1);
    let _registration = registry.register(&conn, at(0)).unwrap();
    assert_eq!(
        registry.register(&conn, at(0)).unwrap_err(),
        RegistryError::AlreadyRegistered
    );
    let (twin, twin_transport) = accepted(1);
    assert_eq!(
        registry.register(&twin, at(0)).unwrap_err(),
        RegistryError::DuplicateId
    );
    assert_eq!(transport.close_record(), None);
    assert_eq!(twin_transport.close_record(), None);
    assert_eq!(RegistryError::DuplicateId.close_code(), None);

    let other = Registry::default();
    let conn = conn.authenticate(None, at(1)).unwrap();
    assert_eq!(
        other.identify(&conn, "ada").unwrap_err(),
        RegistryError::NotRegistered
    );
    assert_eq!(
        registry.join(ConnectionId::new(99), "room").unwrap_err(),
        RegistryError::NotRegistered
    );
    assert!(!registry.leave(conn.id(), "never-joined"));
}

#[test]
fn identify_again_moves_the_connection_to_the_new_user() {
    let registry = open_registry(RegistryConfig::default());
    let (conn, _t) = accepted(1);
    let _registration = registry.register(&conn, at(0)).unwrap();
    let conn = conn.authenticate(None, at(0)).unwrap();
    registry.identify(&conn, "ada").unwrap();
    registry.identify(&conn, "ada").unwrap();
    assert_eq!(registry.connections_of("ada"), vec![conn.id()]);
    registry.identify(&conn, "bob").unwrap();
    assert!(registry.connections_of("ada").is_empty());
    assert_eq!(registry.connections_of("bob"), vec![conn.id()]);
    assert_eq!(registry.snapshot().users, 1);
}

// ── limits ──────────────────────────────────────────────────────────────────

#[test]
fn max_connections_refuses_with_1013_and_frees_up_on_close() {
    let mut config = RegistryConfig::default();
    config.max_connections = Some(1);
    let registry = open_registry(config);
    let a = live(&registry, 1, "ada");
    let (conn, transport) = accepted(2);
    assert_eq!(
        registry.register(&conn, at(0)).unwrap_err(),
        RegistryError::AtCapacity
    );
    assert_eq!(close_code(&transport), Some(1013));
    a.transport
        .handle_transport_lost(TransportLoss::Error, at(1))
        .unwrap();
    let (conn, _t) = accepted(3);
    assert!(registry.register(&conn, at(1)).is_ok(), "room again");
}

#[test]
fn max_connections_per_user_refuses_with_1008() {
    let mut config = RegistryConfig::default();
    config.max_connections_per_user = Some(2);
    let registry = open_registry(config);
    let _a = live(&registry, 1, "ada");
    let _b = live(&registry, 2, "ada");
    let (conn, transport) = accepted(3);
    let _registration = registry.register(&conn, at(0)).unwrap();
    let conn = conn.authenticate(None, at(0)).unwrap();
    assert_eq!(
        registry.identify(&conn, "ada").unwrap_err(),
        RegistryError::UserLimit
    );
    assert_eq!(close_code(&transport), Some(1008));
    assert_eq!(registry.connections_of("ada").len(), 2);
    let _c = live(&registry, 4, "bob"); // another user is fine
    assert_eq!(
        registry.snapshot().totals.refused.get("user_limit"),
        Some(&1)
    );
}

// ── broadcast (G7) ──────────────────────────────────────────────────────────

#[test]
fn g7_broadcast_reaches_only_ready_connections_and_reports_the_rest() {
    let registry = open_registry(RegistryConfig::default());
    let ready = live(&registry, 1, "ada");
    let (pending, pending_t) = accepted(2);
    let _pr = registry.register(&pending, at(0)).unwrap();
    let closing = live(&registry, 3, "bob");
    let closing_conn = closing.conn.close(CloseFrame::normal(), at(1));

    let report = registry.broadcast(Message::text("hi"));
    assert_eq!(
        (
            report.delivered,
            report.not_ready,
            report.closing,
            report.full
        ),
        (1, 1, 1, 0),
        "G7: {report:?}"
    );
    assert_eq!(report.selected(), 3);
    assert_eq!(text(&frames(&ready.transport, at(2))), ["hi"]);
    let pending = pending
        .authenticate(None, at(2))
        .unwrap()
        .ready(at(2))
        .unwrap();
    assert!(
        text(&frames(&pending_t, at(3))).is_empty(),
        "G7: no late delivery to a connection that was not Ready"
    );
    assert!(text(&frames(&closing.transport, at(3))).is_empty());
    drop((pending, closing_conn));
}

#[test]
fn g7_user_group_and_predicate_broadcasts() {
    let registry = open_registry(RegistryConfig::default());
    let a = live(&registry, 1, "ada");
    let b = live(&registry, 2, "ada");
    let c = live(&registry, 3, "bob");
    registry.join(b.conn.id(), "room").unwrap();
    registry.join(c.conn.id(), "room").unwrap();

    assert_eq!(
        registry.send_to_user("ada", Message::text("u")).delivered,
        2
    );
    assert_eq!(
        registry
            .send_to_user("nobody", Message::text("x"))
            .selected(),
        0
    );
    assert_eq!(
        registry.send_to_group("room", Message::text("g")).delivered,
        2
    );
    assert!(registry.leave(b.conn.id(), "room"));
    let odd = registry.broadcast_where(Message::text("p"), |id, _| id.get() % 2 == 1);
    assert_eq!(odd.delivered, 2);
    let bobs = registry.broadcast_where(Message::text("q"), |_, user| user == Some("bob"));
    assert_eq!(bobs.delivered, 1);

    assert_eq!(text(&frames(&a.transport, at(1))), ["u", "p"]);
    assert_eq!(text(&frames(&b.transport, at(1))), ["u", "g"]);
    assert_eq!(text(&frames(&c.transport, at(1))), ["g", "p", "q"]);
}

#[test]
fn g7_a_full_outbox_is_refused_without_waiting() {
    let registry = open_registry(RegistryConfig::default());
    let mut config = Config::default();
    config.outbox_capacity = 1;
    let conn = Connection::new(ConnectionId::new(1), config)
        .accept(at(0))
        .unwrap();
    let transport = conn.transport();
    let _registration = registry.register(&conn, at(0)).unwrap();
    let mut conn = conn
        .authenticate(None, at(0))
        .unwrap()
        .ready(at(0))
        .unwrap();
    conn.send(Message::text("first")).unwrap();
    let report = registry.broadcast(Message::text("second"));
    assert_eq!((report.full, report.delivered), (1, 0));
    assert_eq!(text(&frames(&transport, at(1))), ["first"]);
}

// ── drain (G8) ──────────────────────────────────────────────────────────────

#[test]
fn g8_drain_closes_everyone_with_1001_and_finishes_at_the_deadline() {
    let registry = open_registry(RegistryConfig::default());
    let a = live(&registry, 1, "ada");
    let b = live(&registry, 2, "bob");
    let mut a_conn = a.conn;
    a_conn.send(Message::text("last words")).unwrap();

    let (woken, waker) = counting();
    let mut drained = pin!(registry.drained());
    assert!(poll_with(drained.as_mut(), &waker).is_pending());

    assert_eq!(registry.shutdown_at(at(10)), 2);
    assert_eq!(registry.state(), RegistryState::Draining);
    assert_eq!(
        registry.shutdown_at(at(10)),
        0,
        "a second shutdown does nothing"
    );

    // Admitting nothing any more.
    let (late, late_t) = accepted(3);
    assert_eq!(
        registry.register(&late, at(11)).unwrap_err(),
        RegistryError::ShuttingDown
    );
    assert_eq!(close_code(&late_t), Some(1001));

    // A answers our Close; B never does.
    let written = frames(&a.transport, at(12));
    assert_eq!(text(&written), ["last words"], "queued messages go first");
    let Some(Frame::Close(Some(close))) = written.last() else {
        panic!("{written:?}");
    };
    assert_eq!(close.code(), CloseCode::GOING_AWAY);
    a.transport.handle_peer_close(None, at(13)).unwrap();
    assert!(frames(&b.transport, at(12)).last().is_some());
    assert_eq!(woken.0.load(Ordering::SeqCst), 0, "one is still listed");

    let report = registry.finish_drain_at(at(100));
    assert_eq!(
        (report.closing, report.closed, report.dropped),
        (2, 1, 1),
        "the whole drain's figures: {report:?}"
    );
    assert_eq!(registry.finish_drain_at(at(200)), report, "idempotent");
    assert!(registry.is_empty());
    assert_eq!(woken.0.load(Ordering::SeqCst), 1, "G6: drained wakes");
    assert_eq!(poll_with(drained.as_mut(), &waker), Poll::Ready(()));
    assert_eq!(
        b.transport.close_record().unwrap().cause,
        CloseCause::Shutdown,
        "the first cause stands"
    );
    drop((a._registration, b._registration, b.conn));
}

#[test]
fn g8_drain_future_is_bounded_by_its_deadline_and_ends_early_when_drained() {
    let registry = open_registry(RegistryConfig::default());
    let a = live(&registry, 1, "ada");
    let (_, waker) = counting();
    // A deadline that has already passed: the drain drops what is left at once.
    let mut drain = pin!(registry.drain_at(at(0), std::future::ready(())));
    match poll_with(drain.as_mut(), &waker) {
        Poll::Ready(report) => assert_eq!((report.closing, report.dropped), (1, 1)),
        Poll::Pending => panic!("a passed deadline ends the drain"),
    }
    assert!(registry.is_empty());
    drop(a);

    // Nothing listed: done without the deadline.
    let registry = open_registry(RegistryConfig::default());
    let mut drain = pin!(registry.drain_at(at(0), std::future::pending::<()>()));
    assert_eq!(
        poll_with(drain.as_mut(), &waker),
        Poll::Ready(DrainReport::default())
    );
}

// ── snapshot ────────────────────────────────────────────────────────────────

#[test]
fn snapshot_counts_by_phase_and_serializes() {
    let registry = open_registry(RegistryConfig::default());
    let _a = live(&registry, 1, "ada");
    let (b, _bt) = accepted(2);
    let _rb = registry.register(&b, at(0)).unwrap();
    let snapshot = registry.snapshot();
    assert_eq!(snapshot.open, 2);
    assert_eq!(
        (snapshot.by_phase.ready, snapshot.by_phase.accepted),
        (1, 1)
    );
    let json = serde_json::to_value(&snapshot).unwrap();
    assert_eq!(json["open"], 2);
    assert_eq!(json["by_phase"]["ready"], 1);
    assert_eq!(json["state"], "open");
    assert_eq!(json["totals"]["registered"], 2);
}

#[test]
fn g8_a_closing_held_connection_reports_its_close_deadline_not_the_past_hold() {
    let registry = Registry::new(hold(4, 30));
    let (conn, transport) = accepted(1);
    let _registration = registry.register(&conn, at(0)).unwrap();
    let conn = conn.authenticate(None, at(1)).unwrap();
    let gone = conn.ready(at(2)).unwrap_err(); // closed with 1013 while held
    let close_deadline = at(2) + Config::default().close_timeout;
    assert_eq!(
        transport.poll_timeout(),
        Some(close_deadline),
        "G8: a driver sleeping until poll_timeout must not spin on a past hold deadline"
    );
    drop(gone);
}

#[test]
fn g8_a_late_driver_sees_the_hold_deadline_before_a_later_readiness_deadline() {
    let registry = Registry::new(hold(4, 1_000));
    let (conn, transport) = accepted(1); // readiness deadline at 10 s
    let _registration = registry.register(&conn, at(0)).unwrap();
    let step = transport
        .handle_timeout(at(20_000))
        .expect("the call closed the connection, and says so");
    assert_ne!(step.from, step.to);
    let record = transport.close_record().unwrap();
    assert_eq!(
        (record.cause, close_code(&transport)),
        (CloseCause::NotAdmitted, Some(1013)),
        "G5/G8: the deadline that passed first wins"
    );
    drop(conn);
}

#[test]
fn g8_a_drain_before_open_releases_nobody() {
    let registry = Registry::new(hold(4, 1_000));
    let (conn, transport) = accepted(1);
    let registration = registry.register(&conn, at(0)).unwrap();
    let conn = conn.authenticate(None, at(1)).unwrap();
    registry.shutdown_at(at(2));
    assert_eq!(close_code(&transport), Some(1001));
    assert!(conn.ready(at(3)).is_err(), "G8: never Ready without open");
    assert!(!registration.is_held(), "closing: no longer held");
}

#[test]
fn g8_a_closing_held_connection_leaves_the_hold() {
    let registry = Registry::new(hold(1, 1_000));
    let (conn, transport) = accepted(1);
    let registration = registry.register(&conn, at(0)).unwrap();
    transport.handle_timeout(at(1_000)); // hold deadline: closing with 1013
    assert!(!registration.is_held());
    assert_eq!(registry.snapshot().held, 0, "its place is free");
    let (next, _t) = accepted(2);
    assert!(
        registry.register(&next, at(1_001)).is_ok(),
        "not refused as HoldFull by a connection that is only closing"
    );
}

#[test]
fn g8_an_unrepresentable_hold_timeout_means_no_hold_deadline() {
    let mut config = RegistryConfig::default();
    config.startup = StartupPolicy::Hold {
        capacity: 4,
        timeout: Duration::MAX,
    };
    let registry_max = Registry::new(config);
    let (conn, transport) = accepted(1);
    let registration = registry_max.register(&conn, at(0)).unwrap();
    assert!(registration.is_held());
    assert_eq!(
        transport.poll_timeout(),
        Some(at(0) + Config::default().readiness_timeout),
        "only the readiness deadline bounds it"
    );
    assert!(
        transport.handle_timeout(at(1)).is_none(),
        "not closed at once"
    );
    assert_eq!(conn.phase(), Phase::Accepted);
}
