//! The pump: one connection's socket, driven by its core (see the module docs of
//! `driver`).

use std::future::poll_fn;
use std::time::{Duration, Instant};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::oneshot;
use tokio::time::sleep_until;

use crate::{CloseCode, CloseFrame, Frame, InboundError, Message, Phase, Transport, TransportLoss};

use super::{DriverConfig, WireFrame, now};

/// What the pump does with the client's application messages.
struct Inbound {
    /// The first message goes to the authenticator, not the hold.
    first: Option<oneshot::Sender<Message>>,
    /// Messages seen before authentication succeeded, the first included.
    pre_auth: usize,
    /// A message the hold had no room for, retried once it has (back-pressure).
    stalled: Option<Message>,
}

/// Runs the socket until the connection is `Closed`, then ends the transport.
pub(super) async fn run<S, E>(
    mut socket: S,
    transport: Transport,
    config: &DriverConfig,
    first: oneshot::Sender<Message>,
) where
    S: Stream<Item = Result<WireFrame, E>> + Sink<WireFrame, Error = E> + Unpin + Send,
    E: std::fmt::Display,
{
    let id = transport.id();
    let mut inbound = Inbound {
        first: Some(first),
        pre_auth: 0,
        stalled: None,
    };
    let idle = config.idle_timeout;
    let mut last_heard = now();
    let mut pinged = false;
    let mut reading = true;
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    loop {
        let deadline = transport.poll_timeout();
        // Keep-alive: ping after half the idle timeout, close after all of it.
        let keep_alive = idle.map(|idle| {
            if pinged {
                last_heard + idle
            } else {
                last_heard + idle / 2
            }
        });
        let wake = earliest(deadline, keep_alive).map(tokio::time::Instant::from_std);
        tokio::select! {
            biased;
            taken = poll_fn(|cx| transport.poll_transmit_batch(cx, now(), &mut batch, WRITE_BATCH)) => {
                if taken.is_none() {
                    break; // Closed: nothing more to write
                }
                if let Err(error) = write_batch(&mut socket, &mut batch).await {
                    // What the socket never took goes back, to be handed back by
                    // `take_unsent` with the rest (G3); the frame it failed on is gone
                    // with the transport.
                    let requeued = transport.requeue_unwritten(batch.drain(..));
                    tracing::debug!(%id, %error, requeued, "write failed");
                    let _ = transport.handle_transport_lost(TransportLoss::Error, now());
                }
            }
            () = poll_fn(|cx| transport.poll_inbound_room(cx)), if inbound.stalled.is_some() => {
                if let Some(message) = inbound.stalled.take() {
                    deliver(&transport, &mut inbound, message, config);
                }
            }
            read = socket.next(), if reading && inbound.stalled.is_none() => {
                last_heard = now();
                pinged = false;
                match read {
                    Some(Ok(WireFrame::Message(message))) => {
                        deliver(&transport, &mut inbound, message, config);
                    }
                    Some(Ok(WireFrame::Ping(payload))) => {
                        if config.answer_pings && socket.send(WireFrame::Pong(payload)).await.is_err() {
                            let _ = transport.handle_transport_lost(TransportLoss::Error, now());
                        }
                    }
                    Some(Ok(WireFrame::Pong(_))) => {}
                    Some(Ok(WireFrame::Close(frame))) => {
                        let _ = transport.handle_peer_close(frame, now());
                    }
                    Some(Err(error)) => {
                        tracing::debug!(%id, %error, "read failed");
                        reading = false;
                        let _ = transport.handle_transport_lost(TransportLoss::Error, now());
                    }
                    None => {
                        reading = false;
                        let _ = transport.handle_transport_lost(TransportLoss::Eof, now());
                    }
                }
            }
            () = sleep_until(wake.unwrap_or_else(far_future)), if wake.is_some() => {
                let now = now();
                transport.handle_timeout(now);
                if let Some(idle) = idle {
                    if now >= last_heard + idle {
                        let frame = CloseFrame::internal(CloseCode::GOING_AWAY, "idle timeout");
                        let _ = transport.close(frame, now);
                    } else if !pinged && now >= last_heard + idle / 2 {
                        pinged = true;
                        if transport.phase().is_open() {
                            let _ = socket.send(WireFrame::Ping(Vec::new())).await;
                        }
                    }
                }
            }
        }
    }
    // Closed: the handshake is over (or cut short). End the transport.
    let _ = socket.close().await;
}

/// Frames taken from the core at a time: one lock and one flush for up to this many
/// (a broadcast burst is written with one `write` instead of one per message).
const WRITE_BATCH: usize = 64;

/// Writes a batch of frames in order and flushes once. On success the batch is left
/// empty; on a write error it holds, in order, the frames the socket never took (the
/// one it failed on is gone with the transport, as its own buffers are).
async fn write_batch<S, E>(socket: &mut S, batch: &mut Vec<Frame>) -> Result<(), E>
where
    S: Sink<WireFrame, Error = E> + Unpin,
{
    // Taken from the back, so what is left on an error stays in order.
    batch.reverse();
    while let Some(frame) = batch.pop() {
        let wire = match frame {
            Frame::Message(message) => WireFrame::Message(message),
            Frame::Close(frame) => WireFrame::Close(frame),
        };
        if let Err(error) = socket.feed(wire).await {
            batch.reverse();
            return Err(error);
        }
    }
    socket.flush().await
}

/// Hands an application message to the core: the first to the authenticator, the
/// rest to the inbound hold, within the pre-authentication limits.
fn deliver(transport: &Transport, inbound: &mut Inbound, message: Message, config: &DriverConfig) {
    let now = now();
    let authenticated = matches!(transport.phase(), Phase::Authenticated | Phase::Ready);
    if !authenticated {
        inbound.pre_auth += 1;
        let too_big = message.len() > config.max_pre_auth_message_bytes;
        if too_big || inbound.pre_auth > config.max_pre_auth_messages {
            let reason = if too_big {
                "message too big before authentication"
            } else {
                "too many messages before authentication"
            };
            let frame = CloseFrame::internal(CloseCode::POLICY_VIOLATION, reason);
            let _ = transport.close(frame, now);
            return;
        }
    }
    if let Some(first) = inbound.first.take() {
        let _ = first.send(message);
        return;
    }
    match transport.handle_message(message, now) {
        Ok(()) | Err(InboundError::Closed) => {}
        Err(InboundError::Full(message)) => inbound.stalled = Some(message),
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}
