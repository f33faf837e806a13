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
///
/// One connection, end to end, over an in-memory stream (a TCP stream in production):
///
/// ```
/// use futures_util::{SinkExt, StreamExt};
/// use tokio_tungstenite::WebSocketStream;
/// use tokio_tungstenite::tungstenite::{Message as TMessage, protocol::Role};
/// use ws_lifecycle::driver::{AuthRequest, UpgradeRequest};
/// use ws_lifecycle::tungstenite::TungsteniteSocket;
/// use ws_lifecycle::{CloseFrame, DriverConfig, Handler, Identity, Message};
/// use ws_lifecycle::{Registry, Sender, Service, Session};
///
/// struct Echo;
/// impl Handler for Echo {
///     async fn on_message(
///         &self,
///         _: &Session,
///         sender: &Sender,
///         message: Message,
///     ) -> Result<(), CloseFrame> {
///         let _ = sender.send(message);
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let anyone = |_: AuthRequest| async { Ok::<_, String>(Identity::user("ada")) };
/// let service = Service::new(Registry::default(), DriverConfig::default(), anyone, Echo);
/// service.registry().open();
/// let (server_io, client_io) = tokio::io::duplex(4096);
/// let ws = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
/// let socket = TungsteniteSocket::new(ws);
/// let client = async {
///     let mut ws = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
///     ws.send(TMessage::text("hello")).await?; // the first message goes to the authenticator
///     ws.send(TMessage::text("echo?")).await?;
///     let echo = ws.next().await.transpose()?;
///     ws.close(None).await?;
///     while let Some(Ok(_)) = ws.next().await {} // until the server's answer
///     Ok::<_, Box<dyn std::error::Error>>(echo)
/// };
/// let (record, echo) = tokio::join!(service.run(socket, UpgradeRequest::default()), client);
/// assert_eq!(echo?, Some(TMessage::text("echo?")));
/// assert!(record.is_clean());
/// # Ok(())
/// # }
/// ```
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
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ws_lifecycle::driver::AuthRequest;
    /// use ws_lifecycle::registry::RegistryState;
    /// use ws_lifecycle::{CloseFrame, DriverConfig, Handler, Identity, Message};
    /// use ws_lifecycle::{Registry, Sender, Service, Session};
    ///
    /// struct Quiet; // reads everything, answers nothing
    /// impl Handler for Quiet {
    ///     async fn on_message(&self, _: &Session, _: &Sender, _: Message) -> Result<(), CloseFrame> {
    ///         Ok(())
    ///     }
    /// }
    /// let by_name = |request: AuthRequest| async move {
    ///     request.first_message.as_text().map(Identity::user).ok_or_else(|| "send a name".to_owned())
    /// };
    /// let registry = Registry::default(); // starting: early connections are held (G8)
    /// let service = Arc::new(Service::new(registry.clone(), DriverConfig::default(), by_name, Quiet));
    /// // ...the rest of the application starts, then:
    /// registry.open();
    /// assert_eq!(service.registry().state(), RegistryState::Open); // one registry, shared
    /// ```
    pub fn new(registry: Registry, config: DriverConfig, authenticator: A, handler: H) -> Self {
        // Calls without a time (`Sender::close`, `Registry::shutdown`, `drain`) read
        // the clock the driver feeds its connections: tokio's, paused or not.
        registry.adopt_clock(now);
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
    ///
    /// ```
    /// # use futures_util::{SinkExt, StreamExt};
    /// # use tokio_tungstenite::WebSocketStream;
    /// # use tokio_tungstenite::tungstenite::{Message as TMessage, protocol::Role};
    /// # use ws_lifecycle::core::CloseCause;
    /// # use ws_lifecycle::driver::{AuthRequest, UpgradeRequest};
    /// # use ws_lifecycle::tungstenite::TungsteniteSocket;
    /// # use ws_lifecycle::{CloseCode, CloseFrame, DriverConfig, Handler, Identity, Message};
    /// # use ws_lifecycle::{Registry, Sender, Service, Session};
    /// # struct Quiet;
    /// # impl Handler for Quiet {
    /// #     async fn on_message(&self, _: &Session, _: &Sender, _: Message) -> Result<(), CloseFrame> {
    /// #         Ok(())
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let tokens = |request: AuthRequest| async move {
    ///     match request.first_message.as_text() {
    ///         Some("token:ada") => Ok(Identity::user("ada")),
    ///         _ => Err("bad token".to_owned()), // logged, not sent
    ///     }
    /// };
    /// let service = Service::new(Registry::default(), DriverConfig::default(), tokens, Quiet);
    /// service.registry().open();
    /// let (server_io, client_io) = tokio::io::duplex(4096); // a TCP stream in production
    /// let ws = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
    /// let socket = TungsteniteSocket::new(ws);
    /// let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
    /// client.send(TMessage::text("token:eve")).await?;
    /// let peer = async { while let Some(Ok(_)) = client.next().await {} }; // reads; answers the Close
    /// let (record, ()) = tokio::join!(service.run(socket, UpgradeRequest::default()), peer);
    /// assert_eq!(record.cause, CloseCause::AuthFailed);
    /// assert_eq!(record.frame.as_ref().map(CloseFrame::code), Some(CloseCode::POLICY_VIOLATION));
    /// assert!(record.is_clean());
    /// # Ok(())
    /// # }
    /// ```
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
