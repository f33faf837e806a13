//! Tracing: one span per connection carrying its id, one event per transition with
//! from, to and cause, and levels an operator would choose — rejections and abnormal
//! closes above debug, the ordinary path at debug.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use ws_lifecycle::core::{Input, Lifecycle};
use ws_lifecycle::{CloseFrame, Config, ConnectionId};

#[derive(Debug, Clone, PartialEq)]
struct Captured {
    level: Level,
    fields: Vec<(String, String)>,
    span_id: Option<String>,
}

/// A span's name and its recorded fields.
type SpanRecord = (String, Vec<(String, String)>);

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Captured>>,
    spans: Mutex<Vec<SpanRecord>>,
    current: Mutex<Vec<u64>>,
}

struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

struct Shared(Arc<Recorder>);

impl Subscriber for Shared {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut fields = Fields(Vec::new());
        attrs.record(&mut fields);
        let mut spans = self.0.spans.lock().unwrap();
        spans.push((attrs.metadata().name().to_owned(), fields.0));
        Id::from_u64(spans.len() as u64)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        let current = self.0.current.lock().unwrap().last().copied();
        let span_id = current.and_then(|i| {
            let spans = self.0.spans.lock().unwrap();
            spans[i as usize - 1]
                .1
                .iter()
                .find(|(k, _)| k == "id")
                .map(|(_, v)| v.clone())
        });
        self.0.events.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            fields: fields.0,
            span_id,
        });
    }
    fn enter(&self, span: &Id) {
        self.0.current.lock().unwrap().push(span.into_u64());
    }
    fn exit(&self, _: &Id) {
        self.0.current.lock().unwrap().pop();
    }
}

fn field<'a>(e: &'a Captured, name: &str) -> Option<&'a str> {
    e.fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn capture(f: impl FnOnce()) -> Arc<Recorder> {
    let recorder = Arc::new(Recorder::default());
    tracing::subscriber::with_default(Shared(recorder.clone()), f);
    recorder
}

#[test]
fn one_span_per_connection_and_one_event_per_transition() {
    let now = Instant::now();
    let recorder = capture(|| {
        let mut lc = Lifecycle::new(ConnectionId::new(77), Config::default());
        lc.handle(Input::Accept, now).unwrap();
        lc.handle(Input::AuthSucceeded { expires_at: None }, now)
            .unwrap();
        lc.handle(Input::ServicesReady, now).unwrap();
        lc.handle(Input::Close(CloseFrame::normal()), now).unwrap();
    });
    let spans = recorder.spans.lock().unwrap();
    assert_eq!(spans.len(), 1, "one span per connection: {spans:?}");
    assert_eq!(spans[0].0, "ws_connection");
    assert!(
        spans[0].1.contains(&("id".to_owned(), "77".to_owned())),
        "{spans:?}"
    );

    let events = recorder.events.lock().unwrap();
    let transitions: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                field(e, "from").unwrap(),
                field(e, "to").unwrap(),
                field(e, "cause").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        transitions,
        [
            ("connecting", "accepted", "accept"),
            ("accepted", "authenticated", "auth_succeeded"),
            ("authenticated", "ready", "services_ready"),
            ("ready", "sending_close", "close"),
        ]
    );
    for e in events.iter() {
        assert_eq!(
            e.level,
            Level::DEBUG,
            "ordinary transitions are debug: {e:?}"
        );
        assert_eq!(
            e.span_id.as_deref(),
            Some("77"),
            "recorded inside the connection's span"
        );
    }
}

#[test]
fn rejections_and_abnormal_closes_are_above_debug() {
    let t0 = Instant::now();
    let recorder = capture(|| {
        let mut lc = Lifecycle::new(ConnectionId::new(5), Config::default());
        let _ = lc.handle(Input::ServicesReady, t0); // a driver bug: rejected, warn
        lc.handle(Input::Accept, t0).unwrap(); // ordinary: debug
        let deadline = lc.poll_timeout().unwrap();
        lc.handle_timeout(deadline).unwrap(); // abnormal close: info
        let _ = lc.handle(Input::ServicesReady, deadline); // lost race: refused, debug
        let timeout = lc.poll_timeout().unwrap();
        lc.handle_timeout(timeout).unwrap(); // abnormal end: info
    });
    let events = recorder.events.lock().unwrap();
    let levels: Vec<Level> = events.iter().map(|e| e.level).collect();
    assert_eq!(
        levels,
        [
            Level::WARN,
            Level::DEBUG,
            Level::INFO,
            Level::DEBUG,
            Level::INFO
        ],
        "{events:#?}"
    );
    assert_eq!(
        field(&events[0], "reason"),
        Some("too early: perform the missing lifecycle step first")
    );
    assert_eq!(field(&events[2], "cause"), Some("readiness_deadline"));
    assert_eq!(field(&events[4], "cause"), Some("close_timeout"));
}

/// Every abnormal close cause is logged at info, the ordinary ones at debug.
#[test]
fn each_close_cause_has_its_level() {
    let t0 = Instant::now();
    let expiry = t0 + std::time::Duration::from_secs(1);
    let lost = Input::TransportLost(ws_lifecycle::core::TransportLoss::Eof);
    let cases: [(&str, Input, Instant, Level); 5] = [
        ("auth_failed", Input::AuthFailed, t0, Level::INFO),
        ("transport_lost", lost, t0, Level::INFO),
        ("peer_close", Input::PeerClose(None), t0, Level::DEBUG),
        (
            "close",
            Input::Close(CloseFrame::normal()),
            t0,
            Level::DEBUG,
        ),
        (
            "credential_expired",
            Input::CredentialExpired,
            expiry,
            Level::INFO,
        ),
    ];
    for (cause, input, at, level) in cases {
        let recorder = capture(|| {
            let mut lc = Lifecycle::new(ConnectionId::new(9), Config::default());
            lc.handle(Input::Accept, t0).unwrap();
            let auth = Input::AuthSucceeded {
                expires_at: Some(expiry),
            };
            lc.handle(auth, t0).unwrap();
            lc.handle(input, at).unwrap();
        });
        let events = recorder.events.lock().unwrap();
        let last = events.last().unwrap();
        assert_eq!(field(last, "cause"), Some(cause), "{events:#?}");
        assert_eq!(last.level, level, "{cause}");
    }
}

/// G3: messages that were never written nor taken back are reported when the last
/// handle goes, not lost silently.
#[test]
fn dropping_a_connection_with_unsent_messages_is_reported() {
    let t0 = Instant::now();
    let recorder = capture(|| {
        let conn = ws_lifecycle::Connection::new(ConnectionId::new(3), Config::default());
        let conn = conn.accept(t0).unwrap().authenticate(None, t0).unwrap();
        let mut conn = conn.ready(t0).unwrap();
        conn.send(ws_lifecycle::Message::text("never written"))
            .unwrap();
        drop(conn);
    });
    let events = recorder.events.lock().unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.level, Level::WARN, "{events:#?}");
    assert_eq!(field(last, "queued"), Some("1"));
    assert_eq!(field(last, "pending"), Some("0"));
}

/// The registry: admissions at debug, refusals at info with the reason, both in the
/// connection's span (G8).
#[test]
fn registry_admissions_and_refusals_are_traced() {
    use ws_lifecycle::registry::StartupPolicy;
    use ws_lifecycle::{Connection, Registry, RegistryConfig};
    let now = Instant::now();
    let recorder = capture(|| {
        let mut config = RegistryConfig::default();
        config.startup = StartupPolicy::Refuse;
        let registry = Registry::new(config);
        let early = Connection::new(ConnectionId::new(5), Config::default())
            .accept(now)
            .unwrap();
        let _ = registry.register(&early, now);
        registry.open();
        let late = Connection::new(ConnectionId::new(6), Config::default())
            .accept(now)
            .unwrap();
        let registration = registry.register(&late, now).unwrap();
        drop((registration, early, late));
    });
    let events = recorder.events.lock().unwrap();
    let message = |e: &Captured| field(e, "message").unwrap_or_default().to_owned();
    let refused = events
        .iter()
        .find(|e| message(e).contains("refused"))
        .expect("a refusal event");
    assert_eq!(refused.level, Level::INFO);
    assert_eq!(field(refused, "reason"), Some("not_open"));
    assert_eq!(refused.span_id.as_deref(), Some("5"));
    let admitted = events
        .iter()
        .find(|e| message(e).contains("admitted"))
        .expect("an admission event");
    assert_eq!(admitted.level, Level::DEBUG);
    assert_eq!(admitted.span_id.as_deref(), Some("6"));
    assert!(
        events
            .iter()
            .any(|e| message(e).contains("registry open") && e.level == Level::INFO),
        "opening is traced"
    );
}
