//! A swarm of native wallet sessions (`wallet::session`) against a real LSP over real
//! WebSockets, with optional faults per client. Used by the `factory_*` tests and by
//! `benches/swarm.rs`.
//!
//! Every client has its own identity key, factory key, storage directory (`DirStorage`, real
//! fsync) and connection; they share one caching chain source so N clients do not poll Esplora
//! N times per round.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bitcoin::secp256k1::{Keypair, PublicKey, Secp256k1, SecretKey, XOnlyPublicKey};
use bitcoin::{Amount, Network, Transaction, Txid};
use futures::channel::mpsc::{unbounded, UnboundedReceiver};
use futures::StreamExt;
use shared::ceremony::{ClientConfig, NodeMap};
use shared::musig::PartialSig;
use shared::wire::{Envelope, WireMsg};
use tokio::task::JoinHandle;
use wallet::chain::ChainError;
use wallet::session::{
    ChainSource, Connect, DirStorage, EsploraChain, Session, SessionConfig, SessionError,
    SessionEvent, SessionReport, Transport, TransportError, WsConnector, WsTransport,
};

/// Something a client does wrong (or suffers) on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Behaves.
    None,
    /// Loses its connection when the first proposal arrives (before answering it), and comes
    /// back after this long.
    DropOnPropose { back_after: Duration },
    /// Flips a bit in its first partial signature.
    CorruptPartials,
    /// Sends its nonces twice (a replayed message).
    DuplicateNonces,
    /// Sends its nonces this late.
    DelayNonces(Duration),
}

/// One client to run.
#[derive(Debug, Clone, Copy)]
pub struct ClientSpec {
    pub channel: Amount,
    pub liquidity: Amount,
    pub fault: Fault,
}

impl ClientSpec {
    pub fn honest() -> Self {
        ClientSpec {
            channel: Amount::from_sat(20_000),
            liquidity: Amount::from_sat(20_000),
            fault: Fault::None,
        }
    }

    pub fn with_fault(fault: Fault) -> Self {
        ClientSpec {
            fault,
            ..ClientSpec::honest()
        }
    }
}

/// Where and how the swarm runs.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    pub ws_url: String,
    pub esplora_url: String,
    pub network: Network,
    pub confirmations: u32,
    pub storage_root: PathBuf,
    pub reconnect_attempts: u32,
    pub reconnect_delay: Duration,
    pub grace_secs: u64,
}

/// One client's end.
pub struct ClientRun {
    pub index: usize,
    pub identity: XOnlyPublicKey,
    /// The identity key pair (payments sign invoices with it).
    pub keys: Keypair,
    /// The factory key's secret (the leaf channel's funding key).
    pub factory_secret: SecretKey,
    pub factory_key: PublicKey,
    pub storage_dir: PathBuf,
    pub result: Result<SessionReport, SessionError>,
}

/// A running swarm: its tasks and a timestamped feed of every client's events.
pub struct Swarm {
    pub tasks: Vec<JoinHandle<ClientRun>>,
    pub events: UnboundedReceiver<(usize, Instant, SessionEvent)>,
    pub log: Vec<(usize, Instant, SessionEvent)>,
}

impl Swarm {
    /// Waits (up to `timeout`) until `done` holds over the events seen so far.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[(usize, Instant, SessionEvent)]) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(&self.log) {
            match tokio::time::timeout_at(deadline, self.events.next()).await {
                Ok(Some(e)) => self.log.push(e),
                Ok(None) | Err(_) => return done(&self.log),
            }
        }
        true
    }

    /// Waits for every client to end (up to `timeout` each), then drains the events.
    pub async fn finish(
        mut self,
        timeout: Duration,
    ) -> (Vec<ClientRun>, Vec<(usize, Instant, SessionEvent)>) {
        let mut runs = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            let run = tokio::time::timeout(timeout, task)
                .await
                .expect("client finishes in time")
                .expect("client task does not panic");
            runs.push(run);
        }
        while let Ok(e) = self.events.try_recv() {
            self.log.push(e);
        }
        (runs, self.log)
    }
}

/// Starts one session per spec, each with a new identity.
pub fn spawn(config: &SwarmConfig, specs: &[ClientSpec]) -> Swarm {
    let secp = Secp256k1::new();
    let keyed: Vec<(ClientSpec, Keypair)> = specs
        .iter()
        .map(|s| (*s, Keypair::new(&secp, &mut rand::thread_rng())))
        .collect();
    spawn_as(config, &keyed)
}

/// Starts one session per spec, with the wallet identity given (a wallet joining another
/// factory), and a new factory key each.
pub fn spawn_as(config: &SwarmConfig, specs: &[(ClientSpec, Keypair)]) -> Swarm {
    let (tx, rx) = unbounded();
    let chain = CachedChain::new(&config.esplora_url);
    let secp = Secp256k1::new();
    let mut tasks = Vec::with_capacity(specs.len());
    for (index, (spec, identity)) in specs.iter().enumerate() {
        let identity = *identity;
        let factory_secret = SecretKey::new(&mut rand::thread_rng());
        let factory_key = factory_secret.public_key(&secp);
        let storage_dir = config.storage_root.join(format!("client-{index}"));
        let mut session_config = SessionConfig::new(
            config.network,
            identity,
            ClientConfig {
                secret_key: factory_secret,
                channel: spec.channel,
                liquidity: spec.liquidity,
                max_fee: Amount::from_sat(10_000),
                grace_secs: config.grace_secs,
            },
        );
        session_config.confirmations = config.confirmations;
        session_config.reconnect_attempts = config.reconnect_attempts;
        session_config.reconnect_delay = config.reconnect_delay;
        session_config.chain_poll = Duration::from_millis(200);
        let connector = FaultyConnector {
            inner: WsConnector::new(config.ws_url.clone()),
            fault: spec.fault,
            state: Arc::default(),
        };
        let (etx, mut erx) = unbounded();
        let fwd = tx.clone();
        tokio::spawn(async move {
            while let Some(e) = erx.next().await {
                if fwd.unbounded_send((index, Instant::now(), e)).is_err() {
                    return;
                }
            }
        });
        let chain = chain.clone();
        let dir = storage_dir.clone();
        tasks.push(tokio::spawn(async move {
            let result = match DirStorage::open(&dir) {
                Ok(storage) => {
                    Session::new(session_config, connector, storage, chain)
                        .with_events(etx)
                        .run()
                        .await
                }
                Err(e) => Err(SessionError::Storage(e)),
            };
            ClientRun {
                index,
                identity: identity.x_only_public_key().0,
                keys: identity,
                factory_secret,
                factory_key,
                storage_dir: dir,
                result,
            }
        }));
    }
    Swarm {
        tasks,
        events: rx,
        log: Vec::new(),
    }
}

/// Whether client `index` reported a stored path.
pub fn stored(log: &[(usize, Instant, SessionEvent)], index: usize) -> bool {
    log.iter()
        .any(|(i, _, e)| *i == index && matches!(e, SessionEvent::PathStored { .. }))
}

/// Whether every client of `indices` heard of the funding broadcast.
pub fn broadcast_heard(
    log: &[(usize, Instant, SessionEvent)],
    mut indices: impl Iterator<Item = usize>,
) -> bool {
    indices.all(|index| {
        log.iter().any(|(i, _, e)| {
            *i == index
                && matches!(
                    e,
                    SessionEvent::Ceremony(shared::ceremony::ClientEvent::FundingBroadcast { .. })
                )
        })
    })
}

/// A chain source shared by the whole swarm, caching answers for a moment.
#[derive(Clone)]
pub struct CachedChain(Arc<CacheInner>);

struct CacheInner {
    esplora: EsploraChain,
    tip: Mutex<Option<(Instant, u32)>>,
    confirmations: Mutex<HashMap<Txid, (Instant, u32)>>,
    txs: Mutex<HashMap<Txid, Transaction>>,
}

const FRESH: Duration = Duration::from_millis(150);

impl CachedChain {
    pub fn new(url: &str) -> Self {
        CachedChain(Arc::new(CacheInner {
            esplora: EsploraChain::new(url).expect("valid Esplora URL"),
            tip: Mutex::new(None),
            confirmations: Mutex::new(HashMap::new()),
            txs: Mutex::new(HashMap::new()),
        }))
    }
}

impl ChainSource for CachedChain {
    async fn tip_height(&self) -> Result<u32, ChainError> {
        let cached = *self.0.tip.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, h)) = cached.filter(|(at, _)| at.elapsed() < FRESH) {
            return Ok(h);
        }
        let h = self.0.esplora.tip_height().await?;
        *self.0.tip.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), h));
        Ok(h)
    }

    async fn confirmations(&self, txid: &Txid) -> Result<u32, ChainError> {
        let cached = self
            .0
            .confirmations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(txid)
            .copied();
        if let Some((_, c)) = cached.filter(|(at, _)| at.elapsed() < FRESH) {
            return Ok(c);
        }
        let c = self.0.esplora.confirmations(txid).await?;
        self.0
            .confirmations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(*txid, (Instant::now(), c));
        Ok(c)
    }

    async fn transaction(&self, txid: &Txid) -> Result<Option<Transaction>, ChainError> {
        let cached = self
            .0
            .txs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(txid)
            .cloned();
        if cached.is_some() {
            return Ok(cached);
        }
        let tx = self.0.esplora.transaction(txid).await?;
        if let Some(tx) = &tx {
            self.0
                .txs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(*txid, tx.clone());
        }
        Ok(tx)
    }

    async fn broadcast(&self, tx: &Transaction) -> Result<(), ChainError> {
        self.0.esplora.broadcast(tx).await
    }

    async fn spender(
        &self,
        outpoint: bitcoin::OutPoint,
    ) -> Result<Option<(Txid, bool)>, ChainError> {
        ChainSource::spender(&self.0.esplora, outpoint).await
    }

    async fn fee_rate(&self, blocks: u16) -> Result<bitcoin::FeeRate, ChainError> {
        self.0.esplora.fee_rate(blocks).await
    }
}

#[derive(Default)]
struct FaultState {
    /// When the connection was dropped on purpose.
    dropped_at: Option<Instant>,
    corrupted: bool,
}

/// A connector whose connections misbehave as the fault says.
pub struct FaultyConnector {
    inner: WsConnector,
    fault: Fault,
    state: Arc<Mutex<FaultState>>,
}

pub struct FaultyTransport {
    inner: WsTransport,
    fault: Fault,
    state: Arc<Mutex<FaultState>>,
}

impl Connect for FaultyConnector {
    type Transport = FaultyTransport;

    async fn connect(&mut self) -> Result<FaultyTransport, TransportError> {
        let dropped_at = self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .dropped_at;
        if let (Fault::DropOnPropose { back_after }, Some(at)) = (self.fault, dropped_at) {
            let wait = back_after.saturating_sub(at.elapsed());
            tokio::time::sleep(wait).await;
        }
        Ok(FaultyTransport {
            inner: self.inner.connect().await?,
            fault: self.fault,
            state: self.state.clone(),
        })
    }
}

impl Transport for FaultyTransport {
    async fn send(&mut self, frame: String) -> Result<(), TransportError> {
        let msg = Envelope::decode(&frame).ok().map(|e| e.msg);
        match (self.fault, msg) {
            (Fault::DuplicateNonces, Some(WireMsg::Nonces(_))) => {
                self.inner.send(frame.clone()).await?;
                self.inner.send(frame).await
            }
            (Fault::DelayNonces(d), Some(WireMsg::Nonces(_))) => {
                tokio::time::sleep(d).await;
                self.inner.send(frame).await
            }
            (Fault::CorruptPartials, Some(WireMsg::PartialSigs(mut m))) => {
                let first = {
                    let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                    !std::mem::replace(&mut state.corrupted, true)
                };
                if first {
                    let mut map = m.partials.clone().into_map();
                    if let Some(p) = map.values_mut().next() {
                        let mut b = p.to_bytes();
                        b[31] ^= 1;
                        *p = PartialSig::from_bytes(&b).expect("still a scalar");
                    }
                    m.partials = NodeMap::new(map).expect("same size");
                }
                let frame = Envelope::new(WireMsg::PartialSigs(m)).encode();
                self.inner.send(frame).await
            }
            _ => self.inner.send(frame).await,
        }
    }

    async fn next(&mut self) -> Result<Option<String>, TransportError> {
        let frame = self.inner.next().await?;
        if let (Fault::DropOnPropose { .. }, Some(text)) = (self.fault, &frame) {
            let is_propose = matches!(
                Envelope::decode(text).map(|e| e.msg),
                Ok(WireMsg::Propose(_))
            );
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if is_propose && state.dropped_at.is_none() {
                state.dropped_at = Some(Instant::now());
                return Ok(None);
            }
            drop(state);
        }
        Ok(frame)
    }
}
