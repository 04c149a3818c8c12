//! Server configuration, from flags or environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use bitcoin::Network;
use clap::Parser;
use shared::lifecycle::Ladder;
use shared::params::{BlockDelta, FactoryParams};

/// The LSP's configuration. Every flag also reads an `LSP_*` environment variable.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "lsp-server",
    about = "SuperScalar LSP: factories for browser wallets"
)]
pub struct Config {
    /// Network: regtest, signet, testnet4 or bitcoin (mainnet also needs --allow-mainnet).
    #[arg(long, env = "LSP_NETWORK", default_value = "regtest")]
    pub network: Network,
    /// Required to run on mainnet, where real money is at stake.
    #[arg(long, env = "LSP_ALLOW_MAINNET")]
    pub allow_mainnet: bool,
    /// Esplora REST endpoint the LSP reads the chain from and broadcasts through.
    #[arg(long, env = "LSP_ESPLORA_URL")]
    pub esplora_url: String,
    /// Esplora endpoint advertised to wallets in the terms (defaults to --esplora-url).
    #[arg(long, env = "LSP_PUBLIC_ESPLORA_URL")]
    pub public_esplora_url: Option<String>,
    /// Address to listen on (HTTP and WebSocket).
    #[arg(long, env = "LSP_LISTEN", default_value = "127.0.0.1:8800")]
    pub listen: SocketAddr,
    /// Directory for the LSP's key and SQLite database.
    #[arg(long, env = "LSP_DATA_DIR", default_value = "lsp-data")]
    pub data_dir: PathBuf,
    /// Directory of the built browser wallet to serve at `/` (optional).
    #[arg(long, env = "LSP_WALLET_DIR")]
    pub wallet_dir: Option<PathBuf>,
    /// Name shown to users in the terms.
    #[arg(long, env = "LSP_NAME", default_value = "SuperScalar LSP")]
    pub name: String,
    /// Regtest only: a devnet faucet (`http://…/devnet/faucet`) that tops up an empty LSP wallet
    /// at start, so a demo or workshop can create factories without any manual step.
    #[arg(long, env = "LSP_REGTEST_FAUCET")]
    pub regtest_faucet: Option<String>,
    /// Bearer token for the admin API and `/metrics` [default: generated into `admin.token` in
    /// the data dir].
    #[arg(long, env = "LSP_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, env = "LSP_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// How factories are gathered, signed and confirmed.
    #[command(flatten)]
    pub factory: FactoryOptions,
    /// How payments are routed.
    #[command(flatten)]
    pub payments: PaymentOptions,
    /// The LSP's Lightning node (off unless `--ln-listen` is given).
    #[command(flatten)]
    pub lightning: LightningOptions,
}

/// The in-process Lightning node. `LightningOptions::default()` gives the flags' defaults: no
/// node.
#[derive(Debug, Clone, Default, Parser)]
pub struct LightningOptions {
    /// Run the LSP's Lightning node, taking peer connections on this address (e.g.
    /// `0.0.0.0:9735`). Without it the LSP runs no Lightning node. Its port must be given, not 0:
    /// the node tells peers the address it was given.
    #[arg(long, env = "LSP_LN_LISTEN")]
    pub ln_listen: Option<SocketAddr>,
    /// Address the node announces to the Lightning Network for its public channels, when peers
    /// must reach it elsewhere than `--ln-listen` (a public IP or host name and port, e.g.
    /// `lsp.example.org:9735`) [default: the listen address].
    #[arg(long, env = "LSP_LN_ANNOUNCE")]
    pub ln_announce: Option<String>,
    /// The node's alias in the Lightning Network's graph (at most 32 bytes) [default: --name,
    /// cut to 32 bytes].
    #[arg(long, env = "LSP_LN_ALIAS")]
    pub ln_alias: Option<String>,
}

/// Payment routing settings. `PaymentOptions::default()` gives the flags' defaults.
#[derive(Debug, Clone, Parser)]
pub struct PaymentOptions {
    /// Seconds a payment waits at the LSP for an offline payee to connect before it fails back
    /// to the payer.
    #[arg(long, env = "LSP_OFFLINE_WAIT_SECS", default_value_t = 30)]
    pub offline_wait_secs: u64,
    /// Seconds a wallet may take to answer a commitment round; past it the LSP closes that
    /// wallet's connection (the round restarts when it reconnects), so payments towards it wait
    /// for it as for any offline payee instead of hanging on a silent connection.
    /// (The factory ceremony's `--round-timeout-secs` is another flag.)
    #[arg(long, env = "LSP_CHANNEL_ROUND_TIMEOUT_SECS", default_value_t = 30)]
    pub channel_round_timeout_secs: u64,
    /// Regtest and signet only: the most a wallet may ask from the demo faucet, per request
    /// (0 turns the faucet off).
    #[arg(long, env = "LSP_FAUCET_MAX_SAT", default_value_t = 50_000)]
    pub faucet_max_sat: u64,
    /// Testing only: an LSP that misbehaves by never running the round that settles a payment
    /// once its payee revealed the preimage, so tests can show that wallets then go on chain
    /// and collect by themselves.
    #[arg(long, hide = true)]
    pub withhold_settlements: bool,
}

impl Default for PaymentOptions {
    fn default() -> Self {
        PaymentOptions::parse_from(["payments"])
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Factory creation settings. `FactoryOptions::default()` gives the flags' defaults.
#[derive(Debug, Clone, Parser)]
pub struct FactoryOptions {
    /// Clients per factory; a factory starts as soon as it is full [default: 8 on regtest, 64
    /// elsewhere].
    #[arg(long, env = "LSP_FACTORY_SIZE")]
    pub factory_size: Option<usize>,
    /// Fewest clients to start a factory when its gathering time is over, and to go on after
    /// exclusions.
    #[arg(long, env = "LSP_MIN_CLIENTS", default_value_t = 2)]
    pub min_clients: usize,
    /// Seconds a factory gathers clients, counted from its first join (without
    /// `--ladder-interval`).
    #[arg(long, env = "LSP_GATHER_SECS", default_value_t = 60)]
    pub gather_secs: u64,
    /// Blocks a factory is active before its dying period (default: the network's, about 30
    /// days on mainnet, 30 blocks on regtest). The time from the end of the dying period to the
    /// timeout stays the network's, so every exit and payment window is unchanged; published in
    /// the signed terms.
    #[arg(long = "factory-active-blocks", env = "LSP_FACTORY_ACTIVE_BLOCKS")]
    pub active_blocks: Option<u32>,
    /// Blocks of the dying period, during which members move to a newer factory (default and
    /// least: the network's, 432 on mainnet, 6 on regtest; wallets refuse a shorter one).
    #[arg(long = "factory-dying-blocks", env = "LSP_FACTORY_DYING_BLOCKS")]
    pub dying_blocks: Option<u32>,
    /// Blocks between two rungs of the ladder: a new factory starts at every height that is a
    /// multiple of this, with the members that joined since the last one (or at once when
    /// full; with fewer than `--min-clients`, see `--underfilled-rung`). At most the dying
    /// period less the funding confirmations, so every dying period holds a rung its members
    /// can move into in time. Without it, a factory starts `--gather-secs` after its first
    /// join. Published in the signed terms.
    #[arg(long, env = "LSP_LADDER_INTERVAL")]
    pub ladder_interval: Option<u32>,
    /// What a ladder rung with fewer than `--min-clients` members does at its block: `wait`
    /// keeps gathering until the next rung (its members wait with it), `call-off` ends it (its
    /// members may join the next).
    #[arg(long, env = "LSP_UNDERFILLED_RUNG", value_enum, default_value_t = Underfilled::Wait)]
    pub underfilled_rung: Underfilled,
    /// Seconds each signing round may take before the clients that did not answer are excluded.
    #[arg(long, env = "LSP_ROUND_TIMEOUT_SECS", default_value_t = 30)]
    pub round_timeout_secs: u64,
    /// Seconds a member may stay disconnected during a ceremony before it is excluded (it may
    /// reconnect and resume within this time).
    #[arg(long, env = "LSP_RECONNECT_GRACE_SECS", default_value_t = 10)]
    pub reconnect_grace_secs: u64,
    /// Confirmations after which a factory counts as funded [default: 1 on regtest, 3 on
    /// mainnet, 1 elsewhere].
    #[arg(long, env = "LSP_FUNDING_CONFIRMATIONS")]
    pub funding_confirmations: Option<u32>,
    /// Blocks a broadcast funding transaction may stay unconfirmed before the LSP raises its
    /// fee with a child transaction (CPFP), and again after each further such stretch; 0 never.
    #[arg(long, env = "LSP_FUNDING_BUMP_BLOCKS", default_value_t = 3)]
    pub funding_bump_blocks: u32,
    /// How often to poll Esplora for the tip and funding confirmations, in milliseconds.
    #[arg(long, env = "LSP_CHAIN_POLL_MS", default_value_t = 1000)]
    pub chain_poll_ms: u64,
}

/// What a ladder rung that did not reach `--min-clients` does at its block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Underfilled {
    /// Keep gathering until the next rung.
    Wait,
    /// Call it off; its members may join the next.
    CallOff,
}

impl Default for FactoryOptions {
    fn default() -> Self {
        FactoryOptions::parse_from(["factory"])
    }
}

/// The longest active plus dying period an operator may set: about ten years of blocks, far
/// below the 500,000,000 where a lock time stops being a height.
const MAX_LIFE_BLOCKS: u32 = 525_600;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Mainnet without the explicit opt-in.
    #[error("refusing to run on mainnet without --allow-mainnet: real funds are at stake")]
    MainnetNotAllowed,
    /// Factory sizes that cannot work.
    #[error("--min-clients ({min}) must be between 1 and --factory-size ({size})")]
    BadFactorySize {
        /// `--min-clients`.
        min: usize,
        /// `--factory-size`.
        size: usize,
    },
    /// A Lightning listen address without a port.
    #[error(
        "--ln-listen {0} has port 0; give the port peers should connect to (9735 is the usual one)"
    )]
    LnListenPortZero(SocketAddr),
    /// An alias that does not fit a node announcement.
    #[error("--ln-alias is {0} bytes long; the Lightning Network allows at most 32")]
    LnAliasTooLong(usize),
    /// A factory lifetime wallets would refuse.
    #[error("--factory-active-blocks / --factory-dying-blocks: {0}")]
    BadLifetime(String),
    /// A ladder interval that leaves a dying period without a rung.
    #[error(
        "--ladder-interval {interval} must be between 1 and the dying period ({dying} blocks) \
         less the funding's {confirmations} confirmations, so every dying period holds a new \
         factory its members can move into in time"
    )]
    BadLadder {
        /// `--ladder-interval`.
        interval: u32,
        /// The dying period in blocks.
        dying: u32,
        /// `--funding-confirmations`.
        confirmations: u32,
    },
    /// A factory larger than the tree parameters allow.
    #[error(
        "--factory-size {size} exceeds the {max} clients this network's tree parameters allow"
    )]
    FactoryTooLarge {
        /// `--factory-size`.
        size: usize,
        /// The parameters' `max_clients`.
        max: usize,
    },
}

impl Config {
    /// Checks combinations clap cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.network == Network::Bitcoin && !self.allow_mainnet {
            return Err(ConfigError::MainnetNotAllowed);
        }
        let (min, size) = (self.factory.min_clients, self.factory_size());
        if min == 0 || min > size {
            return Err(ConfigError::BadFactorySize { min, size });
        }
        let preset = FactoryParams::for_network(self.network);
        if self
            .factory
            .dying_blocks
            .is_some_and(|d| d < preset.dying.to_blocks())
        {
            return Err(ConfigError::BadLifetime(format!(
                "wallets refuse a dying period shorter than {} blocks on {}",
                preset.dying.to_blocks(),
                self.network
            )));
        }
        let (active, dying) = (
            self.factory.active_blocks.unwrap_or(0),
            self.factory.dying_blocks.unwrap_or(0),
        );
        if active
            .checked_add(dying)
            .is_none_or(|life| life > MAX_LIFE_BLOCKS)
        {
            return Err(ConfigError::BadLifetime(format!(
                "a factory may live at most {MAX_LIFE_BLOCKS} blocks (about ten years)"
            )));
        }
        let params = self.factory_params();
        if let Err(e) = params.validate() {
            return Err(ConfigError::BadLifetime(e.to_string()));
        }
        let policy = shared::pay::ChannelPolicy::for_network(self.network);
        if let Some(broken) = shared::timing::violated(&params, &policy).first() {
            return Err(ConfigError::BadLifetime(format!(
                "the timing model fails: {} needs {} blocks, these settings give {}",
                broken.what, broken.need, broken.got
            )));
        }
        if let Some(interval) = self.factory.ladder_interval {
            let dying = params.dying.to_blocks();
            let confirmations = self.funding_confirmations();
            if Ladder::new(interval).is_none_or(|l| !l.fits_dying_period(dying, confirmations)) {
                return Err(ConfigError::BadLadder {
                    interval,
                    dying,
                    confirmations,
                });
            }
        }
        let max = params.max_clients as usize;
        if size > max {
            return Err(ConfigError::FactoryTooLarge { size, max });
        }
        if let Some(listen) = self.lightning.ln_listen.filter(|a| a.port() == 0) {
            return Err(ConfigError::LnListenPortZero(listen));
        }
        if let Some(alias) = self.lightning.ln_alias.as_ref().filter(|a| a.len() > 32) {
            return Err(ConfigError::LnAliasTooLong(alias.len()));
        }
        Ok(())
    }

    /// The tree parameters of every factory: the network's, with the operator's active and
    /// dying periods. The time from the end of the dying period to the timeout `T` stays the
    /// network's, so every exit, sweep and payment window derived from it holds unchanged.
    pub fn factory_params(&self) -> FactoryParams {
        let preset = FactoryParams::for_network(self.network);
        let active = self
            .factory
            .active_blocks
            .map_or(preset.active, BlockDelta::from_blocks);
        let dying = self
            .factory
            .dying_blocks
            .map_or(preset.dying, BlockDelta::from_blocks);
        // `validate` refuses a lifetime that would overflow.
        preset.with_lifetime(active, dying).unwrap_or(preset)
    }

    /// The ladder's schedule, if the operator set one.
    pub fn ladder(&self) -> Option<Ladder> {
        self.factory.ladder_interval.and_then(Ladder::new)
    }

    /// Seconds a block takes on this network, to tell a wallet about how long it waits for a
    /// rung (regtest: the demo's one block every 10 s).
    pub fn block_secs(&self) -> u64 {
        match self.network {
            Network::Regtest => 10,
            _ => 600,
        }
    }

    /// Clients per factory for this network.
    pub fn factory_size(&self) -> usize {
        self.factory.factory_size.unwrap_or(match self.network {
            Network::Regtest => 8,
            _ => 64,
        })
    }

    /// Confirmations after which a factory counts as funded, for this network.
    pub fn funding_confirmations(&self) -> u32 {
        self.factory
            .funding_confirmations
            .unwrap_or(match self.network {
                Network::Bitcoin => 3,
                _ => 1,
            })
            .max(1)
    }

    /// The Lightning node's alias: `--ln-alias`, or else the LSP's name cut to 32 bytes.
    pub fn ln_alias(&self) -> String {
        if let Some(alias) = &self.lightning.ln_alias {
            return alias.clone();
        }
        let mut end = self.name.len().min(32);
        while !self.name.is_char_boundary(end) {
            end -= 1;
        }
        self.name[..end].to_string()
    }

    /// The Esplora URL wallets are told about.
    pub fn advertised_esplora_url(&self) -> &str {
        self.public_esplora_url
            .as_deref()
            .unwrap_or(&self.esplora_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut all = vec!["lsp-server", "--esplora-url", "http://127.0.0.1:3002"];
        all.extend_from_slice(args);
        Config::parse_from(all)
    }

    #[test]
    fn the_operator_sets_the_lifetime_and_the_tail_after_the_dying_period_stays() {
        let network = ["--network", "regtest"];
        let preset = FactoryParams::for_network(Network::Regtest);
        assert_eq!(parse(&network).factory_params(), preset);
        let config = parse(&[
            "--network",
            "regtest",
            "--factory-active-blocks",
            "20",
            "--factory-dying-blocks",
            "12",
        ]);
        config.validate().unwrap();
        let params = config.factory_params();
        assert_eq!(
            (params.active.to_blocks(), params.dying.to_blocks()),
            (20, 12)
        );
        let tail = |p: &FactoryParams| {
            p.timeout_delta.to_blocks() - p.active.to_blocks() - p.dying.to_blocks()
        };
        assert_eq!(tail(&params), tail(&preset));
        params.validate().unwrap();
        // Wallets refuse a dying period below the network's.
        let short = parse(&["--network", "regtest", "--factory-dying-blocks", "3"]);
        let err = short.validate().unwrap_err();
        assert!(matches!(err, ConfigError::BadLifetime(_)), "{err}");
        let empty = parse(&["--network", "regtest", "--factory-active-blocks", "0"]);
        let err = empty.validate().unwrap_err();
        assert!(matches!(err, ConfigError::BadLifetime(_)), "{err}");
        let huge = parse(&[
            "--network",
            "regtest",
            "--factory-active-blocks",
            "4294967295",
        ]);
        let err = huge.validate().unwrap_err();
        assert!(matches!(err, ConfigError::BadLifetime(_)), "{err}");
    }

    #[test]
    fn a_ladder_interval_must_fit_in_the_dying_period() {
        let regtest = |extra: &[&str]| {
            let mut args = vec!["--network", "regtest", "--factory-dying-blocks", "12"];
            args.extend_from_slice(extra);
            parse(&args)
        };
        assert_eq!(regtest(&[]).ladder(), None);
        // Regtest funds a factory with one confirmation: a rung at most 11 blocks into the
        // dying period.
        let config = regtest(&["--ladder-interval", "11"]);
        config.validate().unwrap();
        assert_eq!(config.ladder().map(Ladder::interval), Some(11));
        for bad in ["0", "12"] {
            let err = regtest(&["--ladder-interval", bad]).validate().unwrap_err();
            assert!(
                matches!(err, ConfigError::BadLadder { dying: 12, .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn the_lightning_node_is_off_unless_a_listen_port_is_given() {
        let config = parse(&[]);
        assert_eq!(config.lightning.ln_listen, None);
        config.validate().unwrap();
        let config = parse(&["--ln-listen", "127.0.0.1:0"]);
        let err = config.validate().unwrap_err();
        assert!(matches!(err, ConfigError::LnListenPortZero(_)), "{err}");
        parse(&["--ln-listen", "127.0.0.1:9735"])
            .validate()
            .unwrap();
    }

    #[test]
    fn the_alias_defaults_to_the_name_cut_to_32_bytes_on_a_char_boundary() {
        // Byte 32 falls inside an "é": the alias stops before it.
        let config = parse(&["--name", &format!("a{}", "é".repeat(20))]);
        let alias = config.ln_alias();
        assert_eq!(alias, format!("a{}", "é".repeat(15)));
        assert_eq!(alias.len(), 31);
        let config = parse(&["--ln-alias", &"x".repeat(33)]);
        assert!(matches!(
            config.validate(),
            Err(ConfigError::LnAliasTooLong(33))
        ));
        assert_eq!(parse(&["--ln-alias", "hub"]).ln_alias(), "hub");
    }
}
