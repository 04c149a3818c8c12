//! The wallet's side of a liquidity purchase (`docs/protocol.md`, "Leaf states and inbound
//! liquidity"): `liquidity_request` → the LSP's offer, checked → `liquidity_accept` with the
//! wallet's side of the bigger channel → round 0 of that channel → the signing record and the
//! pending advance stored, then `leaf_partials` → `leaf_signed`: the leaf advanced, and the new
//! channel is the live one.
//!
//! One purchase per channel at a time ([`Flight`]); while one is under way the live channel
//! takes no payment. Once the partial signatures left, the purchase survives a dropped
//! connection and a restart (the stored [`PendingAdvance`]): the wallet asks again for the same
//! amount, and stays frozen until the LSP signs.

use bitcoin::Amount;
use futures::channel::oneshot;
use shared::channel::{Channel, ChannelEvent, Side};
use shared::leaf::{
    Advance, LeafPartials, LeafSigned, LiquidityAccept, LiquidityOffer, LiquidityRequest,
};
use shared::musig::PubNonce;
use shared::pay::policy::channel_seed;
use shared::pay::{leaf_state_channel_params, liquidity_price, ChannelId};
use shared::wire::WireMsg;

use super::{client_open, same_peer, Open, PayClient};
use crate::pay::liquidity::{self, Expected};
use crate::pay::store::{Attempt, LeafChannel, Opening, PayStore, PendingAdvance};
use crate::pay::{LiquidityBought, LiquidityQuote, LiquidityStep, PayError, PayEvent, PayLeaf};
use crate::session::{ChainSource, Connect};

type BuyReply = oneshot::Sender<Result<LiquidityBought, PayError>>;

/// One purchase under way on a channel.
pub(super) struct Flight {
    amount: Amount,
    price: Amount,
    step: LiquidityStep,
    reply: Option<BuyReply>,
    /// Built from the LSP's offer on this connection.
    signing: Option<Signing>,
    /// Stored before the partial signatures left: the live channel is frozen until the leaf
    /// advances.
    sent: Option<PendingAdvance>,
    /// Whether the request went out again on this connection (a stored advance).
    asked: bool,
}

/// What an accepted offer built.
struct Signing {
    advance: Advance,
    lsp_nonces: [PubNonce; 2],
    new: Open,
    opening: Opening,
}

impl Flight {
    pub(super) fn step(&self) -> LiquidityStep {
        self.step
    }

    /// The channel this purchase opens, if it is `key`.
    pub(super) fn new_channel(&mut self, key: LeafChannel) -> Option<&mut Open> {
        self.signing
            .as_mut()
            .map(|s| &mut s.new)
            .filter(|o| o.key == key)
    }
}

impl<C: Connect, S: PayStore, H: ChainSource> PayClient<C, S, H> {
    /// At start: every stored advance whose partial signatures left is under way again.
    pub(super) fn resume_advances(&mut self) {
        for (id, pending) in self.stored.advances.clone() {
            if !self.leaves.contains_key(&id) || self.live(id).leaf >= pending.leaf {
                continue;
            }
            self.flights.insert(
                id,
                Flight {
                    amount: pending.amount,
                    price: pending.price,
                    step: LiquidityStep::Signing,
                    reply: None,
                    signing: None,
                    sent: Some(pending),
                    asked: false,
                },
            );
        }
    }

    /// The connection dropped: a purchase whose partial signatures did not leave is forgotten;
    /// one whose did waits for the next connection to ask again.
    pub(super) fn advances_lost(&mut self) {
        let ids: Vec<ChannelId> = self.flights.keys().copied().collect();
        for id in ids {
            let keep = self.flights.get(&id).is_some_and(|f| f.sent.is_some());
            if keep {
                if let Some(f) = self.flights.get_mut(&id) {
                    f.signing = None;
                    f.asked = false;
                }
            } else {
                self.give_up(
                    id,
                    "the connection to the provider dropped before the purchase was signed; \
                     nothing was bought, try again"
                        .into(),
                );
            }
        }
    }

    /// The amount of a purchase on `id` whose partial signatures left: until it completes,
    /// the live channel is frozen (the LSP may hold the new state already).
    pub(super) fn frozen_purchase(&self, id: ChannelId) -> Option<Amount> {
        self.flights
            .get(&id)
            .filter(|f| f.sent.is_some())
            .map(|f| f.amount)
    }

    /// After the LSP re-opened the live channel (so it is not past the state being signed):
    /// asks again for a stored advance's amount.
    pub(super) async fn ask_again(&mut self, id: ChannelId) {
        let Some(f) = self.flights.get_mut(&id) else {
            return;
        };
        if f.sent.is_none() || f.asked {
            return;
        }
        f.asked = true;
        let amount = f.amount;
        self.send(WireMsg::LiquidityRequest(LiquidityRequest {
            channel: id,
            amount,
        }))
        .await;
    }

    /// The LSP refused the purchase on `id` (its refusal says so in `about`): a request still
    /// waiting for its offer is given up; one further along is left to its own steps.
    pub(super) fn advance_refused(&mut self, id: ChannelId, message: &str) {
        let asking = self
            .flights
            .get(&id)
            .is_some_and(|f| f.sent.is_none() && f.signing.is_none());
        if asking {
            self.give_up(id, format!("the provider refused: {message}"));
        }
    }

    /// Ends a purchase that did not change anything, telling the UI why. A purchase whose
    /// partial signatures left is never given up (the LSP may hold the new state): it stays,
    /// and the reason is only reported.
    fn give_up(&mut self, id: ChannelId, reason: String) {
        if self.flights.get(&id).is_some_and(|f| f.sent.is_some()) {
            self.emit(PayEvent::LspError(format!(
                "channel {id}: {reason}; the purchase is still being signed"
            )));
            return;
        }
        let Some(flight) = self.flights.remove(&id) else {
            return;
        };
        if let Some(reply) = flight.reply {
            let _ = reply.send(Err(PayError::Liquidity(reason.clone())));
        }
        self.emit(PayEvent::LiquidityFailed {
            channel: id,
            reason,
        });
    }

    fn progress(&mut self, id: ChannelId, step: LiquidityStep) {
        if let Some(f) = self.flights.get_mut(&id) {
            f.step = step;
        }
        self.emit(PayEvent::Liquidity { channel: id, step });
    }

    /// Whether the live channel `id` has no HTLC, no uncommitted update and no round.
    fn quiescent(&self, id: ChannelId) -> bool {
        self.open.get(&id).is_some_and(|o| {
            let spec = o.channel.spec();
            !o.channel.in_round()
                && spec.htlcs.is_empty()
                && o.channel.pending_spec().is_ok_and(|p| p == *spec)
        })
    }

    /// What buying `amount` costs, on the open channel whose leaf has the most for sale.
    pub(super) fn liquidity_quote(&self, amount: Amount) -> Result<LiquidityQuote, PayError> {
        let terms = self.terms.as_ref().ok_or(PayError::NotConnected)?;
        let snapshot = self.snapshot();
        let summary = snapshot
            .channels
            .iter()
            .filter(|c| c.ready)
            .max_by_key(|c| c.for_sale)
            .ok_or(PayError::NoChannel)?;
        let price = liquidity_price(&terms.fees, amount);
        let refusal = if summary.advance.is_some() {
            Some("a purchase is already under way on this channel; wait for it to finish".into())
        } else if amount == Amount::ZERO {
            Some("enter the amount of inbound liquidity to buy".into())
        } else if summary.for_sale == Amount::ZERO {
            Some(
                "this channel's leaf has no liquidity left to sell; buy more in your next factory"
                    .into(),
            )
        } else if amount > summary.for_sale {
            Some(format!(
                "only {} sat can still be bought in this leaf",
                summary.for_sale.to_sat()
            ))
        } else if amount < terms.min_liquidity {
            Some(format!(
                "the provider sells at least {} sat",
                terms.min_liquidity.to_sat()
            ))
        } else if amount > terms.max_liquidity {
            Some(format!(
                "the provider sells at most {} sat at a time",
                terms.max_liquidity.to_sat()
            ))
        } else if price > summary.balance {
            Some(format!(
                "the price of {} sat is more than your balance of {} sat; receive some sats first",
                price.to_sat(),
                summary.balance.to_sat()
            ))
        } else if !self.quiescent(summary.channel) {
            Some("a payment is still under way; try again once it is done".into())
        } else {
            None
        };
        Ok(LiquidityQuote {
            channel: summary.channel,
            amount,
            price,
            available: summary.for_sale,
            inbound_after: summary.inbound + amount + price,
            refusal,
        })
    }

    /// Starts buying `amount`: sends the request; `reply` answers when the purchase ends.
    pub(super) async fn buy_liquidity(&mut self, amount: Amount, reply: BuyReply) {
        if self.link.is_none() {
            let _ = reply.send(Err(PayError::NotConnected));
            return;
        }
        let quote = match self.liquidity_quote(amount) {
            Ok(q) => q,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        if let Some(refusal) = quote.refusal {
            let _ = reply.send(Err(PayError::Liquidity(refusal)));
            return;
        }
        let id = quote.channel;
        self.flights.insert(
            id,
            Flight {
                amount,
                price: quote.price,
                step: LiquidityStep::Asking,
                reply: Some(reply),
                signing: None,
                sent: None,
                asked: true,
            },
        );
        self.send(WireMsg::LiquidityRequest(LiquidityRequest {
            channel: id,
            amount,
        }))
        .await;
        self.progress(id, LiquidityStep::Asking);
    }

    /// The LSP's offer: checked, then the bigger channel is built and the wallet's side of it
    /// sent.
    pub(super) async fn on_offer(&mut self, offer: LiquidityOffer) -> Result<(), PayError> {
        let id = offer.channel;
        let Some(flight) = self.flights.get(&id) else {
            return Ok(());
        };
        if flight.signing.is_some() {
            return Ok(());
        }
        let (Some(leaf), Some(terms)) = (self.leaves.get(&id).cloned(), self.terms.as_ref()) else {
            return Ok(());
        };
        let live = self.live(id);
        let Some(live_spec) = self
            .open
            .get(&id)
            .filter(|o| o.key == live)
            .map(|o| o.channel.spec().clone())
        else {
            self.give_up(id, "the channel is not open on this connection".into());
            return Ok(());
        };
        let expected = Expected {
            live_leaf: live.leaf,
            amount: flight.amount,
            price: liquidity_price(&terms.fees, flight.amount),
            live: live_spec.clone(),
            quiescent: self.quiescent(id),
        };
        if let Err(e) = liquidity::check_offer(&offer, &expected) {
            self.give_up(id, e.to_string());
            return Ok(());
        }
        match self.build_new_channel(&leaf, &offer, &live_spec) {
            Ok(signing) => {
                let key = signing.new.key;
                // The attempt is stored before anything of its channel is signed or sent.
                let mut record = self.leaf_record(&leaf);
                record
                    .attempts
                    .entry(offer.leaf)
                    .or_default()
                    .push(Attempt {
                        amount: offer.amount,
                        log_from: signing.opening.log_from,
                    });
                self.store.save_leaf(id, &record).await?;
                self.tower.touch(id);
                self.stored.leaves.insert(id, record);
                if let Some(f) = self.flights.get_mut(&id) {
                    f.price = offer.price;
                    f.signing = Some(signing);
                }
                if !self
                    .stored
                    .channels
                    .get(&key)
                    .is_some_and(|(o, _)| o.is_some())
                {
                    self.store.save_lsp_open(&offer.open).await?;
                    self.stored.channels.entry(key).or_default().0 = Some(offer.open.clone());
                }
                self.send(WireMsg::LiquidityAccept(Box::new(LiquidityAccept {
                    channel: id,
                    leaf: offer.leaf,
                    open: client_open(&leaf, offer.leaf, 0),
                })))
                .await;
                if self.flights.get(&id).is_some_and(|f| f.sent.is_none()) {
                    self.progress(id, LiquidityStep::Opening);
                }
                self.perform_on(key).await
            }
            Err(reason) => {
                self.give_up(id, reason);
                Ok(())
            }
        }
    }

    /// The advance and the channel on the new leaf state's output, opened with the live
    /// channel's balances less the price plus the liquidity. An earlier attempt's log of that
    /// channel stays, and the double-sign records of earlier attempts for the same amount are
    /// replayed.
    fn build_new_channel(
        &self,
        leaf: &PayLeaf,
        offer: &LiquidityOffer,
        live: &shared::channel::CommitmentSpec,
    ) -> Result<Signing, String> {
        let record = self.leaf_record(leaf);
        let advance = Advance::new(&leaf.path, record.states.latest(), offer.amount)
            .map_err(|e| e.to_string())?;
        if advance.epoch() != offer.leaf {
            return Err(format!("the provider offered {}, not the next", offer.leaf));
        }
        let flight = self.flights.get(&leaf.channel);
        if let Some(sent) = flight.and_then(|f| f.sent.as_ref()) {
            if sent.leaf != offer.leaf || sent.amount != offer.amount {
                return Err(
                    "the provider offered another purchase than the one being signed".into(),
                );
            }
        }
        let spec =
            liquidity::opening_spec(live, offer.amount, offer.price).map_err(|e| e.to_string())?;
        let key = LeafChannel {
            channel: leaf.channel,
            leaf: offer.leaf,
        };
        let (stored_open, changes) = self.stored.channels.get(&key).cloned().unwrap_or_default();
        if stored_open.is_some_and(|s| !same_peer(&s, &offer.open)) {
            return Err("the provider offered the new channel with other keys; refusing it".into());
        }
        let params = leaf_state_channel_params(&leaf.path, &advance.state, &self.policy)
            .map_err(|e| e.to_string())?;
        let log_from = changes.len() as u64;
        let (earlier, attempt) =
            liquidity::attempts_at(&record, offer.leaf, log_from, offer.amount);
        let seed = channel_seed(&leaf.factory_secret, leaf.channel, offer.leaf);
        let channel = Channel::restore(
            Side::Client,
            params,
            leaf.factory_secret,
            &seed,
            offer.open.peer_info(),
            spec.clone(),
            liquidity::replayed(&changes, &earlier, &attempt),
        )
        .map_err(|e| format!("the new channel: {e}"))?;
        Ok(Signing {
            advance,
            lsp_nonces: offer.nonces.clone(),
            new: Open {
                key,
                channel,
                next_seq: log_from,
                ready: true,
            },
            opening: Opening { spec, log_from },
        })
    }

    /// An event of the channel a purchase opens: its round 0 done starts the signing.
    pub(super) async fn on_new_channel_event(
        &mut self,
        key: LeafChannel,
        event: ChannelEvent,
    ) -> Result<(), PayError> {
        match event {
            ChannelEvent::Committed { number: 0 } => self.send_partials(key.channel).await,
            _ => Ok(()),
        }
    }

    /// The wallet's step 5: records the new state, stores the pending advance, and only then
    /// sends its partial signatures.
    async fn send_partials(&mut self, id: ChannelId) -> Result<(), PayError> {
        let Some(leaf) = self.leaves.get(&id).cloned() else {
            return Ok(());
        };
        let Some((amount, price, state, opening)) = self.flights.get(&id).and_then(|f| {
            let s = f.signing.as_ref()?;
            Some((
                f.amount,
                f.price,
                s.advance.state.clone(),
                s.opening.clone(),
            ))
        }) else {
            return Ok(());
        };
        let mut record = self.leaf_record(&leaf);
        if let Err(e) = record.states.record_signing(&state) {
            self.give_up(id, format!("refusing to sign the new leaf state: {e}"));
            return Ok(());
        }
        self.store.save_leaf(id, &record).await?;
        self.tower.touch(id);
        self.stored.leaves.insert(id, record);
        let pending = PendingAdvance {
            leaf: state.epoch,
            amount,
            price,
            opening,
        };
        self.store.save_advance(id, Some(&pending)).await?;
        self.stored.advances.insert(id, pending.clone());
        let Some(f) = self.flights.get_mut(&id) else {
            return Ok(());
        };
        f.sent = Some(pending);
        let Some(signing) = f.signing.as_ref() else {
            return Ok(());
        };
        let mut rng = rand::rngs::OsRng;
        let (secs, nonces) = signing.advance.nonces(&leaf.factory_secret, &mut rng);
        let partials =
            signing
                .advance
                .sign(&leaf.factory_secret, secs, &nonces, &signing.lsp_nonces);
        let partials = match partials {
            Ok(p) => p,
            Err(e) => {
                self.emit(PayEvent::LspError(format!(
                    "channel {id}: signing the new leaf state failed: {e}; the wallet asks again \
                     after reconnecting"
                )));
                return Ok(());
            }
        };
        self.send(WireMsg::LeafPartials(Box::new(LeafPartials {
            channel: id,
            leaf: state.epoch,
            nonces,
            partials,
        })))
        .await;
        self.progress(id, LiquidityStep::Signing);
        Ok(())
    }

    /// The LSP's signatures: the leaf advances, the new channel becomes the live one, and it is
    /// opened on the connection.
    pub(super) async fn on_leaf_signed(&mut self, signed: LeafSigned) -> Result<(), PayError> {
        let id = signed.channel;
        let Some(leaf) = self.leaves.get(&id).cloned() else {
            return Ok(());
        };
        let Some(flight) = self.flights.get(&id) else {
            return Ok(());
        };
        let Some(sent) = flight.sent.clone() else {
            return Ok(());
        };
        let mut record = self.leaf_record(&leaf);
        let advance = match flight.signing.as_ref() {
            Some(s) => Ok(s.advance.clone()),
            None => Advance::new(&leaf.path, record.states.latest(), sent.amount),
        };
        let mut advance = match advance {
            Ok(a) if a.epoch() == signed.leaf && sent.leaf == signed.leaf => a,
            Ok(_) => return Ok(()),
            Err(e) => {
                self.emit(PayEvent::LspError(format!("channel {id}: {e}")));
                return Ok(());
            }
        };
        if let Err(e) = advance.attach(signed.signatures) {
            self.emit(PayEvent::LspError(format!("channel {id}: {e}")));
            return Ok(());
        }
        if let Err(e) = record
            .states
            .advance(advance.state.clone(), advance.redistribution.clone())
        {
            self.emit(PayEvent::LspError(format!(
                "channel {id}: the signed leaf state was refused: {e}"
            )));
            return Ok(());
        }
        record.openings.insert(signed.leaf, sent.opening.clone());
        self.store.save_leaf(id, &record).await?;
        self.tower.touch(id);
        self.stored.leaves.insert(id, record);
        // In the history, so it adds up to the balance: the price left it.
        let now = self.now().unix_time;
        let purchase = crate::pay::PaymentRecord {
            hash: bitcoin::hashes::Hash::hash(
                format!("liquidity/{id}/{}", signed.leaf.0).as_bytes(),
            ),
            direction: crate::pay::Direction::Liquidity,
            amount: sent.amount,
            fee: sent.price,
            network_fee: None,
            join_fee: bitcoin::Amount::ZERO,
            description: "More room to receive, from your leaf's liquidity".into(),
            status: crate::pay::PaymentStatus::Complete,
            created_at: now,
            done_at: Some(now),
            channel: None,
            preimage: None,
        };
        self.store.save_payment(&purchase).await?;
        self.stored.upsert_payment(&purchase);
        self.store.save_advance(id, None).await?;
        self.stored.advances.remove(&id);
        let Some(flight) = self.flights.remove(&id) else {
            return Ok(());
        };
        match flight.signing {
            Some(s) => {
                let mut new = s.new;
                new.ready = false;
                self.open.insert(id, new);
            }
            None => {
                self.open.remove(&id);
            }
        }
        let open = self.open_msg(&leaf);
        self.send(WireMsg::ChannelOpen(Box::new(open))).await;
        let bought = LiquidityBought {
            channel: id,
            leaf: signed.leaf,
            amount: sent.amount,
            price: sent.price,
        };
        self.emit(PayEvent::LiquidityBought(bought.clone()));
        self.emit(PayEvent::Updated);
        if let Some(reply) = flight.reply {
            let _ = reply.send(Ok(bought));
        }
        Ok(())
    }
}
