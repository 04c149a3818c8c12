//! The channel's update state machine (sans-io, house style).
//!
//! Call order: commands ([`Channel::add_htlc`], [`Channel::fulfill_htlc`], [`Channel::fail_htlc`],
//! [`Channel::update_fee`], and on the LSP [`Channel::start_round`]); inputs
//! ([`Channel::handle_message`]); outputs ([`Channel::poll_action`], in order, each `Persist`
//! finished before any later `Send`).
//!
//! Invariants:
//! - each side holds a fully signed latest commitment once round 0 completes, and the
//!   revocation secret of every superseded commitment of the other side;
//! - a side revokes its commitment `n - 1` only after it holds commitment `n` fully signed;
//! - MuSig2 secret nonces are generated for one sighash, held in memory for one round and
//!   consumed by signing; a replayed message finds no nonce and is refused;
//! - a side signs at most one sighash per `(holder, number)` (the commitment guard), so the peer
//!   can never hold two different commitments with one number;
//! - a refused input leaves the state unchanged.

use std::collections::{BTreeMap, VecDeque};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::{absolute, Amount, FeeRate, TapSighash, Transaction};
use rand::{CryptoRng, RngCore};

use super::commitment::{self, ChannelParams, Commitment, CommitmentSpec, Htlc, Side};
use super::keys::{point_of, Basepoints, ChannelSecrets, CommitmentKeys, SecretStore};
use super::messages::{
    Action, ChannelChange, ChannelEvent, ChannelMsg, Revocation, Update, UpdateMsg,
};
use super::ChannelError;
use crate::musig::{
    aggregate, aggregate_nonces, generate_nonce, public_key, sign_partial, verify_partial, JobKeys,
    PartialSig, PubNonce, SecNonce,
};
use crate::types::Now;

/// What a side knows about its peer when the channel opens.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The peer's basepoints.
    pub basepoints: Basepoints,
    /// The peer's per-commitment points for commitments 0 and 1.
    pub first_points: [PublicKey; 2],
}

// One per channel, replaced in place: the size of its largest state costs nothing.
#[allow(clippy::large_enum_variant)]
enum Round {
    Idle,
    LspSent {
        number: u64,
        counts: (u64, u64),
        spec: CommitmentSpec,
        client_commit: Commitment,
        lsp_commit: Commitment,
        nonce_client: SecNonce,
        pub_client: PubNonce,
        nonce_lsp: SecNonce,
        pub_lsp: PubNonce,
    },
    LspSigned {
        number: u64,
        counts: (u64, u64),
        spec: CommitmentSpec,
    },
    ClientSigned {
        number: u64,
        counts: (u64, u64),
        spec: CommitmentSpec,
        client_commit: Commitment,
        nonce_client: SecNonce,
        my_pub: PubNonce,
        lsp_nonce: PubNonce,
    },
}

/// A peer's revocation that passed every check, ready to apply.
struct CheckedRevocation {
    store: SecretStore,
    revoked: u64,
    secret: [u8; 32],
    next_point: PublicKey,
}

/// One side of a client–LSP channel.
pub struct Channel {
    side: Side,
    params: ChannelParams,
    funding_keys: JobKeys,
    funding_secret: SecretKey,
    secrets: ChannelSecrets,
    peer: Basepoints,
    factor: u64,
    /// Latest commitment number both sides hold (None before round 0 completes).
    number: Option<u64>,
    spec: CommitmentSpec,
    signed: Option<Transaction>,
    peer_points: BTreeMap<u64, PublicKey>,
    peer_secrets: SecretStore,
    revoked: BTreeMap<u64, CommitmentSpec>,
    /// Updates by sender since the channel opened, and how many of them are committed.
    logs: BTreeMap<Side, Vec<Update>>,
    committed: BTreeMap<Side, u64>,
    next_htlc_id: BTreeMap<Side, u64>,
    guard: BTreeMap<(Side, u64), TapSighash>,
    /// LSP: the update counts of a started, unfinished round (a restart reuses them).
    started: Option<(u64, (u64, u64))>,
    round: Round,
    actions: VecDeque<Action>,
}

impl core::fmt::Debug for Channel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Channel")
            .field("side", &self.side)
            .field("number", &self.number)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

fn nonce_context(holder: Side, number: u64) -> Vec<u8> {
    let mut c = b"superscalar/channel/commitment".to_vec();
    c.push(holder as u8);
    c.extend_from_slice(&number.to_be_bytes());
    c
}

impl Channel {
    /// Opens one side of a channel on `params` with the initial `spec`.
    ///
    /// `funding_secret` is this side's key in the channel output's MuSig2 aggregate; `seed` is
    /// the channel seed every other channel secret derives from.
    pub fn new(
        side: Side,
        params: ChannelParams,
        funding_secret: SecretKey,
        seed: &[u8; 32],
        peer: PeerInfo,
        spec: CommitmentSpec,
    ) -> Result<Channel, ChannelError> {
        let funding_keys = params.funding_keys()?;
        let my_key = match side {
            Side::Lsp => params.lsp_funding_key,
            Side::Client => params.client_funding_key,
        };
        if public_key(&funding_secret) != my_key {
            return Err(ChannelError::Params {
                reason: "the funding secret is not this side's funding key",
            });
        }
        if spec.total() != params.funding_output.value || !spec.htlcs.is_empty() {
            return Err(ChannelError::Params {
                reason: "the opening balances must add up to the channel's value, without HTLCs",
            });
        }
        if params.to_self_delay.to_relative_sequence().is_none()
            || params.to_self_delay.to_blocks() < 2
        {
            return Err(ChannelError::Params {
                reason: "to_self_delay must be between 2 and 65535 blocks",
            });
        }
        let secrets = ChannelSecrets::from_seed(seed);
        let mine = secrets.basepoints();
        let (lsp_pay, client_pay) = match side {
            Side::Lsp => (mine.payment, peer.basepoints.payment),
            Side::Client => (peer.basepoints.payment, mine.payment),
        };
        let mut peer_points = BTreeMap::new();
        peer_points.insert(0, peer.first_points[0]);
        peer_points.insert(1, peer.first_points[1]);
        Ok(Channel {
            side,
            factor: commitment::obscuring_factor(&lsp_pay, &client_pay),
            params,
            funding_keys,
            funding_secret,
            secrets,
            peer: peer.basepoints,
            number: None,
            spec,
            signed: None,
            peer_points,
            peer_secrets: SecretStore::new(),
            revoked: BTreeMap::new(),
            logs: [(Side::Lsp, Vec::new()), (Side::Client, Vec::new())].into(),
            committed: [(Side::Lsp, 0), (Side::Client, 0)].into(),
            next_htlc_id: [(Side::Lsp, 0), (Side::Client, 0)].into(),
            guard: BTreeMap::new(),
            started: None,
            round: Round::Idle,
            actions: VecDeque::new(),
        })
    }

    /// What this side tells its peer at open: basepoints and points for commitments 0 and 1.
    pub fn peer_info(&self) -> PeerInfo {
        PeerInfo {
            basepoints: self.secrets.basepoints(),
            first_points: [
                self.secrets.commitment_seed.point(0),
                self.secrets.commitment_seed.point(1),
            ],
        }
    }

    /// This side.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The channel's parameters.
    pub fn params(&self) -> &ChannelParams {
        &self.params
    }

    /// This side's secrets (for claims).
    pub fn secrets(&self) -> &ChannelSecrets {
        &self.secrets
    }

    /// The state of the latest commitment both sides hold.
    pub fn spec(&self) -> &CommitmentSpec {
        &self.spec
    }

    /// The latest commitment number both sides hold.
    pub fn number(&self) -> Option<u64> {
        self.number
    }

    /// This side's latest fully signed commitment, ready to broadcast.
    pub fn latest_signed(&self) -> Option<&Transaction> {
        self.signed.as_ref()
    }

    /// Next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Whether a commitment round is under way.
    pub fn in_round(&self) -> bool {
        !matches!(self.round, Round::Idle)
    }

    fn keys_for(&self, holder: Side, point: &PublicKey) -> CommitmentKeys {
        let mine = self.secrets.basepoints();
        if holder == self.side {
            CommitmentKeys::derive(&mine, &self.peer, point)
        } else {
            CommitmentKeys::derive(&self.peer, &mine, point)
        }
    }

    fn point(&self, holder: Side, number: u64) -> Result<PublicKey, ChannelError> {
        if holder == self.side {
            return Ok(self.secrets.commitment_seed.point(number));
        }
        if let Some(p) = self.peer_points.get(&number) {
            return Ok(*p);
        }
        let secret = self
            .peer_secrets
            .get(number)
            .ok_or(ChannelError::Unexpected {
                reason: "no per-commitment point known for that commitment",
            })?;
        point_of(&secret)
    }

    /// Builds `holder`'s commitment `number` for `spec`.
    pub fn build_commitment(
        &self,
        holder: Side,
        number: u64,
        spec: &CommitmentSpec,
    ) -> Result<Commitment, ChannelError> {
        let point = self.point(holder, number)?;
        let keys = self.keys_for(holder, &point);
        commitment::build(&self.params, holder, number, spec, &keys, self.factor)
    }

    /// The holder's per-commitment point of a commitment (for claims on it).
    pub fn commitment_point(&self, holder: Side, number: u64) -> Result<PublicKey, ChannelError> {
        self.point(holder, number)
    }

    /// The commitment number `tx` carries, if it is one of this channel's commitments.
    pub fn commitment_number_of(&self, tx: &Transaction) -> Option<u64> {
        (tx.input.len() == 1 && tx.input[0].previous_output == self.params.funding)
            .then(|| commitment::decode_number(tx, self.factor))
            .flatten()
    }

    /// The state of the peer's revoked commitment `number`, as stored for its penalty.
    pub fn revoked_spec(&self, number: u64) -> Option<&CommitmentSpec> {
        self.revoked.get(&number)
    }

    /// The penalty for `tx` if it is a revoked commitment of the peer, paying `destination`.
    pub fn penalty_for(
        &self,
        tx: &Transaction,
        destination: bitcoin::ScriptBuf,
        feerate: FeeRate,
    ) -> Result<Transaction, ChannelError> {
        let number = self
            .commitment_number_of(tx)
            .ok_or(ChannelError::NotClaimable {
                reason: "not a commitment of this channel",
            })?;
        let spec = self
            .revoked
            .get(&number)
            .ok_or(ChannelError::NotClaimable {
                reason: "that commitment is not revoked",
            })?;
        let commitment = self.build_commitment(self.side.other(), number, spec)?;
        if commitment.tx.compute_txid() != tx.compute_txid() {
            return Err(ChannelError::NotClaimable {
                reason: "the transaction is not the peer's revoked commitment",
            });
        }
        let secret = self
            .peer_secrets
            .get(number)
            .ok_or(ChannelError::NotClaimable {
                reason: "no revocation secret",
            })?;
        let secret = SecretKey::from_slice(&secret).map_err(|_| ChannelError::BadSecret {
            reason: "not a key",
        })?;
        super::penalty::build_penalty(
            &self.params,
            &commitment,
            &self.secrets,
            &secret,
            destination,
            feerate,
        )
    }

    /// Forgets a round under way (call on reconnection): its secret nonces are dropped, and the
    /// LSP restarts the round with the same update counts (the commitment guard refuses any
    /// other commitment with that number).
    pub fn reset_round(&mut self) {
        self.round = Round::Idle;
    }

    /// The height at which this side must go on chain unless the peer settles first:
    /// - an HTLC it offered that is still committed: its expiry (then time it out on chain);
    /// - an HTLC it fulfilled that the peer has not committed the fulfill of:
    ///   `expiry − to_self_delay − htlc_margin / 2` (its own commitment's success path waits
    ///   `to_self_delay`, and must open before the peer's timeout path at `expiry`).
    pub fn poll_timeout(&self) -> Option<absolute::Height> {
        let mine = self.side;
        let offered = self
            .spec
            .htlcs
            .iter()
            .filter(|h| h.offerer == mine)
            .map(|h| h.expiry);
        let from = self.committed[&mine] as usize;
        let back = self
            .params
            .to_self_delay
            .to_blocks()
            .saturating_add(self.params.htlc_margin.to_blocks() / 2);
        let fulfilled = self.logs[&mine][from..].iter().filter_map(|u| match u {
            Update::Fulfill { id, .. } => self
                .spec
                .htlcs
                .iter()
                .find(|h| h.offerer == mine.other() && h.id == *id)
                .map(|h| {
                    absolute::Height::from_consensus(
                        h.expiry.to_consensus_u32().saturating_sub(back),
                    )
                    .unwrap_or(absolute::Height::ZERO)
                }),
            _ => None,
        });
        offered.chain(fulfilled).min()
    }

    /// Tells the machine the chain reached `now`; past a deadline of [`Channel::poll_timeout`]
    /// it asks the driver to broadcast this side's latest commitment.
    pub fn handle_timeout(&mut self, now: Now) {
        if let (Some(deadline), Some(tx)) = (self.poll_timeout(), self.signed.clone()) {
            if now.height >= deadline {
                self.actions.push_back(Action::Broadcast(tx));
                self.actions
                    .push_back(Action::Emit(ChannelEvent::ForceClose { deadline }));
            }
        }
    }

    // ---- updates -------------------------------------------------------------------------

    /// The state after every update either side has sent or received (what the next round
    /// would commit if it included everything).
    fn projected(&self) -> Result<CommitmentSpec, ChannelError> {
        let lsp = self.logs[&Side::Lsp].len() as u64;
        let client = self.logs[&Side::Client].len() as u64;
        self.spec_with(lsp, client)
    }

    fn spec_with(&self, lsp: u64, client: u64) -> Result<CommitmentSpec, ChannelError> {
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

    fn check_update(&self, now: Now, from: Side, update: &Update) -> Result<(), ChannelError> {
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
                .to_self_delay
                .checked_add(self.params.htlc_margin)
                .and_then(|d| d.after(now.height));
            if min.is_none_or(|m| *expiry <= m) {
                return Err(ChannelError::BadUpdate {
                    reason: "HTLC expiry too close: it must exceed now + to_self_delay + margin",
                });
            }
            if *amount == Amount::ZERO {
                return Err(ChannelError::BadUpdate {
                    reason: "zero-value HTLC",
                });
            }
        }
        let mut spec = self.projected()?;
        apply(&mut spec, &self.spec, from, update)?;
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

    fn push_update(&mut self, from: Side, update: Update) -> UpdateMsg {
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

    fn command(&mut self, now: Now, update: Update) -> Result<(), ChannelError> {
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

    // ---- rounds --------------------------------------------------------------------------

    fn next_number(&self) -> u64 {
        self.number.map_or(0, |n| n + 1)
    }

    fn guard_check(
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

    fn guard_record(&mut self, holder: Side, number: u64, sighash: TapSighash) {
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
        if self.in_round() {
            return Err(ChannelError::Unexpected {
                reason: "a round is already under way",
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
        let spec = self.spec_with(counts.0, counts.1)?;
        let client_commit = self.build_commitment(Side::Client, number, &spec)?;
        let lsp_commit = self.build_commitment(Side::Lsp, number, &spec)?;
        let (cs, ls) = (
            client_commit.sighash(&self.params),
            lsp_commit.sighash(&self.params),
        );
        self.guard_check(Side::Client, number, cs)?;
        self.guard_check(Side::Lsp, number, ls)?;
        let (nonce_client, pub_client) = generate_nonce(
            rng,
            &self.funding_secret,
            &self.funding_keys,
            &cs,
            &nonce_context(Side::Client, number),
        );
        let (nonce_lsp, pub_lsp) = generate_nonce(
            rng,
            &self.funding_secret,
            &self.funding_keys,
            &ls,
            &nonce_context(Side::Lsp, number),
        );
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
            _ => Err(ChannelError::Unexpected {
                reason: "a message this side never receives",
            }),
        }
    }

    fn handle_update(&mut self, now: Now, msg: UpdateMsg) -> Result<(), ChannelError> {
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
        self.push_update(from, msg.update);
        Ok(())
    }

    fn client_on_start<R: RngCore + CryptoRng>(
        &mut self,
        number: u64,
        counts: (u64, u64),
        lsp_nonce_client: PubNonce,
        lsp_nonce_lsp: PubNonce,
        rng: &mut R,
    ) -> Result<(), ChannelError> {
        if self.in_round() || number != self.next_number() {
            return Err(ChannelError::Unexpected {
                reason: "a round start for another commitment number, or during a round",
            });
        }
        let spec = self.spec_with(counts.0, counts.1)?;
        let client_commit = self.build_commitment(Side::Client, number, &spec)?;
        let lsp_commit = self.build_commitment(Side::Lsp, number, &spec)?;
        let (cs, ls) = (
            client_commit.sighash(&self.params),
            lsp_commit.sighash(&self.params),
        );
        self.guard_check(Side::Client, number, cs)?;
        self.guard_check(Side::Lsp, number, ls)?;
        let (nonce_client, pub_client) = generate_nonce(
            rng,
            &self.funding_secret,
            &self.funding_keys,
            &cs,
            &nonce_context(Side::Client, number),
        );
        let (nonce_lsp, pub_lsp) = generate_nonce(
            rng,
            &self.funding_secret,
            &self.funding_keys,
            &ls,
            &nonce_context(Side::Lsp, number),
        );
        let agg = aggregate_nonces([&lsp_nonce_lsp, &pub_lsp]);
        let partial = sign_partial(
            &self.funding_keys,
            &self.funding_secret,
            nonce_lsp,
            &agg,
            &ls,
        )?;
        self.guard_record(Side::Lsp, number, ls);
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

    fn lsp_on_signed(
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
        // Everything that can fail is checked before the nonces are spent: a bad partial
        // signature leaves the round waiting (the nonces restored).
        if let Err(e) = verify_partial(
            &self.funding_keys,
            &partial_lsp,
            &agg_lsp,
            &client_key,
            &client_nonce_lsp,
            &ls,
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
        let mine = sign_partial(
            &self.funding_keys,
            &self.funding_secret,
            nonce_lsp,
            &agg_lsp,
            &ls,
        )?;
        let sig = aggregate(
            &self.funding_keys,
            &agg_lsp,
            &order(
                &self.funding_keys,
                self.params.lsp_funding_key,
                mine,
                partial_lsp,
            ),
            &ls,
        )?;
        let signed = lsp_commit.signed(&sig);
        let partial_client = sign_partial(
            &self.funding_keys,
            &self.funding_secret,
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

    fn my_revocation(&self, number: u64) -> Option<Revocation> {
        (number > 0).then(|| Revocation {
            revoked: number - 1,
            secret: self.secrets.commitment_seed.secret(number - 1),
            next_point: self.secrets.commitment_seed.point(number + 1),
        })
    }

    /// Checks the peer's revocation for round `number`; returns what to store.
    fn check_revocation(
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

    fn apply_revocation(&mut self, checked: Option<CheckedRevocation>) {
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
                }));
        }
    }

    fn commit(&mut self, number: u64, counts: (u64, u64), spec: CommitmentSpec) {
        self.started = None;
        self.number = Some(number);
        self.spec = spec.clone();
        self.committed.insert(Side::Lsp, counts.0);
        self.committed.insert(Side::Client, counts.1);
        self.actions
            .push_back(Action::Persist(ChannelChange::Committed { number, spec }));
        self.actions
            .push_back(Action::Emit(ChannelEvent::Committed { number }));
    }

    fn client_on_signed(
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
        // Everything that can fail is checked before the secret nonce is spent.
        verify_partial(
            &self.funding_keys,
            &partial_client,
            &agg,
            &self.params.lsp_funding_key,
            lsp_nonce,
            &cs,
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
        let mine = sign_partial(
            &self.funding_keys,
            &self.funding_secret,
            nonce_client,
            &agg,
            &cs,
        )?;
        let sig = aggregate(
            &self.funding_keys,
            &agg,
            &order(
                &self.funding_keys,
                self.params.client_funding_key,
                mine,
                partial_client,
            ),
            &cs,
        )?;
        self.guard_record(Side::Client, number, cs);
        let signed = client_commit.signed(&sig);
        self.actions
            .push_back(Action::Persist(ChannelChange::LocalCommitment {
                number,
                tx: signed.clone(),
            }));
        self.signed = Some(signed);
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

    fn lsp_on_revoked(
        &mut self,
        number: u64,
        revocation: Option<Revocation>,
    ) -> Result<(), ChannelError> {
        match &self.round {
            Round::LspSigned { number: n, .. } if *n == number => {}
            _ => {
                return Err(ChannelError::Unexpected {
                    reason: "a revocation for a round this side is not waiting for",
                })
            }
        }
        let checked = self.check_revocation(number, &revocation)?;
        let Round::LspSigned { counts, spec, .. } = std::mem::replace(&mut self.round, Round::Idle)
        else {
            unreachable!("matched above")
        };
        self.apply_revocation(checked);
        self.commit(number, counts, spec);
        Ok(())
    }
}

/// Partial signatures in the job's signer order (mine and the peer's).
fn order(
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

/// Applies `update` sent by `from` to `spec`. Fulfills and fails may only name HTLCs of the
/// committed state `base` (an HTLC is settled only once both sides hold it).
fn apply(
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
fn settle(
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

fn remove(spec: &mut CommitmentSpec, h: &Htlc) {
    spec.htlcs
        .retain(|x| !(x.offerer == h.offerer && x.id == h.id));
}
