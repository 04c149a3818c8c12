//! The last part of an exit: once the leaf is on chain, close its channel with this wallet's
//! latest commitment (unless a commitment already spent the channel output) and sweep this
//! wallet's balance from whichever commitment did, as each output's lock allows.

use bitcoin::absolute::Height;
use bitcoin::{OutPoint, Transaction};
use shared::channel::Channel;

use super::runner::{ExitRunner, ExitStatus};
use crate::chain::ChainError;

impl ExitRunner {
    /// One step of closing the channel on `outpoint`, at tip `tip`.
    pub(super) async fn close_channel(
        &self,
        outpoint: OutPoint,
        tip: Height,
    ) -> Result<ExitStatus, ChainError> {
        let Some(channel) = self
            .channels
            .iter()
            .find(|c| c.params().funding == outpoint)
        else {
            return Ok(ExitStatus::LeafOnChain { channel: outpoint });
        };
        let spent = self
            .esplora
            .get_output_status(&outpoint.txid, u64::from(outpoint.vout))
            .await
            .map_err(|e| self.chain_error(e))?
            .filter(|s| s.spent);
        let Some(spent) = spent else {
            let spec = channel.spec();
            if spec.client_balance == bitcoin::Amount::ZERO && spec.htlcs.is_empty() {
                return Ok(ExitStatus::NothingToSweep { channel: outpoint });
            }
            return Ok(match channel.latest_signed() {
                Some(commitment) => {
                    let fee =
                        shared::fees::fee_paid(commitment, channel.params().funding_output.value);
                    self.publish("Your channel's latest state", commitment, fee)
                        .await
                }
                None => ExitStatus::Stuck("the channel has no signed state to close with".into()),
            });
        };
        let Some(txid) = spent.txid else {
            return Ok(ExitStatus::LeafOnChain { channel: outpoint });
        };
        let Some(closed_at) = spent
            .status
            .filter(|s| s.confirmed)
            .and_then(|s| s.block_height)
            .and_then(|h| Height::from_consensus(h).ok())
        else {
            return Ok(ExitStatus::Broadcast {
                what: "Your channel's closing transaction".into(),
                txid,
            });
        };
        let closing = self
            .esplora
            .get_tx(&txid)
            .await
            .map_err(|e| self.chain_error(e))?
            .ok_or_else(|| self.chain_error(esplora_client::Error::TransactionNotFound(txid)))?;
        self.claim_from(channel, &closing, closed_at, tip).await
    }

    /// Sweeps this wallet's outputs of `closing` (confirmed at `closed_at`) one at a time.
    async fn claim_from(
        &self,
        channel: &Channel,
        closing: &Transaction,
        closed_at: Height,
        tip: Height,
    ) -> Result<ExitStatus, ChainError> {
        let dest = self.to.script_pubkey();
        let rate = self.today_rate().await;
        let claims = match channel.claims_for(closing, &dest, rate, &self.preimages) {
            Ok(c) => c,
            Err(e) => return Ok(ExitStatus::Stuck(e.to_string())),
        };
        if claims.is_empty() {
            return Ok(ExitStatus::NothingToSweep {
                channel: closing.input[0].previous_output,
            });
        }
        let mut done: Option<(bitcoin::Txid, bitcoin::Amount)> = None;
        for (_, claim) in &claims {
            let amount = claim.output.iter().map(|o| o.value).sum();
            let input = claim.input[0].previous_output;
            let spent = self
                .esplora
                .get_output_status(&input.txid, u64::from(input.vout))
                .await
                .map_err(|e| self.chain_error(e))?
                .filter(|s| s.spent);
            match spent {
                Some(s) if s.status.as_ref().is_some_and(|st| st.confirmed) => {
                    let swept = done.map_or(amount, |(_, sum)| sum + amount);
                    done = Some((s.txid.unwrap_or(claim.compute_txid()), swept));
                    continue;
                }
                Some(s) => {
                    return Ok(ExitStatus::Sweeping {
                        txid: s.txid.unwrap_or(claim.compute_txid()),
                        amount,
                    })
                }
                None => {}
            }
            // BIP-68 and the claim's own lock: the first block it may enter.
            let relative = claim
                .input
                .iter()
                .filter_map(|i| match i.sequence.to_relative_lock_time() {
                    Some(bitcoin::relative::LockTime::Blocks(b)) => Some(u32::from(b.value())),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            let absolute = match claim.lock_time {
                bitcoin::absolute::LockTime::Blocks(h) => h.to_consensus_u32() + 1,
                _ => 0,
            };
            let first = (closed_at.to_consensus_u32() + relative).max(absolute);
            if tip.to_consensus_u32() + 1 < first {
                let height = Height::from_consensus(first - 1).unwrap_or(tip);
                return Ok(ExitStatus::Waiting {
                    what: "Your channel balance".into(),
                    height,
                    blocks: first - 1 - tip.to_consensus_u32(),
                });
            }
            self.esplora
                .broadcast(claim)
                .await
                .map_err(|e| self.chain_error(e))?;
            return Ok(ExitStatus::Sweeping {
                txid: claim.compute_txid(),
                amount,
            });
        }
        Ok(match done {
            Some((txid, amount)) => ExitStatus::Swept { txid, amount },
            None => ExitStatus::NothingToSweep {
                channel: closing.input[0].previous_output,
            },
        })
    }
}
