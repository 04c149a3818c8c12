//! The wallet core: everything the browser app does that is not drawing.
//!
//! The Leptos app in `web/` calls into this crate; this crate calls into `shared` for every
//! protocol decision. Modules that need the browser (WebSocket, timers) are wasm32-only; the rest
//! also builds natively so the same logic can run in a swarm of native test clients.

pub mod account;
pub mod chain;
pub mod exit;
pub mod format;
pub mod keys;
pub mod lsp;
pub mod onchain;
pub mod pace;
pub mod pay;
pub mod picture;
pub mod platform;
pub mod session;
pub mod vault;

#[cfg(all(test, target_arch = "wasm32"))]
mod wasm_tests;

/// This wallet's name and version, sent to the LSP in `Hello`.
pub const AGENT: &str = concat!("superscalar-wallet/", env!("CARGO_PKG_VERSION"));
