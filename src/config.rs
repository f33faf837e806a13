//! [`Config`]: per-connection limits and timeouts, with documented defaults.

use std::time::Duration;

/// Per-connection configuration. Start from [`Config::default`] and change fields:
///
/// ```
/// use std::time::Duration;
/// let mut config = ws_lifecycle::Config::default();
/// config.readiness_timeout = Duration::from_secs(5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// How long after accept the connection may take to become `Ready` (authenticate
    /// and get its services ready) before it is closed with 1008 (**G5**).
    /// Default: 10 s.
    pub readiness_timeout: Duration,
    /// How long the close handshake may take before the transport is dropped (**G5**).
    /// Default: 5 s.
    pub close_timeout: Duration,
    /// How many messages the outbox holds before `send` returns them as
    /// [`SendErrorKind::Full`](crate::SendErrorKind::Full). Default: 1024.
    pub outbox_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            readiness_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            outbox_capacity: 1024,
        }
    }
}
