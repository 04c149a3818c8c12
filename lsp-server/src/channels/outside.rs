//! Payments to payees outside the LSP, through its Lightning node (`crate::lightning`).
//!
//! A payer's committed HTLC whose invoice's payee has no channel with the LSP goes out through
//! the node when one runs (`Forwards::deliver` hands it here):
//!
//! 1. The CLTV budget: the outside route must end by the payer's expiry less the payee window
//!    (`ChannelPolicy::outside_budget`), so that the LSP, which learns the preimage by then at
//!    the latest, can still walk the payer's tree and claim its HTLC on chain. No block left:
//!    failed back as `expired`.
//! 2. The row becomes `outside` with its invoice, stored before the node is asked to send.
//! 3. The node checks the invoice's final delta against the budget and the amount against its
//!    outbound liquidity, then sends with the fee cap the payer saw (the routing fee it pays the
//!    LSP) and the CLTV budget. A refusal fails the payer's HTLC back with the reason.
//! 4. `PaymentSuccessful` settles the payer's HTLC with the preimage (the route's fee is stored
//!    and comes out of the LSP's fee); `PaymentFailed` fails it back with LDK's reason.
//!
//! After a restart each pending outside payment is looked up in the node: succeeded → settle,
//! failed → fail back, pending → wait for its event, unknown → send again (LDK keys payments by
//! hash, so nothing is paid twice). An error that leaves unclear whether the node sent is
//! settled the same way, by asking the node, never by failing back blindly.

use bitcoin::hashes::{sha256, Hash};
use shared::pay::{PayFailure, PayOutcome as WireOutcome};

use super::forward::ForwardState;
use super::Router;
use crate::lightning::pay::{Outcome, OutsidePayment, PayOutcome, Status};
use crate::lightning::{LnError, LnNode, Report};

impl Router {
    /// Hands payment `row` (a payer's HTLC, committed) to the Lightning node.
    pub(super) fn pay_outside(&mut self, row: i64) {
        let Some(f) = self.forwards.by_row.get(&row).cloned() else {
            return;
        };
        let budget = f.expiry_in.and_then(|e| {
            self.settings
                .policy
                .outside_budget(e, self.freshest_height())
        });
        let Some(budget) = budget else {
            return self.fail_forward(row, PayFailure::Expired);
        };
        if let Err(e) = self.store.payment_outside(row, &f.invoice) {
            tracing::error!(row, error = %e, "could not store an outside payment; failing it");
            return self.fail_forward(
                row,
                PayFailure::Network {
                    reason: "the provider could not record the payment".into(),
                },
            );
        }
        if let Some(fw) = self.forwards.by_row.get_mut(&row) {
            fw.state = ForwardState::Outside;
        }
        tracing::info!(row, hash = %f.hash, amount_sat = f.amount.to_sat(), max_fee_sat = f.fee.to_sat(), max_cltv = budget, "paying an outside invoice");
        self.send_outside(
            f.hash,
            OutsidePayment {
                invoice: f.invoice,
                max_fee: f.fee,
                max_cltv: budget,
            },
        );
    }

    /// Asks the node to send, in a task of its own; a refusal comes back as an [`Outcome`].
    fn send_outside(&self, hash: sha256::Hash, payment: OutsidePayment) {
        let (Some(ln), tx) = (self.ln.clone(), self.outside.0.clone()) else {
            return;
        };
        tokio::spawn(async move {
            let outcome = match ln.pay(payment).await {
                Ok(PayOutcome::Sent | PayOutcome::InFlight) => return,
                Ok(PayOutcome::Refused(reason)) => Outcome::Failed { hash, reason },
                Err(e @ LnError::BadInput { .. }) => Outcome::Failed {
                    hash,
                    reason: e.to_string(),
                },
                Err(e) => match settled_by_node(&ln, hash).await {
                    Some(Ok(outcome)) => outcome,
                    Some(Err(())) => Outcome::Failed {
                        hash,
                        reason: format!("the provider's node could not send it: {e}"),
                    },
                    None => {
                        tracing::warn!(%hash, error = %e, "unclear whether the node sent an outside payment; waiting for its outcome");
                        return;
                    }
                },
            };
            let _ = tx.send(Report::Outcome(outcome)).await;
        });
    }

    /// After a restart: looks up every pending outside payment in the node.
    pub(super) fn reconcile_outside(&mut self) {
        let pending: Vec<(i64, sha256::Hash)> = self
            .forwards
            .by_row
            .values()
            .filter(|f| f.state == ForwardState::Outside)
            .map(|f| (f.row, f.hash))
            .collect();
        for (row, hash) in pending {
            let Some(ln) = self.ln.clone() else {
                tracing::error!(row, %hash, "an outside payment is pending but the Lightning node is off; start the LSP with --ln-listen to settle it");
                continue;
            };
            let tx = self.outside.0.clone();
            match self.resend_payment(row) {
                Some(payment) => {
                    tokio::spawn(async move {
                        match ln.outcome(hash).await {
                            Ok(Some(Status::Done(outcome))) => {
                                let _ = tx.send(Report::Outcome(outcome)).await;
                            }
                            Ok(Some(Status::Pending)) => {}
                            Ok(None) => {
                                tracing::info!(row, %hash, "an outside payment the node never took: sending it again");
                                let outcome = match ln.pay(payment).await {
                                    Ok(PayOutcome::Refused(reason)) => {
                                        Outcome::Failed { hash, reason }
                                    }
                                    Ok(_) => return,
                                    Err(e) => {
                                        return tracing::warn!(row, error = %e, "could not send an outside payment again")
                                    }
                                };
                                let _ = tx.send(Report::Outcome(outcome)).await;
                            }
                            Err(e) => {
                                tracing::warn!(row, error = %e, "could not look up an outside payment")
                            }
                        }
                    });
                }
                None => {
                    // No budget left: fail back, unless the node has it.
                    tokio::spawn(async move {
                        let outcome = match settled_by_node(&ln, hash).await {
                            Some(Ok(outcome)) => outcome,
                            Some(Err(())) => Outcome::Failed {
                                hash,
                                reason: "no time was left to send it".into(),
                            },
                            None => return,
                        };
                        let _ = tx.send(Report::Outcome(outcome)).await;
                    });
                }
            }
        }
    }

    /// The payment to send again for `row`, if its budget has a block left.
    fn resend_payment(&self, row: i64) -> Option<OutsidePayment> {
        let f = self.forwards.by_row.get(&row)?;
        let budget = self
            .settings
            .policy
            .outside_budget(f.expiry_in?, self.freshest_height())?;
        Some(OutsidePayment {
            invoice: f.invoice.clone(),
            max_fee: f.fee,
            max_cltv: budget,
        })
    }

    /// The highest tip the LSP knows: the budget counts from it, since a lagging tip would
    /// give the route blocks the LSP does not have. (LDK counts the budget from its own best
    /// block, which never leads the chain, so its HTLC expires by the budget at the latest.)
    pub(super) fn freshest_height(&self) -> u32 {
        self.tip.height().unwrap_or(0).max(self.height)
    }

    /// The node says what became of an outside payment.
    pub(super) fn on_outside(&mut self, outcome: Outcome) {
        let hash = match &outcome {
            Outcome::Paid { hash, .. } | Outcome::Failed { hash, .. } => *hash,
        };
        let row = self
            .forwards
            .by_row
            .values()
            .find(|f| f.hash == hash && f.state == ForwardState::Outside)
            .map(|f| f.row);
        let Some(row) = row else {
            // Already settled or failed (an event that came again, or a refusal and its event).
            tracing::debug!(%hash, "an outside outcome with no payment in flight");
            return;
        };
        match outcome {
            Outcome::Paid {
                preimage,
                network_fee_msat,
                ..
            } => self.settle_outside(row, preimage, network_fee_msat),
            Outcome::Failed { reason, .. } => {
                self.fail_forward(row, PayFailure::Network { reason });
            }
        }
    }

    fn settle_outside(&mut self, row: i64, preimage: [u8; 32], network_fee_msat: u64) {
        let Some(f) = self.forwards.by_row.get(&row).cloned() else {
            return;
        };
        if sha256::Hash::hash(&preimage) != f.hash {
            tracing::error!(row, "the node's preimage does not match the payment hash");
            return;
        }
        self.forwards.by_row.remove(&row);
        let now = self.now().unix_time;
        if let Err(e) = self.store.payment_network_fee(row, network_fee_msat) {
            tracing::error!(row, error = %e, "could not store an outside payment's network fee");
        }
        if let Some((c, h, who)) = f.payer {
            // What the route took, in whole sats rounded up (never above the fee it was capped
            // at).
            let network_fee = bitcoin::Amount::from_sat(network_fee_msat.div_ceil(1000)).min(f.fee);
            let paid = WireOutcome::Paid {
                preimage,
                fee: f.fee,
                network_fee: Some(network_fee),
            };
            self.answer_payer(c, h, who, f.hash, paid);
        }
        self.totals.settled += 1;
        self.totals.volume_sat += f.amount.to_sat();
        self.totals.fees_sat += f.fee.to_sat();
        let _ = self.store.payment_ended(row, "settled", None, now);
        tracing::info!(hash = %f.hash, amount_sat = f.amount.to_sat(), fee_sat = f.fee.to_sat(), network_fee_msat, "outside payment delivered");
    }
}

/// Whether the node has a final answer for `hash`: `Some(Ok)` its outcome, `Some(Err)` it
/// never took the payment (nothing was sent), `None` pending or unknown (wait).
async fn settled_by_node(ln: &LnNode, hash: sha256::Hash) -> Option<Result<Outcome, ()>> {
    match ln.outcome(hash).await {
        Ok(Some(Status::Done(outcome))) => Some(Ok(outcome)),
        Ok(None) => Some(Err(())),
        Ok(Some(Status::Pending)) | Err(_) => None,
    }
}
