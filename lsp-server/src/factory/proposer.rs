//! The LSP's [`Proposer`]: builds a factory's tree for the current members and funds it from
//! the LSP's on-chain wallet.
//!
//! Guarantees: the proposal uses the network's [`FactoryParams`] (the ones the terms
//! advertise), clients in `ClientId` order, each with exactly its quoted channel and liquidity;
//! the funding transaction is signed but never broadcast here (the ceremony hands it out only
//! once every member stored its path); and every session of one factory is funded from the same
//! wallet coins (the first session chooses them, later ones rebuild on them), so at most one
//! session's funding transaction can ever confirm.

use std::sync::{Arc, Mutex, PoisonError};

use bitcoin::{FeeRate, OutPoint, Transaction};
use shared::ceremony::{ProposalBody, ProposalRequest, Proposed, Proposer, Refusal};
use shared::params::{Epoch, FactoryParams};
use shared::tree::{ClientEntry, FactoryProposal, FactoryTree};

use crate::wallet::{LspWallet, WalletError};

/// What the coordinator and the proposer share: the fee rate to fund at (set before the first
/// session) and what the last session was built with.
#[derive(Debug, Default)]
pub struct Funding {
    /// Fee rate of the funding transaction.
    pub fee_rate: Option<FeeRate>,
    /// The last funding transaction built (its inputs fund every later session).
    pub previous: Option<Transaction>,
    /// The last session's proposal and funding transaction.
    pub last: Option<(FactoryProposal, Transaction)>,
}

/// Shared handle on a factory's [`Funding`].
pub type FundingHandle = Arc<Mutex<Funding>>;

/// Builds one factory's proposals.
pub struct FactoryProposer {
    params: FactoryParams,
    wallet: Arc<LspWallet>,
    funding: FundingHandle,
}

impl FactoryProposer {
    /// A proposer for one factory with the network's parameters.
    pub fn new(params: FactoryParams, wallet: Arc<LspWallet>) -> (FactoryProposer, FundingHandle) {
        let funding = FundingHandle::default();
        let proposer = FactoryProposer {
            params,
            wallet,
            funding: funding.clone(),
        };
        (proposer, funding)
    }
}

fn refuse(what: &str) -> impl Fn(String) -> Refusal + '_ {
    move |e| Refusal::new(format!("{what}: {e}"))
}

impl Proposer for FactoryProposer {
    fn propose(&mut self, request: &ProposalRequest<'_>) -> Result<Proposed, Refusal> {
        let clients: Vec<ClientEntry> = request
            .members
            .values()
            .map(|m| ClientEntry {
                key: m.pubkey,
                channel: m.quote.channel,
                lstock: m.quote.liquidity,
            })
            .collect();
        let output = FactoryProposal::funding_output(&self.params, &request.lsp_pubkey, &clients)
            .map_err(|e| refuse("the tree cannot be built")(e.to_string()))?;
        let mut funding = self.funding.lock().unwrap_or_else(PoisonError::into_inner);
        let fee_rate = funding.fee_rate.unwrap_or(FeeRate::BROADCAST_MIN);
        let outputs = std::slice::from_ref(&output);
        let funded = match &funding.previous {
            None => self.wallet.fund(outputs, fee_rate),
            Some(previous) => self.wallet.fund_replacing(previous, outputs, fee_rate),
        };
        let funding_tx = funded.map_err(|e| {
            // The operator's log gets the whole story (with the address to top up); wallets only
            // need to know the LSP cannot pay for this factory now.
            tracing::error!(factory = %request.factory, error = %e, "cannot fund the factory");
            match e {
                WalletError::InsufficientFunds { .. } => Refusal::new(
                    "the LSP does not have enough on-chain funds for this factory right now",
                ),
                _ => Refusal::new("the LSP could not build the funding transaction"),
            }
        })?;
        funding.previous = Some(funding_tx.clone());
        let txid = funding_tx.compute_txid();
        let vout = funding_tx
            .output
            .iter()
            .position(|o| *o == output)
            .ok_or_else(|| Refusal::new("the funding transaction lacks the factory output"))?;
        let proposal = FactoryProposal {
            params: self.params.clone(),
            lsp_key: request.lsp_pubkey,
            clients,
            funding_outpoint: OutPoint::new(txid, vout as u32),
            funding_amount: output.value,
            creation_height: request.now.height,
            epoch: Epoch(0),
        };
        let (tree, keys) = FactoryTree::build_with_keys(&proposal)
            .map_err(|e| refuse("the tree cannot be built")(e.to_string()))?;
        let body = ProposalBody::encode(&proposal)?;
        tracing::info!(
            factory = %request.factory, session = %request.session, clients = proposal.clients.len(),
            %txid, amount = %output.value, "proposal built"
        );
        funding.last = Some((proposal, funding_tx.clone()));
        Ok(Proposed {
            body,
            jobs: tree.signing_jobs(),
            keys,
            funding_tx,
        })
    }
}
