//! What the registry reports: per broadcast (with the refused connections named, on
//! request), per drain, and a snapshot of the whole.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::{CloseCause, ConnectionId, Phase};
use crate::registry::{RegistryError, RegistryState};

/// What one broadcast did, target by target (**G7**). A broadcast never fails as a
/// whole: every selected connection lands in exactly one count.
///
/// Serde form: `{"delivered":2,"not_ready":1,"closing":0,"full":0}` (**G9**).
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Message, Registry};
///
/// let registry = Registry::default();
/// registry.open();
/// let now = Instant::now();
/// let conns = [1, 2, 3].map(|id| Connection::new(ConnectionId::new(id), Config::default()));
/// let [a, b, c] = conns.map(|conn| conn.accept(now).expect("accepted"));
/// let _registrations = [&a, &b, &c].map(|conn| registry.register(conn, now).expect("listed"));
/// let _ready = b.authenticate(None, now)?.ready(now)?;
/// let _closing = c.close(CloseFrame::normal(), now);
/// let report = registry.broadcast(Message::text("news")); // `a` is still in its handshake
/// assert_eq!((report.delivered, report.not_ready, report.closing, report.full), (1, 1, 1, 0));
/// assert_eq!(report.selected(), 3); // each selected connection in exactly one count
/// let json = serde_json::to_string(&report)?; // G9
/// assert_eq!(json, r#"{"delivered":1,"not_ready":1,"closing":1,"full":0}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BroadcastReport {
    /// `Ready` at the broadcast's linearization point, and the message is queued for
    /// them: written before any Close of theirs.
    pub delivered: usize,
    /// Not `Ready` yet at the linearization point (still in the handshake, held by
    /// the startup gate, or made ready after it): skipped.
    pub not_ready: usize,
    /// Closing at the linearization point, or closed before the message could be
    /// queued: refused, and never written after their Close (**G3**).
    pub closing: usize,
    /// `Ready`, but the outbox was full: refused without waiting, and the
    /// connection's [`OverflowPolicy`](crate::core::OverflowPolicy) applied.
    pub full: usize,
    /// With a [`Broker`](super::Broker) attached ([`Registry::attach`](super::Registry::attach)):
    /// what became of the publication to the other nodes. `None` (and absent from
    /// the serialized form) on a registry of one node, and for a delivery of what
    /// another node published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<super::Published>,
}

impl BroadcastReport {
    /// How many connections the broadcast looked at.
    pub fn selected(&self) -> usize {
        self.delivered + self.not_ready + self.closing + self.full
    }
}

/// Why a delivery refused a connection it selected: the two [`BroadcastReport`]
/// counts of refusals, named per connection in a [`DeliveryReport`] (connections not
/// `Ready` are skipped, not refused).
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::registry::{Audience, Refused};
/// use ws_lifecycle::{CloseFrame, Config, Connection, Message, Registry};
///
/// let registry = Registry::default();
/// registry.open();
/// let now = Instant::now();
/// let conn = Connection::new(registry.next_id(), Config::default()).accept(now)?;
/// let _registration = registry.register(&conn, now)?;
/// let conn = conn.authenticate(None, now)?.ready(now)?;
/// let id = conn.id();
/// let _closing = conn.close(CloseFrame::normal(), now);
/// let report = registry.deliver(Audience::All, Message::text("news"));
/// assert_eq!(report.refused, [(id, Refused::Closing)]); // never after its Close (G3)
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refused {
    /// Closing at the delivery's linearization point, or closed before the message
    /// could be queued: nothing is written after its Close (**G3**). Counted in
    /// [`BroadcastReport::closing`].
    Closing,
    /// `Ready`, but its outbox was full: refused without waiting, and the
    /// connection's [`OverflowPolicy`](crate::core::OverflowPolicy) applied. Counted
    /// in [`BroadcastReport::full`].
    Full,
}

/// What [`Registry::deliver`](crate::registry::Registry::deliver) did: the counts of a
/// [`BroadcastReport`], and the connections it refused, by id (**G7**).
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::registry::{Audience, Refused};
/// use ws_lifecycle::{Config, Connection, Message, Registry};
///
/// let registry = Registry::default();
/// registry.open();
/// let now = Instant::now();
/// let mut config = Config::default();
/// config.outbox_capacity = 1; // OverflowPolicy::Reject, the default
/// let conn = Connection::new(registry.next_id(), config).accept(now)?;
/// let _registration = registry.register(&conn, now)?;
/// registry.join(conn.id(), "room")?;
/// let conn = conn.authenticate(None, now)?.ready(now)?;
/// let first = registry.deliver(Audience::Group("room"), Message::text("1"));
/// assert_eq!((first.counts.delivered, first.refused.len()), (1, 0));
/// let second = registry.deliver(Audience::Group("room"), Message::text("2"));
/// assert_eq!(second.counts.full, 1);
/// assert_eq!(second.refused, [(conn.id(), Refused::Full)]); // who missed it
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryReport {
    /// What a broadcast to the same audience reports: every selected connection in
    /// exactly one count.
    pub counts: BroadcastReport,
    /// The connections refused — one per `counts.closing + counts.full` — in the
    /// order the delivery visited them.
    pub refused: Vec<(ConnectionId, Refused)>,
}

/// What a drain did (**G8**).
///
/// Serde form: `{"closing":3,"closed":2,"dropped":1}` (**G9**).
///
/// ```
/// use std::time::{Duration, Instant};
/// use ws_lifecycle::{Config, Connection, ConnectionId, Registry};
///
/// let registry = Registry::default();
/// registry.open();
/// let now = Instant::now();
/// let conns = [1, 2].map(|id| Connection::new(ConnectionId::new(id), Config::default()));
/// let [a, b] = conns.map(|conn| conn.accept(now).expect("accepted"));
/// let _registrations = [&a, &b].map(|conn| registry.register(conn, now).expect("listed"));
/// assert_eq!(registry.shutdown_at(now), 2); // both asked to close with 1001
/// let transport = a.transport(); // `a`'s peer answers; `b`'s never does
/// transport.next_frame(now);
/// transport.handle_peer_close(None, now)?;
/// let report = registry.finish_drain_at(now + Duration::from_secs(1));
/// assert_eq!((report.closing, report.closed, report.dropped), (2, 1, 1));
/// assert_eq!(serde_json::to_string(&report)?, r#"{"closing":2,"closed":1,"dropped":1}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DrainReport {
    /// Connections the drain asked to close with 1001 (the others listed when it
    /// began were already closing).
    pub closing: usize,
    /// Connections listed when the drain began that ended before its deadline.
    pub closed: usize,
    /// Connections still listed at the deadline, dropped
    /// ([`TransportLoss::Dropped`](crate::core::TransportLoss::Dropped)). The same figures however often the drain is
    /// finished.
    pub dropped: usize,
}

/// How many listed connections are in each phase. `Closed` connections are never
/// listed (**G7**).
///
/// Serde form: an object keyed by phase name (**G9**).
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::{Config, Connection, ConnectionId, Registry};
///
/// let registry = Registry::default();
/// registry.open();
/// let now = Instant::now();
/// let conns = [1, 2].map(|id| Connection::new(ConnectionId::new(id), Config::default()));
/// let [a, b] = conns.map(|conn| conn.accept(now).expect("accepted"));
/// let _registrations = [&a, &b].map(|conn| registry.register(conn, now).expect("listed"));
/// let _b = b.authenticate(None, now)?.ready(now)?;
/// let counts = registry.snapshot().by_phase;
/// assert_eq!((counts.accepted, counts.authenticated, counts.ready), (1, 0, 1));
/// assert_eq!(serde_json::to_value(counts)?["ready"], 1); // keyed by phase name (G9)
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PhaseCounts {
    /// Not accepted yet (never listed by this registry, which registers at accept;
    /// kept so the object has every phase).
    pub connecting: usize,
    /// Accepted, not authenticated.
    pub accepted: usize,
    /// Authenticated, not ready.
    pub authenticated: usize,
    /// Ready.
    pub ready: usize,
    /// Closing.
    pub closing: usize,
}

impl PhaseCounts {
    pub(crate) fn count(&mut self, phase: Phase) {
        match phase {
            Phase::Connecting => self.connecting += 1,
            Phase::Accepted => self.accepted += 1,
            Phase::Authenticated => self.authenticated += 1,
            Phase::Ready => self.ready += 1,
            Phase::Closing | Phase::Closed => self.closing += 1,
        }
    }
}

/// Totals since the registry was made.
///
/// Every [`Registry::register`](crate::registry::Registry::register) and
/// [`Registry::identify`](crate::registry::Registry::identify) that returns an error
/// is counted once, by [`RegistryError`] name: in `refused` if the refusal closed the
/// connection ([`RegistryError::close_code`] is `Some`), in `rejected` if it closed
/// nothing.
///
/// Serde form: `{"registered":5,"refused":{"not_open":1},"closed":4,
/// "closed_by_cause":{"peer":3,"shutdown":1},"rejected":{"duplicate_id":1}}` (**G9**).
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::TransportLoss;
/// use ws_lifecycle::registry::RegistryError;
/// use ws_lifecycle::{Config, Connection, ConnectionId, Registry, RegistryConfig};
///
/// let mut config = RegistryConfig::default();
/// config.max_connections = Some(1);
/// let registry = Registry::new(config);
/// registry.open();
/// let now = Instant::now();
/// let conns = [1, 2].map(|id| Connection::new(ConnectionId::new(id), Config::default()));
/// let [a, b] = conns.map(|conn| conn.accept(now).expect("accepted"));
/// let _registration = registry.register(&a, now)?;
/// assert!(registry.register(&b, now).is_err()); // at the cap: closed with 1013
/// a.transport().handle_transport_lost(TransportLoss::Eof, now)?;
/// let totals = registry.snapshot().totals;
/// assert_eq!((totals.registered, totals.closed), (1, 1));
/// assert_eq!(totals.refused["at_capacity"], 1);
/// assert_eq!(totals.closed_by_cause["transport_lost"], 1);
/// assert_eq!(registry.register(&a, now).unwrap_err(), RegistryError::Closed); // closes nothing
/// assert_eq!(registry.snapshot().totals.rejected["closed"], 1); // counted apart (G9)
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Totals {
    /// Connections admitted (listed).
    pub registered: u64,
    /// Refusals by [`RegistryError`](crate::registry::RegistryError) name, e.g. `"at_capacity"`.
    pub refused: BTreeMap<String, u64>,
    /// Listed connections that reached `Closed` (and left the listing).
    pub closed: u64,
    /// Those, by [`CloseCause`] name, e.g. `"peer"`, `"transport_lost"`.
    pub closed_by_cause: BTreeMap<String, u64>,
    /// Calls to `register` and `identify` that failed without closing anything, by
    /// [`RegistryError`] name: `"already_registered"`, `"closed"`, `"duplicate_id"`,
    /// `"not_registered"`. Disjoint from `refused`. (Absent from older serialized
    /// forms: deserializes as empty.)
    #[serde(default)]
    pub rejected: BTreeMap<String, u64>,
}

impl Totals {
    pub(crate) fn closed(&mut self, cause: Option<CloseCause>) {
        self.closed += 1;
        bump(&mut self.closed_by_cause, cause_name(cause));
    }

    /// Counts a failed `register` or `identify` once: in `refused` if it closed the
    /// connection, in `rejected` if it closed nothing.
    pub(crate) fn failed(&mut self, error: RegistryError) {
        if error.close_code().is_some() {
            bump(&mut self.refused, error.as_str());
        } else {
            bump(&mut self.rejected, error.as_str());
        }
    }
}

/// Counts one more `name`, allocating its key only the first time (this runs under
/// the registry's lock, on every close).
fn bump(counts: &mut BTreeMap<String, u64>, name: &str) {
    match counts.get_mut(name) {
        Some(count) => *count += 1,
        None => {
            counts.insert(name.to_owned(), 1);
        }
    }
}

/// The name a close is counted under: its cause's (**G9**: the tag of its serde
/// form, from the one declaration of [`CloseCause`]).
fn cause_name(cause: Option<CloseCause>) -> &'static str {
    cause.map_or("unknown", CloseCause::as_str)
}

/// A consistent-enough picture of a registry for dashboards and `/stats` endpoints:
/// the listing is read under the registry's lock, each phase without a lock.
///
/// Serde form (**G9**):
/// `{"state":"open","open":3,"by_phase":{...},"held":0,"users":2,"groups":1,"totals":{...}}`.
///
/// ```
/// use ws_lifecycle::Registry;
///
/// let registry = Registry::default();
/// registry.open();
/// let snapshot = registry.snapshot();
/// assert_eq!((snapshot.open, snapshot.held, snapshot.users), (0, 0, 0));
/// let stats = serde_json::to_value(&snapshot)?; // what a `/stats` endpoint serves
/// assert_eq!(stats["state"], "open");
/// assert_eq!(stats["by_phase"]["ready"], 0);
/// assert_eq!(stats["totals"]["registered"], 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RegistrySnapshot {
    /// Starting, open or draining.
    pub state: RegistryState,
    /// Listed connections: every connection registered and not `Closed` (**G7**).
    pub open: usize,
    /// Those, by phase.
    pub by_phase: PhaseCounts,
    /// Those held by the startup gate (**G8**).
    pub held: usize,
    /// Users with at least one listed connection.
    pub users: usize,
    /// Groups with at least one listed member.
    pub groups: usize,
    /// Totals since the registry was made.
    pub totals: Totals,
}
