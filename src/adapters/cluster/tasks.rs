//! The node's three tasks — publishing, receiving, heartbeat — each with its own
//! connection to Redis, made again with a backoff whenever it fails. Leaving is
//! theirs too: the publisher sends what is queued and stops, the subscriber stops,
//! and the heartbeat, the only writer of this node's presence, deletes it — so no
//! heartbeat in flight can write it back.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, watch};

use crate::registry::{Presence, Publication, Target};

use super::envelope;
use super::numbering::{Admitted, Numbering};
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
/// reconnection (receivers drop what they already have), stamped with the time it
/// is sent again (a receiver's lag is time on the bus, not the outage). Leaving, it
/// sends what is queued and stops; with Redis unreachable, what it could not send
/// is counted in `dropped` and logged.
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
    // The publications being sent, with their numbers (kept until they are sent),
    // the pipeline they are encoded into and one buffer to encode each into.
    let mut batch: Vec<(u64, Publication)> = Vec::with_capacity(BATCH);
    let mut pipe = redis::pipe();
    let mut scratch = Vec::new();
    let mut seq = 0_u64;
    let mut connected_before = false;
    let abandon = |batch: &mut Vec<(u64, Publication)>, queue: &mut mpsc::Receiver<Publication>| {
        queue.close();
        let mut lost = batch.len() as u64;
        batch.clear();
        while queue.try_recv().is_ok() {
            lost += 1;
        }
        if lost > 0 {
            shared.dropped.fetch_add(lost, Ordering::Relaxed);
            tracing::warn!(%node, lost, "cluster: left with Redis unreachable; queued publications dropped");
        }
        shared.publisher_up.store(false, Ordering::SeqCst);
    };
    loop {
        let Some(mut connection) = connect(&shared, &client).await else {
            if !backoff.wait(&mut leaving).await && *leaving.borrow() {
                return abandon(&mut batch, &mut queue);
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
            if batch.is_empty() {
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
                let mut next = Some(first);
                while let Some(publication) = next.take() {
                    seq += 1;
                    batch.push((seq, publication));
                    if batch.len() < BATCH {
                        next = queue.try_recv().ok();
                    }
                }
            }
            pipe.clear();
            let at = unix_us();
            for (seq, publication) in &batch {
                let incarnation = shared.incarnation;
                envelope::encode_into(&mut scratch, &node, incarnation, *seq, at, publication);
                pipe.cmd("PUBLISH")
                    .arg(&channel)
                    .arg(scratch.as_slice())
                    .ignore();
            }
            match bounded(&shared, pipe.query_async::<()>(&mut connection)).await {
                Ok(()) => {
                    shared
                        .published
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    batch.clear();
                }
                Err(error) => {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    shared.publisher_up.store(false, Ordering::SeqCst);
                    tracing::warn!(%node, %error, held = batch.len(), "cluster: publishing failed; reconnecting");
                    break;
                }
            }
        }
        if !backoff.wait(&mut leaving).await && *leaving.borrow() {
            return abandon(&mut batch, &mut queue);
        }
    }
}

/// Why a subscription ended.
enum Ended {
    /// The node is leaving.
    Leaving,
    /// The connection closed, or did not answer a ping.
    Lost(String),
    /// This node fell `max_lag` behind: the backlog is dropped with it.
    Behind(Duration),
}

/// Subscribes to the channel and delivers the other nodes' publications here.
/// Every heartbeat it pings Redis on the subscription (a connection that went
/// silent — a partition, a failover — would otherwise leave the node deaf); a
/// node that falls [`max_lag`](super::ClusterConfig::max_lag) behind subscribes
/// afresh (the client's backlog is not bounded otherwise).
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
            Ok(pubsub.split())
        };
        let (mut sink, mut messages) = match bounded(&shared, subscribed).await {
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
        let period = shared.config.heartbeat;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ended = loop {
            let message = tokio::select! {
                message = messages.next() => message,
                _ = ping.tick() => match bounded(&shared, sink.ping::<redis::Value>()).await {
                    Ok(_) => continue,
                    Err(error) => break Ended::Lost(format!("ping: {error}")),
                },
                _ = leaving.changed() => break Ended::Leaving,
            };
            let Some(message) = message else {
                break Ended::Lost("connection closed".to_owned());
            };
            let behind = receive(&shared, &mut numbering, message.get_payload_bytes());
            if behind > shared.config.max_lag {
                break Ended::Behind(behind);
            }
        };
        shared.subscriber_up.store(false, Ordering::SeqCst);
        match ended {
            // Dropping the connection ends the subscription.
            Ended::Leaving => return,
            Ended::Lost(error) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%node, %error, "cluster: subscription lost; reconnecting");
            }
            Ended::Behind(behind) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    %node, ?behind,
                    "cluster: fell behind the bus; its backlog dropped, subscribing afresh (what is skipped is counted as missed)"
                );
            }
        }
        drop((sink, messages));
        if !backoff.wait(&mut leaving).await {
            return;
        }
    }
}

/// One envelope from the channel: this node's own are skipped (delivered here when
/// published), repeats dropped, the rest delivered to the connections `Ready` here
/// (**G7** at this node: the same fan-out as a local broadcast). How far behind the
/// quickest from its node it came.
fn receive(shared: &Shared, numbering: &mut Numbering, bytes: &[u8]) -> Duration {
    let envelope = match envelope::decode(bytes) {
        Ok(envelope) => envelope,
        Err(error) => {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(node = %shared.config.node, %error, "cluster: unreadable envelope");
            return Duration::ZERO;
        }
    };
    if envelope.node == shared.config.node && envelope.incarnation == shared.incarnation {
        return Duration::ZERO;
    }
    let now = unix_us();
    let (admitted, behind) = numbering.admit(&envelope, now);
    let Admitted::New { missed } = admitted else {
        return Duration::from_micros(behind);
    };
    if missed > 0 {
        shared.missed.fetch_add(missed, Ordering::Relaxed);
        tracing::warn!(
            node = %shared.config.node, from = %envelope.node, missed,
            "cluster: publications missed (sent while this node was not subscribed)"
        );
    }
    if let Target::Connection { node, .. } = &envelope.publication.target {
        if **node != *shared.config.node {
            return Duration::from_micros(behind); // one connection elsewhere: not ours
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
    Duration::from_micros(behind)
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
        // A beat in flight is abandoned when the node leaves: `leave` waits for the
        // deletion, which goes on the same connection behind what was sent.
        let beaten = tokio::select! {
            beaten = beat(&shared, conn) => beaten,
            _ = leaving.changed() => {
                forget(&shared, connection.as_mut()).await;
                return;
            }
        };
        match beaten {
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
