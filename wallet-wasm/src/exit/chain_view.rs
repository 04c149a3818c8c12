//! The chain as the exit planner needs it, read from an Esplora endpoint: the tip, which of
//! the kit's transactions confirmed and where, and what spent each output on its paths.

use std::collections::BTreeSet;

use bitcoin::absolute::Height;
use shared::exit::{ChainSnapshot, ExitKit};

use crate::chain::{checked_tip, ChainError, Esplora, TipWatch};

fn esplora_error(url: &str) -> impl Fn(esplora_client::Error) -> ChainError + '_ {
    move |source| ChainError::Esplora {
        url: url.into(),
        source,
    }
}

/// Reads `/blocks/tip/height`, `/tx/:txid/status` and `/tx/:txid/outspend/:vout` for every
/// transaction and output of `kit`. Only confirmed facts go in (a mempool spend may be replaced).
/// The tip is judged by `watch`: a failed or contradictory read is an error, so the exit waits.
pub async fn read_chain(
    esplora: &Esplora,
    url: &str,
    watch: &TipWatch,
    kit: &ExitKit,
) -> Result<ChainSnapshot, ChainError> {
    let err = esplora_error(url);
    let tip = esplora.get_height().await.map_err(&err)?;
    let tip = checked_tip(url, watch, tip)?;
    let height = Height::from_consensus(tip).map_err(|_| ChainError::Esplora {
        url: url.into(),
        source: esplora_client::Error::InvalidResponse,
    })?;
    let mut chain = ChainSnapshot::new(height);
    let (txids, outpoints) = kit.watched();
    let mut confirmed = BTreeSet::new();
    for txid in txids {
        let status = esplora.get_tx_status(&txid).await.map_err(&err)?;
        if let (true, Some(h)) = (status.confirmed, status.block_height) {
            if let Ok(height) = Height::from_consensus(h) {
                chain.confirm_txid(txid, height);
                confirmed.insert(txid);
            }
        }
    }
    for op in outpoints
        .into_iter()
        .filter(|op| confirmed.contains(&op.txid))
    {
        let Some(status) = esplora
            .get_output_status(&op.txid, u64::from(op.vout))
            .await
            .map_err(&err)?
        else {
            continue;
        };
        if let (true, Some(spender), Some(s)) = (status.spent, status.txid, status.status) {
            if s.confirmed {
                chain.record_spend(op, spender);
                if let Some(h) = s.block_height.and_then(|h| Height::from_consensus(h).ok()) {
                    chain.confirm_txid(spender, h);
                }
            }
        }
    }
    Ok(chain)
}
