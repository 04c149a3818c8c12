//! Restoring a channel from its persisted changes (replay after a crash).
//!
//! The driver stores every `Persist(ChannelChange)` in order; [`Channel::restore`] opens the
//! channel again with the same arguments and replays them. No round survives a restart (its
//! secret nonces are gone): the LSP starts round `n` again with the same update counts
//! (`RoundStarted`), and the client signs it again only if it is the same commitment
//! (`SignRecord`).

use crate::channel::commitment::{CommitmentSpec, Side};
use crate::channel::messages::{ChannelChange, Update};
use crate::channel::ChannelError;

use super::{Channel, PeerInfo};
use crate::channel::ChannelParams;

/// Everything a channel holds that its persisted changes rebuild: tests compare a live channel
/// with the one [`Channel::restore`] rebuilds from its changes, so a field that changes without
/// a `Persist` (and would be lost by a restart) is caught.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Persisted {
    number: Option<u64>,
    spec: CommitmentSpec,
    signed: Option<(Option<u64>, bitcoin::Transaction)>,
    peer_points: std::collections::BTreeMap<u64, bitcoin::secp256k1::PublicKey>,
    peer_secrets: crate::channel::keys::SecretStore,
    revoked: std::collections::BTreeMap<u64, CommitmentSpec>,
    logs: std::collections::BTreeMap<Side, Vec<Update>>,
    committed: std::collections::BTreeMap<Side, u64>,
    next_htlc_id: std::collections::BTreeMap<Side, u64>,
    guard: std::collections::BTreeMap<(Side, u64), bitcoin::TapSighash>,
    started: Option<(u64, (u64, u64))>,
    remote_pending: Option<(u64, CommitmentSpec)>,
    closing: (
        Option<bitcoin::ScriptBuf>,
        Option<bitcoin::ScriptBuf>,
        Option<bitcoin::TapSighash>,
    ),
}

impl Channel {
    /// Opens the channel as [`Channel::new`] did and replays `changes` (in the order they were
    /// persisted). Refuses changes that do not follow each other.
    pub fn restore(
        side: Side,
        params: ChannelParams,
        funding_secret: bitcoin::secp256k1::SecretKey,
        seed: &[u8; 32],
        peer: PeerInfo,
        opening: CommitmentSpec,
        changes: impl IntoIterator<Item = ChannelChange>,
    ) -> Result<Channel, ChannelError> {
        let mut c = Channel::new(side, params, funding_secret, seed, peer, opening)?;
        for change in changes {
            c.replay(change)?;
        }
        c.actions.clear();
        Ok(c)
    }

    /// What this channel holds that its persisted changes rebuild ([`Persisted`]).
    #[cfg(test)]
    pub(crate) fn persisted(&self) -> Persisted {
        Persisted {
            number: self.number,
            spec: self.spec.clone(),
            signed: self.signed.clone().map(|tx| (self.signed_number, tx)),
            peer_points: self.peer_points.clone(),
            peer_secrets: self.peer_secrets.clone(),
            revoked: self.revoked.clone(),
            logs: self.logs.clone(),
            committed: self.committed.clone(),
            next_htlc_id: self.next_htlc_id.clone(),
            guard: self.guard.clone(),
            started: self.started,
            remote_pending: self.remote_pending.clone(),
            closing: (
                self.closing.mine.clone(),
                self.closing.theirs.clone(),
                self.closing.signed,
            ),
        }
    }

    fn replay(&mut self, change: ChannelChange) -> Result<(), ChannelError> {
        match change {
            ChannelChange::Update { from, msg } => {
                let log = self.logs.get_mut(&from).expect("both sides");
                if msg.seq != log.len() as u64 {
                    return Err(ChannelError::Unexpected {
                        reason: "stored updates out of sequence",
                    });
                }
                if let Update::AddHtlc { .. } = msg.update {
                    *self.next_htlc_id.get_mut(&from).expect("both sides") += 1;
                }
                log.push(msg.update);
            }
            ChannelChange::SignRecord {
                holder,
                number,
                sighash,
            } => {
                self.guard.insert((holder, number), sighash);
            }
            ChannelChange::RoundStarted {
                number,
                lsp_updates,
                client_updates,
            } => self.started = Some((number, (lsp_updates, client_updates))),
            ChannelChange::RemotePending { number, spec } => {
                self.remote_pending = Some((number, spec))
            }
            ChannelChange::LocalCommitment { number, tx } => {
                self.signed = Some(tx);
                self.signed_number = Some(number);
            }
            ChannelChange::RemoteRevoked {
                number,
                secret,
                spec,
                next_point,
            } => {
                self.peer_secrets.insert(number, secret)?;
                self.peer_points.remove(&number);
                self.peer_points.insert(number + 2, next_point);
                self.revoked.insert(number, spec);
            }
            ChannelChange::Committed {
                number,
                spec,
                lsp_updates,
                client_updates,
            } => {
                self.started = None;
                self.remote_pending = None;
                self.number = Some(number);
                self.spec = spec;
                self.committed.insert(Side::Lsp, lsp_updates);
                self.committed.insert(Side::Client, client_updates);
            }
            ChannelChange::CloseRecord { sighash } => self.closing.signed = Some(sighash),
            ChannelChange::Shutdown { from, script } => {
                if from == self.side {
                    self.closing.mine = Some(script);
                } else {
                    self.closing.theirs = Some(script);
                }
            }
        }
        Ok(())
    }
}
