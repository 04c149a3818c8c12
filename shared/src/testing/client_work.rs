//! One client's own work on a factory proposal, timed: check the proposal (rebuilding its path),
//! then run the ceremony's own signer steps (`ceremony::jobs`): the job set seeded with the
//! check's aggregations, a nonce per job, and the guarded signing of all of them. The factory bench runs it natively and the wallet's browser bench runs it
//! in Chromium, so the two figures time the same code.

use std::collections::{BTreeMap, BTreeSet};

use rand::{CryptoRng, RngCore};

use super::{sample_proposal, TestKeys};
use crate::ceremony::jobs::{generate_nonces, JobSet};
use crate::musig::{self, AggNonce, JobKeys, MemorySignGuard};
use crate::params::FactoryParams;
use crate::types::{FactoryId, NodeId, SessionId};
use crate::verify::{check_proposal_with_keys, ClientPolicy, Expectation};

/// What one client's work cost.
#[derive(Debug, Clone, Copy)]
pub struct ClientWork {
    /// The jobs the client signed (its path and the distribution transaction).
    pub jobs: usize,
    /// Seconds to check the proposal.
    pub check_s: f64,
    /// Seconds to prepare, draw nonces for and sign every job.
    pub sign_s: f64,
}

/// Runs the work of client `n / 2` of a mainnet-parameter proposal of `n` clients; `now` reads
/// a clock in seconds (the browser has no `Instant`). Keys and proposal are made before timing.
pub fn client_work<R: RngCore + CryptoRng>(
    n: usize,
    rng: &mut R,
    now: impl Fn() -> f64,
) -> ClientWork {
    let params = FactoryParams::mainnet();
    let keys = TestKeys::generate(n, 7);
    let proposal = sample_proposal(params.clone(), &keys, 7);
    let me = n / 2;
    let entry = &proposal.clients[me];
    let expect = Expectation {
        my_key: entry.key,
        lsp_key: proposal.lsp_key,
        channel: entry.channel,
        lstock: entry.lstock,
    };
    let policy = ClientPolicy::for_network(params.network);
    // The other signers' nonces arrive summed with ours; one stands in for them all.
    let lsp_keys = JobKeys::new(&[proposal.lsp_key], None).expect("one signer aggregates");
    let (_, others) = musig::generate_nonce(
        rng,
        &keys.lsp,
        &lsp_keys,
        &bitcoin::TapSighash::from_raw_hash(bitcoin::hashes::Hash::all_zeros()),
        b"bench",
    );

    let t = now();
    let (path, known) =
        check_proposal_with_keys(&proposal, &expect, &policy, proposal.creation_height)
            .expect("the client accepts an honest proposal");
    let check_s = now() - t;

    let t = now();
    // The ceremony's own steps: the job set (seeded with the check's aggregations), nonces,
    // and signing behind the double-sign guard.
    let secret = &keys.clients[me];
    let set = JobSet::for_signer(path.signing_jobs(), known, &entry.key)
        .expect("the client's jobs are its own");
    let nodes: BTreeSet<NodeId> = set.nodes().copied().collect();
    let (secrets, publics) = generate_nonces(rng, secret, &set, &nodes, FactoryId(0), SessionId(0));
    let aggs: BTreeMap<NodeId, AggNonce> = publics
        .iter()
        .map(|(node, public)| (*node, musig::aggregate_nonces([public, &others])))
        .collect();
    secrets
        .sign(secret, &set, &aggs, &mut MemorySignGuard::default())
        .expect("the client signs its own jobs");
    let sign_s = now() - t;
    ClientWork {
        jobs: nodes.len(),
        check_s,
        sign_s,
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::client_work;

    #[test]
    fn one_client_checks_and_signs_every_job_of_its_path() {
        let work = client_work(8, &mut StdRng::seed_from_u64(1), || 0.0);
        // Root, the path's states and leaf, and the distribution transaction.
        assert!(work.jobs >= 3, "{work:?}");
    }
}
