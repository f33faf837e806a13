//! Races between closes: two closes at once, and accept ∥ close.

use std::time::Instant;

use loom::thread;
use ws_lifecycle::core::CloseCause;
use ws_lifecycle::{CloseCode, CloseFrame, Config, Connection, ConnectionId, Frame};

use crate::{drain, ready_connection};

fn frame(code: u16) -> CloseFrame {
    CloseFrame::new(CloseCode::from_wire(code).unwrap(), "").unwrap()
}

/// Model 3 (G4): two tasks close at once with different codes while the driver
/// writes. One Close frame; the first code wins; both callers see the same cause and
/// frame.
#[test]
fn g4_two_closes_race() {
    loom::model(|| {
        let now = Instant::now();
        let (conn, transport) = ready_connection(Config::default(), now);
        let (a, b) = (conn.sender(), conn.sender());
        let t = thread::spawn(move || a.close_at(frame(4001), now));
        let driver = transport.clone();
        let d = thread::spawn(move || driver.next_frame(now));
        let second = b.close_at(frame(4002), now);
        let first = t.join().unwrap().expect("a close record");
        let second = second.expect("a close record");
        assert_eq!(
            (first.cause, &first.frame),
            (second.cause, &second.frame),
            "G4: every caller observes the same outcome"
        );
        let mut frames: Vec<Frame> = d.join().unwrap().into_iter().collect();
        frames.extend(drain(&transport, now));
        assert_eq!(frames.len(), 1, "G4: exactly one Close frame: {frames:?}");
        let Frame::Close(Some(sent)) = &frames[0] else {
            panic!("expected our Close, got {frames:?}");
        };
        assert_eq!(
            Some(sent),
            first.frame.as_ref(),
            "G4: the recorded (first) code is sent"
        );
        assert!(matches!(sent.code().as_u16(), 4001 | 4002));
        drop(conn);
    });
}

/// Model 7 (G1): the owner accepts while the driver closes (a protocol error, say).
/// Whatever the order, nothing but a Close frame is ever produced, and at most one.
#[test]
fn g1_accept_races_close() {
    loom::model(|| {
        let now = Instant::now();
        let conn = Connection::new(ConnectionId::new(7), Config::default());
        let transport = conn.transport();
        let emitter_source = conn.transport(); // the driver's second view
        let t = thread::spawn(move || {
            let _ = transport.close(frame(1002), now);
            drain(&transport, now)
        });
        let accepted = conn.accept(now);
        // An accepted owner may emit before ready: never written before Ready (G2).
        if let Ok(c) = &accepted {
            let _ = c.emitter().emit(ws_lifecycle::Message::text("early"));
        }
        let mut frames = t.join().unwrap();
        frames.extend(drain(&emitter_source, now));
        assert!(frames.len() <= 1, "G4: at most one Close: {frames:?}");
        for f in &frames {
            assert!(
                matches!(f, Frame::Close(_)),
                "G1: only a Close may be written: {frames:?}"
            );
        }
        let record = emitter_source.close_record().expect("closed or closing");
        match accepted {
            // Accepted first: the driver's close needs a Close frame.
            Ok(_) => assert_eq!(record.cause, CloseCause::Local),
            // Closed first: the upgrade is refused, nothing is written.
            Err(_) => {
                assert_eq!(record.cause, CloseCause::Refused);
                assert!(frames.is_empty(), "G1: nothing before accept: {frames:?}");
            }
        }
    });
}
