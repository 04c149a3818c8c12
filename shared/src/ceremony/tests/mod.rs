//! Ceremony tests: whole N-party runs on the in-process network (`network`), adversarial runs
//! (`adversarial`), single state machines driven by hand (`machines`), and wire limits (`wire`).

mod adversarial;
mod machines;
mod network;
mod wire;

use bitcoin::hashes::Hash;
use bitcoin::key::TapTweak;
use bitcoin::secp256k1::{Message, Secp256k1};

use crate::musig::JobKeys;
use crate::types::SigningJob;

/// Checks a final signature with rust-bitcoin's own BIP-340 verifier against the output key
/// rust-bitcoin derives from the MuSig2 internal key and the job's merkle root.
fn assert_verifies(job: &SigningJob, sig: &bitcoin::secp256k1::schnorr::Signature) {
    let secp = Secp256k1::verification_only();
    let internal = JobKeys::for_job(job).expect("job keys").internal_key();
    let (output, _) = internal.tap_tweak(&secp, job.merkle_root);
    let msg = Message::from_digest(job.sighash.to_byte_array());
    secp.verify_schnorr(sig, &msg, &output.to_x_only_public_key())
        .unwrap_or_else(|e| panic!("node {} does not verify: {e}", job.node));
}
