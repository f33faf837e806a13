//! [`AnyConnection`]: the type state erased, for code that holds connections in every
//! phase (a registry, a driver's table).

use std::time::Instant;

use crate::core::{
    CloseFrame, CloseRecord, ConnectionId, Frame, MachineState, Message, Phase, Rejected,
    SendRefused, Step, TransportLoss,
};
use crate::handle::{Accepted, Authenticated, Closing, Connecting, Ready};
use crate::handle::{Connection, Observer, Transport};

/// A [`Connection`] in any type state. Match on it to get the typed handle back.
///
/// Deliberately exhaustive (not `#[non_exhaustive]`): one variant per sealed type
/// state, which no release adds without changing the lifecycle itself (see
/// [`MachineState`]); a `match` over it stays complete.
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::handle::AnyConnection;
/// use ws_lifecycle::{CloseFrame, Config, Connection, ConnectionId, Phase};
///
/// let now = Instant::now();
/// let mut table: Vec<AnyConnection> = vec![
///     Connection::new(ConnectionId::new(1), Config::default()).into_any(),
///     Connection::new(ConnectionId::new(2), Config::default()).accept(now)?.into_any(),
/// ];
/// assert_eq!(table[1].phase(), Phase::Accepted);
/// // Match to get the typed handle back...
/// let ready = match table.pop() {
///     Some(AnyConnection::Accepted(conn)) => conn.authenticate(None, now)?.ready(now)?,
///     other => panic!("unexpected {other:?}"),
/// };
/// // ...or close whatever the state (a shutdown): a closing connection comes back as is.
/// let closing = ready.into_any().close(CloseFrame::normal(), now);
/// assert_eq!(closing.phase(), Phase::Closing);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub enum AnyConnection {
    /// See [`Connecting`].
    Connecting(Connection<Connecting>),
    /// See [`Accepted`].
    Accepted(Connection<Accepted>),
    /// See [`Authenticated`].
    Authenticated(Connection<Authenticated>),
    /// See [`Ready`].
    Ready(Connection<Ready>),
    /// See [`Closing`].
    Closing(Connection<Closing>),
}

macro_rules! each {
    ($self:expr, $c:ident => $body:expr) => {
        match $self {
            AnyConnection::Connecting($c) => $body,
            AnyConnection::Accepted($c) => $body,
            AnyConnection::Authenticated($c) => $body,
            AnyConnection::Ready($c) => $body,
            AnyConnection::Closing($c) => $body,
        }
    };
}

macro_rules! from {
    ($($state:ident),*) => {$(
        impl From<Connection<$state>> for AnyConnection {
            fn from(c: Connection<$state>) -> AnyConnection {
                AnyConnection::$state(c)
            }
        }
    )*};
}
from!(Connecting, Accepted, Authenticated, Ready, Closing);

impl AnyConnection {
    /// The connection's id.
    pub fn id(&self) -> ConnectionId {
        each!(self, c => c.id())
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        each!(self, c => c.phase())
    }

    /// The current fine-grained machine state.
    pub fn state(&self) -> MachineState {
        each!(self, c => c.state())
    }

    /// The send gate as it stands now.
    pub fn check_send(&self) -> Result<(), SendRefused> {
        each!(self, c => c.check_send())
    }

    /// True once the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.phase() == Phase::Closed
    }

    /// See [`Connection::transport`].
    pub fn transport(&self) -> Transport {
        each!(self, c => c.transport())
    }

    /// See [`Connection::observer`].
    pub fn observer(&self) -> Observer {
        each!(self, c => c.observer())
    }

    /// See [`Connection::take_unsent`].
    pub fn take_unsent(&mut self) -> Vec<Message> {
        each!(self, c => c.take_unsent())
    }

    /// How the connection is closing or closed; `None` while it is not.
    pub fn close_record(&self) -> Option<CloseRecord> {
        each!(self, c => c.close_record())
    }

    /// Closes it (see [`Connection::close`]); a closing connection is returned as is.
    pub fn close(self, frame: CloseFrame, now: Instant) -> Connection<Closing> {
        match self {
            AnyConnection::Connecting(c) => c.close(frame, now),
            AnyConnection::Accepted(c) => c.close(frame, now),
            AnyConnection::Authenticated(c) => c.close(frame, now),
            AnyConnection::Ready(c) => c.close(frame, now),
            AnyConnection::Closing(c) => c,
        }
    }

    /// See [`Connection::poll_transmit`].
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Frame> {
        each!(self, c => c.poll_transmit(now))
    }

    /// See [`Connection::handle_peer_close`].
    pub fn handle_peer_close(
        &mut self,
        frame: Option<CloseFrame>,
        now: Instant,
    ) -> Result<Step, Rejected> {
        each!(self, c => c.handle_peer_close(frame, now))
    }

    /// See [`Connection::handle_transport_lost`].
    pub fn handle_transport_lost(
        &mut self,
        loss: TransportLoss,
        now: Instant,
    ) -> Result<Step, Rejected> {
        each!(self, c => c.handle_transport_lost(loss, now))
    }

    /// See [`Connection::handle_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Step> {
        each!(self, c => c.handle_timeout(now))
    }

    /// See [`Connection::poll_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        each!(self, c => c.poll_timeout())
    }
}
