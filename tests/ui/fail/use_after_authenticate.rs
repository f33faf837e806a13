// G1/G2: `authenticate` consumes the `Connection<Accepted>`; the stale handle cannot
// be used again.
use std::time::Instant;
use ws_lifecycle::{Config, Connection, ConnectionId};

fn main() {
    let now = Instant::now();
    let conn = Connection::new(ConnectionId::new(1), Config::default())
        .accept(now)
        .unwrap();
    let _authenticated = conn.authenticate(None, now);
    let _again = conn.authenticate(None, now);
}
