//! What a unilateral exit costs, before joining (worst case from parameters and N) or for a
//! stored path.

use bitcoin::{Amount, FeeRate};
use serde::{Deserialize, Serialize};

use crate::params::{BlockDelta, FactoryParams, ParamsError};
use crate::tree::layout::Layout;
use crate::tree::signed_vsize;

/// The cost of walking a path from the funding output to a leaf.
///
/// Covers the factory part only (up to the leaf confirming); closing the channel afterwards is
/// the channel's own cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExitCost {
    /// Transactions to broadcast.
    pub txs: u32,
    /// Their total virtual size, signed.
    pub vbytes: u64,
    /// Fees already inside them (paid by the factory at the pre-signed fee rate).
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub prepaid_fee: Amount,
    /// Blocks from the first broadcast until the leaf confirms, if each transaction confirms in
    /// the first block it may, one after the other: a state waits its relative delay after its
    /// kickoff confirms; any other transaction takes one block.
    pub blocks: BlockDelta,
}

impl ExitCost {
    /// What all those bytes cost at `rate`.
    pub fn fee_at(&self, rate: FeeRate) -> Amount {
        rate.fee_vb(self.vbytes).unwrap_or(Amount::MAX_MONEY)
    }

    /// What CPFP must add on top of the prepaid fees to reach `rate` (zero if the pre-signed rate
    /// is already enough).
    pub fn extra_fee_at(&self, rate: FeeRate) -> Amount {
        self.fee_at(rate)
            .checked_sub(self.prepaid_fee)
            .unwrap_or(Amount::ZERO)
    }
}

/// The worst-case exit of any client of a factory of `clients` clients: the deepest path, with
/// every state and the leaf at their longest delay `(K-1)·S`. Computable before joining; no keys needed.
pub fn worst_case_cost(params: &FactoryParams, clients: u32) -> Result<ExitCost, ParamsError> {
    params.validate()?;
    Ok(worst_case_unchecked(params, clients))
}

/// [`worst_case_cost`] without validating `params` first (the validator itself uses it).
pub(crate) fn worst_case_unchecked(params: &FactoryParams, clients: u32) -> ExitCost {
    let layout = Layout::new(params, clients);
    let longest = params.max_state_delay().unwrap_or(BlockDelta::MAX_RELATIVE);
    let mut cost = ExitCost::default();
    // Balanced splits put the larger chunks first, so client 0's path is the deepest and its
    // transactions the largest.
    for (span, _) in layout.path(0) {
        for shape in layout.shapes(&span) {
            let delay = if shape.is_state {
                longest.to_blocks()
            } else {
                0
            };
            cost.txs += 1;
            cost.vbytes += signed_vsize(shape.p2tr_outputs);
            cost.prepaid_fee += crate::tree::fee_of(params, shape.p2tr_outputs);
            cost.blocks =
                BlockDelta::from_blocks(cost.blocks.to_blocks().saturating_add(delay.max(1)));
        }
    }
    cost
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mainnet_worst_case_is_about_two_days() {
        let p = FactoryParams::mainnet();
        let small = worst_case_cost(&p, 4).unwrap();
        // kickoff, state, kickoff, state, leaf: two states and the leaf at 108 blocks each.
        assert_eq!(small.txs, 5);
        assert_eq!(small.blocks, BlockDelta::from_blocks(3 * 108 + 2));
        let big = worst_case_cost(&p, 1024).unwrap();
        assert_eq!(big.txs, 9, "4 static levels above two DW layers");
        assert!(big.vbytes > small.vbytes);
        assert_eq!(big.fee_at(p.fee_rate), big.prepaid_fee);
        assert_eq!(big.extra_fee_at(p.fee_rate), Amount::ZERO);
        let ten = FeeRate::from_sat_per_vb_u32(10);
        assert!(big.extra_fee_at(ten) > Amount::ZERO);
    }
}
