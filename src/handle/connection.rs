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
pub trait Live: TypeState {}
impl Live for Connecting {}
impl Live for Accepted {}
impl Live for Authenticated {}
impl Live for Ready {}

/// Type states after accept and before ready, where events are buffered for the
/// transition to `Ready` (**G2**): [`Accepted`] and [`Authenticated`].
pub trait PreReady: TypeState {}
impl PreReady for Accepted {}
impl PreReady for Authenticated {}

/// Type states in which the peer is authenticated: [`Authenticated`] and [`Ready`].
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
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Frame> {
        self.shared
            .run(|inner, wakeups| inner.next_frame(now, wakeups))
    }

    /// Messages and pre-ready events that will never be written, handed back (**G2**,
    /// **G3**: never silently dropped): once the connection is closing for a reason
    /// that skips the outbox (see [`poll_transmit`](Self::poll_transmit)), or closed,
    /// the queued messages; once it is closing or closed, the events emitted before
    /// `Ready`, which can no longer be flushed. Empty while they may still be written.
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
    pub fn transport(&self) -> Transport {
        Transport::new(self.shared.clone())
    }

    /// A handle for tasks that only watch: the phase without a lock, and futures
    /// that complete when the connection is ready or closed (**G6**).
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
    pub fn close(self, frame: CloseFrame, now: Instant) -> Connection<Closing> {
        // Close is never rejected: in a closing or closed state it is absorbed (G4).
        let _ = self.shared.handle(Input::Close(frame), now);
        self.retag()
    }
}

impl Connection<Connecting> {
    /// A new connection whose upgrade request has arrived.
    pub fn new(id: ConnectionId, config: Config) -> Connection<Connecting> {
        Connection {
            shared: Arc::new(Shared::new(id, config)),
            _state: PhantomData,
        }
    }

    /// Accepts the WebSocket handshake; the readiness deadline starts (**G5**).
    pub fn accept(self, now: Instant) -> Result<Connection<Accepted>, Gone> {
        self.transition(Input::Accept, Phase::Accepted, now)
    }
}

impl Connection<Accepted> {
    /// The peer's credential checked out. `expires_at`: when it lapses, if it does;
    /// the connection is then closed with 1008 (**G5**) unless re-authenticated.
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
    pub fn emitter(&self) -> Emitter {
        Emitter::new(self.shared.clone())
    }
}

impl Connection<Authenticated> {
    /// The application's services for this connection are ready: from now on
    /// messages may flow (**G2**).
    pub fn ready(self, now: Instant) -> Result<Connection<Ready>, Gone> {
        self.transition(Input::ServicesReady, Phase::Ready, now)
    }
}

impl Connection<Ready> {
    /// Queues `message` for the peer.
    ///
    /// Fails, handing the message back, when the connection is closing or closed
    /// (**G3**: nothing follows our Close, nothing is silently dropped) or when the
    /// outbox is full ([`Config::outbox_capacity`]).
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        self.shared.run(|inner, _| inner.conn.send(message))
    }

    /// A cloneable handle that sends from any thread or task (**G3**: atomic with
    /// respect to close). See [`Sender`].
    pub fn sender(&self) -> Sender {
        Sender::new(self.shared.clone())
    }

    /// A handle that reads the application messages the peer sent, in order,
    /// including those held while the connection was not ready yet (**G2**). See
    /// [`Receiver`].
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
