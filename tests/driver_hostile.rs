//! A hostile peer (issue 14): malformed frames on a real socket get the Close RFC
//! 6455 §7.4.1 asks for (1002, 1007, 1009) on both adapters, recorded with their own
//! cause; a client that pipelines its first messages behind the auth message has
//! them held and handled in order; and no control frame of ours (a Pong, a
//! keep-alive Ping) follows our Close (G3, G4), seen frame by frame on a socket of
//! our own.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Sink, Stream};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use ws_lifecycle::core::{CloseCause, CloseEnd, TransportLoss};
use ws_lifecycle::driver::{AuthRequest, UpgradeRequest, WireFrame};
use ws_lifecycle::{
    CloseCode, CloseFrame, DriverConfig, Handler, Identity, Message, Registry, RegistryConfig,
    Sender, Service, Session,
};

const WAIT: Duration = Duration::from_secs(10);

fn open_registry() -> Registry {
    let registry = Registry::new(RegistryConfig::default());
    registry.open();
    registry
}

/// Any first message authenticates.
async fn anyone(_: AuthRequest) -> Result<Identity, String> {
    Ok(Identity::user("u"))
}

/// Echoes every message, logs it, and closes with 4000 on "bye".
#[derive(Clone, Default)]
struct Echo {
    seen: Arc<Mutex<Vec<String>>>,
}

impl Handler for Echo {
    async fn on_message(
        &self,
        _: &Session,
        sender: &Sender,
        message: Message,
    ) -> Result<(), CloseFrame> {
        let text = message.as_text().unwrap_or("<binary>").to_owned();
        self.seen.lock().unwrap().push(text.clone());
        if text == "bye" {
            return Err(CloseFrame::new(CloseCode::application(4000).unwrap(), "bye").unwrap());
        }
        let _ = sender.send(message);
        Ok(())
    }
}

// ── RFC close codes on a real socket ────────────────────────────────────────

#[cfg(all(feature = "tungstenite", feature = "axum"))]
mod wire {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::mpsc;
    use ws_lifecycle::driver::Closed;

    use super::*;

    /// The limits the size cases break (the socket's; the driver's pre-auth limit
    /// does not apply: the client is authenticated first).
    pub(super) const MAX_FRAME: usize = 1024;
    pub(super) const MAX_MESSAGE: usize = 1536;

    pub(super) fn config() -> DriverConfig {
        let mut config = DriverConfig::default();
        config.socket.max_frame_size = Some(MAX_FRAME);
        config.socket.max_message_size = Some(MAX_MESSAGE);
        config
    }

    #[derive(Clone, Copy, Debug)]
    pub(super) enum Adapter {
        Tungstenite,
        Axum,
    }

    /// A server on 127.0.0.1 whose every connection's `Closed` comes out of the
    /// receiver.
    pub(super) async fn start(
        adapter: Adapter,
        config: DriverConfig,
        echo: Echo,
    ) -> (SocketAddr, mpsc::UnboundedReceiver<Closed>) {
        let service = Arc::new(Service::new(
            open_registry(),
            config,
            |r: AuthRequest| anyone(r),
            echo,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        match adapter {
            Adapter::Tungstenite => {
                tokio::spawn(async move {
                    while let Ok((stream, peer)) = listener.accept().await {
                        let (service, tx) = (service.clone(), tx.clone());
                        tokio::spawn(async move {
                            let closed =
                                ws_lifecycle::tungstenite::accept(stream, Some(peer), &service)
                                    .await
                                    .expect("the upgrade succeeds");
                            let _ = tx.send(closed);
                        });
                    }
                });
            }
            Adapter::Axum => {
                let route = move |request: UpgradeRequest| {
                    let (service, tx) = (service.clone(), tx.clone());
                    async move {
                        let served = ws_lifecycle::axum::serve(request, service).await;
                        let response = served.response;
                        let ended = served.ended;
                        tokio::spawn(async move {
                            if let Some(closed) = ended.await {
                                let _ = tx.send(closed);
                            }
                        });
                        response
                    }
                };
                let app = axum::Router::new().route("/ws", axum::routing::get(route));
                tokio::spawn(axum::serve(listener, app).into_future());
            }
        }
        (addr, rx)
    }

    /// A client writing frames byte by byte, reading the server's as they are.
    pub(super) struct Raw {
        stream: TcpStream,
        buffer: Vec<u8>,
    }

    /// One frame the server wrote: opcode, and for a Close its code and reason.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) enum Got {
        Text(String),
        Close(Option<u16>, String),
        Other(u8),
    }

    impl Raw {
        pub(super) async fn connect(addr: SocketAddr) -> Raw {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            let mut buffer = Vec::new();
            let end = loop {
                if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
                let mut chunk = [0_u8; 1024];
                let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                    .await
                    .unwrap()
                    .unwrap();
                assert!(n > 0, "hung up during the upgrade");
                buffer.extend_from_slice(&chunk[..n]);
            };
            assert!(buffer.starts_with(b"HTTP/1.1 101"), "upgraded");
            buffer.drain(..end);
            Raw { stream, buffer }
        }

        pub(super) async fn write(&mut self, bytes: &[u8]) {
            let _ = self.stream.write_all(bytes).await;
        }

        /// Every frame until the server ends the stream (bounded).
        pub(super) async fn read_to_end(&mut self) -> Vec<Got> {
            let mut frames = Vec::new();
            loop {
                if let Some((frame, used)) = parse(&self.buffer) {
                    self.buffer.drain(..used);
                    frames.push(frame);
                    continue;
                }
                let mut chunk = [0_u8; 4096];
                let read = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                    .await
                    .expect("the server ended the stream in time");
                match read {
                    Ok(0) | Err(_) => return frames,
                    Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                }
            }
        }

        /// The next frame (bounded).
        pub(super) async fn next(&mut self) -> Got {
            loop {
                if let Some((frame, used)) = parse(&self.buffer) {
                    self.buffer.drain(..used);
                    return frame;
                }
                let mut chunk = [0_u8; 4096];
                let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                    .await
                    .unwrap()
                    .unwrap();
                assert!(n > 0, "the server hung up");
                self.buffer.extend_from_slice(&chunk[..n]);
            }
        }
    }

    fn parse(bytes: &[u8]) -> Option<(Got, usize)> {
        let [b0, b1, ..] = *bytes else { return None };
        let (len, at) = match b1 & 0x7f {
            126 => (
                usize::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)),
                4,
            ),
            127 => (
                usize::try_from(u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?)).ok()?,
                10,
            ),
            n => (usize::from(n), 2),
        };
        let payload = bytes.get(at..at + len)?;
        let frame = match b0 & 0x0f {
            0x1 => Got::Text(String::from_utf8_lossy(payload).into_owned()),
            0x8 => Got::Close(
                payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]])),
                String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned(),
            ),
            other => Got::Other(other),
        };
        Some((frame, at + len))
    }

    /// One client frame: `first` is the whole first byte (FIN, RSV, opcode), masked
    /// unless `masked` is false; `claimed` overrides the length in the header.
    pub(super) fn frame(first: u8, payload: &[u8], masked: bool, claimed: Option<u64>) -> Vec<u8> {
        let mask = [0x37_u8, 0xfa, 0x21, 0x3d];
        let bit = if masked { 0x80 } else { 0 };
        let mut out = vec![first];
        let len = claimed.unwrap_or(payload.len() as u64);
        match len {
            0..=125 => out.push(bit | len as u8),
            126..=0xffff => {
                out.push(bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(bit | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        if masked {
            out.extend_from_slice(&mask);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        } else {
            out.extend_from_slice(payload);
        }
        out
    }

    pub(super) const FIN: u8 = 0x80;
    pub(super) const TEXT: u8 = 0x1;
    pub(super) const CLOSE: u8 = 0x8;
    pub(super) const PING: u8 = 0x9;
}

#[cfg(all(feature = "tungstenite", feature = "axum"))]
use wire::*;

/// One malformed input: its name, its bytes, the code the peer must get and the
/// cause recorded.
#[cfg(all(feature = "tungstenite", feature = "axum"))]
fn hostile_cases() -> Vec<(&'static str, Vec<u8>, u16, CloseCause)> {
    let protocol = CloseCause::ProtocolError;
    let utf8 = CloseCause::InvalidPayload;
    let big = CloseCause::MessageTooBig;
    let mut reason_bad = 1000_u16.to_be_bytes().to_vec();
    reason_bad.extend_from_slice(&[0xff, 0xfe]);
    let mut fragments = frame(TEXT, &[b'a'; 1000], true, None); // not final
    fragments.extend(frame(FIN, &[b'b'; 1000], true, None)); // 2000 > MAX_MESSAGE
    vec![
        (
            "reserved bits",
            frame(FIN | 0x40 | TEXT, b"x", true, None),
            1002,
            protocol,
        ),
        (
            "unmasked frame",
            frame(FIN | TEXT, b"x", false, None),
            1002,
            protocol,
        ),
        (
            "unknown data opcode",
            frame(FIN | 0x3, b"x", true, None),
            1002,
            protocol,
        ),
        (
            "unknown control opcode",
            frame(FIN | 0xb, b"", true, None),
            1002,
            protocol,
        ),
        (
            "fragmented control frame",
            frame(PING, b"", true, None),
            1002,
            protocol,
        ),
        (
            "control frame over 125 bytes",
            frame(FIN | PING, &[0; 126], true, None),
            1002,
            protocol,
        ),
        (
            "continuation without start",
            frame(FIN, b"x", true, None),
            1002,
            protocol,
        ),
        (
            "1-byte Close payload",
            frame(FIN | CLOSE, &[3], true, None),
            1002,
            protocol,
        ),
        (
            "invalid UTF-8 in text",
            frame(FIN | TEXT, &[0xff, 0xfe], true, None),
            1007,
            utf8,
        ),
        (
            "invalid UTF-8 in a Close reason",
            frame(FIN | CLOSE, &reason_bad, true, None),
            1007,
            utf8,
        ),
        (
            "frame over the frame limit (at its header)",
            frame(FIN | TEXT, b"", true, Some(MAX_FRAME as u64 + 1)),
            1009,
            big,
        ),
        (
            "message over the message limit (fragments)",
            fragments,
            1009,
            big,
        ),
    ]
}

#[cfg(all(feature = "tungstenite", feature = "axum"))]
async fn each_error_class_closes_with_its_rfc_code(adapter: Adapter) {
    let (addr, mut closed) = start(adapter, config(), Echo::default()).await;
    for (name, bytes, code, cause) in hostile_cases() {
        let mut raw = Raw::connect(addr).await;
        raw.write(&frame(FIN | TEXT, b"auth", true, None)).await;
        raw.write(&frame(FIN | TEXT, b"ready?", true, None)).await;
        assert_eq!(raw.next().await, Got::Text("ready?".into()), "{name}");
        let started = std::time::Instant::now();
        raw.write(&bytes).await;
        let frames = raw.read_to_end().await;
        // Failed at once (RFC 6455 §7.1.7): no wait for an answer it would not read.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{adapter:?}, {name}: ended in {:?}",
            started.elapsed()
        );
        assert!(
            matches!(frames.as_slice(), [Got::Close(Some(c), _)] if *c == code),
            "{adapter:?}, {name}: the peer gets Close {code} and then the end, got {frames:?}"
        );
        let closed = tokio::time::timeout(WAIT, closed.recv())
            .await
            .unwrap()
            .unwrap();
        let record = closed.record;
        assert_eq!(record.cause, cause, "{adapter:?}, {name}: {record:?}");
        assert!(record.close_sent, "{adapter:?}, {name}: {record:?}");
        assert_eq!(record.frame.map(|f| f.code().as_u16()), Some(code));
        assert_eq!(
            record.end,
            Some(CloseEnd::TransportLost(TransportLoss::Error)),
            "{adapter:?}, {name}: ended by us once our Close was written"
        );
    }
}

/// Issue 14 (5): each error class gets its RFC 6455 §7.4.1 code on the wire and its
/// own cause in the record (tokio-tungstenite adapter).
#[cfg(all(feature = "tungstenite", feature = "axum"))]
#[tokio::test]
async fn tungstenite_closes_protocol_errors_with_rfc_codes() {
    each_error_class_closes_with_its_rfc_code(Adapter::Tungstenite).await;
}

/// The same on the axum adapter.
#[cfg(all(feature = "tungstenite", feature = "axum"))]
#[tokio::test]
async fn axum_closes_protocol_errors_with_rfc_codes() {
    each_error_class_closes_with_its_rfc_code(Adapter::Axum).await;
}

/// An invalid close code (1005 may not be sent) is a protocol error: the peer gets
/// 1002 and the record says `protocol_error`, not `peer` (under tungstenite's
/// framing, which answered it itself, the record said `peer`).
#[cfg(all(feature = "tungstenite", feature = "axum"))]
#[tokio::test]
async fn an_invalid_close_code_is_answered_1002_on_both_adapters() {
    for adapter in [Adapter::Tungstenite, Adapter::Axum] {
        let (addr, mut closed) = start(adapter, config(), Echo::default()).await;
        let mut raw = Raw::connect(addr).await;
        raw.write(&frame(FIN | TEXT, b"auth", true, None)).await;
        raw.write(&frame(FIN | CLOSE, &1005_u16.to_be_bytes(), true, None))
            .await;
        let frames = raw.read_to_end().await;
        assert!(
            matches!(frames.as_slice(), [Got::Close(Some(1002), _)]),
            "{adapter:?}: {frames:?}"
        );
        let closed = tokio::time::timeout(WAIT, closed.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            closed.record.cause,
            CloseCause::ProtocolError,
            "{adapter:?}"
        );
    }
}

/// Issue 14 (8): auth plus 9 messages in one write: the 9 are held behind the auth
/// message and handled in order; nothing is closed.
#[cfg(all(feature = "tungstenite", feature = "axum"))]
#[tokio::test]
async fn a_pipelining_client_is_served_in_order() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as TMessage;

    for adapter in [Adapter::Tungstenite, Adapter::Axum] {
        let echo = Echo::default();
        let (addr, _closed) = start(adapter, DriverConfig::default(), echo.clone()).await;
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .unwrap();
        // One write: everything is fed to the socket's buffer, then flushed once.
        ws.feed(TMessage::text("auth")).await.unwrap();
        for i in 1..=9 {
            ws.feed(TMessage::text(format!("say {i}"))).await.unwrap();
        }
        ws.flush().await.unwrap();
        for i in 1..=9 {
            let reply = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
            assert_eq!(
                reply.unwrap().unwrap(),
                TMessage::text(format!("say {i}")),
                "{adapter:?}: in order, not closed"
            );
        }
        let expected: Vec<String> = (1..=9).map(|i| format!("say {i}")).collect();
        assert_eq!(*echo.seen.lock().unwrap(), expected, "{adapter:?}");
        ws.close(None).await.unwrap();
    }
}

// ── control frames after our Close, on a socket of our own ──────────────────

/// The driver's end of an in-memory socket that logs every frame written, in order.
struct Logged {
    inbound: UnboundedReceiver<Result<WireFrame, String>>,
    written: Arc<Mutex<Vec<WireFrame>>>,
    notify: UnboundedSender<()>,
}

impl Stream for Logged {
    type Item = Result<WireFrame, String>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inbound.poll_recv(cx)
    }
}

impl Sink<WireFrame> for Logged {
    type Error = String;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, item: WireFrame) -> Result<(), String> {
        self.written.lock().unwrap().push(item);
        let _ = self.notify.send(());
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
        Poll::Ready(Ok(()))
    }
}

/// Issue 14 (9), G3/G4: our Close is the last frame we write, control frames
/// included. The handler closes on "bye"; the peer, not having seen our Close yet,
/// pings (the driver answers pings on this socket: `answer_pings`), and stays
/// silent past the keep-alive's ping time before it answers the Close. Neither the
/// Pong nor the keep-alive Ping may follow our Close. Fails when `control_due`'s
/// phase check in `src/driver/pump.rs` is removed.
#[tokio::test(start_paused = true)]
async fn no_control_frame_follows_our_close_g3() {
    let mut config = DriverConfig::default();
    assert!(config.answer_pings);
    config.idle_timeout = Some(Duration::from_secs(4)); // keep-alive ping after 2 s
    config.connection.close_timeout = Duration::from_secs(10);
    let service = Arc::new(Service::new(
        open_registry(),
        config,
        |r: AuthRequest| anyone(r),
        Echo::default(),
    ));
    let (to_server, inbound) = unbounded_channel();
    let (notify, mut wrote) = unbounded_channel();
    let written = Arc::new(Mutex::new(Vec::new()));
    let socket = Logged {
        inbound,
        written: written.clone(),
        notify,
    };
    let task = tokio::spawn(async move { service.run(socket, UpgradeRequest::default()).await });
    let send = |frame: WireFrame| to_server.send(Ok(frame)).unwrap();
    let is_close = |frames: &[WireFrame]| frames.iter().any(|f| matches!(f, WireFrame::Close(_)));
    send(WireFrame::Message(Message::text("auth")));
    send(WireFrame::Message(Message::text("bye")));
    while !is_close(&written.lock().unwrap()) {
        tokio::time::timeout(WAIT, wrote.recv()).await.unwrap();
    }
    // Our Close is out; the peer has not seen it and pings.
    send(WireFrame::Ping(b"still there?".to_vec()));
    // Past the keep-alive's ping time (the close timeout is further off).
    tokio::time::sleep(Duration::from_secs(3)).await;
    send(WireFrame::Close(Some(CloseFrame::normal())));
    let closed = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .unwrap()
        .unwrap();
    let frames = written.lock().unwrap().clone();
    let close_at = frames
        .iter()
        .position(|f| matches!(f, WireFrame::Close(_)))
        .unwrap();
    assert_eq!(
        close_at,
        frames.len() - 1,
        "G3: nothing follows our Close, control frames included: {frames:?}"
    );
    assert_eq!(
        frames
            .iter()
            .filter(|f| matches!(f, WireFrame::Close(_)))
            .count(),
        1,
        "G4: one Close"
    );
    assert_eq!(closed.record.cause, CloseCause::Local);
    assert!(closed.record.is_clean(), "{:?}", closed.record);
}

// ── the failure path on a socket of our own, and its log ────────────────────

/// A socket error of our own that the driver must answer with 1002.
#[derive(Debug)]
struct BadFrame;

impl std::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a bad frame")
    }
}

impl ws_lifecycle::driver::SocketError for BadFrame {
    fn failure(&self) -> Option<ws_lifecycle::core::CrateClose> {
        Some(ws_lifecycle::core::CrateClose::ProtocolError)
    }
}

/// Like `Logged`, with `BadFrame` errors.
struct Failing {
    inbound: UnboundedReceiver<Result<WireFrame, BadFrame>>,
    written: Arc<Mutex<Vec<WireFrame>>>,
}

impl Stream for Failing {
    type Item = Result<WireFrame, BadFrame>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inbound.poll_recv(cx)
    }
}

impl Sink<WireFrame> for Failing {
    type Error = BadFrame;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), BadFrame>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, item: WireFrame) -> Result<(), BadFrame> {
        self.written.lock().unwrap().push(item);
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), BadFrame>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), BadFrame>> {
        Poll::Ready(Ok(()))
    }
}

/// One event: its level and its fields, as text.
type Captured = (tracing::Level, Vec<(String, String)>);

/// Every event, in order.
#[derive(Default, Clone)]
struct Events(Arc<Mutex<Vec<Captured>>>);

struct Fields(Vec<(String, String)>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl tracing::Subscriber for Events {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        let level = *event.metadata().level();
        self.0.lock().unwrap().push((level, fields.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Issue 14 (5) at the pump: a read error the socket classifies as a protocol
/// failure is answered with its Close (1002), recorded with its own cause (not
/// `transport_lost`), logged at debug with its kind; the transport is ended once the
/// Close is written, without waiting for an answer (nothing more is read).
#[tokio::test(start_paused = true)]
async fn a_protocol_failure_is_closed_recorded_and_logged_with_its_kind() {
    let events = Events::default();
    let _guard = tracing::subscriber::set_default(events.clone());
    let service = Arc::new(Service::new(
        open_registry(),
        DriverConfig::default(),
        |r: AuthRequest| anyone(r),
        Echo::default(),
    ));
    let (to_server, inbound) = unbounded_channel();
    let written = Arc::new(Mutex::new(Vec::new()));
    let socket = Failing {
        inbound,
        written: written.clone(),
    };
    let started = tokio::time::Instant::now();
    let task = tokio::spawn(async move { service.run(socket, UpgradeRequest::default()).await });
    to_server
        .send(Ok(WireFrame::Message(Message::text("auth"))))
        .unwrap();
    to_server.send(Err(BadFrame)).unwrap();
    // Never answered, and the channel stays open: only ending the transport at once
    // finishes the run before the close timeout.
    let closed = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no wait for an answer: {:?}",
        started.elapsed()
    );
    let frames = written.lock().unwrap().clone();
    assert!(
        matches!(frames.as_slice(), [WireFrame::Close(Some(f))] if f.code().as_u16() == 1002),
        "{frames:?}"
    );
    assert_eq!(closed.record.cause, CloseCause::ProtocolError);
    assert_eq!(
        closed.record.end,
        Some(CloseEnd::TransportLost(TransportLoss::Error))
    );
    let logged = events.0.lock().unwrap().clone();
    assert!(
        logged.iter().any(|(level, fields)| {
            *level == tracing::Level::DEBUG
                && fields.contains(&("kind".to_owned(), "protocol_error".to_owned()))
                && fields.contains(&("error".to_owned(), "a bad frame".to_owned()))
        }),
        "logged at debug with its kind: {logged:?}"
    );
    drop(to_server);
}
