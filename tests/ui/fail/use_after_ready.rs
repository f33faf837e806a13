// G2 ready-gating: `ready` consumes the `Connection<Authenticated>`; the stale handle
// cannot be used again.
use std::time::Instant;
use ws_lifecycle::{Config, Connection, ConnectionId};

fn main() {
    let now = Instant::now();
    let conn = Connection::new(ConnectionId::new(1), Config::default())
        .accept(now)
        .unwrap()
        .authenticate(None, now)
        .unwrap();
    let _ready = conn.ready(now);
    let _again = conn.ready(now);
}
