//! Partial cooperation: the parts of a factory's tree every member below left come back to the
//! LSP by key path (`shared::lifecycle::released_frontier`, spec in `docs/protocol.md`,
//! "Partial cooperation").
//!
//! A factory whose members did not all move cannot close by key path. Once its funding output
//! is spent by its tree (a member's own exit, the LSP's walk before the timeout, or a released
//! member publishing the old tree over the close), the LSP plans, with nobody pressing a
//! button, one key-path spend per highest subtree whose members all released their keys. It
//! waits for the transaction that creates each such subtree's output, signs the spend at
//! today's rate, stores it before the first broadcast and broadcasts it every pass until it
//! confirms. The moved channels below are never walked: one transaction replaces their leaves,
//! commitments and claims.
//!
//! If a member got the subtree's own tree transaction mined first, the plan goes one level down
//! (its outputs are swept instead). If that transaction was the moved member's leaf, or
//! anything else took the output, the LSP walks the channels below to its commitments, as it
//! did before this existed (`retire.rs`). The plan holds no state the chain and SQLite cannot
//! give back: a restart plans again and finds the stored sweeps.

use std::collections::{BTreeMap, BTreeSet};

use bitcoin::secp256k1::SecretKey;
use bitcoin::{OutPoint, Transaction, Txid};
use esplora_client::AsyncClient;
use shared::lifecycle::{build_sweep, children, released_frontier, sign_sweep};
use shared::pay::ChannelId;
use shared::tree::{FactoryTree, NodeKind};
use shared::types::{ClientId, FactoryId, NodeId};
use tokio::sync::mpsc;

use super::onchain::{confirmed_spend, read, Seen};
use super::Router;
use crate::factory::{factory_key, unix_now};

/// One factory's sweeps.
pub(super) struct Sweeping {
    /// Its tree, unsigned (txids do not depend on signatures).
    tree: std::sync::Arc<FactoryTree>,
    released: BTreeMap<ClientId, SecretKey>,
    targets: BTreeMap<NodeId, Target>,
}

/// The output one node of the tree would spend, to be swept.
#[derive(Debug, Default)]
struct Target {
    /// The signed sweep (none yet, or never for the funding output: that is the close's).
    tx: Option<Transaction>,
    confirmed: bool,
}

/// What a pass checks of one target.
#[derive(Debug, Clone)]
pub(super) struct SweepWork {
    factory: FactoryId,
    node: NodeId,
    /// The output it sweeps.
    input: OutPoint,
    /// The tree transaction that would spend it.
    node_txid: Txid,
    sweep: Option<Transaction>,
}

/// One pass over a target: once the output exists, reads what spent it. The tree's own
/// transaction: go one level down. A one-output spend (only the LSP, holding every key below,
/// signs one): confirmed. Anything else: lost. Unspent: broadcast the sweep (again).
pub(super) async fn step(
    esplora: &AsyncClient,
    work: &SweepWork,
    report: &mpsc::UnboundedSender<Seen>,
) {
    let (factory, node) = (work.factory, work.node);
    let Some(parent) = read("sweep parent", esplora.get_tx_status(&work.input.txid)).await else {
        return;
    };
    if !parent.confirmed {
        return;
    }
    if let Some((spender, height)) = confirmed_spend(esplora, work.input, "sweep outspend").await {
        if spender == work.node_txid {
            let _ = report.send(Seen::SweepDescend { factory, node });
            return;
        }
        let Some(Some(tx)) = read("sweep spender", esplora.get_tx(&spender)).await else {
            return;
        };
        let _ = report.send(if tx.input.len() == 1 && tx.output.len() == 1 {
            Seen::SweepConfirmed {
                factory,
                node,
                tx: Box::new(tx),
                height,
            }
        } else {
            Seen::SweepLost {
                factory,
                node,
                spender,
            }
        });
        return;
    }
    if let Some(tx) = &work.sweep {
        let txid = tx.compute_txid();
        match tokio::time::timeout(super::onchain::READ_TIMEOUT, esplora.broadcast(tx)).await {
            Ok(Ok(())) => tracing::info!(%factory, ?node, %txid, "sweep broadcast"),
            Ok(Err(e)) => tracing::debug!(%factory, ?node, %txid, error = %e, "sweep not accepted"),
            Err(_) => tracing::warn!(%factory, ?node, %txid, "sweep broadcast timed out"),
        }
    }
}

impl Router {
    /// `factory`'s funding output is spent, not by its close: plans the sweep of every part of
    /// its tree whose members all released their keys (once; again after a restart).
    pub(super) fn plan_sweeps(&mut self, factory: FactoryId) {
        if self.chain.sweeps.contains_key(&factory) || self.chain.key_closed.contains(&factory) {
            return;
        }
        let released = self.released_in(factory);
        if released.is_empty() {
            // Nothing to sweep, and no key is taken once the tree is going on chain
            // (`release.rs`): not asked again.
            self.chain.sweeps.insert(factory, None);
            return;
        }
        let tree = match self.funded_tree(factory) {
            Ok(tree) => tree,
            Err(e) => {
                tracing::error!(%factory, error = %e, "cannot plan the sweeps of the factory");
                return;
            }
        };
        let ids: BTreeSet<ClientId> = released.keys().copied().collect();
        let mut targets: BTreeMap<NodeId, Target> = released_frontier(&tree, &ids)
            .into_iter()
            .map(|node| (node, Target::default()))
            .collect();
        match self.store.sweeps(factory) {
            Ok(stored) => {
                for (node, tx, height) in stored {
                    targets.insert(
                        node,
                        Target {
                            tx: Some(tx),
                            confirmed: height.is_some(),
                        },
                    );
                }
            }
            Err(e) => tracing::error!(%factory, error = %e, "cannot read the factory's sweeps"),
        }
        tracing::info!(%factory, released = ids.len(), subtrees = targets.len(), "the factory's tree is going on chain: sweeping what its moved members left");
        self.chain.sweeps.insert(
            factory,
            Some(Sweeping {
                tree,
                released,
                targets,
            }),
        );
    }

    /// What this pass checks: every target not confirmed, each signed (at today's rate, again
    /// when that rose by 1 sat/vB) and stored before it is first broadcast.
    pub(super) fn sweep_work(&mut self) -> Vec<SweepWork> {
        let rate = self.close_rate();
        let enough = shared::fees::replaceable_below(rate);
        let mut work = Vec::new();
        let plans = self
            .chain
            .sweeps
            .iter_mut()
            .filter_map(|(f, p)| Some((f, p.as_mut()?)));
        for (factory, plan) in plans {
            let proposal = plan.tree.proposal();
            for (id, target) in plan.targets.iter_mut().filter(|(_, t)| !t.confirmed) {
                let Some(node) = plan.tree.node(*id) else {
                    continue;
                };
                let input = node.spent_outpoint();
                // Unsigned, or paying less than today's rate allows to replace (what it pays is read
                // from the transaction, so a restart re-prices too).
                let due = input != proposal.funding_outpoint
                    && target
                        .tx
                        .as_ref()
                        .is_none_or(|tx| shared::fees::rate_paid(tx, node.prevout.value) < enough);
                if due {
                    let secret = factory_key(&self.key, *factory);
                    let signed = build_sweep(node, &self.settings.sweep_to, rate).and_then(|tx| {
                        sign_sweep(
                            &mut rand::thread_rng(),
                            proposal,
                            node,
                            tx,
                            &secret,
                            &plan.released,
                        )
                    });
                    match signed {
                        Ok(tx) => match self.store.put_sweep(
                            *factory,
                            *id,
                            &tx,
                            node.prevout.value,
                            unix_now(),
                        ) {
                            Ok(()) => target.tx = Some(tx),
                            Err(e) => {
                                tracing::error!(%factory, node = ?id, error = %e, "cannot store the sweep; not broadcast")
                            }
                        },
                        Err(e) => {
                            tracing::error!(%factory, node = ?id, error = %e, "cannot sign the sweep")
                        }
                    }
                }
                work.push(SweepWork {
                    factory: *factory,
                    node: *id,
                    input,
                    node_txid: node.txid(),
                    sweep: target.tx.clone(),
                });
            }
        }
        work
    }

    /// The tree transaction of `node` confirmed (a member published it): its outputs are swept
    /// instead; below a moved member's leaf there is nothing to sweep, so its channel is
    /// walked to the LSP's commitment.
    pub(super) fn sweep_descend(&mut self, factory: FactoryId, node: NodeId) {
        let Some(Some(plan)) = self.chain.sweeps.get_mut(&factory) else {
            return;
        };
        if plan.targets.remove(&node).is_none() {
            return;
        }
        // Its sweep, if one was signed, can never confirm now.
        if let Err(e) = self.store.drop_sweep(factory, node) {
            tracing::error!(%factory, ?node, error = %e, "cannot forget the sweep");
        }
        let below = children(&plan.tree, node);
        tracing::info!(%factory, ?node, below = below.len(), "a tree transaction above a sweep confirmed: sweeping one level down");
        for child in &below {
            plan.targets.entry(*child).or_default();
        }
        if below.is_empty() {
            if let Some(NodeKind::Leaf { client, .. }) = plan.tree.node(node).map(|n| n.kind) {
                // A moved member's leaf went on chain: its channel is walked (`retire.rs`).
                self.chain.unswept.insert(ChannelId { factory, client });
            }
        }
    }

    /// A sweep confirmed (`tx`: the version that did).
    pub(super) fn sweep_confirmed(
        &mut self,
        factory: FactoryId,
        node: NodeId,
        tx: &Transaction,
        height: u32,
    ) {
        let Some(Some(plan)) = self.chain.sweeps.get_mut(&factory) else {
            return;
        };
        let Some(target) = plan.targets.get_mut(&node) else {
            return;
        };
        if target.tx.is_none() {
            // The funding output, taken by the factory's close.
            plan.targets.remove(&node);
            return;
        }
        target.confirmed = true;
        if let Err(e) = self.store.sweep_confirmed(factory, node, tx, height) {
            tracing::error!(%factory, ?node, error = %e, "cannot record the sweep's confirmation");
        }
        tracing::info!(%factory, ?node, txid = %tx.compute_txid(), amount = %tx.output[0].value, height, "sweep confirmed: what the moved members left is back");
    }

    /// Something else spent a target's output: the LSP walks the channels below to its
    /// commitments.
    pub(super) fn sweep_lost(&mut self, factory: FactoryId, node: NodeId, spender: Txid) {
        let Some(Some(plan)) = self.chain.sweeps.get_mut(&factory) else {
            return;
        };
        let Some(signers) = plan
            .targets
            .remove(&node)
            .and(plan.tree.node(node).map(|n| n.signers))
        else {
            return;
        };
        tracing::warn!(%factory, ?node, %spender, "a sweep's output was spent by something else: walking the channels below");
        if let Err(e) = self.store.drop_sweep(factory, node) {
            tracing::error!(%factory, ?node, error = %e, "cannot forget the sweep");
        }
        // Its channels are walked (`retire.rs`).
        self.chain
            .unswept
            .extend((signers.start.0..signers.end.0).map(|c| ChannelId {
                factory,
                client: ClientId(c),
            }));
    }
}
