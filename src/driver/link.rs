//! [`SocketLink`]: what the adapters' framing and the pump tell each other about
//! one connection, beyond the frames.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Shared between a socket of the adapters' framing and the connection's pump:
///
/// - **the pump tells the socket the connection is authenticated**, so that the
///   socket, which checks each frame's size at its header, holds the peer to
///   [`DriverConfig::max_pre_auth_message_bytes`](super::DriverConfig::max_pre_auth_message_bytes)
///   until then and to
///   [`SocketConfig::max_message_size`](super::SocketConfig::max_message_size)
///   after;
/// - **the socket tells the pump how many bytes it has written**, so that a
///   socket still writing a large frame, slowly but steadily, is not taken for a
///   stalled one ([`DriverConfig::stall_timeout`](super::DriverConfig::stall_timeout)
///   counts from the last byte written, not from the last frame completed).
///
/// Relaxed atomics: neither orders anything else. A frame whose header was read a
/// moment before the mark is held to the limit in force then; progress seen one
/// poll late only delays a stall's start.
#[derive(Debug, Clone, Default)]
pub(crate) struct SocketLink {
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    authenticated: AtomicBool,
    written: AtomicU64,
}

// Made by the adapters' framing: unused with the driver alone (feature `tokio`).
#[cfg_attr(not(any(feature = "axum", feature = "tungstenite")), allow(dead_code))]
impl SocketLink {
    /// The link of a connection authenticated already (at the upgrade) or not.
    pub(crate) fn new(authenticated: bool) -> SocketLink {
        let link = SocketLink::default();
        link.state
            .authenticated
            .store(authenticated, Ordering::Relaxed);
        link
    }

    /// The connection is authenticated: the full size limit applies from the next
    /// frame on.
    pub(crate) fn authenticated(&self) {
        self.state.authenticated.store(true, Ordering::Relaxed);
    }

    /// True once [`authenticated`](Self::authenticated) was called (or the link was
    /// made authenticated).
    pub(crate) fn is_authenticated(&self) -> bool {
        self.state.authenticated.load(Ordering::Relaxed)
    }

    /// The socket wrote `bytes` more.
    pub(crate) fn wrote(&self, bytes: usize) {
        self.state
            .written
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Bytes the socket has written so far.
    pub(crate) fn written(&self) -> u64 {
        self.state.written.load(Ordering::Relaxed)
    }
}
