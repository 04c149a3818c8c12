//! What leaving costs, to the sat, before the user confirms: the way the planner takes from the
//! chain as it is now (the distribution transaction, or the tree down to the leaf and the
//! channel's close), every fee on that way and who pays it, and what lands at the wallet's own
//! address. The sweep's fee rate is fixed by the runner, so the figures are the ones the exit
//! will broadcast.

use bitcoin::{Amount, Transaction};
use shared::exit::ExitAction;
use shared::tree::NodeKind;

use super::runner::ExitRunner;
use super::{build_sweep, read_chain};
use crate::chain::ChainError;

/// Which way the exit goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitWay {
    /// The factory's distribution transaction pays the whole leaf (channel and liquidity for
    /// sale) to the wallet's factory key; the wallet moves it to its address.
    Distribution,
    /// The tree down to the leaf, then the channel's close with the wallet's latest state, then
    /// the wallet's channel balance moved to its address.
    Tree,
}

/// Every cost of an exit and what it leaves the wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitPlan {
    /// The way.
    pub way: ExitWay,
    /// The factory's transactions to broadcast (tree or distribution).
    pub factory_txs: u32,
    /// Their size.
    pub factory_vbytes: u64,
    /// Their fees, paid by the factory when it was built: nothing more from the wallet.
    pub factory_fee: Amount,
    /// The channel's closing transaction: its fee and anchor, paid from the provider's side
    /// (`None` on the distribution way, or when the channel holds nothing of the wallet's).
    pub close_fee: Option<Amount>,
    /// What the wallet owns before moving it: the distribution's payout, or its channel
    /// balance (with its pending incoming payments).
    pub owned: Amount,
    /// The fees of moving it to the wallet's address, paid from `owned`.
    pub sweep_fee: Amount,
    /// What lands at the wallet's address: `owned - sweep_fee`.
    pub lands: Amount,
    /// What the wallet cannot take out (an amount too small to pay its own move), if any.
    pub note: Option<String>,
}

impl ExitPlan {
    /// Everything the wallet pays itself.
    pub fn wallet_pays(&self) -> Amount {
        self.sweep_fee
    }
}

impl ExitRunner {
    /// The exit as it would go from the chain as it is now.
    pub async fn plan(&self) -> Result<ExitPlan, ChainError> {
        let chain = read_chain(&self.esplora, &self.url, &self.watch, &self.kit).await?;
        let latest = self.kit.latest();
        let distribution = latest.distribution();
        let distribution_way = match self.kit.next_action(&chain) {
            ExitAction::Broadcast { kind, .. } => kind == NodeKind::Distribution,
            ExitAction::WaitUntil { node, .. } => node == distribution.id,
            ExitAction::Distributed { .. } => true,
            _ => false,
        };
        if distribution_way {
            return Ok(self.distribution_plan());
        }
        let cost = latest.exit_cost();
        let mut plan = ExitPlan {
            way: ExitWay::Tree,
            factory_txs: cost.txs,
            factory_vbytes: cost.vbytes,
            factory_fee: cost.prepaid_fee,
            close_fee: None,
            owned: Amount::ZERO,
            sweep_fee: Amount::ZERO,
            lands: Amount::ZERO,
            note: None,
        };
        // The channel of the newest leaf state this wallet holds.
        let Some(channel) = self.channels.last() else {
            plan.note = Some("this browser holds no state of your channel to close it with".into());
            return Ok(plan);
        };
        let Some(commitment) = channel.latest_signed() else {
            plan.note = Some("your channel has no signed state to close with".into());
            return Ok(plan);
        };
        let params = channel.params();
        let outputs: Amount = commitment.output.iter().map(|o| o.value).sum();
        plan.close_fee = (params.funding_output.value + params.anchor).checked_sub(outputs);
        let dest = self.to.script_pubkey();
        let claims = channel
            .claims_for(commitment, &dest, self.fee_rate, &self.preimages)
            .unwrap_or_default();
        let (owned, lands) = claimed(commitment, claims.iter().map(|(_, c)| c));
        plan.owned = owned.max(channel.spec().client_balance);
        plan.lands = lands;
        plan.sweep_fee = plan.owned.checked_sub(lands).unwrap_or(Amount::ZERO);
        if lands == Amount::ZERO && plan.owned > Amount::ZERO {
            plan.note = Some(format!(
                "your {} in the channel is too small to pay for moving it",
                crate::format::sats(plan.owned)
            ));
        }
        Ok(plan)
    }

    fn distribution_plan(&self) -> ExitPlan {
        let latest = self.kit.latest();
        let node = latest.distribution();
        let payout = latest.distribution_outpoint();
        let mut plan = ExitPlan {
            way: ExitWay::Distribution,
            factory_txs: 1,
            factory_vbytes: node.vsize(),
            factory_fee: node.fee(),
            close_fee: None,
            owned: Amount::ZERO,
            sweep_fee: Amount::ZERO,
            lands: Amount::ZERO,
            note: None,
        };
        let Some(prevout) = node.tx.output.get(payout.vout as usize) else {
            plan.note = Some("the distribution pays no output to you".into());
            return plan;
        };
        plan.owned = prevout.value;
        match build_sweep(payout, prevout, &self.key, &self.to, self.fee_rate) {
            Ok(sweep) => {
                plan.lands = sweep.output.iter().map(|o| o.value).sum();
                plan.sweep_fee = plan.owned.checked_sub(plan.lands).unwrap_or(Amount::ZERO);
            }
            Err(e) => plan.note = Some(e.to_string()),
        }
        plan
    }
}

/// What `claims` of `commitment`'s outputs spend from it, and what they pay.
fn claimed<'a>(
    commitment: &Transaction,
    claims: impl Iterator<Item = &'a Transaction>,
) -> (Amount, Amount) {
    let txid = commitment.compute_txid();
    let mut spent = Amount::ZERO;
    let mut paid = Amount::ZERO;
    for claim in claims {
        for input in &claim.input {
            if input.previous_output.txid == txid {
                if let Some(out) = commitment.output.get(input.previous_output.vout as usize) {
                    spent += out.value;
                }
            }
        }
        paid += claim.output.iter().map(|o| o.value).sum();
    }
    (spent, paid)
}
