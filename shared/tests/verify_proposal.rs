//! A client's checks against honest and adversarial proposals, paths and advances, through the
//! public API only: every refusal comes back as its own typed error.

use bitcoin::absolute::{Height, LockTime};
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::transaction::Version;
use bitcoin::{Amount, FeeRate, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, Txid};
use shared::exit::worst_case_cost;
use shared::params::{BlockDelta, FactoryParams, ParamsError};
use shared::path::ClientPath;
use shared::tree::scripts::{single_leaf_root, timeout_script};
use shared::tree::{ClientEntry, FactoryProposal, FactoryTree, NodeKind};
use shared::types::ClientId;
use shared::verify::{
    check_advance, check_funding_tx, check_path, check_proposal, ClientPolicy, Expectation,
    ProposalError,
};

fn key(i: u64) -> PublicKey {
    let sk = SecretKey::from_slice(&sha256::Hash::hash(&i.to_le_bytes()).to_byte_array()).unwrap();
    PublicKey::from_secret_key(&Secp256k1::signing_only(), &sk)
}

const ME: usize = 3;

fn proposal(n: usize) -> FactoryProposal {
    let params = FactoryParams::regtest();
    let clients: Vec<ClientEntry> = (0..n)
        .map(|i| ClientEntry {
            key: key(i as u64),
            channel: Amount::from_sat(50_000 + 1_000 * i as u64),
            lstock: Amount::from_sat(20_000),
        })
        .collect();
    let funding_amount = FactoryProposal::required_funding(&params, &clients).unwrap();
    FactoryProposal {
        params,
        lsp_key: key(1_000),
        clients,
        funding_outpoint: OutPoint::new(Txid::from_byte_array([9; 32]), 1),
        funding_amount,
        creation_height: Height::from_consensus(100).unwrap(),
        epoch: Default::default(),
    }
}

fn expectation(p: &FactoryProposal) -> Expectation {
    Expectation {
        my_key: key(ME as u64),
        lsp_key: p.lsp_key,
        channel: p.clients[ME].channel,
        lstock: p.clients[ME].lstock,
    }
}

fn policy() -> ClientPolicy {
    ClientPolicy::for_network(Network::Regtest)
}

fn now() -> Height {
    Height::from_consensus(100).unwrap()
}

fn check(p: &FactoryProposal) -> Result<ClientPath, ProposalError> {
    check_proposal(p, &expectation(&proposal(7)), &policy(), now())
}

#[test]
fn an_honest_proposal_yields_the_clients_path() {
    let p = proposal(7);
    let path = check(&p).unwrap();
    assert_eq!(path.client(), ClientId(ME as u32));
    let tree = FactoryTree::build(&p).unwrap();
    assert_eq!(Some(&path), tree.client_path(ClientId(ME as u32)).as_ref());
    assert_eq!(path.signing_jobs(), tree.jobs_for(&key(ME as u64)));
    check_path(&path, &policy()).unwrap();
}

#[test]
fn wrong_amounts_are_refused() {
    let mut p = proposal(7);
    p.clients[ME].channel = Amount::from_sat(40_000);
    p.funding_amount = FactoryProposal::required_funding(&p.params, &p.clients).unwrap();
    let e = check(&p).unwrap_err();
    assert!(matches!(e, ProposalError::WrongChannelAmount { .. }), "{e}");
    assert!(e.to_string().contains("asked for"));
    let mut p = proposal(7);
    p.clients[ME].lstock = Amount::from_sat(10_000);
    p.funding_amount = FactoryProposal::required_funding(&p.params, &p.clients).unwrap();
    assert!(matches!(
        check(&p),
        Err(ProposalError::WrongLStockAmount { .. })
    ));
}

#[test]
fn a_bad_funding_amount_is_refused() {
    let mut p = proposal(7);
    p.funding_amount -= Amount::from_sat(1);
    let e = check(&p).unwrap_err();
    assert!(
        matches!(e, ProposalError::FundingAmountMismatch { .. }),
        "{e}"
    );
}

#[test]
fn a_timeout_too_close_is_refused() {
    let p = proposal(7);
    // Joining late: the remaining time no longer covers active + dying + worst exit + margin.
    let params = &p.params;
    let worst = shared::exit::worst_case_cost(params, p.client_count())
        .unwrap()
        .blocks;
    let needs = params.active.to_blocks()
        + params.dying.to_blocks()
        + worst.to_blocks()
        + params.timeout_margin.to_blocks();
    let timeout = p.timeout().unwrap().to_consensus_u32();
    let late = Height::from_consensus(timeout - needs + 1).unwrap();
    let e = check_proposal(&p, &expectation(&p), &policy(), late).unwrap_err();
    assert!(matches!(e, ProposalError::TimeoutTooClose { .. }), "{e}");
    // A client that wants more slack than the LSP's margin refuses even on time.
    let slack = timeout - needs - now().to_consensus_u32();
    let strict = ClientPolicy {
        min_margin: BlockDelta::from_blocks(params.timeout_margin.to_blocks() + slack + 1),
        ..policy()
    };
    assert!(matches!(
        check_proposal(&p, &expectation(&p), &strict, now()),
        Err(ProposalError::TimeoutTooClose { .. })
    ));
}

#[test]
fn a_sweep_height_too_close_to_the_timeout_is_refused() {
    let p = proposal(7);
    let path = check(&p).unwrap();
    // Two heights: the distribution's lock T, and the sweep height of the timeout leaf, a whole
    // worst-case exit plus the margin after T.
    let timeout = p.timeout().unwrap();
    assert_eq!(path.timeout(), timeout);
    assert_eq!(path.distribution().tx.lock_time, LockTime::Blocks(timeout));
    let sweep = p.params.sweep_delta.after(timeout).unwrap();
    assert_eq!(path.sweep_height(), sweep);
    let worst = worst_case_cost(&p.params, 7).unwrap().blocks;
    assert!(BlockDelta::between(timeout, sweep).unwrap() >= p.params.sweep_needed(worst).unwrap());

    // Parameters whose sweep height leaves less than a worst-case exit plus the margin after
    // T: refused as invalid (the funding amount does not depend on it).
    let mut q = p.clone();
    q.params.sweep_delta = BlockDelta::from_blocks(p.params.sweep_delta.to_blocks() - 1);
    let e = check(&q).unwrap_err();
    assert!(
        matches!(
            e,
            ProposalError::InvalidParams(ParamsError::SweepDoesNotFit { .. })
        ),
        "{e}"
    );
    // A sweep at the distribution's own lock (the old single height) even more so.
    q.params.sweep_delta = BlockDelta::ZERO;
    assert!(matches!(
        check(&q),
        Err(ProposalError::InvalidParams(
            ParamsError::SweepDoesNotFit { .. }
        ))
    ));

    // A client that wants more slack than the sweep height leaves after T refuses, although
    // T itself still leaves it room after the dying period.
    let spare = BlockDelta::between(timeout, sweep).unwrap().to_blocks() - worst.to_blocks();
    let wary = ClientPolicy {
        min_margin: BlockDelta::from_blocks(spare + 1),
        ..policy()
    };
    let e = check_proposal(&p, &expectation(&p), &wary, now()).unwrap_err();
    assert_eq!(
        e,
        ProposalError::SweepTooClose {
            timeout,
            sweep,
            needed: BlockDelta::from_blocks(worst.to_blocks() + spare + 1)
                .after(timeout)
                .unwrap(),
        }
    );
    assert!(e.to_string().contains("sweep"), "{e}");
    // With exactly the slack it has, the same client accepts.
    let exact = ClientPolicy {
        min_margin: BlockDelta::from_blocks(spare),
        ..policy()
    };
    check_proposal(&p, &expectation(&p), &exact, now()).unwrap();
}

#[test]
fn fees_outside_the_clients_limits_are_refused() {
    let mut p = proposal(7);
    p.params.fee_rate = FeeRate::from_sat_per_vb_u32(80);
    p.funding_amount = FactoryProposal::required_funding(&p.params, &p.clients).unwrap();
    assert!(matches!(
        check(&p),
        Err(ProposalError::FeeRateTooHigh { got_sat_vb: 80, .. })
    ));
    let picky = ClientPolicy {
        min_fee_rate: FeeRate::from_sat_per_vb_u32(2),
        ..policy()
    };
    let p = proposal(7);
    assert!(matches!(
        check_proposal(&p, &expectation(&p), &picky, now()),
        Err(ProposalError::FeeRateTooLow { .. })
    ));
}

#[test]
fn other_mismatches_are_refused() {
    let p = proposal(7);
    let wrong_net = ClientPolicy::for_network(Network::Bitcoin);
    assert!(matches!(
        check_proposal(&p, &expectation(&p), &wrong_net, now()),
        Err(ProposalError::WrongNetwork { .. })
    ));
    let mut stranger = expectation(&p);
    stranger.my_key = key(77);
    assert!(matches!(
        check_proposal(&p, &stranger, &policy(), now()),
        Err(ProposalError::NotAMember)
    ));
    let mut q = p.clone();
    q.lsp_key = key(2_000);
    assert!(matches!(check(&q), Err(ProposalError::WrongLspKey { .. })));
    let mut q = p.clone();
    q.params.dw_arity = 1;
    assert!(matches!(check(&q), Err(ProposalError::InvalidParams(_))));
    let mut q = p;
    q.clients[0].key = q.clients[1].key;
    assert!(matches!(check(&q), Err(ProposalError::Tree(_))));
}

/// Edits a stored path's JSON, as corrupted storage or a malicious sender could.
fn tamper(path: &ClientPath, edit: impl Fn(&mut serde_json::Value)) -> ClientPath {
    let mut v = serde_json::to_value(path).unwrap();
    edit(&mut v);
    serde_json::from_value(v).unwrap()
}

#[test]
fn tampered_paths_are_refused() {
    let path = check(&proposal(7)).unwrap();
    let state = path
        .nodes()
        .iter()
        .position(|n| matches!(n.kind, NodeKind::State { .. }))
        .unwrap();
    let leaf = path.nodes().len() - 1;

    let bad = tamper(&path, |v| {
        v["nodes"][state]["tx"]["input"][0]["sequence"] = 0.into()
    });
    let e = check_path(&bad, &policy()).unwrap_err();
    assert!(
        matches!(e, ProposalError::WrongSequence { want, .. } if want != 0),
        "{e}"
    );

    // A path stores no distribution transaction (it is rebuilt on load, its lock time from
    // the stored timeout: tampered below); one stored whole, in the older form, carries it.
    let bad = tamper(&path, |v| {
        v["distribution"] = serde_json::to_value(path.distribution()).unwrap();
        v["distribution"]["tx"]["lock_time"] = 0.into();
    });
    assert!(matches!(
        check_path(&bad, &policy()),
        Err(ProposalError::WrongLockTime { .. })
    ));

    let bad = tamper(&path, |v| {
        let out = &mut v["nodes"][leaf]["tx"]["output"][0]["value"];
        *out = (out.as_u64().unwrap() - 1_000).into();
    });
    assert!(matches!(
        check_path(&bad, &policy()),
        Err(ProposalError::WrongLeaf(_))
    ));

    let bad = tamper(&path, |v| {
        let out = &mut v["nodes"][0]["tx"]["output"][0]["value"];
        *out = (out.as_u64().unwrap() + 1_000_000).into();
    });
    assert!(matches!(
        check_path(&bad, &policy()),
        Err(ProposalError::AmountsDoNotConserve { .. })
    ));

    let bad = tamper(&path, |v| v["nodes"][0]["tx"]["version"] = 3.into());
    assert!(matches!(
        check_path(&bad, &policy()),
        Err(ProposalError::WrongVersion { .. })
    ));

    // The leaf spends a state output, which must carry the factory's timeout leaf.
    let bad = tamper(&path, |v| {
        v["nodes"][leaf]["merkle_root"] = serde_json::Value::Null
    });
    let e = check_path(&bad, &policy()).unwrap_err();
    assert!(matches!(e, ProposalError::WrongTimeoutScript { .. }), "{e}");

    // A state output whose timeout leaf locks to the distribution's T instead of T_sweep.
    let p = proposal(7);
    let lsp = p.lsp_key.x_only_public_key().0;
    let at_timeout = single_leaf_root(&timeout_script(p.timeout().unwrap(), lsp));
    let bad = tamper(&path, |v| {
        v["nodes"][leaf]["merkle_root"] = at_timeout.to_string().into()
    });
    let e = check_path(&bad, &policy()).unwrap_err();
    assert!(matches!(e, ProposalError::WrongTimeoutScript { .. }), "{e}");

    // A stored path that claims another sweep height (or timeout) than its proposal.
    for field in ["sweep_height", "timeout"] {
        let bad = tamper(&path, |v| {
            let h = v[field].as_u64().unwrap();
            v[field] = (h - 1).into();
        });
        let e = check_path(&bad, &policy()).unwrap_err();
        assert!(
            matches!(e, ProposalError::PathMismatch { .. }),
            "{field}: {e}"
        );
    }

    // A path that claims another funding script is caught by the rebuild.
    let other =
        FactoryProposal::funding_output(&proposal(6).params, &key(500), &proposal(6).clients)
            .unwrap()
            .script_pubkey;
    let bad = tamper(&path, |v| {
        v["nodes"][0]["prevout"]["script_pubkey"] = other.to_hex_string().into();
        v["distribution"]["funding"]["script_pubkey"] = other.to_hex_string().into();
    });
    let e = check_path(&bad, &policy()).unwrap_err();
    assert!(matches!(e, ProposalError::PathMismatch { .. }), "{e}");
}

#[test]
fn advances_must_be_newer_and_keep_the_factory() {
    let old = check(&proposal(7)).unwrap();
    let new = old.advance_epoch().unwrap();
    check_advance(&old, &new).unwrap();
    assert!(matches!(
        check_advance(&new, &old),
        Err(ProposalError::EpochNotNewer { .. })
    ));

    let mut other = proposal(7);
    other.clients[0].lstock += Amount::from_sat(1);
    other.funding_amount =
        FactoryProposal::required_funding(&other.params, &other.clients).unwrap();
    other.epoch = new.epoch();
    let other = ClientPath::build(&other, ClientId(ME as u32)).unwrap();
    assert!(matches!(
        check_advance(&old, &other),
        Err(ProposalError::AdvanceChangesFactory)
    ));

    // A re-signed state whose delay is not shorter than the one it replaces.
    let idx = new
        .nodes()
        .iter()
        .rposition(|n| matches!(n.kind, NodeKind::State { .. }))
        .unwrap();
    let old_seq = old.nodes()[idx].tx.input[0].sequence.to_consensus_u32();
    let slow = tamper(&new, |v| {
        v["nodes"][idx]["tx"]["input"][0]["sequence"] = (old_seq + 1).into()
    });
    assert!(matches!(
        check_advance(&old, &slow),
        Err(ProposalError::StateNotNewer { .. })
    ));
}

#[test]
fn the_funding_transaction_must_create_the_funding_output() {
    let mut p = proposal(5);
    let funding_out = FactoryProposal::funding_output(&p.params, &p.lsp_key, &p.clients).unwrap();
    let funding_tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array([1; 32]), 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Default::default(),
        }],
        output: vec![funding_out],
    };
    p.funding_outpoint = OutPoint::new(funding_tx.compute_txid(), 0);
    let path = check_proposal(&p, &expectation(&p), &policy(), now()).unwrap();
    check_funding_tx(&path, &funding_tx).unwrap();
    let mut wrong = funding_tx.clone();
    wrong.output[0].value -= Amount::ONE_SAT;
    assert!(matches!(
        check_funding_tx(&path, &wrong),
        Err(ProposalError::FundingOutputMismatch)
    ));
}

/// A proposal whose windows are shorter than its network's preset is refused by name, even
/// when the parameters are otherwise consistent: a mainnet factory with a 1-block DW step, a
/// 1-block L-stock CSV and no timeout margin would let a stale state or a stale L-stock win
/// before anyone could react.
#[test]
fn windows_shorter_than_the_networks_are_refused() {
    let mainnet = ClientPolicy::for_network(Network::Bitcoin);
    let mut p = proposal(7);
    p.params = FactoryParams::mainnet();
    p.funding_amount = FactoryProposal::required_funding(&p.params, &p.clients).unwrap();
    let exp = expectation(&p);
    check_proposal(&p, &exp, &mainnet, now()).expect("the mainnet preset passes");
    for (what, shorten) in [
        (
            "DW step",
            (|q| q.step = BlockDelta::from_blocks(1)) as fn(&mut FactoryParams),
        ),
        ("L-stock CSV", |q| q.lstock_csv = BlockDelta::from_blocks(1)),
        ("timeout margin", |q| q.timeout_margin = BlockDelta::ZERO),
        ("dying period", |q| q.dying = BlockDelta::from_blocks(6)),
    ] {
        let mut bad = p.clone();
        shorten(&mut bad.params);
        match check_proposal(&bad, &exp, &mainnet, now()) {
            Err(ProposalError::WindowTooShort { what: w, got, min }) => {
                assert_eq!(w, what);
                assert!(got < min);
            }
            // A window so short that the parameters contradict themselves is refused too.
            Err(ProposalError::InvalidParams(_)) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
}

/// Longer windows are not always safer: HTLC expiries are sized for the preset's tree walk, so
/// a tree whose walk is slower would leave a payment unenforceable on chain.
#[test]
fn a_tree_slower_than_htlc_expiries_allow_is_refused() {
    let mainnet = ClientPolicy::for_network(Network::Bitcoin);
    let mut p = proposal(7);
    p.params = FactoryParams {
        step: BlockDelta::from_blocks(144),
        sweep_delta: BlockDelta::from_blocks(1735),
        ..FactoryParams::mainnet()
    };
    p.params.validate().expect("valid on its own");
    p.funding_amount = FactoryProposal::required_funding(&p.params, &p.clients).unwrap();
    match check_proposal(&p, &expectation(&p), &mainnet, now()) {
        Err(ProposalError::WalkTooLong { walk, max }) => {
            assert!(walk > max);
            assert_eq!(max, mainnet.max_walk);
        }
        other => panic!("{other:?}"),
    }
}
