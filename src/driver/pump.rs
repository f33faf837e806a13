//! The pump: one connection's socket, driven by its core (see the module docs of
//! `driver`).
//!
//! One poll function drives everything the socket does, so that no part waits on
//! another: writing (a batch at a time, then one flush), reading, the inbound
//! back-pressure and the deadline sleep. A write the peer does not read never blocks
//! the rest — the connection's deadlines and a slow-consumer close still take effect
//! while it is pending (**G5**), and a peer's Close or a lost transport is still seen.

use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::oneshot;
use tokio::time::{Sleep, sleep_until};

use crate::core::{CrateClose, Frame, InboundError, Message, Phase, TransportLoss};
use crate::handle::Transport;

use super::{DriverConfig, SocketLink, WireFrame, now};

/// Frames taken from the core at a time: one lock and one flush for up to this many
/// (a broadcast burst is written with one `write` instead of one per message).
const WRITE_BATCH: usize = 64;

/// Batches written back to back before the pump also polls its reads and its clock
/// (it always does once the outbox is empty or the socket is busy).
const FAIR_AFTER: u8 = 8;

/// Once the connection is `Closed`, ending the transport (flushing and closing the
/// socket) waits at most this long: a peer that stopped reading cannot hold the task.
const END_TIMEOUT: Duration = Duration::from_secs(1);

/// What the pump does with the client's application messages.
struct Inbound {
    /// In the first-message mode, the first message goes to the authenticator, not
    /// the hold.
    first: Option<oneshot::Sender<Message>>,
    /// A message the hold had no room for, retried once it has (back-pressure).
    stalled: Option<Message>,
}

/// The writing side: frames taken from the core and not yet handed to the socket,
/// and the control frames of our own (pong, keep-alive ping), written between batches.
struct Writer {
    /// Taken from the core, in reverse order (the next to write is last).
    batch: Vec<Frame>,
    /// A control frame being written, ahead of the batch.
    control: Option<WireFrame>,
    /// Frames handed to the socket since its last flush.
    unflushed: bool,
    /// Batches written back to back since the pump last polled the rest.
    streak: u8,
    /// The connection was `Closed` while a write was still pending.
    cut_off: bool,
    /// A Pong owed to the peer's latest Ping (only the latest is answered, as RFC
    /// 6455 §5.5.3 allows).
    pong: Option<Vec<u8>>,
    /// A keep-alive Ping is due.
    ping: bool,
    /// When the socket last refused to take anything (a write or flush `Pending`)
    /// with no progress since; `None` while writes progress or nothing waits.
    stalled_since: Option<Instant>,
    /// The adapters' framing, which counts the bytes it writes: a frame written in
    /// part is progress too.
    link: Option<SocketLink>,
    /// The link's count of bytes written when the pump last looked.
    seen_written: u64,
}

/// What woke the pump.
enum Event<E> {
    /// The connection is `Closed`: nothing more will be written.
    Closed,
    /// The socket refused a write or a flush.
    WriteFailed(E),
    /// A batch went out; poll again (the deadline may have moved).
    Wrote,
    /// The inbound hold has room for the stalled message.
    Room,
    /// The socket produced a frame, an error, or its end.
    Read(Option<Result<WireFrame, E>>),
    /// The sleep ended: a deadline or the keep-alive is due.
    Timer,
}

/// What the pump knows of its socket beyond `Stream + Sink`.
pub(super) struct Wiring {
    /// Answer each Ping with a Pong (the socket does not).
    pub(super) answer_pings: bool,
    /// The adapters' framing: told here once the connection is authenticated (its
    /// size limit changes), and telling the stall clock about partial writes.
    pub(super) link: Option<SocketLink>,
}

impl Wiring {
    /// A socket of the user's own (`Service::run`): as configured, no limit to mark.
    pub(super) fn of(config: &DriverConfig) -> Wiring {
        Wiring {
            answer_pings: config.answer_pings,
            link: None,
        }
    }
}

/// Runs the socket until the connection is `Closed`, then ends the transport.
pub(super) async fn run<S, E>(
    mut socket: S,
    transport: Transport,
    config: &DriverConfig,
    first: Option<oneshot::Sender<Message>>,
    wiring: Wiring,
) where
    S: Stream<Item = Result<WireFrame, E>> + Sink<WireFrame, Error = E> + Unpin + Send,
    E: super::SocketError,
{
    let id = transport.id();
    let mut inbound = Inbound {
        first,
        stalled: None,
    };
    let mut writer = Writer {
        batch: Vec::with_capacity(WRITE_BATCH),
        control: None,
        unflushed: false,
        streak: 0,
        cut_off: false,
        pong: None,
        ping: false,
        stalled_since: None,
        link: wiring.link,
        seen_written: 0,
    };
    let answer_pings = wiring.answer_pings;
    let mut clock = Clock {
        sleep: pin!(sleep_until(far_future())),
        armed: None,
        idle: config.idle_timeout,
        last_heard: now(),
        pinged: false,
        stall: config.stall_timeout,
    };
    let mut reading = true;
    // The peer broke the protocol: our Close (1002, 1007, 1009) is queued and nothing
    // more is read; the transport ends once it is written (RFC 6455 §7.1.7, §7.4.1).
    let mut failing = false;
    loop {
        let event = poll_fn(|cx| {
            // Before reading: a socket that checks frame sizes at their header must
            // know the connection is authenticated before it reads the next one.
            if let Some(link) = &writer.link {
                if !link.is_authenticated() && authenticated(&transport) {
                    link.authenticated();
                }
            }
            let reads = reading && inbound.stalled.is_none();
            poll_event(
                cx,
                &mut socket,
                &transport,
                &mut writer,
                &inbound,
                reads,
                &mut clock,
            )
        })
        .await;
        match event {
            Event::Closed => break,
            Event::Wrote => {
                if failing {
                    end_if_close_written(&transport, &writer);
                }
            }
            Event::WriteFailed(error) => {
                // What the socket never took goes back, to be handed back by
                // `take_unsent` with the rest (G3); the frame it failed on is gone
                // with the transport.
                let requeued = transport.requeue_unwritten(writer.unwritten());
                tracing::debug!(%id, %error, requeued, "write failed");
                let _ = transport.handle_transport_lost(TransportLoss::Error, now());
            }
            Event::Room => {
                if let Some(message) = inbound.stalled.take() {
                    deliver(&transport, &mut inbound, message, config);
                }
            }
            Event::Read(read) => {
                clock.heard();
                match read {
                    Some(Ok(WireFrame::Message(message))) => {
                        deliver(&transport, &mut inbound, message, config);
                    }
                    Some(Ok(WireFrame::Ping(payload))) => {
                        if answer_pings {
                            writer.pong = Some(payload);
                        }
                    }
                    Some(Ok(WireFrame::Pong(_))) => {}
                    Some(Ok(WireFrame::Close(frame))) => {
                        let _ = transport.handle_peer_close(frame, now());
                    }
                    Some(Err(error)) => {
                        reading = false;
                        if let Some(close) = error.failure() {
                            // RFC 6455 §7.4.1: the Close says why (1002, 1007, 1009).
                            let kind = close.cause().as_str();
                            tracing::debug!(%id, %error, kind, "protocol failure");
                            transport.raise(close, now());
                            failing = true;
                            end_if_close_written(&transport, &writer);
                        } else {
                            tracing::debug!(%id, %error, "read failed");
                            let _ = transport.handle_transport_lost(TransportLoss::Error, now());
                        }
                    }
                    None => {
                        reading = false;
                        let _ = transport.handle_transport_lost(TransportLoss::Eof, now());
                    }
                }
            }
            Event::Timer => {
                let now = now();
                transport.handle_timeout(now);
                match clock.keep_alive(now) {
                    Some(KeepAlive::Close) => {
                        transport.raise(CrateClose::IdleTimeout, now);
                        // The close handshake's own timeout takes over; a keep-alive
                        // left armed in the past would fire on every poll.
                        clock.idle = None;
                    }
                    Some(KeepAlive::Ping) => writer.ping = true,
                    None => {}
                }
                if clock.stalled(&writer, now) {
                    // The socket accepted nothing for the whole stall timeout while
                    // frames waited: a slow consumer, whatever it reads (1013).
                    tracing::debug!(%id, "write stalled");
                    transport.raise(CrateClose::SlowConsumer, now);
                    // Once: the close handshake's timeout takes over.
                    clock.stall = None;
                }
            }
        }
    }
    // Closed: the handshake is over (or cut short). What was taken and never handed
    // to the socket goes back for `take_unsent` (G3); then end the transport.
    let requeued = transport.requeue_unwritten(writer.unwritten());
    if requeued > 0 {
        tracing::debug!(%id, requeued, "closed with frames unwritten");
    }
    // Closed while a write was still pending (the close timeout ran out on a peer
    // that stopped reading): our Close never went out, and `close()` would queue a
    // Close without our code behind the stuck data. Dropping the socket ends it.
    if !writer.cut_off {
        let _ = tokio::time::timeout(END_TIMEOUT, socket.close()).await;
    }
    // The adapters' framing hands back, as it is dropped, what it never wrote whole;
    // older than what was taken after it, so it goes back in front of it (G3).
    drop(socket);
    if let Some(link) = &writer.link {
        let handed_back = link.take_handed_back();
        if !handed_back.is_empty() {
            let requeued = transport.requeue_unwritten(handed_back.into_iter().map(Frame::Message));
            tracing::debug!(%id, requeued, "the socket handed back messages it never wrote");
        }
    }
}

/// Polls, in this order, the write side, the clock, the inbound room and the
/// socket's next frame; returns the first event. Writing comes first, one batch per
/// poll; the others are polled whenever writing pauses and after every
/// `FAIR_AFTER`th batch in a row, so a busy outbox cannot starve the reads or the
/// deadlines, and the clock comes before the reads, so a busy peer cannot starve the
/// deadlines either.
fn poll_event<S, E>(
    cx: &mut Context<'_>,
    socket: &mut S,
    transport: &Transport,
    writer: &mut Writer,
    inbound: &Inbound,
    reads: bool,
    clock: &mut Clock<'_>,
) -> Poll<Event<E>>
where
    S: Stream<Item = Result<WireFrame, E>> + Sink<WireFrame, Error = E> + Unpin,
{
    let wrote = match writer.poll_write(cx, socket, transport) {
        Poll::Ready(Event::Wrote) => {
            // Batch after batch without a pause: every `FAIR_AFTER`th, look at the
            // rest too, so an outbox that never empties cannot starve the reads or
            // the deadlines (looking after every batch costs a read syscall each).
            writer.streak += 1;
            if writer.streak < FAIR_AFTER {
                return Poll::Ready(Event::Wrote);
            }
            writer.streak = 0;
            true
        }
        Poll::Ready(event) => return Poll::Ready(event),
        Poll::Pending => {
            writer.streak = 0;
            false
        }
    };
    // The clock before the reads: a peer that keeps the socket readable must not
    // put off the deadlines (and the sleep sees the deadline as the write side left
    // it, e.g. a slow-consumer close `poll_busy` just started).
    if clock.poll(cx, transport, writer.stalled_since).is_ready() {
        return Poll::Ready(Event::Timer);
    }
    if inbound.stalled.is_some() && transport.poll_inbound_room(cx).is_ready() {
        return Poll::Ready(Event::Room);
    }
    if reads {
        if let Poll::Ready(read) = socket.poll_next_unpin(cx) {
            return Poll::Ready(Event::Read(read));
        }
    }
    if wrote {
        Poll::Ready(Event::Wrote)
    } else {
        Poll::Pending
    }
}

/// The pump's one sleep: until the core's next deadline or the keep-alive's.
struct Clock<'a> {
    sleep: Pin<&'a mut Sleep>,
    /// What the sleep is set to; `None` while unset or spent.
    armed: Option<tokio::time::Instant>,
    idle: Option<Duration>,
    /// When the peer last sent anything.
    last_heard: Instant,
    /// A keep-alive Ping went out since then.
    pinged: bool,
    /// `DriverConfig::stall_timeout`, until it has closed the connection.
    stall: Option<Duration>,
}

/// What the keep-alive asks for when the clock fires.
enum KeepAlive {
    /// Nothing heard for the whole idle timeout.
    Close,
    /// Nothing heard for half of it.
    Ping,
}

impl Clock<'_> {
    /// Re-reads the deadline on every poll — a deadline another thread moved wakes
    /// the pump through the core (**G5**, **G6**) — resets the sleep if it changed,
    /// and polls it. `Ready` once it fires (it is then spent).
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        transport: &Transport,
        stalled_since: Option<Instant>,
    ) -> Poll<()> {
        // Keep-alive: ping after half the idle timeout, close after all of it.
        let keep_alive = self.idle.map(|idle| {
            if self.pinged {
                self.last_heard + idle
            } else {
                self.last_heard + idle / 2
            }
        });
        let stall = self.stall.zip(stalled_since).map(|(t, since)| since + t);
        let keep_alive = earliest(keep_alive, stall);
        let Some(wake) = earliest(transport.poll_timeout(), keep_alive) else {
            self.armed = None;
            return Poll::Pending;
        };
        let wake = tokio::time::Instant::from_std(wake);
        if self.armed != Some(wake) {
            self.sleep.as_mut().reset(wake);
            self.armed = Some(wake);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.armed = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// The peer sent something.
    fn heard(&mut self) {
        self.last_heard = now();
        self.pinged = false;
    }

    /// True once the socket has accepted nothing for the stall timeout while frames
    /// wait to be written.
    fn stalled(&self, writer: &Writer, now: Instant) -> bool {
        self.stall
            .zip(writer.stalled_since)
            .is_some_and(|(stall, since)| now >= since + stall)
    }

    /// What the keep-alive asks for at `now`, if anything.
    fn keep_alive(&mut self, now: Instant) -> Option<KeepAlive> {
        let idle = self.idle?;
        if now >= self.last_heard + idle {
            Some(KeepAlive::Close)
        } else if !self.pinged && now >= self.last_heard + idle / 2 {
            self.pinged = true;
            Some(KeepAlive::Ping)
        } else {
            None
        }
    }
}

impl Writer {
    /// Moves frames towards the socket: `Ready` with an event once a batch is flushed,
    /// the socket fails, or the connection is `Closed`; `Pending` when the socket is
    /// busy (then the core still gets the time and wakes us, see
    /// `Transport::poll_busy`) or there is nothing to write (the core wakes us when
    /// there is).
    fn poll_write<S, E>(
        &mut self,
        cx: &mut Context<'_>,
        socket: &mut S,
        transport: &Transport,
    ) -> Poll<Event<E>>
    where
        S: Sink<WireFrame, Error = E> + Unpin,
    {
        if self.control.is_none() && self.batch.is_empty() && !self.unflushed {
            self.control = self.control_due(transport);
            if self.control.is_none() {
                let polled = transport.poll_transmit_batch(cx, now(), &mut self.batch, WRITE_BATCH);
                self.batch.reverse();
                match polled {
                    Poll::Ready(None) => return Poll::Ready(Event::Closed),
                    Poll::Ready(Some(_)) => {}
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
        while self.control.is_some() || !self.batch.is_empty() {
            match socket.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => self.stalled_since = None,
                Poll::Ready(Err(error)) => return self.failed(error),
                Poll::Pending => return self.busy(cx, transport),
            }
            let wire = match self.control.take() {
                Some(control) => control,
                None => match self.batch.pop() {
                    Some(Frame::Message(message)) => WireFrame::Message(message),
                    Some(Frame::Close(frame)) => WireFrame::Close(frame),
                    None => unreachable!("the loop checked there is a frame"),
                },
            };
            self.unflushed = true;
            if let Err(error) = socket.start_send_unpin(wire) {
                return self.failed(error);
            }
        }
        match socket.poll_flush_unpin(cx) {
            Poll::Ready(Ok(())) => {
                self.stalled_since = None;
                self.unflushed = false;
                Poll::Ready(Event::Wrote)
            }
            Poll::Ready(Err(error)) => self.failed(error),
            Poll::Pending => self.busy(cx, transport),
        }
    }

    /// The socket failed: nothing is left to flush (what it did not take is handed
    /// back by the caller through `unwritten`).
    fn failed<E>(&mut self, error: E) -> Poll<Event<E>> {
        self.unflushed = false;
        self.control = None;
        Poll::Ready(Event::WriteFailed(error))
    }

    /// The socket is busy: the core gets the time and our waker meanwhile (**G5**,
    /// **G6**); `Closed` ends the pump even though the socket never drained.
    fn busy<E>(&mut self, cx: &mut Context<'_>, transport: &Transport) -> Poll<Event<E>> {
        // Frames wait and the socket took nothing: the stall starts (or goes on) —
        // unless it wrote part of a frame since the last look, which restarts it.
        if let Some(written) = self.link.as_ref().map(SocketLink::written) {
            if written != self.seen_written {
                self.seen_written = written;
                self.stalled_since = None;
            }
        }
        self.stalled_since.get_or_insert_with(now);
        match transport.poll_busy(cx, now()) {
            Poll::Ready(()) => {
                self.cut_off = true;
                Poll::Ready(Event::Closed)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// A control frame of ours due now: never after our Close, and only while the
    /// connection is open.
    fn control_due(&mut self, transport: &Transport) -> Option<WireFrame> {
        if self.pong.is_none() && !self.ping {
            return None;
        }
        // Our Close is taken only once the phase is `Closing`: nothing of ours
        // follows it (**G3**).
        if !transport.phase().is_open() {
            self.pong = None;
            self.ping = false;
            return None;
        }
        if let Some(payload) = self.pong.take() {
            return Some(WireFrame::Pong(payload));
        }
        self.ping = false;
        Some(WireFrame::Ping(Vec::new()))
    }

    /// The frames taken and never handed to the socket, in order, leaving none.
    fn unwritten(&mut self) -> impl Iterator<Item = Frame> + '_ {
        self.batch.drain(..).rev()
    }
}

/// After a protocol failure: once our Close is handed to the socket and flushed,
/// _Fail the WebSocket Connection_ — end the transport without waiting for an answer
/// we would not read (RFC 6455 §7.1.7). The record keeps the failure's cause (**G4**).
fn end_if_close_written(transport: &Transport, writer: &Writer) {
    let flushed = writer.batch.is_empty() && writer.control.is_none() && !writer.unflushed;
    if flushed && transport.close_record().is_some_and(|r| r.close_sent) {
        let _ = transport.handle_transport_lost(TransportLoss::Error, now());
    }
}

/// Hands an application message to the core: the first to the authenticator, the
/// rest to the inbound hold. Until authentication succeeds every message is held to
/// the pre-authentication size limit; how many may wait is the inbound hold's bound
/// ([`Config::inbound_capacity`](crate::core::Config::inbound_capacity)): a client
/// that pipelines its first messages behind the auth message has them held and
/// delivered in order once `Ready`.
fn deliver(transport: &Transport, inbound: &mut Inbound, message: Message, config: &DriverConfig) {
    let now = now();
    if !authenticated(transport) && message.len() > config.max_pre_auth_message_bytes {
        transport.raise(CrateClose::PreAuthTooBig, now);
        return;
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

/// True once the connection is authenticated (or `Ready`).
fn authenticated(transport: &Transport) -> bool {
    matches!(transport.phase(), Phase::Authenticated | Phase::Ready)
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
