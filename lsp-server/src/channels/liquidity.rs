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

use bitcoin::secp256k1::{SecretKey, XOnlyPublicKey};
use bitcoin::Amount;
use shared::channel::keys::ChannelSecrets;
use shared::channel::{Action, Channel, ChannelChange, ChannelEvent, ChannelMsg, ChannelParams};
use shared::channel::{CommitmentSpec, Side};
use shared::leaf::flow::{
    AdvanceAction, AdvanceEvent, LspAdvance, LspChange, NewChannel, OfferInputs,
};
use shared::leaf::{
    LeafEpoch, LeafPartials, LeafSigned, LeafStates, LiquidityAccept, LiquidityRequest,
};
use shared::pay::policy::channel_seed;
use shared::pay::{
    leaf_state_channel_params, liquidity_price, ChannelFrame, ChannelId, ChannelOpen,
};
use shared::wire::{ErrorAbout, ErrorCode, WireMsg};

use super::store::SaleRecord;
use super::Router;
use crate::factory::ConnId;

/// An advance in flight on one channel: the order of its steps is `shared::leaf::flow`'s
/// [`LspAdvance`]; this holds what the LSP's side adds (the connection, the new channel).
pub(super) struct PendingAdvance {
    conn: ConnId,
    flow: LspAdvance,
    params: ChannelParams,
    secret: SecretKey,
    lsp_open: ChannelOpen,
    new: Option<Opened>,
}

/// The channel on the new leaf state, during its round 0.
struct Opened {
    channel: Channel,
    client_open: ChannelOpen,
    changes: Vec<ChannelChange>,
}

impl PendingAdvance {
    fn leaf(&self) -> LeafEpoch {
        self.flow.leaf()
    }

    /// The connection it runs on.
    pub(super) fn conn(&self) -> ConnId {
        self.conn
    }

    /// The clock: why the advance ends at `now` (past its deadline), if it does.
    pub(super) fn on_clock(&mut self, now: u64) -> Option<String> {
        self.flow
            .handle_timeout(now)
            .err()
            .map(|e| format!("{e}; ask again"))
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
            Ok(()) => self.drive_advance(req.channel),
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

    /// Checks a request against the LSP's settings and its copy of the channel, and starts the
    /// advance (its first action is the offer).
    fn offer(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        req: &LiquidityRequest,
    ) -> Result<(), String> {
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
        let leaf = current
            .epoch
            .next()
            .ok_or("this leaf has used all its states; buy liquidity in the next factory")?;
        let secrets = ChannelSecrets::from_seed(&channel_seed(&secret, id, leaf));
        let lsp_open = ChannelOpen {
            feerate: Some(spec.feerate),
            ..ChannelOpen::new(id, leaf, &secrets)
        };
        let inputs = OfferInputs {
            path: &path,
            current: &current,
            amount: req.amount,
            price: liquidity_price(&self.settings.fees, req.amount),
            live: &spec,
            secret,
            open: lsp_open.clone(),
            now: crate::factory::unix_now(),
            limit: self
                .settings
                .options
                .channel_round_timeout_secs
                .saturating_mul(2),
        };
        let flow =
            LspAdvance::offer(id, inputs, &mut rand::rngs::OsRng).map_err(|e| e.to_string())?;
        let params = leaf_state_channel_params(&path, flow.new_state(), &self.settings.policy)
            .map_err(|e| e.to_string())?;
        self.refuse_other_opening(id, flow.leaf(), req.amount, flow.opening())?;
        let link = self.links.get_mut(&id).ok_or("no such channel")?;
        link.advance = Some(Box::new(PendingAdvance {
            conn,
            flow,
            params,
            secret,
            lsp_open,
            new: None,
        }));
        Ok(())
    }

    /// The wallet accepts: the attempt is stored, the new channel opens and its round 0 starts.
    pub(super) fn on_liquidity_accept(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        accept: LiquidityAccept,
    ) {
        let id = accept.channel;
        let handled = self
            .pending_mut(conn, identity, id, accept.leaf)
            .and_then(|p| p.flow.handle_accept(&accept).map_err(|e| e.to_string()));
        match handled {
            Ok(()) => self.drive_advance(id),
            Err(reason) => self.abort_advance(id, conn, &reason),
        }
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
            Ok(()) => self.drive_advance(id),
            Err(reason) => self.abort_advance(id, conn, &reason),
        }
    }

    /// The wallet's partial signatures: the machine checks and completes them.
    pub(super) fn on_leaf_partials(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        partials: LeafPartials,
    ) {
        let id = partials.channel;
        let states = self.links.get(&id).map(|l| l.leaf.clone());
        let handled = self
            .pending_mut(conn, identity, id, partials.leaf)
            .and_then(|p| {
                let states = states.as_ref().ok_or("no such channel")?;
                p.flow
                    .handle_partials(&partials, states)
                    .map_err(|e| e.to_string())
            });
        match handled {
            Ok(()) => self.drive_advance(id),
            Err(reason) => self.abort_advance(id, conn, &reason),
        }
    }

    /// Performs the advance's actions in order (`shared::leaf::flow`), then runs the new
    /// channel. A store or a channel that fails ends the advance, and the wallet is told why.
    fn drive_advance(&mut self, id: ChannelId) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let identity = link.identity;
        let Some(mut pending) = link.advance.take() else {
            return;
        };
        let conn = pending.conn;
        while let Some(action) = pending.flow.poll_action() {
            let done = match action {
                AdvanceAction::Send(msg) => {
                    self.send_conn(conn, msg);
                    Ok(())
                }
                AdvanceAction::Persist(LspChange::Attempt {
                    leaf,
                    amount,
                    opening,
                }) => self.store_attempt(id, leaf, amount, &opening),
                AdvanceAction::OpenChannel(new) => open_channel(&mut pending, *new),
                AdvanceAction::Persist(LspChange::Sold {
                    states,
                    amount,
                    price,
                    opening,
                }) => self.commit_sale(id, &mut pending, *states, amount, price, &opening),
                AdvanceAction::Emit(AdvanceEvent::Done { leaf, .. }) => {
                    let sold = self.links.get(&id).map(|l| l.leaf.latest().sold.to_sat());
                    tracing::info!(channel = %id, leaf = leaf.0, sold_sat = sold, "inbound liquidity sold");
                    self.dirty.insert(id);
                    self.retry_waiting(identity);
                    Ok(())
                }
                AdvanceAction::Emit(_) => Ok(()),
            };
            if let Err(reason) = done {
                self.advance_dropped(id, conn, &reason);
                return;
            }
        }
        if pending.flow.is_done() {
            return;
        }
        let mut frames: Vec<ChannelMsg> = Vec::new();
        if let Some(new) = pending.new.as_mut() {
            while let Some(action) = new.channel.poll_action() {
                match action {
                    Action::Send(msg) => frames.push(msg),
                    Action::Persist(change) => new.changes.push(change),
                    Action::Emit(ChannelEvent::Committed { .. }) => pending.flow.handle_committed(),
                    Action::Emit(_) | Action::Broadcast(_) => {}
                }
            }
        }
        let leaf = pending.leaf();
        if let Some(link) = self.links.get_mut(&id) {
            link.advance = Some(pending);
        }
        for msg in frames {
            let frame = ChannelFrame {
                channel: id,
                leaf,
                msg,
            };
            self.send_conn(conn, WireMsg::Channel(Box::new(frame)));
        }
    }

    /// Before the new channel's round 0 signs anything: the attempt's balances, so that a later
    /// attempt of the same amount cannot open the same output with others.
    fn store_attempt(
        &mut self,
        id: ChannelId,
        leaf: LeafEpoch,
        amount: Amount,
        opening: &CommitmentSpec,
    ) -> Result<(), String> {
        self.refuse_other_opening(id, leaf, amount, opening)?;
        self.store
            .record_attempt(id, leaf, amount, opening)
            .map_err(|e| format!("could not store the purchase: {e}"))
    }

    /// Stores the sale with the new channel's round 0 in one transaction, then makes the new
    /// channel the live one.
    fn commit_sale(
        &mut self,
        id: ChannelId,
        pending: &mut PendingAdvance,
        states: LeafStates,
        amount: Amount,
        price: Amount,
        opening: &CommitmentSpec,
    ) -> Result<(), String> {
        let new = pending
            .new
            .take()
            .ok_or("the new channel's first round is not done")?;
        let link = self.links.get_mut(&id).ok_or("no such channel")?;
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
                opening,
                client_open: &new.client_open,
                changes: &changes,
                amount,
                price,
                now: crate::factory::unix_now(),
            })
            .map_err(|e| format!("could not store the purchase: {e}"))?;
        link.channel = new.channel;
        link.client_open = new.client_open;
        link.lsp_open = pending.lsp_open.clone();
        link.next_seq = first_seq + changes.len() as u64;
        link.leaf = states;
        link.round_since = None;
        link.frozen = false;
        Ok(())
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
        let dropped = self
            .links
            .get_mut(&id)
            .filter(|l| l.advance.as_ref().is_some_and(|a| a.conn == conn))
            .and_then(|l| l.advance.take())
            .is_some();
        if dropped {
            self.advance_dropped(id, conn, reason);
        } else {
            self.tell_abandoned(id, conn, reason);
        }
    }

    /// An advance taken out of its link ended: logged, and the wallet told why.
    fn advance_dropped(&mut self, id: ChannelId, conn: ConnId, reason: &str) {
        tracing::info!(channel = %id, %reason, "liquidity purchase abandoned");
        self.tell_abandoned(id, conn, reason);
    }

    fn tell_abandoned(&mut self, id: ChannelId, conn: ConnId, reason: &str) {
        self.refuse(
            conn,
            ErrorCode::Unexpected,
            Some(ErrorAbout::Liquidity { channel: id }),
            format!("liquidity purchase on channel {id} abandoned: {reason}"),
        );
    }
}

/// Opens the channel on the new leaf state's output and starts its round 0.
fn open_channel(pending: &mut PendingAdvance, new: NewChannel) -> Result<(), String> {
    let seed = channel_seed(&pending.secret, new.channel, new.leaf);
    let mut channel = Channel::new(
        Side::Lsp,
        pending.params.clone(),
        pending.secret,
        &seed,
        new.peer.peer_info(),
        new.opening,
    )
    .map_err(|e| e.to_string())?;
    channel
        .start_round(&mut rand::rngs::OsRng)
        .map_err(|e| e.to_string())?;
    pending.new = Some(Opened {
        channel,
        client_open: new.peer,
        changes: Vec::new(),
    });
    Ok(())
}
