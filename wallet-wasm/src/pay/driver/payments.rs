//! Paying and being paid over the live channel: answering the LSP's HTLCs when a round
//! commits, settling or failing the wallet's own payments, invoices, quotes and payments.

use bitcoin::absolute::Height;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::Amount;
use futures::channel::oneshot;
use rand::RngCore;
use shared::channel::Side;
use shared::pay::policy::route_fee_for;
use shared::pay::{
    ChannelClosed, ChannelId, InvoiceRequest, JoinFee, ParsedInvoice, PayOutcome, PayRequest,
    PayResult, RouteAnswer, RouteQuery,
};
use shared::wire::WireMsg;

use super::{PayClient, PayReply, RouteQueryWait, ROUTE_ANSWER_SECS};
use crate::pay::store::{Direction, InvoiceRecord, PayStore, PaymentRecord, PaymentStatus};
use crate::pay::{PayError, PayEvent, PayQuote};
use crate::platform::unix_now;
use crate::session::{ChainSource, Connect};

impl<C: Connect, S: PayStore, H: ChainSource> PayClient<C, S, H> {
    /// What channel `id` owes for its join: its leaf's quoted fee, paid by the received payment
    /// on it that carried a join fee, if one did.
    pub(super) fn join_fee(&self, id: ChannelId) -> JoinFee {
        let quoted = self.leaves.get(&id).map_or(Amount::ZERO, |l| l.join_fee);
        let paid = self.stored.payments.iter().find(|p| {
            p.direction == Direction::Received
                && p.join_fee > Amount::ZERO
                && p.channel.is_some_and(|(c, _)| c == id)
        });
        match paid {
            Some(p) => JoinFee::paid(quoted, p.hash),
            None => JoinFee::owed(quoted),
        }
    }

    /// A round completed: answer the LSP's new HTLCs (pay an invoice of ours in full, or short
    /// by exactly the channel's unpaid join fee; else fail), and notice our HTLCs the LSP
    /// failed back.
    pub(super) async fn on_committed(&mut self, id: ChannelId) -> Result<(), PayError> {
        let now = self.now();
        let mut join_fee = self.join_fee(id);
        let mut refused = Vec::new();
        let Some(o) = self.open.get_mut(&id) else {
            return Ok(());
        };
        let spec = o.channel.spec().clone();
        let pending_spec = o.channel.pending_spec().map(|s| s.htlcs);
        // Without a pending spec nothing can be judged gone; HTLCs still count as unsettled.
        let judged = pending_spec.is_ok();
        let unsettled = pending_spec.unwrap_or_default();
        let mut received = Vec::new();
        for h in spec.htlcs.iter().filter(|h| h.offerer == Side::Lsp) {
            if !unsettled
                .iter()
                .any(|u| u.offerer == Side::Lsp && u.id == h.id)
            {
                continue;
            }
            let invoice = self.stored.invoices.get(&h.hash).cloned();
            let payable = invoice
                .filter(|i| i.paid_at.is_none() && now.unix_time < i.expires_at)
                .map(|i| {
                    let taken = join_fee.check(i.amount, h.hash, h.amount);
                    (i, taken)
                });
            match payable {
                Some((mut inv, Ok(taken))) => {
                    o.channel
                        .fulfill_htlc(now, h.id, inv.preimage)
                        .map_err(|e| PayError::Failed(e.to_string()))?;
                    if taken > Amount::ZERO {
                        // `check` passed it, so no other payment paid the fee.
                        let _ = join_fee.pay(h.hash);
                    }
                    inv.paid_at = Some(now.unix_time);
                    received.push((inv, h.amount, taken, h.id));
                }
                Some((_, Err(e))) => {
                    refused.push(format!("channel {id}: refused an HTLC: {e}"));
                    let _ = o.channel.fail_htlc(now, h.id);
                }
                None => {
                    let _ = o.channel.fail_htlc(now, h.id);
                }
            }
        }
        // Our HTLCs gone from the commitment without a preimage: failed back. Those of a
        // payment started before a restart count too (the provider's word on them went to a
        // connection that is gone).
        let stored_pending = self
            .stored
            .payments
            .iter()
            .filter(|p| p.direction == Direction::Sent && p.status == PaymentStatus::Pending)
            .filter_map(|p| p.channel);
        let gone: std::collections::BTreeSet<u64> = self
            .pending
            .keys()
            .copied()
            .chain(stored_pending)
            .filter(|(c, htlc)| {
                judged
                    && *c == id
                    && !spec
                        .htlcs
                        .iter()
                        .any(|h| h.offerer == Side::Client && h.id == *htlc)
                    && !unsettled
                        .iter()
                        .any(|h| h.offerer == Side::Client && h.id == *htlc)
            })
            .map(|(_, h)| h)
            .collect();
        // Gone with the provider's preimage is settled, not failed (a restart between storing
        // its fulfill and settling the payment).
        let (settled, failed): (Vec<_>, Vec<_>) = gone
            .into_iter()
            .map(|htlc| (htlc, o.channel.preimage_received(htlc)))
            .partition(|(_, preimage)| preimage.is_some());
        for why in refused {
            self.emit(PayEvent::LspError(why));
        }
        for (inv, amount, join_fee, htlc) in received {
            self.store.save_invoice(&inv).await?;
            self.stored.invoices.insert(inv.hash, inv.clone());
            let record = PaymentRecord {
                hash: inv.hash,
                direction: Direction::Received,
                // What the payer sent: the HTLC and the join fee taken from it.
                amount: amount + join_fee,
                fee: Amount::ZERO,
                network_fee: None,
                join_fee,
                description: inv.description.clone(),
                status: PaymentStatus::Complete,
                created_at: inv.created_at,
                done_at: Some(now.unix_time),
                channel: Some((id, htlc)),
                preimage: Some(inv.preimage),
                swap: None,
            };
            self.record(&record).await?;
            self.emit(PayEvent::Received(record));
        }
        for (htlc, preimage) in settled {
            if let Some(preimage) = preimage {
                self.settle_sent(id, htlc, preimage, None).await?;
            }
        }
        for (htlc, _) in failed {
            let reason = self.failed_back_reason(id, htlc);
            self.fail_sent(id, htlc, reason).await?;
        }
        Ok(())
    }

    /// Why the provider failed our HTLC `htlc` back, as far as this wallet can tell.
    fn failed_back_reason(&self, id: ChannelId, htlc: u64) -> String {
        let swap = self.sent_by_htlc(id, htlc).and_then(|p| p.swap);
        match swap.and_then(|s| s.funded) {
            Some(f) => format!(
                "the payment on chain was not claimed before block {} (the wallet was away): \
                 the provider took it back, and your balance is whole",
                f.script.refund_height
            ),
            None => "the provider failed the payment back".into(),
        }
    }

    pub(super) async fn record(&mut self, record: &PaymentRecord) -> Result<(), PayError> {
        self.store.save_payment(record).await?;
        self.stored.upsert_payment(record);
        Ok(())
    }

    pub(super) fn sent_record(&self, hash: &sha256::Hash) -> Option<PaymentRecord> {
        self.stored
            .payments
            .iter()
            .find(|p| p.hash == *hash && p.direction == Direction::Sent)
            .cloned()
    }

    /// The newest payment sent with HTLC `htlc` on `id` (HTLC ids start again on a new leaf
    /// state's channel, so older payments may share it).
    pub(super) fn sent_by_htlc(&self, id: ChannelId, htlc: u64) -> Option<PaymentRecord> {
        self.stored
            .payments
            .iter()
            .rev()
            .find(|p| p.direction == Direction::Sent && p.channel == Some((id, htlc)))
            .cloned()
    }

    pub(super) async fn settle_sent(
        &mut self,
        id: ChannelId,
        htlc: u64,
        preimage: [u8; 32],
        network_fee: Option<Amount>,
    ) -> Result<(), PayError> {
        let Some(mut record) = self.sent_by_htlc(id, htlc) else {
            return Ok(());
        };
        if record.status != PaymentStatus::Complete {
            record.status = PaymentStatus::Complete;
            record.preimage = Some(preimage);
            record.done_at = Some(unix_now());
            record.network_fee = network_fee;
            self.record(&record).await?;
            self.emit(PayEvent::Sent(record.clone()));
        } else if network_fee.is_some() && record.network_fee != network_fee {
            // Settled by the channel first; the provider's word on the route's share came after.
            record.network_fee = network_fee;
            self.record(&record).await?;
            self.emit(PayEvent::Updated);
        }
        if let Some(reply) = self.pending.remove(&(id, htlc)) {
            let _ = reply.send(Ok(record));
        }
        Ok(())
    }

    pub(super) async fn fail_sent(
        &mut self,
        id: ChannelId,
        htlc: u64,
        reason: String,
    ) -> Result<(), PayError> {
        let Some(mut record) = self.sent_by_htlc(id, htlc) else {
            return Ok(());
        };
        if record.status == PaymentStatus::Pending {
            record.status = PaymentStatus::Failed(reason.clone());
            record.done_at = Some(unix_now());
            self.record(&record).await?;
            self.emit(PayEvent::Failed(record));
        }
        if let Some(reply) = self.pending.remove(&(id, htlc)) {
            let _ = reply.send(Err(PayError::Failed(reason)));
        }
        Ok(())
    }

    /// The provider says a channel takes no more payments: nothing is paid or received on it
    /// again. A payment waiting on it whose HTLC the provider never held fails with the
    /// reason; one the provider may hold stays pending (its payee may yet reveal the preimage,
    /// on chain if need be, and the provider then says "paid"), and the caller is told it ends
    /// on chain.
    pub(super) async fn on_closed(&mut self, closed: ChannelClosed) -> Result<(), PayError> {
        let id = closed.channel;
        if !self.leaves.contains_key(&id) {
            return Ok(());
        }
        let reason = format!("this channel is {}: {}", closed.state, closed.reason);
        if closed.state == "moved" {
            self.moved.insert(id);
        }
        if let Some(o) = self.open.get_mut(&id) {
            o.ready = false;
        }
        let waiting: Vec<u64> = self
            .pending
            .keys()
            .filter(|(c, _)| *c == id)
            .map(|(_, h)| *h)
            .collect();
        for htlc in waiting {
            if self.provider_may_hold(id, htlc) {
                if let Some(reply) = self.pending.remove(&(id, htlc)) {
                    let _ = reply.send(Err(PayError::EndsOnChain(reason.clone())));
                }
            } else {
                self.failed_on_close.insert((id, htlc));
                self.fail_sent(id, htlc, reason.clone()).await?;
            }
        }
        if self.closed.insert(id, reason.clone()).as_ref() != Some(&reason) {
            self.emit(PayEvent::ChannelClosed {
                channel: id,
                reason,
            });
            self.emit(PayEvent::Updated);
        }
        Ok(())
    }

    /// Whether the provider may hold a commitment with this wallet's HTLC `htlc` on `id`: it
    /// is committed, in the round under way, or in the provider's commitment this wallet
    /// signed in a round that never completed (`Channel::peer_may_hold`). An HTLC only queued
    /// for a later round never left the wallet.
    fn provider_may_hold(&self, id: ChannelId, htlc: u64) -> bool {
        self.open
            .get(&id)
            .is_none_or(|o| o.channel.peer_may_hold(Side::Client, htlc))
    }

    pub(super) async fn on_pay_result(&mut self, result: PayResult) -> Result<(), PayError> {
        match result.outcome {
            PayOutcome::Paid {
                preimage,
                network_fee,
                ..
            } => {
                if sha256::Hash::hash(&preimage) == result.hash {
                    self.settle_sent(result.channel, result.htlc, preimage, network_fee)
                        .await?;
                }
            }
            PayOutcome::Failed(reason) => {
                self.fail_sent(result.channel, result.htlc, reason.describe())
                    .await?
            }
        }
        Ok(())
    }

    /// Makes and stores an invoice; its route hint names `on`, else the channel that can
    /// receive the most.
    pub(super) async fn make_invoice(
        &mut self,
        amount: Amount,
        description: String,
        on: Option<ChannelId>,
    ) -> Result<InvoiceRecord, PayError> {
        let (Some(lsp), Some(terms)) = (self.lsp, self.terms.clone()) else {
            return Err(PayError::NotConnected);
        };
        let snapshot = self.snapshot();
        let channel = snapshot
            .channels
            .iter()
            .filter(|c| c.closed.is_none())
            .filter(|c| on.is_none_or(|on| on == c.channel))
            .max_by_key(|c| c.inbound)
            .map(|c| c.channel)
            .ok_or(PayError::NoChannel)?;
        let mut preimage = [0u8; 32];
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut preimage);
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let hash = sha256::Hash::hash(&preimage);
        let now = unix_now();
        let request = InvoiceRequest {
            amount,
            description: description.clone(),
            expiry_secs: self.config.invoice_expiry_secs,
            hash,
            secret,
            channel,
            lsp,
            fees: terms.fees.clone(),
            now_unix: now,
        };
        let invoice = request.sign(self.config.network, &self.config.identity, &self.policy)?;
        let record = InvoiceRecord {
            hash,
            preimage,
            invoice,
            amount,
            description,
            created_at: now,
            expires_at: now + self.config.invoice_expiry_secs,
            paid_at: None,
        };
        self.store.save_invoice(&record).await?;
        self.stored.invoices.insert(hash, record.clone());
        Ok(record)
    }

    /// The channel that can pay `need`, and the best balance seen.
    pub(super) fn payer_channel(&self, need: Amount) -> (Option<ChannelId>, Amount) {
        let mut best = Amount::ZERO;
        for (id, o) in &self.open {
            let have = o
                .channel
                .pending_spec()
                .map(|s| s.client_balance)
                .unwrap_or(Amount::ZERO);
            if o.ready && have >= need && !self.flights.contains_key(id) {
                return (Some(*id), have);
            }
            best = best.max(have);
        }
        (None, best)
    }

    /// What paying `text` costs, with the invoice's payment hash.
    fn quote(&self, text: &str) -> Result<(PayQuote, sha256::Hash), PayError> {
        let terms = self.terms.as_ref().ok_or(PayError::NotConnected)?;
        let invoice = ParsedInvoice::parse(text, self.config.network, unix_now())?;
        self.not_paid_yet(&invoice)?;
        let fee = route_fee_for(
            &terms.fees,
            &invoice,
            &self.config.identity.x_only_public_key().0,
        );
        let (channel, _) = self.payer_channel(invoice.amount + fee);
        let quote = PayQuote {
            amount: invoice.amount,
            fee,
            description: invoice.description,
            expires_at: invoice.expires_at,
            affordable: channel.is_some(),
            warning: None,
            outside: false,
        };
        Ok((quote, invoice.hash))
    }

    /// Quotes `text` and asks the provider whether its payee could receive it now; the reply
    /// waits for the answer (at most [`ROUTE_ANSWER_SECS`]).
    pub(super) async fn quote_and_ask(
        &mut self,
        text: &str,
        reply: oneshot::Sender<Result<PayQuote, PayError>>,
    ) {
        let (quote, hash) = match self.quote(text) {
            Ok(q) => q,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        if self.link.is_none() {
            let _ = reply.send(Ok(quote));
            return;
        }
        self.send(WireMsg::RouteQuery(RouteQuery {
            invoice: text.to_owned(),
        }))
        .await;
        self.route_queries.push(RouteQueryWait {
            hash,
            until: unix_now() + ROUTE_ANSWER_SECS,
            quote,
            reply,
        });
    }

    /// The provider answered a route query: every quote waiting on that invoice gets it.
    pub(super) fn on_route_answer(&mut self, answer: RouteAnswer) {
        let (done, waiting) = std::mem::take(&mut self.route_queries)
            .into_iter()
            .partition(|w| w.hash == answer.hash);
        self.route_queries = waiting;
        for w in done {
            let _ = w.reply.send(Ok(PayQuote {
                warning: answer.warning.clone(),
                outside: answer.outside,
                ..w.quote
            }));
        }
    }

    /// Quotes whose answer did not come in time (or whose connection is gone) go out as they
    /// are.
    pub(super) fn expire_route_queries(&mut self, all: bool) {
        let now = unix_now();
        let (done, waiting) = std::mem::take(&mut self.route_queries)
            .into_iter()
            .partition(|w| all || now >= w.until);
        self.route_queries = waiting;
        for w in done {
            let _ = w.reply.send(Ok(w.quote));
        }
    }

    /// Pays `text` from channel `from`, else from the first channel that can.
    pub(super) async fn pay(
        &mut self,
        text: &str,
        from: Option<ChannelId>,
        reply: PayReply,
    ) -> Result<(), PayError> {
        let prepared = self.prepare_pay(text, from);
        let (invoice, fee, id) = match prepared {
            Ok(p) => p,
            Err(e) => {
                let _ = reply.send(Err(e));
                return Ok(());
            }
        };
        let now = self.now();
        let o = self.open.get_mut(&id).expect("chosen among open channels");
        let htlc = o.channel.next_htlc_id();
        let record = PaymentRecord {
            hash: invoice.hash,
            direction: Direction::Sent,
            amount: invoice.amount,
            fee,
            network_fee: None,
            join_fee: Amount::ZERO,
            description: invoice.description.clone(),
            status: PaymentStatus::Pending,
            created_at: now.unix_time,
            done_at: None,
            channel: Some((id, htlc)),
            preimage: None,
            swap: None,
        };
        let expiry =
            Height::from_consensus(self.policy.payer_expiry(self.height)).unwrap_or(Height::ZERO);
        if let Err(e) = o
            .channel
            .add_htlc(now, invoice.amount + fee, invoice.hash, expiry)
        {
            let _ = reply.send(Err(PayError::Failed(e.to_string())));
            return Ok(());
        }
        self.record(&record).await?;
        self.send(WireMsg::PayRequest(PayRequest {
            channel: id,
            htlc,
            invoice: invoice.text.clone(),
        }))
        .await;
        self.pending.insert((id, htlc), reply);
        self.perform(id).await
    }

    pub(super) fn prepare_pay(
        &self,
        text: &str,
        from: Option<ChannelId>,
    ) -> Result<(ParsedInvoice, Amount, ChannelId), PayError> {
        let terms = self.terms.as_ref().ok_or(PayError::NotConnected)?;
        if self.link.is_none() {
            return Err(PayError::NotConnected);
        }
        let invoice = ParsedInvoice::parse(text, self.config.network, unix_now())?;
        self.not_paid_yet(&invoice)?;
        let fee = route_fee_for(
            &terms.fees,
            &invoice,
            &self.config.identity.x_only_public_key().0,
        );
        let need = invoice.amount + fee;
        if let Some(from) = from {
            let (have, ready) = self.open.get(&from).map_or((Amount::ZERO, false), |o| {
                let have = o.channel.pending_spec().map(|s| s.client_balance);
                (have.unwrap_or(Amount::ZERO), o.ready)
            });
            if let Some(why) = self.closed.get(&from) {
                return Err(PayError::Closed(why.clone()));
            }
            if !ready || self.flights.contains_key(&from) {
                return Err(PayError::NotConnected);
            }
            if have < need {
                return Err(PayError::InsufficientBalance {
                    need: need.to_sat(),
                    have: have.to_sat(),
                });
            }
            return Ok((invoice, fee, from));
        }
        match self.payer_channel(need) {
            (Some(id), _) => Ok((invoice, fee, id)),
            (None, _) if self.open.is_empty() => Err(PayError::NoChannel),
            (None, _) if self.open.keys().all(|id| self.closed.contains_key(id)) => {
                let why = self.closed.values().next().cloned().unwrap_or_default();
                Err(PayError::Closed(why))
            }
            (None, have) => Err(PayError::InsufficientBalance {
                need: need.to_sat(),
                have: have.to_sat(),
            }),
        }
    }

    /// Refuses an invoice this wallet already paid, or is paying.
    fn not_paid_yet(&self, invoice: &ParsedInvoice) -> Result<(), PayError> {
        match self.sent_record(&invoice.hash) {
            Some(r) if !matches!(r.status, PaymentStatus::Failed(_)) => Err(PayError::AlreadyPaid),
            _ => Ok(()),
        }
    }
}
