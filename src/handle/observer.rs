//! [`Observer`]: watch a connection's phase, and wait for it to be ready or closed.

use std::future::Future;
use std::time::Instant;

use crate::core::{CloseRecord, Phase};
use crate::shared::sync::Arc;
use crate::shared::wait::Wait;
use crate::shared::{Shared, WaitFor};

/// A cloneable, read-only view of one connection: its phase without a lock, and
/// runtime-agnostic futures (`std::task::Waker`, no runtime) that complete on the
/// transition they wait for (**G6**: every waiter is woken by the transition).
///
/// Waits are bounded by the lifecycle's own deadlines: a connection that is never
/// made ready is closed at its readiness deadline, which completes `wait_ready` with
/// the close record; one whose peer never answers our Close is closed at the close
/// timeout, which completes `wait_closed` — as long as the driver feeds time
/// (`handle_timeout`), which is the sans-IO contract. For a bound of your own, the
/// `*_until(deadline)` variants give up with [`WaitError::TimedOut`] once the time
/// input passes `deadline`; the deadline joins
/// [`Transport::poll_timeout`](crate::handle::Transport::poll_timeout), so the driver wakes
/// for it.
///
/// The futures need no runtime; here one is polled by hand:
///
/// ```
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::{Context, Poll, Waker};
/// use std::time::Instant;
/// use ws_lifecycle::{Config, Connection, ConnectionId};
///
/// let now = Instant::now();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// let observer = conn.observer();
/// let mut ready = pin!(observer.wait_ready());
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(ready.as_mut().poll(&mut cx).is_pending());
/// let _conn = conn.authenticate(None, now)?.ready(now)?; // wakes the waiter (G6)
/// assert_eq!(ready.poll(&mut cx), Poll::Ready(Ok(())));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Observer {
    shared: Arc<Shared>,
}

crate::handle::common::shared_handle!(Observer);

impl Observer {
    /// How the connection is closing or closed; `None` while it is not.
    pub fn close_record(&self) -> Option<CloseRecord> {
        self.shared.lock().close_record()
    }

    /// Completes with `Ok` once the connection is `Ready`, or with its close record
    /// if it closes first.
    pub fn wait_ready(&self) -> impl Future<Output = Result<(), CloseRecord>> + Send + use<> {
        Wait::new(
            self.shared.clone(),
            WaitFor::State,
            (),
            |inner, _, _| match inner.conn.phase() {
                Phase::Ready => Some(Ok(())),
                Phase::Closing | Phase::Closed => inner.close_record().map(Err),
                _ => None,
            },
        )
    }

    /// Completes with the close record once the connection is `Closed`.
    pub fn wait_closed(&self) -> impl Future<Output = CloseRecord> + Send + use<> {
        Wait::new(self.shared.clone(), WaitFor::State, (), |inner, _, _| {
            if inner.conn.phase() == Phase::Closed {
                inner.close_record()
            } else {
                None
            }
        })
    }

    /// Like [`wait_ready`](Self::wait_ready), giving up with
    /// [`WaitError::TimedOut`] once the time input — the driver's timed calls,
    /// `handle_timeout` at [`Transport::poll_timeout`](crate::handle::Transport::poll_timeout)
    /// at the latest — passes `deadline` (**G6**: waits with a timeout return).
    pub fn wait_ready_until(
        &self,
        deadline: Instant,
    ) -> impl Future<Output = Result<(), WaitError>> + Send + use<> {
        Wait::new(
            self.shared.clone(),
            WaitFor::State,
            deadline,
            |inner, deadline, _| match inner.conn.phase() {
                Phase::Ready => Some(Ok(())),
                Phase::Closing | Phase::Closed => {
                    inner.close_record().map(|r| Err(WaitError::Closed(r)))
                }
                _ if inner.conn.passed(*deadline) => Some(Err(WaitError::TimedOut)),
                _ => None,
            },
        )
        .until(deadline)
    }

    /// Like [`wait_closed`](Self::wait_closed), giving up with
    /// [`WaitError::TimedOut`] once the time input passes `deadline`.
    pub fn wait_closed_until(
        &self,
        deadline: Instant,
    ) -> impl Future<Output = Result<CloseRecord, WaitError>> + Send + use<> {
        Wait::new(
            self.shared.clone(),
            WaitFor::State,
            deadline,
            |inner, deadline, _| {
                if inner.conn.phase() == Phase::Closed {
                    inner.close_record().map(Ok)
                } else if inner.conn.passed(*deadline) {
                    Some(Err(WaitError::TimedOut))
                } else {
                    None
                }
            },
        )
        .until(deadline)
    }

    /// Completes with the new phase once it differs from `seen`.
    pub fn changed(&self, seen: Phase) -> impl Future<Output = Phase> + Send + use<> {
        Wait::new(
            self.shared.clone(),
            WaitFor::State,
            seen,
            |inner, seen, _| {
                let now = inner.conn.phase();
                (now != *seen).then_some(now)
            },
        )
    }
}
/// Why a wait with a timeout ended without what it waited for.
///
/// ```
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::{Context, Poll, Waker};
/// use std::time::{Duration, Instant};
/// use ws_lifecycle::handle::WaitError;
/// use ws_lifecycle::{Config, Connection, ConnectionId};
///
/// let t0 = Instant::now();
/// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(t0)?;
/// let (observer, transport) = (conn.observer(), conn.transport());
/// let mut wait = pin!(observer.wait_ready_until(t0 + Duration::from_secs(1)));
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(wait.as_mut().poll(&mut cx).is_pending());
/// assert_eq!(transport.poll_timeout(), Some(t0 + Duration::from_secs(1))); // the driver wakes for it
/// transport.handle_timeout(t0 + Duration::from_secs(1));
/// assert_eq!(wait.poll(&mut cx), Poll::Ready(Err(WaitError::TimedOut)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The connection closed first; here is how. Stop waiting for it.
    #[error("the connection closed first ({:?})", .0.cause)]
    Closed(CloseRecord),
    /// The time input passed the deadline first. Wait again, or give up on the
    /// connection (close it).
    #[error("the deadline passed before the connection got there")]
    TimedOut,
}
