//! Factory parameters per network: tree shape, Decker-Wattenhofer timing, lifetime and fees.
//!
//! [`FactoryParams`] is what an LSP publishes and every client rebuilds the tree from. Parameters
//! that arrive from outside are unchecked until [`FactoryParams::validate`] accepts them; the tree
//! builder refuses unvalidated shapes. A factory has two heights (see `docs/protocol.md`,
//! "Timeouts and refresh"):
//!
//! - the *timeout* `T = start + timeout_delta`: the distribution transaction's `nLockTime`;
//! - the *sweep height* `T_sweep = T + sweep_delta`: the height in the LSP's timeout leaf on
//!   every state output.
//!
//! `validate` enforces, for the largest factory the parameters allow, that a client who starts
//! its exit at the very end of the dying period reaches its leaf before `T`, and that a client
//! who starts walking the tree at any height up to `T` (the LSP can spend the funding output,
//! killing the distribution transaction, at any height until then) reaches its leaf before
//! `T_sweep`:
//!
//! `timeout_delta >= active + dying + worst_exit(max_clients) + timeout_margin`,
//! `sweep_delta >= worst_exit(max_clients) + timeout_margin`.
//!
//! Durations are [`BlockDelta`]s (a height minus a height), never bare integers, and a
//! Decker-Wattenhofer state number is an [`Epoch`].

use bitcoin::absolute::Height;
use bitcoin::{Amount, FeeRate, Network, Sequence};
use serde::{Deserialize, Serialize};

/// A number of blocks: the distance between two heights, a relative lock, or a duration.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct BlockDelta(u32);

impl BlockDelta {
    /// No blocks.
    pub const ZERO: BlockDelta = BlockDelta(0);
    /// The largest relative lock BIP-68 can express in blocks.
    pub const MAX_RELATIVE: BlockDelta = BlockDelta(u16::MAX as u32);

    /// `blocks` blocks.
    pub const fn from_blocks(blocks: u32) -> BlockDelta {
        BlockDelta(blocks)
    }

    /// The number of blocks.
    pub const fn to_blocks(self) -> u32 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: BlockDelta) -> Option<BlockDelta> {
        self.0.checked_add(other.0).map(BlockDelta)
    }

    /// `self * factor`, or `None` on overflow.
    pub fn checked_mul(self, factor: u32) -> Option<BlockDelta> {
        self.0.checked_mul(factor).map(BlockDelta)
    }

    /// The BIP-68 relative height lock of this many blocks, or `None` if it does not fit.
    pub fn to_relative_sequence(self) -> Option<Sequence> {
        u16::try_from(self.0).ok().map(Sequence::from_height)
    }

    /// The height `self` blocks after `height`, or `None` if it is not a valid block height.
    pub fn after(self, height: Height) -> Option<Height> {
        let h = height.to_consensus_u32().checked_add(self.0)?;
        Height::from_consensus(h).ok()
    }

    /// `later - earlier`, or `None` if `later` is below `earlier`.
    pub fn between(earlier: Height, later: Height) -> Option<BlockDelta> {
        later
            .to_consensus_u32()
            .checked_sub(earlier.to_consensus_u32())
            .map(BlockDelta)
    }
}

impl core::fmt::Display for BlockDelta {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} blocks", self.0)
    }
}

/// A Decker-Wattenhofer epoch: the factory's off-chain state number, counting up from 0.
///
/// Read as an odometer with one digit per DW layer (layer 0, nearest the root, is the most
/// significant). See [`FactoryParams::state_delay`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Epoch(pub u32);

impl core::fmt::Display for Epoch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "epoch {}", self.0)
    }
}

/// Smallest value of an anchor output: the dust threshold of a P2A output in Bitcoin Core.
pub const MIN_ANCHOR_VALUE: Amount = Amount::from_sat(240);

/// Largest fee rate accepted for pre-signed transactions, a sanity bound against typos.
pub const MAX_PRESIGNED_FEE_RATE: FeeRate = FeeRate::from_sat_per_vb_u32(1_000);

/// Most Decker-Wattenhofer layers a factory may stack.
pub const MAX_DW_LAYERS: u8 = 4;

/// Largest number of clients any parameters may allow.
pub const MAX_CLIENTS_LIMIT: u32 = 1 << 20;

/// Everything that fixes a factory's shape and timing, per network.
///
/// Tree shape: the lowest `dw_layers` interior levels are Decker-Wattenhofer levels of arity
/// `dw_arity` (a kickoff and a state transaction per node); above them, as many *static* levels
/// of arity `static_arity` as the number of clients needs (one split transaction per node, never
/// updated). See `docs/protocol.md`, "Factory tree", for why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactoryParams {
    /// Network the factory lives on.
    pub network: Network,
    /// DW step `S`: blocks between the relative delays of two consecutive states of a layer.
    pub step: BlockDelta,
    /// DW states per layer `K`; a layer's delays run `(K-1)·S, …, S, 0`.
    pub states_per_layer: u8,
    /// Most DW layers `L` (interior levels nearest the leaves); small factories use fewer.
    pub dw_layers: u8,
    /// Children per DW node.
    pub dw_arity: u8,
    /// Children per static node (the levels near the root).
    pub static_arity: u8,
    /// Largest number of clients; `validate` checks the worst-case exit of this size.
    pub max_clients: u32,
    /// Blocks a factory is active, from its creation (or last refresh).
    pub active: BlockDelta,
    /// Blocks of the dying period that follows, during which clients migrate.
    pub dying: BlockDelta,
    /// Slack on top of the worst-case exit, for fee spikes and full blocks.
    pub timeout_margin: BlockDelta,
    /// Blocks from creation (or refresh) to the factory timeout `T`, the distribution
    /// transaction's `nLockTime`.
    pub timeout_delta: BlockDelta,
    /// Blocks from the factory timeout `T` to the sweep height `T_sweep`, the height of the
    /// LSP's timeout leaf (`<T_sweep> OP_CHECKLOCKTIMEVERIFY …`) on every state output. At least
    /// a worst-case exit plus `timeout_margin`, so a client walking the tree from any height up
    /// to `T` reaches its leaf before the LSP may sweep.
    pub sweep_delta: BlockDelta,
    /// Relative lock of the L-stock output's LSP script path.
    pub lstock_csv: BlockDelta,
    /// Fee rate every pre-signed transaction pays from its own inputs.
    pub fee_rate: FeeRate,
    /// Value of each transaction's P2A anchor output.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub anchor_value: Amount,
}

/// Why parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// An arity below 2 cannot split anything.
    #[error("{which} arity is {got}, it must be at least 2")]
    ArityTooSmall {
        /// `"dw"` or `"static"`.
        which: &'static str,
        /// The value given.
        got: u8,
    },
    /// Zero or too many DW layers.
    #[error("{got} DW layers requested; use 1 to {max}")]
    BadLayerCount {
        /// The value given.
        got: u8,
        /// The limit.
        max: u8,
    },
    /// No DW states per layer.
    #[error("states per layer must be at least 1")]
    NoStates,
    /// With more than one state per layer, a zero step would let old states race new ones.
    #[error("the DW step must be at least one block when a layer has several states")]
    ZeroStep,
    /// `(K-1)·S`, or the L-stock CSV, exceeds what BIP-68 can encode.
    #[error("relative lock of {got} exceeds the BIP-68 maximum of 65535 blocks")]
    RelativeLockTooLong {
        /// The lock that does not fit.
        got: BlockDelta,
    },
    /// The L-stock CSV must make the LSP wait at least one block.
    #[error("the L-stock CSV must be at least one block")]
    ZeroCsv,
    /// Fee rate outside `[1 sat/vB, MAX_PRESIGNED_FEE_RATE]`.
    #[error("pre-signed fee rate {got_sat_vb} sat/vB is outside 1..={max_sat_vb} sat/vB")]
    BadFeeRate {
        /// The value given, rounded up.
        got_sat_vb: u64,
        /// The upper limit.
        max_sat_vb: u64,
    },
    /// An anchor below the P2A dust threshold would not relay.
    #[error("anchor value {got} is below the P2A dust threshold of 240 sat")]
    AnchorTooSmall {
        /// The value given.
        got: Amount,
    },
    /// `max_clients` outside `1..=MAX_CLIENTS_LIMIT`.
    #[error("max_clients {got} must be between 1 and {max}")]
    BadMaxClients {
        /// The value given.
        got: u32,
        /// The limit.
        max: u32,
    },
    /// The active period or dying period is empty.
    #[error("the active and dying periods must each be at least one block")]
    EmptyPeriod,
    /// More epochs than a `u32` can count.
    #[error("{states}^{layers} epochs do not fit in 32 bits")]
    TooManyEpochs {
        /// `K`.
        states: u8,
        /// `L`.
        layers: u8,
    },
    /// The worst-case exit does not fit before the timeout.
    #[error(
        "a factory of {clients} clients needs {needed} from creation to timeout (active + dying + \
         worst exit {worst_exit} + margin), but the timeout is {timeout_delta} after creation"
    )]
    ExitDoesNotFit {
        /// Size checked.
        clients: u32,
        /// What is needed.
        needed: BlockDelta,
        /// The worst-case exit alone.
        worst_exit: BlockDelta,
        /// What the parameters give.
        timeout_delta: BlockDelta,
    },
    /// A worst-case exit started at the timeout does not fit before the sweep height.
    #[error(
        "a factory of {clients} clients needs {needed} from the timeout to the sweep height \
         (worst exit {worst_exit} + margin), but the sweep height is {sweep_delta} after the \
         timeout"
    )]
    SweepDoesNotFit {
        /// Size checked.
        clients: u32,
        /// What is needed.
        needed: BlockDelta,
        /// The worst-case exit alone.
        worst_exit: BlockDelta,
        /// What the parameters give.
        sweep_delta: BlockDelta,
    },
    /// A sum of durations overflowed.
    #[error("durations overflow")]
    Overflow,
}

impl FactoryParams {
    /// Mainnet: 36-block (6-hour) steps, 4 states × 2 layers, ~30 days active, 3 days dying.
    ///
    /// The step is the always-online LSP's window (a newer state confirms within it), and
    /// it is short so that the worst tree walk `W` (331 blocks) fits in the HTLC expiries:
    /// an HTLC in a leaf is enforceable on chain through the whole walk, and a payer's expiry
    /// (1,136 blocks, see [`crate::timing`]) stays within the Lightning Network's 2,016.
    pub fn mainnet() -> FactoryParams {
        FactoryParams {
            network: Network::Bitcoin,
            step: BlockDelta(36),
            states_per_layer: 4,
            dw_layers: 2,
            dw_arity: 2,
            static_arity: 4,
            max_clients: 4096,
            active: BlockDelta(4320),
            dying: BlockDelta(432),
            timeout_margin: BlockDelta(432),
            timeout_delta: BlockDelta(6624),
            // Worst exit of 4096 clients (5 splits, 2 kickoffs, 2 states and the leaf at 108:
            // 331) plus the margin.
            sweep_delta: BlockDelta(763),
            lstock_csv: BlockDelta(144),
            fee_rate: FeeRate::from_sat_per_vb_u32(4),
            anchor_value: MIN_ANCHOR_VALUE,
        }
    }

    /// Signet: the mainnet shape on a quarter of the time scale (a week active, 2-hour steps).
    pub fn signet() -> FactoryParams {
        FactoryParams {
            network: Network::Signet,
            step: BlockDelta(12),
            active: BlockDelta(1008),
            dying: BlockDelta(144),
            timeout_margin: BlockDelta(72),
            timeout_delta: BlockDelta(1584),
            // 5 + 2 + 3 × 36 = 115, plus the margin.
            sweep_delta: BlockDelta(187),
            lstock_csv: BlockDelta(36),
            fee_rate: FeeRate::from_sat_per_vb_u32(1),
            ..FactoryParams::mainnet()
        }
    }

    /// Regtest: 2-block steps and a lifetime of tens of blocks, so a demo runs a whole factory
    /// life in minutes.
    pub fn regtest() -> FactoryParams {
        FactoryParams {
            network: Network::Regtest,
            step: BlockDelta(2),
            active: BlockDelta(30),
            dying: BlockDelta(6),
            timeout_margin: BlockDelta(6),
            // Active and dying (36) plus a payer's whole HTLC budget (86, see
            // `crate::timing`), so payments run until the dying period ends.
            timeout_delta: BlockDelta(122),
            // 5 + 2 + 3 × 6 = 25, plus the margin.
            sweep_delta: BlockDelta(31),
            lstock_csv: BlockDelta(4),
            fee_rate: FeeRate::from_sat_per_vb_u32(1),
            ..FactoryParams::mainnet()
        }
    }

    /// The preset for `network` (testnets use the signet timing).
    pub fn for_network(network: Network) -> FactoryParams {
        match network {
            Network::Bitcoin => FactoryParams::mainnet(),
            Network::Regtest => FactoryParams::regtest(),
            other => FactoryParams {
                network: other,
                ..FactoryParams::signet()
            },
        }
    }

    /// Checks every invariant, including that the worst-case exit of a factory of
    /// [`FactoryParams::max_clients`] fits between the end of the dying period and the timeout,
    /// and between the timeout and the sweep height.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if self.dw_arity < 2 {
            return Err(ParamsError::ArityTooSmall {
                which: "dw",
                got: self.dw_arity,
            });
        }
        if self.static_arity < 2 {
            return Err(ParamsError::ArityTooSmall {
                which: "static",
                got: self.static_arity,
            });
        }
        if self.dw_layers == 0 || self.dw_layers > MAX_DW_LAYERS {
            return Err(ParamsError::BadLayerCount {
                got: self.dw_layers,
                max: MAX_DW_LAYERS,
            });
        }
        if self.states_per_layer == 0 {
            return Err(ParamsError::NoStates);
        }
        if self.states_per_layer > 1 && self.step == BlockDelta::ZERO {
            return Err(ParamsError::ZeroStep);
        }
        u32::from(self.states_per_layer)
            .checked_pow(u32::from(self.dw_layers))
            .ok_or(ParamsError::TooManyEpochs {
                states: self.states_per_layer,
                layers: self.dw_layers,
            })?;
        let longest = self.max_state_delay().ok_or(ParamsError::Overflow)?;
        if longest > BlockDelta::MAX_RELATIVE {
            return Err(ParamsError::RelativeLockTooLong { got: longest });
        }
        if self.lstock_csv == BlockDelta::ZERO {
            return Err(ParamsError::ZeroCsv);
        }
        if self.lstock_csv > BlockDelta::MAX_RELATIVE {
            return Err(ParamsError::RelativeLockTooLong {
                got: self.lstock_csv,
            });
        }
        if self.fee_rate < FeeRate::BROADCAST_MIN || self.fee_rate > MAX_PRESIGNED_FEE_RATE {
            return Err(ParamsError::BadFeeRate {
                got_sat_vb: self.fee_rate.to_sat_per_vb_ceil(),
                max_sat_vb: MAX_PRESIGNED_FEE_RATE.to_sat_per_vb_ceil(),
            });
        }
        if self.anchor_value < MIN_ANCHOR_VALUE {
            return Err(ParamsError::AnchorTooSmall {
                got: self.anchor_value,
            });
        }
        if self.max_clients == 0 || self.max_clients > MAX_CLIENTS_LIMIT {
            return Err(ParamsError::BadMaxClients {
                got: self.max_clients,
                max: MAX_CLIENTS_LIMIT,
            });
        }
        if self.active == BlockDelta::ZERO || self.dying == BlockDelta::ZERO {
            return Err(ParamsError::EmptyPeriod);
        }
        let worst_exit = crate::exit::worst_case_unchecked(self, self.max_clients).blocks;
        let needed = self
            .blocks_needed(worst_exit)
            .ok_or(ParamsError::Overflow)?;
        if needed > self.timeout_delta {
            return Err(ParamsError::ExitDoesNotFit {
                clients: self.max_clients,
                needed,
                worst_exit,
                timeout_delta: self.timeout_delta,
            });
        }
        let needed = self.sweep_needed(worst_exit).ok_or(ParamsError::Overflow)?;
        if needed > self.sweep_delta {
            return Err(ParamsError::SweepDoesNotFit {
                clients: self.max_clients,
                needed,
                worst_exit,
                sweep_delta: self.sweep_delta,
            });
        }
        Ok(())
    }

    /// `worst_exit + timeout_margin`: how far past the timeout the sweep height must be.
    pub fn sweep_needed(&self, worst_exit: BlockDelta) -> Option<BlockDelta> {
        worst_exit.checked_add(self.timeout_margin)
    }

    /// `active + dying + worst_exit + timeout_margin`: how far past creation the timeout must be.
    pub fn blocks_needed(&self, worst_exit: BlockDelta) -> Option<BlockDelta> {
        self.active
            .checked_add(self.dying)?
            .checked_add(worst_exit)?
            .checked_add(self.timeout_margin)
    }

    /// These parameters with another active and dying period, and the timeout moved by as
    /// much: the time from the end of the dying period to the timeout `T`, and every exit,
    /// sweep and payment window counted from it, stay these parameters'. `None` on overflow.
    pub fn with_lifetime(&self, active: BlockDelta, dying: BlockDelta) -> Option<FactoryParams> {
        let tail = self
            .timeout_delta
            .to_blocks()
            .checked_sub(self.active.to_blocks())?
            .checked_sub(self.dying.to_blocks())?;
        let timeout_delta = active.checked_add(dying)?.checked_add(BlockDelta(tail))?;
        Some(FactoryParams {
            active,
            dying,
            timeout_delta,
            ..self.clone()
        })
    }

    /// The factory timeout `T` (the distribution transaction's lock) for a factory created (or
    /// last refreshed) at `start`.
    pub fn timeout_at(&self, start: Height) -> Option<Height> {
        self.timeout_delta.after(start)
    }

    /// The sweep height `T_sweep = T + sweep_delta` (the timeout leaf's lock) for a factory
    /// created (or last refreshed) at `start`.
    pub fn sweep_height_at(&self, start: Height) -> Option<Height> {
        self.sweep_delta.after(self.timeout_at(start)?)
    }

    /// `(K-1)·S`: the longest relative delay of any state transaction.
    pub fn max_state_delay(&self) -> Option<BlockDelta> {
        self.step
            .checked_mul(u32::from(self.states_per_layer.saturating_sub(1)))
    }

    /// Number of epochs of a tree with `layers` DW layers: `K^layers`.
    pub fn epoch_count(&self, layers: u32) -> u32 {
        u32::from(self.states_per_layer).saturating_pow(layers)
    }

    /// The DW odometer digit of `layer` (0 = nearest the root) at `epoch`, in a tree with
    /// `layers` DW layers.
    pub fn digit(&self, layers: u32, layer: u32, epoch: Epoch) -> u32 {
        let k = u32::from(self.states_per_layer);
        let below = layers.saturating_sub(layer + 1);
        (epoch.0 / k.saturating_pow(below)) % k
    }

    /// Relative delay of a state transaction of `layer` at `epoch`: `(K-1-digit)·S`, so each
    /// new epoch lowers the delay of the layer whose digit advanced, and lower layers start
    /// again from the longest delay under their new (re-signed) parent.
    pub fn state_delay(&self, layers: u32, layer: u32, epoch: Epoch) -> BlockDelta {
        let k = u32::from(self.states_per_layer);
        BlockDelta(
            (k.saturating_sub(1) - self.digit(layers, layer, epoch).min(k.saturating_sub(1)))
                .saturating_mul(self.step.0),
        )
    }

    /// The first epoch after `epoch` whose layer-0 digit is higher, or `None` if layer 0 is
    /// exhausted. A refresh jumps there, so its new root states beat every older one.
    pub fn next_top_epoch(&self, layers: u32, epoch: Epoch) -> Option<Epoch> {
        let k = u32::from(self.states_per_layer);
        let span = k.checked_pow(layers.saturating_sub(1))?;
        let next = (epoch.0 / span).checked_add(1)?.checked_mul(span)?;
        (next < self.epoch_count(layers)).then_some(Epoch(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_lifetime_moves_the_timeout_and_keeps_the_tail() {
        for preset in [FactoryParams::regtest(), FactoryParams::mainnet()] {
            let tail = |p: &FactoryParams| {
                p.timeout_delta.to_blocks() - p.active.to_blocks() - p.dying.to_blocks()
            };
            let p = preset
                .with_lifetime(BlockDelta::from_blocks(18), BlockDelta::from_blocks(500))
                .unwrap();
            assert_eq!((p.active.to_blocks(), p.dying.to_blocks()), (18, 500));
            assert_eq!(tail(&p), tail(&preset));
            p.validate().unwrap();
            let huge = BlockDelta::from_blocks(u32::MAX);
            assert_eq!(preset.with_lifetime(huge, huge), None);
        }
    }

    #[test]
    fn presets_validate() {
        for p in [
            FactoryParams::mainnet(),
            FactoryParams::signet(),
            FactoryParams::regtest(),
        ] {
            p.validate()
                .unwrap_or_else(|e| panic!("{:?}: {e}", p.network));
        }
        assert_eq!(
            FactoryParams::for_network(Network::Testnet).network,
            Network::Testnet
        );
        let r = FactoryParams::regtest();
        assert!(r.step.to_blocks() >= 2 && r.step.to_blocks() <= 6);
        assert!(r.timeout_delta.to_blocks() < 150);
    }

    #[test]
    fn presets_sweep_exactly_a_worst_exit_plus_margin_after_the_timeout() {
        for p in [
            FactoryParams::mainnet(),
            FactoryParams::signet(),
            FactoryParams::regtest(),
        ] {
            let worst = crate::exit::worst_case_unchecked(&p, p.max_clients).blocks;
            assert_eq!(
                p.sweep_needed(worst),
                Some(p.sweep_delta),
                "{:?}",
                p.network
            );
            let start = Height::from_consensus(1_000).unwrap();
            let timeout = p.timeout_at(start).unwrap();
            let sweep = p.sweep_height_at(start).unwrap();
            assert_eq!(BlockDelta::between(timeout, sweep), Some(p.sweep_delta));
            assert!(sweep > timeout);
        }
        assert_eq!(FactoryParams::mainnet().sweep_delta, BlockDelta(331 + 432));
        assert_eq!(FactoryParams::regtest().sweep_delta, BlockDelta(25 + 6));
    }

    #[test]
    fn odometer_counts_down_per_layer() {
        let p = FactoryParams::mainnet(); // K = 4, S = 36
        let delays = |e| (p.state_delay(2, 0, Epoch(e)), p.state_delay(2, 1, Epoch(e)));
        assert_eq!(p.epoch_count(2), 16);
        assert_eq!(delays(0), (BlockDelta(108), BlockDelta(108)));
        assert_eq!(delays(1), (BlockDelta(108), BlockDelta(72)));
        assert_eq!(delays(3), (BlockDelta(108), BlockDelta(0)));
        assert_eq!(delays(4), (BlockDelta(72), BlockDelta(108)));
        assert_eq!(delays(15), (BlockDelta(0), BlockDelta(0)));
        assert_eq!(p.next_top_epoch(2, Epoch(5)), Some(Epoch(8)));
        assert_eq!(p.next_top_epoch(2, Epoch(12)), None);
        assert_eq!(p.next_top_epoch(1, Epoch(2)), Some(Epoch(3)));
    }

    #[test]
    fn refuses_bad_shapes() {
        let base = FactoryParams::regtest();
        let bad = |f: fn(&mut FactoryParams)| {
            let mut p = base.clone();
            f(&mut p);
            p.validate().unwrap_err()
        };
        assert!(matches!(
            bad(|p| p.dw_arity = 1),
            ParamsError::ArityTooSmall { .. }
        ));
        assert!(matches!(
            bad(|p| p.dw_layers = 0),
            ParamsError::BadLayerCount { .. }
        ));
        assert!(matches!(
            bad(|p| p.step = BlockDelta::ZERO),
            ParamsError::ZeroStep
        ));
        assert!(matches!(
            bad(|p| p.step = BlockDelta(30_000)),
            ParamsError::RelativeLockTooLong { .. }
        ));
        assert!(matches!(
            bad(|p| p.fee_rate = FeeRate::ZERO),
            ParamsError::BadFeeRate { .. }
        ));
        assert!(matches!(
            bad(|p| p.anchor_value = Amount::from_sat(100)),
            ParamsError::AnchorTooSmall { .. }
        ));
        // Longer DW steps make the worst-case exit overrun the regtest timeout.
        let e = bad(|p| p.step = BlockDelta(12));
        assert!(matches!(e, ParamsError::ExitDoesNotFit { .. }), "{e}");
        assert!(e.to_string().contains("worst exit"));
        // More clients means more static levels, so a longer exit.
        let e = bad(|p| {
            p.timeout_delta = BlockDelta(65);
            p.max_clients = MAX_CLIENTS_LIMIT;
        });
        assert!(matches!(e, ParamsError::ExitDoesNotFit { .. }), "{e}");
        // The sweep height must leave a whole worst-case exit plus the margin after the
        // timeout: one block less is refused, and so is a sweep at the timeout itself.
        let e = bad(|p| p.sweep_delta = BlockDelta(30));
        assert_eq!(
            e,
            ParamsError::SweepDoesNotFit {
                clients: 4096,
                needed: BlockDelta(31),
                worst_exit: BlockDelta(25),
                sweep_delta: BlockDelta(30),
            }
        );
        assert!(e.to_string().contains("sweep height"), "{e}");
        let e = bad(|p| p.sweep_delta = BlockDelta::ZERO);
        assert!(matches!(e, ParamsError::SweepDoesNotFit { .. }), "{e}");
        // A longer exit (more clients) needs a later sweep even when the timeout still fits.
        let e = bad(|p| {
            p.timeout_delta = BlockDelta(100);
            p.max_clients = MAX_CLIENTS_LIMIT;
        });
        assert!(matches!(e, ParamsError::SweepDoesNotFit { .. }), "{e}");
        let mut ok = base.clone();
        ok.timeout_delta = BlockDelta(100);
        ok.max_clients = MAX_CLIENTS_LIMIT;
        let worst = crate::exit::worst_case_unchecked(&ok, MAX_CLIENTS_LIMIT).blocks;
        assert_eq!(
            worst,
            BlockDelta(9 + 2 + 12 + 6),
            "nine static levels, two states and the leaf at 6"
        );
        ok.sweep_delta = ok.sweep_needed(worst).unwrap();
        ok.validate().unwrap();
    }

    #[test]
    fn block_delta_arithmetic() {
        let h = Height::from_consensus(100).unwrap();
        assert_eq!(BlockDelta(5).after(h), Height::from_consensus(105).ok());
        assert_eq!(
            BlockDelta::between(h, Height::from_consensus(90).unwrap()),
            None
        );
        assert_eq!(BlockDelta(70_000).to_relative_sequence(), None);
        assert_eq!(
            BlockDelta(144).to_relative_sequence(),
            Some(Sequence::from_height(144))
        );
    }
}
