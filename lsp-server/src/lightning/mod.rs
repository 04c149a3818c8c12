//! The LSP's Lightning node: an LDK node (`ldk-node`) inside the LSP's process, its door to the
//! Lightning Network.
//!
//! What it is made of:
//! - its seed, `ln.seed` in the data dir (`seed`), and its state (channels, peers, payments, its
//!   own on-chain wallet) in `ln/` beside it, in LDK's SQLite store;
//! - its chain data from the LSP's Esplora; it syncs when the LSP's tip watcher sees a new
//!   block and at least every 30 s (`sync`);
//! - its events, taken and acknowledged one at a time (`events`); the outcomes of payments
//!   it sent for the LSP's clients (`pay`), and the payments it holds for them (`receive`),
//!   go to the payment router first ([`Report`]);
//! - snapshots for the admin API and `/metrics` (`view`).
//!
//! Threads: ldk-node's calls block (they wrap async code in `block_in_place`, which panics
//! on a current-thread runtime), so the node gets a multi-thread tokio runtime of its own and
//! every call into it runs on that runtime's blocking pool ([`LnNode`]'s methods are async and
//! never block the caller). The LSP may therefore run on any runtime, and LDK's background work
//! never competes with the LSP's connections for worker threads.
//!
//! Lifetime: [`LnNode::start`] builds and starts the node; [`LnNode::tasks`] keeps it synced
//! and handles its events until the server stops; [`LnNode::stop`] stops it cleanly (peers
//! disconnected, state persisted); [`LnNode::stop_now`] does the same from synchronous code,
//! and dropping an [`LnNode`] that still runs calls it.

mod error;
mod events;
pub mod pay;
pub mod receive;
mod seed;
mod sync;
pub mod view;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::PublicKey;
use bitcoin::{Address, Amount, Network};
use ldk_node::config::EsploraSyncConfig;
use ldk_node::lightning::ln::msgs::SocketAddress;
use ldk_node::{Node, NodeError, UserChannelId};
use tokio::sync::mpsc;

pub use error::LnError;
use view::{BalancesView, ChannelView, LnGauges, NodeInfo, PeerView};

use crate::config::Config;
use crate::tip::Tip;

/// Worker threads of the node's runtime: LDK's background work is light.
const WORKER_THREADS: usize = 2;
/// How long the node's runtime waits, once the node is dropped, for calls still running.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(30);

/// How to run the node, from the LSP's configuration.
#[derive(Debug, Clone)]
pub struct LnSettings {
    /// The LSP's network.
    pub network: Network,
    /// The LSP's Esplora.
    pub esplora_url: String,
    /// The LSP's data dir.
    pub data_dir: PathBuf,
    /// Where the node takes peer connections.
    pub listen: SocketAddr,
    /// What it announces, when not the listen address.
    pub announce: Option<String>,
    /// Its alias.
    pub alias: String,
}

impl LnSettings {
    /// The node's settings, or `None` when `--ln-listen` is not given (no node).
    pub fn from_config(config: &Config) -> Option<LnSettings> {
        Some(LnSettings {
            network: config.network,
            esplora_url: config.esplora_url.trim_end_matches('/').to_string(),
            data_dir: config.data_dir.clone(),
            listen: config.lightning.ln_listen?,
            announce: config.lightning.ln_announce.clone(),
            alias: config.ln_alias(),
        })
    }
}

/// What [`LnNode::open_channel`] opens.
#[derive(Debug, Clone)]
pub struct OpenChannel {
    /// The peer.
    pub node_id: PublicKey,
    /// Where to reach it.
    pub address: SocketAddress,
    /// The channel's capacity, from the node's on-chain wallet.
    pub amount: Amount,
    /// Given to the peer at opening, so that it can pay back at once.
    pub push: Amount,
    /// Whether the channel is public (announced to the graph).
    pub announce: bool,
}

/// What the node tells the payment router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// What became of a payment the node sent for a client.
    Outcome(pay::Outcome),
    /// A payment for a client arrived and waits to be claimed.
    Incoming(receive::Incoming),
}

/// The running node.
pub struct LnNode {
    node: Arc<Node>,
    /// The key its invoices are signed with (`receive`), when derived.
    invoice_key: Option<bitcoin::secp256k1::SecretKey>,
    handle: tokio::runtime::Handle,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for LnNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LnNode")
            .field("node_id", &self.node.node_id())
            .finish_non_exhaustive()
    }
}

impl LnNode {
    /// Loads or creates the seed, builds the node on its own runtime and starts it (which reads
    /// fee estimates from Esplora and binds the listen address).
    pub async fn start(settings: LnSettings) -> Result<LnNode, LnError> {
        let storage = seed::storage_dir(&settings.data_dir);
        let seed = seed::LnSeed::load_or_create(&settings.data_dir, &storage)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("ldk")
            .enable_all()
            .build()
            .map_err(LnError::Runtime)?;
        let handle = runtime.handle().clone();
        let mut builder = ldk_node::Builder::new();
        builder
            .set_network(settings.network)
            .set_storage_dir_path(storage.to_string_lossy().into_owned())
            .set_entropy_seed_bytes(seed.bytes())
            .set_chain_source_esplora(
                settings.esplora_url.clone(),
                Some(EsploraSyncConfig {
                    background_sync_config: None,
                }),
            )
            .set_log_facade_logger()
            .set_runtime(handle.clone());
        builder
            .set_listening_addresses(vec![SocketAddress::from(settings.listen)])
            .map_err(LnError::Build)?;
        if let Some(announce) = &settings.announce {
            let address = parse_address("--ln-announce", announce)?;
            builder
                .set_announcement_addresses(vec![address])
                .map_err(LnError::Build)?;
        }
        builder
            .set_node_alias(settings.alias.clone())
            .map_err(LnError::Build)?;
        let esplora = settings.esplora_url.clone();
        let listen = settings.listen.to_string();
        let seed_bytes = seed.bytes();
        let node = handle
            .spawn_blocking(move || {
                let node = builder.build().map_err(LnError::Build)?;
                node.start().map_err(|source| LnError::Start {
                    source,
                    esplora,
                    listen,
                })?;
                Ok::<_, LnError>(Arc::new(node))
            })
            .await
            .map_err(|_| LnError::Stopped)??;
        tracing::info!(
            node_id = %node.node_id(),
            listen = %settings.listen,
            network = %settings.network,
            "Lightning node running"
        );
        let invoice_key = receive::invoice_key(settings.network, &seed_bytes, node.node_id());
        if invoice_key.is_none() {
            tracing::warn!("the node's key could not be derived from its seed: clients' invoices cannot be made payable from the Lightning Network");
        }
        Ok(LnNode {
            node,
            invoice_key,
            handle,
            runtime: Some(runtime),
        })
    }

    /// Runs `f` on the node's blocking pool.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Node) -> T + Send + 'static,
    ) -> Result<T, LnError> {
        let node = self.node.clone();
        self.handle
            .spawn_blocking(move || f(&node))
            .await
            .map_err(|e| {
                if e.is_panic() {
                    tracing::error!(error = %e, "a call into the Lightning node panicked");
                }
                LnError::Stopped
            })
    }

    /// The node's id.
    pub fn node_id(&self) -> PublicKey {
        self.node.node_id()
    }

    /// The node, its addresses and how far it is synced.
    pub async fn info(&self) -> Result<NodeInfo, LnError> {
        self.call(|node| {
            let status = node.status();
            let strings = |a: Option<Vec<SocketAddress>>| {
                a.unwrap_or_default()
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
            };
            let listening = strings(node.listening_addresses());
            let announced = strings(node.announcement_addresses());
            let node_id = node.node_id().to_string();
            let reachable = if announced.is_empty() {
                &listening
            } else {
                &announced
            };
            NodeInfo {
                uris: reachable.iter().map(|a| format!("{node_id}@{a}")).collect(),
                node_id,
                listening_addresses: listening.clone(),
                announcement_addresses: announced.clone(),
                alias: node.node_alias().map(|a| a.to_string()),
                network: node.config().network.to_string(),
                best_block_height: status.current_best_block.height,
                running: status.is_running,
                last_lightning_sync: status.latest_lightning_wallet_sync_timestamp,
                last_onchain_sync: status.latest_onchain_wallet_sync_timestamp,
            }
        })
        .await
    }

    /// Every channel, opening, open or closing.
    pub async fn channels(&self) -> Result<Vec<ChannelView>, LnError> {
        self.call(|node| node.list_channels().iter().map(ChannelView::from).collect())
            .await
    }

    /// Every peer the node is connected to or remembers.
    pub async fn peers(&self) -> Result<Vec<PeerView>, LnError> {
        self.call(|node| node.list_peers().iter().map(PeerView::from).collect())
            .await
    }

    /// The node's money, on chain and in channels.
    pub async fn balances(&self) -> Result<BalancesView, LnError> {
        self.call(|node| BalancesView::from(&node.list_balances()))
            .await
    }

    /// The gauges `/metrics` shows.
    pub async fn gauges(&self) -> Result<LnGauges, LnError> {
        self.call(|node| {
            LnGauges::of(
                &node.list_channels(),
                &node.list_peers(),
                &node.list_balances(),
            )
        })
        .await
    }

    /// A fresh address of the node's on-chain wallet, to fund its channels.
    pub async fn new_address(&self) -> Result<Address, LnError> {
        self.call(|node| node.onchain_payment().new_address())
            .await?
            .map_err(LnError::node("derive an address"))
    }

    /// Connects to a peer; with `persist`, reconnects to it after restarts too.
    pub async fn connect(
        &self,
        node_id: PublicKey,
        address: SocketAddress,
        persist: bool,
    ) -> Result<(), LnError> {
        self.call(move |node| node.connect(node_id, address, persist))
            .await?
            .map_err(LnError::node("connect to the peer"))
    }

    /// Opens a channel (connecting first if needed) and returns its user channel id. The
    /// funding transaction goes out once the peer has signed; the channel is ready after its
    /// confirmations.
    pub async fn open_channel(&self, open: OpenChannel) -> Result<String, LnError> {
        let push_msat = (open.push > Amount::ZERO).then(|| open.push.to_sat() * 1000);
        let id = self
            .call(move |node| {
                let (id, addr, sats) = (open.node_id, open.address, open.amount.to_sat());
                if open.announce {
                    node.open_announced_channel(id, addr, sats, push_msat, None)
                } else {
                    node.open_channel(id, addr, sats, push_msat, None)
                }
            })
            .await?
            .map_err(LnError::node("open the channel"))?;
        tracing::info!(
            user_channel_id = id.0,
            peer = %open.node_id,
            sats = open.amount.to_sat(),
            "Lightning channel opening"
        );
        Ok(id.0.to_string())
    }

    /// Closes a channel by its user channel id: cooperatively, or with `force` by publishing
    /// the node's latest commitment.
    pub async fn close_channel(&self, user_channel_id: &str, force: bool) -> Result<(), LnError> {
        let id = user_channel_id
            .parse::<u128>()
            .map(UserChannelId)
            .map_err(|e| LnError::BadInput {
                field: "user_channel_id",
                reason: e.to_string(),
            })?;
        let shown = user_channel_id.to_string();
        self.call(move |node| {
            let channel = node
                .list_channels()
                .into_iter()
                .find(|c| c.user_channel_id == id)
                .ok_or(LnError::UnknownChannel(shown))?;
            let peer = channel.counterparty_node_id;
            if force {
                node.force_close_channel(&id, peer, Some("closed by the operator".into()))
                    .map_err(LnError::node("force-close the channel"))
            } else {
                node.close_channel(&id, peer)
                    .map_err(LnError::node("close the channel"))
            }
        })
        .await?
    }

    /// Syncs the node's channels and on-chain wallet with the chain, and its fee estimates.
    pub async fn sync(&self) -> Result<(), LnError> {
        self.call(|node| node.sync_wallets())
            .await?
            .map_err(LnError::node("sync with the chain"))
    }

    /// Stops the node: disconnects its peers and waits for its background work to end.
    pub async fn stop(&self) -> Result<(), LnError> {
        match self.call(|node| node.stop()).await? {
            Ok(()) | Err(NodeError::NotRunning) => Ok(()),
            Err(e) => Err(LnError::node("stop the node")(e)),
        }
    }

    /// The node's work for as long as the server runs: syncing with the chain and handling its
    /// events, whose payment reports go to `outcomes` (the payment router). Never returns;
    /// the server's supervisor drops it on stop.
    pub(crate) async fn tasks(self: Arc<Self>, tip: Tip, outcomes: mpsc::Sender<Report>) {
        tokio::join!(self.clone().keep_synced(tip), self.handle_events(outcomes));
    }

    async fn keep_synced(self: Arc<Self>, tip: Tip) {
        let mut schedule = sync::SyncSchedule::default();
        let mut tick = tokio::time::interval(sync::TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let height = tip.height().ok();
            let now = Instant::now();
            if !schedule.due(height, now) {
                continue;
            }
            let result = self.sync().await;
            if let Err(e) = &result {
                tracing::warn!(error = %e, "the Lightning node could not sync; retrying");
            }
            schedule.record(height, now, result.is_ok());
        }
    }

    /// Takes the node's events one at a time, sends what they report to `outcomes`, and
    /// acknowledges each; returns when `outcomes` is closed or the node stops.
    pub async fn handle_events(self: Arc<Self>, outcomes: mpsc::Sender<Report>) {
        loop {
            let event = self.node.next_event_async().await;
            events::log(&event);
            // Acknowledged only once the router has the outcome: an outcome lost in a crash
            // comes again (and the router's reconciliation asks LDK anyway).
            let report = pay::Outcome::of_event(&event)
                .map(Report::Outcome)
                .or_else(|| receive::Incoming::of_event(&event).map(Report::Incoming));
            if let Some(report) = report {
                if outcomes.send(report).await.is_err() {
                    return;
                }
            }
            match self.call(|node| node.event_handled()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not acknowledge a Lightning event; it comes again")
                }
                Err(_) => return,
            }
        }
    }
}

impl LnNode {
    /// Stops the node from synchronous code and waits until it has stopped (a no-op if it
    /// already has). LDK's stop blocks on its own runtime, so it runs on a thread of its own,
    /// which works from any context, async or not, and needs nothing from the caller's runtime.
    pub fn stop_now(&self) {
        let node = self.node.clone();
        let stop = move || {
            if node.status().is_running {
                if let Err(e) = node.stop() {
                    tracing::warn!(error = %e, "the Lightning node did not stop cleanly");
                }
            }
        };
        match std::thread::Builder::new()
            .name("ldk-stop".into())
            .spawn(stop)
        {
            Ok(thread) => {
                if thread.join().is_err() {
                    tracing::warn!("stopping the Lightning node panicked");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not start a thread to stop the Lightning node")
            }
        }
    }
}

impl Drop for LnNode {
    fn drop(&mut self) {
        self.stop_now();
        // A call may still run on the blocking pool (a sync started just before the stop): the
        // runtime ends once it is done, on a thread of its own (a runtime cannot be dropped
        // inside another, and `shutdown_background` would pull the timers from under it).
        if let Some(runtime) = self.runtime.take() {
            let shutdown = move || runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
            if let Err(e) = std::thread::Builder::new()
                .name("ldk-shutdown".into())
                .spawn(shutdown)
            {
                tracing::warn!(error = %e, "could not start a thread to end the Lightning node's runtime");
            }
        }
    }
}

/// A node id from a request.
pub fn parse_node_id(text: &str) -> Result<PublicKey, LnError> {
    PublicKey::from_str(text.trim()).map_err(|e| LnError::BadInput {
        field: "node_id",
        reason: e.to_string(),
    })
}

/// A peer address (`host:port`, `ip:port`, or an onion address) from a request or a flag.
pub fn parse_address(field: &'static str, text: &str) -> Result<SocketAddress, LnError> {
    SocketAddress::from_str(text.trim()).map_err(|e| LnError::BadInput {
        field,
        reason: e.to_string(),
    })
}
