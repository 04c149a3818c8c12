use std::collections::BTreeMap;

use bitcoin::{FeeRate, ScriptBuf};

use super::*;
use crate::params::FactoryParams;
use crate::pay::ChannelId;
use crate::testing::tree::{sample_proposal, TestKeys};
use crate::tree::FactoryProposal;
use crate::types::{ClientId, FactoryId};
use crate::wire::{Envelope, WireMsg};

fn factory(n: usize) -> (TestKeys, FactoryProposal) {
    let keys = TestKeys::generate(n, 7);
    let proposal = sample_proposal(FactoryParams::regtest(), &keys, 7);
    (keys, proposal)
}

fn released(keys: &TestKeys, n: usize) -> BTreeMap<ClientId, bitcoin::secp256k1::SecretKey> {
    (0..n)
        .map(|i| (ClientId(i as u32), keys.clients[i]))
        .collect()
}

#[test]
fn with_every_key_the_lsp_alone_closes_the_factory_by_key_path() {
    let (keys, proposal) = factory(5);
    let to = ScriptBuf::from_bytes([0x51, 0x20].into_iter().chain([3u8; 32]).collect());
    let rate = FeeRate::from_sat_per_vb(2).unwrap();
    let unsigned = build_close(&proposal, &to, rate).unwrap();
    let mut rng = rand::thread_rng();
    let tx = sign_close(
        &mut rng,
        &proposal,
        unsigned,
        &keys.lsp,
        &released(&keys, 5),
    )
    .unwrap();
    assert_eq!(tx.input.len(), 1);
    assert_eq!(tx.output.len(), 1);
    assert_eq!(tx.input[0].previous_output, proposal.funding_outpoint);
    let fee = proposal.funding_amount - tx.output[0].value;
    assert_eq!(fee, rate.fee_vb(tx.vsize() as u64).unwrap());
    let funding =
        FactoryProposal::funding_output(&proposal.params, &proposal.lsp_key, &proposal.clients)
            .unwrap();
    crate::testing::tree::consensus_verify_tx(&tx, &funding).expect("Bitcoin Core accepts it");
}

#[test]
fn a_missing_or_wrong_key_stops_the_close() {
    let (keys, proposal) = factory(3);
    let to = ScriptBuf::from_bytes([0x51, 0x20].into_iter().chain([9u8; 32]).collect());
    let unsigned = build_close(&proposal, &to, FeeRate::BROADCAST_MIN).unwrap();
    let mut rng = rand::thread_rng();
    let mut some = released(&keys, 3);
    some.remove(&ClientId(1));
    let err = sign_close(&mut rng, &proposal, unsigned.clone(), &keys.lsp, &some).unwrap_err();
    assert!(matches!(err, CloseError::MissingKey { client: 1 }), "{err}");
    some.insert(ClientId(1), keys.clients[2]);
    let err = sign_close(&mut rng, &proposal, unsigned.clone(), &keys.lsp, &some).unwrap_err();
    assert!(matches!(err, CloseError::WrongKey { client: 1 }), "{err}");
    let all = released(&keys, 3);
    let err = sign_close(&mut rng, &proposal, unsigned, &keys.clients[0], &all).unwrap_err();
    assert!(matches!(err, CloseError::WrongLspKey), "{err}");
}

#[test]
fn a_release_names_the_members_own_key_and_travels_as_hex() {
    let (keys, proposal) = factory(3);
    let channel = ChannelId {
        factory: FactoryId(4),
        client: ClientId(2),
    };
    let good = KeyRelease {
        channel,
        secret: keys.clients[2],
    };
    good.check(&proposal).unwrap();
    let wrong = KeyRelease {
        channel,
        secret: keys.clients[1],
    };
    assert!(matches!(
        wrong.check(&proposal),
        Err(ReleaseError::WrongKey { client: 2, .. })
    ));
    let absent = KeyRelease {
        channel: ChannelId {
            client: ClientId(9),
            ..channel
        },
        secret: keys.clients[2],
    };
    assert!(matches!(
        absent.check(&proposal),
        Err(ReleaseError::NoSuchClient { client: 9 })
    ));
    let frame = Envelope::new(WireMsg::KeyRelease(good.clone())).encode();
    assert!(frame.contains(&hex::encode(keys.clients[2].secret_bytes())));
    assert!(!format!("{good:?}").contains(&hex::encode(keys.clients[2].secret_bytes())));
    let back = Envelope::decode(&frame).unwrap();
    assert_eq!(back.msg, WireMsg::KeyRelease(good));
}

#[test]
fn a_life_runs_active_dying_expired_timed_out() {
    let (_, proposal) = factory(3);
    let life = Life::of(&proposal);
    let p = &proposal.params;
    let at = |h: u32| bitcoin::absolute::Height::from_consensus(h).unwrap();
    let start = proposal.creation_height.to_consensus_u32();
    assert_eq!(life.dying_at, at(start + p.active.to_blocks()));
    assert_eq!(
        life.dying_ends,
        at(start + p.active.to_blocks() + p.dying.to_blocks())
    );
    assert_eq!(life.timeout, at(start + p.timeout_delta.to_blocks()));
    assert!(life.dying_ends < life.timeout && life.timeout < life.sweep_at);
    assert_eq!(life.stage(at(start)), Stage::Active);
    assert_eq!(
        life.next(at(start)),
        ("its dying period starts", life.dying_at)
    );
    assert_eq!(life.stage(life.dying_at), Stage::Dying);
    assert_eq!(life.next(life.dying_at).1, life.dying_ends);
    assert_eq!(life.stage(life.dying_ends), Stage::Expired);
    assert_eq!(life.stage(life.timeout), Stage::TimedOut);
    assert_eq!(life.next(life.timeout).1, life.sweep_at);
}
