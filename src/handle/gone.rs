//! [`Gone`]: a type-state transition met a connection that is closing or closed.

use super::{Closing, Connection};
use crate::core::CloseRecord;

/// A type-state transition failed because the connection is closing or closed: the
/// peer left, a deadline fired, or a close was requested first.
///
/// It carries the connection in its closing state, so the close handshake can still
/// be driven to the end (`poll_transmit`, `handle_*`); [`Gone::record`] says why.
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::CloseCause;
/// use ws_lifecycle::{Config, Connection, ConnectionId, Frame};
///
/// let now = Instant::now();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// conn.transport().handle_peer_close(None, now)?; // the peer leaves during authentication
/// let gone = conn.authenticate(None, now).unwrap_err();
/// assert_eq!(gone.record().unwrap().cause, CloseCause::Peer);
/// let mut closing = gone.into_connection(); // `?` would drop it: finish the handshake instead
/// assert_eq!(closing.poll_transmit(now), Some(Frame::Close(None))); // our answer
/// assert!(closing.is_closed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[error(
    "connection {} is gone ({}); take it back with `Gone::into_connection` and drive its close to the end",
    .connection.id(),
    .connection.close_record().map_or("closing".to_owned(), |r| format!("{:?}", r.cause))
)]
#[must_use = "the connection inside still owes its close handshake: call `into_connection` and drive it"]
#[non_exhaustive]
pub struct Gone {
    /// The connection, now closing or closed (boxed: this is the rare path, and it
    /// keeps `Result<Connection<_>, Gone>` small).
    pub connection: Box<Connection<Closing>>,
}

impl Gone {
    /// Takes the closing connection, to drive its close handshake to the end.
    pub fn into_connection(self) -> Connection<Closing> {
        *self.connection
    }

    /// How the connection closed.
    pub fn record(&self) -> Option<CloseRecord> {
        self.connection.close_record()
    }
}
