//! One client's own work on a factory proposal, timed: check the proposal (rebuilding its path),
//! then, as the ceremony does, take its jobs' keys from the check's aggregations, draw a nonce
//! per job and sign each. The factory bench runs it natively and the wallet's browser bench runs it
//! in Chromium, so the two figures time the same code.

use std::collections::HashMap;

use bitcoin::secp256k1::PublicKey;
use rand::{CryptoRng, RngCore};

use super::{sample_proposal, TestKeys};
use crate::musig::{self, JobKeys, KeyAgg};
use crate::params::FactoryParams;
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
    let signer = musig::Signer::new(&keys.clients[me]);
    // As the ceremony's job set: the check's aggregations first, any other set once.
    let mut aggregated: HashMap<Vec<PublicKey>, KeyAgg> = known
        .into_iter()
        .map(|agg| (agg.signers().to_vec(), agg))
        .collect();
    let jobs = path.signing_jobs();
    for job in &jobs {
        let agg = match aggregated.get(&job.signers) {
            Some(agg) => agg,
            None => {
                let agg = KeyAgg::new(&job.signers).expect("the path's signers are sorted");
                aggregated.entry(job.signers.clone()).or_insert(agg)
            }
        };
        let job_keys = agg.tweaked(job.merkle_root).expect("the tweak is valid");
        let (secret, public) =
            musig::generate_nonce_as(rng, &signer, &job_keys, &job.sighash, b"bench");
        let agg_nonce = musig::aggregate_nonces([&public, &others]);
        musig::sign_partial_as(&job_keys, &signer, secret, &agg_nonce, &job.sighash)
            .expect("the client signs its own job");
    }
    let sign_s = now() - t;
    ClientWork {
        jobs: jobs.len(),
        check_s,
        sign_s,
    }
}
