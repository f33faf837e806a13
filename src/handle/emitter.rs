//! [`Emitter`]: events from components that run before the connection is ready.

use crate::core::{Message, SendError};
use crate::shared::Shared;
use crate::shared::sync::Arc;

/// A cloneable handle for components that produce events before the connection is
/// ready (a subscription replaying history, an agent reporting progress). Obtained
/// from `Connection<Accepted>` or `Connection<Authenticated>`.
///
/// Before `Ready`, events are buffered (at most
/// [`Config::pending_capacity`](crate::core::Config::pending_capacity); one more is handed
/// back as `Full`). At the transition to `Ready` they move to the outbox exactly once,
/// in emission order, ahead of anything sent after the transition — also while other
/// tasks keep emitting, because the move and the transition happen under one lock
/// (**G2**). After `Ready`, `emit` is `send`. If the connection closes before `Ready`,
/// `emit` hands the event back, and the buffered ones come back from
/// [`Connection::take_unsent`](crate::handle::Connection::take_unsent) or
/// [`Transport::take_unsent`](crate::handle::Transport::take_unsent).
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::{Config, Connection, ConnectionId, Frame, Message};
///
/// let now = Instant::now();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// let emitter = conn.emitter(); // a subscription that starts before Ready
/// emitter.emit(Message::text("history 1"))?;
/// let conn = conn.authenticate(None, now)?;
/// emitter.emit(Message::text("history 2"))?;
/// let mut conn = conn.ready(now)?;
/// conn.send(Message::text("live"))?;
/// emitter.emit(Message::text("update"))?; // from Ready on, exactly `send`
/// let written: Vec<Frame> = std::iter::from_fn(|| conn.poll_transmit(now)).collect();
/// let expected = ["history 1", "history 2", "live", "update"]; // buffered first, once (G2)
/// assert_eq!(written, expected.map(|t| Frame::Message(Message::text(t))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Emitter {
    shared: Arc<Shared>,
}

crate::handle::common::shared_handle!(Emitter);

impl Emitter {
    /// Buffers (before `Ready`) or sends (once `Ready`) `event`; hands it back when the
    /// connection is closing or closed, or when the buffer or outbox is full.
    pub fn emit(&self, event: Message) -> Result<(), SendError> {
        self.shared.run(|inner, _| inner.conn.emit(event))
    }
}
