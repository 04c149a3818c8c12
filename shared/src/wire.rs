//! The WebSocket wire format between wallet and LSP.
//!
//! Every frame is one JSON [`Envelope`]: a protocol version and one [`WireMsg`]. Decoding enforces
//! [`MAX_FRAME_BYTES`] before parsing, and refuses versions it does not speak, so a peer learns what
//! was wrong instead of being silently dropped.

use serde::{Deserialize, Serialize};

use crate::auth::{AuthChallenge, AuthProof, AuthRequest, Authenticated};
use crate::ceremony::messages::{
    Aborted, AggNonces, Excluded, FinalSigs, FundingBroadcast, JoinAccepted, JoinRejected,
    JoinRequest, Nonces, PartialSigs, Propose, Refuse, SigsStored,
};
use crate::leaf::{LeafPartials, LeafSigned, LiquidityAccept, LiquidityOffer, LiquidityRequest};
use crate::lifecycle::{FactoryNotice, KeyRelease, KeyReleased};
use crate::pay::{
    ChannelClosed, ChannelFrame, ChannelOpen, FaucetRequest, InvoiceRegister, InvoiceRegistered,
    PayRequest, PayResult, RouteAnswer, RouteQuery,
};
use crate::terms::SignedTerms;

/// The wire protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// Largest frame either side accepts, in bytes. Checked before any parsing.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;

/// One frame on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Protocol version of the sender; must equal [`PROTOCOL_VERSION`].
    pub v: u16,
    /// The message.
    pub msg: WireMsg,
}

impl Envelope {
    /// Wraps a message in an envelope of this build's version.
    pub fn new(msg: WireMsg) -> Self {
        Envelope {
            v: PROTOCOL_VERSION,
            msg,
        }
    }

    /// Encodes to the JSON text sent in one WebSocket text frame.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("wire messages contain no maps with non-string keys")
    }

    /// Decodes one frame, checking its size and version first.
    pub fn decode(frame: &str) -> Result<Self, DecodeError> {
        if frame.len() > MAX_FRAME_BYTES {
            return Err(DecodeError::TooLarge {
                len: frame.len(),
                max: MAX_FRAME_BYTES,
            });
        }
        #[derive(Deserialize)]
        struct VersionOnly {
            v: u16,
        }
        let probe: VersionOnly =
            serde_json::from_str(frame).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if probe.v != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                got: probe.v,
                want: PROTOCOL_VERSION,
            });
        }
        serde_json::from_str(frame).map_err(|e| DecodeError::Malformed(e.to_string()))
    }
}

/// Every message either side may send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WireMsg {
    /// Client → LSP: first message after connecting.
    Hello {
        /// Free-form client software name and version, for the LSP's logs.
        agent: String,
    },
    /// LSP → client: reply to [`WireMsg::Hello`], carrying the LSP's current signed terms.
    Welcome {
        /// The terms, exactly as served at `/.well-known/superscalar.json`.
        terms: Box<SignedTerms>,
    },
    /// Either side: liveness check.
    Ping {
        /// Echoed back in the pong.
        nonce: u64,
    },
    /// Either side: answer to a ping.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// Either side: the previous frame was refused; the connection stays open unless `fatal`.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable explanation, saying what to do.
        message: String,
        /// Whether the sender closes the connection after this frame.
        fatal: bool,
        /// What the refusal is about, when it is about one thing the receiver holds (a
        /// channel, a purchase, a payment): the receiver acts on it without reading `message`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        about: Option<ErrorAbout>,
    },
    // Factory-creation ceremony (see `crate::ceremony` and docs/protocol.md, "Wire messages").
    /// Client → LSP: join the next factory.
    JoinRequest(JoinRequest),
    /// LSP → client: joined, with id and quote.
    JoinAccepted(JoinAccepted),
    /// LSP → client: join refused.
    JoinRejected(JoinRejected),
    /// LSP → client: a (new) session's proposal.
    Propose(Propose),
    /// Client → LSP: public nonces of the client's nodes.
    Nonces(Nonces),
    /// LSP → client: aggregated nonces of the client's nodes.
    AggNonces(AggNonces),
    /// Client → LSP: partial signatures of the client's nodes.
    PartialSigs(PartialSigs),
    /// LSP → client: final signatures of the client's nodes.
    FinalSigs(FinalSigs),
    /// Client → LSP: final signatures verified and stored.
    SigsStored(SigsStored),
    /// Client → LSP: the client refuses to go on.
    Refuse(Refuse),
    /// LSP → client: the client is excluded.
    Excluded(Excluded),
    /// LSP → client: the ceremony is abandoned.
    Aborted(Aborted),
    /// LSP → client: the funding transaction was broadcast.
    FundingBroadcast(FundingBroadcast),
    // Authentication (see `crate::auth` and docs/protocol.md, "Authentication and resume").
    /// Client → LSP: asks for a challenge for its identity key.
    AuthRequest(AuthRequest),
    /// LSP → client: the challenge to sign.
    AuthChallenge(AuthChallenge),
    /// Client → LSP: the signed challenge.
    AuthProof(AuthProof),
    /// LSP → client: authenticated (and re-attached to a ceremony, if any).
    Authenticated(Authenticated),
    // Channels and payments (see `crate::pay` and docs/protocol.md, "Payments").
    /// Either side: channel basepoints (the wallet first, on every connection).
    ChannelOpen(Box<ChannelOpen>),
    /// Either side: one channel update or commitment-round message.
    Channel(Box<ChannelFrame>),
    /// Client → LSP: route the HTLC being added to an invoice's payee.
    PayRequest(PayRequest),
    /// LSP → client: how a payment ended.
    PayResult(PayResult),
    /// Client → LSP (demo networks): pay this invoice from the LSP's side, as test sats.
    FaucetRequest(FaucetRequest),
    /// LSP → client: the channel takes no more payments, and why.
    ChannelClosed(ChannelClosed),
    /// Client → LSP: could this invoice's payee receive it now?
    RouteQuery(RouteQuery),
    /// LSP → client: the answer to a [`WireMsg::RouteQuery`].
    RouteAnswer(RouteAnswer),
    /// Client → LSP: make the LSP's Lightning node the payee of an invoice for this hash.
    InvoiceRegister(InvoiceRegister),
    /// LSP → client: the node's invoice.
    InvoiceRegistered(InvoiceRegistered),
    // Sending to an on-chain address (see `crate::swap` and docs/protocol.md, "Swap out").
    /// Client → LSP: pay this much on chain against the HTLC the client is adding.
    SwapOutRequest(crate::swap::SwapOutRequest),
    /// LSP → client: the on-chain output is paid.
    SwapOutFunded(Box<crate::swap::SwapOutFunded>),
    // Buying inbound liquidity (see `crate::leaf` and docs/protocol.md, "Leaf states").
    /// Client → LSP: buy inbound liquidity from the leaf's L-stock.
    LiquidityRequest(LiquidityRequest),
    /// LSP → client: the advance offered, with the LSP's side of the new channel and nonces.
    LiquidityOffer(Box<LiquidityOffer>),
    /// Client → LSP: accepted, with the client's side of the new channel.
    LiquidityAccept(Box<LiquidityAccept>),
    /// Client → LSP: nonces and partial signatures of the new leaf state and redistribution.
    LeafPartials(Box<LeafPartials>),
    /// LSP → client: their final signatures.
    LeafSigned(Box<LeafSigned>),
    // Leaving a factory (see `crate::lifecycle` and docs/protocol.md, "Migration").
    /// Client → LSP: the factory key of a channel the wallet moved everything out of.
    KeyRelease(KeyRelease),
    /// LSP → client: the key is stored; the channel is closed as moved.
    KeyReleased(KeyReleased),
    /// LSP → client: a channel's factory entered its dying period (or is past it).
    FactoryNotice(FactoryNotice),
}

/// What a [`WireMsg::Error`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorAbout {
    /// A channel: its opening, one of its frames, or a request on it.
    Channel {
        /// The channel.
        channel: crate::pay::ChannelId,
    },
    /// A liquidity purchase on a channel (its request or a later step).
    Liquidity {
        /// The channel buying.
        channel: crate::pay::ChannelId,
    },
    /// A payment: the HTLC `htlc` the sender added on `channel`.
    Payment {
        /// The payer's channel.
        channel: crate::pay::ChannelId,
        /// The payer's HTLC id.
        htlc: u64,
    },
    /// A faucet request.
    Faucet,
    /// An [`crate::pay::InvoiceRegister`] for this payment hash.
    Invoice {
        /// The payment hash.
        hash: bitcoin::hashes::sha256::Hash,
    },
    /// Something this build does not know (a newer peer's).
    #[serde(other)]
    Unknown,
}

impl WireMsg {
    /// A non-fatal refusal about `about`.
    pub fn refusal(
        code: ErrorCode,
        about: Option<ErrorAbout>,
        message: impl Into<String>,
    ) -> WireMsg {
        WireMsg::Error {
            code,
            message: message.into(),
            fatal: false,
            about,
        }
    }
}

/// Machine-readable reasons carried in [`WireMsg::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame could not be parsed.
    Malformed,
    /// The frame exceeded [`MAX_FRAME_BYTES`].
    TooLarge,
    /// The envelope's version is not spoken here.
    UnsupportedVersion,
    /// The message is valid but not expected now.
    Unexpected,
    /// The peer sends too fast.
    RateLimited,
    /// The message belongs to a session that is over (or never started).
    StaleSession,
    /// The sender is not (or no longer) a member of the factory.
    NotAMember,
    /// An authentication proof did not verify (or came without a challenge).
    AuthFailed,
    /// The message needs an authenticated connection; authenticate first.
    NotAuthenticated,
    /// The channel (or its factory) is closing or closed on chain: it takes no payment.
    ChannelClosed,
    /// A code this build does not know (a newer peer's); read the message.
    #[serde(other)]
    Unknown,
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Frame larger than allowed.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Frame length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not valid JSON or not a known message.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A version this build does not speak.
    #[error("protocol version {got} is not supported (this side speaks {want}); update the wallet or LSP")]
    UnsupportedVersion {
        /// What the peer sent.
        got: u16,
        /// What this side speaks.
        want: u16,
    },
}

impl DecodeError {
    /// The error code to send back to the peer.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLarge { .. } => ErrorCode::TooLarge,
            DecodeError::Malformed(_) => ErrorCode::Malformed,
            DecodeError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let env = Envelope::new(WireMsg::Ping { nonce: 7 });
        assert_eq!(Envelope::decode(&env.encode()).unwrap(), env);
    }

    #[test]
    fn refuses_oversized_before_parsing() {
        let big = "x".repeat(MAX_FRAME_BYTES + 1);
        assert!(matches!(
            Envelope::decode(&big),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn refuses_other_versions() {
        let frame = r#"{"v":99,"msg":{"type":"ping","nonce":1}}"#;
        assert!(matches!(
            Envelope::decode(frame),
            Err(DecodeError::UnsupportedVersion { got: 99, .. })
        ));
    }

    #[test]
    fn refuses_unknown_messages() {
        let frame = r#"{"v":1,"msg":{"type":"steal_funds"}}"#;
        assert!(matches!(
            Envelope::decode(frame),
            Err(DecodeError::Malformed(_))
        ));
    }
}
