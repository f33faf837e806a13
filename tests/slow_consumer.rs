//! Slow consumers over a real socket (the tungstenite adapter on 127.0.0.1): the
//! outbox's byte budget ([`Config::outbox_bytes`]) and the driver's write-progress
//! bound ([`DriverConfig::stall_timeout`]) close a client that does not read with
//! 1013, and neither cuts a client that reads a little slower than a burst.
//!
//! [`Config::outbox_bytes`]: ws_lifecycle::Config::outbox_bytes
#![cfg(feature = "tungstenite")]

#[path = "support/tungstenite_server.rs"]
mod tungstenite_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as TMessage;
use ws_lifecycle::core::{CloseCause, OverflowPolicy};
use ws_lifecycle::driver::{AuthRequest, Closed};
use ws_lifecycle::{
    CloseFrame, DriverConfig, Handler, Identity, Message, Registry, RegistryConfig, Sender,
    Service, Session,
};

/// What the handler reports: the index of the first refused send of a burst, and the
/// close record with when it came.
#[derive(Debug)]
enum Report {
    Refused(usize),
    /// The numbers of the messages handed back unsent, in order (sent just before
    /// `Closed`).
    Unsent(Vec<usize>),
    Closed(CloseCause, Option<u16>, Instant),
}

/// On "burst N SIZE": sends N messages of SIZE bytes at once (numbered, so the
/// client can check the order), reporting the first the outbox refused.
struct Burst(mpsc::UnboundedSender<Report>);

impl Handler for Burst {
    async fn on_message(
        &self,
        _: &Session,
        sender: &Sender,
        message: Message,
    ) -> Result<(), CloseFrame> {
        let text = message.as_text().unwrap_or("").to_owned();
        let mut words = text.split(' ').skip(1).map(|w| w.parse::<usize>().unwrap());
        let (n, size) = (words.next().unwrap(), words.next().unwrap());
        for i in 0..n {
            let mut body = format!("{i:08}");
            body.extend(std::iter::repeat_n('x', size.saturating_sub(8)));
            if sender.send(Message::text(body)).is_err() {
                let _ = self.0.send(Report::Refused(i));
                break;
            }
        }
        Ok(())
    }

    async fn on_close(&self, _: &Session, closed: &Closed) {
        let numbers = closed.unsent.iter();
        let numbers = numbers.map(|m| m.as_text().unwrap()[..8].parse().unwrap());
        let _ = self.0.send(Report::Unsent(numbers.collect()));
        let code = closed.record.frame.as_ref().map(|f| u16::from(f.code()));
        let _ = self
            .0
            .send(Report::Closed(closed.record.cause, code, Instant::now()));
    }
}

async fn anyone(_: AuthRequest) -> Result<Identity, String> {
    Ok(Identity::user("u"))
}

/// A server with `config` (the first message authenticates); its reports.
async fn start(config: DriverConfig) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Report>) {
    let registry = Registry::new(RegistryConfig::default());
    registry.open();
    let (tx, rx) = mpsc::unbounded_channel();
    let service = Arc::new(Service::new(registry, config, anyone, Burst(tx)));
    let addr = tungstenite_server::serve(service).await;
    (addr, rx)
}

fn slow_consumer_config() -> DriverConfig {
    let mut config = DriverConfig::default();
    config.connection.overflow = OverflowPolicy::slow_consumer();
    config.connection.close_timeout = Duration::from_secs(1);
    config
}

async fn closed(rx: &mut mpsc::UnboundedReceiver<Report>, within: Duration) -> Report {
    loop {
        match tokio::time::timeout(within, rx.recv()).await {
            Ok(Some(report @ Report::Closed(..))) => return report,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the server stopped"),
            Err(_) => panic!("not closed within {within:?}"),
        }
    }
}

/// Finding 4: a client that never reads but keeps pinging (so it is always "heard")
/// is closed 1013 once its socket has accepted nothing for `stall_timeout`, even
/// though the outbox is far from its budget.
#[tokio::test]
async fn a_pinging_client_that_never_reads_is_closed_1013_on_a_write_stall() {
    let stall = Duration::from_millis(500);
    let mut config = slow_consumer_config();
    config.stall_timeout = Some(stall);
    // Budgets out of the way: only the stall can close it.
    config.connection.outbox_bytes = 256 << 20;
    let (addr, mut rx) = start(config).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    ws.send(TMessage::text("auth")).await.unwrap();
    // 64 MiB: far more than loopback's socket buffers hold.
    ws.send(TMessage::text("burst 512 131072")).await.unwrap();
    let started = Instant::now();
    let pinging = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if ws.send(TMessage::Ping(Vec::new().into())).await.is_err() {
                return;
            }
        }
    });
    // The stall, the close handshake's timeout (1 s) for a Close that cannot be
    // written either, and a margin.
    let Report::Closed(cause, code, at) = closed(&mut rx, Duration::from_secs(8)).await else {
        unreachable!()
    };
    pinging.abort();
    assert_eq!((cause, code), (CloseCause::SlowConsumer, Some(1013)));
    let took = at - started;
    assert!(
        took >= stall && took < stall + Duration::from_secs(1) + Duration::from_secs(2),
        "closed after {took:?}"
    );
}

/// Finding 4: a client that reads continuously, a little slower than a burst of
/// 5 000 small messages (more than the old count bound of 1024), is never cut and
/// gets every message in order.
#[tokio::test]
async fn a_reading_client_gets_a_burst_of_5000_in_order() {
    let mut config = slow_consumer_config();
    config.stall_timeout = Some(Duration::from_secs(2));
    let (addr, mut rx) = start(config).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    ws.send(TMessage::text("auth")).await.unwrap();
    ws.send(TMessage::text("burst 5000 100")).await.unwrap();
    for i in 0..5000usize {
        if i % 250 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("no error");
        let TMessage::Text(text) = message else {
            panic!("message {i}: expected text, got {message:?}")
        };
        assert_eq!(text.len(), 100);
        assert_eq!(&text[..8], format!("{i:08}"), "in order");
    }
    assert!(rx.try_recv().is_err(), "nothing refused, not closed");
    ws.close(None).await.unwrap();
}

/// Finding 3/4: the outbox is bounded in bytes: a non-reading client sent 20 × 200 KiB
/// is closed 1013 as the queued bytes pass 1 MiB — at the sixth message, not after
/// 1024.
#[tokio::test]
async fn a_non_reader_is_closed_1013_once_the_outbox_passes_1_mib() {
    let mut config = slow_consumer_config();
    config.stall_timeout = None; // the byte budget alone
    let (addr, mut rx) = start(config).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    ws.send(TMessage::text("auth")).await.unwrap();
    ws.send(TMessage::text("burst 20 204800")).await.unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("refused in time");
    // 5 × 200 KiB = 1000 KiB fit the default 1 MiB; the sixth does not.
    assert!(matches!(refused, Some(Report::Refused(5))), "{refused:?}");
    let Report::Closed(cause, code, _) = closed(&mut rx, Duration::from_secs(5)).await else {
        unreachable!()
    };
    assert_eq!((cause, code), (CloseCause::SlowConsumer, Some(1013)));
    drop(ws);
}

/// G6 with the byte budget: a `send_async` whose message does not fit the bytes
/// left (the count bound far away) waits, and is woken by the write that frees
/// enough bytes — not only by the outbox going from full to not full in count.
#[tokio::test]
async fn send_async_waits_for_bytes_and_is_woken_by_the_write_that_frees_them_g6() {
    use ws_lifecycle::{Config, Connection, ConnectionId, Frame};
    let now = Instant::now();
    let mut config = Config::default();
    config.outbox_bytes = 1000;
    let conn = Connection::new(ConnectionId::new(1), config)
        .accept(now)
        .unwrap();
    let conn = conn.authenticate(None, now).unwrap().ready(now).unwrap();
    let (sender, transport) = (conn.sender(), conn.transport());
    let big = |n: u8| Message::binary(vec![n; 400]);
    sender.send(big(1)).unwrap();
    sender.send(big(2)).unwrap();
    let waiting = tokio::spawn(sender.send_async(big(3)));
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "800 + 400 bytes > 1000: it waits");
    assert_eq!(transport.next_frame(now), Some(Frame::Message(big(1))));
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("woken by the write that freed 400 bytes (G6)")
        .unwrap()
        .unwrap();
    assert_eq!(transport.next_frame(now), Some(Frame::Message(big(2))));
    assert_eq!(transport.next_frame(now), Some(Frame::Message(big(3))));
    drop(conn);
}

/// A client that reads one large message slowly but steadily is not a slow
/// consumer: the stall timeout counts from the last byte the socket wrote, not from
/// the last frame it finished. One 8 MiB message to a client with a small receive
/// window, read at about 3 MB/s (≈ 3 s), under a 1 s stall timeout: before the
/// framing reported partial writes to the pump, this was closed 1013 after ≈ 1 s.
#[tokio::test]
async fn a_steady_reader_of_one_large_message_is_not_cut_by_the_stall_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SIZE: usize = 8 << 20;
    let mut config = slow_consumer_config();
    config.stall_timeout = Some(Duration::from_secs(1));
    let (addr, mut rx) = start(config).await;
    let (mut stream, after_head) = upgraded(addr, 16 * 1024).await;
    let mut received = after_head.len();
    let mut buffer = vec![0_u8; 16 * 1024];
    let frame = client_text;
    stream.write_all(&frame("auth")).await.unwrap();
    stream
        .write_all(&frame(&format!("burst 1 {SIZE}")))
        .await
        .unwrap();
    // The frame's 10-byte header and the payload, slowly.
    let expected = SIZE + 10;
    let started = Instant::now();
    while received < expected {
        assert!(started.elapsed() < Duration::from_secs(30), "read in time");
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("the server keeps writing")
            .unwrap();
        assert!(
            n > 0,
            "the server closed after {received} bytes: {:?}",
            rx.try_recv()
        );
        received += n;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    assert!(
        took > Duration::from_secs(1),
        "slower than the stall timeout: {took:?}"
    );
    assert!(
        !matches!(rx.try_recv(), Ok(Report::Closed(..))),
        "not closed while reading"
    );
}

/// G3 end to end through the socket: a client that stops reading is cut (stall,
/// then the close timeout) while messages still wait in the socket's own queue.
/// Every message is either read whole by the client afterwards (it reads its
/// buffer to the end once the server has gone) or handed back in `Closed::unsent`
/// — exactly once, in order, none lost in between. Under tungstenite's framing the
/// frames in its write buffer were lost (and the test fails with the hand-back
/// removed from the pump).
#[tokio::test]
async fn messages_left_in_the_socket_come_back_in_unsent_g3() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const COUNT: usize = 160; // 10 MiB: more than the kernel buffers on loopback
    const SIZE: usize = 64 * 1024;
    let mut config = slow_consumer_config();
    config.stall_timeout = Some(Duration::from_millis(300));
    config.connection.outbox_bytes = 64 << 20;
    let (addr, mut rx) = start(config).await;
    let (mut stream, mut bytes) = upgraded(addr, 4 * 1024).await;
    let mut chunk = vec![0_u8; 4096];
    let frame = client_text;
    stream.write_all(&frame("auth")).await.unwrap();
    stream
        .write_all(&frame(&format!("burst {COUNT} {SIZE}")))
        .await
        .unwrap();
    // Not reading: the server stalls, closes 1013, and cuts the connection once the
    // close timeout (1 s) passes with the Close still stuck behind the data.
    let unsent = loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(Report::Unsent(unsent))) => break unsent,
            Ok(Some(_)) => {}
            other => panic!("no close: {other:?}"),
        }
    };
    // Now read everything the server wrote, to the end of the stream.
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("the stream ends")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    // The whole text frames received, by number.
    let mut received = Vec::new();
    let mut at = 0;
    while bytes.len() >= at + 2 {
        let (length, header) = match bytes[at + 1] & 0x7F {
            126 if bytes.len() >= at + 4 => (
                usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]])),
                4,
            ),
            127 if bytes.len() >= at + 10 => (
                u64::from_be_bytes(bytes[at + 2..at + 10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => break,
            n => (usize::from(n), 2),
        };
        if bytes.len() < at + header + length {
            break; // a frame cut short: not received
        }
        if bytes[at] & 0x0F == 0x1 {
            let payload = &bytes[at + header..at + header + length];
            received.push(
                std::str::from_utf8(&payload[..8])
                    .unwrap()
                    .parse::<usize>()
                    .unwrap(),
            );
        }
        at += header + length;
    }
    assert!(!unsent.is_empty(), "the cut left messages unwritten");
    let ledger: Vec<usize> = received.iter().chain(&unsent).copied().collect();
    assert_eq!(
        ledger,
        (0..COUNT).collect::<Vec<_>>(),
        "received {received:?}, handed back {unsent:?}"
    );
}

/// A raw client connected to `addr` with a receive buffer of about
/// `receive_buffer` bytes (a small window: the server's writes stall early), its
/// upgrade answered 101; returns the stream and the bytes read after the answer.
async fn upgraded(
    addr: std::net::SocketAddr,
    receive_buffer: u32,
) -> (tokio::net::TcpStream, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(receive_buffer).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let head = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The 101 first (RFC 6455 §4.1: nothing before the answer).
    let mut answer = Vec::new();
    let mut chunk = [0_u8; 4096];
    let end = loop {
        if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("answered in time")
            .unwrap();
        assert!(n > 0, "the server hung up during the upgrade");
        answer.extend_from_slice(&chunk[..n]);
    };
    assert!(
        answer.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    (stream, answer.split_off(end))
}

/// A masked client text frame (mask 0: the payload as it is; under 126 bytes).
fn client_text(text: &str) -> Vec<u8> {
    let mut bytes = vec![0x81, 0x80 | text.len() as u8, 0, 0, 0, 0];
    bytes.extend_from_slice(text.as_bytes());
    bytes
}
