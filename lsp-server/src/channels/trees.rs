//! The funded factories' trees, each built once.
//!
//! Every channel of a factory runs on its member's path of the factory's tree. Building a path
//! from the proposal checks the whole proposal (every key parsed, the funding output's keys
//! aggregated, the distribution transaction's N + 1 outputs), O(N) work; built for each channel
//! at start-up and on each reconnection, a 1,024-client factory cost O(N²). The tree is built
//! once here and each path taken from it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use shared::tree::FactoryTree;
use shared::types::FactoryId;

/// How many trees are kept: the ladder's live factories and a dying one, with room to spare.
const KEEP: usize = 4;

/// The last [`KEEP`] factories' trees, most recent last.
#[derive(Default)]
pub(super) struct FactoryTrees {
    built: Mutex<VecDeque<(FactoryId, Arc<FactoryTree>)>>,
}

impl FactoryTrees {
    /// Factory `factory`'s tree, if it is kept. A funded factory's proposal never changes, so
    /// a kept tree never goes stale.
    pub(super) fn get(&self, factory: FactoryId) -> Option<Arc<FactoryTree>> {
        let built = self.built.lock().expect("not poisoned");
        built
            .iter()
            .find(|(id, _)| *id == factory)
            .map(|(_, tree)| tree.clone())
    }

    /// Keeps `tree` as factory `factory`'s (dropping the oldest beyond [`KEEP`]).
    pub(super) fn insert(&self, factory: FactoryId, tree: FactoryTree) -> Arc<FactoryTree> {
        let tree = Arc::new(tree);
        let mut built = self.built.lock().expect("not poisoned");
        if built.len() == KEEP {
            built.pop_front();
        }
        built.push_back((factory, tree.clone()));
        tree
    }
}
