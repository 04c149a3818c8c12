//! The LSP's channel watch: finds every channel whose factory or channel output went on chain,
//! and answers a commitment on chain with every claim the LSP can make from it — the penalty
//! for a client's revoked commitment, the success of an HTLC it knows the preimage of, the
//! timeout of an HTLC it offered, its balance — without anyone pressing a button.
//!
//! Shape: the router (which owns every channel) hands a pass the outpoints to look at and the
//! claims still to confirm; the pass reads Esplora in the background and reports what it saw
//! ([`Seen`]); the router builds the claims (`Channel::claims_for`, from its own state only)
//! and marks the channel closing, so nothing routes through it again.
//!
//! The pass reads one output per factory while the factory is off chain (its funding output);
//! only a factory whose funding output is spent costs a read per channel. Every read has a
//! timeout, so a hung Esplora delays a pass but never the router. A claim whose lock has not
//! passed is refused by the node and simply tried again next pass.
//!
//! A payee may claim on chain an HTLC the LSP offered it without ever telling the LSP the
//! preimage (it went on chain at its deadline, or the LSP was away). Its success claim carries
//! the preimage in its witness, so while a channel's commitment is on chain with such HTLCs on
//! it, each pass reads what spent its outputs ([`Hunt`]); a preimage found there settles the
//! payer's side at once (or claims the payment the LSP's node holds), and goes into the claims
//! of every channel on chain, so the LSP collects from a payer that is on chain too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::{OutPoint, Transaction, Txid};
use esplora_client::AsyncClient;
use shared::pay::ChannelId;
use shared::types::FactoryId;
use tokio::sync::mpsc;

use super::publish::Publisher;
use super::walk::{self, Walk};
use crate::factory::ConnId;

/// How long one Esplora read may take before the pass gives up on it.
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One channel to watch: its factory's funding output and its live channel output.
#[derive(Debug, Clone)]
pub(super) struct Watched {
    pub(super) id: ChannelId,
    pub(super) funding: OutPoint,
    pub(super) channel: OutPoint,
}

/// What a pass saw.
#[derive(Debug, Clone)]
pub(super) enum Seen {
    /// The factory's funding output is spent: its tree is going on chain (or it closed).
    FactorySpent {
        /// The factory.
        factory: FactoryId,
        /// The transaction that spent it.
        spender: Txid,
    },
    /// The channel output is spent by `tx` (a commitment, or a cooperative close).
    ChannelSpent {
        /// The channel.
        id: ChannelId,
        /// The spending transaction.
        tx: Box<Transaction>,
    },
    /// A factory's key-path close is confirmed (`tx`: the version that confirmed).
    CloseConfirmed {
        /// The factory.
        factory: FactoryId,
        /// The close.
        tx: Box<Transaction>,
        /// The block it confirmed in.
        height: u32,
    },
    /// A factory's funding output was spent, in a confirmed block, by something that is not a
    /// key-path close: the close can never confirm.
    CloseLost {
        /// The factory.
        factory: FactoryId,
        /// What spent the funding output.
        spender: Txid,
    },
    /// The tree transaction that would spend a sweep's output confirmed (`sweep.rs`).
    SweepDescend {
        /// The factory.
        factory: FactoryId,
        /// The node.
        node: shared::types::NodeId,
    },
    /// A sweep confirmed (`tx`: the version that did).
    SweepConfirmed {
        /// The factory.
        factory: FactoryId,
        /// The node whose input it spends.
        node: shared::types::NodeId,
        /// The sweep.
        tx: Box<Transaction>,
        /// The block it confirmed in.
        height: u32,
    },
    /// Something else spent a sweep's output.
    SweepLost {
        /// The factory.
        factory: FactoryId,
        /// The node whose input it was.
        node: shared::types::NodeId,
        /// What spent it.
        spender: Txid,
    },
    /// Today's fee rate for a transaction that must confirm soon (read at the start of a pass).
    FeeRate(bitcoin::FeeRate),
    /// A claim the router asked for is confirmed.
    ClaimConfirmed {
        /// The channel.
        id: ChannelId,
        /// The claim.
        txid: Txid,
    },
    /// A spender of a commitment's output was read for preimages ([`Hunt`]); it is not read
    /// again.
    Scanned(Txid),
    /// A spend of an output of channel `id`'s commitment on chain revealed a preimage the LSP
    /// was looking for ([`Hunt`]).
    Preimage {
        /// The channel.
        id: ChannelId,
        /// The preimage.
        preimage: [u8; 32],
    },
}

/// A commitment of channel `id` on chain that carries HTLCs the LSP offered and was never told
/// the preimage of: whatever spends its outputs may reveal one.
#[derive(Debug, Clone)]
pub(super) struct Hunt {
    pub(super) id: ChannelId,
    /// The commitment on chain.
    pub(super) commitment: Txid,
    /// The payment hashes looked for.
    pub(super) hashes: BTreeSet<sha256::Hash>,
    /// Spenders not to read: the LSP's own claims, and those read already.
    pub(super) skip: BTreeSet<Txid>,
}

/// What one pass looks at.
#[derive(Debug, Default)]
pub(super) struct Work {
    /// Channels whose factory or channel output may go on chain.
    pub(super) watched: Vec<Watched>,
    /// Claims not yet confirmed (broadcast again), with the txids of the versions they replaced.
    pub(super) claims: Vec<(ChannelId, Transaction, Vec<Txid>)>,
    /// Channels the LSP is taking on chain.
    pub(super) walks: Vec<(ChannelId, Walk)>,
    /// Key-path closes not yet confirmed.
    pub(super) closes: Vec<(FactoryId, Transaction)>,
    /// Sweeps of what moved members left in a tree on chain, not yet confirmed.
    pub(super) sweeps: Vec<super::sweep::SweepWork>,
    /// Commitments on chain that may reveal a preimage.
    pub(super) hunts: Vec<Hunt>,
}

impl Work {
    fn is_empty(&self) -> bool {
        self.watched.is_empty()
            && self.claims.is_empty()
            && self.hunts.is_empty()
            && self.sweeps.is_empty()
    }
}

/// Why a channel stopped routing (shown to the operator and to the wallet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Closing {
    /// The factory is past its routing deadline (its timeout less the longest HTLC).
    Expired,
    /// The factory's funding output is spent.
    FactoryOnChain {
        /// What spent it.
        spender: Txid,
    },
    /// The channel output is spent.
    ChannelOnChain {
        /// What spent it.
        spender: Txid,
    },
    /// A payment was not settled by its deadline: the LSP is taking the channel on chain.
    Overdue {
        /// The deadline that passed.
        deadline: bitcoin::absolute::Height,
    },
    /// The wallet moved everything out and released its factory key (`shared::lifecycle`).
    Released,
    /// The factory nears its timeout with the channel still in it: the LSP is closing it on
    /// chain (`retire.rs`).
    Retired,
}

impl Closing {
    /// The state's name for the admin view.
    pub(super) fn state(&self) -> &'static str {
        match self {
            Closing::Expired => "expired",
            Closing::FactoryOnChain { .. } | Closing::Overdue { .. } | Closing::Retired => {
                "closing"
            }
            Closing::ChannelOnChain { .. } => "closed",
            Closing::Released => "moved",
        }
    }

    /// Why it takes no payment, in words.
    pub(super) fn describe(&self) -> String {
        match self {
            Closing::Expired => {
                "its factory is too close to its timeout for a payment to settle safely".into()
            }
            Closing::FactoryOnChain { spender } => {
                format!("its factory's funding output was spent on chain (by {spender})")
            }
            Closing::ChannelOnChain { spender } => {
                format!("it was closed on chain (by {spender})")
            }
            Closing::Overdue { deadline } => format!(
                "a payment on it was not settled by block {deadline}; the provider is closing it on chain"
            ),
            Closing::Released => {
                "its wallet moved its balance to a newer factory and released this one's key".into()
            }
            Closing::Retired => "its factory is near its timeout and the channel was not moved to \
                 a newer one; the provider is closing it on chain, paying your balance to your \
                 own key"
                .into(),
        }
    }
}

/// What a claim of the LSP's takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClaimOf {
    /// An output of a commitment on chain (`Channel::claims_for`).
    Commitment(shared::channel::ClaimKind),
    /// The L-stock of the leaf the channel lives on (`LeafState::lstock_sweep`).
    LStock,
}

impl ClaimOf {
    /// Its name in the admin view (`Penalty`, `ToLocal`, `HtlcSuccess { .. }`, `LStock`, ...).
    pub(super) fn name(&self) -> String {
        match self {
            ClaimOf::Commitment(kind) => format!("{kind:?}"),
            ClaimOf::LStock => "LStock".into(),
        }
    }
}

/// A claim the LSP made from a channel's transactions on chain, broadcast until it confirms.
#[derive(Debug, Clone)]
pub(super) struct Claim {
    /// What it takes.
    pub(super) kind: ClaimOf,
    /// The signed transaction.
    pub(super) tx: Transaction,
    /// Whether it confirmed (this version or an earlier one).
    pub(super) confirmed: bool,
    /// The txids of the versions it replaced (signed again at a higher rate), any of which may
    /// still be the one that confirms.
    pub(super) earlier: Vec<Txid>,
}

/// The rate a claim on `channel`'s commitment is signed at: signed now, so priced for today
/// (`urgent`, what a response must pay to confirm soon), and at least the channel's own rate
/// and 2 sat/vB.
fn claim_rate(channel: &shared::channel::Channel, urgent: bitcoin::FeeRate) -> bitcoin::FeeRate {
    channel
        .spec()
        .feerate
        .max(bitcoin::FeeRate::from_sat_per_vb_u32(2))
        .max(urgent)
}

/// Runs one pass in the background, unless one is still running.
pub(super) fn spawn_pass(
    esplora: AsyncClient,
    publisher: Arc<Publisher>,
    running: Arc<AtomicBool>,
    work: Work,
    report: mpsc::UnboundedSender<Seen>,
) {
    if work.is_empty() || running.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async move {
        let target = if work.walks.is_empty()
            && work.claims.is_empty()
            && work.closes.is_empty()
            && work.sweeps.is_empty()
        {
            None
        } else {
            publisher.target().await
        };
        if let Some(rate) = target {
            let _ = report.send(Seen::FeeRate(rate));
        }
        for (id, walk) in &work.walks {
            walk::step(&esplora, &publisher, target, *id, walk).await;
        }
        for (factory, tx) in &work.closes {
            super::release::step(&esplora, *factory, tx, &report).await;
        }
        for sweep in &work.sweeps {
            super::sweep::step(&esplora, sweep, &report).await;
        }
        for hunt in &work.hunts {
            look_for_preimages(&esplora, hunt, &report).await;
        }
        pass(
            &esplora,
            &publisher,
            target,
            work.watched,
            work.claims,
            &report,
        )
        .await;
        running.store(false, Ordering::Release);
    });
}

/// Reads what spent the outputs of `hunt`'s commitment (but the LSP's own claims) and reports
/// every preimage they reveal.
async fn look_for_preimages(
    esplora: &AsyncClient,
    hunt: &Hunt,
    report: &mpsc::UnboundedSender<Seen>,
) {
    let Some(outspends) = read("outspends", esplora.get_tx_outspends(&hunt.commitment)).await
    else {
        return;
    };
    let spenders: BTreeSet<Txid> = outspends
        .into_iter()
        .filter(|o| o.spent)
        .filter_map(|o| o.txid)
        .filter(|t| !hunt.skip.contains(t))
        .collect();
    for txid in spenders {
        let Some(Some(tx)) = read("spending tx", esplora.get_tx(&txid)).await else {
            continue;
        };
        let _ = report.send(Seen::Scanned(txid));
        for preimage in shared::channel::claim::revealed_preimages(&tx, &hunt.hashes).into_values()
        {
            let _ = report.send(Seen::Preimage {
                id: hunt.id,
                preimage,
            });
        }
    }
}

/// Reads `f`'s answer within [`READ_TIMEOUT`]; a failure or timeout is `None`.
pub(crate) async fn read<T, E: std::fmt::Display>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Option<T> {
    match tokio::time::timeout(READ_TIMEOUT, f).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, what, "channel watch: Esplora read failed");
            None
        }
        Err(_) => {
            tracing::warn!(what, "channel watch: Esplora did not answer in time");
            None
        }
    }
}

/// The transaction that spent `out` in a confirmed block, and that block's height: `None`
/// while `out` is unspent or spent only in the mempool, or when Esplora cannot say (the next
/// pass asks again).
pub(super) async fn confirmed_spend(
    esplora: &AsyncClient,
    out: OutPoint,
    what: &'static str,
) -> Option<(Txid, u32)> {
    let status = read(
        what,
        esplora.get_output_status(&out.txid, u64::from(out.vout)),
    )
    .await??;
    let height = status.status.and_then(|s| s.block_height);
    match (status.spent, status.txid, height) {
        (true, Some(spender), Some(height)) => Some((spender, height)),
        _ => None,
    }
}

/// The transaction spending `out`, if Esplora says it is spent.
async fn spender(esplora: &AsyncClient, out: OutPoint) -> Option<Txid> {
    let status = read(
        "outspend",
        esplora.get_output_status(&out.txid, u64::from(out.vout)),
    )
    .await??;
    status.spent.then_some(status.txid).flatten()
}

async fn pass(
    esplora: &AsyncClient,
    publisher: &Publisher,
    mut target: Option<bitcoin::FeeRate>,
    watched: Vec<Watched>,
    claims: Vec<(ChannelId, Transaction, Vec<Txid>)>,
    report: &mpsc::UnboundedSender<Seen>,
) {
    let mut by_factory: BTreeMap<(FactoryId, OutPoint), Vec<Watched>> = BTreeMap::new();
    for w in watched {
        by_factory
            .entry((w.id.factory, w.funding))
            .or_default()
            .push(w);
    }
    for ((factory, funding), channels) in by_factory {
        let Some(by) = spender(esplora, funding).await else {
            continue; // off chain (or unknown this pass)
        };
        let _ = report.send(Seen::FactorySpent {
            factory,
            spender: by,
        });
        for w in channels {
            let Some(by) = spender(esplora, w.channel).await else {
                continue;
            };
            if let Some(Some(tx)) = read("spending tx", esplora.get_tx(&by)).await {
                // The claims are signed on this report: today's rate goes first (read now if
                // this pass had no walk or claim to read it for).
                if target.is_none() {
                    target = publisher.target().await;
                    if let Some(rate) = target {
                        let _ = report.send(Seen::FeeRate(rate));
                    }
                }
                let _ = report.send(Seen::ChannelSpent {
                    id: w.id,
                    tx: Box::new(tx),
                });
            }
        }
    }
    'claims: for (id, tx, earlier) in claims {
        // A version it replaced may be the one a block took.
        for old in earlier {
            if let Some(status) = read("claim status", esplora.get_tx_status(&old)).await {
                if status.confirmed {
                    let _ = report.send(Seen::ClaimConfirmed { id, txid: old });
                    continue 'claims;
                }
            }
        }
        let txid = tx.compute_txid();
        match read("claim status", esplora.get_tx_status(&txid)).await {
            Some(status) if status.confirmed => {
                let _ = report.send(Seen::ClaimConfirmed { id, txid });
            }
            // Unconfirmed, or unknown to Esplora (which may answer "not found" as an error).
            _ => match tokio::time::timeout(READ_TIMEOUT, esplora.broadcast(&tx)).await {
                Ok(Ok(())) => tracing::info!(channel = %id, %txid, "claim broadcast"),
                // Most often its lock has not passed yet (or it is in the mempool already).
                Ok(Err(e)) => {
                    tracing::debug!(channel = %id, %txid, error = %e, "claim not accepted yet")
                }
                Err(_) => tracing::warn!(channel = %id, %txid, "claim broadcast timed out"),
            },
        }
    }
}

/// The router's side of the watch.
pub(super) struct ChainWatch {
    running: Arc<AtomicBool>,
    last: Option<std::time::Instant>,
    report: mpsc::UnboundedSender<Seen>,
    /// Taken by [`super::Router::run`].
    pub(super) seen: Option<mpsc::UnboundedReceiver<Seen>>,
    /// Channels the LSP is taking on chain, until their channel output is spent.
    pub(super) walks: BTreeMap<ChannelId, Walk>,
    /// Key-path closes of factories every member left, until confirmed.
    pub(super) closes: BTreeMap<FactoryId, Transaction>,
    /// Sweeps of what moved members left in factories whose tree went on chain (`None`: no
    /// member of it moved).
    pub(super) sweeps: BTreeMap<FactoryId, Option<super::sweep::Sweeping>>,
    /// Sends pre-signed transactions at today's fee (anchor children from the LSP's wallet).
    publisher: Arc<Publisher>,
    /// Today's rate for a transaction that must confirm soon, as the last pass read it: the
    /// least the LSP's claims pay.
    pub(super) urgent_rate: bitcoin::FeeRate,
    /// Preimages learned from payees' claims on chain ([`Hunt`]) and from swap claims
    /// (`swap`): any channel on chain with such an HTLC is claimed with them.
    learned: BTreeMap<sha256::Hash, [u8; 32]>,
    /// Spenders of commitments' outputs already read for preimages.
    scanned: BTreeSet<Txid>,
    /// Channels whose walk could not start (no signed path), and when: tried again a minute
    /// later.
    pub(super) retire_failed: BTreeMap<ChannelId, std::time::Instant>,
    /// Channels the LSP started taking on chain because their factory nears its timeout.
    pub(super) retired: BTreeSet<ChannelId>,
    /// Factories closed (or closing) by key path: nothing of theirs is walked.
    pub(super) key_closed: BTreeSet<FactoryId>,
    /// Moved channels whose sweep could not be made (`sweep.rs`): walked instead, asked again
    /// every pass until the walk starts.
    pub(super) unswept: BTreeSet<ChannelId>,
}

impl ChainWatch {
    /// A watch paying fee bumps from `wallet`.
    pub(super) fn new(wallet: Arc<crate::wallet::LspWallet>) -> Self {
        let (report, seen) = mpsc::unbounded_channel();
        ChainWatch {
            publisher: Arc::new(Publisher::new(wallet)),
            urgent_rate: bitcoin::FeeRate::BROADCAST_MIN,
            running: Arc::default(),
            last: None,
            report,
            seen: Some(seen),
            walks: BTreeMap::new(),
            closes: BTreeMap::new(),
            sweeps: BTreeMap::new(),
            learned: BTreeMap::new(),
            scanned: BTreeSet::new(),
            retire_failed: BTreeMap::new(),
            retired: BTreeSet::new(),
            key_closed: BTreeSet::new(),
            unswept: BTreeSet::new(),
        }
    }
}

/// How often a pass starts.
const PASS_EVERY: Duration = Duration::from_secs(2);

impl super::Router {
    /// Every [`PASS_EVERY`], a pass over every channel still open on chain and every claim
    /// not yet confirmed; and channels past their routing deadline stop routing.
    pub(super) fn watch_channels(&mut self) {
        if self.chain.last.is_some_and(|t| t.elapsed() < PASS_EVERY) {
            return;
        }
        self.chain.last = Some(std::time::Instant::now());
        let height = self.height;
        let expired: Vec<ChannelId> = self
            .links
            .values()
            .filter(|l| l.closing.is_none() && height > l.routable_until)
            .map(|l| l.id)
            .collect();
        for id in expired {
            self.close_link(id, Closing::Expired);
        }
        self.retire_old_channels();
        let watched = self
            .links
            .values()
            .filter(|l| !matches!(l.closing, Some(Closing::ChannelOnChain { .. })))
            .map(|l| Watched {
                id: l.id,
                funding: l.funding,
                channel: l.leaf.latest().channel_outpoint(),
            })
            .collect();
        self.reprice_claims();
        let claims = self
            .links
            .values()
            .flat_map(|l| {
                l.claims
                    .iter()
                    .filter(|c| !c.confirmed)
                    .map(|c| (l.id, c.tx.clone(), c.earlier.clone()))
            })
            .collect();
        let walks = self
            .chain
            .walks
            .iter()
            .map(|(id, w)| (*id, w.clone()))
            .collect();
        self.reprice_closes();
        let closes = self
            .chain
            .closes
            .iter()
            .map(|(f, tx)| (*f, tx.clone()))
            .collect();
        let sweeps = self.sweep_work();
        let work = Work {
            watched,
            claims,
            walks,
            closes,
            sweeps,
            hunts: self.hunts(),
        };
        spawn_pass(
            self.esplora.clone(),
            self.chain.publisher.clone(),
            self.chain.running.clone(),
            work,
            self.chain.report.clone(),
        );
    }

    /// Every commitment on chain carrying HTLCs the LSP offered and has no preimage for.
    fn hunts(&self) -> Vec<Hunt> {
        self.links
            .values()
            .filter_map(|l| {
                let commitment = l.on_chain.as_ref()?.compute_txid();
                let hashes: BTreeSet<sha256::Hash> = self
                    .forwards
                    .offered_on(l.id)
                    .into_iter()
                    .map(|(_, hash)| hash)
                    .collect();
                let skip = l
                    .claims
                    .iter()
                    .map(|c| c.tx.compute_txid())
                    .chain(self.chain.scanned.iter().copied())
                    .collect();
                (!hashes.is_empty()).then_some(Hunt {
                    id: l.id,
                    commitment,
                    hashes,
                    skip,
                })
            })
            .collect()
    }

    /// Acts on what a pass saw.
    pub(super) fn on_seen(&mut self, seen: Seen) {
        match seen {
            Seen::FactorySpent { factory, spender } => {
                let ids: Vec<ChannelId> = self
                    .links
                    .values()
                    .filter(|l| l.id.factory == factory)
                    .filter(|l| matches!(l.closing, None | Some(Closing::Expired)))
                    .map(|l| l.id)
                    .collect();
                for id in ids {
                    self.close_link(id, Closing::FactoryOnChain { spender });
                }
                self.plan_sweeps(factory);
            }
            Seen::SweepDescend { factory, node } => self.sweep_descend(factory, node),
            Seen::SweepConfirmed {
                factory,
                node,
                tx,
                height,
            } => self.sweep_confirmed(factory, node, &tx, height),
            Seen::SweepLost {
                factory,
                node,
                spender,
            } => self.sweep_lost(factory, node, spender),
            Seen::ChannelSpent { id, tx } => self.on_channel_spent(id, &tx),
            Seen::CloseConfirmed {
                factory,
                tx,
                height,
            } => self.on_close_confirmed(factory, &tx, height),
            Seen::CloseLost { factory, spender } => self.close_lost(factory, spender),
            Seen::FeeRate(rate) => self.chain.urgent_rate = rate,
            Seen::Scanned(txid) => {
                self.chain.scanned.insert(txid);
            }
            Seen::Preimage { id, preimage } => self.on_revealed(id, preimage),
            Seen::ClaimConfirmed { id, txid } => {
                let mut timed_out = Vec::new();
                if let Some(link) = self.links.get_mut(&id) {
                    for c in link
                        .claims
                        .iter_mut()
                        .filter(|c| c.tx.compute_txid() == txid || c.earlier.contains(&txid))
                    {
                        if !c.confirmed {
                            tracing::warn!(channel = %id, %txid, kind = c.kind.name(), "claim confirmed");
                        }
                        c.confirmed = true;
                        if let ClaimOf::Commitment(shared::channel::ClaimKind::HtlcTimeout {
                            offerer: shared::channel::Side::Lsp,
                            id: htlc,
                        }) = c.kind
                        {
                            timed_out.push(htlc);
                        }
                    }
                }
                // The payee never claimed the LSP's HTLC: the LSP has it back, so the payment
                // fails back to its payer.
                for htlc in timed_out {
                    if let Some(row) = self.forwards.outgoing_row(id, htlc) {
                        self.fail_forward(
                            row,
                            shared::pay::PayFailure::ChannelClosed {
                                reason: "the payee did not claim it on chain in time; it came back to the provider".into(),
                            },
                        );
                    }
                }
            }
        }
    }

    fn on_channel_spent(&mut self, id: ChannelId, tx: &Transaction) {
        let spender = tx.compute_txid();
        self.chain.walks.remove(&id);
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if link.closing == Some(Closing::ChannelOnChain { spender }) {
            return;
        }
        link.claims.clear();
        link.on_chain = None;
        let preimages = self.known_preimages();
        match self.claim_from(id, tx, &preimages) {
            Ok(()) => {
                if let Some(link) = self.links.get_mut(&id) {
                    link.on_chain = Some(Box::new(tx.clone()));
                }
            }
            Err(e) => {
                tracing::warn!(channel = %id, %spender, error = %e, "the channel output was spent by a transaction that is not a commitment (a cooperative close?)")
            }
        }
        // The channel output is spent, so the leaf it lives on is on chain: its L-stock is the
        // LSP's after `lstock_csv`.
        self.claim_lstock(id, tx);
        self.close_link(id, Closing::ChannelOnChain { spender });
    }

    /// Adds the claim of the L-stock of the leaf state of `id` whose channel output `spender`
    /// spends (so that leaf is on chain), unless it has one or the L-stock would not pay its
    /// fee.
    fn claim_lstock(&mut self, id: ChannelId, spender: &Transaction) {
        let (path, secret) = match self.member_path(id) {
            Ok((_, path, secret)) => (path, secret),
            Err(e) => {
                tracing::error!(channel = %id, error = %e, "cannot claim the leaf's L-stock");
                return;
            }
        };
        let rate = self
            .chain
            .urgent_rate
            .max(bitcoin::FeeRate::from_sat_per_vb_u32(2));
        let sweep_to = self.settings.sweep_to.clone();
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if link.claims.iter().any(|c| c.kind == ClaimOf::LStock) {
            return;
        }
        let spent: BTreeSet<OutPoint> = spender.input.iter().map(|i| i.previous_output).collect();
        let Some(state) = link
            .leaf
            .states()
            .iter()
            .find(|s| spent.contains(&s.channel_outpoint()))
        else {
            return;
        };
        match state.lstock_sweep(&path, &secret, sweep_to, rate) {
            Ok(Some(tx)) => link.claims.push(Claim {
                kind: ClaimOf::LStock,
                tx,
                confirmed: false,
                earlier: Vec::new(),
            }),
            Ok(None) => {
                tracing::info!(channel = %id, "the leaf's L-stock would not pay its own fee; left")
            }
            Err(e) => tracing::error!(channel = %id, error = %e, "cannot claim the leaf's L-stock"),
        }
    }

    /// Adds to `id`'s claims every claim from its commitment `tx` it does not have yet.
    fn claim_from(
        &mut self,
        id: ChannelId,
        tx: &Transaction,
        preimages: &BTreeMap<sha256::Hash, [u8; 32]>,
    ) -> Result<(), shared::channel::ChannelError> {
        let urgent = self.chain.urgent_rate;
        let Some(link) = self.links.get_mut(&id) else {
            return Ok(());
        };
        let feerate = claim_rate(&link.channel, urgent);
        let claims = link
            .channel
            .claims_for(tx, &self.settings.sweep_to, feerate, preimages)?;
        let new: Vec<Claim> = claims
            .into_iter()
            .map(|(kind, tx)| (ClaimOf::Commitment(kind), tx))
            .filter(|(kind, _)| link.claims.iter().all(|c| c.kind != *kind))
            .map(|(kind, tx)| Claim {
                kind,
                tx,
                confirmed: false,
                earlier: Vec::new(),
            })
            .collect();
        if !new.is_empty() {
            tracing::warn!(
                channel = %id, spender = %tx.compute_txid(),
                claims = ?new.iter().map(|c| c.kind.name()).collect::<Vec<_>>(),
                "a commitment of the channel is on chain; claiming what is the LSP's"
            );
        }
        link.claims.extend(new);
        Ok(())
    }

    /// Signs again, at today's urgent rate, every unconfirmed claim on a commitment that pays
    /// 1 sat/vB or more below it (BIP-125's increment), so a penalty or an HTLC claim that
    /// races the other side's path keeps paying what the network takes while it waits. Each
    /// replaced version's txid is kept: any of them may be the one that confirms.
    fn reprice_claims(&mut self) {
        let urgent = self.chain.urgent_rate;
        let enough = shared::fees::replaceable_below(urgent);
        let preimages = self.known_preimages();
        let sweep_to = self.settings.sweep_to.clone();
        for link in self.links.values_mut() {
            let Some(commitment) = link.on_chain.as_deref() else {
                continue;
            };
            let commitment_txid = commitment.compute_txid();
            // What a claim on the commitment pays per weight unit (`None`: not such a claim).
            let rate_of = |tx: &Transaction| -> Option<bitcoin::FeeRate> {
                let spent = tx.input.iter().try_fold(bitcoin::Amount::ZERO, |sum, i| {
                    let out = commitment.output.get(i.previous_output.vout as usize)?;
                    (i.previous_output.txid == commitment_txid).then_some(sum + out.value)
                })?;
                Some(shared::fees::rate_paid(tx, spent))
            };
            let cheap = |c: &Claim| {
                !c.confirmed
                    && matches!(c.kind, ClaimOf::Commitment(_))
                    && rate_of(&c.tx).is_some_and(|r| r < enough)
            };
            if !link.claims.iter().any(cheap) {
                continue;
            }
            let rate = claim_rate(&link.channel, urgent);
            let fresh = match link
                .channel
                .claims_for(commitment, &sweep_to, rate, &preimages)
            {
                Ok(fresh) => fresh,
                Err(e) => {
                    tracing::warn!(channel = %link.id, error = %e, "cannot sign the claims again");
                    continue;
                }
            };
            for (kind, tx) in fresh {
                let Some(claim) = link
                    .claims
                    .iter_mut()
                    .find(|c| c.kind == ClaimOf::Commitment(kind) && !c.confirmed)
                else {
                    continue;
                };
                // Only a claim that pays less than the new version (one signed at a higher
                // rate earlier stays).
                if rate_of(&claim.tx) >= rate_of(&tx) {
                    continue;
                }
                let old = claim.tx.compute_txid();
                tracing::info!(channel = %link.id, %old, new = %tx.compute_txid(), %rate, kind = claim.kind.name(), "a claim signed again at today's rate");
                claim.earlier.push(old);
                claim.tx = tx;
            }
        }
    }

    /// A payee's claim on chain revealed `preimage` of an HTLC the LSP offered on `id`: the
    /// payment settles upstream as if the payee had said it, and every channel on chain claims
    /// what the preimage opens (a payer's HTLC on its commitment).
    fn on_revealed(&mut self, id: ChannelId, preimage: [u8; 32]) {
        let hash = sha256::Hash::hash(&preimage);
        for (htlc, _) in self
            .forwards
            .offered_on(id)
            .into_iter()
            .filter(|(_, h)| *h == hash)
        {
            tracing::warn!(channel = %id, htlc, %hash, "a payee claimed an HTLC on chain: settling its payment with the preimage it revealed");
            self.on_preimage(id, htlc, preimage);
        }
        self.learn_preimage(preimage);
    }

    /// A preimage the chain revealed: every channel on chain claims what it opens (a payer's
    /// HTLC on its commitment), now and whenever a commitment goes on chain later.
    pub(super) fn learn_preimage(&mut self, preimage: [u8; 32]) {
        let hash = sha256::Hash::hash(&preimage);
        if self.chain.learned.insert(hash, preimage).is_some() {
            return;
        }
        let preimages = self.known_preimages();
        let on_chain: Vec<(ChannelId, Box<Transaction>)> = self
            .links
            .values()
            .filter_map(|l| l.on_chain.clone().map(|tx| (l.id, tx)))
            .collect();
        for (id, tx) in on_chain {
            if let Err(e) = self.claim_from(id, &tx, &preimages) {
                tracing::error!(channel = %id, error = %e, "cannot claim again from its commitment");
            }
        }
    }

    /// Stops `id` routing: its round ends, its wallet is told why, and nothing is offered on
    /// it again.
    pub(super) fn close_link(&mut self, id: ChannelId, why: Closing) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        tracing::warn!(channel = %id, reason = %why.describe(), "channel takes no more payments");
        link.channel.reset_round();
        link.round_since = None;
        link.advance = None;
        link.ready = None;
        link.closing = Some(why);
        let identity = link.identity;
        if let Some(conn) = self.online.get(&identity) {
            self.tell_closed(*conn, id);
        }
    }

    /// Tells connection `conn` that channel `id` takes no more payments, and why.
    pub(super) fn tell_closed(&self, conn: ConnId, id: ChannelId) {
        let Some(closing) = self.links.get(&id).and_then(|l| l.closing.as_ref()) else {
            return;
        };
        let msg = shared::pay::ChannelClosed {
            channel: id,
            state: closing.state().into(),
            reason: closing.describe(),
        };
        self.send_conn(conn, shared::wire::WireMsg::ChannelClosed(msg));
        // Payments of the wallet's that the LSP settled with a preimage but that no round will
        // ever commit now: the wallet hears "paid" (again, if it missed it while away).
        let Some(link) = self.links.get(&id) else {
            return;
        };
        let known = link.channel.known_preimages();
        for h in link
            .channel
            .spec()
            .htlcs
            .iter()
            .filter(|h| h.offerer == shared::channel::Side::Client)
        {
            if let Some(preimage) = known.get(&h.hash) {
                let result = shared::pay::PayResult {
                    channel: id,
                    htlc: h.id,
                    hash: h.hash,
                    outcome: shared::pay::PayOutcome::Paid {
                        preimage: *preimage,
                        fee: bitcoin::Amount::ZERO,
                        network_fee: None,
                    },
                };
                self.send_conn(conn, shared::wire::WireMsg::PayResult(result));
            }
        }
    }

    /// Every preimage the LSP knows, from any channel's updates and from payees' claims on chain
    /// (an HTLC it forwarded can then be claimed with the preimage its payee revealed).
    fn known_preimages(&self) -> BTreeMap<sha256::Hash, [u8; 32]> {
        self.links
            .values()
            .flat_map(|l| l.channel.known_preimages())
            .chain(self.chain.learned.clone())
            .collect()
    }
}
