//! [`SocketLink`]: what the adapters' framing and the pump tell each other about
//! one connection, beyond the frames.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::core::Message;

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
///   counts from the last byte written, not from the last frame completed);
/// - **the socket hands back what it never wrote**: the messages still in its
///   queue when it is dropped (a failed write, a peer that stopped reading until the
///   close timeout), for the pump to return with the connection's unsent messages
///   (**G3** end to end).
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
    handed_back: Mutex<Vec<Message>>,
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

    /// The socket never wrote these messages whole (in order).
    pub(crate) fn hand_back(&self, messages: Vec<Message>) {
        let mut handed_back = self
            .state
            .handed_back
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        handed_back.extend(messages);
    }

    /// Takes what the socket handed back.
    pub(crate) fn take_handed_back(&self) -> Vec<Message> {
        let mut handed_back = self
            .state
            .handed_back
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *handed_back)
    }
}
