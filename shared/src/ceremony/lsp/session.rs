//! One signing session on the LSP: the checked proposal ([`Core`]) and the data of each round.
//! Pure functions only; the state machine in the parent module sequences them.

use std::collections::{BTreeMap, BTreeSet};

use bitcoin::secp256k1::{schnorr, PublicKey, SecretKey};
use bitcoin::Transaction;

use super::super::jobs::{JobSet, SecretNonces};
use super::super::messages::{ExclusionReason, Propose, MAX_NODES_PER_MSG};
use super::super::proposal::{Member, ProposalPayload, Proposed, Refusal};
use crate::musig::{
    aggregate_nonces, AggNonce, MusigError, PartialSig, PubNonce, SignGuard, SigningSession,
};
use crate::types::{ClientId, NodeId, SessionId};
use crate::wire::{Envelope, WireMsg, MAX_FRAME_BYTES};

/// Who holds one key of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Lsp,
    Client(ClientId),
}

/// A checked proposal: every job's signers mapped to the LSP or a member.
#[derive(Debug)]
pub(super) struct Core {
    pub(super) session: SessionId,
    pub(super) payload: ProposalPayload,
    pub(super) funding_tx: Transaction,
    pub(super) jobs: JobSet,
    /// Per node, the role of each key, in the job's BIP-327 signer order.
    pub(super) roles: BTreeMap<NodeId, Vec<Role>>,
    /// Per member, the nodes it signs (what its messages must cover, exactly).
    pub(super) nodes_of: BTreeMap<ClientId, BTreeSet<NodeId>>,
    pub(super) lsp_nodes: BTreeSet<NodeId>,
    pub(super) lsp_pubnonces: BTreeMap<NodeId, PubNonce>,
    /// Unix time the current round ends.
    pub(super) deadline: u64,
}

impl Core {
    /// Checks a proposer's output against the members; an error here is the LSP's own bug.
    pub(super) fn new(
        proposed: Proposed,
        payload: ProposalPayload,
        lsp: &PublicKey,
        members: &BTreeMap<ClientId, Member>,
    ) -> Result<Core, Refusal> {
        let by_key: BTreeMap<[u8; 33], ClientId> = members
            .iter()
            .map(|(c, m)| (m.pubkey.serialize(), *c))
            .collect();
        let jobs = JobSet::new(proposed.jobs, proposed.keys)?;
        let mut roles = BTreeMap::new();
        let mut nodes_of: BTreeMap<ClientId, BTreeSet<NodeId>> =
            members.keys().map(|c| (*c, BTreeSet::new())).collect();
        let mut lsp_nodes = BTreeSet::new();
        for (node, p) in jobs.iter() {
            let mut node_roles = Vec::with_capacity(p.keys.signers().len());
            for key in p.keys.signers() {
                let role = if key == lsp {
                    lsp_nodes.insert(*node);
                    Role::Lsp
                } else if let Some(c) = by_key.get(&key.serialize()) {
                    nodes_of.entry(*c).or_default().insert(*node);
                    Role::Client(*c)
                } else {
                    return Err(Refusal::new(format!(
                        "node {node}: signer {key} is neither the LSP nor a member"
                    )));
                };
                node_roles.push(role);
            }
            roles.insert(*node, node_roles);
        }
        for (c, nodes) in &nodes_of {
            if nodes.is_empty() || nodes.len() > MAX_NODES_PER_MSG {
                return Err(Refusal::new(format!(
                    "member {c} signs {} nodes (must be 1 to {MAX_NODES_PER_MSG})",
                    nodes.len()
                )));
            }
        }
        let probe = Envelope::new(WireMsg::Propose(Propose {
            payload: payload.clone(),
            respond_by: 0,
        }));
        if probe.encode().len() > MAX_FRAME_BYTES {
            return Err(Refusal::new("the proposal does not fit in one wire frame"));
        }
        Ok(Core {
            session: payload.session,
            payload,
            funding_tx: proposed.funding_tx,
            jobs,
            roles,
            nodes_of,
            lsp_nodes,
            lsp_pubnonces: BTreeMap::new(),
            deadline: 0,
        })
    }
}

/// Collecting public nonces. Holds the LSP's own secret nonces.
#[derive(Debug)]
pub(super) struct NonceRound {
    pub(super) lsp_nonces: SecretNonces,
    pub(super) got: BTreeMap<ClientId, BTreeMap<NodeId, PubNonce>>,
}

/// Collecting partial signatures (each verified on arrival).
#[derive(Debug)]
pub(super) struct PartialRound {
    pub(super) pubnonces: BTreeMap<ClientId, BTreeMap<NodeId, PubNonce>>,
    pub(super) aggs: BTreeMap<NodeId, AggNonce>,
    /// Each node's signing session, made once from its aggregated nonce.
    pub(super) sessions: BTreeMap<NodeId, SigningSession>,
    pub(super) lsp_partials: BTreeMap<NodeId, PartialSig>,
    pub(super) got: BTreeMap<ClientId, BTreeMap<NodeId, PartialSig>>,
}

/// Waiting for every member to confirm it stored its final signatures.
#[derive(Debug)]
pub(super) struct AckRound {
    pub(super) signatures: BTreeMap<NodeId, schnorr::Signature>,
    pub(super) acked: BTreeSet<ClientId>,
}

impl NonceRound {
    /// Sums every node's nonces and signs the LSP's nodes (consuming its nonces, after its
    /// guard agreed). Returns the next round and the guard records to persist.
    pub(super) fn finish<G: SignGuard + ?Sized>(
        self,
        core: &Core,
        secret: &SecretKey,
        guard: &mut G,
    ) -> Result<(PartialRound, Vec<crate::musig::GuardRecord>), Refusal> {
        let mut aggs = BTreeMap::new();
        for (node, roles) in &core.roles {
            let mut nonces = Vec::with_capacity(roles.len());
            for role in roles {
                let nonce = match role {
                    Role::Lsp => core.lsp_pubnonces.get(node),
                    Role::Client(c) => self.got.get(c).and_then(|m| m.get(node)),
                };
                nonces.push(
                    nonce.ok_or_else(|| Refusal::new(format!("missing nonce for node {node}")))?,
                );
            }
            aggs.insert(*node, aggregate_nonces(nonces));
        }
        let signed = self.lsp_nonces.sign(secret, &core.jobs, &aggs, guard)?;
        let sessions = aggs
            .iter()
            .filter_map(|(node, agg)| {
                let p = core.jobs.get(node)?;
                Some((*node, SigningSession::new(&p.keys, agg, &p.job.sighash)))
            })
            .collect();
        let round = PartialRound {
            pubnonces: self.got,
            aggs,
            sessions,
            lsp_partials: signed.partials,
            got: BTreeMap::new(),
        };
        Ok((round, signed.records))
    }
}

impl PartialRound {
    /// Verifies one member's partial signatures; the first bad one names node and signer.
    pub(super) fn verify(
        &self,
        core: &Core,
        client: ClientId,
        pubkey: &PublicKey,
        partials: &BTreeMap<NodeId, PartialSig>,
    ) -> Result<(), ExclusionReason> {
        for (node, partial) in partials {
            let (Some(p), Some(session), Some(pubnonce)) = (
                core.jobs.get(node),
                self.sessions.get(node),
                self.pubnonces.get(&client).and_then(|m| m.get(node)),
            ) else {
                return Err(ExclusionReason::WrongNodes {
                    round: super::Round::PartialSigs,
                });
            };
            if let Err(e) = session.verify(&p.keys, partial, pubkey, pubnonce) {
                let index = match e {
                    MusigError::BadPartialSignature { index, .. } => index,
                    _ => p.keys.signer_index(pubkey).unwrap_or(usize::MAX),
                };
                return Err(ExclusionReason::BadPartialSignature {
                    node: *node,
                    signer_index: u32::try_from(index).unwrap_or(u32::MAX),
                    pubkey: *pubkey,
                });
            }
        }
        Ok(())
    }

    /// Aggregates every node (partials in signer order) into final signatures.
    pub(super) fn finish(self, core: &Core) -> Result<AckRound, Refusal> {
        let mut signatures = BTreeMap::new();
        for (node, roles) in &core.roles {
            let (Some(p), Some(session)) = (core.jobs.get(node), self.sessions.get(node)) else {
                return Err(Refusal::new(format!("node {node} lost its job or nonce")));
            };
            let mut partials = Vec::with_capacity(roles.len());
            for role in roles {
                let partial = match role {
                    Role::Lsp => self.lsp_partials.get(node),
                    Role::Client(c) => self.got.get(c).and_then(|m| m.get(node)),
                };
                partials.push(*partial.ok_or_else(|| {
                    Refusal::new(format!("missing partial signature for node {node}"))
                })?);
            }
            let sig = session
                .aggregate(&p.keys, &partials)
                .map_err(|e| Refusal::new(format!("node {node}: {e}")))?;
            signatures.insert(*node, sig);
        }
        Ok(AckRound {
            signatures,
            acked: BTreeSet::new(),
        })
    }
}
