//! [`Sender`]: send from any thread or task, atomically with respect to close.

use std::future::Future;
use std::time::Instant;

use crate::core::{CloseFrame, CloseRecord, Input, Message, Rejected, SendError, SendErrorKind};
use crate::shared::sync::Arc;
use crate::shared::wait::Wait;
use crate::shared::{Shared, WaitFor};

/// A cloneable handle that sends to one connection from any thread or task. Obtained
/// only from [`Connection<Ready>::sender`](crate::handle::Connection::sender), so it cannot
/// exist before the connection is ready (**G1**, **G2**).
///
/// `send` and `close` are atomic with respect to each other (**G3**, **G4**): a
/// message is either queued before the Close frame — and then written before it — or
/// handed back inside the error; never both, never after the Close. Concurrent closes
/// produce one Close frame; the first code wins, and every caller sees the same cause
/// and frame in the [`CloseRecord`] it gets back (the record's progress fields —
/// `close_sent`, `peer_closed`, `end` — are a snapshot of the moment of the call).
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Frame, Message};
///
/// let now = Instant::now();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// let conn = conn.authenticate(None, now)?.ready(now)?;
/// let (sender, transport) = (conn.sender(), conn.transport());
/// let racer = sender.clone();
/// let racing = std::thread::spawn(move || racer.send(Message::text("racing")));
/// sender.close(CloseFrame::normal()); // races the send
/// let sent = racing.join().unwrap();
/// let mut frames = Vec::new();
/// transport.next_frames(now, &mut frames, 10);
/// // Written before our Close, or handed back: never after it, never lost (G3).
/// assert_eq!(frames.len(), if sent.is_ok() { 2 } else { 1 });
/// assert!(matches!(frames.last(), Some(Frame::Close(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Sender {
    shared: Arc<Shared>,
}

crate::handle::common::shared_handle!(Sender);

impl Sender {
    /// Queues `message` for the peer, or hands it back: `Closed` once a close was
    /// requested, received or forced (**G3**); `Full` when the outbox is at
    /// [`Config::outbox_capacity`](crate::core::Config::outbox_capacity) or the message
    /// would take it past [`Config::outbox_bytes`](crate::core::Config::outbox_bytes),
    /// and the policy is
    /// [`OverflowPolicy::Reject`](crate::core::OverflowPolicy::Reject) (with
    /// [`OverflowPolicy::Close`](crate::core::OverflowPolicy::Close) the connection is
    /// closed instead and the message comes back as `Closed`).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::core::SendErrorKind;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Frame, Message};
    ///
    /// let now = Instant::now();
    /// let mut config = Config::default();
    /// config.outbox_capacity = 1;
    /// let conn = Connection::new(ConnectionId::new(1), config).accept(now)?;
    /// let conn = conn.authenticate(None, now)?.ready(now)?;
    /// let (sender, transport) = (conn.sender(), conn.transport());
    /// sender.send(Message::text("1"))?;
    /// let full = sender.send(Message::text("2")).unwrap_err();
    /// assert_eq!(full.kind, SendErrorKind::Full); // the peer reads slowly
    /// assert_eq!(transport.next_frame(now), Some(Frame::Message(Message::text("1"))));
    /// sender.send(full.into_message())?; // room again: retry
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&self, message: Message) -> Result<(), SendError> {
        self.shared.send(message)
    }

    /// Queues `message`, waiting for room in a full outbox instead of applying the
    /// overflow policy. Completes with the message handed back if the connection
    /// closes first (**G3**, **G6**). Dropping the future before it completes drops
    /// the message unqueued: nothing is half-sent, but the message is gone — to bound
    /// the wait and keep the message, use `send` and retry on `Full`.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Frame, Message};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let now = Instant::now();
    /// let mut config = Config::default();
    /// config.outbox_capacity = 1;
    /// let conn = Connection::new(ConnectionId::new(1), config).accept(now)?;
    /// let conn = conn.authenticate(None, now)?.ready(now)?;
    /// let (sender, transport) = (conn.sender(), conn.transport());
    /// sender.send(Message::text("1"))?; // the outbox is full now
    /// let waiting = tokio::spawn(sender.send_async(Message::text("2")));
    /// tokio::task::yield_now().await; // it waits for room
    /// assert_eq!(transport.next_frame(now), Some(Frame::Message(Message::text("1")))); // wakes it (G6)
    /// waiting.await??;
    /// assert_eq!(transport.next_frame(now), Some(Frame::Message(Message::text("2"))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_async(
        &self,
        message: Message,
    ) -> impl Future<Output = Result<(), SendError>> + Send + use<> {
        Wait::new(
            self.shared.clone(),
            WaitFor::Room,
            Some(message),
            |inner, message, _wakeups| {
                let msg = message.take()?;
                if inner.conn.check_send().is_err() {
                    return Some(Err(SendError::new(SendErrorKind::Closed, msg)));
                }
                if !inner.conn.check_room_for(msg.len()) {
                    *message = Some(msg);
                    return None;
                }
                Some(inner.conn.send(msg))
            },
        )
    }

    /// Closes the connection with `frame` (**G4**): the first close of any kind
    /// wins, and every caller gets the same record of it. Queued messages are still
    /// written before the Close; from now on every send is refused (**G3**).
    ///
    /// The close is stamped with the connection's clock, which arms the close
    /// handshake's timeout: its registry's — the driver's, when a
    /// `Service` (feature `tokio`) runs it (tokio's, paused or not) — else the
    /// system's monotonic clock; never behind the latest time the connection has
    /// seen. [`close_at`](Self::close_at) takes the time explicitly, for simulations
    /// with virtual time.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::core::CloseCause;
    /// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Message};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let conn = conn.authenticate(None, now)?.ready(now)?;
    /// let sender = conn.sender();
    /// let record = sender.close(CloseFrame::normal()).expect("closing");
    /// assert_eq!(record.cause, CloseCause::Local);
    /// assert!(sender.send(Message::text("late")).is_err()); // refused, handed back (G3)
    /// # drop(conn);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self, frame: CloseFrame) -> Option<CloseRecord> {
        self.close_with(frame, None)
    }

    /// [`close`](Self::close) at time `now`.
    pub fn close_at(&self, frame: CloseFrame, now: Instant) -> Option<CloseRecord> {
        self.close_with(frame, Some(now))
    }

    /// The peer proved itself again (a refreshed credential, e.g. a new token in a
    /// message): the credential's expiry is replaced — `None`: it no longer expires —
    /// and the 1008 at the old expiry is off (**G5**). Refused once the connection is
    /// closing, and if the old credential lapsed first: the deadline and the refresh
    /// have one winner, decided by the time each carries. Reads the connection's
    /// clock, as [`close`](Self::close) does.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ws_lifecycle::core::CloseCause;
    /// use ws_lifecycle::{Config, Connection, ConnectionId};
    ///
    /// let t0 = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(t0)?;
    /// let conn = conn.authenticate(Some(t0 + Duration::from_secs(60)), t0)?.ready(t0)?;
    /// let (sender, transport) = (conn.sender(), conn.transport());
    /// sender.reauthenticate_at(Some(t0 + Duration::from_secs(3600)), t0 + Duration::from_secs(30))?;
    /// transport.handle_timeout(t0 + Duration::from_secs(61)); // the old expiry: nothing happens
    /// assert!(conn.phase().is_open());
    /// transport.handle_timeout(t0 + Duration::from_secs(3601)); // the new one: 1008 (G5)
    /// assert_eq!(conn.close_record().unwrap().cause, CloseCause::CredentialExpired);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reauthenticate(&self, expires_at: Option<Instant>) -> Result<(), Rejected> {
        self.reauthenticate_with(expires_at, None)
    }

    /// [`reauthenticate`](Self::reauthenticate) at time `now`.
    pub fn reauthenticate_at(
        &self,
        expires_at: Option<Instant>,
        now: Instant,
    ) -> Result<(), Rejected> {
        self.reauthenticate_with(expires_at, Some(now))
    }

    fn reauthenticate_with(
        &self,
        expires_at: Option<Instant>,
        now: Option<Instant>,
    ) -> Result<(), Rejected> {
        self.shared.run(|inner, wakeups| {
            let now = now.unwrap_or_else(|| inner.clock_now());
            inner
                .tick(now, wakeups)
                .conn
                .handle(Input::AuthSucceeded { expires_at }, now)
                .map(|_| ())
        })
    }

    fn close_with(&self, frame: CloseFrame, now: Option<Instant>) -> Option<CloseRecord> {
        self.shared.run(|inner, wakeups| {
            let now = now.unwrap_or_else(|| inner.clock_now());
            let _ = inner
                .tick(now, wakeups)
                .conn
                .handle(Input::Close(frame), now);
            inner.close_record()
        })
    }
}
