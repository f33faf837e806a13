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
