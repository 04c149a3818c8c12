//! What the home screen says about a factory: balances, where it is in its life, and how long
//! until the dying period, computed from the stored path and the tip the wallet read itself.

use bitcoin::absolute::Height;
use bitcoin::{Amount, Txid};
use shared::lifecycle::{Life, Stage};
use shared::params::BlockDelta;
use shared::path::ClientPath;

/// Where a factory is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactoryPhase {
    /// Signed and stored; the funding transaction has not confirmed yet.
    Funding,
    /// Funded and active: nothing to do.
    Active,
    /// In its dying period: come online and move to a new factory.
    Dying,
    /// Past the dying period: leave on chain now.
    Expired,
}

impl FactoryPhase {
    /// A short status for people.
    pub fn describe(self) -> &'static str {
        match self {
            FactoryPhase::Funding => "waiting for the funding transaction to confirm",
            FactoryPhase::Active => "live",
            FactoryPhase::Dying => "in its dying period: open the wallet to move to a new factory",
            FactoryPhase::Expired => "past its dying period: leave it now",
        }
    }
}

/// The facts the home screen shows about one factory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactoryOverview {
    /// The funding transaction.
    pub funding: Txid,
    /// The phase.
    pub phase: FactoryPhase,
    /// This client's channel.
    pub channel: Amount,
    /// Inbound liquidity reserved for this client (the leaf's L-stock).
    pub inbound: Amount,
    /// Clients in the factory.
    pub clients: u32,
    /// Height at which the dying period starts.
    pub dying_at: Height,
    /// Blocks from the tip to the dying period (zero once in it).
    pub blocks_to_dying: BlockDelta,
    /// Height at which the dying period ends: the last chance to move to a new factory.
    pub dying_ends_at: Height,
    /// Blocks from the tip to the end of the dying period (zero once past it).
    pub blocks_to_end: BlockDelta,
    /// Height of the factory timeout.
    pub timeout: Height,
}

impl FactoryOverview {
    /// The overview of `path` at `tip`; `funded` says whether the funding transaction confirmed.
    pub fn new(path: &ClientPath, tip: Height, funded: bool) -> FactoryOverview {
        let proposal = path.proposal();
        let life = Life::of(proposal);
        let (dying_at, dead_at) = (life.dying_at, life.dying_ends);
        let entry = proposal.clients.get(path.client().0 as usize);
        let phase = match life.stage(tip) {
            _ if !funded => FactoryPhase::Funding,
            Stage::Active => FactoryPhase::Active,
            Stage::Dying => FactoryPhase::Dying,
            Stage::Expired | Stage::TimedOut => FactoryPhase::Expired,
        };
        FactoryOverview {
            funding: path.funding_outpoint().txid,
            phase,
            channel: entry.map_or(Amount::ZERO, |e| e.channel),
            inbound: entry.map_or(Amount::ZERO, |e| e.lstock),
            clients: proposal.client_count(),
            dying_at,
            blocks_to_dying: BlockDelta::between(tip, dying_at).unwrap_or(BlockDelta::ZERO),
            dying_ends_at: dead_at,
            blocks_to_end: BlockDelta::between(tip, dead_at).unwrap_or(BlockDelta::ZERO),
            timeout: path.timeout(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::params::FactoryParams;
    use shared::testing::{sample_proposal, TestKeys};
    use shared::types::ClientId;

    fn path() -> ClientPath {
        let keys = TestKeys::generate(4, 3);
        let proposal = sample_proposal(FactoryParams::regtest(), &keys, 3);
        ClientPath::build(&proposal, ClientId(1)).expect("builds")
    }

    fn h(n: u32) -> Height {
        Height::from_consensus(n).expect("valid height")
    }

    #[test]
    fn counts_down_to_the_dying_period() {
        let path = path();
        let p = path.proposal();
        let start = p.creation_height.to_consensus_u32();
        let active = p.params.active.to_blocks();
        let dying = p.params.dying.to_blocks();

        let o = FactoryOverview::new(&path, h(start), false);
        assert_eq!(o.phase, FactoryPhase::Funding);
        assert_eq!(o.channel, p.clients[1].channel);
        assert_eq!(o.inbound, p.clients[1].lstock);
        assert_eq!(o.clients, 4);
        assert_eq!(o.dying_at, h(start + active));
        assert_eq!(o.blocks_to_dying.to_blocks(), active);

        let o = FactoryOverview::new(&path, h(start + 1), true);
        assert_eq!(o.phase, FactoryPhase::Active);
        assert_eq!(o.blocks_to_dying.to_blocks(), active - 1);

        let o = FactoryOverview::new(&path, h(start + active), true);
        assert_eq!(o.phase, FactoryPhase::Dying);
        assert_eq!(o.blocks_to_dying, BlockDelta::ZERO);
        assert_eq!(o.dying_ends_at, h(start + active + dying));
        assert_eq!(o.blocks_to_end.to_blocks(), dying);

        let o = FactoryOverview::new(&path, h(start + active + dying), true);
        assert_eq!(o.phase, FactoryPhase::Expired);
        assert_eq!(o.blocks_to_end, BlockDelta::ZERO);
    }
}
