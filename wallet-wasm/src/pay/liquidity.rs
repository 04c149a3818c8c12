//! The wallet's checks and arithmetic of a liquidity purchase (no I/O): whether an offer is the
//! one asked for, the new channel's opening state, and the log replayed for a leaf state's
//! channel. The driver (`driver::advance`) runs the ceremony with them.

use bitcoin::Amount;
use shared::channel::{ChannelChange, CommitmentSpec};
use shared::leaf::{LeafEpoch, LiquidityOffer};

use super::store::{Attempt, LeafRecord};

/// Why an offer is refused, in words (the wallet gives the purchase up and says so).
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
    opening_spec(&expected.live, offer.amount, offer.price)?;
    Ok(want)
}

/// The new channel's opening state: `client − price`, `LSP + amount + price`, the live fee
/// rate, no HTLCs.
/// (`shared::leaf::opening_spec`, with the refusal in words.)
pub fn opening_spec(
    live: &CommitmentSpec,
    amount: Amount,
    price: Amount,
) -> Result<CommitmentSpec, OfferError> {
    shared::leaf::opening_spec(live, amount, price).ok_or(OfferError::Unaffordable {
        price: price.to_sat(),
        balance: live.client_balance.to_sat(),
    })
}

/// The changes a leaf state's channel is restored from: everything of the `current` attempt
/// (from its `log_from` on), and the double-sign records of the `earlier` attempts for the same
/// amount (they signed on the same output, so a different commitment is never signed there).
/// Changes no attempt covers are left out.
pub fn replayed(
    changes: &[ChannelChange],
    earlier: &[Attempt],
    current: &Attempt,
) -> Vec<ChannelChange> {
    let same: Vec<(u64, u64)> = earlier
        .iter()
        .enumerate()
        .filter(|(_, a)| a.amount == current.amount && a.log_from < current.log_from)
        .map(|(i, a)| {
            let end = earlier
                .get(i + 1)
                .map_or(current.log_from, |n| n.log_from.min(current.log_from));
            (a.log_from, end)
        })
        .collect();
    changes
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            let i = *i as u64;
            i >= current.log_from
                || (matches!(c, ChannelChange::SignRecord { .. })
                    && same.iter().any(|(from, end)| (*from..*end).contains(&i)))
        })
        .map(|(_, c)| c.clone())
        .collect()
}

/// `record`'s attempts at leaf state `leaf`'s channel before the one starting at `log_from`,
/// and that one (for `amount` if it is not recorded).
pub fn attempts_at(
    record: &LeafRecord,
    leaf: LeafEpoch,
    log_from: u64,
    amount: Amount,
) -> (Vec<Attempt>, Attempt) {
    let all = record.attempts.get(&leaf).cloned().unwrap_or_default();
    let current = all
        .iter()
        .find(|a| a.log_from == log_from)
        .copied()
        .unwrap_or(Attempt { amount, log_from });
    let earlier = all.into_iter().filter(|a| a.log_from < log_from).collect();
    (earlier, current)
}

#[cfg(test)]
mod tests;
