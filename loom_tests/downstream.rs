//! What a user's own loom model looks like (G3, G4). Nothing here is special to
//! ws-lifecycle's own tests: a crate that depends on ws-lifecycle and runs its tests
//! with `RUSTFLAGS="--cfg loom"` gets ws-lifecycle built on loom's primitives too, so
//! loom explores the interleavings inside our handles along with the user's code.
//! `docs/loom.md` explains the set-up.

use std::time::Instant;

use loom::sync::Arc;
use loom::sync::Mutex;
use loom::thread;
use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Frame, Message, Sender};

/// The user's code: a tiny "room" that remembers the members it could not reach.
struct Room {
    members: Vec<Sender>,
    undelivered: Mutex<Vec<Message>>,
}

impl Room {
    fn broadcast(&self, text: &str) {
        for member in &self.members {
            if let Err(e) = member.send(Message::text(text)) {
                self.undelivered.lock().unwrap().push(e.into_message());
            }
        }
    }
}

/// The user's invariant: a broadcast racing a member's disconnect either reaches
/// the member before its Close or lands in `undelivered` — never lost, never both.
#[test]
fn user_model_broadcast_races_disconnect() {
    loom::model(|| {
        let now = Instant::now();
        let conn = Connection::new(ConnectionId::new(1), Config::default());
        let transport = conn.transport();
        let conn = conn.accept(now).unwrap().authenticate(None, now).unwrap();
        let conn = conn.ready(now).unwrap();
        let room = Arc::new(Room {
            members: vec![conn.sender()],
            undelivered: Mutex::new(Vec::new()),
        });
        let r = room.clone();
        let t = thread::spawn(move || r.broadcast("hello"));
        let _closing = conn.close(CloseFrame::normal(), now);
        t.join().unwrap();

        let mut written = 0;
        while let Some(frame) = transport.next_frame(now) {
            if let Frame::Message(_) = frame {
                written += 1;
            }
        }
        let undelivered = room.undelivered.lock().unwrap().len();
        assert_eq!(
            written + undelivered,
            1,
            "reached before Close, or returned"
        );
    });
}
