//! Sending what is at the wallet's on-chain address: prepared (read, built, signed, priced)
//! first so the user sees the amount and the network fee, then sent as prepared.

use bitcoin::{Amount, Txid};
use shared::fees::pick_fee_rate;

use crate::chain::{esplora, ChainError};
use crate::keys::SweepIndex;
use crate::onchain::{build_spend, confirmed_coins, parse_address, Spend};

use super::{Account, AccountError};

/// The confirmation target an on-chain payment is priced for (about an hour on mainnet).
const TARGET_BLOCKS: u16 = 6;

impl Account {
    /// A payment of `amount` (everything with `None`) to the address `to`, from every confirmed
    /// coin at this wallet's address as the chain at `esplora_url` has them, at that server's
    /// fee estimate. Signed, not sent.
    pub async fn prepare_onchain(
        &self,
        esplora_url: &str,
        to: &str,
        amount: Option<Amount>,
    ) -> Result<Spend, AccountError> {
        let to = parse_address(to, self.keys().network())?;
        let key = self.keys().sweep(SweepIndex::new(0)?)?;
        let from = key.address().clone();
        let client = esplora(esplora_url)?;
        let chain_error = |source| ChainError::Esplora {
            url: esplora_url.into(),
            source,
        };
        let coins = confirmed_coins(&client, &from).await.map_err(chain_error)?;
        let estimates = client.get_fee_estimates().await.map_err(chain_error)?;
        let rate = pick_fee_rate(&estimates, TARGET_BLOCKS);
        let secp = shared::secp::ctx();
        Ok(build_spend(
            &coins,
            &key.spending_keypair(secp),
            &from,
            &to,
            amount,
            rate,
        )?)
    }

    /// Sends a prepared payment.
    pub async fn send_onchain(
        &self,
        esplora_url: &str,
        spend: &Spend,
    ) -> Result<Txid, AccountError> {
        let client = esplora(esplora_url)?;
        client
            .broadcast(&spend.tx)
            .await
            .map_err(|source| ChainError::Esplora {
                url: esplora_url.into(),
                source,
            })?;
        Ok(spend.tx.compute_txid())
    }
}
