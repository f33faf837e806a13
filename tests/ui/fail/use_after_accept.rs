// G1 accept-first: `accept` consumes the `Connection<Connecting>`; the stale handle
// cannot be used again (no second accept, no acting on the old state).
use std::time::Instant;
use ws_lifecycle::{Config, Connection, ConnectionId};

fn main() {
    let now = Instant::now();
    let conn = Connection::new(ConnectionId::new(1), Config::default());
    let _accepted = conn.accept(now);
    let _again = conn.accept(now);
}
