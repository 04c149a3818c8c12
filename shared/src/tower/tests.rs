//! Appointments: what a tower takes and what it refuses.

use bitcoin::absolute::LockTime;
use bitcoin::secp256k1::rand::rngs::StdRng;
use bitcoin::secp256k1::rand::SeedableRng;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, TxIn, TxOut};

use super::*;
use crate::params::FactoryParams;
use crate::testing::{sample_proposal, sign_all_aggregated, TestKeys};
use crate::tree::FactoryTree;
use crate::types::{ClientId, FactoryId};

fn kit(client: u32) -> ExitKit {
    let keys = TestKeys::generate(4, 7);
    let mut tree =
        FactoryTree::build(&sample_proposal(FactoryParams::regtest(), &keys, 7)).unwrap();
    sign_all_aggregated(&mut tree, &keys).unwrap();
    ExitKit::new(tree.client_path(ClientId(client)).unwrap()).unwrap()
}

fn spending(txid: Txid, sat_per_vb: u64) -> Rung {
    Rung {
        sat_per_vb,
        tx: Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(txid, 0),
                ..Default::default()
            }],
            output: vec![TxOut {
                value: Amount::from_sat(1_000 - sat_per_vb),
                script_pubkey: ScriptBuf::new_p2a(),
            }],
        },
    }
}

fn appointment(penalties: Vec<Penalty>) -> Appointment {
    Appointment {
        moved: false,
        channel: ChannelId {
            factory: FactoryId(3),
            client: ClientId(2),
        },
        sequence: 1,
        kit: kit(2),
        penalties,
    }
}

fn identity(seed: u8) -> Keypair {
    Keypair::from_seckey_slice(crate::secp::ctx(), &[seed; 32]).unwrap()
}

#[test]
fn a_signed_appointment_opens_to_what_was_signed() {
    let revoked = Txid::from_byte_array([9; 32]);
    let penalty = Penalty {
        revoked,
        rungs: vec![spending(revoked, 1), spending(revoked, 3)],
    };
    let sent = appointment(vec![penalty]);
    let signed = SignedAppointment::sign(&identity(1), &sent, &mut StdRng::seed_from_u64(1));
    assert_eq!(signed.open().unwrap(), sent);
    // Through the wire and back: the body is kept byte for byte.
    let wire = serde_json::to_string(&signed).unwrap();
    let back: SignedAppointment = serde_json::from_str(&wire).unwrap();
    assert_eq!(back.open().unwrap(), sent);
}

#[test]
fn a_tower_refuses_what_another_key_signed_or_anyone_changed() {
    let sent = appointment(vec![]);
    let signed = SignedAppointment::sign(&identity(1), &sent, &mut StdRng::seed_from_u64(1));
    let mut other = signed.clone();
    other.identity = identity(2).x_only_public_key().0;
    assert_eq!(other.open(), Err(TowerError::BadSignature));
    let mut changed = signed.clone();
    changed.body = changed.body.replace("\"sequence\":1", "\"sequence\":2");
    assert_ne!(changed.body, signed.body);
    assert_eq!(changed.open(), Err(TowerError::BadSignature));
    let mut large = signed;
    large.body = " ".repeat(MAX_BODY_BYTES + 1);
    assert_eq!(large.open(), Err(TowerError::TooLarge(MAX_BODY_BYTES + 1)));
}

#[test]
fn a_tower_refuses_penalties_that_spend_anything_else_or_do_not_rise() {
    let revoked = Txid::from_byte_array([9; 32]);
    let elsewhere = Txid::from_byte_array([8; 32]);
    let cases = [
        vec![],
        vec![spending(revoked, 1), spending(elsewhere, 3)],
        vec![spending(revoked, 3), spending(revoked, 1)],
    ];
    for rungs in cases {
        let bad = appointment(vec![Penalty { revoked, rungs }]);
        let signed = SignedAppointment::sign(&identity(1), &bad, &mut StdRng::seed_from_u64(1));
        assert_eq!(signed.open(), Err(TowerError::BadPenalty(revoked)));
    }
}

#[test]
fn a_kit_of_another_client_or_with_a_bad_signature_is_refused() {
    let mut other = appointment(vec![]);
    other.kit = kit(1);
    assert!(matches!(
        other.check(),
        Err(TowerError::OtherChannel { .. })
    ));

    // A tampered signature is caught on opening, not trusted from the JSON.
    let mut json: serde_json::Value = serde_json::to_value(appointment(vec![])).unwrap();
    let sig = &mut json["kit"]["versions"][0]["nodes"][0]["signature"];
    let mut text = sig.as_str().unwrap().to_string();
    let flipped = if text.starts_with('0') { "1" } else { "0" };
    text.replace_range(0..1, flipped);
    *sig = serde_json::Value::String(text);
    let tampered: Appointment = serde_json::from_value(json).unwrap();
    assert!(matches!(tampered.check(), Err(TowerError::Kit(_))));
}

#[test]
fn the_rung_pays_today_then_climbs_one_per_block_waited() {
    let revoked = Txid::from_byte_array([9; 32]);
    let rungs: Vec<Rung> = PENALTY_RATES
        .iter()
        .map(|&r| spending(revoked, r))
        .collect();
    let penalty = Penalty { revoked, rungs };
    let rate = |i: usize| penalty.rungs[i].sat_per_vb;
    assert_eq!(rate(penalty.rung_index(None, 0)), 1);
    assert_eq!(rate(penalty.rung_index(FeeRate::from_sat_per_vb(2), 0)), 3);
    assert_eq!(rate(penalty.rung_index(FeeRate::from_sat_per_vb(2), 2)), 30);
    assert_eq!(
        rate(penalty.rung_index(FeeRate::from_sat_per_vb(1_000), 0)),
        300
    );
    assert_eq!(rate(penalty.rung_index(None, 50)), 300);
}
