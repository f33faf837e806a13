//! [`Connection<S>`]: the type-state handle. Transitions consume `self`; `send` exists
//! only on `Connection<Ready>` (**G1**).

use std::fmt;
use std::marker::PhantomData;
use std::time::Instant;

use crate::core::{
    CloseFrame, CloseRecord, Config, ConnectionId, Frame, Input, MachineState, Message, Phase,
    Rejected, SendError, SendRefused, Step, TransportLoss,
};
use crate::handle::{Accepted, Authenticated, Closing, Connecting, Ready, TypeState};
use crate::handle::{AnyConnection, Emitter, Gone, Observer, Receiver, Sender, Transport};
use crate::shared::Shared;
use crate::shared::sync::Arc;

/// A connection in type state `S`.
///
/// The type parameter is the step of the lifecycle the *owner* has reached:
/// `Connection<Connecting>` → [`accept`](Connection::accept) →
/// `Connection<Accepted>` → [`authenticate`](Connection::authenticate) →
/// `Connection<Authenticated>` → [`ready`](Connection::ready) → `Connection<Ready>`,
/// and [`close`](Connection::close) from any of them → `Connection<Closing>`. Each
/// transition consumes the handle, so a stale handle cannot be used, and
/// [`send`](Connection::send) only compiles on `Connection<Ready>` (**G1**):
///
/// ```compile_fail,E0599
/// use ws_lifecycle::{Config, Connection, ConnectionId, Message};
/// let mut conn = Connection::new(ConnectionId::new(1), Config::default());
/// conn.send(Message::text("too early")); // no `send` on Connection<Connecting>
/// ```
///
/// The peer, timers and the transport act independently of the owner, so a
/// transition can still fail at run time: it returns [`Gone`], which carries the
/// connection in its closing state, and `send` returns the message inside a
/// [`SendError`] (**G3**).
///
/// Methods available in every state (the *driver side*): [`poll_transmit`]
/// (frames to write, our Close always last), [`handle_peer_close`],
/// [`handle_transport_lost`], [`handle_timeout`] / [`poll_timeout`], and the getters.
///
/// [`poll_transmit`]: Connection::poll_transmit
/// [`handle_peer_close`]: Connection::handle_peer_close
/// [`handle_transport_lost`]: Connection::handle_transport_lost
/// [`handle_timeout`]: Connection::handle_timeout
/// [`poll_timeout`]: Connection::poll_timeout
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Frame, Message, Phase};
///
/// let now = Instant::now();
/// let conn = Connection::new(ConnectionId::new(7), Config::default());
/// let conn = conn.accept(now)?;
/// let conn = conn.authenticate(None, now)?;
/// let mut conn = conn.ready(now)?;
/// conn.send(Message::text("hello"))?;
/// let mut closing = conn.close(CloseFrame::normal(), now);
/// assert_eq!(closing.poll_transmit(now), Some(Frame::Message(Message::text("hello"))));
/// assert_eq!(closing.poll_transmit(now), Some(Frame::Close(Some(CloseFrame::normal()))));
/// assert_eq!(closing.poll_transmit(now), None);
/// closing.handle_peer_close(None, now)?; // the peer's acknowledgement
/// assert_eq!(closing.phase(), Phase::Closed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a connection owes its peer a close handshake: drive it with `poll_transmit` until closed"]
pub struct Connection<S: TypeState> {
    shared: Arc<Shared>,
    _state: PhantomData<fn() -> S>,
}

/// Type states from which the owner may still close: every state but [`Closing`].
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::handle::Live;
/// use ws_lifecycle::{CloseCode, CloseFrame, Closing, Config, Connection, ConnectionId};
///
/// /// Ends a connection at any step of its lifecycle: the server restarts.
/// fn restart<S: Live>(conn: Connection<S>, now: Instant) -> Connection<Closing> {
///     conn.close(CloseFrame::new(CloseCode::SERVICE_RESTART, "restart").unwrap(), now)
/// }
/// let now = Instant::now();
/// let refused = restart(Connection::new(ConnectionId::new(1), Config::default()), now);
/// assert!(refused.is_closed()); // never accepted: no Close frame is owed
/// let conn = Connection::new(ConnectionId::new(2), Config::default()).accept(now)?;
/// let closing = restart(conn, now);
/// assert_eq!(closing.close_record().unwrap().frame.unwrap().code(), CloseCode::SERVICE_RESTART);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Live: TypeState {}
impl Live for Connecting {}
impl Live for Accepted {}
impl Live for Authenticated {}
impl Live for Ready {}

/// Type states after accept and before ready, where events are buffered for the
/// transition to `Ready` (**G2**): [`Accepted`] and [`Authenticated`].
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::handle::PreReady;
/// use ws_lifecycle::{Config, Connection, ConnectionId, Frame, Message, SendError};
///
/// /// Replays history as soon as the connection is accepted, before it is ready.
/// fn replay<S: PreReady>(conn: &Connection<S>, event: &str) -> Result<(), SendError> {
///     conn.emitter().emit(Message::text(event))
/// }
/// let now = Instant::now();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// replay(&conn, "1")?; // Accepted
/// let conn = conn.authenticate(None, now)?;
/// replay(&conn, "2")?; // Authenticated
/// let mut conn = conn.ready(now)?; // both flushed, in order, at Ready (G2)
/// assert_eq!(conn.poll_transmit(now), Some(Frame::Message(Message::text("1"))));
/// assert_eq!(conn.poll_transmit(now), Some(Frame::Message(Message::text("2"))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait PreReady: TypeState {}
impl PreReady for Accepted {}
impl PreReady for Authenticated {}

/// Type states in which the peer is authenticated: [`Authenticated`] and [`Ready`].
///
/// ```
/// use std::time::{Duration, Instant};
/// use ws_lifecycle::core::Rejected;
/// use ws_lifecycle::handle::Authorized;
/// use ws_lifecycle::{Config, Connection, ConnectionId};
///
/// /// A refreshed token: the credential now lapses in an hour.
/// fn renew<S: Authorized>(conn: &mut Connection<S>, now: Instant) -> Result<(), Rejected> {
///     conn.reauthenticate(Some(now + Duration::from_secs(3600)), now)
/// }
/// let now = Instant::now();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// let mut conn = conn.authenticate(Some(now + Duration::from_secs(60)), now)?;
/// renew(&mut conn, now)?; // Authenticated
/// let mut conn = conn.ready(now)?;
/// renew(&mut conn, now)?; // Ready
/// assert_eq!(conn.poll_timeout(), Some(now + Duration::from_secs(3600))); // G5
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Authorized: TypeState {}
impl Authorized for Authenticated {}
impl Authorized for Ready {}

impl<S: TypeState> fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.shared.lock();
        f.debug_struct("Connection")
            .field("type_state", &S::NAME)
            .field("id", &inner.conn.id())
            .field("state", &inner.conn.state())
            .field("queued", &inner.conn.queued())
            .finish()
    }
}

impl<S: TypeState> Connection<S> {
    fn retag<T: TypeState>(self) -> Connection<T> {
        Connection {
            shared: self.shared,
            _state: PhantomData,
        }
    }

    /// Applies an owner-side transition; a refusal means the connection is gone.
    fn transition<T: TypeState>(
        self,
        input: Input,
        expected: Phase,
        now: Instant,
    ) -> Result<Connection<T>, Gone> {
        match self.shared.handle(input, now) {
            Ok(step) if step.to.phase() == expected => Ok(self.retag()),
            _ => {
                // By construction the only way a typed transition fails is that the
                // connection is closing or closed (the peer, a deadline or the
                // transport got there first).
                debug_assert!(
                    self.phase().is_closing_or_closed(),
                    "typed transition refused in {}",
                    self.state()
                );
                Err(Gone {
                    connection: Box::new(self.retag()),
                })
            }
        }
    }

    /// The shared state, for the registry.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The connection's id.
    pub fn id(&self) -> ConnectionId {
        self.shared.id()
    }

    /// The current phase, read without a lock. It can be later than `S` (closing,
    /// closed) when the peer, a deadline or the transport ended the connection.
    pub fn phase(&self) -> Phase {
        self.shared.phase()
    }

    /// The current fine-grained machine state.
    pub fn state(&self) -> MachineState {
        self.shared.lock().conn.state()
    }

    /// The send gate as it stands now (see [`Lifecycle::check_send`]); also shut
    /// once a slow-consumer close was requested.
    ///
    /// [`Lifecycle::check_send`]: crate::core::Lifecycle::check_send
    pub fn check_send(&self) -> Result<(), SendRefused> {
        self.shared.lock().conn.check_send()
    }

    /// How the connection is closing or closed; `None` while it is not.
    pub fn close_record(&self) -> Option<CloseRecord> {
        self.shared.lock().close_record()
    }

    /// The next frame to write, or `None` when there is nothing to write now.
    ///
    /// In `Ready`, queued messages in order. After a close the application asked for,
    /// the messages queued before it, then our Close. After the peer's Close (or
    /// crossing Closes), an authentication failure, an expired credential or a missed
    /// deadline, our Close at once: queued messages are not written (the peer would
    /// drop them, or must not get them) and come back from
    /// [`take_unsent`](Self::take_unsent). Our Close is always the last frame
    /// (**G3**), and there is at most one (**G4**). A driver task uses
    /// [`Transport::poll_transmit`](crate::handle::Transport::poll_transmit), which also waits.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Frame, Message};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let mut conn = conn.authenticate(None, now)?.ready(now)?;
    /// conn.send(Message::text("queued"))?;
    /// // The peer's Close arrives first: our answer goes at once, the message is not written.
    /// conn.handle_peer_close(Some(CloseFrame::normal()), now)?;
    /// assert_eq!(conn.poll_transmit(now), Some(Frame::Close(Some(CloseFrame::normal()))));
    /// assert_eq!(conn.poll_transmit(now), None); // nothing ever follows our Close (G3)
    /// assert_eq!(conn.take_unsent(), [Message::text("queued")]); // handed back instead
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Frame> {
        self.shared
            .run(|inner, wakeups| inner.next_frame(now, wakeups))
    }

    /// Messages and pre-ready events that will never be written, handed back (**G2**,
    /// **G3**: never silently dropped): once the connection is closing for a reason
    /// that skips the outbox (see [`poll_transmit`](Self::poll_transmit)), or closed,
    /// the queued messages; once it is closing or closed, the events emitted before
    /// `Ready`, which can no longer be flushed. Empty while they may still be written.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Message};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// conn.emitter().emit(Message::text("history"))?; // buffered for Ready (G2)
    /// let mut closing = conn.close(CloseFrame::normal(), now); // ...which never comes
    /// assert_eq!(closing.take_unsent(), [Message::text("history")]); // handed back (G3)
    /// assert!(closing.take_unsent().is_empty()); // handed back once
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn take_unsent(&mut self) -> Vec<Message> {
        self.shared.run(|inner, _| inner.conn.take_unsent())
    }

    /// The peer's Close frame arrived (`None`: no status code). Moves an open
    /// connection to closing (our answer is then owed), or completes our close.
    pub fn handle_peer_close(
        &mut self,
        frame: Option<CloseFrame>,
        now: Instant,
    ) -> Result<Step, Rejected> {
        self.shared.handle(Input::PeerClose(frame), now)
    }

    /// The transport ended without a close handshake.
    pub fn handle_transport_lost(
        &mut self,
        loss: TransportLoss,
        now: Instant,
    ) -> Result<Step, Rejected> {
        self.shared.handle(Input::TransportLost(loss), now)
    }

    /// Fires a due deadline (**G5**); see [`Lifecycle::handle_timeout`].
    ///
    /// [`Lifecycle::handle_timeout`]: crate::core::Lifecycle::handle_timeout
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Step> {
        self.shared.handle_timeout(now)
    }

    /// The next time to call [`handle_timeout`](Self::handle_timeout): the
    /// lifecycle's next deadline (see [`Lifecycle::poll_timeout`]) or the earliest
    /// timeout of a pending `*_until` wait; the same as
    /// [`Transport::poll_timeout`].
    ///
    /// [`Lifecycle::poll_timeout`]: crate::core::Lifecycle::poll_timeout
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.shared.lock().next_deadline()
    }

    /// A handle for the task that drives the transport: frames out, frames in,
    /// timers. Usable from any thread; see [`Transport`].
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Frame, Message};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default());
    /// let transport = conn.transport(); // in any state: hand it to the driver task
    /// let mut conn = conn.accept(now)?.authenticate(None, now)?.ready(now)?;
    /// conn.send(Message::text("hi"))?;
    /// let driver = std::thread::spawn(move || transport.next_frame(now));
    /// assert_eq!(driver.join().unwrap(), Some(Frame::Message(Message::text("hi"))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn transport(&self) -> Transport {
        Transport::new(self.shared.clone())
    }

    /// A handle for tasks that only watch: the phase without a lock, and futures
    /// that complete when the connection is ready or closed (**G6**).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::core::CloseCause;
    /// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Phase};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default());
    /// let observer = conn.observer(); // read-only, for any task or thread
    /// let conn = conn.accept(now)?;
    /// assert_eq!(observer.phase(), Phase::Accepted);
    /// let _closing = conn.close(CloseFrame::normal(), now);
    /// assert_eq!(observer.close_record().unwrap().cause, CloseCause::Local);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn observer(&self) -> Observer {
        Observer::new(self.shared.clone())
    }

    /// Erases the type state, for code that stores connections in every phase.
    pub fn into_any(self) -> AnyConnection
    where
        AnyConnection: From<Connection<S>>,
    {
        AnyConnection::from(self)
    }
}

impl<S: Live> Connection<S> {
    /// Closes the connection with `frame`, consuming the handle (**G3**, **G4**).
    ///
    /// Queued messages are still written, then our Close. Before the handshake is
    /// accepted this refuses the upgrade and no Close frame is written. If the
    /// connection was already closing (the peer or a deadline was first), the first
    /// close stands and this one changes nothing; [`Connection::close_record`] says
    /// what happened.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{CloseCode, CloseFrame, Config, Connection, ConnectionId, Frame, Message};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let mut conn = conn.authenticate(None, now)?.ready(now)?;
    /// conn.send(Message::text("bye"))?;
    /// let mut closing = conn.close(CloseFrame::new(CloseCode::GOING_AWAY, "restart")?, now);
    /// assert_eq!(closing.poll_transmit(now), Some(Frame::Message(Message::text("bye"))));
    /// let ours = closing.poll_transmit(now); // then our Close, last (G3)
    /// assert!(matches!(ours, Some(Frame::Close(Some(f))) if f.code() == CloseCode::GOING_AWAY));
    /// // Before accept, a close refuses the upgrade: closed at once, no Close frame.
    /// let early = Connection::new(ConnectionId::new(2), Config::default());
    /// let mut refused = early.close(CloseFrame::normal(), now);
    /// assert!(refused.is_closed() && refused.poll_transmit(now).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(self, frame: CloseFrame, now: Instant) -> Connection<Closing> {
        // Close is never rejected: in a closing or closed state it is absorbed (G4).
        let _ = self.shared.handle(Input::Close(frame), now);
        self.retag()
    }
}

impl Connection<Connecting> {
    /// A new connection whose upgrade request has arrived.
    ///
    /// ```
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Phase};
    ///
    /// let conn = Connection::new(ConnectionId::new(1), Config::default());
    /// assert_eq!(conn.phase(), Phase::Connecting);
    /// assert_eq!(conn.poll_timeout(), None); // no deadline runs before accept
    /// assert!(conn.check_send().is_err()); // and nothing can be sent (G1)
    /// ```
    pub fn new(id: ConnectionId, config: Config) -> Connection<Connecting> {
        Connection {
            shared: Arc::new(Shared::new(id, config)),
            _state: PhantomData,
        }
    }

    /// Accepts the WebSocket handshake; the readiness deadline starts (**G5**).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Phase};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// assert_eq!(conn.phase(), Phase::Accepted);
    /// assert_eq!(conn.poll_timeout(), Some(now + Config::default().readiness_timeout)); // G5
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept(self, now: Instant) -> Result<Connection<Accepted>, Gone> {
        self.transition(Input::Accept, Phase::Accepted, now)
    }
}

impl Connection<Accepted> {
    /// The peer's credential checked out. `expires_at`: when it lapses, if it does;
    /// the connection is then closed with 1008 (**G5**) unless re-authenticated.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ws_lifecycle::core::CloseCause;
    /// use ws_lifecycle::{Config, Connection, ConnectionId};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let expiry = now + Duration::from_secs(60); // the token's lifetime
    /// let mut conn = conn.authenticate(Some(expiry), now)?.ready(now)?;
    /// assert_eq!(conn.poll_timeout(), Some(expiry));
    /// conn.handle_timeout(expiry); // not re-authenticated in time: closed with 1008 (G5)
    /// assert_eq!(conn.close_record().unwrap().cause, CloseCause::CredentialExpired);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn authenticate(
        self,
        expires_at: Option<Instant>,
        now: Instant,
    ) -> Result<Connection<Authenticated>, Gone> {
        self.transition(
            Input::AuthSucceeded { expires_at },
            Phase::Authenticated,
            now,
        )
    }

    /// The peer's credential was refused: close with 1008.
    pub fn reject(self, now: Instant) -> Connection<Closing> {
        let _ = self.shared.handle(Input::AuthFailed, now);
        self.retag()
    }
}

impl<S: PreReady> Connection<S> {
    /// A handle for components that produce events before the connection is ready:
    /// they are buffered and flushed, in order and exactly once, when it becomes
    /// `Ready`, before anything sent later (**G2**). See [`Emitter`].
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Frame, Message};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// conn.emitter().emit(Message::text("history"))?; // before Ready: buffered
    /// let mut conn = conn.authenticate(None, now)?.ready(now)?;
    /// conn.send(Message::text("live"))?;
    /// assert_eq!(conn.poll_transmit(now), Some(Frame::Message(Message::text("history")))); // G2
    /// assert_eq!(conn.poll_transmit(now), Some(Frame::Message(Message::text("live"))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn emitter(&self) -> Emitter {
        Emitter::new(self.shared.clone())
    }
}

impl Connection<Authenticated> {
    /// The application's services for this connection are ready: from now on
    /// messages may flow (**G2**).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::core::CloseCause;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Phase};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let conn = conn.authenticate(None, now)?.ready(now)?;
    /// assert_eq!(conn.phase(), Phase::Ready);
    /// assert_eq!(conn.poll_timeout(), None); // the readiness deadline is disarmed
    /// // Time decides a race with the deadline (G5): ready at the deadline is too late.
    /// let slow = Connection::new(ConnectionId::new(2), Config::default()).accept(now)?;
    /// let late = now + Config::default().readiness_timeout;
    /// let gone = slow.authenticate(None, now)?.ready(late).unwrap_err();
    /// assert_eq!(gone.record().unwrap().cause, CloseCause::ReadinessDeadline);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ready(self, now: Instant) -> Result<Connection<Ready>, Gone> {
        self.transition(Input::ServicesReady, Phase::Ready, now)
    }
}

impl Connection<Ready> {
    /// Queues `message` for the peer.
    ///
    /// Fails, handing the message back, when the connection is closing or closed
    /// (**G3**: nothing follows our Close, nothing is silently dropped) or when the
    /// outbox is full ([`Config::outbox_capacity`], [`Config::outbox_bytes`]).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Frame, Message};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let mut conn = conn.authenticate(None, now)?.ready(now)?;
    /// conn.send(Message::text("hi"))?;
    /// assert_eq!(conn.poll_transmit(now), Some(Frame::Message(Message::text("hi"))));
    /// conn.handle_peer_close(None, now)?; // the peer left meanwhile: the type is still Ready
    /// let err = conn.send(Message::text("too late")).unwrap_err();
    /// assert_eq!(err.into_message(), Message::text("too late")); // handed back (G3)
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        self.shared.run(|inner, _| inner.conn.send(message))
    }

    /// A cloneable handle that sends from any thread or task (**G3**: atomic with
    /// respect to close). See [`Sender`].
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Frame, Message};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let conn = conn.authenticate(None, now)?.ready(now)?;
    /// let sender = conn.sender();
    /// std::thread::spawn(move || sender.send(Message::text("from a thread"))).join().unwrap()?;
    /// let frame = conn.transport().next_frame(now);
    /// assert_eq!(frame, Some(Frame::Message(Message::text("from a thread"))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sender(&self) -> Sender {
        Sender::new(self.shared.clone())
    }

    /// A handle that reads the application messages the peer sent, in order,
    /// including those held while the connection was not ready yet (**G2**). See
    /// [`Receiver`].
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Message};
    ///
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let transport = conn.transport();
    /// transport.handle_message(Message::text("early"), now)?; // nobody reads yet: held (G2)
    /// let conn = conn.authenticate(None, now)?.ready(now)?;
    /// let receiver = conn.receiver();
    /// assert_eq!(receiver.try_recv(), Some(Message::text("early")));
    /// assert_eq!(receiver.try_recv(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn receiver(&self) -> Receiver {
        Receiver::new(self.shared.clone())
    }
}

impl<S: Authorized> Connection<S> {
    /// The peer proved itself again: its credential's expiry is replaced (`None`:
    /// it no longer expires). Refused once the connection is closing.
    pub fn reauthenticate(
        &mut self,
        expires_at: Option<Instant>,
        now: Instant,
    ) -> Result<(), Rejected> {
        self.shared
            .handle(Input::AuthSucceeded { expires_at }, now)
            .map(|_| ())
    }
}

impl Connection<Ready> {
    /// A re-authentication failed: close with 1008, recording the cause as an
    /// authentication failure. Consumes the handle.
    pub fn reauthentication_failed(self, now: Instant) -> Connection<Closing> {
        let _ = self.shared.handle(Input::AuthFailed, now);
        self.retag()
    }
}

impl Connection<Closing> {
    /// True once the close handshake is over (or was cut short) and the transport
    /// can be dropped.
    pub fn is_closed(&self) -> bool {
        self.phase() == Phase::Closed
    }
}
