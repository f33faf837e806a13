//! Deterministic behaviour tests of the shared-state handles (`Sender`, `Emitter`,
//! `Observer`, `Receiver`, `Transport`) on one thread. Each test names the guarantee
//! it checks (G2 ready-gating, G3 close-gating, G4 single close, G6 no lost wakeups).
//!
//! Futures are polled by hand with a counting waker, so "woken" and "not woken" are
//! observable exactly; no runtime is involved.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use ws_lifecycle::core::{CloseCause, CloseEnd, InboundError, OverflowPolicy, SendErrorKind};
use ws_lifecycle::{
    CloseCode, CloseFrame, Config, Connection, ConnectionId, Frame, Message, Phase, Ready,
    Transport,
};

// ── helpers ─────────────────────────────────────────────────────────────────

/// A waker that counts how often it was woken.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl CountingWaker {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A fresh counting waker: the counter and the `Waker` built on it.
fn counting() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(counter.clone());
    (counter, waker)
}

/// Polls `fut` once with `waker`.
fn poll_with<F: Future + ?Sized>(fut: std::pin::Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

fn t0() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn at(ms: u64) -> Instant {
    t0() + Duration::from_millis(ms)
}

fn text(s: &str) -> Message {
    Message::text(s)
}

fn app_close(code: u16, reason: &'static str) -> CloseFrame {
    CloseFrame::new(CloseCode::application(code).unwrap(), reason).unwrap()
}

fn config() -> Config {
    let mut config = Config::default();
    config.readiness_timeout = Duration::from_millis(100);
    config.close_timeout = Duration::from_millis(500);
    config
}

/// A connection brought to `Ready`, and its driver handle.
fn ready_with(config: Config) -> (Connection<Ready>, Transport) {
    let conn = Connection::new(ConnectionId::new(1), config);
    let transport = conn.transport();
    let conn = conn
        .accept(at(0))
        .unwrap()
        .authenticate(None, at(0))
        .unwrap()
        .ready(at(0))
        .unwrap();
    (conn, transport)
}

/// Every frame the driver can take now.
fn drain(transport: &Transport, now: Instant) -> Vec<Frame> {
    std::iter::from_fn(|| transport.next_frame(now)).collect()
}

/// Sends `m0`, `m1`, … `m{n-1}`.
fn send_numbered(sender: &ws_lifecycle::Sender, n: usize) {
    for i in 0..n {
        sender.send(text(&format!("m{i}"))).unwrap();
    }
}

fn messages(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Message(m) => Some(m.as_text().unwrap().to_owned()),
            Frame::Close(_) => None,
        })
        .collect()
}

fn close_frames(frames: &[Frame]) -> Vec<Option<CloseFrame>> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Close(c) => Some(c.clone()),
            Frame::Message(_) => None,
        })
        .collect()
}

// ── G2: pre-ready emitter ───────────────────────────────────────────────────

/// G2: events emitted on `Accepted` and `Authenticated` are flushed exactly once, in
/// emission order, before anything sent after `ready`; an emit after `Ready` goes to
/// the outbox after them.
#[test]
fn g2_pre_ready_events_flushed_once_in_order_before_later_sends() {
    let conn = Connection::new(ConnectionId::new(1), config());
    let transport = conn.transport();
    let accepted = conn.accept(at(0)).unwrap();
    let e1 = accepted.emitter();
    e1.emit(text("e1-0")).unwrap();
    e1.emit(text("e1-1")).unwrap();
    let authenticated = accepted.authenticate(None, at(1)).unwrap();
    let e2 = authenticated.emitter();
    e2.emit(text("e2-0")).unwrap();
    e1.emit(text("e1-2")).unwrap();
    assert_eq!(
        transport.next_frame(at(2)),
        None,
        "G2: nothing reaches the peer before Ready"
    );

    let mut ready = authenticated.ready(at(3)).unwrap();
    let sender = ready.sender();
    ready.send(text("after-0")).unwrap();
    sender.send(text("after-1")).unwrap();
    e2.emit(text("e2-after")).unwrap();

    let frames = drain(&transport, at(4));
    assert_eq!(
        messages(&frames),
        [
            "e1-0", "e1-1", "e2-0", "e1-2", "after-0", "after-1", "e2-after"
        ],
        "G2: buffered events first, in emission order, exactly once; later emits after them"
    );
    assert!(close_frames(&frames).is_empty());
    assert_eq!(
        drain(&transport, at(5)),
        [],
        "G2: the flush happens exactly once"
    );

    // Closing does not replay anything either.
    sender.close_at(CloseFrame::normal(), at(6));
    assert_eq!(
        drain(&transport, at(6)),
        [Frame::Close(Some(CloseFrame::normal()))]
    );
    assert_eq!(transport.take_unsent(), []);
}

/// G2/G3: an emit once the connection is closing hands the event back as `Closed`,
/// before `Ready` and after it.
#[test]
fn g2_emit_when_closing_returns_the_message() {
    // Before Ready: the driver closes (a protocol error).
    let conn = Connection::new(ConnectionId::new(1), config());
    let transport = conn.transport();
    let accepted = conn.accept(at(0)).unwrap();
    let emitter = accepted.emitter();
    transport
        .close(
            CloseFrame::new(CloseCode::PROTOCOL_ERROR, "").unwrap(),
            at(1),
        )
        .unwrap();
    let err = emitter.emit(text("late")).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Closed);
    assert_eq!(err.into_message(), text("late"));
    drop(accepted);

    // After Ready: an emitter obtained before Ready, used after a close.
    let conn = Connection::new(ConnectionId::new(2), config());
    let transport = conn.transport();
    let authenticated = conn
        .accept(at(0))
        .unwrap()
        .authenticate(None, at(0))
        .unwrap();
    let emitter = authenticated.emitter();
    let ready = authenticated.ready(at(0)).unwrap();
    emitter.emit(text("in-time")).unwrap();
    let _closing = ready.close(CloseFrame::normal(), at(1));
    let err = emitter.emit(text("too-late")).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Closed);
    assert_eq!(err.message, text("too-late"));
    let frames = drain(&transport, at(2));
    assert_eq!(messages(&frames), ["in-time"]);
    assert_eq!(
        frames.last(),
        Some(&Frame::Close(Some(CloseFrame::normal())))
    );
}

/// G2/G3: events buffered when the connection closes before `Ready` are not flushed
/// and come back, in order, from `take_unsent` (exactly once).
#[test]
fn g2_events_buffered_before_close_come_back_from_take_unsent() {
    // The owner closes.
    let conn = Connection::new(ConnectionId::new(1), config());
    let transport = conn.transport();
    let accepted = conn.accept(at(0)).unwrap();
    let emitter = accepted.emitter();
    for i in 0..3 {
        emitter.emit(text(&format!("ev-{i}"))).unwrap();
    }
    let mut closing = accepted.close(CloseFrame::normal(), at(1));
    let frames = drain(&transport, at(1));
    assert_eq!(
        frames,
        [Frame::Close(Some(CloseFrame::normal()))],
        "G2: a buffered event never reaches the peer if Ready never came"
    );
    assert_eq!(
        closing.take_unsent(),
        [text("ev-0"), text("ev-1"), text("ev-2")]
    );
    assert_eq!(closing.take_unsent(), [], "handed back exactly once");
    assert_eq!(transport.take_unsent(), []);

    // The peer closes, during Authenticated; the driver takes them back.
    let conn = Connection::new(ConnectionId::new(2), config());
    let transport = conn.transport();
    let authenticated = conn
        .accept(at(0))
        .unwrap()
        .authenticate(None, at(0))
        .unwrap();
    let emitter = authenticated.emitter();
    emitter.emit(text("a")).unwrap();
    emitter.emit(text("b")).unwrap();
    assert_eq!(
        transport.take_unsent(),
        [],
        "G2: still flushable while open"
    );
    transport.handle_peer_close(None, at(1)).unwrap();
    let gone = authenticated.ready(at(1)).unwrap_err();
    assert_eq!(gone.record().unwrap().cause, CloseCause::Peer);
    assert_eq!(drain(&transport, at(1)), [Frame::Close(None)]);
    assert_eq!(transport.take_unsent(), [text("a"), text("b")]);
    assert_eq!(transport.take_unsent(), []);
}

/// G2: past `pending_capacity` an emit before `Ready` hands the event back as `Full`;
/// what was buffered is still flushed at `Ready`.
#[test]
fn g2_pending_capacity_overflow_hands_event_back_as_full() {
    let mut config = config();
    config.pending_capacity = 2;
    let conn = Connection::new(ConnectionId::new(1), config);
    let transport = conn.transport();
    let accepted = conn.accept(at(0)).unwrap();
    let emitter = accepted.emitter();
    emitter.emit(text("0")).unwrap();
    emitter.emit(text("1")).unwrap();
    let err = emitter.emit(text("2")).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Full);
    assert_eq!(err.message, text("2"));
    let _ready = accepted
        .authenticate(None, at(0))
        .unwrap()
        .ready(at(0))
        .unwrap();
    emitter.emit(text("3")).unwrap();
    assert_eq!(messages(&drain(&transport, at(1))), ["0", "1", "3"]);
}

// ── G2: inbound hold ────────────────────────────────────────────────────────

/// G2: messages the driver hands over before `Ready` are held and read first, in
/// order, from `Connection<Ready>::receiver()`.
#[test]
fn g2_inbound_held_before_ready_read_first_in_order() {
    let conn = Connection::new(ConnectionId::new(1), config());
    let transport = conn.transport();
    let accepted = conn.accept(at(0)).unwrap();
    transport.handle_message(text("in-0"), at(0)).unwrap();
    let authenticated = accepted.authenticate(None, at(1)).unwrap();
    transport.handle_message(text("in-1"), at(1)).unwrap();
    transport.handle_message(text("in-2"), at(1)).unwrap();
    let ready = authenticated.ready(at(2)).unwrap();
    transport.handle_message(text("in-3"), at(2)).unwrap();
    let receiver = ready.receiver();
    let got: Vec<_> = std::iter::from_fn(|| receiver.try_recv()).collect();
    assert_eq!(
        got,
        [text("in-0"), text("in-1"), text("in-2"), text("in-3")],
        "G2: held messages first, in arrival order"
    );
    assert_eq!(receiver.try_recv(), None);
}

/// G2: past `inbound_capacity` before `Ready` (nobody can read yet) the connection
/// closes with 1008.
#[test]
fn g2_inbound_overflow_before_ready_closes_1008() {
    let mut config = config();
    config.inbound_capacity = 2;
    let conn = Connection::new(ConnectionId::new(1), config);
    let transport = conn.transport();
    let accepted = conn.accept(at(0)).unwrap();
    transport.handle_message(text("0"), at(0)).unwrap();
    transport.handle_message(text("1"), at(0)).unwrap();
    assert_eq!(
        transport.handle_message(text("2"), at(1)),
        Err(InboundError::Closed)
    );
    assert_eq!(transport.phase(), Phase::Closing);
    let record = transport.close_record().unwrap();
    assert_eq!(
        record.cause,
        CloseCause::InboundOverflow,
        "the peer's doing, not ours"
    );
    assert_eq!(
        record.frame.as_ref().map(CloseFrame::code),
        Some(CloseCode::POLICY_VIOLATION)
    );
    let frames = drain(&transport, at(1));
    assert_eq!(frames.len(), 1);
    match &frames[0] {
        Frame::Close(Some(frame)) => assert_eq!(frame.code(), CloseCode::POLICY_VIOLATION),
        other => panic!("expected our Close 1008, got {other:?}"),
    }
    assert!(accepted.authenticate(None, at(2)).is_err());
    assert_eq!(
        transport.handle_message(text("3"), at(2)),
        Err(InboundError::Closed)
    );
}

/// G2/G6: once `Ready`, a full hold hands the message back as `Full`, and
/// `poll_inbound_room` becomes ready (its waker woken) after a `try_recv`.
#[test]
fn g2_inbound_full_after_ready_then_room_after_try_recv() {
    let mut config = config();
    config.inbound_capacity = 2;
    let (conn, transport) = ready_with(config);
    let receiver = conn.receiver();
    transport.handle_message(text("0"), at(1)).unwrap();
    transport.handle_message(text("1"), at(1)).unwrap();
    assert_eq!(
        transport.handle_message(text("2"), at(1)),
        Err(InboundError::Full(text("2")))
    );
    assert_eq!(
        transport.phase(),
        Phase::Ready,
        "a full hold is not a close"
    );

    let (count, waker) = counting();
    let mut cx = Context::from_waker(&waker);
    assert_eq!(transport.poll_inbound_room(&mut cx), Poll::Pending);
    assert_eq!(count.count(), 0);
    assert_eq!(receiver.try_recv(), Some(text("0")));
    assert_eq!(
        count.count(),
        1,
        "G6: the driver is woken when room appears"
    );
    assert_eq!(transport.poll_inbound_room(&mut cx), Poll::Ready(()));
    transport.handle_message(text("2"), at(2)).unwrap();
    assert_eq!(receiver.try_recv(), Some(text("1")));
    assert_eq!(receiver.try_recv(), Some(text("2")));
    assert_eq!(receiver.try_recv(), None);
}

// ── G3: outbox overflow ─────────────────────────────────────────────────────

/// G3: with `OverflowPolicy::Reject` a full outbox hands the message back as `Full`;
/// the connection stays ready and every message is accounted for.
#[test]
fn g3_reject_policy_full_returns_the_message() {
    let mut config = config();
    config.outbox_capacity = 2;
    config.overflow = OverflowPolicy::Reject;
    let (conn, transport) = ready_with(config);
    let sender = conn.sender();
    let mut returned = Vec::new();
    let mut sent = Vec::new();
    for i in 0..3 {
        let m = format!("m{i}");
        sent.push(m.clone());
        if let Err(e) = sender.send(text(&m)) {
            assert_eq!(e.kind, SendErrorKind::Full);
            returned.push(e.message.as_text().unwrap().to_owned());
        }
    }
    assert_eq!(
        returned,
        ["m2"],
        "G3: the message that did not fit comes back"
    );
    assert_eq!(transport.phase(), Phase::Ready);
    let mut delivered = messages(&[transport.next_frame(at(1)).unwrap()]);
    sent.push("m3".into());
    sender
        .send(text("m3"))
        .expect("room again after the driver took a frame");
    sender.close_at(CloseFrame::normal(), at(2));
    let frames = drain(&transport, at(2));
    delivered.extend(messages(&frames));
    assert_eq!(close_frames(&frames).len(), 1);
    assert!(matches!(frames.last(), Some(Frame::Close(_))));
    let unsent: Vec<_> = transport
        .take_unsent()
        .iter()
        .map(|m| m.as_text().unwrap().to_owned())
        .collect();
    returned.extend(unsent);
    assert_eq!(delivered, ["m0", "m1", "m3"]);
    let mut all: Vec<_> = delivered.iter().chain(&returned).cloned().collect();
    all.sort();
    assert_eq!(all, sent, "G3: delivered + returned = sent, no duplicates");
}

/// G3, G5: with `OverflowPolicy::slow_consumer()` a full outbox closes the connection
/// with 1013 and hands the message back as `Closed`; sends are refused from that
/// moment; the close takes effect at the driver's next call with the time (so its
/// handshake timeout starts then, not at some stale time); what was queued is written
/// before the Close; nothing is lost.
#[test]
fn g3_slow_consumer_closes_1013_and_returns_message_as_closed() {
    let mut config = config();
    config.outbox_capacity = 2;
    config.overflow = OverflowPolicy::slow_consumer();
    let (conn, transport) = ready_with(config);
    let s1 = conn.sender();
    let s2 = s1.clone();
    s1.send(text("m0")).unwrap();
    s2.send(text("m1")).unwrap();
    let err = s1.send(text("m2")).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Closed);
    assert_eq!(err.message, text("m2"));
    let err = s2.send(text("m3")).unwrap_err();
    assert_eq!(
        err.kind,
        SendErrorKind::Closed,
        "G3: refused once the close is requested"
    );
    assert_eq!(err.message, text("m3"));
    assert_eq!(
        transport.phase(),
        Phase::Ready,
        "applied at the driver's next call"
    );
    let later = at(60_000);
    let first = transport.next_frame(later);
    assert_eq!(transport.phase(), Phase::Closing);
    assert_eq!(
        transport.poll_timeout(),
        Some(later + config_close_timeout()),
        "G5: the handshake timeout starts from the driver's time"
    );
    let record = transport.close_record().unwrap();
    assert_eq!(record.cause, CloseCause::SlowConsumer);
    assert_eq!(
        record.frame.as_ref().map(CloseFrame::code),
        Some(CloseCode::TRY_AGAIN_LATER)
    );

    let mut frames: Vec<Frame> = first.into_iter().collect();
    frames.extend(drain(&transport, later));
    assert_eq!(messages(&frames), ["m0", "m1"]);
    assert_eq!(close_frames(&frames).len(), 1, "G4: one Close");
    match frames.last() {
        Some(Frame::Close(Some(f))) => assert_eq!(f.code(), CloseCode::TRY_AGAIN_LATER),
        other => panic!("expected Close 1013 last, got {other:?}"),
    }
    assert_eq!(transport.take_unsent(), []);
    // Account: delivered m0, m1; returned m2, m3.
}

fn config_close_timeout() -> std::time::Duration {
    config().close_timeout
}

/// G5, G6: a re-authentication that moves the credential's expiry wakes the parked
/// driver, so it re-reads `poll_timeout` (found by review: it once did not).
#[test]
fn g6_reauthentication_wakes_the_driver_for_the_new_deadline() {
    let (mut conn, transport) = ready_with(config());
    let (counter, waker) = counting();
    let mut cx = Context::from_waker(&waker);
    assert_eq!(transport.poll_timeout(), None);
    assert!(transport.poll_transmit(&mut cx, at(1)).is_pending());
    let expiry = at(1_000);
    conn.reauthenticate(Some(expiry), at(2)).unwrap();
    assert_eq!(transport.poll_timeout(), Some(expiry));
    assert_eq!(
        counter.count(),
        1,
        "G6: the driver learns of the new deadline"
    );
}

/// G3: once a close is requested — by a sender, the owner, or the peer — `send` is
/// refused and hands the message back; nothing follows our Close.
#[test]
fn g3_send_after_close_is_refused_and_returned() {
    for how in ["sender", "owner", "peer"] {
        let (mut conn, transport) = ready_with(config());
        let sender = conn.sender();
        conn.send(text("before")).unwrap();
        let _closing = match how {
            "sender" => {
                sender.close_at(CloseFrame::normal(), at(1));
                conn.close(CloseFrame::normal(), at(1))
            }
            "owner" => conn.close(CloseFrame::normal(), at(1)),
            _ => {
                transport.handle_peer_close(None, at(1)).unwrap();
                conn.close(CloseFrame::normal(), at(1))
            }
        };
        let Err(err) = sender.send(text("after")) else {
            panic!("G3: a send was accepted after a close ({how})");
        };
        assert_eq!(
            err.kind,
            SendErrorKind::Closed,
            "G3: refused once closing ({how})"
        );
        assert_eq!(err.message, text("after"), "G3: handed back ({how})");
        let frames = drain(&transport, at(2));
        assert!(
            matches!(frames.last(), Some(Frame::Close(_))),
            "{how}: {frames:?}"
        );
        let Err(err) = sender.send(text("later")) else {
            panic!("G3: a send was accepted after our Close ({how})");
        };
        assert_eq!(
            err.kind,
            SendErrorKind::Closed,
            "G3: refused after our Close ({how})"
        );
        assert_eq!(
            drain(&transport, at(3)),
            [],
            "G3: nothing after our Close ({how})"
        );
        assert_queue_fate(&frames, transport.take_unsent(), "before", how == "peer");
    }
}

/// G3: what became of the one message queued before a close — skipped and handed
/// back after the peer's Close, written before a local one; never both.
fn assert_queue_fate(frames: &[Frame], unsent: Vec<Message>, queued: &str, peer_closed: bool) {
    if peer_closed {
        assert_eq!(messages(frames), Vec::<String>::new());
        assert_eq!(unsent, [text(queued)], "G3: skipped by the peer's close");
    } else {
        assert_eq!(
            messages(frames),
            [queued],
            "G3: queued before a local close"
        );
        assert_eq!(unsent, []);
    }
}

// ── G4: single close ────────────────────────────────────────────────────────

/// G4: `Sender::close` from two clones returns the same record; the first code wins;
/// the driver gets exactly one Close frame.
#[test]
fn g4_two_sender_clones_close_once_first_code_wins() {
    let (conn, transport) = ready_with(config());
    let a = conn.sender();
    let b = a.clone();
    let first = a.close_at(app_close(4001, "first"), at(1)).unwrap();
    let second = b.close_at(app_close(4002, "second"), at(2)).unwrap();
    assert_eq!(first, second, "G4: every caller sees the same outcome");
    assert_eq!(first.cause, CloseCause::Local);
    assert_eq!(first.frame, Some(app_close(4001, "first")));
    assert_eq!(transport.close_record(), Some(first.clone()));

    let frames = drain(&transport, at(3));
    assert_eq!(frames, [Frame::Close(Some(app_close(4001, "first")))]);
    // A third close, after our Close went out, changes nothing either.
    let third = a.close_at(app_close(4003, "third"), at(4)).unwrap();
    assert_eq!(third.frame, first.frame);
    assert_eq!(third.cause, first.cause);
    assert!(third.close_sent);
    for ms in 4..10 {
        assert_eq!(
            transport.next_frame(at(ms)),
            None,
            "G4: exactly one Close frame"
        );
    }
    transport.handle_peer_close(None, at(10)).unwrap();
    assert_eq!(transport.phase(), Phase::Closed);
    assert_eq!(drain(&transport, at(11)), []);
}

// ── G6: waits ───────────────────────────────────────────────────────────────

/// G6: `wait_ready` stays pending, is woken exactly once when `ready` happens (not by
/// unrelated activity), and then completes `Ok`.
#[test]
fn g6_wait_ready_woken_exactly_by_ready() {
    let conn = Connection::new(ConnectionId::new(1), config());
    let observer = conn.observer();
    let transport = conn.transport();
    let authenticated = conn
        .accept(at(0))
        .unwrap()
        .authenticate(None, at(0))
        .unwrap();
    let (count, waker) = counting();
    let mut fut = pin!(observer.wait_ready());
    assert!(poll_with(fut.as_mut(), &waker).is_pending());
    assert!(poll_with(fut.as_mut(), &waker).is_pending());
    // Activity that is not a change of state wakes nobody.
    authenticated.emitter().emit(text("ev")).unwrap();
    transport.handle_message(text("in"), at(1)).unwrap();
    assert_eq!(transport.handle_timeout(at(50)), None);
    assert_eq!(count.count(), 0);

    let _ready = authenticated.ready(at(60)).unwrap();
    assert_eq!(
        count.count(),
        1,
        "G6: woken exactly once, by the transition"
    );
    assert_eq!(poll_with(fut.as_mut(), &waker), Poll::Ready(Ok(())));
    assert_eq!(observer.phase(), Phase::Ready);
}

/// G6: a `wait_ready` started on `Connecting` may be woken by each intermediate
/// transition, but is pending until `Ready` and never misses it.
#[test]
fn g6_wait_ready_across_every_transition() {
    let conn = Connection::new(ConnectionId::new(1), config());
    let observer = conn.observer();
    let (count, waker) = counting();
    let mut fut = pin!(observer.wait_ready());
    assert!(poll_with(fut.as_mut(), &waker).is_pending());
    let conn = conn.accept(at(0)).unwrap();
    assert!(count.count() >= 1);
    assert!(poll_with(fut.as_mut(), &waker).is_pending());
    let before = count.count();
    let conn = conn.authenticate(None, at(0)).unwrap();
    assert!(count.count() > before);
    assert!(poll_with(fut.as_mut(), &waker).is_pending());
    let before = count.count();
    let _conn = conn.ready(at(0)).unwrap();
    assert!(count.count() > before);
    assert_eq!(poll_with(fut.as_mut(), &waker), Poll::Ready(Ok(())));
    // A wait started after Ready completes at once.
    let mut late = pin!(observer.wait_ready());
    assert_eq!(poll_with(late.as_mut(), &waker), Poll::Ready(Ok(())));
}

/// G5/G6: `wait_ready` completes with the close record when the readiness deadline
/// fires through `Transport::handle_timeout`.
#[test]
fn g6_wait_ready_err_when_readiness_deadline_fires() {
    let conn = Connection::new(ConnectionId::new(1), config());
    let observer = conn.observer();
    let transport = conn.transport();
    let _accepted = conn.accept(at(0)).unwrap();
    assert_eq!(transport.poll_timeout(), Some(at(100)));
    let (count, waker) = counting();
    let mut fut = pin!(observer.wait_ready());
    assert!(poll_with(fut.as_mut(), &waker).is_pending());
    assert_eq!(transport.handle_timeout(at(99)), None);
    assert_eq!(count.count(), 0);
    assert!(transport.handle_timeout(at(100)).unwrap().changed());
    assert_eq!(count.count(), 1, "G6: the deadline wakes the waiter");
    match poll_with(fut.as_mut(), &waker) {
        Poll::Ready(Err(record)) => {
            assert_eq!(record.cause, CloseCause::ReadinessDeadline);
            assert_eq!(
                record.frame.as_ref().map(CloseFrame::code),
                Some(CloseCode::POLICY_VIOLATION)
            );
        }
        other => panic!("expected Err(record), got {other:?}"),
    }
}

/// G6: `wait_closed` stays pending through `Closing` and completes with the record
/// after the close handshake.
#[test]
fn g6_wait_closed_completes_after_close_handshake() {
    let (conn, transport) = ready_with(config());
    let observer = conn.observer();
    let (count, waker) = counting();
    let mut fut = pin!(observer.wait_closed());
    assert!(poll_with(fut.as_mut(), &waker).is_pending());
    let _closing = conn.close(CloseFrame::normal(), at(1));
    assert!(count.count() >= 1);
    assert!(poll_with(fut.as_mut(), &waker).is_pending());
    assert_eq!(
        transport.next_frame(at(2)),
        Some(Frame::Close(Some(CloseFrame::normal())))
    );
    assert!(poll_with(fut.as_mut(), &waker).is_pending());
    let before = count.count();
    transport.handle_peer_close(None, at(3)).unwrap();
    assert!(
        count.count() > before,
        "G6: woken by the end of the handshake"
    );
    match poll_with(fut.as_mut(), &waker) {
        Poll::Ready(record) => {
            assert_eq!(record.end, Some(CloseEnd::Clean));
            assert!(record.close_sent && record.peer_closed);
        }
        Poll::Pending => panic!("G6: wait_closed still pending after Closed"),
    }
}

/// G6: `Sender::send_async` on a full outbox is pending, is woken when the driver
/// takes a frame, and then queues the message (in order).
#[test]
fn g6_send_async_woken_when_driver_takes_a_frame() {
    let mut config = config();
    config.outbox_capacity = 1;
    let (conn, transport) = ready_with(config);
    let sender = conn.sender();
    sender.send(text("m0")).unwrap();
    let (count, waker) = counting();
    let mut fut = pin!(sender.send_async(text("m1")));
    assert!(poll_with(fut.as_mut(), &waker).is_pending());
    assert!(poll_with(fut.as_mut(), &waker).is_pending());
    assert_eq!(count.count(), 0);
    assert_eq!(
        transport.next_frame(at(1)),
        Some(Frame::Message(text("m0")))
    );
    assert_eq!(count.count(), 1, "G6: room wakes the async sender");
    assert!(matches!(
        poll_with(fut.as_mut(), &waker),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(
        transport.next_frame(at(1)),
        Some(Frame::Message(text("m1")))
    );
    assert_eq!(transport.next_frame(at(1)), None);
}

/// G3/G6: a pending `send_async` completes with the message handed back (`Closed`)
/// when the connection closes instead of making room.
#[test]
fn g6_send_async_returns_message_when_connection_closes() {
    for peer in [false, true] {
        let mut config = config();
        config.outbox_capacity = 1;
        let (conn, transport) = ready_with(config);
        let sender = conn.sender();
        sender.send(text("m0")).unwrap();
        let (count, waker) = counting();
        let mut fut = pin!(sender.send_async(text("m1")));
        assert!(poll_with(fut.as_mut(), &waker).is_pending());
        if peer {
            transport.handle_peer_close(None, at(1)).unwrap();
        } else {
            sender.close_at(CloseFrame::normal(), at(1));
        }
        assert_eq!(count.count(), 1, "G6: the close wakes the async sender");
        match poll_with(fut.as_mut(), &waker) {
            Poll::Ready(Err(e)) => {
                assert_eq!(e.kind, SendErrorKind::Closed);
                assert_eq!(e.message, text("m1"), "G3: the message comes back");
            }
            other => panic!("expected Err(Closed), got {other:?}"),
        }
        let frames = drain(&transport, at(2));
        if peer {
            assert_eq!(frames, [Frame::Close(None)]);
        }
        assert_queue_fate(&frames, transport.take_unsent(), "m0", peer);
    }
}

/// G6: `Transport::poll_transmit` is woken by a `send`, by a close, and completes with
/// `None` once closed.
#[test]
fn g6_poll_transmit_woken_by_send_and_close() {
    let (conn, transport) = ready_with(config());
    let sender = conn.sender();
    let (count, waker) = counting();
    let mut cx = Context::from_waker(&waker);
    assert_eq!(transport.poll_transmit(&mut cx, at(1)), Poll::Pending);
    assert_eq!(count.count(), 0);
    sender.send(text("m0")).unwrap();
    assert_eq!(count.count(), 1, "G6: a send wakes the driver");
    assert_eq!(
        transport.poll_transmit(&mut cx, at(1)),
        Poll::Ready(Some(Frame::Message(text("m0"))))
    );
    assert_eq!(transport.poll_transmit(&mut cx, at(1)), Poll::Pending);
    let before = count.count();
    sender.close_at(CloseFrame::normal(), at(2));
    assert!(count.count() > before, "G6: a close wakes the driver");
    assert_eq!(
        transport.poll_transmit(&mut cx, at(2)),
        Poll::Ready(Some(Frame::Close(Some(CloseFrame::normal()))))
    );
    assert_eq!(transport.poll_transmit(&mut cx, at(2)), Poll::Pending);
    let before = count.count();
    transport.handle_peer_close(None, at(3)).unwrap();
    assert!(count.count() > before);
    assert_eq!(transport.poll_transmit(&mut cx, at(3)), Poll::Ready(None));
}

/// G6: `Receiver::recv` is woken by `Transport::handle_message`, and by the close
/// (then completes with `None`).
#[test]
fn g6_recv_woken_by_handle_message() {
    let (conn, transport) = ready_with(config());
    let receiver = conn.receiver();
    let (count, waker) = counting();
    {
        let mut fut = pin!(receiver.recv());
        assert!(poll_with(fut.as_mut(), &waker).is_pending());
        assert_eq!(count.count(), 0);
        transport.handle_message(text("in"), at(1)).unwrap();
        assert_eq!(count.count(), 1, "G6: an arrival wakes the receiver");
        assert_eq!(
            poll_with(fut.as_mut(), &waker),
            Poll::Ready(Some(text("in")))
        );
    }
    let mut fut = pin!(receiver.recv());
    assert!(poll_with(fut.as_mut(), &waker).is_pending());
    let before = count.count();
    transport.handle_peer_close(None, at(2)).unwrap();
    assert!(count.count() > before, "G6: the close wakes the receiver");
    assert_eq!(poll_with(fut.as_mut(), &waker), Poll::Ready(None));
}

/// G6: a future re-polled many times is registered once (one wake per transition, only
/// its latest waker), and dropped pending futures unregister: their wakers are never
/// woken afterwards, while the futures still alive are.
#[test]
fn g6_repolled_and_dropped_futures_unregister() {
    let (conn, transport) = ready_with(config());
    let observer = conn.observer();
    let sender = conn.sender();
    let receiver = conn.receiver();

    // One future, polled many times with the same waker: woken once per transition.
    let (same, same_waker) = counting();
    let mut kept = pin!(observer.wait_closed());
    for _ in 0..1000 {
        assert!(poll_with(kept.as_mut(), &same_waker).is_pending());
    }
    // One future re-polled with a new waker each time: only the latest is woken.
    let olds: Vec<_> = (0..50).map(|_| counting()).collect();
    let (latest, latest_waker) = counting();
    let mut switching = pin!(observer.changed(Phase::Ready));
    for (_, w) in &olds {
        assert!(poll_with(switching.as_mut(), w).is_pending());
    }
    assert!(poll_with(switching.as_mut(), &latest_waker).is_pending());

    // Many futures of every kind, polled pending and then dropped.
    let (dropped, dropped_waker) = counting();
    for round in 0..200 {
        let mut a = Box::pin(observer.wait_closed());
        let mut b = Box::pin(observer.changed(Phase::Ready));
        let mut c = Box::pin(receiver.recv());
        for _ in 0..3 {
            assert!(poll_with(a.as_mut(), &dropped_waker).is_pending());
            assert!(poll_with(b.as_mut(), &dropped_waker).is_pending());
            assert!(poll_with(c.as_mut(), &dropped_waker).is_pending());
        }
        if round % 2 == 0 {
            drop((a, b, c));
        } else {
            drop((c, b, a));
        }
    }

    // Activity that wakes every registered waiter: a frame taken, a message arriving.
    sender.send(text("m")).unwrap();
    assert_eq!(transport.next_frame(at(1)), Some(Frame::Message(text("m"))));
    transport.handle_message(text("in"), at(1)).unwrap();
    assert_eq!(receiver.try_recv(), Some(text("in")));
    assert_eq!(
        dropped.count(),
        0,
        "G6: dropped futures must have unregistered their wakers"
    );
    let spurious = same.count();
    assert!(
        spurious <= 2,
        "registered once, not once per poll: {spurious} wakes"
    );
    assert!(poll_with(kept.as_mut(), &same_waker).is_pending());
    assert!(poll_with(switching.as_mut(), &latest_waker).is_pending());

    // Later wakeups still work.
    let before = (same.count(), latest.count());
    let _closing = conn.close(CloseFrame::normal(), at(2));
    assert_eq!(
        same.count(),
        before.0 + 1,
        "G6: one wake per transition for a future polled 1000 times"
    );
    assert_eq!(
        latest.count(),
        before.1 + 1,
        "G6: the latest waker is woken"
    );
    assert!(
        olds.iter().all(|(c, _)| c.count() == 0),
        "G6: replaced wakers are not woken"
    );
    assert_eq!(dropped.count(), 0);
    assert_eq!(
        poll_with(switching.as_mut(), &latest_waker),
        Poll::Ready(Phase::Closing)
    );
    assert!(poll_with(kept.as_mut(), &same_waker).is_pending());
    assert!(transport.next_frame(at(3)).is_some());
    transport.handle_peer_close(None, at(4)).unwrap();
    assert!(matches!(
        poll_with(kept.as_mut(), &same_waker),
        Poll::Ready(record) if record.is_clean()
    ));
}

/// G6: a wait with a timeout returns. Its deadline joins `Transport::poll_timeout`
/// (and starting it wakes the parked driver to re-read it); when the time input
/// passes it, the waiter is woken and gives up with `TimedOut`.
#[test]
fn g6_waits_with_a_timeout_return_when_the_time_input_passes_them() {
    let conn = Connection::new(ConnectionId::new(9), config());
    let transport = conn.transport();
    let observer = conn.observer();
    let conn = conn.accept(at(0)).unwrap();
    let readiness = transport.poll_timeout().expect("readiness deadline armed");

    // The driver parks.
    let (driver, driver_waker) = counting();
    assert!(
        transport
            .poll_transmit(&mut Context::from_waker(&driver_waker), at(0))
            .is_pending()
    );

    let deadline = at(5);
    assert!(deadline < readiness);
    let (counter, waker) = counting();
    let mut fut = Box::pin(observer.wait_ready_until(deadline));
    assert!(poll_with(fut.as_mut(), &waker).is_pending());
    assert_eq!(
        transport.poll_timeout(),
        Some(deadline),
        "the wait's deadline is next"
    );
    assert_eq!(driver.count(), 1, "the driver re-reads poll_timeout");

    // Time passes the wait's deadline, but not the readiness deadline.
    assert_eq!(transport.handle_timeout(deadline), None);
    assert_eq!(
        counter.count(),
        1,
        "G6: the waiter is woken by the time input"
    );
    assert_eq!(
        poll_with(fut.as_mut(), &waker),
        Poll::Ready(Err(ws_lifecycle::handle::WaitError::TimedOut))
    );
    assert_eq!(transport.poll_timeout(), Some(readiness));
    assert_eq!(
        conn.phase(),
        ws_lifecycle::Phase::Accepted,
        "nothing else changed"
    );

    // A wait that is satisfied first completes normally.
    let mut closed = Box::pin(observer.wait_closed_until(at(10_000)));
    assert!(poll_with(closed.as_mut(), &waker).is_pending());
    let closing = conn.close(CloseFrame::normal(), at(6));
    let _ = drain(&transport, at(6));
    transport.handle_peer_close(None, at(7)).unwrap();
    assert!(closing.is_closed());
    assert!(matches!(
        poll_with(closed.as_mut(), &waker),
        Poll::Ready(Ok(_))
    ));
}

/// G6: the driver's fast path for a `Ready` connection advances the clock too; a wait
/// whose timeout that time passes is woken all the same — the fast path steps aside
/// while any wait has a timeout (seen failing with the flag left unset on register).
#[test]
fn g6_a_timed_wait_is_woken_when_the_drivers_batch_passes_its_deadline() {
    let (conn, transport) = ready_with(config());
    let observer = conn.observer();
    let sender = conn.sender();
    let (counter, waker) = counting();
    let mut wait = Box::pin(observer.wait_closed_until(at(5)));
    assert!(poll_with(wait.as_mut(), &waker).is_pending());
    send_numbered(&sender, 1);
    // The driver takes the message at a time past the wait's deadline.
    let mut batch = Vec::new();
    assert_eq!(transport.next_frames(at(10), &mut batch, 8), 1);
    assert_eq!(messages(&batch), ["m0"]);
    assert_eq!(
        counter.count(),
        1,
        "G6: the timed wait is woken by the time input"
    );
    assert_eq!(
        poll_with(wait.as_mut(), &waker),
        Poll::Ready(Err(ws_lifecycle::handle::WaitError::TimedOut))
    );
    // With no timed wait left, the next batch takes the fast path again.
    send_numbered(&sender, 1);
    batch.clear();
    assert_eq!(transport.next_frames(at(11), &mut batch, 8), 1);
    drop(conn);
}

/// G3: `Transport::next_frames` takes what is queued in order, at most `max` at a
/// time, and a batch ends with our Close: nothing follows it, even with room left.
#[test]
fn g3_next_frames_in_order_bounded_and_close_last() {
    let (conn, transport) = ready_with(config());
    let sender = conn.sender();
    send_numbered(&sender, 5);
    let mut batch = Vec::new();
    assert_eq!(transport.next_frames(at(1), &mut batch, 3), 3);
    assert_eq!(messages(&batch), ["m0", "m1", "m2"]);
    let _closing = conn.close(CloseFrame::normal(), at(1));
    assert!(
        sender.send(text("late")).is_err(),
        "G3: refused once closing"
    );
    batch.clear();
    assert_eq!(transport.next_frames(at(1), &mut batch, 64), 3);
    assert_eq!(messages(&batch[..2]), ["m3", "m4"]);
    assert_eq!(close_frames(&batch), [Some(CloseFrame::normal())]);
    assert!(
        matches!(batch.last(), Some(Frame::Close(_))),
        "G3: Close last"
    );
    assert_eq!(transport.next_frames(at(1), &mut batch, 64), 0);
    assert_eq!(batch.len(), 3, "nothing after our Close");
}

/// G6: a batch that takes everything that was ready also registers the driver's
/// waker, so a driver may write the batch and wait without polling again: the next
/// send wakes it. A full batch (`max` frames) registers nothing — more may be ready —
/// and once closed the batch poll completes with `None`.
#[test]
fn g6_poll_transmit_batch_parks_when_it_empties_the_outbox() {
    let (conn, transport) = ready_with(config());
    let sender = conn.sender();
    let (count, waker) = counting();
    let mut cx = Context::from_waker(&waker);
    let mut batch = Vec::new();
    assert_eq!(
        transport.poll_transmit_batch(&mut cx, at(1), &mut batch, 8),
        Poll::Pending
    );
    sender.send(text("m0")).unwrap();
    assert_eq!(count.count(), 1, "G6: a send wakes the parked driver");
    assert_eq!(
        transport.poll_transmit_batch(&mut cx, at(1), &mut batch, 8),
        Poll::Ready(Some(1))
    );
    // No second poll: the batch emptied the outbox and left the waker registered.
    sender.send(text("m1")).unwrap();
    assert_eq!(count.count(), 2, "G6: woken without polling again");
    sender.send(text("m2")).unwrap();
    assert_eq!(
        transport.poll_transmit_batch(&mut cx, at(1), &mut batch, 1),
        Poll::Ready(Some(1)),
        "a full batch"
    );
    sender.send(text("m3")).unwrap();
    assert_eq!(count.count(), 2, "a full batch registers no waker");
    assert_eq!(
        transport.poll_transmit_batch(&mut cx, at(1), &mut batch, 0),
        Poll::Ready(Some(1)),
        "a batch of 0 counts as 1"
    );
    assert_eq!(messages(&batch), ["m0", "m1", "m2"]);
    batch.clear();
    let _closing = conn.close(CloseFrame::normal(), at(2));
    // Taking our Close changes the state, which wakes the waker the batch left: a
    // driver that waits after this batch is polled again at once (G6).
    let before = count.count();
    assert_eq!(
        transport.poll_transmit_batch(&mut cx, at(2), &mut batch, 8),
        Poll::Ready(Some(2))
    );
    assert_eq!(messages(&batch), ["m3"]);
    assert_eq!(
        count.count(),
        before + 1,
        "G6: woken by its own state change"
    );
    assert_eq!(
        transport.poll_transmit_batch(&mut cx, at(2), &mut batch, 8),
        Poll::Pending
    );
    transport.handle_peer_close(None, at(3)).unwrap();
    assert_eq!(
        count.count(),
        before + 2,
        "G6: the peer's Close wakes the driver"
    );
    assert_eq!(
        transport.poll_transmit_batch(&mut cx, at(3), &mut batch, 8),
        Poll::Ready(None)
    );
}

/// G3: frames the driver took but the transport failed to write go back to the
/// front of the outbox, in order and ahead of what was queued since, and come back
/// from `take_unsent` once the transport is lost; a Close among them is dropped.
#[test]
fn g3_requeued_unwritten_frames_come_back_in_order() {
    let (conn, transport) = ready_with(config());
    let sender = conn.sender();
    send_numbered(&sender, 4);
    let mut batch = Vec::new();
    assert_eq!(transport.next_frames(at(1), &mut batch, 3), 3);
    sender.send(text("m4")).unwrap();
    // "m0" reached the socket; the socket failed on "m1"... and never took "m2".
    let unwritten = batch.split_off(1);
    assert_eq!(transport.requeue_unwritten(unwritten), 2);
    transport
        .handle_transport_lost(ws_lifecycle::core::TransportLoss::Error, at(2))
        .unwrap();
    let unsent: Vec<String> = transport
        .take_unsent()
        .iter()
        .map(|m| m.as_text().unwrap().to_owned())
        .collect();
    assert_eq!(
        unsent,
        ["m1", "m2", "m3", "m4"],
        "G3: nothing lost, in order"
    );
    assert_eq!(transport.requeue_unwritten([Frame::Close(None)]), 0);
    assert!(
        transport.take_unsent().is_empty(),
        "a Close is not a message"
    );
}
