//! Broadcast (**G7**): a message to every connection `Ready` at the broadcast's
//! linearization point — the increment of the registry's epoch — and to no other;
//! by user, by group and by id the same rule applies to the matching connections.
//!
//! One fan-out serves them all (`Registry::fan_out`, then `visit`); what differs is
//! the audience and what is done with a refusal: nothing for the plain broadcasts,
//! which allocate nothing for it, a list of ids for [`Registry::deliver`].

use crate::core::{ConnectionId, Message};
use crate::shared::sync::{Arc, Ordering};
use crate::shared::{Delivery, Shared};

use super::index::Index;
use super::{BroadcastReport, DeliveryReport, Refused, Registry, SendToError, SendToErrorKind};

/// Whom [`Registry::deliver`] sends to: the connections a broadcast, a
/// [`send_to_user`](Registry::send_to_user) or a
/// [`send_to_group`](Registry::send_to_group) would select (of which only the `Ready`
/// ones get the message, **G7**).
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::registry::Audience;
/// use ws_lifecycle::{Config, Connection, Message, Registry};
///
/// let registry = Registry::default();
/// registry.open();
/// let now = Instant::now();
/// let conn = Connection::new(registry.next_id(), Config::default()).accept(now)?;
/// let _registration = registry.register(&conn, now)?;
/// let conn = conn.authenticate(None, now)?;
/// registry.identify(&conn, "ada")?;
/// let _conn = conn.ready(now)?;
/// for audience in [Audience::All, Audience::User("ada"), Audience::Group("room")] {
///     let report = registry.deliver(audience, Message::text("hi"));
///     println!("{audience:?}: {} delivered", report.counts.delivered);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Audience<'a> {
    /// Every listed connection, like [`Registry::broadcast`].
    All,
    /// The connections of this user, like [`Registry::send_to_user`].
    User(&'a str),
    /// The members of this group, like [`Registry::send_to_group`].
    Group(&'a str),
}

impl Registry {
    /// Sends `message` to every connection `Ready` at this call's linearization point
    /// (**G7**).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Frame, Message, Registry};
    ///
    /// let registry = Registry::default();
    /// registry.open();
    /// let now = Instant::now();
    /// let (a, b) = (ConnectionId::new(1), ConnectionId::new(2));
    /// let ready = Connection::new(a, Config::default()).accept(now)?;
    /// let handshaking = Connection::new(b, Config::default()).accept(now)?;
    /// let _registrations = (registry.register(&ready, now)?, registry.register(&handshaking, now)?);
    /// let ready = ready.authenticate(None, now)?.ready(now)?;
    /// let report = registry.broadcast(Message::text("news"));
    /// assert_eq!((report.delivered, report.not_ready), (1, 1)); // only the Ready one (G7)
    /// let news = Frame::Message(Message::text("news"));
    /// assert_eq!(ready.transport().next_frame(now), Some(news));
    /// assert_eq!(handshaking.transport().next_frame(now), None); // nothing before Ready (G2)
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn broadcast(&self, message: Message) -> BroadcastReport {
        self.deliver_and_publish(Audience::All, message, |_, _| {})
    }

    /// Sends `message` to the `Ready` connections of `user` (all their devices).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Message, Registry};
    ///
    /// let registry = Registry::default();
    /// registry.open();
    /// let now = Instant::now();
    /// let mut devices = Vec::new();
    /// for (id, user) in [(1, "ada"), (2, "ada"), (3, "bob")] {
    ///     let conn = Connection::new(ConnectionId::new(id), Config::default()).accept(now)?;
    ///     let registration = registry.register(&conn, now)?;
    ///     let conn = conn.authenticate(None, now)?;
    ///     registry.identify(&conn, user)?;
    ///     devices.push((conn.ready(now)?, registration));
    /// }
    /// let report = registry.send_to_user("ada", Message::text("new device signed in"));
    /// assert_eq!(report.delivered, 2); // both of ada's, none of bob's
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_to_user(&self, user: &str, message: Message) -> BroadcastReport {
        self.deliver_and_publish(Audience::User(user), message, |_, _| {})
    }

    /// Sends `message` to the `Ready` members of `group`.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Frame, Message, Registry};
    ///
    /// let registry = Registry::default();
    /// registry.open();
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let _registration = registry.register(&conn, now)?;
    /// registry.join(conn.id(), "room:42")?; // before Ready is fine; delivery waits for it
    /// let conn = conn.authenticate(None, now)?.ready(now)?;
    /// assert_eq!(registry.send_to_group("room:42", Message::text("hi all")).delivered, 1);
    /// assert_eq!(registry.send_to_group("room:7", Message::text("anyone?")).selected(), 0);
    /// let frame = conn.transport().next_frame(now);
    /// assert_eq!(frame, Some(Frame::Message(Message::text("hi all"))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_to_group(&self, group: &str, message: Message) -> BroadcastReport {
        self.deliver_and_publish(Audience::Group(group), message, |_, _| {})
    }

    /// Sends `message` to `audience` like [`broadcast`](Self::broadcast),
    /// [`send_to_user`](Self::send_to_user) or [`send_to_group`](Self::send_to_group)
    /// — the same rule (only the connections `Ready` at its linearization point,
    /// **G7**), the same counts — and names the connections it refused: closing
    /// (**G3**: never queued after their Close) or with a full outbox. The connections
    /// not `Ready` are counted, not named: they were skipped, not refused.
    ///
    /// The plain calls do not collect the names, and allocate nothing for them.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::registry::{Audience, Refused};
    /// use ws_lifecycle::{CloseFrame, Config, Connection, Message, Registry};
    ///
    /// let registry = Registry::default();
    /// registry.open();
    /// let now = Instant::now();
    /// let mut conns = Vec::new();
    /// for _ in 0..3 {
    ///     let conn = Connection::new(registry.next_id(), Config::default()).accept(now)?;
    ///     let registration = registry.register(&conn, now)?;
    ///     conns.push((conn.authenticate(None, now)?.ready(now)?, registration));
    /// }
    /// let (leaving, _registration) = conns.pop().unwrap();
    /// let id = leaving.id();
    /// let _closing = leaving.close(CloseFrame::normal(), now);
    /// let report = registry.deliver(Audience::All, Message::text("news"));
    /// assert_eq!((report.counts.delivered, report.counts.closing), (2, 1));
    /// assert_eq!(report.refused, [(id, Refused::Closing)]); // who did not get it
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn deliver(&self, audience: Audience<'_>, message: Message) -> DeliveryReport {
        let mut refused = Vec::new();
        let counts = self.deliver_and_publish(audience, message, |shared, why| {
            refused.push((shared.id(), why));
        });
        DeliveryReport { counts, refused }
    }

    /// Sends `message` to the listed connection `id`, by the rule of a broadcast: only
    /// if it is `Ready` at this call's linearization point (**G7**), and never after
    /// its Close (**G3**); a full outbox is a refusal, not a wait (and the
    /// connection's [`OverflowPolicy`](crate::core::OverflowPolicy) applies). A
    /// refused message is handed back in the error (**G3**).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::registry::SendToErrorKind;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Frame, Message, Registry};
    ///
    /// let registry = Registry::default();
    /// registry.open();
    /// let now = Instant::now();
    /// let conn = Connection::new(registry.next_id(), Config::default()).accept(now)?;
    /// let _registration = registry.register(&conn, now)?;
    /// let conn = conn.authenticate(None, now)?.ready(now)?;
    /// registry.send_to(conn.id(), Message::text("just you"))?;
    /// let frame = conn.transport().next_frame(now);
    /// assert_eq!(frame, Some(Frame::Message(Message::text("just you"))));
    /// let err = registry.send_to(ConnectionId::new(404), Message::text("anyone?")).unwrap_err();
    /// assert_eq!(err.kind, SendToErrorKind::NotListed);
    /// assert_eq!(err.into_message(), Message::text("anyone?")); // handed back (G3)
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_to(&self, id: ConnectionId, message: Message) -> Result<(), SendToError> {
        // Numbered first, looked up second, as a broadcast (G7).
        let epoch = self.linearize();
        let target = self.core.lock().shared(&id).cloned();
        let kind = match target.map(|shared| shared.deliver(epoch, &message)) {
            Some(Delivery::Delivered) => return Ok(()),
            Some(Delivery::NotReady) => SendToErrorKind::NotReady,
            Some(Delivery::Closing) => SendToErrorKind::Closing,
            Some(Delivery::Full) => SendToErrorKind::Full,
            None => SendToErrorKind::NotListed,
        };
        Err(SendToError::new(kind, message))
    }

    /// Sends `message` to the `Ready` connections for which `select(id, user)` is
    /// true. `select` runs without any lock held, so it may call the registry.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Message, Registry};
    ///
    /// let registry = Registry::default();
    /// registry.open();
    /// let now = Instant::now();
    /// let mut conns = Vec::new();
    /// for (id, user) in [(1, "ada"), (2, "root")] {
    ///     let conn = Connection::new(ConnectionId::new(id), Config::default()).accept(now)?;
    ///     let registration = registry.register(&conn, now)?;
    ///     let conn = conn.authenticate(None, now)?;
    ///     registry.identify(&conn, user)?;
    ///     conns.push((conn.ready(now)?, registration));
    /// }
    /// let admins = |_id, user: Option<&str>| user == Some("root");
    /// let report = registry.broadcast_where(Message::text("disk almost full"), admins);
    /// assert_eq!((report.selected(), report.delivered), (1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn broadcast_where(
        &self,
        message: Message,
        mut select: impl FnMut(ConnectionId, Option<&str>) -> bool,
    ) -> BroadcastReport {
        let epoch = self.linearize();
        let candidates = self.core.lock().listed_with_users();
        let targets = candidates
            .iter()
            .filter(|(shared, user)| select(shared.id(), user.as_deref()))
            .map(|(shared, _)| shared);
        visit(epoch, &message, targets, |_, _| {})
    }

    /// The linearization point of a broadcast (**G7**): every connection that became
    /// `Ready` before it is a target, every one after it is not.
    fn linearize(&self) -> u64 {
        self.core.epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The local fan-out, then the publication to the other nodes if a broker is
    /// attached (`published` says what became of it): local delivery never waits on
    /// the broker.
    fn deliver_and_publish(
        &self,
        audience: Audience<'_>,
        message: Message,
        refused: impl FnMut(&Arc<Shared>, Refused),
    ) -> BroadcastReport {
        let mut report = self.fan_out(audience, &message, refused);
        report.published = self.publish(audience, &message);
        report
    }

    /// The one fan-out: numbers the delivery, copies `audience`'s targets under the
    /// registry's lock, then visits them with it released, telling `refused` of each
    /// refusal (a no-op closure for the plain broadcasts: nothing collected).
    pub(super) fn fan_out(
        &self,
        audience: Audience<'_>,
        message: &Message,
        refused: impl FnMut(&Arc<Shared>, Refused),
    ) -> BroadcastReport {
        // Numbered first, listed second: a connection Ready before the number was
        // registered before it too, so it is in the list (G7).
        let epoch = self.linearize();
        let targets = {
            let index = self.core.lock();
            match audience {
                Audience::All => {
                    // The whole list, shared: one reference-count increment.
                    let listed = index.listed.clone();
                    drop(index);
                    return visit(epoch, message, listed.iter(), refused);
                }
                Audience::User(user) => resolve(&index, index.users.get(user)),
                Audience::Group(group) => resolve(&index, index.groups.get(group)),
            }
        };
        visit(epoch, message, &targets, refused)
    }
}

/// The listed connections of `ids`, copied out from under the registry's lock.
fn resolve<'i>(
    index: &Index,
    ids: Option<impl IntoIterator<Item = &'i ConnectionId>>,
) -> Vec<Arc<Shared>> {
    ids.into_iter()
        .flatten()
        .filter_map(|id| index.shared(id).cloned())
        .collect()
}

/// Visits the targets of broadcast `epoch`, one connection lock at a time, and tells
/// `refused` of each connection refused.
#[inline]
fn visit<'a>(
    epoch: u64,
    message: &Message,
    targets: impl IntoIterator<Item = &'a Arc<Shared>>,
    mut refused: impl FnMut(&Arc<Shared>, Refused),
) -> BroadcastReport {
    let mut report = BroadcastReport::default();
    for shared in targets {
        match shared.deliver(epoch, message) {
            Delivery::Delivered => report.delivered += 1,
            Delivery::NotReady => report.not_ready += 1,
            Delivery::Closing => {
                report.closing += 1;
                refused(shared, Refused::Closing);
            }
            Delivery::Full => {
                report.full += 1;
                refused(shared, Refused::Full);
            }
        }
    }
    report
}
