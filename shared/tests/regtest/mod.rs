//! Helpers for the regtest integration tests: a devnet (real bitcoind plus Esplora on
//! 127.0.0.1), a factory funded with real coins and signed with real MuSig2, a
//! `ChainView` read from Esplora, and a driver that walks an exit exactly as the planner says.
//!
//! - this file: [`Regtest`], the node (mine, `testmempoolaccept`, broadcast, confirm);
//! - `factory`: [`Factory`], a funded, signed factory and each client's checked `ExitKit`;
//! - `chain`: [`EsploraView`] and the exit driver ([`exit_step`], [`run_exit`]);
//! - `expect`: what outputs must look like, recomputed from keys;
//! - `sweep`: the LSP's timeout-leaf sweep of a state output, built from keys and heights.
//!
//! Rules every test here follows, enforced by these helpers:
//! - every transaction a test broadcasts passes `testmempoolaccept` first (policy, not only
//!   consensus), then goes out through Esplora's `POST /tx`;
//! - the chain only moves by `mine`/`mine_to`, so heights are exact;
//! - expected scripts are recomputed from keys (MuSig2 key aggregation, BIP-86 and BIP-341
//!   tweaks), not taken from the crate under test.

mod chain;
mod expect;
mod factory;
mod sweep;

pub use chain::{exit_step, run_exit, EsploraView, Step};
pub use expect::{anchor, assert_leaf_on_chain, expected_payout};
pub use factory::Factory;
pub use sweep::{commits_to_timeout_leaf, lsp_sweep};

use std::time::Duration;

use bitcoin::absolute::Height;
use bitcoin::hashes::Hash;
use bitcoin::{Amount, OutPoint, Transaction, TxOut, Txid};
use devnet::rpc::MempoolAcceptResult;
use devnet::{Devnet, DevnetConfig, RpcClient};
use esplora_client::AsyncClient;
use shared::params::BlockDelta;

/// Why bitcoind refuses a transaction whose relative lock (BIP-68) has not passed.
pub const NON_BIP68_FINAL: &str = "non-BIP68-final";
/// Why bitcoind refuses a transaction whose `nLockTime` has not passed.
pub const NON_FINAL: &str = "non-final";
/// Why bitcoind refuses a transaction whose input is already spent in a block (or unknown).
pub const MISSING_INPUTS: &str = "missing-inputs";
/// What bitcoind says when a script's `OP_CHECKLOCKTIMEVERIFY` fails (in the reject reason or
/// its details, depending on the version).
pub const LOCKTIME_NOT_SATISFIED: &str = "Locktime requirement not satisfied";

/// The fee rate the channel tests open their commitments at.
pub fn feerate() -> bitcoin::FeeRate {
    bitcoin::FeeRate::from_sat_per_vb_u32(2)
}

/// What a channel side opened from `seed` tells its peer.
pub fn peer_info(seed: &[u8; 32]) -> shared::channel::PeerInfo {
    let s = shared::channel::keys::ChannelSecrets::from_seed(seed);
    shared::channel::PeerInfo {
        basepoints: s.basepoints(),
        first_points: s.first_points(),
    }
}

/// A running devnet and an Esplora client for it.
pub struct Regtest {
    /// The devnet (bitcoind + Esplora); stopped when dropped.
    pub devnet: Devnet,
    /// esplora-client pointed at the devnet, never through a proxy.
    pub esplora: AsyncClient,
}

impl Regtest {
    /// Starts a fresh devnet (its own bitcoind and datadir), failing the test if it cannot.
    pub async fn start() -> Regtest {
        let devnet = Devnet::start(DevnetConfig::default())
            .await
            .unwrap_or_else(|e| panic!("devnet did not start: {e}"));
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a plain HTTP client builds");
        let esplora = AsyncClient::from_client(devnet.esplora_url().to_owned(), http);
        let rt = Regtest { devnet, esplora };
        rt.assert_policy_enforced().await;
        rt
    }

    /// `testmempoolaccept` only proves standardness if the node enforces policy (regtest
    /// does unless `-acceptnonstdtxn`): a version-4 transaction must be refused as
    /// non-standard before its (missing) input is even looked up.
    async fn assert_policy_enforced(&self) {
        let probe = Transaction {
            version: bitcoin::transaction::Version(4),
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![bitcoin::TxIn {
                previous_output: OutPoint::new(Txid::from_byte_array([7; 32]), 0),
                ..bitcoin::TxIn::default()
            }],
            output: vec![anchor(Amount::from_sat(240))],
        };
        let result = self.test_accept(&probe).await;
        assert_eq!(
            result.reject_reason.as_deref(),
            Some("version"),
            "the node must enforce standardness: {result:?}"
        );
    }

    /// bitcoind's RPC.
    pub fn rpc(&self) -> &RpcClient {
        self.devnet.rpc()
    }

    /// The node's tip, cross-checked against Esplora's.
    pub async fn tip(&self) -> Height {
        let tip = self.devnet.height().await.expect("getblockcount");
        let esplora = self.esplora.get_height().await.expect("esplora tip");
        assert_eq!(esplora, tip.to_consensus_u32(), "esplora serves the tip");
        tip
    }

    /// Mines `blocks` blocks; returns the new tip.
    pub async fn mine(&self, blocks: u32) -> Height {
        let before = self.tip().await;
        self.devnet.mine(blocks).await.expect("mine");
        let tip = self.tip().await;
        assert_eq!(tip, add(before, blocks), "mined exactly {blocks} blocks");
        tip
    }

    /// Mines until the tip is exactly `target` (which must not be below it).
    pub async fn mine_to(&self, target: Height) {
        let tip = self.tip().await;
        let blocks = BlockDelta::between(tip, target)
            .unwrap_or_else(|| panic!("cannot mine back from {tip} to {target}"));
        if blocks.to_blocks() > 0 {
            self.mine(blocks.to_blocks()).await;
        }
    }

    /// `testmempoolaccept` for one transaction.
    pub async fn test_accept(&self, tx: &Transaction) -> MempoolAcceptResult {
        let mut results = self
            .rpc()
            .test_mempool_accept(std::slice::from_ref(tx))
            .await
            .expect("testmempoolaccept answers");
        assert_eq!(results.len(), 1);
        results.remove(0)
    }

    /// Asserts bitcoind refuses `tx` now, for one of `reasons`; returns the reason.
    pub async fn assert_refused(&self, tx: &Transaction, reasons: &[&str]) -> String {
        let result = self.test_accept(tx).await;
        let reason = result.reject_reason.clone().unwrap_or_default();
        assert!(
            !result.is_allowed() && reasons.contains(&reason.as_str()),
            "tx {} at tip {}: expected a refusal for {reasons:?}, got {result:?}",
            tx.compute_txid(),
            self.tip().await,
        );
        reason
    }

    /// Asserts bitcoind refuses `tx` now because a script fails with `detail` (found in the
    /// reject reason or its details); returns the reason.
    pub async fn assert_script_refused(&self, tx: &Transaction, detail: &str) -> String {
        let result = self.test_accept(tx).await;
        let reason = result.reject_reason.clone().unwrap_or_default();
        let details = result.reject_details.clone().unwrap_or_default();
        assert!(
            !result.is_allowed()
                && reason.contains("script-verify-flag-failed")
                && (reason.contains(detail) || details.contains(detail)),
            "tx {} at tip {}: expected a script failure ({detail}), got {result:?}",
            tx.compute_txid(),
            self.tip().await,
        );
        assert!(
            self.esplora.broadcast(tx).await.is_err(),
            "esplora relayed a refused tx"
        );
        reason
    }

    /// Asserts `tx` is refused, and that broadcasting it anyway through Esplora fails too.
    pub async fn assert_cannot_broadcast(&self, tx: &Transaction, reasons: &[&str]) -> String {
        let reason = self.assert_refused(tx, reasons).await;
        let sent = self.esplora.broadcast(tx).await;
        assert!(sent.is_err(), "esplora relayed a refused tx: {reason}");
        assert!(
            self.rpc()
                .get_mempool_entry(&tx.compute_txid())
                .await
                .expect("getmempoolentry")
                .is_none(),
            "a refused tx is not in the mempool"
        );
        reason
    }

    /// `testmempoolaccept` must allow `tx` (and count the vsize we expect, if given); then it
    /// goes out through Esplora and must sit in bitcoind's mempool.
    pub async fn broadcast(&self, tx: &Transaction, vsize: Option<u64>) {
        let result = self.test_accept(tx).await;
        assert!(
            result.is_allowed(),
            "testmempoolaccept refuses {} at tip {}: {result:?}",
            tx.compute_txid(),
            self.tip().await
        );
        if let Some(vsize) = vsize {
            assert_eq!(
                result.vsize,
                Some(vsize),
                "signed vsize as the fee was computed"
            );
        }
        self.esplora.broadcast(tx).await.expect("esplora broadcast");
        let txid = tx.compute_txid();
        assert!(
            self.rpc()
                .get_mempool_entry(&txid)
                .await
                .expect("getmempoolentry")
                .is_some(),
            "{txid} is in the mempool"
        );
    }

    /// [`Regtest::broadcast`], then mines one block and checks (through Esplora) that `tx`
    /// confirmed in it; returns that height.
    pub async fn confirm(&self, tx: &Transaction, vsize: Option<u64>) -> Height {
        self.broadcast(tx, vsize).await;
        let height = self.mine(1).await;
        let status = self
            .esplora
            .get_tx_status(&tx.compute_txid())
            .await
            .expect("tx status");
        assert!(status.confirmed, "{} confirmed", tx.compute_txid());
        assert_eq!(status.block_height, Some(height.to_consensus_u32()));
        height
    }

    /// The confirmed, unspent output at `outpoint` (bitcoind's `gettxout` without the
    /// mempool; Esplora must agree that it is unspent).
    pub async fn unspent(&self, outpoint: OutPoint) -> TxOut {
        let info = self
            .rpc()
            .get_tx_out(&outpoint, false)
            .await
            .expect("gettxout")
            .unwrap_or_else(|| panic!("{outpoint} is not an unspent output"));
        assert!(info.confirmations >= 1, "{outpoint} is confirmed");
        let status = self
            .esplora
            .get_output_status(&outpoint.txid, u64::from(outpoint.vout))
            .await
            .expect("outspend")
            .expect("esplora knows the output");
        assert!(!status.spent, "esplora: {outpoint} unspent");
        TxOut {
            value: info.value,
            script_pubkey: info.script_pubkey,
        }
    }
}

/// `height + blocks`.
pub fn add(height: Height, blocks: u32) -> Height {
    BlockDelta::from_blocks(blocks)
        .after(height)
        .expect("a valid height")
}

/// `height - blocks`.
pub fn sub(height: Height, blocks: u32) -> Height {
    Height::from_consensus(height.to_consensus_u32() - blocks).expect("a valid height")
}
