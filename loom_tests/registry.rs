//! Races between the registry and the connections it lists (G7, G8).

use std::time::Instant;

use loom::thread;
use ws_lifecycle::core::{CloseCause, TransportLoss};
use ws_lifecycle::registry::RegistryError;
use ws_lifecycle::{
    Accepted, CloseCode, CloseFrame, Config, Connection, ConnectionId, Frame, Phase, Registry,
    RegistryConfig,
};

use crate::{delivered, drain, msg};

/// A connection whose handshake was accepted at `now`.
fn accepted(id: u64, now: Instant) -> Connection<Accepted> {
    Connection::new(ConnectionId::new(id), Config::default())
        .accept(now)
        .unwrap()
}

fn open_registry() -> Registry {
    let registry = Registry::new(RegistryConfig::default());
    registry.open();
    registry
}

/// Model 13 (G7, G3): a broadcast ∥ the local close of its one target, with the
/// driver writing concurrently. The message
/// is either queued before the close — and written before our Close — or refused as
/// closing; never written after the Close, and the report counts it exactly once,
/// in the count that matches what the peer got.
#[test]
fn g7_broadcast_races_close_of_target() {
    loom::model(|| {
        let now = Instant::now();
        let registry = open_registry();
        let conn = accepted(1, now);
        let transport = conn.transport();
        let registration = registry.register(&conn, now).unwrap();
        let conn = conn.authenticate(None, now).unwrap().ready(now).unwrap();

        let broadcaster = registry.clone();
        let t = thread::spawn(move || broadcaster.broadcast(msg(1)));
        let _closing = conn.close(CloseFrame::normal(), now);
        // The driver writes what it can meanwhile — our Close included — then the
        // rest once the broadcast is done.
        let mut frames = drain(&transport, now);
        let report = t.join().unwrap();
        frames.extend(drain(&transport, now));
        let got = delivered(&frames); // G3: nothing after our Close
        assert!(
            matches!(frames.last(), Some(Frame::Close(_))),
            "our Close is written: {frames:?}"
        );
        assert_eq!(
            report.delivered + report.closing,
            1,
            "G7: the Ready target is counted once"
        );
        assert_eq!(report.not_ready + report.full, 0, "G7: {report:?}");
        match report.delivered {
            1 => assert_eq!(got, vec![1], "G7: delivered means written before the Close"),
            _ => {
                assert_eq!(report.closing, 1, "G7: {report:?}");
                assert!(got.is_empty(), "G3: refused yet written: {frames:?}");
            }
        }
        drop(registration);
    });
}

/// Model 14 (G8): a registration ∥ the start of a drain. The connection is refused
/// with 1001 (the drain began first) or admitted and then closed by the drain with
/// 1001: no connection admitted after the drain began escapes it.
#[test]
fn g8_register_races_shutdown() {
    loom::model(|| {
        let now = Instant::now();
        let registry = open_registry();
        let conn = accepted(1, now);
        let transport = conn.transport();

        let drainer = registry.clone();
        let t = thread::spawn(move || drainer.shutdown_at(now));
        let registered = registry.register(&conn, now);
        let asked = t.join().unwrap();

        let record = transport
            .close_record()
            .expect("G8: the connection escaped the drain: it is not closing");
        assert_eq!(
            record.frame.as_ref().map(|f| f.code()),
            Some(CloseCode::GOING_AWAY),
            "G8: closed with 1001"
        );
        assert_eq!(record.cause, CloseCause::Shutdown);
        match &registered {
            Ok(_) => {
                assert_eq!(asked, 1, "G8: the drain closed the admitted connection");
                assert!(registry.contains(conn.id()), "G7: closing, so still listed");
            }
            Err(e) => {
                assert_eq!(*e, RegistryError::ShuttingDown);
                assert_eq!(asked, 0);
                assert!(!registry.contains(conn.id()));
            }
        }
        let report = registry.finish_drain_at(now);
        assert_eq!(report.dropped, usize::from(registered.is_ok()));
        assert!(registry.is_empty(), "G7: the drain leaves nothing listed");
        drop(registered);
    });
}

/// Model 15 (G7): recording a connection's user ∥ its transport being lost. Either
/// the user is recorded first and unlinked by the close, or the close comes first and
/// the connection is not indexed at all: no stale user entry either way.
#[test]
fn g7_identify_races_close() {
    loom::model(|| {
        let now = Instant::now();
        let registry = open_registry();
        let conn = accepted(1, now);
        let transport = conn.transport();
        let registration = registry.register(&conn, now).unwrap();
        let conn = conn.authenticate(None, now).unwrap();

        let identifier = registry.clone();
        let t = thread::spawn(move || {
            let result = identifier.identify(&conn, "ada");
            (result, conn)
        });
        transport
            .handle_transport_lost(TransportLoss::Eof, now)
            .unwrap();
        let (result, conn) = t.join().unwrap();

        assert_eq!(conn.phase(), Phase::Closed);
        assert!(
            matches!(result, Ok(()) | Err(RegistryError::NotRegistered)),
            "{result:?}"
        );
        assert!(
            registry.connections_of("ada").is_empty(),
            "G7: a stale user entry for a closed connection"
        );
        let snapshot = registry.snapshot();
        assert_eq!((snapshot.open, snapshot.users), (0, 0), "G7: {snapshot:?}");
        drop(registration);
    });
}

/// Model 16 (G7): the broadcast's linearization point. Connection A is `Ready`, B is
/// authenticating. Once the broadcast has reached A — so its linearization point has
/// passed — B is made ready: B must not get the message, even when the broadcast
/// visits B after B became `Ready`.
#[test]
fn g7_broadcast_reaches_exactly_the_ready_at_its_linearization_point() {
    loom::model(|| {
        let now = Instant::now();
        let registry = open_registry();
        let a = accepted(1, now);
        let b = accepted(2, now);
        let (ta, tb) = (a.transport(), b.transport());
        let ra = registry.register(&a, now).unwrap();
        let rb = registry.register(&b, now).unwrap();
        let a = a.authenticate(None, now).unwrap().ready(now).unwrap();
        let b = b.authenticate(None, now).unwrap();

        let broadcaster = registry.clone();
        let t = thread::spawn(move || broadcaster.broadcast(msg(1)));
        // Wait until the broadcast has reached A: its linearization point is past.
        let first = loop {
            if let Some(frame) = ta.next_frame(now) {
                break frame;
            }
            thread::yield_now();
        };
        assert!(matches!(first, Frame::Message(_)), "{first:?}");
        let b = b.ready(now).unwrap();
        let report = t.join().unwrap();

        let got = delivered(&drain(&tb, now));
        assert!(
            got.is_empty(),
            "G7: B became Ready after the linearization point, yet got {got:?}"
        );
        assert_eq!(
            (report.delivered, report.not_ready),
            (1, 1),
            "G7: {report:?}"
        );
        drop((a, b, ra, rb));
    });
}

/// Model 17 (G8): a drain that begins before the registry ever opened ∥ the
/// application making a held connection ready. Whichever comes first, the
/// connection never becomes `Ready`: refused with 1013, or closed with 1001.
#[test]
fn g8_drain_before_open_races_ready_of_a_held_connection() {
    loom::model(|| {
        let now = Instant::now();
        let registry = Registry::new(RegistryConfig::default()); // starting, Hold
        let conn = accepted(1, now);
        let transport = conn.transport();
        let registration = registry.register(&conn, now).unwrap();
        let conn = conn.authenticate(None, now).unwrap();

        let drainer = registry.clone();
        let t = thread::spawn(move || drainer.shutdown_at(now));
        let made_ready = conn.ready(now);
        t.join().unwrap();

        assert!(
            made_ready.is_err(),
            "G8: a held connection became Ready though the registry never opened"
        );
        let code = transport.close_record().unwrap().frame.unwrap().code();
        assert!(
            matches!(code.as_u16(), 1001 | 1013),
            "G8: closed by the drain or the gate, got {code:?}"
        );
        drop(registration);
    });
}
