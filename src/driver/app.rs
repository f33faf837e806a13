//! One connection's run: the pump and the application side side by side, then the
//! end (the unsent messages taken back, `on_close` once).
//!
//! The application side authenticates (at the upgrade, already done, or from the
//! first message), lists the connection under its user, calls the handler, waits
//! for the registry's startup gate (**G8**), makes the connection `Ready`, and hands
//! the handler every message in order. Every handler call is bounded once the
//! connection is closing ([`DriverConfig::handler_grace`](super::DriverConfig::handler_grace)).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::{FutureExt, Sink, Stream};
use tokio::sync::oneshot;

use crate::core::{CloseCode, CloseFrame, CrateClose, Message};
use crate::handle::{Accepted, Authenticated, Connection, Observer, Sender, Transport};
use crate::registry::Registration;

use super::{
    AuthRequest, Authenticator, Closed, Handler, Identity, Refusal, Service, Session,
    UpgradeRequest, WireFrame, closed, now, pump,
};

/// What was decided about a connection before its WebSocket opened.
#[derive(Debug)]
pub(super) enum Verdict<S> {
    /// Authenticated at the upgrade.
    Accepted(Identity<S>),
    /// The first message decides.
    AwaitFirstMessage,
    /// Refused at the upgrade after the handshake was done (`Service::run`): the
    /// connection is closed with 1008.
    Refused(Refusal),
}

/// Where the application side starts.
enum Start<S> {
    /// Authenticated at the upgrade (before the pump started).
    Authenticated(Connection<Authenticated>, Identity<S>),
    /// The first message decides.
    AwaitFirstMessage(Connection<Accepted>, Option<oneshot::Receiver<Message>>),
    /// Refused at the upgrade after the handshake: closed with 1008.
    Refused(Connection<Accepted>, Refusal),
    /// Closed before it started.
    Gone,
}

/// How a bounded handler call ended.
enum Guarded<T> {
    Done(T),
    Panicked,
    /// Still pending `handler_grace` after the connection started closing: dropped.
    Cut,
}

/// Runs one connection to its end (see the module docs).
pub(super) async fn run<A, H, S, E>(
    service: &Service<A, H>,
    socket: S,
    admission: super::Admission<A::State>,
    wiring: pump::Wiring,
) -> Closed
where
    A: Authenticator,
    H: Handler<A::State>,
    S: Stream<Item = Result<WireFrame, E>> + Sink<WireFrame, Error = E> + Unpin + Send,
    E: super::SocketError,
{
    let (registry, config, _, handler) = service.parts();
    let super::Admission {
        id,
        request,
        verdict,
        ..
    } = admission;
    let now = now();
    let conn = Connection::new(id, config.connection.clone());
    let transport = conn.transport();
    let observer = conn.observer();
    // The handshake is done before we get the socket: accept at once.
    let conn = match conn.accept(now) {
        Ok(conn) => conn,
        Err(gone) => {
            let mut conn = gone.into_connection();
            let record = conn.close_record().unwrap_or_else(closed);
            return Closed::new(record, conn.take_unsent());
        }
    };
    let registration = match registry.register(&conn, now) {
        Ok(registration) => Some(registration),
        Err(error) => {
            // Counted in the registry's snapshot; never silent.
            tracing::warn!(%id, %error, reason = error.as_str(), "registration refused");
            if error.close_code().is_none() {
                // A refusal that closed nothing (e.g. an id listed twice): an
                // unlisted connection is never routed, so end it now.
                let frame = CloseFrame::new(CloseCode::INTERNAL_ERROR, "not listed")
                    .expect("a valid close frame");
                let _ = transport.close(frame, now);
            }
            None
        }
    };
    let (first_tx, first_rx) = match verdict {
        Verdict::AwaitFirstMessage => {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        }
        _ => (None, None),
    };
    // Authenticated at the upgrade: `Authenticated` before the pump reads anything,
    // so that what a client sends at once is held for the handler (G2), never
    // counted against the pre-authentication limits.
    let start = match verdict {
        Verdict::Accepted(identity) => match conn.authenticate(identity.expires_at, now) {
            Ok(conn) => Start::Authenticated(conn, identity),
            Err(_) => Start::Gone, // the credential had lapsed already (G5)
        },
        Verdict::AwaitFirstMessage => Start::AwaitFirstMessage(conn, first_rx),
        Verdict::Refused(refusal) => Start::Refused(conn, refusal),
    };
    let pump = pump::run(socket, transport.clone(), config, first_tx, wiring);
    let app = async {
        let registration = registration.as_ref()?;
        application(service, start, registration, request).await
    };
    let ((), session) = tokio::join!(pump, app);
    // The registration lived until the pump was done, i.e. until the connection was
    // `Closed`: dropping it earlier would cut the close handshake short (G7).
    drop(registration);
    // G3 end to end: what was never written is handed to the application.
    let ended = Closed::new(
        observer.close_record().unwrap_or_else(closed),
        transport.take_unsent(),
    );
    if let Some(session) = session {
        let grace = config.handler_grace;
        // The call itself inside the future, so that a panic before its first
        // `.await` is caught too.
        let closing = AssertUnwindSafe(async { handler.on_close(&session, &ended).await });
        let closing = closing.catch_unwind();
        match tokio::time::timeout(grace, closing).await {
            Ok(Ok(())) => {}
            Ok(Err(_panic)) => tracing::error!(%id, "on_close panicked"),
            Err(_) => {
                tracing::warn!(%id, ?grace, "on_close did not finish within handler_grace; dropped")
            }
        }
    }
    ended
}

/// The application's side of one connection; the session if the connection reached
/// the handler (then `on_close` is owed).
async fn application<A, H>(
    service: &Service<A, H>,
    start: Start<A::State>,
    registration: &Registration,
    request: Arc<UpgradeRequest>,
) -> Option<Session<A::State>>
where
    A: Authenticator,
    H: Handler<A::State>,
{
    let (registry, config, authenticator, handler) = service.parts();
    let (conn, identity, handed_on) = match start {
        Start::Gone => return None,
        Start::Authenticated(conn, identity) => (conn, identity, None),
        Start::Refused(conn, refusal) => {
            tracing::info!(id = %conn.id(), %refusal, "refused at the upgrade; closing with 1008");
            let _ = conn.reject(now());
            return None;
        }
        Start::AwaitFirstMessage(conn, first) => {
            let (observer, transport, id) = (conn.observer(), conn.transport(), conn.id());
            // The first message, or the end (the readiness deadline closes a client
            // that never sends one, G5).
            let first = first.expect("a first-message channel in this mode");
            let first_message = until_closed(&observer, async { first.await.ok() })
                .await
                .flatten()?;
            let handed_on = config.hand_on_first_message.then(|| first_message.clone());
            let request = AuthRequest::new(id, request.clone(), first_message);
            let auth = AssertUnwindSafe(async { authenticator.authenticate(request).await });
            let identity = match until_closed(&observer, auth.catch_unwind()).await? {
                Ok(Ok(identity)) => identity,
                Ok(Err(refusal)) => {
                    tracing::info!(%id, %refusal, "authentication refused");
                    let _ = conn.reject(now());
                    return None;
                }
                Err(_panic) => {
                    tracing::error!(%id, "the authenticator panicked; closing with 1011");
                    transport.raise(CrateClose::HandlerPanic, now());
                    return None;
                }
            };
            // A credential that lapsed already closes the connection here (G5).
            let conn = conn.authenticate(identity.expires_at, now()).ok()?;
            (conn, identity, handed_on)
        }
    };
    let (observer, transport, id) = (conn.observer(), conn.transport(), conn.id());
    if let Some(user) = &identity.user {
        if let Err(error) = registry.identify(&conn, user) {
            tracing::info!(%id, %error, "the registry refused the user"); // closed by it (per-user cap)
            return None;
        }
    }
    let session = Session {
        id,
        user: identity.user.map(Arc::from),
        registry: registry.clone(),
        request,
        state: identity.state,
    };
    let cut = Cut::new(&observer, config.handler_grace);
    let emitter = conn.emitter();
    let greeted = cut
        .guard(async { handler.on_authenticated(&session, &emitter).await })
        .await;
    if !settle(greeted.map(Ok), "on_authenticated", &transport, None, id) {
        return Some(session);
    }
    // Admitted by the startup gate (G8), or already closed: `ready` says which.
    if until_closed(&observer, registration.admitted())
        .await
        .is_none()
    {
        return Some(session);
    }
    let Ok(conn) = conn.ready(now()) else {
        return Some(session);
    };
    let (receiver, sender) = (conn.receiver(), conn.sender());
    let mut next = handed_on;
    loop {
        let message = match next.take() {
            Some(message) => message,
            None => match receiver.recv().await {
                Some(message) => message,
                None => break,
            },
        };
        let handled = cut
            .guard(async { handler.on_message(&session, &sender, message).await })
            .await;
        if !settle(handled, "on_message", &transport, Some(&sender), id) {
            break;
        }
    }
    drop(conn);
    Some(session)
}

/// Acts on how a handler call ended; false once the connection should be left to
/// close (the call panicked or was cut).
fn settle(
    ended: Guarded<Result<(), CloseFrame>>,
    call: &'static str,
    transport: &Transport,
    sender: Option<&Sender>,
    id: crate::core::ConnectionId,
) -> bool {
    match ended {
        Guarded::Done(Ok(())) => true,
        Guarded::Done(Err(frame)) => {
            if let Some(sender) = sender {
                sender.close_at(frame, now());
            }
            true
        }
        Guarded::Panicked => {
            tracing::error!(%id, call, "the handler panicked; closing with 1011");
            transport.raise(CrateClose::HandlerPanic, now());
            false
        }
        Guarded::Cut => {
            tracing::warn!(%id, call, "the handler call outlived its closed connection by handler_grace; dropped");
            false
        }
    }
}

impl<T> Guarded<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Guarded<U> {
        match self {
            Guarded::Done(value) => Guarded::Done(f(value)),
            Guarded::Panicked => Guarded::Panicked,
            Guarded::Cut => Guarded::Cut,
        }
    }
}

/// The bound on a connection's handler calls once it is closing: one deadline,
/// `grace` after the connection is first seen closing, shared by every call after
/// it (a handler cannot stretch it call by call over the messages still held).
struct Cut<'a> {
    observer: &'a Observer,
    grace: Duration,
    deadline: OnceLock<tokio::time::Instant>,
}

impl<'a> Cut<'a> {
    fn new(observer: &'a Observer, grace: Duration) -> Self {
        Cut {
            observer,
            grace,
            deadline: OnceLock::new(),
        }
    }

    /// Runs a handler call (`call` is the whole call, so that a panic before its
    /// first `.await` is caught too), catching a panic, and drops it if it is
    /// still pending at the deadline.
    async fn guard<T>(&self, call: impl Future<Output = T>) -> Guarded<T> {
        let call = AssertUnwindSafe(call).catch_unwind();
        let cut = async {
            closing(self.observer).await;
            let deadline = self
                .deadline
                .get_or_init(|| tokio::time::Instant::now() + self.grace);
            tokio::time::sleep_until(*deadline).await;
        };
        tokio::select! {
            biased;
            out = call => match out {
                Ok(value) => Guarded::Done(value),
                Err(_panic) => Guarded::Panicked,
            },
            () = cut => Guarded::Cut,
        }
    }
}

/// Runs `fut` until it completes or the connection starts closing (`None`).
async fn until_closed<T>(observer: &Observer, fut: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        out = fut => Some(out),
        () = closing(observer) => None,
    }
}

/// Completes once the connection is closing or closed.
async fn closing(observer: &Observer) {
    let mut phase = observer.phase();
    while !phase.is_closing_or_closed() {
        phase = observer.changed(phase).await;
    }
}
