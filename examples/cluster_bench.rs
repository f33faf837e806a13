//! Cross-node fan-out of the cluster layer (`ws_lifecycle::cluster`, feature `redis`)
//! against raw Redis pub/sub through the same client crate, in the same run
//! (`docs/performance.md`, "Cluster"; `scripts/cluster_bench.sh` runs it).
//!
//! ```sh
//! cargo run --release --features redis --example cluster_bench -- \
//!     --redis redis://127.0.0.1:6379 --messages 100000 --receivers 1,100 --json out.json
//! ```
//!
//! One process, one tokio runtime (a worker per core). Per phase a fresh pair of
//! nodes — two [`Registry`]s, each joined with [`Cluster::start`] under a prefix of
//! its own — node A with no connections, node B with K `Ready` connections, each
//! drained by a task of its own parked on `Transport::poll_transmit_batch` (as the
//! crate's driver is).
//!
//! - **Throughput.** Node A calls `registry.broadcast` N times as fast as it lets
//!   it: a publication refused because the cluster queue is full
//!   (`Published::Dropped`) is retried after 1 ms (counted as a retry): the
//!   queue holds about 10 ms of publishing, so the pause never lets it run dry. The time is
//!   from the first broadcast to the last frame taken by node B's connections;
//!   messages/s = N / time (cross-node messages), deliveries/s = frames / time.
//! - **Raw baseline.** One multiplexed connection PUBLISHes N payloads of the same
//!   size in pipelines of 256 (the cluster publisher's batch), one at a time in
//!   flight (as the cluster publisher does); one pub/sub connection receives them.
//!   Time from the first PUBLISH to the N-th message received.
//! - **Latency.** At `--rate` messages/s (a tokio interval), each message carries
//!   its send time (ns since a process-wide `Instant`); the receiver (node B's
//!   connection tasks; the raw subscriber) records receive − send. The first
//!   `--warmup` messages are not counted. p50 / p99 / max in µs.
//!
//! Prints a summary; `--json PATH` writes it as JSON (read by the script).
//! `--only raw|cluster` runs just that side's throughput phases (for a profiler).

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use ws_lifecycle::cluster::{Cluster, ClusterConfig};
use ws_lifecycle::registry::Published;
use ws_lifecycle::{Config, Connection, Frame, Message, Ready, Registration, Registry};

/// The cluster publisher's pipeline size (src/adapters/cluster/tasks.rs `BATCH`).
const BATCH: usize = 256;

/// Frames a connection task takes per call (the crate's driver takes up to 64).
const DRAIN_BATCH: usize = 64;

const USAGE: &str = "usage: cluster_bench --redis redis://127.0.0.1:6379 [--messages 100000] \
    [--payload 32] [--receivers 1,100] [--latency-messages 5000] [--rate 1000] \
    [--warmup 200] [--raw-first 0|1] [--only raw|cluster] [--json PATH]";

#[derive(Debug, Clone)]
struct Args {
    redis: String,
    messages: usize,
    payload: usize,
    receivers: Vec<usize>,
    latency_messages: usize,
    rate: u64,
    warmup: usize,
    raw_first: bool,
    /// Only one side's throughput (for profiling): `raw` or `cluster`.
    only: Option<String>,
    json: Option<String>,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut a = Args {
            redis: String::new(),
            messages: 100_000,
            payload: 32,
            receivers: vec![1, 100],
            latency_messages: 5_000,
            rate: 1_000,
            warmup: 200,
            raw_first: true,
            only: None,
            json: None,
        };
        flags::each_flag(USAGE, |flag| {
            match flag.name {
                "--redis" => a.redis = flag.value,
                "--messages" => a.messages = flag.num()?.max(1),
                "--payload" => a.payload = flag.num()?.max(16),
                "--receivers" => {
                    a.receivers = (flag.value.split(','))
                        .map(|k| {
                            (k.parse::<usize>())
                                .map(|k| k.max(1))
                                .map_err(|e| format!("bad --receivers {k:?}: {e}\n{USAGE}"))
                        })
                        .collect::<Result<_, _>>()?
                }
                "--latency-messages" => a.latency_messages = flag.num()?.max(1),
                "--rate" => a.rate = flag.num()?.max(1) as u64,
                "--warmup" => a.warmup = flag.num()?,
                "--raw-first" => a.raw_first = flag.num()? != 0,
                "--only" if flag.value == "raw" || flag.value == "cluster" => {
                    a.only = Some(flag.value)
                }
                "--json" => a.json = Some(flag.value),
                _ => return Err(flag.unknown()),
            }
            Ok(())
        })?;
        if a.redis.is_empty() {
            return Err(format!("--redis is required\n{USAGE}"));
        }
        Ok(a)
    }
}

/// The process-wide clock origin: send and receive times are ns since it.
fn base() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    base().elapsed().as_nanos() as u64
}

/// A payload of `len` bytes: the send time (ns), the sequence number, padding.
fn payload(len: usize, seq: u64) -> Vec<u8> {
    let mut bytes = vec![b'.'; len];
    bytes[..8].copy_from_slice(&now_ns().to_be_bytes());
    bytes[8..16].copy_from_slice(&seq.to_be_bytes());
    bytes
}

/// (send time, sequence number) of a payload.
fn stamp(bytes: &[u8]) -> (u64, u64) {
    let at = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    let seq = u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes"));
    (at, seq)
}

/// A unique prefix per phase, so that no phase sees another's traffic.
fn prefix(phase: &str) -> String {
    format!("wslbench:{}:{}:{phase}", std::process::id(), now_ns())
}

/// Counters shared by node B's connection tasks.
#[derive(Default)]
struct Counts {
    frames: AtomicU64,
    /// ns (since `base`) of the last frame taken.
    last_ns: AtomicU64,
}

/// p50 / p99 / max of latencies in ns, as µs.
fn percentiles(mut ns: Vec<u64>) -> Value {
    if ns.is_empty() {
        return json!({"count": 0});
    }
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    json!({
        "count": ns.len(),
        "p50_us": at(0.50),
        "p99_us": at(0.99),
        "max_us": *ns.last().unwrap() as f64 / 1000.0,
    })
}

/// A pair of nodes, B with `k` `Ready` connections drained by tasks of their own.
struct Nodes {
    a: Registry,
    clusters: [Cluster; 2],
    counts: Arc<Counts>,
    stop: watch::Sender<bool>,
    drivers: Vec<JoinHandle<Vec<u64>>>,
    _conns: Vec<(Connection<Ready>, Registration)>,
    _b: Registry,
}

impl Nodes {
    async fn start(url: &str, k: usize, phase: &str, warmup: u64) -> Nodes {
        let prefix = prefix(phase);
        let (a, b) = (Registry::open_now(), Registry::open_now());
        let join = |registry: &Registry, node: &str| {
            let mut config = ClusterConfig::new(url, node);
            config.prefix = prefix.clone();
            Cluster::start(registry.clone(), config).expect("cluster starts")
        };
        let clusters = [join(&a, "bench-a"), join(&b, "bench-b")];
        let counts = Arc::new(Counts::default());
        let (stop, stopped) = watch::channel(false);
        let (mut conns, mut drivers) = (Vec::new(), Vec::new());
        let now = Instant::now();
        for _ in 0..k {
            let conn = Connection::new(b.next_id(), Config::default())
                .accept(now)
                .expect("accept");
            let registration = b.register(&conn, now).expect("register");
            let conn = (conn.authenticate(None, now).expect("authenticate"))
                .ready(now)
                .expect("ready");
            let transport = conn.transport();
            let (counts, mut stopped) = (counts.clone(), stopped.clone());
            drivers.push(tokio::spawn(async move {
                let mut out = Vec::with_capacity(DRAIN_BATCH);
                let mut latencies = Vec::new();
                loop {
                    let taken = tokio::select! {
                        taken = poll_fn(|cx| {
                            transport.poll_transmit_batch(cx, Instant::now(), &mut out, DRAIN_BATCH)
                        }) => taken,
                        _ = stopped.changed() => break,
                    };
                    let Some(n) = taken else { break };
                    let at = now_ns();
                    for frame in out.drain(..) {
                        if let Frame::Message(Message::Binary(bytes)) = frame {
                            let (sent, seq) = stamp(&bytes);
                            if seq >= warmup {
                                latencies.push(at.saturating_sub(sent));
                            }
                        }
                    }
                    counts.frames.fetch_add(n as u64, Ordering::Relaxed);
                    counts.last_ns.fetch_max(at, Ordering::Relaxed);
                }
                latencies
            }));
            conns.push((conn, registration));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !clusters.iter().all(|c| c.snapshot().connected) {
            assert!(Instant::now() < deadline, "both nodes connect to Redis");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Nodes {
            a,
            _b: b,
            clusters,
            counts,
            stop,
            drivers,
            _conns: conns,
        }
    }

    /// Waits until `expected` frames were taken, or nothing more came for 2 s.
    async fn settle(&self, expected: u64) {
        let (mut last, mut since) = (0, Instant::now());
        loop {
            let frames = self.counts.frames.load(Ordering::Relaxed);
            if frames >= expected {
                return;
            }
            if frames != last {
                (last, since) = (frames, Instant::now());
            } else if since.elapsed() > Duration::from_secs(2) {
                eprintln!("  (stopped waiting: {frames} of {expected} frames)");
                return;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    /// Stops everything; the connection tasks' latencies.
    async fn stop(self) -> (Value, Vec<u64>) {
        let snapshots = self.clusters.each_ref().map(|c| c.snapshot());
        for cluster in &self.clusters {
            cluster.leave().await;
        }
        let _ = self.stop.send(true);
        let mut latencies = Vec::new();
        for driver in self.drivers {
            latencies.extend(driver.await.expect("driver"));
        }
        let [a, b] = snapshots;
        let info = json!({
            "a_published": a.published, "a_dropped": a.dropped, "a_errors": a.errors,
            "b_received": b.received, "b_missed": b.missed, "b_delivered": b.delivered,
            "b_errors": b.errors,
        });
        (info, latencies)
    }
}

/// Broadcasts from node A until queued; the retries it took.
async fn broadcast(nodes: &Nodes, message: Message) -> u64 {
    let mut retries = 0;
    loop {
        match nodes.a.broadcast(message.clone()).published {
            Some(Published::Queued) => return retries,
            Some(Published::Dropped) => {
                retries += 1;
                // The queue (4 096) holds ~10 ms of publishing at these rates, so a
                // 1 ms pause never lets it run dry; spinning on yield_now instead
                // was measured to steal the publisher's CPU (0.49× against 0.9×).
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            other => panic!("not published: {other:?}"),
        }
    }
}

async fn cluster_throughput(args: &Args, k: usize) -> Value {
    let nodes = Nodes::start(&args.redis, k, &format!("tput{k}"), u64::MAX).await;
    let n = args.messages;
    let start = now_ns();
    let mut retries = 0;
    for seq in 0..n {
        let message = Message::binary(payload(args.payload, seq as u64));
        retries += broadcast(&nodes, message).await;
    }
    let sent = now_ns();
    nodes.settle((n * k) as u64).await;
    let frames = nodes.counts.frames.load(Ordering::Relaxed);
    let end = nodes.counts.last_ns.load(Ordering::Relaxed);
    let (info, _) = nodes.stop().await;
    let secs = end.saturating_sub(start) as f64 / 1e9;
    let received = info["b_received"].as_u64().unwrap_or(0);
    let delivered = info["b_delivered"].as_u64().unwrap_or(0);
    json!({
        "receivers": k,
        "messages": n,
        "seconds": secs,
        "msgs_per_s": received as f64 / secs,
        "deliveries_per_s": frames as f64 / secs,
        "broadcast_seconds": (sent - start) as f64 / 1e9,
        "retries": retries,
        "frames": frames,
        "full": (received * k as u64).saturating_sub(delivered),
        "cluster": info,
    })
}

async fn cluster_latency(args: &Args, k: usize) -> Value {
    let warmup = args.warmup as u64;
    let nodes = Nodes::start(&args.redis, k, &format!("lat{k}"), warmup).await;
    let total = args.warmup + args.latency_messages;
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / args.rate));
    let mut retries = 0;
    for seq in 0..total {
        ticker.tick().await;
        let message = Message::binary(payload(args.payload, seq as u64));
        retries += broadcast(&nodes, message).await;
    }
    nodes.settle((total * k) as u64).await;
    let (info, latencies) = nodes.stop().await;
    let mut out = percentiles(latencies);
    out["receivers"] = json!(k);
    out["rate"] = json!(args.rate);
    out["retries"] = json!(retries);
    out["cluster"] = info;
    out
}

/// A raw subscriber: subscribed once this returns; the task yields the latencies
/// (messages with a sequence number ≥ `warmup`) and the time of the `expected`-th.
async fn raw_subscriber(
    client: &redis::Client,
    channel: &str,
    expected: usize,
    warmup: u64,
) -> JoinHandle<(Vec<u64>, u64, usize)> {
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub.subscribe(channel).await.expect("subscribe");
    tokio::spawn(async move {
        let mut stream = pubsub.into_on_message();
        let (mut latencies, mut count, mut last) = (Vec::new(), 0, 0);
        while count < expected {
            let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
            let Ok(Some(message)) = next else {
                eprintln!("  (raw subscriber stopped at {count} of {expected})");
                break;
            };
            last = now_ns();
            count += 1;
            let (sent, seq) = stamp(message.get_payload_bytes());
            if seq >= warmup {
                latencies.push(last.saturating_sub(sent));
            }
        }
        (latencies, last, count)
    })
}

async fn raw_throughput(args: &Args) -> Value {
    let client = redis::Client::open(args.redis.as_str()).expect("url");
    let channel = format!("{}:raw", prefix("rawtput"));
    let n = args.messages;
    let subscriber = raw_subscriber(&client, &channel, n, u64::MAX).await;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let start = now_ns();
    let mut seq = 0;
    while seq < n {
        let mut pipe = redis::pipe();
        for _ in 0..BATCH.min(n - seq) {
            pipe.cmd("PUBLISH")
                .arg(&channel)
                .arg(payload(args.payload, seq as u64))
                .ignore();
            seq += 1;
        }
        pipe.query_async::<()>(&mut conn).await.expect("publish");
    }
    let sent = now_ns();
    let (_, end, received) = subscriber.await.expect("subscriber");
    let secs = end.saturating_sub(start) as f64 / 1e9;
    json!({
        "messages": n,
        "received": received,
        "seconds": secs,
        "msgs_per_s": received as f64 / secs,
        "publish_seconds": (sent - start) as f64 / 1e9,
    })
}

async fn raw_latency(args: &Args) -> Value {
    let client = redis::Client::open(args.redis.as_str()).expect("url");
    let channel = format!("{}:raw", prefix("rawlat"));
    let total = args.warmup + args.latency_messages;
    let subscriber = raw_subscriber(&client, &channel, total, args.warmup as u64).await;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / args.rate));
    for seq in 0..total {
        ticker.tick().await;
        redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(payload(args.payload, seq as u64))
            .query_async::<i64>(&mut conn)
            .await
            .expect("publish");
    }
    let (latencies, _, _) = subscriber.await.expect("subscriber");
    let mut out = percentiles(latencies);
    out["rate"] = json!(args.rate);
    out
}

fn show_rate(label: &str, v: &Value) {
    println!(
        "  {label:<28} {:>10.0} msg/s  ({:.3} s{})",
        v["msgs_per_s"].as_f64().unwrap_or(0.0),
        v["seconds"].as_f64().unwrap_or(0.0),
        match v["deliveries_per_s"].as_f64() {
            Some(d) => format!(
                ", {d:.0} deliveries/s, {} retries, {} full",
                v["retries"], v["full"]
            ),
            None => String::new(),
        }
    );
}

fn show_latency(label: &str, v: &Value) {
    println!(
        "  {label:<28} p50 {:>8.1} µs  p99 {:>8.1} µs  max {:>8.1} µs  ({} samples)",
        v["p50_us"].as_f64().unwrap_or(f64::NAN),
        v["p99_us"].as_f64().unwrap_or(f64::NAN),
        v["max_us"].as_f64().unwrap_or(f64::NAN),
        v["count"],
    );
}

#[tokio::main]
async fn main() {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    base();
    println!(
        "cluster_bench: {} messages of {} B, receivers {:?}; latency {} + {} warm-up at {} msg/s",
        args.messages, args.payload, args.receivers, args.latency_messages, args.warmup, args.rate
    );

    if let Some(only) = &args.only {
        for &k in &args.receivers {
            let v = if only == "raw" {
                raw_throughput(&args).await
            } else {
                cluster_throughput(&args, k).await
            };
            show_rate(only, &v);
        }
        return;
    }

    println!("throughput (cross-node messages/s):");
    let mut raw_rates = Vec::new();
    let mut cluster_rates = Vec::new();
    for (i, &k) in args.receivers.iter().enumerate() {
        // Interleaved: raw and cluster alternate, in the order `--raw-first` sets.
        let raw_first = args.raw_first ^ (i % 2 == 1);
        let (raw, cluster) = if raw_first {
            let raw = raw_throughput(&args).await;
            (raw, cluster_throughput(&args, k).await)
        } else {
            let cluster = cluster_throughput(&args, k).await;
            (raw_throughput(&args).await, cluster)
        };
        show_rate("raw pub/sub", &raw);
        show_rate(&format!("cluster, K = {k}"), &cluster);
        let ratio = cluster["msgs_per_s"].as_f64().unwrap_or(0.0)
            / raw["msgs_per_s"].as_f64().unwrap_or(f64::NAN);
        println!("  ratio (cluster / raw)        {ratio:.3}");
        raw_rates.push(raw);
        cluster_rates.push(json!({"receivers": k, "cluster": cluster, "ratio": ratio}));
    }

    println!("latency at {} msg/s:", args.rate);
    let mut cluster_latencies = Vec::new();
    let raw_lat;
    if args.raw_first {
        raw_lat = raw_latency(&args).await;
        for &k in &args.receivers {
            cluster_latencies.push(cluster_latency(&args, k).await);
        }
    } else {
        for &k in &args.receivers {
            cluster_latencies.push(cluster_latency(&args, k).await);
        }
        raw_lat = raw_latency(&args).await;
    }
    show_latency("raw pub/sub", &raw_lat);
    for v in &cluster_latencies {
        show_latency(&format!("cluster, K = {}", v["receivers"]), v);
    }

    let summary = json!({
        "messages": args.messages,
        "payload": args.payload,
        "batch": BATCH,
        "throughput": {"raw": raw_rates, "pairs": cluster_rates},
        "latency": {"raw": raw_lat, "cluster": cluster_latencies},
    });
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&summary).unwrap()).expect("json");
    }
}

#[path = "common/flags.rs"]
mod flags;
