//! The join fee a channel still owes, and how an incoming HTLC pays it.
//!
//! A client brings no coins to its join, so the fee of the quote it accepted
//! ([`Quote::fee`](crate::ceremony::Quote): the terms' `join_fee` plus the liquidity part) cannot
//! be paid then. As LSPS2 does with its opening fee, the LSP takes it from the first payment the
//! channel receives that leaves the client at least [`MIN_RECEIVED`]: it offers the payee an HTLC
//! short by exactly the fee, and the payee's wallet accepts an HTLC short by exactly its unpaid
//! fee, once.
//!
//! Both sides decide with [`JoinFee`] from the same inputs (the quoted fee, the invoice's amount,
//! and which payment, if any, paid the fee), so they cannot disagree about whether a payment pays
//! it: the LSP asks [`JoinFee::deduction`], the wallet [`JoinFee::check`]. The record of which
//! payment paid is what each side persists; a payment that fails gives the fee back
//! ([`JoinFee::release`]), so it is never taken twice and never lost.

use bitcoin::hashes::sha256;
use bitcoin::Amount;

/// The least a payment that pays the join fee leaves the client: a smaller one is delivered in
/// full and the fee waits for the next.
pub const MIN_RECEIVED: Amount = Amount::from_sat(1_000);

/// What a channel owes for its join: the quoted fee, and the payment that paid it (or, at the
/// LSP, is paying it: an HTLC offered and not yet settled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinFee {
    quoted: Amount,
    paid_by: Option<sha256::Hash>,
}

/// Why an incoming HTLC is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinFeeError {
    /// Less than the invoice, and not short by exactly the unpaid fee.
    #[error(
        "the HTLC carries {htlc}, less than the invoice's {invoice}, and is not short by exactly \
         the unpaid join fee ({owed})"
    )]
    Short {
        /// The HTLC's amount.
        htlc: Amount,
        /// The invoice's amount.
        invoice: Amount,
        /// The fee still owed.
        owed: Amount,
    },
    /// Taking the fee would leave the client less than [`MIN_RECEIVED`].
    #[error("taking the join fee from this payment leaves {left}, less than {MIN_RECEIVED}")]
    TooSmall {
        /// What the HTLC leaves the client.
        left: Amount,
    },
    /// Another payment paid the fee already.
    #[error("the join fee was already paid by payment {by}")]
    AlreadyPaid {
        /// The payment hash that paid it.
        by: sha256::Hash,
    },
}

impl JoinFee {
    /// A channel whose join quoted `quoted` and that has paid nothing yet.
    pub fn owed(quoted: Amount) -> JoinFee {
        JoinFee {
            quoted,
            paid_by: None,
        }
    }

    /// A channel whose join fee `quoted` payment `hash` paid (or is paying).
    pub fn paid(quoted: Amount, hash: sha256::Hash) -> JoinFee {
        JoinFee {
            quoted,
            paid_by: Some(hash),
        }
    }

    /// The fee of the accepted quote.
    pub fn quoted(&self) -> Amount {
        self.quoted
    }

    /// The payment that paid it, if one did.
    pub fn paid_by(&self) -> Option<sha256::Hash> {
        self.paid_by
    }

    /// What is still owed: the quoted fee until a payment pays it, then nothing.
    pub fn unpaid(&self) -> Amount {
        match self.paid_by {
            Some(_) => Amount::ZERO,
            None => self.quoted,
        }
    }

    /// LSP: the fee to take from a payment delivering `amount` into this channel: the whole
    /// unpaid fee if what is left is at least [`MIN_RECEIVED`], else nothing (the fee waits for
    /// a larger payment).
    pub fn deduction(&self, amount: Amount) -> Amount {
        let owed = self.unpaid();
        match amount.checked_sub(owed) {
            Some(left) if owed > Amount::ZERO && left >= MIN_RECEIVED => owed,
            _ => Amount::ZERO,
        }
    }

    /// Payee: checks an HTLC of `htlc` towards an invoice of `invoice` (payment hash `hash`).
    /// Returns what it pays of the join fee: nothing when it carries the invoice's amount (or
    /// more), the whole unpaid fee when it is short by exactly that and leaves at least
    /// [`MIN_RECEIVED`]. The payment that paid the fee passes again (a retry after a restart).
    pub fn check(
        &self,
        invoice: Amount,
        hash: sha256::Hash,
        htlc: Amount,
    ) -> Result<Amount, JoinFeeError> {
        let Some(short) = invoice.checked_sub(htlc).filter(|s| *s > Amount::ZERO) else {
            return Ok(Amount::ZERO);
        };
        let owed = match self.paid_by {
            None => self.quoted,
            Some(by) if by == hash => self.quoted,
            Some(by) => return Err(JoinFeeError::AlreadyPaid { by }),
        };
        if short != owed {
            return Err(JoinFeeError::Short {
                htlc,
                invoice,
                owed,
            });
        }
        if htlc < MIN_RECEIVED {
            return Err(JoinFeeError::TooSmall { left: htlc });
        }
        Ok(owed)
    }

    /// Records that payment `hash` pays the fee (again for the same payment is no change).
    pub fn pay(&mut self, hash: sha256::Hash) -> Result<(), JoinFeeError> {
        match self.paid_by {
            Some(by) if by != hash => Err(JoinFeeError::AlreadyPaid { by }),
            _ => {
                self.paid_by = Some(hash);
                Ok(())
            }
        }
    }

    /// Payment `hash` failed: if it was paying the fee, the fee is owed again.
    pub fn release(&mut self, hash: sha256::Hash) {
        if self.paid_by == Some(hash) {
            self.paid_by = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::hashes::Hash;

    use super::*;

    const FEE: Amount = Amount::from_sat(1_500);

    fn sat(n: u64) -> Amount {
        Amount::from_sat(n)
    }

    fn hash(byte: u8) -> sha256::Hash {
        sha256::Hash::hash(&[byte])
    }

    #[test]
    fn the_lsp_takes_the_whole_fee_only_from_a_payment_leaving_at_least_the_minimum() {
        let fee = JoinFee::owed(FEE);
        assert_eq!(fee.unpaid(), FEE);
        assert_eq!(fee.deduction(sat(2_499)), Amount::ZERO, "leaves 999 sat");
        assert_eq!(fee.deduction(sat(2_500)), FEE, "leaves exactly 1,000 sat");
        assert_eq!(fee.deduction(sat(20_000)), FEE);
        assert_eq!(fee.deduction(sat(1_000)), Amount::ZERO, "less than the fee");
        assert_eq!(
            JoinFee::owed(Amount::ZERO).deduction(sat(20_000)),
            Amount::ZERO
        );
    }

    #[test]
    fn the_fee_is_taken_once() {
        let mut fee = JoinFee::owed(FEE);
        fee.pay(hash(1)).unwrap();
        assert_eq!(fee.unpaid(), Amount::ZERO);
        assert_eq!(fee.deduction(sat(20_000)), Amount::ZERO);
        assert_eq!(fee.paid_by(), Some(hash(1)));
        assert_eq!(
            fee.pay(hash(2)),
            Err(JoinFeeError::AlreadyPaid { by: hash(1) })
        );
        // The same payment again (a restart) changes nothing.
        fee.pay(hash(1)).unwrap();
        assert_eq!(fee, JoinFee::paid(FEE, hash(1)));
    }

    #[test]
    fn a_failed_payment_gives_the_fee_back_and_another_does_not() {
        let mut fee = JoinFee::paid(FEE, hash(1));
        fee.release(hash(2));
        assert_eq!(fee.unpaid(), Amount::ZERO);
        fee.release(hash(1));
        assert_eq!(fee.unpaid(), FEE);
        assert_eq!(fee.deduction(sat(20_000)), FEE);
    }

    #[test]
    fn the_payee_accepts_exactly_the_invoice_or_exactly_the_invoice_less_the_unpaid_fee() {
        let fee = JoinFee::owed(FEE);
        let (invoice, h) = (sat(10_000), hash(1));
        assert_eq!(fee.check(invoice, h, sat(10_000)), Ok(Amount::ZERO));
        assert_eq!(fee.check(invoice, h, sat(10_005)), Ok(Amount::ZERO));
        assert_eq!(fee.check(invoice, h, sat(8_500)), Ok(FEE));
        for wrong in [8_499, 8_501, 9_999, 1] {
            assert_eq!(
                fee.check(invoice, h, sat(wrong)),
                Err(JoinFeeError::Short {
                    htlc: sat(wrong),
                    invoice,
                    owed: FEE
                }),
                "{wrong}"
            );
        }
        // Short by the fee, but what is left is below the minimum.
        assert_eq!(
            fee.check(sat(2_499), h, sat(999)),
            Err(JoinFeeError::TooSmall { left: sat(999) })
        );
        assert_eq!(fee.check(sat(2_500), h, sat(1_000)), Ok(FEE));
    }

    #[test]
    fn the_payee_refuses_a_second_deduction_but_accepts_the_paying_payment_again() {
        let fee = JoinFee::paid(FEE, hash(1));
        assert_eq!(fee.check(sat(10_000), hash(1), sat(8_500)), Ok(FEE));
        assert_eq!(
            fee.check(sat(10_000), hash(2), sat(8_500)),
            Err(JoinFeeError::AlreadyPaid { by: hash(1) })
        );
        assert_eq!(
            fee.check(sat(10_000), hash(2), sat(10_000)),
            Ok(Amount::ZERO)
        );
    }

    #[test]
    fn without_a_fee_nothing_short_passes() {
        let fee = JoinFee::owed(Amount::ZERO);
        assert!(matches!(
            fee.check(sat(10_000), hash(1), sat(9_999)),
            Err(JoinFeeError::Short { .. })
        ));
    }

    #[test]
    fn lsp_and_payee_agree_on_every_amount() {
        // Whatever the LSP deducts, the payee accepts; nothing else short passes.
        for quoted in [0, 1, 999, 1_500, 20_000] {
            let fee = JoinFee::owed(sat(quoted));
            for amount in (0..30_000).step_by(97) {
                let taken = fee.deduction(sat(amount));
                let offered = sat(amount) - taken;
                let accepted = fee.check(sat(amount), hash(1), offered);
                assert_eq!(accepted, Ok(taken), "quoted {quoted}, amount {amount}");
            }
        }
    }
}
