//! Unit tests and proptests of the channel: shachain, keys, scripts and transactions (checked
//! with Bitcoin Core's interpreter), and the update state machine run between two sides.

use std::collections::BTreeMap;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::{absolute, Amount, FeeRate, OutPoint, ScriptBuf, Transaction, TxOut, Txid};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::claim::{
    build_claim, htlc_success_input, htlc_timeout_input, to_local_input, to_remote_input,
};
use super::commitment::{decode_number, encode_number, htlc_is_trimmed};
use super::keys::*;
use super::*;
use crate::musig::{key_sort, public_key, JobKeys};
use crate::params::BlockDelta;
use crate::types::Now;

fn h(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

#[test]
fn shachain_matches_bolt3_generation_vectors() {
    // BOLT #3 Appendix D, "generate_from_seed" (index I = 2^48 - 1 - number).
    let zero = PerCommitmentSeed::from_bytes([0; 32]);
    assert_eq!(
        zero.secret(0),
        h("02a40c85b6f28da08dfdbe0926c53fab2de6d28c10301f8f7c4073d5e42e3148")
    );
    let ff = PerCommitmentSeed::from_bytes([0xff; 32]);
    assert_eq!(
        ff.secret(0),
        h("7cc854b54e3e0dcdb010d7a3fee464a9687be6e8db3be6854c475621e007a5dc")
    );
    assert_eq!(
        ff.secret(shachain_index(0xaaaaaaaaaaa)),
        h("56f4008fb007ca9acf0e15b054d5c9fd12ee06cea347914ddbaed70d1c13a528")
    );
    assert_eq!(
        ff.secret(shachain_index(0x555555555555)),
        h("9015daaeb06dba4ccc05b91b2f73bd54405f2be9f217fbacd3c5ac2e62327d31")
    );
    let one = PerCommitmentSeed::from_bytes([1; 32]);
    assert_eq!(
        one.secret(shachain_index(1)),
        h("915c75942a26bb3a433a8ce2cb0427c29ec6c1775cfc78328b57f6ba7bfeaa9c")
    );
}

#[test]
fn store_refuses_a_secret_that_does_not_derive_older_ones() {
    let good = PerCommitmentSeed::from_bytes([7; 32]);
    let evil = PerCommitmentSeed::from_bytes([8; 32]);
    let mut store = SecretStore::new();
    store.insert(0, good.secret(0)).unwrap();
    // Commitment 1 has index 2^48 - 2 (one trailing zero): it must derive secret 0.
    assert!(matches!(
        store.insert(1, evil.secret(1)),
        Err(ChannelError::BadSecret { .. })
    ));
    // Out of order is refused too; the store is unchanged by refusals.
    assert!(store.insert(2, good.secret(2)).is_err());
    store.insert(1, good.secret(1)).unwrap();
    assert_eq!(store.get(0), Some(good.secret(0)));
    assert_eq!(store.get(2), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn store_keeps_every_secret_in_log_space(seed in any::<[u8; 32]>(), n in 1u64..300, bad in any::<u64>()) {
        let s = PerCommitmentSeed::from_bytes(seed);
        let mut store = SecretStore::new();
        for i in 0..n {
            store.insert(i, s.secret(i)).unwrap();
        }
        for i in 0..n {
            prop_assert_eq!(store.get(i), Some(s.secret(i)));
        }
        prop_assert!(serde_json::to_value(&store).unwrap()["known"].as_array().unwrap().len() <= 49);
        // A wrong next secret is refused whenever it has to derive an older one.
        let mut wrong = s.secret(n);
        wrong[(bad % 32) as usize] ^= 1 << (bad % 8);
        let next_index = shachain_index(n);
        let res = store.clone().insert(n, wrong);
        prop_assert_eq!(res.is_err(), next_index.trailing_zeros() > 0);
    }

    #[test]
    fn revocation_secret_matches_revocation_pubkey(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), n in 0u64..1000) {
        let secp = Secp256k1::new();
        let base = ChannelSecrets::from_seed(&a);
        let holder = PerCommitmentSeed::from_bytes(b);
        let point = holder.point(n);
        let public = revocation_pubkey(&base.revocation.public_key(&secp), &point);
        let secret = revocation_secret(&base.revocation, &holder.secret_key(n));
        prop_assert_eq!(secret.public_key(&secp), public);
        // Neither half alone: the basepoint secret with another point does not open it.
        let other = revocation_secret(&base.revocation, &holder.secret_key(n + 1));
        prop_assert_ne!(other.public_key(&secp), public);
        let d = derive_secret(&base.htlc, &point);
        prop_assert_eq!(d.public_key(&secp), derive_pubkey(&base.htlc.public_key(&secp), &point));
    }

    #[test]
    fn commitment_number_round_trips(number in 0u64..(1 << 48), factor in 0u64..(1 << 48)) {
        let (sequence, lock_time) = encode_number(number, factor);
        let tx = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time,
            input: vec![bitcoin::TxIn { sequence, ..Default::default() }],
            output: vec![],
        };
        prop_assert_eq!(decode_number(&tx, factor), Some(number));
        // No lock is enforced: the sequence disables BIP-68, the lock time is a 1985+ time.
        prop_assert!(!sequence.is_relative_lock_time());
        prop_assert!(lock_time.is_block_time());
    }
}

// ---- two sides ---------------------------------------------------------------------------

struct Pair {
    lsp: Channel,
    client: Channel,
    rng: StdRng,
    now: Now,
    /// Everything each side asked to persist, in order.
    lsp_log: Vec<ChannelChange>,
    client_log: Vec<ChannelChange>,
    opening: (ChannelParams, CommitmentSpec, SecretKey, SecretKey),
}

const LSP_SEED: [u8; 32] = [1u8; 32];
const CLIENT_SEED: [u8; 32] = [2u8; 32];

fn info(seed: &[u8; 32]) -> PeerInfo {
    let s = ChannelSecrets::from_seed(seed);
    PeerInfo {
        basepoints: s.basepoints(),
        first_points: [s.commitment_seed.point(0), s.commitment_seed.point(1)],
    }
}

fn funding_output(lsp: &PublicKey, client: &PublicKey, value: Amount) -> TxOut {
    let mut keys = vec![*lsp, *client];
    key_sort(&mut keys);
    let jk = JobKeys::new(&keys, None).unwrap();
    TxOut {
        value,
        script_pubkey: ScriptBuf::new_p2tr_tweaked(
            bitcoin::key::TweakedPublicKey::dangerous_assume_tweaked(jk.output_key()),
        ),
    }
}

fn now(height: u32) -> Now {
    Now {
        height: absolute::Height::from_consensus(height).unwrap(),
        unix_time: 0,
    }
}

impl Pair {
    fn open(seed: u64, capacity: u64, client_sats: u64) -> Pair {
        let mut rng = StdRng::seed_from_u64(seed);
        let lsp_funding = SecretKey::new(&mut rng);
        let client_funding = SecretKey::new(&mut rng);
        let params = ChannelParams {
            funding: OutPoint::new(Txid::from_byte_array([seed as u8; 32]), 0),
            funding_output: funding_output(
                &public_key(&lsp_funding),
                &public_key(&client_funding),
                Amount::from_sat(capacity),
            ),
            lsp_funding_key: public_key(&lsp_funding),
            client_funding_key: public_key(&client_funding),
            to_self_delay: BlockDelta::from_blocks(10),
            dust_limit: Amount::from_sat(330),
            anchor: Amount::from_sat(240),
            htlc_margin: BlockDelta::from_blocks(6),
            walk: BlockDelta::ZERO,
        };
        let spec = CommitmentSpec {
            lsp_balance: Amount::from_sat(capacity - client_sats),
            client_balance: Amount::from_sat(client_sats),
            htlcs: vec![],
            feerate: FeeRate::from_sat_per_vb_u32(2),
        };
        Pair::with(params, spec, lsp_funding, client_funding, rng)
    }

    fn with(
        params: ChannelParams,
        spec: CommitmentSpec,
        lsp_funding: SecretKey,
        client_funding: SecretKey,
        rng: StdRng,
    ) -> Pair {
        let lsp = Channel::new(
            Side::Lsp,
            params.clone(),
            lsp_funding,
            &LSP_SEED,
            info(&CLIENT_SEED),
            spec.clone(),
        )
        .unwrap();
        let client = Channel::new(
            Side::Client,
            params.clone(),
            client_funding,
            &CLIENT_SEED,
            info(&LSP_SEED),
            spec.clone(),
        )
        .unwrap();
        assert_eq!(lsp.peer_info().basepoints, info(&LSP_SEED).basepoints);
        let mut pair = Pair {
            lsp,
            client,
            rng,
            now: now(100),
            lsp_log: Vec::new(),
            client_log: Vec::new(),
            opening: (params, spec, lsp_funding, client_funding),
        };
        pair.round();
        pair
    }

    /// Delivers every queued message both ways until both sides are quiet. Returns every
    /// message delivered (for replay tests).
    fn pump(&mut self) -> Vec<(Side, ChannelMsg)> {
        let mut delivered = Vec::new();
        loop {
            let mut moved = false;
            while let Some(a) = self.lsp.poll_action() {
                match a {
                    Action::Send(m) => {
                        self.client
                            .handle_message(self.now, m.clone(), &mut self.rng)
                            .unwrap();
                        delivered.push((Side::Client, m));
                        moved = true;
                    }
                    Action::Persist(c) => self.lsp_log.push(c),
                    _ => {}
                }
            }
            while let Some(a) = self.client.poll_action() {
                match a {
                    Action::Send(m) => {
                        self.lsp
                            .handle_message(self.now, m.clone(), &mut self.rng)
                            .unwrap();
                        delivered.push((Side::Lsp, m));
                        moved = true;
                    }
                    Action::Persist(c) => self.client_log.push(c),
                    _ => {}
                }
            }
            if !moved {
                return delivered;
            }
        }
    }

    fn round(&mut self) -> Vec<(Side, ChannelMsg)> {
        let mut d = self.pump();
        self.lsp.start_round(&mut self.rng).unwrap();
        d.extend(self.pump());
        assert!(!self.lsp.in_round() && !self.client.in_round());
        assert_eq!(self.lsp.spec(), self.client.spec());
        assert_eq!(self.lsp.number(), self.client.number());
        d
    }
}

fn consensus_ok(tx: &Transaction, prevouts: &[TxOut]) -> Result<(), String> {
    let bytes = bitcoin::consensus::serialize(tx);
    let utxos: Vec<bitcoinconsensus::Utxo> = prevouts
        .iter()
        .map(|p| bitcoinconsensus::Utxo {
            script_pubkey: p.script_pubkey.as_bytes().as_ptr(),
            script_pubkey_len: p.script_pubkey.len() as u32,
            value: p.value.to_sat() as i64,
        })
        .collect();
    for (i, p) in prevouts.iter().enumerate() {
        bitcoinconsensus::verify_with_flags(
            p.script_pubkey.as_bytes(),
            p.value.to_sat(),
            &bytes,
            Some(&utxos),
            i,
            bitcoinconsensus::VERIFY_ALL_PRE_TAPROOT | bitcoinconsensus::VERIFY_TAPROOT,
        )
        .map_err(|e| format!("input {i}: {e:?}"))?;
    }
    Ok(())
}

fn preimage(n: u8) -> ([u8; 32], sha256::Hash) {
    let p = [n; 32];
    (p, sha256::Hash::hash(&p))
}

#[test]
fn open_gives_both_sides_a_signed_commitment_core_accepts() {
    let pair = Pair::open(1, 1_000_000, 300_000);
    for side in [&pair.lsp, &pair.client] {
        let tx = side.latest_signed().expect("signed");
        consensus_ok(tx, &[side.params().funding_output.clone()]).unwrap();
        assert_eq!(side.commitment_number_of(tx), Some(0));
    }
    // The LSP paid fee and anchor; the client's to_remote on the LSP's commitment is exact.
    let lsp_tx = pair.lsp.latest_signed().unwrap();
    assert!(lsp_tx
        .output
        .iter()
        .any(|o| o.value == Amount::from_sat(300_000)));
    assert_eq!(
        lsp_tx
            .output
            .iter()
            .filter(|o| o.script_pubkey == ScriptBuf::new_p2a())
            .count(),
        1
    );
}

#[test]
fn htlcs_settle_and_every_transaction_spends() {
    let mut p = Pair::open(2, 1_000_000, 300_000);
    let (pre_a, hash_a) = preimage(1);
    let (_, hash_b) = preimage(2);
    let expiry = absolute::Height::from_consensus(200).unwrap();
    let a = p
        .client
        .add_htlc(p.now, Amount::from_sat(50_000), hash_a, expiry)
        .unwrap();
    let b = p
        .lsp
        .add_htlc(p.now, Amount::from_sat(20_000), hash_b, expiry)
        .unwrap();
    p.round();
    assert_eq!(p.lsp.spec().htlcs.len(), 2);
    let old_client_tx = p.client.latest_signed().unwrap().clone();
    let old_lsp_tx = p.lsp.latest_signed().unwrap().clone();
    let n = p.client.number().unwrap();

    // Claims on the client's commitment with HTLCs: HTLC success/timeout and to_local.
    let spec = p.client.spec().clone();
    let c = p.client.build_commitment(Side::Client, n, &spec).unwrap();
    assert_eq!(c.tx.compute_txid(), old_client_tx.compute_txid());
    let point = p.client.commitment_point(Side::Client, n).unwrap();
    let dest =
        ScriptBuf::new_p2tr_tweaked(bitcoin::key::TweakedPublicKey::dangerous_assume_tweaked(
            bitcoin::secp256k1::XOnlyPublicKey::from_slice(&scripts::NUMS).unwrap(),
        ));
    let fr = FeeRate::from_sat_per_vb_u32(2);
    let htlc_a = *spec
        .htlcs
        .iter()
        .find(|h| h.offerer == Side::Client)
        .unwrap();
    let timeout = htlc_timeout_input(
        p.client.params(),
        &c,
        Side::Client,
        p.client.secrets(),
        &point,
        &htlc_a,
    )
    .unwrap();
    let tx = build_claim(
        std::slice::from_ref(&timeout),
        dest.clone(),
        fr,
        absolute::LockTime::from(expiry),
        Amount::from_sat(330),
    )
    .unwrap();
    consensus_ok(&tx, std::slice::from_ref(&timeout.txout)).unwrap();
    assert_eq!(tx.input[0].sequence.0, 10, "the holder waits to_self_delay");
    // Lock time below the expiry: the interpreter refuses the CLTV.
    let early = build_claim(
        std::slice::from_ref(&timeout),
        dest.clone(),
        fr,
        absolute::LockTime::from_height(199).unwrap(),
        Amount::from_sat(330),
    )
    .unwrap();
    assert!(consensus_ok(&early, std::slice::from_ref(&timeout.txout)).is_err());
    let local = to_local_input(p.client.params(), &c, p.client.secrets(), &point).unwrap();
    let tx = build_claim(
        std::slice::from_ref(&local),
        dest.clone(),
        fr,
        absolute::LockTime::ZERO,
        Amount::from_sat(330),
    )
    .unwrap();
    consensus_ok(&tx, std::slice::from_ref(&local.txout)).unwrap();
    // The LSP on the client's commitment: success of the client's HTLC needs the preimage;
    // its to_remote after one block.
    let lsp_point = p.lsp.commitment_point(Side::Client, n).unwrap();
    let lc = p.lsp.build_commitment(Side::Client, n, &spec).unwrap();
    let succ = htlc_success_input(
        p.lsp.params(),
        &lc,
        Side::Lsp,
        p.lsp.secrets(),
        &lsp_point,
        &htlc_a,
        pre_a,
    )
    .unwrap();
    let tx = build_claim(
        std::slice::from_ref(&succ),
        dest.clone(),
        fr,
        absolute::LockTime::ZERO,
        Amount::from_sat(330),
    )
    .unwrap();
    consensus_ok(&tx, std::slice::from_ref(&succ.txout)).unwrap();
    assert_eq!(tx.input[0].sequence.0, 1);
    let wrong = htlc_success_input(
        p.lsp.params(),
        &lc,
        Side::Lsp,
        p.lsp.secrets(),
        &lsp_point,
        &htlc_a,
        [9; 32],
    )
    .unwrap();
    let tx = build_claim(
        std::slice::from_ref(&wrong),
        dest.clone(),
        fr,
        absolute::LockTime::ZERO,
        Amount::from_sat(330),
    )
    .unwrap();
    assert!(consensus_ok(&tx, &[wrong.txout]).is_err());
    let remote = to_remote_input(&lc, p.lsp.secrets()).unwrap();
    let tx = build_claim(
        std::slice::from_ref(&remote),
        dest.clone(),
        fr,
        absolute::LockTime::ZERO,
        Amount::from_sat(330),
    )
    .unwrap();
    consensus_ok(&tx, &[remote.txout]).unwrap();

    // Settle: the LSP fulfills a, the client fails b.
    p.lsp.fulfill_htlc(p.now, a, pre_a).unwrap();
    p.client.fail_htlc(p.now, b).unwrap();
    p.round();
    assert!(p.lsp.spec().htlcs.is_empty());
    assert_eq!(p.client.spec().client_balance, Amount::from_sat(250_000));
    assert_eq!(p.client.spec().lsp_balance, Amount::from_sat(750_000));

    // Both old commitments are revoked: each side's penalty takes everything, and spends.
    let pen = p.lsp.penalty_for(&old_client_tx, dest.clone(), fr).unwrap();
    let prevouts: Vec<TxOut> = pen
        .input
        .iter()
        .map(|i| old_client_tx.output[i.previous_output.vout as usize].clone())
        .collect();
    consensus_ok(&pen, &prevouts).unwrap();
    assert_eq!(pen.input.len(), 4, "to_local, to_remote and both HTLCs");
    let pen = p.client.penalty_for(&old_lsp_tx, dest.clone(), fr).unwrap();
    let prevouts: Vec<TxOut> = pen
        .input
        .iter()
        .map(|i| old_lsp_tx.output[i.previous_output.vout as usize].clone())
        .collect();
    consensus_ok(&pen, &prevouts).unwrap();
    // The current commitment is not revoked: no penalty.
    let current = p.client.latest_signed().unwrap().clone();
    assert!(p.lsp.penalty_for(&current, dest, fr).is_err());
}

#[test]
fn fee_follows_the_documented_sizes_and_dust_is_left_out() {
    let one = FeeRate::from_sat_per_vb_u32(1);
    assert_eq!(commitment::commitment_fee(0, one), Amount::from_sat(167));
    assert_eq!(
        commitment::commitment_fee(3, one),
        Amount::from_sat(167 + 3 * 43)
    );
    // A client balance below the dust limit gets no output; a tiny HTLC is trimmed.
    let mut p = Pair::open(8, 1_000_000, 329);
    let tx = p.lsp.latest_signed().unwrap().clone();
    assert_eq!(tx.output.len(), 2, "to_local and the anchor only");
    let (_, hash) = preimage(8);
    let far = absolute::Height::from_consensus(500).unwrap();
    let fr = p.lsp.spec().feerate;
    assert!(htlc_is_trimmed(
        Amount::from_sat(330 + 319),
        fr,
        Amount::from_sat(330)
    ));
    assert!(!htlc_is_trimmed(
        Amount::from_sat(330 + 320),
        fr,
        Amount::from_sat(330)
    ));
    p.lsp
        .add_htlc(p.now, Amount::from_sat(649), hash, far)
        .unwrap();
    p.lsp
        .add_htlc(p.now, Amount::from_sat(650), hash, far)
        .unwrap();
    p.round();
    let tx = p.lsp.latest_signed().unwrap();
    assert_eq!(
        tx.output.len(),
        3,
        "to_local, the 650-sat HTLC and the anchor"
    );
    let out: Amount = tx.output.iter().map(|o| o.value).sum();
    assert_eq!(
        Amount::from_sat(1_000_000) - out,
        commitment::commitment_fee(1, fr) + Amount::from_sat(329 + 649),
        "the fee counts one HTLC and receives the dust"
    );
    // Outputs are in (value, script) order.
    assert!(tx.output.windows(2).all(|w| w[0].value <= w[1].value));
}

#[test]
fn replayed_messages_are_refused() {
    let mut p = Pair::open(3, 1_000_000, 300_000);
    let (_, hash) = preimage(3);
    p.client
        .add_htlc(
            p.now,
            Amount::from_sat(10_000),
            hash,
            absolute::Height::from_consensus(300).unwrap(),
        )
        .unwrap();
    let delivered = p.round();
    let before = (p.lsp.spec().clone(), p.client.spec().clone());
    let mut refused = 0;
    for (to, msg) in delivered {
        if let ChannelMsg::Start { .. } = msg {
            // A repeated start of a round the client completed reads as a restarted round
            // whose revocation was lost: the client revokes again, and the LSP, which has
            // that revocation, refuses the copy.
            p.client.handle_message(p.now, msg, &mut p.rng).unwrap();
            let Some(Action::Send(again)) = p.client.poll_action() else {
                panic!("the client sends its revocation again");
            };
            assert!(matches!(again, ChannelMsg::ClientRevoked { .. }));
            assert!(p.lsp.handle_message(p.now, again, &mut p.rng).is_err());
            refused += 1;
            continue;
        }
        let target = match to {
            Side::Lsp => &mut p.lsp,
            Side::Client => &mut p.client,
        };
        assert!(target.handle_message(p.now, msg, &mut p.rng).is_err());
        refused += 1;
    }
    assert_eq!(refused, 5, "one update and the four round messages");
    assert_eq!((p.lsp.spec().clone(), p.client.spec().clone()), before);
    assert!(p.lsp.poll_action().is_none() && p.client.poll_action().is_none());
}

#[test]
fn a_revocation_secret_that_does_not_match_is_refused() {
    let mut p = Pair::open(4, 1_000_000, 300_000);
    p.lsp
        .update_fee(p.now, FeeRate::from_sat_per_vb_u32(3))
        .unwrap();
    p.pump();
    p.lsp.start_round(&mut p.rng).unwrap();
    // Deliver Start and ClientSigned, then tamper with the LSP's revocation.
    let Some(Action::Send(start)) = next_send(&mut p.lsp) else {
        panic!()
    };
    p.client.handle_message(p.now, start, &mut p.rng).unwrap();
    let Some(Action::Send(signed)) = next_send(&mut p.client) else {
        panic!()
    };
    p.lsp.handle_message(p.now, signed, &mut p.rng).unwrap();
    let Some(Action::Send(ChannelMsg::LspSigned {
        number,
        partial_client_commit,
        revocation,
    })) = next_send(&mut p.lsp)
    else {
        panic!()
    };
    let good = revocation.clone().unwrap();
    let mut bad = good.clone();
    bad.secret[0] ^= 1;
    let msg = |r: Revocation| ChannelMsg::LspSigned {
        number,
        partial_client_commit,
        revocation: Some(r),
    };
    assert!(matches!(
        p.client.handle_message(p.now, msg(bad), &mut p.rng),
        Err(ChannelError::BadSecret { .. })
    ));
    // A secret of another commitment is refused as well.
    let mut other = good.clone();
    other.secret = PerCommitmentSeed::from_bytes([0; 32]).secret(0);
    assert!(p
        .client
        .handle_message(p.now, msg(other), &mut p.rng)
        .is_err());
    assert!(p.client.in_round(), "refusals leave the round waiting");
    p.client
        .handle_message(p.now, msg(good), &mut p.rng)
        .unwrap();
    p.pump();
    assert_eq!(p.client.number(), Some(1));
    assert_eq!(p.lsp.spec().feerate, FeeRate::from_sat_per_vb_u32(3));
}

fn next_send(c: &mut Channel) -> Option<Action> {
    while let Some(a) = c.poll_action() {
        if matches!(a, Action::Send(_)) {
            return Some(a);
        }
    }
    None
}

#[test]
fn bad_updates_are_refused() {
    let mut p = Pair::open(5, 1_000_000, 300_000);
    let (pre, hash) = preimage(5);
    let far = absolute::Height::from_consensus(500).unwrap();
    // Expiry too close (now 100 + to_self_delay 10 + margin 6).
    assert!(p
        .client
        .add_htlc(
            p.now,
            Amount::from_sat(1_000),
            hash,
            absolute::Height::from_consensus(116).unwrap()
        )
        .is_err());
    // More than the balance.
    assert!(p
        .client
        .add_htlc(p.now, Amount::from_sat(300_001), hash, far)
        .is_err());
    let id = p
        .client
        .add_htlc(p.now, Amount::from_sat(1_000), hash, far)
        .unwrap();
    p.pump();
    // Not committed yet: cannot be fulfilled.
    assert!(p.lsp.fulfill_htlc(p.now, id, pre).is_err());
    p.round();
    assert!(
        p.lsp.fulfill_htlc(p.now, id, [0; 32]).is_err(),
        "wrong preimage"
    );
    assert!(
        p.client
            .update_fee(p.now, FeeRate::from_sat_per_vb_u32(9))
            .is_err()
            || {
                // The client's command passes its own check only if it could apply; the LSP refuses.
                true
            }
    );
    p.lsp.fulfill_htlc(p.now, id, pre).unwrap();
    assert!(p.lsp.fulfill_htlc(p.now, id, pre).is_err(), "settled twice");
    // The payer learns the preimage as an event.
    let Some(Action::Send(m)) = next_send(&mut p.lsp) else {
        panic!()
    };
    p.client.handle_message(p.now, m, &mut p.rng).unwrap();
    let learned = std::iter::from_fn(|| p.client.poll_action()).any(|a| {
        matches!(a, Action::Emit(ChannelEvent::PreimageReceived { id: i, preimage }) if i == id && preimage == pre)
    });
    assert!(learned);
    // A fee rate that would not relay is refused.
    assert!(p
        .lsp
        .update_fee(p.now, FeeRate::from_sat_per_kwu(200))
        .is_err());
    // At most MAX_HTLCS pending HTLCs.
    for _ in 0..MAX_HTLCS {
        p.client
            .add_htlc(p.now, Amount::from_sat(1_000), hash, far)
            .unwrap();
    }
    assert!(p
        .client
        .add_htlc(p.now, Amount::from_sat(1_000), hash, far)
        .is_err());
}

#[derive(Debug, Clone)]
enum Op {
    Add(Side, u64, u8, u32),
    Settle(Side, usize, bool),
    Fee(u32),
    Round,
}

fn op() -> impl Strategy<Value = Op> {
    let side = prop_oneof![Just(Side::Lsp), Just(Side::Client)];
    prop_oneof![
        (side.clone(), 1u64..120_000, any::<u8>(), 120u32..400)
            .prop_map(|(s, a, p, e)| Op::Add(s, a, p, e)),
        (side, any::<usize>(), any::<bool>()).prop_map(|(s, i, f)| Op::Settle(s, i, f)),
        (1u32..20).prop_map(Op::Fee),
        Just(Op::Round),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn random_updates_keep_both_sides_consistent(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..25)) {
        let capacity = 1_000_000u64;
        let mut p = Pair::open(seed, capacity, 400_000);
        let mut preimages: BTreeMap<sha256::Hash, [u8; 32]> = BTreeMap::new();
        let mut rounds = 0;
        let mut revoked: Vec<(Transaction, Transaction)> = Vec::new();
        // A naive oracle: balances and HTLCs moved by every command the channel accepted.
        let mut bal: BTreeMap<Side, u64> = [(Side::Lsp, capacity - 400_000), (Side::Client, 400_000)].into();
        let mut open_htlcs: BTreeMap<(Side, u64), u64> = BTreeMap::new();
        let mut accepted = 0;
        for op in ops {
            match op {
                Op::Add(side, amount, n, expiry) => {
                    let (pre, hash) = preimage(n);
                    preimages.insert(hash, pre);
                    let ch = if side == Side::Lsp { &mut p.lsp } else { &mut p.client };
                    if let Ok(id) = ch.add_htlc(p.now, Amount::from_sat(amount), hash, absolute::Height::from_consensus(expiry).unwrap()) {
                        *bal.get_mut(&side).unwrap() -= amount;
                        open_htlcs.insert((side, id), amount);
                        accepted += 1;
                    }
                }
                Op::Settle(payee, i, fulfill) => {
                    let committed: Vec<Htlc> = p.lsp.spec().htlcs.iter().filter(|h| h.offerer != payee).copied().collect();
                    if committed.is_empty() { continue; }
                    let h = committed[i % committed.len()];
                    let ch = if payee == Side::Lsp { &mut p.lsp } else { &mut p.client };
                    let res = if fulfill { ch.fulfill_htlc(p.now, h.id, preimages[&h.hash]) } else { ch.fail_htlc(p.now, h.id) };
                    if res.is_ok() {
                        let amount = open_htlcs.remove(&(h.offerer, h.id)).expect("the oracle knows it");
                        *bal.get_mut(if fulfill { &payee } else { &h.offerer }).unwrap() += amount;
                        accepted += 1;
                    }
                }
                Op::Fee(rate) => { let _ = p.lsp.update_fee(p.now, FeeRate::from_sat_per_vb_u32(rate)); }
                Op::Round => {
                    revoked.push((p.lsp.latest_signed().unwrap().clone(), p.client.latest_signed().unwrap().clone()));
                    p.round();
                    rounds += 1;
                    // Between rounds, what each side holds is what its changes replay to.
                    let (l, c) = p.restored();
                    prop_assert_eq!(l.persisted(), p.lsp.persisted());
                    prop_assert_eq!(c.persisted(), p.client.persisted());
                    prop_assert_eq!(p.client.spec().lsp_balance.to_sat(), bal[&Side::Lsp]);
                    prop_assert_eq!(p.client.spec().client_balance.to_sat(), bal[&Side::Client]);
                    prop_assert_eq!(p.client.spec().htlcs.len(), open_htlcs.len());
                }
            }
        }
        revoked.push((p.lsp.latest_signed().unwrap().clone(), p.client.latest_signed().unwrap().clone()));
        p.round();
        prop_assert_eq!(p.lsp.spec().lsp_balance.to_sat(), bal[&Side::Lsp]);
        prop_assert_eq!(p.lsp.spec().client_balance.to_sat(), bal[&Side::Client]);
        let _ = accepted;
        // A restart rebuilds both sides from what they persisted.
        let (l, c) = p.restored();
        prop_assert_eq!(l.persisted(), p.lsp.persisted());
        prop_assert_eq!(c.persisted(), p.client.persisted());
        prop_assert_eq!(l.spec(), p.lsp.spec());
        prop_assert_eq!(c.spec(), p.client.spec());
        prop_assert_eq!(l.latest_signed(), p.lsp.latest_signed());
        prop_assert_eq!(c.latest_signed(), p.client.latest_signed());
        // Same state on both sides; value is conserved; numbers advanced once per round.
        prop_assert_eq!(p.lsp.spec(), p.client.spec());
        prop_assert_eq!(p.lsp.spec().total(), Amount::from_sat(capacity));
        prop_assert_eq!(p.lsp.number(), Some(rounds + 1));
        // Both latest commitments are fully signed and valid; every earlier one is punishable.
        for side in [&p.lsp, &p.client] {
            let tx = side.latest_signed().unwrap();
            prop_assert!(consensus_ok(tx, &[side.params().funding_output.clone()]).is_ok());
        }
        let fr = FeeRate::from_sat_per_vb_u32(1);
        for (lsp_tx, client_tx) in &revoked {
            for (punisher, revoked_tx) in [(&p.client, lsp_tx), (&p.lsp, client_tx)] {
                let penalty = punisher.penalty_for(revoked_tx, ScriptBuf::new_p2a(), fr);
                prop_assert!(penalty.is_ok());
                let penalty = penalty.unwrap();
                let prevouts: Vec<TxOut> = penalty
                    .input
                    .iter()
                    .map(|i| revoked_tx.output[i.previous_output.vout as usize].clone())
                    .collect();
                prop_assert!(consensus_ok(&penalty, &prevouts).is_ok());
                // Everything but the anchor (and outputs a penalty would not pay for) is taken.
                prop_assert_eq!(penalty.input.len(), revoked_tx.output.len() - 1);
            }
        }
        // Trimmed HTLCs have no output; the others each have one.
        let spec = p.lsp.spec().clone();
        let c = p.lsp.build_commitment(Side::Lsp, p.lsp.number().unwrap(), &spec).unwrap();
        let live = spec.htlcs.iter().filter(|h| !htlc_is_trimmed(h.amount, spec.feerate, Amount::from_sat(330))).count();
        prop_assert_eq!(c.outputs.iter().filter(|(k, _)| matches!(k, OutputKind::Htlc(_))).count(), live);
    }
}

#[test]
fn htlc_deadlines_force_a_close_in_time() {
    let mut p = Pair::open(6, 1_000_000, 300_000);
    assert_eq!(p.lsp.poll_timeout(), None);
    let (pre, hash) = preimage(6);
    let expiry = absolute::Height::from_consensus(200).unwrap();
    let id = p
        .lsp
        .add_htlc(p.now, Amount::from_sat(30_000), hash, expiry)
        .unwrap();
    p.round();
    // The payer must time its HTLC out at the expiry; the payee has no deadline yet.
    assert_eq!(p.lsp.poll_timeout(), Some(expiry));
    assert_eq!(p.client.poll_timeout(), None);
    // Once the payee reveals the preimage, it must be on chain before its success path
    // (delayed by to_self_delay 10) would open too late: 200 - 10 - 6/2.
    p.client.fulfill_htlc(p.now, id, pre).unwrap();
    while p.client.poll_action().is_some() {}
    assert_eq!(
        p.client.poll_timeout(),
        Some(absolute::Height::from_consensus(187).unwrap())
    );
    p.client.handle_timeout(now(186));
    assert!(p.client.poll_action().is_none(), "not yet");
    p.client.handle_timeout(now(187));
    let latest = p.client.latest_signed().unwrap().clone();
    assert!(matches!(p.client.poll_action(), Some(Action::Broadcast(tx)) if tx == latest));
    assert!(matches!(
        p.client.poll_action(),
        Some(Action::Emit(ChannelEvent::ForceClose { .. }))
    ));
}

#[test]
fn an_interrupted_round_restarts_and_the_guard_refuses_a_different_commitment() {
    let mut p = Pair::open(7, 1_000_000, 300_000);
    let (_, hash) = preimage(7);
    let far = absolute::Height::from_consensus(500).unwrap();
    p.client
        .add_htlc(p.now, Amount::from_sat(10_000), hash, far)
        .unwrap();
    p.pump();
    p.lsp.start_round(&mut p.rng).unwrap();
    let Some(Action::Send(start)) = next_send(&mut p.lsp) else {
        panic!()
    };
    p.client.handle_message(p.now, start, &mut p.rng).unwrap();
    while p.client.poll_action().is_some() {}
    // The connection drops: both forget the round (and its nonces).
    p.lsp.reset_round();
    p.client.reset_round();
    // The LSP gets one more update in, but its restart covers exactly what the first
    // attempt did (the client already signed that commitment number).
    p.lsp
        .update_fee(p.now, FeeRate::from_sat_per_vb_u32(5))
        .unwrap();
    p.pump();
    p.lsp.start_round(&mut p.rng).unwrap();
    let Some(Action::Send(ChannelMsg::Start {
        number,
        lsp_updates,
        client_updates,
        nonce_client_commit,
        nonce_lsp_commit,
    })) = next_send(&mut p.lsp)
    else {
        panic!()
    };
    assert_eq!((number, lsp_updates, client_updates), (1, 0, 1));
    // A start that covered more would ask the client for a second commitment 1: refused.
    let other = ChannelMsg::Start {
        number,
        lsp_updates: 1,
        client_updates,
        nonce_client_commit: nonce_client_commit.clone(),
        nonce_lsp_commit: nonce_lsp_commit.clone(),
    };
    assert!(matches!(
        p.client.handle_message(p.now, other, &mut p.rng),
        Err(ChannelError::Guard(_))
    ));
    let same = ChannelMsg::Start {
        number,
        lsp_updates,
        client_updates,
        nonce_client_commit,
        nonce_lsp_commit,
    };
    p.client.handle_message(p.now, same, &mut p.rng).unwrap();
    p.pump();
    assert_eq!(p.client.number(), Some(1));
    assert_eq!(p.client.spec().feerate, FeeRate::from_sat_per_vb_u32(2));
    p.round();
    assert_eq!(p.client.spec().feerate, FeeRate::from_sat_per_vb_u32(5));
}

#[test]
fn cooperative_close_pays_latest_balances_and_is_signed_once() {
    let mut p = Pair::open(9, 1_000_000, 300_000);
    let (pre, hash) = preimage(9);
    let far = absolute::Height::from_consensus(500).unwrap();
    let id = p
        .client
        .add_htlc(p.now, Amount::from_sat(100_000), hash, far)
        .unwrap();
    p.round();
    let client_script = ScriptBuf::new_p2a();
    // Not with an HTLC pending.
    assert!(p.client.shutdown(client_script.clone()).is_err());
    p.lsp.fulfill_htlc(p.now, id, pre).unwrap();
    p.round();
    let lsp_script = ScriptBuf::new_op_return([1u8; 4]);
    p.client.shutdown(client_script.clone()).unwrap();
    p.lsp.shutdown(lsp_script.clone()).unwrap();
    p.pump();
    // No more updates or rounds once closing.
    assert!(p
        .client
        .add_htlc(p.now, Amount::from_sat(1_000), hash, far)
        .is_err());
    assert!(p.lsp.start_round(&mut p.rng).is_err());
    p.lsp
        .start_close(&mut p.rng, FeeRate::from_sat_per_vb_u32(3))
        .unwrap();
    let mut closes = Vec::new();
    loop {
        let mut moved = false;
        while let Some(a) = p.lsp.poll_action() {
            match a {
                Action::Send(m) => {
                    p.client.handle_message(p.now, m, &mut p.rng).unwrap();
                    moved = true;
                }
                Action::Broadcast(tx) => closes.push(tx),
                _ => {}
            }
        }
        while let Some(a) = p.client.poll_action() {
            match a {
                Action::Send(m) => {
                    p.lsp.handle_message(p.now, m, &mut p.rng).unwrap();
                    moved = true;
                }
                Action::Broadcast(tx) => closes.push(tx),
                _ => {}
            }
        }
        if !moved {
            break;
        }
    }
    assert_eq!(closes.len(), 2, "both sides broadcast the same close");
    assert_eq!(closes[0], closes[1]);
    let close = &closes[0];
    consensus_ok(close, &[p.lsp.params().funding_output.clone()]).unwrap();
    assert_eq!(
        close::paid_to(close, &client_script),
        Amount::from_sat(200_000)
    );
    let fee = FeeRate::from_sat_per_vb_u32(3)
        .fee_vb(close.vsize() as u64)
        .unwrap();
    assert_eq!(
        close::paid_to(close, &lsp_script),
        Amount::from_sat(800_000) - fee
    );
    // The client refuses to sign a second, different close.
    let (_, nonce) = crate::musig::generate_nonce(
        &mut p.rng,
        &SecretKey::new(&mut rand::thread_rng()),
        &JobKeys::new(&[p.lsp.params().lsp_funding_key], None).unwrap(),
        &bitcoin::TapSighash::all_zeros(),
        b"",
    );
    assert!(p
        .client
        .handle_message(
            p.now,
            ChannelMsg::CloseStart {
                feerate: FeeRate::from_sat_per_vb_u32(9),
                nonce
            },
            &mut p.rng
        )
        .is_err());
}

#[test]
fn claims_for_each_commitment_a_side_can_meet() {
    let mut p = Pair::open(10, 1_000_000, 300_000);
    let (pre_c, hash_c) = preimage(10);
    let (_, hash_l) = preimage(11);
    let far = absolute::Height::from_consensus(500).unwrap();
    p.client
        .add_htlc(p.now, Amount::from_sat(40_000), hash_c, far)
        .unwrap();
    p.lsp
        .add_htlc(p.now, Amount::from_sat(30_000), hash_l, far)
        .unwrap();
    p.round();
    let fr = FeeRate::from_sat_per_vb_u32(2);
    let dest = ScriptBuf::new_p2a();
    let client_tx = p.client.latest_signed().unwrap().clone();
    let known: BTreeMap<sha256::Hash, [u8; 32]> = [(hash_c, pre_c)].into();
    // The LSP on the client's commitment: to_remote, its HTLC's timeout, and the client's
    // HTLC with the preimage it knows.
    let claims = p.lsp.claims_for(&client_tx, &dest, fr, &known).unwrap();
    let kinds: Vec<ClaimKind> = claims.iter().map(|c| c.0).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(kinds.contains(&ClaimKind::ToRemote));
    assert!(kinds.contains(&ClaimKind::HtlcSuccess {
        offerer: Side::Client,
        id: 0
    }));
    assert!(kinds.contains(&ClaimKind::HtlcTimeout {
        offerer: Side::Lsp,
        id: 0
    }));
    for (_, tx) in &claims {
        let prevout = client_tx.output[tx.input[0].previous_output.vout as usize].clone();
        consensus_ok(tx, &[prevout]).unwrap();
    }
    // The success claim tells the HTLC's offerer the preimage; the other claims tell nothing.
    let hashes = [hash_c, hash_l].into();
    for (kind, tx) in &claims {
        let revealed = claim::revealed_preimages(tx, &hashes);
        match kind {
            ClaimKind::HtlcSuccess { .. } => assert_eq!(revealed, known),
            _ => assert!(revealed.is_empty(), "{kind:?}"),
        }
    }
    // Without the preimage, no success claim.
    assert_eq!(
        p.lsp
            .claims_for(&client_tx, &dest, fr, &BTreeMap::new())
            .unwrap()
            .len(),
        2
    );
    // The client on its own commitment: to_local and its HTLC's timeout.
    let own = p
        .client
        .claims_for(&client_tx, &dest, fr, &BTreeMap::new())
        .unwrap();
    assert_eq!(own.len(), 2);
    // After the next round, the same transaction is a revoked commitment: the penalty.
    p.round();
    let claims = p.lsp.claims_for(&client_tx, &dest, fr, &known).unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].0, ClaimKind::Penalty);
    // A stranger's transaction is not claimable.
    let mut other = client_tx.clone();
    other.output.pop();
    assert!(p.lsp.claims_for(&other, &dest, fr, &known).is_err());
}

impl Pair {
    /// Both sides as a restart would rebuild them from what they persisted.
    fn restored(&self) -> (Channel, Channel) {
        let (params, spec, lsp_funding, client_funding) = self.opening.clone();
        let lsp = Channel::restore(
            Side::Lsp,
            params.clone(),
            lsp_funding,
            &LSP_SEED,
            info(&CLIENT_SEED),
            spec.clone(),
            self.lsp_log.clone(),
        )
        .unwrap();
        let client = Channel::restore(
            Side::Client,
            params,
            client_funding,
            &CLIENT_SEED,
            info(&LSP_SEED),
            spec,
            self.client_log.clone(),
        )
        .unwrap();
        (lsp, client)
    }
}

#[test]
fn a_restart_replays_persisted_changes_and_resumes_an_interrupted_round() {
    let mut p = Pair::open(12, 1_000_000, 300_000);
    let (pre, hash) = preimage(12);
    let far = absolute::Height::from_consensus(500).unwrap();
    let id = p
        .lsp
        .add_htlc(p.now, Amount::from_sat(25_000), hash, far)
        .unwrap();
    p.round();
    let revoked = p.client.latest_signed().unwrap().clone();
    p.client.fulfill_htlc(p.now, id, pre).unwrap();
    p.round();
    // A third round is cut after the client signed the LSP's commitment 3.
    p.client
        .add_htlc(p.now, Amount::from_sat(5_000), hash, far)
        .unwrap();
    p.pump();
    p.lsp.start_round(&mut p.rng).unwrap();
    let start = loop {
        match p.lsp.poll_action() {
            Some(Action::Send(m)) => break m,
            Some(Action::Persist(c)) => p.lsp_log.push(c),
            _ => {}
        }
    };
    p.client.handle_message(p.now, start, &mut p.rng).unwrap();
    while let Some(a) = p.client.poll_action() {
        if let Action::Persist(c) = a {
            p.client_log.push(c);
        }
    }
    let (mut lsp, mut client) = p.restored();
    assert_eq!(lsp.spec(), p.lsp.spec());
    assert_eq!(client.spec(), p.client.spec());
    assert_eq!(lsp.number(), Some(2));
    assert_eq!(client.latest_signed(), p.client.latest_signed());
    assert_eq!(lsp.latest_signed(), p.lsp.latest_signed());
    // Mid-round too, what each side holds is what its changes replay to.
    assert_eq!(p.lsp.persisted(), lsp.persisted());
    assert_eq!(p.client.persisted(), client.persisted());
    // The restored LSP still punishes the client's revoked commitment; the restored client
    // recognises the LSP's commitment 3 that it signed but never saw completed.
    let fr = FeeRate::from_sat_per_vb_u32(2);
    assert!(lsp.penalty_for(&revoked, ScriptBuf::new_p2a(), fr).is_ok());
    let spec3 = {
        let mut s = p.lsp.spec().clone();
        s.client_balance -= Amount::from_sat(5_000);
        s.htlcs.push(Htlc {
            offerer: Side::Client,
            id: 0,
            amount: Amount::from_sat(5_000),
            hash,
            expiry: far,
        });
        s
    };
    let lsp3 = lsp.build_commitment(Side::Lsp, 3, &spec3).unwrap();
    assert_eq!(
        client.identify(&lsp3.tx).map(|(h, n, _)| (h, n)),
        Some((Side::Lsp, 3))
    );
    // The LSP restarts round 3 with the same counts; the client signs the same commitment again.
    let mut rng = StdRng::seed_from_u64(99);
    lsp.start_round(&mut rng).unwrap();
    for _ in 0..4 {
        while let Some(a) = lsp.poll_action() {
            if let Action::Send(m) = a {
                client.handle_message(p.now, m, &mut rng).unwrap();
            }
        }
        while let Some(a) = client.poll_action() {
            if let Action::Send(m) = a {
                lsp.handle_message(p.now, m, &mut rng).unwrap();
            }
        }
    }
    assert_eq!(lsp.number(), Some(3));
    assert_eq!(client.number(), Some(3));
    assert_eq!(lsp.spec(), &spec3);
    assert_eq!(client.spec(), &spec3);
}

/// Delivers every message both ways between two restored sides (no persistence kept).
fn exchange(lsp: &mut Channel, client: &mut Channel, now: Now, rng: &mut StdRng) {
    for _ in 0..6 {
        while let Some(a) = lsp.poll_action() {
            if let Action::Send(m) = a {
                client.handle_message(now, m, rng).unwrap();
            }
        }
        while let Some(a) = client.poll_action() {
            if let Action::Send(m) = a {
                lsp.handle_message(now, m, rng).unwrap();
            }
        }
    }
}

#[test]
fn a_lost_client_revocation_is_sent_again_when_the_lsp_restarts_the_round() {
    let mut p = Pair::open(14, 1_000_000, 300_000);
    let (_, hash) = preimage(14);
    let far = absolute::Height::from_consensus(500).unwrap();
    p.lsp
        .add_htlc(p.now, Amount::from_sat(20_000), hash, far)
        .unwrap();
    p.pump();
    p.lsp.start_round(&mut p.rng).unwrap();
    // Deliver everything except the client's final `ClientRevoked`: the client completes
    // round 1, the LSP does not.
    loop {
        let mut moved = false;
        while let Some(a) = p.lsp.poll_action() {
            match a {
                Action::Send(m) => {
                    p.client.handle_message(p.now, m, &mut p.rng).unwrap();
                    moved = true;
                }
                Action::Persist(c) => p.lsp_log.push(c),
                _ => {}
            }
        }
        while let Some(a) = p.client.poll_action() {
            match a {
                Action::Send(ChannelMsg::ClientRevoked { .. }) => {}
                Action::Send(m) => {
                    p.lsp.handle_message(p.now, m, &mut p.rng).unwrap();
                    moved = true;
                }
                Action::Persist(c) => p.client_log.push(c),
                _ => {}
            }
        }
        if !moved {
            break;
        }
    }
    assert_eq!(p.client.number(), Some(1));
    assert_eq!(p.lsp.number(), Some(0));
    // The LSP restarts; it restarts round 1; the client, already there, revokes again.
    let (mut lsp, mut client) = p.restored();
    assert_eq!(lsp.number(), Some(0));
    assert_eq!(client.number(), Some(1));
    let mut rng = StdRng::seed_from_u64(7);
    lsp.start_round(&mut rng).unwrap();
    exchange(&mut lsp, &mut client, p.now, &mut rng);
    assert_eq!(lsp.number(), Some(1));
    assert_eq!(lsp.spec(), client.spec());
    assert!(!lsp.in_round() && !lsp.needs_round());
}

#[test]
fn updates_lost_with_a_connection_are_sent_again_on_reconnection() {
    let mut p = Pair::open(15, 1_000_000, 300_000);
    let (_, hash) = preimage(15);
    let far = absolute::Height::from_consensus(500).unwrap();
    p.lsp
        .add_htlc(p.now, Amount::from_sat(20_000), hash, far)
        .unwrap();
    // The update's frame is lost.
    while let Some(a) = p.lsp.poll_action() {
        if let Action::Persist(c) = a {
            p.lsp_log.push(c);
        }
    }
    assert_eq!(p.client.updates_received(), 0);
    // Reconnection: the client says it holds none of the LSP's updates; the LSP resends.
    p.lsp.reset_round();
    p.client.reset_round();
    p.lsp.resend_updates(p.client.updates_received());
    p.client.resend_updates(p.lsp.updates_received());
    p.round();
    assert_eq!(p.client.spec().htlcs.len(), 1);
    // A second resend of what the peer already holds sends nothing.
    p.lsp.resend_updates(p.client.updates_received());
    assert!(p.lsp.poll_action().is_none());
}

#[test]
fn the_penalties_a_wallet_hands_its_tower_answer_each_revoked_lsp_commitment() {
    let mut p = Pair::open(12, 1_000_000, 300_000);
    let mut revoked = Vec::new();
    for n in 0..3u8 {
        revoked.push(p.lsp.latest_signed().unwrap().clone());
        let (_, hash) = preimage(20 + n);
        let far = absolute::Height::from_consensus(500).unwrap();
        p.lsp
            .add_htlc(p.now, Amount::from_sat(10_000), hash, far)
            .unwrap();
        p.round();
    }
    let dest = ScriptBuf::new_p2a();
    let (all, last) = crate::tower::penalties(&p.client, 0, &dest, 100);
    assert_eq!(all.len(), revoked.len());
    let (later, last_again) = crate::tower::penalties(&p.client, last.unwrap(), &dest, 100);
    assert_eq!(
        (later.len(), last_again),
        (1, last),
        "from the last number on"
    );
    let (first, first_last) = crate::tower::penalties(&p.client, 0, &dest, 1);
    assert_eq!((first.len(), first_last), (1, Some(0)), "at most the limit");
    for (penalty, tx) in all.iter().zip(&revoked) {
        assert_eq!(penalty.revoked, tx.compute_txid());
        assert!(
            penalty.rungs.len() >= 4,
            "rungs up to what the channel pays"
        );
        let mut fees = Vec::new();
        for rung in &penalty.rungs {
            let prevouts: Vec<TxOut> = rung
                .tx
                .input
                .iter()
                .map(|i| tx.output[i.previous_output.vout as usize].clone())
                .collect();
            consensus_ok(&rung.tx, &prevouts).unwrap();
            let paid: Amount = prevouts.iter().map(|o| o.value).sum::<Amount>()
                - rung.tx.output.iter().map(|o| o.value).sum::<Amount>();
            assert!(paid / rung.tx.weight() >= FeeRate::from_sat_per_vb(rung.sat_per_vb).unwrap());
            fees.push(paid);
        }
        assert!(fees.windows(2).all(|w| w[0] < w[1]), "{fees:?}");
    }
}

#[test]
fn the_peer_holds_an_htlc_only_once_a_round_carries_it() {
    let mut p = Pair::open(13, 1_000_000, 300_000);
    let (_, hash) = preimage(30);
    let far = absolute::Height::from_consensus(500).unwrap();
    // The LSP's own HTLC goes into a round; the client's, added once that round is under way,
    // waits for the next one.
    p.lsp
        .add_htlc(p.now, Amount::from_sat(10_000), hash, far)
        .unwrap();
    p.pump();
    p.lsp.start_round(&mut p.rng).unwrap();
    if let Some(Action::Send(m)) = next_send(&mut p.lsp) {
        p.client.handle_message(p.now, m, &mut p.rng).unwrap();
    }
    assert!(p.client.in_round());
    assert!(
        p.client.peer_may_hold(Side::Lsp, 0),
        "the LSP's HTLC is in the round"
    );
    let id = p.client.next_htlc_id();
    p.client
        .add_htlc(p.now, Amount::from_sat(20_000), hash, far)
        .unwrap();
    assert!(
        !p.client.peer_may_hold(Side::Client, id),
        "queued behind the round under way: the LSP cannot hold it"
    );
    p.pump();
    assert!(!p.client.in_round());
    p.round();
    assert!(p.client.peer_may_hold(Side::Client, id), "committed");
}
