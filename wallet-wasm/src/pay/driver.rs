//! The payment client's loop: frames from the LSP, commands from the UI, timers, and the
//! channels it keeps open. Paying and being paid is in [`payments`]; the wallet's side of a
//! liquidity purchase is in [`advance`].

mod advance;
mod migrate;
mod payments;
mod receive;
mod swap;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
mod tower;

use std::collections::{BTreeMap, HashMap};
use std::pin::pin;
use std::time::Duration;

use bitcoin::absolute::Height;
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::Amount;
use futures::channel::{mpsc, oneshot};
use futures::future::{select, Either};
use futures::StreamExt;
use shared::channel::keys::ChannelSecrets;
use shared::channel::{Action, Channel, ChannelEvent, ChannelMsg, Side};
use shared::leaf::LeafEpoch;
use shared::pay::policy::channel_seed;
use shared::pay::{ChannelFrame, ChannelId, ChannelOpen, ChannelPolicy, FaucetRequest};
use shared::terms::TermsBody;
use shared::types::Now;
use shared::wire::{Envelope, ErrorAbout, WireMsg};

use super::store::{LeafChannel, LeafRecord, PayState, PayStore, PaymentRecord};
use super::{ChannelSummary, Command, PayConfig, PayError, PayEvent, PayHandle, PayLeaf, Snapshot};
use crate::platform::{sleep, unix_now};
use crate::session::handshake::{handshake, Greeting, Link};
use crate::session::{ChainSource, Connect, SessionError, Transport};

/// Longest the loop sleeps without looking at its timers.
const IDLE: Duration = Duration::from_secs(1);
/// How often the chain tip is read.
const TIP_EVERY_SECS: u64 = 5;

/// How long a quote waits for the provider's word on its payee.
const ROUTE_ANSWER_SECS: u64 = 3;

/// A quote waiting for a [`shared::pay::RouteAnswer`].
struct RouteQueryWait {
    hash: bitcoin::hashes::sha256::Hash,
    until: u64,
    quote: crate::pay::PayQuote,
    reply: oneshot::Sender<Result<crate::pay::PayQuote, PayError>>,
}

/// A channel the LSP opened (the live one of its leaf, or the one a purchase opens).
struct Open {
    key: LeafChannel,
    channel: Channel,
    next_seq: u64,
    ready: bool,
}

type PayReply = oneshot::Sender<Result<PaymentRecord, PayError>>;

/// The wallet's payment client. See the module docs of `pay`.
pub struct PayClient<C: Connect, S, H> {
    config: PayConfig,
    policy: ChannelPolicy,
    connector: C,
    store: S,
    chain: H,
    events: Option<mpsc::UnboundedSender<PayEvent>>,
    commands: mpsc::UnboundedReceiver<Command>,
    leaves: BTreeMap<ChannelId, PayLeaf>,
    link: Option<Link<C::Transport>>,
    lsp: Option<XOnlyPublicKey>,
    terms: Option<TermsBody>,
    stored: PayState,
    open: BTreeMap<ChannelId, Open>,
    pending: HashMap<(ChannelId, u64), PayReply>,
    flights: BTreeMap<ChannelId, advance::Flight>,
    /// Channels the provider said take no more payments, and why.
    closed: BTreeMap<ChannelId, String>,
    /// HTLCs of this wallet failed when their channel closed before any commitment carried
    /// them: no later round may carry them (the payment is already "failed" in the history).
    failed_on_close: std::collections::BTreeSet<(ChannelId, u64)>,
    /// Quotes waiting for the provider's word on their payee.
    route_queries: Vec<RouteQueryWait>,
    /// Invoices waiting for the provider's Lightning node to become their payee.
    invoice_waits: Vec<receive::InvoiceWait>,
    /// Key releases waiting for the provider's answer.
    releases: BTreeMap<ChannelId, oneshot::Sender<Result<(), PayError>>>,
    /// Channels the provider holds the key of (this wallet moved out of them).
    moved: std::collections::BTreeSet<ChannelId>,
    /// The watchtower's side: what it was sent and what is out of date.
    tower: tower::TowerSync,
    height: u32,
    next_tip: u64,
    stop: bool,
}

impl<C: Connect, S: PayStore, H: ChainSource> PayClient<C, S, H> {
    /// A client with its handle.
    pub fn new(config: PayConfig, connector: C, store: S, chain: H) -> (Self, PayHandle) {
        let (tx, commands) = mpsc::unbounded();
        let leaves = config
            .leaves
            .iter()
            .map(|l| (l.channel, l.clone()))
            .collect();
        let client = PayClient {
            policy: ChannelPolicy::for_network(config.network),
            config,
            connector,
            store,
            chain,
            events: None,
            commands,
            leaves,
            link: None,
            lsp: None,
            terms: None,
            stored: PayState::default(),
            open: BTreeMap::new(),
            pending: HashMap::new(),
            flights: BTreeMap::new(),
            closed: BTreeMap::new(),
            failed_on_close: Default::default(),
            route_queries: Vec::new(),
            invoice_waits: Vec::new(),
            releases: BTreeMap::new(),
            moved: Default::default(),
            tower: Default::default(),
            height: 0,
            next_tip: 0,
            stop: false,
        };
        (client, PayHandle { tx })
    }

    /// Reports what happens on `events`.
    pub fn with_events(mut self, events: mpsc::UnboundedSender<PayEvent>) -> Self {
        self.events = Some(events);
        self
    }

    /// Runs until stopped (or every handle is dropped). Errors are storage failures: the
    /// client stops rather than act on something it could not store.
    pub async fn run(mut self) -> Result<(), PayError> {
        self.stored = self.store.load().await?;
        for id in self.leaves.keys() {
            self.tower.touch(*id);
        }
        self.resume_advances();
        self.refresh_tip().await;
        let mut next_tick = 0u64;
        while !self.stop {
            if self.link.is_none() {
                // Claims need no provider: they go out while it is unreachable too.
                self.chain_tick().await?;
                self.connect().await?;
                continue;
            }
            let got = {
                let link = self.link.as_mut().expect("checked");
                let frame = pin!(link.transport.next());
                let command = pin!(self.commands.next());
                let timer = pin!(sleep(IDLE));
                match select(frame, select(command, timer)).await {
                    Either::Left((frame, _)) => Wake::Frame(frame),
                    Either::Right((Either::Left((cmd, _)), _)) => Wake::Command(cmd),
                    Either::Right((Either::Right(_), _)) => Wake::Tick,
                }
            };
            match got {
                Wake::Frame(Ok(Some(text))) => self.on_frame(&text).await?,
                Wake::Frame(Ok(None)) => self.lost("the provider closed the connection".into()),
                Wake::Frame(Err(e)) => self.lost(e.reason),
                Wake::Command(Some(cmd)) => self.on_command(cmd).await?,
                Wake::Command(None) => self.stop = true,
                Wake::Tick => {}
            }
            // Timers run on the clock, however busy the connection or the UI keeps the loop.
            let now = crate::platform::unix_millis();
            if now >= next_tick {
                next_tick = now + IDLE.as_millis() as u64;
                self.on_tick().await?;
            }
        }
        Ok(())
    }

    fn emit(&self, event: PayEvent) {
        if let Some(events) = &self.events {
            let _ = events.unbounded_send(event);
        }
    }

    fn now(&self) -> Now {
        Now {
            height: Height::from_consensus(self.height).unwrap_or(Height::ZERO),
            unix_time: unix_now(),
        }
    }

    async fn refresh_tip(&mut self) {
        if let Ok(h) = self.chain.tip_height().await {
            self.height = self.height.max(h);
        }
        self.next_tip = unix_now() + TIP_EVERY_SECS;
    }

    /// When the tip is due for a read: reads it and claims the swaps due; says whether it did.
    async fn chain_tick(&mut self) -> Result<bool, PayError> {
        if unix_now() < self.next_tip {
            return Ok(false);
        }
        self.refresh_tip().await;
        self.claim_swaps().await?;
        Ok(true)
    }

    fn lost(&mut self, reason: String) {
        self.link = None;
        self.expire_route_queries(true);
        self.expire_invoice_waits(true);
        for open in self.open.values_mut() {
            open.ready = false;
            open.channel.reset_round();
        }
        self.advances_lost();
        for (_, reply) in std::mem::take(&mut self.releases) {
            let _ = reply.send(Err(PayError::NotConnected));
        }
        self.emit(PayEvent::Disconnected { reason });
    }

    /// Connects (waiting between attempts, answering commands meanwhile), then opens every
    /// leaf's channel.
    async fn connect(&mut self) -> Result<(), PayError> {
        let opened = match self.connector.connect().await {
            Ok(t) => {
                let hello = Greeting {
                    network: self.config.network,
                    identity: &self.config.identity,
                    agent: &self.config.agent,
                };
                handshake(t, hello, self.lsp).await
            }
            Err(e) => Err(crate::session::handshake::unreachable(e)),
        };
        match opened {
            Ok(link) => {
                self.lsp = Some(link.lsp);
                self.terms = Some(link.terms.clone());
                self.link = Some(link);
                self.emit(PayEvent::Connected);
                let opens: Vec<ChannelOpen> =
                    self.leaves.values().map(|l| self.open_msg(l)).collect();
                for open in opens {
                    self.send(WireMsg::ChannelOpen(Box::new(open))).await;
                }
            }
            Err(SessionError::LspChanged) => {
                self.emit(PayEvent::LspError(SessionError::LspChanged.to_string()));
                self.idle(Duration::from_secs(30)).await?;
            }
            Err(e) => {
                self.emit(PayEvent::Disconnected {
                    reason: e.to_string(),
                });
                self.idle(self.config.reconnect_delay).await?;
            }
        }
        Ok(())
    }

    /// Waits `pause`, answering commands (offline) meanwhile.
    async fn idle(&mut self, pause: Duration) -> Result<(), PayError> {
        let until = crate::platform::unix_millis() + pause.as_millis() as u64;
        loop {
            let left = until.saturating_sub(crate::platform::unix_millis());
            if left == 0 || self.stop {
                return Ok(());
            }
            let command = pin!(self.commands.next());
            let timer = pin!(sleep(Duration::from_millis(left)));
            match select(command, timer).await {
                Either::Left((Some(cmd), _)) => self.on_command(cmd).await?,
                Either::Left((None, _)) => self.stop = true,
                Either::Right(_) => return Ok(()),
            }
        }
    }

    async fn send(&mut self, msg: WireMsg) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if let Err(e) = link.transport.send(Envelope::new(msg).encode()).await {
            self.lost(e.reason);
        }
    }

    /// The leaf record of channel `id`: stored once its leaf advanced (or was being signed),
    /// else state 0 of its path.
    fn leaf_record(&self, leaf: &PayLeaf) -> LeafRecord {
        super::restore::leaf_record(&self.stored, leaf)
    }

    /// The channel `id` lives on now: its leaf's newest signed state's.
    fn live(&self, id: ChannelId) -> LeafChannel {
        LeafChannel {
            channel: id,
            leaf: self
                .stored
                .leaves
                .get(&id)
                .map_or(LeafEpoch::FIRST, |r| r.states.latest().epoch),
        }
    }

    /// The `channel_open` for `leaf`'s live channel, saying how many of the LSP's updates this
    /// wallet holds.
    fn open_msg(&self, leaf: &PayLeaf) -> ChannelOpen {
        let key = self.live(leaf.channel);
        let received = match self.open.get(&leaf.channel) {
            Some(o) if o.key == key => o.channel.updates_received(),
            _ => {
                let from = self.log_from(key);
                self.stored.channels.get(&key).map_or(0, |(_, changes)| {
                    lsp_updates_in(changes.get(from as usize..).unwrap_or_default())
                })
            }
        };
        ChannelOpen {
            purchase: self.frozen_purchase(leaf.channel),
            ..client_open(leaf, key.leaf, received)
        }
    }

    /// Where the changes of the attempt that opened `key`'s channel start in its log.
    fn log_from(&self, key: LeafChannel) -> u64 {
        self.stored
            .leaves
            .get(&key.channel)
            .and_then(|r| r.openings.get(&key.leaf))
            .map_or(0, |o| o.log_from)
    }

    async fn on_tick(&mut self) -> Result<(), PayError> {
        self.sync_tower();
        self.ask_refused_again().await?;
        self.expire_route_queries(false);
        self.expire_invoice_waits(false);
        if self.chain_tick().await? {
            // Leaves the LSP has not opened yet (say, their factory's funding was not deep
            // enough for it a moment ago): ask again.
            let unopened: Vec<ChannelOpen> = self
                .leaves
                .values()
                .filter(|l| !self.open.get(&l.channel).is_some_and(|o| o.ready))
                .map(|l| self.open_msg(l))
                .collect();
            for open in unopened {
                self.send(WireMsg::ChannelOpen(Box::new(open))).await;
            }
        }
        let now = self.now();
        let due: Vec<ChannelId> = self
            .open
            .iter()
            .filter(|(_, o)| o.channel.poll_timeout().is_some_and(|d| now.height >= d))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(o) = self.open.get_mut(&id) {
                o.channel.handle_timeout(now);
            }
            self.perform(id).await?;
        }
        Ok(())
    }

    async fn on_frame(&mut self, text: &str) -> Result<(), PayError> {
        let Ok(env) = Envelope::decode(text) else {
            return Ok(());
        };
        match env.msg {
            WireMsg::Ping { nonce } => self.send(WireMsg::Pong { nonce }).await,
            WireMsg::ChannelOpen(open) => self.on_lsp_open(*open).await?,
            WireMsg::Channel(frame) => self.on_channel(*frame).await?,
            WireMsg::PayResult(result) => self.on_pay_result(result).await?,
            WireMsg::SwapOutFunded(funded) => self.on_swap_funded(*funded).await?,
            WireMsg::LiquidityOffer(offer) => self.on_offer(*offer).await?,
            WireMsg::LeafSigned(signed) => self.on_leaf_signed(*signed).await?,
            WireMsg::ChannelClosed(closed) => self.on_closed(closed).await?,
            WireMsg::RouteAnswer(answer) => self.on_route_answer(answer),
            WireMsg::InvoiceRegistered(registered) => self.on_invoice_registered(registered).await,
            WireMsg::KeyReleased(released) => self.on_key_released(released.channel),
            WireMsg::FactoryNotice(notice) => self.emit(PayEvent::FactoryEnding(notice)),
            WireMsg::Error { message, about, .. } => {
                if let Some(ErrorAbout::Liquidity { channel }) = about {
                    self.advance_refused(channel, &message);
                }
                if let Some(ErrorAbout::Channel { channel }) = about {
                    self.release_refused(channel, &message);
                }
                if let Some(ErrorAbout::Invoice { hash }) = about {
                    self.invoice_refused(hash);
                }
                self.emit(PayEvent::LspError(message))
            }
            _ => {}
        }
        Ok(())
    }

    /// The LSP opened (or re-opened) a channel.
    async fn on_lsp_open(&mut self, open: ChannelOpen) -> Result<(), PayError> {
        let id = open.channel;
        let Some(leaf) = self.leaves.get(&id).cloned() else {
            return Ok(());
        };
        let key = self.live(id);
        if open.leaf != key.leaf {
            // An answer to an open of a state this wallet has left (or not reached yet).
            return Ok(());
        }
        self.ask_again(id).await?;
        if let Some(o) = self.open.get_mut(&id).filter(|o| o.key == key) {
            let stored = self.stored.channels.get(&key).and_then(|(s, _)| s.as_ref());
            if stored.is_some_and(|s| !same_peer(s, &open)) {
                self.emit(PayEvent::LspError(format!(
                    "the provider re-opened channel {id} with other keys; refusing it"
                )));
                return Ok(());
            }
            o.ready = true;
            o.channel.reset_round();
            o.channel.resend_updates(open.next_update);
            self.emit(PayEvent::ChannelReady(id));
            return self.perform(id).await;
        }
        let (stored_open, changes) = self.stored.channels.get(&key).cloned().unwrap_or_default();
        if stored_open.as_ref().is_some_and(|s| !same_peer(s, &open)) {
            self.emit(PayEvent::LspError(format!(
                "the provider re-opened channel {id} with other keys; refusing it"
            )));
            return Ok(());
        }
        let record = self.leaf_record(&leaf);
        let next_seq = changes.len() as u64;
        let mut channel = match super::restore::restore_channel(
            &leaf,
            &record,
            key,
            &open,
            &changes,
            &self.policy,
        ) {
            Ok(c) => c,
            Err(e) => {
                self.emit(PayEvent::LspError(format!("channel {id}: {e}")));
                return Ok(());
            }
        };
        channel.resend_updates(open.next_update);
        if stored_open.is_none() {
            self.store.save_lsp_open(&open).await?;
            self.stored.channels.entry(key).or_default().0 = Some(open);
        }
        self.open.insert(
            id,
            Open {
                key,
                channel,
                next_seq,
                ready: true,
            },
        );
        self.emit(PayEvent::ChannelReady(id));
        self.perform(id).await
    }

    async fn on_channel(&mut self, frame: ChannelFrame) -> Result<(), PayError> {
        let key = LeafChannel {
            channel: frame.channel,
            leaf: frame.leaf,
        };
        let now = self.now();
        if key == self.live(key.channel) && self.frozen_purchase(key.channel).is_some() {
            // The LSP may hold the new leaf state: nothing may change the old channel.
            self.emit(PayEvent::LspError(format!(
                "channel {key}: ignored an update while a liquidity purchase is being signed"
            )));
            return Ok(());
        }
        let failed: Vec<u64> = self
            .failed_on_close
            .iter()
            .filter(|(c, _)| *c == key.channel)
            .map(|(_, htlc)| *htlc)
            .collect();
        let Some(o) = self.channel_mut(key) else {
            return Ok(());
        };
        let mut rng = rand::rngs::OsRng;
        let refused = o.channel.handle_message(now, frame.msg, &mut rng).err();
        // A round that would carry an HTLC already failed on close is not signed.
        let carried = failed
            .into_iter()
            .find(|htlc| o.channel.peer_may_hold(Side::Client, *htlc));
        if carried.is_some() {
            o.channel.reset_round();
            while o.channel.poll_action().is_some() {}
        }
        if let Some(e) = refused {
            self.emit(PayEvent::LspError(format!("channel {key}: refused: {e}")));
        }
        if let Some(htlc) = carried {
            self.emit(PayEvent::LspError(format!(
                "channel {key}: refused a round carrying payment {htlc}, which failed when the channel closed"
            )));
            return Ok(());
        }
        self.perform_on(key).await
    }

    /// The open channel `key`: the live one, or the one a purchase is opening.
    fn channel_mut(&mut self, key: LeafChannel) -> Option<&mut Open> {
        match self.open.get_mut(&key.channel) {
            Some(o) if o.key == key => Some(o),
            _ => self
                .flights
                .get_mut(&key.channel)
                .and_then(|f| f.new_channel(key)),
        }
    }

    /// Performs the live channel's actions.
    async fn perform(&mut self, id: ChannelId) -> Result<(), PayError> {
        let key = self.live(id);
        self.perform_on(key).await
    }

    /// Performs the channel's actions: stores first, then frames, then events (which may queue
    /// more actions: repeated until none are left).
    async fn perform_on(&mut self, key: LeafChannel) -> Result<(), PayError> {
        let id = key.channel;
        loop {
            let Some(o) = self.channel_mut(key) else {
                return Ok(());
            };
            let mut changes = Vec::new();
            let mut frames = Vec::new();
            let mut events = Vec::new();
            let mut broadcast = false;
            while let Some(action) = o.channel.poll_action() {
                match action {
                    Action::Persist(change) => changes.push(change),
                    Action::Send(msg) => frames.push(msg),
                    Action::Emit(event) => events.push(event),
                    Action::Broadcast(_) => broadcast = true,
                }
            }
            if broadcast && !self.closed.contains_key(&id) {
                // The commitment spends the leaf, which must be on chain first: the page's
                // exit walks the tree, publishes it and claims, by itself.
                let reason = "The provider did not settle a payment in time, so your wallet is \
                              taking this channel on chain to collect it"
                    .to_string();
                self.closed.insert(id, reason.clone());
                self.emit(PayEvent::GoingOnChain {
                    channel: id,
                    reason,
                });
                self.emit(PayEvent::Updated);
            }
            let Some(o) = self.channel_mut(key) else {
                return Ok(());
            };
            if changes.is_empty() && frames.is_empty() && events.is_empty() {
                return Ok(());
            }
            if !changes.is_empty() {
                let first = o.next_seq;
                o.next_seq += changes.len() as u64;
                self.store.append_changes(key, first, &changes).await?;
                self.tower.touch(id);
                self.stored
                    .channels
                    .entry(key)
                    .or_default()
                    .1
                    .extend(changes);
            }
            for msg in frames {
                self.send_channel(key, msg).await;
            }
            for event in events {
                if key == self.live(id) {
                    self.on_event(id, event).await?;
                } else {
                    self.on_new_channel_event(key, event).await?;
                }
            }
        }
    }

    async fn send_channel(&mut self, key: LeafChannel, msg: ChannelMsg) {
        self.send(WireMsg::Channel(Box::new(ChannelFrame {
            channel: key.channel,
            leaf: key.leaf,
            msg,
        })))
        .await
    }

    async fn on_event(&mut self, id: ChannelId, event: ChannelEvent) -> Result<(), PayError> {
        match event {
            ChannelEvent::Committed { .. } => {
                self.on_committed(id).await?;
                self.emit(PayEvent::Updated);
            }
            ChannelEvent::PreimageReceived { id: htlc, preimage } => {
                self.settle_sent(id, htlc, preimage, None).await?
            }
            ChannelEvent::Closed { .. } | ChannelEvent::ForceClose { .. } => {}
        }
        Ok(())
    }

    async fn on_command(&mut self, cmd: Command) -> Result<(), PayError> {
        match cmd {
            Command::Invoice {
                amount,
                description,
                reply,
            } => self.invoice_for_anyone(amount, description, reply).await,
            Command::Quote { invoice, reply } => self.quote_and_ask(&invoice, reply).await,
            Command::Pay { invoice, reply } => self.pay(&invoice, None, reply).await?,
            Command::SwapQuote {
                address,
                amount,
                reply,
            } => {
                let _ = reply.send(self.swap_quote(&address, amount).await.map(|(q, _)| q));
            }
            Command::SwapOut {
                address,
                quote,
                reply,
            } => self.swap_out(&address, &quote, reply).await?,
            Command::MoveBalance { from, to, reply } => self.move_balance(from, to, reply).await?,
            Command::ReleaseKey { channel, reply } => self.release_key(channel, reply).await,
            Command::Faucet { amount, reply } => {
                let made = self
                    .make_invoice(amount, "Test sats from the provider's faucet".into(), None)
                    .await;
                if let Ok(inv) = &made {
                    self.send(WireMsg::FaucetRequest(FaucetRequest {
                        invoice: inv.invoice.clone(),
                    }))
                    .await;
                }
                let _ = reply.send(made);
            }
            Command::Snapshot { reply } => {
                let _ = reply.send(self.snapshot());
            }
            Command::LiquidityQuote { amount, reply } => {
                let _ = reply.send(self.liquidity_quote(amount));
            }
            Command::BuyLiquidity { amount, reply } => self.buy_liquidity(amount, reply).await,
            Command::Stop => self.stop = true,
        }
        Ok(())
    }

    fn snapshot(&self) -> Snapshot {
        let channels: Vec<ChannelSummary> = self
            .open
            .iter()
            .map(|(id, o)| {
                let spec = o.channel.spec();
                let for_sale = self
                    .leaves
                    .get(id)
                    .map_or(Amount::ZERO, |l| self.leaf_record(l).states.available());
                ChannelSummary {
                    channel: *id,
                    capacity: o.channel.params().funding_output.value,
                    balance: spec.client_balance,
                    inbound: o.channel.client_inbound(),
                    pending: spec.htlcs.len(),
                    ready: o.ready && o.channel.number().is_some(),
                    leaf: o.key.leaf,
                    for_sale,
                    advance: self.flights.get(id).map(|f| f.step()),
                    closed: self.closed.get(id).cloned(),
                    join_fee: self.join_fee(*id),
                }
            })
            .collect();
        let mut payments = self.stored.payments.clone();
        payments.reverse();
        let live = || channels.iter().filter(|c| c.closed.is_none());
        Snapshot {
            connected: self.link.is_some(),
            balance: live().map(|c| c.balance).sum(),
            inbound: live().map(|c| c.inbound).sum(),
            channels,
            payments,
            watchtower: self.tower.words(self.config.watchtower.is_some()),
        }
    }
}

enum Wake {
    Frame(Result<Option<String>, crate::session::TransportError>),
    Command(Option<Command>),
    Tick,
}

/// Whether the LSP's `open` has the keys of the one stored (`stored`). From leaf state 1 on the
/// fee rate is the old channel's, so an open's own fee rate is not compared.
fn same_peer(stored: &ChannelOpen, open: &ChannelOpen) -> bool {
    if open.leaf == LeafEpoch::FIRST {
        return stored.same_keys(open);
    }
    stored.channel == open.channel && stored.leaf == open.leaf && stored.same_points(open)
}

/// What the wallet sends the LSP for `leaf`'s channel on leaf state `epoch`: its channel
/// basepoints and first two points.
fn client_open(leaf: &PayLeaf, epoch: LeafEpoch, next_update: u64) -> ChannelOpen {
    let secrets =
        ChannelSecrets::from_seed(&channel_seed(&leaf.factory_secret, leaf.channel, epoch));
    ChannelOpen {
        next_update,
        ..ChannelOpen::new(leaf.channel, epoch, &secrets)
    }
}

/// How many of the LSP's updates a stored change log holds.
fn lsp_updates_in(changes: &[shared::channel::ChannelChange]) -> u64 {
    changes
        .iter()
        .filter(|c| {
            matches!(
                c,
                shared::channel::ChannelChange::Update {
                    from: Side::Lsp,
                    ..
                }
            )
        })
        .count() as u64
}
