//! Talking to an LSP: fetch and check its signed terms over the WebSocket, and read how a
//! factory it gathers is filling up.

use bitcoin::Network;
use shared::terms::{SignedTerms, TermsBody, TermsError};
use shared::wire::{DecodeError, Envelope, WireMsg};

/// Why a session with the LSP failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LspError {
    /// The connection could not be opened or broke.
    #[error("could not reach the LSP at {url}: {reason}")]
    Connect {
        /// The WebSocket URL.
        url: String,
        /// What the browser reported.
        reason: String,
    },
    /// The LSP sent something this wallet cannot read.
    #[error("the LSP sent an unreadable message: {0}")]
    Decode(#[from] DecodeError),
    /// The LSP answered with an error.
    #[error("the LSP refused: {0}")]
    Refused(String),
    /// The LSP sent a message that makes no sense here.
    #[error("the LSP sent an unexpected message")]
    Unexpected,
    /// The terms did not check out.
    #[error(transparent)]
    Terms(#[from] TermsError),
}

/// What leaving one of this LSP's factories alone would cost at worst, in words for people who
/// have never used Bitcoin, with blocks read as time at `pace`. Computed by the wallet from the
/// signed parameters, not told by the LSP. [`exit_details`] has the technical side.
pub fn exit_summary(terms: &TermsBody, pace: crate::pace::BlockPace) -> String {
    match shared::exit::worst_case_cost(&terms.tree, terms.schedule.max_clients) {
        Ok(cost) => format!(
            "up to {} blocks of waiting ({}); the factory's own transactions come with their \
             fees paid, and closing your channel and moving the money to your address cost a \
             little more, shown before you leave",
            cost.blocks.to_blocks(),
            pace.approx(cost.blocks),
        ),
        Err(e) => format!("refused: these factories would not let you leave in time ({e})"),
    }
}

/// The worst-case exit's transactions, size and prepaid fees (the details behind
/// [`exit_summary`]).
pub fn exit_details(terms: &TermsBody) -> String {
    match shared::exit::worst_case_cost(&terms.tree, terms.schedule.max_clients) {
        Ok(cost) => format!(
            "{} transactions ({} vB) with their fees ({}) already paid from the factory",
            cost.txs,
            cost.vbytes,
            crate::format::sats(cost.prepaid_fee),
        ),
        Err(e) => format!("refused: {e}"),
    }
}

/// The WebSocket URL of an LSP whose web origin is `http(s)://host[:port]`.
pub fn ws_url(origin: &str) -> String {
    let origin = origin.trim_end_matches('/');
    let rest = origin
        .strip_prefix("https://")
        .map(|r| format!("wss://{r}"))
        .or_else(|| origin.strip_prefix("http://").map(|r| format!("ws://{r}")))
        .unwrap_or_else(|| origin.to_string());
    format!("{rest}/ws")
}

/// Interprets the LSP's answer to `Hello`: its terms, checked for signature, expiry and network.
pub fn accept_welcome(
    frame: &str,
    now_unix: u64,
    network: Network,
) -> Result<SignedTerms, LspError> {
    match Envelope::decode(frame)?.msg {
        WireMsg::Welcome { terms } => {
            terms.verify(shared::secp::ctx(), now_unix, network)?;
            Ok(*terms)
        }
        WireMsg::Error { message, .. } => Err(LspError::Refused(message)),
        _ => Err(LspError::Unexpected),
    }
}

/// The result of checking an LSP's terms, each check on its own so the screen can show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermsCheck {
    /// The signature matches the body and the LSP's key.
    pub signed: bool,
    /// Seconds until the terms expire; `None` once expired.
    pub expires_in: Option<u64>,
    /// The terms are for the wallet's network.
    pub network_ok: bool,
}

impl TermsCheck {
    /// Checks `terms` at `now_unix` for a wallet on `network`.
    pub fn of(terms: &SignedTerms, now_unix: u64, network: Network) -> TermsCheck {
        let secp = shared::secp::ctx();
        // `verify` checks the signature first; run it with the terms' own network and a time
        // inside their validity to learn about the signature alone.
        let signed = terms
            .verify(secp, terms.body.issued_at, terms.body.network)
            .is_ok()
            || terms
                .verify(
                    secp,
                    terms.body.expires_at.saturating_sub(1),
                    terms.body.network,
                )
                .is_ok();
        TermsCheck {
            signed,
            expires_in: terms
                .body
                .expires_at
                .checked_sub(now_unix)
                .filter(|s| *s > 0),
            network_ok: terms.body.network == network,
        }
    }

    /// Whether every check passed.
    pub fn is_ok(&self) -> bool {
        self.signed && self.expires_in.is_some() && self.network_ok
    }

    /// The result in words.
    pub fn describe(&self) -> String {
        if !self.signed {
            return "not signed by the LSP's key: do not use this LSP".into();
        }
        if !self.network_ok {
            return "for another Bitcoin network than this wallet's".into();
        }
        match self.expires_in {
            None => "signed by the LSP ✓, but expired: reload them".into(),
            Some(s) if s < 120 => format!("signed by the LSP ✓, valid for {s} more seconds"),
            Some(s) if s < 2 * 3600 => {
                format!("signed by the LSP ✓, valid for {} more minutes", s / 60)
            }
            Some(s) => format!("signed by the LSP ✓, valid for {} more hours", s / 3600),
        }
    }
}

/// The LSP's answer to `Hello`: its terms, not yet checked (see [`TermsCheck`]).
pub fn read_welcome(frame: &str) -> Result<SignedTerms, LspError> {
    match Envelope::decode(frame)?.msg {
        WireMsg::Welcome { terms } => Ok(*terms),
        WireMsg::Error { message, .. } => Err(LspError::Refused(message)),
        _ => Err(LspError::Unexpected),
    }
}

/// How `factory`, still gathering at the LSP at `origin`, is filling up; `None` once it is no
/// longer gathering.
#[cfg(target_arch = "wasm32")]
pub async fn fetch_gathering(
    origin: &str,
    factory: shared::types::FactoryId,
) -> Result<Option<shared::ceremony::GatheringStatus>, LspError> {
    let url = format!(
        "{}/factories/{}/gathering",
        origin.trim_end_matches('/'),
        factory.0
    );
    let connect_err = |reason: String| LspError::Connect {
        url: url.clone(),
        reason,
    };
    let response = gloo_net::http::Request::get(&url)
        .send()
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    if response.status() == 404 {
        return Ok(None);
    }
    if !response.ok() {
        return Err(connect_err(format!("HTTP {}", response.status())));
    }
    response
        .json()
        .await
        .map(Some)
        .map_err(|e| connect_err(e.to_string()))
}

/// Connects to the LSP at `origin`, says hello, and returns its terms, not yet checked.
#[cfg(target_arch = "wasm32")]
pub async fn fetch_signed_terms(origin: &str) -> Result<SignedTerms, LspError> {
    use futures::{SinkExt, StreamExt};
    use gloo_net::websocket::{futures::WebSocket, Message};

    let url = ws_url(origin);
    let connect_err = |reason: String| LspError::Connect {
        url: url.clone(),
        reason,
    };
    let mut ws = WebSocket::open(&url).map_err(|e| connect_err(e.to_string()))?;
    let hello = Envelope::new(WireMsg::Hello {
        agent: crate::AGENT.into(),
    })
    .encode();
    ws.send(Message::Text(hello))
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(frame))) => {
                let _ = ws.close(None, None);
                return read_welcome(&frame);
            }
            Some(Ok(Message::Bytes(_))) => continue,
            Some(Err(e)) => return Err(connect_err(e.to_string())),
            None => return Err(connect_err("connection closed".into())),
        }
    }
}

/// Connects to the LSP at `origin`, says hello, and returns its checked terms.
#[cfg(target_arch = "wasm32")]
pub async fn fetch_terms(origin: &str, network: Network) -> Result<SignedTerms, LspError> {
    let terms = fetch_signed_terms(origin).await?;
    let now = crate::platform::unix_now();
    terms.verify(shared::secp::ctx(), now, network)?;
    Ok(terms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_url_from_origin() {
        assert_eq!(ws_url("http://127.0.0.1:8800/"), "ws://127.0.0.1:8800/ws");
        assert_eq!(ws_url("https://lsp.example"), "wss://lsp.example/ws");
    }

    #[test]
    fn exit_summary_counts_txs_and_waiting() {
        let key = bitcoin::secp256k1::Keypair::from_seckey_slice(shared::secp::ctx(), &[5u8; 32])
            .expect("valid key");
        let mut body = TermsBody::example(key.x_only_public_key().0, 0, 1);
        body.tree = shared::params::FactoryParams::mainnet();
        body.schedule.max_clients = 1024;
        let pace = crate::pace::BlockPace::default();
        let text = exit_summary(&body, pace);
        assert!(text.starts_with("up to 330 blocks"), "{text}");
        assert!(text.contains("days"), "{text}");
        assert!(exit_details(&body).starts_with("9 transactions"));
        let devnet = exit_summary(&body, crate::pace::BlockPace::every_secs(10));
        assert!(devnet.contains("about 55 minutes"), "{devnet}");
        body.tree.timeout_delta = shared::params::BlockDelta::from_blocks(10);
        assert!(exit_summary(&body, pace).starts_with("refused"));
    }

    #[test]
    fn terms_check_reports_each_check() {
        let secp = shared::secp::ctx();
        let kp =
            bitcoin::secp256k1::Keypair::from_seckey_slice(secp, &[5u8; 32]).expect("valid key");
        let terms = TermsBody::example(kp.x_only_public_key().0, 1_000, 5_000).sign(secp, &kp);
        let ok = TermsCheck::of(&terms, 2_000, Network::Regtest);
        assert!(ok.is_ok(), "{ok:?}");
        assert_eq!(ok.expires_in, Some(3_000));
        assert!(ok.describe().contains("signed"));
        let expired = TermsCheck::of(&terms, 5_000, Network::Regtest);
        assert!(expired.signed && expired.expires_in.is_none() && !expired.is_ok());
        assert!(!TermsCheck::of(&terms, 2_000, Network::Bitcoin).network_ok);
        let mut tampered = terms.clone();
        tampered.body.name = "someone else".into();
        let bad = TermsCheck::of(&tampered, 2_000, Network::Regtest);
        assert!(!bad.signed);
        assert!(bad.describe().contains("not signed"));
    }

    #[test]
    fn refuses_non_welcome() {
        let frame = Envelope::new(WireMsg::Pong { nonce: 1 }).encode();
        assert!(matches!(
            accept_welcome(&frame, 0, Network::Regtest),
            Err(LspError::Unexpected)
        ));
    }
}
