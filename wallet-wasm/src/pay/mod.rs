//! Payments from the wallet: the channel on each of the wallet's funded leaves, kept open with
//! the LSP over the WebSocket, and the commands a UI or a test gives ([`PayHandle`]): make an
//! invoice, quote and pay one, ask the demo faucet, quote and buy inbound liquidity, read
//! balances and history.
//!
//! A [`PayClient`] runs for as long as the wallet is open: it connects (and reconnects), sends
//! `channel_open` for every leaf, follows the LSP's commitment rounds, releases preimages only
//! to HTLCs that pay one of its own unexpired invoices in full, and offers HTLCs for the
//! payments it is told to make. Buying liquidity moves a channel to its leaf's next state
//! (`docs/protocol.md`, "Leaf states and inbound liquidity"); the client runs the wallet's side
//! of that ceremony, one advance at a time. What it stores, and when, is in [`store`].

mod driver;
pub mod liquidity;
mod restore;
pub mod store;
mod tower;
#[cfg(target_arch = "wasm32")]
mod vault_store;

use bitcoin::secp256k1::{Keypair, SecretKey};
use bitcoin::{Amount, Network};
use futures::channel::{mpsc, oneshot};
use shared::leaf::LeafEpoch;
use shared::path::ClientPath;
use shared::pay::{ChannelId, InvoiceError, JoinFee};

pub use driver::PayClient;
pub use restore::{add_leaf_states, leaf_channels, leaf_record, pending_state, restore_channel};
pub use store::{
    Attempt, Direction, InvoiceRecord, LeafChannel, LeafRecord, MemoryPayStore, Opening, PayState,
    PayStore, PaymentRecord, PaymentStatus, PendingAdvance, SwapRecord,
};
pub use tower::TowerLink;

use crate::session::StorageError;
#[cfg(target_arch = "wasm32")]
pub use vault_store::VaultPayStore;

/// One funded leaf of the wallet: its channel's id, its verified path, the wallet's factory key
/// (the channel output is MuSig2 of it and the LSP's factory key), and the fee of its join.
#[derive(Debug, Clone)]
pub struct PayLeaf {
    /// The channel.
    pub channel: ChannelId,
    /// The verified path to the leaf.
    pub path: ClientPath,
    /// The wallet's factory key of that factory.
    pub factory_secret: SecretKey,
    /// The fee of the join quote this wallet accepted: the channel owes it until a payment
    /// received pays it (`shared::pay::join_fee`).
    pub join_fee: Amount,
}

/// What a payment client needs.
#[derive(Debug, Clone)]
pub struct PayConfig {
    /// The wallet's network.
    pub network: Network,
    /// The wallet's identity key (authentication, and the invoices' signing key).
    pub identity: Keypair,
    /// The wallet's funded leaves.
    pub leaves: Vec<PayLeaf>,
    /// Pause before each reconnection.
    pub reconnect_delay: std::time::Duration,
    /// Software name sent in `hello`.
    pub agent: String,
    /// Seconds an invoice stays payable.
    pub invoice_expiry_secs: u64,
    /// The keyless watchtower kept up to date with this wallet's exits and penalties, if any.
    pub watchtower: Option<TowerLink>,
}

impl PayConfig {
    /// Defaults: reconnect every 2 s, invoices valid for one hour.
    pub fn new(network: Network, identity: Keypair, leaves: Vec<PayLeaf>) -> PayConfig {
        PayConfig {
            network,
            identity,
            leaves,
            reconnect_delay: std::time::Duration::from_secs(2),
            agent: crate::AGENT.into(),
            invoice_expiry_secs: 3600,
            watchtower: None,
        }
    }
}

/// Why a command failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PayError {
    /// Not connected to the LSP right now.
    #[error("not connected to the provider; the wallet keeps trying")]
    NotConnected,
    /// No channel is open yet.
    #[error("no channel is open yet: join a factory first, or wait for the provider to connect")]
    NoChannel,
    /// The invoice is not payable.
    #[error(transparent)]
    Invoice(#[from] InvoiceError),
    /// Not enough balance for amount plus fee.
    #[error("not enough balance: {need} sat needed (amount plus fee), {have} sat available")]
    InsufficientBalance {
        /// What is needed.
        need: u64,
        /// What the best channel holds.
        have: u64,
    },
    /// Every channel of this wallet takes no more payments.
    #[error("your channel takes no more payments: {0}")]
    Closed(String),
    /// The invoice was already paid (or is being paid) by this wallet.
    #[error("this invoice is already paid, or its payment is under way")]
    AlreadyPaid,
    /// The LSP or the payee failed the payment.
    #[error("the payment failed: {0}")]
    Failed(String),
    /// The channel closed while the payment was under way and the provider may already hold
    /// it: it ends on chain, paid or returned, and the history says which.
    #[error(
        "{0}; this payment now ends on chain, and your history will show whether it went through"
    )]
    EndsOnChain(String),
    /// Buying liquidity is not possible now, or the provider refused it (in words).
    #[error("{0}")]
    Liquidity(String),
    /// Storage failed; nothing was sent.
    #[error("storage failed: {0}")]
    Storage(String),
    /// The client stopped.
    #[error("the wallet's payment client stopped")]
    Stopped,
    /// The channel to move out of holds nothing of this wallet's.
    #[error("this channel holds nothing to move")]
    NothingToMove,
    /// The channel still holds something of this wallet's, so its key stays.
    #[error("this channel still holds {0}: its key stays with you")]
    StillHolds(String),
    /// A payment to an on-chain address cannot be made (in words).
    #[error("{0}")]
    OnChain(String),
}

impl From<StorageError> for PayError {
    fn from(e: StorageError) -> Self {
        PayError::Storage(e.to_string())
    }
}

/// What sending to an on-chain address will cost, shown before the user confirms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapQuote {
    /// What the provider pays on chain.
    pub amount: Amount,
    /// The provider's fee.
    pub fee: Amount,
    /// The network fee of the wallet's claim, at today's rate (taken from `amount`).
    pub claim_fee: Amount,
    /// What arrives at the address: `amount − claim_fee`.
    pub arrives: Amount,
    /// What leaves the balance: `amount + fee`.
    pub total: Amount,
}

/// What paying an invoice will cost, shown before the user confirms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayQuote {
    /// Amount to the payee.
    pub amount: Amount,
    /// Routing fee to the LSP.
    pub fee: Amount,
    /// The invoice's description.
    pub description: String,
    /// Unix time the invoice expires.
    pub expires_at: u64,
    /// Whether the balance covers amount plus fee.
    pub affordable: bool,
    /// What the provider said of the payee right now, when the payment would fail or wait
    /// (it cannot receive that much, it is offline, its channel is closed); `None` when it can
    /// go through, or when the provider did not answer within a few seconds.
    pub warning: Option<String>,
    /// The payment goes out to the Lightning Network (the provider said so): the network's
    /// routing fee comes out of `fee`.
    pub outside: bool,
}

/// One channel in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSummary {
    /// The channel.
    pub channel: ChannelId,
    /// Its capacity.
    pub capacity: Amount,
    /// The wallet's balance (committed).
    pub balance: Amount,
    /// What the wallet can still receive on it.
    pub inbound: Amount,
    /// HTLCs pending on it.
    pub pending: usize,
    /// Whether the LSP opened it on the current connection.
    pub ready: bool,
    /// The leaf state whose channel output it lives on (0 until liquidity is bought).
    pub leaf: LeafEpoch,
    /// Inbound liquidity still for sale in its leaf (0 once the leaf is exhausted).
    pub for_sale: Amount,
    /// A liquidity purchase under way on it, if any (no payment uses the channel meanwhile).
    pub advance: Option<LiquidityStep>,
    /// Why it takes no more payments, once the provider said so (its factory's tree or a
    /// commitment is on chain, or its factory is near its timeout).
    pub closed: Option<String>,
    /// What it owes for its join, and the payment that paid it.
    pub join_fee: JoinFee,
}

/// Where a liquidity purchase is.
pub use shared::leaf::flow::AdvanceStep as LiquidityStep;

/// What buying `amount` of inbound liquidity costs, shown before the user confirms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiquidityQuote {
    /// The channel it goes to.
    pub channel: ChannelId,
    /// Liquidity asked.
    pub amount: Amount,
    /// Its price (`liquidity_fee_ppm` of the terms), paid from the channel balance.
    pub price: Amount,
    /// What the leaf can still sell (before this purchase).
    pub available: Amount,
    /// What the wallet could receive after the purchase.
    pub inbound_after: Amount,
    /// Whether the amount can be bought now (within what is for sale, the terms' limits and the
    /// balance), and if not, why, in words.
    pub refusal: Option<String>,
}

/// A completed purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiquidityBought {
    /// The channel.
    pub channel: ChannelId,
    /// The leaf state the channel now lives on.
    pub leaf: LeafEpoch,
    /// Liquidity bought.
    pub amount: Amount,
    /// Price paid.
    pub price: Amount,
}

/// Balances and history.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Connected to the LSP.
    pub connected: bool,
    /// Every channel.
    pub channels: Vec<ChannelSummary>,
    /// Total spendable balance.
    pub balance: Amount,
    /// Total that can still be received.
    pub inbound: Amount,
    /// Payments, newest first.
    pub payments: Vec<PaymentRecord>,
    /// What the watchtower holds, or why it could not be updated, in words (`None` without a
    /// watchtower).
    pub watchtower: Option<String>,
}

/// What happened, for the UI.
#[derive(Debug, Clone, PartialEq)]
pub enum PayEvent {
    /// Connected and authenticated.
    Connected,
    /// The connection broke; the client reconnects.
    Disconnected {
        /// Why.
        reason: String,
    },
    /// A channel is open (first round committed, or re-opened after reconnecting).
    ChannelReady(ChannelId),
    /// A payment arrived.
    Received(PaymentRecord),
    /// A payment went through.
    Sent(PaymentRecord),
    /// A payment failed.
    Failed(PaymentRecord),
    /// Balances changed.
    Updated,
    /// The LSP refused something, in words.
    LspError(String),
    /// A channel takes no more payments.
    ChannelClosed {
        /// The channel.
        channel: ChannelId,
        /// Why, in words.
        reason: String,
    },
    /// A payment deadline on a channel passed unsettled (`Channel::poll_timeout`): the channel
    /// takes no more payments and must go on chain (walk the tree, publish this wallet's latest
    /// commitment, claim) before the deadline's HTLC expires. The page starts the exit.
    GoingOnChain {
        /// The channel.
        channel: ChannelId,
        /// Why, in words.
        reason: String,
    },
    /// The provider says a channel's factory is in its dying period (or past it): move to a
    /// newer factory ([`PayHandle::migrate`]) or leave on chain.
    FactoryEnding(shared::lifecycle::FactoryNotice),
    /// A liquidity purchase moved on.
    Liquidity {
        /// The channel.
        channel: ChannelId,
        /// Its step.
        step: LiquidityStep,
    },
    /// Liquidity was bought: the channel lives on the leaf's new state.
    LiquidityBought(LiquidityBought),
    /// The watchtower took this channel's latest exit and penalties: it holds `penalties`.
    TowerUpdated {
        /// The channel.
        channel: ChannelId,
        /// Penalties it holds for the channel.
        penalties: usize,
    },
    /// The watchtower could not be updated (tried again later), in words.
    TowerFailed(String),
    /// A liquidity purchase was given up (nothing changed), in words.
    LiquidityFailed {
        /// The channel.
        channel: ChannelId,
        /// Why.
        reason: String,
    },
}

pub(crate) enum Command {
    Invoice {
        amount: Amount,
        description: String,
        reply: oneshot::Sender<Result<InvoiceRecord, PayError>>,
    },
    Quote {
        invoice: String,
        reply: oneshot::Sender<Result<PayQuote, PayError>>,
    },
    Pay {
        invoice: String,
        reply: oneshot::Sender<Result<PaymentRecord, PayError>>,
    },
    SwapQuote {
        address: String,
        amount: Amount,
        reply: oneshot::Sender<Result<SwapQuote, PayError>>,
    },
    SwapOut {
        address: String,
        quote: SwapQuote,
        reply: oneshot::Sender<Result<PaymentRecord, PayError>>,
    },
    Faucet {
        amount: Amount,
        reply: oneshot::Sender<Result<InvoiceRecord, PayError>>,
    },
    Snapshot {
        reply: oneshot::Sender<Snapshot>,
    },
    LiquidityQuote {
        amount: Amount,
        reply: oneshot::Sender<Result<LiquidityQuote, PayError>>,
    },
    BuyLiquidity {
        amount: Amount,
        reply: oneshot::Sender<Result<LiquidityBought, PayError>>,
    },
    MoveBalance {
        from: ChannelId,
        to: ChannelId,
        reply: oneshot::Sender<Result<PaymentRecord, PayError>>,
    },
    ReleaseKey {
        channel: ChannelId,
        reply: oneshot::Sender<Result<(), PayError>>,
    },
    Stop,
}

/// How many times (every 200 ms) a migration looks for its payment's HTLC to leave the old
/// channel before releasing its key (the release is refused while it is there).
const MIGRATE_SETTLE_POLLS: u32 = 150;

/// Gives commands to a running [`PayClient`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PayHandle {
    tx: mpsc::UnboundedSender<Command>,
}

impl PayHandle {
    async fn ask<R>(
        &self,
        make: impl FnOnce(oneshot::Sender<R>) -> Command,
    ) -> Result<R, PayError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .unbounded_send(make(reply))
            .map_err(|_| PayError::Stopped)?;
        answer.await.map_err(|_| PayError::Stopped)
    }

    /// Makes (and stores) an invoice for `amount`.
    pub async fn invoice(
        &self,
        amount: Amount,
        description: &str,
    ) -> Result<InvoiceRecord, PayError> {
        let description = description.to_owned();
        self.ask(|reply| Command::Invoice {
            amount,
            description,
            reply,
        })
        .await?
    }

    /// What paying `invoice` costs.
    pub async fn quote(&self, invoice: &str) -> Result<PayQuote, PayError> {
        let invoice = invoice.to_owned();
        self.ask(|reply| Command::Quote { invoice, reply }).await?
    }

    /// Pays `invoice`; returns when the payment completed or failed.
    pub async fn pay(&self, invoice: &str) -> Result<PaymentRecord, PayError> {
        let invoice = invoice.to_owned();
        self.ask(|reply| Command::Pay { invoice, reply }).await?
    }

    /// What sending `amount` to on-chain `address` from the channel costs (the provider's fee
    /// and the claim's network fee), shown before the user confirms.
    pub async fn swap_quote(&self, address: &str, amount: Amount) -> Result<SwapQuote, PayError> {
        let address = address.to_owned();
        self.ask(|reply| Command::SwapQuote {
            address,
            amount,
            reply,
        })
        .await?
    }

    /// Sends `quote.amount` from the channel to on-chain `address` (`shared::swap`), at the
    /// provider's fee the user saw in `quote` (refused if it changed since); resolves once the
    /// provider settled the payment with the preimage the wallet's claim revealed, or failed
    /// it back.
    pub async fn swap_out(
        &self,
        address: &str,
        quote: &SwapQuote,
    ) -> Result<PaymentRecord, PayError> {
        let address = address.to_owned();
        let quote = quote.clone();
        self.ask(|reply| Command::SwapOut {
            address,
            quote,
            reply,
        })
        .await?
    }

    /// Asks the LSP's demo faucet for `amount` (arrives as a received payment).
    pub async fn faucet(&self, amount: Amount) -> Result<InvoiceRecord, PayError> {
        self.ask(|reply| Command::Faucet { amount, reply }).await?
    }

    /// Balances and history.
    pub async fn snapshot(&self) -> Result<Snapshot, PayError> {
        self.ask(|reply| Command::Snapshot { reply }).await
    }

    /// What buying `amount` of inbound liquidity costs, on the channel that can take it.
    pub async fn liquidity_quote(&self, amount: Amount) -> Result<LiquidityQuote, PayError> {
        self.ask(|reply| Command::LiquidityQuote { amount, reply })
            .await?
    }

    /// Buys `amount` of inbound liquidity; returns when the channel lives on the leaf's new
    /// state (progress comes as [`PayEvent::Liquidity`]), or when the purchase was given up.
    pub async fn buy_liquidity(&self, amount: Amount) -> Result<LiquidityBought, PayError> {
        self.ask(|reply| Command::BuyLiquidity { amount, reply })
            .await?
    }

    /// Moves the whole balance of channel `from` into channel `to` (a newer factory's): a
    /// payment to this wallet's own invoice on `to`, free of fees (`shared::lifecycle`).
    /// Returns when it went through or failed; either way no sat is lost.
    pub async fn move_balance(
        &self,
        from: ChannelId,
        to: ChannelId,
    ) -> Result<PaymentRecord, PayError> {
        self.ask(|reply| Command::MoveBalance { from, to, reply })
            .await?
    }

    /// Hands the provider the factory key of `channel`, which must hold nothing of this
    /// wallet's (no balance, no payment in flight); the channel is then closed as moved, and
    /// once every member did so the provider closes the factory alone.
    pub async fn release_key(&self, channel: ChannelId) -> Result<(), PayError> {
        self.ask(|reply| Command::ReleaseKey { channel, reply })
            .await?
    }

    /// Moves everything from `from` to `to` ([`PayHandle::move_balance`], skipped when `from`
    /// is already empty), then releases `from`'s key ([`PayHandle::release_key`]).
    pub async fn migrate(&self, from: ChannelId, to: ChannelId) -> Result<Amount, PayError> {
        let moved = match self.move_balance(from, to).await {
            Ok(record) => record.amount,
            Err(PayError::NothingToMove) => Amount::ZERO,
            Err(e) => return Err(e),
        };
        // The payment is settled once its preimage is back; its HTLC leaves the channel in the
        // next round, a moment later.
        for _ in 0..MIGRATE_SETTLE_POLLS {
            let settled = self
                .snapshot()
                .await?
                .channels
                .iter()
                .find(|c| c.channel == from)
                .is_none_or(|c| c.pending == 0 && c.balance == Amount::ZERO);
            if settled {
                break;
            }
            crate::platform::sleep(std::time::Duration::from_millis(200)).await;
        }
        self.release_key(from).await?;
        Ok(moved)
    }

    /// Stops the client (it closes the connection).
    pub fn stop(&self) {
        let _ = self.tx.unbounded_send(Command::Stop);
    }
}
