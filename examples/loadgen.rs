//! A load generator for the example chat protocol (`docs/example-protocol.md`), usable
//! against `examples/chat.rs` and `examples/axum_baseline.rs` alike
//! (`docs/performance.md`, benchmark 5).
//!
//! ```sh
//! cargo run --release --example loadgen -- --url ws://127.0.0.1:8080/ws \
//!     --clients 100 --messages 200 --payload 64 --duration 30 --window 4
//! ```
//!
//! 1. **Connect**: every client connects (at most `--connect-concurrency` at once),
//!    authenticates as `load<i>` and waits for `{"type":"ready"}`; the time from the
//!    start of the TCP connect to that message is its *connect-to-ready* latency.
//! 2. **Load**: once all are connected, each sends `--messages` `say` messages of
//!    `--payload` bytes, with at most `--window` of its own messages not yet echoed
//!    back to it in flight. That keeps `clients × window` messages in flight across
//!    the server, under its per-connection outbox (1024 by default; the generator
//!    warns otherwise) — but it cannot bound a client that reads more slowly than the
//!    others: the chat closes such a client with 1013 "slow consumer" (counted under
//!    errors by close code), the baseline's channel lags past it (*missing
//!    deliveries*). Every client reads everything; each `said` it receives is one
//!    *delivery*. The phase ends when every client has had all its echoes, or at
//!    `--duration`.
//! 3. **Drain**: clients read until every expected delivery arrived or nothing came for
//!    a second, then close with 1000.
//!
//! Progress is printed every second; at the end a summary: deliveries per second,
//! connect-to-ready and echo (say → own `said`) latency percentiles, deliveries
//! missing, and errors by kind and by the close code the server sent.
//! `--json PATH` also writes the summary as JSON (read by `scripts/bench.sh`).
//! Every network wait is bounded by `--timeout`; the run always ends.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{Semaphore, watch};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The command line.
#[derive(Debug, Clone)]
struct Args {
    url: String,
    clients: usize,
    messages: usize,
    payload: usize,
    duration: Duration,
    secret: String,
    window: usize,
    connect_concurrency: usize,
    timeout: Duration,
    json: Option<String>,
    label: String,
    /// Seconds to hold every connection open, idle, once all are ready (for
    /// measuring a server's memory per idle connection, `scripts/memory.sh`).
    hold: u64,
}

/// The usage line.
const USAGE: &str = "usage: loadgen [--url ws://127.0.0.1:8080/ws] [--clients 100] \
    [--messages 100] [--payload 32] [--duration 30] [--secret secret] [--window 4] \
    [--connect-concurrency 4] [--timeout 10] [--json PATH] [--label NAME] [--hold SECONDS]";

impl Args {
    fn parse() -> Result<Args, String> {
        let mut a = Args {
            url: "ws://127.0.0.1:8080/ws".to_owned(),
            clients: 100,
            messages: 100,
            payload: 32,
            duration: Duration::from_secs(30),
            secret: "secret".to_owned(),
            window: 4,
            connect_concurrency: 4,
            timeout: Duration::from_secs(10),
            json: None,
            label: String::new(),
            hold: 0,
        };
        flags::each_flag(USAGE, |flag| {
            match flag.name {
                "--url" => a.url = flag.value,
                "--clients" => a.clients = flag.num()?.max(1),
                "--messages" => a.messages = flag.num()?,
                "--payload" => a.payload = flag.num()?,
                "--duration" => a.duration = Duration::from_secs(flag.num()? as u64),
                "--secret" => a.secret = flag.value,
                "--window" => a.window = flag.num()?.max(1),
                "--connect-concurrency" => a.connect_concurrency = flag.num()?.max(1),
                "--timeout" => a.timeout = Duration::from_secs(flag.num()?.max(1) as u64),
                "--json" => a.json = Some(flag.value),
                "--label" => a.label = flag.value,
                "--hold" => a.hold = flag.num()? as u64,
                _ => return Err(flag.unknown()),
            }
            Ok(())
        })?;
        Ok(a)
    }
}

/// Counters shared by every client and the progress printer.
#[derive(Default)]
struct Counters {
    ready: AtomicU64,
    sent: AtomicU64,
    delivered: AtomicU64,
    /// Nanoseconds since the load started, of the last delivery.
    last_delivery_ns: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    connect_ns: Mutex<Vec<u64>>,
    echo_ns: Mutex<Vec<u64>>,
}

impl Counters {
    fn error(&self, kind: impl Into<String>) {
        *self
            .errors
            .lock()
            .expect("not poisoned")
            .entry(kind.into())
            .or_default() += 1;
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The kind of error for a Close the server sent us.
fn close_kind(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(f) => format!("server close {}", u16::from(f.code)),
        None => "server close (no code)".to_owned(),
    }
}

/// Phase 1 for one client: connect, authenticate, wait for `ready`.
async fn connect(args: &Args, i: usize, counters: &Counters) -> Option<Ws> {
    let start = Instant::now();
    let (mut ws, _) = match timeout(args.timeout, tokio_tungstenite::connect_async(&args.url)).await
    {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            counters.error(format!("connect: {e}"));
            return None;
        }
        Err(_) => {
            counters.error("connect: timeout");
            return None;
        }
    };
    let auth = json!({"type": "auth", "token": format!("load{i}:{}", args.secret)});
    if ws.send(Message::text(auth.to_string())).await.is_err() {
        counters.error("send auth: failed");
        return None;
    }
    loop {
        match timeout(args.timeout, ws.next()).await {
            Err(_) => {
                counters.error("ready: timeout");
                return None;
            }
            Ok(Some(Ok(Message::Text(text)))) => {
                if text.starts_with("{") && text.contains("\"type\":\"ready\"") {
                    let ns = start.elapsed().as_nanos() as u64;
                    counters.connect_ns.lock().expect("not poisoned").push(ns);
                    counters.ready.fetch_add(1, Ordering::Relaxed);
                    return Some(ws);
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                counters.error(close_kind(frame.as_ref()));
                return None;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => {
                counters.error(format!("read: {e}"));
                return None;
            }
            Ok(None) => {
                counters.error("read: end of stream before ready");
                return None;
            }
        }
    }
}

/// Phases 2 and 3 for one connected client.
async fn load(
    args: Arc<Args>,
    i: usize,
    ws: Ws,
    expected: u64,
    started: Instant,
    counters: Arc<Counters>,
) {
    let (mut write, mut read) = ws.split();
    let me = format!("\"from\":\"load{i}\",");
    let text = "x".repeat(args.payload);
    let say = Message::text(json!({"type": "say", "text": text}).to_string());
    let end = started + args.duration;
    let (mut sent, mut received) = (0_usize, 0_u64);
    let mut in_flight: VecDeque<Instant> = VecDeque::new();
    let mut echo_ns = Vec::with_capacity(args.messages);
    let mut last_heard = Instant::now();
    let mut server_closed = false;
    loop {
        let sending = sent < args.messages && Instant::now() < end;
        if !sending && in_flight.is_empty() && received >= expected {
            break;
        }
        let may_send = sending && in_flight.len() < args.window;
        // Stop waiting once nothing came for a second after our own sends are done
        // (deliveries lost, or a peer gone), or at the overall bound.
        let quiet = if sending {
            args.timeout
        } else {
            Duration::from_secs(1)
        };
        if Instant::now() > end + args.timeout {
            counters.error("drain: overall timeout");
            break;
        }
        tokio::select! {
            biased;
            item = timeout(quiet.saturating_sub(last_heard.elapsed()), read.next()) => {
                match item {
                    Err(_) => break,
                    Ok(Some(Ok(Message::Text(text)))) => {
                        last_heard = Instant::now();
                        if text.contains("\"type\":\"said\"") {
                            received += 1;
                            counters.delivered.fetch_add(1, Ordering::Relaxed);
                            let ns = started.elapsed().as_nanos() as u64;
                            counters.last_delivery_ns.fetch_max(ns, Ordering::Relaxed);
                            if text.contains(&me) {
                                if let Some(at) = in_flight.pop_front() {
                                    echo_ns.push(at.elapsed().as_nanos() as u64);
                                }
                            }
                        }
                    }
                    Ok(Some(Ok(Message::Close(frame)))) => {
                        counters.error(close_kind(frame.as_ref()));
                        server_closed = true;
                        break;
                    }
                    Ok(Some(Ok(_))) => {}
                    Ok(Some(Err(e))) => {
                        counters.error(format!("read: {e}"));
                        server_closed = true;
                        break;
                    }
                    Ok(None) => {
                        counters.error("read: end of stream");
                        server_closed = true;
                        break;
                    }
                }
            }
            result = write.send(say.clone()), if may_send => {
                if result.is_err() {
                    counters.error("send: failed");
                    server_closed = true;
                    break;
                }
                sent += 1;
                in_flight.push_back(Instant::now());
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    counters
        .echo_ns
        .lock()
        .expect("not poisoned")
        .extend(echo_ns);
    if server_closed {
        return;
    }
    // Close with 1000 and wait (bounded) for the server's answer.
    let close = Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    }));
    let _ = timeout(args.timeout, write.send(close)).await;
    let answered = timeout(args.timeout, async {
        while let Some(Ok(message)) = read.next().await {
            if let Message::Close(frame) = message {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                if code != 1000 {
                    counters.error(format!("close answered with {code}"));
                }
                return;
            }
        }
    })
    .await;
    if answered.is_err() {
        counters.error("close: no answer in time");
    }
}

/// The `p`-th percentile (0–100) of sorted nanoseconds, in microseconds.
fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1_000.0
}

#[tokio::main]
async fn main() {
    let args = match Args::parse() {
        Ok(args) => Arc::new(args),
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if args.clients * args.window > 1024 {
        eprintln!(
            "warning: clients × window = {} messages in flight may exceed the axum \
             baseline's channel (1024 messages) or a server's per-connection outbox (the \
             chat's: 1 MiB): expect slow-consumer closes or missing deliveries",
            args.clients * args.window
        );
    }
    let counters = Arc::new(Counters::default());
    let done = Arc::new(AtomicBool::new(false));
    let (phase_tx, phase_rx) = watch::channel("connecting");

    // Progress, every second.
    let progress = {
        let (counters, done) = (counters.clone(), done.clone());
        let (clients, label) = (args.clients, args.label.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            while !done.load(Ordering::Relaxed) {
                tick.tick().await;
                let delivered = counters.delivered.load(Ordering::Relaxed);
                let errors: u64 = counters.errors.lock().expect("not poisoned").values().sum();
                println!(
                    "[{label} {:>4.0}s] {:<10} ready {}/{clients}  sent {}  delivered {} \
                     ({}/s)  errors {errors}",
                    start.elapsed().as_secs_f64(),
                    *phase_rx.borrow(),
                    counters.ready.load(Ordering::Relaxed),
                    counters.sent.load(Ordering::Relaxed),
                    delivered,
                    delivered - last,
                );
                last = delivered;
            }
        })
    };

    // Phase 1: connect everyone.
    let gate = Arc::new(Semaphore::new(args.connect_concurrency));
    let mut connecting = Vec::new();
    for i in 0..args.clients {
        let (args, counters, gate) = (args.clone(), counters.clone(), gate.clone());
        connecting.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("open");
            connect(&args, i, &counters).await.map(|ws| (i, ws))
        }));
    }
    let mut connected = Vec::new();
    for task in connecting {
        if let Ok(Some(client)) = task.await {
            connected.push(client);
        }
    }

    // Optionally, everyone idle for a while (the line below is what
    // `scripts/memory.sh` waits for before it samples the server).
    if args.hold > 0 {
        println!(
            "holding {} ready connections for {} s",
            connected.len(),
            args.hold
        );
        tokio::time::sleep(Duration::from_secs(args.hold)).await;
    }

    // Phase 2 and 3: the load.
    let _ = phase_tx.send("load");
    let expected = (connected.len() * args.messages) as u64;
    let started = Instant::now();
    let mut clients = Vec::new();
    for (i, ws) in connected.drain(..) {
        let (args, counters) = (args.clone(), counters.clone());
        clients.push(tokio::spawn(load(args, i, ws, expected, started, counters)));
    }
    let ready = clients.len() as u64;
    for client in clients {
        let _ = client.await;
    }
    done.store(true, Ordering::Relaxed);
    let _ = progress.await;

    // Summary.
    let delivered = counters.delivered.load(Ordering::Relaxed);
    let sent = counters.sent.load(Ordering::Relaxed);
    let active_s = counters.last_delivery_ns.load(Ordering::Relaxed) as f64 / 1e9;
    let per_second = if active_s > 0.0 {
        delivered as f64 / active_s
    } else {
        0.0
    };
    let mut connect_ns = counters.connect_ns.lock().expect("not poisoned").clone();
    let mut echo_ns = counters.echo_ns.lock().expect("not poisoned").clone();
    connect_ns.sort_unstable();
    echo_ns.sort_unstable();
    let errors = counters.errors.lock().expect("not poisoned").clone();
    let expected_deliveries = sent * ready;
    let summary = json!({
        "label": args.label,
        "url": args.url,
        "clients": args.clients,
        "ready": ready,
        "messages_per_client": args.messages,
        "payload_bytes": args.payload,
        "window": args.window,
        "sent": sent,
        "delivered": delivered,
        "expected_deliveries": expected_deliveries,
        "missing_deliveries": expected_deliveries.saturating_sub(delivered),
        "load_seconds": active_s,
        "deliveries_per_second": per_second,
        "connect_to_ready_us": {
            "p50": percentile_us(&connect_ns, 50.0),
            "p90": percentile_us(&connect_ns, 90.0),
            "p99": percentile_us(&connect_ns, 99.0),
            "max": percentile_us(&connect_ns, 100.0),
        },
        "echo_us": {
            "p50": percentile_us(&echo_ns, 50.0),
            "p99": percentile_us(&echo_ns, 99.0),
        },
        "errors": errors,
    });
    println!("== summary {}", args.label);
    println!("  target               {}", args.url);
    println!(
        "  clients              {ready} ready of {} ({} messages × {} B each, window {})",
        args.clients, args.messages, args.payload, args.window
    );
    println!(
        "  deliveries           {delivered} of {expected_deliveries} expected in {active_s:.3} s \
         = {per_second:.0} messages delivered/s"
    );
    println!(
        "  connect-to-ready     p50 {:.0} µs  p90 {:.0} µs  p99 {:.0} µs  max {:.0} µs",
        percentile_us(&connect_ns, 50.0),
        percentile_us(&connect_ns, 90.0),
        percentile_us(&connect_ns, 99.0),
        percentile_us(&connect_ns, 100.0)
    );
    println!(
        "  echo (say → said)    p50 {:.0} µs  p99 {:.0} µs",
        percentile_us(&echo_ns, 50.0),
        percentile_us(&echo_ns, 99.0)
    );
    if errors.is_empty() {
        println!("  errors               none");
    } else {
        for (kind, n) in &errors {
            println!("  error                {n} × {kind}");
        }
    }
    if let Some(path) = &args.json {
        if let Err(e) = std::fs::write(path, format!("{summary:#}\n")) {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(1);
        }
    }
}

#[path = "common/flags.rs"]
mod flags;
