//! The async driver over an in-memory socket (no network), mostly on tokio's paused
//! clock: pings, the idle timeout, the close handshake in both directions, the
//! pre-authentication limits, the readiness deadline bounding authentication (G5),
//! the startup gate (G8), a panicking handler closing only its own connection
//! with 1011, a deadline another task brings forward waking the parked driver
//! (G5, G6), and the wait after an idle-timeout close that is slept, not spun.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Sink, Stream};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use ws_lifecycle::core::{CloseCause, CloseEnd};
use ws_lifecycle::driver::{AuthRequest, UpgradeRequest, WireFrame};
use ws_lifecycle::{
    CloseFrame, CloseRecord, DriverConfig, Handler, Identity, Message, Registry, RegistryConfig,
    Sender, Service, Session,
};

// ── an in-memory socket ─────────────────────────────────────────────────────

/// The driver's end: reads what the test sends, writes to what the test reads.
struct Socket {
    inbound: UnboundedReceiver<Result<WireFrame, String>>,
    outbound: UnboundedSender<WireFrame>,
    closed: Arc<AtomicBool>,
}

impl Stream for Socket {
    type Item = Result<WireFrame, String>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inbound.poll_recv(cx)
    }
}

impl Sink<WireFrame> for Socket {
    type Error = String;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, item: WireFrame) -> Result<(), String> {
        assert!(
            !self.closed.load(Ordering::SeqCst),
            "written after the transport was ended: {item:?}"
        );
        self.outbound.send(item).map_err(|e| e.to_string())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
        self.closed.store(true, Ordering::SeqCst);
        Poll::Ready(Ok(()))
    }
}

/// The test's end: the peer.
struct Peer {
    to_server: Option<UnboundedSender<Result<WireFrame, String>>>,
    from_server: UnboundedReceiver<WireFrame>,
    ended: Arc<AtomicBool>,
    task: JoinHandle<CloseRecord>,
}

impl Peer {
    fn send(&self, frame: WireFrame) {
        let _ = self.to_server.as_ref().unwrap().send(Ok(frame));
    }
    fn text(&self, text: &str) {
        self.send(WireFrame::Message(Message::text(text)));
    }
    /// The next frame the server writes (bounded on the paused clock).
    async fn recv(&mut self) -> Option<WireFrame> {
        tokio::time::timeout(Duration::from_secs(600), self.from_server.recv())
            .await
            .expect("the server wrote in time")
    }
    async fn recv_text(&mut self) -> String {
        match self.recv().await {
            Some(WireFrame::Message(m)) => m.as_text().unwrap().to_owned(),
            other => panic!("expected a message, got {other:?}"),
        }
    }
    async fn recv_close(&mut self) -> Option<u16> {
        loop {
            match self.recv().await {
                Some(WireFrame::Close(frame)) => return frame.map(|f| f.code().as_u16()),
                Some(WireFrame::Ping(_)) => continue,
                other => panic!("expected a Close, got {other:?}"),
            }
        }
    }
    async fn finished(self) -> CloseRecord {
        let record = tokio::time::timeout(Duration::from_secs(600), self.task)
            .await
            .expect("the driver finished in time")
            .unwrap();
        assert!(self.ended.load(Ordering::SeqCst), "the transport was ended");
        record
    }
}

// ── the application ─────────────────────────────────────────────────────────

/// Echoes; panics on "panic"; closes with 4000 on "bye".
struct Echo;

impl Handler for Echo {
    async fn on_authenticated(&self, _: &Session, emitter: &ws_lifecycle::Emitter) {
        let _ = emitter.emit(Message::text("hello"));
    }

    async fn on_message(
        &self,
        _: &Session,
        sender: &Sender,
        message: Message,
    ) -> Result<(), CloseFrame> {
        match message.as_text() {
            Some("panic") => panic!("the handler panicked on purpose"),
            Some("last words") => {
                let _ = sender.send(Message::text("last words"));
                panic!("the handler panicked after a send");
            }
            Some("bye") => Err(CloseFrame::new(
                ws_lifecycle::CloseCode::application(4000).unwrap(),
                "bye",
            )
            .unwrap()),
            _ => {
                let _ = sender.send(message);
                Ok(())
            }
        }
    }
}

type Auth = fn(AuthRequest) -> std::future::Ready<Result<Identity, String>>;

fn token(request: AuthRequest) -> std::future::Ready<Result<Identity, String>> {
    std::future::ready(match request.first_message.as_text() {
        Some(t) if t.starts_with("auth:") => Ok(Identity::user(&t[5..])),
        _ => Err("bad token".to_owned()),
    })
}

fn service(config: DriverConfig, registry: Registry) -> Arc<Service<Auth, Echo>> {
    Arc::new(Service::new(registry, config, token as Auth, Echo))
}

fn open_registry() -> Registry {
    let registry = Registry::new(RegistryConfig::default());
    registry.open();
    registry
}

fn connect<A: ws_lifecycle::Authenticator + 'static, H: Handler<A::State>>(
    service: &Arc<Service<A, H>>,
) -> Peer {
    let (to_server, inbound) = unbounded_channel();
    let (outbound, from_server) = unbounded_channel();
    let ended = Arc::new(AtomicBool::new(false));
    let socket = Socket {
        inbound,
        outbound,
        closed: ended.clone(),
    };
    let service = service.clone();
    let task =
        tokio::spawn(async move { service.run(socket, UpgradeRequest::default()).await.record });
    Peer {
        to_server: Some(to_server),
        from_server,
        ended,
        task,
    }
}

async fn login(peer: &mut Peer, user: &str) {
    peer.text(&format!("auth:{user}"));
    assert_eq!(
        peer.recv_text().await,
        "hello",
        "G2: the pre-ready event first"
    );
}

// ── tests ───────────────────────────────────────────────────────────────────

#[tokio::test(start_paused = true)]
async fn echo_then_peer_close_is_answered_exactly_once_and_the_transport_ended() {
    let service = service(DriverConfig::default(), open_registry());
    let mut peer = connect(&service);
    login(&mut peer, "ada").await;
    peer.text("one");
    assert_eq!(peer.recv_text().await, "one");
    peer.send(WireFrame::Close(Some(CloseFrame::normal())));
    assert_eq!(peer.recv_close().await, Some(1000), "our answer");
    let record = peer.finished().await;
    assert_eq!(record.cause, CloseCause::Peer);
    assert_eq!(record.end, Some(CloseEnd::Clean));
    assert!(service.registry().is_empty(), "G7: unlisted");
}

#[tokio::test(start_paused = true)]
async fn our_close_then_a_silent_peer_ends_at_the_close_timeout() {
    let service = service(DriverConfig::default(), open_registry());
    let mut peer = connect(&service);
    login(&mut peer, "ada").await;
    peer.text("bye");
    assert_eq!(peer.recv_close().await, Some(4000));
    // The peer never answers; the transport stays open.
    let record = peer.finished().await;
    assert_eq!(
        record.end,
        Some(CloseEnd::TimedOut),
        "G5: the close timeout"
    );
    assert!(service.registry().is_empty());
}

#[tokio::test(start_paused = true)]
async fn pings_are_answered_and_an_idle_peer_is_pinged_then_closed_with_1001() {
    let mut config = DriverConfig::default();
    config.idle_timeout = Some(Duration::from_secs(10));
    let service = service(config, open_registry());
    let mut peer = connect(&service);
    login(&mut peer, "ada").await;
    peer.send(WireFrame::Ping(vec![7]));
    assert_eq!(peer.recv().await, Some(WireFrame::Pong(vec![7])));
    // Silence: a keep-alive ping after half the idle timeout, then the close.
    assert!(matches!(peer.recv().await, Some(WireFrame::Ping(_))));
    assert_eq!(peer.recv_close().await, Some(1001));
    peer.send(WireFrame::Close(None));
    let record = peer.finished().await;
    assert_eq!(record.end, Some(CloseEnd::Clean));
    // Its own cause, from the one table of the crate's closes.
    assert_eq!(record.cause, CloseCause::IdleTimeout);
    assert_eq!(record.frame.map(|f| f.code().as_u16()), Some(1001));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_closes_its_connection_with_1011_and_no_other() {
    let service = service(DriverConfig::default(), open_registry());
    let mut victim = connect(&service);
    let mut bystander = connect(&service);
    login(&mut victim, "ada").await;
    login(&mut bystander, "bob").await;
    victim.text("panic");
    assert_eq!(victim.recv_close().await, Some(1011));
    bystander.text("still fine");
    assert_eq!(bystander.recv_text().await, "still fine");
    victim.send(WireFrame::Close(None));
    assert_eq!(victim.finished().await.cause, CloseCause::HandlerPanic);
    assert_eq!(service.registry().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn pre_auth_limits_close_with_1008() {
    let mut config = DriverConfig::default();
    config.max_pre_auth_message_bytes = 16;
    let service = service(config, open_registry());
    let mut peer = connect(&service);
    peer.text("auth:a-name-far-too-long-for-the-limit");
    assert_eq!(peer.recv_close().await, Some(1008), "too big before auth");
    peer.send(WireFrame::Close(None));
    let record = peer.finished().await;
    assert_eq!(record.cause, CloseCause::PreAuthLimit);
    assert_eq!(
        record.frame.map(|f| f.reason().to_owned()).as_deref(),
        Some("message too big before authentication")
    );

    // Too many: an authenticator that never answers, and a flood. What follows the
    // auth message is held (pipelining, issue 14), bounded by the inbound hold.
    let pending = |_: AuthRequest| std::future::pending::<Result<Identity, String>>();
    let mut config = DriverConfig::default();
    config.connection.inbound_capacity = 3;
    let slow = Arc::new(Service::new(open_registry(), config, pending, Echo));
    let mut flood = connect(&slow);
    for _ in 0..5 {
        flood.text("x");
    }
    assert_eq!(flood.recv_close().await, Some(1008), "too many before auth");
    flood.send(WireFrame::Close(None));
    assert_eq!(flood.finished().await.cause, CloseCause::InboundOverflow);
}

#[tokio::test(start_paused = true)]
async fn the_readiness_deadline_bounds_a_slow_authenticator() {
    let pending = |_: AuthRequest| std::future::pending::<Result<Identity, String>>();
    let service = Arc::new(Service::new(
        open_registry(),
        DriverConfig::default(),
        pending,
        Echo,
    ));
    let mut peer = connect(&service);
    peer.text("auth:ada");
    let started = tokio::time::Instant::now();
    assert_eq!(peer.recv_close().await, Some(1008));
    assert!(started.elapsed() >= DriverConfig::default().connection.readiness_timeout);
    peer.send(WireFrame::Close(None));
    assert_eq!(peer.finished().await.cause, CloseCause::ReadinessDeadline);
}

#[tokio::test(start_paused = true)]
async fn wrong_token_is_refused_with_1008() {
    let service = service(DriverConfig::default(), open_registry());
    let mut peer = connect(&service);
    peer.text("let me in");
    assert_eq!(peer.recv_close().await, Some(1008));
    peer.send(WireFrame::Close(None));
    assert_eq!(peer.finished().await.cause, CloseCause::AuthFailed);
}

#[tokio::test(start_paused = true)]
async fn g8_a_connection_held_at_startup_becomes_ready_when_the_registry_opens() {
    let registry = Registry::new(RegistryConfig::default());
    let service = service(DriverConfig::default(), registry.clone());
    let mut peer = connect(&service);
    peer.text("auth:ada");
    peer.text("queued while held");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(registry.snapshot().held, 1, "G8: held");
    registry.open();
    assert_eq!(peer.recv_text().await, "hello");
    assert_eq!(
        peer.recv_text().await,
        "queued while held",
        "G2: held messages in order"
    );
}

#[tokio::test(start_paused = true)]
async fn a_vanished_transport_ends_the_connection() {
    let service = service(DriverConfig::default(), open_registry());
    let mut peer = connect(&service);
    login(&mut peer, "ada").await;
    peer.to_server.take(); // EOF without a Close
    let record = peer.finished().await;
    assert!(
        matches!(record.cause, CloseCause::TransportLost(_)),
        "{record:?}"
    );
    assert!(service.registry().is_empty());
}

#[tokio::test(start_paused = true)]
async fn g5_a_deadline_another_task_brings_forward_wakes_the_parked_driver() {
    // The driver is parked (nothing to write, the next deadline its keep-alive ping
    // 30 s away) when another task starts a wait that gives up in 1 s. The driver must
    // re-read the deadline and feed the time at 1 s (G5, G6); a driver that kept its
    // old sleep would let the wait give up only at the keep-alive, 30 s later.
    let service = service(DriverConfig::default(), open_registry());
    let mut peer = connect(&service);
    login(&mut peer, "ada").await;
    peer.text("one");
    assert_eq!(
        peer.recv_text().await,
        "one",
        "Ready, and the driver parked"
    );
    let id = service.registry().ids()[0];
    let observer = service.registry().observer(id).unwrap();
    let started = tokio::time::Instant::now();
    let waited = observer
        .wait_closed_until(started.into_std() + Duration::from_secs(1))
        .await;
    assert_eq!(
        waited.unwrap_err(),
        ws_lifecycle::handle::WaitError::TimedOut
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(2),
        "the wait gave up when its timeout passed, not at the keep-alive: {elapsed:?}"
    );
    peer.send(WireFrame::Close(Some(CloseFrame::normal())));
    assert_eq!(peer.recv_close().await, Some(1000));
    peer.finished().await;
}

#[test]
fn an_idle_peer_that_never_answers_our_close_is_waited_for_without_spinning() {
    // The idle timeout closes with 1001 and the peer never answers, so the driver
    // waits out the close timeout. It must sleep through that wait: on tokio's paused
    // clock a driver that spun (a keep-alive deadline left in the past, firing on
    // every poll) would keep the runtime busy, the clock would never advance and the
    // wait would never end. The watchdog turns that into a failure after 10 s of
    // real time.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let record = runtime.block_on(async {
            let mut config = DriverConfig::default();
            config.idle_timeout = Some(Duration::from_secs(10));
            let service = service(config, open_registry());
            let mut peer = connect(&service);
            login(&mut peer, "ada").await;
            assert!(matches!(peer.recv().await, Some(WireFrame::Ping(_))));
            assert_eq!(peer.recv_close().await, Some(1001));
            let closing = tokio::time::Instant::now();
            let record = peer.finished().await; // never answered
            (record, closing.elapsed())
        });
        let _ = done.send(record);
    });
    let (record, waited) = finished
        .recv_timeout(Duration::from_secs(10))
        .expect("the driver slept through the close timeout instead of spinning");
    assert_eq!(
        record.end,
        Some(CloseEnd::TimedOut),
        "G5: the close timeout"
    );
    assert_eq!(waited, Duration::from_secs(5), "the default close timeout");
}

/// G3: a handler's panic closes with 1011 after what it sent before panicking — its
/// last words are written before our Close, not dropped (seen failing when the
/// handler-panic cause did not flush the queue).
#[tokio::test(start_paused = true)]
async fn g3_a_panicking_handlers_last_sends_go_out_before_the_1011() {
    let service = service(DriverConfig::default(), open_registry());
    let mut peer = connect(&service);
    login(&mut peer, "ada").await;
    peer.text("last words");
    assert_eq!(peer.recv_text().await, "last words");
    assert_eq!(peer.recv_close().await, Some(1011));
    peer.send(WireFrame::Close(None));
    assert_eq!(peer.finished().await.cause, CloseCause::HandlerPanic);
}

/// G5: a drain the application starts without a time is stamped on the driver's
/// clock, even a paused one long after the connection was last fed: the peer that
/// answers at once ends the handshake cleanly, the close timeout does not fire early
/// (seen failing with the system clock).
#[tokio::test(start_paused = true)]
async fn g5_a_drain_without_a_time_uses_the_drivers_clock() {
    let mut config = DriverConfig::default();
    config.idle_timeout = None;
    let service = service(config, open_registry());
    let mut peer = connect(&service);
    login(&mut peer, "ada").await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let registry = service.registry().clone();
    let drain = tokio::spawn(async move {
        registry
            .drain(tokio::time::sleep(Duration::from_secs(30)))
            .await
    });
    assert_eq!(peer.recv_close().await, Some(1001));
    peer.send(WireFrame::Close(None));
    let record = peer.finished().await;
    assert_eq!(record.cause, CloseCause::Shutdown);
    assert_eq!(record.end, Some(CloseEnd::Clean), "{record:?}");
    let report = drain.await.unwrap();
    assert_eq!((report.closing, report.dropped), (1, 0));
}
