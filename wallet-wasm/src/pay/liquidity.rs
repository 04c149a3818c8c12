//! The wallet's arithmetic of a liquidity purchase (no I/O): the log replayed for a leaf
//! state's channel. The offer's checks and the order of the steps are `shared::leaf::flow`'s;
//! the driver (`driver::advance`) runs its `ClientAdvance`.

use bitcoin::Amount;
use shared::channel::ChannelChange;
use shared::leaf::LeafEpoch;

use super::store::{Attempt, LeafRecord};

pub use shared::leaf::flow::{check_offer, opening as opening_spec, Expected, OfferError};

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
    // The latest attempt that starts there (an attempt that stored no change leaves the next
    // one starting at the same place).
    let current = all
        .iter()
        .rfind(|a| a.log_from == log_from)
        .copied()
        .unwrap_or(Attempt { amount, log_from });
    let earlier = all.into_iter().filter(|a| a.log_from < log_from).collect();
    (earlier, current)
}

#[cfg(test)]
mod tests;
