//! Payments from the Lightning Network to the LSP's clients, through its Lightning node
//! (`crate::lightning::receive`).
//!
//! 1. A wallet asks for an invoice anyone can pay (`invoice_register`). The node becomes its
//!    payee for the wallet's payment hash, with the final CLTV delta a leaf channel needs
//!    (`ChannelPolicy::inbound_invoice_delta`). The invoice is stored with its client before
//!    the wallet gets it; the wallet keeps the preimage.
//! 2. Someone pays it: the node holds the payment ([`Incoming`]) until its claim deadline. The
//!    LSP offers the client an HTLC of the invoice's amount (less a join fee still owed),
//!    expiring at `ChannelPolicy::inbound_expiry(deadline)`. From there it is step 2 of
//!    `forward`, with the node in the payer's place: a client offline is waited for
//!    (`--offline-wait-secs`), one in a round is offered when the round commits.
//! 3. The client fulfills: the node claims upstream with the preimage. A client that fails it,
//!    or never comes, or a check that fails: the node fails it back at once.
//!
//! A payer among the LSP's own clients is routed straight to the invoice's client
//! ([`Router::payee_of`]); the node is not asked to pay itself.
//!
//! After a restart a held payment is restored like any other (its row says what the node
//! holds); the node reports a payment it still holds again, which finds its row by hash; a
//! preimage already in the client's channel claims at once.

use bitcoin::hashes::sha256;
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::Amount;
use shared::pay::invoice::MAX_DESCRIPTION;
use shared::pay::{InvoiceRegister, InvoiceRegistered, ParsedInvoice, PayFailure};
use shared::wire::{ErrorAbout, ErrorCode, WireMsg};

use super::store::LnInvoiceRow;
use super::Router;
use crate::factory::ConnId;
use crate::lightning::receive::{Incoming, Register};

/// How long a registered invoice may stay payable at most.
const MAX_INVOICE_EXPIRY: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// Unexpired invoices one client may have the node hold at once (each is a row here and in the
/// node's payment store).
const MAX_OPEN_INVOICES: usize = 64;
/// How long an expired invoice is still recognised (a payment may still be in flight).
const EXPIRED_KEPT_SECS: u64 = 86_400;

/// What the node answered to a wallet's registration (sent back to the router's loop by the
/// task that asked it).
#[derive(Debug)]
pub(super) struct Registered {
    conn: ConnId,
    identity: XOnlyPublicKey,
    request: InvoiceRegister,
    result: Result<String, String>,
}

impl Router {
    /// A wallet asks for an invoice payable from the Lightning Network.
    pub(super) fn on_invoice_register(
        &mut self,
        conn: ConnId,
        identity: XOnlyPublicKey,
        request: InvoiceRegister,
    ) {
        let about = Some(ErrorAbout::Invoice { hash: request.hash });
        let refuse = |why: &str| self.refuse(conn, ErrorCode::Unexpected, about, why);
        let Some(ln) = self.ln.clone() else {
            return refuse("this provider runs no Lightning node: its invoices are payable by its own members only");
        };
        if request.amount == Amount::ZERO {
            return refuse("the amount must be above zero");
        }
        if request.description.len() > MAX_DESCRIPTION {
            return refuse(&format!(
                "the description is longer than {MAX_DESCRIPTION} bytes"
            ));
        }
        if request.expiry_secs == 0 || u64::from(request.expiry_secs) > MAX_INVOICE_EXPIRY.as_secs()
        {
            return refuse(&format!(
                "an invoice stays payable between 1 second and {} days",
                MAX_INVOICE_EXPIRY.as_secs() / 86_400
            ));
        }
        if self.registered.contains_key(&request.hash) {
            return refuse("an invoice for this payment hash exists already");
        }
        let now = self.now().unix_time;
        let open_invoices = self
            .registered
            .values()
            .filter(|r| r.identity == identity && r.expires_at > now)
            .count();
        if open_invoices >= MAX_OPEN_INVOICES {
            return refuse(&format!(
                "you have {MAX_OPEN_INVOICES} invoices open already: wait until some are paid or expire"
            ));
        }
        if !self.has_open_channel(&identity) {
            return refuse("you have no open channel to receive into");
        }
        let register = Register {
            hash: request.hash,
            amount: request.amount,
            description: request.description.clone(),
            expiry_secs: request.expiry_secs,
            final_cltv: self.settings.policy.inbound_invoice_delta(),
        };
        let tx = self.registering.0.clone();
        tokio::spawn(async move {
            let result = ln
                .register_invoice(register)
                .await
                .map_err(|e| e.to_string());
            let _ = tx
                .send(Registered {
                    conn,
                    identity,
                    request,
                    result,
                })
                .await;
        });
    }

    /// The node made (or refused) a wallet's invoice: stored, then sent to the wallet.
    pub(super) fn on_registered(&mut self, registered: Registered) {
        let Registered {
            conn,
            identity,
            request,
            result,
        } = registered;
        let about = Some(ErrorAbout::Invoice { hash: request.hash });
        let invoice = match result {
            Ok(invoice) => invoice,
            Err(reason) => {
                tracing::warn!(hash = %request.hash, %reason, "the node did not make a client's invoice");
                return self.refuse(
                    conn,
                    ErrorCode::Unexpected,
                    about,
                    format!("the provider's Lightning node could not make the invoice: {reason}"),
                );
            }
        };
        let now = self.now().unix_time;
        let row = LnInvoiceRow {
            hash: request.hash,
            identity,
            amount: request.amount,
            invoice: invoice.clone(),
            expires_at: now + u64::from(request.expiry_secs),
            created: now,
        };
        if let Err(e) = self.store.insert_ln_invoice(&row) {
            tracing::error!(hash = %request.hash, error = %e, "could not store a client's invoice");
            return self.refuse(
                conn,
                ErrorCode::Unexpected,
                about,
                "the provider could not record the invoice; try again",
            );
        }
        self.registered
            .retain(|_, r| r.expires_at + EXPIRED_KEPT_SECS > now);
        self.registered.insert(request.hash, row);
        self.send_conn(
            conn,
            WireMsg::InvoiceRegistered(InvoiceRegistered {
                hash: request.hash,
                invoice,
            }),
        );
    }

    /// After a restart: the invoices the node holds that are payable, or were within a day.
    pub(super) fn invoices_restore(&mut self) -> anyhow::Result<()> {
        let since = self.now().unix_time.saturating_sub(EXPIRED_KEPT_SECS);
        for row in self.store.ln_invoices(since)? {
            self.registered.insert(row.hash, row);
        }
        Ok(())
    }

    /// The client `invoice` pays: the one the node holds it for, else the invoice's signer.
    pub(super) fn payee_of(&self, invoice: &ParsedInvoice) -> XOnlyPublicKey {
        match (self.registered.get(&invoice.hash), &self.ln) {
            (Some(row), Some(ln)) if ln.node_id() == invoice.payee => row.identity,
            _ => invoice.payee_identity(),
        }
    }

    /// The node holds a payment: offer it to its client, or fail it back.
    pub(super) fn on_incoming(&mut self, incoming: Incoming) {
        let hash = incoming.hash;
        if self.forwards.by_row.values().any(|f| f.hash == hash) {
            // Reported again (after a restart, or a replayed event): already on its way.
            return tracing::debug!(%hash, "a held payment already delivered");
        }
        let Some(row) = self.registered.get(&hash).cloned() else {
            tracing::info!(%hash, "the node holds a payment for no client's invoice; failing it back");
            return self.fail_upstream(hash);
        };
        if incoming.amount_msat < row.amount.to_sat() * 1000 {
            tracing::info!(%hash, held_msat = incoming.amount_msat, "a held payment below its invoice; failing it back");
            return self.fail_upstream(hash);
        }
        let policy = self.settings.policy;
        let Some(deadline) = incoming.deadline else {
            tracing::info!(%hash, "a held payment without a deadline; failing it back");
            return self.fail_upstream(hash);
        };
        if policy.inbound_expiry(deadline) <= self.freshest_height() + policy.payee_window() {
            tracing::info!(%hash, deadline, "a held payment with too little time left; failing it back");
            return self.fail_upstream(hash);
        }
        let now = self.now().unix_time;
        let invoice = match ParsedInvoice::parse(&row.invoice, self.settings.network, 0) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(%hash, error = %e, "a stored invoice does not parse; failing its payment back");
                return self.fail_upstream(hash);
            }
        };
        if now >= invoice.expires_at + 3_600 {
            // Paid long after it expired (the node checks the expiry too): refuse.
            return self.fail_upstream(hash);
        }
        self.start_held(invoice, row.identity, incoming.amount_msat, deadline);
    }

    /// Asks the node to fail the held payment `hash` back to its payer.
    pub(super) fn fail_upstream(&self, hash: sha256::Hash) {
        let Some(ln) = self.ln.clone() else {
            return tracing::error!(%hash, "a held payment cannot be failed back: the Lightning node is off");
        };
        tokio::spawn(async move {
            if let Err(e) = ln.fail_inbound(hash).await {
                tracing::warn!(%hash, error = %e, "could not fail a held payment back");
            }
        });
    }

    /// Asks the node to claim the held payment `hash` (`held_msat`) with `preimage`.
    pub(super) fn claim_upstream(&self, hash: sha256::Hash, held_msat: u64, preimage: [u8; 32]) {
        let Some(ln) = self.ln.clone() else {
            return tracing::error!(%hash, "a held payment cannot be claimed: the Lightning node is off; start the LSP with --ln-listen");
        };
        tokio::spawn(async move {
            match ln.claim_inbound(hash, held_msat, preimage).await {
                Ok(()) => {
                    tracing::info!(%hash, held_msat, "payment from the Lightning Network claimed")
                }
                Err(e) => tracing::error!(%hash, error = %e, "could not claim a held payment"),
            }
        });
    }

    /// A held payment that could not be delivered: failed back upstream, with `reason` logged.
    pub(super) fn held_failed(&self, hash: sha256::Hash, reason: &PayFailure) {
        tracing::info!(%hash, reason = %reason.describe(), "payment from the Lightning Network failed back");
        self.fail_upstream(hash);
    }
}
