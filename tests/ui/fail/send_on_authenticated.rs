// G1 accept-first / G2 ready-gating: `send` does not exist on
// `Connection<Authenticated>`; nothing is sent before `ready`.
use std::time::Instant;
use ws_lifecycle::{Config, Connection, ConnectionId, Message};

fn main() {
    let now = Instant::now();
    let mut conn = Connection::new(ConnectionId::new(1), Config::default())
        .accept(now)
        .unwrap()
        .authenticate(None, now)
        .unwrap();
    let _ = conn.send(Message::text("services not ready"));
}
