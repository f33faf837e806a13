//! The cluster layer (feature `redis`): a [`Registry`] on each node, joined over one
//! Redis server, so that `broadcast`, `send_to_user`, `send_to_group` and `deliver`
//! reach the matching `Ready` connections on every node, and every node knows who is
//! online where. See `docs/cluster.md` for the design, its bounds and its faults.
//!
//! - **Publish.** [`Cluster::start`] attaches a [`Broker`] to the registry: each of
//!   those calls delivers locally first, then hands the publication to a bounded
//!   queue ([`ClusterConfig::queue`]) and returns — local delivery never waits on
//!   Redis. One task sends the queue, in order, batched in pipelines, to one Redis
//!   pub/sub channel (`{prefix}:bus`): per publishing node, every node receives in
//!   publish order. While Redis is unreachable the queue holds what is published
//!   and is sent after the reconnection; once full, a publication is refused
//!   ([`Published::Dropped`] in its report), counted and logged — never lost
//!   silently.
//! - **Receive.** Another task subscribes to the channel and hands what other nodes
//!   published to [`Registry::deliver_published`]: delivered to the connections
//!   `Ready` here at that moment (**G7** at each node), never published again.
//!   Envelopes are numbered per publishing node: a gap (Redis pub/sub delivers at
//!   most once: what was published while this node was disconnected is gone) is
//!   counted in `missed`, a repeat (a batch re-sent after a failed write) is dropped.
//! - **Presence.** Every [`ClusterConfig::heartbeat`] each node writes its
//!   [`Presence`] (listed connections, users, groups) under a key that expires after
//!   [`ClusterConfig::presence_ttl`], and reads everyone's: a join or leave is seen
//!   by the other nodes within two heartbeats, a node that dies without a word
//!   disappears within the TTL.
//! - **Leave.** [`Cluster::leave`] (before a drain) stops publishing and
//!   receiving and deletes this node's presence at once; a [`Registry::drain`]
//!   does the same as it begins ([`Broker::draining`]), without waiting.
//! - **Bounds.** A node that falls [`ClusterConfig::max_lag`] behind the bus drops
//!   its subscription and its backlog and subscribes afresh (what it skipped is
//!   counted in `missed`); the subscription is pinged every heartbeat, so a
//!   connection gone silent is made again.
//!
//! Why the `redis` crate (0.32, tokio): it is the ecosystem's most used Redis client,
//! its multiplexed connection pipelines commands in order on one socket (what
//! per-node order needs), and its pub/sub stream is a plain `Stream`; fred's richer
//! reconnection policies are not needed, since reconnection here is one loop with a
//! backoff that also re-subscribes and rewrites presence. (0.32 because 1.x needs
//! Rust 1.88; the crate's MSRV is 1.85.)

mod envelope;
mod numbering;
mod tasks;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, watch};

use crate::core::{ConnectionId, Message};
use crate::registry::{Broker, Presence, Publication, Published, Registry, SendToError, Target};

/// How a node joins the cluster. Start from [`ClusterConfig::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// The Redis server, e.g. `redis://127.0.0.1:6379`.
    pub url: String,
    /// This node's name, unique in the cluster (the example chat's default: a
    /// random one).
    pub node: String,
    /// The prefix of every Redis key and channel, so that clusters can share a
    /// server. Default: `wsl`.
    pub prefix: String,
    /// How often presence is written and read. Default: 500 ms.
    pub heartbeat: Duration,
    /// How long a node's presence outlives its last heartbeat: a node that dies is
    /// gone from every node's view within this (plus one heartbeat of the reader).
    /// Default: 2 s.
    pub presence_ttl: Duration,
    /// Publications held while Redis is slow or unreachable; beyond it, refused
    /// ([`Published::Dropped`]). Default: 4 096.
    pub queue: usize,
    /// Every Redis command (connect, publish, heartbeat) that takes longer fails,
    /// and the connection is made again. Default: 1 s.
    pub command_timeout: Duration,
    /// Reconnection waits this long at first, doubling up to
    /// [`backoff_max`](Self::backoff_max). Default: 50 ms.
    pub backoff_min: Duration,
    /// The longest wait between reconnection attempts. Default: 2 s.
    pub backoff_max: Duration,
    /// How far this node may fall behind the bus: when a publication is received
    /// this much later than the quickest from its node (so a constant difference
    /// between the nodes' clocks does not count), this node drops its subscription
    /// — and the backlog the Redis client holds for it, which is not otherwise
    /// bounded — and subscribes afresh; what it skipped is counted in
    /// [`ClusterSnapshot::missed`]. Default: 5 s.
    pub max_lag: Duration,
}

impl ClusterConfig {
    /// The defaults, for node `node` of the cluster on Redis at `url`.
    ///
    /// ```
    /// let config = ws_lifecycle::cluster::ClusterConfig::new("redis://127.0.0.1:6379", "node-a");
    /// assert_eq!((config.prefix.as_str(), config.queue), ("wsl", 4096));
    /// ```
    pub fn new(url: impl Into<String>, node: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            url: url.into(),
            node: node.into(),
            prefix: "wsl".to_owned(),
            heartbeat: Duration::from_millis(500),
            presence_ttl: Duration::from_secs(2),
            queue: 4096,
            command_timeout: Duration::from_secs(1),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            max_lag: Duration::from_secs(5),
        }
    }

    /// What `start` refuses: a node name Redis envelopes cannot carry, timings that
    /// cannot work.
    fn check(&self) -> Result<(), ClusterError> {
        let problem = if self.node.is_empty() || self.node.len() > envelope::MAX_NODE {
            format!(
                "the node's name must be 1 to {} bytes, not {}",
                envelope::MAX_NODE,
                self.node.len()
            )
        } else if self.heartbeat.is_zero() || self.command_timeout.is_zero() {
            "heartbeat and command_timeout must be longer than zero".to_owned()
        } else if self.presence_ttl <= self.heartbeat {
            format!(
                "presence_ttl ({:?}) must be longer than the heartbeat ({:?}), or live nodes' presence expires between beats",
                self.presence_ttl, self.heartbeat
            )
        } else if self.max_lag.is_zero() {
            "max_lag must be longer than zero".to_owned()
        } else {
            return Ok(());
        };
        Err(ClusterError::Config(problem))
    }

    fn channel(&self) -> String {
        format!("{}:bus", self.prefix)
    }

    fn presence_key(&self, node: &str) -> String {
        format!("{}:presence:{node}", self.prefix)
    }

    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
}

/// Why [`Cluster::start`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL: {0}")]
    Url(String),
    /// The registry has a broker already.
    #[error("the registry is attached to a broker already")]
    Attached,
    /// The configuration cannot work (the message says which field and why).
    #[error("invalid cluster configuration: {0}")]
    Config(String),
}

/// The cluster as this node sees it: its own counters and state, for `/stats` and
/// tracing. Counters count since [`Cluster::start`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClusterSnapshot {
    /// This node's name.
    pub node: String,
    /// Both connections to Redis (publishing, subscribed) are up.
    pub connected: bool,
    /// The live nodes (this one included while it has not left), by name, as of
    /// the last heartbeat.
    pub nodes: Vec<String>,
    /// Publications sent to Redis.
    pub published: u64,
    /// Publications refused: the queue was full (Redis unreachable or slow), or the
    /// target's name was too long for an envelope; and, on leaving with Redis
    /// unreachable, the queued ones that could not be sent.
    pub dropped: u64,
    /// Publications waiting in the queue now.
    pub queued: usize,
    /// Other nodes' publications received.
    pub received: u64,
    /// Other nodes' publications missed: gaps in their numbering (sent while this
    /// node was not subscribed).
    pub missed: u64,
    /// Connections the received publications were delivered to here.
    pub delivered: u64,
    /// Deliveries of received publications refused here: the connection was
    /// closing, or its outbox full (its `OverflowPolicy` applied) — counted, as a
    /// local broadcast's report counts them.
    pub refused: u64,
    /// How long the last received publication took from its node's publish to this
    /// node's delivery, in microseconds (the nodes' clocks compared).
    pub lag_us: u64,
    /// Connections to Redis made again after a failure.
    pub reconnects: u64,
    /// Failures talking to Redis: commands that failed or timed out, connections
    /// refused, subscriptions lost or dropped for falling behind
    /// ([`ClusterConfig::max_lag`]), envelopes that could not be read.
    pub errors: u64,
    /// This node has left ([`Cluster::leave`]).
    pub left: bool,
}

/// Who is online across the cluster, as of the last heartbeat: each live node's
/// [`Presence`] (this node's as of now).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClusterPresence {
    /// Each live node's presence, by name.
    pub nodes: BTreeMap<String, Presence>,
}

impl ClusterPresence {
    /// Listed connections on all nodes.
    pub fn connections(&self) -> usize {
        self.nodes.values().map(|p| p.connections).sum()
    }

    /// Each user online anywhere, with their connections on all nodes.
    pub fn users(&self) -> BTreeMap<String, usize> {
        let mut users = BTreeMap::new();
        for presence in self.nodes.values() {
            for (user, n) in &presence.users {
                *users.entry(user.clone()).or_insert(0) += n;
            }
        }
        users
    }

    /// The nodes `user` has connections on.
    pub fn nodes_of(&self, user: &str) -> Vec<&str> {
        (self.nodes.iter())
            .filter(|(_, p)| p.users.contains_key(user))
            .map(|(node, _)| node.as_str())
            .collect()
    }
}

/// Where [`Cluster::send_to`] sent a message.
#[derive(Debug)]
#[non_exhaustive]
pub enum Routed {
    /// The connection is on this node: the registry's answer
    /// ([`Registry::send_to`]: the message handed back on a refusal, **G3**).
    Local(Result<(), SendToError>),
    /// The connection is on another node: what became of the publication (only
    /// that node delivers it, to the connection if it is `Ready` there, **G7**).
    Remote(Published),
}

/// What the node's tasks and its broker share.
struct Shared {
    config: ClusterConfig,
    registry: Registry,
    /// Random per start: receivers number this node's publications afresh.
    incarnation: u64,
    queue: mpsc::Sender<Publication>,
    left: AtomicBool,
    leave: watch::Sender<bool>,
    publisher_up: AtomicBool,
    subscriber_up: AtomicBool,
    published: AtomicU64,
    dropped: AtomicU64,
    received: AtomicU64,
    missed: AtomicU64,
    delivered: AtomicU64,
    refused: AtomicU64,
    lag_us: AtomicU64,
    reconnects: AtomicU64,
    errors: AtomicU64,
    /// The live nodes' presence, as of the last heartbeat that reached Redis.
    view: Mutex<View>,
    /// Tasks ended (of three), and the notice of each end: `leave` waits for them.
    finished: AtomicUsize,
    finish: Notify,
}

/// What the last successful heartbeat read.
#[derive(Debug, Default)]
struct View {
    /// Each live node's presence, this one's included, by name.
    nodes: BTreeMap<String, Presence>,
    /// The other nodes' listed connections, summed.
    others_connections: usize,
    /// When it was read; `None` before the first.
    at: Option<std::time::Instant>,
}

impl View {
    /// The view if it is fresh: read within the presence TTL (a node whose presence
    /// was not seen for that long is not known to be live; while Redis is
    /// unreachable the view ages out instead of listing the dead for ever).
    fn fresh(&self, ttl: Duration) -> Option<&View> {
        self.at.filter(|at| at.elapsed() <= ttl).map(|_| self)
    }
}

/// The registry's broker: the queue, never a wait.
struct QueueBroker(Arc<Shared>);

impl Broker for QueueBroker {
    fn publish(&self, publication: Publication) -> Published {
        let shared = &self.0;
        if shared.left.load(Ordering::SeqCst) {
            return Published::Left;
        }
        if !envelope::fits(&publication) {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                node = %shared.config.node,
                max = envelope::MAX_TARGET,
                "cluster: publication dropped: its target's name is too long for an envelope"
            );
            return Published::Dropped;
        }
        match shared.queue.try_send(publication) {
            Ok(()) => Published::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                let dropped = shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(
                        node = %shared.config.node,
                        dropped,
                        queue = shared.config.queue,
                        "cluster queue full: publication dropped (Redis unreachable or slow)"
                    );
                }
                Published::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Published::Left,
        }
    }

    /// The registry drains: leave at once (the tasks stop publishing and
    /// receiving, the heartbeat deletes this node's presence), without waiting.
    fn draining(&self) {
        self.0.begin_leaving();
    }
}

impl Shared {
    /// From now on publications are refused and the tasks wind down.
    fn begin_leaving(&self) {
        self.left.store(true, Ordering::SeqCst);
        let _ = self.leave.send(true);
    }
}

/// One node's membership of the cluster (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.shared.config.node)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Joins `registry` to the cluster: attaches the broker and starts the tasks
    /// (on the current tokio runtime) that connect to Redis — in the background:
    /// this returns at once, whether or not Redis is reachable, and the node serves
    /// its own connections meanwhile.
    ///
    /// Refused: an invalid URL, a registry already attached, or a configuration
    /// that cannot work ([`ClusterError::Config`]: a node name empty or over 255
    /// bytes, a zero heartbeat or timeout, a presence TTL not longer than the
    /// heartbeat).
    ///
    /// The tasks hold the registry: they stop when the node leaves
    /// ([`leave`](Self::leave), or [`Registry::drain`]), not when the last
    /// `Cluster` handle is dropped.
    pub fn start(registry: Registry, config: ClusterConfig) -> Result<Cluster, ClusterError> {
        config.check()?;
        let client = redis::Client::open(config.url.as_str())
            .map_err(|error| ClusterError::Url(error.to_string()))?;
        let (queue, receiver) = mpsc::channel(config.queue.max(1));
        let (leave, leaving) = watch::channel(false);
        let shared = Arc::new(Shared {
            incarnation: incarnation(),
            config,
            registry: registry.clone(),
            queue,
            left: AtomicBool::new(false),
            leave,
            publisher_up: AtomicBool::new(false),
            subscriber_up: AtomicBool::new(false),
            published: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            received: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            lag_us: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            view: Mutex::new(View::default()),
            finished: AtomicUsize::new(0),
            finish: Notify::new(),
        });
        if !registry.attach(Arc::new(QueueBroker(shared.clone()))) {
            return Err(ClusterError::Attached);
        }
        tokio::spawn(tasks::publisher(
            shared.clone(),
            client.clone(),
            receiver,
            leaving.clone(),
        ));
        tokio::spawn(tasks::subscriber(
            shared.clone(),
            client.clone(),
            leaving.clone(),
        ));
        tokio::spawn(tasks::heartbeat(shared.clone(), client, leaving));
        Ok(Cluster { shared })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.shared.config.node
    }

    /// The counters and state (see [`ClusterSnapshot`]).
    pub fn snapshot(&self) -> ClusterSnapshot {
        let s = &self.shared;
        let left = s.left.load(Ordering::SeqCst);
        let mut nodes: Vec<String> = (lock(&s.view).fresh(s.config.presence_ttl))
            .map(|view| view.nodes.keys().cloned().collect())
            .unwrap_or_default();
        if !left && !nodes.contains(&s.config.node) {
            nodes.push(s.config.node.clone());
            nodes.sort();
        }
        ClusterSnapshot {
            node: s.config.node.clone(),
            connected: s.publisher_up.load(Ordering::SeqCst)
                && s.subscriber_up.load(Ordering::SeqCst),
            nodes,
            published: s.published.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            queued: s.config.queue.max(1) - s.queue.capacity(),
            received: s.received.load(Ordering::Relaxed),
            missed: s.missed.load(Ordering::Relaxed),
            delivered: s.delivered.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            lag_us: s.lag_us.load(Ordering::Relaxed),
            reconnects: s.reconnects.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            left,
        }
    }

    /// Who is online across the cluster: the other nodes as of the last heartbeat
    /// (none once that is older than the presence TTL: Redis unreachable), this one
    /// as of now (until it has left). Copies every node's users and groups: for a
    /// count, [`connections`](Self::connections) is cheap.
    pub fn presence(&self) -> ClusterPresence {
        let s = &self.shared;
        let mut nodes = (lock(&s.view).fresh(s.config.presence_ttl))
            .map(|view| view.nodes.clone())
            .unwrap_or_default();
        if s.left.load(Ordering::SeqCst) {
            nodes.remove(&s.config.node);
        } else {
            nodes.insert(s.config.node.clone(), s.registry.presence());
        }
        ClusterPresence { nodes }
    }

    /// Sends `message` to the connection `id` on `node` (ids are local to their
    /// node; the pair names a connection in the cluster): here through the
    /// registry, elsewhere through Redis, delivered by that node alone.
    ///
    /// ```no_run
    /// # async fn example(cluster: ws_lifecycle::cluster::Cluster) {
    /// use ws_lifecycle::cluster::Routed;
    /// use ws_lifecycle::{ConnectionId, Message};
    ///
    /// match cluster.send_to("node-b", ConnectionId::new(42), Message::text("just you")) {
    ///     Routed::Local(result) => println!("here: {result:?}"),
    ///     Routed::Remote(published) => println!("to node-b: {published:?}"),
    ///     _ => {}
    /// }
    /// # }
    /// ```
    pub fn send_to(&self, node: &str, id: ConnectionId, message: Message) -> Routed {
        if node == self.node() {
            return Routed::Local(self.shared.registry.send_to(id, message));
        }
        let target = Target::Connection {
            node: node.into(),
            id,
        };
        let broker = QueueBroker(self.shared.clone());
        Routed::Remote(broker.publish(Publication::new(target, message)))
    }

    /// Listed connections on all nodes: this node's now, the others' as of the last
    /// heartbeat (while it is fresh, see [`presence`](Self::presence)). No copy, one
    /// lock: cheap enough for every welcome.
    pub fn connections(&self) -> usize {
        let s = &self.shared;
        let others =
            (lock(&s.view).fresh(s.config.presence_ttl)).map_or(0, |v| v.others_connections);
        let own = if s.left.load(Ordering::SeqCst) {
            0
        } else {
            s.registry.len()
        };
        own + others
    }

    /// Leaves the cluster, before a drain (which also leaves, without waiting), and
    /// returns once done: publications are
    /// refused from now on ([`Published::Left`]); those queued are sent; the
    /// subscription ends — this node is no longer a delivery target — and its
    /// presence is deleted (by the heartbeat task, which alone writes it, so no
    /// heartbeat in flight can write it back). Waits at most twice the command
    /// timeout; with Redis unreachable, what is queued is dropped and the presence
    /// expires by its TTL.
    pub async fn leave(&self) {
        let s = &self.shared;
        s.begin_leaving();
        let all_ended = async {
            loop {
                let notified = s.finish.notified();
                if s.finished.load(Ordering::SeqCst) >= 3 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(s.config.command_timeout * 2, all_ended).await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A number that differs between starts: the clock's nanoseconds, mixed with the
/// process id.
fn incarnation() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) | 1
}

/// Microseconds since the Unix epoch.
fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(change: impl FnOnce(&mut ClusterConfig)) -> String {
        let mut config = ClusterConfig::new("redis://127.0.0.1:1", "node");
        change(&mut config);
        match config.check() {
            Err(ClusterError::Config(problem)) => problem,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn configurations_that_cannot_work_are_refused_with_the_reason() {
        assert!(
            ClusterConfig::new("redis://127.0.0.1:1", "node")
                .check()
                .is_ok()
        );
        assert!(refused(|c| c.node.clear()).contains("node's name"));
        assert!(refused(|c| c.node = "n".repeat(256)).contains("not 256"));
        assert!(refused(|c| c.heartbeat = Duration::ZERO).contains("heartbeat"));
        assert!(refused(|c| c.command_timeout = Duration::ZERO).contains("command_timeout"));
        assert!(refused(|c| c.presence_ttl = c.heartbeat).contains("presence_ttl"));
        assert!(refused(|c| c.max_lag = Duration::ZERO).contains("max_lag"));
        let mut longest = ClusterConfig::new("redis://127.0.0.1:1", "n".repeat(255));
        longest.max_lag = Duration::from_millis(1);
        assert!(longest.check().is_ok());
    }

    #[test]
    fn a_target_too_long_for_an_envelope_is_refused_not_cut() {
        let text = || Message::text("m");
        let named = |n: usize| Target::User("u".repeat(n).as_str().into());
        assert!(envelope::fits(&Publication::new(named(65_535), text())));
        assert!(!envelope::fits(&Publication::new(named(65_536), text())));
        let group = Target::Group("g".repeat(65_536).as_str().into());
        assert!(!envelope::fits(&Publication::new(group, text())));
        let far = |n: usize| Target::Connection {
            node: "n".repeat(n).as_str().into(),
            id: ConnectionId::new(1),
        };
        assert!(envelope::fits(&Publication::new(far(255), text())));
        assert!(!envelope::fits(&Publication::new(far(256), text())));
    }
}
