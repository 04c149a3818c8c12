//! Faulty and malicious parties on the in-process network: each is identified, excluded with a
//! reason, and the others finish under a new session with fresh nonces.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use proptest::prelude::*;

use super::network::{assert_success, path_of};
use crate::ceremony::{
    AggNonces, CeremonyError, ClientChange, ClientOutcome, ClientStatus, ExclusionReason, LspEvent,
    LspStatus, NodeMap, PartialSigs, Propose, Refusal, Round,
};
use crate::musig::{aggregate_nonces, JobKeys, PartialSig};
use crate::testing::ceremony::{synthetic_rebuild, Net, SyntheticProposal, FACTORY};
use crate::types::{ClientId, SessionId};
use crate::wire::{ErrorCode, WireMsg};

fn exclusions(net: &Net) -> Vec<(ClientId, SessionId, ExclusionReason)> {
    net.lsp_events
        .iter()
        .filter_map(|e| match e {
            LspEvent::Excluded {
                client,
                session,
                reason,
            } => Some((*client, *session, reason.clone())),
            _ => None,
        })
        .collect()
}

fn drop_from(who: u32, pred: fn(&WireMsg) -> bool) -> Option<crate::testing::ceremony::Hook> {
    Some(Box::new(move |c: ClientId, m: &mut WireMsg| {
        !(c == ClientId(who) && pred(m))
    }))
}

fn flip_first_partial(m: &mut PartialSigs) {
    let mut map = m.partials.clone().into_map();
    if let Some(p) = map.values_mut().next() {
        let mut b = p.to_bytes();
        b[31] ^= 1;
        *p = PartialSig::from_bytes(&b).expect("still a scalar");
    }
    m.partials = NodeMap::new(map).expect("same size");
}

#[test]
fn clients_silent_in_the_nonce_round_are_excluded_and_the_rest_restart() {
    let mut net = Net::new(8, 11);
    net.to_lsp = drop_from(3, |m| matches!(m, WireMsg::Nonces(_)));
    net.offline.insert(5);
    net.start().unwrap();
    net.run();
    let timeout = ExclusionReason::Timeout {
        round: Round::Nonces,
    };
    assert_eq!(
        exclusions(&net),
        vec![
            (ClientId(3), SessionId(1), timeout.clone()),
            (ClientId(5), SessionId(1), timeout.clone())
        ]
    );
    assert_eq!(
        net.parties[3].ceremony.status(),
        ClientStatus::Ended(ClientOutcome::Excluded { reason: timeout })
    );
    assert_success(&net, &[0, 1, 2, 4, 6, 7]);
    assert_eq!(net.signed_factory().unwrap().session, SessionId(2));
}

#[test]
fn a_bad_partial_signature_is_attributed_to_its_sender_who_is_excluded() {
    let proposals: Rc<RefCell<Vec<Propose>>> = Rc::default();
    let seen = proposals.clone();
    let mut net = Net::new(8, 12);
    net.to_client = Some(Box::new(move |_, m| {
        if let WireMsg::Propose(p) = m {
            seen.borrow_mut().push(p.clone());
        }
        true
    }));
    net.to_lsp = Some(Box::new(|c, m| {
        if let WireMsg::PartialSigs(p) = m {
            if c == ClientId(5) && p.session == SessionId(1) {
                flip_first_partial(p);
            }
        }
        true
    }));
    net.start().unwrap();
    net.run();
    let ex = exclusions(&net);
    assert_eq!(ex.len(), 1);
    let (
        client,
        session,
        ExclusionReason::BadPartialSignature {
            node,
            signer_index,
            pubkey,
        },
    ) = ex[0].clone()
    else {
        panic!("wrong reason: {ex:?}");
    };
    assert_eq!((client, session), (ClientId(5), SessionId(1)));
    assert_eq!(pubkey, net.parties[5].ceremony.pubkey());
    let first = proposals
        .borrow()
        .iter()
        .find(|p| p.payload.session == SessionId(1))
        .cloned()
        .unwrap();
    let jobs = first
        .payload
        .body
        .decode::<SyntheticProposal>()
        .unwrap()
        .jobs;
    let job = jobs.iter().find(|j| j.node == node).unwrap();
    let keys = JobKeys::for_job(job).unwrap();
    assert_eq!(keys.signer_index(&pubkey), Some(signer_index as usize));
    assert!(matches!(
        net.parties[5].ceremony.status(),
        ClientStatus::Ended(ClientOutcome::Excluded {
            reason: ExclusionReason::BadPartialSignature { .. }
        })
    ));
    assert_success(&net, &[0, 1, 2, 3, 4, 6, 7]);
}

#[test]
fn stale_out_of_order_and_non_member_messages_are_refused_with_a_wire_error() {
    let captured: Rc<RefCell<Option<WireMsg>>> = Rc::default();
    let keep = captured.clone();
    let mut net = Net::new(4, 13);
    net.to_lsp = Some(Box::new(move |c, m| {
        if c == ClientId(0) && matches!(m, WireMsg::Nonces(_)) && keep.borrow().is_none() {
            *keep.borrow_mut() = Some(m.clone());
        }
        !(c == ClientId(3) && matches!(m, WireMsg::Nonces(_)))
    }));
    net.start().unwrap();
    net.settle();
    let old_nonces = captured
        .borrow()
        .clone()
        .expect("captured session-1 nonces");

    // Session 1, nonce round: a partial signature is out of order, a second copy is a duplicate.
    let early = PartialSigs {
        factory: FACTORY,
        session: SessionId(1),
        partials: NodeMap::new(BTreeMap::new()).unwrap(),
    };
    net.inject_to_lsp(0, WireMsg::PartialSigs(early));
    net.inject_to_lsp(0, old_nonces.clone());
    net.settle();
    assert!(
        matches!(
            net.lsp_errors[..],
            [
                (
                    ClientId(0),
                    CeremonyError::OutOfOrder {
                        message: "partial_sigs",
                        ..
                    }
                ),
                (
                    ClientId(0),
                    CeremonyError::OutOfOrder {
                        message: "nonces",
                        ..
                    }
                ),
            ]
        ),
        "{:?}",
        net.lsp_errors
    );
    assert!(net.parties[0].errors.iter().all(|e| matches!(
        e,
        CeremonyError::PeerError {
            code: ErrorCode::Unexpected,
            ..
        }
    )));
    assert_eq!(net.parties[0].errors.len(), 2);

    // Client 3 times out; session 2 runs to the funding broadcast.
    net.fire_next_timer();
    net.settle();
    assert!(matches!(
        net.lsp.status(),
        LspStatus::AwaitingConfirmation { .. }
    ));
    net.lsp_errors.clear();
    net.parties[0].errors.clear();

    // A session-1 message now is stale, both ways.
    net.inject_to_lsp(0, old_nonces.clone());
    let WireMsg::Nonces(n) = &old_nonces else {
        unreachable!()
    };
    let agg = aggregate_nonces(n.nonces.as_map().values());
    let stale = AggNonces {
        factory: FACTORY,
        session: SessionId(1),
        agg_nonces: NodeMap::new(
            n.nonces
                .as_map()
                .keys()
                .map(|k| (*k, agg.clone()))
                .collect(),
        )
        .unwrap(),
        respond_by: 0,
    };
    net.inject_to_client(1, WireMsg::AggNonces(stale));
    // The excluded client is no longer a member.
    net.inject_to_lsp(3, old_nonces.clone());
    net.settle();
    assert_eq!(
        net.lsp_errors[0],
        (
            ClientId(0),
            CeremonyError::StaleSession {
                got: SessionId(1),
                current: SessionId(2)
            }
        )
    );
    assert!(matches!(
        net.parties[0].errors[..],
        [CeremonyError::PeerError {
            code: ErrorCode::StaleSession,
            ..
        }]
    ));
    assert_eq!(
        net.parties[1].errors,
        vec![CeremonyError::StaleSession {
            got: SessionId(1),
            current: SessionId(2)
        }]
    );
    assert!(net.lsp_errors.iter().any(|(c, e)| *c == ClientId(1)
        && matches!(
            e,
            CeremonyError::PeerError {
                code: ErrorCode::StaleSession,
                ..
            }
        )));
    assert!(net.lsp_errors.contains(&(
        ClientId(3),
        CeremonyError::NotAMember {
            client: ClientId(3)
        }
    )));

    net.run();
    assert_success(&net, &[0, 1, 2]);
}

#[test]
fn a_client_whose_checks_fail_refuses_and_signs_nothing() {
    let mut net = Net::with_job_sources(6, 14, |i| {
        if i == 2 {
            Box::new(|_: &_, _: &_| Err(Refusal::new("timeout height too close")))
        } else {
            Box::new(synthetic_rebuild)
        }
    });
    net.start().unwrap();
    net.run();
    let ex = exclusions(&net);
    assert!(
        matches!(&ex[..], [(ClientId(2), SessionId(1), ExclusionReason::Refused { reason })] if reason.as_str() == "timeout height too close")
    );
    let p = &net.parties[2];
    assert!(matches!(
        p.ceremony.status(),
        ClientStatus::Ended(ClientOutcome::Refused { .. })
    ));
    assert!(!p
        .trace
        .iter()
        .any(|s| s == "send:nonces" || s == "send:partial_sigs"));
    assert!(p.persisted.is_empty());
    assert_success(&net, &[0, 1, 3, 4, 5]);
}

#[test]
fn a_client_refuses_a_final_signature_that_does_not_verify() {
    let mut net = Net::new(4, 15);
    net.to_client = Some(Box::new(|c, m| {
        if let WireMsg::FinalSigs(f) = m {
            if c == ClientId(1) && f.session == SessionId(1) {
                let mut map = f.signatures.clone().into_map();
                let sigs: Vec<_> = map.values().copied().collect();
                if let Some(first) = map.values_mut().next() {
                    *first = sigs[sigs.len() - 1];
                }
                f.signatures = NodeMap::new(map).unwrap();
            }
        }
        true
    }));
    net.start().unwrap();
    net.run();
    let p = &net.parties[1];
    let ClientStatus::Ended(ClientOutcome::Refused { reason }) = p.ceremony.status() else {
        panic!("{:?}", p.ceremony.status());
    };
    assert!(reason.as_str().contains("final signature"), "{reason}");
    assert!(
        path_of(p).is_none(),
        "a path that does not verify is never stored"
    );
    assert!(matches!(
        &exclusions(&net)[..],
        [(ClientId(1), SessionId(1), ExclusionReason::Refused { .. })]
    ));
    assert_success(&net, &[0, 2, 3]);
}

#[test]
fn when_too_few_remain_the_lsp_fails_and_a_silent_lsp_is_abandoned() {
    let mut net = Net::new(1, 16);
    // The LSP's messages after the proposal never arrive.
    net.to_client = Some(Box::new(|_, m| matches!(m, WireMsg::Propose(_))));
    net.start().unwrap();
    net.run();
    assert!(matches!(net.lsp.status(), LspStatus::Failed { .. }));
    assert!(net.broadcasts.is_empty());
    assert!(matches!(
        net.parties[0].ceremony.status(),
        ClientStatus::NoncesSent(SessionId(1))
    ));
    assert!(net.fire_next_timer());
    assert_eq!(
        net.parties[0].ceremony.status(),
        ClientStatus::Ended(ClientOutcome::Abandoned {
            waiting_for: "waiting for aggregated nonces"
        })
    );
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    DropNonces,
    DropPartials,
    DropAck,
    BadPartial,
    Offline,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Any one client failing in any round is excluded, and the others still get a factory
    /// whose every signature verifies.
    #[test]
    fn any_single_fault_is_survived(
        n in 2usize..7,
        who in 0usize..7,
        fault in prop_oneof![
            Just(Fault::DropNonces), Just(Fault::DropPartials), Just(Fault::DropAck),
            Just(Fault::BadPartial), Just(Fault::Offline)
        ],
        seed in any::<u64>(),
    ) {
        let who = who % n;
        let mut net = Net::new(n, seed);
        let bad = ClientId(who as u32);
        match fault {
            Fault::Offline => { net.offline.insert(who); }
            _ => net.to_lsp = Some(Box::new(move |c, m| {
                if c != bad { return true; }
                match (fault, m) {
                    (Fault::DropNonces, WireMsg::Nonces(_))
                    | (Fault::DropPartials, WireMsg::PartialSigs(_))
                    | (Fault::DropAck, WireMsg::SigsStored(_)) => false,
                    (Fault::BadPartial, WireMsg::PartialSigs(p)) => { flip_first_partial(p); true }
                    _ => true,
                }
            })),
        }
        net.start().unwrap();
        net.run();
        let ex = exclusions(&net);
        prop_assert_eq!(ex.len(), 1);
        prop_assert_eq!(ex[0].0, bad);
        let rest: Vec<usize> = (0..n).filter(|i| *i != who).collect();
        assert_success(&net, &rest);
        prop_assert!(net.parties[who].persisted.iter().all(|c| !matches!(c, ClientChange::PathSigned(p) if p.session == SessionId(2))));
    }
}
