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
mod config;
mod pump;
mod wire;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures_util::{FutureExt, Sink, Stream};
use tokio::sync::oneshot;

use crate::core::{CloseCause, CloseRecord, ConnectionId, CrateClose, Message, TransportLoss};
use crate::handle::{Accepted, Connection, Observer};
use crate::registry::{Registration, Registry};

pub use app::{AuthRequest, Authenticator, Handler, Identity, Session};
pub use config::DriverConfig;
pub use wire::{UpgradeRequest, WireFrame};

/// Runs connections: the registry they are listed in, the configuration, the
/// authenticator and the handler, shared by every connection of a server. Wrap it in
/// an `Arc` and call [`run`](Service::run) once per accepted socket.
#[derive(Debug)]
pub struct Service<A, H> {
    registry: Registry,
    config: DriverConfig,
    authenticator: A,
    handler: H,
    next_id: AtomicU64,
}

impl<A: Authenticator, H: Handler> Service<A, H> {
    /// A service listing its connections in `registry`.
    pub fn new(registry: Registry, config: DriverConfig, authenticator: A, handler: H) -> Self {
        Service {
            registry,
            config,
            authenticator,
            handler,
            next_id: AtomicU64::new(1),
        }
    }

    /// The registry the connections are listed in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The driver's configuration.
    pub fn config(&self) -> &DriverConfig {
        &self.config
    }

    /// Runs one connection whose WebSocket handshake has completed, until it is
    /// `Closed` and the transport has been ended; returns how it ended.
    ///
    /// `socket` is any `Stream<Item = Result<WireFrame, E>> + Sink<WireFrame>`; the
    /// adapters (`axum`, `tungstenite` features) wrap their library's socket.
    pub async fn run<S, E>(&self, socket: S, request: UpgradeRequest) -> CloseRecord
    where
        S: Stream<Item = Result<WireFrame, E>> + Sink<WireFrame, Error = E> + Unpin + Send,
        E: std::fmt::Display,
    {
        let id = ConnectionId::new(self.next_id.fetch_add(1, Ordering::Relaxed));
        let now = now();
        let conn = Connection::new(id, self.config.connection.clone());
        let transport = conn.transport();
        let observer = conn.observer();
        // The handshake is done before we get the socket: accept at once.
        let conn = match conn.accept(now) {
            Ok(conn) => conn,
            Err(gone) => return gone.connection.close_record().unwrap_or_else(closed),
        };
        let registration = self.registry.register(&conn, now);
        let (first_tx, first_rx) = oneshot::channel();
        let pump = pump::run(socket, transport, &self.config, first_tx);
        let app = async {
            if let Ok(registration) = &registration {
                self.application(conn, registration, Arc::new(request), first_rx)
                    .await;
            }
        };
        tokio::join!(pump, app);
        // The registration lives until the pump is done, i.e. until the connection
        // is `Closed`: dropping it earlier would cut the close handshake short (G7).
        drop(registration);
        observer.close_record().unwrap_or_else(closed)
    }

    /// The application's side of one connection (see the module docs).
    async fn application(
        &self,
        conn: Connection<Accepted>,
        registration: &Registration,
        request: Arc<UpgradeRequest>,
        first: oneshot::Receiver<Message>,
    ) {
        let observer = conn.observer();
        let transport = conn.transport();
        let id = conn.id();
        // The first message, or the end (the readiness deadline closes a client that
        // never sends one, G5).
        let Some(first_message) = until_closed(&observer, async { first.await.ok() })
            .await
            .flatten()
        else {
            return;
        };
        let auth = self.authenticator.authenticate(AuthRequest {
            id,
            request,
            first_message,
        });
        let identity = match until_closed(&observer, AssertUnwindSafe(auth).catch_unwind()).await {
            None => return, // closed meanwhile (the deadline won, G5)
            Some(Ok(Ok(identity))) => identity,
            Some(Ok(Err(reason))) => {
                tracing::info!(%id, %reason, "authentication refused");
                let _ = conn.reject(now());
                return;
            }
            Some(Err(_panic)) => {
                tracing::error!(%id, "the authenticator panicked; closing with 1011");
                transport.raise(CrateClose::HandlerPanic, now());
                return;
            }
        };
        let Ok(conn) = conn.authenticate(identity.expires_at, now()) else {
            return;
        };
        if self.registry.identify(&conn, &identity.user).is_err() {
            return; // refused and closed by the registry (per-user cap)
        }
        let session = Session {
            id,
            user: Arc::from(identity.user),
            registry: self.registry.clone(),
        };
        let emitter = conn.emitter();
        let panicked = AssertUnwindSafe(self.handler.on_authenticated(&session, &emitter))
            .catch_unwind()
            .await
            .is_err();
        let conn = if panicked {
            tracing::error!(%id, "on_authenticated panicked; closing with 1011");
            transport.raise(CrateClose::HandlerPanic, now());
            None
        } else if until_closed(&observer, registration.admitted())
            .await
            .is_some()
        {
            // Admitted by the startup gate (G8), or already closed: `ready` says which.
            conn.ready(now()).ok()
        } else {
            None
        };
        if let Some(conn) = conn {
            let (receiver, sender) = (conn.receiver(), conn.sender());
            while let Some(message) = receiver.recv().await {
                let handled = AssertUnwindSafe(self.handler.on_message(&session, &sender, message))
                    .catch_unwind()
                    .await;
                match handled {
                    Ok(Ok(())) => {}
                    Ok(Err(frame)) => {
                        sender.close_at(frame, now());
                    }
                    Err(_panic) => {
                        tracing::error!(%id, "on_message panicked; closing with 1011");
                        transport.raise(CrateClose::HandlerPanic, now());
                    }
                }
            }
            drop(conn);
        }
        let record = observer.wait_closed().await;
        let closing = AssertUnwindSafe(self.handler.on_close(&session, &record)).catch_unwind();
        if closing.await.is_err() {
            tracing::error!(%id, "on_close panicked");
        }
    }
}

/// Runs `fut` until it completes or the connection starts closing (`None`).
async fn until_closed<T>(observer: &Observer, fut: impl Future<Output = T>) -> Option<T> {
    let closing = async {
        let mut phase = observer.phase();
        while !phase.is_closing_or_closed() {
            phase = observer.changed(phase).await;
        }
    };
    tokio::select! {
        out = fut => Some(out),
        () = closing => None,
    }
}

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
