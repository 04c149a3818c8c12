//! How a session reaches its LSP: a [`Transport`] moves text frames over one connection, a
//! [`Connect`] opens (and reopens) connections. Native and browser implementations live in
//! `native` and `browser`; tests wrap them to drop, delay or tamper with frames.
//!
//! The traits use `async fn` without a `Send` bound on purpose: the browser's WebSocket is not
//! `Send`. Natively, a session over a `Send` transport is itself `Send` and can be spawned.

/// Why a connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connection to {url} failed: {reason}")]
pub struct TransportError {
    /// Where the session tried to connect.
    pub url: String,
    /// What the platform reported.
    pub reason: String,
}

/// One open connection carrying text frames (one wire envelope each).
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// Sends one frame.
    async fn send(&mut self, frame: String) -> Result<(), TransportError>;

    /// The next text frame, or `None` once the peer closed. Must be cancel-safe: the session
    /// drops this future when a timer fires first, and no frame may be lost by that.
    async fn next(&mut self) -> Result<Option<String>, TransportError>;
}

/// Opens connections to one LSP.
#[allow(async_fn_in_trait)]
pub trait Connect {
    /// The connection type.
    type Transport: Transport;

    /// Opens a new connection.
    async fn connect(&mut self) -> Result<Self::Transport, TransportError>;
}
