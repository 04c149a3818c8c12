//! How long blocks take, so block counts can be read as time: ten minutes on a public network,
//! and on regtest (a devnet mines when it is told, or every few seconds) the recent blocks'
//! own timestamps.

use bitcoin::Network;
use shared::params::BlockDelta;

use crate::chain::{ChainError, Esplora};

/// Seconds per block on a network that mines by proof of work.
const NOMINAL_SECS: u64 = 600;

/// The time one block takes on the wallet's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockPace {
    secs_per_block: u64,
}

impl Default for BlockPace {
    fn default() -> Self {
        BlockPace {
            secs_per_block: NOMINAL_SECS,
        }
    }
}

impl BlockPace {
    /// The pace of `secs` seconds per block (at least one).
    pub fn every_secs(secs: u64) -> BlockPace {
        BlockPace {
            secs_per_block: secs.max(1),
        }
    }

    /// Seconds per block.
    pub fn secs_per_block(self) -> u64 {
        self.secs_per_block
    }

    /// The pace from consecutive blocks' timestamps (oldest first): the median gap, or `None`
    /// with fewer than two blocks.
    pub fn from_timestamps(timestamps: &[u64]) -> Option<BlockPace> {
        let mut gaps: Vec<u64> = timestamps
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]))
            .collect();
        if gaps.is_empty() {
            return None;
        }
        gaps.sort_unstable();
        Some(BlockPace::every_secs(gaps[gaps.len() / 2]))
    }

    /// Roughly how long `blocks` blocks take, in words: "about 40 seconds", "about 3 hours".
    pub fn approx(self, blocks: BlockDelta) -> String {
        let secs = u64::from(blocks.to_blocks()).saturating_mul(self.secs_per_block);
        match secs {
            0 => "now".into(),
            s if s < 120 => format!("about {s} seconds"),
            s if s < 120 * 60 => format!("about {} minutes", s / 60),
            s if s < 48 * 3600 => format!("about {} hours", s / 3600),
            s => format!("about {} days", s / 86_400),
        }
    }

    /// The pace on `network`: measured from the last blocks on regtest, ten minutes elsewhere.
    pub async fn read(
        esplora: &Esplora,
        network: Network,
    ) -> Result<BlockPace, esplora_client::Error> {
        if network != Network::Regtest {
            return Ok(BlockPace::default());
        }
        let mut blocks = esplora.get_block_infos(None).await?;
        blocks.sort_by_key(|b| b.height);
        let times: Vec<u64> = blocks.iter().map(|b| b.timestamp).collect();
        Ok(BlockPace::from_timestamps(&times).unwrap_or_default())
    }
}

/// Reads the pace at `url` for `network`.
pub async fn block_pace(url: &str, network: Network) -> Result<BlockPace, ChainError> {
    let esplora = crate::chain::esplora(url)?;
    BlockPace::read(&esplora, network)
        .await
        .map_err(|source| ChainError::Esplora {
            url: url.into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_minutes_unless_measured() {
        let p = BlockPace::default();
        assert_eq!(p.approx(BlockDelta::ZERO), "now");
        assert_eq!(p.approx(BlockDelta::from_blocks(3)), "about 30 minutes");
        assert_eq!(p.approx(BlockDelta::from_blocks(30)), "about 5 hours");
        assert_eq!(p.approx(BlockDelta::from_blocks(4320)), "about 30 days");
    }

    #[test]
    fn a_devnet_mining_every_ten_seconds() {
        // A burst of blocks at start, then one every 10 s: the median gap wins.
        let times = [100, 100, 101, 111, 121, 131, 141, 151];
        let p = BlockPace::from_timestamps(&times).expect("enough blocks");
        assert_eq!(p.secs_per_block(), 10);
        assert_eq!(p.approx(BlockDelta::from_blocks(1000)), "about 2 hours");
        assert_eq!(p.approx(BlockDelta::from_blocks(9)), "about 90 seconds");
        assert_eq!(BlockPace::from_timestamps(&[5]), None);
        // Blocks mined in one burst still count at least a second each.
        assert_eq!(
            BlockPace::from_timestamps(&[7, 7, 7]).map(BlockPace::secs_per_block),
            Some(1)
        );
    }
}
