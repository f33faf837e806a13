//! [`Registry`]: the live connections of a server — listed until `Closed` (**G7**),
//! indexed by id, user and group, broadcast to exactly those that are `Ready`
//! (**G7**), gated at startup and drained at shutdown (**G8**).
//!
//! The registry's lock guards the indexes only; each connection's state stays behind
//! its own lock. A broadcast takes the registry's lock just long enough to copy its
//! targets, then visits them one at a time, never waiting on any of them: a full
//! outbox is a refusal, not a wait.

mod broadcast;
mod cluster;
mod config;
mod drain;
mod error;
mod index;
mod registration;
mod report;

use std::fmt;
use std::sync::Arc as Name;
use std::sync::Arc as StdArc;
use std::sync::OnceLock;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::core::{CloseCause, ConnectionId, Phase};
use crate::handle::{Accepted, Authorized, Connection, Observer};
use crate::shared::sync::{
    Arc, AtomicBool, AtomicU8, AtomicU64, Mutex, MutexGuard, Ordering, lock,
};
use crate::shared::{Link, Member, Membership, Shared, Wakeups};

pub use broadcast::Audience;
pub use cluster::{Broker, Presence, Publication, Published, Target};
pub use config::{RegistryConfig, StartupPolicy};
pub use error::{RegistryError, SendToError, SendToErrorKind};
pub use registration::Registration;
pub use report::{
    BroadcastReport, DeliveryReport, DrainReport, PhaseCounts, Refused, RegistrySnapshot, Totals,
};

use index::Index;

/// Where a registry is in its own life (**G8**).
///
/// Serde form: `"starting"`, `"open"`, `"draining"` (**G9**).
///
/// ```
/// use ws_lifecycle::Registry;
/// use ws_lifecycle::registry::RegistryState;
///
/// let registry = Registry::default();
/// assert_eq!(registry.state(), RegistryState::Starting); // connections held or refused
/// registry.open();
/// assert_eq!(registry.state(), RegistryState::Open);
/// registry.shutdown();
/// assert_eq!(registry.state(), RegistryState::Draining);
/// registry.open(); // does nothing once draining
/// assert_eq!(serde_json::to_string(&registry.state())?, r#""draining""#); // G9
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
#[non_exhaustive]
pub enum RegistryState {
    /// Made, not opened: connections are held or refused per [`StartupPolicy`].
    #[default]
    Starting = 0,
    /// Admitting connections.
    Open = 1,
    /// Draining: admitting nothing, closing everything with 1001.
    Draining = 2,
}

impl RegistryState {
    fn from_code(code: u8) -> RegistryState {
        match code {
            0 => RegistryState::Starting,
            1 => RegistryState::Open,
            _ => RegistryState::Draining,
        }
    }
}

/// What every handle of one registry shares.
pub(crate) struct Core {
    config: RegistryConfig,
    /// The registry's state, written under the index lock, read by connections
    /// under theirs (the startup gate, **G8**).
    state: AtomicU8,
    /// Broadcasts so far; incrementing it is a broadcast's linearization point (**G7**).
    epoch: AtomicU64,
    /// Set once by `open`: the startup gate's only release (**G8**).
    opened: AtomicBool,
    /// The next id [`Registry::next_id`] hands out: from 1, never reused.
    next_id: AtomicU64,
    /// Set by the first connection the startup gate holds: its warning is logged
    /// once per registry (**G8**).
    warned_held: AtomicBool,
    /// Set by the first held connection closed with 1013 before the registry opened:
    /// its warning is logged once per registry (**G8**).
    warned_unopened: AtomicBool,
    index: Mutex<Index>,
    /// The other nodes of a cluster, once attached (`Registry::attach`).
    broker: OnceLock<StdArc<dyn Broker>>,
    /// The clock of the calls that carry no time (`Sender::close`, `shutdown`,
    /// `drain`), when its connections' driver brought one (tokio's, which a test may
    /// pause); the system's monotonic clock otherwise. Set once.
    clock: OnceLock<fn() -> Instant>,
}

impl Core {
    pub(crate) fn state(&self) -> RegistryState {
        RegistryState::from_code(self.state.load(Ordering::SeqCst))
    }

    pub(crate) fn opened(&self) -> bool {
        self.opened.load(Ordering::SeqCst)
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Index> {
        lock(&self.index)
    }
}

/// The registry's side of the seam with its connections (**G7**, **G8**).
struct CoreRef(StdArc<Core>);

impl Membership for CoreRef {
    fn epoch(&self) -> u64 {
        self.0.epoch()
    }

    fn opened(&self) -> bool {
        self.0.opened()
    }

    fn now(&self) -> Instant {
        self.0
            .clock
            .get()
            .map_or_else(Instant::now, |clock| clock())
    }

    fn unhold(&self, id: ConnectionId) {
        // Still held in the index means the registry has not opened: `open` releases
        // every held entry under this lock (**G8**). Remembered for `remove`.
        self.0.lock().unhold(id, true);
    }

    fn remove(&self, id: ConnectionId, cause: Option<CloseCause>, wakeups: &mut Wakeups) {
        let closed_held = self.0.lock().remove(id, cause, wakeups);
        // Started closing while held, before `open`, and closed by the crate's
        // "not admitted" close: its hold timed out, or it was made Ready before
        // `open` (a held connection refused for its user's limit left the hold
        // before its close, see `identify`) — both 1013 (**G8**).
        if closed_held
            && cause == Some(CloseCause::NotAdmitted)
            && !self.0.warned_unopened.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "a held connection was closed with 1013 and the registry was never opened: \
                 call Registry::open() once the application is ready (a connection held by \
                 the startup gate is closed when the timeout of RegistryConfig::startup's \
                 StartupPolicy::Hold passes, or when it is made Ready before open)"
            );
        }
    }
}

/// The registry of a server's live connections. Cheap to clone (one `Arc`),
/// `Send + Sync`, runtime-agnostic.
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::{Config, Connection, ConnectionId, Frame, Message, Registry, RegistryConfig};
///
/// let now = Instant::now();
/// let registry = Registry::new(RegistryConfig::default());
/// registry.open(); // the application's handlers are in place (G8)
///
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// let transport = conn.transport();
/// let registration = registry.register(&conn, now)?; // listed until Closed (G7)
/// let conn = conn.authenticate(None, now)?;
/// registry.identify(&conn, "ada")?;
/// let conn = conn.ready(now)?;
///
/// let report = registry.send_to_user("ada", Message::text("hi"));
/// assert_eq!(report.delivered, 1);
/// assert_eq!(transport.next_frame(now), Some(Frame::Message(Message::text("hi"))));
/// # drop((conn, registration));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Registry {
    core: StdArc<Core>,
    /// The same core as its connections hold it (see `Member`).
    member: Member,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("state", &self.state())
            .field("listed", &self.len())
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new(RegistryConfig::default())
    }
}

impl Registry {
    /// A registry in the `Starting` state: call [`open`](Self::open) once the
    /// application can take connections.
    pub fn new(config: RegistryConfig) -> Registry {
        let core = StdArc::new(Core {
            config,
            state: AtomicU8::new(RegistryState::Starting as u8),
            epoch: AtomicU64::new(0),
            opened: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            warned_held: AtomicBool::new(false),
            warned_unopened: AtomicBool::new(false),
            index: Mutex::new(Index::default()),
            broker: OnceLock::new(),
            clock: OnceLock::new(),
        });
        let member: Member = StdArc::new(Box::new(CoreRef(core.clone())));
        Registry { core, member }
    }

    /// Makes `clock` the clock of its connections' calls that carry no time, if none
    /// was set: the driver brings its own (tokio's), so that a close an application
    /// asks for without a time is stamped on the clock the driver feeds.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn adopt_clock(&self, clock: fn() -> Instant) {
        let _ = self.core.clock.set(clock);
    }

    /// A fresh connection id, unique in this registry by construction: ids count up
    /// from 1 and are never reused. All clones of a registry share the counter, so
    /// two `Service`s (feature `tokio`) sharing a registry and taking their ids from
    /// here draw from the same counter: their ids cannot collide (ids you build
    /// yourself with [`ConnectionId::new`] can still collide:
    /// [`register`](Self::register) reports [`RegistryError::DuplicateId`]).
    ///
    /// Cheap (one atomic increment, no lock) and callable from any thread; in any
    /// state of the registry.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Registry};
    ///
    /// let registry = Registry::default();
    /// registry.open();
    /// let clone = registry.clone(); // e.g. another server's
    /// let (a, b) = (registry.next_id(), clone.next_id());
    /// assert_eq!((a, b), (ConnectionId::new(1), ConnectionId::new(2))); // one counter
    /// let now = Instant::now();
    /// let conn = Connection::new(registry.next_id(), Config::default()).accept(now)?;
    /// let _registration = registry.register(&conn, now)?; // never a DuplicateId
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_id(&self) -> ConnectionId {
        // Relaxed: the counter orders nothing but itself, and each value is taken
        // once. At one id per nanosecond, it would wrap after 584 years.
        ConnectionId::new(self.core.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// A registry with the default configuration, already open: for a server with
    /// nothing to start before it routes connections (no startup gate, **G8**).
    /// Same as `Registry::default()` then [`open`](Self::open).
    ///
    /// ```
    /// use ws_lifecycle::Registry;
    /// use ws_lifecycle::registry::RegistryState;
    ///
    /// assert_eq!(Registry::open_now().state(), RegistryState::Open);
    /// assert_eq!(Registry::default().state(), RegistryState::Starting); // gated until open()
    /// ```
    pub fn open_now() -> Registry {
        let registry = Registry::default();
        registry.open();
        registry
    }

    /// Where the registry is in its life.
    pub fn state(&self) -> RegistryState {
        self.core.state()
    }

    /// The startup gate opens (**G8**): from now on connections are admitted, and the
    /// held ones may become `Ready` ([`Registration::admitted`] completes). Does
    /// nothing once draining.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Registry};
    ///
    /// let registry = Registry::default(); // StartupPolicy::Hold by default
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let registration = registry.register(&conn, now)?;
    /// assert!(registration.is_held()); // arrived early: listed, but not to be made Ready
    /// registry.open(); // the handlers are in place (G8)
    /// assert!(!registration.is_held());
    /// let _conn = conn.authenticate(None, now)?.ready(now)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(&self) {
        let released: Vec<Arc<Shared>> = {
            let mut index = self.core.lock();
            if self.core.state() != RegistryState::Starting {
                return;
            }
            self.core
                .state
                .store(RegistryState::Open as u8, Ordering::SeqCst);
            self.core.opened.store(true, Ordering::SeqCst);
            index.release_held()
        };
        tracing::info!(released = released.len(), "registry open");
        for shared in released {
            shared.run(|inner, wakeups| inner.release_hold(wakeups));
        }
    }

    /// Lists an accepted connection (**G7**) — or refuses it, closing it with the
    /// documented code: 1013 while starting under [`StartupPolicy::Refuse`] or with
    /// the hold full, 1013 at [`RegistryConfig::max_connections`], 1001 while
    /// draining. A connection that arrives before [`open`](Self::open) under
    /// [`StartupPolicy::Hold`] is admitted as held (**G8**).
    ///
    /// Errors that close nothing: [`RegistryError::AlreadyRegistered`],
    /// [`RegistryError::DuplicateId`] (another listed connection has this id) and
    /// [`RegistryError::Closed`].
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::registry::{RegistryError, StartupPolicy};
    /// use ws_lifecycle::{CloseCode, Config, Connection, ConnectionId, Registry, RegistryConfig};
    ///
    /// let mut config = RegistryConfig::default();
    /// config.startup = StartupPolicy::Refuse;
    /// let registry = Registry::new(config);
    /// let now = Instant::now();
    /// let early = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// assert_eq!(registry.register(&early, now).unwrap_err(), RegistryError::NotOpen);
    /// let frame = early.close_record().unwrap().frame.unwrap();
    /// assert_eq!(frame.code(), CloseCode::TRY_AGAIN_LATER); // closed with 1013 (G8)
    /// registry.open();
    /// let conn = Connection::new(ConnectionId::new(2), Config::default()).accept(now)?;
    /// let _registration = registry.register(&conn, now)?; // keep it beside the connection
    /// assert!(registry.contains(conn.id())); // listed until Closed (G7)
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register(
        &self,
        conn: &Connection<Accepted>,
        now: Instant,
    ) -> Result<Registration, RegistryError> {
        let shared = conn.shared();
        let (core, member) = (&self.core, &self.member);
        let id = shared.id();
        shared.run(|inner, wakeups| {
            inner.tick(now, wakeups);
            let _span = inner.conn.lifecycle().span().clone().entered();
            let phase = inner.conn.phase();
            // The admission decision and the insertion, under the registry's lock:
            // a drain that begins after this finds the connection listed, one that
            // began before is seen here (**G8**).
            let mut index = core.lock();
            let mistake = if inner.is_listed() {
                Some(RegistryError::AlreadyRegistered)
            } else if phase == Phase::Closed {
                Some(RegistryError::Closed)
            } else if index.entries.contains_key(&id) {
                Some(RegistryError::DuplicateId)
            } else {
                None
            };
            if let Some(mistake) = mistake {
                // Counted, closing nothing (the connection may be listed elsewhere,
                // or be another listed connection's twin).
                index.totals.failed(mistake);
                return Err(mistake);
            }
            let state = core.state();
            let refusal = match (&core.config.startup, state) {
                (_, RegistryState::Draining) => Some(RegistryError::ShuttingDown),
                (StartupPolicy::Refuse, RegistryState::Starting) => Some(RegistryError::NotOpen),
                (StartupPolicy::Hold { capacity, .. }, RegistryState::Starting)
                    if index.held >= (*capacity).max(1) =>
                {
                    Some(RegistryError::HoldFull)
                }
                _ if core
                    .config
                    .max_connections
                    .map_or(Index::MAX_LISTED, |max| max.min(Index::MAX_LISTED))
                    <= index.entries.len() =>
                {
                    Some(RegistryError::AtCapacity)
                }
                _ => None,
            };
            if let Some(refusal) = refusal {
                index.totals.failed(refusal);
                drop(index);
                tracing::info!(reason = refusal.as_str(), "registry refused a connection");
                if let Some(close) = refusal.crate_close() {
                    inner.conn.raise(close, now);
                }
                return Err(refusal);
            }
            // A connection that is closing already takes no place in the hold (G8):
            // nothing could release it before it closes, and it can never be routed.
            let (held, hold_until) = match (&core.config.startup, state) {
                _ if phase.is_closing_or_closed() => (false, None),
                (StartupPolicy::Hold { timeout, .. }, RegistryState::Starting) => {
                    // A deadline too far to represent means "no hold deadline": the
                    // readiness deadline still bounds the connection (G5).
                    (true, now.checked_add(*timeout))
                }
                _ => (false, None),
            };
            index.insert(id, shared.clone(), held);
            index.totals.registered += 1;
            drop(index);
            inner.attach(Link::new(member.clone(), hold_until), held, wakeups);
            tracing::debug!(held, "registry admitted a connection");
            if held && !core.warned_held.swap(true, Ordering::Relaxed) {
                // Loud once per registry: an application that forgets `open` sees
                // every connection closed with 1013 at its hold timeout (**G8**).
                let timeout = match &core.config.startup {
                    StartupPolicy::Hold { timeout, .. } => Some(*timeout),
                    StartupPolicy::Refuse => None,
                };
                tracing::warn!(
                    ?timeout,
                    "connection held: the registry is not open yet; call Registry::open() \
                     once the application is ready (held connections are closed with 1013 \
                     when the timeout of RegistryConfig::startup's StartupPolicy::Hold passes)"
                );
            }
            Ok(Registration::new(shared.clone()))
        })
    }

    /// Records the authenticated user of a listed connection, for
    /// [`send_to_user`](Self::send_to_user) and [`connections_of`](Self::connections_of).
    /// A second call moves it to another user.
    ///
    /// Refuses with [`RegistryError::UserLimit`] — closing the connection with 1008 —
    /// when the user already holds [`RegistryConfig::max_connections_per_user`]
    /// connections; with [`RegistryError::NotRegistered`] when the connection is not
    /// listed here (never registered, or closed since: it is then not indexed, **G7**).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::registry::RegistryError;
    /// use ws_lifecycle::{CloseCode, Config, Connection, ConnectionId, Registry, RegistryConfig};
    ///
    /// let mut config = RegistryConfig::default();
    /// config.max_connections_per_user = Some(1);
    /// let registry = Registry::new(config);
    /// registry.open();
    /// let now = Instant::now();
    /// let (phone, laptop) = (ConnectionId::new(1), ConnectionId::new(2));
    /// let phone = Connection::new(phone, Config::default()).accept(now)?;
    /// let laptop = Connection::new(laptop, Config::default()).accept(now)?;
    /// let _registrations = (registry.register(&phone, now)?, registry.register(&laptop, now)?);
    /// let (phone, laptop) = (phone.authenticate(None, now)?, laptop.authenticate(None, now)?);
    /// registry.identify(&phone, "ada")?;
    /// assert_eq!(registry.identify(&laptop, "ada"), Err(RegistryError::UserLimit));
    /// assert_eq!(laptop.close_record().unwrap().frame.unwrap().code(), CloseCode::POLICY_VIOLATION);
    /// assert_eq!(registry.connections_of("ada"), [phone.id()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn identify<S: Authorized>(
        &self,
        conn: &Connection<S>,
        user: &str,
    ) -> Result<(), RegistryError> {
        let shared = conn.shared();
        let id = shared.id();
        let refusal = {
            let mut index = self.core.lock();
            match index.shared(&id) {
                Some(listed) if Arc::ptr_eq(listed, shared) => {}
                _ => {
                    index.totals.failed(RegistryError::NotRegistered);
                    return Err(RegistryError::NotRegistered);
                }
            }
            let already = index
                .entries
                .get(&id)
                .and_then(|e| e.user.as_deref())
                .is_some_and(|u| u == user);
            if already {
                return Ok(());
            }
            if self
                .core
                .config
                .max_connections_per_user
                .is_some_and(|max| index.user_count(user) >= max)
            {
                index.totals.failed(RegistryError::UserLimit);
                // About to be closed (1008): it leaves the startup hold now, so that
                // its close is not taken for the hold's 1013 (**G8**).
                index.unhold(id, false);
                RegistryError::UserLimit
            } else {
                index.set_user(id, Name::from(user));
                return Ok(());
            }
        };
        if let Some(close) = refusal.crate_close() {
            shared.run(|inner, wakeups| {
                let _span = inner.conn.lifecycle().span().clone().entered();
                tracing::info!(reason = refusal.as_str(), "registry refused a connection");
                let now = inner.clock_or_now();
                inner.tick(now, wakeups).conn.raise(close, now);
            });
        }
        Err(refusal)
    }

    /// Adds the listed connection `id` to `group`. It leaves every group when it
    /// closes (**G7**). Errors with [`RegistryError::NotRegistered`] if `id` is not
    /// listed.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::registry::RegistryError;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Registry};
    ///
    /// let registry = Registry::default();
    /// registry.open();
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let _registration = registry.register(&conn, now)?;
    /// registry.join(conn.id(), "room:42")?;
    /// assert_eq!(registry.members("room:42"), [conn.id()]);
    /// let unknown = ConnectionId::new(99);
    /// assert_eq!(registry.join(unknown, "room:42"), Err(RegistryError::NotRegistered));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join(&self, id: ConnectionId, group: &str) -> Result<(), RegistryError> {
        if self.core.lock().join(id, group) {
            Ok(())
        } else {
            Err(RegistryError::NotRegistered)
        }
    }

    /// Removes `id` from `group`; false if it was not a member.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Config, Connection, Registry};
    ///
    /// let registry = Registry::default();
    /// registry.open();
    /// let now = Instant::now();
    /// let conn = Connection::new(registry.next_id(), Config::default()).accept(now)?;
    /// let _registration = registry.register(&conn, now)?;
    /// registry.join(conn.id(), "room:42")?;
    /// assert!(registry.leave(conn.id(), "room:42"));
    /// assert!(!registry.leave(conn.id(), "room:42")); // not a member any more
    /// assert!(registry.members("room:42").is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn leave(&self, id: ConnectionId, group: &str) -> bool {
        self.core.lock().leave(id, group)
    }

    /// Whether `id` is listed.
    pub fn contains(&self, id: ConnectionId) -> bool {
        self.core.lock().entries.contains_key(&id)
    }

    /// How many connections are listed.
    pub fn len(&self) -> usize {
        self.core.lock().entries.len()
    }

    /// True when no connection is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The listed connections' ids, in no particular order.
    pub fn ids(&self) -> Vec<ConnectionId> {
        self.core.lock().entries.keys().copied().collect()
    }

    /// The listed connections of `user`, in the order they were identified.
    pub fn connections_of(&self, user: &str) -> Vec<ConnectionId> {
        self.core
            .lock()
            .users
            .get(user)
            .cloned()
            .unwrap_or_default()
    }

    /// The listed members of `group`, in no particular order.
    pub fn members(&self, group: &str) -> Vec<ConnectionId> {
        let index = self.core.lock();
        index
            .groups
            .get(group)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The groups the listed connection `id` is in, sorted; empty if it is not
    /// listed (never registered, or `Closed` since: it left every group, **G7**).
    /// The names are the ones [`join`](Self::join) stored, shared with the group
    /// index (like [`user_of`](Self::user_of)'s).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::core::TransportLoss;
    /// use ws_lifecycle::{Config, Connection, Registry};
    ///
    /// let registry = Registry::default();
    /// registry.open();
    /// let now = Instant::now();
    /// let conn = Connection::new(registry.next_id(), Config::default()).accept(now)?;
    /// let _registration = registry.register(&conn, now)?;
    /// for group in ["room:7", "admins", "room:42"] {
    ///     registry.join(conn.id(), group)?;
    /// }
    /// registry.leave(conn.id(), "room:7");
    /// let groups = registry.groups_of(conn.id());
    /// assert_eq!(groups.iter().map(|g| &**g).collect::<Vec<_>>(), ["admins", "room:42"]);
    /// conn.transport().handle_transport_lost(TransportLoss::Eof, now)?;
    /// assert!(registry.groups_of(conn.id()).is_empty()); // Closed: in no group (G7)
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn groups_of(&self, id: ConnectionId) -> Vec<Name<str>> {
        let mut groups = self.core.lock().groups_of(id);
        groups.sort_unstable();
        groups
    }

    /// The user a listed connection was identified as.
    pub fn user_of(&self, id: ConnectionId) -> Option<Name<str>> {
        let index = self.core.lock();
        index.entries.get(&id)?.user.clone()
    }

    /// An [`Observer`] of the listed connection `id`.
    pub fn observer(&self, id: ConnectionId) -> Option<Observer> {
        let index = self.core.lock();
        Some(Observer::new(index.shared(&id)?.clone()))
    }

    /// Counts and totals, serializable (a `/stats` endpoint's body).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::registry::RegistryState;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Registry};
    ///
    /// let registry = Registry::default(); // not open yet: arrivals are held (G8)
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let _registration = registry.register(&conn, now)?;
    /// let snapshot = registry.snapshot();
    /// assert_eq!(snapshot.state, RegistryState::Starting);
    /// assert_eq!((snapshot.open, snapshot.held, snapshot.by_phase.accepted), (1, 1, 1));
    /// assert_eq!(snapshot.totals.registered, 1);
    /// let body = serde_json::to_value(&snapshot)?; // a `/stats` endpoint's body (G9)
    /// assert_eq!(body["state"], "starting");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn snapshot(&self) -> RegistrySnapshot {
        let index = self.core.lock();
        let mut by_phase = PhaseCounts::default();
        for shared in index.listed.iter() {
            by_phase.count(shared.phase());
        }
        RegistrySnapshot {
            state: self.core.state(),
            open: index.entries.len(),
            by_phase,
            held: index.held,
            users: index.users.len(),
            groups: index.groups.len(),
            totals: index.totals.clone(),
        }
    }
}
