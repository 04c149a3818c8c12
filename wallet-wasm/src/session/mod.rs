//! The wallet's side of factory creation, on any platform: a [`Session`] drives
//! `shared::ceremony::ClientCeremony` over a [`Transport`], stores through a [`Storage`], and
//! reads the chain through a [`ChainSource`].
//!
//! One session = one attempt to join one factory: connect, `hello` (the LSP's signed terms are
//! checked), authenticate with the wallet's identity key, `join_request`, then the ceremony's
//! rounds until the funding transaction confirms (or the ceremony ends otherwise).
//!
//! Guarantees:
//! - Actions run in the machine's order, and each store completes before anything after it:
//!   the double-sign records are durable before the partial signatures leave, and the verified
//!   path (every signature checked against the tree the wallet rebuilt itself) is durable
//!   before `sigs_stored`.
//! - A lost connection is reopened (with the same identity key) up to
//!   [`SessionConfig::reconnect_attempts`] times; the LSP re-attaches the wallet and replays its
//!   last message, and the session re-sends its own last message (a duplicate is refused by the
//!   LSP, harmlessly). Once the funding transaction is out the session needs only the chain.
//! - The funding confirmation comes from the wallet's own chain source, and the confirmed
//!   transaction must create the output the stored path spends.
//! - The tip is read from that source before joining and before each proposal is checked. A
//!   read that fails, or a tip far below one the wallet has already seen
//!   ([`crate::chain::TipWatch`]), is never taken as a height: the session does not join, or
//!   refuses the proposal ("cannot read the chain from <url>: …; not signing"), and a funding
//!   confirmation is not taken until the chain reads well again.

mod chain_source;
#[cfg(not(target_arch = "wasm32"))]
mod dir_storage;
mod driver;
pub(crate) mod handshake;
mod jobs;
mod storage;
mod transport;

#[cfg(target_arch = "wasm32")]
mod browser;
#[cfg(all(test, target_arch = "wasm32"))]
mod browser_tests;
#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(target_arch = "wasm32")]
pub(crate) mod vault_storage;

use std::time::Duration;

use bitcoin::secp256k1::Keypair;
use bitcoin::Network;
use shared::auth::Resumed;
use shared::ceremony::{ClientConfig, ClientEvent, ClientOutcome};
use shared::musig::GuardError;
use shared::terms::TermsError;
use shared::types::{FactoryId, SessionId};
use shared::verify::ClientPolicy;
use shared::wire::DecodeError;

#[cfg(target_arch = "wasm32")]
pub use browser::{BrowserConnector, BrowserTransport};
pub use chain_source::{ChainSource, Coins, EsploraChain};
#[cfg(not(target_arch = "wasm32"))]
pub use dir_storage::DirStorage;
pub use driver::Session;
pub use jobs::TreeJobs;
#[cfg(not(target_arch = "wasm32"))]
pub use native::{WsConnector, WsTransport};
pub use storage::{MemoryStorage, Storage, StorageError, StoredPath};
pub use transport::{Connect, Transport, TransportError};
#[cfg(target_arch = "wasm32")]
pub use vault_storage::{VaultStorage, GUARD_RECORD, PATH_PREFIX};

use crate::chain::ChainError;

/// What a session needs to know.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The wallet's network; terms and proposals for another are refused.
    pub network: Network,
    /// The wallet's long-term identity key (authentication only).
    pub identity: Keypair,
    /// The factory key, amounts and limits for this factory.
    pub ceremony: ClientConfig,
    /// The wallet's own limits on proposals.
    pub policy: ClientPolicy,
    /// Confirmations of the funding transaction after which the factory is open.
    pub confirmations: u32,
    /// How many times a lost connection is reopened before the session gives up.
    pub reconnect_attempts: u32,
    /// Pause before each reconnection.
    pub reconnect_delay: Duration,
    /// How often the chain is polled while waiting for the funding confirmation.
    pub chain_poll: Duration,
    /// Software name sent in `hello`.
    pub agent: String,
}

impl SessionConfig {
    /// Defaults for `network`: one confirmation, 10 reconnections 1 s apart, chain polled
    /// every second.
    pub fn new(network: Network, identity: Keypair, ceremony: ClientConfig) -> Self {
        SessionConfig {
            network,
            identity,
            ceremony,
            policy: ClientPolicy::for_network(network),
            confirmations: 1,
            reconnect_attempts: 10,
            reconnect_delay: Duration::from_secs(1),
            chain_poll: Duration::from_secs(1),
            agent: crate::AGENT.into(),
        }
    }
}

/// Progress reports, for a UI or a test harness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Connected and authenticated; `resumed` is the membership the LSP re-attached.
    Connected {
        /// What the LSP still holds for this wallet.
        resumed: Option<Resumed>,
    },
    /// The connection broke; the session reconnects.
    Disconnected {
        /// What happened.
        reason: String,
    },
    /// The LSP restarted and forgot this wallet before anything was signed; the session sends
    /// a new join request.
    Rejoining,
    /// An event of the ceremony.
    Ceremony(ClientEvent),
    /// A verified, signed path was stored (before `sigs_stored` was sent).
    PathStored {
        /// Factory.
        factory: FactoryId,
        /// Session.
        session: SessionId,
    },
    /// The LSP answered one of our messages with an error (the session goes on).
    LspError {
        /// The LSP's explanation.
        message: String,
    },
    /// The wallet's chain source became unreadable or contradictory (`Some`: why, and what
    /// the wallet will not do), or readable again (`None`).
    Chain {
        /// The trouble, in words.
        trouble: Option<String>,
    },
}

/// How a session ended.
#[derive(Debug, Clone)]
pub struct SessionReport {
    /// The ceremony's outcome.
    pub outcome: ClientOutcome,
    /// The last path stored (the open factory's, when the outcome is `Open`).
    pub path: Option<StoredPath>,
    /// Errors the LSP sent back (refused messages).
    pub lsp_errors: Vec<String>,
    /// LSP messages the ceremony refused (stale, duplicated, out of order), with why.
    pub refused: Vec<String>,
    /// Times the connection was reopened.
    pub reconnects: u32,
    /// Times the session joined again because the LSP had lost an unsigned membership.
    pub rejoins: u32,
    /// The quote of the last `join_accepted` this wallet accepted (the membership that signs):
    /// its fee is what the channel owes, taken from its first payment received.
    pub quote: Option<shared::ceremony::Quote>,
}

/// Why a session failed (as opposed to ending with a ceremony outcome).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The LSP could not be reached, or the connection broke too often.
    #[error("lost the LSP: {source} (after {attempts} reconnection attempts)")]
    Unreachable {
        /// The last failure.
        source: TransportError,
        /// Reconnections tried.
        attempts: u32,
    },
    /// The LSP sent something unreadable.
    #[error("the LSP sent an unreadable frame: {0}")]
    Decode(#[from] DecodeError),
    /// The LSP's terms failed their checks.
    #[error(transparent)]
    Terms(#[from] TermsError),
    /// The LSP's identity changed between connections.
    #[error("the LSP at this address now has another identity key; refusing to go on")]
    LspChanged,
    /// The handshake went wrong.
    #[error("the LSP did not complete the handshake: {0}")]
    Handshake(String),
    /// The LSP refused the wallet's authentication.
    #[error("the LSP refused this wallet's authentication: {0}")]
    AuthRefused(String),
    /// Storage failed; the session stopped before promising anything it did not store.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored double-sign records contradict each other.
    #[error("the stored double-sign records are inconsistent: {0}")]
    Guard(#[from] GuardError),
    /// The chain source failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The tip could not be read (or contradicts one seen) before joining.
    #[error("{0}; not joining")]
    ChainUnreadable(ChainError),
    /// The final path did not verify (the ceremony checked each signature, so this means the
    /// proposal changed under it).
    #[error("the signed path does not verify: {0}")]
    BadPath(String),
    /// The confirmed funding transaction does not create the output the path spends.
    #[error("the confirmed funding transaction {txid} does not fund this wallet's path")]
    FundingMismatch {
        /// The transaction the LSP named.
        txid: bitcoin::Txid,
    },
}
