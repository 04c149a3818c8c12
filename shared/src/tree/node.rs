//! One transaction of a factory tree, with what is needed to sign it and to broadcast it.

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{schnorr, Message, XOnlyPublicKey};
use bitcoin::sighash::{Prevouts, SighashCache};
use bitcoin::{
    OutPoint, TapNodeHash, TapSighash, TapSighashType, Transaction, TxOut, Txid, Witness,
};
use serde::{Deserialize, Serialize};

use super::fees::KEY_SPEND_WITNESS_WU;
use crate::params::BlockDelta;
use crate::types::{ClientId, NodeId};

/// Clients `start..end` (half-open). A node's signers are the LSP plus these clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientRange {
    /// First client.
    pub start: ClientId,
    /// One past the last client.
    pub end: ClientId,
}

impl ClientRange {
    /// Whether `client` is in the range.
    pub fn contains(&self, client: ClientId) -> bool {
        self.start <= client && client < self.end
    }

    /// Number of clients.
    pub fn len(&self) -> u32 {
        self.end.0 - self.start.0
    }

    /// Whether the range holds no client (never true for a tree node).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a tree transaction is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeKind {
    /// A static node near the root: splits its input among its children; never updated.
    Split {
        /// Depth in the tree (root = 0).
        depth: u32,
    },
    /// A DW kickoff: one version, `nSequence = 0xFFFFFFFF`, one output for its state.
    Kickoff {
        /// Depth in the tree.
        depth: u32,
        /// DW layer (0 = nearest the root).
        layer: u32,
    },
    /// A DW state: relative delay in `nSequence`, one output per child.
    State {
        /// Depth in the tree.
        depth: u32,
        /// DW layer (0 = nearest the root).
        layer: u32,
        /// Its relative delay (BIP-68 blocks) in this epoch.
        delay: BlockDelta,
    },
    /// A client's leaf: channel, L-stock and anchor outputs.
    Leaf {
        /// The client.
        client: ClientId,
        /// Depth in the tree.
        depth: u32,
    },
    /// The distribution transaction: spends the funding output at the factory timeout and pays
    /// every client.
    Distribution,
    /// The redistribution of a superseded leaf state's L-stock to its client
    /// ([`crate::leaf`]).
    Redistribution {
        /// The client.
        client: ClientId,
        /// The superseded leaf state whose L-stock it spends.
        epoch: crate::leaf::LeafEpoch,
    },
}

/// One transaction of the tree.
///
/// Invariants: `tx` has exactly one input, which spends an output equal to `prevout`; `prevout`
/// is a P2TR output whose internal key is MuSig2(LSP + `signers`), tweaked with `merkle_root`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeNode {
    /// Position in the tree's canonical (pre-order) numbering.
    pub id: NodeId,
    /// What it is.
    pub kind: NodeKind,
    /// The clients who sign it together with the LSP.
    pub signers: ClientRange,
    /// The unsigned transaction.
    pub tx: Transaction,
    /// The output it spends (for the sighash).
    pub prevout: TxOut,
    /// Taproot merkle root of the spent output, `None` for a key-path-only output.
    pub merkle_root: Option<TapNodeHash>,
    /// The final MuSig2 signature, once the ceremony produced it.
    pub signature: Option<schnorr::Signature>,
}

/// Why a signature was not attached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// No such node.
    #[error("node {0} is not part of this tree or path")]
    UnknownNode(NodeId),
    /// The signature does not verify for the node's sighash and spent output key.
    #[error("the signature for node {0} does not verify; ask the LSP for the aggregate again")]
    Invalid(NodeId),
}

impl TreeNode {
    /// The transaction id (signatures do not change it).
    pub fn txid(&self) -> Txid {
        self.tx.compute_txid()
    }

    /// Whether the transaction has the single input every tree node has. Only a node read
    /// from outside (storage, the network) can lack it; the other methods assume it.
    pub fn is_well_formed(&self) -> bool {
        self.tx.input.len() == 1
    }

    /// The outpoint this node spends (the null outpoint for a malformed node).
    pub fn spent_outpoint(&self) -> OutPoint {
        self.tx
            .input
            .first()
            .map(|i| i.previous_output)
            .unwrap_or_default()
    }

    /// BIP-341 key-path sighash (`SIGHASH_DEFAULT`) of the single input.
    ///
    /// Panics if the node is not [well formed](TreeNode::is_well_formed), which a node built
    /// by this crate or accepted by `crate::verify` always is.
    pub fn sighash(&self) -> TapSighash {
        SighashCache::new(&self.tx)
            .taproot_key_spend_signature_hash(
                0,
                &Prevouts::All(&[&self.prevout]),
                TapSighashType::Default,
            )
            .expect("one input and one prevout")
    }

    /// The output key a signature must verify against (from the spent P2TR output).
    pub fn output_key(&self) -> Option<XOnlyPublicKey> {
        let spk = self.prevout.script_pubkey.as_bytes();
        if !self.prevout.script_pubkey.is_p2tr() {
            return None;
        }
        XOnlyPublicKey::from_slice(&spk[2..34]).ok()
    }

    /// Whether `sig` is a valid key-path signature of this node.
    pub fn verify_signature(&self, sig: &schnorr::Signature) -> bool {
        let Some(key) = self.output_key().filter(|_| self.is_well_formed()) else {
            return false;
        };
        let msg = Message::from_digest(self.sighash().to_byte_array());
        crate::secp::ctx().verify_schnorr(sig, &msg, &key).is_ok()
    }

    /// Attaches the final signature after checking it.
    pub fn set_signature(&mut self, sig: schnorr::Signature) -> Result<(), SignatureError> {
        if !self.verify_signature(&sig) {
            return Err(SignatureError::Invalid(self.id));
        }
        self.signature = Some(sig);
        Ok(())
    }

    /// The broadcastable transaction, if signed.
    pub fn signed_tx(&self) -> Option<Transaction> {
        let sig = self.signature?;
        let mut tx = self.tx.clone();
        tx.input.first_mut()?.witness = Witness::from_slice(&[sig.serialize()]);
        Some(tx)
    }

    /// Virtual size once signed.
    pub fn vsize(&self) -> u64 {
        let unsigned = self.tx.weight().to_wu();
        bitcoin::Weight::from_wu(unsigned + KEY_SPEND_WITNESS_WU).to_vbytes_ceil()
    }

    /// The endogenous fee: input value minus output values.
    pub fn fee(&self) -> bitcoin::Amount {
        crate::fees::fee_paid(&self.tx, self.prevout.value)
    }

    /// The BIP-68 relative delay of the input (zero when relative locks are disabled).
    pub fn relative_delay(&self) -> BlockDelta {
        match self
            .tx
            .input
            .first()
            .and_then(|i| i.sequence.to_relative_lock_time())
        {
            Some(bitcoin::relative::LockTime::Blocks(h)) => {
                BlockDelta::from_blocks(u32::from(h.value()))
            }
            _ => BlockDelta::ZERO,
        }
    }
}
