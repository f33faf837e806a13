//! A walk through the lifecycle with virtual time: four connections, each taking a
//! different road to `Closed`, printing every frame a transport would write — then a
//! fifth driven by real threads: a driver thread waiting on `Transport::poll_transmit`,
//! an emitter before ready, and senders on other threads — and last a registry: a
//! connection held until the server opens, a broadcast that reaches only the `Ready`,
//! and a drain.
//!
//! `cargo run --example lifecycle`
//!
//! This is the crate's runnable demo until the example chat server exists.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use ws_lifecycle::core::TransportLoss;
use ws_lifecycle::handle::{Live, TypeState};
use ws_lifecycle::{
    CloseCode, CloseFrame, Config, Connection, ConnectionId, Frame, Message, Registry,
    RegistryConfig,
};

/// Writes everything the connection has to send, as a driver would.
fn flush<S: TypeState>(conn: &mut Connection<S>, now: Instant) {
    while let Some(frame) = conn.poll_transmit(now) {
        match frame {
            Frame::Message(m) => println!("    ← {:?}", m.as_text().unwrap_or("<binary>")),
            Frame::Close(Some(f)) => println!("    ← Close {f}"),
            Frame::Close(None) => println!("    ← Close (no code)"),
        }
    }
}

/// A minimal executor for the example: poll, park until woken, repeat. (Any runtime
/// works; the handles' futures need only a `Waker`.)
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

fn report<S: Live>(conn: &Connection<S>) {
    println!("    phase: {}", conn.phase());
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::default();
    let t0 = Instant::now();

    println!("1. happy path: accept, authenticate, ready, send, close, acknowledged");
    let conn = Connection::new(ConnectionId::new(1), config.clone()).accept(t0)?;
    let mut conn = conn.authenticate(None, t0)?.ready(t0)?;
    report(&conn);
    conn.send(Message::text("welcome"))?;
    conn.send(Message::text("hello"))?;
    let mut closing = conn.close(CloseFrame::normal(), t0);
    flush(&mut closing, t0);
    closing.handle_peer_close(Some(CloseFrame::normal()), t0)?;
    println!("    closed: {:?}", closing.close_record());

    println!(
        "2. readiness deadline: nobody authenticates within {:?}",
        config.readiness_timeout
    );
    let mut conn = Connection::new(ConnectionId::new(2), config.clone()).accept(t0)?;
    let deadline = conn.poll_timeout().expect("armed at accept (G5)");
    conn.handle_timeout(deadline);
    flush(&mut conn, deadline);
    // Authentication finishing after the deadline loses the race: exactly one winner.
    match conn.authenticate(None, deadline) {
        Ok(_) => unreachable!("the deadline won"),
        Err(gone) => {
            println!("    late authentication refused: {gone}");
            let mut closing = gone.into_connection();
            let timeout = closing.poll_timeout().expect("close timeout armed");
            closing.handle_timeout(timeout); // the client never answers our Close
            println!(
                "    closed: {:?}",
                closing.close_record().map(|r| (r.code(), r.end))
            );
        }
    }

    println!("3. the peer closes first while we are ready");
    let conn = Connection::new(ConnectionId::new(3), config.clone()).accept(t0)?;
    let mut conn = conn.authenticate(None, t0)?.ready(t0)?;
    conn.handle_peer_close(
        Some(CloseFrame::new(CloseCode::GOING_AWAY, "tab closed")?),
        t0,
    )?;
    let refused = conn.send(Message::text("too late")).unwrap_err();
    println!(
        "    send refused, message handed back: {:?}",
        refused.message.as_text()
    );
    flush(&mut conn, t0);
    report(&conn);

    println!("4. the transport vanishes mid-session");
    let conn = Connection::new(ConnectionId::new(4), config).accept(t0)?;
    let mut conn = conn
        .authenticate(Some(t0 + Duration::from_secs(60)), t0)?
        .ready(t0)?;
    conn.send(Message::text("never written"))?;
    conn.handle_transport_lost(TransportLoss::Eof, t0)?;
    println!("    unsent, returned: {:?}", conn.take_unsent());
    report(&conn);

    println!("5. many tasks, one connection: a driver thread, an early emitter, two senders");
    let conn = Connection::new(ConnectionId::new(5), Config::default());
    let transport = conn.transport();
    let driver = thread::spawn(move || {
        // The driver writes until the connection is closed (the peer acknowledges
        // our Close as soon as it sees it).
        let mut written = Vec::new();
        while let Some(frame) = block_on(poll_fn(|cx| transport.poll_transmit(cx, Instant::now())))
        {
            if let Frame::Close(_) = frame {
                transport.handle_peer_close(None, Instant::now()).unwrap();
            }
            written.push(frame);
        }
        written
    });
    let conn = conn.accept(Instant::now())?;
    conn.emitter()
        .emit(Message::text("history (emitted before ready)"))?;
    let conn = conn
        .authenticate(None, Instant::now())?
        .ready(Instant::now())?;
    let senders: Vec<_> = (0..2)
        .map(|k| {
            let sender = conn.sender();
            thread::spawn(move || {
                for i in 0..2 {
                    let _ = sender.send(Message::text(format!("sender {k}, message {i}")));
                }
            })
        })
        .collect();
    for s in senders {
        s.join().expect("sender thread");
    }
    let closing = conn.close(CloseFrame::normal(), Instant::now());
    for frame in driver.join().expect("driver thread") {
        match frame {
            Frame::Message(m) => println!("    ← {:?}", m.as_text().unwrap_or("<binary>")),
            Frame::Close(f) => println!("    ← Close {f:?}"),
        }
    }
    println!("    closed: {}", closing.is_closed());

    println!("6. a registry: held until open, ready-only broadcast, drain");
    let registry = Registry::new(RegistryConfig::default());
    let early = Connection::new(ConnectionId::new(6), Config::default()).accept(t0)?;
    let early_registration = registry.register(&early, t0)?;
    println!(
        "    registered before open, held: {}",
        early_registration.is_held()
    );
    let early = early.authenticate(None, t0)?;
    registry.identify(&early, "ada")?;
    registry.open(); // the application's handlers are in place (G8)
    let mut early = early.ready(t0)?;
    let late = Connection::new(ConnectionId::new(7), Config::default()).accept(t0)?;
    let late_registration = registry.register(&late, t0)?;
    let report = registry.broadcast(Message::text("to everyone ready"));
    println!(
        "    broadcast: delivered {}, not ready {} (G7)",
        report.delivered, report.not_ready
    );
    println!(
        "    stats: {}",
        serde_json::to_string(&registry.snapshot())?
    );
    registry.shutdown_at(t0);
    flush(&mut early, t0);
    early.handle_peer_close(None, t0)?;
    let drained = registry.finish_drain_at(t0 + Duration::from_secs(1));
    println!(
        "    drained: {} closed in time, {} dropped; listed now: {}",
        drained.closed,
        drained.dropped,
        registry.len()
    );
    drop((early_registration, late_registration, late));
    Ok(())
}
