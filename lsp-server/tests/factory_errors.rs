//! Protocol errors over real WebSockets: a wrong authentication signature, a ceremony message
//! before authenticating, an out-of-order ceremony message and a replayed one each get a clear
//! error, and the LSP keeps serving everyone else (the factory still completes).

mod common;

use std::time::Duration;

use bitcoin::secp256k1::{Keypair, Secp256k1};
use bitcoin::Amount;
use shared::auth::{sign_challenge, AuthProof, AuthRequest};
use shared::ceremony::{ClientOutcome, JoinRequest, Reason, Refuse, SigsStored};
use shared::types::{FactoryId, SessionId};
use shared::wire::{ErrorCode, WireMsg};

use common::raw::{connect, expect_error, recv, send};
use common::swarm::{self, ClientSpec, Fault};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_clear_errors_and_the_others_are_served() {
    let stack = common::start_with(common::fast_factory(4, 2), None).await;
    common::fund_lsp(&stack, Amount::from_sat(1_000_000)).await;
    let secp = Secp256k1::new();
    let mut rng = rand::thread_rng();

    // 1. A proof signed by another key than the one announced.
    let (mut impostor, lsp) = connect(&stack.ws_url()).await;
    let claimed = Keypair::new(&secp, &mut rng);
    let actual = Keypair::new(&secp, &mut rng);
    send(
        &mut impostor,
        WireMsg::AuthRequest(AuthRequest {
            pubkey: claimed.x_only_public_key().0,
        }),
    )
    .await;
    let WireMsg::AuthChallenge(c) = recv(&mut impostor).await else {
        panic!("expected a challenge")
    };
    let forged = sign_challenge(&secp, &actual, &c.challenge, &lsp, &mut rng);
    send(&mut impostor, WireMsg::AuthProof(forged)).await;
    let message = expect_error(recv(&mut impostor).await, ErrorCode::AuthFailed);
    assert!(message.contains("does not verify"), "{message}");
    // The challenge is spent: replaying a proof needs a new one.
    let proof = AuthProof {
        signature: sign_challenge(&secp, &claimed, &c.challenge, &lsp, &mut rng).signature,
    };
    send(&mut impostor, WireMsg::AuthProof(proof)).await;
    expect_error(recv(&mut impostor).await, ErrorCode::AuthFailed);
    // Unauthenticated, it cannot join.
    let join = JoinRequest {
        pubkey: actual.public_key(),
        channel: Amount::from_sat(20_000),
        liquidity: Amount::from_sat(20_000),
    };
    send(&mut impostor, WireMsg::JoinRequest(join)).await;
    let message = expect_error(recv(&mut impostor).await, ErrorCode::NotAuthenticated);
    assert!(message.contains("auth_request"), "{message}");

    // 2. An authenticated member sends a ceremony message out of order, then leaves.
    let (mut early, lsp) = connect(&stack.ws_url()).await;
    let identity = Keypair::new(&secp, &mut rng);
    send(
        &mut early,
        WireMsg::AuthRequest(AuthRequest {
            pubkey: identity.x_only_public_key().0,
        }),
    )
    .await;
    let WireMsg::AuthChallenge(c) = recv(&mut early).await else {
        panic!("expected a challenge")
    };
    let proof = sign_challenge(&secp, &identity, &c.challenge, &lsp, &mut rng);
    send(&mut early, WireMsg::AuthProof(proof)).await;
    let WireMsg::Authenticated(a) = recv(&mut early).await else {
        panic!("expected authenticated")
    };
    assert_eq!(a.resumed, None);
    let factory_key = Keypair::new(&secp, &mut rng);
    let join = JoinRequest {
        pubkey: factory_key.public_key(),
        channel: Amount::from_sat(20_000),
        liquidity: Amount::from_sat(20_000),
    };
    send(&mut early, WireMsg::JoinRequest(join.clone())).await;
    let WireMsg::JoinAccepted(accepted) = recv(&mut early).await else {
        panic!("expected join_accepted")
    };
    send(
        &mut early,
        WireMsg::SigsStored(SigsStored {
            factory: accepted.factory,
            session: SessionId(1),
        }),
    )
    .await;
    let message = expect_error(recv(&mut early).await, ErrorCode::StaleSession);
    assert!(message.contains("never started"), "{message}");
    // A replayed join while a member is refused too.
    send(&mut early, WireMsg::JoinRequest(join)).await;
    let WireMsg::JoinRejected(rejected) = recv(&mut early).await else {
        panic!("expected join_rejected")
    };
    assert!(rejected.reason.as_str().contains("already in factory"));
    // A message for another factory.
    send(
        &mut early,
        WireMsg::SigsStored(SigsStored {
            factory: FactoryId(99),
            session: SessionId(1),
        }),
    )
    .await;
    let message = expect_error(recv(&mut early).await, ErrorCode::Unexpected);
    assert!(message.contains("factory 99"), "{message}");
    send(
        &mut early,
        WireMsg::Refuse(Refuse {
            factory: accepted.factory,
            session: None,
            reason: Reason::new("changed my mind"),
        }),
    )
    .await;

    // 3. Four wallets, one of which sends its nonces twice: the duplicate is refused and the
    // factory still completes for all four.
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let mut specs = vec![ClientSpec::honest(); 4];
    specs[1] = ClientSpec::with_fault(Fault::DuplicateNonces);
    let mut clients = swarm::spawn(&config, &specs);
    assert!(
        clients
            .wait_for(Duration::from_secs(60), |log| swarm::broadcast_heard(
                log,
                0..4
            ))
            .await,
        "all four store their paths and hear of the funding"
    );
    stack.devnet.mine(1).await.expect("mine");
    let (runs, _) = clients.finish(Duration::from_secs(60)).await;
    for run in &runs {
        common::assert_verified_path(&stack.devnet, run).await;
    }
    let report = runs[1].result.as_ref().expect("session ok");
    assert!(
        report
            .lsp_errors
            .iter()
            .any(|e| e.contains("nonces is not expected")),
        "the replayed nonces got an error: {:?}",
        report.lsp_errors
    );
    assert!(matches!(report.outcome, ClientOutcome::Open { .. }));

    // The earlier connections are still served.
    send(&mut impostor, WireMsg::Ping { nonce: 5 }).await;
    assert_eq!(recv(&mut impostor).await, WireMsg::Pong { nonce: 5 });
    send(&mut early, WireMsg::Ping { nonce: 6 }).await;
    assert_eq!(recv(&mut early).await, WireMsg::Pong { nonce: 6 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lsp_without_funds_tells_wallets_plainly_and_keeps_its_address_to_itself() {
    let stack = common::start_with(common::fast_factory(2, 2), None).await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let clients = swarm::spawn(&config, &[ClientSpec::honest(); 2]);
    let (runs, _) = clients.finish(Duration::from_secs(60)).await;
    for run in runs {
        let report = run.result.expect("the session ends with an outcome");
        let text = format!("{:?}", report.outcome);
        assert!(
            text.contains("does not have enough on-chain funds"),
            "client {}: {text}",
            run.index
        );
        assert!(!text.contains("bcrt1"), "no LSP address: {text}");
    }
}
