//! One leaf channel at the LSP: opening it from the funded factory's proposal, restoring it
//! from its stored changes, and performing its actions (persist, send, events, broadcast).

use bitcoin::secp256k1::{SecretKey, XOnlyPublicKey};
use bitcoin::Amount;
use shared::channel::{
    Action, Channel, ChannelChange, ChannelEvent, ChannelMsg, CommitmentSpec, Side,
};
use shared::leaf::{LeafEpoch, LeafStates};
use shared::musig::public_key;
use shared::path::ClientPath;
use shared::pay::policy::channel_seed;
use shared::pay::{leaf_state_channel_params, ChannelFrame, ChannelId, ChannelOpen, JoinFee};
use shared::wire::{ErrorAbout, ErrorCode, WireMsg};

use super::liquidity::{leaf_signed, PendingAdvance};
use super::onchain::{Claim, Closing};
use super::store::{ChannelStoreError, StoredLeaf};
use super::Router;
use crate::factory::{factory_key, ConnId};

/// One channel and what the router keeps about it.
pub(super) struct Link {
    pub(super) id: ChannelId,
    pub(super) identity: XOnlyPublicKey,
    pub(super) channel: Channel,
    /// What the client sent at open (a later open must match).
    pub(super) client_open: ChannelOpen,
    /// What the LSP answers at every open.
    pub(super) lsp_open: ChannelOpen,
    /// Next sequence number of its stored changes.
    pub(super) next_seq: u64,
    /// The connection the wallet opened the channel on (frames go only there).
    pub(super) ready: Option<ConnId>,
    /// Unix time the current commitment round started (a wallet silent past
    /// `--channel-round-timeout-secs` is disconnected).
    pub(super) round_since: Option<u64>,
    /// The leaf's states; the live channel is on the latest one's channel output.
    pub(super) leaf: LeafStates,
    /// A liquidity purchase in flight.
    pub(super) advance: Option<Box<PendingAdvance>>,
    /// The wallet signed a purchase it has not seen complete (its `channel_open` said so): the
    /// live channel gets no HTLC and no round until the purchase completes.
    pub(super) frozen: bool,
    /// The factory's funding output (the channel watch reads it first).
    pub(super) funding: bitcoin::OutPoint,
    /// The last height at which the channel may take a payment (`routing_deadline`).
    pub(super) routable_until: u32,
    /// From this height, if the channel is still off chain and its factory not closed, the LSP
    /// takes it on chain itself (`retire.rs`; `ClientPath::last_walk_start`).
    pub(super) retire_at: u32,
    /// Its factory's life (the wallet hears when the dying period starts).
    pub(super) life: shared::lifecycle::Life,
    /// Why the channel takes no more payments, once it does not.
    pub(super) closing: Option<Closing>,
    /// The commitment of this channel on chain, once its channel output is spent (claims are
    /// built from it again when the LSP learns a preimage later).
    pub(super) on_chain: Option<Box<bitcoin::Transaction>>,
    /// What the LSP claims from a commitment of this channel on chain.
    pub(super) claims: Vec<Claim>,
    /// Testing only (`--withhold-settlements`): no more rounds once the LSP knows a preimage
    /// from this channel.
    pub(super) withheld: bool,
    /// What the client still owes for its join (taken from the first payment it receives that
    /// leaves it enough; `shared::pay::join_fee`).
    pub(super) join_fee: JoinFee,
}

impl Link {
    fn new(id: ChannelId, built: Built, client_open: ChannelOpen, next_seq: u64) -> Link {
        Link {
            id,
            identity: built.identity,
            channel: built.channel,
            client_open,
            lsp_open: built.lsp_open,
            next_seq,
            ready: None,
            round_since: None,
            leaf: built.leaf,
            advance: None,
            frozen: false,
            funding: built.funding,
            routable_until: built.routable_until,
            retire_at: built.retire_at,
            life: built.life,
            closing: None,
            on_chain: None,
            claims: Vec::new(),
            withheld: false,
            join_fee: built.join_fee,
        }
    }

    /// Whether the channel may route a payment.
    pub(super) fn routable(&self) -> bool {
        self.closing.is_none()
    }
}

/// A channel built from the factory's proposal and its stored changes.
struct Built {
    identity: XOnlyPublicKey,
    channel: Channel,
    lsp_open: ChannelOpen,
    leaf: LeafStates,
    funding: bitcoin::OutPoint,
    routable_until: u32,
    retire_at: u32,
    life: shared::lifecycle::Life,
    join_fee: JoinFee,
}

/// How the LSP answers a `channel_open`.
enum Opened {
    /// With its own `channel_open`: the channel is open on this connection.
    Open(Box<ChannelOpen>),
    /// With the signatures of a purchase the wallet missed; it opens the new channel next.
    Resume(shared::leaf::LeafSigned),
}

/// Why a channel cannot be opened.
#[derive(Debug, thiserror::Error)]
pub(super) enum OpenError {
    #[error("no funded factory has this wallet as client {0}")]
    NotMember(ChannelId),
    #[error("channel {0} belongs to another wallet")]
    NotYours(ChannelId),
    #[error("channel {0} is already open with other basepoints")]
    Mismatch(ChannelId),
    #[error("channel {id}: {reason}")]
    Build { id: ChannelId, reason: String },
    #[error("channel {id} takes no more payments: {reason}")]
    Closed { id: ChannelId, reason: String },
    #[error(transparent)]
    Store(#[from] ChannelStoreError),
}

/// The LSP's side of the channel of `id` on leaf state `leaf`, restored from `changes`, and
/// the `channel_open` it answers with.
pub(super) fn lsp_channel(
    id: ChannelId,
    leaf: LeafEpoch,
    params: shared::channel::ChannelParams,
    secret: SecretKey,
    client_open: &ChannelOpen,
    spec: CommitmentSpec,
    changes: Vec<ChannelChange>,
) -> Result<(Channel, ChannelOpen), shared::channel::ChannelError> {
    let seed = channel_seed(&secret, id, leaf);
    let feerate = spec.feerate;
    let channel = Channel::restore(
        Side::Lsp,
        params,
        secret,
        &seed,
        client_open.peer_info(),
        spec,
        changes,
    )?;
    let lsp_open = ChannelOpen {
        feerate: Some(feerate),
        ..ChannelOpen::new(id, leaf, channel.secrets())
    };
    Ok((channel, lsp_open))
}

impl Router {
    /// `id`'s funded member and its path, checked to be this LSP's factory.
    pub(super) fn member_path(
        &self,
        id: ChannelId,
    ) -> Result<(XOnlyPublicKey, ClientPath, SecretKey), OpenError> {
        let identity = self
            .store
            .funded_identity(id)?
            .ok_or(OpenError::NotMember(id))?;
        let build = |reason: String| OpenError::Build { id, reason };
        let tree = self
            .funded_tree(id.factory)
            .map_err(|e| build(e.to_string()))?;
        let path = tree
            .client_path(id.client)
            .ok_or_else(|| build("no such client in the factory".into()))?;
        let secret = factory_key(&self.key, id.factory);
        if public_key(&secret) != tree.proposal().lsp_key {
            return Err(build("the factory's LSP key is not this LSP's".into()));
        }
        Ok((identity, path, secret))
    }

    /// Builds the LSP's side of channel `id` on its live leaf state (state 0 unless `leaf` says
    /// otherwise), with `client_open`'s basepoints, and replays its stored `changes` (none for
    /// a new channel).
    fn build_channel(
        &self,
        id: ChannelId,
        client_open: &ChannelOpen,
        changes: Vec<ChannelChange>,
        leaf: Option<StoredLeaf>,
    ) -> Result<Built, OpenError> {
        let build = |reason: String| OpenError::Build { id, reason };
        let (identity, path, secret) = self.member_path(id)?;
        let (states, opening) = match leaf {
            Some(l) => (l.states, Some(l.opening)),
            None => (LeafStates::new(&path), None),
        };
        let live = states.latest();
        let params = leaf_state_channel_params(&path, live, &self.settings.policy)
            .map_err(|e| build(e.to_string()))?;
        let spec = opening.unwrap_or(CommitmentSpec {
            lsp_balance: params.funding_output.value,
            client_balance: Amount::ZERO,
            htlcs: Vec::new(),
            feerate: self.settings.policy.opening_feerate,
        });
        let (channel, lsp_open) =
            lsp_channel(id, live.epoch, params, secret, client_open, spec, changes)
                .map_err(|e| build(e.to_string()))?;
        let routable_until = self
            .settings
            .policy
            .routing_deadline(path.timeout().to_consensus_u32());
        Ok(Built {
            identity,
            channel,
            lsp_open,
            leaf: states,
            funding: path.funding_outpoint(),
            routable_until,
            retire_at: path.last_walk_start().to_consensus_u32(),
            life: shared::lifecycle::Life::of(path.proposal()),
            join_fee: self.store.join_fee(id)?,
        })
    }

    /// Restores every stored channel (at start).
    pub(super) fn restore(&mut self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let mut changes = 0;
        for stored in self.store.load_channels()? {
            changes += stored.changes.len();
            let built = self
                .build_channel(stored.id, &stored.client_open, stored.changes, stored.leaf)
                .map_err(|e| anyhow::anyhow!("restoring channel {}: {e}", stored.id))?;
            self.insert_link(Link::new(
                stored.id,
                built,
                stored.client_open,
                stored.next_seq,
            ));
        }
        self.invoices_restore()?;
        self.forwards_restore();
        self.swaps_restore();
        self.releases_restore()?;
        // Start-up replays every live channel's changes: this says what that costs.
        tracing::info!(
            channels = self.links.len(),
            changes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "channels restored"
        );
        Ok(())
    }

    fn insert_link(&mut self, link: Link) {
        self.by_identity
            .entry(link.identity)
            .or_default()
            .push(link.id);
        self.links.insert(link.id, link);
    }

    /// A wallet opens (or re-opens, after reconnecting) its channel.
    pub(super) fn on_open(&mut self, conn: ConnId, identity: XOnlyPublicKey, open: ChannelOpen) {
        let id = open.channel;
        match self.open_link(conn, identity, open) {
            Ok(Opened::Open(lsp_open)) => {
                self.send_conn(conn, WireMsg::ChannelOpen(lsp_open));
                self.dirty.insert(id);
                self.retry_waiting(identity);
                self.resend_swaps(identity);
            }
            Ok(Opened::Resume(signed)) => {
                self.send_conn(conn, WireMsg::LeafSigned(Box::new(signed)));
            }
            Err(OpenError::Closed { .. }) => self.tell_closed(conn, id),
            Err(e) => {
                tracing::info!(channel = %id, error = %e, "channel open refused");
                self.refuse(
                    conn,
                    ErrorCode::Unexpected,
                    Some(ErrorAbout::Channel { channel: id }),
                    e.to_string(),
                );
            }
        }
    }

    fn open_link(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        open: ChannelOpen,
    ) -> Result<Opened, OpenError> {
        let id = open.channel;
        if let Some(link) = self.links.get_mut(&id) {
            if link.identity != identity {
                return Err(OpenError::NotYours(id));
            }
            if let Some(closing) = &link.closing {
                return Err(OpenError::Closed {
                    id,
                    reason: closing.describe(),
                });
            }
            // A re-open drops any purchase in flight (docs/protocol.md, "Resuming").
            link.advance = None;
            let live = link.leaf.latest().epoch;
            if open.leaf < live {
                // The wallet missed the end of its last purchase: it gets the signatures, then
                // opens the new channel.
                return leaf_signed(id, &link.leaf)
                    .filter(|s| open.leaf.next() == Some(s.leaf))
                    .map(Opened::Resume)
                    .ok_or(OpenError::Mismatch(id));
            }
            if open.leaf != live {
                return Err(OpenError::Mismatch(id));
            }
            if !link.client_open.same_points(&open) {
                return Err(OpenError::Mismatch(id));
            }
            link.channel.reset_round();
            link.channel.resend_updates(open.next_update);
            link.ready = Some(conn);
            link.frozen = open.purchase.is_some();
            let mut answer = link.lsp_open.clone();
            answer.next_update = link.channel.updates_received();
            return Ok(Opened::Open(Box::new(answer)));
        }
        if open.leaf != LeafEpoch::FIRST {
            return Err(OpenError::Mismatch(id));
        }
        let built = self.build_channel(id, &open, Vec::new(), None)?;
        if built.identity != identity {
            return Err(OpenError::NotYours(id));
        }
        self.store
            .insert_channel(id, &identity, &open, crate::factory::unix_now())?;
        tracing::info!(channel = %id, %identity, "channel opened");
        let mut link = Link::new(id, built, open, 0);
        link.ready = Some(conn);
        let lsp_open = link.lsp_open.clone();
        self.insert_link(link);
        Ok(Opened::Open(Box::new(lsp_open)))
    }

    /// A channel message from the wallet.
    pub(super) fn on_channel(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        frame: ChannelFrame,
    ) {
        let now = self.now();
        let Some(link) = self.links.get_mut(&frame.channel) else {
            return self.refuse(
                conn,
                ErrorCode::Unexpected,
                Some(ErrorAbout::Channel {
                    channel: frame.channel,
                }),
                format!("no channel {}: send channel_open first", frame.channel),
            );
        };
        if link.identity != identity || link.ready != Some(conn) {
            return self.refuse(
                conn,
                ErrorCode::Unexpected,
                Some(ErrorAbout::Channel {
                    channel: frame.channel,
                }),
                format!("channel {} is not open on this connection", frame.channel),
            );
        }
        if frame.leaf != link.leaf.latest().epoch {
            return self.on_advance_frame(conn, identity, frame);
        }
        let mut rng = rand::rngs::OsRng;
        if let Err(e) = link.channel.handle_message(now, frame.msg, &mut rng) {
            tracing::info!(channel = %frame.channel, error = %e, "channel message refused");
            let id = frame.channel;
            self.refuse(
                conn,
                ErrorCode::Unexpected,
                Some(ErrorAbout::Channel { channel: id }),
                format!("channel {id}: {e}"),
            );
        }
        self.dirty.insert(frame.channel);
    }

    /// Performs every pending action of every touched channel: first all stores in one
    /// transaction, then the frames, then the events (which may touch more channels).
    pub(super) fn flush(&mut self) {
        let mut rng = rand::rngs::OsRng;
        let now = self.now().unix_time;
        let withhold = self.settings.options.withhold_settlements;
        while !self.dirty.is_empty() {
            let dirty = std::mem::take(&mut self.dirty);
            let mut changes = Vec::new();
            let mut frames = Vec::new();
            let mut events = Vec::new();
            let mut broadcasts = Vec::new();
            let mut abandoned = Vec::new();
            for id in dirty {
                let Some(link) = self.links.get_mut(&id) else {
                    continue;
                };
                if withhold && !link.withheld && !link.channel.known_preimages().is_empty() {
                    tracing::warn!(channel = %id, "withholding the settlement (testing only)");
                    link.withheld = true;
                }
                if link.ready.is_some()
                    && !link.frozen
                    && !link.withheld
                    && !link.channel.in_round()
                    && link.channel.needs_round()
                {
                    match link.channel.start_round(&mut rng) {
                        Ok(()) => link.round_since = Some(now),
                        Err(e) => {
                            tracing::warn!(channel = %id, error = %e, "could not start a round")
                        }
                    }
                }
                let leaf = link.leaf.latest().epoch;
                while let Some(action) = link.channel.poll_action() {
                    match action {
                        Action::Persist(change) => {
                            changes.push((id, leaf, link.next_seq, change));
                            link.next_seq += 1;
                            // The new channel's opening balances came from this one.
                            if let Some(pending) = link.advance.take() {
                                abandoned.push((id, pending.conn()));
                            }
                        }
                        Action::Send(msg) => frames.push((id, msg)),
                        Action::Emit(event) => events.push((id, event)),
                        Action::Broadcast(tx) => broadcasts.push((id, tx)),
                    }
                }
            }
            if let Err(e) = self.store.append(&changes) {
                // Nothing that needed these changes stored may leave: drop the frames and stop
                // the rounds (the wallets reconnect and the rounds restart from what is stored).
                tracing::error!(error = %e, "storing channel changes failed; dropping their frames");
                for (id, _, _, _) in &changes {
                    if let Some(link) = self.links.get_mut(id) {
                        link.channel.reset_round();
                    }
                }
                return;
            }
            for (id, conn) in abandoned {
                self.abort_advance(id, conn, "the channel changed; ask again");
            }
            for (id, msg) in frames {
                self.send_channel(id, msg);
            }
            for (id, tx) in broadcasts {
                self.go_on_chain(id, tx);
            }
            for (id, event) in events {
                self.on_event(id, event);
            }
        }
        // Payment updates that no channel change carried (they are never a precondition of a
        // frame, so they may wait for the end of the batch).
        if self.store.has_batched() {
            if let Err(e) = self.store.append(&[]) {
                tracing::error!(error = %e, "storing payment updates failed; retried next batch");
            }
        }
    }

    fn send_channel(&self, id: ChannelId, msg: ChannelMsg) {
        let Some(link) = self.links.get(&id) else {
            return;
        };
        if let Some(conn) = link.ready {
            self.send_conn(
                conn,
                WireMsg::Channel(Box::new(ChannelFrame {
                    channel: id,
                    leaf: link.leaf.latest().epoch,
                    msg,
                })),
            );
        }
    }

    fn on_event(&mut self, id: ChannelId, event: ChannelEvent) {
        match event {
            ChannelEvent::Committed { number } => {
                tracing::debug!(channel = %id, number, "commitment round done");
                self.on_committed(id);
                // Updates that arrived during the round need the next one.
                self.dirty.insert(id);
            }
            ChannelEvent::PreimageReceived { id: htlc, preimage } => {
                self.on_preimage(id, htlc, preimage)
            }
            ChannelEvent::Closed { txid } => tracing::info!(channel = %id, %txid, "channel closed"),
            // Said once: the event comes every tick until the channel output is spent.
            ChannelEvent::ForceClose { deadline } if !self.chain.walks.contains_key(&id) => {
                tracing::warn!(channel = %id, %deadline, "HTLC deadline passed; going on chain")
            }
            ChannelEvent::ForceClose { .. } => {}
        }
    }
}
