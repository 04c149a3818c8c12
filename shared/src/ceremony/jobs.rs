//! One signer's side of a session, shared by the client and the LSP: a checked set of jobs,
//! fresh nonces for them, and the consuming step that turns nonces into partial signatures
//! after the double-sign guard has agreed.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::{OutPoint, TapSighash};

use super::messages::MAX_NODES_PER_MSG;
use super::proposal::Refusal;
use crate::musig::{
    check_and_record_all, generate_nonce_as, sign_partial_as, AggNonce, GuardRecord, JobKeys,
    KeyAgg, MusigError, PartialSig, PubNonce, SecNonce, SignGuard, Signer,
};
use crate::types::{FactoryId, NodeId, SessionId, SigningJob};

/// A job with its aggregated keys.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) job: SigningJob,
    pub(crate) keys: JobKeys,
}

/// Jobs keyed by node, each with valid, BIP-327-sorted signers and computed keys.
#[derive(Debug, Clone)]
pub(crate) struct JobSet(BTreeMap<NodeId, Prepared>);

impl JobSet {
    /// Checks node ids are unique and every job's keys aggregate. Jobs of one signer set share
    /// one aggregation; `known` are aggregations already made (by the caller's own check of
    /// the proposal), used for the jobs whose signer set they are.
    pub(crate) fn new(jobs: Vec<SigningJob>, known: Vec<KeyAgg>) -> Result<JobSet, Refusal> {
        let mut map = BTreeMap::new();
        let mut aggregated: HashMap<Vec<PublicKey>, KeyAgg> = known
            .into_iter()
            .map(|agg| (agg.signers().to_vec(), agg))
            .collect();
        for job in jobs {
            let refuse = |e: MusigError| Refusal::new(format!("node {}: {e}", job.node));
            let agg = match aggregated.entry(job.signers.clone()) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(slot) => slot.insert(KeyAgg::new(&job.signers).map_err(refuse)?),
            };
            let keys = agg.tweaked(job.merkle_root).map_err(refuse)?;
            let node = job.node;
            if map.insert(node, Prepared { job, keys }).is_some() {
                return Err(Refusal::new(format!("node {node} appears twice")));
            }
        }
        Ok(JobSet(map))
    }

    /// [`JobSet::new`], plus: non-empty, within the message limit, and `me` signs every job.
    pub(crate) fn for_signer(
        jobs: Vec<SigningJob>,
        known: Vec<KeyAgg>,
        me: &PublicKey,
    ) -> Result<JobSet, Refusal> {
        if jobs.is_empty() {
            return Err(Refusal::new(
                "the proposal gives this client nothing to sign",
            ));
        }
        if jobs.len() > MAX_NODES_PER_MSG {
            return Err(Refusal::new(format!(
                "{} jobs exceed the limit of {MAX_NODES_PER_MSG}",
                jobs.len()
            )));
        }
        let set = JobSet::new(jobs, known)?;
        if let Some(p) = set.0.values().find(|p| p.keys.signer_index(me).is_none()) {
            return Err(Refusal::new(format!(
                "node {} is not signed by this client",
                p.job.node
            )));
        }
        Ok(set)
    }

    pub(crate) fn get(&self, node: &NodeId) -> Option<&Prepared> {
        self.0.get(node)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&NodeId, &Prepared)> {
        self.0.iter()
    }

    pub(crate) fn nodes(&self) -> impl Iterator<Item = &NodeId> {
        self.0.keys()
    }

    pub(crate) fn jobs(&self) -> impl Iterator<Item = &SigningJob> {
        self.0.values().map(|p| &p.job)
    }
}

/// A signer's secret nonces for one session. Never cloned, stored or sent; dropped (and wiped)
/// when the session ends, consumed by [`SecretNonces::sign`].
#[derive(Debug)]
pub(crate) struct SecretNonces(BTreeMap<NodeId, SecNonce>);

/// Fresh nonces for `nodes` of `jobs`. The per-nonce context binds factory, session, node and
/// prevout, on top of the RNG and BIP-327's key and message inputs.
pub(crate) fn generate_nonces<R: rand::RngCore + rand::CryptoRng>(
    rng: &mut R,
    secret: &SecretKey,
    jobs: &JobSet,
    nodes: &BTreeSet<NodeId>,
    factory: FactoryId,
    session: SessionId,
) -> (SecretNonces, BTreeMap<NodeId, PubNonce>) {
    let mut secrets = BTreeMap::new();
    let mut publics = BTreeMap::new();
    let signer = Signer::new(secret);
    for node in nodes {
        let Some(p) = jobs.get(node) else { continue };
        let mut context = Vec::with_capacity(56);
        context.extend_from_slice(&factory.0.to_be_bytes());
        context.extend_from_slice(&session.0.to_be_bytes());
        context.extend_from_slice(&node.0.to_be_bytes());
        context.extend_from_slice(&p.job.prevout.txid.to_byte_array());
        context.extend_from_slice(&p.job.prevout.vout.to_be_bytes());
        let (sec, public) = generate_nonce_as(rng, &signer, &p.keys, &p.job.sighash, &context);
        secrets.insert(*node, sec);
        publics.insert(*node, public);
    }
    (SecretNonces(secrets), publics)
}

/// What the guard records for a prevout one batch signs with `sighashes`: the sighash itself
/// when there is one, else a tagged hash (`superscalar/guard-set`) of the sorted, distinct
/// sighashes.
pub(crate) fn sighash_set(mut sighashes: Vec<TapSighash>) -> TapSighash {
    sighashes.sort();
    sighashes.dedup();
    if let [one] = sighashes.as_slice() {
        return *one;
    }
    let tag = sha256::Hash::hash(b"superscalar/guard-set");
    let mut engine = sha256::Hash::engine();
    engine.input(tag.as_byte_array());
    engine.input(tag.as_byte_array());
    for s in &sighashes {
        engine.input(s.as_byte_array());
    }
    TapSighash::from_byte_array(sha256::Hash::from_engine(engine).to_byte_array())
}

/// Partial signatures and the guard records to persist before they are sent.
#[derive(Debug)]
pub(crate) struct Signed {
    pub(crate) partials: BTreeMap<NodeId, PartialSig>,
    pub(crate) records: Vec<GuardRecord>,
}

impl SecretNonces {
    /// The nodes these nonces are for.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = &NodeId> {
        self.0.keys()
    }

    /// Signs every node, consuming the nonces whatever happens. The guard checks and records
    /// the whole batch before the first signature; any refusal means nothing is signed.
    ///
    /// A prevout that this batch signs more than once (by design: the funding output is spent
    /// both by the tree's root and by the time-locked distribution transaction) is recorded
    /// once, with [`sighash_set`] of its sighashes: signing the same set again (a restart of
    /// the same proposal) passes, any other message for that prevout is refused.
    pub(crate) fn sign<G: SignGuard + ?Sized>(
        self,
        secret: &SecretKey,
        jobs: &JobSet,
        aggs: &BTreeMap<NodeId, AggNonce>,
        guard: &mut G,
    ) -> Result<Signed, Refusal> {
        let mut by_prevout: BTreeMap<OutPoint, Vec<TapSighash>> = BTreeMap::new();
        for node in self.0.keys() {
            let p = jobs
                .get(node)
                .ok_or_else(|| Refusal::new(format!("no job for node {node}")))?;
            if !aggs.contains_key(node) {
                return Err(Refusal::new(format!("no aggregated nonce for node {node}")));
            }
            by_prevout
                .entry(p.job.prevout)
                .or_default()
                .push(p.job.sighash);
        }
        let batch: Vec<GuardRecord> = by_prevout
            .into_iter()
            .map(|(prevout, sighashes)| GuardRecord {
                prevout,
                sighash: sighash_set(sighashes),
            })
            .collect();
        let records =
            check_and_record_all(guard, &batch).map_err(|e| Refusal::new(e.to_string()))?;
        let mut partials = BTreeMap::new();
        let signer = Signer::new(secret);
        for (node, nonce) in self.0 {
            let (p, agg) = match (jobs.get(&node), aggs.get(&node)) {
                (Some(p), Some(agg)) => (p, agg),
                _ => return Err(Refusal::new(format!("node {node} vanished while signing"))),
            };
            let partial = sign_partial_as(&p.keys, &signer, nonce, agg, &p.job.sighash)
                .map_err(|e| Refusal::new(format!("node {node}: {e}")))?;
            partials.insert(node, partial);
        }
        Ok(Signed { partials, records })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prevout_signed_twice_in_one_batch_is_recorded_as_its_set() {
        let a = TapSighash::from_byte_array([1; 32]);
        let b = TapSighash::from_byte_array([2; 32]);
        assert_eq!(sighash_set(vec![a]), a);
        assert_eq!(sighash_set(vec![a, a]), a);
        let ab = sighash_set(vec![a, b]);
        assert_eq!(ab, sighash_set(vec![b, a]), "order does not matter");
        assert_ne!(ab, a);
        assert_ne!(ab, b);
    }
}
