//! Broadcast (**G7**): a message to every connection `Ready` at the broadcast's
//! linearization point — the increment of the registry's epoch — and to no other;
//! by user and by group the same rule applies to the matching connections.

use crate::core::{ConnectionId, Message};
use crate::shared::sync::{Arc, Ordering};
use crate::shared::{Delivery, Shared};

use super::index::Index;
use super::{BroadcastReport, Registry};

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
        // Numbered first, listed second: a connection Ready before the number was
        // registered before it too, so it is in the list (G7).
        let epoch = self.linearize();
        let targets = self.core.lock().listed.clone();
        visit(epoch, &message, targets.iter())
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
        self.deliver(&message, |index, out| {
            let ids = index.users.get(user).into_iter().flatten();
            out.extend(ids.filter_map(|id| index.shared(id).cloned()));
        })
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
        self.deliver(&message, |index, out| {
            let ids = index.groups.get(group).into_iter().flatten();
            out.extend(ids.filter_map(|id| index.shared(id).cloned()));
        })
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
        visit(epoch, &message, targets)
    }

    /// The linearization point of a broadcast (**G7**): every connection that became
    /// `Ready` before it is a target, every one after it is not.
    fn linearize(&self) -> u64 {
        self.core.epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn deliver(
        &self,
        message: &Message,
        select: impl FnOnce(&Index, &mut Vec<Arc<Shared>>),
    ) -> BroadcastReport {
        // Numbered first, listed second: a connection Ready before the number was
        // registered before it too, so it is in the list (G7).
        let epoch = self.linearize();
        let mut targets = Vec::new();
        select(&self.core.lock(), &mut targets);
        visit(epoch, message, &targets)
    }
}

/// Visits the targets of broadcast `epoch`, one connection lock at a time.
fn visit<'a>(
    epoch: u64,
    message: &Message,
    targets: impl IntoIterator<Item = &'a Arc<Shared>>,
) -> BroadcastReport {
    let mut report = BroadcastReport::default();
    for shared in targets {
        match shared.deliver(epoch, message) {
            Delivery::Delivered => report.delivered += 1,
            Delivery::NotReady => report.not_ready += 1,
            Delivery::Closing => report.closing += 1,
            Delivery::Full => report.full += 1,
        }
    }
    report
}
