//! The wallet's side of a liquidity purchase (`docs/protocol.md`, "Leaf states and inbound
//! liquidity"). The order of its steps and its checks are `shared::leaf::flow`'s
//! [`ClientAdvance`]; this driver performs its actions on the wallet's store, channels and
//! connection: the request, the offer checked, the attempt stored, the bigger channel opened
//! and `liquidity_accept` sent, its round 0, the signing record and the pending purchase stored
//! before `leaf_partials`, and the advanced leaf stored once `leaf_signed` checks.
//!
//! One purchase per channel at a time ([`Flight`]); while one is under way the live channel
//! takes no payment. Once the partial signatures left, the purchase survives a dropped
//! connection and a restart (the stored [`PendingAdvance`]): the wallet asks again for the same
//! amount, and stays frozen until the LSP signs.

use bitcoin::Amount;
use futures::channel::oneshot;
use shared::channel::{Channel, ChannelEvent, Side};
use shared::leaf::flow::{
    AdvanceAction, AdvanceEvent, ClientAdvance, ClientChange, NewChannel, OfferContext, Sent,
};
use shared::leaf::{LeafSigned, LiquidityOffer};
use shared::pay::policy::channel_seed;
use shared::pay::{leaf_state_channel_params, liquidity_price, ChannelId};

use super::{client_open, Open, PayClient};
use crate::pay::liquidity::{self, Expected};
use crate::pay::store::{Attempt, LeafChannel, LeafRecord, Opening, PayStore, PendingAdvance};
use crate::pay::{LiquidityBought, LiquidityQuote, LiquidityStep, PayError, PayEvent, PayLeaf};
use crate::session::{ChainSource, Connect};

type BuyReply = oneshot::Sender<Result<LiquidityBought, PayError>>;

/// One purchase under way on a channel: the machine, and what the wallet adds to it.
pub(super) struct Flight {
    flow: ClientAdvance,
    reply: Option<BuyReply>,
    /// The channel the purchase opens, built on this connection.
    new: Option<Open>,
    /// Where that channel's changes start in its log (as stored with the purchase).
    log_from: u64,
    /// When a purchase whose signatures left, refused by the LSP, is asked for again
    /// (`unix_millis`).
    ask_at: Option<u64>,
}

/// Why the driver could not perform an action of a purchase.
enum Stop {
    /// The store failed (the client stops on it).
    Store(PayError),
    /// The new channel cannot be opened.
    Refused(String),
}

impl From<crate::session::StorageError> for Stop {
    fn from(e: crate::session::StorageError) -> Self {
        Stop::Store(e.into())
    }
}

impl Flight {
    pub(super) fn step(&self) -> LiquidityStep {
        self.flow.step()
    }

    /// The channel this purchase opens, if it is `key`.
    pub(super) fn new_channel(&mut self, key: LeafChannel) -> Option<&mut Open> {
        self.new.as_mut().filter(|o| o.key == key)
    }
}

impl<C: Connect, S: PayStore, H: ChainSource> PayClient<C, S, H> {
    /// At start: every stored advance whose partial signatures left is under way again.
    pub(super) fn resume_advances(&mut self) {
        for (id, pending) in self.stored.advances.clone() {
            if !self.leaves.contains_key(&id) || self.live(id).leaf >= pending.leaf {
                continue;
            }
            let sent = Sent {
                leaf: pending.leaf,
                amount: pending.amount,
                price: pending.price,
                opening: pending.opening.spec.clone(),
            };
            self.flights.insert(
                id,
                Flight {
                    flow: ClientAdvance::resume(id, sent),
                    reply: None,
                    new: None,
                    log_from: pending.opening.log_from,
                    ask_at: None,
                },
            );
        }
    }

    /// The connection dropped: a purchase whose partial signatures did not leave is forgotten;
    /// one whose did waits for the next connection to ask again.
    pub(super) fn advances_lost(&mut self) {
        let ids: Vec<ChannelId> = self.flights.keys().copied().collect();
        for id in ids {
            let Some(f) = self.flights.get_mut(&id) else {
                continue;
            };
            f.new = None;
            if f.flow.handle_disconnected().is_err() {
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
            .filter(|f| f.flow.sent().is_some())
            .map(|f| f.flow.amount())
    }

    /// After the LSP re-opened the live channel (so it is not past the state being signed):
    /// asks again for a stored advance's amount.
    pub(super) async fn ask_again(&mut self, id: ChannelId) -> Result<(), PayError> {
        let Some(f) = self.flights.get_mut(&id) else {
            return Ok(());
        };
        f.flow.handle_connected();
        self.drive(id).await.map(drop)
    }

    /// The LSP refused the purchase on `id` (its refusal says so in `about`): a purchase whose
    /// partial signatures did not leave is given up (nothing was bought).
    ///
    /// One whose signatures left cannot end (the LSP may hold the new state): what this
    /// connection built for it is dropped, as on a dropped connection, and it is asked for
    /// again after `reconnect_delay` ([`PayClient::ask_refused_again`]). The LSP then signs it
    /// or offers it again.
    pub(super) fn advance_refused(&mut self, id: ChannelId, message: &str) {
        let Some(f) = self.flights.get_mut(&id) else {
            return;
        };
        if f.flow.ends_on_refusal() {
            self.give_up(id, format!("the provider refused: {message}"));
            return;
        }
        f.new = None;
        f.flow.handle_failed();
        f.ask_at =
            Some(crate::platform::unix_millis() + self.config.reconnect_delay.as_millis() as u64);
    }

    /// Asks again for every signed purchase the LSP refused whose wait is over.
    pub(super) async fn ask_refused_again(&mut self) -> Result<(), PayError> {
        let now = crate::platform::unix_millis();
        let due: Vec<ChannelId> = self
            .flights
            .iter_mut()
            .filter(|(_, f)| f.ask_at.is_some_and(|t| now >= t))
            .map(|(id, f)| {
                f.ask_at = None;
                *id
            })
            .collect();
        for id in due {
            if self.open.get(&id).is_some_and(|o| o.ready) {
                self.ask_again(id).await?;
            }
        }
        Ok(())
    }

    /// Ends a purchase that did not change anything, telling the UI why. A purchase whose
    /// partial signatures left is never given up (the LSP may hold the new state): it stays,
    /// and the reason is only reported.
    fn give_up(&mut self, id: ChannelId, reason: String) {
        if self
            .flights
            .get(&id)
            .is_some_and(|f| f.flow.sent().is_some())
        {
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
                flow: ClientAdvance::ask(id, amount, quote.price),
                reply: Some(reply),
                new: None,
                log_from: 0,
                ask_at: None,
            },
        );
        if let Err(e) = self.drive(id).await {
            self.give_up(id, e.to_string());
        }
    }

    /// The LSP's offer, checked by the machine against what was asked and the live channel.
    pub(super) async fn on_offer(&mut self, offer: LiquidityOffer) -> Result<(), PayError> {
        let id = offer.channel;
        let (Some(leaf), Some(terms)) = (self.leaves.get(&id).cloned(), self.terms.as_ref()) else {
            return Ok(());
        };
        let Some(amount) = self
            .flights
            .get(&id)
            .filter(|f| f.flow.new_state().is_none())
            .map(|f| f.flow.amount())
        else {
            // None asked, or one accepted on this connection already.
            return Ok(());
        };
        let price = liquidity_price(&terms.fees, amount);
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
        let quiescent = self.quiescent(id);
        let record = self.leaf_record(&leaf);
        let context = OfferContext {
            path: &leaf.path,
            states: &record.states,
            expected: Expected {
                live_leaf: live.leaf,
                amount,
                price,
                live: live_spec,
                quiescent,
            },
            open: client_open(&leaf, offer.leaf, 0),
            stored_peer: self
                .stored
                .channels
                .get(&LeafChannel {
                    channel: id,
                    leaf: offer.leaf,
                })
                .and_then(|(o, _)| o.clone()),
        };
        let Some(f) = self.flights.get_mut(&id) else {
            return Ok(());
        };
        match f.flow.handle_offer(&offer, context) {
            Ok(()) => match self.drive(id).await? {
                Some(key) => self.perform_on(key).await,
                None => Ok(()),
            },
            Err(e) => {
                self.give_up(id, e.to_string());
                Ok(())
            }
        }
    }

    /// An event of the channel a purchase opens: its round 0 done starts the signing.
    pub(super) async fn on_new_channel_event(
        &mut self,
        key: LeafChannel,
        event: ChannelEvent,
    ) -> Result<(), PayError> {
        let ChannelEvent::Committed { number: 0 } = event else {
            return Ok(());
        };
        let id = key.channel;
        let Some((leaf, record, f)) = self.in_flight(id) else {
            return Ok(());
        };
        let signed =
            f.flow
                .handle_committed(&record.states, &leaf.factory_secret, &mut rand::rngs::OsRng);
        // What was queued before a failure (the purchase stored) is still performed.
        self.drive(id).await?;
        if let Err(e) = signed {
            self.give_up(id, e.to_string());
        }
        Ok(())
    }

    /// The leaf of channel `id`, its stored record and the purchase in flight on it, if any.
    fn in_flight(&mut self, id: ChannelId) -> Option<(PayLeaf, LeafRecord, &mut Flight)> {
        let leaf = self.leaves.get(&id).cloned()?;
        let record = self.leaf_record(&leaf);
        let flight = self.flights.get_mut(&id)?;
        Some((leaf, record, flight))
    }

    /// The LSP's signatures: checked by the machine, then stored ([`Self::drive`]).
    pub(super) async fn on_leaf_signed(&mut self, signed: LeafSigned) -> Result<(), PayError> {
        let id = signed.channel;
        let Some((leaf, record, f)) = self.in_flight(id) else {
            return Ok(());
        };
        if let Err(e) = f.flow.handle_signed(&signed, &leaf.path, &record.states) {
            self.emit(PayEvent::LspError(format!("channel {id}: {e}")));
            return Ok(());
        }
        self.drive(id).await.map(drop)
    }

    /// Performs the purchase's actions in order: each store finishes before anything after it
    /// leaves. An action that cannot be performed drops what was queued after it
    /// (`ClientAdvance::handle_failed`) and gives the purchase up if its signatures did not
    /// leave. Returns the new channel if one was opened: the caller runs its round 0.
    async fn drive(&mut self, id: ChannelId) -> Result<Option<LeafChannel>, PayError> {
        let Some(leaf) = self.leaves.get(&id).cloned() else {
            return Ok(None);
        };
        let mut opened = None;
        while let Some(action) = self.flights.get_mut(&id).and_then(|f| f.flow.poll_action()) {
            let failed = match self.perform_advance(&leaf, action, &mut opened).await {
                Ok(()) => continue,
                Err(Stop::Store(e)) => (e.to_string(), Some(e)),
                Err(Stop::Refused(reason)) => (reason, None),
            };
            if let Some(f) = self.flights.get_mut(&id) {
                f.flow.handle_failed();
                f.new = None;
            }
            self.give_up(id, failed.0);
            return failed.1.map_or(Ok(None), Err);
        }
        Ok(opened)
    }

    /// One action of the purchase on `leaf`'s channel.
    async fn perform_advance(
        &mut self,
        leaf: &PayLeaf,
        action: AdvanceAction<ClientChange>,
        opened: &mut Option<LeafChannel>,
    ) -> Result<(), Stop> {
        let id = leaf.channel;
        match action {
            AdvanceAction::Send(msg) => self.send(msg).await,
            AdvanceAction::Emit(AdvanceEvent::Step(step)) => {
                self.emit(PayEvent::Liquidity { channel: id, step })
            }
            AdvanceAction::Emit(AdvanceEvent::Done {
                leaf: epoch,
                amount,
                price,
            }) => {
                let bought = LiquidityBought {
                    channel: id,
                    leaf: epoch,
                    amount,
                    price,
                };
                self.switch_to_new(leaf, bought).await;
            }
            AdvanceAction::Persist(ClientChange::Attempt {
                leaf: epoch,
                amount,
            }) => {
                let key = LeafChannel {
                    channel: id,
                    leaf: epoch,
                };
                let log_from = self.log_len(key);
                let mut record = self.leaf_record(leaf);
                record
                    .attempts
                    .entry(epoch)
                    .or_default()
                    .push(Attempt { amount, log_from });
                self.save_leaf_record(id, record).await?;
            }
            AdvanceAction::OpenChannel(new) => {
                let open = self.build_new_channel(leaf, &new).map_err(Stop::Refused)?;
                let key = open.key;
                if let Some(f) = self.flights.get_mut(&id) {
                    f.log_from = open.next_seq;
                    f.new = Some(open);
                }
                if !self
                    .stored
                    .channels
                    .get(&key)
                    .is_some_and(|(o, _)| o.is_some())
                {
                    self.store.save_lsp_open(&new.peer).await?;
                    self.stored.channels.entry(key).or_default().0 = Some(new.peer.clone());
                }
                *opened = Some(key);
            }
            AdvanceAction::Persist(ClientChange::Signing { states, sent }) => {
                let mut record = self.leaf_record(leaf);
                record.states = *states;
                self.save_leaf_record(id, record).await?;
                let log_from = self.flights.get(&id).map_or(0, |f| f.log_from);
                let pending = PendingAdvance {
                    leaf: sent.leaf,
                    amount: sent.amount,
                    price: sent.price,
                    opening: Opening {
                        spec: sent.opening,
                        log_from,
                    },
                };
                self.store.save_advance(id, Some(&pending)).await?;
                self.stored.advances.insert(id, pending);
            }
            AdvanceAction::Persist(ClientChange::Advanced { states, sent }) => {
                self.store_advanced(leaf, *states, sent)
                    .await
                    .map_err(Stop::Store)?;
            }
        }
        Ok(())
    }

    /// Stores channel `id`'s leaf record, tells the watchtower it changed, and keeps it.
    async fn save_leaf_record(
        &mut self,
        id: ChannelId,
        record: LeafRecord,
    ) -> Result<(), crate::session::StorageError> {
        self.store.save_leaf(id, &record).await?;
        self.tower.touch(id);
        self.stored.leaves.insert(id, record);
        Ok(())
    }

    /// How many changes `key`'s channel has in the store: where a new attempt's log starts.
    fn log_len(&self, key: LeafChannel) -> u64 {
        self.stored
            .channels
            .get(&key)
            .map_or(0, |(_, changes)| changes.len() as u64)
    }

    /// The channel on the new leaf state's output, opened with the live channel's balances
    /// less the price plus the liquidity. An earlier attempt's log of that channel stays, and
    /// the double-sign records of earlier attempts for the same amount are replayed.
    fn build_new_channel(&self, leaf: &PayLeaf, new: &NewChannel) -> Result<Open, String> {
        let flight = self.flights.get(&leaf.channel).ok_or("no purchase")?;
        let state = flight.flow.new_state().ok_or("no offer accepted")?;
        let key = LeafChannel {
            channel: leaf.channel,
            leaf: new.leaf,
        };
        let changes = self
            .stored
            .channels
            .get(&key)
            .map(|(_, c)| c.clone())
            .unwrap_or_default();
        let params = leaf_state_channel_params(&leaf.path, state, &self.policy)
            .map_err(|e| e.to_string())?;
        let record = self.leaf_record(leaf);
        let log_from = changes.len() as u64;
        let (earlier, attempt) =
            liquidity::attempts_at(&record, new.leaf, log_from, flight.flow.amount());
        let seed = channel_seed(&leaf.factory_secret, leaf.channel, new.leaf);
        let channel = Channel::restore(
            Side::Client,
            params,
            leaf.factory_secret,
            &seed,
            new.peer.peer_info(),
            new.opening.clone(),
            liquidity::replayed(&changes, &earlier, &attempt),
        )
        .map_err(|e| format!("the new channel: {e}"))?;
        Ok(Open {
            key,
            channel,
            next_seq: log_from,
            ready: true,
        })
    }

    /// The leaf advanced: stored, with the purchase in the history.
    async fn store_advanced(
        &mut self,
        leaf: &PayLeaf,
        states: shared::leaf::LeafStates,
        sent: Sent,
    ) -> Result<(), PayError> {
        let id = leaf.channel;
        let opening = Opening {
            log_from: self.flights.get(&id).map_or(0, |f| f.log_from),
            spec: sent.opening.clone(),
        };
        let mut record = self.leaf_record(leaf);
        record.states = states;
        record.openings.insert(sent.leaf, opening);
        self.save_leaf_record(id, record).await?;
        // In the history, so it adds up to the balance: the price left it.
        let now = self.now().unix_time;
        let purchase = crate::pay::PaymentRecord {
            hash: bitcoin::hashes::Hash::hash(format!("liquidity/{id}/{}", sent.leaf.0).as_bytes()),
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
            swap: None,
        };
        self.store.save_payment(&purchase).await?;
        self.stored.upsert_payment(&purchase);
        self.store.save_advance(id, None).await?;
        self.stored.advances.remove(&id);
        Ok(())
    }

    /// The purchase is done: the new channel is the live one, opened on the connection.
    async fn switch_to_new(&mut self, leaf: &PayLeaf, bought: LiquidityBought) {
        let id = leaf.channel;
        let Some(flight) = self.flights.remove(&id) else {
            return;
        };
        match flight.new {
            Some(mut new) => {
                new.ready = false;
                self.open.insert(id, new);
            }
            None => {
                self.open.remove(&id);
            }
        }
        let open = self.open_msg(leaf);
        self.send(shared::wire::WireMsg::ChannelOpen(Box::new(open)))
            .await;
        self.emit(PayEvent::LiquidityBought(bought.clone()));
        self.emit(PayEvent::Updated);
        if let Some(reply) = flight.reply {
            let _ = reply.send(Ok(bought));
        }
    }
}
