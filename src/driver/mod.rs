//! The async driver (feature `tokio`): runs one connection's lifecycle over any
//! WebSocket `Stream + Sink`, with an authenticator, a handler and a [`Registry`].
//!
//! Per connection, two futures run side by side in the caller's task:
//!
//! - the **pump** owns the socket: it writes what [`Transport::poll_transmit_batch`](crate::handle::Transport::poll_transmit_batch)
//!   yields, up to 64 frames per lock and per flush (our Close always last, **G3**),
//!   feeds every frame it reads to the core (peer
//!   Close, messages into the inbound hold with back-pressure, transport errors),
//!   sleeps until the core's next deadline (**G5**), answers pings, enforces the idle
//!   timeout and the pre-authentication limits, and ends the transport once the
//!   connection is `Closed`. It is one poll function, so a write the peer does not
//!   read never blocks the rest: reads go on, and the core's deadlines and a
//!   slow-consumer close still take effect ([`Transport::poll_busy`](crate::handle::Transport::poll_busy));
//! - the **application** side authenticates the first message, lists the connection
//!   under its user, calls the [`Handler`], waits for the registry's startup gate
//!   (**G8**), makes the connection `Ready`, and hands it every message in order.
//!
//! A panic in the handler is caught and closes that connection with 1011.

mod app;
mod auth;
mod config;
mod handler;
mod pump;
mod request;
mod service;
mod wire;

use std::time::Instant;

use crate::core::{CloseCause, CloseRecord, TransportLoss};

pub use auth::{AtUpgrade, AuthRequest, Authenticator, Identity, Public, Refusal, UpgradeVerdict};
pub use config::{DriverConfig, SocketConfig};
pub use handler::{Closed, Handler, Session};
pub use request::UpgradeRequest;
pub use service::{Admission, Service};
pub use wire::WireFrame;

/// The driver's clock: tokio's, so that a paused test clock drives the lifecycle's
/// deadlines too.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The record of a connection that has none (cannot happen once the pump is done:
/// every way to `Closed` records one; kept so a bug shows as a lost transport rather
/// than a panic).
fn closed() -> CloseRecord {
    CloseRecord::new(CloseCause::TransportLost(TransportLoss::Error), None)
}
