//! Factory creation: the coordinator task that drives one `shared::ceremony::LspCeremony` per
//! factory over the wallets' WebSocket connections, funds factories from the LSP's wallet,
//! persists everything the ceremony asks for, and watches the funding confirmations.
//!
//! Shape (one task owns all ceremony state, so no lock is held across a ceremony step):
//!
//! ```text
//! connection tasks (ws) ──Inbound──▶ coordinator ──Outbound frames──▶ connection tasks
//!                                     │  ▲
//!                  SQLite (persist) ◀─┘  └──Inbound::Chain── chain watcher (Esplora)
//! ```
//!
//! - A connection joins the coordinator only after it proved its identity key
//!   ([`Inbound::Attach`]); the coordinator binds each identity to its `(factory, client)`
//!   membership, so a wallet that reconnects with the same key is re-attached to its ceremony
//!   and gets the last ceremony message it was sent (which says whether the round restarted).
//! - A factory gathers from its first join until it is full or its gathering time is over
//!   (then it needs `--min-clients`); only one factory signs at a time, so no two unbroadcast
//!   funding transactions compete for the wallet's coins.
//! - Actions of the ceremony are performed in order; every `Persist` is committed before any
//!   later action ([`persist`]).
//! - At start-up a factory whose ceremony was in flight is marked aborted (its funding
//!   transaction, never broadcast, is abandoned); its members learn it when they reconnect. A
//!   factory that was signed or broadcast resumes confirmation tracking.

mod bump;
mod chain;
mod coordinator;
mod events;
pub mod persist;
mod proposer;
mod restore;

use std::sync::Arc;
use std::time::Duration;

use bitcoin::secp256k1::XOnlyPublicKey;
use serde::Serialize;
use shared::params::FactoryParams;
use shared::types::{ClientId, FactoryId, SessionId};
use shared::wire::WireMsg;
use tokio::sync::{mpsc, oneshot};

pub(crate) use chain::watch_chain;
pub use chain::{ChainUpdate, WatchList};
pub(crate) use coordinator::{encode, factory_key, Coordinator};

use crate::config::Config;

/// A connection, numbered by the server.
pub type ConnId = u64;

/// What connection tasks and the chain watcher tell the coordinator.
#[derive(Debug)]
pub enum Inbound {
    /// A connection proved it holds `identity`; frames for it go to `out`.
    Attach {
        /// The connection.
        conn: ConnId,
        /// Its proven identity key.
        identity: XOnlyPublicKey,
        /// Where its frames go.
        out: mpsc::UnboundedSender<Outbound>,
    },
    /// A ceremony message from an attached connection.
    Message {
        /// The connection.
        conn: ConnId,
        /// The message.
        msg: WireMsg,
    },
    /// The connection closed.
    Detach {
        /// The connection.
        conn: ConnId,
    },
    /// What the chain watcher saw.
    Chain(ChainUpdate),
    /// The operator asks what the ceremonies in progress look like.
    Inspect(oneshot::Sender<CoordinatorView>),
}

/// The operator's view of the coordinator (admin API).
#[derive(Debug, Clone, Serialize)]
pub struct CoordinatorView {
    /// Wallet identities the coordinator keeps state for (connected, or members of a factory
    /// that has not ended long ago).
    pub known_wallets: usize,
    /// Factories that are not finished.
    pub ceremonies: Vec<CeremonyView>,
}

/// The operator's view of one factory that is not finished (admin API).
#[derive(Debug, Clone, Serialize)]
pub struct CeremonyView {
    /// The factory.
    pub factory: FactoryId,
    /// `gathering`, `signing` or `broadcast`.
    pub phase: &'static str,
    /// What the ceremony is doing, in words.
    pub status: String,
    /// The current signing session.
    pub session: Option<SessionId>,
    /// Unix time gathering ends (for a rung of the ladder, an estimate).
    pub gather_until: u64,
    /// For a rung of the ladder: the height it starts at.
    pub start_height: Option<u32>,
    /// Its members.
    pub members: Vec<MemberView>,
    /// Members excluded so far.
    pub excluded: Vec<ClientId>,
}

/// One member in a [`CeremonyView`].
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    /// Its id in the factory.
    pub client: ClientId,
    /// Its identity key.
    pub identity: XOnlyPublicKey,
    /// Whether a connection of it is open.
    pub connected: bool,
    /// Seconds it has been away, if it disconnected during the ceremony.
    pub away_secs: Option<u64>,
}

/// What the coordinator sends a connection task.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// One encoded envelope to send as a text frame.
    Frame(Arc<str>),
    /// Send this encoded (fatal) error frame, then close.
    Close(Arc<str>),
}

/// The coordinator's settings, resolved from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Tree parameters of every factory.
    pub params: FactoryParams,
    /// Clients per factory.
    pub factory_size: usize,
    /// Fewest clients to start, and to go on after exclusions.
    pub min_clients: usize,
    /// Seconds of gathering from the first join (without a ladder).
    pub gather_secs: u64,
    /// The ladder's schedule: a factory starts at its rung's height instead.
    pub ladder: Option<shared::lifecycle::Ladder>,
    /// Seconds a block takes, to estimate when a rung starts.
    pub block_secs: u64,
    /// What a rung that did not fill does at its block.
    pub underfilled: crate::config::Underfilled,
    /// Seconds per signing round.
    pub round_timeout_secs: u64,
    /// Seconds a disconnected member may take to come back.
    pub reconnect_grace_secs: u64,
    /// Confirmations that make a factory funded.
    pub confirmations: u32,
    /// How often the chain watcher polls.
    pub chain_poll: Duration,
    /// Blocks a broadcast funding transaction may stay unconfirmed before its fee is bumped
    /// (0: never).
    pub bump_after_blocks: u32,
}

impl Settings {
    /// The settings `config` asks for.
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            params: config.factory_params(),
            factory_size: config.factory_size(),
            min_clients: config.factory.min_clients,
            gather_secs: config.factory.gather_secs,
            ladder: config.ladder(),
            block_secs: config.block_secs(),
            underfilled: config.factory.underfilled_rung,
            round_timeout_secs: config.factory.round_timeout_secs,
            reconnect_grace_secs: config.factory.reconnect_grace_secs,
            confirmations: config.funding_confirmations(),
            chain_poll: Duration::from_millis(config.factory.chain_poll_ms.max(50)),
            bump_after_blocks: config.factory.funding_bump_blocks,
        }
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
