//! The example chat server's HTTP layer and admission caps over real sockets
//! (127.0.0.1, OS-assigned ports, every wait bounded): the header-read timeout (a
//! silent client, half a request head, an idle keep-alive connection), the cap on
//! connections that have not upgraded (`--max-pending`), the cap on unauthenticated
//! WebSockets apart from `--max-conns`, and shutdown with half-open requests.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, WAIT, Ws, chat, json, login, login_at_upgrade, next, send, try_connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;

/// Default arguments with a header timeout of `header_timeout_ms`.
fn args(header_timeout_ms: u64) -> chat::Args {
    chat::Args {
        header_timeout_ms,
        auth_timeout_ms: 10_000,
        ..chat::Args::default()
    }
}

/// Reads `stream` until the server ends it (EOF or reset), bounded by `within`;
/// returns what was read, or `None` if it was still open then.
async fn until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut chunk = [0_u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    Some(bytes)
}

/// Opens a TCP connection to the server and writes `bytes` (maybe none).
async fn open(server: &Server, bytes: &[u8]) -> TcpStream {
    let mut stream = tokio::time::timeout(WAIT, TcpStream::connect(server.addr))
        .await
        .expect("connected in time")
        .unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Polls `/stats` until `done` holds on it (bounded); returns the last snapshot.
async fn stats_until(server: &Server, done: impl Fn(&Value) -> bool) -> Value {
    server.until(done).await
}

/// A client that connects and sends nothing, one that sends half a request head, and
/// one idle on a keep-alive connection after `GET /stats` are each closed once the
/// header timeout has passed, not before; `/stats` counts them as pending meanwhile
/// and as header timeouts after.
#[tokio::test]
async fn silent_half_sent_and_idle_keep_alive_connections_are_closed_at_the_header_timeout() {
    let timeout = Duration::from_millis(1000);
    let server = Server::start(args(timeout.as_millis() as u64)).await;
    let started = Instant::now();
    let mut silent = open(&server, b"").await;
    let mut half = open(&server, b"GET /stats HTTP/1.1\r\nHost: chat\r\nAccept: */").await;
    // A whole request, keep-alive (HTTP/1.1's default), answered; then nothing.
    let mut idle = open(&server, b"GET /stats HTTP/1.1\r\nHost: chat\r\n\r\n").await;
    let mut answer = Vec::new();
    let mut chunk = [0_u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") || !answer.ends_with(b"}") {
        let n = tokio::time::timeout(WAIT, idle.read(&mut chunk))
            .await
            .expect("answered in time")
            .unwrap();
        assert!(n > 0, "answered before the end");
        answer.extend_from_slice(&chunk[..n]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let answered = Instant::now();
    // Pending meanwhile: the three, and the `/stats` request asking.
    let stats = server.stats().await;
    assert!(
        started.elapsed() < timeout,
        "stats read in time: {:?}",
        started.elapsed()
    );
    assert_eq!(stats["http"]["pending"], 4, "{stats}");
    assert_eq!(stats["http"]["header_timeouts"], 0, "{stats}");
    for (name, stream, since) in [
        ("silent", &mut silent, started),
        ("half a head", &mut half, started),
        ("idle keep-alive", &mut idle, answered),
    ] {
        let rest = until_closed(stream, timeout + Duration::from_secs(2)).await;
        let elapsed = since.elapsed();
        let rest = rest.unwrap_or_else(|| panic!("{name}: still open after {elapsed:?}"));
        eprintln!(
            "{name}: closed after {elapsed:?}, having been sent {:?}",
            String::from_utf8_lossy(&rest)
        );
        assert!(
            elapsed >= timeout - Duration::from_millis(50),
            "{name}: closed early, {elapsed:?}"
        );
    }
    let stats = stats_until(&server, |s| s["http"]["header_timeouts"] == 3).await;
    assert_eq!(stats["http"]["header_timeouts"], 3, "{stats}");
    assert_eq!(
        stats["http"]["pending"], 1,
        "only the `/stats` request: {stats}"
    );
    server.shutdown().await;
}

/// A request head over 16 KiB is answered 431 and closed, not buffered on.
#[tokio::test]
async fn a_request_head_over_16_kib_is_answered_431() {
    let server = Server::start(args(5000)).await;
    let head = format!(
        "GET /stats HTTP/1.1\r\nHost: chat\r\nX-Padding: {}\r\n\r\n",
        "x".repeat(20 * 1024)
    );
    let mut stream = open(&server, head.as_bytes()).await;
    let answer = until_closed(&mut stream, WAIT)
        .await
        .expect("closed in time");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // A head just under it is answered.
    let head = format!(
        "GET /stats HTTP/1.1\r\nHost: chat\r\nConnection: close\r\nX-Padding: {}\r\n\r\n",
        "x".repeat(12 * 1024)
    );
    let mut stream = open(&server, head.as_bytes()).await;
    let answer = until_closed(&mut stream, WAIT)
        .await
        .expect("closed in time");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    server.shutdown().await;
}

/// Beyond `--max-pending` connections that have not upgraded, a new connection is
/// closed at once (answered 503 when the bytes fit), long before any timeout;
/// clients already upgraded chat on, upgraded ones do not count, and once the
/// squatters' header timeout has passed a new client connects.
#[tokio::test]
async fn connections_beyond_max_pending_are_refused_at_once_and_the_chat_goes_on() {
    let timeout = Duration::from_millis(1500);
    let server = Server::start(chat::Args {
        max_pending: 20,
        ..args(timeout.as_millis() as u64)
    })
    .await;
    let mut ada = login(&server, "ada").await; // upgraded: not pending
    let mut squatters = Vec::new();
    for _ in 0..15 {
        squatters.push(open(&server, b"GET / HTTP/1.1\r\n").await);
    }
    // Under the cap, a legitimate client still connects.
    let mut bob = login_at_upgrade(&server, "bob").await;
    for _ in 15..20 {
        squatters.push(open(&server, b"").await);
    }
    // Wait until the server has accepted all twenty.
    let deadline = Instant::now() + WAIT;
    loop {
        // Not through `/stats`: the cap is full, it would be refused too.
        let probe = b"GET /stats HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n";
        let mut probe = open(&server, probe).await;
        let answer = until_closed(&mut probe, Duration::from_secs(1))
            .await
            .expect("answered, or refused, at once");
        let answer = String::from_utf8_lossy(&answer).into_owned();
        if answer.is_empty() || answer.starts_with("HTTP/1.1 503") {
            break;
        }
        assert!(Instant::now() < deadline, "the cap never filled: {answer}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let mut refused = 0;
    for _ in 0..10 {
        let mut extra = open(&server, b"GET /stats HTTP/1.1\r\nHost: c\r\n\r\n").await;
        let answer = until_closed(&mut extra, Duration::from_secs(1))
            .await
            .expect("closed at once");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
            "{answer}"
        );
        refused += 1;
    }
    assert!(
        started.elapsed() < timeout,
        "refused before any timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(refused, 10);
    // The upgraded clients chat on.
    send(&mut ada, json!({"type": "say", "text": "still here"})).await;
    for ws in [&mut ada, &mut bob] {
        assert_eq!(json(ws).await["text"], "still here");
    }
    // The squatters are closed at their header timeout; then anyone connects.
    for squatter in &mut squatters {
        assert!(
            until_closed(squatter, timeout + Duration::from_secs(2))
                .await
                .is_some()
        );
    }
    let _cy = login(&server, "cy").await;
    let stats = server.stats().await;
    assert!(
        stats["http"]["refused_pending"].as_u64().unwrap() >= 10,
        "{stats}"
    );
    assert_eq!(stats["http"]["pending"], 1, "{stats}");
    assert_eq!(stats["http"]["max_pending"], 20, "{stats}");
    server.shutdown().await;
}

/// Upgraded and never authenticating: at `--max-unauthenticated` of them the next
/// one is answered 503 at the upgrade, and none of them counts against `--max-conns`,
/// which counts authenticated connections only (one more is refused `server full`).
#[tokio::test]
async fn unauthenticated_squatters_are_capped_apart_from_max_conns() {
    let server = Server::start(chat::Args {
        max_conns: Some(5),
        max_unauthenticated: 10,
        ..args(5000)
    })
    .await;
    let mut squatters = Vec::new();
    for _ in 0..10 {
        squatters.push(support::connect(&server).await);
    }
    match try_connect(&server.url()).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!(
            "the 11th unauthenticated client got {:?}",
            other.map(|_| ())
        ),
    }
    // Five authenticated users, both ways, while the ten squat.
    let mut users: Vec<Ws> = Vec::new();
    for user in ["u0", "u1", "u2"] {
        users.push(login_at_upgrade(&server, user).await);
    }
    // A first-message client needs an unauthenticated place for its handshake:
    // free one.
    drop(squatters.pop());
    stats_until(&server, |s| s["admission"]["unauthenticated"] == 9).await;
    for user in ["u3", "u4"] {
        users.push(login(&server, user).await);
    }
    let stats = server.stats().await;
    assert_eq!(stats["admission"]["authenticated"], 5, "{stats}");
    assert_eq!(stats["admission"]["unauthenticated"], 9, "{stats}");
    assert_eq!(stats["by_phase"]["accepted"], 9, "{stats}");
    assert_eq!(stats["admission"]["refused_unauthenticated"], 1, "{stats}");
    // A sixth authenticated connection is one too many.
    match try_connect(&server.url_with("token=u5:secret")).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("the 6th user got {:?}", other.map(|_| ())),
    }
    assert_eq!(server.stats().await["admission"]["refused_full"], 1);
    // The users chat.
    send(&mut users[0], json!({"type": "say", "text": "hi"})).await;
    for ws in &mut users {
        assert_eq!(json(ws).await["text"], "hi");
    }
    drop(squatters);
    drop(users);
    server.until_empty().await;
    // The count follows each connection's end, a moment after it is unlisted.
    let stats = stats_until(&server, |s| s["admission"]["unauthenticated"] == 0).await;
    assert_eq!(stats["admission"]["unauthenticated"], 0, "{stats}");
    assert_eq!(stats["admission"]["authenticated"], 0, "{stats}");
    server.shutdown().await;
}

/// Finding 7 replayed: 50 clients that never authenticate and reconnect whenever
/// closed, against `--max-conns 40`; 40 legitimate users (by message) all get in.
#[tokio::test]
async fn reconnecting_squatters_do_not_lock_out_legitimate_users() {
    let server = Server::start(chat::Args {
        max_conns: Some(40),
        auth_timeout_ms: 300,
        ..chat::Args::default()
    })
    .await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut squatters = Vec::new();
    for _ in 0..50 {
        let (url, stop) = (server.url(), stop.clone());
        squatters.push(tokio::spawn(async move {
            let mut cycles = 0_u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(mut ws) = try_connect(&url).await {
                    cycles += 1;
                    let _ = next(&mut ws).await; // the 1008 at the auth timeout
                }
            }
            cycles
        }));
    }
    server
        .until(|s| s["by_phase"]["accepted"].as_u64() >= Some(40))
        .await;
    let mut users = Vec::new();
    let started = Instant::now();
    for i in 0..40 {
        users.push(login(&server, &format!("user{i}")).await);
        // Over about 1.2 s: the squatters are cut at their auth timeout and come
        // back a few times meanwhile.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    eprintln!("40 logins among 50 squatters in {:?}", started.elapsed());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut cycles = 0;
    for squatter in squatters {
        cycles += tokio::time::timeout(WAIT, squatter).await.unwrap().unwrap();
    }
    eprintln!("the squatters connected {cycles} times");
    assert!(cycles >= 100, "the squatters came back: {cycles}");
    let stats = server.stats().await;
    assert_eq!(stats["admission"]["authenticated"], 40, "{stats}");
    assert_eq!(
        stats["totals"]["refused"],
        json!({}),
        "nobody refused: {stats}"
    );
    drop(users);
    server.until_empty().await;
    server.shutdown().await;
}

/// Shutdown with 200 half-open requests (and a chatting client) is over well
/// within the drain's bound: the half-open connections are closed at once.
#[tokio::test]
async fn shutdown_with_200_half_open_requests_is_within_the_drain_bound() {
    let server = Server::start(args(30_000)).await;
    let mut ada = login(&server, "ada").await;
    let mut half_open = Vec::new();
    for i in 0..200 {
        let bytes: &[u8] = match i % 3 {
            0 => b"",
            1 => b"GET /ws HTTP/1.1\r\nHost: chat\r\nUpgrade: websocket\r\n",
            _ => b"GET /stats HTTP/1.1\r\n",
        };
        half_open.push(open(&server, bytes).await);
    }
    stats_until(&server, |s| s["http"]["pending"] == 201).await;
    let started = Instant::now();
    let stopped = tokio::spawn(server.shutdown());
    assert!(matches!(
        next(&mut ada).await,
        support::Got::Close(Some(1001))
    ));
    assert!(matches!(next(&mut ada).await, support::Got::End));
    let report = stopped.await.unwrap();
    let elapsed = started.elapsed();
    eprintln!("shutdown with 200 half-open requests took {elapsed:?}: {report:?}");
    // The documented bound is `DRAIN_TIMEOUT`; a connection with no request in
    // flight is closed at once, so this one is far below it.
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < chat::DRAIN_TIMEOUT, "{elapsed:?}");
    assert_eq!((report.closing, report.closed), (1, 1), "{report:?}");
    for stream in &mut half_open {
        assert!(until_closed(stream, Duration::from_secs(1)).await.is_some());
    }
}

/// The process raises its open-files soft limit to the hard one at start and says
/// so on its second line (started here with the soft limit lowered to 256). The
/// binary is the one `cargo test` builds (`target/<profile>/examples/chat`, see
/// `support::chat_binary`; `cargo test --test chat_http` alone does not rebuild it).
#[cfg(unix)]
#[tokio::test]
async fn the_open_files_soft_limit_is_raised_to_the_hard_one_at_start() {
    use tokio::io::AsyncBufReadExt;
    let binary = support::chat_binary();
    let script = format!(
        "ulimit -Sn 256 && ulimit -Hn && exec {} --addr 127.0.0.1:0",
        binary.display()
    );
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("printed in time")
            .unwrap()
            .unwrap()
    };
    let hard = next_line().await;
    let listening = next_line().await;
    assert!(
        listening.starts_with("chat listening on http://"),
        "{listening}"
    );
    let limit = next_line().await;
    eprintln!("hard limit {hard}; the chat printed {limit:?}");
    let expected = match hard.as_str() {
        "unlimited" => None,
        hard => Some(format!("open files: up to {hard}")),
    };
    match expected {
        Some(expected) => assert_eq!(limit, expected),
        None => assert!(limit.starts_with("open files: up to "), "{limit}"),
    }
    child.kill().await.unwrap();
}
