//! Client-side checks: a client signs nothing it has not rebuilt and checked itself.
//!
//! - [`check_proposal`]: before the first signature. Checks the network, the parameters, the fee
//!   rate against the client's limits, the LSP key, the client's own amounts, the funding
//!   amount, and both heights: that the timeout `T` leaves room for a worst-case exit after the
//!   dying period, and that the sweep height `T_sweep` leaves room for a whole worst-case exit
//!   after `T` (the LSP can kill the distribution transaction at any height up to `T`); then
//!   rebuilds the client's path and runs [`check_path`] on it.
//! - [`check_path`]: on any path (freshly built, or loaded from storage): version, input chain
//!   from the funding outpoint, every `nSequence` and `nLockTime`, amounts and fees of every
//!   transaction, the timeout leaf (at `T_sweep`) of every output on the way, the leaf's
//!   outputs, the distribution payout (at `T`); finally that the path equals a fresh rebuild
//!   from its proposal.
//! - [`check_advance`]: before signing a new epoch or a refresh: same factory, same amounts,
//!   a newer epoch, and every re-signed state strictly faster than the one it replaces.
//! - [`check_funding_tx`]: once the funding transaction is seen, that it creates the output the
//!   path spends.
//!
//! Every refusal is a [`ProposalError`] saying what was wrong.

use bitcoin::absolute::{Height, LockTime};
use bitcoin::secp256k1::PublicKey;
use bitcoin::transaction::Version;
use bitcoin::{Amount, FeeRate, Network, Sequence, Transaction};

use crate::exit::worst_case_cost;
use crate::musig::KeyAgg;
use crate::params::{BlockDelta, Epoch, ParamsError};
use crate::path::ClientPath;
use crate::tree::scripts::{self, internal_key};
use crate::tree::{FactoryProposal, NodeKind, TreeError, TreeNode};
use crate::types::NodeId;

/// The client's own limits, independent of any LSP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPolicy {
    /// The wallet's network.
    pub network: Network,
    /// Highest pre-signed fee rate the client accepts (fees come out of the factory).
    pub max_fee_rate: FeeRate,
    /// Lowest pre-signed fee rate: below it a UTXO-less client could not get an exit relayed.
    pub min_fee_rate: FeeRate,
    /// Blocks of slack the client wants after a worst-case exit, on top of the LSP's margin.
    pub min_margin: BlockDelta,
    /// The shortest time windows the client accepts (the network preset's, see
    /// [`TimeFloors`]): below them a window could close before anyone can react.
    pub floors: TimeFloors,
    /// The longest tree walk the client accepts: the walk `W` its HTLC expiries are sized for
    /// ([`crate::pay::ChannelPolicy::walk`]). A slower tree would leave its HTLCs
    /// unenforceable on chain.
    pub max_walk: BlockDelta,
}

/// The shortest windows a client accepts in a proposal. Each is a reaction time: the DW step
/// is how long a newer state has to confirm before an older one may; the L-stock CSV is how
/// long the LSP's watch has to publish a redistribution; the timeout margin absorbs fee spikes
/// and full blocks at the end of a tree walk; the dying period is when a client must come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeFloors {
    /// Smallest DW step.
    pub step: BlockDelta,
    /// Smallest L-stock CSV.
    pub lstock_csv: BlockDelta,
    /// Smallest timeout margin.
    pub timeout_margin: BlockDelta,
    /// Shortest dying period.
    pub dying: BlockDelta,
}

impl TimeFloors {
    /// The network preset's windows ([`FactoryParams::for_network`]).
    pub fn for_network(network: Network) -> TimeFloors {
        let preset = crate::params::FactoryParams::for_network(network);
        TimeFloors {
            step: preset.step,
            lstock_csv: preset.lstock_csv,
            timeout_margin: preset.timeout_margin,
            dying: preset.dying,
        }
    }

    /// The first window of `params` below its floor: (name, got, floor).
    pub fn check(&self, params: &crate::params::FactoryParams) -> Option<(&'static str, u32, u32)> {
        [
            ("DW step", params.step, self.step),
            ("L-stock CSV", params.lstock_csv, self.lstock_csv),
            ("timeout margin", params.timeout_margin, self.timeout_margin),
            ("dying period", params.dying, self.dying),
        ]
        .into_iter()
        .find(|(_, got, floor)| got < floor)
        .map(|(what, got, floor)| (what, got.to_blocks(), floor.to_blocks()))
    }
}

impl ClientPolicy {
    /// Limits for `network`: 1 to 50 sat/vB, and no extra margin.
    pub fn for_network(network: Network) -> ClientPolicy {
        ClientPolicy {
            network,
            max_fee_rate: FeeRate::from_sat_per_vb_u32(50),
            min_fee_rate: FeeRate::BROADCAST_MIN,
            min_margin: BlockDelta::ZERO,
            floors: TimeFloors::for_network(network),
            max_walk: crate::pay::ChannelPolicy::for_network(network).walk,
        }
    }
}

/// What the client asked for when it joined (the quote it accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// Its fresh factory key.
    pub my_key: PublicKey,
    /// The LSP's factory key.
    pub lsp_key: PublicKey,
    /// The channel value in its leaf.
    pub channel: Amount,
    /// The L-stock value in its leaf.
    pub lstock: Amount,
}

/// Why a client refuses a proposal, a path, or an advance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProposalError {
    /// The factory is on another network.
    #[error("the factory is on {got}, but this wallet is on {want}")]
    WrongNetwork {
        /// The proposal's network.
        got: Network,
        /// The wallet's.
        want: Network,
    },
    /// The parameters are invalid.
    #[error("invalid factory parameters: {0}")]
    InvalidParams(#[from] ParamsError),
    /// The pre-signed fee rate exceeds the client's limit.
    #[error("pre-signed fee rate {got_sat_vb} sat/vB exceeds this wallet's limit of {max_sat_vb}")]
    FeeRateTooHigh {
        /// Proposed, sat/vB rounded up.
        got_sat_vb: u64,
        /// Limit, sat/vB.
        max_sat_vb: u64,
    },
    /// The pre-signed fee rate is too low to get an exit relayed.
    #[error(
        "pre-signed fee rate {got_sat_vb} sat/vB is below this wallet's minimum of {min_sat_vb}"
    )]
    FeeRateTooLow {
        /// Proposed, sat/vB rounded down.
        got_sat_vb: u64,
        /// Minimum, sat/vB.
        min_sat_vb: u64,
    },
    /// The LSP key is not the one the client joined with.
    #[error("the proposal's LSP key {got} is not the key this wallet joined with")]
    WrongLspKey {
        /// The proposal's.
        got: PublicKey,
    },
    /// The client's key is not in the proposal.
    #[error("this wallet's key is not among the proposal's clients")]
    NotAMember,
    /// The client's channel amount differs from what it asked for.
    #[error("the proposal gives this wallet a channel of {got}, but it asked for {expected}")]
    WrongChannelAmount {
        /// What the client asked for.
        expected: Amount,
        /// What the proposal says.
        got: Amount,
    },
    /// The client's L-stock amount differs from what it bought.
    #[error("the proposal gives this wallet L-stock of {got}, but it bought {expected}")]
    WrongLStockAmount {
        /// What the client bought.
        expected: Amount,
        /// What the proposal says.
        got: Amount,
    },
    /// The funding output's value is not what the tree needs.
    #[error("the funding output holds {got} but the tree needs exactly {expected}")]
    FundingAmountMismatch {
        /// Needed.
        expected: Amount,
        /// Proposed.
        got: Amount,
    },
    /// The timeout leaves no room for a worst-case exit after the dying period.
    #[error(
        "the factory times out at height {timeout}, but a worst-case exit after the dying \
         period needs it no earlier than {needed}"
    )]
    TimeoutTooClose {
        /// The proposal's timeout.
        timeout: Height,
        /// The earliest acceptable.
        needed: Height,
    },
    /// A time window of the proposal is shorter than this network allows.
    #[error("the proposal's {what} is {got} blocks; this network needs at least {min}")]
    WindowTooShort {
        /// Which window.
        what: &'static str,
        /// The proposal's.
        got: u32,
        /// The floor.
        min: u32,
    },
    /// A walk of the proposed tree could take longer than HTLC expiries allow for.
    #[error(
        "a walk of this factory's tree can take {walk}, longer than the {max} \
         payments on this network allow for"
    )]
    WalkTooLong {
        /// The proposal's worst walk.
        walk: BlockDelta,
        /// The longest this wallet accepts.
        max: BlockDelta,
    },
    /// The sweep height leaves no room for a worst-case exit started at the timeout.
    #[error(
        "the LSP may sweep the tree's outputs from height {sweep}, but a worst-case exit \
         started at the timeout {timeout} needs it no earlier than {needed}"
    )]
    SweepTooClose {
        /// The proposal's timeout `T` (the distribution transaction's lock).
        timeout: Height,
        /// The proposal's sweep height `T_sweep` (the timeout leaf's lock).
        sweep: Height,
        /// The earliest acceptable sweep height.
        needed: Height,
    },
    /// The tree cannot be built.
    #[error("the proposal does not describe a valid tree: {0}")]
    Tree(#[from] TreeError),
    /// A transaction is not version 2.
    #[error("node {node} is not a version 2 transaction")]
    WrongVersion {
        /// The node.
        node: NodeId,
    },
    /// A transaction does not have exactly one input.
    #[error("node {node} must have exactly one input")]
    WrongInputCount {
        /// The node.
        node: NodeId,
    },
    /// A node does not spend its parent's output (or the funding output).
    #[error("node {node} does not spend the output its parent creates for it")]
    PathBroken {
        /// The node.
        node: NodeId,
    },
    /// Wrong `nSequence`.
    #[error("node {node} has nSequence {got:#x}, expected {want:#x}")]
    WrongSequence {
        /// The node.
        node: NodeId,
        /// Found.
        got: u32,
        /// Expected.
        want: u32,
    },
    /// Wrong `nLockTime`.
    #[error("node {node} has nLockTime {got}, expected {want}")]
    WrongLockTime {
        /// The node.
        node: NodeId,
        /// Found.
        got: u32,
        /// Expected.
        want: u32,
    },
    /// Outputs exceed the input.
    #[error("node {node} pays out more than its input")]
    AmountsDoNotConserve {
        /// The node.
        node: NodeId,
    },
    /// A fee above the client's fee-rate limit.
    #[error("node {node} pays a fee of {fee}, above this wallet's limit of {max}")]
    FeeTooHigh {
        /// The node.
        node: NodeId,
        /// Its fee.
        fee: Amount,
        /// The limit for its size.
        max: Amount,
    },
    /// A fee below the factory's pre-signed rate.
    #[error("node {node} pays a fee of {fee}, below the factory rate's {min}")]
    FeeTooLow {
        /// The node.
        node: NodeId,
        /// Its fee.
        fee: Amount,
        /// The minimum for its size.
        min: Amount,
    },
    /// The last output is not the expected P2A anchor.
    #[error("node {node} lacks its P2A anchor output")]
    MissingAnchor {
        /// The node.
        node: NodeId,
    },
    /// An output on the path lacks the factory's timeout leaf at the sweep height (or has
    /// another one).
    #[error("the output node {node} spends does not carry the factory's timeout script")]
    WrongTimeoutScript {
        /// The spending node.
        node: NodeId,
    },
    /// The leaf's outputs are not the client's channel and L-stock.
    #[error("the leaf is wrong: {0}")]
    WrongLeaf(&'static str),
    /// The distribution transaction does not pay the client correctly.
    #[error("the distribution transaction is wrong: {0}")]
    WrongDistribution(&'static str),
    /// A stored path is not even shaped like a path.
    #[error("the path is malformed (no nodes, unknown client, or a node without one input)")]
    MalformedPath,
    /// The path differs from a rebuild of its own proposal.
    #[error("node {node} differs from what the proposal rebuilds to; the stored path is corrupt")]
    PathMismatch {
        /// The first differing node.
        node: NodeId,
    },
    /// The funding transaction does not create the funding output.
    #[error("the funding transaction does not create the output the factory spends")]
    FundingOutputMismatch,
    /// An advance changes more than the epoch (or timeout).
    #[error("the new state changes the factory's members, amounts, parameters or funding")]
    AdvanceChangesFactory,
    /// An advance does not move to a later epoch.
    #[error("the new state's {new} is not after the current {old}")]
    EpochNotNewer {
        /// Current.
        old: Epoch,
        /// Proposed.
        new: Epoch,
    },
    /// A refresh may only move the timeout later.
    #[error("the new state's timeout {new} is before the current {old}")]
    TimeoutShortened {
        /// Current.
        old: Height,
        /// Proposed.
        new: Height,
    },
    /// A re-signed state would not beat the state it replaces.
    #[error("state node {node}'s new delay {new} is not shorter than the old {old}")]
    StateNotNewer {
        /// The node.
        node: NodeId,
        /// Old delay.
        old: BlockDelta,
        /// New delay.
        new: BlockDelta,
    },
}

/// Checks a proposal for the client described by `expect`, at chain height `now`; returns its
/// rebuilt, checked path (ready for signing jobs).
pub fn check_proposal(
    proposal: &FactoryProposal,
    expect: &Expectation,
    policy: &ClientPolicy,
    now: Height,
) -> Result<ClientPath, ProposalError> {
    Ok(check_proposal_with_keys(proposal, expect, policy, now)?.0)
}

/// [`check_proposal`], also returning the key aggregations the check made
/// ([`ClientPath::build_with_keys`]), so signing the path does not aggregate the same sets again.
pub fn check_proposal_with_keys(
    proposal: &FactoryProposal,
    expect: &Expectation,
    policy: &ClientPolicy,
    now: Height,
) -> Result<(ClientPath, Vec<KeyAgg>), ProposalError> {
    let params = &proposal.params;
    if params.network != policy.network {
        return Err(ProposalError::WrongNetwork {
            got: params.network,
            want: policy.network,
        });
    }
    params.validate()?;
    if let Some((what, got, min)) = policy.floors.check(params) {
        return Err(ProposalError::WindowTooShort { what, got, min });
    }
    if params.fee_rate > policy.max_fee_rate {
        return Err(ProposalError::FeeRateTooHigh {
            got_sat_vb: params.fee_rate.to_sat_per_vb_ceil(),
            max_sat_vb: policy.max_fee_rate.to_sat_per_vb_floor(),
        });
    }
    if params.fee_rate < policy.min_fee_rate {
        return Err(ProposalError::FeeRateTooLow {
            got_sat_vb: params.fee_rate.to_sat_per_vb_floor(),
            min_sat_vb: policy.min_fee_rate.to_sat_per_vb_ceil(),
        });
    }
    if proposal.lsp_key != expect.lsp_key {
        return Err(ProposalError::WrongLspKey {
            got: proposal.lsp_key,
        });
    }
    let me = proposal
        .client_by_key(&expect.my_key)
        .ok_or(ProposalError::NotAMember)?;
    let entry = &proposal.clients[me.0 as usize];
    if entry.channel != expect.channel {
        return Err(ProposalError::WrongChannelAmount {
            expected: expect.channel,
            got: entry.channel,
        });
    }
    if entry.lstock != expect.lstock {
        return Err(ProposalError::WrongLStockAmount {
            expected: expect.lstock,
            got: entry.lstock,
        });
    }
    let expected = FactoryProposal::required_funding(params, &proposal.clients)?;
    if expected != proposal.funding_amount {
        return Err(ProposalError::FundingAmountMismatch {
            expected,
            got: proposal.funding_amount,
        });
    }
    let timeout = proposal.timeout()?;
    let sweep = proposal.sweep_height()?;
    let worst = worst_case_cost(params, proposal.client_count())?.blocks;
    if worst > policy.max_walk {
        return Err(ProposalError::WalkTooLong {
            walk: worst,
            max: policy.max_walk,
        });
    }
    let margin = params.timeout_margin.max(policy.min_margin);
    let overflow = || ProposalError::Tree(TreeError::HeightOverflow);
    // T: a tree exit started at the end of the dying period ends before the distribution
    // transaction becomes valid.
    let needed = params
        .active
        .checked_add(params.dying)
        .and_then(|d| d.checked_add(worst))
        .and_then(|d| d.checked_add(margin))
        .and_then(|d| d.after(now))
        .ok_or_else(overflow)?;
    if timeout < needed {
        return Err(ProposalError::TimeoutTooClose { timeout, needed });
    }
    // T_sweep: the LSP can spend the funding output (killing the distribution transaction) at
    // any height up to T; a tree exit started then must still end before the LSP may sweep.
    let needed = worst
        .checked_add(margin)
        .and_then(|d| d.after(timeout))
        .ok_or_else(overflow)?;
    if sweep < needed {
        return Err(ProposalError::SweepTooClose {
            timeout,
            sweep,
            needed,
        });
    }
    let (path, keys) = ClientPath::build_with_keys(proposal, me)?;
    // Freshly built from the proposal: the structural checks suffice (no second rebuild).
    check_structure(&path, policy)?;
    Ok((path, keys))
}

/// Checks every transaction of a path, then that it equals a rebuild of its own proposal.
pub fn check_path(path: &ClientPath, policy: &ClientPolicy) -> Result<(), ProposalError> {
    check_structure(path, policy)?;
    let rebuilt = ClientPath::build(path.proposal(), path.client())?;
    let strip = |n: &TreeNode| TreeNode {
        signature: None,
        ..n.clone()
    };
    let ours = path.nodes().iter().chain([path.distribution()]);
    let theirs = rebuilt.nodes().iter().chain([rebuilt.distribution()]);
    for (a, b) in ours.zip(theirs) {
        if strip(a) != *b {
            return Err(ProposalError::PathMismatch { node: a.id });
        }
    }
    if path.nodes().len() != rebuilt.nodes().len()
        || path.timeout() != rebuilt.timeout()
        || path.sweep_height() != rebuilt.sweep_height()
    {
        return Err(ProposalError::PathMismatch {
            node: path.leaf().id,
        });
    }
    Ok(())
}

/// Refuses a path whose shape would make the other checks (or an exit) meaningless.
pub(crate) fn check_well_formed(path: &ClientPath) -> Result<(), ProposalError> {
    let shaped = !path.nodes().is_empty()
        && path.client().0 < path.proposal().client_count()
        && path
            .nodes()
            .iter()
            .chain([path.distribution()])
            .all(TreeNode::is_well_formed);
    shaped.then_some(()).ok_or(ProposalError::MalformedPath)
}

/// Every check of [`check_path`] except the final rebuild.
fn check_structure(path: &ClientPath, policy: &ClientPolicy) -> Result<(), ProposalError> {
    check_well_formed(path)?;
    let proposal = path.proposal();
    let params = &proposal.params;
    let layers = proposal.dw_layers();
    let lsp = proposal.lsp_key.x_only_public_key().0;
    // The timeout leaf locks to the sweep height, never to the distribution's lock `T`.
    let sweep = proposal.sweep_height()?;
    if path.sweep_height() != sweep || path.timeout() != proposal.timeout()? {
        return Err(ProposalError::PathMismatch {
            node: path.leaf().id,
        });
    }
    let timeout_root = scripts::single_leaf_root(&scripts::timeout_script(sweep, lsp));
    let nodes = path.nodes();
    for (i, node) in nodes.iter().enumerate() {
        check_common(node, policy, params.fee_rate, params.anchor_value)?;
        let input = &node.tx.input[0];
        let spends_parent = match i {
            0 => input.previous_output == proposal.funding_outpoint,
            _ => {
                let parent = &nodes[i - 1];
                input.previous_output.txid == parent.txid()
                    && parent.tx.output.get(input.previous_output.vout as usize)
                        == Some(&node.prevout)
            }
        };
        if !spends_parent {
            return Err(ProposalError::PathBroken { node: node.id });
        }
        let want = match node.kind {
            NodeKind::State { layer, .. } => params
                .state_delay(layers, layer, proposal.epoch)
                .to_relative_sequence()
                .ok_or(ProposalError::Tree(TreeError::HeightOverflow))?,
            // Leaf state 0: the longest delay of the leaf's own layer.
            NodeKind::Leaf { .. } => crate::leaf::delay(params, crate::leaf::LeafEpoch::FIRST)
                .and_then(|d| d.to_relative_sequence())
                .ok_or(ProposalError::Tree(TreeError::HeightOverflow))?,
            _ => Sequence::MAX,
        };
        check_sequence(node, want)?;
        check_lock_time(node, LockTime::ZERO)?;
        // Outputs created by a state carry the timeout leaf (at T_sweep); all others are
        // key-path only.
        let parent_is_state = i > 0 && matches!(nodes[i - 1].kind, NodeKind::State { .. });
        let want_root = parent_is_state.then_some(timeout_root);
        if node.merkle_root != want_root {
            return Err(ProposalError::WrongTimeoutScript { node: node.id });
        }
    }
    check_leaf(path)?;
    check_distribution(path, policy)
}

fn check_common(
    node: &TreeNode,
    policy: &ClientPolicy,
    fee_rate: FeeRate,
    anchor: Amount,
) -> Result<(), ProposalError> {
    let id = node.id;
    if node.tx.version != Version::TWO {
        return Err(ProposalError::WrongVersion { node: id });
    }
    if node.tx.input.len() != 1 {
        return Err(ProposalError::WrongInputCount { node: id });
    }
    let out: Option<Amount> = node
        .tx
        .output
        .iter()
        .try_fold(Amount::ZERO, |acc, o| acc.checked_add(o.value));
    let fee = out
        .and_then(|o| node.prevout.value.checked_sub(o))
        .ok_or(ProposalError::AmountsDoNotConserve { node: id })?;
    let vsize = node.vsize();
    if node.kind != NodeKind::Distribution {
        let max = policy
            .max_fee_rate
            .fee_vb(vsize)
            .unwrap_or(Amount::MAX_MONEY);
        if fee > max {
            return Err(ProposalError::FeeTooHigh { node: id, fee, max });
        }
    }
    let min = fee_rate.fee_vb(vsize).unwrap_or(Amount::MAX_MONEY);
    if fee < min {
        return Err(ProposalError::FeeTooLow { node: id, fee, min });
    }
    match node.tx.output.last() {
        Some(o) if o.script_pubkey == bitcoin::ScriptBuf::new_p2a() && o.value == anchor => Ok(()),
        _ => Err(ProposalError::MissingAnchor { node: id }),
    }
}

fn check_sequence(node: &TreeNode, want: Sequence) -> Result<(), ProposalError> {
    let got = node.tx.input[0].sequence;
    if got != want {
        return Err(ProposalError::WrongSequence {
            node: node.id,
            got: got.to_consensus_u32(),
            want: want.to_consensus_u32(),
        });
    }
    Ok(())
}

fn check_lock_time(node: &TreeNode, want: LockTime) -> Result<(), ProposalError> {
    if node.tx.lock_time != want {
        return Err(ProposalError::WrongLockTime {
            node: node.id,
            got: node.tx.lock_time.to_consensus_u32(),
            want: want.to_consensus_u32(),
        });
    }
    Ok(())
}

fn check_leaf(path: &ClientPath) -> Result<(), ProposalError> {
    let proposal = path.proposal();
    let leaf = path.leaf();
    if !matches!(leaf.kind, NodeKind::Leaf { client, .. } if client == path.client()) {
        return Err(ProposalError::WrongLeaf(
            "the path does not end in this client's leaf",
        ));
    }
    let entry = &proposal.clients[path.client().0 as usize];
    let pair = internal_key(&[proposal.lsp_key, entry.key])?;
    let lsp = proposal.lsp_key.x_only_public_key().0;
    let lstock_root =
        scripts::single_leaf_root(&scripts::lstock_script(proposal.params.lstock_csv, lsp));
    let secp = crate::secp::ctx();
    let outs = &leaf.tx.output;
    if outs.len() != 3 {
        return Err(ProposalError::WrongLeaf(
            "a leaf has channel, L-stock and anchor outputs",
        ));
    }
    if outs[0].value != entry.channel
        || outs[0].script_pubkey != bitcoin::ScriptBuf::new_p2tr(secp, pair, None)
    {
        return Err(ProposalError::WrongLeaf(
            "the channel output is not MuSig2(client, LSP)",
        ));
    }
    if outs[1].value != entry.lstock
        || outs[1].script_pubkey != bitcoin::ScriptBuf::new_p2tr(secp, pair, Some(lstock_root))
    {
        return Err(ProposalError::WrongLeaf(
            "the L-stock output is not as agreed",
        ));
    }
    if leaf.prevout.script_pubkey.is_p2tr() && leaf.signers.len() == 1 {
        Ok(())
    } else {
        Err(ProposalError::WrongLeaf(
            "the leaf must spend an output of the client and LSP",
        ))
    }
}

fn check_distribution(path: &ClientPath, policy: &ClientPolicy) -> Result<(), ProposalError> {
    let proposal = path.proposal();
    let d = path.distribution();
    check_common(
        d,
        policy,
        proposal.params.fee_rate,
        proposal.params.anchor_value,
    )?;
    if d.tx.input[0].previous_output != proposal.funding_outpoint
        || d.prevout != *path.funding_output()
    {
        return Err(ProposalError::WrongDistribution(
            "it does not spend the funding output",
        ));
    }
    check_sequence(d, Sequence::ENABLE_LOCKTIME_NO_RBF)?;
    check_lock_time(d, LockTime::Blocks(path.timeout()))?;
    let entry = &proposal.clients[path.client().0 as usize];
    let secp = crate::secp::ctx();
    let want_spk = bitcoin::ScriptBuf::new_p2tr(secp, entry.key.x_only_public_key().0, None);
    match d.tx.output.get(path.client().0 as usize) {
        Some(o) if o.script_pubkey == want_spk && Some(o.value) == entry.leaf_value() => Ok(()),
        _ => Err(ProposalError::WrongDistribution(
            "it does not pay this client its channel plus L-stock",
        )),
    }
}

/// Checks a new state (`new`) against the client's current one (`old`) before signing it.
///
/// Run [`check_path`] (or [`check_proposal`]) on `new` as well; this only compares the two.
pub fn check_advance(old: &ClientPath, new: &ClientPath) -> Result<(), ProposalError> {
    check_well_formed(old)?;
    check_well_formed(new)?;
    let (a, b) = (old.proposal(), new.proposal());
    if a.params != b.params
        || a.lsp_key != b.lsp_key
        || a.clients != b.clients
        || a.funding_outpoint != b.funding_outpoint
        || a.funding_amount != b.funding_amount
        || old.client() != new.client()
    {
        return Err(ProposalError::AdvanceChangesFactory);
    }
    if new.epoch() <= old.epoch() {
        return Err(ProposalError::EpochNotNewer {
            old: old.epoch(),
            new: new.epoch(),
        });
    }
    if new.timeout() < old.timeout() {
        return Err(ProposalError::TimeoutShortened {
            old: old.timeout(),
            new: new.timeout(),
        });
    }
    for n in new
        .nodes()
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::State { .. }))
    {
        let replaced = old.nodes().iter().find(|o| {
            matches!(o.kind, NodeKind::State { .. }) && o.spent_outpoint() == n.spent_outpoint()
        });
        if let Some(o) = replaced {
            if o.tx != n.tx && n.relative_delay() >= o.relative_delay() {
                return Err(ProposalError::StateNotNewer {
                    node: n.id,
                    old: o.relative_delay(),
                    new: n.relative_delay(),
                });
            }
        }
    }
    Ok(())
}

/// Checks that `funding_tx` creates the funding output `path` spends.
pub fn check_funding_tx(path: &ClientPath, funding_tx: &Transaction) -> Result<(), ProposalError> {
    let outpoint = path.funding_outpoint();
    let created = funding_tx.compute_txid() == outpoint.txid
        && funding_tx.output.get(outpoint.vout as usize) == Some(path.funding_output());
    created
        .then_some(())
        .ok_or(ProposalError::FundingOutputMismatch)
}
