//! Updates: the commands that propose them, their checks, and how they apply to a state.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::{absolute, Amount, FeeRate};

use crate::channel::commitment::{self, CommitmentSpec, Htlc, Side};
use crate::channel::messages::{Action, ChannelChange, ChannelMsg, Update, UpdateMsg};
use crate::channel::ChannelError;
use crate::types::Now;

use super::Channel;

/// Most HTLCs pending at once (both directions): keeps every commitment far below the standard
/// weight limit (167 vB + 43 vB per HTLC) and every penalty within standard size.
pub const MAX_HTLCS: usize = 100;

impl Channel {
    // ---- updates -------------------------------------------------------------------------

    /// The state after every update either side has sent or received (what the next round
    /// would commit if it included everything).
    pub(super) fn projected(&self) -> Result<CommitmentSpec, ChannelError> {
        let lsp = self.logs[&Side::Lsp].len() as u64;
        let client = self.logs[&Side::Client].len() as u64;
        self.spec_with(lsp, client)
    }

    pub(super) fn spec_with(&self, lsp: u64, client: u64) -> Result<CommitmentSpec, ChannelError> {
        let mut spec = self.spec.clone();
        for (side, upto) in [(Side::Lsp, lsp), (Side::Client, client)] {
            let from = self.committed[&side] as usize;
            let log = &self.logs[&side];
            if upto < from as u64 || upto > log.len() as u64 {
                return Err(ChannelError::Unexpected {
                    reason: "a round must cover committed updates and no unknown ones",
                });
            }
            for u in &log[from..upto as usize] {
                apply(&mut spec, &self.spec, side, u)?;
            }
        }
        Ok(spec)
    }

    pub(super) fn check_update_open(&self) -> Result<(), ChannelError> {
        if self.is_closing() {
            return Err(ChannelError::Unexpected {
                reason: "the channel is closing: no more updates",
            });
        }
        Ok(())
    }

    pub(super) fn check_update(
        &self,
        now: Now,
        from: Side,
        update: &Update,
    ) -> Result<(), ChannelError> {
        self.check_update_open()?;
        if let Update::AddHtlc {
            id, expiry, amount, ..
        } = update
        {
            if *id != self.next_htlc_id[&from] {
                return Err(ChannelError::BadUpdate {
                    reason: "HTLC ids must be sequential",
                });
            }
            let min = self
                .params
                .walk
                .checked_add(self.params.to_self_delay)
                .and_then(|d| d.checked_add(self.params.htlc_margin))
                .and_then(|d| d.after(now.height));
            if min.is_none_or(|m| *expiry <= m) {
                return Err(ChannelError::BadUpdate {
                    reason:
                        "HTLC expiry too close: it must exceed now + walk + to_self_delay + margin",
                });
            }
            if *amount == Amount::ZERO {
                return Err(ChannelError::BadUpdate {
                    reason: "zero-value HTLC",
                });
            }
        }
        if let Update::Fee { feerate } = update {
            if *feerate < FeeRate::BROADCAST_MIN {
                return Err(ChannelError::BadUpdate {
                    reason: "a commitment fee rate below 1 sat/vB would not relay",
                });
            }
        }
        let mut spec = self.projected()?;
        apply(&mut spec, &self.spec, from, update)?;
        if spec.htlcs.len() > MAX_HTLCS {
            return Err(ChannelError::BadUpdate {
                reason: "too many pending HTLCs (a commitment must stay standard)",
            });
        }
        // Both commitments must stay buildable (the LSP can pay the fee).
        let fee_htlcs = spec
            .htlcs
            .iter()
            .filter(|h| {
                !commitment::htlc_is_trimmed(h.amount, spec.feerate, self.params.dust_limit)
            })
            .count();
        let fee = commitment::commitment_fee(fee_htlcs, spec.feerate);
        if spec.lsp_balance < fee + self.params.anchor {
            return Err(ChannelError::CannotAffordFee { fee });
        }
        Ok(())
    }

    pub(super) fn push_update(&mut self, from: Side, update: Update) -> UpdateMsg {
        if let Update::AddHtlc { .. } = update {
            *self.next_htlc_id.get_mut(&from).expect("both sides") += 1;
        }
        let log = self.logs.get_mut(&from).expect("both sides");
        let msg = UpdateMsg {
            seq: log.len() as u64,
            update,
        };
        log.push(msg.update.clone());
        self.actions
            .push_back(Action::Persist(ChannelChange::Update {
                from,
                msg: msg.clone(),
            }));
        msg
    }

    pub(super) fn command(&mut self, now: Now, update: Update) -> Result<(), ChannelError> {
        self.check_update(now, self.side, &update)?;
        let msg = self.push_update(self.side, update);
        self.actions
            .push_back(Action::Send(ChannelMsg::Update(msg)));
        Ok(())
    }

    /// Offers an HTLC paid from this side's balance; returns its id.
    pub fn add_htlc(
        &mut self,
        now: Now,
        amount: Amount,
        hash: sha256::Hash,
        expiry: absolute::Height,
    ) -> Result<u64, ChannelError> {
        let id = self.next_htlc_id[&self.side];
        self.command(
            now,
            Update::AddHtlc {
                id,
                amount,
                hash,
                expiry,
            },
        )?;
        Ok(id)
    }

    /// Settles the peer's committed HTLC `id` with its preimage.
    pub fn fulfill_htlc(
        &mut self,
        now: Now,
        id: u64,
        preimage: [u8; 32],
    ) -> Result<(), ChannelError> {
        self.command(now, Update::Fulfill { id, preimage })
    }

    /// Fails the peer's committed HTLC `id`.
    pub fn fail_htlc(&mut self, now: Now, id: u64) -> Result<(), ChannelError> {
        self.command(now, Update::Fail { id })
    }

    /// Sets the commitment fee rate (LSP only).
    pub fn update_fee(&mut self, now: Now, feerate: FeeRate) -> Result<(), ChannelError> {
        self.command(now, Update::Fee { feerate })
    }
}

/// Applies `update` sent by `from` to `spec`. Fulfills and fails may only name HTLCs of the
/// committed state `base` (an HTLC is settled only once both sides hold it).
pub(super) fn apply(
    spec: &mut CommitmentSpec,
    base: &CommitmentSpec,
    from: Side,
    update: &Update,
) -> Result<(), ChannelError> {
    match update {
        Update::AddHtlc {
            id,
            amount,
            hash,
            expiry,
        } => {
            let balance = spec.balance_mut(from);
            *balance = balance
                .checked_sub(*amount)
                .ok_or(ChannelError::BadUpdate {
                    reason: "the offerer's balance cannot pay the HTLC",
                })?;
            spec.htlcs.push(Htlc {
                offerer: from,
                id: *id,
                amount: *amount,
                hash: *hash,
                expiry: *expiry,
            });
        }
        Update::Fulfill { id, preimage } => {
            let h = settle(spec, base, from.other(), *id)?;
            if sha256::Hash::hash(preimage) != h.hash {
                return Err(ChannelError::BadUpdate {
                    reason: "the preimage does not match the payment hash",
                });
            }
            remove(spec, &h);
            *spec.balance_mut(from) += h.amount;
        }
        Update::Fail { id } => {
            let h = settle(spec, base, from.other(), *id)?;
            remove(spec, &h);
            *spec.balance_mut(h.offerer) += h.amount;
        }
        Update::Fee { feerate } => {
            if from != Side::Lsp {
                return Err(ChannelError::BadUpdate {
                    reason: "only the LSP sets the fee rate",
                });
            }
            spec.feerate = *feerate;
        }
    }
    Ok(())
}

/// The pending HTLC `(offerer, id)`, which must be committed in `base` and not yet settled.
pub(super) fn settle(
    spec: &CommitmentSpec,
    base: &CommitmentSpec,
    offerer: Side,
    id: u64,
) -> Result<Htlc, ChannelError> {
    if !base
        .htlcs
        .iter()
        .any(|h| h.offerer == offerer && h.id == id)
    {
        return Err(ChannelError::BadUpdate {
            reason: "settles an HTLC that is not committed",
        });
    }
    spec.htlcs
        .iter()
        .find(|h| h.offerer == offerer && h.id == id)
        .copied()
        .ok_or(ChannelError::BadUpdate {
            reason: "the HTLC is already settled",
        })
}

pub(super) fn remove(spec: &mut CommitmentSpec, h: &Htlc) {
    spec.htlcs
        .retain(|x| !(x.offerer == h.offerer && x.id == h.id));
}
