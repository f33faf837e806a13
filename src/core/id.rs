//! [`ConnectionId`]: a connection's identity in logs, spans and registries.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A connection's identifier, chosen by the server (a counter is enough).
///
/// Serde form: the bare number, e.g. `42` (**G9**).
///
/// ```
/// use ws_lifecycle::ConnectionId;
///
/// let id = ConnectionId::new(42);
/// assert_eq!(id.get(), 42);
/// assert_eq!(id.to_string(), "42"); // as logs and spans show it
/// assert_eq!(serde_json::to_string(&id)?, "42"); // the bare number (G9)
/// assert!(ConnectionId::new(1) < id); // ordered: a counter is enough
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// The id with value `value`.
    pub const fn new(value: u64) -> ConnectionId {
        ConnectionId(value)
    }

    /// The numeric value.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
