//! Invoices anyone on the Lightning Network can pay. When the provider runs a Lightning node
//! (its terms name it), the wallet asks the node to be the payee of its invoice for the
//! wallet's own payment hash (`shared::pay::InvoiceRegister`). The node holds a payment that
//! comes, the provider offers it to this wallet as an HTLC in its channel, and the node claims
//! it only with the preimage the wallet reveals there, which never leaves this wallet before.
//!
//! The node's invoice is checked before it replaces the wallet's own: the same hash and
//! amount, signed by the node the terms name, and a final CLTV delta long enough for the
//! wallet to enforce the HTLC on chain (`ChannelPolicy::inbound_invoice_delta`). Without an
//! answer in time, or with a wrong one, the wallet keeps its own invoice, which the provider's
//! members can still pay.

use bitcoin::hashes::sha256;
use bitcoin::secp256k1::PublicKey;
use futures::channel::oneshot;
use shared::pay::{InvoiceRegister, InvoiceRegistered, ParsedInvoice};
use shared::wire::WireMsg;

use super::PayClient;
use crate::pay::store::{InvoiceRecord, PayStore};
use crate::pay::{PayError, PayEvent};
use crate::platform::unix_now;
use crate::session::{ChainSource, Connect};

/// How long a new invoice waits for the provider's node.
const REGISTER_SECS: u64 = 10;

/// An invoice waiting for the provider's node to become its payee.
pub(super) struct InvoiceWait {
    /// The wallet's own invoice (kept if the node does not answer well).
    record: InvoiceRecord,
    /// The node the terms name.
    node: PublicKey,
    until: u64,
    reply: oneshot::Sender<Result<InvoiceRecord, PayError>>,
}

impl<C: Connect, S: PayStore, H: ChainSource> PayClient<C, S, H> {
    /// Makes an invoice for the user: the wallet's own, then, if the provider runs a Lightning
    /// node, the node's for the same hash (the answer comes with `reply`).
    pub(super) async fn invoice_for_anyone(
        &mut self,
        amount: bitcoin::Amount,
        description: String,
        reply: oneshot::Sender<Result<InvoiceRecord, PayError>>,
    ) {
        let made = self.make_invoice(amount, description, None).await;
        let node = self.terms.as_ref().and_then(|t| t.lightning_node);
        let (Ok(record), Some(node)) = (&made, node) else {
            let _ = reply.send(made);
            return;
        };
        let expiry_secs = u32::try_from(record.expires_at - record.created_at).unwrap_or(u32::MAX);
        self.send(WireMsg::InvoiceRegister(InvoiceRegister {
            hash: record.hash,
            amount: record.amount,
            description: record.description.clone(),
            expiry_secs,
        }))
        .await;
        self.invoice_waits.push(InvoiceWait {
            record: record.clone(),
            node,
            until: unix_now() + REGISTER_SECS,
            reply,
        });
    }

    /// The provider's node made the invoice: checked, stored in place of the wallet's own.
    pub(super) async fn on_invoice_registered(&mut self, registered: InvoiceRegistered) {
        let Some(i) = self
            .invoice_waits
            .iter()
            .position(|w| w.record.hash == registered.hash)
        else {
            return;
        };
        let wait = self.invoice_waits.swap_remove(i);
        let mut record = wait.record.clone();
        match self.check_node_invoice(&registered.invoice, &wait) {
            Ok(()) => {
                record.invoice = registered.invoice;
                if let Err(e) = self.store.save_invoice(&record).await {
                    let _ = wait.reply.send(Err(e.into()));
                    return;
                }
                self.stored.invoices.insert(record.hash, record.clone());
            }
            Err(why) => self.emit(PayEvent::LspError(format!(
                "the provider's invoice was refused ({why}); this invoice can be paid by the \
                 provider's members only"
            ))),
        }
        let _ = wait.reply.send(Ok(record));
    }

    fn check_node_invoice(&self, text: &str, wait: &InvoiceWait) -> Result<(), String> {
        let invoice = ParsedInvoice::parse(text, self.config.network, unix_now())
            .map_err(|e| e.to_string())?;
        if invoice.hash != wait.record.hash {
            return Err("another payment hash".into());
        }
        if invoice.amount != wait.record.amount {
            return Err(format!(
                "{} instead of {}",
                invoice.amount, wait.record.amount
            ));
        }
        if invoice.payee != wait.node {
            return Err("signed by another node than the terms name".into());
        }
        let need = u64::from(self.policy.inbound_invoice_delta());
        if invoice.min_final_cltv < need {
            return Err(format!(
                "its final delta is {} blocks, {need} are needed",
                invoice.min_final_cltv
            ));
        }
        Ok(())
    }

    /// The provider refused to make the invoice for `hash`: the wallet's own stands.
    pub(super) fn invoice_refused(&mut self, hash: sha256::Hash) {
        if let Some(i) = self
            .invoice_waits
            .iter()
            .position(|w| w.record.hash == hash)
        {
            let wait = self.invoice_waits.swap_remove(i);
            let _ = wait.reply.send(Ok(wait.record));
        }
    }

    /// Invoices whose node answer did not come in time (or whose connection is gone) stay
    /// the wallet's own.
    pub(super) fn expire_invoice_waits(&mut self, all: bool) {
        let now = unix_now();
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.invoice_waits)
            .into_iter()
            .partition(|w| all || now >= w.until);
        self.invoice_waits = waiting;
        for w in done {
            let _ = w.reply.send(Ok(w.record));
        }
    }
}
