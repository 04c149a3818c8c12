//! Tree test helpers: deterministic keys and proposals, and in-process signing
//! of a whole tree with every key.
//!
//! Not the real signing code (that is `crate::musig`, run as a ceremony); this is the smallest
//! thing that produces valid final signatures, so tree tests can check transactions end to end.
//! [`sign_all`] runs real MuSig2 (nonces, partial signatures, aggregation) per node;
//! [`sign_all_aggregated`] signs with the aggregated secret key (same key, same signature
//! validity, far less work) for large property tests.

use std::collections::HashMap;

use bitcoin::absolute::Height;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{schnorr, Keypair, Message, PublicKey, Secp256k1, SecretKey};
use bitcoin::{Amount, OutPoint, Txid};
use musig2::secp::{Point, Scalar};
use musig2::KeyAggContext;
use rand::{CryptoRng, RngCore};

use crate::musig;
use crate::params::{Epoch, FactoryParams};
use crate::tree::{ClientEntry, FactoryProposal, FactoryTree};
use crate::types::SigningJob;

/// The LSP's and every client's secret key, derived from a seed.
#[derive(Debug, Clone)]
pub struct TestKeys {
    /// The LSP's factory key.
    pub lsp: SecretKey,
    /// The clients' factory keys, by client id.
    pub clients: Vec<SecretKey>,
    by_pubkey: HashMap<[u8; 33], (SecretKey, musig::Signer)>,
}

fn derive(seed: u64, i: u64) -> SecretKey {
    let mut data = seed.to_le_bytes().to_vec();
    data.extend_from_slice(&i.to_le_bytes());
    let mut h = sha256::Hash::hash(&data).to_byte_array();
    loop {
        if let Ok(k) = SecretKey::from_slice(&h) {
            return k;
        }
        h = sha256::Hash::hash(&h).to_byte_array();
    }
}

impl TestKeys {
    /// Keys for an LSP and `n` clients, all distinct, determined by `seed`.
    pub fn generate(n: usize, seed: u64) -> TestKeys {
        let lsp = derive(seed, u64::MAX);
        let clients: Vec<SecretKey> = (0..n as u64).map(|i| derive(seed, i)).collect();
        let secp = Secp256k1::signing_only();
        let by_pubkey = std::iter::once(&lsp)
            .chain(&clients)
            .map(|k| {
                let public = PublicKey::from_secret_key(&secp, k).serialize();
                (public, (*k, musig::Signer::new(k)))
            })
            .collect();
        TestKeys {
            lsp,
            clients,
            by_pubkey,
        }
    }

    /// The LSP's public key.
    pub fn lsp_pubkey(&self) -> PublicKey {
        PublicKey::from_secret_key(&Secp256k1::signing_only(), &self.lsp)
    }

    /// Client `i`'s public key.
    pub fn client_pubkey(&self, i: usize) -> PublicKey {
        PublicKey::from_secret_key(&Secp256k1::signing_only(), &self.clients[i])
    }

    /// The secret key of `pubkey`, if it is one of these.
    pub fn secret(&self, pubkey: &PublicKey) -> Option<SecretKey> {
        self.by_pubkey.get(&pubkey.serialize()).map(|(k, _)| *k)
    }
}

/// A valid proposal for `keys` under `params`: amounts vary per client (from `seed`), the
/// funding amount is exactly what the tree needs, created at height 100, epoch 0.
pub fn sample_proposal(params: FactoryParams, keys: &TestKeys, seed: u64) -> FactoryProposal {
    let clients: Vec<ClientEntry> = (0..keys.clients.len())
        .map(|i| {
            let r = derive(seed, i as u64 + 1_000_000).secret_bytes();
            let pick = |b: u8| Amount::from_sat(10_000 + u64::from(b) * 1_000);
            ClientEntry {
                key: keys.client_pubkey(i),
                channel: pick(r[0]),
                lstock: pick(r[1]),
            }
        })
        .collect();
    let funding_amount =
        FactoryProposal::required_funding(&params, &clients).expect("sample params are valid");
    let txid = Txid::from_byte_array(sha256::Hash::hash(&seed.to_le_bytes()).to_byte_array());
    FactoryProposal {
        params,
        lsp_key: keys.lsp_pubkey(),
        clients,
        funding_outpoint: OutPoint::new(txid, (seed % 3) as u32),
        funding_amount,
        creation_height: Height::from_consensus(100).expect("valid height"),
        epoch: Epoch(0),
    }
}

fn scalar(k: &SecretKey) -> Scalar {
    Scalar::from_slice(&k.secret_bytes()).expect("a secret key is a valid scalar")
}

fn context(job: &SigningJob) -> Result<KeyAggContext, String> {
    let points: Vec<Point> = job
        .signers
        .iter()
        .map(|k| Point::from_slice(&k.serialize()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let ctx = KeyAggContext::new(points).map_err(|e| e.to_string())?;
    match job.merkle_root {
        Some(root) => ctx.with_taproot_tweak(&root.to_byte_array()),
        None => ctx.with_unspendable_taproot_tweak(),
    }
    .map_err(|e| e.to_string())
}

fn secrets(job: &SigningJob, keys: &TestKeys) -> Result<Vec<SecretKey>, String> {
    job.signers
        .iter()
        .map(|k| {
            keys.secret(k)
                .ok_or_else(|| format!("no secret key for signer {k}"))
        })
        .collect()
}

/// Signs one job with real MuSig2 through [`crate::musig`] (the code the ceremonies run): every
/// signer draws a nonce from `rng` and signs partially, and the partial signatures are
/// aggregated into a signature checked against the output key.
pub fn sign_job<R: RngCore + CryptoRng>(
    job: &SigningJob,
    keys: &TestKeys,
    rng: &mut R,
) -> Result<schnorr::Signature, String> {
    let job_keys = musig::JobKeys::for_job(job).map_err(|e| e.to_string())?;
    let signers = job
        .signers
        .iter()
        .map(|k| {
            keys.by_pubkey
                .get(&k.serialize())
                .map(|(_, signer)| signer)
                .ok_or_else(|| format!("no secret key for signer {k}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    musig::sign_with_every_signer(rng, &job_keys, &signers, &job.sighash).map_err(|e| e.to_string())
}

/// Signs one job with the aggregated (tweaked) secret key of its signers.
pub fn sign_job_aggregated(
    job: &SigningJob,
    keys: &TestKeys,
) -> Result<schnorr::Signature, String> {
    let ctx = context(job)?;
    let secrets = secrets(job, keys)?;
    let agg: Scalar = ctx
        .aggregated_seckey(secrets.iter().map(scalar))
        .map_err(|e| e.to_string())?;
    let secp = Secp256k1::signing_only();
    let keypair = Keypair::from_seckey_slice(&secp, &agg.serialize()).map_err(|e| e.to_string())?;
    let msg = Message::from_digest(job.sighash.to_byte_array());
    Ok(secp.sign_schnorr_no_aux_rand(&msg, &keypair))
}

/// Signs every unsigned node of `tree` with real MuSig2 and attaches the signatures (each is
/// verified on attach).
pub fn sign_all<R: RngCore + CryptoRng>(
    tree: &mut FactoryTree,
    keys: &TestKeys,
    rng: &mut R,
) -> Result<(), String> {
    for job in tree.unsigned_jobs() {
        let sig = sign_job(&job, keys, rng)?;
        tree.set_signature(job.node, sig)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// [`sign_all`] with [`sign_job_aggregated`]: the same signatures' validity, much faster.
pub fn sign_all_aggregated(tree: &mut FactoryTree, keys: &TestKeys) -> Result<(), String> {
    for job in tree.unsigned_jobs() {
        let sig = sign_job_aggregated(&job, keys)?;
        tree.set_signature(job.node, sig)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Checks a signed node with Bitcoin Core's script interpreter (libbitcoinconsensus, taproot
/// rules on).
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) fn consensus_verify(node: &crate::tree::TreeNode) -> Result<(), String> {
    let tx = node.signed_tx().ok_or("unsigned")?;
    consensus_verify_tx(&tx, &node.prevout)
}

/// Checks input 0 of `tx`, spending `prevout`, with Bitcoin Core's script interpreter.
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) fn consensus_verify_tx(
    tx: &bitcoin::Transaction,
    prevout: &bitcoin::TxOut,
) -> Result<(), String> {
    let bytes = bitcoin::consensus::serialize(tx);
    let spk = prevout.script_pubkey.as_bytes();
    let utxo = bitcoinconsensus::Utxo {
        script_pubkey: spk.as_ptr(),
        script_pubkey_len: spk.len() as u32,
        value: prevout.value.to_sat() as i64,
    };
    bitcoinconsensus::verify_with_flags(
        spk,
        prevout.value.to_sat(),
        &bytes,
        Some(&[utxo]),
        0,
        bitcoinconsensus::VERIFY_ALL_PRE_TAPROOT | bitcoinconsensus::VERIFY_TAPROOT,
    )
    .map_err(|e| format!("{e:?}"))
}
