//! Paying an outside invoice through the node, and what became of it.
//!
//! [`LnNode::pay`] checks before anything moves (the invoice's final CLTV delta within the
//! budget, the amount within the node's outbound liquidity) and hands the invoice to LDK with
//! both caps. LDK identifies the payment by its hash: a second `pay` of a hash it still sends,
//! or has sent, is not a second payment ([`PayOutcome::InFlight`]), which makes sending again
//! after a restart safe. The result comes as an [`Outcome`] from the node's events, or from
//! [`LnNode::outcome`] when asked (reconciling after a restart).

use std::str::FromStr;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::Amount;
use ldk_node::lightning::events::PaymentFailureReason;
use ldk_node::lightning::ln::channelmanager::PaymentId;
use ldk_node::lightning::routing::router::RouteParametersConfig;
use ldk_node::lightning_invoice::Bolt11Invoice;
use ldk_node::payment::{PaymentKind, PaymentStatus};
use ldk_node::{Event, NodeError};

use super::{LnError, LnNode};

/// What the LSP allows one outside payment.
#[derive(Debug, Clone)]
pub struct OutsidePayment {
    /// The invoice, as the payer sent it.
    pub invoice: String,
    /// The most the route's nodes may take (the whole route, retries included).
    pub max_fee: Amount,
    /// The most blocks the route's whole CLTV may span, the payee's final delta included.
    pub max_cltv: u32,
}

/// How a payment's sending went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayOutcome {
    /// LDK took it; the result comes as an event.
    Sent,
    /// LDK already sends (or sent) this hash; the result comes (or came) as an event.
    InFlight,
    /// Refused before anything moved, with the reason for the payer.
    Refused(String),
}

/// What became of an outside payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The payee released the preimage.
    Paid {
        /// The payment hash.
        hash: sha256::Hash,
        /// The proof.
        preimage: [u8; 32],
        /// What the route's nodes took.
        network_fee_msat: u64,
    },
    /// It cannot succeed any more; nothing was paid.
    Failed {
        /// The payment hash.
        hash: sha256::Hash,
        /// Why, for the payer.
        reason: String,
    },
}

impl Outcome {
    /// The outcome an LDK event reports, if it reports one.
    pub(crate) fn of_event(event: &Event) -> Option<Outcome> {
        match event {
            Event::PaymentSuccessful {
                payment_hash,
                payment_preimage: Some(preimage),
                fee_paid_msat,
                ..
            } => Some(Outcome::Paid {
                hash: sha256::Hash::from_byte_array(payment_hash.0),
                preimage: preimage.0,
                network_fee_msat: fee_paid_msat.unwrap_or(0),
            }),
            Event::PaymentFailed {
                payment_hash: Some(hash),
                reason,
                ..
            } => Some(Outcome::Failed {
                hash: sha256::Hash::from_byte_array(hash.0),
                reason: reason.map_or("no reason given".into(), failure_reason),
            }),
            _ => None,
        }
    }
}

/// LDK's reason a payment failed, in words for the payer.
fn failure_reason(reason: PaymentFailureReason) -> String {
    use PaymentFailureReason as R;
    match reason {
        R::RecipientRejected => "the recipient rejected it".into(),
        R::RetriesExhausted => "every route tried failed".into(),
        R::PaymentExpired => "the invoice expired while it was being paid".into(),
        R::RouteNotFound => "no route to the recipient within the fee and time limits".into(),
        R::UnknownRequiredFeatures => "the invoice asks for features the provider lacks".into(),
        other => format!("{other:?}"),
    }
}

impl LnNode {
    /// Sends `payment` unless a check fails first: the invoice's final CLTV delta must fit
    /// `max_cltv`, and its amount the node's outbound liquidity.
    pub async fn pay(&self, payment: OutsidePayment) -> Result<PayOutcome, LnError> {
        let invoice =
            Bolt11Invoice::from_str(payment.invoice.trim()).map_err(|e| LnError::BadInput {
                field: "invoice",
                reason: e.to_string(),
            })?;
        let final_cltv = invoice.min_final_cltv_expiry_delta();
        if final_cltv > u64::from(payment.max_cltv) {
            return Ok(PayOutcome::Refused(format!(
                "the invoice needs {final_cltv} blocks for its final hop, and the payment's \
                 expiry leaves the provider {} blocks for the whole route",
                payment.max_cltv
            )));
        }
        let amount_msat = invoice.amount_milli_satoshis().unwrap_or(0);
        let config = RouteParametersConfig::default()
            .with_max_total_routing_fee_msat(payment.max_fee.to_sat() * 1000)
            .with_max_total_cltv_expiry_delta(payment.max_cltv);
        self.call(move |node| {
            let outbound: u64 = node
                .list_channels()
                .iter()
                .filter(|c| c.is_usable)
                .map(|c| c.next_outbound_htlc_limit_msat)
                .sum();
            let hash = PaymentId(invoice.payment_hash().to_byte_array());
            let known = node.payment(&hash).map(|p| p.status);
            if matches!(
                known,
                Some(PaymentStatus::Pending | PaymentStatus::Succeeded)
            ) {
                return Ok(PayOutcome::InFlight);
            }
            if amount_msat > outbound {
                return Ok(PayOutcome::Refused(format!(
                    "the provider can send at most {} sat to the Lightning Network now",
                    outbound / 1000
                )));
            }
            match node.bolt11_payment().send(&invoice, Some(config)) {
                Ok(_) => Ok(PayOutcome::Sent),
                Err(NodeError::DuplicatePayment) => Ok(PayOutcome::InFlight),
                Err(NodeError::PaymentSendingFailed) => Ok(PayOutcome::Refused(
                    "no route to the recipient within the fee and time limits".into(),
                )),
                Err(e) => Err(LnError::node("send the payment")(e)),
            }
        })
        .await?
    }

    /// What LDK knows of the payment with this hash: `None` if it never took it.
    pub async fn outcome(&self, hash: sha256::Hash) -> Result<Option<Status>, LnError> {
        self.call(move |node| {
            let details = node.payment(&PaymentId(hash.to_byte_array()))?;
            Some(match details.status {
                PaymentStatus::Pending => Status::Pending,
                PaymentStatus::Failed => Status::Done(Outcome::Failed {
                    hash,
                    reason: "the Lightning Network payment failed".into(),
                }),
                PaymentStatus::Succeeded => match details.kind {
                    PaymentKind::Bolt11 {
                        preimage: Some(p), ..
                    } => Status::Done(Outcome::Paid {
                        hash,
                        preimage: p.0,
                        network_fee_msat: details.fee_paid_msat.unwrap_or(0),
                    }),
                    // Succeeded without a preimage cannot be an invoice payment of ours.
                    _ => Status::Pending,
                },
            })
        })
        .await
    }
}

/// What LDK knows of a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Still being sent: the result comes as an event.
    Pending,
    /// Done.
    Done(Outcome),
}

#[cfg(test)]
mod tests {
    use ldk_node::lightning_types::payment::{PaymentHash, PaymentPreimage};

    use super::*;

    #[test]
    fn payment_events_become_outcomes_and_others_do_not() {
        let preimage = [9u8; 32];
        let hash = sha256::Hash::hash(&preimage);
        let paid = Event::PaymentSuccessful {
            payment_id: None,
            payment_hash: PaymentHash(hash.to_byte_array()),
            payment_preimage: Some(PaymentPreimage(preimage)),
            fee_paid_msat: Some(1_500),
        };
        assert_eq!(
            Outcome::of_event(&paid),
            Some(Outcome::Paid {
                hash,
                preimage,
                network_fee_msat: 1_500
            })
        );
        let failed = Event::PaymentFailed {
            payment_id: None,
            payment_hash: Some(PaymentHash(hash.to_byte_array())),
            reason: Some(PaymentFailureReason::RouteNotFound),
        };
        let Some(Outcome::Failed { reason, .. }) = Outcome::of_event(&failed) else {
            panic!("a failure")
        };
        assert!(reason.contains("no route"), "{reason}");
        let received = Event::PaymentReceived {
            payment_id: None,
            payment_hash: PaymentHash(hash.to_byte_array()),
            amount_msat: 1,
            custom_records: Vec::new(),
        };
        assert_eq!(Outcome::of_event(&received), None);
    }
}
