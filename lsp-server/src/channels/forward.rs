//! Routing payments payer → LSP → payee.
//!
//! 1. The payer sends `pay_request { channel, htlc, invoice }`, then adds HTLC `htlc`
//!    (invoice amount + routing fee, the invoice's hash) in a round.
//! 2. Once that HTLC is committed, the LSP checks it against the invoice (hash, amount + fee,
//!    expiry, not expired) and offers the payee an HTLC of the invoice amount on one of the
//!    payee's channels that can take it, expiring `expiry_delta` blocks earlier. A payee that is
//!    offline is waited for (`--offline-wait-secs`), then the payment fails back; so is one whose
//!    channel is in a round (offered when the round commits, or failed back if the payee never
//!    answers it and is disconnected). An HTLC already offered is never failed back before the
//!    payee's channel drops it: the payee could still claim it.
//! 3. The payee fulfills; the LSP fulfills the payer's HTLC with the same preimage at once and
//!    sends `pay_result`. A payee that fails the HTLC, or any check that fails, fails the payer's
//!    HTLC back with the reason.
//!
//! The faucet (demo networks) is step 2 without a payer: the LSP pays the wallet's own invoice
//! from its side of the wallet's channel.
//!
//! A payee with no channel here is paid through the LSP's Lightning node when it runs one
//! (`outside`); otherwise the payment fails as `unknown_payee`.
//!
//! The join fee: a payee channel that still owes its join fee gets an HTLC short by exactly that
//! fee when the payment leaves it at least `MIN_RECEIVED` (`shared::pay::join_fee`; the faucet
//! too). The fee is reserved on the channel while the HTLC is offered, stored with the payment
//! (so it is never taken twice, across restarts), earned when the payment settles, and owed
//! again if it fails.

use std::collections::{BTreeMap, HashMap};

use bitcoin::absolute::Height;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{Amount, Network};
use shared::channel::{ChannelError, Side};
use shared::pay::policy::route_fee_for;
use shared::pay::{
    ChannelId, FaucetRequest, ParsedInvoice, PayFailure, PayOutcome, PayRequest, PayResult,
    RouteAnswer, RouteQuery,
};
use shared::swap::SwapOutRequest;
use shared::wire::{ErrorAbout, ErrorCode, WireMsg};

use super::link::Link;
use super::Router;
use crate::factory::ConnId;

/// A payment the LSP is delivering.
#[derive(Debug, Clone)]
pub(super) struct Forward {
    /// Its row in `payments`.
    pub(super) row: i64,
    pub(super) hash: sha256::Hash,
    /// The invoice's amount.
    pub(super) amount: Amount,
    /// The routing fee (for an outside payment, also the most its route may take).
    pub(super) fee: Amount,
    /// The payee's join fee, taken from the HTLC offered to it (zero until it is offered, and
    /// for a channel that paid or a payment too small).
    join_fee: Amount,
    /// The payer's HTLC (none for the faucet) and its expiry.
    pub(super) payer: Option<(ChannelId, u64, XOnlyPublicKey)>,
    pub(super) payee: XOnlyPublicKey,
    /// The payee's channel the invoice's route hint names (offered there first).
    hint: Option<ChannelId>,
    /// The payer's HTLC's expiry (none for the faucet).
    pub(super) expiry_in: Option<u32>,
    expiry_out: u32,
    /// The invoice's text (what an outside payment sends).
    pub(super) invoice: String,
    /// For a payment from the Lightning Network (`inbound`): what the LSP's node holds (msat),
    /// claimed with the payee's preimage.
    pub(super) held: Option<u64>,
    pub(super) state: ForwardState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ForwardState {
    /// Waiting for the payee to connect, until this Unix time.
    Waiting { until: u64 },
    /// Offered to the payee as HTLC `htlc` on `channel`.
    Offered {
        channel: ChannelId,
        htlc: u64,
        committed: bool,
    },
    /// Handed to the Lightning node for a payee outside the LSP (`outside`).
    Outside,
}

/// Where a payment comes from, as [`Router::open_forward`] stores it.
struct Source {
    /// `forward`, `faucet` or `inbound`.
    kind: &'static str,
    /// The routing fee.
    fee: Amount,
    /// The payer's HTLC (none for the faucet and the node).
    payer: Option<(ChannelId, u64, XOnlyPublicKey)>,
    /// The payer's HTLC's expiry.
    expiry_in: Option<u32>,
    /// What the LSP's node holds (msat) and until which height (`inbound`).
    held: Option<(u64, u32)>,
}

/// Payments in flight and the route requests not yet matched to an HTLC.
#[derive(Debug, Default)]
pub(super) struct Forwards {
    pub(super) by_row: HashMap<i64, Forward>,
    /// Payer HTLC → its payment (or `None`: refused, waiting for the fail to commit).
    incoming: HashMap<(ChannelId, u64), Option<i64>>,
    /// Payee HTLC → its payment.
    outgoing: HashMap<(ChannelId, u64), i64>,
    /// Route requests by payer HTLC, checked when the HTLC commits. At most
    /// [`MAX_REQUESTS_PER_CHANNEL`] per channel; dropped when their connection closes or after
    /// [`Forwards::expire_requests`]'s age, so no wallet can crowd out another's.
    requests: BTreeMap<(ChannelId, u64), Request>,
}

/// A route request waiting for its HTLC to commit.
#[derive(Debug)]
struct Request {
    conn: ConnId,
    /// Unix time it came.
    at: u64,
    what: Requested,
}

/// Where a request asks its HTLC to go.
#[derive(Debug)]
enum Requested {
    /// To the payee of this invoice (or why the invoice cannot be paid).
    Invoice(Result<ParsedInvoice, PayFailure>),
    /// To an on-chain output (`swap`).
    Swap(SwapOutRequest),
}

/// Route requests one channel may have waiting: twice the HTLCs it can have pending.
pub(super) const MAX_REQUESTS_PER_CHANNEL: usize = 2 * shared::channel::MAX_HTLCS;

impl Forwards {
    pub(super) fn overdue(&self, now: u64) -> Vec<i64> {
        self.by_row
            .values()
            .filter(|f| matches!(f.state, ForwardState::Waiting { until } if now >= until))
            .map(|f| f.row)
            .collect()
    }

    /// Drops the route requests of a closed connection: its HTLCs were not committed in a
    /// round on it, and a reconnected wallet asks again.
    pub(super) fn drop_requests_of(&mut self, conn: ConnId) {
        self.requests.retain(|_, r| r.conn != conn);
    }

    /// Drops route requests older than `max_age` seconds at `now`: their HTLC never committed.
    pub(super) fn expire_requests(&mut self, now: u64, max_age: u64) {
        if !self.requests.is_empty() {
            self.requests
                .retain(|_, r| now < r.at.saturating_add(max_age));
        }
    }

    /// The payment of the HTLC the LSP offered as `htlc` on channel `id`, while it is open.
    pub(super) fn outgoing_row(&self, id: ChannelId, htlc: u64) -> Option<i64> {
        self.outgoing.get(&(id, htlc)).copied()
    }

    /// The HTLCs the LSP offered on channel `id` and was not yet told the preimage of, with
    /// their payment hashes.
    pub(super) fn offered_on(&self, id: ChannelId) -> Vec<(u64, sha256::Hash)> {
        self.outgoing
            .iter()
            .filter(|((channel, _), _)| *channel == id)
            .filter_map(|((_, htlc), row)| self.by_row.get(row).map(|f| (*htlc, f.hash)))
            .collect()
    }

    /// Marks the payer HTLC `key` as routed by payment `row`, or (`None`) as refused.
    pub(super) fn route_incoming(&mut self, key: (ChannelId, u64), row: Option<i64>) {
        self.incoming.insert(key, row);
    }

    pub(super) fn waiting(&self) -> usize {
        self.by_row
            .values()
            .filter(|f| matches!(f.state, ForwardState::Waiting { .. }))
            .count()
    }
}

impl Router {
    pub(super) fn on_pay_request(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        req: PayRequest,
    ) {
        if !self.admit_request(conn, identity, req.channel, req.htlc) {
            return;
        }
        let parsed =
            ParsedInvoice::parse(&req.invoice, self.settings.network, self.now().unix_time)
                .map_err(|e| match e {
                    shared::pay::InvoiceError::Expired { .. } => PayFailure::Expired,
                    other => PayFailure::Mismatch {
                        reason: other.to_string(),
                    },
                });
        self.wait_for_htlc(conn, (req.channel, req.htlc), Requested::Invoice(parsed));
    }

    /// A wallet asks for the HTLC it is adding to be paid out on chain (`swap`).
    pub(super) fn on_swap_request(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        req: SwapOutRequest,
    ) {
        if self.admit_request(conn, identity, req.channel, req.htlc) {
            self.wait_for_htlc(conn, (req.channel, req.htlc), Requested::Swap(req));
        }
    }

    fn wait_for_htlc(&mut self, conn: ConnId, key: (ChannelId, u64), what: Requested) {
        let request = Request {
            conn,
            at: self.now().unix_time,
            what,
        };
        self.forwards.requests.insert(key, request);
    }

    /// Whether a request for HTLC `htlc` on `channel` from `identity` may wait for its HTLC:
    /// the channel is the sender's and takes payments, the HTLC has no route yet, and the
    /// channel has room for one more request. Otherwise `conn` is told why.
    fn admit_request(
        &self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        channel: ChannelId,
        htlc: u64,
    ) -> bool {
        let refuse = |code, why: String| {
            let about = Some(ErrorAbout::Payment { channel, htlc });
            self.refuse(conn, code, about, why);
            false
        };
        if self
            .links
            .get(&channel)
            .is_none_or(|l| l.identity != identity)
        {
            return refuse(
                ErrorCode::Unexpected,
                format!("channel {channel} is not yours"),
            );
        }
        if self.links.get(&channel).is_some_and(|l| !l.routable()) {
            self.tell_closed(conn, channel);
            return false;
        }
        let key = (channel, htlc);
        if self.forwards.incoming.contains_key(&key) || self.forwards.requests.contains_key(&key) {
            return refuse(
                ErrorCode::Unexpected,
                "that HTLC already has a route".into(),
            );
        }
        let waiting = self
            .forwards
            .requests
            .range((channel, 0)..=(channel, u64::MAX))
            .count();
        if waiting >= MAX_REQUESTS_PER_CHANNEL {
            return refuse(
                ErrorCode::RateLimited,
                format!(
                    "channel {channel}: {waiting} payments are already waiting for their HTLC; \
                     add those HTLCs first"
                ),
            );
        }
        true
    }

    pub(super) fn on_faucet(&mut self, conn: ConnId, identity: XOnlyPublicKey, req: FaucetRequest) {
        let max = self.settings.options.faucet_max_sat;
        if self.settings.network == Network::Bitcoin || max == 0 {
            return self.refuse(
                conn,
                ErrorCode::Unexpected,
                Some(ErrorAbout::Faucet),
                "this LSP runs no faucet",
            );
        }
        let now = self.now().unix_time;
        let invoice = match ParsedInvoice::parse(&req.invoice, self.settings.network, now) {
            Ok(i) => i,
            Err(e) => {
                return self.refuse(
                    conn,
                    ErrorCode::Malformed,
                    Some(ErrorAbout::Faucet),
                    e.to_string(),
                )
            }
        };
        if self.payee_of(&invoice) != identity {
            return self.refuse(
                conn,
                ErrorCode::Unexpected,
                Some(ErrorAbout::Faucet),
                "the faucet pays only your own invoices",
            );
        }
        if !self.has_open_channel(&identity) {
            return self.refuse(
                conn,
                ErrorCode::ChannelClosed,
                Some(ErrorAbout::Faucet),
                "you have no open channel for the faucet to pay into",
            );
        }
        if invoice.amount.to_sat() > max {
            return self.refuse(
                conn,
                ErrorCode::Unexpected,
                Some(ErrorAbout::Faucet),
                format!("the faucet gives at most {max} sat per request"),
            );
        }
        self.start_forward(invoice, Amount::ZERO, None, None, "faucet");
    }

    /// A wallet asks, before its user confirms, whether an invoice's payee could receive it
    /// now. Nothing is reserved: the answer is what the LSP knows at this moment.
    pub(super) fn on_route_query(&self, conn: ConnId, query: RouteQuery) {
        let now = self.now().unix_time;
        let invoice = match ParsedInvoice::parse(&query.invoice, self.settings.network, now) {
            Ok(i) => i,
            Err(e) => return self.refuse(conn, ErrorCode::Malformed, None, e.to_string()),
        };
        let payee = self.payee_of(&invoice);
        let answer = RouteAnswer {
            hash: invoice.hash,
            warning: self.route_warning(&invoice, &payee),
            outside: self.ln.is_some() && !self.by_identity.contains_key(&payee),
        };
        self.send_conn(conn, WireMsg::RouteAnswer(answer));
    }

    /// Why a payment of `invoice` to `payee` would fail or wait now, in words for its payer;
    /// `None` if it can go through.
    fn route_warning(&self, invoice: &ParsedInvoice, payee: &XOnlyPublicKey) -> Option<String> {
        let links: Vec<&Link> = self
            .by_identity
            .get(payee)
            .map(|ids| ids.iter().filter_map(|id| self.links.get(id)).collect())
            .unwrap_or_default();
        if links.is_empty() {
            // Not the LSP's client: its Lightning node pays it, if the LSP runs one.
            return self.ln.is_none().then(|| {
                "the recipient is not reachable through this provider: it would fail".into()
            });
        }
        let open: Vec<&Link> = links.into_iter().filter(|l| l.routable()).collect();
        if open.is_empty() {
            return Some("the recipient's channel takes no more payments: it would fail".into());
        }
        // What the payee would be offered: the amount, less a join fee it still owes.
        let fits = |l: &&Link| {
            let offered = invoice.amount - l.join_fee.deduction(invoice.amount);
            l.channel.client_inbound() >= offered
        };
        if !open.iter().any(fits) {
            let most = open
                .iter()
                .map(|l| l.channel.client_inbound())
                .max()
                .unwrap_or(Amount::ZERO);
            return Some(format!(
                "the recipient can receive at most {} sats right now; ask them to buy inbound \
                 liquidity first",
                most.to_sat()
            ));
        }
        if open.iter().all(|l| l.ready.is_none()) {
            return Some(format!(
                "the recipient is offline: the payment waits up to {} s for them, then fails",
                self.settings.options.offline_wait_secs
            ));
        }
        None
    }

    /// Creates the payment's row and tries to deliver it. `expiry_in` is the payer's HTLC's
    /// (none for the faucet, whose payee's HTLC expires as a payment's made now would).
    fn start_forward(
        &mut self,
        invoice: ParsedInvoice,
        fee: Amount,
        payer: Option<(ChannelId, u64, XOnlyPublicKey)>,
        expiry_in: Option<u32>,
        kind: &'static str,
    ) {
        let policy = self.settings.policy;
        let expiry_out =
            policy.payee_expiry(expiry_in.unwrap_or_else(|| policy.payer_expiry(self.height)));
        let payee = self.payee_of(&invoice);
        let source = Source {
            kind,
            fee,
            payer,
            expiry_in,
            held: None,
        };
        self.open_forward(invoice, payee, source, expiry_out);
    }

    /// Starts delivering a payment the LSP's node holds (`held_msat`, until `deadline`) to
    /// `payee` (`inbound`).
    pub(super) fn start_held(
        &mut self,
        invoice: ParsedInvoice,
        payee: XOnlyPublicKey,
        held_msat: u64,
        deadline: u32,
    ) {
        let source = Source {
            kind: "inbound",
            fee: Amount::ZERO,
            payer: None,
            expiry_in: None,
            held: Some((held_msat, deadline)),
        };
        let expiry_out = self.settings.policy.inbound_expiry(deadline);
        self.open_forward(invoice, payee, source, expiry_out);
    }

    /// Stores payment `invoice` to `payee` and offers it (or waits for the payee).
    fn open_forward(
        &mut self,
        invoice: ParsedInvoice,
        payee: XOnlyPublicKey,
        source: Source,
        expiry_out: u32,
    ) {
        let Source {
            kind,
            fee,
            payer,
            expiry_in,
            held,
        } = source;
        let now = self.now().unix_time;
        let stored = self
            .store
            .insert_payment(
                &invoice.hash.to_string(),
                kind,
                &payee,
                payer.map(|(c, h, _)| (c, h)),
                invoice.amount.to_sat(),
                fee.to_sat(),
                now,
            )
            .and_then(|row| match held {
                Some((msat, deadline)) => self
                    .store
                    .payment_held(row, &invoice.text, msat, deadline)
                    .map(|()| row),
                None => Ok(row),
            });
        let row = match stored {
            Ok(row) => row,
            Err(e) => {
                tracing::error!(error = %e, "could not store a payment; failing it");
                if let Some((c, h, who)) = payer {
                    self.fail_htlc(c, h, who, invoice.hash, PayFailure::Refused);
                }
                if held.is_some() {
                    self.fail_upstream(invoice.hash);
                }
                return;
            }
        };
        if let Some((c, h, _)) = payer {
            self.forwards.incoming.insert((c, h), Some(row));
        }
        let forward = Forward {
            row,
            hash: invoice.hash,
            amount: invoice.amount,
            fee,
            join_fee: Amount::ZERO,
            payer,
            payee,
            hint: invoice.hint,
            expiry_in,
            expiry_out,
            invoice: invoice.text,
            held: held.map(|(msat, _)| msat),
            state: ForwardState::Waiting {
                until: now + self.settings.options.offline_wait_secs,
            },
        };
        self.forwards.by_row.insert(row, forward);
        self.deliver(row);
    }

    /// Offers the payment to the payee if it can take it now.
    fn deliver(&mut self, row: i64) {
        let Some(f) = self.forwards.by_row.get(&row).cloned() else {
            return;
        };
        if !matches!(f.state, ForwardState::Waiting { .. }) {
            return;
        }
        let mut candidates = self.by_identity.get(&f.payee).cloned().unwrap_or_default();
        if candidates.is_empty() {
            if self.ln.is_some() && f.payer.is_some() {
                return self.pay_outside(row);
            }
            return self.fail_forward(row, PayFailure::UnknownPayee);
        }
        // A payment between two channels of one wallet (a move into a newer factory) never
        // goes back into the channel it came from; the channel the invoice names goes first.
        let own = f.payer.filter(|(_, _, who)| *who == f.payee);
        if let Some((from, _, _)) = own {
            candidates.retain(|id| *id != from);
            if candidates.is_empty() {
                let reason = "this invoice is your own: pay it from another of your channels";
                return self.fail_forward(
                    row,
                    PayFailure::Mismatch {
                        reason: reason.into(),
                    },
                );
            }
        }
        if let Some(i) = f.hint.and_then(|h| candidates.iter().position(|c| *c == h)) {
            candidates[..=i].rotate_right(1);
        }
        let now = self.now();
        let mut online = false;
        let mut busy = false;
        let mut failure = PayFailure::NoLiquidity;
        let closed = candidates
            .iter()
            .filter_map(|id| self.links.get(id))
            .filter_map(|l| l.closing.as_ref().map(|c| (l.id, c.describe())))
            .collect::<Vec<_>>();
        if closed.len() == candidates.len() {
            let (id, why) = &closed[0];
            return self.fail_forward(
                row,
                PayFailure::ChannelClosed {
                    reason: format!("the recipient's channel {id}: {why}"),
                },
            );
        }
        for id in candidates {
            let Some(link) = self.links.get_mut(&id).filter(|l| l.routable()) else {
                continue;
            };
            if link.ready.is_none() || link.channel.number().is_none() {
                continue;
            }
            if link.channel.in_round() || link.advance.is_some() || link.frozen {
                // Offered now, the HTLC could only commit after this round, which the payee may
                // never answer (then it is disconnected and the payment fails as offline). Offer
                // it when the round commits (`on_committed` retries): it loses no time.
                busy = true;
                continue;
            }
            online = true;
            let expiry = Height::from_consensus(f.expiry_out).unwrap_or(Height::ZERO);
            // A move between one wallet's channels arrives whole (`shared::lifecycle`).
            let join_fee = match own {
                Some(_) => Amount::ZERO,
                None => link.join_fee.deduction(f.amount),
            };
            match link
                .channel
                .add_htlc(now, f.amount - join_fee, f.hash, expiry)
            {
                Ok(htlc) => {
                    if join_fee > Amount::ZERO {
                        // `deduction` found it unpaid, so no other payment holds it.
                        let _ = link.join_fee.pay(f.hash);
                        tracing::info!(channel = %id, hash = %f.hash, join_fee_sat = join_fee.to_sat(), "join fee taken from the payment");
                    }
                    self.store.payment_delivered(row, id, htlc, join_fee);
                    self.forwards.outgoing.insert((id, htlc), row);
                    if let Some(fw) = self.forwards.by_row.get_mut(&row) {
                        fw.join_fee = join_fee;
                        fw.state = ForwardState::Offered {
                            channel: id,
                            htlc,
                            committed: false,
                        };
                    }
                    self.dirty.insert(id);
                    return;
                }
                Err(ChannelError::BadUpdate { reason }) if reason.contains("expiry") => {
                    failure = PayFailure::Expired
                }
                Err(e) => {
                    tracing::debug!(channel = %id, error = %e, "payee channel cannot take the HTLC")
                }
            }
        }
        if online && !busy {
            self.fail_forward(row, failure);
        }
    }

    /// A wallet (re)opened a channel: deliver what waits for it.
    pub(super) fn retry_waiting(&mut self, identity: XOnlyPublicKey) {
        let rows: Vec<i64> = self
            .forwards
            .by_row
            .values()
            .filter(|f| f.payee == identity && matches!(f.state, ForwardState::Waiting { .. }))
            .map(|f| f.row)
            .collect();
        for row in rows {
            self.deliver(row);
        }
    }

    /// A round on `id` completed: route new payer HTLCs, and see which offered HTLCs the payee
    /// committed or failed.
    pub(super) fn on_committed(&mut self, id: ChannelId) {
        let Some(link) = self.links.get(&id) else {
            return;
        };
        let identity = link.identity;
        let htlcs = link.channel.spec().htlcs.clone();
        // A payment may be waiting for this channel's first round.
        self.retry_waiting(identity);
        // Refused payer HTLCs whose fail is now committed.
        self.forwards.incoming.retain(|(c, h), _| {
            *c != id
                || htlcs
                    .iter()
                    .any(|x| x.offerer == Side::Client && x.id == *h)
        });
        for h in htlcs.iter().filter(|h| h.offerer == Side::Client) {
            if self.forwards.incoming.contains_key(&(id, h.id)) {
                continue;
            }
            let request = match self.forwards.requests.remove(&(id, h.id)).map(|r| r.what) {
                Some(Requested::Swap(req)) => {
                    self.start_swap(id, identity, req, h);
                    continue;
                }
                Some(Requested::Invoice(invoice)) => Some(invoice),
                None => None,
            };
            match self.check_incoming(id, identity, request, h) {
                Ok((invoice, fee)) => {
                    let expiry = Some(h.expiry.to_consensus_u32());
                    self.start_forward(invoice, fee, Some((id, h.id, identity)), expiry, "forward");
                }
                Err(reason) => {
                    self.forwards.incoming.insert((id, h.id), None);
                    self.fail_htlc(id, h.id, identity, h.hash, reason);
                }
            }
        }
        // Offered HTLCs: committed now, or gone without a preimage (the payee failed them).
        let offered: Vec<((ChannelId, u64), i64)> = self
            .forwards
            .outgoing
            .iter()
            .filter(|((c, _), _)| *c == id)
            .map(|(k, v)| (*k, *v))
            .collect();
        for ((c, htlc), row) in offered {
            let present = htlcs.iter().any(|x| x.offerer == Side::Lsp && x.id == htlc);
            let Some(f) = self.forwards.by_row.get_mut(&row) else {
                self.forwards.outgoing.remove(&(c, htlc));
                continue;
            };
            if let ForwardState::Offered { committed, .. } = &mut f.state {
                if present {
                    *committed = true;
                } else if *committed {
                    tracing::debug!(channel = %c, htlc, "the payee failed the HTLC");
                    self.forwards.outgoing.remove(&(c, htlc));
                    self.fail_forward(row, PayFailure::Refused);
                }
            }
        }
    }

    /// Checks a committed payer HTLC against its route request; returns the invoice and fee.
    fn check_incoming(
        &self,
        payer: ChannelId,
        identity: XOnlyPublicKey,
        request: Option<Result<ParsedInvoice, PayFailure>>,
        h: &shared::channel::Htlc,
    ) -> Result<(ParsedInvoice, Amount), PayFailure> {
        let mismatch = |reason: &str| PayFailure::Mismatch {
            reason: reason.into(),
        };
        let invoice = request.ok_or_else(|| mismatch("no pay_request came for this HTLC"))??;
        if let Some(closing) = self.links.get(&payer).and_then(|l| l.closing.as_ref()) {
            return Err(PayFailure::ChannelClosed {
                reason: format!("your channel {payer}: {}", closing.describe()),
            });
        }
        if invoice.hash != h.hash {
            return Err(mismatch("the HTLC's hash is not the invoice's"));
        }
        let fee = route_fee_for(&self.settings.fees, &invoice, &identity);
        if h.amount < invoice.amount + fee {
            return Err(mismatch(&format!(
                "the HTLC carries {} sat; the invoice's {} sat plus the {} sat fee are needed",
                h.amount.to_sat(),
                invoice.amount.to_sat(),
                fee.to_sat()
            )));
        }
        let now = self.now();
        if now.unix_time >= invoice.expires_at {
            return Err(PayFailure::Expired);
        }
        let policy = &self.settings.policy;
        let out = policy.payee_expiry(h.expiry.to_consensus_u32());
        if out <= self.height + policy.payee_window() {
            return Err(PayFailure::Expired);
        }
        // Whatever the payer sent above the fee is the LSP's too (it asked for exactly this).
        let fee = h.amount - invoice.amount;
        Ok((invoice, fee))
    }

    /// The payee released the preimage of the LSP's HTLC `htlc` on `id`: settle upstream now.
    pub(super) fn on_preimage(&mut self, id: ChannelId, htlc: u64, preimage: [u8; 32]) {
        let Some(row) = self.forwards.outgoing.remove(&(id, htlc)) else {
            return;
        };
        let Some(f) = self.forwards.by_row.remove(&row) else {
            return;
        };
        if sha256::Hash::hash(&preimage) != f.hash {
            // The channel checked it already; never settle upstream with a wrong one.
            tracing::error!(channel = %id, htlc, "preimage does not match the payment hash");
            return;
        }
        let now = self.now();
        if let Some((c, h, who)) = f.payer {
            let paid = PayOutcome::Paid {
                preimage,
                fee: f.fee,
                network_fee: None,
            };
            self.answer_payer(c, h, who, f.hash, paid);
            self.totals.fees_sat += f.fee.to_sat();
        } else if let Some(held) = f.held {
            self.claim_upstream(f.hash, held, preimage);
        } else {
            self.totals.faucet_sat += f.amount.to_sat();
        }
        self.totals.settled += 1;
        self.totals.volume_sat += f.amount.to_sat();
        self.store
            .payment_ended_with_batch(row, "settled", None, now.unix_time);
        tracing::info!(hash = %f.hash, amount_sat = f.amount.to_sat(), fee_sat = f.fee.to_sat(), join_fee_sat = f.join_fee.to_sat(), "payment delivered");
    }

    /// Ends a payment as failed, failing the payer's HTLC back.
    pub(super) fn fail_forward(&mut self, row: i64, reason: PayFailure) {
        let Some(f) = self.forwards.by_row.remove(&row) else {
            return;
        };
        if let ForwardState::Offered { channel, htlc, .. } = f.state {
            self.forwards.outgoing.remove(&(channel, htlc));
            // The join fee it carried is owed again (its row says failed, so a restart agrees).
            if let Some(link) = self
                .links
                .get_mut(&channel)
                .filter(|_| f.join_fee > Amount::ZERO)
            {
                link.join_fee.release(f.hash);
            }
        }
        let now = self.now().unix_time;
        self.store
            .payment_ended_with_batch(row, "failed", Some(reason.describe()), now);
        self.totals.failed += 1;
        tracing::info!(hash = %f.hash, reason = %reason.describe(), "payment failed");
        match f.payer {
            Some((c, h, who)) => self.fail_htlc(c, h, who, f.hash, reason),
            None if f.held.is_some() => self.held_failed(f.hash, &reason),
            None => self.send_identity(
                &f.payee,
                WireMsg::refusal(
                    ErrorCode::Unexpected,
                    Some(ErrorAbout::Faucet),
                    format!("the faucet could not pay: {}", reason.describe()),
                ),
            ),
        }
    }

    fn fail_htlc(
        &mut self,
        c: ChannelId,
        h: u64,
        who: XOnlyPublicKey,
        hash: sha256::Hash,
        reason: PayFailure,
    ) {
        self.answer_payer(c, h, who, hash, PayOutcome::Failed(reason));
    }

    /// Settles (with the preimage) or fails the payer's HTLC `h` on `c`, and tells the payer.
    pub(super) fn answer_payer(
        &mut self,
        c: ChannelId,
        h: u64,
        who: XOnlyPublicKey,
        hash: sha256::Hash,
        outcome: PayOutcome,
    ) {
        let now = self.now();
        if let Some(link) = self.links.get_mut(&c) {
            let done = match &outcome {
                PayOutcome::Paid { preimage, .. } => link.channel.fulfill_htlc(now, h, *preimage),
                PayOutcome::Failed(_) => link.channel.fail_htlc(now, h),
            };
            if let Err(e) = done {
                tracing::error!(channel = %c, htlc = h, error = %e, "could not answer the payer's HTLC");
            }
            self.dirty.insert(c);
        }
        let result = PayResult {
            channel: c,
            htlc: h,
            hash,
            outcome,
        };
        self.send_identity(&who, WireMsg::PayResult(result));
    }

    /// After a restart: payments that were pending. A payee HTLC whose preimage is in the
    /// channel's log settles upstream; one still offered is tracked again; one never offered
    /// waits for its payee again (`--offline-wait-secs`), then fails back.
    pub(super) fn forwards_restore(&mut self) {
        let rows = match self.store.pending_payments() {
            Ok(rows) => rows,
            Err(e) => return tracing::error!(error = %e, "could not load pending payments"),
        };
        for row in rows.into_iter().filter(|r| r.kind != "swap") {
            let Ok(hash) = row.hash.parse::<sha256::Hash>() else {
                continue;
            };
            let payer = match (row.payer, row.payer_htlc) {
                (Some(c), Some(h)) => self.links.get(&c).map(|l| (c, h, l.identity)),
                _ => None,
            };
            let Ok(payee_identity) = row.payee_identity.parse::<XOnlyPublicKey>() else {
                continue;
            };
            // A payment never offered waits for its payee again, as if it had just come.
            let until = self.now().unix_time + self.settings.options.offline_wait_secs;
            let offered = |c: &ChannelId, h: u64, pending: bool| {
                self.links.get(c).is_some_and(|l| {
                    let spec = if pending {
                        l.channel.pending_spec().ok()
                    } else {
                        Some(l.channel.spec().clone())
                    };
                    spec.is_some_and(|s| {
                        s.htlcs.iter().any(|x| x.offerer == Side::Lsp && x.id == h)
                    })
                })
            };
            let state = match (row.payee, row.payee_htlc) {
                _ if row.kind == "outside" => ForwardState::Outside,
                (Some(c), Some(h)) => ForwardState::Offered {
                    channel: c,
                    htlc: h,
                    committed: offered(&c, h, false),
                },
                _ => ForwardState::Waiting { until },
            };
            // Offered, and no longer in the payee's channel even counting uncommitted updates,
            // without a preimage: the payee failed it before the restart.
            let failed_downstream = match state {
                ForwardState::Offered { channel, htlc, .. } => {
                    !offered(&channel, htlc, true)
                        && self
                            .links
                            .get(&channel)
                            .is_none_or(|l| l.channel.preimage_received(htlc).is_none())
                }
                ForwardState::Waiting { .. } | ForwardState::Outside => false,
            };
            let policy = self.settings.policy;
            let expiry_in = payer.and_then(|(c, h, _)| {
                self.links.get(&c).and_then(|l| {
                    l.channel
                        .spec()
                        .htlcs
                        .iter()
                        .find(|x| x.offerer == Side::Client && x.id == h)
                        .map(|x| x.expiry.to_consensus_u32())
                })
            });
            let expiry_out = match (payer, expiry_in, row.held_deadline) {
                (Some(_), Some(e), _) => policy.payee_expiry(e),
                (Some(_), None, _) => 0,
                (None, _, Some(deadline)) => policy.inbound_expiry(deadline),
                (None, _, None) => policy.payee_expiry(policy.payer_expiry(self.height)),
            };
            let invoice = match state {
                ForwardState::Outside => match self.store.outside_invoice(row.id) {
                    Ok(Some(text)) => text,
                    _ => {
                        tracing::error!(row = row.id, "an outside payment lost its invoice");
                        String::new()
                    }
                },
                _ => String::new(),
            };
            if let Some((c, h, _)) = payer {
                self.forwards.incoming.insert((c, h), Some(row.id));
            }
            self.forwards.by_row.insert(
                row.id,
                Forward {
                    row: row.id,
                    hash,
                    amount: Amount::from_sat(row.amount_sat),
                    fee: Amount::from_sat(row.fee_sat),
                    join_fee: Amount::from_sat(row.join_fee_sat),
                    payer,
                    payee: payee_identity,
                    hint: None,
                    expiry_in,
                    expiry_out,
                    invoice,
                    held: row.held_msat,
                    state,
                },
            );
            tracing::debug!(
                row = row.id,
                ?state,
                failed_downstream,
                "pending payment restored"
            );
            if failed_downstream {
                self.fail_forward(row.id, PayFailure::Refused);
                continue;
            }
            if let ForwardState::Offered { channel, htlc, .. } = state {
                self.forwards.outgoing.insert((channel, htlc), row.id);
                let preimage = self
                    .links
                    .get(&channel)
                    .and_then(|l| l.channel.preimage_received(htlc));
                if let Some(p) = preimage {
                    self.on_preimage(channel, htlc, p);
                }
            }
        }
    }
}
