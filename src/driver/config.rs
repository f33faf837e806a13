//! [`DriverConfig`]: what the async driver adds to a connection's [`Config`].

use std::time::Duration;

use crate::core::Config;

/// How the driver runs each connection. Start from [`DriverConfig::default`].
///
/// ```
/// use std::time::Duration;
/// let mut config = ws_lifecycle::DriverConfig::default();
/// config.connection.readiness_timeout = Duration::from_secs(3); // the auth timeout
/// config.idle_timeout = Some(Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverConfig {
    /// The lifecycle's own limits and timeouts. Its `readiness_timeout` bounds
    /// authentication: a client that has not authenticated (and been made ready) by
    /// then is closed with 1008 (**G5**). Default: [`Config::default`].
    pub connection: Config,
    /// A connection the peer has sent nothing on (no message, ping or pong) for this
    /// long is closed with 1001 "idle timeout". The driver pings it after half this
    /// time, so a live client's automatic pong keeps it open. `None`: no idle
    /// timeout, no keep-alive pings. Default: 60 s.
    pub idle_timeout: Option<Duration>,
    /// Before authentication succeeds, a message larger than this many bytes closes
    /// the connection with 1008. Default: 4096.
    pub max_pre_auth_message_bytes: usize,
    /// Before authentication succeeds, more than this many messages (the first, which
    /// the authenticator sees, included) close the connection with 1008. Default: 8.
    pub max_pre_auth_messages: usize,
    /// Answer each Ping with a Pong. Libraries that already do it themselves
    /// (tungstenite, and axum on top of it) need not; the adapters turn this off.
    /// Default: `true`.
    pub answer_pings: bool,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            connection: Config::default(),
            idle_timeout: Some(Duration::from_secs(60)),
            max_pre_auth_message_bytes: 4096,
            max_pre_auth_messages: 8,
            answer_pings: true,
        }
    }
}
