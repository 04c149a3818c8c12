//! Channel messages (client ↔ LSP) and the actions the state machine asks its driver to do.
//!
//! A commitment round is always started by the LSP and takes four messages:
//! `Start` (LSP) → `ClientSigned` → `LspSigned` (with the LSP's revocation) → `ClientRevoked`.
//! Updates (`Update`) flow both ways at any time and are numbered per sender.

use bitcoin::hashes::sha256;
use bitcoin::secp256k1::PublicKey;
use bitcoin::{absolute, Amount, FeeRate, TapSighash, Transaction};
use serde::{Deserialize, Serialize};

use super::commitment::{CommitmentSpec, Side};
use crate::musig::{PartialSig, PubNonce};

/// One change to the channel state, proposed by its sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Update {
    /// The sender offers an HTLC (paid from its balance).
    AddHtlc {
        /// The sender's next HTLC id (0, 1, 2, ...).
        id: u64,
        /// Amount.
        amount: Amount,
        /// SHA-256 payment hash.
        hash: sha256::Hash,
        /// Absolute expiry height.
        expiry: absolute::Height,
    },
    /// The sender settles an HTLC the receiver offered, with its preimage.
    Fulfill {
        /// The receiver's HTLC id.
        id: u64,
        /// The preimage.
        preimage: [u8; 32],
    },
    /// The sender fails an HTLC the receiver offered (its amount goes back to the receiver).
    Fail {
        /// The receiver's HTLC id.
        id: u64,
    },
    /// New commitment fee rate (LSP only: it pays the fee).
    Fee {
        /// The fee rate.
        feerate: FeeRate,
    },
}

/// An update with the sender's sequence number (0, 1, 2, ...; a replay is refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateMsg {
    /// Position in the sender's update log.
    pub seq: u64,
    /// The update.
    pub update: Update,
}

/// A revealed per-commitment secret and the next point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The commitment now revoked.
    pub revoked: u64,
    /// Its per-commitment secret.
    pub secret: [u8; 32],
    /// The per-commitment point of commitment `revoked + 2`.
    pub next_point: PublicKey,
}

/// Every channel message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelMsg {
    /// An update.
    Update(UpdateMsg),
    /// LSP → client: commitment round `number` covers the first `lsp_updates` LSP updates and
    /// the first `client_updates` client updates; the LSP's nonces for both new commitments.
    Start {
        /// The new commitment number.
        number: u64,
        /// Number of LSP updates included (total since the channel opened).
        lsp_updates: u64,
        /// Number of client updates included.
        client_updates: u64,
        /// LSP's public nonce for the client's commitment.
        nonce_client_commit: PubNonce,
        /// LSP's public nonce for the LSP's commitment.
        nonce_lsp_commit: PubNonce,
    },
    /// Client → LSP: its nonces and its partial signature on the LSP's new commitment.
    ClientSigned {
        /// The commitment number.
        number: u64,
        /// Client's public nonce for the client's commitment.
        nonce_client_commit: PubNonce,
        /// Client's public nonce for the LSP's commitment.
        nonce_lsp_commit: PubNonce,
        /// Client's partial signature on the LSP's commitment.
        partial_lsp_commit: PartialSig,
    },
    /// LSP → client: its partial signature on the client's commitment, and the revocation of
    /// the LSP's previous commitment (none for commitment 0).
    LspSigned {
        /// The commitment number.
        number: u64,
        /// LSP's partial signature on the client's commitment.
        partial_client_commit: PartialSig,
        /// Revocation of LSP commitment `number - 1`.
        revocation: Option<Revocation>,
    },
    /// Either side: start closing, paying this side to `script` (no updates or rounds after).
    Shutdown {
        /// The sender's payout script.
        script: bitcoin::ScriptBuf,
    },
    /// LSP → client: the close at `feerate` (LSP pays), with the LSP's nonce.
    CloseStart {
        /// Fee rate of the close.
        feerate: FeeRate,
        /// LSP's public nonce for the close.
        nonce: PubNonce,
    },
    /// Client → LSP: its nonce and partial signature on the close.
    CloseSigned {
        /// Client's public nonce.
        nonce: PubNonce,
        /// Client's partial signature.
        partial: PartialSig,
    },
    /// LSP → client: the aggregated signature (the LSP has broadcast the close).
    CloseDone {
        /// BIP-340 signature of the close's input.
        signature: bitcoin::secp256k1::schnorr::Signature,
    },
    /// Client → LSP: revocation of the client's previous commitment (none for commitment 0).
    ClientRevoked {
        /// The commitment number the round made current.
        number: u64,
        /// Revocation of client commitment `number - 1`.
        revocation: Option<Revocation>,
    },
}

/// Something the driver must store before any later action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelChange {
    /// This side agreed to sign `holder`'s commitment `number` with `sighash` (and nothing else).
    SignRecord {
        /// Whose commitment.
        holder: Side,
        /// Its number.
        number: u64,
        /// The only sighash that may be signed for it.
        sighash: TapSighash,
    },
    /// A round is under way with these update counts (a restart must reuse them).
    RoundStarted {
        /// The commitment number.
        number: u64,
        /// LSP updates included.
        lsp_updates: u64,
        /// Client updates included.
        client_updates: u64,
    },
    /// The client signed the LSP's commitment `number` for `spec`: the LSP may publish it
    /// from now on, so the client keeps what it needs to claim from it.
    RemotePending {
        /// The number.
        number: u64,
        /// Its state.
        spec: CommitmentSpec,
    },
    /// This side's new, fully signed commitment.
    LocalCommitment {
        /// Its number.
        number: u64,
        /// The signed transaction.
        tx: Transaction,
    },
    /// The peer revoked its commitment `number` (state kept to build a penalty).
    RemoteRevoked {
        /// The revoked number.
        number: u64,
        /// Its per-commitment secret.
        secret: [u8; 32],
        /// Its state.
        spec: CommitmentSpec,
        /// The peer's per-commitment point of commitment `number + 2`.
        next_point: PublicKey,
    },
    /// `Shutdown` sent (`from` = this side) or received.
    Shutdown {
        /// Who sent it.
        from: Side,
        /// Its payout script.
        script: bitcoin::ScriptBuf,
    },
    /// This side agreed to sign the cooperative close with `sighash` (and no other close).
    CloseRecord {
        /// The close's sighash.
        sighash: TapSighash,
    },
    /// An update sent or received.
    Update {
        /// Who sent it.
        from: Side,
        /// It.
        msg: UpdateMsg,
    },
    /// The round completed: `spec` is now the state of both sides' commitment `number`.
    Committed {
        /// The number.
        number: u64,
        /// The state.
        spec: CommitmentSpec,
        /// LSP updates it covers.
        lsp_updates: u64,
        /// Client updates it covers.
        client_updates: u64,
    },
}

/// What happened, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelEvent {
    /// Both sides hold commitment `number` and revoked the previous one.
    Committed {
        /// The number.
        number: u64,
    },
    /// The peer settled this side's HTLC `id` with its preimage (a forwarding LSP settles the
    /// incoming HTLC with it at once).
    PreimageReceived {
        /// This side's HTLC id.
        id: u64,
        /// The preimage.
        preimage: [u8; 32],
    },
    /// The cooperative close is fully signed and broadcast.
    Closed {
        /// Its txid.
        txid: bitcoin::Txid,
    },
    /// An HTLC deadline arrived with the peer not cooperating: this side broadcasts its latest
    /// commitment (the `Broadcast` action before this event) and claims on chain.
    ForceClose {
        /// The deadline height that passed.
        deadline: bitcoin::absolute::Height,
    },
}

/// What the driver must do, in order (a `Persist` completes before any later `Send`).
// Actions are drained right after they are queued; boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Action {
    /// Store durably.
    Persist(ChannelChange),
    /// Send to the peer.
    Send(ChannelMsg),
    /// Tell the application.
    Emit(ChannelEvent),
    /// Publish this transaction (and CPFP it through its anchor if it does not confirm).
    Broadcast(Transaction),
}
