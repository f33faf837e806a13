//! [`Registration`]: the RAII guard that keeps a connection in a registry.

use std::fmt;
use std::future::Future;

use crate::core::{CloseRecord, ConnectionId, Phase};
use crate::shared::sync::Arc;
use crate::shared::wait::Wait;
use crate::shared::{Shared, WaitFor};

/// A connection's place in a [`Registry`](crate::registry::Registry), returned by
/// [`Registry::register`](crate::registry::Registry::register).
///
/// The connection is listed until it is `Closed`, however it gets there (**G7**).
/// Keep the registration for as long as the connection runs — in the task that
/// drives it, next to the connection: dropping the registration of a connection that
/// is not closed yet ends it at once as [`TransportLoss::Dropped`], which unlists it.
/// So a task that is dropped, aborted or panics takes its connection out of the
/// registry with it; nothing accumulates.
///
/// Bind it before you ask it anything: `registry.register(&conn, now)?.is_held()`
/// calls the method on a temporary, which is dropped at the end of that statement —
/// and the connection with it (`#[must_use]` cannot warn about a value that was
/// used).
///
/// [`TransportLoss::Dropped`]: crate::core::TransportLoss::Dropped
///
/// ```
/// use std::time::Instant;
/// use ws_lifecycle::core::{CloseCause, TransportLoss};
/// use ws_lifecycle::{Config, Connection, ConnectionId, Registry};
///
/// let registry = Registry::default();
/// registry.open();
/// let now = Instant::now();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// let registration = registry.register(&conn, now)?;
/// assert_eq!(registration.id(), conn.id());
/// assert!(registry.contains(conn.id()));
/// drop(registration); // the driver task was dropped, aborted or panicked
/// assert!(!registry.contains(conn.id())); // unlisted at once (G7)
/// let cause = conn.close_record().unwrap().cause;
/// assert_eq!(cause, CloseCause::TransportLost(TransportLoss::Dropped));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "keep the Registration for as long as the connection lives (in its driver task, beside the connection): dropping it closes and unlists the connection at once"]
pub struct Registration {
    shared: Arc<Shared>,
}

impl Registration {
    pub(crate) fn new(shared: Arc<Shared>) -> Registration {
        Registration { shared }
    }

    /// The registered connection's id.
    pub fn id(&self) -> ConnectionId {
        self.shared.id()
    }

    /// True while the startup gate holds the connection: the registry is not open
    /// yet, and the connection must not be made `Ready` (**G8**).
    pub fn is_held(&self) -> bool {
        self.shared.lock().is_held()
    }

    /// Completes with `Ok` once the connection may be made `Ready` — at once if the
    /// registry was open when it registered, else when the registry opens — or with
    /// the close record if it closes first (for instance at its hold deadline, 1013).
    /// Runtime-agnostic; the hold deadline is one of the connection's deadlines, so
    /// it fires as long as the driver feeds time (**G6**, **G8**).
    pub fn admitted(&self) -> impl Future<Output = Result<(), CloseRecord>> + Send + use<> {
        Wait::new(self.shared.clone(), WaitFor::State, (), |inner, _, _| {
            if inner.conn.phase().is_closing_or_closed() {
                inner.close_record().map(Err)
            } else if inner.is_held() {
                None
            } else {
                Some(Ok(()))
            }
        })
    }
}

impl Drop for Registration {
    /// Ends a connection that is not closed yet (**G7**): it leaves the listing now
    /// rather than linger with nobody to drive it.
    fn drop(&mut self) {
        if self.shared.phase() != Phase::Closed {
            self.shared.abandon();
        }
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.shared.id())
            .field("phase", &self.shared.phase())
            .finish()
    }
}
