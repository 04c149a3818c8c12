//! LSP → wallet: the factory of one of the wallet's channels entered its dying period (or is
//! past it). Sent once per connection and channel, so an open wallet hears it when it happens
//! and a wallet that comes back hears it as it reconnects. The wallet computes the same stage
//! from its own path and tip; the notice only makes sure it is not missed while the page is open.

use bitcoin::absolute::Height;
use serde::{Deserialize, Serialize};

use super::{Life, Stage};
use crate::pay::ChannelId;

/// The factory of `channel` is ending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactoryNotice {
    /// The wallet's channel in that factory.
    pub channel: ChannelId,
    /// Where the factory is: `dying`, `expired` or `timed_out`.
    pub stage: Stage,
    /// The first block after its dying period.
    pub dying_ends: Height,
    /// Its timeout.
    pub timeout: Height,
    /// The block the LSP starts its next factory at, when it runs a ladder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rung: Option<Height>,
    /// What to do, in words.
    pub message: String,
}

impl FactoryNotice {
    /// The notice for `channel` in a factory of life `life`, at stage `stage`; `next_rung`:
    /// when the LSP starts its next factory, if it runs a ladder.
    pub fn new(
        channel: ChannelId,
        life: &Life,
        stage: Stage,
        next_rung: Option<Height>,
    ) -> FactoryNotice {
        let factory = channel.factory;
        let when = next_rung.map_or(String::new(), |h| {
            format!(" The next new factory starts at block {h}.")
        });
        let message = match stage {
            Stage::Active | Stage::Dying => format!(
                "Factory {factory} is in its dying period until block {}: move your balance to a \
                 new factory now.{when} If you do not, your money stays yours: you can still \
                 leave on chain before block {}.",
                life.dying_ends, life.timeout
            ),
            Stage::Expired => format!(
                "Factory {factory} is past its dying period: take your money out on chain before \
                 block {}.",
                life.timeout
            ),
            Stage::TimedOut => format!(
                "Factory {factory} is past its timeout: your share is paid on chain by its \
                 distribution transaction, or take it out yourself now."
            ),
        };
        FactoryNotice {
            channel,
            stage,
            dying_ends: life.dying_ends,
            timeout: life.timeout,
            next_rung,
            message,
        }
    }
}
