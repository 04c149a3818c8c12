//! Today's fee for an exit's pre-signed steps.
//!
//! The tree's transactions and the channel's commitment were signed at the fee rate of their
//! day. When the node refuses one for its fee (below `-minrelaytxfee`, or a full mempool's
//! minimum), the wallet adds a child through the transaction's keyless P2A anchor
//! (`shared::channel::anchor::build_cpfp`), paid from the first confirmed coin at its own
//! on-chain address, and sends both as a package. A wallet that joined with no bitcoin has no
//! such coin until its first exit or sweep pays it: then it says so in plain words
//! ([`ExitStatus::FeeTooLow`]), and tries again on every step. What the wallet signs itself
//! (its claims and sweeps) is simply signed at today's rate ([`ExitRunner::today_rate`]).

use bitcoin::{Amount, FeeRate, OutPoint, Transaction, TxOut};
use shared::channel::anchor::build_cpfp;
use shared::fees::{is_fee_refusal, pick_fee_rate, URGENT_BLOCKS};

use crate::onchain::{confirmed_coins, DUST};

use super::runner::{ExitRunner, ExitStatus};

impl ExitRunner {
    /// Today's rate for a transaction that must confirm soon, from the user's Esplora, never
    /// below the factory's own rate and 2 sat/vB; the factory's rate when Esplora gives none.
    pub(super) async fn today_rate(&self) -> FeeRate {
        match self.esplora.get_fee_estimates().await {
            Ok(estimates) => pick_fee_rate(&estimates, URGENT_BLOCKS).max(self.fee_rate),
            Err(_) => self.fee_rate,
        }
    }

    /// Sends `tx`, a pre-signed step called `what` that pays `parent_fee` (known from what was
    /// signed): alone if the node takes it, else (refused for its fee) with a child paying
    /// today's rate for both.
    pub(super) async fn publish(
        &self,
        what: &str,
        tx: &Transaction,
        parent_fee: Amount,
    ) -> ExitStatus {
        let txid = tx.compute_txid();
        let sent = ExitStatus::Broadcast {
            what: what.into(),
            txid,
        };
        let reason = match self.esplora.broadcast(tx).await {
            Ok(()) => return sent,
            Err(esplora_client::Error::HttpResponse { message, .. }) => message,
            // Unreachable, or already known: the next read of the chain tells.
            Err(_) => return sent,
        };
        if !is_fee_refusal(&reason) {
            // Already in the mempool or a block, or a lock not yet passed: the next read tells.
            return sent;
        }
        let needed = self.today_rate().await;
        let paid = parent_fee / tx.weight();
        let too_low = |why: String| ExitStatus::FeeTooLow {
            what: what.into(),
            txid,
            paid,
            needed,
            why,
        };
        let Some(key) = self.coin_key else {
            return too_low("it has no on-chain key to pay a fee with".into());
        };
        let Some(coin) = self.first_coin().await else {
            return too_low(format!(
                "it has no confirmed coin at its on-chain address ({}) to add the fee \
                 with",
                self.to
            ));
        };
        let child = match build_cpfp(
            tx,
            parent_fee,
            coin,
            &key,
            self.to.script_pubkey(),
            needed,
            DUST,
        ) {
            Ok(child) => child,
            Err(e) => return too_low(format!("its coin cannot pay the fee: {e}")),
        };
        match self
            .esplora
            .submit_package(&[tx.clone(), child], None, None)
            .await
        {
            Ok(result) if result.package_msg == "success" => sent,
            Ok(result) => too_low(format!(
                "the network refused the fee: {}",
                result.package_msg
            )),
            Err(e) => too_low(format!("the network refused the fee: {e}")),
        }
    }

    /// The largest confirmed coin (above dust) at the wallet's on-chain address.
    async fn first_coin(&self) -> Option<(OutPoint, TxOut)> {
        confirmed_coins(&self.esplora, &self.to)
            .await
            .ok()?
            .into_iter()
            .filter(|(_, out)| out.value > DUST)
            .max_by_key(|(_, out)| out.value)
    }
}
