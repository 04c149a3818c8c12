//! What the LSP proposes and every participant rebuilds the tree from.

use bitcoin::absolute::Height;
use bitcoin::secp256k1::PublicKey;
use bitcoin::{Amount, OutPoint, TxOut};
use serde::{Deserialize, Serialize};

use super::layout::Layout;
use super::scripts::{self, KeyRing};
use super::{ClientRange, TreeError, TreeNode};
use crate::params::{Epoch, FactoryParams};
use crate::types::{ClientId, SigningJob};

/// Smallest value of a P2TR output that Bitcoin Core relays.
pub const P2TR_DUST: Amount = Amount::from_sat(330);

/// One client's place in a proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientEntry {
    /// The client's fresh factory key.
    pub key: PublicKey,
    /// Value of the leaf's channel output.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub channel: Amount,
    /// Value of the leaf's L-stock output (LSP liquidity reserved for this client).
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub lstock: Amount,
}

impl ClientEntry {
    /// Channel plus L-stock: what the leaf holds and what the distribution pays this client.
    pub fn leaf_value(&self) -> Option<Amount> {
        self.channel.checked_add(self.lstock)
    }
}

/// The public parameters of one factory state, from which every participant rebuilds the tree.
///
/// Client `i` is `clients[i]` ([`ClientId`]`(i)`), leaves left to right.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactoryProposal {
    /// Shape, timing and fees.
    pub params: FactoryParams,
    /// The LSP's factory key.
    pub lsp_key: PublicKey,
    /// The clients, in leaf order.
    pub clients: Vec<ClientEntry>,
    /// The factory UTXO.
    pub funding_outpoint: OutPoint,
    /// Its value; must equal [`FactoryProposal::required_funding`].
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub funding_amount: Amount,
    /// Height the factory was created, or last refreshed; the timeout counts from here.
    pub creation_height: Height,
    /// The Decker-Wattenhofer epoch of this state.
    pub epoch: Epoch,
}

impl FactoryProposal {
    /// The funding value a tree for these clients needs: every client's channel and L-stock,
    /// plus the fee and anchor of every pre-signed tree transaction.
    pub fn required_funding(
        params: &FactoryParams,
        clients: &[ClientEntry],
    ) -> Result<Amount, TreeError> {
        let layout = check_clients(params, clients)?;
        let base = leaf_values_total(clients)?;
        base.checked_add(layout.stats(&layout.root()).cost)
            .ok_or(TreeError::AmountOverflow)
    }

    /// The funding output the LSP's wallet must create: P2TR, key path only (BIP-86 tweak), internal
    /// key MuSig2(LSP + all clients).
    pub fn funding_output(
        params: &FactoryParams,
        lsp_key: &PublicKey,
        clients: &[ClientEntry],
    ) -> Result<TxOut, TreeError> {
        let value = Self::required_funding(params, clients)?;
        let keys: Vec<PublicKey> = clients.iter().map(|c| c.key).collect();
        let n = keys.len() as u32;
        let internal = KeyRing::new(lsp_key, &keys)?.internal_key(0, n)?;
        let secp = crate::secp::ctx();
        Ok(TxOut {
            value,
            script_pubkey: scripts::p2tr(secp, internal, None),
        })
    }

    /// Number of clients.
    pub fn client_count(&self) -> u32 {
        self.clients.len() as u32
    }

    /// The factory timeout `T = creation_height + params.timeout_delta`: the distribution
    /// transaction's `nLockTime`.
    pub fn timeout(&self) -> Result<Height, TreeError> {
        self.params
            .timeout_at(self.creation_height)
            .ok_or(TreeError::HeightOverflow)
    }

    /// The sweep height `T_sweep = T + params.sweep_delta`: the lock of the LSP's timeout leaf
    /// on every state output.
    pub fn sweep_height(&self) -> Result<Height, TreeError> {
        self.params
            .sweep_height_at(self.creation_height)
            .ok_or(TreeError::HeightOverflow)
    }

    /// The client whose factory key is `key`.
    pub fn client_by_key(&self, key: &PublicKey) -> Option<ClientId> {
        self.clients
            .iter()
            .position(|c| c.key == *key)
            .map(|i| ClientId(i as u32))
    }

    /// The signers of a node over `range`: the LSP and those clients, BIP-327 key-sorted.
    pub fn signers(&self, range: ClientRange) -> Vec<PublicKey> {
        let clients = self
            .clients
            .get(range.start.0 as usize..range.end.0 as usize)
            .unwrap_or(&[]);
        let mut keys: Vec<PublicKey> = std::iter::once(self.lsp_key)
            .chain(clients.iter().map(|c| c.key))
            .collect();
        crate::musig::key_sort(&mut keys);
        keys
    }

    /// The signing job of `node`, a node of this proposal's tree.
    pub fn job(&self, node: &TreeNode) -> SigningJob {
        SigningJob {
            node: node.id,
            prevout: node.spent_outpoint(),
            sighash: node.sighash(),
            signers: self.signers(node.signers),
            merkle_root: node.merkle_root,
        }
    }

    /// Number of DW layers this tree has: `params.dw_layers`, or fewer for a small factory.
    pub fn dw_layers(&self) -> u32 {
        Layout::new(&self.params, self.client_count()).dw_levels()
    }

    /// Number of DW epochs this tree has: `K^layers`, where `layers` is at most
    /// `params.dw_layers` (small trees have fewer DW levels).
    pub fn epoch_count(&self) -> u32 {
        self.params.epoch_count(self.dw_layers())
    }

    /// Every check that does not need elliptic-curve work; returns the layout.
    pub(crate) fn check(&self) -> Result<Layout, TreeError> {
        let layout = check_clients(&self.params, &self.clients)?;
        let count = self.params.epoch_count(layout.dw_levels());
        if self.epoch.0 >= count {
            return Err(TreeError::EpochOutOfRange {
                epoch: self.epoch,
                count,
            });
        }
        self.timeout()?;
        self.sweep_height()?;
        let expected = leaf_values_total(&self.clients)?
            .checked_add(layout.stats(&layout.root()).cost)
            .ok_or(TreeError::AmountOverflow)?;
        if expected != self.funding_amount {
            return Err(TreeError::FundingAmountMismatch {
                expected,
                got: self.funding_amount,
            });
        }
        Ok(layout)
    }
}

fn check_clients(params: &FactoryParams, clients: &[ClientEntry]) -> Result<Layout, TreeError> {
    params.validate()?;
    if clients.is_empty() {
        return Err(TreeError::NoClients);
    }
    if clients.len() > params.max_clients as usize {
        return Err(TreeError::TooManyClients {
            got: clients.len(),
            max: params.max_clients,
        });
    }
    for (i, c) in clients.iter().enumerate() {
        for (what, amount) in [("channel", c.channel), ("L-stock", c.lstock)] {
            if amount < P2TR_DUST {
                return Err(TreeError::BelowDust {
                    client: ClientId(i as u32),
                    what,
                    amount,
                });
            }
        }
    }
    leaf_values_total(clients)?;
    Ok(Layout::new(params, clients.len() as u32))
}

fn leaf_values_total(clients: &[ClientEntry]) -> Result<Amount, TreeError> {
    clients
        .iter()
        .try_fold(Amount::ZERO, |acc, c| acc.checked_add(c.leaf_value()?))
        .filter(|total| *total <= Amount::MAX_MONEY)
        .ok_or(TreeError::AmountOverflow)
}
