//! One step of an exit at a time, for a UI that calls again every few seconds.

use std::collections::BTreeMap;

use bitcoin::absolute::Height;
use bitcoin::hashes::sha256;
use bitcoin::secp256k1::SecretKey;
use bitcoin::{Address, Amount, FeeRate, OutPoint, Txid};
use shared::channel::Channel;
use shared::exit::{ChainView, ExitAction, ExitKit};
use shared::tree::NodeKind;

use super::{build_sweep, read_chain};
use crate::chain::{esplora, ChainError, Esplora, TipWatch};

/// Where an exit stands after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// The factory's funding transaction is not confirmed: nothing to leave yet.
    WaitingForFunding,
    /// A transaction of the path was broadcast (or broadcast again); it waits for a block.
    Broadcast {
        /// What it is, for people.
        what: String,
        /// The transaction.
        txid: Txid,
    },
    /// The next transaction is locked until the tip reaches `height`.
    Waiting {
        /// What waits, for people.
        what: String,
        /// The height to reach.
        height: Height,
        /// Blocks still to come.
        blocks: u32,
    },
    /// The leaf is on chain: the channel output is this wallet's with the LSP's.
    LeafOnChain {
        /// The channel output.
        channel: OutPoint,
    },
    /// The leaf is on chain and its channel holds nothing of this wallet's: nothing to sweep.
    NothingToSweep {
        /// The channel output.
        channel: OutPoint,
    },
    /// The sweep to the wallet's address was broadcast; it waits for a block.
    Sweeping {
        /// The sweep transaction.
        txid: Txid,
        /// What it pays the wallet.
        amount: Amount,
    },
    /// Done: the money is at the wallet's on-chain address, confirmed.
    Swept {
        /// The sweep transaction.
        txid: Txid,
        /// What it paid.
        amount: Amount,
    },
    /// A pre-signed transaction pays less than the network takes today, and this wallet
    /// cannot add the fee; it tries again on the next step.
    FeeTooLow {
        /// What it is, for people.
        what: String,
        /// The transaction.
        txid: Txid,
        /// The rate it was signed at.
        paid: FeeRate,
        /// Today's rate.
        needed: FeeRate,
        /// Why the wallet cannot add the fee, in words.
        why: String,
    },
    /// The exit cannot go on with this wallet's data.
    Stuck(String),
}

impl ExitStatus {
    /// A short id for the UI and tests.
    pub fn id(&self) -> &'static str {
        match self {
            ExitStatus::WaitingForFunding => "funding",
            ExitStatus::Broadcast { .. } => "broadcast",
            ExitStatus::Waiting { .. } => "waiting",
            ExitStatus::LeafOnChain { .. } => "leaf",
            ExitStatus::NothingToSweep { .. } => "empty",
            ExitStatus::Sweeping { .. } => "sweeping",
            ExitStatus::Swept { .. } => "swept",
            ExitStatus::FeeTooLow { .. } => "fee",
            ExitStatus::Stuck(_) => "stuck",
        }
    }

    /// The transaction this step is about, if any (shown behind "details", not in the words).
    pub fn txid(&self) -> Option<Txid> {
        match self {
            ExitStatus::Broadcast { txid, .. }
            | ExitStatus::FeeTooLow { txid, .. }
            | ExitStatus::Sweeping { txid, .. }
            | ExitStatus::Swept { txid, .. } => Some(*txid),
            _ => None,
        }
    }

    /// The status in plain words (transaction ids are in [`ExitStatus::txid`]), waits in blocks
    /// and in time at `pace`.
    pub fn describe(&self, pace: crate::pace::BlockPace) -> String {
        match self {
            ExitStatus::WaitingForFunding => {
                "the factory's funding transaction is not confirmed yet".into()
            }
            ExitStatus::Broadcast { what, .. } => {
                format!("{what} sent to the network; waiting for a block")
            }
            ExitStatus::Waiting {
                what,
                height,
                blocks,
            } => format!(
                "{what} can go out at block {height}: {blocks} more block{} ({})",
                if *blocks == 1 { "" } else { "s" },
                pace.approx(shared::params::BlockDelta::from_blocks(*blocks))
            ),
            ExitStatus::LeafOnChain { channel } => format!(
                "your leaf is on chain; this browser holds no state of the channel on {channel} \
                 to close it with (restore the wallet where it made payments)"
            ),
            ExitStatus::NothingToSweep { channel } => format!(
                "your leaf is on chain; your channel on {channel} holds nothing of yours, so \
                 there is nothing to sweep"
            ),
            ExitStatus::Sweeping { amount, .. } => format!(
                "moving {} to your on-chain address; waiting for a block",
                crate::format::sats(*amount)
            ),
            ExitStatus::Swept { amount, .. } => format!(
                "done: {} is at your on-chain address, confirmed",
                crate::format::sats(*amount)
            ),
            ExitStatus::FeeTooLow {
                what,
                paid,
                needed,
                why,
                ..
            } => format!(
                "{what} was signed to pay {} sat/vB, and the network takes {} sat/vB or more \
                 today. Your wallet cannot add the fee: {why}. It tries again every few \
                 seconds; anyone (your provider, a watchtower) can add the fee too. A few \
                 thousand sats sent to your on-chain address let the wallet pay it itself.",
                paid.to_sat_per_vb_floor(),
                needed.to_sat_per_vb_ceil()
            ),
            ExitStatus::Stuck(why) => format!("the exit cannot go on: {why}"),
        }
    }

    /// Whether nothing more will happen.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            ExitStatus::Swept { .. }
                | ExitStatus::LeafOnChain { .. }
                | ExitStatus::NothingToSweep { .. }
                | ExitStatus::Stuck(_)
        )
    }
}

fn kind_words(kind: &NodeKind) -> &'static str {
    match kind {
        // The factory picture's words ("Branch", "Step starts", "Wait"), so the exit's log and
        // the picture name each box the same way.
        NodeKind::Split { .. } => "The branch towards your leaf",
        NodeKind::Kickoff { .. } => "The start of a step towards your leaf",
        NodeKind::State { .. } => "The end of that step's wait",
        NodeKind::Leaf { .. } => "Your leaf",
        NodeKind::Distribution => "Distribution transaction (pays everyone)",
        NodeKind::Redistribution { .. } => "Redistribution (an old leaf state's liquidity, to you)",
    }
}

/// Walks one stored path out of its factory against the user's Esplora, then closes its
/// leaf's channel.
#[derive(Debug)]
pub struct ExitRunner {
    pub(super) kit: ExitKit,
    pub(super) key: SecretKey,
    pub(super) to: Address,
    pub(super) url: String,
    pub(super) esplora: Esplora,
    /// Judges every tip read (a failed or contradictory read moves nothing).
    pub(super) watch: TipWatch,
    pub(super) fee_rate: FeeRate,
    /// The client's side of each channel of the leaf (one per leaf state it reached).
    pub(super) channels: Vec<Channel>,
    /// Every preimage this wallet knows (its invoices', and any in its channels' updates): an
    /// HTLC paid to it on a commitment on chain is claimed with it.
    pub(super) preimages: BTreeMap<sha256::Hash, [u8; 32]>,
    /// The key of the wallet's on-chain address `to` (BIP 86 internal key): its coins pay
    /// the fee of a pre-signed step the network refuses for its fee.
    pub(super) coin_key: Option<SecretKey>,
}

impl ExitRunner {
    /// A runner for `kit`, whose factory key is `key`, sweeping to `to`, reading `url`.
    pub fn new(
        kit: ExitKit,
        key: SecretKey,
        to: Address,
        url: &str,
    ) -> Result<ExitRunner, ChainError> {
        // The sweep pays at least the rate the factory's own transactions paid, and 2 sat/vB.
        let fee_rate = kit
            .latest()
            .proposal()
            .params
            .fee_rate
            .max(FeeRate::from_sat_per_vb_u32(2));
        Ok(ExitRunner {
            esplora: esplora(url)?,
            watch: TipWatch::new(),
            url: url.into(),
            kit,
            key,
            to,
            fee_rate,
            channels: Vec::new(),
            preimages: BTreeMap::new(),
            coin_key: None,
        })
    }

    /// Pays fee bumps from the coins of `to`, whose BIP-86 internal key is `key`.
    pub fn with_coin_key(mut self, key: SecretKey) -> ExitRunner {
        self.coin_key = Some(key);
        self
    }

    /// Judges the tips it reads with `watch` (the wallet's, shared with its other reads).
    pub fn with_watch(mut self, watch: TipWatch) -> ExitRunner {
        self.watch = watch;
        self
    }

    /// What the payment store holds of `leaf`: its leaf states once it bought liquidity (the
    /// walk publishes the newest, or the redistribution of a superseded one that confirmed),
    /// and its channels, closed once the leaf is on chain.
    pub fn with_payments(
        mut self,
        state: &crate::pay::PayState,
        leaf: &crate::pay::PayLeaf,
    ) -> Result<ExitRunner, shared::exit::ExitError> {
        crate::pay::add_leaf_states(&mut self.kit, state, leaf)?;
        let policy = shared::pay::ChannelPolicy::for_network(leaf.path.proposal().params.network);
        self.channels = crate::pay::leaf_channels(state, leaf, &policy);
        self.preimages = state
            .invoices
            .values()
            .map(|i| (i.hash, i.preimage))
            .chain(self.channels.iter().flat_map(|c| c.known_preimages()))
            .collect();
        Ok(self)
    }

    pub(super) fn chain_error(&self, source: esplora_client::Error) -> ChainError {
        ChainError::Esplora {
            url: self.url.clone(),
            source,
        }
    }

    /// Reads the chain, asks the planner, and does what it says (at most one broadcast).
    pub async fn step(&self) -> Result<ExitStatus, ChainError> {
        let chain = read_chain(&self.esplora, &self.url, &self.watch, &self.kit).await?;
        let err = |source| ChainError::Esplora {
            url: self.url.clone(),
            source,
        };
        Ok(match self.kit.next_action(&chain) {
            ExitAction::WaitForFunding => ExitStatus::WaitingForFunding,
            ExitAction::Broadcast { kind, tx, fee, .. } => {
                self.publish(kind_words(&kind), &tx, fee).await
            }
            ExitAction::WaitUntil { height, node } => {
                let what = self
                    .kit
                    .latest()
                    .nodes()
                    .iter()
                    .chain([self.kit.latest().distribution()])
                    .find(|n| n.id == node)
                    .map_or("The next transaction", |n| kind_words(&n.kind));
                let blocks = height
                    .to_consensus_u32()
                    .saturating_sub(chain.tip_height().to_consensus_u32());
                ExitStatus::Waiting {
                    what: what.into(),
                    height,
                    blocks,
                }
            }
            ExitAction::LeafConfirmed { channel, .. } => {
                return self.close_channel(channel, chain.tip_height()).await
            }
            ExitAction::Distributed { txid, payout } => {
                let tx = self
                    .esplora
                    .get_tx(&txid)
                    .await
                    .map_err(err)?
                    .ok_or_else(|| err(esplora_client::Error::TransactionNotFound(txid)))?;
                let Some(prevout) = tx.output.get(payout.vout as usize) else {
                    return Ok(ExitStatus::Stuck(
                        "the distribution pays no output to you".into(),
                    ));
                };
                let rate = self.today_rate().await;
                let sweep = match build_sweep(payout, prevout, &self.key, &self.to, rate) {
                    Ok(sweep) => sweep,
                    Err(e) => return Ok(ExitStatus::Stuck(e.to_string())),
                };
                let sweep_txid = sweep.compute_txid();
                let amount = sweep.output[0].value;
                let spent = self
                    .esplora
                    .get_output_status(&payout.txid, u64::from(payout.vout))
                    .await
                    .map_err(err)?;
                match spent.filter(|s| s.spent) {
                    Some(s) if s.status.as_ref().is_some_and(|st| st.confirmed) => {
                        ExitStatus::Swept {
                            txid: s.txid.unwrap_or(sweep_txid),
                            amount,
                        }
                    }
                    Some(s) => ExitStatus::Sweeping {
                        txid: s.txid.unwrap_or(sweep_txid),
                        amount,
                    },
                    None => {
                        self.esplora.broadcast(&sweep).await.map_err(err)?;
                        ExitStatus::Sweeping {
                            txid: sweep_txid,
                            amount,
                        }
                    }
                }
            }
            ExitAction::Stuck(problem) => ExitStatus::Stuck(format!("{problem:?}")),
            other => ExitStatus::Stuck(format!("{other:?}")),
        })
    }
}
