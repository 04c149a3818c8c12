//! Rebuilding the client's side of one leaf state's channel from what the payment store holds.
//! The payment client reopens its live channel with it; an exit closes with it the channel
//! whose output the leaf put on chain (the live one, or an older one if a superseded leaf
//! state confirmed).

use bitcoin::{Amount, FeeRate};
use shared::channel::{Channel, ChannelChange, CommitmentSpec, Side};
use shared::leaf::{Advance, LeafState};
use shared::pay::policy::channel_seed;
use shared::pay::{leaf_state_channel_params, ChannelOpen, ChannelPolicy};

use super::liquidity;
use super::store::{LeafChannel, LeafRecord, Opening, PayState, PendingAdvance};
use super::PayLeaf;

/// `leaf`'s record of its states, or state 0 alone if it never advanced.
pub fn leaf_record(state: &PayState, leaf: &PayLeaf) -> LeafRecord {
    state
        .leaves
        .get(&leaf.channel)
        .cloned()
        .unwrap_or_else(|| LeafRecord {
            states: shared::leaf::LeafStates::new(&leaf.path),
            openings: Default::default(),
            attempts: Default::default(),
        })
}

/// The client's channel of `key` on `leaf`, opened with the LSP's `open` and replaying the
/// stored `changes`. Refuses an opening fee rate outside `policy` (state 0's channel, whose
/// opening balances the LSP's open fixes).
pub fn restore_channel(
    leaf: &PayLeaf,
    record: &LeafRecord,
    key: LeafChannel,
    open: &ChannelOpen,
    changes: &[ChannelChange],
    policy: &ChannelPolicy,
) -> Result<Channel, String> {
    let state = record
        .states
        .states()
        .get(usize::from(key.leaf.0))
        .ok_or_else(|| format!("{} is not signed", key.leaf))?;
    let sold = |e: u8| record.states.states().get(usize::from(e)).map(|s| s.sold);
    let bought = match (sold(key.leaf.0), key.leaf.0.checked_sub(1).and_then(sold)) {
        (Some(now), Some(before)) => now.checked_sub(before).unwrap_or(Amount::ZERO),
        _ => Amount::ZERO,
    };
    let opening = record.openings.get(&key.leaf).map(|o| (o, bought));
    restore_on(leaf, record, key, state, opening, open, changes, policy)
}

/// [`restore_channel`] on `state`'s channel output, opened as `opening` says (a purchase of
/// the given amount), or as leaf state 0's channel when `None`.
#[allow(clippy::too_many_arguments)]
fn restore_on(
    leaf: &PayLeaf,
    record: &LeafRecord,
    key: LeafChannel,
    state: &LeafState,
    opening: Option<(&Opening, Amount)>,
    open: &ChannelOpen,
    changes: &[ChannelChange],
    policy: &ChannelPolicy,
) -> Result<Channel, String> {
    let params = leaf_state_channel_params(&leaf.path, state, policy).map_err(|e| e.to_string())?;
    let (spec, replay) = match opening {
        Some((opening, amount)) => {
            let (earlier, current) =
                liquidity::attempts_at(record, key.leaf, opening.log_from, amount);
            (
                opening.spec.clone(),
                liquidity::replayed(changes, &earlier, &current),
            )
        }
        None => {
            let feerate = open.feerate.unwrap_or(FeeRate::ZERO);
            if feerate < FeeRate::BROADCAST_MIN || feerate > policy.max_opening_feerate {
                return Err("the provider's opening fee rate is out of range; refusing it".into());
            }
            let spec = CommitmentSpec {
                lsp_balance: params.funding_output.value,
                client_balance: Amount::ZERO,
                htlcs: Vec::new(),
                feerate,
            };
            (spec, changes.to_vec())
        }
    };
    let seed = channel_seed(&leaf.factory_secret, key.channel, key.leaf);
    Channel::restore(
        Side::Client,
        params,
        leaf.factory_secret,
        &seed,
        open.peer_info(),
        spec,
        replay,
    )
    .map_err(|e| e.to_string())
}

/// The leaf state a purchase whose partial signatures left is signing (unsigned: the wallet
/// never received its final signature), if there is one.
pub fn pending_state(state: &PayState, leaf: &PayLeaf) -> Option<(LeafState, PendingAdvance)> {
    let pending = state.advances.get(&leaf.channel)?;
    let record = leaf_record(state, leaf);
    let advance = Advance::new(&leaf.path, record.states.latest(), pending.amount).ok()?;
    (advance.epoch() == pending.leaf).then(|| (advance.state, pending.clone()))
}

/// Adds to `kit` the leaf's states the store holds (after liquidity purchases; state 0 alone
/// needs no record) and the state of a purchase being signed, whose final signatures never
/// came (never broadcast by this wallet, but recognised if the LSP publishes it).
pub fn add_leaf_states(
    kit: &mut shared::exit::ExitKit,
    state: &PayState,
    leaf: &PayLeaf,
) -> Result<(), shared::exit::ExitError> {
    let record = leaf_record(state, leaf);
    if record.states.states().len() > 1 {
        kit.set_leaf(record.states)?;
    }
    if let Some((next, _)) = pending_state(state, leaf) {
        kit.expect_leaf(next)?;
    }
    Ok(())
}

/// Every channel of `leaf` the store can rebuild (one per leaf state it reached, and the one
/// of a purchase being signed), for an exit.
pub fn leaf_channels(state: &PayState, leaf: &PayLeaf, policy: &ChannelPolicy) -> Vec<Channel> {
    let record = leaf_record(state, leaf);
    let pending = pending_state(state, leaf);
    state
        .channels
        .iter()
        .filter(|(key, _)| key.channel == leaf.channel)
        .filter_map(|(key, (open, changes))| {
            let open = open.as_ref()?;
            match &pending {
                Some((next, p)) if p.leaf == key.leaf => {
                    let opening = Some((&p.opening, p.amount));
                    restore_on(leaf, &record, *key, next, opening, open, changes, policy).ok()
                }
                _ => restore_channel(leaf, &record, *key, open, changes, policy).ok(),
            }
        })
        .collect()
}
