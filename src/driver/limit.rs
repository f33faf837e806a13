//! [`MessageLimit`]: which message size limit a socket of the adapters holds its
//! peer to, marked by the pump once the connection is authenticated.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the connection is authenticated yet, shared between a socket that
/// checks each frame's size at its header (the adapters' framing) and the pump,
/// which marks it: until then, a message may be at most
/// [`DriverConfig::max_pre_auth_message_bytes`](super::DriverConfig::max_pre_auth_message_bytes);
/// after, [`SocketConfig::max_message_size`](super::SocketConfig::max_message_size).
#[derive(Debug, Clone, Default)]
pub(crate) struct MessageLimit {
    authenticated: Arc<AtomicBool>,
}

// Made by the adapters' framing: unused with the driver alone (feature `tokio`).
#[cfg_attr(not(any(feature = "axum", feature = "tungstenite")), allow(dead_code))]
impl MessageLimit {
    /// The limit of a connection authenticated already (at the upgrade) or not.
    pub(crate) fn new(authenticated: bool) -> MessageLimit {
        MessageLimit {
            authenticated: Arc::new(AtomicBool::new(authenticated)),
        }
    }

    /// The connection is authenticated: the full size limit applies from the next
    /// frame on. (Relaxed: the flag orders nothing else; a frame whose header was
    /// read a moment before is held to the limit in force then.)
    pub(crate) fn authenticated(&self) {
        self.authenticated.store(true, Ordering::Relaxed);
    }

    /// True once [`authenticated`](Self::authenticated) was called.
    pub(crate) fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Relaxed)
    }
}
