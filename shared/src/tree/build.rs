//! Turns a proposal into transactions, one node at a time.
//!
//! [`Builder::expand`] builds one node's transactions and the outputs (slots) its children spend.
//! The full tree expands every slot; a client's path expands only the slots on its way down.
//! Both go through this one function, so the LSP's tree and each client's path cannot differ.

use bitcoin::absolute::{Height, LockTime};
use bitcoin::secp256k1::{All, Secp256k1, XOnlyPublicKey};
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, OutPoint, ScriptBuf, Sequence, TapNodeHash, Transaction, TxIn, TxOut, Witness,
};

use super::fees;
use super::layout::{Layout, Span};
use super::scripts::{self, KeyRing};
use super::{ClientRange, FactoryProposal, NodeKind, TreeError, TreeNode};
use crate::params::{BlockDelta, Epoch};
use crate::types::{ClientId, NodeId};

/// The children of a node: span, first node id, internal key of the output it spends.
type Children = Vec<(Span, NodeId, XOnlyPublicKey)>;

/// An output some node spends, with everything needed to build that node.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    span: Span,
    id: NodeId,
    outpoint: OutPoint,
    prevout: TxOut,
    merkle_root: Option<TapNodeHash>,
    /// Internal key of `prevout`: MuSig2(LSP + the span's clients).
    internal: XOnlyPublicKey,
}

/// A checked proposal, ready to build nodes from.
pub(crate) struct Builder<'p> {
    p: &'p FactoryProposal,
    layout: Layout,
    keys: KeyRing,
    secp: &'static Secp256k1<All>,
    /// `prefix[i]` = sum of the leaf values of clients `0..i`.
    prefix: Vec<Amount>,
    /// `T`: the distribution transaction's `nLockTime`.
    timeout: Height,
    /// `T_sweep`: the lock of the timeout leaf on every state output.
    sweep_height: Height,
    /// Merkle root of the timeout leaf `<T_sweep> OP_CLTV OP_DROP <LSP> OP_CHECKSIG`.
    timeout_root: TapNodeHash,
    lstock_root: TapNodeHash,
    funding_internal: XOnlyPublicKey,
}

fn tx(input: OutPoint, sequence: Sequence, lock_time: LockTime, output: Vec<TxOut>) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time,
        input: vec![TxIn {
            previous_output: input,
            script_sig: ScriptBuf::new(),
            sequence,
            witness: Witness::new(),
        }],
        output,
    }
}

/// The distribution transaction of `p`: spends the funding output (`funding`, what the root
/// spends too), `nLockTime` = timeout `T`, pays every client its leaf value to its own key
/// (BIP-86) and an anchor ([`distribution_outputs`]); the rest is fee. Its id is the tree's
/// transaction count (after every tree node). It aggregates no key: a stored path rebuilds it
/// instead of storing its N outputs (`crate::path`).
pub(crate) fn distribution(
    p: &FactoryProposal,
    id: NodeId,
    timeout: Height,
    funding: TxOut,
    outputs: Vec<TxOut>,
) -> TreeNode {
    TreeNode {
        id,
        kind: NodeKind::Distribution,
        signers: ClientRange {
            start: ClientId(0),
            end: ClientId(p.client_count()),
        },
        tx: tx(
            p.funding_outpoint,
            Sequence::ENABLE_LOCKTIME_NO_RBF,
            LockTime::Blocks(timeout),
            outputs,
        ),
        prevout: funding,
        merkle_root: None,
        signature: None,
    }
}

/// The distribution transaction's outputs: each client's leaf value to its own key (BIP-86),
/// in client order, then the anchor. One tweak per client: most of the cost of building it.
pub(crate) fn distribution_outputs(p: &FactoryProposal) -> Vec<TxOut> {
    let mut outputs: Vec<TxOut> = p
        .clients
        .iter()
        .map(|c| TxOut {
            value: c.channel + c.lstock,
            script_pubkey: scripts::p2tr_key_path(&c.key),
        })
        .collect();
    outputs.push(scripts::anchor_output(p.params.anchor_value));
    outputs
}

impl<'p> Builder<'p> {
    /// Checks the proposal and parses its keys (O(N) work, one aggregation of all keys).
    pub(crate) fn new(p: &'p FactoryProposal) -> Result<Builder<'p>, TreeError> {
        let layout = p.check()?;
        let keys: Vec<_> = p.clients.iter().map(|c| c.key).collect();
        let keys = KeyRing::new(&p.lsp_key, &keys)?;
        let mut prefix = Vec::with_capacity(p.clients.len() + 1);
        prefix.push(Amount::ZERO);
        for c in &p.clients {
            let v = c.leaf_value().ok_or(TreeError::AmountOverflow)?;
            prefix.push(prefix[prefix.len() - 1] + v);
        }
        let timeout = p.timeout()?;
        let sweep_height = p.sweep_height()?;
        let lsp = p.lsp_key.x_only_public_key().0;
        let timeout_root = scripts::single_leaf_root(&scripts::timeout_script(sweep_height, lsp));
        let lstock_root =
            scripts::single_leaf_root(&scripts::lstock_script(p.params.lstock_csv, lsp));
        let funding_internal = keys.internal_key(0, p.client_count())?;
        Ok(Builder {
            p,
            layout,
            keys,
            secp: crate::secp::ctx(),
            prefix,
            timeout,
            sweep_height,
            timeout_root,
            lstock_root,
            funding_internal,
        })
    }

    /// The signer sets aggregated while building (each once), for whoever signs next.
    pub(crate) fn into_aggregations(self) -> Vec<crate::musig::KeyAgg> {
        self.keys.aggregations()
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    pub(crate) fn timeout(&self) -> Height {
        self.timeout
    }

    pub(crate) fn sweep_height(&self) -> Height {
        self.sweep_height
    }

    /// The funding output.
    pub(crate) fn funding_txout(&self) -> TxOut {
        TxOut {
            value: self.p.funding_amount,
            script_pubkey: scripts::p2tr(self.secp, self.funding_internal, None),
        }
    }

    /// The funding output, as the slot the root node spends.
    pub(crate) fn root_slot(&self) -> Slot {
        Slot {
            span: self.layout.root(),
            id: NodeId(0),
            outpoint: self.p.funding_outpoint,
            prevout: self.funding_txout(),
            merkle_root: None,
            internal: self.funding_internal,
        }
    }

    fn range(&self, span: &Span) -> ClientRange {
        let (s, e) = self.layout.clients_of(span);
        ClientRange {
            start: ClientId(s),
            end: ClientId(e),
        }
    }

    /// Value of the output a subtree's root spends: its clients' leaf values plus its fees and
    /// anchors.
    fn value(&self, span: &Span) -> Amount {
        let (s, e) = self.layout.clients_of(span);
        self.prefix[e as usize] - self.prefix[s as usize] + self.layout.stats(span).cost
    }

    fn node(&self, id: NodeId, kind: NodeKind, slot: &Slot, tx: Transaction) -> TreeNode {
        TreeNode {
            id,
            kind,
            signers: self.range(&slot.span),
            tx,
            prevout: slot.prevout.clone(),
            merkle_root: slot.merkle_root,
            signature: None,
        }
    }

    /// Outputs for `children` (internal key, tweak) plus the anchor, and the slots they become.
    fn child_outputs(
        &self,
        span: &Span,
        first_id: NodeId,
        merkle_root: Option<TapNodeHash>,
    ) -> Result<(Vec<TxOut>, Children), TreeError> {
        let children = self.layout.children(span);
        let ids = self.layout.child_ids(span, first_id, &children);
        let mut outputs = Vec::with_capacity(children.len() + 1);
        let mut slots = Vec::with_capacity(children.len());
        for (child, id) in children.into_iter().zip(ids) {
            let (s, e) = self.layout.clients_of(&child);
            let internal = self.keys.internal_key(s, e)?;
            outputs.push(TxOut {
                value: self.value(&child),
                script_pubkey: scripts::p2tr(self.secp, internal, merkle_root),
            });
            slots.push((child, id, internal));
        }
        outputs.push(scripts::anchor_output(self.p.params.anchor_value));
        Ok((outputs, slots))
    }

    fn slots_of(
        txid: bitcoin::Txid,
        outputs: &[TxOut],
        merkle_root: Option<TapNodeHash>,
        children: Children,
    ) -> Vec<Slot> {
        children
            .into_iter()
            .enumerate()
            .map(|(i, (span, id, internal))| Slot {
                span,
                id,
                outpoint: OutPoint::new(txid, i as u32),
                prevout: outputs[i].clone(),
                merkle_root,
                internal,
            })
            .collect()
    }

    /// Builds the node spending `slot`: its transactions, and the slots of its children.
    pub(crate) fn expand(&self, slot: &Slot) -> Result<(Vec<TreeNode>, Vec<Slot>), TreeError> {
        let params = &self.p.params;
        let anchor = scripts::anchor_output(params.anchor_value);
        match slot.span {
            Span::Static { depth, .. } => {
                let (outputs, children) = self.child_outputs(&slot.span, slot.id, None)?;
                let t = tx(slot.outpoint, Sequence::MAX, LockTime::ZERO, outputs);
                let slots = Self::slots_of(t.compute_txid(), &t.output, None, children);
                Ok((
                    vec![self.node(slot.id, NodeKind::Split { depth }, slot, t)],
                    slots,
                ))
            }
            Span::Dw { layer, depth, .. } => {
                // Kickoff: pays the whole subtree (minus its own fee and anchor) to a key-only
                // output of the same signers.
                let kick_value = slot.prevout.value - fees::overhead(params, 1);
                let kick_out = TxOut {
                    value: kick_value,
                    script_pubkey: scripts::p2tr(self.secp, slot.internal, None),
                };
                let kickoff = tx(
                    slot.outpoint,
                    Sequence::MAX,
                    LockTime::ZERO,
                    vec![kick_out.clone(), anchor],
                );
                let kick_id = kickoff.compute_txid();
                let kick_node =
                    self.node(slot.id, NodeKind::Kickoff { depth, layer }, slot, kickoff);

                let state_slot = Slot {
                    span: slot.span,
                    id: NodeId(slot.id.0 + 1),
                    outpoint: OutPoint::new(kick_id, 0),
                    prevout: kick_out,
                    merkle_root: None,
                    internal: slot.internal,
                };
                let epoch: Epoch = self.p.epoch;
                let delay = params.state_delay(self.layout.dw_levels(), layer, epoch);
                let sequence = delay.to_relative_sequence().ok_or(TreeError::Params(
                    crate::params::ParamsError::RelativeLockTooLong { got: delay },
                ))?;
                let root = Some(self.timeout_root);
                let (outputs, children) = self.child_outputs(&slot.span, slot.id, root)?;
                let state = tx(state_slot.outpoint, sequence, LockTime::ZERO, outputs);
                let slots = Self::slots_of(state.compute_txid(), &state.output, root, children);
                let kind = NodeKind::State {
                    depth,
                    layer,
                    delay,
                };
                let state_node = self.node(state_slot.id, kind, &state_slot, state);
                Ok((vec![kick_node, state_node], slots))
            }
            Span::Leaf { client, depth } => {
                let entry = &self.p.clients[client as usize];
                let outputs = vec![
                    TxOut {
                        value: entry.channel,
                        script_pubkey: scripts::p2tr(self.secp, slot.internal, None),
                    },
                    TxOut {
                        value: entry.lstock,
                        script_pubkey: scripts::p2tr(
                            self.secp,
                            slot.internal,
                            Some(self.lstock_root),
                        ),
                    },
                    anchor,
                ];
                // Leaf state 0: the longest delay of the leaf's own DW layer (`crate::leaf`).
                let sequence = crate::leaf::delay(params, crate::leaf::LeafEpoch::FIRST)
                    .and_then(|d| d.to_relative_sequence())
                    .ok_or(TreeError::Params(
                        crate::params::ParamsError::RelativeLockTooLong {
                            got: params.max_state_delay().unwrap_or(BlockDelta::MAX_RELATIVE),
                        },
                    ))?;
                let t = tx(slot.outpoint, sequence, LockTime::ZERO, outputs);
                let kind = NodeKind::Leaf {
                    client: ClientId(client),
                    depth,
                };
                Ok((vec![self.node(slot.id, kind, slot, t)], Vec::new()))
            }
        }
    }

    /// The distribution transaction ([`distribution`]).
    pub(crate) fn distribution(&self) -> TreeNode {
        distribution(
            self.p,
            NodeId(self.layout.tree_txs()),
            self.timeout,
            self.root_slot().prevout,
            distribution_outputs(self.p),
        )
    }

    /// Every tree node, in id order (without the distribution transaction).
    pub(crate) fn all(&self) -> Result<Vec<TreeNode>, TreeError> {
        let mut nodes = Vec::with_capacity(self.layout.tree_txs() as usize + 1);
        let mut stack = vec![self.root_slot()];
        while let Some(slot) = stack.pop() {
            let (built, children) = self.expand(&slot)?;
            debug_assert_eq!(built[0].id.0 as usize, nodes.len(), "pre-order numbering");
            nodes.extend(built);
            stack.extend(children.into_iter().rev());
        }
        Ok(nodes)
    }

    /// The nodes from the root to `client`'s leaf.
    pub(crate) fn path(&self, client: ClientId) -> Result<Vec<TreeNode>, TreeError> {
        if client.0 >= self.p.client_count() {
            return Err(TreeError::NoSuchClient(client));
        }
        let mut nodes = Vec::new();
        let mut slot = self.root_slot();
        loop {
            let (built, children) = self.expand(&slot)?;
            nodes.extend(built);
            let next = children.into_iter().find(|c| {
                let (s, e) = self.layout.clients_of(&c.span);
                (s..e).contains(&client.0)
            });
            match next {
                Some(next) => slot = next,
                None => return Ok(nodes),
            }
        }
    }
}
