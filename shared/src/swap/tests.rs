use bitcoin::absolute::Height;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Amount, FeeRate, Network, OutPoint, ScriptBuf, Txid};

use super::tx::{build_claim, build_refund, claim_vsize, preimage_in};
use super::{SwapOutTerms, SwapPolicy, SwapScript};

fn keys() -> (SecretKey, SecretKey) {
    (
        SecretKey::from_slice(&[3; 32]).unwrap(),
        SecretKey::from_slice(&[4; 32]).unwrap(),
    )
}

fn script(preimage: [u8; 32]) -> SwapScript {
    let secp = Secp256k1::new();
    let (claim, refund) = keys();
    SwapScript {
        hash: sha256::Hash::hash(&preimage),
        claim_key: claim.x_only_public_key(&secp).0,
        refund_key: refund.x_only_public_key(&secp).0,
        refund_height: Height::from_consensus(500).unwrap(),
    }
}

#[test]
fn the_claim_reveals_the_preimage_and_the_refund_does_not() {
    let preimage = [7; 32];
    let s = script(preimage);
    let (claim_key, refund_key) = keys();
    let outpoint = OutPoint::new(Txid::all_zeros(), 1);
    let dest = ScriptBuf::new_p2tr(&Secp256k1::new(), s.claim_key, None);
    let rate = FeeRate::from_sat_per_vb_u32(2);
    let claim = build_claim(
        &s,
        outpoint,
        Amount::from_sat(50_000),
        claim_key,
        preimage,
        dest.clone(),
        rate,
    )
    .unwrap();
    assert_eq!(preimage_in(&s, &claim), Some(preimage));
    assert_eq!(claim.vsize() as u64, claim_vsize(&dest));
    assert_eq!(
        claim.output[0].value,
        Amount::from_sat(50_000) - rate.fee_vb(claim.vsize() as u64).unwrap()
    );
    let refund = build_refund(
        &s,
        outpoint,
        Amount::from_sat(50_000),
        refund_key,
        dest,
        rate,
    )
    .unwrap();
    assert_eq!(preimage_in(&s, &refund), None);
    assert_eq!(
        refund.lock_time,
        bitcoin::absolute::LockTime::Blocks(s.refund_height)
    );
    // Another swap's claim does not reveal this one's preimage.
    assert_eq!(preimage_in(&script([8; 32]), &claim), None);
}

#[test]
fn each_field_changes_the_output() {
    let s = script([7; 32]);
    let later = SwapScript {
        refund_height: Height::from_consensus(501).unwrap(),
        ..s
    };
    let swapped = SwapScript {
        claim_key: s.refund_key,
        refund_key: s.claim_key,
        ..s
    };
    assert_ne!(s.script_pubkey(), later.script_pubkey());
    assert_ne!(s.script_pubkey(), swapped.script_pubkey());
    assert_ne!(s.script_pubkey(), script([8; 32]).script_pubkey());
}

#[test]
fn a_claim_that_cannot_pay_its_fee_is_refused() {
    let preimage = [7; 32];
    let s = script(preimage);
    let (claim_key, _) = keys();
    let dest = ScriptBuf::new_p2tr(&Secp256k1::new(), s.claim_key, None);
    let err = build_claim(
        &s,
        OutPoint::null(),
        Amount::from_sat(1_000),
        claim_key,
        preimage,
        dest,
        FeeRate::from_sat_per_vb_u32(100),
    );
    assert!(err.is_err());
}

#[test]
fn the_refund_leaves_the_claim_its_margin_and_the_lsp_its_payee_window() {
    for network in [Network::Regtest, Network::Signet, Network::Bitcoin] {
        let p = SwapPolicy::for_network(network);
        let tip = 1_000;
        let expiry = p.htlc_expiry(tip);
        let refund = p.refund_height(expiry);
        // The LSP learns the preimage at the refund at the latest: a payee window remains.
        assert_eq!(expiry - refund, p.channel.payee_window());
        // Funded at once and confirmed, the wallet still has room to claim.
        let confirmed = tip + p.confirmations;
        let r = Height::from_consensus(refund).unwrap();
        assert!(p.may_claim(confirmed, r), "{network}");
        assert!(!p.may_claim(refund - p.claim_margin, r));
        assert!(p.may_claim(refund - p.claim_margin - 1, r));
        // The swap's HTLC lives no longer than a payment's.
        assert!(expiry <= p.channel.payer_expiry(tip), "{network}");
    }
}

#[test]
fn the_fee_and_the_bounds() {
    let t = SwapOutTerms {
        fee_base: Amount::from_sat(500),
        fee_ppm: 2_000,
        min: Amount::from_sat(10_000),
        max: Amount::from_sat(1_000_000),
    };
    assert_eq!(t.fee(Amount::from_sat(100_000)), Amount::from_sat(700));
    assert!(t
        .refusal(Amount::from_sat(9_999))
        .unwrap()
        .contains("at least 10000"));
    assert!(t
        .refusal(Amount::from_sat(1_000_001))
        .unwrap()
        .contains("at most"));
    assert_eq!(t.refusal(Amount::from_sat(10_000)), None);
}
