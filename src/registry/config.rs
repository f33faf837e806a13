//! [`RegistryConfig`]: the startup gate's policy and the admission limits, with
//! documented defaults.

use std::time::Duration;

/// How a [`Registry`](crate::registry::Registry) is set up. Start from
/// [`RegistryConfig::default`] and change fields.
///
/// ```
/// use std::time::Duration;
/// use ws_lifecycle::RegistryConfig;
/// use ws_lifecycle::registry::StartupPolicy;
///
/// let mut config = RegistryConfig::default();
/// config.startup = StartupPolicy::Refuse;
/// config.max_connections = Some(10_000);
/// config.max_connections_per_user = Some(8);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistryConfig {
    /// What happens to connections that arrive before [`Registry::open`] (**G8**).
    /// Default: [`StartupPolicy::Hold`] with room for 1024 connections for 5 s.
    ///
    /// [`Registry::open`]: crate::registry::Registry::open
    pub startup: StartupPolicy,
    /// At most this many connections are listed at once; one more is refused with
    /// 1013 "try again later" ([`RegistryError::AtCapacity`]). Default: `None`, no cap.
    ///
    /// [`RegistryError::AtCapacity`]: crate::registry::RegistryError::AtCapacity
    pub max_connections: Option<usize>,
    /// At most this many connections per authenticated user; one more is refused
    /// with 1008 "policy violation" when it is identified
    /// ([`RegistryError::UserLimit`]). Default: `None`, no cap.
    ///
    /// [`RegistryError::UserLimit`]: crate::registry::RegistryError::UserLimit
    pub max_connections_per_user: Option<usize>,
}

/// The startup gate (**G8**): what a [`Registry`](crate::registry::Registry) does with a
/// connection registered before the application called
/// [`Registry::open`](crate::registry::Registry::open).
///
/// ```
/// use std::time::{Duration, Instant};
/// use ws_lifecycle::registry::{RegistryError, StartupPolicy};
/// use ws_lifecycle::{CloseCode, Config, Connection, ConnectionId, Registry, RegistryConfig};
///
/// let mut config = RegistryConfig::default();
/// config.startup = StartupPolicy::Hold { capacity: 1, timeout: Duration::from_secs(5) };
/// let registry = Registry::new(config);
/// let now = Instant::now();
/// let first = Connection::new(ConnectionId::new(1), Config::default()).accept(now)?;
/// let second = Connection::new(ConnectionId::new(2), Config::default()).accept(now)?;
/// let held = registry.register(&first, now)?; // keep it: dropping it unlists `first`
/// assert!(held.is_held());
/// assert_eq!(registry.register(&second, now).unwrap_err(), RegistryError::HoldFull); // 1013
/// // Not opened within the timeout: the held connection is closed with 1013 too.
/// first.transport().handle_timeout(now + Duration::from_secs(5));
/// let frame = first.close_record().unwrap().frame.unwrap();
/// assert_eq!(frame.code(), CloseCode::TRY_AGAIN_LATER);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartupPolicy {
    /// Admit it as *held*: it is listed, it may authenticate and buffer events, but
    /// it cannot become `Ready` — nothing is routed to or from it — until the
    /// registry opens. [`Registration::admitted`](crate::registry::Registration::admitted)
    /// completes when it does. A held connection is closed with 1013 "try again
    /// later" when `timeout` passes first, or when the application makes it ready
    /// anyway; a connection that finds `capacity` connections already held is refused
    /// with 1013 ([`RegistryError::HoldFull`](crate::registry::RegistryError::HoldFull)).
    Hold {
        /// How many connections may be held at once (at least 1).
        capacity: usize,
        /// How long one connection may be held, from its registration.
        timeout: Duration,
    },
    /// Refuse it with 1013 "try again later"
    /// ([`RegistryError::NotOpen`](crate::registry::RegistryError::NotOpen)).
    Refuse,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            startup: StartupPolicy::Hold {
                capacity: 1024,
                timeout: Duration::from_secs(5),
            },
            max_connections: None,
            max_connections_per_user: None,
        }
    }
}
