// G3 close-gating: `close` consumes the `Connection<Ready>`; `send` cannot be called
// through the old handle once a close is requested.
use std::time::Instant;
use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Message};

fn main() {
    let now = Instant::now();
    let mut conn = Connection::new(ConnectionId::new(1), Config::default())
        .accept(now)
        .unwrap()
        .authenticate(None, now)
        .unwrap()
        .ready(now)
        .unwrap();
    let _closing = conn.close(CloseFrame::normal(), now);
    let _ = conn.send(Message::text("after close"));
}
