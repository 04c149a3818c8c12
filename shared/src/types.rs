//! Small shared vocabulary: identifiers, the caller-supplied notion of "now", and the unit of
//! MuSig2 work ([`SigningJob`]) that the tree produces and the signing ceremony consumes.

use bitcoin::secp256k1::PublicKey;
use bitcoin::{OutPoint, TapNodeHash, TapSighash};
use serde::{Deserialize, Serialize};

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_newtype!(
    /// A factory, numbered by the LSP.
    FactoryId(u64)
);
id_newtype!(
    /// A client's position in a factory (0-based leaf index, left to right).
    ClientId(u32)
);
id_newtype!(
    /// A transaction node of a factory tree, numbered in the tree's canonical order.
    NodeId(u32)
);
id_newtype!(
    /// One attempt at a signing ceremony; a restart gets a new one, so stale messages are refused.
    SessionId(u64)
);

/// The caller's view of the present. Library code never reads a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Now {
    /// Current chain tip height.
    pub height: bitcoin::absolute::Height,
    /// Current wall time, seconds since the Unix epoch.
    pub unix_time: u64,
}

/// One transaction input that needs an N-of-N MuSig2 key-path signature.
///
/// Produced by the tree builder, consumed by the signing ceremony. Every signer rebuilds its jobs
/// from the proposal itself, so it never signs a `sighash` it has not computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningJob {
    /// The tree node whose (single) input this signs.
    pub node: NodeId,
    /// The output being spent.
    pub prevout: OutPoint,
    /// BIP-341 key-path sighash (`SIGHASH_DEFAULT`) of the node's input.
    pub sighash: TapSighash,
    /// The spent output's signers; aggregated in BIP-327 key-sort order.
    pub signers: Vec<PublicKey>,
    /// Taproot tweak of the spent output: its script tree's merkle root, or `None` for a
    /// key-path-only output (BIP-86 style tweak).
    pub merkle_root: Option<TapNodeHash>,
}
