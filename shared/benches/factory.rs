//! Factory benchmark: one process holding every key (the C reference's first row).
//!
//! `cargo bench -p superscalar-shared --features test-utils --bench factory -- <N>` prints one
//! line of `key=value` figures for N clients: building the tree, signing every node with real
//! MuSig2 (nonces, partial signatures, aggregation), one client's own check of the proposal and
//! signing of its jobs (`shared::testing::client_work`, which the browser bench runs too),
//! a cooperative close signed by all, the tree's size, one client's stored path, a worst-case
//! exit, and the process's peak memory. Run one N per process so peak memory means something;
//! `cargo xtask bench` does that and prints a table.

use std::time::Instant;

use bitcoin::absolute::LockTime;
use bitcoin::sighash::{Prevouts, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{Amount, FeeRate, Sequence, TapSighashType, Transaction, TxIn, TxOut, Witness};
use rand::SeedableRng;
use shared::exit::worst_case_cost;
use shared::params::FactoryParams;
use shared::testing::client_work::client_work;
use shared::testing::{sample_proposal, sign_all, tree::sign_job, TestKeys};
use shared::tree::FactoryTree;
use shared::types::{ClientId, NodeId, SigningJob};

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|a| a.parse().ok())
        .unwrap_or(127);
    let params = FactoryParams::mainnet();
    let keys = TestKeys::generate(n, 7);
    let proposal = sample_proposal(params.clone(), &keys, 7);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);

    let t = Instant::now();
    let mut tree = FactoryTree::build(&proposal).expect("sample proposal builds");
    let build_s = t.elapsed().as_secs_f64();

    let jobs = tree.signing_jobs();
    let signer_sessions: usize = jobs.iter().map(|j| j.signers.len()).sum();
    let t = Instant::now();
    sign_all(&mut tree, &keys, &mut rng).expect("every node signs");
    let sign_s = t.elapsed().as_secs_f64();
    assert!(tree.is_fully_signed());

    // One client's own work: check the proposal (rebuilding its path), then sign its jobs.
    let clock = Instant::now();
    let work = client_work(n, &mut rng, || clock.elapsed().as_secs_f64());
    let client = n / 2;
    let signed_path = tree
        .client_path(ClientId(client as u32))
        .expect("client exists");
    let path_nodes = signed_path.nodes().len();
    let path_bytes = serde_json::to_vec(&signed_path).expect("serializes").len();

    let t = Instant::now();
    cooperative_close(&tree, &keys, &mut rng);
    let close_s = t.elapsed().as_secs_f64();

    let tree_nodes = tree.nodes().len();
    let tree_vbytes: u64 = tree.nodes().iter().map(|node| node.vsize()).sum();
    let exit = worst_case_cost(&params, n as u32).expect("mainnet params are valid");
    let exit_fee_10 = exit.fee_at(FeeRate::from_sat_per_vb_u32(10));

    println!(
        "n={n} build_s={build_s:.4} sign_s={sign_s:.3} signer_sessions={signer_sessions} \
         client_check_s={:.4} client_sign_s={:.4} client_jobs={} close_s={close_s:.4} total_s={:.3} \
         tree_nodes={tree_nodes} tree_vbytes={tree_vbytes} path_nodes={path_nodes} \
         path_bytes={path_bytes} exit_txs={} exit_vbytes={} exit_blocks={} exit_fee_at_10={} \
         peak_rss_mb={:.1}",
        work.check_s,
        work.sign_s,
        work.jobs,
        build_s + sign_s + close_s,
        exit.txs,
        exit.vbytes,
        exit.blocks.to_blocks(),
        exit_fee_10.to_sat(),
        peak_rss_mb(),
    );
}

/// Signs the one-input cooperative close that pays everyone from the funding output.
fn cooperative_close(tree: &FactoryTree, keys: &TestKeys, rng: &mut rand::rngs::StdRng) {
    let proposal = tree.proposal();
    let mut outputs: Vec<TxOut> = proposal
        .clients
        .iter()
        .map(|c| TxOut {
            value: c.channel,
            script_pubkey: tree.funding_output().script_pubkey.clone(),
        })
        .collect();
    outputs.push(TxOut {
        value: Amount::from_sat(1_000),
        script_pubkey: tree.funding_output().script_pubkey.clone(),
    });
    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: proposal.funding_outpoint,
            script_sig: Default::default(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::new(),
        }],
        output: outputs,
    };
    let prevouts = [tree.funding_output().clone()];
    let sighash = SighashCache::new(&tx)
        .taproot_key_spend_signature_hash(0, &Prevouts::All(&prevouts), TapSighashType::Default)
        .expect("one input, one prevout");
    let mut signers: Vec<_> = proposal.clients.iter().map(|c| c.key).collect();
    signers.push(proposal.lsp_key);
    shared::musig::key_sort(&mut signers);
    let job = SigningJob {
        node: NodeId(u32::MAX),
        prevout: proposal.funding_outpoint,
        sighash,
        signers,
        merkle_root: None,
    };
    let sig = sign_job(&job, keys, rng).expect("close signs");
    assert_eq!(sig.as_ref().len(), 64);
}

/// Peak resident memory of this process (Linux `VmHWM`), in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
