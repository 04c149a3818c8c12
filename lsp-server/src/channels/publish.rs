//! Publishing a transaction the LSP cannot re-sign (a factory's tree transaction, or a
//! channel's commitment) at today's fee.
//!
//! Such a transaction pays the fee rate of the day it was signed, which may be below what
//! nodes relay today (`-minrelaytxfee`, a full mempool). So it goes out alone only when it pays
//! today's rate ([`Publisher::target`], the estimate for `shared::fees::URGENT_BLOCKS`) and the node takes
//! it. Otherwise the LSP's wallet builds a child spending its keyless P2A anchor
//! ([`LspWallet::anchor_cpfp`]) and both go to the node as a package, which takes a parent
//! below the relay floor when the two together pay enough.
//!
//! A child is kept (in memory, by parent) and sent again with its parent on every pass until
//! the parent confirms; when today's rate climbs above what the package pays, a new child
//! replaces it. A transaction refused for anything but its fee (a lock not yet passed, an input
//! not yet confirmed) gets no child, so no coin is tied up for nothing.
//!
//! Transactions the LSP signs itself (its claims) need none of this: they are signed at the
//! target rate when built (`onchain`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use bitcoin::{Amount, FeeRate, Transaction, Txid};
use esplora_client::AsyncClient;

use super::onchain::read;
use crate::wallet::{Bump, LspWallet};

/// What was done with a transaction this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Published {
    /// The node took it alone.
    Alone,
    /// The node took it with an anchor child paying for both.
    WithChild {
        /// The child.
        child: Txid,
    },
    /// The node did not take it (a lock not passed, or no coin to pay a child): tried again
    /// next pass.
    NotYet,
}

/// Publishes pre-signed transactions, bumping them through their anchors from `wallet`.
#[derive(Debug)]
pub(crate) struct Publisher {
    wallet: Arc<LspWallet>,
    /// Each parent's latest child.
    children: Mutex<BTreeMap<Txid, Bump>>,
}

impl Publisher {
    pub(crate) fn new(wallet: Arc<LspWallet>) -> Publisher {
        Publisher {
            wallet,
            children: Mutex::default(),
        }
    }

    /// Today's rate for a transaction that must confirm soon; `None` when Esplora gives no
    /// estimate this pass (then only what the node takes alone goes out).
    pub(crate) async fn target(&self) -> Option<FeeRate> {
        read(
            "fee estimates",
            self.wallet.fee_rate_estimate(shared::fees::URGENT_BLOCKS),
        )
        .await
    }

    /// Sends `tx` (which pays `fee`, known from what was signed) to the node: alone when it
    /// pays `target` and the node takes it, else with an anchor child paying `target` for both.
    pub(crate) async fn publish(
        &self,
        esplora: &AsyncClient,
        tx: &Transaction,
        fee: Amount,
        target: Option<FeeRate>,
    ) -> Published {
        let txid = tx.compute_txid();
        // Without a target, the node's answer decides.
        let pays_today = target.is_none_or(|target| fee / tx.weight() >= target);
        if pays_today {
            match read_refusal(esplora.broadcast(tx)).await {
                Ok(()) => return Published::Alone,
                Err(Some(reason)) if shared::fees::is_fee_refusal(&reason) => {
                    tracing::info!(%txid, reason, "refused alone for its fee: adding an anchor child");
                }
                Err(_) => return Published::NotYet,
            }
        }
        let child = match target {
            Some(target) => self.child_for(tx, fee, target).await,
            None => None,
        };
        let Some(child) = child else {
            // No child to pay for it: at least its own rate, if the node takes that.
            if !pays_today && read_refusal(esplora.broadcast(tx)).await.is_ok() {
                return Published::Alone;
            }
            return Published::NotYet;
        };
        let package = [tx.clone(), child.clone()];
        match read("package", esplora.submit_package(&package, None, None)).await {
            Some(result) if result.package_msg == "success" => Published::WithChild {
                child: child.compute_txid(),
            },
            Some(result) => {
                tracing::info!(%txid, answer = result.package_msg, errors = ?result.tx_results.values().filter_map(|r| r.error.clone()).collect::<Vec<_>>(), "package not taken yet");
                Published::NotYet
            }
            None => Published::NotYet,
        }
    }

    /// `parent`'s child paying `target` for both: the one built before if it still does, else
    /// a new one replacing it, from the wallet as the chain has it now (synced first: the
    /// wallet syncs only before funding a factory, and a child needs its latest coins).
    async fn child_for(
        &self,
        parent: &Transaction,
        fee: Amount,
        target: FeeRate,
    ) -> Option<Transaction> {
        let txid = parent.compute_txid();
        let previous = {
            let children = self.children.lock().unwrap_or_else(PoisonError::into_inner);
            match children.get(&txid) {
                Some(bump) if bump.package_rate >= target => return Some(bump.child.clone()),
                other => other.map(|b| b.child.compute_txid()),
            }
        };
        read("wallet sync", self.wallet.sync()).await;
        let bump = self.wallet.anchor_cpfp(parent, fee, target, previous);
        self.wallet.bump_funded(txid, bump.is_ok());
        match bump {
            Ok(bump) => {
                let child = bump.child.clone();
                self.children
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(txid, bump);
                Some(child)
            }
            Err(e) => {
                tracing::error!(parent = %txid, error = %e, "cannot pay for a pre-signed transaction's fee");
                None
            }
        }
    }

    /// Forgets the child of a parent that confirmed.
    pub(crate) fn confirmed(&self, parent: Txid) {
        self.wallet.bump_funded(parent, true);
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&parent);
    }
}

/// Sends within the watch's read timeout; `Err(Some(reason))` is the node's refusal.
pub(crate) async fn read_refusal(
    f: impl std::future::Future<Output = Result<(), esplora_client::Error>>,
) -> Result<(), Option<String>> {
    match tokio::time::timeout(super::onchain::READ_TIMEOUT, f).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(esplora_client::Error::HttpResponse { message, .. })) => Err(Some(message)),
        Ok(Err(e)) => Err(Some(e.to_string())),
        Err(_) => Err(None),
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::hashes::Hash;
    use bitcoin::transaction::Version;
    use bitcoin::{absolute, Network, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness};

    use super::*;

    /// A transaction with a P2A anchor, spending a coin from nowhere.
    fn parent() -> Transaction {
        Transaction {
            version: Version::non_standard(3),
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(Txid::from_byte_array([1; 32]), 0),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![
                TxOut {
                    value: Amount::from_sat(50_000),
                    script_pubkey: ScriptBuf::new_p2a(),
                },
                TxOut {
                    value: Amount::from_sat(240),
                    script_pubkey: ScriptBuf::new_p2a(),
                },
            ],
        }
    }

    #[tokio::test]
    async fn a_bump_the_wallet_cannot_pay_is_counted_until_its_parent_confirms() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Never answers: the sync before the child fails fast and the wallet stays empty.
        let wallet = Arc::new(
            LspWallet::open(dir.path(), Network::Regtest, "http://127.0.0.1:9")
                .await
                .expect("a wallet"),
        );
        let publisher = Publisher::new(wallet.clone());
        let tx = parent();
        let target = FeeRate::from_sat_per_vb_u32(5);
        assert_eq!(wallet.unfunded_bumps(), 0);
        assert!(publisher
            .child_for(&tx, Amount::from_sat(100), target)
            .await
            .is_none());
        assert_eq!(wallet.unfunded_bumps(), 1, "an empty wallet cannot pay it");
        // Tried again: still one transaction waiting, not two.
        assert!(publisher
            .child_for(&tx, Amount::from_sat(100), target)
            .await
            .is_none());
        assert_eq!(wallet.unfunded_bumps(), 1);
        publisher.confirmed(tx.compute_txid());
        assert_eq!(wallet.unfunded_bumps(), 0);
    }
}
