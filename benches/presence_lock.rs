//! What the cluster's heartbeat costs the local path: `Registry::presence` at
//! 100 000 users in 1 000 groups, timed, while another thread takes the registry's
//! lock in a loop (as every broadcast and register does) and records its longest
//! wait. The heartbeat calls `presence` every beat (500 ms by default); the lock is
//! held only to count and take a reference to each name, and the maps are built
//! after (`docs/performance.md`, "Cluster").
//!
//! Prints `RESULT <name> <value> <unit>` lines: the medians of 7 calls.

use std::time::{Duration, Instant};

use ws_lifecycle::{Config, Connection, Registry};

const USERS: usize = 100_000;
const GROUPS: usize = 1_000;
const CALLS: usize = 7;

fn main() {
    let registry = Registry::open_now();
    let now = Instant::now();
    let mut held = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let conn =
            (Connection::new(registry.next_id(), Config::default()).accept(now)).expect("accept");
        let registration = registry.register(&conn, now).expect("register");
        let conn = conn.authenticate(None, now).expect("authenticate");
        registry
            .identify(&conn, &format!("user-{i}"))
            .expect("identify");
        (registry.join(conn.id(), &format!("room-{}", i % GROUPS))).expect("join");
        held.push((conn.ready(now).expect("ready"), registration));
    }
    let (mut calls, mut waits) = (Vec::new(), Vec::new());
    for _ in 0..CALLS {
        let other = registry.clone();
        let started = Instant::now();
        let call = std::thread::spawn(move || {
            let presence = other.presence();
            (presence.users.len(), started.elapsed())
        });
        let mut worst = Duration::ZERO;
        while !call.is_finished() {
            let asked = Instant::now();
            std::hint::black_box(registry.len()); // takes the registry's lock
            worst = worst.max(asked.elapsed());
        }
        let (users, took) = call.join().expect("presence");
        assert_eq!(users, USERS);
        calls.push(took);
        waits.push(worst);
    }
    calls.sort();
    waits.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "presence() at {USERS} users in {GROUPS} groups: {:.1} ms; the longest wait for the registry's lock meanwhile: {:.2} ms (medians of {CALLS})",
        ms(calls[CALLS / 2]),
        ms(waits[CALLS / 2])
    );
    println!("RESULT presence_call_ms {:.2} ms", ms(calls[CALLS / 2]));
    println!(
        "RESULT presence_lock_wait_ms {:.2} ms",
        ms(waits[CALLS / 2])
    );
}
