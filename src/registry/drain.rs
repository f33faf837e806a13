//! Shutdown (**G8**): a drain closes every listed connection with 1001, waits until
//! the listing is empty or a deadline passes, and drops what is left — bounded in
//! time, and counted in a [`DrainReport`].

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc as StdArc;
use std::task::Poll;
use std::time::Instant;

use crate::core::{CrateClose, Input, TransportLoss};
use crate::shared::Shared;
use crate::shared::sync::{Arc, Ordering};

use super::index::DrainProgress;
use super::{Core, DrainReport, Registry, RegistryState};

impl Registry {
    /// Begins a graceful drain (**G8**): admits nothing from now on (1001), and
    /// closes every listed connection with 1001 "going away" — queued messages are
    /// written first. Returns how many it asked to close (the others were closing
    /// already). Their drivers finish the close handshakes; wait for that with
    /// [`drained`](Self::drained), then call [`finish_drain`](Self::finish_drain) —
    /// or do all three with [`drain`](Self::drain).
    ///
    /// Each connection is closed at its own clock: the driver's when a
    /// `Service` (feature `tokio`) runs the registry's connections (tokio's,
    /// paused or not), else the system's monotonic clock — never behind the latest
    /// time the connection has seen. [`shutdown_at`](Self::shutdown_at) takes the time
    /// explicitly, for simulations with virtual time.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Registry, RegistryConfig};
    ///
    /// let registry = Registry::new(RegistryConfig::default());
    /// registry.open();
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let _registration = registry.register(&conn, now)?;
    /// assert_eq!(registry.shutdown(), 1); // asked one connection to close with 1001
    /// assert!(conn.phase().is_closing_or_closed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(&self) -> usize {
        self.begin_drain(None)
    }

    /// [`shutdown`](Self::shutdown) at `now`, for every connection.
    pub fn shutdown_at(&self, now: Instant) -> usize {
        self.begin_drain(Some(now))
    }

    fn begin_drain(&self, now: Option<Instant>) -> usize {
        let targets = {
            let mut index = self.core.lock();
            if self.core.state() == RegistryState::Draining {
                return 0;
            }
            self.core
                .state
                .store(RegistryState::Draining as u8, Ordering::SeqCst);
            index.drain = Some(DrainProgress {
                listed: index.entries.len(),
                ..DrainProgress::default()
            });
            index.listed.clone()
        };
        let mut closing = 0;
        for shared in targets.iter() {
            let asked = shared.run(|inner, wakeups| {
                let now = now.unwrap_or_else(|| inner.clock_now());
                let inner = inner.tick(now, wakeups);
                let open = !inner.conn.phase().is_closing_or_closed();
                if open {
                    inner.conn.raise(CrateClose::Shutdown, now);
                }
                open
            });
            closing += usize::from(asked);
        }
        if let Some(drain) = self.core.lock().drain.as_mut() {
            drain.closing = closing;
        }
        // Across a cluster: this node stops being a delivery target and its presence
        // goes at once (the broker must not wait, as for a publication).
        if let Some(broker) = self.core.broker.get() {
            broker.draining();
        }
        tracing::info!(listed = targets.len(), closing, "registry draining");
        closing
    }

    /// Completes once no connection is listed (runtime-agnostic, **G6**).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::{CloseCode, Config, Connection, ConnectionId, Frame, Registry};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let registry = Registry::default();
    /// registry.open();
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let (_registration, transport) = (registry.register(&conn, now)?, conn.transport());
    /// registry.shutdown();
    /// // The connection's driver writes our Close (1001) and the peer answers:
    /// let frame = transport.next_frame(now);
    /// assert!(matches!(frame, Some(Frame::Close(Some(f))) if f.code() == CloseCode::GOING_AWAY));
    /// transport.handle_peer_close(None, now)?; // Closed, hence unlisted (G7)
    /// registry.drained().await;
    /// assert!(registry.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn drained(&self) -> impl Future<Output = ()> + Send + use<> {
        Drained {
            core: self.core.clone(),
            id: 0,
        }
    }

    /// Ends the drain at its deadline: every connection still listed is dropped
    /// ([`TransportLoss::Dropped`]) and unlisted. Returns what the drain did. Begins
    /// the drain first if [`shutdown`](Self::shutdown) was not called. Each
    /// connection is dropped at the latest time it has seen, so no deadline of its
    /// own fires on the way.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_lifecycle::core::{CloseEnd, TransportLoss};
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Registry};
    ///
    /// let registry = Registry::default();
    /// registry.open();
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let _registration = registry.register(&conn, now)?;
    /// registry.shutdown(); // the peer never answers our Close...
    /// let report = registry.finish_drain(); // ...and the drain's deadline has come
    /// assert_eq!((report.closing, report.closed, report.dropped), (1, 0, 1));
    /// assert!(registry.is_empty());
    /// let end = conn.close_record().unwrap().end;
    /// assert_eq!(end, Some(CloseEnd::TransportLost(TransportLoss::Dropped)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn finish_drain(&self) -> DrainReport {
        self.finish(None, Shared::abandon)
    }

    /// [`finish_drain`](Self::finish_drain) at `now`, for every connection.
    pub fn finish_drain_at(&self, now: Instant) -> DrainReport {
        self.finish(Some(now), |shared| {
            let _ = shared.handle(Input::TransportLost(TransportLoss::Dropped), now);
        })
    }

    /// Drops every connection still listed with `drop_one`, and reports.
    fn finish(&self, now: Option<Instant>, drop_one: impl Fn(&Shared)) -> DrainReport {
        self.begin_drain(now);
        // A plain copy, released from the shared list at once: holding a clone of the
        // shared list while the drops below unlist connections would make the first
        // removal copy the whole list under the registry's lock.
        let rest: Vec<Arc<Shared>> = self.core.lock().listed.to_vec();
        for shared in &rest {
            drop_one(shared);
        }
        let drain = {
            let mut index = self.core.lock();
            let drain = index.drain.get_or_insert_with(DrainProgress::default);
            drain.dropped += rest.len();
            *drain
        };
        let report = DrainReport {
            closing: drain.closing,
            closed: drain.listed.saturating_sub(drain.dropped),
            dropped: drain.dropped,
        };
        tracing::info!(
            closed = report.closed,
            dropped = report.dropped,
            "registry drained"
        );
        report
    }

    /// The whole graceful drain: [`shutdown`](Self::shutdown), wait until
    /// [`drained`](Self::drained) or until `deadline` completes (any timer future:
    /// `tokio::time::sleep(d)`, for instance), then drop what is left like
    /// [`finish_drain`](Self::finish_drain) — each connection at the latest time it
    /// has seen, so no clock is mixed in. Bounded by `deadline` (**G8**).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ws_lifecycle::{Config, Connection, ConnectionId, Registry};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let registry = Registry::default();
    /// registry.open();
    /// let now = Instant::now();
    /// let conn = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
    /// let _registration = registry.register(&conn, now)?;
    /// // Nobody drives this connection's close: the deadline bounds the drain (G8).
    /// let report = registry.drain(tokio::time::sleep(Duration::from_millis(10))).await;
    /// assert_eq!((report.closing, report.dropped), (1, 1));
    /// assert!(registry.is_empty() && conn.phase().is_closing_or_closed());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn drain<D: Future>(&self, deadline: D) -> DrainReport {
        self.drain_inner(None, deadline).await
    }

    /// [`drain`](Self::drain), beginning at `now` (virtual time).
    pub async fn drain_at<D: Future>(&self, now: Instant, deadline: D) -> DrainReport {
        self.drain_inner(Some(now), deadline).await
    }

    async fn drain_inner<D: Future>(&self, now: Option<Instant>, deadline: D) -> DrainReport {
        self.begin_drain(now);
        {
            let mut drained = pin!(self.drained());
            let mut deadline = pin!(deadline);
            poll_fn(|cx| {
                if drained.as_mut().poll(cx).is_ready() || deadline.as_mut().poll(cx).is_ready() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        }
        // Each connection left is dropped at the latest time it has seen, so no
        // deadline of its own fires on the way (the caller's clock may be virtual).
        self.finish(now, Shared::abandon)
    }
}

/// The future of [`Registry::drained`].
struct Drained {
    core: StdArc<Core>,
    id: u64,
}

impl Future for Drained {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let old = {
            let mut index = this.core.lock();
            if index.entries.is_empty() {
                let old = index.unwait(this.id);
                this.id = 0;
                drop(index);
                drop(old);
                return Poll::Ready(());
            }
            index.wait_empty(&mut this.id, cx.waker())
        };
        drop(old);
        Poll::Pending
    }
}

impl Drop for Drained {
    fn drop(&mut self) {
        if self.id != 0 {
            let old = self.core.lock().unwait(self.id);
            drop(old);
        }
    }
}
