//! Addressing in the [`Registry`]: ids it hands out itself (`next_id`), one
//! connection by id (`send_to`, G3 and G7), the groups of a connection
//! (`groups_of`), a delivery that names whom it refused (`deliver`, G7), failed
//! registrations counted in the snapshot (G9), and the startup gate's warnings (G8).
//! One thread (but for `next_id`'s), time by hand.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use ws_lifecycle::core::{OverflowPolicy, TransportLoss};
use ws_lifecycle::registry::{Audience, Refused, RegistryError, SendToErrorKind, StartupPolicy};
use ws_lifecycle::{
    Accepted, CloseFrame, Config, Connection, ConnectionId, Frame, Message, Registration, Registry,
    RegistryConfig, Transport,
};

// ── helpers ─────────────────────────────────────────────────────────────────

fn t0() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn at(ms: u64) -> Instant {
    t0() + Duration::from_millis(ms)
}

fn open_registry() -> Registry {
    let registry = Registry::default();
    registry.open();
    registry
}

fn accepted(registry: &Registry, config: Config) -> (Connection<Accepted>, Transport) {
    let conn = Connection::new(registry.next_id(), config)
        .accept(at(0))
        .unwrap();
    let transport = conn.transport();
    (conn, transport)
}

/// A listed connection brought to `Ready`.
struct Live {
    conn: Connection<ws_lifecycle::Ready>,
    transport: Transport,
    _registration: Registration,
}

fn live(registry: &Registry, config: Config) -> Live {
    let (conn, transport) = accepted(registry, config);
    let registration = registry.register(&conn, at(0)).unwrap();
    let conn = conn.authenticate(None, at(0)).unwrap();
    Live {
        conn: conn.ready(at(0)).unwrap(),
        transport,
        _registration: registration,
    }
}

/// A `Ready` connection whose outbox (capacity 1, `OverflowPolicy::Reject`) is full.
fn full(registry: &Registry) -> Live {
    let mut config = Config::default();
    config.outbox_capacity = 1;
    config.overflow = OverflowPolicy::Reject;
    let mut live = live(registry, config);
    live.conn.send(Message::text("filler")).unwrap();
    live
}

fn texts(transport: &Transport, now: Instant) -> Vec<String> {
    std::iter::from_fn(|| transport.next_frame(now))
        .take(64)
        .filter_map(|frame| match frame {
            Frame::Message(m) => m.as_text().map(str::to_owned),
            Frame::Close(_) => None,
        })
        .collect()
}

// ── next_id ─────────────────────────────────────────────────────────────────

#[test]
fn next_id_is_unique_across_clones_and_threads() {
    let registry = Registry::default();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let registry = registry.clone();
            std::thread::spawn(move || (0..1000).map(|_| registry.next_id()).collect::<Vec<_>>())
        })
        .collect();
    let mut all = HashSet::new();
    for thread in threads {
        for id in thread.join().unwrap() {
            assert!(all.insert(id), "{id:?} handed out twice");
        }
    }
    assert_eq!(all.len(), 4000);
    // From 1, never reused, none skipped: exactly 1..=4000.
    let expected: HashSet<ConnectionId> = (1..=4000).map(ConnectionId::new).collect();
    assert_eq!(all, expected);
    assert_eq!(registry.next_id(), ConnectionId::new(4001));
    // Another registry has a counter of its own.
    assert_eq!(Registry::default().next_id(), ConnectionId::new(1));
}

#[test]
fn ids_from_next_id_never_collide_at_register() {
    let registry = open_registry();
    let other = registry.clone(); // a second server sharing the registry
    let mut registrations = Vec::new();
    let mut conns = Vec::new();
    for handle in [&registry, &other, &registry, &other] {
        let (conn, _) = accepted(handle, Config::default());
        registrations.push(handle.register(&conn, at(0)).expect("unique id"));
        conns.push(conn);
    }
    assert_eq!(registry.len(), 4);
    // A hand-made id can still collide: DuplicateId, closing nothing.
    let twin = Connection::new(conns[0].id(), Config::default())
        .accept(at(0))
        .unwrap();
    assert_eq!(
        registry.register(&twin, at(0)).unwrap_err(),
        RegistryError::DuplicateId
    );
    assert!(!twin.phase().is_closing_or_closed());
}

// ── send_to (G3, G7) ────────────────────────────────────────────────────────

#[test]
fn send_to_reaches_a_ready_connection() {
    let registry = open_registry();
    let a = live(&registry, Config::default());
    let b = live(&registry, Config::default());
    registry
        .send_to(a.conn.id(), Message::text("for a"))
        .unwrap();
    assert_eq!(texts(&a.transport, at(1)), ["for a"]);
    assert!(texts(&b.transport, at(1)).is_empty(), "only the addressee");
}

#[test]
fn send_to_refuses_a_connection_not_ready_and_hands_the_message_back_g7() {
    let registry = open_registry();
    let (conn, transport) = accepted(&registry, Config::default());
    let _registration = registry.register(&conn, at(0)).unwrap();
    let err = registry
        .send_to(conn.id(), Message::text("too early"))
        .unwrap_err();
    assert_eq!(err.kind, SendToErrorKind::NotReady);
    assert_eq!(err.into_message(), Message::text("too early"), "G3");
    // Still refused once authenticated: only Ready connections are routed to (G7).
    let conn = conn.authenticate(None, at(0)).unwrap();
    let err = registry
        .send_to(conn.id(), Message::text("still"))
        .unwrap_err();
    assert_eq!(err.kind, SendToErrorKind::NotReady);
    let conn = conn.ready(at(0)).unwrap();
    registry.send_to(conn.id(), Message::text("now")).unwrap();
    assert_eq!(
        texts(&transport, at(1)),
        ["now"],
        "nothing early was queued (G2)"
    );
}

#[test]
fn send_to_refuses_a_held_connection_g8() {
    let registry = Registry::default(); // not open: held
    let (conn, _transport) = accepted(&registry, Config::default());
    let registration = registry.register(&conn, at(0)).unwrap();
    assert!(registration.is_held());
    let err = registry.send_to(conn.id(), Message::text("x")).unwrap_err();
    assert_eq!(err.kind, SendToErrorKind::NotReady);
}

#[test]
fn send_to_refuses_a_closing_connection_and_writes_nothing_after_its_close_g3() {
    let registry = open_registry();
    let a = live(&registry, Config::default());
    let id = a.conn.id();
    let transport = a.transport.clone();
    let _closing = a.conn.close(CloseFrame::normal(), at(1));
    let err = registry.send_to(id, Message::text("late")).unwrap_err();
    assert_eq!(err.kind, SendToErrorKind::Closing);
    assert_eq!(err.message, Message::text("late"), "G3: handed back");
    let frames: Vec<Frame> = std::iter::from_fn(|| transport.next_frame(at(2))).collect();
    assert!(
        matches!(frames.as_slice(), [Frame::Close(_)]),
        "only our Close: {frames:?}"
    );
}

#[test]
fn send_to_refuses_an_unlisted_id() {
    let registry = open_registry();
    let err = registry
        .send_to(ConnectionId::new(12345), Message::text("nobody"))
        .unwrap_err();
    assert_eq!(err.kind, SendToErrorKind::NotListed);
    assert_eq!(err.into_message(), Message::text("nobody"));
    // A connection that closed is unlisted (G7).
    let a = live(&registry, Config::default());
    let id = a.conn.id();
    a.transport
        .handle_transport_lost(TransportLoss::Eof, at(1))
        .unwrap();
    let err = registry.send_to(id, Message::text("gone")).unwrap_err();
    assert_eq!(err.kind, SendToErrorKind::NotListed);
    assert_eq!(err.into_message(), Message::text("gone"));
}

#[test]
fn send_to_refuses_a_full_outbox_without_waiting() {
    let registry = open_registry();
    let f = full(&registry);
    let err = registry
        .send_to(f.conn.id(), Message::text("more"))
        .unwrap_err();
    assert_eq!(err.kind, SendToErrorKind::Full);
    assert_eq!(err.into_message(), Message::text("more"));
    assert_eq!(texts(&f.transport, at(1)), ["filler"]);
}

#[test]
fn send_to_error_says_what_to_do() {
    let registry = open_registry();
    let err = registry
        .send_to(ConnectionId::new(9), Message::text("x"))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("no connection with this id is listed"),
        "{text}"
    );
    let _: &dyn std::error::Error = &err;
}

// ── groups_of ───────────────────────────────────────────────────────────────

#[test]
fn groups_of_follows_join_and_leave_sorted() {
    let registry = open_registry();
    let a = live(&registry, Config::default());
    let id = a.conn.id();
    let names = |registry: &Registry| -> Vec<String> {
        registry
            .groups_of(id)
            .iter()
            .map(|g| g.to_string())
            .collect()
    };
    assert!(names(&registry).is_empty(), "in no group yet");
    for group in ["zeta", "alpha", "mu", "alpha"] {
        registry.join(id, group).unwrap();
    }
    assert_eq!(
        names(&registry),
        ["alpha", "mu", "zeta"],
        "sorted, once each"
    );
    assert!(registry.leave(id, "mu"));
    assert_eq!(names(&registry), ["alpha", "zeta"]);
    assert!(registry.leave(id, "alpha") && registry.leave(id, "zeta"));
    assert!(names(&registry).is_empty());
    registry.join(id, "back").unwrap();
    assert_eq!(names(&registry), ["back"]);
    // Unlisted: empty; closed: left every group (G7).
    assert!(registry.groups_of(ConnectionId::new(999)).is_empty());
    a.transport
        .handle_transport_lost(TransportLoss::Eof, at(1))
        .unwrap();
    assert!(names(&registry).is_empty());
    assert!(registry.members("back").is_empty());
}

#[test]
fn groups_of_uses_the_names_members_takes() {
    let registry = open_registry();
    let a = live(&registry, Config::default());
    registry.join(a.conn.id(), "room:42").unwrap();
    for group in registry.groups_of(a.conn.id()) {
        assert_eq!(registry.members(&group), [a.conn.id()]);
    }
}

// ── deliver (G7) ────────────────────────────────────────────────────────────

/// Four connections in one group and for one user: ready, full, closing, in its
/// handshake.
struct Mix {
    registry: Registry,
    ready: Live,
    full: Live,
    closing_id: ConnectionId,
    handshaking: (Connection<Accepted>, Registration),
    _closing: (Connection<ws_lifecycle::Closing>, Registration),
}

fn mix() -> Mix {
    let registry = open_registry();
    let ready = live(&registry, Config::default());
    let full = full(&registry);
    let leaving = live(&registry, Config::default());
    let (early, _) = accepted(&registry, Config::default());
    let early_registration = registry.register(&early, at(0)).unwrap();
    for id in [
        ready.conn.id(),
        full.conn.id(),
        leaving.conn.id(),
        early.id(),
    ] {
        registry.join(id, "room").unwrap();
    }
    let closing_id = leaving.conn.id();
    // Keep its registration: dropping it would end (and unlist) the connection.
    let closing = (
        leaving.conn.close(CloseFrame::normal(), at(1)),
        leaving._registration,
    );
    Mix {
        registry,
        ready,
        full,
        closing_id,
        handshaking: (early, early_registration),
        _closing: closing,
    }
}

#[test]
fn deliver_names_exactly_the_refused_connections() {
    for audience in [Audience::All, Audience::Group("room")] {
        let m = mix();
        let report = m.registry.deliver(audience, Message::text("news"));
        let c = report.counts;
        assert_eq!(
            (c.delivered, c.not_ready, c.closing, c.full),
            (1, 1, 1, 1),
            "{audience:?}: {report:?}"
        );
        let mut refused = report.refused.clone();
        refused.sort_by_key(|(id, _)| *id);
        let mut expected = vec![
            (m.full.conn.id(), Refused::Full),
            (m.closing_id, Refused::Closing),
        ];
        expected.sort_by_key(|(id, _)| *id);
        assert_eq!(refused, expected, "{audience:?}");
        assert_eq!(report.refused.len(), c.closing + c.full);
        assert!(
            !report
                .refused
                .iter()
                .any(|(id, _)| *id == m.ready.conn.id() || *id == m.handshaking.0.id()),
            "delivered and not-ready connections are not named"
        );
        assert_eq!(texts(&m.ready.transport, at(2)), ["news"]);
        assert_eq!(
            texts(&m.full.transport, at(2)),
            ["filler"],
            "refused, not queued"
        );
    }
}

#[test]
fn deliver_counts_as_the_plain_broadcasts_do() {
    let m = mix();
    let plain = m.registry.broadcast(Message::text("a"));
    let named = m.registry.deliver(Audience::All, Message::text("b"));
    // Nothing changed in between (the full one is full still), so the two agree.
    assert_eq!(named.counts, plain);
    let group = m.registry.send_to_group("room", Message::text("c"));
    let named = m
        .registry
        .deliver(Audience::Group("room"), Message::text("d"));
    assert_eq!(named.counts, group);
}

#[test]
fn deliver_to_a_user_names_their_refused_devices() {
    let registry = open_registry();
    let mut devices = Vec::new();
    for user in ["ada", "ada", "bob"] {
        let mut config = Config::default();
        config.outbox_capacity = 1;
        let (conn, transport) = accepted(&registry, config);
        let registration = registry.register(&conn, at(0)).unwrap();
        let conn = conn.authenticate(None, at(0)).unwrap();
        registry.identify(&conn, user).unwrap();
        devices.push((conn.ready(at(0)).unwrap(), transport, registration));
    }
    devices[1].0.send(Message::text("filler")).unwrap(); // ada's second is full
    let report = registry.deliver(Audience::User("ada"), Message::text("hi ada"));
    assert_eq!((report.counts.delivered, report.counts.full), (1, 1));
    assert_eq!(report.refused, [(devices[1].0.id(), Refused::Full)]);
    assert_eq!(
        texts(&devices[2].1, at(1)),
        Vec::<String>::new(),
        "not bob's"
    );
    let nobody = registry.deliver(Audience::User("nobody"), Message::text("x"));
    assert_eq!((nobody.counts.selected(), nobody.refused.len()), (0, 0));
}

// ── failed registrations in the snapshot (G9) ───────────────────────────────

#[test]
fn the_snapshot_counts_every_failed_registration_once() {
    let registry = open_registry();
    let (a, _) = accepted(&registry, Config::default());
    let registration = registry.register(&a, at(0)).unwrap();

    // DuplicateId: another connection with a's id.
    let twin = Connection::new(a.id(), Config::default())
        .accept(at(0))
        .unwrap();
    assert_eq!(
        registry.register(&twin, at(0)).unwrap_err(),
        RegistryError::DuplicateId
    );
    let totals = registry.snapshot().totals;
    assert_eq!(totals.rejected.get("duplicate_id"), Some(&1));
    assert!(totals.refused.is_empty(), "closes nothing: not a refusal");
    assert_eq!(totals.registered, 1);

    // AlreadyRegistered, here and from another registry.
    assert_eq!(
        registry.register(&a, at(0)).unwrap_err(),
        RegistryError::AlreadyRegistered
    );
    let other = open_registry();
    assert_eq!(
        other.register(&a, at(0)).unwrap_err(),
        RegistryError::AlreadyRegistered
    );
    assert_eq!(
        other.snapshot().totals.rejected.get("already_registered"),
        Some(&1),
        "counted by the registry that was asked"
    );

    // Closed.
    let (gone, gone_t) = accepted(&registry, Config::default());
    gone_t
        .handle_transport_lost(TransportLoss::Eof, at(0))
        .unwrap();
    assert_eq!(
        registry.register(&gone, at(0)).unwrap_err(),
        RegistryError::Closed
    );

    // identify: NotRegistered.
    let (stranger, _) = accepted(&registry, Config::default());
    let stranger = stranger.authenticate(None, at(0)).unwrap();
    assert_eq!(
        registry.identify(&stranger, "eve").unwrap_err(),
        RegistryError::NotRegistered
    );

    let totals = registry.snapshot().totals;
    let rejected: Vec<(&str, u64)> = totals
        .rejected
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        rejected,
        [
            ("already_registered", 1),
            ("closed", 1),
            ("duplicate_id", 1),
            ("not_registered", 1)
        ]
    );
    assert!(totals.refused.is_empty());
    drop(registration);
}

#[test]
fn refusals_that_close_are_counted_once_as_refused_g8() {
    let mut config = RegistryConfig::default();
    config.startup = StartupPolicy::Refuse;
    config.max_connections_per_user = Some(1);
    let registry = Registry::new(config);
    let (early, _) = accepted(&registry, Config::default());
    assert_eq!(
        registry.register(&early, at(0)).unwrap_err(),
        RegistryError::NotOpen
    );
    registry.open();
    let (a, _) = accepted(&registry, Config::default());
    let (b, _) = accepted(&registry, Config::default());
    let _registrations = (
        registry.register(&a, at(0)).unwrap(),
        registry.register(&b, at(0)).unwrap(),
    );
    let (a, b) = (
        a.authenticate(None, at(0)).unwrap(),
        b.authenticate(None, at(0)).unwrap(),
    );
    registry.identify(&a, "ada").unwrap();
    assert_eq!(
        registry.identify(&b, "ada").unwrap_err(),
        RegistryError::UserLimit
    );
    let totals = registry.snapshot().totals;
    assert_eq!(totals.refused.get("not_open"), Some(&1));
    assert_eq!(totals.refused.get("user_limit"), Some(&1));
    assert!(totals.rejected.is_empty(), "not counted twice: {totals:?}");
}

#[test]
fn totals_without_rejected_still_deserialize_g9() {
    let old = r#"{"registered":1,"refused":{},"closed":0,"closed_by_cause":{}}"#;
    let totals: ws_lifecycle::registry::Totals = serde_json::from_str(old).unwrap();
    assert!(totals.rejected.is_empty());
    assert_eq!(totals.registered, 1);
}

// ── the startup gate's warnings (G8) ────────────────────────────────────────

#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    message: String,
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Captured>>,
    spans: Mutex<u64>,
}

struct MessageField(String);

impl Visit for MessageField {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_owned();
        }
    }
}

/// Records every event's level and message (the approach of `tests/tracing_events.rs`).
struct Capture(Arc<Recorder>);

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        let mut spans = self.0.spans.lock().unwrap();
        *spans += 1;
        Id::from_u64(*spans)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut message = MessageField(String::new());
        event.record(&mut message);
        self.0.events.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            message: message.0,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn capture(f: impl FnOnce()) -> Vec<Captured> {
    let recorder = Arc::new(Recorder::default());
    tracing::subscriber::with_default(Capture(recorder.clone()), f);
    recorder.events.lock().unwrap().clone()
}

fn warnings<'a>(events: &'a [Captured], containing: &str) -> Vec<&'a Captured> {
    events
        .iter()
        .filter(|e| e.level == Level::WARN && e.message.contains(containing))
        .collect()
}

const HELD: &str = "connection held: the registry is not open yet";
const NEVER_OPENED: &str = "the registry was never opened";

fn hold(timeout_ms: u64) -> RegistryConfig {
    let mut config = RegistryConfig::default();
    config.startup = StartupPolicy::Hold {
        capacity: 16,
        timeout: Duration::from_millis(timeout_ms),
    };
    config
}

#[test]
fn the_first_held_connection_warns_once_per_registry_g8() {
    let events = capture(|| {
        let registry = Registry::new(hold(1_000));
        let mut kept = Vec::new();
        for _ in 0..3 {
            let (conn, _) = accepted(&registry, Config::default());
            kept.push((registry.register(&conn, at(0)).unwrap(), conn));
        }
        let clone = registry.clone(); // the same registry: no second warning
        let (conn, _) = accepted(&clone, Config::default());
        kept.push((clone.register(&conn, at(0)).unwrap(), conn));
        // A second registry warns for itself.
        let second = Registry::new(hold(1_000));
        let (conn, _) = accepted(&second, Config::default());
        kept.push((second.register(&conn, at(0)).unwrap(), conn));
    });
    let held = warnings(&events, HELD);
    assert_eq!(held.len(), 2, "one per registry: {events:#?}");
    let text = &held[0].message;
    assert!(text.contains("Registry::open()"), "names the fix: {text}");
    assert!(text.contains("1013"), "{text}");
    assert!(text.contains("RegistryConfig::startup"), "{text}");
}

#[test]
fn an_open_registry_or_a_refusing_one_does_not_warn_of_holding() {
    let events = capture(|| {
        let registry = open_registry();
        let (conn, _) = accepted(&registry, Config::default());
        let _registration = registry.register(&conn, at(0)).unwrap();
        let mut config = RegistryConfig::default();
        config.startup = StartupPolicy::Refuse;
        let refusing = Registry::new(config);
        let (conn, _) = accepted(&refusing, Config::default());
        let _ = refusing.register(&conn, at(0));
    });
    assert!(warnings(&events, HELD).is_empty(), "{events:#?}");
}

/// Drives a closing connection to `Closed`: takes its frames, the peer answers.
fn finish_close(transport: &Transport, now: Instant) {
    while transport.next_frame(now).is_some() {}
    transport.handle_peer_close(None, now).unwrap();
}

#[test]
fn a_hold_timing_out_before_open_warns_once_per_registry_g8() {
    let events = capture(|| {
        let registry = Registry::new(hold(100));
        let mut held = Vec::new();
        for _ in 0..3 {
            let (conn, transport) = accepted(&registry, Config::default());
            let registration = registry.register(&conn, at(0)).unwrap();
            held.push((conn, transport, registration));
        }
        for (_, transport, _) in &held {
            transport.handle_timeout(at(100)); // the hold gives up: 1013
            assert_eq!(
                transport
                    .close_record()
                    .unwrap()
                    .frame
                    .unwrap()
                    .code()
                    .as_u16(),
                1013
            );
            finish_close(transport, at(101));
        }
        assert!(registry.is_empty());
    });
    let never = warnings(&events, NEVER_OPENED);
    assert_eq!(never.len(), 1, "once per registry: {events:#?}");
    assert!(never[0].message.contains("Registry::open()"), "{never:?}");
}

#[test]
fn no_never_opened_warning_when_open_came_or_the_close_was_another() {
    let events = capture(|| {
        // Opened in time: the held connection is released, no warning.
        let registry = Registry::new(hold(100));
        let (conn, transport) = accepted(&registry, Config::default());
        let _registration = registry.register(&conn, at(0)).unwrap();
        registry.open();
        transport.handle_timeout(at(100));
        assert!(!conn.phase().is_closing_or_closed(), "released, not closed");

        // Held, then the peer leaves: not the startup gate's doing.
        let registry = Registry::new(hold(100));
        let (_conn, transport) = accepted(&registry, Config::default());
        let _registration = registry.register(&_conn, at(0)).unwrap();
        transport
            .handle_transport_lost(TransportLoss::Eof, at(10))
            .unwrap();

        // Held, then refused for its user's limit (1008, not 1013).
        let mut config = hold(100);
        config.max_connections_per_user = Some(1);
        let registry = Registry::new(config);
        let (a, _) = accepted(&registry, Config::default());
        let (b, b_t) = accepted(&registry, Config::default());
        let _registrations = (
            registry.register(&a, at(0)).unwrap(),
            registry.register(&b, at(0)).unwrap(),
        );
        let (a, b) = (
            a.authenticate(None, at(0)).unwrap(),
            b.authenticate(None, at(0)).unwrap(),
        );
        registry.identify(&a, "ada").unwrap();
        assert_eq!(
            registry.identify(&b, "ada").unwrap_err(),
            RegistryError::UserLimit
        );
        assert_eq!(registry.snapshot().held, 1, "b left the hold");
        finish_close(&b_t, at(1));
        assert!(!registry.contains(b.id()));

        // Drained before open: 1001, not 1013.
        let registry = Registry::new(hold(100));
        let (_conn, transport) = accepted(&registry, Config::default());
        let _registration = registry.register(&_conn, at(0)).unwrap();
        registry.shutdown_at(at(1));
        finish_close(&transport, at(2));
    });
    assert!(warnings(&events, NEVER_OPENED).is_empty(), "{events:#?}");
}

#[test]
fn a_held_connection_made_ready_before_open_warns_too_g8() {
    let events = capture(|| {
        let registry = Registry::new(hold(100));
        let (conn, transport) = accepted(&registry, Config::default());
        let _registration = registry.register(&conn, at(0)).unwrap();
        let conn = conn.authenticate(None, at(1)).unwrap();
        assert!(
            conn.ready(at(1)).is_err(),
            "held: not to be made Ready (G8)"
        );
        let code = transport.close_record().unwrap().frame.unwrap().code();
        assert_eq!(code.as_u16(), 1013);
        finish_close(&transport, at(2));
        assert!(registry.is_empty());
    });
    assert_eq!(warnings(&events, NEVER_OPENED).len(), 1, "{events:#?}");
}
