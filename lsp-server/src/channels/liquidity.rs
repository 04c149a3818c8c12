//! Selling inbound liquidity: the LSP's side of a leaf advance (`shared::leaf`).
//!
//! Flow (`docs/protocol.md`, "Leaf states and inbound liquidity"): `liquidity_request` →
//! `liquidity_offer` (the LSP's nonces and its side of the new channel) → `liquidity_accept` →
//! round 0 of the new channel (frames tagged with the new leaf) → `leaf_partials` → one SQLite
//! transaction → `leaf_signed`; from then on the new channel is the live one.
//!
//! Little of an advance is stored before it completes: until the LSP has signed the new leaf
//! state, the new channel's output cannot exist on chain. But a later purchase of the same
//! amount builds the same state, output and keys, so each attempt's round-0 balances are
//! recorded before the LSP signs them (`liquidity_attempts`), and a later attempt with other
//! balances is refused: the wallet can never hold two commitments 0 on one output. An
//! advance is dropped (and the wallet told why) when its connection goes, when the live channel
//! changes under it, or when any of its messages is refused.

use bitcoin::secp256k1::{PublicKey, SecretKey, XOnlyPublicKey};
use bitcoin::Amount;
use shared::channel::keys::ChannelSecrets;
use shared::channel::{Action, Channel, ChannelChange, ChannelEvent, ChannelMsg, ChannelParams};
use shared::channel::{CommitmentSpec, Side};
use shared::leaf::{
    opening_spec, Advance, LeafEpoch, LeafPartials, LeafSigned, LeafStates, LiquidityAccept,
    LiquidityOffer, LiquidityRequest,
};
use shared::musig::{PubNonce, SecNonce};
use shared::pay::policy::channel_seed;
use shared::pay::{
    leaf_state_channel_params, liquidity_price, ChannelFrame, ChannelId, ChannelOpen,
};
use shared::wire::{ErrorAbout, ErrorCode, WireMsg};

use super::store::SaleRecord;
use super::Router;
use crate::factory::ConnId;

/// An advance in flight on one channel.
pub(super) struct PendingAdvance {
    conn: ConnId,
    /// Unix time of the offer: an advance not done within the round timeout is dropped.
    started: u64,
    advance: Advance,
    secs: [SecNonce; 2],
    pubs: [PubNonce; 2],
    amount: Amount,
    price: Amount,
    opening: CommitmentSpec,
    params: ChannelParams,
    secret: SecretKey,
    client_key: PublicKey,
    lsp_open: ChannelOpen,
    new: Option<NewChannel>,
}

/// The channel on the new leaf state, during its round 0.
struct NewChannel {
    channel: Channel,
    client_open: ChannelOpen,
    changes: Vec<ChannelChange>,
    ready: bool,
}

impl PendingAdvance {
    fn leaf(&self) -> LeafEpoch {
        self.advance.epoch()
    }

    /// The connection it runs on.
    pub(super) fn conn(&self) -> ConnId {
        self.conn
    }

    /// Whether it has run longer than `limit` seconds at `now`.
    pub(super) fn overdue(&self, now: u64, limit: u64) -> bool {
        now.saturating_sub(self.started) > limit
    }
}

/// The stored `leaf_signed` of a leaf past state 0 (sent again to a wallet that missed it).
pub(super) fn leaf_signed(id: ChannelId, leaf: &LeafStates) -> Option<LeafSigned> {
    let latest = leaf.latest();
    let previous = LeafEpoch(latest.epoch.0.checked_sub(1)?);
    Some(LeafSigned {
        channel: id,
        leaf: latest.epoch,
        signatures: [
            latest.node.signature?,
            leaf.redistribution(previous)?.signature?,
        ],
    })
}

impl Router {
    /// A wallet asks to buy inbound liquidity.
    pub(super) fn on_liquidity_request(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        req: LiquidityRequest,
    ) {
        match self.offer(conn, identity, &req) {
            Ok(offer) => self.send_conn(conn, WireMsg::LiquidityOffer(Box::new(offer))),
            Err(reason) => {
                tracing::info!(channel = %req.channel, %reason, "liquidity request refused");
                self.refuse(
                    conn,
                    ErrorCode::Unexpected,
                    Some(ErrorAbout::Liquidity {
                        channel: req.channel,
                    }),
                    format!("liquidity for channel {}: {reason}", req.channel),
                );
            }
        }
    }

    fn offer(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        req: &LiquidityRequest,
    ) -> Result<LiquidityOffer, String> {
        let id = req.channel;
        let link = self.links.get(&id).ok_or("no such channel")?;
        if link.identity != identity || link.ready != Some(conn) {
            return Err("the channel is not open on this connection".into());
        }
        if link.advance.is_some() {
            return Err("a purchase is already in flight".into());
        }
        let spec = link.channel.spec().clone();
        // A frozen channel (the wallet asks again for a purchase it signed) is quiescent.
        if link.channel.in_round() || link.channel.needs_round() || !spec.htlcs.is_empty() {
            return Err("the channel is busy with a payment; try again in a moment".into());
        }
        let (min, max) = self.settings.liquidity;
        if req.amount < min || req.amount > max {
            return Err(format!(
                "this provider sells between {min} and {max} at a time"
            ));
        }
        let current = link.leaf.latest().clone();
        let (_, path, secret) = self.member_path(id).map_err(|e| e.to_string())?;
        let advance = Advance::new(&path, &current, req.amount).map_err(|e| e.to_string())?;
        let price = liquidity_price(&self.settings.fees, req.amount);
        let opening = opening_spec(&spec, req.amount, price).ok_or_else(|| {
            format!(
                "it costs {price} and the channel holds {} of yours",
                spec.client_balance
            )
        })?;
        let params = leaf_state_channel_params(&path, &advance.state, &self.settings.policy)
            .map_err(|e| e.to_string())?;
        if opening.total() != params.funding_output.value {
            return Err("the new channel's balances do not add up".into());
        }
        let leaf = advance.epoch();
        self.refuse_other_opening(id, leaf, req.amount, &opening)?;
        let secrets = ChannelSecrets::from_seed(&channel_seed(&secret, id, leaf));
        let lsp_open = ChannelOpen {
            feerate: Some(opening.feerate),
            ..ChannelOpen::new(id, leaf, &secrets)
        };
        let (secs, pubs) = advance.nonces(&secret, &mut rand::rngs::OsRng);
        let offer = LiquidityOffer {
            channel: id,
            leaf,
            amount: req.amount,
            price,
            open: lsp_open.clone(),
            nonces: pubs.clone(),
        };
        let client_key = path.client_key();
        let link = self.links.get_mut(&id).ok_or("no such channel")?;
        link.advance = Some(Box::new(PendingAdvance {
            conn,
            started: crate::factory::unix_now(),
            advance,
            secs,
            pubs,
            amount: req.amount,
            price,
            opening,
            params,
            secret,
            client_key,
            lsp_open,
            new: None,
        }));
        Ok(offer)
    }

    /// The wallet accepts: open the new channel and start its round 0.
    pub(super) fn on_liquidity_accept(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        accept: LiquidityAccept,
    ) {
        let id = accept.channel;
        if let Err(reason) = self.open_new_channel(conn, identity, &accept) {
            self.abort_advance(id, conn, &reason);
            return;
        }
        self.pump_advance(id);
    }

    fn open_new_channel(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        accept: &LiquidityAccept,
    ) -> Result<(), String> {
        let pending = self.pending_mut(conn, identity, accept.channel, accept.leaf)?;
        if pending.new.is_some() || accept.open.leaf != accept.leaf {
            return Err("unexpected liquidity_accept".into());
        }
        // Durable before the LSP signs the new channel's commitment 0 (in the round below).
        let (amount, opening) = (pending.amount, pending.opening.clone());
        self.refuse_other_opening(accept.channel, accept.leaf, amount, &opening)?;
        self.store
            .record_attempt(accept.channel, accept.leaf, amount, &opening)
            .map_err(|e| format!("could not store the purchase: {e}"))?;
        let pending = self.pending_mut(conn, identity, accept.channel, accept.leaf)?;
        let seed = channel_seed(&pending.secret, accept.channel, accept.leaf);
        let mut channel = Channel::new(
            Side::Lsp,
            pending.params.clone(),
            pending.secret,
            &seed,
            accept.open.peer_info(),
            pending.opening.clone(),
        )
        .map_err(|e| e.to_string())?;
        channel
            .start_round(&mut rand::rngs::OsRng)
            .map_err(|e| e.to_string())?;
        pending.new = Some(NewChannel {
            channel,
            client_open: accept.open.clone(),
            changes: Vec::new(),
            ready: false,
        });
        Ok(())
    }

    /// A `channel` frame for the new channel of an advance in flight.
    pub(super) fn on_advance_frame(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        frame: ChannelFrame,
    ) {
        let now = self.now();
        let id = frame.channel;
        let handled = self
            .pending_mut(conn, identity, id, frame.leaf)
            .and_then(|p| {
                p.new
                    .as_mut()
                    .ok_or_else(|| "no new channel yet".to_string())
            })
            .and_then(|n| {
                n.channel
                    .handle_message(now, frame.msg, &mut rand::rngs::OsRng)
                    .map_err(|e| e.to_string())
            });
        match handled {
            Ok(()) => self.pump_advance(id),
            Err(reason) => self.abort_advance(id, conn, &reason),
        }
    }

    /// Sends the new channel's frames and keeps its changes (stored when the advance ends).
    fn pump_advance(&mut self, id: ChannelId) {
        let mut frames: Vec<(ConnId, LeafEpoch, ChannelMsg)> = Vec::new();
        if let Some(pending) = self.links.get_mut(&id).and_then(|l| l.advance.as_mut()) {
            let (conn, leaf) = (pending.conn, pending.leaf());
            if let Some(new) = pending.new.as_mut() {
                while let Some(action) = new.channel.poll_action() {
                    match action {
                        Action::Send(msg) => frames.push((conn, leaf, msg)),
                        Action::Persist(change) => new.changes.push(change),
                        Action::Emit(ChannelEvent::Committed { .. }) => new.ready = true,
                        Action::Emit(_) | Action::Broadcast(_) => {}
                    }
                }
            }
        }
        for (conn, leaf, msg) in frames {
            let frame = ChannelFrame {
                channel: id,
                leaf,
                msg,
            };
            self.send_conn(conn, WireMsg::Channel(Box::new(frame)));
        }
    }

    /// The wallet's partial signatures: complete, store, switch to the new channel.
    pub(super) fn on_leaf_partials(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        partials: LeafPartials,
    ) {
        let id = partials.channel;
        match self.complete_advance(conn, identity, &partials) {
            Ok(signed) => {
                let link = &self.links[&id];
                tracing::info!(
                    channel = %id,
                    leaf = signed.leaf.0,
                    sold_sat = link.leaf.latest().sold.to_sat(),
                    "inbound liquidity sold"
                );
                self.send_conn(conn, WireMsg::LeafSigned(Box::new(signed)));
                self.dirty.insert(id);
                self.retry_waiting(identity);
            }
            Err(reason) => self.abort_advance(id, conn, &reason),
        }
    }

    fn complete_advance(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        msg: &LeafPartials,
    ) -> Result<LeafSigned, String> {
        let id = msg.channel;
        self.pending_mut(conn, identity, id, msg.leaf)?;
        let link = self.links.get_mut(&id).ok_or("no such channel")?;
        let pending = *link.advance.take().ok_or("no purchase in flight")?;
        let new = pending
            .new
            .filter(|n| n.ready)
            .ok_or("the new channel's first round is not done")?;
        let mut states = link.leaf.clone();
        let mut advance = pending.advance;
        states
            .record_signing(&advance.state)
            .map_err(|e| e.to_string())?;
        let signatures = advance
            .complete(
                &pending.secret,
                pending.secs,
                &pending.pubs,
                &pending.client_key,
                &msg.nonces,
                &msg.partials,
            )
            .map_err(|e| e.to_string())?;
        states
            .advance(advance.state.clone(), advance.redistribution.clone())
            .map_err(|e| e.to_string())?;
        let first_seq = link.next_seq;
        let changes: Vec<(u64, ChannelChange)> = new
            .changes
            .into_iter()
            .enumerate()
            .map(|(i, c)| (first_seq + i as u64, c))
            .collect();
        self.store
            .commit_sale(&SaleRecord {
                id,
                states: &states,
                opening: &pending.opening,
                client_open: &new.client_open,
                changes: &changes,
                amount: pending.amount,
                price: pending.price,
                now: crate::factory::unix_now(),
            })
            .map_err(|e| format!("could not store the purchase: {e}"))?;
        let link = self.links.get_mut(&id).ok_or("no such channel")?;
        link.channel = new.channel;
        link.client_open = new.client_open;
        link.lsp_open = pending.lsp_open;
        link.next_seq = first_seq + changes.len() as u64;
        link.leaf = states;
        link.round_since = None;
        link.frozen = false;
        Ok(LeafSigned {
            channel: id,
            leaf: advance.epoch(),
            signatures,
        })
    }

    /// The advance in flight on `id` for this connection and leaf.
    /// Refuses a purchase that would open leaf state `leaf`'s channel with other balances than
    /// an earlier, unfinished attempt of the same amount (same channel output, same keys: the
    /// wallet would hold two commitments 0, one of them never revocable).
    fn refuse_other_opening(
        &self,
        id: ChannelId,
        leaf: LeafEpoch,
        amount: bitcoin::Amount,
        opening: &shared::channel::CommitmentSpec,
    ) -> Result<(), String> {
        match self.store.attempt(id, leaf, amount) {
            Ok(Some(earlier)) if earlier != *opening => Err(format!(
                "an earlier, unfinished purchase of {amount} opened this leaf state's channel \
                 with other balances; buy a different amount"
            )),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("could not read earlier purchases: {e}")),
        }
    }

    fn pending_mut(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        id: ChannelId,
        leaf: LeafEpoch,
    ) -> Result<&mut PendingAdvance, String> {
        let link = self.links.get_mut(&id).ok_or("no such channel")?;
        if link.identity != identity {
            return Err("not your channel".into());
        }
        match link.advance.as_deref_mut() {
            Some(p) if p.conn == conn && p.leaf() == leaf => Ok(p),
            _ => Err(format!("no purchase of {leaf} in flight")),
        }
    }

    /// Drops the advance in flight on `id` (if any) and tells the wallet why.
    pub(super) fn abort_advance(&mut self, id: ChannelId, conn: ConnId, reason: &str) {
        let link = self.links.get_mut(&id);
        let dropped = link
            .filter(|l| l.advance.as_ref().is_some_and(|a| a.conn == conn))
            .and_then(|l| l.advance.take())
            .is_some();
        if dropped {
            tracing::info!(channel = %id, %reason, "liquidity purchase abandoned");
        }
        self.refuse(
            conn,
            ErrorCode::Unexpected,
            Some(ErrorAbout::Liquidity { channel: id }),
            format!("liquidity purchase on channel {id} abandoned: {reason}"),
        );
    }
}
