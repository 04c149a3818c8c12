//! The end of a factory nobody closed. A member still in a factory at its timeout `T` is paid
//! the whole leaf by the distribution transaction (`docs/protocol.md`, "Distribution
//! transaction"), so the LSP would forfeit its side of that channel and its L-stock. A factory
//! every member left closes by key path (`release.rs`); for any other, the LSP takes each of
//! its channels that is still off chain on chain itself, with nobody pressing a button, from
//! the last height at which that still ends before `T`
//! ([`shared::path::ClientPath::last_walk_start`]: `T − W − timeout_margin`, never before the
//! end of the dying period).
//!
//! It is the walk the LSP makes when an HTLC deadline passes (`walk.rs`): the client's tree
//! path, each transaction as soon as its relative lock allows (with a fee-paying child when it
//! pays less than today's rate), then the LSP's latest commitment, from which the channel
//! watch claims the LSP's balance. That commitment pays the client its balance at the client's
//! own key at once, so a member who is away is made whole without coming back, and one who
//! comes back finds its coins there.
//!
//! The LSP waits until the last safe height, not the end of the dying period, because it is
//! the party that is always online: a member gets every block until then to leave on its own
//! terms.
//!
//! Channels whose wallet moved out and released its key are not walked: their part of the tree
//! comes back by key path once the walks of the others put the tree above it on chain
//! (`sweep.rs`). The same sweep answers a key-path close that lost: a member that released its
//! key may still publish the old tree before the close confirms. The close can then never
//! confirm, so the LSP forgets it and sweeps the tree from the top ([`Router::close_lost`]).

use std::collections::BTreeMap;

use bitcoin::{Transaction, Txid};
use shared::pay::ChannelId;
use shared::types::FactoryId;

use super::onchain::Closing;
use super::Router;

/// How long after a walk could not start it is tried again.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

impl Router {
    /// Takes on chain every channel past its `retire_at` that is still off chain, in a factory
    /// not closed by key path, once.
    pub(super) fn retire_old_channels(&mut self) {
        let height = self.height;
        // A moved member's part of the tree is swept by key path (`sweep.rs`), once the walks
        // of the others put the tree above it on chain. But a factory with no channel but moved
        // ones, yet not closed by key path (its close could not be made, or a member never
        // opened its channel), has no other walk to spend its funding output before `T`: one
        // moved channel is walked, and the sweeps take the rest.
        let mut due: Vec<ChannelId> = Vec::new();
        let mut by_factory: BTreeMap<FactoryId, (bool, Option<ChannelId>)> = BTreeMap::new();
        for l in self.links.values().filter(|l| height >= l.retire_at) {
            let (stayer, moved) = by_factory.entry(l.id.factory).or_default();
            if l.closing == Some(Closing::Released) {
                moved.get_or_insert(l.id);
            } else {
                *stayer = true;
                due.push(l.id);
            }
        }
        due.extend(
            by_factory
                .into_iter()
                .filter(|(f, (stayer, _))| !stayer && !self.chain.key_closed.contains(f))
                .filter_map(|(_, (_, moved))| moved),
        );
        self.take_on_chain(
            due,
            "its factory nears its timeout with the channel still in it: taking it on chain",
        );
        // Moved channels whose sweep could not be made, until their walk starts.
        let unswept: Vec<ChannelId> = self
            .chain
            .unswept
            .iter()
            .copied()
            .filter(|id| !self.chain.retired.contains(id))
            .collect();
        if !unswept.is_empty() {
            self.take_on_chain(
                unswept,
                "a moved member's part of the tree cannot be swept: taking its channel on chain",
            );
        }
    }

    /// The funding output of `factory` was spent, in a confirmed block, by `spender`, which is
    /// not a key-path close (`release::step` tells): a member that released its key got the
    /// old tree mined before the close. The close can never confirm: the LSP forgets it and
    /// takes the tree back by key path, from the highest output on chain down (`sweep.rs`),
    /// since every member released its key.
    pub(super) fn close_lost(&mut self, factory: FactoryId, spender: Txid) {
        let Some(close) = self.chain.closes.get(&factory) else {
            return;
        };
        tracing::warn!(%factory, %spender, close = %close.compute_txid(), "the factory's tree went on chain instead of its key-path close: sweeping it");
        self.chain.closes.remove(&factory);
        self.chain.key_closed.remove(&factory);
        if let Err(e) = self.store.drop_close(factory) {
            tracing::error!(%factory, error = %e, "cannot forget the factory's close");
        }
        self.plan_sweeps(factory);
    }

    /// Walks each of `ids` that is still off chain, in a factory not closed by key path, to the
    /// LSP's latest commitment; once per channel.
    pub(super) fn take_on_chain(&mut self, ids: Vec<ChannelId>, why: &'static str) {
        let height = self.height;
        let due: Vec<(ChannelId, Transaction)> = ids
            .into_iter()
            .filter_map(|id| self.links.get(&id))
            .filter(|l| !self.chain.retired.contains(&l.id))
            .filter(|l| !self.chain.walks.contains_key(&l.id))
            .filter(|l| !self.chain.key_closed.contains(&l.id.factory))
            .filter(|l| !matches!(l.closing, Some(Closing::ChannelOnChain { .. })))
            .filter_map(|l| Some((l.id, l.channel.latest_signed()?.clone())))
            .collect();
        for (id, commitment) in due {
            if self
                .chain
                .retire_failed
                .get(&id)
                .is_some_and(|t| t.elapsed() < RETRY_AFTER)
            {
                continue;
            }
            tracing::warn!(channel = %id, height, "{why}");
            if !self.start_walk(id, commitment) {
                self.chain
                    .retire_failed
                    .insert(id, std::time::Instant::now());
                continue;
            }
            self.chain.retire_failed.remove(&id);
            self.chain.retired.insert(id);
            if self
                .links
                .get(&id)
                .is_some_and(|l| matches!(l.closing, None | Some(Closing::Expired)))
            {
                self.close_link(id, Closing::Retired);
            }
        }
    }
}
