//! What leaving a factory through the stored path costs, shown before the user starts.

use bitcoin::absolute::Height;
use bitcoin::Amount;
use shared::params::BlockDelta;
use shared::path::ClientPath;

/// The cost and the waits of an exit through one stored path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitPreview {
    /// Transactions to broadcast down the tree.
    pub txs: u32,
    /// Their size.
    pub vbytes: u64,
    /// Their fees, already paid from the factory.
    pub prepaid_fee: Amount,
    /// Blocks the walk takes at worst (every state at its longest delay).
    pub worst_blocks: BlockDelta,
    /// The height from which the distribution transaction pays everyone instead.
    pub timeout: Height,
    /// What this wallet gets out: its whole leaf (channel + inbound liquidity) through the
    /// distribution transaction.
    pub leaf_value: Amount,
}

impl ExitPreview {
    /// The preview of `path`.
    pub fn of(path: &ClientPath) -> ExitPreview {
        let cost = path.exit_cost();
        let leaf_value = path
            .proposal()
            .clients
            .get(path.client().0 as usize)
            .and_then(|c| c.leaf_value())
            .unwrap_or(Amount::ZERO);
        ExitPreview {
            txs: cost.txs,
            vbytes: cost.vbytes,
            prepaid_fee: cost.prepaid_fee,
            worst_blocks: path.worst_exit_blocks(),
            timeout: path.timeout(),
            leaf_value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::params::FactoryParams;
    use shared::testing::{sample_proposal, TestKeys};
    use shared::types::ClientId;

    #[test]
    fn preview_counts_the_path() {
        let keys = TestKeys::generate(4, 5);
        let proposal = sample_proposal(FactoryParams::regtest(), &keys, 5);
        let path = ClientPath::build(&proposal, ClientId(0)).expect("builds");
        let p = ExitPreview::of(&path);
        assert_eq!(p.txs as usize, path.nodes().len());
        assert!(p.vbytes > 100 * u64::from(p.txs));
        assert!(p.worst_blocks.to_blocks() >= p.txs);
        assert_eq!(p.timeout, path.timeout());
        let entry = &proposal.clients[0];
        assert_eq!(p.leaf_value, entry.channel + entry.lstock);
    }
}
