//! The funded factories' trees, each built once.
//!
//! Every channel of a factory runs on its member's path of the factory's tree. Building a path
//! from the proposal checks the whole proposal (every key parsed, the funding output's keys
//! aggregated, the distribution transaction's N + 1 outputs), O(N) work. Built for each channel
//! when it first opens and again at every start-up (and for each liquidity purchase, exit kit
//! and L-stock claim), a factory of N cost the router task O(N²): about 90 ms per channel at
//! N = 1,024, for each of its 1,024 channels. The tree is built once here and each path taken
//! from it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use shared::tree::{FactoryTree, TreeError};
use shared::types::FactoryId;

use super::store::ChannelStoreError;
use super::Router;

/// How many trees are kept: the ladder's live factories and a dying one, with room to spare.
const KEEP: usize = 4;

/// The last [`KEEP`] factories' trees, most recent last.
#[derive(Default)]
pub(super) struct FactoryTrees {
    built: Mutex<VecDeque<(FactoryId, Arc<FactoryTree>)>>,
}

/// Why a funded factory's tree is not at hand.
#[derive(Debug, thiserror::Error)]
pub(super) enum TreeLoadError {
    #[error("not a funded factory")]
    NotFunded,
    #[error(transparent)]
    Store(#[from] ChannelStoreError),
    #[error("the factory's proposal does not build: {0}")]
    Tree(#[from] TreeError),
}

impl Router {
    /// Funded factory `factory`'s tree: built from its stored proposal the first time, kept
    /// after.
    pub(super) fn funded_tree(
        &self,
        factory: FactoryId,
    ) -> Result<Arc<FactoryTree>, TreeLoadError> {
        if let Some(tree) = self.trees.get(factory) {
            return Ok(tree);
        }
        let proposal = self
            .store
            .funded_proposal(factory)?
            .ok_or(TreeLoadError::NotFunded)?;
        Ok(self.trees.insert(factory, FactoryTree::build(&proposal)?))
    }
}

impl FactoryTrees {
    /// Factory `factory`'s tree, if it is kept. A funded factory's proposal never changes, so
    /// a kept tree never goes stale.
    fn get(&self, factory: FactoryId) -> Option<Arc<FactoryTree>> {
        let built = self.built.lock().expect("not poisoned");
        built
            .iter()
            .find(|(id, _)| *id == factory)
            .map(|(_, tree)| tree.clone())
    }

    /// Keeps `tree` as factory `factory`'s (dropping the oldest beyond [`KEEP`]).
    fn insert(&self, factory: FactoryId, tree: FactoryTree) -> Arc<FactoryTree> {
        let tree = Arc::new(tree);
        let mut built = self.built.lock().expect("not poisoned");
        if built.len() == KEEP {
            built.pop_front();
        }
        built.push_back((factory, tree.clone()));
        tree
    }
}

#[cfg(test)]
mod tests {
    use shared::params::FactoryParams;
    use shared::testing::tree::{sample_proposal, TestKeys};

    use super::*;

    #[test]
    fn a_tree_is_kept_until_newer_factories_push_it_out() {
        let keys = TestKeys::generate(4, 1);
        let tree = || FactoryTree::build(&sample_proposal(FactoryParams::regtest(), &keys, 1));
        let trees = FactoryTrees::default();
        let first = trees.insert(FactoryId(0), tree().unwrap());
        let kept = trees.get(FactoryId(0)).expect("kept");
        assert!(Arc::ptr_eq(&first, &kept), "the same tree, not built again");
        for f in 1..KEEP as u64 {
            trees.insert(FactoryId(f), tree().unwrap());
        }
        assert!(trees.get(FactoryId(0)).is_some(), "{KEEP} trees are kept");
        trees.insert(FactoryId(KEEP as u64), tree().unwrap());
        assert!(trees.get(FactoryId(0)).is_none(), "the oldest goes first");
        assert!(trees.get(FactoryId(1)).is_some());
    }
}
