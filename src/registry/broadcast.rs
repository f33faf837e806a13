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
    pub fn broadcast(&self, message: Message) -> BroadcastReport {
        // Numbered first, listed second: a connection Ready before the number was
        // registered before it too, so it is in the list (G7).
        let epoch = self.linearize();
        let targets = self.core.lock().listed.clone();
        visit(epoch, &message, targets.iter())
    }

    /// Sends `message` to the `Ready` connections of `user` (all their devices).
    pub fn send_to_user(&self, user: &str, message: Message) -> BroadcastReport {
        self.deliver(&message, |index, out| {
            let ids = index.users.get(user).into_iter().flatten();
            out.extend(ids.filter_map(|id| index.shared(id).cloned()));
        })
    }

    /// Sends `message` to the `Ready` members of `group`.
    pub fn send_to_group(&self, group: &str, message: Message) -> BroadcastReport {
        self.deliver(&message, |index, out| {
            let ids = index.groups.get(group).into_iter().flatten();
            out.extend(ids.filter_map(|id| index.shared(id).cloned()));
        })
    }

    /// Sends `message` to the `Ready` connections for which `select(id, user)` is
    /// true. `select` runs without any lock held, so it may call the registry.
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
