//! The registry's seam with other nodes (**G7** across a cluster): a [`Broker`]
//! attached with [`Registry::attach`] is handed every broadcast, user and group
//! send after the local delivery, and [`Registry::deliver_published`] delivers what
//! another node published — locally only, never published again. The registry knows
//! nothing of how a broker carries it (Redis pub/sub with the `redis` feature's
//! `cluster` module; NATS or Postgres `LISTEN/NOTIFY` would implement the same
//! trait), and a broker must never make the registry wait: [`Broker::publish`]
//! queues or refuses at once.

use std::collections::BTreeMap;
use std::sync::Arc as Name;

use serde::{Deserialize, Serialize};

use crate::core::{ConnectionId, Message};

use super::{Audience, BroadcastReport, Registry, SendToErrorKind};

/// Whom a [`Publication`] is for, on every node: the same audiences as
/// [`Audience`], with owned names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// Every `Ready` connection.
    All,
    /// The `Ready` connections of this user.
    User(Name<str>),
    /// The `Ready` members of this group.
    Group(Name<str>),
    /// One connection, by its id on the node named (ids are local to their node:
    /// the node's name makes them cluster-wide). Only that node delivers it.
    Connection {
        /// The node the connection is on (the cluster layer's node name).
        node: Name<str>,
        /// Its id there.
        id: ConnectionId,
    },
}

impl Target {
    /// The local audience this target selects (`None` for one connection: see
    /// [`Registry::deliver_published`]).
    pub fn audience(&self) -> Option<Audience<'_>> {
        match self {
            Target::All => Some(Audience::All),
            Target::User(user) => Some(Audience::User(user)),
            Target::Group(group) => Some(Audience::Group(group)),
            Target::Connection { .. } => None,
        }
    }
}

/// A message for the other nodes, and whom it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Publication {
    /// Whom it is for.
    pub target: Target,
    /// The message (its payload shared, not copied).
    pub message: Message,
}

impl Publication {
    /// A publication of `message` to `target`.
    pub fn new(target: Target, message: Message) -> Publication {
        Publication { target, message }
    }
}

/// What became of a publication, in the [`BroadcastReport`] of the call that made
/// it (`published`; absent on a registry with no broker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Published {
    /// Handed to the broker, in order behind this node's earlier publications.
    Queued,
    /// Refused: the broker's bounded queue is full (its broker has been unreachable
    /// for a while). Counted by the broker; the local delivery happened.
    Dropped,
    /// Refused: the node has left the cluster (it is draining).
    Left,
}

/// Who is on this node: its listed connections, its users with how many
/// connections each, its groups with how many members each — what a cluster layer
/// shares with the other nodes as this node's presence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Presence {
    /// Listed connections (registered and not yet `Closed`).
    pub connections: usize,
    /// Each identified user and how many listed connections they have.
    pub users: BTreeMap<String, usize>,
    /// Each group and how many listed members it has.
    pub groups: BTreeMap<String, usize>,
}

/// The registry's link to the other nodes of a cluster.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use ws_lifecycle::registry::{Broker, Publication, Published, Target};
/// use ws_lifecycle::{Message, Registry};
///
/// /// Two registries in one process, wired together (a real broker crosses machines).
/// struct Wire(Mutex<Vec<Publication>>);
/// impl Broker for Wire {
///     fn publish(&self, publication: Publication) -> Published {
///         self.0.lock().unwrap().push(publication);
///         Published::Queued
///     }
/// }
/// let (a, b) = (Registry::open_now(), Registry::open_now());
/// let wire = Arc::new(Wire(Mutex::new(Vec::new())));
/// a.attach(wire.clone());
/// let report = a.broadcast(Message::text("hi"));
/// assert_eq!(report.published, Some(Published::Queued));
/// for publication in wire.0.lock().unwrap().drain(..) {
///     let delivered = b.deliver_published(&publication); // never published again
///     assert_eq!(delivered.published, None);
/// }
/// ```
///
/// What a broker owes the registry, which it cannot check itself:
///
/// - **never wait**: `publish` queues or refuses at once (local delivery has
///   happened already, and must not be held up by the network);
/// - **order per publisher**: every other node receives one node's publications in
///   the order `publish` was called — a thread's sends, one after the other, are
///   delivered everywhere in that order (two threads sending at once are two
///   publishers: their relative order is not defined, here or anywhere);
/// - **never back to the sender**: the publishing node delivered locally already;
///   a publication that comes back must be skipped (the Redis broker numbers its
///   envelopes per node and incarnation, skips its own and drops repeats);
/// - **nothing lost silently**: a refusal says so (`Published::Dropped`), and what
///   the transport loses (a gap in a publisher's numbering) is counted.
///
/// `send_to` (a connection id is local to its node) and `broadcast_where` (a closure
/// cannot cross the wire) never publish.
pub trait Broker: Send + Sync + 'static {
    /// Hands `publication` to the other nodes, in order behind this node's earlier
    /// ones. Must return at once: queue it, or refuse it (and count the refusal).
    /// It is the broker's to keep: the registry built it for this call.
    fn publish(&self, publication: Publication) -> Published;

    /// The registry has begun to drain ([`Registry::drain`]): this node should stop
    /// being a delivery target and withdraw its presence now, without waiting (the
    /// drain goes on at once; its connections close 1001 as on a single node).
    /// Called once, from the first drain. The default does nothing.
    fn draining(&self) {}
}

impl Registry {
    /// Attaches `broker`: from now on [`broadcast`](Self::broadcast),
    /// [`send_to_user`](Self::send_to_user), [`send_to_group`](Self::send_to_group)
    /// and [`deliver`](Self::deliver) also publish to it, after delivering locally,
    /// and say what became of it in their report's `published`. Once per registry:
    /// returns `false` (and changes nothing) if a broker is attached already.
    pub fn attach(&self, broker: std::sync::Arc<dyn Broker>) -> bool {
        self.core.broker.set(broker).is_ok()
    }

    /// Delivers what another node published to the matching connections here that
    /// are `Ready` at this call's linearization point (**G7** at this node), and
    /// publishes nothing. For [`Target::Connection`], the connection `id` here (as
    /// [`send_to`](Self::send_to), counted in the report: not listed counts
    /// nothing); the cluster layer hands it only to the node named.
    pub fn deliver_published(&self, publication: &Publication) -> BroadcastReport {
        let message = &publication.message;
        match (&publication.target, publication.target.audience()) {
            (_, Some(audience)) => self.fan_out(audience, message, |_, _| {}),
            (Target::Connection { id, .. }, None) => {
                let mut report = BroadcastReport::default();
                match self.send_to(*id, message.clone()).map_err(|e| e.kind) {
                    Ok(()) => report.delivered = 1,
                    Err(SendToErrorKind::NotReady) => report.not_ready = 1,
                    Err(SendToErrorKind::Closing) => report.closing = 1,
                    Err(SendToErrorKind::Full) => report.full = 1,
                    Err(_) => {} // not listed (gone): selected nothing
                }
                report
            }
            (_, None) => BroadcastReport::default(),
        }
    }

    /// Who is on this node now (see [`Presence`]). Under the registry's lock it
    /// only counts and takes a reference to each name (the cluster's heartbeat calls
    /// this every beat: at 100 000 users, building the maps under the lock held
    /// every broadcast up for ~20 ms); the maps are built after.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Config, Connection, Registry};
    ///
    /// let registry = Registry::open_now();
    /// let now = Instant::now();
    /// let conn = Connection::new(registry.next_id(), Config::default()).accept(now)?;
    /// let _registration = registry.register(&conn, now)?;
    /// let conn = conn.authenticate(None, now)?;
    /// registry.identify(&conn, "ada")?;
    /// registry.join(conn.id(), "room")?;
    /// let presence = registry.presence();
    /// assert_eq!((presence.connections, presence.users["ada"], presence.groups["room"]), (1, 1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn presence(&self) -> Presence {
        let (connections, users, groups) = {
            let index = self.core.lock();
            let users: Vec<(Name<str>, usize)> = (index.users.iter())
                .filter(|(_, ids)| !ids.is_empty())
                .map(|(user, ids)| (user.clone(), ids.len()))
                .collect();
            let groups: Vec<(Name<str>, usize)> = (index.groups.iter())
                .filter(|(_, ids)| !ids.is_empty())
                .map(|(group, ids)| (group.clone(), ids.len()))
                .collect();
            (index.listed.len(), users, groups)
        };
        let owned = |names: Vec<(Name<str>, usize)>| {
            (names.into_iter())
                .map(|(name, n)| (name.to_string(), n))
                .collect()
        };
        Presence {
            connections,
            users: owned(users),
            groups: owned(groups),
        }
    }

    /// Publishes to the attached broker, if any.
    pub(super) fn publish(&self, audience: Audience<'_>, message: &Message) -> Option<Published> {
        let broker = self.core.broker.get()?;
        let target = match audience {
            Audience::All => Target::All,
            Audience::User(user) => Target::User(user.into()),
            Audience::Group(group) => Target::Group(group.into()),
        };
        Some(broker.publish(Publication::new(target, message.clone())))
    }
}
