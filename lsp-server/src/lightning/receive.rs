//! Receiving from the Lightning Network for the LSP's clients: the node is the payee of an
//! invoice for a client's payment hash, holds a payment that arrives for it, and claims it only
//! with the preimage the client reveals in its leaf channel (or fails it back).
//!
//! - [`LnNode::register_invoice`]: `receive_for_hash` registers the hash and its payment secret
//!   with LDK; the invoice LDK makes carries LDK's own final CLTV delta (42 blocks), too short
//!   for a leaf channel (`ChannelPolicy::inbound_invoice_delta`), so the same invoice is signed
//!   again with the node's key and the longer delta. LDK takes any HTLC at least its own
//!   delta away, so the longer one only gives the LSP more time.
//! - A payment that arrives is an [`Incoming`] (from LDK's `PaymentClaimable` event): its hash,
//!   the amount held, and LDK's claim deadline, after which LDK fails it back by itself.
//! - [`LnNode::claim_inbound`] claims it with the client's preimage; [`LnNode::fail_inbound`]
//!   fails it back at once.

use std::str::FromStr;

use bitcoin::bip32::{ChildNumber, Xpriv};
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::{Amount, Network};
use ldk_node::lightning_invoice::{
    Bolt11Invoice, Bolt11InvoiceDescription, Bolt11InvoiceDescriptionRef, Currency, Description,
    InvoiceBuilder,
};
use ldk_node::lightning_types::payment::{PaymentHash, PaymentPreimage};
use ldk_node::Event;

use super::{LnError, LnNode};

/// A payment for one of the LSP's clients, held by the node until it is claimed or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming {
    /// The payment hash.
    pub hash: sha256::Hash,
    /// What the node holds, in msat.
    pub amount_msat: u64,
    /// The height after which the node fails it back by itself.
    pub deadline: Option<u32>,
}

impl Incoming {
    /// The payment an LDK event says is waiting to be claimed, if it says so.
    pub(crate) fn of_event(event: &Event) -> Option<Incoming> {
        match event {
            Event::PaymentClaimable {
                payment_hash,
                claimable_amount_msat,
                claim_deadline,
                ..
            } => Some(Incoming {
                hash: sha256::Hash::from_byte_array(payment_hash.0),
                amount_msat: *claimable_amount_msat,
                deadline: *claim_deadline,
            }),
            _ => None,
        }
    }
}

/// What a client asks the node to be the payee of.
#[derive(Debug, Clone)]
pub struct Register {
    /// The client's payment hash.
    pub hash: sha256::Hash,
    /// The amount.
    pub amount: Amount,
    /// Shown to the payer.
    pub description: String,
    /// Seconds it stays payable.
    pub expiry_secs: u32,
    /// The invoice's final CLTV delta.
    pub final_cltv: u32,
}

/// The key the node signs invoices with, derived from its seed the way ldk-node and LDK derive
/// it (the wallet seed's BIP-32 master key is the `KeysManager` seed, whose `m/0'` is the node
/// key); `None` if `node_id` is not its public key (a different derivation: invoices then keep
/// LDK's delta and registration is refused).
pub(crate) fn invoice_key(network: Network, seed: &[u8], node_id: PublicKey) -> Option<SecretKey> {
    let secp = shared::secp::ctx();
    let wallet_master = Xpriv::new_master(network, seed).ok()?;
    let keys_seed = wallet_master.private_key.secret_bytes();
    let keys_master = Xpriv::new_master(Network::Testnet, &keys_seed).ok()?;
    let node = keys_master
        .derive_priv(secp, &[ChildNumber::Hardened { index: 0 }])
        .ok()?
        .private_key;
    (PublicKey::from_secret_key(secp, &node) == node_id).then_some(node)
}

/// `invoice` again, with `final_cltv` as its final CLTV delta, signed with `key`: everything
/// else (hash, secret, amount, time, expiry, route hints) as LDK made it.
fn with_final_cltv(
    invoice: &Bolt11Invoice,
    final_cltv: u32,
    key: &SecretKey,
) -> Result<Bolt11Invoice, String> {
    let description = match invoice.description() {
        Bolt11InvoiceDescriptionRef::Direct(d) => d.to_string(),
        Bolt11InvoiceDescriptionRef::Hash(_) => return Err("a description hash".into()),
    };
    let mut builder = InvoiceBuilder::new(Currency::from(invoice.network()))
        .description(description)
        .payment_hash(*invoice.payment_hash())
        .payment_secret(*invoice.payment_secret())
        .duration_since_epoch(invoice.duration_since_epoch())
        .min_final_cltv_expiry_delta(u64::from(final_cltv))
        .expiry_time(invoice.expiry_time())
        .basic_mpp();
    if let Some(msat) = invoice.amount_milli_satoshis() {
        builder = builder.amount_milli_satoshis(msat);
    }
    for hint in invoice.route_hints() {
        builder = builder.private_route(hint);
    }
    let secp = shared::secp::ctx();
    builder
        .build_signed(|digest| secp.sign_ecdsa_recoverable(digest, key))
        .map_err(|e| e.to_string())
}

impl LnNode {
    /// Makes the node the payee of an invoice for `register.hash`, with the final CLTV delta
    /// asked. A hash the node already knows is refused by LDK.
    pub async fn register_invoice(&self, register: Register) -> Result<String, LnError> {
        let Some(key) = self.invoice_key else {
            return Err(LnError::BadInput {
                field: "invoice",
                reason: "the node's invoice key could not be derived from its seed".into(),
            });
        };
        let description = Description::new(register.description.clone())
            .map(Bolt11InvoiceDescription::Direct)
            .map_err(|e| LnError::BadInput {
                field: "description",
                reason: e.to_string(),
            })?;
        let hash = PaymentHash(register.hash.to_byte_array());
        let msat = register.amount.to_sat() * 1000;
        let expiry = register.expiry_secs;
        let made = self
            .call(move |node| {
                node.bolt11_payment()
                    .receive_for_hash(msat, &description, expiry, hash)
            })
            .await?
            .map_err(LnError::node("register the invoice"))?;
        let made = Bolt11Invoice::from_str(&made.to_string()).map_err(|e| LnError::BadInput {
            field: "invoice",
            reason: e.to_string(),
        })?;
        let signed = with_final_cltv(&made, register.final_cltv, &key).map_err(|reason| {
            LnError::BadInput {
                field: "invoice",
                reason,
            }
        })?;
        tracing::info!(hash = %register.hash, amount_sat = register.amount.to_sat(), final_cltv = register.final_cltv, "invoice registered for a client");
        Ok(signed.to_string())
    }

    /// An ordinary invoice of the node's own (LDK keeps the preimage and claims by itself).
    pub async fn invoice(
        &self,
        amount: Amount,
        description: &str,
        expiry_secs: u32,
    ) -> Result<String, LnError> {
        let description = Description::new(description.to_string())
            .map(Bolt11InvoiceDescription::Direct)
            .map_err(|e| LnError::BadInput {
                field: "description",
                reason: e.to_string(),
            })?;
        let msat = amount.to_sat() * 1000;
        self.call(move |node| {
            node.bolt11_payment()
                .receive(msat, &description, expiry_secs)
                .map(|i| i.to_string())
        })
        .await?
        .map_err(LnError::node("make an invoice"))
    }

    /// Claims the held payment `hash` with `preimage` (`amount_msat`: what the node holds).
    pub async fn claim_inbound(
        &self,
        hash: sha256::Hash,
        amount_msat: u64,
        preimage: [u8; 32],
    ) -> Result<(), LnError> {
        self.call(move |node| {
            node.bolt11_payment().claim_for_hash(
                PaymentHash(hash.to_byte_array()),
                amount_msat,
                PaymentPreimage(preimage),
            )
        })
        .await?
        .map_err(LnError::node("claim the payment"))
    }

    /// Fails the held payment `hash` back to its payer.
    pub async fn fail_inbound(&self, hash: sha256::Hash) -> Result<(), LnError> {
        self.call(move |node| {
            node.bolt11_payment()
                .fail_for_hash(PaymentHash(hash.to_byte_array()))
        })
        .await?
        .map_err(LnError::node("fail the payment back"))
    }
}

#[cfg(test)]
mod tests {
    use ldk_node::lightning::chain::channelmonitor::HTLC_FAIL_BACK_BUFFER;
    use ldk_node::lightning::ln::channelmanager::MIN_FINAL_CLTV_EXPIRY_DELTA;
    use ldk_node::lightning::routing::router::DEFAULT_MAX_TOTAL_CLTV_EXPIRY_DELTA;
    use std::time::Duration;

    use ldk_node::lightning_invoice::PaymentSecret;

    use super::*;

    #[test]
    fn the_timing_model_knows_ldks_buffers() {
        assert_eq!(shared::timing::UPSTREAM_FAIL_BACK, HTLC_FAIL_BACK_BUFFER);
        assert_eq!(
            shared::timing::OUTSIDE_FINAL_CLTV,
            u32::from(MIN_FINAL_CLTV_EXPIRY_DELTA)
        );
        assert_eq!(
            shared::timing::DEFAULT_ROUTE_CLTV,
            DEFAULT_MAX_TOTAL_CLTV_EXPIRY_DELTA
        );
    }

    #[test]
    fn an_invoice_signed_again_keeps_everything_but_its_delta() {
        let secp = shared::secp::ctx();
        let key = SecretKey::from_slice(&[7; 32]).expect("a key");
        let hash = sha256::Hash::hash(b"preimage");
        let made = InvoiceBuilder::new(Currency::Regtest)
            .description("coffee".into())
            .payment_hash(hash)
            .payment_secret(PaymentSecret([3; 32]))
            .duration_since_epoch(Duration::from_secs(1_800_000_000))
            .min_final_cltv_expiry_delta(42)
            .amount_milli_satoshis(21_000_000)
            .expiry_time(Duration::from_secs(3_600))
            .basic_mpp()
            .build_signed(|d| secp.sign_ecdsa_recoverable(d, &key))
            .expect("an invoice");
        let again = with_final_cltv(&made, 130, &key).expect("signed again");
        assert_eq!(again.min_final_cltv_expiry_delta(), 130);
        assert_eq!(again.payment_hash(), made.payment_hash());
        assert_eq!(again.payment_secret(), made.payment_secret());
        assert_eq!(again.amount_milli_satoshis(), Some(21_000_000));
        assert_eq!(again.expiry_time(), made.expiry_time());
        assert_eq!(again.duration_since_epoch(), made.duration_since_epoch());
        assert_eq!(
            again.recover_payee_pub_key(),
            PublicKey::from_secret_key(secp, &key)
        );
        again.check_signature().expect("a valid signature");
    }
}
