//! The coordinator task: routes wallet messages to the right factory's ceremony, re-attaches
//! reconnecting wallets, and runs timers. The ceremonies' actions are performed in
//! `super::events`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::absolute::Height;
use bitcoin::hashes::{hmac, sha256, Hash, HashEngine};
use bitcoin::secp256k1::{Keypair, SecretKey, XOnlyPublicKey};
use rand::rngs::StdRng;
use rand::SeedableRng;
use shared::auth::{Authenticated, Resumed};
use shared::ceremony::{LspCeremony, LspConfig, LspStatus, Reason, Refuse, Round, RoundTimeouts};
use shared::types::{ClientId, FactoryId, Now, SessionId};
use shared::wire::{Envelope, ErrorCode, WireMsg};
use tokio::sync::mpsc;

use super::chain::WatchList;
use super::persist::{SharedGuard, StoreError};
use super::proposer::{FactoryProposer, FundingHandle};
use super::{
    unix_now, CeremonyView, ConnId, CoordinatorView, Inbound, MemberView, Outbound, Settings,
};
use crate::config::Config;
use crate::store::Store;
use crate::terms;
use crate::wallet::LspWallet;

/// How often timers are checked (deadlines are whole seconds).
const TICK: Duration = Duration::from_millis(200);
/// How long an ended factory's members can still reconnect and be told how it ended.
const RETAIN_ENDED_SECS: u64 = 24 * 3600;
/// How often [`Coordinator::prune`] looks for state to forget.
const PRUNE_EVERY_SECS: u64 = 60;

pub(super) type Ceremony = LspCeremony<FactoryProposer, SharedGuard>;

/// Where one factory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Gathering,
    Signing,
    Broadcast,
    Done,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Gathering => "gathering",
            Phase::Signing => "signing",
            Phase::Broadcast => "broadcast",
            Phase::Done => "done",
        }
    }
}

/// A ceremony's status in words.
fn describe(status: &LspStatus) -> String {
    match status {
        LspStatus::Gathering { members } => format!("gathering, {members} joined"),
        LspStatus::Signing {
            session,
            round,
            waiting_on,
        } => format!("session {session}: {round:?} round, waiting on {waiting_on}"),
        LspStatus::AwaitingConfirmation { txid } => format!("funding {txid} awaits confirmation"),
        LspStatus::Funded { txid } => format!("funded by {txid}"),
        LspStatus::Failed { reason } => format!("failed: {reason}"),
    }
}

/// One factory the coordinator knows.
pub(super) struct Slot {
    /// `None` once finished, or for a factory restored from the store.
    pub(super) ceremony: Option<Ceremony>,
    pub(super) funding: Option<FundingHandle>,
    pub(super) identities: BTreeMap<ClientId, XOnlyPublicKey>,
    pub(super) excluded: BTreeSet<ClientId>,
    pub(super) phase: Phase,
    pub(super) full: bool,
    pub(super) session: Option<SessionId>,
    pub(super) members_stored: bool,
    /// Fee bumping of its broadcast funding transaction.
    pub(super) stall: Option<super::bump::Stall>,
    /// Unix time the factory ended (funded, failed or aborted).
    pub(super) ended_at: Option<u64>,
    /// The signing round last seen, to log each round once as it opens.
    pub(super) round: Option<(SessionId, Round)>,
}

impl Slot {
    /// Whether `client` still takes part in a ceremony that is not over.
    pub(super) fn is_active_member(&self, client: ClientId) -> bool {
        matches!(self.phase, Phase::Gathering | Phase::Signing)
            && self
                .ceremony
                .as_ref()
                .is_some_and(|c| c.members().contains_key(&client))
    }
}

/// A wallet identity, connected or not.
#[derive(Default)]
pub(super) struct Peer {
    pub(super) conn: Option<ConnId>,
    pub(super) membership: Option<(FactoryId, ClientId)>,
    /// Unix time it disconnected while an active member.
    pub(super) away_since: Option<u64>,
    /// The last ceremony frame it was sent, replayed when it re-attaches.
    pub(super) last_frame: Option<Arc<str>>,
}

struct Conn {
    identity: XOnlyPublicKey,
    out: mpsc::UnboundedSender<Outbound>,
}

/// Owns every factory's ceremony. Run with [`Coordinator::run`].
pub(crate) struct Coordinator {
    pub(super) settings: Settings,
    config: Arc<Config>,
    identity: Keypair,
    pub(super) wallet: Arc<LspWallet>,
    pub(super) store: Store,
    guard: SharedGuard,
    pub(super) rng: StdRng,
    height: u32,
    pub(super) slots: BTreeMap<FactoryId, Slot>,
    pub(super) gathering: Option<FactoryId>,
    conns: HashMap<ConnId, Conn>,
    pub(super) peers: HashMap<XOnlyPublicKey, Peer>,
    pub(super) watch: WatchList,
    open_slots: Arc<AtomicU32>,
    /// The last encoded proposal, shared by every member's frame.
    propose_cache: Option<((FactoryId, SessionId), Arc<str>)>,
    /// Unix time of the next [`prune`](Self::prune).
    next_prune: u64,
}

impl Coordinator {
    /// Restores from the store: aborts ceremonies that were in flight, resumes watching
    /// broadcast factories.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        settings: Settings,
        config: Arc<Config>,
        identity: Keypair,
        wallet: Arc<LspWallet>,
        store: Store,
        watch: WatchList,
        open_slots: Arc<AtomicU32>,
        height: u32,
    ) -> Result<Coordinator, StoreError> {
        let guard =
            SharedGuard::restore(store.load_guard_records()?).map_err(|e| StoreError::Corrupt {
                what: "double-sign records",
                reason: e.to_string(),
            })?;
        let mut this = Coordinator {
            settings,
            config,
            identity,
            wallet,
            store,
            guard,
            rng: StdRng::from_entropy(),
            height,
            slots: BTreeMap::new(),
            gathering: None,
            conns: HashMap::new(),
            peers: HashMap::new(),
            watch,
            open_slots,
            propose_cache: None,
            next_prune: 0,
        };
        this.restore()?;
        this.publish_open_slots();
        Ok(this)
    }

    /// Serves until every sender of `rx` is gone.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Inbound>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                inbound = rx.recv() => match inbound {
                    Some(inbound) => self.on_inbound(inbound).await,
                    None => return,
                },
                _ = tick.tick() => {}
            }
            self.on_timers().await;
        }
    }

    async fn on_inbound(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Attach {
                conn,
                identity,
                out,
            } => self.on_attach(conn, identity, out),
            Inbound::Detach { conn } => self.on_detach(conn),
            Inbound::Message { conn, msg } => self.on_message(conn, msg).await,
            Inbound::Chain(update) => self.on_chain(update).await,
            Inbound::Inspect(reply) => {
                let _ = reply.send(self.inspect());
            }
        }
    }

    /// The ceremonies that are not finished, for the operator.
    fn inspect(&self) -> CoordinatorView {
        let now = unix_now();
        let ceremonies = self
            .slots
            .iter()
            .filter(|(_, s)| s.phase != Phase::Done)
            .map(|(&factory, slot)| {
                let members = slot
                    .identities
                    .iter()
                    .filter(|(c, _)| !slot.excluded.contains(c))
                    .map(|(&client, identity)| {
                        let peer = self.peers.get(identity);
                        MemberView {
                            client,
                            identity: *identity,
                            connected: peer.is_some_and(|p| p.conn.is_some()),
                            away_secs: peer
                                .and_then(|p| p.away_since)
                                .map(|t| now.saturating_sub(t)),
                        }
                    })
                    .collect();
                // A restored factory has no ceremony, and no gathering left.
                let (gather_until, start_height) = slot
                    .ceremony
                    .as_ref()
                    .map_or((0, None), |c| c.gathering_end());
                CeremonyView {
                    factory,
                    phase: slot.phase.as_str(),
                    status: slot
                        .ceremony
                        .as_ref()
                        .map_or_else(|| "restored".to_owned(), |c| describe(&c.status())),
                    session: slot.session,
                    gather_until,
                    start_height: start_height.map(Height::to_consensus_u32),
                    members,
                    excluded: slot.excluded.iter().copied().collect(),
                }
            })
            .collect();
        CoordinatorView {
            known_wallets: self.peers.len(),
            ceremonies,
        }
    }

    /// Forgets factories that ended more than [`RETAIN_ENDED_SECS`] ago, and every wallet that
    /// is neither connected nor a member of a factory still known, so memory stays bounded by
    /// the wallets that matter now.
    pub(super) fn prune(&mut self, now: u64) {
        if now < self.next_prune {
            return;
        }
        self.next_prune = now.saturating_add(PRUNE_EVERY_SECS);
        self.slots.retain(|_, s| {
            s.ended_at
                .is_none_or(|t| now < t.saturating_add(RETAIN_ENDED_SECS))
        });
        let slots = &self.slots;
        self.peers.retain(|_, p| {
            p.conn.is_some() || p.membership.is_some_and(|(f, _)| slots.contains_key(&f))
        });
    }

    /// The caller's view of now.
    pub(super) fn now(&self) -> Now {
        Now {
            height: Height::from_consensus(self.height).unwrap_or(Height::ZERO),
            unix_time: unix_now(),
        }
    }

    /// The chain tip as last seen.
    pub(super) fn height(&self) -> u32 {
        self.height
    }

    pub(super) fn set_height(&mut self, height: u32) {
        self.height = self.height.max(height);
    }

    fn on_attach(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        out: mpsc::UnboundedSender<Outbound>,
    ) {
        let peer = self.peers.entry(identity).or_default();
        if let Some(old) = peer.conn.replace(conn) {
            if let Some(old) = self.conns.remove(&old) {
                let msg = error_msg(
                    ErrorCode::Unexpected,
                    "another connection authenticated with this wallet's key; this one closes",
                    true,
                );
                let _ = old.out.send(Outbound::Close(encode(msg)));
            }
        }
        peer.away_since = None;
        let membership = peer.membership;
        let replay = peer.last_frame.clone();
        self.conns.insert(conn, Conn { identity, out });
        let resumed = membership.map(|(factory, client)| Resumed {
            factory,
            client,
            session: self.slots.get(&factory).and_then(|s| s.session),
        });
        tracing::debug!(%identity, ?resumed, "wallet authenticated");
        self.send_conn(
            conn,
            encode(WireMsg::Authenticated(Authenticated {
                pubkey: identity,
                resumed,
            })),
        );
        if let (Some(_), Some(frame)) = (membership, replay) {
            self.send_conn(conn, frame);
        }
    }

    fn on_detach(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let now = unix_now();
        let active = |m: Option<(FactoryId, ClientId)>, slots: &BTreeMap<FactoryId, Slot>| {
            m.is_some_and(|(f, c)| slots.get(&f).is_some_and(|s| s.is_active_member(c)))
        };
        if let Some(peer) = self.peers.get_mut(&c.identity) {
            if peer.conn == Some(conn) {
                peer.conn = None;
                if active(peer.membership, &self.slots) {
                    tracing::info!(identity = %c.identity, "member disconnected; waiting for it to come back");
                    peer.away_since = Some(now);
                } else if peer.membership.is_none() {
                    self.peers.remove(&c.identity);
                }
            }
        }
    }

    async fn on_message(&mut self, conn: ConnId, msg: WireMsg) {
        let Some(identity) = self.conns.get(&conn).map(|c| c.identity) else {
            return;
        };
        match msg {
            WireMsg::JoinRequest(req) => self.on_join(conn, identity, req).await,
            WireMsg::Nonces(_)
            | WireMsg::PartialSigs(_)
            | WireMsg::SigsStored(_)
            | WireMsg::Refuse(_) => self.on_ceremony(conn, identity, msg).await,
            _ => {
                let reply = error_msg(
                    ErrorCode::Unexpected,
                    "the factory coordinator does not take this message",
                    false,
                );
                self.send_conn(conn, encode(reply));
            }
        }
    }

    async fn on_join(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        req: shared::ceremony::JoinRequest,
    ) {
        if let Some((factory, _)) = self.active_membership(&identity) {
            let reason = format!(
                "this wallet is already in factory {factory}; finish or leave that ceremony first"
            );
            let reply = WireMsg::JoinRejected(shared::ceremony::JoinRejected {
                reason: Reason::new(reason),
            });
            return self.send_conn(conn, encode(reply));
        }
        let factory = match self.gathering {
            Some(f) => f,
            None => match self.open_factory() {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(error = %e, "cannot open a factory");
                    let reply = WireMsg::JoinRejected(shared::ceremony::JoinRejected {
                        reason: Reason::new("the LSP cannot open a factory now; try again later"),
                    });
                    return self.send_conn(conn, encode(reply));
                }
            },
        };
        let now = self.now();
        let Some(ceremony) = self
            .slots
            .get_mut(&factory)
            .and_then(|s| s.ceremony.as_mut())
        else {
            return;
        };
        match ceremony.handle_join(now, req) {
            Ok(client) => {
                if let Some(slot) = self.slots.get_mut(&factory) {
                    slot.identities.insert(client, identity);
                }
                let peer = self.peers.entry(identity).or_default();
                peer.membership = Some((factory, client));
                peer.last_frame = None;
                tracing::info!(%factory, %client, %identity, "wallet joined");
                self.drain(factory).await;
                self.publish_open_slots();
            }
            Err(e) => self.send_conn(conn, encode(e.reply())),
        }
    }

    async fn on_ceremony(&mut self, conn: ConnId, identity: XOnlyPublicKey, msg: WireMsg) {
        let membership = self.peers.get(&identity).and_then(|p| p.membership);
        let Some((factory, client)) = membership else {
            let reply = error_msg(
                ErrorCode::NotAMember,
                "this wallet is not in any factory; send join_request first",
                false,
            );
            return self.send_conn(conn, encode(reply));
        };
        let now = self.now();
        let Some(ceremony) = self
            .slots
            .get_mut(&factory)
            .and_then(|s| s.ceremony.as_mut())
        else {
            let reply = error_msg(
                ErrorCode::StaleSession,
                &format!("factory {factory} is no longer signing"),
                false,
            );
            return self.send_conn(conn, encode(reply));
        };
        if let Err(e) = ceremony.handle_message(now, client, msg, &mut self.rng) {
            tracing::debug!(%factory, %client, error = %e, "ceremony message refused");
        }
        self.drain(factory).await;
    }

    /// The membership of `identity` in a ceremony that is not over.
    fn active_membership(&self, identity: &XOnlyPublicKey) -> Option<(FactoryId, ClientId)> {
        let (f, c) = self.peers.get(identity)?.membership?;
        self.slots
            .get(&f)
            .is_some_and(|s| s.is_active_member(c))
            .then_some((f, c))
    }

    /// Opens a new gathering factory.
    fn open_factory(&mut self) -> Result<FactoryId, StoreError> {
        let id = self.store.next_factory_id()?;
        let secret = factory_key(&self.identity, id);
        let lsp_key = shared::musig::public_key(&secret);
        let now = unix_now();
        self.store.create_factory(id, &lsp_key, now)?;
        let moment = terms::Moment {
            tip_height: self.height,
            open_slots: self.settings.factory_size as u32,
            lightning_node: None,
        };
        let start_height = self.settings.ladder.map(|l| l.next_rung(self.height));
        let gather_until = match start_height {
            Some(h) => self.rung_wait(now, h),
            None => now.saturating_add(self.settings.gather_secs),
        };
        let round = self.settings.round_timeout_secs;
        let config = LspConfig {
            factory: id,
            secret_key: secret,
            terms: terms::body(&self.config, &self.identity, moment),
            min_clients: self.settings.min_clients,
            max_clients: self.settings.factory_size,
            gather_until,
            start_height,
            first_session: SessionId(1),
            timeouts: RoundTimeouts {
                nonces_secs: round,
                partials_secs: round,
                ack_secs: round,
            },
        };
        let (proposer, funding) =
            FactoryProposer::new(self.settings.params.clone(), self.wallet.clone());
        let ceremony = LspCeremony::new(config, proposer, self.guard.clone());
        self.slots.insert(
            id,
            Slot {
                ceremony: Some(ceremony),
                funding: Some(funding),
                identities: BTreeMap::new(),
                excluded: BTreeSet::new(),
                phase: Phase::Gathering,
                full: false,
                session: None,
                members_stored: false,
                stall: None,
                ended_at: None,
                round: None,
            },
        );
        self.gathering = Some(id);
        match start_height {
            Some(height) => {
                tracing::info!(factory = %id, %height, "factory gathering for the ladder's next rung")
            }
            None => tracing::info!(factory = %id, gather_until, "factory gathering"),
        }
        Ok(id)
    }

    /// What joiners of a rung starting at `rung` are told, and how long they wait: twice the
    /// expected time to its block, plus the gathering time, as blocks come irregularly.
    pub(super) fn rung_wait(&self, now: u64, rung: Height) -> u64 {
        let blocks = u64::from(rung.to_consensus_u32().saturating_sub(self.height));
        now.saturating_add(blocks.saturating_mul(2 * self.settings.block_secs))
            .saturating_add(self.settings.gather_secs)
    }

    /// Updates the free-slot count the terms advertise.
    pub(super) fn publish_open_slots(&self) {
        let taken = self
            .gathering
            .and_then(|f| self.slots.get(&f))
            .and_then(|s| s.ceremony.as_ref())
            .map_or(0, |c| c.members().len());
        let open = self.settings.factory_size.saturating_sub(taken);
        self.open_slots
            .store(u32::try_from(open).unwrap_or(u32::MAX), Ordering::Relaxed);
    }

    /// Sends a ceremony message to a member (remembering it for a resume) if it is connected.
    pub(super) fn send_member(&mut self, factory: FactoryId, client: ClientId, msg: WireMsg) {
        let Some(identity) = self
            .slots
            .get(&factory)
            .and_then(|s| s.identities.get(&client))
            .copied()
        else {
            return;
        };
        let is_error = matches!(msg, WireMsg::Error { .. });
        let frame = match &msg {
            WireMsg::Propose(p) => {
                let key = (p.payload.factory, p.payload.session);
                match &self.propose_cache {
                    Some((k, frame)) if *k == key => frame.clone(),
                    _ => {
                        let frame = encode(msg);
                        self.propose_cache = Some((key, frame.clone()));
                        frame
                    }
                }
            }
            _ => encode(msg),
        };
        let Some(peer) = self.peers.get_mut(&identity) else {
            return;
        };
        if !is_error {
            peer.last_frame = Some(frame.clone());
        }
        if let Some(conn) = peer.conn {
            self.send_conn(conn, frame);
        }
    }

    fn send_conn(&mut self, conn: ConnId, frame: Arc<str>) {
        if let Some(c) = self.conns.get(&conn) {
            let _ = c.out.send(Outbound::Frame(frame));
        }
    }

    /// Members that stayed away past the grace period, as (factory, client).
    pub(super) fn overdue_members(&self, now: u64) -> Vec<(FactoryId, ClientId, XOnlyPublicKey)> {
        let grace = self.settings.reconnect_grace_secs;
        self.peers
            .iter()
            .filter(|(_, p)| p.away_since.is_some_and(|t| now >= t.saturating_add(grace)))
            .filter_map(|(id, p)| p.membership.map(|(f, c)| (f, c, *id)))
            .collect()
    }

    /// Builds the refusal the coordinator hands the ceremony for a member that did not come
    /// back in time.
    pub(super) fn absence(&self, factory: FactoryId) -> WireMsg {
        WireMsg::Refuse(Refuse {
            factory,
            session: None,
            reason: Reason::new(format!(
                "connection lost for more than {} s",
                self.settings.reconnect_grace_secs
            )),
        })
    }
}

/// Encodes a message as one frame.
pub(crate) fn encode(msg: WireMsg) -> Arc<str> {
    Arc::from(Envelope::new(msg).encode())
}

fn error_msg(code: ErrorCode, message: &str, fatal: bool) -> WireMsg {
    WireMsg::Error {
        code,
        message: message.to_owned(),
        fatal,
        about: None,
    }
}

/// The LSP's key for one factory: HMAC-SHA256 of the factory id under the identity secret, so
/// it is fresh per factory and needs no storage of its own.
pub(crate) fn factory_key(identity: &Keypair, factory: FactoryId) -> SecretKey {
    let mut counter = 0u32;
    loop {
        let mut engine = hmac::HmacEngine::<sha256::Hash>::new(&identity.secret_bytes());
        engine.input(b"superscalar/lsp-factory-key");
        engine.input(&factory.0.to_be_bytes());
        engine.input(&counter.to_be_bytes());
        let digest = hmac::Hmac::<sha256::Hash>::from_engine(engine).to_byte_array();
        // Fails only for a digest of zero or above the curve order (probability ~2^-128).
        if let Ok(key) = SecretKey::from_slice(&digest) {
            return key;
        }
        counter += 1;
    }
}
