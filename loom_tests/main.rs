//! loom models of the shared connection state (see `docs/loom.md`).
#![cfg(loom)]
