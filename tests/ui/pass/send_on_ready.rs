// G1/G2 positive case: the full path Connecting -> Accepted -> Authenticated -> Ready
// compiles, `send` exists on `Connection<Ready>` and succeeds, and the handle can be
// stored type-erased in `AnyConnection`.
use std::time::Instant;
use ws_lifecycle::{Config, Connection, ConnectionId, Message, Phase};
use ws_lifecycle::handle::AnyConnection;

fn main() {
    let now = Instant::now();
    let conn = Connection::new(ConnectionId::new(1), Config::default());
    let conn = conn.accept(now).unwrap();
    let conn = conn.authenticate(None, now).unwrap();
    let mut conn = conn.ready(now).unwrap();
    assert!(conn.send(Message::text("hello")).is_ok());

    let any: AnyConnection = conn.into();
    assert!(matches!(any, AnyConnection::Ready(_)));
    assert_eq!(any.phase(), Phase::Ready);

    let mut conn = Connection::new(ConnectionId::new(2), Config::default())
        .accept(now)
        .unwrap()
        .authenticate(None, now)
        .unwrap()
        .ready(now)
        .unwrap();
    assert_eq!(conn.send(Message::text("again")), Ok(()));
    let any = conn.into_any();
    assert_eq!(any.id(), ConnectionId::new(2));
}
