//! Layer 6, the adapters: the driver behind axum (feature `axum`) and
//! tokio-tungstenite (feature `tungstenite`), on the crate's own WebSocket framing;
//! and the registry joined to other nodes over Redis (feature `redis`). Reachable as
//! `ws_lifecycle::axum`, `ws_lifecycle::tungstenite` and `ws_lifecycle::cluster`.

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod cluster;
#[cfg(any(feature = "axum", feature = "tungstenite"))]
mod frames;
#[cfg(feature = "tungstenite")]
#[cfg_attr(docsrs, doc(cfg(feature = "tungstenite")))]
pub mod tungstenite;
