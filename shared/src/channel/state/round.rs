//! Commitment rounds: start, the four messages, revocations and the commitment guard.

use bitcoin::secp256k1::PublicKey;
use bitcoin::TapSighash;
use rand::{CryptoRng, RngCore};

use crate::channel::commitment::{Commitment, CommitmentSpec, Side};
use crate::channel::keys::point_of;
use crate::channel::messages::{
    Action, ChannelChange, ChannelEvent, ChannelMsg, Revocation, Update, UpdateMsg,
};
use crate::channel::ChannelError;
use crate::musig::{
    aggregate_nonces, generate_nonce_as, sign_partial_as, JobKeys, PartialSig, PubNonce, SecNonce,
    SigningSession,
};
use crate::types::Now;

use super::{nonce_context, Channel, CheckedRevocation, Round};

/// Both commitments of one round, checked against the commitment guard, with a fresh nonce
/// of ours for each.
struct Prepared {
    spec: CommitmentSpec,
    client_commit: Commitment,
    lsp_commit: Commitment,
    lsp_sighash: TapSighash,
    nonce_client: SecNonce,
    pub_client: PubNonce,
    nonce_lsp: SecNonce,
    pub_lsp: PubNonce,
}

impl Channel {
    // ---- rounds --------------------------------------------------------------------------

    /// Builds round `number`'s two commitments over `counts` updates (LSP's, client's), checks
    /// both against the guard, and draws a nonce for each bound to its sighash.
    fn prepare<R: RngCore + CryptoRng>(
        &self,
        number: u64,
        counts: (u64, u64),
        rng: &mut R,
    ) -> Result<Prepared, ChannelError> {
        let spec = self.spec_with(counts.0, counts.1)?;
        let client_commit = self.build_commitment(Side::Client, number, &spec)?;
        let lsp_commit = self.build_commitment(Side::Lsp, number, &spec)?;
        let client_sighash = client_commit.sighash(&self.params);
        let lsp_sighash = lsp_commit.sighash(&self.params);
        self.guard_check(Side::Client, number, client_sighash)?;
        self.guard_check(Side::Lsp, number, lsp_sighash)?;
        let nonce = |rng: &mut R, holder: Side, sighash: &TapSighash| {
            generate_nonce_as(
                rng,
                &self.funding_signer,
                &self.funding_keys,
                sighash,
                &nonce_context(holder, number),
            )
        };
        let (nonce_client, pub_client) = nonce(rng, Side::Client, &client_sighash);
        let (nonce_lsp, pub_lsp) = nonce(rng, Side::Lsp, &lsp_sighash);
        Ok(Prepared {
            spec,
            client_commit,
            lsp_commit,
            lsp_sighash,
            nonce_client,
            pub_client,
            nonce_lsp,
            pub_lsp,
        })
    }

    pub(super) fn next_number(&self) -> u64 {
        self.number.map_or(0, |n| n + 1)
    }

    pub(super) fn guard_check(
        &self,
        holder: Side,
        number: u64,
        sighash: TapSighash,
    ) -> Result<(), ChannelError> {
        if let Some(current) = self.number {
            if number <= current {
                return Err(ChannelError::Unexpected {
                    reason: "refusing to sign a commitment that is not newer than the current one",
                });
            }
        }
        match self.guard.get(&(holder, number)) {
            Some(recorded) if *recorded != sighash => Err(crate::musig::GuardError::Conflict {
                prevout: self.params.funding,
                recorded: *recorded,
                requested: sighash,
            }
            .into()),
            _ => Ok(()),
        }
    }

    pub(super) fn guard_record(&mut self, holder: Side, number: u64, sighash: TapSighash) {
        self.guard.insert((holder, number), sighash);
        self.actions
            .push_back(Action::Persist(ChannelChange::SignRecord {
                holder,
                number,
                sighash,
            }));
    }

    /// LSP: starts a commitment round covering every update so far, or, when a round with
    /// this number was started before and interrupted, exactly the updates that one covered.
    pub fn start_round<R: RngCore + CryptoRng>(&mut self, rng: &mut R) -> Result<(), ChannelError> {
        if self.side != Side::Lsp {
            return Err(ChannelError::Unexpected {
                reason: "only the LSP starts commitment rounds",
            });
        }
        if self.in_round() || self.is_closing() {
            return Err(ChannelError::Unexpected {
                reason: "a round is already under way, or the channel is closing",
            });
        }
        let number = self.next_number();
        let counts = match self.started {
            Some((n, counts)) if n == number => counts,
            _ => (
                self.logs[&Side::Lsp].len() as u64,
                self.logs[&Side::Client].len() as u64,
            ),
        };
        self.started = Some((number, counts));
        let Prepared {
            spec,
            client_commit,
            lsp_commit,
            nonce_client,
            pub_client,
            nonce_lsp,
            pub_lsp,
            ..
        } = self.prepare(number, counts, rng)?;
        self.actions
            .push_back(Action::Persist(ChannelChange::RoundStarted {
                number,
                lsp_updates: counts.0,
                client_updates: counts.1,
            }));
        self.actions.push_back(Action::Send(ChannelMsg::Start {
            number,
            lsp_updates: counts.0,
            client_updates: counts.1,
            nonce_client_commit: pub_client.clone(),
            nonce_lsp_commit: pub_lsp.clone(),
        }));
        self.round = Round::LspSent {
            number,
            counts,
            spec,
            client_commit,
            lsp_commit,
            nonce_client,
            pub_client,
            nonce_lsp,
            pub_lsp,
        };
        Ok(())
    }

    /// Handles a message from the peer.
    pub fn handle_message<R: RngCore + CryptoRng>(
        &mut self,
        now: Now,
        msg: ChannelMsg,
        rng: &mut R,
    ) -> Result<(), ChannelError> {
        match (self.side, msg) {
            (_, ChannelMsg::Update(u)) => self.handle_update(now, u),
            (
                Side::Client,
                ChannelMsg::Start {
                    number,
                    lsp_updates,
                    client_updates,
                    nonce_client_commit,
                    nonce_lsp_commit,
                },
            ) => self.client_on_start(
                number,
                (lsp_updates, client_updates),
                nonce_client_commit,
                nonce_lsp_commit,
                rng,
            ),
            (
                Side::Lsp,
                ChannelMsg::ClientSigned {
                    number,
                    nonce_client_commit,
                    nonce_lsp_commit,
                    partial_lsp_commit,
                },
            ) => self.lsp_on_signed(
                number,
                nonce_client_commit,
                nonce_lsp_commit,
                partial_lsp_commit,
            ),
            (
                Side::Client,
                ChannelMsg::LspSigned {
                    number,
                    partial_client_commit,
                    revocation,
                },
            ) => self.client_on_signed(number, partial_client_commit, revocation),
            (Side::Lsp, ChannelMsg::ClientRevoked { number, revocation }) => {
                self.lsp_on_revoked(number, revocation)
            }
            (_, ChannelMsg::Shutdown { script }) => self.on_shutdown(script),
            (Side::Client, ChannelMsg::CloseStart { feerate, nonce }) => {
                self.client_on_close_start(feerate, nonce, rng)
            }
            (Side::Lsp, ChannelMsg::CloseSigned { nonce, partial }) => {
                self.lsp_on_close_signed(nonce, partial)
            }
            (Side::Client, ChannelMsg::CloseDone { signature }) => {
                self.client_on_close_done(signature)
            }
            _ => Err(ChannelError::Unexpected {
                reason: "a message this side never receives",
            }),
        }
    }

    pub(super) fn handle_update(&mut self, now: Now, msg: UpdateMsg) -> Result<(), ChannelError> {
        let from = self.side.other();
        if msg.seq != self.logs[&from].len() as u64 {
            return Err(ChannelError::Unexpected {
                reason: "update out of sequence (replayed or lost)",
            });
        }
        if matches!(msg.update, Update::Fee { .. }) && from != Side::Lsp {
            return Err(ChannelError::BadUpdate {
                reason: "only the LSP, which pays the fee, sets the fee rate",
            });
        }
        self.check_update(now, from, &msg.update)?;
        if let Update::Fulfill { id, preimage } = &msg.update {
            self.actions
                .push_back(Action::Emit(ChannelEvent::PreimageReceived {
                    id: *id,
                    preimage: *preimage,
                }));
        }
        self.push_update(from, msg.update);
        Ok(())
    }

    pub(super) fn client_on_start<R: RngCore + CryptoRng>(
        &mut self,
        number: u64,
        counts: (u64, u64),
        lsp_nonce_client: PubNonce,
        lsp_nonce_lsp: PubNonce,
        rng: &mut R,
    ) -> Result<(), ChannelError> {
        let committed = (self.committed[&Side::Lsp], self.committed[&Side::Client]);
        if !self.in_round() && Some(number) == self.number && counts == committed {
            // The LSP restarted a round this side already completed: its `ClientRevoked` was
            // lost (a broken connection, or the LSP stopped). Send it again; nothing changes.
            self.actions
                .push_back(Action::Send(ChannelMsg::ClientRevoked {
                    number,
                    revocation: self.my_revocation(number),
                }));
            return Ok(());
        }
        if self.in_round() || self.is_closing() || number != self.next_number() {
            return Err(ChannelError::Unexpected {
                reason: "a round start for another commitment number, or during a round",
            });
        }
        let Prepared {
            spec,
            client_commit,
            lsp_sighash: ls,
            nonce_client,
            pub_client,
            nonce_lsp,
            pub_lsp,
            ..
        } = self.prepare(number, counts, rng)?;
        let agg = aggregate_nonces([&lsp_nonce_lsp, &pub_lsp]);
        let partial = sign_partial_as(
            &self.funding_keys,
            &self.funding_signer,
            nonce_lsp,
            &agg,
            &ls,
        )?;
        self.guard_record(Side::Lsp, number, ls);
        // The LSP can publish this commitment from now on: keep what claims on it need.
        self.remote_pending = Some((number, spec.clone()));
        self.actions
            .push_back(Action::Persist(ChannelChange::RemotePending {
                number,
                spec: spec.clone(),
            }));
        self.actions
            .push_back(Action::Send(ChannelMsg::ClientSigned {
                number,
                nonce_client_commit: pub_client.clone(),
                nonce_lsp_commit: pub_lsp,
                partial_lsp_commit: partial,
            }));
        self.round = Round::ClientSigned {
            number,
            counts,
            spec,
            client_commit,
            nonce_client,
            my_pub: pub_client,
            lsp_nonce: lsp_nonce_client,
        };
        Ok(())
    }

    pub(super) fn lsp_on_signed(
        &mut self,
        number: u64,
        client_nonce_client: PubNonce,
        client_nonce_lsp: PubNonce,
        partial_lsp: PartialSig,
    ) -> Result<(), ChannelError> {
        match &self.round {
            Round::LspSent { number: n, .. } if *n == number => {}
            _ => {
                return Err(ChannelError::Unexpected {
                    reason: "a signature for a round this side is not waiting for",
                })
            }
        }
        let Round::LspSent {
            number,
            counts,
            spec,
            client_commit,
            lsp_commit,
            nonce_client,
            pub_client,
            nonce_lsp,
            pub_lsp,
        } = std::mem::replace(&mut self.round, Round::Idle)
        else {
            unreachable!("matched above")
        };
        let ls = lsp_commit.sighash(&self.params);
        let cs = client_commit.sighash(&self.params);
        let client_key = self.params.client_funding_key;
        let agg_lsp = aggregate_nonces([&pub_lsp, &client_nonce_lsp]);
        let agg_client = aggregate_nonces([&pub_client, &client_nonce_client]);
        let session = SigningSession::new(&self.funding_keys, &agg_lsp, &ls);
        // Everything that can fail is checked before the nonces are spent: a bad partial
        // signature leaves the round waiting (the nonces restored).
        if let Err(e) = session.verify(
            &self.funding_keys,
            &partial_lsp,
            &client_key,
            &client_nonce_lsp,
        ) {
            self.round = Round::LspSent {
                number,
                counts,
                spec,
                client_commit,
                lsp_commit,
                nonce_client,
                pub_client,
                nonce_lsp,
                pub_lsp,
            };
            return Err(e.into());
        }
        let mine = session.sign(&self.funding_keys, &self.funding_signer, nonce_lsp)?;
        let sig = session.aggregate(
            &self.funding_keys,
            &order(
                &self.funding_keys,
                self.params.lsp_funding_key,
                mine,
                partial_lsp,
            ),
        )?;
        let signed = lsp_commit.signed(&sig);
        let partial_client = sign_partial_as(
            &self.funding_keys,
            &self.funding_signer,
            nonce_client,
            &agg_client,
            &cs,
        )?;
        self.guard_record(Side::Lsp, number, ls);
        self.guard_record(Side::Client, number, cs);
        self.actions
            .push_back(Action::Persist(ChannelChange::LocalCommitment {
                number,
                tx: signed.clone(),
            }));
        self.signed = Some(signed);
        self.signed_number = Some(number);
        let revocation = self.my_revocation(number);
        self.actions.push_back(Action::Send(ChannelMsg::LspSigned {
            number,
            partial_client_commit: partial_client,
            revocation,
        }));
        self.round = Round::LspSigned {
            number,
            counts,
            spec,
        };
        Ok(())
    }

    pub(super) fn my_revocation(&self, number: u64) -> Option<Revocation> {
        (number > 0).then(|| Revocation {
            revoked: number - 1,
            secret: self.secrets.commitment_seed.secret(number - 1),
            next_point: self.secrets.commitment_seed.point(number + 1),
        })
    }

    /// Checks the peer's revocation for round `number`; returns what to store.
    pub(super) fn check_revocation(
        &self,
        number: u64,
        revocation: &Option<Revocation>,
    ) -> Result<Option<CheckedRevocation>, ChannelError> {
        match (number, revocation) {
            (0, None) => Ok(None),
            (0, Some(_)) | (_, None) => Err(ChannelError::BadSecret {
                reason: "a revocation is due exactly for every commitment but the first",
            }),
            (n, Some(r)) => {
                if r.revoked != n - 1 {
                    return Err(ChannelError::BadSecret {
                        reason: "revokes another commitment than the previous one",
                    });
                }
                let expected = self.point(self.side.other(), n - 1)?;
                if point_of(&r.secret)? != expected {
                    return Err(ChannelError::BadSecret {
                        reason: "the secret does not match the commitment's point",
                    });
                }
                let mut store = self.peer_secrets.clone();
                store.insert(n - 1, r.secret)?;
                Ok(Some(CheckedRevocation {
                    store,
                    revoked: n - 1,
                    secret: r.secret,
                    next_point: r.next_point,
                }))
            }
        }
    }

    pub(super) fn apply_revocation(&mut self, checked: Option<CheckedRevocation>) {
        if let Some(CheckedRevocation {
            store,
            revoked,
            secret,
            next_point,
        }) = checked
        {
            self.peer_secrets = store;
            self.peer_points.remove(&revoked);
            self.peer_points.insert(revoked + 2, next_point);
            self.revoked.insert(revoked, self.spec.clone());
            self.actions
                .push_back(Action::Persist(ChannelChange::RemoteRevoked {
                    number: revoked,
                    secret,
                    spec: self.spec.clone(),
                    next_point,
                }));
        }
    }

    pub(super) fn commit(&mut self, number: u64, counts: (u64, u64), spec: CommitmentSpec) {
        self.started = None;
        self.remote_pending = None;
        self.number = Some(number);
        self.spec = spec.clone();
        self.committed.insert(Side::Lsp, counts.0);
        self.committed.insert(Side::Client, counts.1);
        self.actions
            .push_back(Action::Persist(ChannelChange::Committed {
                number,
                spec,
                lsp_updates: counts.0,
                client_updates: counts.1,
            }));
        self.actions
            .push_back(Action::Emit(ChannelEvent::Committed { number }));
    }

    pub(super) fn client_on_signed(
        &mut self,
        number: u64,
        partial_client: PartialSig,
        revocation: Option<Revocation>,
    ) -> Result<(), ChannelError> {
        let Round::ClientSigned {
            number: n,
            client_commit,
            my_pub,
            lsp_nonce,
            ..
        } = &self.round
        else {
            return Err(ChannelError::Unexpected {
                reason: "a signature for a round this side is not waiting for",
            });
        };
        if *n != number {
            return Err(ChannelError::Unexpected {
                reason: "a signature for another commitment number",
            });
        }
        let cs = client_commit.sighash(&self.params);
        let agg = aggregate_nonces([lsp_nonce, my_pub]);
        let session = SigningSession::new(&self.funding_keys, &agg, &cs);
        // Everything that can fail is checked before the secret nonce is spent.
        session.verify(
            &self.funding_keys,
            &partial_client,
            &self.params.lsp_funding_key,
            lsp_nonce,
        )?;
        let checked = self.check_revocation(number, &revocation)?;
        let Round::ClientSigned {
            counts,
            spec,
            client_commit,
            nonce_client,
            ..
        } = std::mem::replace(&mut self.round, Round::Idle)
        else {
            unreachable!("matched above")
        };
        let mine = session.sign(&self.funding_keys, &self.funding_signer, nonce_client)?;
        let sig = session.aggregate(
            &self.funding_keys,
            &order(
                &self.funding_keys,
                self.params.client_funding_key,
                mine,
                partial_client,
            ),
        )?;
        self.guard_record(Side::Client, number, cs);
        let signed = client_commit.signed(&sig);
        self.actions
            .push_back(Action::Persist(ChannelChange::LocalCommitment {
                number,
                tx: signed.clone(),
            }));
        self.signed = Some(signed);
        self.signed_number = Some(number);
        self.apply_revocation(checked);
        let mine = self.my_revocation(number);
        self.commit(number, counts, spec);
        self.actions
            .push_back(Action::Send(ChannelMsg::ClientRevoked {
                number,
                revocation: mine,
            }));
        Ok(())
    }

    pub(super) fn lsp_on_revoked(
        &mut self,
        number: u64,
        revocation: Option<Revocation>,
    ) -> Result<(), ChannelError> {
        match &self.round {
            Round::LspSigned { number: n, .. } if *n == number => {}
            // A round restarted after the client completed it (its revocation was lost): this
            // side holds its commitment `number` signed from before, so the revocation alone
            // completes it.
            Round::LspSent { number: n, .. }
                if *n == number && self.signed_number == Some(number) => {}
            _ => {
                return Err(ChannelError::Unexpected {
                    reason: "a revocation for a round this side is not waiting for",
                })
            }
        }
        let checked = self.check_revocation(number, &revocation)?;
        let (counts, spec) = match std::mem::replace(&mut self.round, Round::Idle) {
            Round::LspSigned { counts, spec, .. } | Round::LspSent { counts, spec, .. } => {
                (counts, spec)
            }
            _ => unreachable!("matched above"),
        };
        self.apply_revocation(checked);
        self.commit(number, counts, spec);
        Ok(())
    }
}

/// Partial signatures in the job's signer order (mine and the peer's).
pub(super) fn order(
    keys: &JobKeys,
    my_key: PublicKey,
    mine: PartialSig,
    theirs: PartialSig,
) -> [PartialSig; 2] {
    if keys.signer_index(&my_key) == Some(0) {
        [mine, theirs]
    } else {
        [theirs, mine]
    }
}
