//! The two-party signing of one leaf advance: the new leaf state and the redistribution of the
//! state it supersedes, in one MuSig2 round that the LSP coordinates.
//!
//! Both sides build the same [`Advance`] from the path, the current state and the amount, so
//! neither signs anything it did not build itself. Order (see `docs/protocol.md`, "Leaf states
//! and inbound liquidity"): the LSP sends its two public nonces with its offer; once round 0 of
//! the new channel is done, the client records the new state in its [`super::LeafStates`]
//! (durably) and sends its nonces and partial signatures; the LSP checks them, records, signs,
//! aggregates and returns both signatures, which the client checks before storing.

use bitcoin::secp256k1::{schnorr, PublicKey, SecretKey};
use bitcoin::Amount;

use super::{LeafEpoch, LeafError, LeafState};
use crate::musig::{
    aggregate, aggregate_nonces, generate_nonce, public_key, sign_partial, verify_partial, JobKeys,
    MusigError, PartialSig, PubNonce, SecNonce,
};
use crate::path::ClientPath;
use crate::tree::TreeNode;

/// Why an advance could not be built or signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdvanceError {
    /// The new state cannot be built.
    #[error(transparent)]
    Leaf(#[from] LeafError),
    /// MuSig2 failed: a bad partial signature names the signer.
    #[error("signing the leaf advance: {0}")]
    Musig(#[from] MusigError),
    /// A final signature does not verify.
    #[error("the LSP's signature for the {0} does not verify")]
    BadSignature(&'static str),
}

/// One advance of a leaf: the new state and the redistribution of the current one, with their
/// signing keys (MuSig2 of the client's and the LSP's factory keys).
#[derive(Debug, Clone)]
pub struct Advance {
    /// The new state (signed once [`Advance::attach`] or [`Advance::complete`] ran).
    pub state: LeafState,
    /// The redistribution of the state it supersedes.
    pub redistribution: TreeNode,
    keys: [JobKeys; 2],
}

fn nonce_context(epoch: LeafEpoch, which: u8) -> [u8; 21] {
    let mut c = [0u8; 21];
    c[..19].copy_from_slice(b"superscalar/leaf/v1");
    c[19] = epoch.0;
    c[20] = which;
    c
}

impl Advance {
    /// The advance of `path`'s leaf from `current` selling `amount` more.
    pub fn new(
        path: &ClientPath,
        current: &LeafState,
        amount: Amount,
    ) -> Result<Advance, AdvanceError> {
        let state = current.next(path, amount)?;
        let redistribution = current.redistribution(path);
        let job = |n: &TreeNode| JobKeys::for_job(&path.proposal().job(n));
        let keys = [job(&state.node)?, job(&redistribution)?];
        Ok(Advance {
            state,
            redistribution,
            keys,
        })
    }

    /// The new state's number.
    pub fn epoch(&self) -> LeafEpoch {
        self.state.epoch
    }

    fn nodes(&self) -> [&TreeNode; 2] {
        [&self.state.node, &self.redistribution]
    }

    /// Fresh nonces for both jobs (held in memory, consumed by [`Advance::sign`]).
    pub fn nonces<R: rand::RngCore + rand::CryptoRng>(
        &self,
        secret: &SecretKey,
        rng: &mut R,
    ) -> ([SecNonce; 2], [PubNonce; 2]) {
        let [a, b] = self.nodes();
        let (sa, pa) = generate_nonce(
            rng,
            secret,
            &self.keys[0],
            &a.sighash(),
            &nonce_context(self.epoch(), 0),
        );
        let (sb, pb) = generate_nonce(
            rng,
            secret,
            &self.keys[1],
            &b.sighash(),
            &nonce_context(self.epoch(), 1),
        );
        ([sa, sb], [pa, pb])
    }

    /// This side's partial signatures of both jobs. The caller has recorded the new state in
    /// its `LeafStates` first.
    pub fn sign(
        &self,
        secret: &SecretKey,
        secs: [SecNonce; 2],
        mine: &[PubNonce; 2],
        peer: &[PubNonce; 2],
    ) -> Result<[PartialSig; 2], AdvanceError> {
        let [sa, sb] = secs;
        let nodes = self.nodes();
        let agg = |i: usize| aggregate_nonces([&mine[i], &peer[i]]);
        let a = sign_partial(&self.keys[0], secret, sa, &agg(0), &nodes[0].sighash())?;
        let b = sign_partial(&self.keys[1], secret, sb, &agg(1), &nodes[1].sighash())?;
        Ok([a, b])
    }

    /// LSP: checks the client's partial signatures, adds its own, aggregates and attaches both
    /// signatures. Returns them for the client.
    #[allow(clippy::too_many_arguments)]
    pub fn complete(
        &mut self,
        lsp_secret: &SecretKey,
        lsp_secs: [SecNonce; 2],
        lsp_pubs: &[PubNonce; 2],
        client: &PublicKey,
        client_pubs: &[PubNonce; 2],
        client_partials: &[PartialSig; 2],
    ) -> Result<[schnorr::Signature; 2], AdvanceError> {
        let lsp = public_key(lsp_secret);
        let sighashes = self.nodes().map(|n| n.sighash());
        for i in 0..2 {
            let agg = aggregate_nonces([&lsp_pubs[i], &client_pubs[i]]);
            verify_partial(
                &self.keys[i],
                &client_partials[i],
                &agg,
                client,
                &client_pubs[i],
                &sighashes[i],
            )?;
        }
        let mine = self.sign(lsp_secret, lsp_secs, lsp_pubs, client_pubs)?;
        let mut sigs = Vec::with_capacity(2);
        for i in 0..2 {
            let agg = aggregate_nonces([&lsp_pubs[i], &client_pubs[i]]);
            let keys = &self.keys[i];
            let mut partials = [mine[i], client_partials[i]];
            if keys.signer_index(&lsp) != Some(0) {
                partials.swap(0, 1);
            }
            sigs.push(aggregate(keys, &agg, &partials, &sighashes[i])?);
        }
        let sigs = [sigs[0], sigs[1]];
        self.attach(sigs)?;
        Ok(sigs)
    }

    /// Attaches both final signatures after checking them.
    pub fn attach(&mut self, sigs: [schnorr::Signature; 2]) -> Result<(), AdvanceError> {
        if !self.state.node.verify_signature(&sigs[0]) {
            return Err(AdvanceError::BadSignature("new leaf state"));
        }
        if !self.redistribution.verify_signature(&sigs[1]) {
            return Err(AdvanceError::BadSignature("redistribution"));
        }
        self.state.node.signature = Some(sigs[0]);
        self.redistribution.signature = Some(sigs[1]);
        Ok(())
    }
}
