//! The synchronization shim: `loom`'s types under `cfg(loom)`, `std`'s otherwise.
//!
//! The shared state takes every lock and atomic from here (only `Message`'s payload
//! `Arc`, which guards nothing, comes from `std`), so a build with
//! `RUSTFLAGS="--cfg loom"` runs every lock and atomic of the shared state on loom's
//! model — ours in `loom_tests/`, and a downstream crate's own loom models that drive
//! ws-lifecycle handles (see [`docs/loom.md`]).
//!
//! [`docs/loom.md`]: https://github.com/ws-lifecycle/ws-lifecycle/blob/main/docs/loom.md

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

/// Locks `mutex`, recovering from poisoning: the state behind it is only ever changed
/// by code that cannot panic half-way, so a poisoned lock still guards a consistent
/// state, and no caller of this crate should see a panic because another one did.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
