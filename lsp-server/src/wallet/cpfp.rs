//! Child-pays-for-parent: raising the fee of a transaction nobody can re-sign.
//!
//! - A factory's funding transaction cannot be replaced: every pre-signed transaction of the
//!   tree spends its txid. So a stalled funding transaction is bumped with a child spending its
//!   change back to this wallet ([`LspWallet::cpfp`]).
//! - A pre-signed transaction of a factory's tree or a channel's commitment pays the fee rate
//!   signed months ago, which may be below what nodes relay today. Its keyless P2A anchor is
//!   spent by a child together with this wallet's coins ([`LspWallet::anchor_cpfp`]); the two go
//!   to the node as a package (`submitpackage`), which takes a parent below the relay floor
//!   when the package pays enough.
//!
//! Either child pays enough that parent and child together reach the target package fee rate.
//! A later bump replaces that child (RBF on the child only).

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
        let change = change_script(&mut state);
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

impl LspWallet {
    /// Builds a child of `parent` (anyone's transaction with a P2A anchor, paying `parent_fee`)
    /// spending the anchor and this wallet's coins, so that parent and child pay
    /// `package_rate` together. If `previous` is an earlier child of the same parent, the new
    /// one replaces it. The child is stored as unconfirmed (its coins are offered to nothing
    /// else) and returned; send it with its parent as a package.
    pub fn anchor_cpfp(
        &self,
        parent: &Transaction,
        parent_fee: Amount,
        package_rate: FeeRate,
        previous: Option<Txid>,
    ) -> Result<Bump, WalletError> {
        let txid = parent.compute_txid();
        let vout = parent
            .output
            .iter()
            .position(|o| o.script_pubkey == bitcoin::ScriptBuf::new_p2a())
            .ok_or(WalletError::NoAnchor(txid))?;
        let anchor = OutPoint::new(txid, vout as u32);
        let mut state = self.lock()?;
        if let Some(previous) = previous {
            state.wallet.apply_evicted_txs([(previous, unix_now())]);
        }
        // So the wallet can tell the child's fee (the anchor is not its own output).
        state
            .wallet
            .insert_txout(anchor, parent.output[vout].clone());
        let parent_vbytes = parent.weight().to_vbytes_ceil();
        // The anchor input (41 vB, an empty witness) and, usually, one wallet coin; more coins
        // only raise the package rate, since the child pays this rate on its real size.
        let child_vbytes = ANCHOR_INPUT_VBYTES + child_vsize(1);
        let fee = child_fee(package_rate, parent_vbytes, parent_fee, child_vbytes);
        let child_rate = FeeRate::from_sat_per_kwu((fee.to_sat() * 250).div_ceil(child_vbytes));
        let input = bitcoin::psbt::Input {
            witness_utxo: Some(parent.output[vout].clone()),
            non_witness_utxo: Some(parent.clone()),
            ..Default::default()
        };
        // One coin of its own at least (the largest, confirmed first), so the child always has
        // change to send back: the anchor alone may cover a small fee but cannot make an output.
        let coin = state
            .wallet
            .list_unspent()
            .max_by_key(|u| (u.chain_position.is_confirmed(), u.txout.value))
            .ok_or_else(|| WalletError::InsufficientFunds {
                available: Amount::ZERO,
                needed: fee,
                address: state.wallet.peek_address(KeychainKind::External, 0).address,
            })?
            .outpoint;
        let change = change_script(&mut state);
        let built = {
            let mut builder = state.wallet.build_tx();
            builder
                .add_utxo(coin)
                .map_err(|e| WalletError::InputsGone {
                    txid,
                    reason: e.to_string(),
                })?;
            builder
                .add_foreign_utxo_with_sequence(
                    anchor,
                    input,
                    Weight::from_wu(ANCHOR_WITNESS_WU),
                    bitcoin::Sequence::ENABLE_RBF_NO_LOCKTIME,
                )
                .map_err(|e| WalletError::InputsGone {
                    txid,
                    reason: e.to_string(),
                })?;
            builder.drain_to(change);
            builder.fee_rate(child_rate);
            builder.finish()
        };
        let child = self.sign_and_record(&mut state, built, unix_now())?;
        let paid = parent_fee + state.wallet.calculate_fee(&child).unwrap_or(Amount::ZERO);
        let package_rate = paid / (parent.weight() + child.weight());
        tracing::info!(
            parent = %txid, child = %child.compute_txid(),
            package_sat_per_vb = package_rate.to_sat_per_vb_ceil(),
            "built an anchor child (CPFP) for a pre-signed transaction"
        );
        Ok(Bump {
            child,
            package_rate,
        })
    }
}

/// Where a child's change goes: the wallet's next unused internal address.
fn change_script(state: &mut super::State) -> bitcoin::ScriptBuf {
    state
        .wallet
        .next_unused_address(KeychainKind::Internal)
        .script_pubkey()
}

/// Virtual bytes of a P2A input: outpoint, empty `scriptSig`, `nSequence` (41), plus its
/// empty witness (one weight unit, rounded into the 41).
const ANCHOR_INPUT_VBYTES: u64 = 41;
/// Weight of a P2A input's satisfaction: an empty `scriptSig` length byte is counted by BDK
/// itself, so only the empty witness stack's count byte.
const ANCHOR_WITNESS_WU: u64 = 1;

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
