//! A factory's life in block heights: active, then its dying period, then the time left before
//! its timeout, computed from the parameters and creation height in its proposal (the same
//! numbers the signed terms publish).

use bitcoin::absolute::Height;
use serde::{Deserialize, Serialize};

use crate::tree::FactoryProposal;

/// Where a factory is in its life at some tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Before its dying period: nothing to do.
    Active,
    /// In its dying period: members move to a newer factory.
    Dying,
    /// Past its dying period, before its timeout: members still in it leave on chain.
    Expired,
    /// Past its timeout: the distribution transaction is valid.
    TimedOut,
}

impl Stage {
    /// The stage in a few words, for the operator's view.
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Active => "active",
            Stage::Dying => "in its dying period",
            Stage::Expired => "past its dying period",
            Stage::TimedOut => "past its timeout",
        }
    }
}

/// The heights that mark a factory's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Life {
    /// Its creation (or last refresh) height.
    pub created: Height,
    /// The first block of its dying period.
    pub dying_at: Height,
    /// The first block after its dying period.
    pub dying_ends: Height,
    /// Its timeout `T` (the distribution transaction's lock).
    pub timeout: Height,
    /// `T_sweep`, when the LSP may sweep what is left in the tree.
    pub sweep_at: Height,
}

impl Life {
    /// The life of `proposal`'s factory (heights that would overflow read as never).
    pub fn of(proposal: &FactoryProposal) -> Life {
        let params = &proposal.params;
        let created = proposal.creation_height;
        let dying_at = params.active.after(created).unwrap_or(Height::MAX);
        Life {
            created,
            dying_at,
            dying_ends: params.dying.after(dying_at).unwrap_or(Height::MAX),
            timeout: params.timeout_at(created).unwrap_or(Height::MAX),
            sweep_at: params.sweep_height_at(created).unwrap_or(Height::MAX),
        }
    }

    /// The stage at `tip`.
    pub fn stage(&self, tip: Height) -> Stage {
        if tip < self.dying_at {
            Stage::Active
        } else if tip < self.dying_ends {
            Stage::Dying
        } else if tip < self.timeout {
            Stage::Expired
        } else {
            Stage::TimedOut
        }
    }

    /// What happens next after `tip`, in words, and the height it is due.
    pub fn next(&self, tip: Height) -> (&'static str, Height) {
        match self.stage(tip) {
            Stage::Active => ("its dying period starts", self.dying_at),
            Stage::Dying => ("its dying period ends", self.dying_ends),
            Stage::Expired => (
                "its timeout: the distribution transaction is valid",
                self.timeout,
            ),
            Stage::TimedOut => ("the LSP may sweep what is left in the tree", self.sweep_at),
        }
    }
}
