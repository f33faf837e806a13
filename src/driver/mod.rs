//! The async driver (feature `tokio`): runs one connection's lifecycle over any
//! WebSocket `Stream + Sink`, with an [`Authenticator`], a [`Handler`] and a
//! [`Registry`](crate::registry::Registry), shared by every connection of a
//! [`Service`].
//!
//! | file | concept |
//! |---|---|
//! | `service.rs` | [`Service`] (what a server shares), [`Admission`] (a connection let through the upgrade) |
//! | `auth.rs` | [`Authenticator`] and its three modes — at the upgrade ([`AtUpgrade`], [`UpgradeVerdict`], a [`Refusal`] is an HTTP answer), by first message ([`AuthRequest`]), none ([`Public`]) — and [`Identity`], which carries the application's per-connection state |
//! | `handler.rs` | [`Handler`], the [`Session`] it sees, the [`Closed`] connection it is handed at the end |
//! | `request.rs` | [`UpgradeRequest`]: method, URI, headers, peer address, offered subprotocols |
//! | `config.rs` | [`DriverConfig`], [`SocketConfig`] |
//! | `app.rs` | the application side of one connection (private) |
//! | `pump.rs` | the socket side of one connection (private) |
//! | `wire.rs` | [`WireFrame`], what the adapters convert to and from; [`SocketError`], what a read error tells the peer (1002, 1007, 1009) |
//!
//! Per connection, two futures run side by side in the caller's task:
//!
//! - the **pump** owns the socket: it writes what [`Transport::poll_transmit_batch`](crate::handle::Transport::poll_transmit_batch)
//!   yields, up to 64 frames per lock and per flush (our Close always last, **G3**),
//!   feeds every frame it reads to the core (peer
//!   Close, messages into the inbound hold with back-pressure, transport errors),
//!   sleeps until the core's next deadline (**G5**), answers pings (unless the
//!   socket's library does), enforces the idle timeout and the pre-authentication
//!   limits, and ends the transport once the connection is `Closed`. It is one poll
//!   function, so a write the peer does not read never blocks the rest: reads go
//!   on, and the core's deadlines and a slow-consumer close still take effect
//!   ([`Transport::poll_busy`](crate::handle::Transport::poll_busy));
//! - the **application** side authenticates the first message (unless the
//!   connection was authenticated at the upgrade), lists the connection under its
//!   user, calls the [`Handler`], waits for the registry's startup gate (**G8**),
//!   makes the connection `Ready`, and hands it every message in order. Every
//!   handler call ends with its connection: once it is closing, a pending call gets
//!   [`DriverConfig::handler_grace`] and is then dropped.
//!
//! When both are done, what was never written is taken back and handed, with the
//! [`CloseRecord`], to [`Handler::on_close`] (exactly once, for a connection that
//! reached the handler) and returned from [`Service::run`] as [`Closed`] (**G3** end
//! to end). A panic in the handler is caught and closes that connection with 1011.

mod app;
mod auth;
mod config;
mod handler;
mod link;
mod pump;
mod request;
mod service;
mod wire;

use std::time::Instant;

use crate::core::{CloseCause, CloseRecord, TransportLoss};

pub use auth::{AtUpgrade, AuthRequest, Authenticator, Identity, Public, Refusal, UpgradeVerdict};
pub use config::{DriverConfig, SocketConfig};
pub use handler::{Closed, Handler, Session};
pub(crate) use link::SocketLink;
pub use request::UpgradeRequest;
pub use service::{Admission, Service};
pub use wire::{SocketError, WireFrame};

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
