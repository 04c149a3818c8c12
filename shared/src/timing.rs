//! The timing model (`docs/protocol.md`, "Timing model"): who must be online, and the
//! inequalities that make every window of a network's presets safe.
//!
//! Liveness: the LSP is always online; a client comes back once per dying period. The short
//! windows (the DW step, `to_self_delay`, the HTLC deltas) are the LSP's, or a running
//! wallet's; a client that is away relies on the distribution transaction and on watchtowers.
//!
//! Each [`Inequality`] names what must hold, the blocks it needs and the blocks the presets
//! give. [`inequalities`] lists them for a network; the presets ([`FactoryParams::for_network`],
//! [`ChannelPolicy::for_network`]) are chosen so that every one holds, and a unit test per
//! network checks it.

use bitcoin::Network;

use crate::exit::worst_case_unchecked;
use crate::params::FactoryParams;
use crate::pay::ChannelPolicy;

/// The most blocks a Lightning payment's total CLTV may span (payers refuse longer routes).
pub const MAX_ROUTE_CLTV: u32 = 2016;

/// What LDK's and LND's payers accept by default for a whole route's CLTV.
pub const DEFAULT_ROUTE_CLTV: u32 = 1008;

/// Blocks left for the hops of an outside route before it reaches the LSP.
pub const OUTSIDE_HOPS_CLTV: u32 = 144;

/// The final CLTV delta of invoices made by LDK nodes (`MIN_FINAL_CLTV_EXPIRY_DELTA`): the
/// least an outside payee's route needs, over a direct channel of the LSP's node.
pub const OUTSIDE_FINAL_CLTV: u32 = 42;

/// Blocks before an incoming HTLC's expiry at which the LSP's Lightning node (LDK) stops
/// waiting for the preimage of a payment it holds and fails it back (LDK's
/// `HTLC_FAIL_BACK_BUFFER`, three blocks under [`OUTSIDE_FINAL_CLTV`]; the LSP's tests check
/// the two agree).
pub const UPSTREAM_FAIL_BACK: u32 = OUTSIDE_FINAL_CLTV - 3;

/// One inequality of the timing model: `got >= need`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inequality {
    /// What it guarantees, in words.
    pub what: &'static str,
    /// Blocks it needs.
    pub need: u32,
    /// Blocks the presets give.
    pub got: u32,
}

impl Inequality {
    /// Whether it holds.
    pub fn holds(&self) -> bool {
        self.got >= self.need
    }
}

/// Every inequality of the timing model for `network`'s presets.
pub fn inequalities(network: Network) -> Vec<Inequality> {
    inequalities_of(
        &FactoryParams::for_network(network),
        &ChannelPolicy::for_network(network),
    )
}

/// The inequalities that fail for these parameters (an operator's lifetime on a preset): the
/// LSP refuses to start with any.
pub fn violated(factory: &FactoryParams, channel: &ChannelPolicy) -> Vec<Inequality> {
    inequalities_of(factory, channel)
        .into_iter()
        .filter(|i| !i.holds())
        .collect()
}

/// Every inequality of the timing model for these parameters, with `W` the worst walk of a
/// factory of `factory.max_clients` (every state at its longest delay).
pub fn inequalities_of(factory: &FactoryParams, channel: &ChannelPolicy) -> Vec<Inequality> {
    let walk = worst_case_unchecked(factory, factory.max_clients)
        .blocks
        .to_blocks();
    let delay = channel.to_self_delay.to_blocks();
    let margin = channel.htlc_margin.to_blocks();
    let active = factory.active.to_blocks() + factory.dying.to_blocks();
    let lag = channel.payer_expiry(0) - channel.expiry_delta() - channel.payee_window();
    vec![
        Inequality {
            what: "HTLC expiries cover the worst walk of any factory of the preset",
            need: walk,
            got: channel.walk.to_blocks(),
        },
        Inequality {
            what: "a payee walks its tree, confirms its commitment and waits its success \
                   path before the LSP's timeout opens",
            need: walk + delay + margin,
            got: channel.payee_expiry(channel.payer_expiry(0)) - lag,
        },
        Inequality {
            what: "the LSP, told the preimage while its timeout claim waits, walks the payer's \
                   tree and claims before the payer's timeout opens",
            need: walk + 2 * delay + margin,
            got: channel.expiry_delta(),
        },
        Inequality {
            what: "payments run until the dying period ends (the routing deadline)",
            need: active,
            got: channel.routing_deadline(factory.timeout_delta.to_blocks()),
        },
        Inequality {
            what: "a client back at the end of its dying period walks before the timeout",
            need: active + walk + factory.timeout_margin.to_blocks(),
            got: factory.timeout_delta.to_blocks(),
        },
        Inequality {
            what: "a walk started at the timeout ends before the LSP may sweep",
            need: walk + factory.timeout_margin.to_blocks(),
            got: factory.sweep_delta.to_blocks(),
        },
        Inequality {
            what: "a payer's expiry is one the Lightning Network carries",
            need: channel.payer_expiry(0),
            got: MAX_ROUTE_CLTV,
        },
        Inequality {
            what: "an outside payer reaches a client's invoice (held by the LSP's node) within \
                   its default route limit",
            need: channel.inbound_invoice_delta() + OUTSIDE_HOPS_CLTV,
            got: DEFAULT_ROUTE_CLTV,
        },
        Inequality {
            what: "a client offered a payment its LSP's node holds can enforce it on chain, and \
                   the LSP, learning the preimage there at the last moment, claims it before \
                   its node fails it back",
            need: channel.payee_window() + delay + margin,
            got: channel.inbound_invoice_delta() - UPSTREAM_FAIL_BACK - lag,
        },
        Inequality {
            what: "a client's payment to an outside invoice (LDK's final delta, over a direct \
                   channel of the LSP's node) fits between the payer's expiry and the LSP's \
                   claim of the payer's HTLC on chain",
            need: OUTSIDE_FINAL_CLTV,
            got: channel
                .outside_budget(channel.payer_expiry(0), 0)
                .unwrap_or(0),
        },
        Inequality {
            what: "the LSP's penalty window is not shorter than a DW step",
            need: factory.step.to_blocks(),
            got: delay,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::BlockDelta;

    #[test]
    fn every_inequality_holds_on_every_network() {
        for network in [
            Network::Bitcoin,
            Network::Testnet,
            Network::Signet,
            Network::Regtest,
        ] {
            for i in inequalities(network) {
                assert!(
                    i.holds(),
                    "{network}: {} needs {} blocks, the presets give {}",
                    i.what,
                    i.need,
                    i.got
                );
            }
        }
    }

    #[test]
    fn an_operators_lifetime_keeps_every_inequality() {
        for network in [Network::Bitcoin, Network::Signet, Network::Regtest] {
            let preset = FactoryParams::for_network(network);
            let channel = ChannelPolicy::for_network(network);
            let dying = preset.dying;
            for (active, dying) in [
                (BlockDelta::from_blocks(1), dying),
                (
                    preset.active,
                    BlockDelta::from_blocks(dying.to_blocks() * 10),
                ),
                (BlockDelta::from_blocks(400_000), dying),
            ] {
                let params = preset.with_lifetime(active, dying).expect("fits");
                assert_eq!(violated(&params, &channel), vec![], "{network} {active:?}");
            }
            // A timeout the walk cannot fit under is caught.
            let short = FactoryParams {
                timeout_delta: preset.active,
                ..preset.clone()
            };
            assert!(!violated(&short, &channel).is_empty(), "{network}");
        }
    }

    #[test]
    fn mainnet_figures() {
        let c = ChannelPolicy::for_network(Network::Bitcoin);
        assert_eq!(c.walk.to_blocks(), 331);
        assert_eq!(c.payee_window(), 331 + 144 + 18);
        assert_eq!(c.expiry_delta(), 331 + 2 * 144 + 18);
        assert_eq!(c.payer_expiry(0), 1136);
        assert_eq!(c.outside_budget(1136, 0), Some(643));
    }

    #[test]
    fn the_outside_budget_is_tight_on_regtest_and_shrinks_as_blocks_pass() {
        let c = ChannelPolicy::for_network(Network::Regtest);
        let expiry = c.payer_expiry(100);
        assert_eq!(c.outside_budget(expiry, 100), Some(c.expiry_delta() + 6));
        assert_eq!(c.outside_budget(expiry, 100), Some(49));
        assert_eq!(
            c.outside_budget(expiry, 107),
            Some(42),
            "still room for LDK's 42"
        );
        assert_eq!(c.outside_budget(expiry, 108), Some(41));
        let last = expiry - c.payee_window();
        assert_eq!(
            c.outside_budget(expiry, last),
            None,
            "no block left: nothing is sent"
        );
    }

    #[test]
    fn the_old_mainnet_step_fails_the_model() {
        // With 144-block steps the walk alone is 1,303 blocks: a payer's expiry would pass
        // the Lightning Network's limit and the routing deadline would fall before the end of
        // the active period.
        let mut slow = FactoryParams::mainnet();
        slow.step = crate::params::BlockDelta::from_blocks(144);
        let walk = worst_case_unchecked(&slow, slow.max_clients).blocks;
        assert_eq!(walk.to_blocks(), 1303);
        let c = ChannelPolicy {
            walk,
            ..ChannelPolicy::for_network(Network::Bitcoin)
        };
        assert!(c.payer_expiry(0) > MAX_ROUTE_CLTV);
    }
}
