//! Cooperative close, driven like a round: each side sends `Shutdown` with its payout script
//! (after which it accepts no more updates or rounds), the LSP sends `CloseStart` with the fee
//! rate and its nonce, the client checks it is paid its whole latest balance and signs
//! (`CloseSigned`), the LSP aggregates, broadcasts and sends the signature (`CloseDone`).
//! Each side signs at most one close (a second, different one is refused).

use bitcoin::secp256k1::schnorr;
use bitcoin::{FeeRate, ScriptBuf, TapSighash, Transaction, Witness};
use rand::{CryptoRng, RngCore};

use crate::channel::close::{build_close, close_sighash, paid_to};
use crate::channel::commitment::Side;
use crate::channel::messages::{Action, ChannelChange, ChannelEvent, ChannelMsg};
use crate::channel::ChannelError;
use crate::musig::{
    aggregate, aggregate_nonces, generate_nonce_as, sign_partial_as, verify_final, verify_partial,
    PartialSig, PubNonce, SecNonce,
};

use super::round::order;
use super::Channel;

/// Where a side is in the cooperative close.
#[derive(Default)]
pub(super) struct Closing {
    pub(super) mine: Option<ScriptBuf>,
    pub(super) theirs: Option<ScriptBuf>,
    /// LSP: the close being signed and its nonce.
    pub(super) pending: Option<(Transaction, SecNonce, PubNonce)>,
    /// The only close sighash this side will sign.
    pub(super) signed: Option<TapSighash>,
}

impl Channel {
    /// Whether this side sent or received `Shutdown` (no more updates or rounds).
    pub fn is_closing(&self) -> bool {
        self.closing.mine.is_some() || self.closing.theirs.is_some()
    }

    /// Starts closing: pays this side to `script`. Needs no round under way, every update
    /// committed and no HTLC pending.
    pub fn shutdown(&mut self, script: ScriptBuf) -> Result<(), ChannelError> {
        if self.closing.mine.is_some() {
            return Err(ChannelError::Unexpected {
                reason: "shutdown already sent",
            });
        }
        self.check_quiet()?;
        self.closing.mine = Some(script.clone());
        self.actions
            .push_back(Action::Persist(ChannelChange::Shutdown {
                from: self.side,
                script: script.clone(),
            }));
        self.actions
            .push_back(Action::Send(ChannelMsg::Shutdown { script }));
        Ok(())
    }

    fn check_quiet(&self) -> Result<(), ChannelError> {
        let settled = [Side::Lsp, Side::Client]
            .iter()
            .all(|s| self.logs[s].len() as u64 == self.committed[s]);
        if self.in_round() || !settled || !self.spec.htlcs.is_empty() || self.number.is_none() {
            return Err(ChannelError::Unexpected {
                reason: "close only a quiet channel: no round, no uncommitted update, no HTLC",
            });
        }
        Ok(())
    }

    pub(super) fn on_shutdown(&mut self, script: ScriptBuf) -> Result<(), ChannelError> {
        if self.closing.theirs.is_some() {
            return Err(ChannelError::Unexpected {
                reason: "shutdown received twice",
            });
        }
        self.check_quiet()?;
        self.closing.theirs = Some(script.clone());
        self.actions
            .push_back(Action::Persist(ChannelChange::Shutdown {
                from: self.side.other(),
                script,
            }));
        Ok(())
    }

    fn close_tx(&self, feerate: FeeRate) -> Result<Transaction, ChannelError> {
        let (Some(mine), Some(theirs)) = (&self.closing.mine, &self.closing.theirs) else {
            return Err(ChannelError::Unexpected {
                reason: "both sides must send shutdown first",
            });
        };
        let (lsp, client) = match self.side {
            Side::Lsp => (mine, theirs),
            Side::Client => (theirs, mine),
        };
        build_close(&self.params, &self.spec, lsp, client, feerate)
    }

    fn close_guard(&mut self, sighash: TapSighash) -> Result<(), ChannelError> {
        match self.closing.signed {
            Some(s) if s != sighash => Err(ChannelError::Unexpected {
                reason: "refusing to sign a second, different close",
            }),
            _ => {
                self.closing.signed = Some(sighash);
                self.actions
                    .push_back(Action::Persist(ChannelChange::CloseRecord { sighash }));
                Ok(())
            }
        }
    }

    /// LSP: proposes the close at `feerate` (it pays the fee).
    pub fn start_close<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        feerate: FeeRate,
    ) -> Result<(), ChannelError> {
        if self.side != Side::Lsp {
            return Err(ChannelError::Unexpected {
                reason: "the LSP proposes the close",
            });
        }
        let tx = self.close_tx(feerate)?;
        let sighash = close_sighash(&self.params, &tx);
        if self.closing.signed.is_some_and(|s| s != sighash) {
            return Err(ChannelError::Unexpected {
                reason: "a different close was already signed",
            });
        }
        let (sec, public) = generate_nonce_as(
            rng,
            &self.funding_signer,
            &self.funding_keys,
            &sighash,
            b"superscalar/channel/close",
        );
        self.actions.push_back(Action::Send(ChannelMsg::CloseStart {
            feerate,
            nonce: public.clone(),
        }));
        self.closing.pending = Some((tx, sec, public));
        Ok(())
    }

    pub(super) fn client_on_close_start<R: RngCore + CryptoRng>(
        &mut self,
        feerate: FeeRate,
        lsp_nonce: PubNonce,
        rng: &mut R,
    ) -> Result<(), ChannelError> {
        let tx = self.close_tx(feerate)?;
        let mine = self.closing.mine.clone().expect("close_tx checked it");
        if self.spec.client_balance >= self.params.dust_limit
            && paid_to(&tx, &mine) != self.spec.client_balance
        {
            return Err(ChannelError::BadUpdate {
                reason: "the close does not pay the client its whole balance",
            });
        }
        let sighash = close_sighash(&self.params, &tx);
        self.close_guard(sighash)?;
        let (sec, public) = generate_nonce_as(
            rng,
            &self.funding_signer,
            &self.funding_keys,
            &sighash,
            b"superscalar/channel/close",
        );
        let agg = aggregate_nonces([&lsp_nonce, &public]);
        let partial = sign_partial_as(
            &self.funding_keys,
            &self.funding_signer,
            sec,
            &agg,
            &sighash,
        )?;
        self.closing.pending = None;
        self.actions
            .push_back(Action::Send(ChannelMsg::CloseSigned {
                nonce: public,
                partial,
            }));
        // Kept to check the LSP's final signature.
        self.close_expect = Some(tx);
        Ok(())
    }

    pub(super) fn lsp_on_close_signed(
        &mut self,
        client_nonce: PubNonce,
        partial: PartialSig,
    ) -> Result<(), ChannelError> {
        let Some((tx, _, public)) = &self.closing.pending else {
            return Err(ChannelError::Unexpected {
                reason: "no close under way",
            });
        };
        let sighash = close_sighash(&self.params, tx);
        let agg = aggregate_nonces([public, &client_nonce]);
        verify_partial(
            &self.funding_keys,
            &partial,
            &agg,
            &self.params.client_funding_key,
            &client_nonce,
            &sighash,
        )?;
        self.close_guard(sighash)?;
        let (mut tx, sec, _) = self.closing.pending.take().expect("checked above");
        let mine = sign_partial_as(
            &self.funding_keys,
            &self.funding_signer,
            sec,
            &agg,
            &sighash,
        )?;
        let sig = aggregate(
            &self.funding_keys,
            &agg,
            &order(
                &self.funding_keys,
                self.params.lsp_funding_key,
                mine,
                partial,
            ),
            &sighash,
        )?;
        tx.input[0].witness = Witness::from_slice(&[sig.serialize()]);
        self.actions.push_back(Action::Broadcast(tx.clone()));
        self.actions
            .push_back(Action::Send(ChannelMsg::CloseDone { signature: sig }));
        self.actions.push_back(Action::Emit(ChannelEvent::Closed {
            txid: tx.compute_txid(),
        }));
        Ok(())
    }

    pub(super) fn client_on_close_done(
        &mut self,
        signature: schnorr::Signature,
    ) -> Result<(), ChannelError> {
        let Some(tx) = &self.close_expect else {
            return Err(ChannelError::Unexpected {
                reason: "no close signed",
            });
        };
        let sighash = close_sighash(&self.params, tx);
        verify_final(&self.funding_keys, &signature, &sighash)?;
        let mut tx = self.close_expect.take().expect("checked above");
        tx.input[0].witness = Witness::from_slice(&[signature.serialize()]);
        self.actions.push_back(Action::Broadcast(tx.clone()));
        self.actions.push_back(Action::Emit(ChannelEvent::Closed {
            txid: tx.compute_txid(),
        }));
        Ok(())
    }
}
