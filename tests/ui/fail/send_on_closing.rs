// G3 close-gating: `close` returns a `Connection<Closing>`, on which `send` does not
// exist; nothing can be sent once a close is requested.
use std::time::Instant;
use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Message};

fn main() {
    let now = Instant::now();
    let conn = Connection::new(ConnectionId::new(1), Config::default())
        .accept(now)
        .unwrap()
        .authenticate(None, now)
        .unwrap()
        .ready(now)
        .unwrap();
    let mut closing = conn.close(CloseFrame::normal(), now);
    let _ = closing.send(Message::text("after close"));
}
