//! Channels and payments: the router task owns every leaf channel of every funded factory, runs
//! their commitment rounds with the wallets over WebSocket, and routes payments payer → LSP →
//! payee (`forward`).
//!
//! Shape (as the factory coordinator: one task owns the state, so no lock spans a step):
//!
//! ```text
//! connection tasks (ws) ──RouterMsg──▶ router ──Outbound frames──▶ connection tasks
//!                                        │
//!                      SQLite (changes) ◀┘ (committed before the frames they allow)
//! ```
//!
//! - A wallet sends `channel_open` for each of its funded leaves on every connection; the LSP
//!   opens the channel the first time (from the factory's stored proposal) and answers with its
//!   own basepoints; an interrupted round is restarted (`Channel::reset_round`).
//! - The LSP drives rounds: after any update, an idle channel whose wallet is connected starts
//!   a round at once. A wallet that leaves a round unanswered for
//!   `--channel-round-timeout-secs` is disconnected (the round restarts when it reconnects).
//! - Every `Persist` of every channel touched by one input is written in one SQLite
//!   transaction before any frame of that input leaves.
//! - Liquidity is sold by advancing a leaf (`liquidity`); the leaf watch (`watch`) gets the
//!   newest state of every advanced leaf confirmed whenever its tree is published.
//! - A payee outside the LSP is paid through its Lightning node (`outside`), whose outcomes
//!   come back on their own queue; so do the payments the node holds for the LSP's clients
//!   from the Lightning Network (`inbound`).

mod forward;
mod inbound;
mod link;
mod liquidity;
mod onchain;
mod outside;
mod publish;
mod release;
mod retire;
mod store;
mod swap;
mod sweep;
mod trees;
mod walk;
mod watch;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::absolute::Height;
use bitcoin::secp256k1::{Keypair, XOnlyPublicKey};
use bitcoin::Network;
use serde::Serialize;
use shared::pay::{ChannelId, ChannelPolicy};
use shared::terms::FeeSchedule;
use shared::types::Now;
use shared::wire::{ErrorAbout, ErrorCode, WireMsg};
use tokio::sync::{mpsc, oneshot};

pub(crate) use onchain::read;
pub(crate) use publish::{read_refusal, Published, Publisher};
pub use store::{ChannelStore, ChannelStoreError, FeesEarned, PaymentRow, SalesTotals};
pub use swap::SwapView;
pub(crate) use walk::read_chain;

use crate::config::PaymentOptions;
use crate::factory::{ConnId, Outbound};
use forward::Forwards;
use link::Link;

/// At most this many waiting messages are handled before one `flush` stores and sends what
/// they changed (bounds how long the first frame of a batch waits behind the others).
const BATCH: usize = 64;

/// What connection tasks tell the router.
#[derive(Debug)]
pub enum RouterMsg {
    /// A connection proved it holds `identity`.
    Attach {
        /// The connection.
        conn: ConnId,
        /// Its identity key.
        identity: XOnlyPublicKey,
        /// Where its frames go.
        out: mpsc::UnboundedSender<Outbound>,
    },
    /// A channel or payment message from an attached connection.
    Message {
        /// The connection.
        conn: ConnId,
        /// The message.
        msg: WireMsg,
    },
    /// The connection closed.
    Detach {
        /// The connection.
        conn: ConnId,
    },
    /// The operator asks for the channels and payments.
    Inspect(oneshot::Sender<RouterView>),
}

/// The operator's view of channels and payments (admin API).
#[derive(Debug, Clone, Serialize)]
pub struct RouterView {
    /// Every open channel.
    pub channels: Vec<ChannelView>,
    /// Payments delivered since the LSP started.
    pub settled: u64,
    /// Payments failed back since the LSP started.
    pub failed: u64,
    /// Sats delivered to payees since the LSP started.
    pub volume_sat: u64,
    /// Routing fees earned since the LSP started.
    pub fees_earned_sat: u64,
    /// Fees earned by every settled payment the database holds (all time): routing fees and
    /// join fees apart.
    pub earned: FeesEarned,
    /// Sats the demo faucet credited since the LSP started (invoice amounts: a join fee taken
    /// from a faucet payment is in `earned.join_sat`).
    pub faucet_sat: u64,
    /// Payments waiting for their payee to come online.
    pub waiting: usize,
    /// Inbound liquidity sold (all time).
    pub liquidity: SalesTotals,
    /// The latest payments, newest first.
    pub recent: Vec<PaymentRow>,
    /// Swaps out not yet claimed or refunded.
    pub swaps: Vec<swap::SwapView>,
}

/// One channel in a [`RouterView`].
#[derive(Debug, Clone, Serialize)]
pub struct ChannelView {
    /// The channel (`factory/client`).
    pub channel: String,
    /// The client's identity key.
    pub identity: XOnlyPublicKey,
    /// Whether the wallet is connected and has opened the channel on this connection.
    pub connected: bool,
    /// Latest commitment number (none before the first round).
    pub commitment: Option<u64>,
    /// The LSP's balance.
    pub lsp_sat: u64,
    /// The client's balance.
    pub client_sat: u64,
    /// HTLCs pending.
    pub htlcs: usize,
    /// The leaf state the channel lives on (0 until the client bought liquidity).
    pub leaf: u8,
    /// `open`, or why it takes no payment: `expired` (its factory is near its timeout),
    /// `closing` (its factory's tree is going on chain) or `closed` (a commitment is on chain).
    pub state: &'static str,
    /// Why it takes no payment, in words.
    pub reason: Option<String>,
    /// The LSP's claims from a commitment on chain: `{kind, txid, confirmed}`.
    pub claims: Vec<serde_json::Value>,
    /// Liquidity the client bought on this leaf.
    pub bought_sat: u64,
    /// What is left in the leaf's L-stock to sell.
    pub available_sat: u64,
    /// The fee of the client's join quote.
    pub join_fee_sat: u64,
    /// What of it is still owed (0 once a payment paid it, or while one is paying it).
    pub join_fee_owed_sat: u64,
    /// The payment (hash) that paid the join fee, or is paying it.
    pub join_fee_paid_by: Option<String>,
}

/// Counters since start.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    settled: u64,
    failed: u64,
    volume_sat: u64,
    fees_sat: u64,
    faucet_sat: u64,
}

/// The router's fixed settings.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// The network.
    pub network: Network,
    /// Leaf channel constants.
    pub policy: ChannelPolicy,
    /// Published fees.
    pub fees: FeeSchedule,
    /// Published smallest and largest liquidity purchase.
    pub liquidity: (bitcoin::Amount, bitcoin::Amount),
    /// Payment options.
    pub options: PaymentOptions,
    /// Where the LSP's claims from commitments on chain pay (its on-chain wallet).
    pub sweep_to: bitcoin::ScriptBuf,
    /// The ladder's schedule, named in the notices of a factory's end.
    pub ladder: Option<shared::lifecycle::Ladder>,
}

/// The router task's state.
pub struct Router {
    settings: RouterSettings,
    key: Keypair,
    store: ChannelStore,
    esplora: esplora_client::AsyncClient,
    /// The shared chain tip (never awaited).
    tip: crate::tip::Tip,
    height: u32,
    conns: HashMap<ConnId, (XOnlyPublicKey, mpsc::UnboundedSender<Outbound>)>,
    online: HashMap<XOnlyPublicKey, ConnId>,
    links: HashMap<ChannelId, Link>,
    by_identity: HashMap<XOnlyPublicKey, Vec<ChannelId>>,
    forwards: Forwards,
    dirty: BTreeSet<ChannelId>,
    totals: Totals,
    /// Whether a pass of the leaf watch is running, and when the last one started.
    watching: (Arc<std::sync::atomic::AtomicBool>, std::time::Instant),
    /// The channel watch (`onchain`).
    chain: onchain::ChainWatch,
    /// Channels whose wallet heard, on this connection, that their factory is ending.
    told_ending: std::collections::HashSet<(ChannelId, ConnId)>,
    /// The LSP's Lightning node, if it runs one (`outside`).
    ln: Option<Arc<crate::lightning::LnNode>>,
    /// Outcomes of outside payments and payments held for clients: the node's events and the
    /// router's own send tasks send, `run` receives.
    outside: (
        mpsc::Sender<crate::lightning::Report>,
        Option<mpsc::Receiver<crate::lightning::Report>>,
    ),
    /// The invoices the node holds for clients' payment hashes (`inbound`).
    registered: HashMap<bitcoin::hashes::sha256::Hash, store::LnInvoiceRow>,
    /// The node's answers to invoice registrations (`inbound`).
    registering: (
        mpsc::Sender<inbound::Registered>,
        Option<mpsc::Receiver<inbound::Registered>>,
    ),
    /// Swaps out: HTLCs paid out to on-chain outputs (`swap`).
    swaps: swap::Swaps,
    /// The funded factories' trees, each built once (`trees`).
    trees: trees::FactoryTrees,
}

impl Router {
    /// Opens the router on `data_dir`'s database and restores every stored channel. Fee bumps
    /// of the transactions it publishes are paid from `wallet`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: RouterSettings,
        key: Keypair,
        data_dir: &std::path::Path,
        esplora: esplora_client::AsyncClient,
        tip: crate::tip::Tip,
        ln: Option<Arc<crate::lightning::LnNode>>,
        wallet: Arc<crate::wallet::LspWallet>,
    ) -> anyhow::Result<Router> {
        let height = tip.height().unwrap_or(0);
        let store = ChannelStore::open(data_dir)?;
        let (outside_tx, outside_rx) = mpsc::channel(1024);
        let (registering_tx, registering_rx) = mpsc::channel(256);
        let mut router = Router {
            settings,
            key,
            store,
            esplora,
            tip,
            height,
            conns: HashMap::new(),
            online: HashMap::new(),
            links: HashMap::new(),
            by_identity: HashMap::new(),
            forwards: Forwards::default(),
            dirty: BTreeSet::new(),
            totals: Totals::default(),
            watching: (Arc::default(), std::time::Instant::now()),
            swaps: swap::Swaps::new(wallet.clone()),
            chain: onchain::ChainWatch::new(wallet),
            told_ending: Default::default(),
            ln,
            outside: (outside_tx, Some(outside_rx)),
            registered: HashMap::new(),
            registering: (registering_tx, Some(registering_rx)),
            trees: trees::FactoryTrees::default(),
        };
        router.restore()?;
        Ok(router)
    }

    /// Where the Lightning node sends its reports (outside payments' outcomes, held payments).
    pub fn outside_outcomes(&self) -> mpsc::Sender<crate::lightning::Report> {
        self.outside.0.clone()
    }

    /// Serves until every sender is gone.
    pub async fn run(mut self, mut rx: mpsc::Receiver<RouterMsg>) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut seen = self.chain.seen.take().expect("run is called once");
        let mut outside = self.outside.1.take().expect("run is called once");
        let mut registering = self.registering.1.take().expect("run is called once");
        let mut swaps = self.take_swap_seen();
        self.reconcile_outside();
        // A message taken from the queue that must start a batch of its own.
        let mut next: Option<RouterMsg> = None;
        loop {
            if let Some(msg) = next.take() {
                next = self.batch(msg, &mut rx);
                self.flush();
                continue;
            }
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => next = self.batch(msg, &mut rx),
                    None => return,
                },
                Some(s) = seen.recv() => self.on_seen(s),
                Some(report) = outside.recv() => match report {
                    crate::lightning::Report::Outcome(outcome) => self.on_outside(outcome),
                    crate::lightning::Report::Incoming(incoming) => self.on_incoming(incoming),
                },
                Some(registered) = registering.recv() => self.on_registered(registered),
                Some(seen) = swaps.recv() => self.on_swap_seen(seen),
                _ = tick.tick() => {
                    if let Ok(h) = self.tip.height() {
                        self.height = self.height.max(h);
                    }
                    self.on_tick();
                }
            }
            self.flush();
        }
    }

    /// Handles `first` and then, as one batch for one `flush` (group commit: one SQLite
    /// transaction, one `fsync`, stores what all of them changed), the channel frames already
    /// waiting behind it, at most [`BATCH`] messages. Nothing leaves before `flush` has stored
    /// it, so batching only delays frames by the batch's handling.
    ///
    /// Only channel frames join a batch: any other message may start something that `flush`
    /// must not see mixed with earlier messages' changes (a liquidity purchase is abandoned if
    /// its channel changes after it starts), so it is returned, to start the next batch.
    fn batch(&mut self, first: RouterMsg, rx: &mut mpsc::Receiver<RouterMsg>) -> Option<RouterMsg> {
        self.on_msg(first);
        for _ in 1..BATCH {
            match rx.try_recv() {
                Ok(
                    msg @ RouterMsg::Message {
                        msg: WireMsg::Channel(_),
                        ..
                    },
                ) => self.on_msg(msg),
                Ok(other) => return Some(other),
                Err(_) => break,
            }
        }
        None
    }

    fn now(&self) -> Now {
        Now {
            height: Height::from_consensus(self.height).unwrap_or(Height::ZERO),
            unix_time: crate::factory::unix_now(),
        }
    }

    fn on_msg(&mut self, msg: RouterMsg) {
        match msg {
            RouterMsg::Attach {
                conn,
                identity,
                out,
            } => {
                self.conns.insert(conn, (identity, out));
                self.online.insert(identity, conn);
            }
            RouterMsg::Detach { conn } => self.on_detach(conn),
            RouterMsg::Message { conn, msg } => {
                let Some((identity, _)) = self.conns.get(&conn) else {
                    return;
                };
                let identity = *identity;
                self.on_message(conn, identity, msg);
            }
            RouterMsg::Inspect(reply) => {
                let _ = reply.send(self.view());
            }
        }
    }

    fn on_detach(&mut self, conn: ConnId) {
        let Some((identity, _)) = self.conns.remove(&conn) else {
            return;
        };
        self.forwards.drop_requests_of(conn);
        self.told_ending.retain(|(_, c)| *c != conn);
        if self.online.get(&identity) == Some(&conn) {
            self.online.remove(&identity);
            // Another connection of the same wallet (a second tab) is still served.
            let other = self
                .conns
                .iter()
                .find(|(_, (i, _))| *i == identity)
                .map(|(c, _)| *c);
            if let Some(other) = other {
                self.online.insert(identity, other);
            }
        }
        // The channels opened on this connection, whichever connection is the wallet's latest.
        for id in self.by_identity.get(&identity).cloned().unwrap_or_default() {
            if let Some(link) = self.links.get_mut(&id) {
                if link.ready == Some(conn) {
                    link.ready = None;
                    link.channel.reset_round();
                }
                if link.advance.as_ref().is_some_and(|a| a.conn() == conn) {
                    tracing::info!(channel = %id, "liquidity purchase abandoned: the wallet left");
                    link.advance = None;
                }
            }
        }
    }

    fn on_message(&mut self, conn: ConnId, identity: XOnlyPublicKey, msg: WireMsg) {
        match msg {
            WireMsg::ChannelOpen(open) => self.on_open(conn, identity, *open),
            WireMsg::Channel(frame) => self.on_channel(conn, identity, *frame),
            WireMsg::PayRequest(req) => self.on_pay_request(conn, identity, req),
            WireMsg::FaucetRequest(req) => self.on_faucet(conn, identity, req),
            WireMsg::SwapOutRequest(req) => self.on_swap_request(conn, identity, req),
            WireMsg::RouteQuery(query) => self.on_route_query(conn, query),
            WireMsg::InvoiceRegister(request) => self.on_invoice_register(conn, identity, request),
            WireMsg::LiquidityRequest(req) => self.on_liquidity_request(conn, identity, req),
            WireMsg::LiquidityAccept(accept) => self.on_liquidity_accept(conn, identity, *accept),
            WireMsg::LeafPartials(partials) => self.on_leaf_partials(conn, identity, *partials),
            WireMsg::KeyRelease(release) => self.on_key_release(conn, identity, release),
            _ => {}
        }
    }

    /// Whether `identity` has a channel that takes payments now.
    fn has_open_channel(&self, identity: &XOnlyPublicKey) -> bool {
        self.by_identity
            .get(identity)
            .into_iter()
            .flatten()
            .filter_map(|id| self.links.get(id))
            .any(|l| l.routable())
    }

    /// Sends `msg` to connection `conn`.
    fn send_conn(&self, conn: ConnId, msg: WireMsg) {
        if let Some((_, out)) = self.conns.get(&conn) {
            let _ = out.send(Outbound::Frame(crate::factory::encode(msg)));
        }
    }

    /// Sends `msg` to `identity`'s current connection, if any.
    fn send_identity(&self, identity: &XOnlyPublicKey, msg: WireMsg) {
        if let Some(conn) = self.online.get(identity) {
            self.send_conn(*conn, msg);
        }
    }

    /// Refuses something from `conn`, naming what it is about.
    fn refuse(
        &self,
        conn: ConnId,
        code: ErrorCode,
        about: Option<ErrorAbout>,
        message: impl Into<String>,
    ) {
        self.send_conn(conn, WireMsg::refusal(code, about, message));
    }

    /// Every few seconds, a pass of the leaf watch over every leaf that sold liquidity.
    fn watch_leaves(&mut self) {
        if self.watching.1.elapsed() < Duration::from_secs(3) {
            return;
        }
        self.watching.1 = std::time::Instant::now();
        let leaves: Vec<watch::Guarded> = self
            .links
            .values()
            .filter(|l| l.leaf.latest().epoch.0 > 0)
            // A moved member's leaf is not published: its input is swept by key path
            // (`sweep.rs`), and publishing the leaf would race the sweep.
            .filter(|l| l.closing != Some(onchain::Closing::Released))
            .filter_map(|l| {
                let newest = &l.leaf.latest().node;
                Some(watch::Guarded {
                    id: l.id,
                    parent: l.leaf.parent(),
                    newest: newest.signed_tx()?,
                    delay: newest.relative_delay().to_blocks(),
                })
            })
            .collect();
        let Ok(tip) = self.tip.height() else {
            return; // no fresh tip: nothing can be judged due
        };
        watch::spawn_pass(self.esplora.clone(), self.watching.0.clone(), tip, leaves);
    }

    fn on_tick(&mut self) {
        self.tell_ending();
        self.watch_leaves();
        self.watch_channels();
        self.watch_swaps();
        let now = self.now();
        self.drop_stalled(now.unix_time);
        // A request's HTLC commits in the wallet's next round, or the wallet was disconnected.
        let max_age = self
            .settings
            .options
            .channel_round_timeout_secs
            .saturating_mul(2);
        self.forwards
            .expire_requests(now.unix_time, max_age.max(60));
        for id in self.forwards.overdue(now.unix_time) {
            self.fail_forward(id, shared::pay::PayFailure::PayeeOffline);
        }
        let due: Vec<ChannelId> = self
            .links
            .iter()
            .filter(|(_, l)| l.channel.poll_timeout().is_some_and(|d| now.height >= d))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(link) = self.links.get_mut(&id) {
                link.channel.handle_timeout(now);
                self.dirty.insert(id);
            }
        }
    }

    /// Closes the connection of every wallet that left a commitment round unanswered for
    /// `--channel-round-timeout-secs`: its rounds reset (they restart when it reconnects) and
    /// payments towards it wait for it as for any offline payee.
    fn drop_stalled(&mut self, now: u64) {
        let timeout = self.settings.options.channel_round_timeout_secs;
        let stalled: Vec<(ConnId, ChannelId)> = self
            .links
            .values()
            .filter(|l| l.channel.in_round())
            .filter(|l| {
                l.round_since
                    .is_some_and(|t| now >= t.saturating_add(timeout))
            })
            .filter_map(|l| l.ready.map(|conn| (conn, l.id)))
            .collect();
        // A purchase that stalls (the wallet gave up without saying so) frees the channel.
        let overdue: Vec<(ChannelId, ConnId, String)> = self
            .links
            .values_mut()
            .filter_map(|l| l.advance.as_mut().map(|a| (l.id, a)))
            .filter_map(|(id, a)| a.on_clock(now).map(|why| (id, a.conn(), why)))
            .collect();
        for (id, conn, why) in overdue {
            self.abort_advance(id, conn, &why);
        }
        for (conn, id) in stalled {
            if !self.conns.contains_key(&conn) {
                continue;
            }
            tracing::warn!(channel = %id, conn, "no answer to a commitment round; closing the wallet's connection");
            let msg = WireMsg::Error {
                code: ErrorCode::Unexpected,
                message: format!(
                    "channel {id}: no answer to the commitment round within {timeout} s; \
                     closing the connection (the round restarts when you reconnect)"
                ),
                fatal: true,
                about: Some(ErrorAbout::Channel { channel: id }),
            };
            if let Some((_, out)) = self.conns.get(&conn) {
                let _ = out.send(Outbound::Close(crate::factory::encode(msg)));
            }
            self.on_detach(conn);
        }
    }

    fn view(&self) -> RouterView {
        let mut channels: Vec<ChannelView> = self
            .links
            .values()
            .map(|l| {
                let spec = l.channel.spec();
                ChannelView {
                    channel: l.id.to_string(),
                    identity: l.identity,
                    connected: l.ready.is_some(),
                    commitment: l.channel.number(),
                    lsp_sat: spec.lsp_balance.to_sat(),
                    client_sat: spec.client_balance.to_sat(),
                    htlcs: spec.htlcs.len(),
                    leaf: l.leaf.latest().epoch.0,
                    state: l.closing.as_ref().map_or("open", |c| c.state()),
                    reason: l.closing.as_ref().map(|c| c.describe()),
                    claims: l
                        .claims
                        .iter()
                        .map(|c| {
                            serde_json::json!({
                                "kind": c.kind.name(),
                                "txid": c.tx.compute_txid().to_string(),
                                "confirmed": c.confirmed,
                            })
                        })
                        .collect(),
                    bought_sat: l.leaf.latest().sold.to_sat(),
                    available_sat: l.leaf.available().to_sat(),
                    join_fee_sat: l.join_fee.quoted().to_sat(),
                    join_fee_owed_sat: l.join_fee.unpaid().to_sat(),
                    join_fee_paid_by: l.join_fee.paid_by().map(|h| h.to_string()),
                }
            })
            .collect();
        channels.sort_by(|a, b| a.channel.cmp(&b.channel));
        RouterView {
            channels,
            settled: self.totals.settled,
            failed: self.totals.failed,
            volume_sat: self.totals.volume_sat,
            fees_earned_sat: self.totals.fees_sat,
            earned: self.store.fees_earned().unwrap_or_default(),
            faucet_sat: self.totals.faucet_sat,
            waiting: self.forwards.waiting(),
            liquidity: self.store.sales_totals().unwrap_or_default(),
            recent: self.store.recent_payments(100).unwrap_or_default(),
            swaps: self.swap_views(),
        }
    }
}

/// Shared handle type for the admin API.
pub type RouterHandle = Arc<mpsc::Sender<RouterMsg>>;
