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

mod close;
mod restore;
mod round;
mod updates;
mod watch;

pub use updates::MAX_HTLCS;
pub use watch::ClaimKind;

use std::collections::{BTreeMap, VecDeque};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::{absolute, FeeRate, TapSighash, Transaction};

use super::commitment::{self, ChannelParams, Commitment, CommitmentSpec, Side};
use super::keys::{point_of, Basepoints, ChannelSecrets, CommitmentKeys, SecretStore};
use super::messages::{Action, ChannelEvent, Update};
use super::scripts::{self, OutputTree};
use super::ChannelError;
use crate::musig::{JobKeys, PubNonce, SecNonce, Signer};
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
    /// This side's key in the channel output's aggregate, derived once for every round.
    funding_signer: Signer,
    secrets: ChannelSecrets,
    peer: Basepoints,
    /// `to_remote` of the LSP's and of the client's commitments: each pays the other side's
    /// static payment key, so its taproot tree is the same in every commitment.
    to_remote: [OutputTree; 2],
    factor: u64,
    /// Latest commitment number both sides hold (None before round 0 completes).
    number: Option<u64>,
    spec: CommitmentSpec,
    signed: Option<Transaction>,
    /// The number of `signed`.
    signed_number: Option<u64>,
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
    /// Client: the LSP commitment it signed in a round not yet complete (the LSP may publish it).
    remote_pending: Option<(u64, CommitmentSpec)>,
    round: Round,
    closing: close::Closing,
    /// Client: the close it signed, until the LSP's final signature arrives.
    close_expect: Option<Transaction>,
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
        let funding_signer = Signer::new(&funding_secret);
        if funding_signer.public_key() != my_key {
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
        let to_remote = [
            scripts::to_remote(&client_pay),
            scripts::to_remote(&lsp_pay),
        ];
        let mut peer_points = BTreeMap::new();
        peer_points.insert(0, peer.first_points[0]);
        peer_points.insert(1, peer.first_points[1]);
        Ok(Channel {
            side,
            factor: commitment::obscuring_factor(&lsp_pay, &client_pay),
            params,
            funding_keys,
            funding_signer,
            secrets,
            peer: peer.basepoints,
            to_remote,
            number: None,
            spec,
            signed: None,
            signed_number: None,
            peer_points,
            peer_secrets: SecretStore::new(),
            revoked: BTreeMap::new(),
            logs: [(Side::Lsp, Vec::new()), (Side::Client, Vec::new())].into(),
            committed: [(Side::Lsp, 0), (Side::Client, 0)].into(),
            next_htlc_id: [(Side::Lsp, 0), (Side::Client, 0)].into(),
            guard: BTreeMap::new(),
            started: None,
            remote_pending: None,
            round: Round::Idle,
            closing: close::Closing::default(),
            close_expect: None,
            actions: VecDeque::new(),
        })
    }

    /// What this side tells its peer at open: basepoints and points for commitments 0 and 1.
    pub fn peer_info(&self) -> PeerInfo {
        PeerInfo {
            basepoints: self.secrets.basepoints(),
            first_points: self.secrets.first_points(),
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

    /// What the client can still receive on the latest commitment: the LSP's balance less the
    /// fee of a commitment with one more HTLC and the anchor (the LSP pays both).
    pub fn client_inbound(&self) -> bitcoin::Amount {
        let spec = &self.spec;
        let reserve =
            crate::channel::commitment::commitment_fee(spec.htlcs.len() + 1, spec.feerate)
                + self.params.anchor;
        spec.lsp_balance
            .checked_sub(reserve)
            .unwrap_or(bitcoin::Amount::ZERO)
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

    /// LSP: whether a round is needed — the channel has never been committed, an update of
    /// either side is not committed yet, or an interrupted round must be restarted.
    pub fn needs_round(&self) -> bool {
        self.number.is_none()
            || self.started.is_some()
            || [Side::Lsp, Side::Client]
                .iter()
                .any(|s| self.logs[s].len() as u64 > self.committed[s])
    }

    /// The state after every update sent or received so far (what the next round commits).
    pub fn pending_spec(&self) -> Result<CommitmentSpec, ChannelError> {
        self.projected()
    }

    /// The preimage the peer sent for this side's HTLC `id`, if it did (kept in the update
    /// log, so it survives a restart before the settlement is committed).
    pub fn preimage_received(&self, id: u64) -> Option<[u8; 32]> {
        self.logs[&self.side.other()].iter().find_map(|u| match u {
            Update::Fulfill { id: i, preimage } if *i == id => Some(*preimage),
            _ => None,
        })
    }

    /// Every preimage in either side's update log (fulfills sent and received), by payment
    /// hash: what this side can claim an HTLC's success path with on chain.
    pub fn known_preimages(&self) -> BTreeMap<sha256::Hash, [u8; 32]> {
        self.logs
            .values()
            .flatten()
            .filter_map(|u| match u {
                Update::Fulfill { preimage, .. } => Some((sha256::Hash::hash(preimage), *preimage)),
                _ => None,
            })
            .collect()
    }

    /// How many of the peer's updates this side holds (told to the peer on reconnection).
    pub fn updates_received(&self) -> u64 {
        self.logs[&self.side.other()].len() as u64
    }

    /// After a reconnection: sends again this side's uncommitted updates from number
    /// `peer_has` on (the peer said it holds that many), so no update sent while the connection
    /// was down is missing when the next round covers it.
    pub fn resend_updates(&mut self, peer_has: u64) {
        let from = peer_has.max(self.committed[&self.side]) as usize;
        let resend: Vec<Action> = self.logs[&self.side]
            .iter()
            .enumerate()
            .skip(from)
            .map(|(seq, update)| {
                Action::Send(super::messages::ChannelMsg::Update(
                    super::messages::UpdateMsg {
                        seq: seq as u64,
                        update: update.clone(),
                    },
                ))
            })
            .collect();
        self.actions.extend(resend);
    }

    /// The next id this side's `add_htlc` uses.
    pub fn next_htlc_id(&self) -> u64 {
        self.next_htlc_id[&self.side]
    }

    pub(super) fn keys_for(&self, holder: Side, point: &PublicKey) -> CommitmentKeys {
        let mine = self.secrets.basepoints();
        if holder == self.side {
            CommitmentKeys::derive(&mine, &self.peer, point)
        } else {
            CommitmentKeys::derive(&self.peer, &mine, point)
        }
    }

    pub(super) fn point(&self, holder: Side, number: u64) -> Result<PublicKey, ChannelError> {
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
        let to_remote = &self.to_remote[holder as usize];
        commitment::build(
            &self.params,
            holder,
            number,
            spec,
            &keys,
            to_remote,
            self.factor,
        )
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

    /// The numbers of the peer's revoked commitments, lowest first.
    pub fn revoked_numbers(&self) -> impl Iterator<Item = u64> + '_ {
        self.revoked.keys().copied()
    }

    /// The state of the peer's revoked commitment `number`, as stored for its penalty.
    pub fn revoked_spec(&self, number: u64) -> Option<&CommitmentSpec> {
        self.revoked.get(&number)
    }

    /// The peer's revoked commitment `number`, and the revocation secret its holder revealed.
    fn revoked_commitment(&self, number: u64) -> Result<(Commitment, SecretKey), ChannelError> {
        let spec = self
            .revoked
            .get(&number)
            .ok_or(ChannelError::NotClaimable {
                reason: "that commitment is not revoked",
            })?;
        let commitment = self.build_commitment(self.side.other(), number, spec)?;
        let secret = self
            .peer_secrets
            .get(number)
            .ok_or(ChannelError::NotClaimable {
                reason: "no revocation secret",
            })?;
        let secret = SecretKey::from_slice(&secret).map_err(|_| ChannelError::BadSecret {
            reason: "not a key",
        })?;
        Ok((commitment, secret))
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
        let (commitment, secret) = self.revoked_commitment(number)?;
        if commitment.tx.compute_txid() != tx.compute_txid() {
            return Err(ChannelError::NotClaimable {
                reason: "the transaction is not the peer's revoked commitment",
            });
        }
        super::penalty::build_penalty(
            &self.params,
            &commitment,
            &self.secrets,
            &secret,
            destination,
            feerate,
        )
    }

    /// The penalty of the peer's revoked commitment `number` at each of `feerates` it can pay
    /// (a rate whose fee the outputs cannot cover is left out), paying `destination`, with that
    /// commitment's txid. The commitment and its secret are derived once for every rate: what
    /// a wallet hands its watchtower (`crate::tower`).
    pub fn penalty_ladder(
        &self,
        number: u64,
        destination: &bitcoin::ScriptBuf,
        feerates: impl IntoIterator<Item = FeeRate>,
    ) -> Result<(bitcoin::Txid, Vec<(FeeRate, Transaction)>), ChannelError> {
        let (commitment, secret) = self.revoked_commitment(number)?;
        let rungs = feerates
            .into_iter()
            .filter_map(|feerate| {
                let tx = super::penalty::build_penalty(
                    &self.params,
                    &commitment,
                    &self.secrets,
                    &secret,
                    destination.clone(),
                    feerate,
                )
                .ok()?;
                Some((feerate, tx))
            })
            .collect();
        Ok((commitment.tx.compute_txid(), rungs))
    }

    /// Forgets a round under way (call on reconnection): its secret nonces are dropped, and the
    /// LSP restarts the round with the same update counts (the commitment guard refuses any
    /// other commitment with that number).
    pub fn reset_round(&mut self) {
        self.round = Round::Idle;
    }

    /// The height at which this side must start going on chain (walk the tree path, then
    /// publish its latest commitment) unless the peer settles first:
    /// - an HTLC it offered that is still committed: `expiry − walk`, so its commitment is
    ///   on chain by the expiry and its timeout claim can follow;
    /// - an HTLC it fulfilled that the peer has not committed the fulfill of:
    ///   `expiry − walk − to_self_delay − htlc_margin / 2` (the walk, then its own
    ///   commitment's success path waits `to_self_delay`, and must open before the peer's
    ///   timeout path at `expiry`).
    pub fn poll_timeout(&self) -> Option<absolute::Height> {
        let mine = self.side;
        let walk = self.params.walk.to_blocks();
        let height = |h: u32| absolute::Height::from_consensus(h).unwrap_or(absolute::Height::ZERO);
        let offered = self
            .spec
            .htlcs
            .iter()
            .filter(|h| h.offerer == mine)
            .map(|h| height(h.expiry.to_consensus_u32().saturating_sub(walk)));
        let from = self.committed[&mine] as usize;
        let back = self
            .params
            .to_self_delay
            .to_blocks()
            .saturating_add(self.params.htlc_margin.to_blocks() / 2)
            .saturating_add(walk);
        let fulfilled = self.logs[&mine][from..].iter().filter_map(|u| match u {
            Update::Fulfill { id, .. } => self
                .spec
                .htlcs
                .iter()
                .find(|h| h.offerer == mine.other() && h.id == *id)
                .map(|h| height(h.expiry.to_consensus_u32().saturating_sub(back))),
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
}
