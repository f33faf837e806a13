// G1 accept-first: `send` does not exist on `Connection<Accepted>`; accepting the
// handshake is not enough to send.
use std::time::Instant;
use ws_lifecycle::{Config, Connection, ConnectionId, Message};

fn main() {
    let now = Instant::now();
    let mut conn = Connection::new(ConnectionId::new(1), Config::default())
        .accept(now)
        .unwrap();
    let _ = conn.send(Message::text("not authenticated"));
}
