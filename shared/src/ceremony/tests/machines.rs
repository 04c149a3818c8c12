//! Single state machines driven by hand: join rules, the client's refusals, its double-sign
//! guard, and the impossibility of getting a second signature out of one nonce.

use std::collections::BTreeMap;

use bitcoin::absolute::Height;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::SecretKey;
use bitcoin::{Amount, TapSighash};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::ceremony::{
    Action, AggNonces, CeremonyError, ClientAction, ClientCeremony, ClientChange, ClientConfig,
    ClientOutcome, ClientStatus, JoinAccepted, JoinError, JoinPrice, JoinRequest, LspCeremony,
    LspConfig, LspEvent, NodeMap, Nonces, ProposalBody, ProposalPayload, Propose, Quote,
    RoundTimeouts,
};
use crate::musig::{aggregate_nonces, public_key, GuardRecord, MemorySignGuard};
use crate::testing::ceremony::{
    msg_type, synthetic_jobs, synthetic_rebuild, test_terms, JobFn, SyntheticProposal,
    SyntheticProposer, FACTORY, START_TIME,
};
use crate::types::{ClientId, Now, SessionId, SigningJob};
use crate::wire::WireMsg;

fn now() -> Now {
    Now {
        height: Height::from_consensus(100).unwrap(),
        unix_time: START_TIME,
    }
}

fn drain(c: &mut ClientCeremony<JobFn, MemorySignGuard>) -> Vec<ClientAction> {
    std::iter::from_fn(|| c.poll_action()).collect()
}

fn sent(actions: &[ClientAction]) -> Vec<WireMsg> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(_, m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

const QUOTE: Quote = Quote {
    channel: Amount::from_sat(100_000),
    liquidity: Amount::from_sat(50_000),
    fee: Amount::from_sat(1_500),
};

/// A client that joined and received a proposal for session 1; returns it, its jobs and the
/// nonces it sent.
fn proposed(
    guard: MemorySignGuard,
) -> (
    ClientCeremony<JobFn, MemorySignGuard>,
    Vec<SigningJob>,
    Nonces,
) {
    let mut rng = StdRng::seed_from_u64(42);
    let sk = SecretKey::new(&mut rng);
    let lsp = public_key(&SecretKey::new(&mut rng));
    let other = public_key(&SecretKey::new(&mut rng));
    let jobs = synthetic_jobs(&mut rng, lsp, &[public_key(&sk), other]);
    let config = ClientConfig {
        secret_key: sk,
        channel: QUOTE.channel,
        liquidity: QUOTE.liquidity,
        max_fee: Amount::from_sat(2_000),
        grace_secs: 10,
    };
    let mut c = ClientCeremony::new(config, Box::new(synthetic_rebuild) as JobFn, guard, now());
    assert_eq!(
        sent(&drain(&mut c))
            .iter()
            .map(msg_type)
            .collect::<Vec<_>>(),
        ["join_request"]
    );
    let accepted = JoinAccepted {
        factory: FACTORY,
        client: ClientId(0),
        lsp_key: lsp,
        quote: QUOTE,
        start_by: START_TIME + 5,
    };
    c.handle_message(now(), WireMsg::JoinAccepted(accepted), &mut rng)
        .unwrap();
    let body = ProposalBody::encode(&SyntheticProposal { jobs: jobs.clone() }).unwrap();
    let payload = ProposalPayload {
        factory: FACTORY,
        session: SessionId(1),
        body,
    };
    c.handle_message(
        now(),
        WireMsg::Propose(Propose {
            payload,
            respond_by: START_TIME + 30,
        }),
        &mut rng,
    )
    .unwrap();
    let msgs = sent(&drain(&mut c));
    let [WireMsg::Nonces(nonces)] = &msgs[..] else {
        panic!("{msgs:?}")
    };
    let mine: Vec<SigningJob> = jobs
        .into_iter()
        .filter(|j| j.signers.contains(&c.pubkey()))
        .collect();
    assert_eq!(nonces.nonces.len(), mine.len());
    (c, mine, nonces.clone())
}

/// Aggregated nonces built from the client's own public nonces (enough to make it sign).
fn agg_for(n: &Nonces, session: SessionId) -> WireMsg {
    let map = n
        .nonces
        .as_map()
        .iter()
        .map(|(k, v)| (*k, aggregate_nonces([v])))
        .collect();
    WireMsg::AggNonces(AggNonces {
        factory: FACTORY,
        session,
        agg_nonces: NodeMap::new(map).unwrap(),
        respond_by: START_TIME + 60,
    })
}

#[test]
fn the_guard_stops_a_second_sighash_for_a_signed_prevout() {
    let mut rng = StdRng::seed_from_u64(1);
    let (_, jobs, _) = proposed(MemorySignGuard::new());
    let earlier = GuardRecord {
        prevout: jobs[1].prevout,
        sighash: TapSighash::from_byte_array([7; 32]),
    };
    let (mut c, _, nonces) = proposed(MemorySignGuard::from_records([earlier]).unwrap());
    c.handle_message(now(), agg_for(&nonces, SessionId(1)), &mut rng)
        .unwrap();
    let actions = drain(&mut c);
    assert_eq!(
        sent(&actions).iter().map(msg_type).collect::<Vec<_>>(),
        ["refuse"]
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::Persist(_))));
    let ClientStatus::Ended(ClientOutcome::Refused { reason }) = c.status() else {
        panic!()
    };
    assert!(reason.as_str().contains("different message"), "{reason}");
    assert_eq!(c.guard().len(), 1, "a refused batch records nothing");
}

#[test]
fn the_same_sighash_again_is_allowed_and_records_precede_the_signatures() {
    let mut rng = StdRng::seed_from_u64(2);
    let (_, jobs, _) = proposed(MemorySignGuard::new());
    let same = GuardRecord {
        prevout: jobs[0].prevout,
        sighash: jobs[0].sighash,
    };
    let (mut c, jobs, nonces) = proposed(MemorySignGuard::from_records([same]).unwrap());
    c.handle_message(now(), agg_for(&nonces, SessionId(1)), &mut rng)
        .unwrap();
    let actions = drain(&mut c);
    let [Action::Persist(ClientChange::SignRecords(records)), Action::Send(_, WireMsg::PartialSigs(p))] =
        &actions[..]
    else {
        panic!("{actions:?}");
    };
    assert_eq!(records.len(), jobs.len());
    assert_eq!(p.partials.len(), jobs.len());
    assert_eq!(c.guard().len(), jobs.len());
}

#[test]
fn one_nonce_never_signs_twice() {
    let mut rng = StdRng::seed_from_u64(3);
    let (mut c, _, nonces) = proposed(MemorySignGuard::new());
    c.handle_message(now(), agg_for(&nonces, SessionId(1)), &mut rng)
        .unwrap();
    assert_eq!(
        sent(&drain(&mut c))
            .iter()
            .map(msg_type)
            .collect::<Vec<_>>(),
        ["partial_sigs"]
    );
    // A coordinator replaying the round with other aggregated nonces gets nothing.
    let WireMsg::AggNonces(mut again) = agg_for(&nonces, SessionId(1)) else {
        unreachable!()
    };
    let other: BTreeMap<_, _> = again
        .agg_nonces
        .as_map()
        .keys()
        .map(|k| {
            (
                *k,
                aggregate_nonces([nonces.nonces.as_map().values().next().unwrap()]),
            )
        })
        .collect();
    again.agg_nonces = NodeMap::new(other).unwrap();
    let err = c
        .handle_message(now(), WireMsg::AggNonces(again), &mut rng)
        .unwrap_err();
    assert!(matches!(
        err,
        CeremonyError::OutOfOrder {
            message: "agg_nonces",
            ..
        }
    ));
    assert_eq!(
        sent(&drain(&mut c))
            .iter()
            .map(msg_type)
            .collect::<Vec<_>>(),
        ["error"]
    );
    assert!(matches!(
        c.status(),
        ClientStatus::PartialsSent(SessionId(1))
    ));
}

#[test]
fn aggregated_nonces_for_other_nodes_are_refused() {
    let mut rng = StdRng::seed_from_u64(4);
    let (mut c, _, nonces) = proposed(MemorySignGuard::new());
    let WireMsg::AggNonces(mut bad) = agg_for(&nonces, SessionId(1)) else {
        unreachable!()
    };
    let mut map = bad.agg_nonces.into_map();
    map.pop_first();
    bad.agg_nonces = NodeMap::new(map).unwrap();
    c.handle_message(now(), WireMsg::AggNonces(bad), &mut rng)
        .unwrap();
    assert_eq!(
        sent(&drain(&mut c))
            .iter()
            .map(msg_type)
            .collect::<Vec<_>>(),
        ["refuse"]
    );
    assert!(matches!(
        c.status(),
        ClientStatus::Ended(ClientOutcome::Refused { .. })
    ));
}

#[test]
fn proposals_for_other_factories_or_old_sessions_are_refused() {
    let mut rng = StdRng::seed_from_u64(5);
    let (mut c, jobs, _) = proposed(MemorySignGuard::new());
    let body = ProposalBody::encode(&SyntheticProposal { jobs }).unwrap();
    let mut payload = ProposalPayload {
        factory: FACTORY,
        session: SessionId(1),
        body,
    };
    let err = c.handle_message(
        now(),
        WireMsg::Propose(Propose {
            payload: payload.clone(),
            respond_by: 0,
        }),
        &mut rng,
    );
    assert_eq!(
        err,
        Err(CeremonyError::StaleSession {
            got: SessionId(1),
            current: SessionId(1)
        })
    );
    payload.factory = crate::types::FactoryId(99);
    payload.session = SessionId(2);
    let err = c.handle_message(
        now(),
        WireMsg::Propose(Propose {
            payload,
            respond_by: 0,
        }),
        &mut rng,
    );
    assert!(matches!(err, Err(CeremonyError::WrongFactory { .. })));
    assert!(matches!(c.status(), ClientStatus::NoncesSent(SessionId(1))));
}

#[test]
fn a_client_that_sees_no_progress_gives_up() {
    let (mut c, _, _) = proposed(MemorySignGuard::new());
    let deadline = c.poll_timeout().unwrap();
    assert_eq!(
        deadline,
        crate::ceremony::Deadline::UnixTime(START_TIME + 40)
    );
    c.handle_timeout(Now {
        unix_time: START_TIME + 39,
        ..now()
    });
    assert!(matches!(c.status(), ClientStatus::NoncesSent(_)));
    c.handle_timeout(Now {
        unix_time: START_TIME + 40,
        ..now()
    });
    assert!(matches!(
        c.status(),
        ClientStatus::Ended(ClientOutcome::Abandoned { .. })
    ));
    assert_eq!(
        sent(&drain(&mut c))
            .iter()
            .map(msg_type)
            .collect::<Vec<_>>(),
        ["refuse"]
    );
}

fn lsp(max_clients: usize) -> LspCeremony<SyntheticProposer, MemorySignGuard> {
    let sk = SecretKey::from_slice(&[3; 32]).unwrap();
    let config = LspConfig {
        factory: FACTORY,
        secret_key: sk,
        terms: test_terms(&public_key(&sk)),
        min_clients: 1,
        max_clients,
        gather_until: START_TIME + 60,
        start_height: None,
        first_session: SessionId(1),
        timeouts: RoundTimeouts::default(),
    };
    LspCeremony::new(config, SyntheticProposer::new(1), MemorySignGuard::new())
}

fn request(seed: u8, liquidity: u64) -> JoinRequest {
    JoinRequest {
        pubkey: public_key(&SecretKey::from_slice(&[seed; 32]).unwrap()),
        channel: Amount::from_sat(100_000),
        liquidity: Amount::from_sat(liquidity),
    }
}

#[test]
fn quotes_follow_the_terms() {
    let terms = test_terms(&public_key(&SecretKey::from_slice(&[3; 32]).unwrap()));
    // join fee 1000 + ceil(50_000 × 10_000 / 10⁶) = 1000 + 500.
    assert_eq!(
        Quote::for_request(&terms, &request(1, 50_000)).unwrap(),
        QUOTE
    );
    let q = Quote::for_request(&terms, &request(1, 10_001)).unwrap();
    assert_eq!(
        q.fee,
        Amount::from_sat(1_101),
        "the liquidity price rounds up"
    );
    assert!(matches!(
        Quote::for_request(&terms, &request(1, 1)),
        Err(JoinError::OutOfRange {
            what: "liquidity",
            ..
        })
    ));
}

#[test]
fn a_quote_splits_into_the_join_fee_and_the_liquidity_part() {
    let mut terms = test_terms(&public_key(&SecretKey::from_slice(&[3; 32]).unwrap()));
    let price = JoinPrice::under(&terms.fees, Amount::from_sat(10_001)).unwrap();
    assert_eq!(price.join_fee(), Amount::from_sat(1_000));
    assert_eq!(price.liquidity_fee(), Amount::from_sat(101));
    assert_eq!(
        price.total(),
        Quote::for_request(&terms, &request(1, 10_001)).unwrap().fee
    );
    terms.fees.join_fee = Amount::MAX;
    assert_eq!(
        JoinPrice::under(&terms.fees, Amount::from_sat(10_001)),
        Err(JoinError::FeeOverflow)
    );
}

#[test]
fn joins_are_checked() {
    let mut rng = StdRng::seed_from_u64(6);
    let mut l = lsp(2);
    assert_eq!(l.handle_join(now(), request(1, 50_000)), Ok(ClientId(0)));
    assert_eq!(
        l.handle_join(now(), request(1, 50_000)),
        Err(JoinError::DuplicateKey)
    );
    assert!(matches!(
        l.handle_join(now(), request(2, 5)),
        Err(JoinError::OutOfRange { .. })
    ));
    assert_eq!(l.handle_join(now(), request(2, 50_000)), Ok(ClientId(1)));
    assert_eq!(
        l.handle_join(now(), request(4, 50_000)),
        Err(JoinError::Full { max: 2 })
    );
    let events: Vec<LspEvent> = std::iter::from_fn(|| l.poll_action())
        .filter_map(|a| match a {
            Action::Emit(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(events.last(), Some(&LspEvent::GatheringFull));
    l.start(now(), &mut rng).unwrap();
    assert_eq!(
        l.handle_join(now(), request(5, 50_000)),
        Err(JoinError::Closed)
    );
    assert!(matches!(
        JoinError::Closed.reply(),
        WireMsg::JoinRejected(_)
    ));
}

#[test]
fn gathering_without_enough_clients_fails_at_the_deadline() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut l = lsp(4);
    assert!(matches!(
        l.start(now(), &mut rng),
        Err(CeremonyError::NotEnoughClients { have: 0, need: 1 })
    ));
    l.handle_timeout(
        Now {
            unix_time: START_TIME + 60,
            ..now()
        },
        &mut rng,
    );
    assert!(matches!(
        l.status(),
        crate::ceremony::LspStatus::Failed { .. }
    ));
}

/// A ladder rung of two to four members starting at `height`, announced for `gather_until`.
fn rung(height: Height, gather_until: u64) -> LspCeremony<SyntheticProposer, MemorySignGuard> {
    let sk = SecretKey::from_slice(&[3; 32]).unwrap();
    LspCeremony::new(
        LspConfig {
            factory: FACTORY,
            secret_key: sk,
            terms: test_terms(&public_key(&sk)),
            min_clients: 2,
            max_clients: 4,
            gather_until,
            start_height: Some(height),
            first_session: SessionId(1),
            timeouts: RoundTimeouts::default(),
        },
        SyntheticProposer::new(1),
        MemorySignGuard::new(),
    )
}

#[test]
fn a_rung_called_off_says_at_which_block() {
    let mut rng = StdRng::seed_from_u64(7);
    let at = Height::from_consensus(110).unwrap();
    let mut l = rung(at, START_TIME);
    // Its estimated time passed, its block not: still gathering.
    l.handle_timeout(now(), &mut rng);
    assert!(matches!(
        l.status(),
        crate::ceremony::LspStatus::Gathering { .. }
    ));
    l.handle_timeout(
        Now {
            height: at,
            ..now()
        },
        &mut rng,
    );
    let crate::ceremony::LspStatus::Failed { reason } = l.status() else {
        panic!("called off")
    };
    assert_eq!(
        reason.to_string(),
        "only 0 of the 2 members needed joined by block 110"
    );
}

#[test]
fn a_client_refusing_its_quote_leaves_before_the_start() {
    let mut rng = StdRng::seed_from_u64(8);
    let sk = SecretKey::from_slice(&[9; 32]).unwrap();
    let config = ClientConfig {
        secret_key: sk,
        channel: QUOTE.channel,
        liquidity: QUOTE.liquidity,
        max_fee: Amount::from_sat(1_000),
        grace_secs: 10,
    };
    let mut c = ClientCeremony::new(
        config,
        Box::new(synthetic_rebuild) as JobFn,
        MemorySignGuard::new(),
        now(),
    );
    let mut l = lsp(4);
    let WireMsg::JoinRequest(req) = sent(&drain(&mut c)).remove(0) else {
        panic!()
    };
    let id = l.handle_join(now(), req).unwrap();
    let accepted: Vec<WireMsg> = std::iter::from_fn(|| l.poll_action())
        .filter_map(|a| match a {
            Action::Send(_, m) => Some(m),
            _ => None,
        })
        .collect();
    c.handle_message(now(), accepted[0].clone(), &mut rng)
        .unwrap();
    let refusal = sent(&drain(&mut c));
    assert_eq!(refusal.iter().map(msg_type).collect::<Vec<_>>(), ["refuse"]);
    l.handle_message(now(), id, refusal[0].clone(), &mut rng)
        .unwrap();
    assert!(l.members().is_empty());
    assert!(std::iter::from_fn(|| l.poll_action())
        .any(|a| a == Action::Emit(LspEvent::MemberLeft { client: id })));
}

/// A client (secret key `[seed; 32]`) asking for `QUOTE`, and its join request.
fn joining(seed: u8) -> (ClientCeremony<JobFn, MemorySignGuard>, JoinRequest) {
    let mut c = ClientCeremony::new(
        ClientConfig {
            secret_key: SecretKey::from_slice(&[seed; 32]).unwrap(),
            channel: QUOTE.channel,
            liquidity: QUOTE.liquidity,
            max_fee: Amount::from_sat(10_000),
            grace_secs: 10,
        },
        Box::new(synthetic_rebuild) as JobFn,
        MemorySignGuard::new(),
        now(),
    );
    let WireMsg::JoinRequest(req) = sent(&drain(&mut c)).remove(0) else {
        panic!("a join request first")
    };
    (c, req)
}

#[test]
fn a_rung_that_did_not_fill_keeps_gathering_and_its_members_wait_for_it() {
    let mut rng = StdRng::seed_from_u64(9);
    let at = |h: u32| Height::from_consensus(h).unwrap();
    let mut l = rung(at(110), START_TIME + 60);
    assert_eq!(
        l.poll_timeout(),
        Some(crate::ceremony::Deadline::Height(at(110)))
    );
    let (mut c, req) = joining(9);
    l.handle_join(now(), req).unwrap();
    let from_lsp = |l: &mut LspCeremony<SyntheticProposer, MemorySignGuard>| -> Vec<WireMsg> {
        std::iter::from_fn(|| l.poll_action())
            .filter_map(|a| match a {
                Action::Send(_, m) => Some(m),
                _ => None,
            })
            .collect()
    };
    let accepted = from_lsp(&mut l).remove(0);
    c.handle_message(now(), accepted.clone(), &mut rng).unwrap();
    assert_eq!(
        c.poll_timeout(),
        Some(crate::ceremony::Deadline::UnixTime(START_TIME + 70))
    );

    // The rung's block with one member of the two needed: the LSP keeps gathering for the
    // next rung and tells the member, whose wait grows to it.
    l.postpone(at(115), START_TIME + 500).unwrap();
    assert_eq!(
        l.poll_timeout(),
        Some(crate::ceremony::Deadline::Height(at(115)))
    );
    let again = from_lsp(&mut l);
    assert_eq!(
        again.iter().map(msg_type).collect::<Vec<_>>(),
        ["join_accepted"]
    );
    c.handle_message(now(), again[0].clone(), &mut rng).unwrap();
    assert_eq!(
        c.poll_timeout(),
        Some(crate::ceremony::Deadline::UnixTime(START_TIME + 510))
    );
    assert!(matches!(c.status(), ClientStatus::Joined));

    // Another quote is not a postponement: refused, the wait unchanged.
    let WireMsg::JoinAccepted(mut other) = again[0].clone() else {
        panic!()
    };
    other.quote.fee = Amount::from_sat(1);
    other.start_by = START_TIME + 9_000;
    assert!(c
        .handle_message(now(), WireMsg::JoinAccepted(other), &mut rng)
        .is_err());
    assert_eq!(
        c.poll_timeout(),
        Some(crate::ceremony::Deadline::UnixTime(START_TIME + 510))
    );

    // Once signing started there is nothing to postpone.
    let (_, second) = joining(10);
    l.handle_join(now(), second).unwrap();
    l.start(now(), &mut rng).unwrap();
    assert!(l.postpone(at(120), START_TIME + 900).is_err());
}
