//! What payments need from the open wallet: its funded leaves (each with the factory key the
//! join used) and the payments' storage in its vault.

use std::collections::BTreeMap;

use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::Amount;
use shared::pay::ChannelId;

use crate::keys::FactoryIndex;
use crate::pay::{PayLeaf, VaultPayStore};
use crate::session::ChainSource;

use super::{Account, AccountError};

impl Account {
    /// The leaves payments can use: one per factory this wallet joined whose funding
    /// transaction has confirmed on `chain` (the LSP opens channels only in funded factories).
    /// Each carries the factory key the join used (the one at the join's recorded index),
    /// checked to be the key the signed path gives this wallet's leaf, and the join's fee.
    /// Factories the wallet moved out of ([`super::Profile::moved`]) hold nothing of its own
    /// and are left out.
    pub async fn pay_leaves(&self, chain: &impl ChainSource) -> Result<Vec<PayLeaf>, AccountError> {
        let secp = shared::secp::ctx();
        let mut keys: BTreeMap<PublicKey, (SecretKey, Amount)> = BTreeMap::new();
        let profile = self.profile();
        let moved = profile.moved();
        for join in profile.joins {
            let key = self
                .keys()
                .factory(FactoryIndex::new(join.factory_index)?)?;
            keys.insert(key.public_key(secp), (key.secret_key(), join.fee));
        }
        // Sorted by factory then session: a later session of a factory replaces an earlier one.
        let mut leaves: BTreeMap<ChannelId, PayLeaf> = BTreeMap::new();
        for stored in self.paths().await? {
            let Some((secret, join_fee)) = keys.get(&stored.path.client_key()) else {
                continue;
            };
            if moved.contains(&stored.factory) {
                continue;
            }
            let funding = stored.path.funding_outpoint().txid;
            if chain.confirmations(&funding).await? == 0 {
                continue;
            }
            let channel = ChannelId {
                factory: stored.factory,
                client: stored.path.client(),
            };
            leaves.insert(
                channel,
                PayLeaf {
                    channel,
                    path: stored.path,
                    factory_secret: *secret,
                    join_fee: *join_fee,
                },
            );
        }
        Ok(leaves.into_values().collect())
    }

    /// The payments' storage inside this wallet's vault (while it lives, the vault cannot be
    /// re-encrypted or wiped: stop the payment client first).
    pub fn pay_store(&self) -> VaultPayStore {
        VaultPayStore::new(self.vault.clone())
    }
}
