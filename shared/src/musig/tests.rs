//! Unit tests of the MuSig2 layer, checked against rust-bitcoin's own taproot and BIP-340 code.

use bitcoin::hashes::Hash;
use bitcoin::key::TapTweak;
use bitcoin::secp256k1::{Message, PublicKey, Secp256k1, SecretKey};
use bitcoin::{OutPoint, TapNodeHash, TapSighash, Txid};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::*;

fn keys(rng: &mut StdRng, n: usize) -> Vec<(SecretKey, PublicKey)> {
    let mut v: Vec<(SecretKey, PublicKey)> = (0..n)
        .map(|_| {
            let sk = SecretKey::new(rng);
            (sk, public_key(&sk))
        })
        .collect();
    v.sort_by_key(|(_, pk)| pk.serialize());
    v
}

fn sighash(rng: &mut StdRng) -> TapSighash {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    TapSighash::from_byte_array(b)
}

/// Runs a full session; `tamper` may corrupt one signer's partial. Returns the final signature
/// or the aggregation/verification error.
fn run(
    rng: &mut StdRng,
    signers: &[(SecretKey, PublicKey)],
    root: Option<TapNodeHash>,
    msg: &TapSighash,
    tamper: Option<usize>,
) -> Result<bitcoin::secp256k1::schnorr::Signature, MusigError> {
    let pks: Vec<PublicKey> = signers.iter().map(|(_, pk)| *pk).collect();
    let jk = JobKeys::new(&pks, root)?;
    let (secs, pubs): (Vec<SecNonce>, Vec<PubNonce>) = signers
        .iter()
        .map(|(sk, _)| generate_nonce(rng, sk, &jk, msg, b"test"))
        .unzip();
    let agg = aggregate_nonces(&pubs);
    let mut partials = Vec::new();
    for (i, ((sk, _), sec)) in signers.iter().zip(secs).enumerate() {
        let mut p = sign_partial(&jk, sk, sec, &agg, msg)?;
        if tamper == Some(i) {
            let mut b = p.to_bytes();
            b[31] ^= 1;
            p = PartialSig::from_bytes(&b)?;
        }
        partials.push(p);
    }
    for (i, p) in partials.iter().enumerate() {
        verify_partial(&jk, p, &agg, &pks[i], &pubs[i], msg)?;
    }
    aggregate(&jk, &agg, &partials, msg)
}

#[test]
fn output_key_matches_rust_bitcoin_taproot_tweak() {
    let secp = Secp256k1::verification_only();
    let mut rng = StdRng::seed_from_u64(1);
    let ks = keys(&mut rng, 3);
    let pks: Vec<PublicKey> = ks.iter().map(|k| k.1).collect();
    for root in [None, Some(TapNodeHash::from_byte_array([9u8; 32]))] {
        let jk = JobKeys::new(&pks, root).unwrap();
        let (tweaked, _) = jk.internal_key().tap_tweak(&secp, root);
        assert_eq!(tweaked.to_x_only_public_key(), jk.output_key());
    }
}

#[test]
fn refuses_unsorted_duplicate_and_empty_signers() {
    let mut rng = StdRng::seed_from_u64(2);
    let ks = keys(&mut rng, 3);
    let mut pks: Vec<PublicKey> = ks.iter().map(|k| k.1).collect();
    assert_eq!(JobKeys::new(&[], None).unwrap_err(), MusigError::NoSigners);
    pks.swap(0, 2);
    assert!(matches!(
        JobKeys::new(&pks, None),
        Err(MusigError::UnsortedSigners { .. })
    ));
    key_sort(&mut pks);
    assert!(JobKeys::new(&pks, None).is_ok());
    let dup = vec![pks[0], pks[0]];
    assert!(matches!(
        JobKeys::new(&dup, None),
        Err(MusigError::DuplicateSigner { .. })
    ));
}

#[test]
fn signs_and_verifies_with_rust_bitcoin() {
    let secp = Secp256k1::verification_only();
    let mut rng = StdRng::seed_from_u64(3);
    for n in [1, 2, 5] {
        let ks = keys(&mut rng, n);
        let msg = sighash(&mut rng);
        let root = (n % 2 == 0).then(|| TapNodeHash::from_byte_array([n as u8; 32]));
        let sig = run(&mut rng, &ks, root, &msg, None).unwrap();
        let pks: Vec<PublicKey> = ks.iter().map(|k| k.1).collect();
        let jk = JobKeys::new(&pks, root).unwrap();
        let m = Message::from_digest(msg.to_byte_array());
        secp.verify_schnorr(&sig, &m, &jk.output_key()).unwrap();
        assert!(verify_final(&jk, &sig, &sighash(&mut rng)).is_err());
    }
}

#[test]
fn bad_partial_names_its_signer() {
    let mut rng = StdRng::seed_from_u64(4);
    let ks = keys(&mut rng, 4);
    let msg = sighash(&mut rng);
    let err = run(&mut rng, &ks, None, &msg, Some(2)).unwrap_err();
    assert_eq!(
        err,
        MusigError::BadPartialSignature {
            index: 2,
            signer: ks[2].1
        }
    );
}

#[test]
fn nonce_is_bound_to_its_message_and_signer() {
    let mut rng = StdRng::seed_from_u64(5);
    let ks = keys(&mut rng, 2);
    let pks: Vec<PublicKey> = ks.iter().map(|k| k.1).collect();
    let jk = JobKeys::new(&pks, None).unwrap();
    let (m1, m2) = (sighash(&mut rng), sighash(&mut rng));
    let (s0, p0) = generate_nonce(&mut rng, &ks[0].0, &jk, &m1, b"");
    let (_s1, p1) = generate_nonce(&mut rng, &ks[1].0, &jk, &m1, b"");
    let agg = aggregate_nonces([&p0, &p1]);
    assert_eq!(
        sign_partial(&jk, &ks[0].0, s0, &agg, &m2).unwrap_err(),
        MusigError::NonceMismatch
    );
    let (s0, _) = generate_nonce(&mut rng, &ks[0].0, &jk, &m1, b"");
    assert_eq!(
        sign_partial(&jk, &ks[1].0, s0, &agg, &m1).unwrap_err(),
        MusigError::NonceMismatch
    );
    let stranger = SecretKey::new(&mut rng);
    let (s, _) = generate_nonce(&mut rng, &stranger, &jk, &m1, b"");
    assert!(matches!(
        sign_partial(&jk, &stranger, s, &agg, &m1),
        Err(MusigError::UnknownSigner { .. })
    ));
    assert!(
        !format!("{:?}", generate_nonce(&mut rng, &ks[0].0, &jk, &m1, b"").0).contains("bytes")
    );
}

#[test]
fn same_rng_state_still_gives_distinct_nonces_per_message() {
    let mut rng = StdRng::seed_from_u64(6);
    let ks = keys(&mut rng, 1);
    let jk = JobKeys::new(&[ks[0].1], None).unwrap();
    let (m1, m2) = (sighash(&mut rng), sighash(&mut rng));
    let (_, a) = generate_nonce(&mut StdRng::seed_from_u64(7), &ks[0].0, &jk, &m1, b"");
    let (_, b) = generate_nonce(&mut StdRng::seed_from_u64(7), &ks[0].0, &jk, &m2, b"");
    let (_, c) = generate_nonce(&mut StdRng::seed_from_u64(7), &ks[0].0, &jk, &m1, b"other");
    assert_ne!(a, b);
    assert_ne!(a, c);
}

#[test]
fn wire_encodings_round_trip_and_refuse_garbage() {
    let mut rng = StdRng::seed_from_u64(8);
    let ks = keys(&mut rng, 2);
    let pks: Vec<PublicKey> = ks.iter().map(|k| k.1).collect();
    let jk = JobKeys::new(&pks, None).unwrap();
    let m = sighash(&mut rng);
    let (s, p) = generate_nonce(&mut rng, &ks[0].0, &jk, &m, b"");
    let (_s2, p2) = generate_nonce(&mut rng, &ks[1].0, &jk, &m, b"");
    let agg = aggregate_nonces([&p, &p2]);
    let ps = sign_partial(&jk, &ks[0].0, s, &agg, &m).unwrap();
    let j = serde_json::to_string(&(&p, &agg, &ps)).unwrap();
    let back: (PubNonce, AggNonce, PartialSig) = serde_json::from_str(&j).unwrap();
    assert_eq!(back, (p, agg, ps));
    assert!(serde_json::from_str::<PubNonce>(&format!("\"{}\"", "00".repeat(66))).is_err());
    assert!(serde_json::from_str::<PubNonce>("\"02\"").is_err());
    assert!(serde_json::from_str::<PartialSig>(&format!("\"{}\"", "ff".repeat(32))).is_err());
}

/// A signer running the independent `musig2` crate and one running this module sign together:
/// same aggregate and output key, each side's partial signature accepted by the other's checks,
/// one valid BIP-340 signature. Wire encodings cross unchanged.
#[test]
fn signs_together_with_an_independent_implementation() {
    use musig2::secp::{MaybeScalar, Point, Scalar};
    use musig2::BinaryEncoding;

    let mut rng = StdRng::seed_from_u64(11);
    let ks = keys(&mut rng, 3);
    let pks: Vec<PublicKey> = ks.iter().map(|k| k.1).collect();
    let root = Some(TapNodeHash::from_byte_array([5u8; 32]));
    let jk = JobKeys::new(&pks, root).unwrap();
    let points = pks
        .iter()
        .map(|k| Point::from_slice(&k.serialize()).unwrap());
    let ctx = musig2::KeyAggContext::new(points)
        .unwrap()
        .with_taproot_tweak(&[5u8; 32])
        .unwrap();
    let theirs_internal: Point = ctx.aggregated_pubkey_untweaked();
    let theirs_output: Point = ctx.aggregated_pubkey();
    assert_eq!(
        jk.internal_key().serialize(),
        theirs_internal.serialize_xonly()
    );
    assert_eq!(jk.output_key().serialize(), theirs_output.serialize_xonly());

    // Signer 0 runs `musig2`; signers 1 and 2 run this module.
    let m = sighash(&mut rng);
    let scalar0 = Scalar::from_slice(&ks[0].0.secret_bytes()).unwrap();
    let sec0 =
        musig2::SecNonce::generate([9u8; 32], scalar0, theirs_output, m.to_byte_array(), b"");
    let pub0 = PubNonce::from_bytes(&sec0.public_nonce().to_bytes()).unwrap();
    let (sec1, pub1) = generate_nonce(&mut rng, &ks[1].0, &jk, &m, b"");
    let (sec2, pub2) = generate_nonce(&mut rng, &ks[2].0, &jk, &m, b"");
    let agg = aggregate_nonces([&pub0, &pub1, &pub2]);
    let their_agg = musig2::AggNonce::from_bytes(&agg.to_bytes()).unwrap();
    let theirs: MaybeScalar =
        musig2::sign_partial(&ctx, scalar0, sec0, &their_agg, m.to_byte_array()).unwrap();
    let p0 = PartialSig::from_bytes(&theirs.serialize()).unwrap();
    verify_partial(&jk, &p0, &agg, &pks[0], &pub0, &m).unwrap();
    let p1 = sign_partial(&jk, &ks[1].0, sec1, &agg, &m).unwrap();
    let p2 = sign_partial(&jk, &ks[2].0, sec2, &agg, &m).unwrap();
    let ours1 = MaybeScalar::from_slice(&p1.to_bytes()).unwrap();
    let their_pub1 = musig2::PubNonce::from_bytes(&pub1.to_bytes()).unwrap();
    let pk1 = Point::from_slice(&pks[1].serialize()).unwrap();
    musig2::verify_partial(&ctx, ours1, &their_agg, pk1, &their_pub1, m.to_byte_array()).unwrap();
    let sig = aggregate(&jk, &agg, &[p0, p1, p2], &m).unwrap();
    let secp = Secp256k1::verification_only();
    let msg = Message::from_digest(m.to_byte_array());
    secp.verify_schnorr(&sig, &msg, &jk.output_key()).unwrap();
}

fn rec(n: u8, s: u8) -> GuardRecord {
    GuardRecord {
        prevout: OutPoint {
            txid: Txid::from_byte_array([n; 32]),
            vout: 0,
        },
        sighash: TapSighash::from_byte_array([s; 32]),
    }
}

#[test]
fn guard_refuses_a_second_message_for_one_prevout() {
    let mut g = MemorySignGuard::new();
    let a = rec(1, 1);
    g.check_and_record(a.prevout, a.sighash).unwrap();
    g.check_and_record(a.prevout, a.sighash).unwrap();
    let b = rec(1, 2);
    assert!(matches!(
        g.check_and_record(b.prevout, b.sighash),
        Err(GuardError::Conflict { recorded, requested, .. }) if recorded == a.sighash && requested == b.sighash
    ));
    assert_eq!(g.len(), 1);
    let restored = MemorySignGuard::from_records(g.records()).unwrap();
    assert_eq!(restored, g);
    assert!(MemorySignGuard::from_records([a, b]).is_err());
}

#[test]
fn guard_batches_are_all_or_nothing() {
    let mut g = MemorySignGuard::new();
    g.check_and_record(rec(9, 9).prevout, rec(9, 9).sighash)
        .unwrap();
    assert!(check_and_record_all(&mut g, &[rec(1, 1), rec(9, 8)]).is_err());
    assert!(check_and_record_all(&mut g, &[rec(2, 1), rec(2, 2)]).is_err());
    assert_eq!(g.len(), 1);
    let stored = check_and_record_all(&mut g, &[rec(1, 1), rec(2, 2), rec(9, 9)]).unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(g.len(), 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn any_signer_count_and_tweak_verifies(seed in any::<u64>(), n in 1usize..7, root in any::<Option<[u8; 32]>>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let ks = keys(&mut rng, n);
        let msg = sighash(&mut rng);
        let root = root.map(TapNodeHash::from_byte_array);
        let sig = run(&mut rng, &ks, root, &msg, None).unwrap();
        let pks: Vec<PublicKey> = ks.iter().map(|k| k.1).collect();
        let jk = JobKeys::new(&pks, root).unwrap();
        let secp = Secp256k1::verification_only();
        prop_assert!(secp.verify_schnorr(&sig, &Message::from_digest(msg.to_byte_array()), &jk.output_key()).is_ok());
    }
}
