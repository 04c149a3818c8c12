//! Reacting to a commitment on chain: which one it is and every claim this side can make from
//! it, built only from this side's own state.
//!
//! - the peer's revoked commitment: the penalty (everything);
//! - the peer's current (or in-flight) commitment: `to_remote`, HTLCs this side offered
//!   (timeout, after their expiry) and HTLCs it can settle with a known preimage (success);
//! - this side's own commitment: `to_local` (after `to_self_delay`) and its HTLCs likewise.
//!
//! Each claim is its own transaction because each has its own lock; the driver broadcasts each
//! when its lock allows (`nLockTime`, and the `nSequence` blocks after the commitment confirms).

use std::collections::BTreeMap;

use bitcoin::hashes::sha256;
use bitcoin::{absolute, FeeRate, ScriptBuf, Transaction};

use crate::channel::claim::{
    build_claim, htlc_success_input, htlc_timeout_input, to_local_input, to_remote_input,
};
use crate::channel::commitment::{Commitment, CommitmentSpec, OutputKind, Side};
use crate::channel::ChannelError;

use super::{Channel, Round};

/// What a claim takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimKind {
    /// Every output of the peer's revoked commitment.
    Penalty,
    /// This side's delayed balance on its own commitment.
    ToLocal,
    /// This side's balance on the peer's commitment.
    ToRemote,
    /// An HTLC paid to this side, with its preimage.
    HtlcSuccess {
        /// Offerer of the HTLC.
        offerer: Side,
        /// Its id.
        id: u64,
    },
    /// An HTLC this side offered, after its expiry.
    HtlcTimeout {
        /// Offerer of the HTLC (this side).
        offerer: Side,
        /// Its id.
        id: u64,
    },
}

impl Channel {
    fn in_flight_spec(&self) -> Option<(u64, &CommitmentSpec)> {
        match &self.round {
            Round::Idle => None,
            Round::LspSent { number, spec, .. }
            | Round::LspSigned { number, spec, .. }
            | Round::ClientSigned { number, spec, .. } => Some((*number, spec)),
        }
    }

    /// Whether the peer holds, or may hold by the end of the round under way, a commitment
    /// carrying the HTLC `id` that `offerer` offered: it is in the committed state, in the
    /// round under way, or in the peer's commitment this side signed in a round that never
    /// completed. A client whose channel closes uses it to tell a payment that ends on chain
    /// from one that never left (an HTLC only queued, or waiting for the next round, fails).
    pub fn peer_may_hold(&self, offerer: Side, id: u64) -> bool {
        let has = |spec: &CommitmentSpec| {
            spec.htlcs
                .iter()
                .any(|h| h.offerer == offerer && h.id == id)
        };
        has(&self.spec)
            || self.in_flight_spec().is_some_and(|(_, spec)| has(spec))
            || self
                .remote_pending
                .as_ref()
                .is_some_and(|(_, spec)| has(spec))
    }

    /// Which commitment `tx` is: its holder, number and state, if this side knows it.
    pub fn identify(&self, tx: &Transaction) -> Option<(Side, u64, CommitmentSpec)> {
        let number = self.commitment_number_of(tx)?;
        let txid = tx.compute_txid();
        let mut candidates: Vec<(Side, &CommitmentSpec)> = Vec::new();
        if let Some(spec) = self.revoked.get(&number) {
            candidates.push((self.side.other(), spec));
        }
        if self.number == Some(number) {
            candidates.push((self.side, &self.spec));
            candidates.push((self.side.other(), &self.spec));
        }
        if let Some((n, spec)) = self.in_flight_spec() {
            if n == number {
                candidates.push((self.side, spec));
                candidates.push((self.side.other(), spec));
            }
        }
        // After a restart the round's state is gone, but what was stored for it remains.
        if let Some((n, spec)) = &self.remote_pending {
            if *n == number {
                candidates.push((self.side.other(), spec));
            }
        }
        let started = self
            .started
            .filter(|(n, _)| *n == number)
            .and_then(|(_, (l, c))| self.spec_with(l, c).ok());
        if let Some(spec) = &started {
            candidates.push((self.side, spec));
            candidates.push((self.side.other(), spec));
        }
        candidates.into_iter().find_map(|(holder, spec)| {
            let c = self.build_commitment(holder, number, spec).ok()?;
            (c.tx.compute_txid() == txid).then(|| (holder, number, spec.clone()))
        })
    }

    /// Every claim this side can make from commitment `tx` (see the module docs), paying
    /// `destination`. HTLCs paid to this side are claimed only if `preimages` has their preimage.
    pub fn claims_for(
        &self,
        tx: &Transaction,
        destination: &ScriptBuf,
        feerate: FeeRate,
        preimages: &BTreeMap<sha256::Hash, [u8; 32]>,
    ) -> Result<Vec<(ClaimKind, Transaction)>, ChannelError> {
        let (holder, number, spec) = self.identify(tx).ok_or(ChannelError::NotClaimable {
            reason: "not a commitment this side knows",
        })?;
        if holder != self.side && self.revoked.contains_key(&number) {
            let penalty = self.penalty_for(tx, destination.clone(), feerate)?;
            return Ok(vec![(ClaimKind::Penalty, penalty)]);
        }
        let commitment: Commitment = self.build_commitment(holder, number, &spec)?;
        let point = self.commitment_point(holder, number)?;
        let me = self.side;
        let dust = self.params.dust_limit;
        let mut claims = Vec::new();
        for (kind, _) in &commitment.outputs {
            let planned = match kind {
                OutputKind::ToLocal if holder == me => {
                    to_local_input(&self.params, &commitment, &self.secrets, &point)
                        .map(|i| (ClaimKind::ToLocal, i, absolute::LockTime::ZERO))
                }
                OutputKind::ToRemote if holder != me => to_remote_input(&commitment, &self.secrets)
                    .map(|i| (ClaimKind::ToRemote, i, absolute::LockTime::ZERO)),
                OutputKind::Htlc(h) if h.offerer == me => {
                    htlc_timeout_input(&self.params, &commitment, me, &self.secrets, &point, h).map(
                        |i| {
                            (
                                ClaimKind::HtlcTimeout {
                                    offerer: h.offerer,
                                    id: h.id,
                                },
                                i,
                                absolute::LockTime::from(h.expiry),
                            )
                        },
                    )
                }
                OutputKind::Htlc(h) => match preimages.get(&h.hash) {
                    Some(p) => htlc_success_input(
                        &self.params,
                        &commitment,
                        me,
                        &self.secrets,
                        &point,
                        h,
                        *p,
                    )
                    .map(|i| {
                        (
                            ClaimKind::HtlcSuccess {
                                offerer: h.offerer,
                                id: h.id,
                            },
                            i,
                            absolute::LockTime::ZERO,
                        )
                    }),
                    None => continue,
                },
                _ => continue,
            };
            let (kind, input, lock) = planned?;
            match build_claim(&[input], destination.clone(), feerate, lock, dust) {
                Ok(tx) => claims.push((kind, tx)),
                // An output worth less than its claim's fee is left on chain.
                Err(ChannelError::NotClaimable { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(claims)
    }
}
