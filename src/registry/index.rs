//! The registry's indexes — by connection id, by user, by group — and the waiters on
//! the listing, all behind the registry's one lock.
//!
//! Lock order: a connection's lock may be held while this one is taken (a
//! connection leaves the listing in the same critical section as its transition to
//! `Closed`, **G7**), never the other way round: code holding this lock only copies
//! what it needs and lets go before it touches a connection.

use std::collections::{HashMap as StdHashMap, HashSet as StdHashSet};
use std::sync::Arc as Name;
use std::task::Waker;

use crate::core::{CloseCause, ConnectionId};
use crate::shared::sync::Arc;
use crate::shared::{Shared, Wakeups};

use super::report::Totals;

/// Under loom the hasher is fixed, so that iteration order — and with it the order
/// in which a broadcast visits connections — is the same in every execution loom
/// replays; otherwise it is std's randomly keyed one (names may come from clients).
#[cfg(loom)]
type Hasher = std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;
#[cfg(not(loom))]
type Hasher = std::collections::hash_map::RandomState;
type HashMap<K, V> = StdHashMap<K, V, Hasher>;
type HashSet<K> = StdHashSet<K, Hasher>;

/// The dense list of listed connections (see `Index::listed`).
pub(crate) type Listed = std::sync::Arc<Vec<Arc<Shared>>>;

/// What a drain has done so far.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DrainProgress {
    pub(crate) listed: usize,
    pub(crate) closing: usize,
    pub(crate) dropped: usize,
}

/// One listed connection (its shared state is `Index::listed[slot]`).
pub(crate) struct Entry {
    /// Where the connection is in `Index::listed`.
    slot: u32,
    pub(crate) user: Option<Name<str>>,
    /// The groups it joined; boxed, so that the many connections in no group carry
    /// 8 bytes for it in the map instead of 24 (the extra allocation clippy warns
    /// of is made only by a connection's first `join`).
    #[allow(clippy::box_collection)]
    pub(crate) groups: Option<Box<Vec<Name<str>>>>,
    /// Admitted before the registry opened (**G8**).
    pub(crate) held: bool,
    /// Started closing while held, the registry not opened yet: its close, if it is
    /// the startup gate's 1013, earns the warning that `open` was never called
    /// (**G8**). In the padding beside `held`: the entry stays 32 bytes.
    closed_held: bool,
}

// An entry is 32 bytes (40 with its key), as docs/registry.md and the memory figures
// of docs/performance.md say: the flags share the padding after `slot`.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Entry>() == 32);

/// Everything the registry's lock guards.
#[derive(Default)]
pub(crate) struct Index {
    pub(crate) entries: HashMap<ConnectionId, Entry>,
    /// Every listed connection, densely, in an order that depends only on the
    /// registrations and removals (deterministic under loom). Copy-on-write: a
    /// broadcast takes the whole list with one reference-count increment and visits
    /// it after the lock is released; a registration or removal while a broadcast
    /// still holds it copies it first (`Listed::make_mut`), so the broadcast keeps
    /// the targets of its linearization point (**G7**). The price: the first change
    /// to the listing during each broadcast copies it — n reference-count increments
    /// under the registry's lock (about 0.1 ms at 10 000 connections) — instead of
    /// every broadcast cloning and dropping each target. The std `Arc` is not loom's:
    /// it only shares an immutable list, under the index lock's ordering.
    pub(crate) listed: Listed,
    pub(crate) users: HashMap<Name<str>, Vec<ConnectionId>>,
    pub(crate) groups: HashMap<Name<str>, HashSet<ConnectionId>>,
    /// How many entries are `held`.
    pub(crate) held: usize,
    pub(crate) totals: Totals,
    /// The drain, once begun: how many were listed, asked to close, dropped.
    pub(crate) drain: Option<DrainProgress>,
    /// Futures waiting for the listing to empty, by id (re-polls replace).
    waiters: Vec<(u64, Waker)>,
    next_waiter: u64,
}

impl Index {
    /// How many connections can be listed: `Entry::slot` is a `u32`.
    pub(crate) const MAX_LISTED: usize = u32::MAX as usize;

    /// Lists `shared` as `id` (the caller checked `id` is free and the listing is
    /// below [`Self::MAX_LISTED`]).
    pub(crate) fn insert(&mut self, id: ConnectionId, shared: Arc<Shared>, held: bool) {
        self.held += usize::from(held);
        debug_assert!(
            self.listed.len() < Self::MAX_LISTED,
            "register checks the cap"
        );
        let slot = u32::try_from(self.listed.len()).unwrap_or(u32::MAX);
        Listed::make_mut(&mut self.listed).push(shared);
        self.entries.insert(
            id,
            Entry {
                slot,
                user: None,
                groups: None,
                held,
                closed_held: false,
            },
        );
    }

    /// Removes a connection that reached `Closed`, and every index reference to it
    /// (**G7**: no stale entry, whatever was added while it was listed). True if it
    /// had started closing while held, before the registry opened.
    pub(crate) fn remove(
        &mut self,
        id: ConnectionId,
        cause: Option<CloseCause>,
        wakeups: &mut Wakeups,
    ) -> bool {
        let Some(entry) = self.entries.remove(&id) else {
            return false;
        };
        let slot = entry.slot as usize;
        let listed = Listed::make_mut(&mut self.listed);
        let removed = listed.swap_remove(slot);
        debug_assert_eq!(removed.id(), id, "the entry's slot holds its connection");
        if let Some(moved) = listed.get(slot).map(|shared| shared.id()) {
            if let Some(moved) = self.entries.get_mut(&moved) {
                moved.slot = entry.slot;
            }
        }
        self.held -= usize::from(entry.held);
        if let Some(user) = &entry.user {
            self.unlink_user(user, id);
        }
        for group in entry.groups.iter().flat_map(|g| g.iter()) {
            self.unlink_group(group, id);
        }
        self.totals.closed(cause);
        if self.entries.is_empty() {
            for (_, waker) in self.waiters.drain(..) {
                wakeups.push(waker);
            }
        }
        entry.closed_held
    }

    fn unlink_user(&mut self, user: &str, id: ConnectionId) {
        if let Some(ids) = self.users.get_mut(user) {
            ids.retain(|&other| other != id);
            if ids.is_empty() {
                self.users.remove(user);
            }
        }
    }

    fn unlink_group(&mut self, group: &str, id: ConnectionId) {
        if let Some(ids) = self.groups.get_mut(group) {
            ids.remove(&id);
            if ids.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    /// A held connection started closing (or is about to be closed): it no longer
    /// takes a place in the hold. `remember`: mark it as closed while held — the
    /// registry not opened, since `open` releases every held entry — until it leaves.
    pub(crate) fn unhold(&mut self, id: ConnectionId, remember: bool) {
        if let Some(entry) = self.entries.get_mut(&id) {
            if std::mem::take(&mut entry.held) {
                self.held -= 1;
                entry.closed_held = remember;
            }
        }
    }

    /// The startup gate opened (**G8**): every held entry is released; returns their
    /// connections, to be told outside this lock.
    pub(crate) fn release_held(&mut self) -> Vec<Arc<Shared>> {
        self.held = 0;
        let listed = &self.listed;
        self.entries
            .values_mut()
            .filter_map(|entry| {
                std::mem::take(&mut entry.held).then(|| listed[entry.slot as usize].clone())
            })
            .collect()
    }

    /// Every listed connection with its user, for `Registry::broadcast_where`.
    pub(crate) fn listed_with_users(&self) -> Vec<(Arc<Shared>, Option<Name<str>>)> {
        self.entries
            .values()
            .map(|entry| (self.listed[entry.slot as usize].clone(), entry.user.clone()))
            .collect()
    }

    /// The shared state of the listed connection `id`.
    pub(crate) fn shared(&self, id: &ConnectionId) -> Option<&Arc<Shared>> {
        let entry = self.entries.get(id)?;
        self.listed.get(entry.slot as usize)
    }

    /// Connections listed for `user`.
    pub(crate) fn user_count(&self, user: &str) -> usize {
        self.users.get(user).map_or(0, Vec::len)
    }

    /// Records `user` for the listed connection `id` (replacing an earlier one).
    /// Only a listed entry gets one: a connection that left the listing is never
    /// added back to an index (**G7**).
    pub(crate) fn set_user(&mut self, id: ConnectionId, user: Name<str>) -> bool {
        let Some(entry) = self.entries.get_mut(&id) else {
            return false;
        };
        let old = entry.user.replace(user.clone());
        if let Some(old) = old {
            self.unlink_user(&old, id);
        }
        self.users.entry(user).or_default().push(id);
        true
    }

    /// Adds the listed connection `id` to `group`; false if it is not listed.
    pub(crate) fn join(&mut self, id: ConnectionId, group: &str) -> bool {
        let Some(entry) = self.entries.get_mut(&id) else {
            return false;
        };
        let groups = entry.groups.get_or_insert_with(Box::default);
        if !groups.iter().any(|g| &**g == group) {
            let name: Name<str> = Name::from(group);
            groups.push(name.clone());
            self.groups.entry(name).or_default().insert(id);
        }
        true
    }

    /// The groups the listed connection `id` is in, in no particular order; empty if
    /// it is not listed.
    pub(crate) fn groups_of(&self, id: ConnectionId) -> Vec<Name<str>> {
        self.entries
            .get(&id)
            .and_then(|entry| entry.groups.as_deref())
            .map(|groups| groups.to_vec())
            .unwrap_or_default()
    }

    /// Removes `id` from `group`; false if it was not a member.
    pub(crate) fn leave(&mut self, id: ConnectionId, group: &str) -> bool {
        let Some(entry) = self.entries.get_mut(&id) else {
            return false;
        };
        let Some(groups) = entry.groups.as_mut() else {
            return false;
        };
        let Some(at) = groups.iter().position(|g| &**g == group) else {
            return false;
        };
        groups.swap_remove(at);
        if groups.is_empty() {
            entry.groups = None;
        }
        self.unlink_group(group, id);
        true
    }

    /// Registers (or refreshes) the waker of the drain-wait `id` (0: a new one).
    pub(crate) fn wait_empty(&mut self, id: &mut u64, waker: &Waker) -> Option<Waker> {
        if let Some((_, w)) = self.waiters.iter_mut().find(|(i, _)| *i == *id) {
            if !w.will_wake(waker) {
                return Some(std::mem::replace(w, waker.clone()));
            }
            return None;
        }
        self.next_waiter += 1;
        *id = self.next_waiter;
        self.waiters.push((*id, waker.clone()));
        None
    }

    /// Forgets the drain-wait `id`.
    pub(crate) fn unwait(&mut self, id: u64) -> Option<Waker> {
        let at = self.waiters.iter().position(|(i, _)| *i == id)?;
        Some(self.waiters.swap_remove(at).1)
    }
}
