//! Sending from the channel to an on-chain address (`shared::swap`), the wallet's side:
//!
//! 1. [`PayClient::swap_out`] stores the payment with its preimage and claim key, then offers
//!    the HTLC (`amount + fee`, expiring at [`SwapPolicy::htlc_expiry`]) with a
//!    `swap_out_request`.
//! 2. `swap_out_funded` is taken only if it is this payment's output: the hash, this wallet's
//!    claim key, the amount, and the refund height the wallet computes from its own HTLC.
//! 3. At every tip ([`PayClient::claim_swaps`]) each funded swap's output is read from the
//!    wallet's own chain source: once it pays exactly what was asked, to exactly that script,
//!    with [`SwapPolicy::confirmations`], and while the refund is more than the claim margin
//!    away, the claim is built, stored and broadcast; it is broadcast again every tip, and
//!    replaced by one paying more when it lags, until it confirms. Past that margin the wallet
//!    never reveals the preimage: the provider refunds and fails the HTLC back.
//! 4. The provider settles the HTLC with the preimage it read from the claim; the payment
//!    completes as any other (`settle_sent`).

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::SecretKey;
use bitcoin::{Amount, OutPoint};
use rand::RngCore;
use shared::swap::tx::{build_claim, claim_vsize, preimage_in};
use shared::swap::{SwapOutFunded, SwapOutRequest, SwapPolicy};
use shared::wire::WireMsg;

use super::{PayClient, PayReply};
use crate::pay::store::{Direction, PayStore, PaymentRecord, PaymentStatus, SwapRecord};
use crate::pay::{PayError, PayEvent, SwapQuote};
use crate::session::{ChainSource, Connect};

/// Blocks the claim is priced to confirm within.
const CLAIM_TARGET_BLOCKS: u16 = 2;

impl<C: Connect, S: PayStore, H: ChainSource> PayClient<C, S, H> {
    fn swap_policy(&self) -> SwapPolicy {
        SwapPolicy::for_network(self.config.network)
    }

    /// What sending `amount` to `address` costs, and the address's script.
    pub(super) async fn swap_quote(
        &self,
        address: &str,
        amount: Amount,
    ) -> Result<(SwapQuote, bitcoin::ScriptBuf), PayError> {
        let terms = self.terms.as_ref().ok_or(PayError::NotConnected)?;
        let swap = terms.swap_out.as_ref().ok_or_else(|| {
            PayError::OnChain("this provider does not send to on-chain addresses".into())
        })?;
        let address = crate::onchain::parse_address(address, self.config.network)
            .map_err(|e| PayError::OnChain(e.to_string()))?;
        if let Some(why) = swap.refusal(amount) {
            return Err(PayError::OnChain(why));
        }
        let destination = address.script_pubkey();
        let claim_fee = self
            .claim_rate()
            .await
            .fee_vb(claim_vsize(&destination))
            .unwrap_or(Amount::MAX_MONEY);
        let arrives = amount
            .checked_sub(claim_fee)
            .filter(|a| *a >= shared::swap::tx::DUST)
            .ok_or_else(|| {
                PayError::OnChain(format!(
                    "{} sats would not cover the network fee of claiming them ({} sats)",
                    amount.to_sat(),
                    claim_fee.to_sat()
                ))
            })?;
        let fee = swap.fee(amount);
        let quote = SwapQuote {
            amount,
            fee,
            claim_fee,
            arrives,
            total: amount + fee,
        };
        Ok((quote, destination))
    }

    /// Stores the payment with its secrets, offers the HTLC and asks the provider to pay out,
    /// at the fee of `seen` (the quote the user confirmed).
    pub(super) async fn swap_out(
        &mut self,
        address: &str,
        seen: &SwapQuote,
        reply: PayReply,
    ) -> Result<(), PayError> {
        let amount = seen.amount;
        let (quote, destination) = match self.swap_quote(address, amount).await {
            Ok((q, _)) if (q.fee, q.total) != (seen.fee, seen.total) => {
                let _ = reply.send(Err(PayError::OnChain(
                    "the provider's fee changed since you reviewed it: review it again".into(),
                )));
                return Ok(());
            }
            Ok(q) => q,
            Err(e) => {
                let _ = reply.send(Err(e));
                return Ok(());
            }
        };
        if self.link.is_none() {
            let _ = reply.send(Err(PayError::NotConnected));
            return Ok(());
        }
        let id = match self.payer_channel(quote.total) {
            (Some(id), _) => id,
            (None, have) => {
                let _ = reply.send(Err(PayError::InsufficientBalance {
                    need: quote.total.to_sat(),
                    have: have.to_sat(),
                }));
                return Ok(());
            }
        };
        let mut preimage = [0u8; 32];
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut preimage);
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let claim_secret =
            SecretKey::from_slice(&secret).map_err(|e| PayError::Failed(e.to_string()))?;
        let hash = sha256::Hash::hash(&preimage);
        let expiry = self.swap_policy().htlc_expiry(self.height);
        let now = self.now();
        let o = self.open.get_mut(&id).expect("chosen among open channels");
        let htlc = o.channel.next_htlc_id();
        let record = PaymentRecord {
            hash,
            direction: Direction::Sent,
            amount,
            fee: quote.fee,
            network_fee: None,
            join_fee: Amount::ZERO,
            description: format!("On chain to {}", address.trim()),
            status: PaymentStatus::Pending,
            created_at: now.unix_time,
            done_at: None,
            channel: Some((id, htlc)),
            preimage: None,
            swap: Some(Box::new(SwapRecord {
                address: address.trim().to_owned(),
                destination,
                preimage,
                claim_secret,
                expiry,
                funded: None,
                claim: None,
                claimed_at: None,
                claim_confirmed: None,
                refunded: false,
            })),
        };
        let height = bitcoin::absolute::Height::from_consensus(expiry)
            .map_err(|e| PayError::Failed(e.to_string()))?;
        if let Err(e) = o.channel.add_htlc(now, quote.total, hash, height) {
            let _ = reply.send(Err(PayError::Failed(e.to_string())));
            return Ok(());
        }
        self.record(&record).await?;
        let claim_key = claim_secret.x_only_public_key(shared::secp::ctx()).0;
        self.send(WireMsg::SwapOutRequest(SwapOutRequest {
            channel: id,
            htlc,
            hash,
            amount,
            claim_key,
        }))
        .await;
        self.pending.insert((id, htlc), reply);
        self.perform(id).await
    }

    /// The provider says where it paid: kept only if it is exactly this payment's output.
    pub(super) async fn on_swap_funded(&mut self, funded: SwapOutFunded) -> Result<(), PayError> {
        let Some(mut record) = self.sent_by_htlc(funded.channel, funded.htlc) else {
            return Ok(());
        };
        let policy = self.swap_policy();
        let Some(swap) = record.swap.as_mut().filter(|s| s.funded.is_none()) else {
            return Ok(());
        };
        let claim_key = swap.claim_secret.x_only_public_key(shared::secp::ctx()).0;
        let refund = policy.refund_height(swap.expiry);
        let ours = funded.script.hash == record.hash
            && funded.script.claim_key == claim_key
            && funded.amount == record.amount
            && funded.script.refund_height.to_consensus_u32() == refund;
        if !ours {
            self.emit(PayEvent::LspError(format!(
                "the provider named an on-chain output that is not this payment's \
                 (refund at block {}, {} sats); it is ignored, and the payment comes back \
                 to you when the provider fails it",
                funded.script.refund_height,
                funded.amount.to_sat()
            )));
            return Ok(());
        }
        swap.funded = Some(funded);
        self.record(&record).await?;
        self.emit(PayEvent::Updated);
        Ok(())
    }

    /// Claims every funded swap whose output is deep enough, while the refund is far enough;
    /// watches every claim until it confirms, whatever the payment's state (the provider may
    /// settle from a claim in the mempool, but the coins are the user's only once it
    /// confirms, and before the refund height): broadcast again every tip, and replaced by one
    /// paying more when today's rate rose, or, with half the claim margin gone, at twice its
    /// own.
    pub(super) async fn claim_swaps(&mut self) -> Result<(), PayError> {
        let watched: Vec<PaymentRecord> = self
            .stored
            .payments
            .iter()
            .filter(|p| p.direction == Direction::Sent)
            .filter(|p| {
                p.swap.as_ref().is_some_and(|s| match &s.claim {
                    None => s.funded.is_some() && p.status == PaymentStatus::Pending,
                    Some(_) => s.claim_confirmed.is_none() && !s.refunded,
                })
            })
            .cloned()
            .collect();
        for mut record in watched {
            let swap = record.swap.as_mut().expect("filtered");
            let funded = swap.funded.clone().expect("a claim has its output");
            let next = match swap.claim.clone() {
                None => self.claim_if_due(swap, &funded).await,
                Some(claim) => {
                    if self.output_settled(swap, &funded).await {
                        self.record(&record).await?;
                        self.emit(PayEvent::Updated);
                        continue;
                    }
                    let bumped = self.bumped_claim(swap, &funded, &claim).await;
                    if bumped.is_none() {
                        let _ = self.chain.broadcast(&claim).await;
                    }
                    bumped
                }
            };
            let Some(claim) = next else {
                continue;
            };
            swap.claim = Some(claim.clone());
            swap.claimed_at = Some(self.height);
            self.record(&record).await?;
            // Stored: a broadcast that fails is tried again at the next tip.
            let _ = self.chain.broadcast(&claim).await;
            self.emit(PayEvent::Updated);
        }
        Ok(())
    }

    /// Whether the swap's output is spent in a block: by a claim (any of this wallet's, the
    /// one that confirmed is kept) or by the provider's refund. Either way the watch ends.
    async fn output_settled(&self, swap: &mut SwapRecord, funded: &SwapOutFunded) -> bool {
        let Ok(Some((txid, true))) = self.chain.spender(funded.outpoint).await else {
            return false;
        };
        let Ok(Some(tx)) = self.chain.transaction(&txid).await else {
            return false;
        };
        if preimage_in(&funded.script, &tx).is_some() {
            let depth = self.chain.confirmations(&txid).await.unwrap_or(1).max(1);
            swap.claim = Some(tx);
            swap.claim_confirmed = Some((self.height + 1).saturating_sub(depth));
        } else {
            swap.refunded = true;
        }
        true
    }

    /// A replacement of `claim` paying more, when it is due: today's rate is at least one
    /// sat/vB above the claim's, or half the claim margin is gone and a block passed since the
    /// claim was built (then at least twice the claim's rate, so at most one doubling a block).
    async fn bumped_claim(
        &self,
        swap: &SwapRecord,
        funded: &SwapOutFunded,
        claim: &bitcoin::Transaction,
    ) -> Option<bitcoin::Transaction> {
        let paid = funded.amount.checked_sub(claim.output.first()?.value)?;
        let current = paid / bitcoin::Weight::from_vb(claim.vsize() as u64)?;
        let today = self.chain.fee_rate(CLAIM_TARGET_BLOCKS).await.ok()?;
        let policy = self.swap_policy();
        // Doubling is for a claim a whole block has passed over: once a block, never faster.
        let urgent = self.height + policy.claim_margin / 2 + 1
            >= funded.script.refund_height.to_consensus_u32()
            && swap.claimed_at.is_none_or(|at| at < self.height);
        let mut target = today;
        if urgent {
            target = target.max(bitcoin::FeeRate::from_sat_per_kwu(
                current.to_sat_per_kwu().saturating_mul(2),
            ));
        }
        let step = bitcoin::FeeRate::from_sat_per_vb_u32(1);
        if target.to_sat_per_kwu() < current.to_sat_per_kwu() + step.to_sat_per_kwu() {
            return None;
        }
        claim_at(swap, funded, target)
    }

    /// The claim of `funded`, if its output is on chain as agreed, deep enough, and the
    /// refund is still far enough away.
    async fn claim_if_due(
        &self,
        swap: &SwapRecord,
        funded: &SwapOutFunded,
    ) -> Option<bitcoin::Transaction> {
        let policy = self.swap_policy();
        if !policy.may_claim(self.height, funded.script.refund_height) {
            return None;
        }
        let OutPoint { txid, vout } = funded.outpoint;
        let confirmations = self.chain.confirmations(&txid).await.ok()?;
        if confirmations < policy.confirmations {
            return None;
        }
        let tx = self.chain.transaction(&txid).await.ok()??;
        let out = tx.output.get(vout as usize)?;
        if out.value != funded.amount || out.script_pubkey != funded.script.script_pubkey() {
            return None;
        }
        claim_at(swap, funded, self.claim_rate().await)
    }

    /// Today's rate for a claim: the chain source's estimate, else 2 sat/vB.
    async fn claim_rate(&self) -> bitcoin::FeeRate {
        self.chain
            .fee_rate(CLAIM_TARGET_BLOCKS)
            .await
            .unwrap_or(bitcoin::FeeRate::from_sat_per_vb_u32(2))
    }
}

/// The claim of `funded` to the swap's destination at `rate`.
fn claim_at(
    swap: &SwapRecord,
    funded: &SwapOutFunded,
    rate: bitcoin::FeeRate,
) -> Option<bitcoin::Transaction> {
    build_claim(
        &funded.script,
        funded.outpoint,
        funded.amount,
        swap.claim_secret,
        swap.preimage,
        swap.destination.clone(),
        rate,
    )
    .ok()
}
