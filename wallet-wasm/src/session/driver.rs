//! The session driver: performs the client machine's actions in order, feeds it the LSP's
//! frames, its timers and the chain, and reconnects when the connection breaks.

use std::pin::pin;
use std::sync::PoisonError;
use std::time::Duration;

use bitcoin::absolute::Height;
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::Txid;
use futures::channel::mpsc::UnboundedSender;
use futures::future::{select, Either};
use shared::ceremony::{
    Action, ClientCeremony, ClientChange, ClientEvent, ClientOutcome, ClientStatus, Deadline,
    Reason, SignedPath,
};
use shared::musig::MemorySignGuard;
use shared::path::ClientPath;
use shared::tree::FactoryProposal;
use shared::types::Now;
use shared::verify::check_funding_tx;
use shared::wire::{Envelope, WireMsg};

use super::chain_source::ChainSource;
use super::handshake::{handshake, unreachable, Greeting, Link};
use super::jobs::{ChainNote, LastPath, TreeJobs};
use super::storage::{Storage, StoredPath};
use super::transport::{Connect, Transport, TransportError};
use super::{SessionConfig, SessionError, SessionEvent, SessionReport};
use crate::platform::{sleep, unix_millis, unix_now};

/// Longest the driver sleeps without looking at its timers.
const IDLE: Duration = Duration::from_secs(1);

/// Fresh joins after the LSP lost an unsigned membership, before the session gives up.
const MAX_REJOINS: u32 = 3;

/// One attempt to join one factory. See the module docs of `session`.
pub struct Session<C, S, H> {
    config: SessionConfig,
    connector: C,
    storage: S,
    chain: H,
    events: Option<UnboundedSender<SessionEvent>>,
}

impl<C: Connect, S: Storage, H: ChainSource> Session<C, S, H> {
    /// A session that connects with `connector`, stores in `storage` and reads `chain`.
    pub fn new(config: SessionConfig, connector: C, storage: S, chain: H) -> Self {
        Session {
            config,
            connector,
            storage,
            chain,
            events: None,
        }
    }

    /// Reports progress on `events`.
    pub fn with_events(mut self, events: UnboundedSender<SessionEvent>) -> Self {
        self.events = Some(events);
        self
    }

    /// Runs the ceremony to its end: the factory open (its funding confirmed), or refused,
    /// excluded, aborted or abandoned. Errors are failures of the platform or the LSP's
    /// transport that the session could not get past.
    pub async fn run(self) -> Result<SessionReport, SessionError> {
        let Session {
            config,
            connector,
            mut storage,
            chain,
            events,
        } = self;
        let guard = MemorySignGuard::from_records(storage.load_guard_records().await?)?;
        let jobs = TreeJobs::new(config.policy.clone());
        let last_path = jobs.last_path();
        let chain_note = jobs.chain_note();
        // Joining commits to nothing, but a wallet that cannot read the chain could not
        // check the proposal either: it does not join.
        let height = chain
            .tip_height()
            .await
            .map_err(SessionError::ChainUnreadable)?;
        let now = now_at(height);
        let machine = ClientCeremony::new(config.ceremony.clone(), jobs, guard, now);
        let mut run = Run {
            config,
            connector,
            storage,
            chain,
            events,
            machine,
            last_path,
            chain_note,
            chain_trouble: None,
            link: None,
            lsp: None,
            last_sent: None,
            height,
            next_chain_poll: 0,
            outcome: None,
            report: SessionReport {
                outcome: ClientOutcome::Abandoned {
                    waiting_for: "the session to start",
                },
                path: None,
                lsp_errors: Vec::new(),
                refused: Vec::new(),
                reconnects: 0,
                rejoins: 0,
                quote: None,
            },
        };
        run.connect(true).await?;
        run.main_loop().await?;
        let mut report = run.report;
        if let Some(outcome) = run.outcome {
            report.outcome = outcome;
        }
        Ok(report)
    }
}

fn now_at(height: u32) -> Now {
    Now {
        height: Height::from_consensus(height).unwrap_or(Height::ZERO),
        unix_time: unix_now(),
    }
}

/// A running session's state.
struct Run<C: Connect, S, H> {
    config: SessionConfig,
    connector: C,
    storage: S,
    chain: H,
    events: Option<UnboundedSender<SessionEvent>>,
    machine: ClientCeremony<TreeJobs, MemorySignGuard>,
    last_path: LastPath,
    /// Why the chain cannot be trusted now, read by the jobs before they sign.
    chain_note: ChainNote,
    /// The chain problem last reported (reported again only when it changes).
    chain_trouble: Option<String>,
    link: Option<Link<C::Transport>>,
    lsp: Option<XOnlyPublicKey>,
    /// The last ceremony frame sent, re-sent after a reconnection.
    last_sent: Option<String>,
    height: u32,
    next_chain_poll: u64,
    outcome: Option<ClientOutcome>,
    report: SessionReport,
}

impl<C: Connect, S: Storage, H: ChainSource> Run<C, S, H> {
    async fn main_loop(&mut self) -> Result<(), SessionError> {
        loop {
            self.perform().await?;
            if self.outcome.is_some() {
                return Ok(());
            }
            if let ClientStatus::AwaitingConfirmation(txid) = self.machine.status() {
                self.poll_funding(txid).await?;
                self.perform().await?;
                if self.outcome.is_some() {
                    return Ok(());
                }
            }
            let wait = self.wait_time();
            let got = match self.link.as_mut() {
                None => {
                    sleep(wait).await;
                    None
                }
                Some(link) => {
                    let next = pin!(link.transport.next());
                    let timer = pin!(sleep(wait));
                    match select(next, timer).await {
                        Either::Left((frame, _)) => Some(frame),
                        Either::Right(_) => None,
                    }
                }
            };
            match got {
                Some(Ok(Some(text))) => self.on_frame(&text).await?,
                Some(Ok(None)) => self.on_lost("the LSP closed the connection".into()).await?,
                Some(Err(e)) => self.on_lost(e.reason).await?,
                None => {
                    let now = self.now();
                    self.machine.handle_timeout(now);
                }
            }
        }
    }

    fn now(&self) -> Now {
        now_at(self.height)
    }

    fn emit(&self, event: SessionEvent) {
        if let Some(events) = &self.events {
            let _ = events.unbounded_send(event);
        }
    }

    /// How long to wait for the next frame: until the machine's deadline, the next chain poll,
    /// or [`IDLE`].
    fn wait_time(&self) -> Duration {
        let now = unix_millis();
        let mut wait = IDLE;
        if let Some(Deadline::UnixTime(t)) = self.machine.poll_timeout() {
            let due = t.saturating_mul(1000).saturating_sub(now);
            wait = wait.min(Duration::from_millis(due.max(20)));
        }
        if matches!(self.machine.status(), ClientStatus::AwaitingConfirmation(_)) {
            wait = wait.min(self.config.chain_poll);
        }
        wait
    }

    /// Performs every pending action, in order; each store completes before what follows.
    async fn perform(&mut self) -> Result<(), SessionError> {
        while let Some(action) = self.machine.poll_action() {
            match action {
                Action::Send(_, msg) => {
                    let ceremony = !matches!(msg, WireMsg::Error { .. });
                    let frame = Envelope::new(msg).encode();
                    if ceremony {
                        self.last_sent = Some(frame.clone());
                    }
                    self.send(frame, ceremony).await?;
                }
                Action::Persist(ClientChange::SignRecords(records)) => {
                    self.storage.save_guard_records(&records).await?
                }
                Action::Persist(ClientChange::PathSigned(signed)) => {
                    let stored = self.verified(&signed)?;
                    self.storage.save_path(&stored).await?;
                    self.emit(SessionEvent::PathStored {
                        factory: stored.factory,
                        session: stored.session,
                    });
                    self.report.path = Some(stored);
                }
                Action::Emit(event) => {
                    if let ClientEvent::Ended(outcome) = &event {
                        self.outcome = Some(outcome.clone());
                    }
                    if let ClientEvent::Joined { quote, .. } = &event {
                        self.report.quote = Some(*quote);
                    }
                    self.emit(SessionEvent::Ceremony(event));
                }
                Action::Broadcast(_) => {}
            }
        }
        Ok(())
    }

    /// Sends a frame; a broken connection is reopened (which re-sends the last ceremony frame).
    async fn send(&mut self, frame: String, ceremony: bool) -> Result<(), SessionError> {
        let Some(link) = self.link.as_mut() else {
            return Ok(());
        };
        if let Err(e) = link.transport.send(frame).await {
            if ceremony {
                self.on_lost(e.reason).await?;
            }
        }
        Ok(())
    }

    /// The final signatures on the path this wallet built and checked itself.
    fn verified(&self, signed: &SignedPath) -> Result<StoredPath, SessionError> {
        let bad = |e: String| SessionError::BadPath(e);
        let key = (signed.factory, signed.session);
        let cached = self
            .last_path
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .filter(|(k, _)| *k == key)
            .map(|(_, path)| path);
        let mut path = match cached {
            Some(path) => path,
            None => {
                let proposal: FactoryProposal = signed
                    .payload
                    .body
                    .decode()
                    .map_err(|e| bad(e.to_string()))?;
                let me = proposal
                    .client_by_key(&self.machine.pubkey())
                    .ok_or_else(|| bad("this wallet's key is not in the proposal".into()))?;
                ClientPath::build(&proposal, me).map_err(|e| bad(e.to_string()))?
            }
        };
        for (node, sig) in &signed.signatures {
            path.set_signature(*node, *sig)
                .map_err(|e| bad(e.to_string()))?;
        }
        if !path.is_fully_signed() {
            return Err(bad("some nodes of the path have no signature".into()));
        }
        let lsp = self
            .lsp
            .ok_or_else(|| bad("no LSP identity is known".into()))?;
        Ok(StoredPath {
            factory: signed.factory,
            session: signed.session,
            lsp,
            path,
        })
    }

    async fn on_frame(&mut self, text: &str) -> Result<(), SessionError> {
        let msg = match Envelope::decode(text) {
            Ok(env) => env.msg,
            Err(e) => {
                self.report.refused.push(e.to_string());
                return Ok(());
            }
        };
        match msg {
            WireMsg::Ping { nonce } => {
                let pong = Envelope::new(WireMsg::Pong { nonce }).encode();
                self.send(pong, false).await?;
            }
            WireMsg::Pong { .. }
            | WireMsg::Welcome { .. }
            | WireMsg::AuthChallenge(_)
            | WireMsg::Authenticated(_) => {}
            WireMsg::Error { message, .. } => {
                self.report.lsp_errors.push(message.clone());
                self.emit(SessionEvent::LspError { message });
            }
            msg => {
                if matches!(msg, WireMsg::Propose(_)) {
                    self.check_chain().await;
                }
                let now = self.now();
                let mut rng = rand::rngs::OsRng;
                if let Err(e) = self.machine.handle_message(now, msg, &mut rng) {
                    self.report.refused.push(e.to_string());
                }
            }
        }
        Ok(())
    }

    /// Reads the tip before signing: a good tip raises the height; a failed or contradictory
    /// read leaves the reason where the jobs refuse with it, so nothing is signed.
    async fn check_chain(&mut self) {
        let note = match self.chain.tip_height().await {
            Ok(h) => {
                self.height = self.height.max(h);
                None
            }
            Err(e) => Some(format!("{e}; not signing")),
        };
        self.report_chain(note.clone());
        *self
            .chain_note
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = note;
    }

    /// Tells the UI when the chain becomes unreadable or readable again.
    fn report_chain(&mut self, trouble: Option<String>) {
        if trouble != self.chain_trouble {
            self.chain_trouble = trouble.clone();
            self.emit(SessionEvent::Chain { trouble });
        }
    }

    /// Watches the funding transaction on the wallet's own chain source.
    async fn poll_funding(&mut self, txid: Txid) -> Result<(), SessionError> {
        let now = unix_millis();
        if now < self.next_chain_poll {
            return Ok(());
        }
        self.next_chain_poll = now.saturating_add(self.config.chain_poll.as_millis() as u64);
        // A failed read confirms nothing: the session waits and reads again.
        let confirmations = match self.chain.confirmations(&txid).await {
            Ok(c) => c,
            Err(e) => {
                self.report_chain(Some(format!("{e}; not confirming the funding")));
                return Ok(());
            }
        };
        self.report_chain(None);
        if confirmations < self.config.confirmations.max(1) {
            return Ok(());
        }
        let Some(tx) = self.chain.transaction(&txid).await? else {
            return Ok(());
        };
        let funds_path = self
            .report
            .path
            .as_ref()
            .is_some_and(|p| check_funding_tx(&p.path, &tx).is_ok());
        if !funds_path {
            return Err(SessionError::FundingMismatch { txid });
        }
        match self.chain.tip_height().await {
            Ok(h) => self.height = self.height.max(h),
            Err(e) => {
                self.report_chain(Some(format!("{e}; not confirming the funding")));
                return Ok(());
            }
        }
        let now = self.now();
        if let Err(e) = self.machine.handle_funding_confirmed(now, txid) {
            self.report.refused.push(e.to_string());
        }
        Ok(())
    }

    /// The connection broke: once the funding is out only the chain matters; before, reconnect.
    async fn on_lost(&mut self, reason: String) -> Result<(), SessionError> {
        self.link = None;
        self.emit(SessionEvent::Disconnected {
            reason: reason.clone(),
        });
        if matches!(
            self.machine.status(),
            ClientStatus::AwaitingConfirmation(_) | ClientStatus::Ended(_)
        ) {
            return Ok(());
        }
        Box::pin(self.connect(false)).await
    }

    /// Opens a connection (retrying), authenticates, and re-attaches.
    async fn connect(&mut self, first: bool) -> Result<(), SessionError> {
        let attempts = self.config.reconnect_attempts;
        let mut last: Option<TransportError> = None;
        for attempt in 0..=attempts {
            if attempt > 0 || !first {
                sleep(self.config.reconnect_delay).await;
            }
            let opened = match self.connector.connect().await {
                Ok(t) => {
                    let hello = Greeting {
                        network: self.config.network,
                        identity: &self.config.identity,
                        agent: &self.config.agent,
                    };
                    handshake(t, hello, self.lsp).await
                }
                Err(e) => Err(unreachable(e)),
            };
            match opened {
                Ok(link) => {
                    if !first {
                        self.report.reconnects += 1;
                    }
                    return self.attach(link).await;
                }
                Err(SessionError::Unreachable { source, .. }) => last = Some(source),
                Err(e) => return Err(e),
            }
        }
        Err(SessionError::Unreachable {
            source: last.unwrap_or_else(|| TransportError {
                url: String::new(),
                reason: "no attempt".into(),
            }),
            attempts,
        })
    }

    /// Starts the ceremony over with a new join request, keeping the double-sign records.
    fn rejoin(&mut self) {
        let jobs = TreeJobs::new(self.config.policy.clone());
        self.last_path = jobs.last_path();
        self.chain_note = jobs.chain_note();
        let guard = self.machine.guard().clone();
        let now = self.now();
        self.machine = ClientCeremony::new(self.config.ceremony.clone(), jobs, guard, now);
        self.last_sent = None;
        self.report.rejoins += 1;
        self.emit(SessionEvent::Rejoining);
    }

    async fn attach(&mut self, link: Link<C::Transport>) -> Result<(), SessionError> {
        self.lsp = Some(link.lsp);
        let resumed = link.resumed;
        self.emit(SessionEvent::Connected { resumed });
        self.link = Some(link);
        let status = self.machine.status();
        let member_of = self.machine.client_id().and(resumed.map(|r| r.factory));
        let signed_nothing = matches!(status, ClientStatus::Joined | ClientStatus::NoncesSent(_));
        match status {
            // The LSP lost its gathering state (it restarted before any signature existed):
            // nothing binds this wallet, so it joins afresh.
            _ if signed_nothing && member_of.is_none() && self.report.rejoins < MAX_REJOINS => {
                self.rejoin();
                return Ok(());
            }
            ClientStatus::Joined
            | ClientStatus::NoncesSent(_)
            | ClientStatus::PartialsSent(_)
            | ClientStatus::Stored(_)
                if member_of.is_none() =>
            {
                // The LSP holds no membership for us any more (it lost its state).
                self.outcome = Some(ClientOutcome::Aborted {
                    reason: Reason::new(
                        "the LSP no longer knows this wallet's membership; its factory will not be funded",
                    ),
                });
                return Ok(());
            }
            // The LSP holds our membership, so it has our join request: re-sending it would
            // read as a new join if the LSP has just ended that factory (and is replaying how).
            ClientStatus::Joined => return Ok(()),
            _ => {}
        }
        if let Some(frame) = self.last_sent.clone() {
            self.send(frame, true).await?;
        }
        Ok(())
    }
}
