//! An in-process network of one [`LspCeremony`] and N [`ClientCeremony`]s on simulated time,
//! with synthetic binary-tree jobs and hooks to drop, tamper with or silence messages.
//!
//! Every message is encoded to a wire frame and decoded again on delivery, so the whole wire
//! format (limits included) is exercised. Time only moves when the network is quiet: it jumps
//! to the earliest deadline any online party asked for, as a real driver's timer would fire.

use std::collections::{BTreeSet, VecDeque};

use bitcoin::absolute::{Height, LockTime};
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, Network, OutPoint, ScriptBuf, Sequence, TapNodeHash, TapSighash, Transaction, TxIn,
    TxOut, Txid, Witness,
};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::ceremony::{
    Action, CeremonyError, ClientCeremony, ClientChange, ClientConfig, ClientEvent, ClientStatus,
    Deadline, LspCeremony, LspChange, LspConfig, LspEvent, LspStatus, ProposalBody,
    ProposalPayload, ProposalRequest, Proposed, Proposer, RebuildContext, Refusal, RoundTimeouts,
    SignedFactory,
};
use crate::musig::{key_sort, public_key, MemorySignGuard};
use crate::terms::{FactorySchedule, FeeSchedule, TermsBody};
use crate::types::{ClientId, FactoryId, NodeId, Now, SessionId, SigningJob};
use crate::wire::{Envelope, WireMsg};

/// The test factory's id.
pub const FACTORY: FactoryId = FactoryId(7);
/// Simulated start time (unix seconds).
pub const START_TIME: u64 = 1_700_000_000;

/// A proposal body that simply lists every job (a real tree sends parameters instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyntheticProposal {
    /// Every job of the tree.
    pub jobs: Vec<SigningJob>,
}

fn random_txid(rng: &mut StdRng) -> Txid {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    Txid::from_byte_array(b)
}

/// Jobs shaped like a binary factory tree over `clients` (in order): every interior node has a
/// kickoff and a state job signed by the LSP and every client below it (with a script tree, so
/// a merkle root), every leaf one job signed by the LSP and its client (key path only). Prevouts
/// and sighashes are random, so a new call never collides with an old one.
pub fn synthetic_jobs(rng: &mut StdRng, lsp: PublicKey, clients: &[PublicKey]) -> Vec<SigningJob> {
    fn walk(
        rng: &mut StdRng,
        lsp: PublicKey,
        clients: &[PublicKey],
        next: &mut u32,
        out: &mut Vec<SigningJob>,
    ) {
        let mut signers: Vec<PublicKey> = clients.to_vec();
        signers.push(lsp);
        key_sort(&mut signers);
        let kinds: &[bool] = if clients.len() > 1 {
            &[true, true]
        } else {
            &[false]
        };
        for &scripted in kinds {
            let mut sighash = [0u8; 32];
            rng.fill_bytes(&mut sighash);
            let mut root = [0u8; 32];
            rng.fill_bytes(&mut root);
            out.push(SigningJob {
                node: NodeId(*next),
                prevout: OutPoint {
                    txid: random_txid(rng),
                    vout: rng.next_u32() % 4,
                },
                sighash: TapSighash::from_byte_array(sighash),
                signers: signers.clone(),
                merkle_root: scripted.then(|| TapNodeHash::from_byte_array(root)),
            });
            *next += 1;
        }
        if clients.len() > 1 {
            let (left, right) = clients.split_at(clients.len().div_ceil(2));
            walk(rng, lsp, left, next, out);
            walk(rng, lsp, right, next, out);
        }
    }
    let mut out = Vec::new();
    let mut next = 0;
    if !clients.is_empty() {
        walk(rng, lsp, clients, &mut next, &mut out);
    }
    out
}

/// The LSP-side proposer of the synthetic tree: fresh random jobs and funding tx per session.
#[derive(Debug)]
pub struct SyntheticProposer {
    rng: StdRng,
}

impl SyntheticProposer {
    /// A proposer drawing from its own seeded RNG.
    pub fn new(seed: u64) -> Self {
        SyntheticProposer {
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

impl Proposer for SyntheticProposer {
    fn propose(&mut self, request: &ProposalRequest<'_>) -> Result<Proposed, Refusal> {
        let clients: Vec<PublicKey> = request.members.values().map(|m| m.pubkey).collect();
        let jobs = synthetic_jobs(&mut self.rng, request.lsp_pubkey, &clients);
        let body = ProposalBody::encode(&SyntheticProposal { jobs: jobs.clone() })?;
        let funding_tx = Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint {
                    txid: random_txid(&mut self.rng),
                    vout: 0,
                },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(1_000_000 * clients.len() as u64),
                script_pubkey: ScriptBuf::new(),
            }],
        };
        Ok(Proposed {
            body,
            jobs,
            keys: Vec::new(),
            funding_tx,
        })
    }
}

/// The client-side job source of the synthetic tree: decode, keep the jobs we sign.
pub fn synthetic_rebuild(
    ctx: &RebuildContext,
    payload: &ProposalPayload,
) -> Result<Vec<SigningJob>, Refusal> {
    let proposal: SyntheticProposal = payload.body.decode()?;
    let mine: Vec<SigningJob> = proposal
        .jobs
        .into_iter()
        .filter(|j| j.signers.contains(&ctx.pubkey))
        .collect();
    if let Some(job) = mine.iter().find(|j| !j.signers.contains(&ctx.lsp_key)) {
        return Err(Refusal::new(format!(
            "node {} is not co-signed by the LSP",
            job.node
        )));
    }
    Ok(mine)
}

/// A client's job source as the harness holds it (tests may swap in a refusing one).
pub type JobFn = Box<dyn Fn(&RebuildContext, &ProposalPayload) -> Result<Vec<SigningJob>, Refusal>>;

/// A hook on a message in flight: may change it; returns `false` to drop it.
pub type Hook = Box<dyn FnMut(ClientId, &mut WireMsg) -> bool>;

/// Terms used by the harness LSP.
pub fn test_terms(lsp: &PublicKey) -> TermsBody {
    TermsBody {
        network: Network::Regtest,
        lsp_pubkey: lsp.x_only_public_key().0,
        name: "harness".into(),
        fees: FeeSchedule {
            join_fee: Amount::from_sat(1_000),
            liquidity_fee_ppm: 10_000,
            routing_fee_base: Amount::from_sat(1),
            routing_fee_ppm: 100,
        },
        min_channel: Amount::from_sat(10_000),
        max_channel: Amount::from_sat(10_000_000),
        min_liquidity: Amount::from_sat(10_000),
        max_liquidity: Amount::from_sat(10_000_000),
        schedule: FactorySchedule {
            interval_blocks: 6,
            active_blocks: 60,
            dying_blocks: 6,
            next_start_height: 100,
            open_slots: 64,
            max_clients: 64,
        },
        liveness: "come back during the dying period".into(),
        tree: crate::params::FactoryParams::regtest(),
        esplora_url: "http://127.0.0.1:3002".into(),
        issued_at: START_TIME,
        expires_at: START_TIME + 86_400,
        lightning_node: None,
        swap_out: None,
    }
}

/// One client of the network, with everything it did.
pub struct Party {
    /// Its state machine.
    pub ceremony: ClientCeremony<JobFn, MemorySignGuard>,
    /// Its id, once joined.
    pub id: Option<ClientId>,
    /// Changes it asked to persist, in order.
    pub persisted: Vec<ClientChange>,
    /// Events it emitted.
    pub events: Vec<ClientEvent>,
    /// Messages it refused.
    pub errors: Vec<CeremonyError>,
    /// Every action in order, as `persist`, `emit`, or `send:<message type>`.
    pub trace: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Lsp,
    Client(usize),
}

/// The simulated network.
pub struct Net {
    /// Simulated present.
    pub now: Now,
    /// Randomness for every party's nonces.
    pub rng: StdRng,
    /// The LSP.
    pub lsp: LspCeremony<SyntheticProposer, MemorySignGuard>,
    /// The clients, by connection index (equal to their `ClientId` once joined).
    pub parties: Vec<Party>,
    /// Changes the LSP asked to persist.
    pub lsp_persisted: Vec<LspChange>,
    /// Events the LSP emitted.
    pub lsp_events: Vec<LspEvent>,
    /// Messages the LSP refused, with sender.
    pub lsp_errors: Vec<(ClientId, CeremonyError)>,
    /// Transactions the LSP asked to broadcast.
    pub broadcasts: Vec<Transaction>,
    /// Every LSP action in order, as `persist`, `emit`, `broadcast` or `send:<type>:<client>`.
    pub lsp_trace: Vec<String>,
    /// Client connections whose traffic is dropped both ways and whose timers never fire.
    pub offline: BTreeSet<usize>,
    /// Applied to every client → LSP message after the client joined.
    pub to_lsp: Option<Hook>,
    /// Applied to every LSP → client message.
    pub to_client: Option<Hook>,
    queue: VecDeque<(Endpoint, Endpoint, String)>,
}

impl Net {
    /// An LSP and `n` clients (all asking the same amounts), joined but not started.
    pub fn new(n: usize, seed: u64) -> Net {
        Net::with_job_sources(n, seed, |_| Box::new(synthetic_rebuild))
    }

    /// Like [`Net::new`], with each client's job source chosen by index.
    pub fn with_job_sources(n: usize, seed: u64, source: impl Fn(usize) -> JobFn) -> Net {
        let mut rng = StdRng::seed_from_u64(seed);
        let now = Now {
            height: Height::from_consensus(100).expect("valid height"),
            unix_time: START_TIME,
        };
        let lsp_secret = SecretKey::new(&mut rng);
        let config = LspConfig {
            factory: FACTORY,
            secret_key: lsp_secret,
            terms: test_terms(&public_key(&lsp_secret)),
            min_clients: 1,
            max_clients: n.max(1),
            gather_until: START_TIME + 600,
            start_height: None,
            first_session: SessionId(1),
            timeouts: RoundTimeouts::default(),
        };
        let lsp = LspCeremony::new(
            config,
            SyntheticProposer::new(seed ^ 0x5eed),
            MemorySignGuard::new(),
        );
        let parties = (0..n)
            .map(|i| {
                let config = ClientConfig {
                    secret_key: SecretKey::new(&mut rng),
                    channel: Amount::from_sat(100_000),
                    liquidity: Amount::from_sat(50_000),
                    max_fee: Amount::from_sat(5_000),
                    grace_secs: 10,
                };
                Party {
                    ceremony: ClientCeremony::new(config, source(i), MemorySignGuard::new(), now),
                    id: None,
                    persisted: Vec::new(),
                    events: Vec::new(),
                    errors: Vec::new(),
                    trace: Vec::new(),
                }
            })
            .collect();
        let mut net = Net {
            now,
            rng,
            lsp,
            parties,
            lsp_persisted: Vec::new(),
            lsp_events: Vec::new(),
            lsp_errors: Vec::new(),
            broadcasts: Vec::new(),
            lsp_trace: Vec::new(),
            offline: BTreeSet::new(),
            to_lsp: None,
            to_client: None,
            queue: VecDeque::new(),
        };
        net.settle();
        net
    }

    /// Closes gathering and sends the first proposal.
    pub fn start(&mut self) -> Result<(), CeremonyError> {
        let result = self.lsp.start(self.now, &mut self.rng);
        self.collect();
        result
    }

    /// Runs until the LSP is funded or failed, or nothing can happen any more. Confirms the
    /// funding transaction (one block later) when it is broadcast.
    pub fn run(&mut self) {
        for _ in 0..1_000 {
            self.settle();
            match self.lsp.status() {
                LspStatus::AwaitingConfirmation { txid } => {
                    self.now.height =
                        Height::from_consensus(self.now.height.to_consensus_u32() + 1)
                            .expect("valid height");
                    let _ = self.lsp.handle_funding_confirmed(self.now, txid);
                    for (i, p) in self.parties.iter_mut().enumerate() {
                        if !self.offline.contains(&i)
                            && p.ceremony.status() == ClientStatus::AwaitingConfirmation(txid)
                        {
                            let _ = p.ceremony.handle_funding_confirmed(self.now, txid);
                        }
                    }
                    self.collect();
                    return;
                }
                LspStatus::Funded { .. } | LspStatus::Failed { .. } => return,
                _ => {}
            }
            if !self.fire_next_timer() {
                return;
            }
        }
    }

    /// Delivers messages until the network is quiet (no time passes).
    pub fn settle(&mut self) {
        self.collect();
        while let Some((from, to, frame)) = self.queue.pop_front() {
            self.deliver(from, to, &frame);
            self.collect();
        }
    }

    /// Sends a message from client `index` to the LSP as if it came over the wire.
    pub fn inject_to_lsp(&mut self, index: usize, msg: WireMsg) {
        self.queue.push_back((
            Endpoint::Client(index),
            Endpoint::Lsp,
            Envelope::new(msg).encode(),
        ));
    }

    /// Sends a message from the LSP to client `index` as if it came over the wire.
    pub fn inject_to_client(&mut self, index: usize, msg: WireMsg) {
        self.queue.push_back((
            Endpoint::Lsp,
            Endpoint::Client(index),
            Envelope::new(msg).encode(),
        ));
    }

    /// The LSP's stored, fully signed factory, once it exists.
    pub fn signed_factory(&self) -> Option<&SignedFactory> {
        self.lsp_persisted.iter().find_map(|c| match c {
            LspChange::FactorySigned(f) => Some(&**f),
            _ => None,
        })
    }

    /// Advances time to the earliest deadline and fires every timer due (without delivering
    /// what that queues). `false` if no party asked for a timer.
    pub fn fire_next_timer(&mut self) -> bool {
        let mut deadlines: Vec<u64> = self
            .lsp
            .poll_timeout()
            .into_iter()
            .filter_map(unix)
            .collect();
        for (i, p) in self.parties.iter().enumerate() {
            if !self.offline.contains(&i) {
                deadlines.extend(p.ceremony.poll_timeout().and_then(unix));
            }
        }
        let Some(next) = deadlines.into_iter().min() else {
            return false;
        };
        self.now.unix_time = self.now.unix_time.max(next);
        self.lsp.handle_timeout(self.now, &mut self.rng);
        for (i, p) in self.parties.iter_mut().enumerate() {
            if !self.offline.contains(&i) {
                p.ceremony.handle_timeout(self.now);
            }
        }
        self.collect();
        true
    }

    fn deliver(&mut self, from: Endpoint, to: Endpoint, frame: &str) {
        let msg = Envelope::decode(frame).expect("harness frames decode").msg;
        match (from, to) {
            (Endpoint::Client(i), Endpoint::Lsp) => {
                if let WireMsg::JoinRequest(req) = msg {
                    match self.lsp.handle_join(self.now, req) {
                        Ok(id) => {
                            assert_eq!(id, ClientId(i as u32), "joins arrive in connection order");
                            self.parties[i].id = Some(id);
                        }
                        Err(e) => self.inject_to_client(i, e.reply()),
                    }
                    return;
                }
                let Some(id) = self.parties[i].id else { return };
                if let Err(e) = self.lsp.handle_message(self.now, id, msg, &mut self.rng) {
                    self.lsp_errors.push((id, e));
                }
            }
            (Endpoint::Lsp, Endpoint::Client(i)) => {
                let p = &mut self.parties[i];
                if let Err(e) = p.ceremony.handle_message(self.now, msg, &mut self.rng) {
                    p.errors.push(e);
                }
            }
            _ => {}
        }
    }

    /// Moves every pending action into the queue or the logs.
    fn collect(&mut self) {
        while let Some(action) = self.lsp.poll_action() {
            match action {
                Action::Send(client, mut msg) => {
                    self.lsp_trace
                        .push(format!("send:{}:{}", msg_type(&msg), client));
                    let i = client.0 as usize;
                    if self.offline.contains(&i) {
                        continue;
                    }
                    if let Some(hook) = self.to_client.as_mut() {
                        if !hook(client, &mut msg) {
                            continue;
                        }
                    }
                    self.queue.push_back((
                        Endpoint::Lsp,
                        Endpoint::Client(i),
                        Envelope::new(msg).encode(),
                    ));
                }
                Action::Persist(change) => {
                    self.lsp_trace.push("persist".into());
                    self.lsp_persisted.push(change)
                }
                Action::Emit(event) => {
                    self.lsp_trace.push("emit".into());
                    self.lsp_events.push(event)
                }
                Action::Broadcast(tx) => {
                    self.lsp_trace.push("broadcast".into());
                    self.broadcasts.push(tx)
                }
            }
        }
        for (i, p) in self.parties.iter_mut().enumerate() {
            while let Some(action) = p.ceremony.poll_action() {
                match action {
                    Action::Send(_, mut msg) => {
                        p.trace.push(format!("send:{}", msg_type(&msg)));
                        if self.offline.contains(&i) {
                            continue;
                        }
                        if let (Some(id), Some(hook)) = (p.id, self.to_lsp.as_mut()) {
                            if !hook(id, &mut msg) {
                                continue;
                            }
                        }
                        self.queue.push_back((
                            Endpoint::Client(i),
                            Endpoint::Lsp,
                            Envelope::new(msg).encode(),
                        ));
                    }
                    Action::Persist(change) => {
                        p.trace.push("persist".into());
                        p.persisted.push(change)
                    }
                    Action::Emit(event) => {
                        p.trace.push("emit".into());
                        p.events.push(event)
                    }
                    Action::Broadcast(_) => p.trace.push("broadcast".into()),
                }
            }
        }
    }
}

/// The wire `type` tag of a message (e.g. `partial_sigs`).
pub fn msg_type(msg: &WireMsg) -> String {
    serde_json::to_value(msg)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str().map(str::to_owned)))
        .unwrap_or_default()
}

fn unix(d: Deadline) -> Option<u64> {
    match d {
        Deadline::UnixTime(t) => Some(t),
        Deadline::Height(_) => None,
    }
}
