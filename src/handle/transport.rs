//! [`Transport`]: the driver's handle — frames out, frames and events in, timers.

use std::task::{Context, Poll};
use std::time::Instant;

use crate::core::{
    CloseFrame, CloseRecord, CrateClose, Frame, InboundError, Input, Message, Rejected, Step,
    TransportLoss,
};
use crate::shared::Shared;
use crate::shared::sync::Arc;

/// The handle of the task that drives one connection's transport, usable from any
/// thread. Obtained from [`Connection::transport`](crate::handle::Connection::transport) in
/// any state. A driver loop:
///
/// 1. write every frame [`poll_transmit`](Self::poll_transmit) yields (our Close is
///    always the last);
/// 2. feed what the socket produced: [`handle_message`](Self::handle_message),
///    [`handle_peer_close`](Self::handle_peer_close),
///    [`handle_transport_lost`](Self::handle_transport_lost), or
///    [`close`](Self::close) for a protocol error;
/// 3. sleep until [`poll_timeout`](Self::poll_timeout) and call
///    [`handle_timeout`](Self::handle_timeout);
///
/// until [`poll_transmit`](Self::poll_transmit) returns `Ready(None)` (or
/// [`poll_busy`](Self::poll_busy) returns `Ready`): the connection is closed and the
/// transport can be dropped. While a write is pending (the peer reads slowly), steps
/// 2 and 3 go on, with [`poll_busy`](Self::poll_busy) in place of step 1.
/// `poll_transmit`'s waker is also woken when the deadline changes, so the loop
/// re-reads `poll_timeout`.
///
/// One task drives a connection: `poll_transmit` and `poll_inbound_room` each keep a
/// single waker, the last poller's (as `AtomicWaker` does). Clones are for the
/// non-waiting calls (`next_frame`, `handle_*`, `close`) from other threads.
///
/// One turn of each step, by hand:
///
/// ```
/// use std::task::{Context, Poll, Waker};
/// use std::time::Instant;
/// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Frame, Message, Phase};
///
/// let now = Instant::now();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// let conn = conn.authenticate(None, now)?.ready(now)?;
/// let transport = conn.transport();
/// conn.sender().send(Message::text("hi"))?;
/// let mut batch = Vec::new(); // 1. write
/// assert_eq!(transport.next_frames(now, &mut batch, 64), 1);
/// transport.handle_message(Message::text("hello"), now)?; // 2. feed what was read
/// transport.handle_peer_close(Some(CloseFrame::normal()), now)?;
/// assert_eq!(transport.poll_timeout(), Some(now + Config::default().close_timeout)); // 3. timers
/// let frame = transport.next_frame(now); // 1. our answer, last (G3)
/// assert_eq!(frame, Some(Frame::Close(Some(CloseFrame::normal()))));
/// assert_eq!(transport.phase(), Phase::Closed);
/// let mut cx = Context::from_waker(Waker::noop());
/// assert_eq!(transport.poll_transmit(&mut cx, now), Poll::Ready(None)); // drop the socket
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Transport {
    shared: Arc<Shared>,
}

crate::handle::common::shared_handle!(Transport);

impl Transport {
    /// How the connection is closing or closed; `None` while it is not.
    pub fn close_record(&self) -> Option<CloseRecord> {
        self.shared.lock().close_record()
    }

    /// The next frame to write, if there is one now (see
    /// [`Connection::poll_transmit`](crate::handle::Connection::poll_transmit)).
    pub fn next_frame(&self, now: Instant) -> Option<Frame> {
        self.shared
            .run(|inner, wakeups| inner.next_frame(now, wakeups))
    }

    /// The next frame to write: `Ready(Some(frame))`; `Pending` (the waker is woken
    /// when a frame is queued or the state or deadline changes); or `Ready(None)` once
    /// the connection is closed — nothing more will ever be written.
    pub fn poll_transmit(&self, cx: &mut Context<'_>, now: Instant) -> Poll<Option<Frame>> {
        self.shared
            .run(|inner, wakeups| inner.poll_frame(cx, now, wakeups))
    }

    /// Up to `max` frames to write now, appended to `out` in order, in one critical
    /// section; returns how many. Our Close is the last frame: a batch ends with it,
    /// and nothing follows it (**G3**). A driver that writes in batches takes the
    /// connection's lock once per batch instead of once per frame, and can flush the
    /// socket once per batch.
    pub fn next_frames(&self, now: Instant, out: &mut Vec<Frame>, max: usize) -> usize {
        match self.shared.take_frames(None, now, out, max) {
            Poll::Ready(Some(n)) => n,
            _ => 0,
        }
    }

    /// [`poll_transmit`](Self::poll_transmit) in batches: `Ready(Some(n))` with `n`
    /// frames (at most `max`, at least one) appended to `out`; `Pending`; or
    /// `Ready(None)` once the connection is closed. Whenever the batch took everything
    /// that was ready — fewer than `max` frames, or none — `cx`'s waker is registered
    /// as well, so a driver may write the batch and then wait without polling again:
    /// the next frame, change of state or change of deadline wakes it (**G6**); a
    /// batch that itself changed the state (it took our Close) has woken it already.
    /// A `max` of 0 counts as 1.
    pub fn poll_transmit_batch(
        &self,
        cx: &mut Context<'_>,
        now: Instant,
        out: &mut Vec<Frame>,
        max: usize,
    ) -> Poll<Option<usize>> {
        self.shared.take_frames(Some(cx), now, out, max)
    }

    /// For a driver whose socket is still busy with frames it took earlier — the peer
    /// reads slowly or not at all: feeds the time input `now` and makes `cx`'s waker
    /// the one woken when there is more to write or the state or deadline changes,
    /// without taking anything. `Ready(())` once the connection is `Closed` (stop
    /// writing; hand what was not written to
    /// [`requeue_unwritten`](Self::requeue_unwritten) before the driver reports it
    /// is done, so that [`take_unsent`](Self::take_unsent) afterwards hands back
    /// every message (**G3**)), else `Pending`.
    ///
    /// A driver polls this while a write is pending, next to its reads and its
    /// [`poll_timeout`](Self::poll_timeout) sleep, so that a peer that stops reading
    /// cannot stop the connection's clock: a slow-consumer close requested meanwhile
    /// ([`OverflowPolicy::Close`](crate::core::OverflowPolicy::Close)) takes effect and its
    /// close timeout runs, and the connection reaches `Closed` whether or not the
    /// socket ever drains (**G5**, **G6**).
    pub fn poll_busy(&self, cx: &mut Context<'_>, now: Instant) -> Poll<()> {
        self.shared.poll_busy(cx, now)
    }

    /// Hands back frames taken with [`next_frames`](Self::next_frames) or
    /// [`poll_transmit_batch`](Self::poll_transmit_batch) (or one at a time) that the
    /// transport failed to write: the messages go back to the front of the outbox in
    /// their order, ahead of anything queued since, so that nothing taken is lost
    /// silently (**G3**). Feed [`handle_transport_lost`](Self::handle_transport_lost)
    /// next: the connection is then `Closed` and [`take_unsent`](Self::take_unsent)
    /// hands them back with the rest. (If the connection is still open they are simply
    /// written again.) A Close frame among them is dropped — ours counted as sent when
    /// it was taken, and the transport that failed cannot carry it. Returns how many
    /// messages went back. The outbox may exceed its capacity by that many: they were
    /// already in it.
    pub fn requeue_unwritten(&self, frames: impl IntoIterator<Item = Frame>) -> usize {
        self.shared.run(|inner, _| inner.conn.requeue(frames))
    }

    /// An application message from the peer. Before `Ready` it is held (**G2**); past
    /// [`Config::inbound_capacity`](crate::core::Config::inbound_capacity) held messages the
    /// connection is closed with 1008. Once `Ready`, a full hold hands the message
    /// back as [`InboundError::Full`]: wait with
    /// [`poll_inbound_room`](Self::poll_inbound_room) and retry. Refused with
    /// [`InboundError::Closed`] once the connection is closing.
    pub fn handle_message(&self, message: Message, now: Instant) -> Result<(), InboundError> {
        self.shared.run(|inner, wakeups| {
            inner.tick(now, wakeups);
            inner.conn.push_inbound(message, now)
        })
    }

    /// `Ready` when the inbound hold has room again (or the connection is closing).
    pub fn poll_inbound_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.shared
            .run(|inner, wakeups| inner.poll_inbound_room(cx, wakeups))
    }

    /// The peer's Close frame arrived (`None`: no status code).
    pub fn handle_peer_close(
        &self,
        frame: Option<CloseFrame>,
        now: Instant,
    ) -> Result<Step, Rejected> {
        self.shared.handle(Input::PeerClose(frame), now)
    }

    /// The transport ended without a close handshake.
    pub fn handle_transport_lost(
        &self,
        loss: TransportLoss,
        now: Instant,
    ) -> Result<Step, Rejected> {
        self.shared.handle(Input::TransportLost(loss), now)
    }

    /// Closes from the driver's side, e.g. with 1002 for a protocol error or 1009 for
    /// an oversized frame. The first close wins (**G4**).
    pub fn close(&self, frame: CloseFrame, now: Instant) -> Result<Step, Rejected> {
        self.shared.handle(Input::Close(frame), now)
    }

    /// Closes with one of the closes the crate raises itself — an idle timeout, a
    /// pre-authentication limit, a handler's panic — with its cause, code and reason
    /// from the one table, [`CrateClose`]. Like every close, the first one stands
    /// (**G4**).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::core::{CloseCause, CrateClose};
    /// use ws_lifecycle::{Config, Connection, ConnectionId};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let transport = conn.transport();
    /// transport.raise(CrateClose::IdleTimeout, now);
    /// assert_eq!(transport.close_record().unwrap().cause, CloseCause::IdleTimeout);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn raise(&self, close: CrateClose, now: Instant) {
        self.shared.run(|inner, wakeups| {
            inner.tick(now, wakeups).conn.raise(close, now);
        });
    }

    /// Fires what is due at `now`: the lifecycle's deadlines, the startup gate's hold
    /// deadline (**G5**, **G8**).
    pub fn handle_timeout(&self, now: Instant) -> Option<Step> {
        self.shared.handle_timeout(now)
    }

    /// The next time to call [`handle_timeout`](Self::handle_timeout): the
    /// lifecycle's next deadline (see
    /// [`Lifecycle::poll_timeout`](crate::core::Lifecycle::poll_timeout)) or the earliest
    /// timeout of a pending `*_until` wait, which the time input expires (**G6**).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.shared.lock().next_deadline()
    }

    /// Messages and events that will never be written; see
    /// [`Connection::take_unsent`](crate::handle::Connection::take_unsent).
    pub fn take_unsent(&self) -> Vec<Message> {
        self.shared.run(|inner, _| inner.conn.take_unsent())
    }
}
