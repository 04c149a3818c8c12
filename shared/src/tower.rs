//! The keyless watchtower's contract: what a wallet hands a tower so that, while the wallet is
//! away, every cheat on its channel is still answered, and what the tower may do with it.
//!
//! A tower holds **no key**. It holds, per channel, an [`Appointment`]:
//!
//! - the client's [`ExitKit`]: every signed tree path and leaf state, all pre-signed by the
//!   whole factory, so anyone may broadcast them. When the factory's funding output is spent
//!   (the distribution transaction is dead and the `T_sweep` clock runs) or the timeout `T`
//!   is reached, the tower follows [`ExitKit::next_action`] as the wallet would: it walks the
//!   path, answers a stale DW or leaf state with the newest, and stops at the leaf;
//! - one [`Penalty`] per revoked commitment of the LSP, signed by the wallet at a ladder of fee
//!   rates ([`PENALTY_RATES`]), paying the wallet's own on-chain address. When the channel
//!   output is spent by a revoked commitment, the tower broadcasts the penalty, stepping up one
//!   rung per block it waits, within the `to_self_delay` the LSP's `to_local` is locked for.
//!
//! So a tower that is malicious or gone can only fail to act; it cannot redirect a sat. What it
//! learns: the client's path and channel outpoints (which the LSP knows anyway) and, per
//! revoked state, one transaction.
//!
//! A wallet sends its appointment as a [`SignedAppointment`]: the JSON body exactly as signed
//! by the wallet's identity key (BIP-340, tagged hash `superscalar/tower`), so no re-encoding
//! can change what was signed. A body carries the whole kit and the penalties not sent before;
//! the tower keeps every penalty it was ever given for the channel, and takes a body only if
//! its `sequence` is above the last one it took for that identity and channel, so an old body
//! replayed cannot replace a newer kit.

use bitcoin::hashes::{sha256t_hash_newtype, Hash, HashEngine};
use bitcoin::secp256k1::{rand, schnorr, Keypair, Message, XOnlyPublicKey};
use bitcoin::{FeeRate, ScriptBuf, Transaction, Txid};
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::exit::{ExitError, ExitKit};
use crate::pay::ChannelId;

sha256t_hash_newtype! {
    /// Tag of an appointment's signature.
    pub struct TowerTag = hash_str("superscalar/tower");
    /// What the identity key signs: `identity || body`.
    #[hash_newtype(forward)]
    pub struct TowerHash(_);
}

/// The fee rates (sat/vB) each penalty is signed at, lowest first. The tower starts at the
/// lowest rung that pays today's urgent rate and climbs one rung per block the penalty waits.
pub const PENALTY_RATES: [u64; 6] = [1, 3, 10, 30, 100, 300];

/// The most penalties a tower keeps per channel (one per payment round of the channel).
pub const MAX_PENALTIES: usize = 100_000;

/// The largest signed body a tower takes, in bytes.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The penalty of one revoked commitment, at each fee rate of [`PENALTY_RATES`] the channel
/// could pay (rungs whose fee would eat the outputs are left out), lowest rate first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Penalty {
    /// The revoked commitment it answers.
    pub revoked: Txid,
    /// The same penalty at rising fee rates, lowest first.
    pub rungs: Vec<Rung>,
}

/// One penalty signed at one fee rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rung {
    /// The rate it pays, as the wallet signed it (sat/vB).
    pub sat_per_vb: u64,
    /// The signed penalty.
    pub tx: Transaction,
}

/// What a tower watches for one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appointment {
    /// The channel (the client's leaf in its factory).
    pub channel: ChannelId,
    /// Rises with every body the wallet sends for the channel.
    pub sequence: u64,
    /// The client's signed paths and leaf states.
    pub kit: ExitKit,
    /// Penalties not sent before (the tower keeps the earlier ones).
    pub penalties: Vec<Penalty>,
    /// The wallet moved everything out of the channel and released its factory key (it sends
    /// this only after a release it asked for itself): the tower no longer walks its path,
    /// which the LSP takes back by key path, but still answers an old commitment. Once set, it
    /// stays set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub moved: bool,
}

/// An [`Appointment`] as sent: its JSON, and the identity key's signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAppointment {
    /// The wallet's identity key.
    pub identity: XOnlyPublicKey,
    /// The appointment's JSON, byte for byte as signed.
    pub body: String,
    /// BIP-340 signature over [`tower_hash`].
    pub signature: schnorr::Signature,
}

/// Why a tower refuses an appointment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TowerError {
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error("the appointment is {0} bytes; a tower takes at most {MAX_BODY_BYTES}")]
    TooLarge(usize),
    /// The signature does not verify for the identity and body.
    #[error("the signature does not verify for this identity and body")]
    BadSignature,
    /// The body is not an appointment.
    #[error("the body is not an appointment: {0}")]
    Malformed(String),
    /// A path of the kit does not verify.
    #[error("the exit kit does not verify: {0}")]
    Kit(#[from] ExitError),
    /// A penalty spends something other than its revoked commitment, has no rung, or its rungs
    /// do not rise.
    #[error("the penalty for {0} is malformed: it needs rungs of rising fee rate, each spending only that commitment")]
    BadPenalty(Txid),
    /// The kit is of another channel than the appointment names.
    #[error("the kit is of client {kit}, not of the appointment's channel {channel}")]
    OtherChannel {
        /// The appointment's channel.
        channel: ChannelId,
        /// The kit's client.
        kit: crate::types::ClientId,
    },
    /// Too many penalties for one channel.
    #[error("a tower keeps at most {MAX_PENALTIES} penalties per channel")]
    TooManyPenalties,
}

/// The tagged hash an identity signs: `identity || body`.
pub fn tower_hash(identity: &XOnlyPublicKey, body: &str) -> TowerHash {
    let mut engine = TowerHash::engine();
    engine.input(&identity.serialize());
    engine.input(body.as_bytes());
    TowerHash::from_engine(engine)
}

impl SignedAppointment {
    /// Signs `appointment` with the wallet's `identity` key (auxiliary randomness from `rng`).
    pub fn sign<R: rand::RngCore + rand::CryptoRng>(
        identity: &Keypair,
        appointment: &Appointment,
        rng: &mut R,
    ) -> SignedAppointment {
        let secp = crate::secp::ctx();
        let key = identity.x_only_public_key().0;
        let body = serde_json::to_string(appointment).expect("an appointment always encodes");
        let msg = Message::from_digest(tower_hash(&key, &body).to_byte_array());
        let mut aux = [0u8; 32];
        rng.fill_bytes(&mut aux);
        SignedAppointment {
            identity: key,
            signature: secp.sign_schnorr_with_aux_rand(&msg, identity, &aux),
            body,
        }
    }

    /// The appointment, once its size, signature, kit and penalties check out. The kit is
    /// rebuilt path by path, so every tree signature in it verifies.
    pub fn open(&self) -> Result<Appointment, TowerError> {
        if self.body.len() > MAX_BODY_BYTES {
            return Err(TowerError::TooLarge(self.body.len()));
        }
        let secp = crate::secp::ctx();
        let msg = Message::from_digest(tower_hash(&self.identity, &self.body).to_byte_array());
        secp.verify_schnorr(&self.signature, &msg, &self.identity)
            .map_err(|_| TowerError::BadSignature)?;
        let appointment: Appointment =
            serde_json::from_str(&self.body).map_err(|e| TowerError::Malformed(e.to_string()))?;
        appointment.check()?;
        Ok(appointment)
    }
}

impl Appointment {
    /// Checks the kit's signatures and each penalty's shape.
    pub fn check(&self) -> Result<(), TowerError> {
        let kit = self.kit.rechecked()?;
        if kit.latest().client() != self.channel.client {
            return Err(TowerError::OtherChannel {
                channel: self.channel,
                kit: kit.latest().client(),
            });
        }
        if self.penalties.len() > MAX_PENALTIES {
            return Err(TowerError::TooManyPenalties);
        }
        for penalty in &self.penalties {
            let spends_only_it = |r: &Rung| {
                !r.tx.input.is_empty()
                    && r.tx
                        .input
                        .iter()
                        .all(|i| i.previous_output.txid == penalty.revoked)
            };
            let rising = penalty
                .rungs
                .windows(2)
                .all(|w| w[0].sat_per_vb < w[1].sat_per_vb);
            if penalty.rungs.is_empty() || !rising || !penalty.rungs.iter().all(spends_only_it) {
                return Err(TowerError::BadPenalty(penalty.revoked));
            }
        }
        Ok(())
    }
}

impl Penalty {
    /// The index in `rungs` of the rung to broadcast: the lowest paying at least `target`
    /// (today's urgent rate, if known), then `waited` rungs higher (one per block the revoked
    /// commitment has been confirmed without the penalty), capped at the top rung.
    pub fn rung_index(&self, target: Option<FeeRate>, waited: usize) -> usize {
        let top = self.rungs.len().saturating_sub(1);
        let first = self
            .rungs
            .iter()
            .position(|r| target.is_none_or(|t| r.sat_per_vb >= t.to_sat_per_vb_ceil()))
            .unwrap_or(top);
        (first + waited).min(top)
    }
}

/// The most penalties one body carries (a body stays well under [`MAX_BODY_BYTES`]); a wallet
/// with more to send sends several bodies.
pub const PENALTIES_PER_BODY: usize = 200;

/// The penalties of `channel`'s revoked commitments numbered `from` and above (at most
/// `limit` of them), each at every rate of [`PENALTY_RATES`] the channel can pay, paying
/// `destination`; with the highest number included (the next call's `from` is one above it).
pub fn penalties(
    channel: &Channel,
    from: u64,
    destination: &ScriptBuf,
    limit: usize,
) -> (Vec<Penalty>, Option<u64>) {
    let mut out = Vec::new();
    let mut last = None;
    let numbers = channel.revoked_numbers().filter(|n| *n >= from);
    for number in numbers.take(limit) {
        last = Some(number);
        let rates = PENALTY_RATES
            .iter()
            .filter_map(|&r| FeeRate::from_sat_per_vb(r));
        let Ok((revoked, ladder)) = channel.penalty_ladder(number, destination, rates) else {
            continue;
        };
        let rungs: Vec<Rung> = ladder
            .into_iter()
            .map(|(rate, tx)| Rung {
                sat_per_vb: rate.to_sat_per_vb_floor(),
                tx,
            })
            .collect();
        if !rungs.is_empty() {
            out.push(Penalty { revoked, rungs });
        }
    }
    (out, last)
}

#[cfg(test)]
mod tests;
