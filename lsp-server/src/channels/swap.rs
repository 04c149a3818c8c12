//! Swaps out: a wallet's HTLC paid out to an on-chain output it claims with its preimage
//! (`shared::swap` has the protocol and the reason for each number).
//!
//! 1. `swap_out_request` waits, like a route request, for its HTLC to commit; then the HTLC is
//!    checked (hash, amount with the terms' fee, time left before the refund) and the payment
//!    row (`kind = swap`) and the swap row are stored.
//! 2. A task builds the funding transaction from the LSP's on-chain wallet; the router stores
//!    it before its first broadcast, then tells the wallet where the output is
//!    (`swap_out_funded`). A wallet that cannot pay fails the HTLC back at once.
//! 3. Every few seconds a pass reads each funded output from Esplora ([`spawn_pass`]):
//!    - unspent and its funding unconfirmed: the funding is broadcast again, and after
//!      [`BUMP_AFTER_BLOCKS`] blocks a child spending its change pays for it (CPFP); should a
//!      coin it spends be spent elsewhere in a block, it can never confirm: the HTLC fails back;
//!    - spent by a transaction revealing the preimage: the wallet's HTLC is settled with it,
//!      at once, whether or not the claim has confirmed (the preimage is public from then on);
//!    - unspent once the tip reaches the refund height: the router builds and stores the
//!      refund, the pass broadcasts it every time until it confirms, then the HTLC is failed
//!      back (never earlier: a claim could still take the output before the refund confirms).
//!
//! After a restart, swaps that were funded are watched again; one whose funding was never
//! stored was never broadcast (the funding task's coins come back at the wallet's next sync),
//! so its HTLC is failed back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::{SecretKey, XOnlyPublicKey};
use bitcoin::{Amount, FeeRate, OutPoint, Transaction, TxOut};
use esplora_client::AsyncClient;
use shared::channel::Htlc;
use shared::pay::{ChannelId, PayFailure, PayOutcome};
use shared::swap::tx::{build_refund, preimage_in};
use shared::swap::{SwapOutFunded, SwapOutRequest, SwapPolicy, SwapScript};
use shared::wire::WireMsg;
use tokio::sync::mpsc;

use super::onchain::read;
use super::Router;
use crate::wallet::LspWallet;

/// Blocks a swap's HTLC may expire beyond [`SwapPolicy::htlc_expiry`] at the LSP's tip: the
/// wallet's chain source may be that far ahead.
const EXPIRY_SLACK: u32 = 6;

/// Blocks a swap's funding may wait unconfirmed before a child pays for it (and between two
/// such children).
const BUMP_AFTER_BLOCKS: u32 = 2;

/// How often funded swaps are read from the chain.
const PASS_EVERY: Duration = Duration::from_secs(2);

/// A swap out under way.
#[derive(Debug, Clone)]
pub(super) struct Swap {
    /// Its payment's row.
    row: i64,
    /// The wallet's HTLC and identity.
    payer: (ChannelId, u64, XOnlyPublicKey),
    /// The LSP's fee (what the HTLC carries above `amount`).
    fee: Amount,
    script: SwapScript,
    amount: Amount,
    /// The funding transaction and the output's index, once stored.
    funding: Option<(Transaction, u32)>,
    /// The refund, once built and stored.
    refund: Option<Transaction>,
    /// While the funding is unconfirmed: since which height it waits, and its fee-bump child.
    stall: Option<Stall>,
}

/// A funding transaction waiting for a block.
#[derive(Debug, Clone, Copy)]
struct Stall {
    /// The height its current stretch without a confirmation counts from.
    since: u32,
    /// What it and its child pay now, per vbyte (its own rate before the first child).
    rate: Option<FeeRate>,
    /// Its current child.
    child: Option<bitcoin::Txid>,
}

/// One swap out in the operator's view (`/admin/payments`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SwapView {
    /// Its payment's row.
    pub payment: i64,
    /// The wallet's channel (`factory/client`).
    pub channel: String,
    /// The payment hash.
    pub hash: String,
    /// What the LSP pays on chain.
    pub amount_sat: u64,
    /// Its fee.
    pub fee_sat: u64,
    /// The output, once funded.
    pub outpoint: Option<String>,
    /// The height from which the LSP takes the output back.
    pub refund_height: u32,
    /// `funding`, `funded` or `refunding`.
    pub state: &'static str,
}

/// What a pass or a funding task saw.
#[derive(Debug)]
pub(super) enum SwapSeen {
    /// The funding task built (or could not build) the funding transaction.
    Built {
        row: i64,
        result: Result<Transaction, String>,
    },
    /// The output was spent revealing the preimage.
    Claimed { row: i64, preimage: [u8; 32] },
    /// The tip reached the refund height and no refund is stored: build one at this rate.
    RefundDue { row: i64, feerate: FeeRate },
    /// The refund confirmed.
    Refunded { row: i64 },
    /// The funding can never confirm: a coin it spends went elsewhere in a block.
    FundingLost { row: i64 },
    /// The funding is still unconfirmed (reported every pass until it confirms).
    FundingWaits { row: i64 },
    /// A child paying for the funding was built (and broadcast), or could not be.
    FundingBumped {
        row: i64,
        bump: Result<(bitcoin::Txid, FeeRate), String>,
    },
}

/// The router's swaps, and the tasks that fund and watch them.
pub(super) struct Swaps {
    by_row: std::collections::BTreeMap<i64, Swap>,
    wallet: Arc<LspWallet>,
    seen: (mpsc::Sender<SwapSeen>, Option<mpsc::Receiver<SwapSeen>>),
    /// Whether a pass is running, and when the last one started.
    watching: (Arc<AtomicBool>, Instant),
}

impl Swaps {
    pub(super) fn new(wallet: Arc<LspWallet>) -> Swaps {
        let (tx, rx) = mpsc::channel(256);
        Swaps {
            by_row: Default::default(),
            wallet,
            seen: (tx, Some(rx)),
            watching: (Arc::default(), Instant::now()),
        }
    }

    /// What the router receives (taken once, by `run`).
    pub(super) fn take_seen(&mut self) -> mpsc::Receiver<SwapSeen> {
        self.seen.1.take().expect("taken once")
    }
}

/// The refund key of the swap with `hash`: derived from the LSP's key, so that a restart
/// needs nothing stored to sign the refund.
fn refund_secret(lsp: &SecretKey, hash: &sha256::Hash) -> SecretKey {
    let mut engine = sha256::Hash::engine();
    engine.input(b"superscalar/swap-refund");
    engine.input(&lsp.secret_bytes());
    engine.input(hash.as_byte_array());
    SecretKey::from_slice(sha256::Hash::from_engine(engine).as_byte_array())
        .expect("a hash is a valid secret key but with negligible probability")
}

impl Router {
    fn swap_policy(&self) -> SwapPolicy {
        SwapPolicy::for_network(self.settings.network)
    }

    /// The wallet's HTLC `h` on `id`, asked for by `req`, committed: check it, store the swap and
    /// start funding its output; or fail the HTLC back with the reason.
    pub(super) fn start_swap(
        &mut self,
        id: ChannelId,
        identity: XOnlyPublicKey,
        req: SwapOutRequest,
        h: &Htlc,
    ) {
        let payer = (id, h.id, identity);
        let script = match self.check_swap(id, &req, h) {
            Ok(script) => script,
            Err(reason) => {
                tracing::info!(channel = %id, htlc = h.id, reason = %reason.describe(), "swap out refused");
                self.forwards.route_incoming((id, h.id), None);
                return self.answer_payer(id, h.id, identity, h.hash, PayOutcome::Failed(reason));
            }
        };
        let fee = h.amount - req.amount;
        let now = self.now().unix_time;
        let stored = self
            .store
            .insert_payment(
                &h.hash.to_string(),
                "swap",
                &identity,
                Some((id, h.id)),
                req.amount.to_sat(),
                fee.to_sat(),
                now,
            )
            .and_then(|row| {
                self.store
                    .insert_swap(row, &script, req.amount)
                    .map(|()| row)
            });
        let row = match stored {
            Ok(row) => row,
            Err(e) => {
                tracing::error!(error = %e, "could not store a swap; failing it");
                self.forwards.route_incoming((id, h.id), None);
                let failure = PayFailure::Network {
                    reason: "the provider could not record the swap".into(),
                };
                return self.answer_payer(id, h.id, identity, h.hash, PayOutcome::Failed(failure));
            }
        };
        self.forwards.route_incoming((id, h.id), Some(row));
        let swap = Swap {
            row,
            payer,
            fee,
            script,
            amount: req.amount,
            funding: None,
            refund: None,
            stall: None,
        };
        self.spawn_funding(&swap);
        tracing::info!(row, channel = %id, hash = %h.hash, amount_sat = req.amount.to_sat(), refund_height = %script.refund_height, "swap out: funding its output");
        self.swaps.by_row.insert(row, swap);
    }

    /// The output a committed HTLC buys, or why it buys none.
    fn check_swap(
        &self,
        id: ChannelId,
        req: &SwapOutRequest,
        h: &Htlc,
    ) -> Result<SwapScript, PayFailure> {
        let mismatch = |reason: String| PayFailure::Mismatch { reason };
        if let Some(closing) = self.links.get(&id).and_then(|l| l.closing.as_ref()) {
            return Err(PayFailure::ChannelClosed {
                reason: format!("your channel {id}: {}", closing.describe()),
            });
        }
        if req.hash != h.hash {
            return Err(mismatch("the HTLC's hash is not the swap's".into()));
        }
        let terms = crate::terms::swap_out();
        if let Some(why) = terms.refusal(req.amount) {
            return Err(mismatch(why));
        }
        let fee = terms.fee(req.amount);
        if h.amount < req.amount + fee {
            return Err(mismatch(format!(
                "the HTLC carries {} sat; the {} sat sent on chain plus the {} sat fee are needed",
                h.amount.to_sat(),
                req.amount.to_sat(),
                fee.to_sat()
            )));
        }
        let policy = self.swap_policy();
        // No longer than the wallet's own rule gives (a few blocks of its tip running ahead
        // allowed): a longer one would hold the LSP's coins on chain for nothing.
        let longest = policy.htlc_expiry(self.height) + EXPIRY_SLACK;
        if h.expiry.to_consensus_u32() > longest {
            return Err(mismatch(format!(
                "the HTLC expires at block {}, after the latest a swap allows now ({longest})",
                h.expiry
            )));
        }
        let refund_height = policy.refund_height(h.expiry.to_consensus_u32());
        let refund_height = bitcoin::absolute::Height::from_consensus(refund_height)
            .map_err(|_| PayFailure::Expired)?;
        // Funded now and confirmed, the wallet must still have its margin to claim.
        if !policy.may_claim(self.height + policy.confirmations, refund_height) {
            return Err(PayFailure::Expired);
        }
        Ok(SwapScript {
            hash: h.hash,
            claim_key: req.claim_key,
            refund_key: refund_secret(&self.key.secret_key(), &h.hash)
                .x_only_public_key(shared::secp::ctx())
                .0,
            refund_height,
        })
    }

    /// Builds the funding transaction in a task (its fee rate is read from Esplora).
    fn spawn_funding(&self, swap: &Swap) {
        let wallet = self.swaps.wallet.clone();
        let tx = self.swaps.seen.0.clone();
        let row = swap.row;
        let output = TxOut {
            value: swap.amount,
            script_pubkey: swap.script.script_pubkey(),
        };
        tokio::spawn(async move {
            let rate = wallet
                .fee_rate_estimate(shared::fees::URGENT_BLOCKS)
                .await
                .unwrap_or(FeeRate::from_sat_per_vb_u32(2));
            let result = wallet.fund(&[output], rate).map_err(|e| e.to_string());
            let _ = tx.send(SwapSeen::Built { row, result }).await;
        });
    }

    pub(super) fn take_swap_seen(&mut self) -> mpsc::Receiver<SwapSeen> {
        self.swaps.take_seen()
    }

    pub(super) fn on_swap_seen(&mut self, seen: SwapSeen) {
        match seen {
            SwapSeen::Built { row, result } => self.on_swap_built(row, result),
            SwapSeen::Claimed { row, preimage } => self.on_swap_claimed(row, preimage),
            SwapSeen::RefundDue { row, feerate } => self.build_swap_refund(row, feerate),
            SwapSeen::FundingWaits { row } => self.bump_if_stalled(row),
            SwapSeen::FundingBumped { row, bump } => match bump {
                Ok((child, rate)) => {
                    tracing::info!(row, %child, sat_per_vb = rate.to_sat_per_vb_ceil(), "swap out: stalled funding bumped with a child");
                    if let Some(stall) = self
                        .swaps
                        .by_row
                        .get_mut(&row)
                        .and_then(|s| s.stall.as_mut())
                    {
                        stall.child = Some(child);
                        stall.rate = Some(rate);
                    }
                }
                Err(e) => {
                    tracing::warn!(row, error = %e, "swap out: stalled funding cannot be bumped")
                }
            },
            SwapSeen::FundingLost { row } => {
                tracing::warn!(
                    row,
                    "swap out: its funding's coins went elsewhere; failing it back"
                );
                let reason = "the provider's payment on chain could not go through".into();
                self.end_swap(row, "failed", PayFailure::Network { reason });
            }
            SwapSeen::Refunded { row } => {
                let Some(swap) = self.swaps.by_row.get(&row) else {
                    return;
                };
                let reason = format!(
                    "you did not claim the on-chain payment before block {}: the provider \
                     took it back",
                    swap.script.refund_height
                );
                self.end_swap(row, "refunded", PayFailure::Network { reason });
            }
        }
    }

    fn on_swap_built(&mut self, row: i64, result: Result<Transaction, String>) {
        let Some(swap) = self.swaps.by_row.get(&row).cloned() else {
            return;
        };
        let spk = swap.script.script_pubkey();
        let built = result.and_then(|tx| {
            let vout = tx
                .output
                .iter()
                .position(|o| o.script_pubkey == spk && o.value == swap.amount)
                .ok_or("the funding transaction does not pay the swap")?;
            Ok((tx, vout as u32))
        });
        let (tx, vout) = match built {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(row, error = %e, "swap out: could not fund its output");
                let reason = format!("the provider could not pay on chain now: {e}");
                return self.end_swap(row, "failed", PayFailure::Network { reason });
            }
        };
        if let Err(e) = self.store.swap_funded(row, &tx, vout) {
            tracing::error!(row, error = %e, "could not store a swap's funding; failing it");
            let _ = self.swaps.wallet.abandon(tx.compute_txid());
            let reason = "the provider could not record the swap".into();
            return self.end_swap(row, "failed", PayFailure::Network { reason });
        }
        let outpoint = OutPoint::new(tx.compute_txid(), vout);
        tracing::info!(row, %outpoint, "swap out: output funded");
        let wallet = self.swaps.wallet.clone();
        let sent = tx.clone();
        tokio::spawn(async move {
            if let Err(e) = wallet.broadcast(&sent).await {
                tracing::warn!(txid = %sent.compute_txid(), error = %e, "swap funding broadcast failed; the watch sends it again");
            }
        });
        let (channel, htlc, who) = swap.payer;
        let funded = SwapOutFunded {
            channel,
            htlc,
            script: swap.script,
            outpoint,
            amount: swap.amount,
        };
        let since = self.height;
        if let Some(s) = self.swaps.by_row.get_mut(&row) {
            s.funding = Some((tx, vout));
            // Its wait counts from its broadcast (after a restart, from the first look).
            s.stall = Some(Stall {
                since,
                rate: None,
                child: None,
            });
        }
        self.send_identity(&who, WireMsg::SwapOutFunded(Box::new(funded)));
    }

    fn on_swap_claimed(&mut self, row: i64, preimage: [u8; 32]) {
        let Some(swap) = self.swaps.by_row.remove(&row) else {
            return;
        };
        if sha256::Hash::hash(&preimage) != swap.script.hash {
            self.swaps.by_row.insert(row, swap);
            return tracing::error!(row, "a swap's claim revealed a wrong preimage");
        }
        // Stored first: a restart before the channel stores the fulfill fulfills it again.
        let now = self.now().unix_time;
        if let Err(e) = self.store.swap_claimed(row, &preimage, now) {
            tracing::error!(row, error = %e, "could not store a swap's preimage; settling anyway");
        }
        // Should the wallet's channel be on chain, its HTLC is claimed there with it.
        self.learn_preimage(preimage);
        let (c, h, who) = swap.payer;
        let paid = PayOutcome::Paid {
            preimage,
            fee: swap.fee,
            network_fee: None,
        };
        self.answer_payer(c, h, who, swap.script.hash, paid);
        self.totals.settled += 1;
        self.totals.fees_sat += swap.fee.to_sat();
        self.totals.volume_sat += swap.amount.to_sat();
        tracing::info!(row, hash = %swap.script.hash, amount_sat = swap.amount.to_sat(), "swap out claimed: the wallet's HTLC is settled");
    }

    /// A funding unconfirmed for [`BUMP_AFTER_BLOCKS`] since its stretch began gets a child
    /// spending its change (CPFP: the output's txid, which the wallet checks, cannot change),
    /// paying at least 1.5 times the package rate before and today's estimate; then a new
    /// stretch begins.
    fn bump_if_stalled(&mut self, row: i64) {
        let height = self.height;
        let Some(swap) = self.swaps.by_row.get_mut(&row) else {
            return;
        };
        let Some((funding, _)) = swap.funding.clone() else {
            return;
        };
        let stall = swap.stall.get_or_insert(Stall {
            since: height,
            rate: None,
            child: None,
        });
        if height < stall.since + BUMP_AFTER_BLOCKS {
            return;
        }
        stall.since = height;
        let (previous, rate) = (stall.child, stall.rate);
        let wallet = self.swaps.wallet.clone();
        let tx = self.swaps.seen.0.clone();
        tokio::spawn(async move {
            let estimate = wallet
                .fee_rate_estimate(shared::fees::URGENT_BLOCKS)
                .await
                .unwrap_or(FeeRate::BROADCAST_MIN);
            let current = rate
                .or_else(|| wallet.fee_rate_of(&funding))
                .unwrap_or(FeeRate::BROADCAST_MIN);
            let raised =
                FeeRate::from_sat_per_kwu(current.to_sat_per_kwu().saturating_mul(3) / 2 + 1);
            let bump = match wallet.cpfp(&funding, previous, raised.max(estimate)) {
                Ok(bump) => {
                    if let Err(e) = wallet.broadcast(&bump.child).await {
                        tracing::warn!(error = %e, "swap funding's child broadcast failed; the next stretch bumps again");
                    }
                    Ok((bump.child.compute_txid(), bump.package_rate))
                }
                Err(e) => Err(e.to_string()),
            };
            let _ = tx.send(SwapSeen::FundingBumped { row, bump }).await;
        });
    }

    fn build_swap_refund(&mut self, row: i64, feerate: FeeRate) {
        let Some(swap) = self.swaps.by_row.get(&row) else {
            return;
        };
        let Some((funding, vout)) = &swap.funding else {
            return;
        };
        // A stored refund is replaced only by one paying more.
        if let Some(old) = &swap.refund {
            if rate_of(old, swap.amount).is_some_and(|r| r >= feerate) {
                return;
            }
        }
        let outpoint = OutPoint::new(funding.compute_txid(), *vout);
        let secret = refund_secret(&self.key.secret_key(), &swap.script.hash);
        let refund = build_refund(
            &swap.script,
            outpoint,
            swap.amount,
            secret,
            self.settings.sweep_to.clone(),
            feerate,
        );
        let refund = match refund {
            Ok(tx) => tx,
            Err(e) => return tracing::error!(row, error = %e, "could not build a swap's refund"),
        };
        if let Err(e) = self.store.swap_refund(row, &refund) {
            return tracing::error!(row, error = %e, "could not store a swap's refund");
        }
        tracing::info!(row, txid = %refund.compute_txid(), "swap out unclaimed at its refund height: refunding");
        if let Some(s) = self.swaps.by_row.get_mut(&row) {
            s.refund = Some(refund);
        }
    }

    /// Ends swap `row` without a claim (`state`), failing the wallet's HTLC back.
    fn end_swap(&mut self, row: i64, state: &str, reason: PayFailure) {
        let Some(swap) = self.swaps.by_row.remove(&row) else {
            return;
        };
        let now = self.now().unix_time;
        let _ = self.store.swap_ended(row, state);
        let _ = self
            .store
            .payment_ended(row, "failed", Some(&reason.describe()), now);
        self.totals.failed += 1;
        let (c, h, who) = swap.payer;
        self.answer_payer(c, h, who, swap.script.hash, PayOutcome::Failed(reason));
    }

    /// The swaps under way, for the operator.
    pub(super) fn swap_views(&self) -> Vec<SwapView> {
        self.swaps
            .by_row
            .values()
            .map(|s| SwapView {
                payment: s.row,
                channel: s.payer.0.to_string(),
                hash: s.script.hash.to_string(),
                amount_sat: s.amount.to_sat(),
                fee_sat: s.fee.to_sat(),
                outpoint: s
                    .funding
                    .as_ref()
                    .map(|(tx, vout)| OutPoint::new(tx.compute_txid(), *vout).to_string()),
                refund_height: s.script.refund_height.to_consensus_u32(),
                state: match (&s.funding, &s.refund) {
                    (None, _) => "funding",
                    (Some(_), None) => "funded",
                    (Some(_), Some(_)) => "refunding",
                },
            })
            .collect()
    }

    /// Every [`PASS_EVERY`], a pass over the funded swaps.
    pub(super) fn watch_swaps(&mut self) {
        if self.swaps.by_row.is_empty() || self.swaps.watching.1.elapsed() < PASS_EVERY {
            return;
        }
        let Ok(tip) = self.tip.height() else {
            return;
        };
        if self.swaps.watching.0.swap(true, Ordering::AcqRel) {
            return;
        }
        self.swaps.watching.1 = Instant::now();
        let watched: Vec<Watched> = self
            .swaps
            .by_row
            .values()
            .filter_map(|s| {
                let (funding, vout) = s.funding.clone()?;
                Some(Watched {
                    row: s.row,
                    script: s.script,
                    amount: s.amount,
                    funding,
                    vout,
                    refund: s.refund.clone(),
                })
            })
            .collect();
        spawn_pass(
            self.esplora.clone(),
            self.swaps.watching.0.clone(),
            self.swaps.seen.0.clone(),
            tip,
            watched,
        );
    }

    /// A wallet (re)opened its channel: it hears again where each of its funded swaps is (it
    /// may have been away when the LSP paid).
    pub(super) fn resend_swaps(&self, identity: XOnlyPublicKey) {
        for s in self.swaps.by_row.values().filter(|s| s.payer.2 == identity) {
            let Some((tx, vout)) = &s.funding else {
                continue;
            };
            let funded = SwapOutFunded {
                channel: s.payer.0,
                htlc: s.payer.1,
                script: s.script,
                outpoint: OutPoint::new(tx.compute_txid(), *vout),
                amount: s.amount,
            };
            self.send_identity(&identity, WireMsg::SwapOutFunded(Box::new(funded)));
        }
    }

    /// After a restart: every swap not ended is watched again, or failed back if its funding
    /// was never stored (so never broadcast); a claimed swap's preimage is learned again and
    /// fulfills its HTLC if the channel had not stored that yet.
    pub(super) fn swaps_restore(&mut self) {
        for (id, htlc, preimage) in self.store.claimed_swaps().unwrap_or_default() {
            self.learn_preimage(preimage);
            let unsettled = self.links.get(&id).is_some_and(|l| {
                l.channel.pending_spec().is_ok_and(|s| {
                    s.htlcs
                        .iter()
                        .any(|x| x.offerer == shared::channel::Side::Client && x.id == htlc)
                })
            });
            if unsettled {
                let now = self.now();
                if let Some(link) = self.links.get_mut(&id) {
                    if let Err(e) = link.channel.fulfill_htlc(now, htlc, preimage) {
                        tracing::error!(channel = %id, htlc, error = %e, "could not fulfill a claimed swap's HTLC");
                    }
                    self.dirty.insert(id);
                }
                tracing::info!(channel = %id, htlc, "a claimed swap's HTLC fulfilled again after the restart");
            }
        }
        let rows = match self.store.open_swaps() {
            Ok(rows) => rows,
            Err(e) => return tracing::error!(error = %e, "could not load the swaps"),
        };
        let payments = self.store.pending_payments().unwrap_or_default();
        // A swap payment stored without its swap row (the LSP died between the two writes)
        // never paid anything: its HTLC fails back.
        for p in payments.iter().filter(|p| p.kind == "swap") {
            if rows.iter().any(|r| r.payment == p.id) {
                continue;
            }
            let (Some(c), Some(h)) = (p.payer, p.payer_htlc) else {
                continue;
            };
            let (Some(who), Ok(hash)) = (
                self.links.get(&c).map(|l| l.identity),
                p.hash.parse::<sha256::Hash>(),
            ) else {
                continue;
            };
            let reason = PayFailure::Network {
                reason: "the provider restarted before paying on chain".into(),
            };
            let now = self.now().unix_time;
            let _ = self
                .store
                .payment_ended(p.id, "failed", Some(&reason.describe()), now);
            self.forwards.route_incoming((c, h), Some(p.id));
            self.answer_payer(c, h, who, hash, PayOutcome::Failed(reason));
        }
        for row in rows {
            let Some(p) = payments.iter().find(|p| p.id == row.payment) else {
                continue;
            };
            let (Some(c), Some(h)) = (p.payer, p.payer_htlc) else {
                continue;
            };
            let Some(who) = self.links.get(&c).map(|l| l.identity) else {
                continue;
            };
            self.forwards.route_incoming((c, h), Some(row.payment));
            let never_funded = row.funding.is_none();
            self.swaps.by_row.insert(
                row.payment,
                Swap {
                    row: row.payment,
                    payer: (c, h, who),
                    fee: Amount::from_sat(p.fee_sat),
                    script: row.script,
                    amount: row.amount,
                    funding: row.funding,
                    refund: row.refund,
                    stall: None,
                },
            );
            if never_funded {
                let reason = "the provider restarted before paying on chain".into();
                self.end_swap(row.payment, "failed", PayFailure::Network { reason });
            }
        }
    }
}

/// A funded swap, as a pass reads it.
#[derive(Debug, Clone)]
struct Watched {
    row: i64,
    script: SwapScript,
    amount: Amount,
    funding: Transaction,
    vout: u32,
    refund: Option<Transaction>,
}

/// Reads each watched output once, in the background; reports what needs the router.
fn spawn_pass(
    esplora: AsyncClient,
    running: Arc<AtomicBool>,
    out: mpsc::Sender<SwapSeen>,
    tip: u32,
    watched: Vec<Watched>,
) {
    tokio::spawn(async move {
        // Today's rate, read at most once a pass, and only if a refund needs it.
        let mut rate = None;
        for w in watched {
            if let Some(seen) = look(&esplora, tip, &w, &mut rate).await {
                let _ = out.send(seen).await;
            }
        }
        running.store(false, Ordering::Release);
    });
}

async fn look(
    esplora: &AsyncClient,
    tip: u32,
    w: &Watched,
    rate: &mut Option<FeeRate>,
) -> Option<SwapSeen> {
    let txid = w.funding.compute_txid();
    // An output Esplora does not know (its funding never reached the node: the LSP died
    // before broadcasting it) reads as unspent, so the funding goes out again below.
    let status = read(
        "swap output",
        esplora.get_output_status(&txid, u64::from(w.vout)),
    )
    .await
    .flatten();
    let spent = status.as_ref().filter(|s| s.spent).and_then(|s| s.txid);
    if let Some(spender) = spent {
        let tx = read("swap spender", esplora.get_tx(&spender)).await??;
        if let Some(preimage) = preimage_in(&w.script, &tx) {
            return Some(SwapSeen::Claimed {
                row: w.row,
                preimage,
            });
        }
        // Any other spend is one of the LSP's refunds (only its key opens that leaf): once one
        // confirms, the HTLC fails back; until then a lagging one is replaced.
        if status.and_then(|s| s.status).is_some_and(|s| s.confirmed) {
            return Some(SwapSeen::Refunded { row: w.row });
        }
        return match &w.refund {
            // A replacement stored since: it goes out (it pays more than the one out there).
            Some(stored) if stored.compute_txid() != spender => {
                let _ = read("swap refund broadcast", esplora.broadcast(stored)).await;
                None
            }
            _ => refund_lags(esplora, w, &tx, rate).await,
        };
    }
    // Unspent: keep the funding out there until it confirms, and the refund once due.
    let funded = read("swap funding", esplora.get_tx_status(&txid))
        .await
        .is_some_and(|s| s.confirmed);
    if !funded {
        let sent = read("swap funding broadcast", esplora.broadcast(&w.funding)).await;
        if sent.is_none() && spent_elsewhere(esplora, &w.funding).await {
            return Some(SwapSeen::FundingLost { row: w.row });
        }
        return Some(SwapSeen::FundingWaits { row: w.row });
    }
    if tip < w.script.refund_height.to_consensus_u32() {
        return None;
    }
    match &w.refund {
        Some(refund) => {
            let lags = refund_lags(esplora, w, refund, rate).await;
            if lags.is_none() {
                let _ = read("swap refund broadcast", esplora.broadcast(refund)).await;
            }
            lags
        }
        None => Some(SwapSeen::RefundDue {
            row: w.row,
            feerate: today(esplora, rate).await,
        }),
    }
}

/// Whether a coin `tx` spends is spent in a block by another transaction: then `tx` can
/// never confirm (its wallet's coins went elsewhere, say after it dropped a funding that never
/// reached the node).
async fn spent_elsewhere(esplora: &AsyncClient, tx: &Transaction) -> bool {
    let txid = tx.compute_txid();
    for input in &tx.input {
        let prev = input.previous_output;
        let status = read(
            "swap funding input",
            esplora.get_output_status(&prev.txid, u64::from(prev.vout)),
        )
        .await
        .flatten();
        let elsewhere = status.is_some_and(|s| {
            s.spent && s.txid.is_some_and(|t| t != txid) && s.status.is_some_and(|st| st.confirmed)
        });
        if elsewhere {
            return true;
        }
    }
    false
}

/// Today's rate for the LSP's swap transactions: Esplora's urgent estimate, else 2 sat/vB;
/// read once into `rate` and kept there for the rest of the pass.
async fn today(esplora: &AsyncClient, rate: &mut Option<FeeRate>) -> FeeRate {
    if let Some(r) = *rate {
        return r;
    }
    let r = read("fee estimates", esplora.get_fee_estimates())
        .await
        .map_or(FeeRate::from_sat_per_vb_u32(2), |e| {
            shared::fees::pick_fee_rate(&e, shared::fees::URGENT_BLOCKS)
        });
    *rate = Some(r);
    r
}

/// A new refund at today's rate, if `refund` pays at least a sat/vB less (the wallet could
/// still claim until a refund confirms).
async fn refund_lags(
    esplora: &AsyncClient,
    w: &Watched,
    refund: &Transaction,
    rate: &mut Option<FeeRate>,
) -> Option<SwapSeen> {
    let feerate = today(esplora, rate).await;
    let paid = rate_of(refund, w.amount)?;
    (paid.to_sat_per_kwu() + ONE_SAT_VB_KWU <= feerate.to_sat_per_kwu()).then_some(
        SwapSeen::RefundDue {
            row: w.row,
            feerate,
        },
    )
}

/// One sat/vB in sat/kwu: the least step a replacement must add.
const ONE_SAT_VB_KWU: u64 = 250;

/// The fee rate `spend` of an output worth `value` pays.
fn rate_of(spend: &Transaction, value: Amount) -> Option<FeeRate> {
    let fee = value.checked_sub(spend.output.first()?.value)?;
    Some(fee / spend.weight())
}
