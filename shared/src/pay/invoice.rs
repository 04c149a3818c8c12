//! BOLT11 invoices (via `lightning-invoice`): the payee's identity key signs them, and the route
//! hint names the LSP, so any Lightning wallet can read them. Amounts are whole satoshis.
//!
//! No clock is read here: the caller passes the Unix time (the browser has no `SystemTime`).

use core::time::Duration;
use std::str::FromStr;

use bitcoin::hashes::sha256;
use bitcoin::secp256k1::{Keypair, PublicKey, XOnlyPublicKey};
use bitcoin::{Amount, Network};
use lightning_invoice::{
    Bolt11Invoice, Bolt11InvoiceDescriptionRef, Currency, InvoiceBuilder, PaymentSecret, RouteHint,
    RouteHintHop, RoutingFees,
};

use super::messages::ChannelId;
use super::policy::{short_channel_id, ChannelPolicy};
use crate::terms::FeeSchedule;

/// Longest description accepted (BOLT11 allows 639 bytes).
pub const MAX_DESCRIPTION: usize = 639;

/// Why an invoice could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvoiceError {
    /// Not a BOLT11 invoice, or its signature does not verify.
    #[error("not a valid Lightning invoice: {0}")]
    Invalid(String),
    /// For another network.
    #[error("this invoice is for {got}, and this wallet is on {want}")]
    WrongNetwork {
        /// The invoice's network.
        got: String,
        /// The wallet's.
        want: Network,
    },
    /// No amount: this wallet pays only invoices that say how much.
    #[error("the invoice has no amount; ask for one with an amount")]
    NoAmount,
    /// An amount with a fraction of a satoshi.
    #[error("the invoice asks for a fraction of a satoshi, which this wallet cannot pay")]
    SubSatoshi,
    /// Expired.
    #[error("the invoice expired {ago_secs} s ago; ask for a new one")]
    Expired {
        /// Seconds since it expired.
        ago_secs: u64,
    },
    /// The request cannot be made into an invoice.
    #[error("cannot make the invoice: {0}")]
    Create(String),
}

/// What a payee puts in an invoice.
#[derive(Debug, Clone)]
pub struct InvoiceRequest {
    /// Amount asked.
    pub amount: Amount,
    /// What it is for, shown to the payer.
    pub description: String,
    /// Seconds it stays payable.
    pub expiry_secs: u64,
    /// SHA-256 of the preimage the payee keeps.
    pub hash: sha256::Hash,
    /// The payment secret (random, per invoice).
    pub secret: [u8; 32],
    /// The payee's channel that receives it (named in the route hint).
    pub channel: ChannelId,
    /// The LSP's identity key (the route hint's node).
    pub lsp: XOnlyPublicKey,
    /// The LSP's fees, as published in its terms.
    pub fees: FeeSchedule,
    /// Unix time now.
    pub now_unix: u64,
}

impl InvoiceRequest {
    /// Builds and signs the invoice with the payee's identity key.
    pub fn sign(
        &self,
        network: Network,
        payee: &Keypair,
        policy: &ChannelPolicy,
    ) -> Result<String, InvoiceError> {
        if self.description.len() > MAX_DESCRIPTION {
            return Err(InvoiceError::Create(format!(
                "the description is longer than {MAX_DESCRIPTION} bytes"
            )));
        }
        if self.amount == Amount::ZERO {
            return Err(InvoiceError::Create("the amount must be above zero".into()));
        }
        let hop = RouteHintHop {
            src_node_id: lsp_node_id(&self.lsp),
            short_channel_id: short_channel_id(self.channel),
            fees: RoutingFees {
                base_msat: (self.fees.routing_fee_base.to_sat() * 1000) as u32,
                proportional_millionths: self.fees.routing_fee_ppm,
            },
            cltv_expiry_delta: policy.expiry_delta() as u16,
            htlc_minimum_msat: None,
            htlc_maximum_msat: None,
        };
        let secp = crate::secp::ctx();
        let key = payee.secret_key();
        InvoiceBuilder::new(Currency::from(network))
            .description(self.description.clone())
            .payment_hash(self.hash)
            .payment_secret(PaymentSecret(self.secret))
            .duration_since_epoch(Duration::from_secs(self.now_unix))
            .min_final_cltv_expiry_delta(u64::from(policy.payee_window()))
            .amount_milli_satoshis(self.amount.to_sat() * 1000)
            .expiry_time(Duration::from_secs(self.expiry_secs))
            .private_route(RouteHint(vec![hop]))
            .build_signed(|msg| secp.sign_ecdsa_recoverable(msg, &key))
            .map(|inv| inv.to_string())
            .map_err(|e| InvoiceError::Create(e.to_string()))
    }
}

/// The LSP's node id in route hints: its x-only identity key with even parity.
pub fn lsp_node_id(lsp: &XOnlyPublicKey) -> PublicKey {
    PublicKey::from_x_only_public_key(*lsp, bitcoin::secp256k1::Parity::Even)
}

/// A checked invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedInvoice {
    /// The invoice text.
    pub text: String,
    /// The payment hash.
    pub hash: sha256::Hash,
    /// The amount.
    pub amount: Amount,
    /// The payee's key (who signed it).
    pub payee: PublicKey,
    /// The description (empty if the invoice has only a description hash).
    pub description: String,
    /// Unix time it was made.
    pub created_at: u64,
    /// Unix time it stops being payable.
    pub expires_at: u64,
    /// The payee's channel its route hint names, if it has one (the LSP offers the payment
    /// there first).
    pub hint: Option<ChannelId>,
    /// Blocks the payer must leave the payee's HTLC at least (its final CLTV delta).
    pub min_final_cltv: u64,
}

impl ParsedInvoice {
    /// Reads `text`, checking its signature, network, amount and expiry at `now_unix`.
    pub fn parse(
        text: &str,
        network: Network,
        now_unix: u64,
    ) -> Result<ParsedInvoice, InvoiceError> {
        let text = text.trim();
        let text = text
            .strip_prefix("lightning:")
            .or_else(|| text.strip_prefix("LIGHTNING:"))
            .unwrap_or(text);
        let invoice =
            Bolt11Invoice::from_str(text).map_err(|e| InvoiceError::Invalid(e.to_string()))?;
        if invoice.currency() != Currency::from(network) {
            return Err(InvoiceError::WrongNetwork {
                got: invoice.currency().to_string(),
                want: network,
            });
        }
        let msat = invoice
            .amount_milli_satoshis()
            .ok_or(InvoiceError::NoAmount)?;
        if msat % 1000 != 0 {
            return Err(InvoiceError::SubSatoshi);
        }
        let created_at = invoice.duration_since_epoch().as_secs();
        let expires_at = created_at.saturating_add(invoice.expiry_time().as_secs());
        if now_unix >= expires_at {
            return Err(InvoiceError::Expired {
                ago_secs: now_unix - expires_at,
            });
        }
        let description = match invoice.description() {
            Bolt11InvoiceDescriptionRef::Direct(d) => d.to_string(),
            Bolt11InvoiceDescriptionRef::Hash(_) => String::new(),
        };
        Ok(ParsedInvoice {
            text: text.to_owned(),
            hash: *invoice.payment_hash(),
            amount: Amount::from_sat(msat / 1000),
            payee: invoice.get_payee_pub_key(),
            description,
            created_at,
            expires_at,
            hint: invoice
                .private_routes()
                .first()
                .and_then(|route| route.0.last())
                .map(|hop| super::policy::channel_of_short_id(hop.short_channel_id)),
            min_final_cltv: invoice.min_final_cltv_expiry_delta(),
        })
    }

    /// The payee's identity key as the LSP knows it (x-only).
    pub fn payee_identity(&self) -> XOnlyPublicKey {
        self.payee.x_only_public_key().0
    }
}
