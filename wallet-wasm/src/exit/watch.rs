//! The wallet's own watch over a factory, read from the user's chain source (not the LSP):
//! has anyone spent the factory's funding output? Once it is spent the distribution
//! transaction can never pay, and the `T_sweep` clock runs for everyone, so the wallet must
//! walk its path and sweep by itself, whoever started it (the exit card starts the
//! [`super::ExitRunner`] on this answer, without waiting for the user).

use bitcoin::Txid;
use shared::path::ClientPath;

use crate::chain::{esplora, ChainError};

/// The transaction that spent `path`'s funding output, if any, as `url` sees it.
pub async fn funding_spender(url: &str, path: &ClientPath) -> Result<Option<Txid>, ChainError> {
    let funding = path.funding_outpoint();
    let status = esplora(url)?
        .get_output_status(&funding.txid, u64::from(funding.vout))
        .await
        .map_err(|source| ChainError::Esplora {
            url: url.into(),
            source,
        })?;
    Ok(status.filter(|s| s.spent).and_then(|s| s.txid))
}
