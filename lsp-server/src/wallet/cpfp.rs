//! Child-pays-for-parent: raising the fee of a funding transaction that does not confirm.
//!
//! A factory's funding transaction cannot be replaced: every pre-signed transaction of the
//! tree spends its txid. So a stalled funding transaction is bumped with a child spending its
//! change back to this wallet, paying enough that parent and child together reach the target
//! package fee rate. A later bump replaces that child (RBF on the child only).

use bdk_wallet::KeychainKind;
use bitcoin::{Amount, FeeRate, OutPoint, Transaction, Txid, Weight};

use super::{unix_now, LspWallet, WalletError};

/// Virtual size of a child with `inputs` key-path taproot inputs and one taproot output.
fn child_vsize(inputs: usize) -> u64 {
    // 10.5 vB of overhead, 57.5 vB per key-path input, 43 vB for the output, rounded up.
    (21 + 115 * inputs as u64 + 86).div_ceil(2)
}

/// The fee a child of `child_vbytes` must pay so that it and a parent (`parent_vbytes`, paying
/// `parent_fee`) reach `package_rate` together.
pub fn child_fee(
    package_rate: FeeRate,
    parent_vbytes: u64,
    parent_fee: Amount,
    child_vbytes: u64,
) -> Amount {
    let package = package_rate
        .fee_vb(parent_vbytes + child_vbytes)
        .unwrap_or(Amount::MAX_MONEY);
    let floor = FeeRate::BROADCAST_MIN
        .fee_vb(child_vbytes)
        .unwrap_or(Amount::ZERO);
    package
        .checked_sub(parent_fee)
        .unwrap_or(Amount::ZERO)
        .max(floor)
}

/// A child built by [`LspWallet::cpfp`].
#[derive(Debug, Clone)]
pub struct Bump {
    /// The signed child, stored by the wallet; broadcast it after its parent.
    pub child: Transaction,
    /// What parent and child pay together, per vbyte.
    pub package_rate: FeeRate,
}

impl LspWallet {
    /// The fee rate `tx` (a transaction spending this wallet's coins) pays.
    pub fn fee_rate_of(&self, tx: &Transaction) -> Option<FeeRate> {
        let state = self.lock().ok()?;
        state.wallet.calculate_fee_rate(tx).ok()
    }

    /// Builds a child of `parent` (a wallet transaction, unconfirmed) spending its outputs that
    /// belong to this wallet, so that parent and child pay `package_rate` together. If
    /// `previous` is an earlier child, the new child replaces it (spending the same outputs).
    pub fn cpfp(
        &self,
        parent: &Transaction,
        previous: Option<Txid>,
        package_rate: FeeRate,
    ) -> Result<Bump, WalletError> {
        let txid = parent.compute_txid();
        let mut state = self.lock()?;
        let parent_fee = state
            .wallet
            .calculate_fee(parent)
            .map_err(|_| WalletError::UnknownTx(txid))?;
        let ours: Vec<OutPoint> = parent
            .output
            .iter()
            .enumerate()
            .filter(|(_, o)| state.wallet.is_mine(o.script_pubkey.clone()))
            .map(|(vout, _)| OutPoint::new(txid, vout as u32))
            .collect();
        if ours.is_empty() {
            return Err(WalletError::NothingToSpend(txid));
        }
        if let Some(previous) = previous {
            state.wallet.apply_evicted_txs([(previous, unix_now())]);
        }
        let parent_vbytes = parent.weight().to_vbytes_ceil();
        let fee = child_fee(
            package_rate,
            parent_vbytes,
            parent_fee,
            child_vsize(ours.len()),
        );
        let change = state
            .wallet
            .next_unused_address(KeychainKind::Internal)
            .script_pubkey();
        let built = {
            let mut builder = state.wallet.build_tx();
            builder
                .add_utxos(&ours)
                .map_err(|e| WalletError::InputsGone {
                    txid,
                    reason: e.to_string(),
                })?;
            builder.manually_selected_only();
            builder.drain_to(change);
            builder.fee_absolute(fee);
            builder.finish()
        };
        let child = self.sign_and_record(&mut state, built, unix_now())?;
        let total = Weight::from_vb_unchecked(parent_vbytes) + child.weight();
        let paid = parent_fee + fee;
        let package_rate = paid / total;
        tracing::info!(
            parent = %txid, child = %child.compute_txid(), fee_sat = fee.to_sat(),
            package_sat_per_vb = package_rate.to_sat_per_vb_ceil(), "built CPFP child"
        );
        Ok(Bump {
            child,
            package_rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_fee_tops_the_package_up_to_the_target() {
        let rate = FeeRate::from_sat_per_vb(10).unwrap();
        // A 200 vB parent paying 400 sat (2 sat/vB), a 111 vB child: the pair needs 3110 sat.
        assert_eq!(
            child_fee(rate, 200, Amount::from_sat(400), 111),
            Amount::from_sat(2710)
        );
        // A parent already paying more than the target: the child still pays its own relay fee.
        assert_eq!(
            child_fee(rate, 200, Amount::from_sat(5000), 111),
            Amount::from_sat(111)
        );
        assert_eq!(child_vsize(1), 111);
    }
}
