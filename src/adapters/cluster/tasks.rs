//! The node's three tasks — publishing, receiving, heartbeat — each with its own
//! connection to Redis, made again with a backoff whenever it fails. Leaving is
//! theirs too: the publisher sends what is queued and stops, the subscriber stops,
//! and the heartbeat, the only writer of this node's presence, deletes it — so no
//! heartbeat in flight can write it back.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, watch};

use crate::registry::{Presence, Publication, Target};

use super::envelope::{self, Envelope};
use super::{Shared, View, lock, unix_us};

/// Publications sent in one pipeline at most.
const BATCH: usize = 256;

/// Reconnection delays: doubling from the minimum to the maximum, reset by a
/// success.
struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    fn new(shared: &Shared) -> Backoff {
        let (min, max) = (shared.config.backoff_min, shared.config.backoff_max);
        Backoff {
            next: min,
            min,
            max,
        }
    }

    /// Waits the next delay, or until the node leaves; false if it left.
    async fn wait(&mut self, leaving: &mut watch::Receiver<bool>) -> bool {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        tokio::select! {
            () = tokio::time::sleep(delay) => !*leaving.borrow(),
            _ = leaving.changed() => false,
        }
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// `future` within the command timeout; a timeout is an error like Redis's own.
async fn bounded<T>(
    shared: &Shared,
    future: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(shared.config.command_timeout, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!(
            "no answer within {:?}",
            shared.config.command_timeout
        )),
    }
}

/// A command connection, or the error (counted).
async fn connect(shared: &Shared, client: &redis::Client) -> Option<MultiplexedConnection> {
    match bounded(shared, client.get_multiplexed_async_connection()).await {
        Ok(connection) => Some(connection),
        Err(error) => {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(node = %shared.config.node, %error, "cannot reach Redis");
            None
        }
    }
}

/// A task's end, for `Cluster::leave` to wait on.
struct Finished<'a>(&'a Shared);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::SeqCst);
        self.0.finish.notify_waiters();
    }
}

/// Sends the queue to the channel, in order, in pipelines of up to `BATCH`; a
/// pipeline that failed is sent again, whole and with its numbers, after the
/// reconnection (receivers drop what they already have). Leaving, it sends what is
/// queued and stops.
pub(super) async fn publisher(
    shared: Arc<Shared>,
    client: redis::Client,
    mut queue: mpsc::Receiver<Publication>,
    mut leaving: watch::Receiver<bool>,
) {
    let _finished = Finished(&shared);
    let node = shared.config.node.clone();
    let channel = shared.config.channel();
    let mut backoff = Backoff::new(&shared);
    // The pipeline being sent (kept whole until it succeeds) and how many
    // publications it holds; one buffer to encode each into.
    let mut batch = redis::pipe();
    let mut batched = 0_usize;
    let mut scratch = Vec::new();
    let mut seq = 0_u64;
    let mut connected_before = false;
    loop {
        let Some(mut connection) = connect(&shared, &client).await else {
            if !backoff.wait(&mut leaving).await && *leaving.borrow() {
                return; // leaving, and Redis unreachable: what is queued is dropped
            }
            continue;
        };
        if std::mem::replace(&mut connected_before, true) {
            shared.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        shared.publisher_up.store(true, Ordering::SeqCst);
        tracing::info!(%node, "cluster: publishing to Redis");
        backoff.reset();
        loop {
            if batched == 0 {
                let first = if *leaving.borrow() {
                    queue.close(); // leaving: send what is queued, then stop
                    queue.recv().await
                } else {
                    tokio::select! {
                        publication = queue.recv() => publication,
                        _ = leaving.changed() => continue,
                    }
                };
                let Some(first) = first else {
                    shared.publisher_up.store(false, Ordering::SeqCst);
                    return;
                };
                batch.clear();
                let mut next = Some(first);
                while let Some(publication) = next.take() {
                    seq += 1;
                    let (incarnation, at) = (shared.incarnation, unix_us());
                    envelope::encode_into(&mut scratch, &node, incarnation, seq, at, &publication);
                    batch
                        .cmd("PUBLISH")
                        .arg(&channel)
                        .arg(scratch.as_slice())
                        .ignore();
                    batched += 1;
                    if batched < BATCH {
                        next = queue.try_recv().ok();
                    }
                }
            }
            match bounded(&shared, batch.query_async::<()>(&mut connection)).await {
                Ok(()) => {
                    shared
                        .published
                        .fetch_add(batched as u64, Ordering::Relaxed);
                    batched = 0;
                }
                Err(error) => {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    shared.publisher_up.store(false, Ordering::SeqCst);
                    tracing::warn!(%node, %error, held = batched, "cluster: publishing failed; reconnecting");
                    break;
                }
            }
        }
        if !backoff.wait(&mut leaving).await && *leaving.borrow() {
            return;
        }
    }
}

/// The numbering seen per publishing node: its incarnation and the last number.
/// (Looked up by `&str`: a node's name is allocated once, not per message.)
#[derive(Default)]
struct Numbering {
    last: HashMap<String, (u64, u64)>,
}

impl Numbering {
    /// True if `envelope` is new; counts a gap before it as missed.
    fn admit(&mut self, shared: &Shared, envelope: &Envelope<'_>) -> bool {
        let numbers = (envelope.incarnation, envelope.seq);
        let Some(last) = self.last.get_mut(envelope.node) else {
            // The first seen of this node: nothing before it is owed (it may have
            // published before this node subscribed).
            self.last.insert(envelope.node.to_owned(), numbers);
            return true;
        };
        if last.0 == envelope.incarnation {
            if envelope.seq <= last.1 {
                return false; // sent again after a failed pipeline
            }
            let gap = envelope.seq - last.1 - 1;
            if gap > 0 {
                shared.missed.fetch_add(gap, Ordering::Relaxed);
                tracing::warn!(
                    node = %shared.config.node, from = %envelope.node, missed = gap,
                    "cluster: publications missed (sent while this node was not subscribed)"
                );
            }
        }
        *last = numbers;
        true
    }
}

/// Subscribes to the channel and delivers the other nodes' publications here.
pub(super) async fn subscriber(
    shared: Arc<Shared>,
    client: redis::Client,
    mut leaving: watch::Receiver<bool>,
) {
    let _finished = Finished(&shared);
    let node = shared.config.node.clone();
    let channel = shared.config.channel();
    let mut backoff = Backoff::new(&shared);
    let mut numbering = Numbering::default();
    let mut connected_before = false;
    while !*leaving.borrow() {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok(pubsub)
        };
        let mut pubsub = match bounded(&shared, subscribed).await {
            Ok(pubsub) => pubsub,
            Err(error) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%node, %error, "cluster: cannot subscribe");
                if !backoff.wait(&mut leaving).await {
                    return;
                }
                continue;
            }
        };
        if std::mem::replace(&mut connected_before, true) {
            shared.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        shared.subscriber_up.store(true, Ordering::SeqCst);
        tracing::info!(%node, "cluster: subscribed");
        backoff.reset();
        let mut messages = pubsub.on_message();
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                _ = leaving.changed() => {
                    shared.subscriber_up.store(false, Ordering::SeqCst);
                    return; // dropping the connection ends the subscription
                }
            };
            let Some(message) = message else { break };
            receive(&shared, &mut numbering, message.get_payload_bytes());
        }
        shared.subscriber_up.store(false, Ordering::SeqCst);
        shared.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%node, "cluster: subscription lost; reconnecting");
        if !backoff.wait(&mut leaving).await {
            return;
        }
    }
}

/// One envelope from the channel: this node's own are skipped (delivered here when
/// published), repeats dropped, the rest delivered to the connections `Ready` here
/// (**G7** at this node: the same fan-out as a local broadcast).
fn receive(shared: &Shared, numbering: &mut Numbering, bytes: &[u8]) {
    let envelope = match envelope::decode(bytes) {
        Ok(envelope) => envelope,
        Err(error) => {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(node = %shared.config.node, %error, "cluster: unreadable envelope");
            return;
        }
    };
    if envelope.node == shared.config.node && envelope.incarnation == shared.incarnation {
        return;
    }
    if !numbering.admit(shared, &envelope) {
        return;
    }
    if let Target::Connection { node, .. } = &envelope.publication.target {
        if **node != *shared.config.node {
            return; // one connection on another node: not ours to deliver
        }
    }
    let report = shared.registry.deliver_published(&envelope.publication);
    shared.received.fetch_add(1, Ordering::Relaxed);
    shared
        .delivered
        .fetch_add(report.delivered as u64, Ordering::Relaxed);
    let refused = report.closing + report.full;
    if refused > 0 {
        shared.refused.fetch_add(refused as u64, Ordering::Relaxed);
    }
    let lag = unix_us().saturating_sub(envelope.at_us);
    shared.lag_us.store(lag, Ordering::Relaxed);
}

/// Every heartbeat: writes this node's presence (expiring after the TTL) and reads
/// every live node's. Leaving, it deletes this node's presence and stops.
pub(super) async fn heartbeat(
    shared: Arc<Shared>,
    client: redis::Client,
    mut leaving: watch::Receiver<bool>,
) {
    let _finished = Finished(&shared);
    let mut ticker = tokio::time::interval(shared.config.heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut connection: Option<MultiplexedConnection> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = leaving.changed() => {}
        }
        if connection.is_none() {
            connection = connect(&shared, &client).await;
        }
        if *leaving.borrow() {
            forget(&shared, connection.as_mut()).await;
            return;
        }
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        match beat(&shared, conn).await {
            Ok(nodes) => {
                let connections = (nodes.iter())
                    .filter(|(node, _)| **node != shared.config.node)
                    .map(|(_, presence)| presence.connections)
                    .sum();
                *lock(&shared.view) = View {
                    nodes,
                    others_connections: connections,
                    at: Some(Instant::now()),
                };
            }
            Err(error) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(node = %shared.config.node, %error, "cluster: heartbeat failed");
                connection = None;
            }
        }
    }
}

/// One heartbeat: write ours, read everyone's.
async fn beat(
    shared: &Shared,
    connection: &mut MultiplexedConnection,
) -> Result<BTreeMap<String, Presence>, String> {
    let config = &shared.config;
    let ttl_ms = config.presence_ttl.as_millis().max(1) as u64;
    let now = unix_us() / 1000;
    let presence = serde_json::to_vec(&shared.registry.presence()).map_err(|e| e.to_string())?;
    let nodes_key = config.nodes_key();
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(config.presence_key(&config.node))
        .arg(presence)
        .arg("PX")
        .arg(ttl_ms)
        .ignore();
    pipe.cmd("ZADD")
        .arg(&nodes_key)
        .arg(now + ttl_ms)
        .arg(&config.node)
        .ignore();
    // Names of nodes dead for long: their presence expired long ago.
    pipe.cmd("ZREMRANGEBYSCORE")
        .arg(&nodes_key)
        .arg("-inf")
        .arg(now.saturating_sub(60 * ttl_ms))
        .ignore();
    pipe.cmd("ZRANGE").arg(&nodes_key).arg(0).arg(-1);
    let (nodes,): (Vec<String>,) = bounded(shared, pipe.query_async(connection)).await?;
    if nodes.is_empty() {
        return Ok(BTreeMap::new());
    }
    let keys: Vec<String> = nodes.iter().map(|n| config.presence_key(n)).collect();
    let values: Vec<Option<Vec<u8>>> = bounded(
        shared,
        redis::cmd("MGET").arg(&keys).query_async(connection),
    )
    .await?;
    let mut view = BTreeMap::new();
    for (node, value) in nodes.into_iter().zip(values) {
        // No value: its presence expired (a node that died) or was deleted (left).
        if let Some(presence) = value.and_then(|v| serde_json::from_slice::<Presence>(&v).ok()) {
            view.insert(node, presence);
        }
    }
    Ok(view)
}

/// Leaving: this node's presence goes at once (by the heartbeat task, the only one
/// that writes it: no heartbeat in flight can write it back).
async fn forget(shared: &Shared, connection: Option<&mut MultiplexedConnection>) {
    let config = &shared.config;
    *lock(&shared.view) = View::default();
    let Some(connection) = connection else {
        return; // Redis unreachable: the TTL removes it
    };
    let mut pipe = redis::pipe();
    pipe.cmd("DEL")
        .arg(config.presence_key(&config.node))
        .ignore();
    pipe.cmd("ZREM")
        .arg(config.nodes_key())
        .arg(&config.node)
        .ignore();
    if let Err(error) = bounded(shared, pipe.query_async::<()>(connection)).await {
        shared.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(node = %config.node, %error, "cluster: could not delete presence; the TTL will");
    }
}
