//! Fee rates for transactions that must confirm now, read the same way by the LSP and the
//! wallet: Esplora's estimates ([`pick_fee_rate`]) and a node's refusals ([`is_fee_refusal`]).

use std::collections::HashMap;

use bitcoin::FeeRate;

/// The lowest fee rate [`pick_fee_rate`] returns: 1 sat/vB, the default relay minimum.
pub const FEE_RATE_FLOOR: FeeRate = FeeRate::BROADCAST_MIN;
/// The highest: a sanity cap against a broken estimator, also enforced when signing.
pub const FEE_RATE_CAP: FeeRate = FeeRate::from_sat_per_kwu(250_000); // 1000 sat/vB

/// The confirmation target of a transaction that answers a cheat or a deadline.
pub const URGENT_BLOCKS: u16 = 2;

/// Node refusals that mean "pays too little", as Bitcoin Core words them.
const FEE_REFUSALS: [&str; 4] = [
    "min relay fee not met",
    "mempool min fee not met",
    "insufficient fee",
    "fee not met",
];

/// Picks from Esplora's estimates (sat/vB by confirmation target) the one for the largest target
/// at or below `target_blocks`, else the most urgent one given, and clamps it between
/// [`FEE_RATE_FLOOR`] and [`FEE_RATE_CAP`]. No usable estimate gives the floor.
pub fn pick_fee_rate(estimates: &HashMap<u16, f64>, target_blocks: u16) -> FeeRate {
    let target = target_blocks.max(1);
    let usable = || {
        estimates
            .iter()
            .filter(|(_, rate)| rate.is_finite() && **rate > 0.0)
    };
    let chosen = usable()
        .filter(|(t, _)| **t <= target)
        .max_by_key(|(t, _)| **t)
        .or_else(|| usable().min_by_key(|(t, _)| **t));
    let Some((_, sat_per_vb)) = chosen else {
        return FEE_RATE_FLOOR;
    };
    // 1 sat/vB = 250 sat/kwu; round up so the estimate is met. `as` saturates.
    let sat_per_kwu = (sat_per_vb * 250.0).ceil() as u64;
    FeeRate::from_sat_per_kwu(sat_per_kwu).clamp(FEE_RATE_FLOOR, FEE_RATE_CAP)
}

/// What `tx`, spending one output worth `spent`, pays in fee (zero if its outputs hold more):
/// every pre-signed transaction's input value is known without reading the chain.
pub fn fee_paid(tx: &bitcoin::Transaction, spent: bitcoin::Amount) -> bitcoin::Amount {
    let out: bitcoin::Amount = tx.output.iter().map(|o| o.value).sum();
    spent.checked_sub(out).unwrap_or(bitcoin::Amount::ZERO)
}

/// The rate `tx`, spending outputs worth `spent`, pays ([`fee_paid`] per weight unit).
pub fn rate_paid(tx: &bitcoin::Transaction, spent: bitcoin::Amount) -> FeeRate {
    fee_paid(tx, spent) / tx.weight()
}

/// The highest rate a waiting transaction may pay and still be replaced by the same one signed
/// again at `rate`: BIP-125 wants the replacement to pay at least 1 sat/vB more on the same
/// size, so only what pays less than `rate − 1 sat/vB` is signed again.
pub fn replaceable_below(rate: FeeRate) -> FeeRate {
    FeeRate::from_sat_per_kwu(rate.to_sat_per_kwu().saturating_sub(250))
}

/// Whether a node's `reason` for refusing a transaction is its fee (rather than, say, a lock
/// not yet passed): only then does a child paying for it help.
pub fn is_fee_refusal(reason: &str) -> bool {
    FEE_REFUSALS.iter().any(|r| reason.contains(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_estimates_pick_target_and_clamp() {
        let sat_vb = |n: u32| FeeRate::from_sat_per_vb_u32(n);
        assert_eq!(pick_fee_rate(&HashMap::new(), 6), FEE_RATE_FLOOR);
        assert_eq!(FEE_RATE_FLOOR, sat_vb(1));
        let estimates = HashMap::from([(1, 10.0), (6, 3.2), (144, 1.1), (1008, 0.5)]);
        assert_eq!(pick_fee_rate(&estimates, 1), sat_vb(10));
        assert_eq!(pick_fee_rate(&estimates, 0), sat_vb(10));
        assert_eq!(pick_fee_rate(&estimates, 3), sat_vb(10));
        assert_eq!(pick_fee_rate(&estimates, 6), FeeRate::from_sat_per_kwu(800));
        assert_eq!(
            pick_fee_rate(&estimates, 200),
            FeeRate::from_sat_per_kwu(275)
        );
        assert_eq!(pick_fee_rate(&estimates, 2000), FEE_RATE_FLOOR);
        // Only slower targets than asked: take the most urgent one.
        let slow = HashMap::from([(12, 4.0), (24, 2.0)]);
        assert_eq!(pick_fee_rate(&slow, 2), sat_vb(4));
        let broken = HashMap::from([(1, f64::NAN), (2, -3.0), (3, f64::INFINITY)]);
        assert_eq!(pick_fee_rate(&broken, 2), FEE_RATE_FLOOR);
        let absurd = HashMap::from([(1, 1e12)]);
        assert_eq!(pick_fee_rate(&absurd, 1), FEE_RATE_CAP);
    }

    #[test]
    fn fee_refusals_are_told_from_other_refusals() {
        assert!(is_fee_refusal(
            "sendrawtransaction RPC error: {\"code\":-26,\"message\":\"min relay fee not met, 230 < 1150\"}"
        ));
        assert!(is_fee_refusal("mempool min fee not met, 100 < 2000"));
        assert!(!is_fee_refusal("non-BIP68-final"));
        assert!(!is_fee_refusal("bad-txns-inputs-missingorspent"));
    }
}
