// G1 accept-first: `send` does not exist on `Connection<Connecting>`; nothing can be
// sent before the handshake is accepted.
use ws_lifecycle::{Config, Connection, ConnectionId, Message};

fn main() {
    let mut conn = Connection::new(ConnectionId::new(1), Config::default());
    let _ = conn.send(Message::text("too early"));
}
