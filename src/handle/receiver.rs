//! [`Receiver`]: the application messages the peer sent, in order.

use std::future::Future;

use crate::core::Message;
use crate::shared::sync::Arc;
use crate::shared::wait::Wait;
use crate::shared::{Shared, WaitFor};

/// Reads the application messages the peer sent, in arrival order. Obtained only
/// from [`Connection<Ready>::receiver`](crate::handle::Connection::receiver): messages that
/// arrived before `Ready` were held, and are read first, so none is routed to a
/// handler that did not exist yet (**G2**).
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::{Config, Connection, ConnectionId, Message};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let now = Instant::now();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// let transport = conn.transport(); // the driver's side
/// transport.handle_message(Message::text("early"), now)?; // held until Ready (G2)
/// let conn = conn.authenticate(None, now)?.ready(now)?;
/// let receiver = conn.receiver();
/// transport.handle_message(Message::text("later"), now)?;
/// assert_eq!(receiver.recv().await, Some(Message::text("early")));
/// assert_eq!(receiver.recv().await, Some(Message::text("later")));
/// transport.handle_peer_close(None, now)?;
/// assert_eq!(receiver.recv().await, None); // closing, and every message read
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Receiver {
    shared: Arc<Shared>,
}

crate::handle::common::shared_handle!(Receiver);

impl Receiver {
    /// The next message, if one is waiting.
    pub fn try_recv(&self) -> Option<Message> {
        self.shared.run(|inner, _| inner.conn.pop_inbound())
    }

    /// The next message; `None` once the connection is closing or closed and every
    /// held message has been read.
    pub fn recv(&self) -> impl Future<Output = Option<Message>> + Send + use<> {
        Wait::new(
            self.shared.clone(),
            WaitFor::Inbound,
            (),
            |inner, _, _wakeups| match inner.conn.pop_inbound() {
                Some(message) => Some(Some(message)),
                None if inner.conn.phase().is_closing_or_closed() => Some(None),
                None => None,
            },
        )
    }
}
