//! Joining a factory from the browser: price the request, then run a session whose records go
//! into the vault.

use bitcoin::Amount;
use futures::channel::mpsc::UnboundedSender;
use shared::ceremony::{ClientConfig, ClientOutcome, JoinPrice, JoinRequest, Quote};
use shared::terms::{SignedTerms, TermsBody};

use crate::keys::FactoryIndex;
use crate::lsp::ws_url;
use crate::session::{
    BrowserConnector, EsploraChain, Session, SessionConfig, SessionEvent, SessionReport,
};

use super::{outcome_words, Account, AccountError, JoinRecord};

/// Seconds of patience the wallet adds to each deadline the LSP announces.
const GRACE_SECS: u64 = 30;

/// What the user is about to ask an LSP for, priced under its signed terms.
#[derive(Debug, Clone)]
pub struct JoinPlan {
    /// The LSP's checked terms.
    pub terms: SignedTerms,
    /// Channel capacity asked for.
    pub channel: Amount,
    /// Inbound liquidity asked for.
    pub liquidity: Amount,
    /// The price the LSP's terms give (the wallet refuses a higher one).
    pub quote: Quote,
    /// The quote's fee in its two parts (the terms' join fee and the liquidity part).
    pub price: JoinPrice,
}

impl JoinPlan {
    /// Prices `liquidity` (with the smallest channel the LSP allows) under `terms`.
    pub fn price(
        account: &Account,
        terms: SignedTerms,
        liquidity: Amount,
    ) -> Result<JoinPlan, AccountError> {
        let channel = terms.body.min_channel;
        JoinPlan::sized(account, terms, channel, liquidity)
    }

    /// Prices a join that takes over a channel of `capacity` whose leaf still had `liquidity`
    /// for sale (a move out of a dying factory): the same amounts, brought within `terms`.
    pub fn like(
        account: &Account,
        terms: SignedTerms,
        capacity: Amount,
        liquidity: Amount,
    ) -> Result<JoinPlan, AccountError> {
        let (channel, liquidity) = JoinPlan::amounts_like(&terms.body, capacity, liquidity);
        JoinPlan::sized(account, terms, channel, liquidity)
    }

    /// The channel and liquidity [`JoinPlan::like`] asks for: `capacity` and `liquidity`, each
    /// brought within the limits of `terms`.
    pub fn amounts_like(
        terms: &TermsBody,
        capacity: Amount,
        liquidity: Amount,
    ) -> (Amount, Amount) {
        let within = |a: Amount, min: Amount, max: Amount| a.clamp(min, max.max(min));
        (
            within(capacity, terms.min_channel, terms.max_channel),
            within(liquidity, terms.min_liquidity, terms.max_liquidity),
        )
    }

    /// Prices a channel of `channel` with `liquidity` under `terms`.
    fn sized(
        account: &Account,
        terms: SignedTerms,
        channel: Amount,
        liquidity: Amount,
    ) -> Result<JoinPlan, AccountError> {
        let index = FactoryIndex::new(account.profile().next_factory)?;
        let pubkey = account
            .keys()
            .factory(index)?
            .public_key(shared::secp::ctx());
        let request = JoinRequest {
            pubkey,
            channel,
            liquidity,
        };
        let quote = Quote::for_request(&terms.body, &request)
            .map_err(|e| AccountError::Amounts(e.to_string()))?;
        let price = JoinPrice::under(&terms.body.fees, liquidity)
            .map_err(|e| AccountError::Amounts(e.to_string()))?;
        Ok(JoinPlan {
            terms,
            channel,
            liquidity,
            quote,
            price,
        })
    }
}

impl Account {
    /// Runs one session to join a factory under `plan`, reporting on `events`, until the
    /// funding confirms or the ceremony ends otherwise. The factory key's index is stored as
    /// used before the session starts.
    pub async fn join(
        &self,
        plan: &JoinPlan,
        esplora_url: &str,
        events: UnboundedSender<SessionEvent>,
    ) -> Result<SessionReport, AccountError> {
        let origin = self.profile().lsp_origin;
        let mut index = None;
        let tips = self.tip_watch();
        self.update(|p| {
            p.highest_tip = tips.highest().max(p.highest_tip);
            if let Ok(i) = p.take_factory_index() {
                index = Some(i);
                p.joins.push(JoinRecord {
                    factory_index: i.get(),
                    lsp_origin: origin.clone(),
                    channel: plan.channel,
                    liquidity: plan.liquidity,
                    fee: plan.quote.fee,
                    factory: None,
                    funding: None,
                    ended: None,
                    moved_to: None,
                });
            }
        })
        .await?;
        let index = index.ok_or(AccountError::Busy("no factory key index is left"))?;
        let factory_key = self.keys().factory(index)?;
        let identity = self.keys().identity()?;
        let mut config = SessionConfig::new(
            self.profile().network,
            *identity.keypair(),
            ClientConfig {
                secret_key: factory_key.secret_key(),
                channel: plan.channel,
                liquidity: plan.liquidity,
                max_fee: plan.quote.fee,
                grace_secs: GRACE_SECS,
            },
        );
        config.reconnect_attempts = 30;
        let chain = EsploraChain::with_watch(esplora_url, tips.clone())?;
        let session = Session::new(
            config,
            BrowserConnector::new(ws_url(&origin)),
            self.storage(),
            chain,
        )
        .with_events(events);
        let result = session.run().await;
        let ended = match &result {
            Ok(report) => outcome_words(&report.outcome),
            Err(e) => e.to_string(),
        };
        // The fee the LSP quoted may be below the most the plan accepted: the channel owes it.
        let fee = result.as_ref().ok().and_then(|r| r.quote).map(|q| q.fee);
        let (factory, funding) = match &result {
            Ok(report) => (
                report.path.as_ref().map(|p| p.factory),
                match report.outcome {
                    ClientOutcome::Open { txid } => Some(txid),
                    _ => None,
                },
            ),
            Err(_) => (None, None),
        };
        self.update(|p| {
            p.highest_tip = tips.highest().max(p.highest_tip);
            if let Some(record) = p.join_mut(index.get()) {
                record.ended = Some(ended);
                record.factory = factory.or(record.factory);
                record.funding = funding.or(record.funding);
                record.fee = fee.unwrap_or(record.fee);
            }
        })
        .await?;
        Ok(result?)
    }
}
