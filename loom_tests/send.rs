//! Races on the send path: send ∥ local close, send ∥ peer Close, and a full outbox ∥
//! drain ∥ async send.

use std::future::poll_fn;
use std::task::Poll;
use std::time::Instant;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use ws_lifecycle::core::{OverflowPolicy, SendErrorKind};
use ws_lifecycle::{CloseCode, CloseFrame, Config, Frame, Phase, Sender};

use crate::{accounted, delivered, drain, msg, num, ready_connection};

/// Model 1 (G3): two messages sent from another thread while the application closes
/// and the driver writes. A send that starts after the close returned is refused;
/// every message is written before the Close or handed back — never both, never
/// after the Close.
#[test]
fn g3_send_races_local_close() {
    loom::model(|| {
        let now = Instant::now();
        let (conn, transport) = ready_connection(Config::default(), now);
        let sender = conn.sender();
        let closed = Arc::new(AtomicBool::new(false));
        let closed_seen = closed.clone();
        let t = thread::spawn(move || send_watching_close(&sender, &[1, 2], &closed_seen));
        let driver = transport.clone();
        let d = thread::spawn(move || {
            let mut frames = Vec::new();
            for _ in 0..2 {
                frames.extend(driver.next_frame(now));
            }
            frames
        });
        let closing = conn.close(CloseFrame::normal(), now);
        closed.store(true, Ordering::SeqCst);
        let mut returned = t.join().unwrap();
        let mut frames = d.join().unwrap();
        frames.extend(drain(&transport, now));
        let got = delivered(&frames);
        assert!(
            matches!(frames.last(), Some(Frame::Close(_))),
            "G3: Close last: {frames:?}"
        );
        returned.extend(closing.take_unsent_nums());
        accounted(&[1, 2], &got, &returned);
        // Per-sender order survives.
        assert!(got.windows(2).all(|w| w[0] < w[1]), "order: {got:?}");
    });
}

/// Model 2 (G3): a message sent while the peer's Close arrives. After the peer's
/// Close our answer goes first and queued messages are handed back, not written.
#[test]
fn g3_send_races_peer_close() {
    loom::model(|| {
        let now = Instant::now();
        let (conn, transport) = ready_connection(Config::default(), now);
        let sender = conn.sender();
        let closed = Arc::new(AtomicBool::new(false));
        let closed_seen = closed.clone();
        let t = thread::spawn(move || send_watching_close(&sender, &[1], &closed_seen));
        let peer = CloseFrame::new(CloseCode::GOING_AWAY, "").unwrap();
        transport.handle_peer_close(Some(peer), now).unwrap();
        closed.store(true, Ordering::SeqCst);
        let mut returned = t.join().unwrap();
        let frames = drain(&transport, now);
        let got = delivered(&frames);
        assert_eq!(
            frames.len(),
            1,
            "G3: only our Close after the peer's: {frames:?}"
        );
        returned.extend(transport.take_unsent().iter().map(num));
        accounted(&[1], &got, &returned);
        drop(conn);
    });
}

/// Model 8 (G3, G6): capacity 1, one message queued; an async sender waits for room
/// twice while the driver drains with `poll_transmit`. No lost wakeup (a lost one is
/// a deadlock loom reports), no reordering.
#[test]
fn g6_full_outbox_drain_and_async_send() {
    let mut config = Config::default();
    config.outbox_capacity = 1;
    loom::model(move || drain_three_while_sending_async(config.clone()));
}

/// Model 8b (G6, issue 14's byte budget): the count bound far away, the bytes bound
/// room for one message (`outbox_bytes` = 1, each message one byte); an async sender
/// waits for *bytes* twice while the driver drains with `poll_transmit`. The wake
/// comes from the take that frees the bytes (the refusal is remembered and the next
/// take records ROOM), not from the outbox going from full to not full in count,
/// which never happens here. A lost wakeup is a deadlock loom reports; no
/// reordering.
#[test]
fn g6_byte_budget_drain_and_async_send() {
    let mut config = Config::default();
    config.outbox_bytes = 1;
    loom::model(move || drain_three_while_sending_async(config.clone()));
}

/// Models 8 and 8b: one message queued under `config` (room for one), an async
/// sender sending two more while the driver takes three with `poll_transmit`.
fn drain_three_while_sending_async(config: Config) {
    let now = Instant::now();
    let (conn, transport) = ready_connection(config, now);
    let sender = conn.sender();
    sender.send(msg(0)).unwrap();
    let t = thread::spawn(move || {
        loom::future::block_on(sender.send_async(msg(1))).unwrap();
        loom::future::block_on(sender.send_async(msg(2))).unwrap();
    });
    let mut got = Vec::new();
    for _ in 0..3 {
        let frame = loom::future::block_on(poll_fn(|cx| transport.poll_transmit(cx, now)));
        match frame {
            Some(Frame::Message(m)) => got.push(num(&m)),
            other => panic!("expected a message, got {other:?}"),
        }
    }
    t.join().unwrap();
    assert_eq!(got, [0, 1, 2], "G3: no reordering");
    drop(conn);
}

/// Model 18 (G6): the driver takes frames in batches and, after a batch that emptied
/// the outbox, waits without polling again — relying on the waker the batch left
/// registered — while another thread sends two messages. A lost wakeup is a deadlock
/// loom reports; the messages arrive once each, in order.
#[test]
fn g6_batch_driver_parks_without_polling_again() {
    loom::model(|| {
        let now = Instant::now();
        let (conn, transport) = ready_connection(Config::default(), now);
        let sender = conn.sender();
        let t = thread::spawn(move || {
            sender.send(msg(1)).unwrap();
            sender.send(msg(2)).unwrap();
        });
        let mut got = Vec::new();
        loom::future::block_on(poll_fn(|cx| {
            let mut batch = Vec::new();
            match transport.poll_transmit_batch(cx, now, &mut batch, 8) {
                Poll::Ready(Some(_)) => {
                    got.extend(delivered(&batch));
                    if got.len() == 2 {
                        return Poll::Ready(());
                    }
                    // The batch emptied the outbox: wait without another poll.
                    Poll::Pending
                }
                Poll::Ready(None) => panic!("closed"),
                Poll::Pending => Poll::Pending,
            }
        }));
        t.join().unwrap();
        assert_eq!(got, [1, 2], "G3: once each, in order");
        drop(conn);
    });
}

/// Model 21 (G5, G6): the driver's socket is still busy with a batch it took (the
/// peer does not read), so instead of taking more it polls `poll_busy`, while another
/// thread's send overflows the outbox under `OverflowPolicy::Close`. The overflow
/// must wake the busy driver (a lost wakeup is a deadlock loom reports), and the
/// driver's time input must start the slow-consumer close with its close timeout
/// armed: the connection's clock runs though the socket never drains. The message
/// the socket never took goes back for `take_unsent` (G3).
#[test]
fn g5_busy_driver_still_starts_the_slow_consumer_close() {
    loom::model(|| {
        let now = Instant::now();
        let mut config = Config::default();
        config.outbox_capacity = 1;
        config.overflow = OverflowPolicy::slow_consumer();
        let close_timeout = config.close_timeout;
        let (conn, transport) = ready_connection(config, now);
        let sender = conn.sender();
        sender.send(msg(1)).unwrap();
        let mut batch = Vec::new();
        assert_eq!(
            transport.next_frames(now, &mut batch, 8),
            1,
            "taken, never written"
        );
        let t = thread::spawn(move || {
            sender.send(msg(2)).unwrap(); // the room the batch left
            let refused = sender.send(msg(3)).unwrap_err(); // full: the slow-consumer close
            assert_eq!(refused.kind, SendErrorKind::Closed);
        });
        loom::future::block_on(poll_fn(|cx| {
            if transport.poll_busy(cx, now).is_ready() {
                panic!("Closed, though nobody answered our Close");
            }
            if transport.phase() == Phase::Closing {
                assert_eq!(
                    transport.poll_timeout(),
                    Some(now + close_timeout),
                    "G5: the slow-consumer close's timeout runs"
                );
                return Poll::Ready(());
            }
            Poll::Pending
        }));
        t.join().unwrap();
        assert_eq!(transport.requeue_unwritten(batch), 1);
        // The close timeout ends it, socket or no socket.
        transport.handle_timeout(now + close_timeout);
        assert_eq!(transport.phase(), Phase::Closed);
        assert_eq!(
            conn.take_unsent_nums(),
            [1, 2],
            "G3: every message accepted is handed back, in order"
        );
    });
}

/// Sends `numbers` in order, checking the gate (G3): a send that starts after `closed`
/// was set (once the close returned) must be refused with `Closed`. Returns the
/// numbers handed back.
fn send_watching_close(sender: &Sender, numbers: &[u32], closed: &AtomicBool) -> Vec<u32> {
    let mut returned = Vec::new();
    for &n in numbers {
        let after_close = closed.load(Ordering::SeqCst);
        match sender.send(msg(n)) {
            Ok(()) => assert!(!after_close, "G3: send accepted after the close returned"),
            Err(e) => {
                assert_eq!(e.kind, SendErrorKind::Closed);
                returned.push(num(&e.message));
            }
        }
    }
    returned
}

/// `take_unsent` as numbers, for the accounting.
trait UnsentNums {
    fn take_unsent_nums(self) -> Vec<u32>;
}

impl<S: ws_lifecycle::handle::TypeState> UnsentNums for ws_lifecycle::Connection<S> {
    fn take_unsent_nums(mut self) -> Vec<u32> {
        self.take_unsent().iter().map(num).collect()
    }
}

/// Model 9 (G3, G6): an async sender waits for room in a full outbox while another
/// task closes. The waiter is woken by the close and hands the message back — no
/// lost wakeup (loom reports one as a deadlock), no message lost.
#[test]
fn g6_send_async_races_close() {
    loom::model(|| {
        let now = Instant::now();
        let mut config = Config::default();
        config.outbox_capacity = 1;
        let (conn, transport) = ready_connection(config, now);
        let sender = conn.sender();
        sender.send(msg(0)).unwrap();
        let waiting = sender.clone();
        let t = thread::spawn(move || loom::future::block_on(waiting.send_async(msg(1))));
        let _closing = conn.close(CloseFrame::normal(), now);
        let result = t.join().unwrap();
        let returned: Vec<u32> = result.err().map(|e| num(&e.message)).into_iter().collect();
        let frames = drain(&transport, now);
        let got = delivered(&frames);
        accounted(&[0, 1], &got, &returned);
        assert_eq!(
            returned,
            [1],
            "G3: no room ever came, so the close hands it back"
        );
    });
}

/// Model 10 (G4): a send that overflows with the slow-consumer policy (a close
/// requested without a time) races an explicit close. One Close frame, the first
/// request's code, the same cause and frame for everyone.
#[test]
fn g4_slow_consumer_close_races_close() {
    loom::model(|| {
        let now = Instant::now();
        let mut config = Config::default();
        config.outbox_capacity = 1;
        config.overflow = ws_lifecycle::core::OverflowPolicy::slow_consumer();
        let (conn, transport) = ready_connection(config, now);
        let sender = conn.sender();
        sender.send(msg(0)).unwrap();
        let overflowing = sender.clone();
        let t = thread::spawn(move || overflowing.send(msg(1)).unwrap_err().kind);
        let record = sender.close_at(
            CloseFrame::new(CloseCode::from_wire(4001).unwrap(), "").unwrap(),
            now,
        );
        assert_eq!(
            t.join().unwrap(),
            SendErrorKind::Closed,
            "G3: refused either way"
        );
        let frames = drain(&transport, now);
        let closes: Vec<&Frame> = frames
            .iter()
            .filter(|f| matches!(f, Frame::Close(_)))
            .collect();
        assert_eq!(closes.len(), 1, "G4: one Close frame: {frames:?}");
        let record = record.expect("closed");
        let Frame::Close(Some(sent)) = closes[0] else {
            panic!("{frames:?}")
        };
        assert_eq!(
            Some(sent),
            record.frame.as_ref(),
            "G4: the first request's frame is sent"
        );
        assert_eq!(transport.close_record().unwrap().frame, record.frame);
    });
}

/// Model 11 (G2, G6): the application waits in `recv` while the driver hands over a
/// message. No lost wakeup; the message arrives once.
#[test]
fn g6_recv_races_inbound_message() {
    loom::model(|| {
        let now = Instant::now();
        let (conn, transport) = ready_connection(Config::default(), now);
        let receiver = conn.receiver();
        let t = thread::spawn(move || loom::future::block_on(receiver.recv()));
        transport.handle_message(msg(7), now).unwrap();
        let got = t.join().unwrap();
        assert_eq!(
            got.map(|m| num(&m)),
            Some(7),
            "G6: the waiting receiver gets it"
        );
        drop(conn);
    });
}
