//! Whole ceremonies through both state machines on the in-process network.

use std::collections::BTreeSet;

use super::assert_verifies;
use crate::ceremony::{ClientChange, ClientOutcome, ClientStatus, LspEvent, LspStatus, SignedPath};
use crate::testing::ceremony::{Net, Party};
use crate::types::{ClientId, NodeId, SessionId};

/// The stored path of a party (the last one it stored).
pub(super) fn path_of(p: &Party) -> Option<&SignedPath> {
    p.persisted.iter().rev().find_map(|c| match c {
        ClientChange::PathSigned(path) => Some(&**path),
        _ => None,
    })
}

/// Asserts a funded factory whose members are exactly `members` (connection indexes), every
/// signature verifies, every member holds its verified path, and persistence came first.
pub(super) fn assert_success(net: &Net, members: &[usize]) {
    let LspStatus::Funded { txid } = net.lsp.status() else {
        panic!(
            "LSP did not fund: {:?}, events {:?}",
            net.lsp.status(),
            net.lsp_events
        );
    };
    let factory = net.signed_factory().expect("LSP stored the signed factory");
    assert_eq!(factory.funding_txid, txid);
    assert_eq!(net.broadcasts.len(), 1);
    assert_eq!(net.broadcasts[0].compute_txid(), txid);
    let want: BTreeSet<ClientId> = members.iter().map(|i| ClientId(*i as u32)).collect();
    assert_eq!(
        factory.members.keys().copied().collect::<BTreeSet<_>>(),
        want
    );
    assert_eq!(factory.signatures.len(), factory.jobs.len());
    for job in &factory.jobs {
        assert_verifies(job, &factory.signatures[&job.node]);
    }

    let depth = (members.len().max(1) as f64).log2().ceil() as usize;
    for &i in members {
        let p = &net.parties[i];
        assert_eq!(
            p.ceremony.status(),
            ClientStatus::Ended(ClientOutcome::Open { txid }),
            "client {i}"
        );
        let path = path_of(p).expect("client stored its path");
        assert_eq!(path.session, factory.session);
        let mine: BTreeSet<NodeId> = factory
            .jobs
            .iter()
            .filter(|j| j.signers.contains(&p.ceremony.pubkey()))
            .map(|j| j.node)
            .collect();
        assert_eq!(
            path.signatures.keys().copied().collect::<BTreeSet<_>>(),
            mine
        );
        assert!(
            mine.len() <= 2 * depth + 1,
            "client {i} signs {} nodes",
            mine.len()
        );
        for job in &path.jobs {
            assert_eq!(path.signatures[&job.node], factory.signatures[&job.node]);
            assert_verifies(job, &path.signatures[&job.node]);
        }
        for (k, step) in p.trace.iter().enumerate() {
            if step == "send:partial_sigs" || step == "send:sigs_stored" {
                assert_eq!(
                    p.trace[k - 1],
                    "persist",
                    "client {i} sent {step} before persisting"
                );
            }
        }
    }
    let persist = net
        .lsp_trace
        .iter()
        .rposition(|s| s == "persist")
        .expect("LSP persisted");
    let broadcast = net
        .lsp_trace
        .iter()
        .position(|s| s == "broadcast")
        .expect("LSP broadcast");
    let first_notice = net
        .lsp_trace
        .iter()
        .position(|s| s.starts_with("send:funding_broadcast"))
        .expect("members told");
    assert!(persist < broadcast && broadcast < first_notice);
}

fn run_ceremony(n: usize, seed: u64) -> Net {
    let mut net = Net::new(n, seed);
    net.start().expect("start");
    net.run();
    net
}

#[test]
fn one_client() {
    let net = run_ceremony(1, 1);
    assert_success(&net, &[0]);
}

#[test]
fn two_clients() {
    let net = run_ceremony(2, 2);
    assert_success(&net, &[0, 1]);
}

#[test]
fn eight_clients() {
    let net = run_ceremony(8, 8);
    assert_success(&net, &[0, 1, 2, 3, 4, 5, 6, 7]);
    let sessions: Vec<SessionId> = net
        .lsp_events
        .iter()
        .filter_map(|e| match e {
            LspEvent::SessionStarted { session, .. } => Some(*session),
            _ => None,
        })
        .collect();
    assert_eq!(sessions, vec![SessionId(1)], "no restart without a fault");
}

#[test]
fn thirty_three_clients() {
    let net = run_ceremony(33, 33);
    let all: Vec<usize> = (0..33).collect();
    assert_success(&net, &all);
}
