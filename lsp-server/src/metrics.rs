//! Counters the server keeps while it runs, and their Prometheus text rendering (`/metrics`).
//!
//! Counters live in atomics bumped by connection tasks; gauges that describe stored state
//! (factories by state, wallet balance, chain tip) are read when scraped, so they can never
//! drift from the database.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use shared::wire::ErrorCode;

/// Every error code, in the order of [`Metrics::errors_sent`].
const ERROR_CODES: [ErrorCode; 9] = [
    ErrorCode::Malformed,
    ErrorCode::TooLarge,
    ErrorCode::UnsupportedVersion,
    ErrorCode::Unexpected,
    ErrorCode::RateLimited,
    ErrorCode::StaleSession,
    ErrorCode::NotAMember,
    ErrorCode::AuthFailed,
    ErrorCode::NotAuthenticated,
];

/// The server's running counters.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    frames_received: AtomicU64,
    frames_sent: AtomicU64,
    authenticated_total: AtomicU64,
    errors_sent: [AtomicU64; ERROR_CODES.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            connections_open: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            frames_received: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            authenticated_total: AtomicU64::new(0),
            errors_sent: Default::default(),
        }
    }
}

/// Held by a connection task; the open-connection gauge drops when it does.
pub struct ConnectionGuard<'a>(&'a Metrics);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts a new WebSocket connection until the guard drops.
    pub fn connection(&self) -> ConnectionGuard<'_> {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self)
    }

    /// Counts a frame received from a wallet.
    pub fn frame_received(&self) {
        self.frames_received.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a frame sent to a wallet.
    pub fn frame_sent(&self) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a wallet that proved its identity.
    pub fn authenticated(&self) {
        self.authenticated_total.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an error frame sent to a wallet.
    pub fn error_sent(&self, code: ErrorCode) {
        if let Some(i) = ERROR_CODES.iter().position(|c| *c == code) {
            self.errors_sent[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// WebSocket connections open now.
    pub fn connections_open(&self) -> u64 {
        self.connections_open.load(Ordering::Relaxed)
    }

    /// Seconds since the server started.
    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Renders the counters and `gauges` in the Prometheus text exposition format.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(2048);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP superscalar_{name} {help}");
            let _ = writeln!(out, "# TYPE superscalar_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "superscalar_{name}{labels} {value}");
            }
        };
        let one = |v: u64| vec![(String::new(), v)];
        metric(
            "uptime_seconds",
            "gauge",
            "Seconds since the LSP started.",
            &one(self.uptime_secs()),
        );
        metric(
            "ws_connections_open",
            "gauge",
            "WebSocket connections open now.",
            &one(load(&self.connections_open)),
        );
        metric(
            "ws_connections_total",
            "counter",
            "WebSocket connections accepted.",
            &one(load(&self.connections_total)),
        );
        metric(
            "ws_frames_received_total",
            "counter",
            "Frames received from wallets.",
            &one(load(&self.frames_received)),
        );
        metric(
            "ws_frames_sent_total",
            "counter",
            "Frames sent to wallets.",
            &one(load(&self.frames_sent)),
        );
        metric(
            "ws_authenticated_total",
            "counter",
            "Wallets that proved their identity key.",
            &one(load(&self.authenticated_total)),
        );
        let errors: Vec<(String, u64)> = ERROR_CODES
            .iter()
            .zip(&self.errors_sent)
            .map(|(code, n)| (format!("{{code=\"{}\"}}", code_name(*code)), load(n)))
            .collect();
        metric(
            "ws_errors_sent_total",
            "counter",
            "Error frames sent to wallets, by code.",
            &errors,
        );
        let factories: Vec<(String, u64)> = gauges
            .factories
            .iter()
            .map(|(state, n)| (format!("{{state=\"{state}\"}}"), *n))
            .collect();
        metric(
            "factories",
            "gauge",
            "Factories in the database, by state.",
            &factories,
        );
        let stages: Vec<(String, u64)> = gauges
            .stages
            .iter()
            .map(|(stage, n)| (format!("{{stage=\"{stage}\"}}"), *n))
            .collect();
        metric(
            "funded_factories",
            "gauge",
            "Funded factories by stage of life (active, dying, expired, timed_out, closing, closed).",
            &stages,
        );
        metric(
            "factory_clients",
            "gauge",
            "Clients of funded factories.",
            &one(gauges.funded_clients),
        );
        metric(
            "wallet_balance_sats",
            "gauge",
            "The LSP on-chain wallet's balance, by confirmation.",
            &[
                ("{status=\"confirmed\"}".into(), gauges.wallet_confirmed_sat),
                ("{status=\"pending\"}".into(), gauges.wallet_pending_sat),
            ],
        );
        metric(
            "fee_bumps_unfunded",
            "gauge",
            "Pre-signed transactions the LSP must publish whose fee its wallet cannot pay today: fund the wallet.",
            &one(gauges.fee_bumps_unfunded),
        );
        metric(
            "chain_tip_height",
            "gauge",
            "The chain tip the LSP's Esplora reports (0 when unreachable).",
            &one(gauges.tip_height),
        );
        metric(
            "swaps_open",
            "gauge",
            "Swaps out (wallets sending to on-chain addresses) not yet claimed or refunded.",
            &one(gauges.swaps_open.0),
        );
        metric(
            "swaps_open_sats",
            "gauge",
            "Sats the LSP paid on chain for swaps out not yet claimed or refunded.",
            &one(gauges.swaps_open.1),
        );
        if let Some(next) = gauges.next_rung {
            metric(
                "ladder_next_rung_height",
                "gauge",
                "The height the ladder's next factory starts at (with --ladder-interval).",
                &one(next),
            );
        }
        if let Some(ln) = &gauges.ln {
            metric(
                "ln_channels",
                "gauge",
                "The Lightning node's channels, by state.",
                &[
                    ("{state=\"ready\"}".into(), ln.channels_ready),
                    ("{state=\"pending\"}".into(), ln.channels_pending),
                ],
            );
            metric(
                "ln_peers_connected",
                "gauge",
                "Peers the Lightning node is connected to.",
                &one(ln.peers_connected),
            );
            metric(
                "ln_outbound_capacity_sats",
                "gauge",
                "What the Lightning node can send now, summed over its channels.",
                &one(ln.outbound_capacity.to_sat()),
            );
            metric(
                "ln_inbound_capacity_sats",
                "gauge",
                "What the Lightning node can receive now, summed over its channels.",
                &one(ln.inbound_capacity.to_sat()),
            );
            metric(
                "ln_onchain_balance_sats",
                "gauge",
                "The Lightning node's own on-chain wallet.",
                &one(ln.onchain_total.to_sat()),
            );
        }
        out
    }
}

/// Values read at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    /// (state, count) for every factory state present.
    pub factories: Vec<(String, u64)>,
    /// Clients in funded factories.
    pub funded_clients: u64,
    /// (stage, count) of funded factories (`/admin/ladder`'s stages).
    pub stages: Vec<(String, u64)>,
    /// Wallet balance in confirmed outputs.
    pub wallet_confirmed_sat: u64,
    /// Wallet balance in unconfirmed outputs.
    pub wallet_pending_sat: u64,
    /// Pre-signed transactions whose fee bump the wallet could not pay at the last try.
    pub fee_bumps_unfunded: u64,
    /// Chain tip height.
    pub tip_height: u64,
    /// The height the ladder's next factory starts at, when the LSP runs a ladder.
    pub next_rung: Option<u64>,
    /// Swaps out not yet ended, and the sats on chain in them.
    pub swaps_open: (u64, u64),
    /// The Lightning node's gauges, when it runs.
    pub ln: Option<crate::lightning::view::LnGauges>,
}

/// The wire name of an error code (`"too_large"`, …).
fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{code:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges_in_text_format() {
        let m = Metrics::default();
        let c = m.connection();
        m.frame_received();
        m.error_sent(ErrorCode::TooLarge);
        m.error_sent(ErrorCode::TooLarge);
        let gauges = Gauges {
            factories: vec![("funded".into(), 3)],
            stages: vec![("active".into(), 2), ("dying".into(), 1)],
            wallet_confirmed_sat: 5000,
            fee_bumps_unfunded: 2,
            next_rung: Some(30),
            swaps_open: (2, 40_000),
            ..Gauges::default()
        };
        let text = m.render(&gauges);
        assert!(text.contains("superscalar_swaps_open 2\n"), "{text}");
        assert!(
            text.contains("superscalar_swaps_open_sats 40000\n"),
            "{text}"
        );
        assert!(
            text.contains("superscalar_ladder_next_rung_height 30\n"),
            "{text}"
        );
        assert!(
            text.contains("superscalar_fee_bumps_unfunded 2\n"),
            "{text}"
        );
        assert!(
            text.contains("superscalar_ws_connections_open 1\n"),
            "{text}"
        );
        assert!(text.contains("superscalar_ws_errors_sent_total{code=\"too_large\"} 2\n"));
        assert!(text.contains("superscalar_factories{state=\"funded\"} 3\n"));
        assert!(
            text.contains("superscalar_funded_factories{stage=\"dying\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("superscalar_wallet_balance_sats{status=\"confirmed\"} 5000\n"));
        assert!(text.contains("# TYPE superscalar_ws_frames_received_total counter\n"));
        assert!(
            !text.contains("superscalar_ln_"),
            "no Lightning node, no LN gauges"
        );
        drop(c);
        assert_eq!(m.connections_open(), 0);
    }

    #[test]
    fn renders_the_lightning_gauges_when_the_node_runs() {
        let gauges = Gauges {
            ln: Some(crate::lightning::view::LnGauges {
                channels_ready: 2,
                channels_pending: 1,
                peers_connected: 3,
                outbound_capacity: bitcoin::Amount::from_sat(400_000),
                inbound_capacity: bitcoin::Amount::from_sat(90_000),
                onchain_total: bitcoin::Amount::from_sat(7),
            }),
            ..Gauges::default()
        };
        let text = Metrics::default().render(&gauges);
        for line in [
            "superscalar_ln_channels{state=\"ready\"} 2\n",
            "superscalar_ln_channels{state=\"pending\"} 1\n",
            "superscalar_ln_peers_connected 3\n",
            "superscalar_ln_outbound_capacity_sats 400000\n",
            "superscalar_ln_inbound_capacity_sats 90000\n",
            "superscalar_ln_onchain_balance_sats 7\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
