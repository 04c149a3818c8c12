//! The creation ceremony's wire messages (one struct per message; each is a [`WireMsg`] variant).
//!
//! Limits are enforced while decoding, so a handler never sees an oversized or ambiguous
//! message: per-node lists ([`NodeMap`]) hold at most [`MAX_NODES_PER_MSG`] entries in strictly
//! increasing node order (no duplicates), and free text ([`Reason`]) is at most
//! [`MAX_REASON_LEN`] bytes. Everything else is fixed-size. Per-node lists travel as JSON arrays
//! of `[node, value]` pairs, never as maps with integer keys.
//!
//! [`WireMsg`]: crate::wire::WireMsg

use std::collections::BTreeMap;
use std::fmt;

use bitcoin::secp256k1::{schnorr, PublicKey};
use bitcoin::{Amount, Txid};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::JoinError;
use super::proposal::ProposalPayload;
use crate::musig::{AggNonce, PartialSig, PubNonce};
use crate::terms::{FeeSchedule, TermsBody};
use crate::types::{ClientId, FactoryId, NodeId, SessionId};

/// Most nodes one message may carry. A client signs O(depth) nodes (about 2 per tree level plus
/// its leaf), far below this even for N = 1024 clients.
pub const MAX_NODES_PER_MSG: usize = 512;

/// Longest [`Reason`] text, in bytes.
pub const MAX_REASON_LEN: usize = 512;

/// A per-node list with at most [`MAX_NODES_PER_MSG`] entries, one per node.
///
/// Encoded as a JSON array of `[node, value]` pairs in strictly increasing node order; decoding
/// refuses anything longer, unordered or repeated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMap<T>(BTreeMap<NodeId, T>);

/// A [`NodeMap`] would exceed [`MAX_NODES_PER_MSG`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{len} nodes exceed the per-message limit of {MAX_NODES_PER_MSG}")]
pub struct TooManyNodes {
    /// How many there were.
    pub len: usize,
}

impl<T> NodeMap<T> {
    /// Wraps a map, refusing more than [`MAX_NODES_PER_MSG`] entries.
    pub fn new(map: BTreeMap<NodeId, T>) -> Result<Self, TooManyNodes> {
        if map.len() > MAX_NODES_PER_MSG {
            return Err(TooManyNodes { len: map.len() });
        }
        Ok(NodeMap(map))
    }

    /// The entries, by node.
    pub fn as_map(&self) -> &BTreeMap<NodeId, T> {
        &self.0
    }

    /// Unwraps into the map.
    pub fn into_map(self) -> BTreeMap<NodeId, T> {
        self.0
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the nodes are exactly `nodes`.
    pub fn covers_exactly<'a>(&self, nodes: impl IntoIterator<Item = &'a NodeId>) -> bool {
        self.0.keys().eq(nodes)
    }
}

impl<T: Serialize> Serialize for NodeMap<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NodeMap<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let pairs = Vec::<(NodeId, T)>::deserialize(d)?;
        if pairs.len() > MAX_NODES_PER_MSG {
            return Err(D::Error::custom(TooManyNodes { len: pairs.len() }));
        }
        if pairs.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(D::Error::custom(
                "node entries must be in strictly increasing node order",
            ));
        }
        Ok(NodeMap(pairs.into_iter().collect()))
    }
}

/// Human-readable text of at most [`MAX_REASON_LEN`] bytes (longer text is cut when built
/// locally, and refused when decoded).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Reason(String);

impl Reason {
    /// Builds a reason, cutting it to [`MAX_REASON_LEN`] bytes at a character boundary.
    pub fn new(text: impl Into<String>) -> Reason {
        let mut text = text.into();
        if text.len() > MAX_REASON_LEN {
            let mut cut = MAX_REASON_LEN;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        Reason(text)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() > MAX_REASON_LEN {
            return Err(serde::de::Error::custom(format!(
                "reason of {} bytes exceeds the limit of {MAX_REASON_LEN}",
                text.len()
            )));
        }
        Ok(Reason(text))
    }
}

/// What the LSP offers a joining client: the amounts it accepted and the fee it charges.
///
/// The client pays the fee later, from the first payment its channel receives that leaves it at
/// least [`MIN_RECEIVED`](crate::pay::join_fee::MIN_RECEIVED) (see [`crate::pay::join_fee`]):
/// it brings no coins to the join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// Channel capacity in the client's leaf.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub channel: Amount,
    /// Inbound liquidity (L-stock) in the client's leaf.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub liquidity: Amount,
    /// Total fee: join fee plus the liquidity price ([`JoinPrice::total`]).
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub fee: Amount,
}

impl Quote {
    /// Prices a join request under the LSP's published terms: checks the amounts against the
    /// limits, and charges [`JoinPrice::under`] the terms' fees. Both sides run it, so a client
    /// can check the quote it is given.
    pub fn for_request(terms: &TermsBody, request: &JoinRequest) -> Result<Quote, JoinError> {
        let check = |what, got: Amount, min: Amount, max: Amount| {
            if got < min || got > max {
                Err(JoinError::OutOfRange {
                    what,
                    got,
                    min,
                    max,
                })
            } else {
                Ok(())
            }
        };
        check(
            "channel",
            request.channel,
            terms.min_channel,
            terms.max_channel,
        )?;
        check(
            "liquidity",
            request.liquidity,
            terms.min_liquidity,
            terms.max_liquidity,
        )?;
        let fee = JoinPrice::under(&terms.fees, request.liquidity)?.total();
        Ok(Quote {
            channel: request.channel,
            liquidity: request.liquidity,
            fee,
        })
    }
}

/// The two parts of a join's fee, as a wallet shows them before the user joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinPrice {
    join_fee: Amount,
    liquidity_fee: Amount,
}

impl JoinPrice {
    /// The price of joining with `liquidity` of inbound liquidity under `fees`.
    pub fn under(fees: &FeeSchedule, liquidity: Amount) -> Result<JoinPrice, JoinError> {
        let ppm = u128::from(fees.liquidity_fee_ppm);
        let price = (u128::from(liquidity.to_sat()) * ppm).div_ceil(1_000_000);
        let liquidity_fee = u64::try_from(price)
            .ok()
            .map(Amount::from_sat)
            .filter(|p| fees.join_fee.checked_add(*p).is_some())
            .ok_or(JoinError::FeeOverflow)?;
        Ok(JoinPrice {
            join_fee: fees.join_fee,
            liquidity_fee,
        })
    }

    /// The terms' flat `join_fee`.
    pub fn join_fee(&self) -> Amount {
        self.join_fee
    }

    /// The liquidity part: `ceil(liquidity × liquidity_fee_ppm / 10⁶)`.
    pub fn liquidity_fee(&self) -> Amount {
        self.liquidity_fee
    }

    /// The whole fee (the quote's `fee`).
    pub fn total(&self) -> Amount {
        self.join_fee
            .checked_add(self.liquidity_fee)
            .expect("the sum is checked when the price is built")
    }
}

/// The ceremony's rounds, as named in deadlines and exclusions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Round {
    /// Signers send public nonces.
    Nonces,
    /// Signers send partial signatures.
    PartialSigs,
    /// Clients confirm they stored the final signatures.
    Ack,
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Round::Nonces => "nonce",
            Round::PartialSigs => "partial-signature",
            Round::Ack => "acknowledgement",
        })
    }
}

/// Why the LSP excluded a client from the ceremony.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ExclusionReason {
    /// No answer before the round's deadline.
    Timeout {
        /// The round it missed.
        round: Round,
    },
    /// The client refused the proposal or to continue.
    Refused {
        /// Its stated reason.
        reason: Reason,
    },
    /// The client sent values for other nodes than those it signs.
    WrongNodes {
        /// The round of the message.
        round: Round,
    },
    /// A partial signature that does not verify.
    BadPartialSignature {
        /// The node it was for.
        node: NodeId,
        /// The client's index in that node's BIP-327-sorted signer list.
        signer_index: u32,
        /// The client's key.
        pubkey: PublicKey,
    },
}

impl fmt::Display for ExclusionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExclusionReason::Timeout { round } => write!(f, "no answer in the {round} round"),
            ExclusionReason::Refused { reason } => write!(f, "refused: {reason}"),
            ExclusionReason::WrongNodes { round } => {
                write!(f, "sent values for the wrong nodes in the {round} round")
            }
            ExclusionReason::BadPartialSignature {
                node,
                signer_index,
                pubkey,
            } => write!(
                f,
                "invalid partial signature for node {node} (signer #{signer_index}, {pubkey})"
            ),
        }
    }
}

/// Client → LSP: asks to join the next factory with a fresh factory key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The client's key for this factory only (derived from its seed, never reused).
    pub pubkey: PublicKey,
    /// Desired channel capacity.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub channel: Amount,
    /// Desired inbound liquidity.
    #[serde(with = "bitcoin::amount::serde::as_sat")]
    pub liquidity: Amount,
}

/// LSP → client: the client is a member; here is its id and quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinAccepted {
    /// The factory being gathered.
    pub factory: FactoryId,
    /// The client's id in this factory, kept across restarts.
    pub client: ClientId,
    /// The LSP's key for this factory; every proposal must use it.
    pub lsp_key: PublicKey,
    /// Accepted amounts and fee.
    pub quote: Quote,
    /// Unix time by which the LSP sends its proposal.
    pub start_by: u64,
}

/// LSP → client: the join request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRejected {
    /// Why, and what to do.
    pub reason: Reason,
}

/// LSP → client: a session starts; rebuild your jobs from the payload and send nonces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Propose {
    /// Factory, session and the tree's parameters.
    pub payload: ProposalPayload,
    /// Unix time by which the LSP must have the nonces.
    pub respond_by: u64,
}

/// Client → LSP: public nonces for exactly the nodes the client signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nonces {
    /// Factory.
    pub factory: FactoryId,
    /// Session.
    pub session: SessionId,
    /// One public nonce per node the client signs.
    pub nonces: NodeMap<PubNonce>,
}

/// LSP → client: the aggregated nonces of exactly the client's nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggNonces {
    /// Factory.
    pub factory: FactoryId,
    /// Session.
    pub session: SessionId,
    /// One aggregated nonce per node the client signs.
    pub agg_nonces: NodeMap<AggNonce>,
    /// Unix time by which the LSP must have the partial signatures.
    pub respond_by: u64,
}

/// Client → LSP: partial signatures for exactly the client's nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialSigs {
    /// Factory.
    pub factory: FactoryId,
    /// Session.
    pub session: SessionId,
    /// One partial signature per node the client signs.
    pub partials: NodeMap<PartialSig>,
}

/// LSP → client: final BIP-340 signatures of exactly the client's nodes (its exit path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalSigs {
    /// Factory.
    pub factory: FactoryId,
    /// Session.
    pub session: SessionId,
    /// One final signature per node the client signs.
    pub signatures: NodeMap<schnorr::Signature>,
    /// Unix time by which the LSP must have the acknowledgement.
    pub respond_by: u64,
}

/// Client → LSP: the final signatures verified and are stored durably.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigsStored {
    /// Factory.
    pub factory: FactoryId,
    /// Session.
    pub session: SessionId,
}

/// Client → LSP: the client will not (or can no longer) take part, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refuse {
    /// Factory.
    pub factory: FactoryId,
    /// The session refused, or `None` when refusing the quote before any session.
    pub session: Option<SessionId>,
    /// Why.
    pub reason: Reason,
}

/// LSP → client: the client is out of this factory; the others continue without it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excluded {
    /// Factory.
    pub factory: FactoryId,
    /// The session in which it was excluded.
    pub session: SessionId,
    /// Why.
    pub reason: ExclusionReason,
}

/// LSP → client: the whole ceremony is abandoned (nothing was broadcast; no funds moved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aborted {
    /// Factory.
    pub factory: FactoryId,
    /// The last session, if one had started.
    pub session: Option<SessionId>,
    /// Why.
    pub reason: Reason,
}

/// LSP → client: every signature is stored; the funding transaction was broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundingBroadcast {
    /// Factory.
    pub factory: FactoryId,
    /// The session whose signatures are final.
    pub session: SessionId,
    /// The funding transaction, to watch on the client's own chain source.
    pub txid: Txid,
}
