//! Every ceremony message survives the wire; decoding enforces the per-message limits.

use std::collections::BTreeMap;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{schnorr, SecretKey};
use bitcoin::{Amount, TapSighash, Txid};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::ceremony::{
    Aborted, AggNonces, Excluded, ExclusionReason, FinalSigs, FundingBroadcast, JoinAccepted,
    JoinRejected, JoinRequest, NodeMap, Nonces, PartialSigs, ProposalBody, ProposalPayload,
    Propose, Quote, Reason, Refuse, Round, SigsStored, MAX_NODES_PER_MSG, MAX_REASON_LEN,
};
use crate::musig::{aggregate_nonces, generate_nonce, public_key, sign_partial, JobKeys};
use crate::types::{ClientId, FactoryId, NodeId, SessionId};
use crate::wire::{DecodeError, Envelope, WireMsg};

const F: FactoryId = FactoryId(3);
const S: SessionId = SessionId(9);

fn samples() -> Vec<WireMsg> {
    let mut rng = StdRng::seed_from_u64(1);
    let sk = SecretKey::new(&mut rng);
    let pk = public_key(&sk);
    let keys = JobKeys::new(&[pk], None).unwrap();
    let msg = TapSighash::from_byte_array([5; 32]);
    let (sec, pubnonce) = generate_nonce(&mut rng, &sk, &keys, &msg, b"");
    let agg = aggregate_nonces([&pubnonce]);
    let partial = sign_partial(&keys, &sk, sec, &agg, &msg).unwrap();
    let sig = schnorr::Signature::from_slice(&[1; 64]).unwrap();
    let one = |n: u32| NodeId(n);
    let quote = Quote {
        channel: Amount::from_sat(1),
        liquidity: Amount::from_sat(2),
        fee: Amount::from_sat(3),
    };
    let payload = ProposalPayload {
        factory: F,
        session: S,
        body: ProposalBody::encode(&serde_json::json!({"arity": 2, "clients": [1, 2]})).unwrap(),
    };
    vec![
        WireMsg::JoinRequest(JoinRequest {
            pubkey: pk,
            channel: Amount::from_sat(10),
            liquidity: Amount::from_sat(20),
        }),
        WireMsg::JoinAccepted(JoinAccepted {
            factory: F,
            client: ClientId(4),
            lsp_key: pk,
            quote,
            start_by: 77,
        }),
        WireMsg::JoinRejected(JoinRejected {
            reason: Reason::new("full"),
        }),
        WireMsg::Propose(Propose {
            payload,
            respond_by: 5,
        }),
        WireMsg::Nonces(Nonces {
            factory: F,
            session: S,
            nonces: NodeMap::new(BTreeMap::from([
                (one(0), pubnonce.clone()),
                (one(7), pubnonce),
            ]))
            .unwrap(),
        }),
        WireMsg::AggNonces(AggNonces {
            factory: F,
            session: S,
            agg_nonces: NodeMap::new(BTreeMap::from([(one(3), agg)])).unwrap(),
            respond_by: 6,
        }),
        WireMsg::PartialSigs(PartialSigs {
            factory: F,
            session: S,
            partials: NodeMap::new(BTreeMap::from([(one(3), partial)])).unwrap(),
        }),
        WireMsg::FinalSigs(FinalSigs {
            factory: F,
            session: S,
            signatures: NodeMap::new(BTreeMap::from([(one(3), sig)])).unwrap(),
            respond_by: 7,
        }),
        WireMsg::SigsStored(SigsStored {
            factory: F,
            session: S,
        }),
        WireMsg::Refuse(Refuse {
            factory: F,
            session: None,
            reason: Reason::new("fee too high"),
        }),
        WireMsg::Excluded(Excluded {
            factory: F,
            session: S,
            reason: ExclusionReason::Timeout {
                round: Round::Nonces,
            },
        }),
        WireMsg::Excluded(Excluded {
            factory: F,
            session: S,
            reason: ExclusionReason::BadPartialSignature {
                node: one(2),
                signer_index: 1,
                pubkey: pk,
            },
        }),
        WireMsg::Aborted(Aborted {
            factory: F,
            session: Some(S),
            reason: Reason::new("no funds"),
        }),
        WireMsg::FundingBroadcast(FundingBroadcast {
            factory: F,
            session: S,
            txid: Txid::from_byte_array([2; 32]),
        }),
    ]
}

#[test]
fn every_ceremony_message_round_trips() {
    for msg in samples() {
        let env = Envelope::new(msg);
        let text = env.encode();
        assert_eq!(Envelope::decode(&text).unwrap(), env, "{text}");
    }
}

#[test]
fn node_lists_are_pairs_in_node_order() {
    let text = Envelope::new(samples().remove(4)).encode();
    assert!(text.contains(r#""nonces":[[0,""#), "{text}");
    let swapped = text.replacen("[[0,", "[[8,", 1);
    assert!(
        matches!(Envelope::decode(&swapped), Err(DecodeError::Malformed(e)) if e.contains("increasing"))
    );
}

#[test]
fn oversized_node_lists_and_reasons_are_refused_at_decode() {
    let sig = hex::encode([1u8; 64]);
    let entries: Vec<String> = (0..=MAX_NODES_PER_MSG)
        .map(|i| format!("[{i},\"{sig}\"]"))
        .collect();
    let frame = format!(
        r#"{{"v":1,"msg":{{"type":"final_sigs","factory":1,"session":1,"respond_by":0,"signatures":[{}]}}}}"#,
        entries.join(",")
    );
    assert!(
        matches!(Envelope::decode(&frame), Err(DecodeError::Malformed(e)) if e.contains("limit"))
    );
    assert!(NodeMap::new(
        (0..=MAX_NODES_PER_MSG as u32)
            .map(|i| (NodeId(i), ()))
            .collect()
    )
    .is_err());

    let long = "x".repeat(MAX_REASON_LEN + 1);
    let frame = format!(r#"{{"v":1,"msg":{{"type":"join_rejected","reason":"{long}"}}}}"#);
    assert!(matches!(
        Envelope::decode(&frame),
        Err(DecodeError::Malformed(_))
    ));
    assert_eq!(Reason::new(long).as_str().len(), MAX_REASON_LEN);
    assert_eq!(
        Reason::new("é".repeat(MAX_REASON_LEN)).as_str().len(),
        MAX_REASON_LEN
    );
}
