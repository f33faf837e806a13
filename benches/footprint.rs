//! Benchmarks 2 and 3, counted rather than timed, under a counting global allocator
//! (`stats_alloc`, which wraps `System`):
//!
//! - **allocations per connection** over the full lifecycle (the sequence of
//!   `benches/lifecycle.rs`), bare and registered, with the count per step of one
//!   connection so any allocation can be traced to the call that makes it;
//! - **memory per connection**: the live heap bytes held by [`N`] idle `Ready`
//!   connections — the core state and the registry entry; the caller's handles
//!   (`Connection<Ready>`, `Transport`, `Registration`: one pointer each) are kept in
//!   vectors allocated before the measurement — divided by `N`.
//!
//! Prints one `RESULT <name> <value> <unit>` line per figure (read by
//! `scripts/bench.sh`) and a human-readable breakdown. Deterministic: no timing.

use std::alloc::System;
use std::time::Instant;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, Stats, StatsAlloc};
use ws_lifecycle::{
    CloseFrame, Config, Connection, ConnectionId, Message, Ready, Registration, Registry,
    RegistryConfig, Transport,
};

/// Every allocation of this binary goes through the counter.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Connections held at once for the memory figure.
const N: usize = 10_000;

/// Lifecycles run for the allocation average.
const RUNS: u64 = 1_000;

/// Live bytes added by a region (allocated − freed, reallocations included).
fn live_bytes(stats: &Stats) -> isize {
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize + stats.bytes_reallocated
}

/// Prints one machine-readable figure.
fn result(name: &str, value: f64, unit: &str) {
    println!("RESULT {name} {value:.1} {unit}");
}

/// One connection's whole life (as in `benches/lifecycle.rs`), printing the
/// allocations of each step when `trace` is set.
fn lifecycle_once(id: u64, message: &Message, registry: Option<&Registry>, trace: bool) {
    let now = Instant::now();
    let region = Region::new(GLOBAL);
    let step = |name: &str, region: &mut Region<System>| {
        let change = region.change_and_reset();
        if trace && (change.allocations + change.reallocations) > 0 {
            println!(
                "    {name:<28} {} alloc, {} realloc, {} B",
                change.allocations, change.reallocations, change.bytes_allocated
            );
        }
    };
    let mut region = region;
    let conn = Connection::new(ConnectionId::new(id), Config::default());
    step("Connection::new", &mut region);
    let conn = conn.accept(now).expect("accept");
    step("accept", &mut region);
    let registration = registry.map(|r| r.register(&conn, now).expect("register"));
    step("Registry::register", &mut region);
    let conn = conn.authenticate(None, now).expect("authenticate");
    step("authenticate", &mut region);
    if let Some(registry) = registry {
        registry.identify(&conn, "ada").expect("identify");
    }
    step("Registry::identify", &mut region);
    let mut conn = conn.ready(now).expect("ready");
    step("ready", &mut region);
    conn.send(message.clone()).expect("send");
    step("send", &mut region);
    let mut closing = conn.close(CloseFrame::normal(), now);
    step("close", &mut region);
    while closing.poll_transmit(now).is_some() {}
    step("poll_transmit (message, Close)", &mut region);
    closing.handle_peer_close(None, now).expect("peer close");
    step("handle_peer_close (Closed)", &mut region);
    drop(registration);
    drop(closing);
    step("drop", &mut region);
}

/// Allocations per connection over the full lifecycle.
fn allocations(registry: Option<&Registry>, label: &str) {
    let message = Message::text("hello");
    // Warm up: the registry's maps and the user index reach their steady size.
    for id in 1..=10 {
        lifecycle_once(id, &message, registry, false);
    }
    println!("  one {label} lifecycle, allocations by step:");
    lifecycle_once(100, &message, registry, true);
    let region = Region::new(GLOBAL);
    for id in 0..RUNS {
        lifecycle_once(1_000 + id, &message, registry, false);
    }
    let stats = region.change();
    let per = |n: usize| n as f64 / RUNS as f64;
    println!(
        "  {label}: {:.2} allocations, {:.2} reallocations, {:.0} B allocated per connection \
         ({} lifecycles)",
        per(stats.allocations),
        per(stats.reallocations),
        per(stats.bytes_allocated),
        RUNS
    );
    result(
        &format!("allocs_per_connection_{label}"),
        per(stats.allocations + stats.reallocations),
        "allocations",
    );
    result(
        &format!("alloc_bytes_per_connection_{label}"),
        per(stats.bytes_allocated),
        "B",
    );
}

/// What the caller keeps per connection: one pointer each, in preallocated vectors.
struct Held {
    conns: Vec<Connection<Ready>>,
    transports: Vec<Transport>,
    registrations: Vec<Registration>,
}

/// Live heap bytes per idle `Ready` connection, registered (and, with `users`,
/// identified under a distinct user name each); with `traffic`, after one message
/// was queued and written, so the outbox's buffer is allocated.
fn memory(label: &str, users: bool, traffic: bool) {
    let now = Instant::now();
    let registry = Registry::new(RegistryConfig::default());
    registry.open();
    let mut held = Held {
        conns: Vec::with_capacity(N),
        transports: Vec::with_capacity(N),
        registrations: Vec::with_capacity(N),
    };
    let names: Vec<String> = (0..N).map(|i| format!("user{i}")).collect();
    let message = Message::text("hello");
    let region = Region::new(GLOBAL);
    for (i, name) in names.iter().enumerate() {
        let conn = Connection::new(ConnectionId::new(i as u64 + 1), Config::default());
        let transport = conn.transport();
        let conn = conn.accept(now).expect("accept");
        let registration = registry.register(&conn, now).expect("register");
        let conn = conn.authenticate(None, now).expect("authenticate");
        if users {
            registry.identify(&conn, name).expect("identify");
        }
        let mut conn = conn.ready(now).expect("ready");
        if traffic {
            conn.send(message.clone()).expect("send");
            assert!(transport.next_frame(now).is_some());
        }
        held.conns.push(conn);
        held.transports.push(transport);
        held.registrations.push(registration);
    }
    let stats = region.change();
    let per = live_bytes(&stats) as f64 / N as f64;
    println!(
        "  {label}: {per:.0} B per connection ({} allocations for {N} connections)",
        stats.allocations + stats.reallocations
    );
    result(&format!("bytes_per_connection_{label}"), per, "B");
    assert_eq!(registry.len(), N);
    drop(held);
    assert!(
        registry.is_empty(),
        "every connection left the registry (G7)"
    );
}

/// Runs every count and prints the figures.
fn main() {
    // `cargo bench` passes `--bench`; there is nothing to configure.
    println!("footprint: allocations per connection (full lifecycle, no I/O)");
    allocations(None, "bare");
    let registry = Registry::new(RegistryConfig::default());
    registry.open();
    allocations(Some(&registry), "registered");
    println!("footprint: memory per idle Ready connection ({N} held at once)");
    memory("ready_registered", false, false);
    memory("ready_identified", true, false);
    memory("ready_identified_after_traffic", true, true);
}
