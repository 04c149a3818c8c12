//! One leaf channel at the LSP: opening it from the funded factory's proposal, restoring it
//! from its stored changes, and performing its actions (persist, send, events, broadcast).

use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::Amount;
use shared::channel::{
    Action, Channel, ChannelChange, ChannelEvent, ChannelMsg, CommitmentSpec, Side,
};
use shared::leaf::LeafEpoch;
use shared::musig::public_key;
use shared::path::ClientPath;
use shared::pay::policy::channel_seed;
use shared::pay::{leaf_channel_params, ChannelFrame, ChannelId, ChannelOpen};
use shared::wire::{ErrorCode, WireMsg};

use super::store::ChannelStoreError;
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
}

/// Why a channel cannot be opened.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error("no funded factory has this wallet as client {0}")]
    NotMember(ChannelId),
    #[error("channel {0} belongs to another wallet")]
    NotYours(ChannelId),
    #[error("channel {0} is already open with other basepoints")]
    Mismatch(ChannelId),
    #[error("channel {id}: {reason}")]
    Build { id: ChannelId, reason: String },
    #[error(transparent)]
    Store(#[from] ChannelStoreError),
}

impl Router {
    /// Builds the LSP's side of channel `id` on its leaf, with `client_open`'s basepoints, and
    /// replays its stored `changes` (none for a new channel).
    fn build_channel(
        &self,
        id: ChannelId,
        client_open: &ChannelOpen,
        changes: Vec<ChannelChange>,
    ) -> Result<(XOnlyPublicKey, Channel, ChannelOpen), OpenError> {
        let member = self
            .store
            .funded_member(id)?
            .ok_or(OpenError::NotMember(id))?;
        let build = |reason: String| OpenError::Build { id, reason };
        let path =
            ClientPath::build(&member.proposal, id.client).map_err(|e| build(e.to_string()))?;
        let params =
            leaf_channel_params(&path, &self.settings.policy).map_err(|e| build(e.to_string()))?;
        let secret = factory_key(&self.key, id.factory);
        if public_key(&secret) != member.proposal.lsp_key {
            return Err(build("the factory's LSP key is not this LSP's".into()));
        }
        let seed = channel_seed(&secret, id, LeafEpoch::FIRST);
        let feerate = self.settings.policy.opening_feerate;
        let spec = CommitmentSpec {
            lsp_balance: params.funding_output.value,
            client_balance: Amount::ZERO,
            htlcs: Vec::new(),
            feerate,
        };
        let channel = Channel::restore(
            Side::Lsp,
            params,
            secret,
            &seed,
            client_open.peer_info(),
            spec,
            changes,
        )
        .map_err(|e| build(e.to_string()))?;
        let mine = channel.peer_info();
        let lsp_open = ChannelOpen {
            channel: id,
            basepoints: mine.basepoints,
            first_points: mine.first_points,
            feerate: Some(feerate),
            next_update: 0,
            leaf: LeafEpoch::FIRST,
        };
        Ok((member.identity, channel, lsp_open))
    }

    /// Restores every stored channel (at start).
    pub(super) fn restore(&mut self) -> anyhow::Result<()> {
        for stored in self.store.load_channels()? {
            let next_seq = stored.changes.len() as u64;
            let (identity, channel, lsp_open) = self
                .build_channel(stored.id, &stored.client_open, stored.changes)
                .map_err(|e| anyhow::anyhow!("restoring channel {}: {e}", stored.id))?;
            self.insert_link(Link {
                id: stored.id,
                identity,
                channel,
                client_open: stored.client_open,
                lsp_open,
                next_seq,
                ready: None,
                round_since: None,
            });
        }
        self.forwards_restore();
        tracing::info!(channels = self.links.len(), "channels restored");
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
            Ok(lsp_open) => {
                self.send_conn(conn, WireMsg::ChannelOpen(Box::new(lsp_open)));
                self.dirty.insert(id);
                self.retry_waiting(identity);
            }
            Err(e) => {
                tracing::info!(channel = %id, error = %e, "channel open refused");
                self.refuse(conn, ErrorCode::Unexpected, e.to_string());
            }
        }
    }

    fn open_link(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        open: ChannelOpen,
    ) -> Result<ChannelOpen, OpenError> {
        let id = open.channel;
        if let Some(link) = self.links.get_mut(&id) {
            if link.identity != identity {
                return Err(OpenError::NotYours(id));
            }
            if link.client_open.basepoints != open.basepoints
                || link.client_open.first_points != open.first_points
            {
                return Err(OpenError::Mismatch(id));
            }
            link.channel.reset_round();
            link.channel.resend_updates(open.next_update);
            link.ready = Some(conn);
            let mut answer = link.lsp_open.clone();
            answer.next_update = link.channel.updates_received();
            return Ok(answer);
        }
        let (member, channel, lsp_open) = self.build_channel(id, &open, Vec::new())?;
        if member != identity {
            return Err(OpenError::NotYours(id));
        }
        self.store
            .insert_channel(id, &identity, &open, crate::factory::unix_now())?;
        tracing::info!(channel = %id, %identity, "channel opened");
        self.insert_link(Link {
            id,
            identity,
            channel,
            client_open: open,
            lsp_open: lsp_open.clone(),
            next_seq: 0,
            ready: Some(conn),
            round_since: None,
        });
        Ok(lsp_open)
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
                format!("no channel {}: send channel_open first", frame.channel),
            );
        };
        if link.identity != identity || link.ready != Some(conn) {
            return self.refuse(
                conn,
                ErrorCode::Unexpected,
                format!("channel {} is not open on this connection", frame.channel),
            );
        }
        let mut rng = rand::rngs::OsRng;
        if let Err(e) = link.channel.handle_message(now, frame.msg, &mut rng) {
            tracing::info!(channel = %frame.channel, error = %e, "channel message refused");
            let id = frame.channel;
            self.refuse(conn, ErrorCode::Unexpected, format!("channel {id}: {e}"));
        }
        self.dirty.insert(frame.channel);
    }

    /// Performs every pending action of every touched channel: first all stores in one
    /// transaction, then the frames, then the events (which may touch more channels).
    pub(super) fn flush(&mut self) {
        let mut rng = rand::rngs::OsRng;
        let now = self.now().unix_time;
        while !self.dirty.is_empty() {
            let dirty = std::mem::take(&mut self.dirty);
            let mut changes = Vec::new();
            let mut frames = Vec::new();
            let mut events = Vec::new();
            let mut broadcasts = Vec::new();
            for id in dirty {
                let Some(link) = self.links.get_mut(&id) else {
                    continue;
                };
                if link.ready.is_some() && !link.channel.in_round() && link.channel.needs_round() {
                    match link.channel.start_round(&mut rng) {
                        Ok(()) => link.round_since = Some(now),
                        Err(e) => {
                            tracing::warn!(channel = %id, error = %e, "could not start a round")
                        }
                    }
                }
                while let Some(action) = link.channel.poll_action() {
                    match action {
                        Action::Persist(change) => {
                            changes.push((id, link.next_seq, change));
                            link.next_seq += 1;
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
                for (id, _, _) in &changes {
                    if let Some(link) = self.links.get_mut(id) {
                        link.channel.reset_round();
                    }
                }
                return;
            }
            for (id, msg) in frames {
                self.send_channel(id, msg);
            }
            for (id, tx) in broadcasts {
                self.broadcast(id, tx);
            }
            for (id, event) in events {
                self.on_event(id, event);
            }
        }
    }

    fn send_channel(&self, id: ChannelId, msg: ChannelMsg) {
        if let Some(conn) = self.links.get(&id).and_then(|l| l.ready) {
            self.send_conn(
                conn,
                WireMsg::Channel(Box::new(ChannelFrame {
                    channel: id,
                    leaf: LeafEpoch::FIRST,
                    msg,
                })),
            );
        }
    }

    fn broadcast(&self, id: ChannelId, tx: bitcoin::Transaction) {
        let esplora = self.esplora.clone();
        tracing::warn!(channel = %id, txid = %tx.compute_txid(), "publishing the LSP's latest commitment (an HTLC deadline passed)");
        tokio::spawn(async move {
            if let Err(e) = esplora.broadcast(&tx).await {
                tracing::warn!(channel = %id, error = %e, "commitment broadcast failed (its leaf must be on chain first)");
            }
        });
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
            ChannelEvent::ForceClose { deadline } => {
                tracing::warn!(channel = %id, %deadline, "HTLC deadline passed; going on chain")
            }
        }
    }
}
