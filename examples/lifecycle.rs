//! A walk through the lifecycle with virtual time: four connections, each taking a
//! different road to `Closed`, printing every frame a transport would write.
//!
//! `cargo run --example lifecycle`
//!
//! This is the crate's runnable demo until the example chat server exists.

use std::time::{Duration, Instant};

use ws_lifecycle::{
    CloseCode, CloseFrame, Config, Connection, ConnectionId, Frame, Live, Message, TransportLoss,
    TypeState,
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
    Ok(())
}
