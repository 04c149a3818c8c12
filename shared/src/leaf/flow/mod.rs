//! One leaf advance (a liquidity purchase) as two sans-io state machines: [`LspAdvance`] (the
//! LSP's side) and [`ClientAdvance`] (the wallet's), in the creation ceremony's shape
//! (`crate::ceremony`): inputs `handle_*`, outputs [`poll_action`](LspAdvance::poll_action)
//! until `None`, [`poll_timeout`](LspAdvance::poll_timeout) for the driver's clock.
//!
//! The order of steps lives here, once (`docs/protocol.md`, "Leaf states and inbound
//! liquidity"):
//!
//! 1. wallet → `liquidity_request`; the LSP builds the [`super::Advance`], draws its nonces and
//!    answers `liquidity_offer` with its side of the new channel;
//! 2. the wallet checks the offer against what it asked ([`check_offer`]), **persists the
//!    attempt**, opens the new channel and answers `liquidity_accept` with its side;
//! 3. the LSP **persists the attempt** (so a later attempt of the same amount cannot open the
//!    same output with other balances), opens the new channel and starts its round 0;
//! 4. once commitment 0 of the new channel is done, the wallet **persists its signing record**
//!    (its double-sign guard for the leaf epoch, and the purchase it can no longer take back)
//!    and only then sends `leaf_partials`;
//! 5. the LSP checks them, records, signs, aggregates, **persists the sale** and the new
//!    channel, and only then sends `leaf_signed`;
//! 6. the wallet checks both signatures, **persists the advanced leaf** and the new channel
//!    becomes the live one.
//!
//! The driver owns the channels (the live one and the new one, each its own
//! [`crate::channel::Channel`]) and the store: [`AdvanceAction::OpenChannel`] asks it to open
//! the new channel, and it reports commitment 0 back with `handle_committed`. It performs
//! actions in order and finishes each [`AdvanceAction::Persist`] before any later action. An
//! action it cannot perform ends what was queued after it: the LSP drops its machine (and
//! tells the wallet), the wallet calls [`ClientAdvance::handle_failed`] (a purchase whose
//! signatures left stays frozen and is asked for again).

mod client;
mod lsp;
#[cfg(test)]
mod tests;

use bitcoin::Amount;

pub use client::{ClientAdvance, ClientChange, OfferContext, Sent};
pub use lsp::{LspAdvance, LspChange, OfferInputs};

use super::{AdvanceError, LeafEpoch, LeafError, LeafStatesError, LiquidityOffer};
use crate::channel::CommitmentSpec;
use crate::pay::{ChannelId, ChannelOpen};
use crate::wire::WireMsg;

/// What an advance asks its driver to do, in order.
#[derive(Debug, Clone)]
pub enum AdvanceAction<C> {
    /// Send a message to the peer.
    Send(WireMsg),
    /// Store a change durably; finish before performing any later action.
    Persist(C),
    /// Open the channel on the new leaf state's output and run its round 0 (the LSP starts
    /// it); call `handle_committed` once its commitment 0 is done.
    OpenChannel(Box<NewChannel>),
    /// Tell the application.
    Emit(AdvanceEvent),
}

/// The channel a purchase opens on the new leaf state's output.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChannel {
    /// The channel (same id; it lives on leaf state `leaf`).
    pub channel: ChannelId,
    /// The new leaf state.
    pub leaf: LeafEpoch,
    /// Its opening balances.
    pub opening: CommitmentSpec,
    /// The other side's basepoints for it.
    pub peer: ChannelOpen,
}

/// Where a purchase is, as the wallet shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvanceStep {
    /// The request is out; waiting for the provider's offer.
    Asking,
    /// Offer accepted; the bigger channel's first commitment is being signed.
    Opening,
    /// The wallet's signatures of the new leaf state are out; waiting for the provider's. The
    /// channel is frozen until they arrive (after a reconnection too).
    Signing,
}

/// What an advance tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdvanceEvent {
    /// It moved on.
    Step(AdvanceStep),
    /// The leaf is in state `leaf`: `amount` more inbound liquidity, for `price`.
    Done {
        /// The new leaf state.
        leaf: LeafEpoch,
        /// Liquidity bought.
        amount: Amount,
        /// What it cost.
        price: Amount,
    },
}

/// Why an advance ended without changing anything, or why an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// The offer is not the one asked for.
    #[error(transparent)]
    Offer(#[from] OfferError),
    /// The new state cannot be built, or signing failed.
    #[error(transparent)]
    Advance(#[from] AdvanceError),
    /// The leaf's record refuses the new state (its double-sign guard).
    #[error("refusing to sign the new leaf state: {0}")]
    Guard(#[from] LeafStatesError),
    /// A message that does not fit where the advance is.
    #[error("unexpected {0}")]
    OutOfOrder(&'static str),
    /// The balances of the new channel do not fill its output.
    #[error("the new channel's balances do not add up")]
    Unbalanced,
    /// It ran out of time.
    #[error("the purchase took too long")]
    TimedOut,
}

impl From<LeafError> for FlowError {
    fn from(e: LeafError) -> Self {
        FlowError::Advance(AdvanceError::Leaf(e))
    }
}

/// Why a wallet refuses an offer, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    /// The offer is for another leaf state than the next one.
    #[error("the provider offered {got}, but the next is {want}; try again")]
    WrongLeaf {
        /// The next leaf state.
        want: LeafEpoch,
        /// The one offered.
        got: LeafEpoch,
    },
    /// Another amount than asked.
    #[error("the provider offered {got} sat of liquidity, but {want} sat was asked")]
    WrongAmount {
        /// Asked.
        want: u64,
        /// Offered.
        got: u64,
    },
    /// Another price than the terms'.
    #[error("the provider asked {got} sat, but its terms price this at {want} sat")]
    WrongPrice {
        /// The terms' price.
        want: u64,
        /// Asked.
        got: u64,
    },
    /// The balance does not cover the price.
    #[error("the price of {price} sat is more than the channel balance of {balance} sat")]
    Unaffordable {
        /// The price.
        price: u64,
        /// The balance.
        balance: u64,
    },
    /// The provider's open message names another channel or leaf state.
    #[error("the provider's keys for the new channel name another channel or leaf state")]
    WrongOpen,
    /// The channel is not quiescent.
    #[error("a payment is still under way on the channel; try again once it is done")]
    Busy,
    /// An offer for another purchase than the one whose signatures left.
    #[error("the provider offered another purchase than the one being signed")]
    NotTheSigned,
    /// The new channel with other keys than an earlier attempt at it stored.
    #[error("the provider offered the new channel with other keys; refusing it")]
    OtherKeys,
}

/// What the wallet asked for and what it holds, to check an offer against.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The leaf state the live channel lives on.
    pub live_leaf: LeafEpoch,
    /// Liquidity asked.
    pub amount: Amount,
    /// The terms' price of it.
    pub price: Amount,
    /// The live channel's committed state.
    pub live: CommitmentSpec,
    /// Whether the live channel has no HTLC and no round or update in flight.
    pub quiescent: bool,
}

/// Checks `offer` against what was asked (`docs/protocol.md`, "Wallet, on the offer"), and
/// returns the new leaf state.
pub fn check_offer(offer: &LiquidityOffer, expected: &Expected) -> Result<LeafEpoch, OfferError> {
    let want = expected.live_leaf.next().ok_or(OfferError::WrongLeaf {
        want: expected.live_leaf,
        got: offer.leaf,
    })?;
    if offer.leaf != want {
        return Err(OfferError::WrongLeaf {
            want,
            got: offer.leaf,
        });
    }
    if offer.amount != expected.amount {
        return Err(OfferError::WrongAmount {
            want: expected.amount.to_sat(),
            got: offer.amount.to_sat(),
        });
    }
    if offer.price != expected.price {
        return Err(OfferError::WrongPrice {
            want: expected.price.to_sat(),
            got: offer.price.to_sat(),
        });
    }
    if offer.open.leaf != offer.leaf || offer.open.channel != offer.channel {
        return Err(OfferError::WrongOpen);
    }
    if !expected.quiescent || !expected.live.htlcs.is_empty() {
        return Err(OfferError::Busy);
    }
    opening(&expected.live, offer.amount, offer.price)?;
    Ok(want)
}

/// The new channel's opening state ([`super::opening_spec`]), with the refusal in words.
pub fn opening(
    live: &CommitmentSpec,
    amount: Amount,
    price: Amount,
) -> Result<CommitmentSpec, OfferError> {
    super::opening_spec(live, amount, price).ok_or(OfferError::Unaffordable {
        price: price.to_sat(),
        balance: live.client_balance.to_sat(),
    })
}
