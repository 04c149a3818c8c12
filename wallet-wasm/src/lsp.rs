//! Talking to an LSP: fetch and check its signed terms over the WebSocket.

use bitcoin::secp256k1::Secp256k1;
use bitcoin::Network;
use shared::terms::{SignedTerms, TermsError};
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
            terms.verify(&Secp256k1::verification_only(), now_unix, network)?;
            Ok(*terms)
        }
        WireMsg::Error { message, .. } => Err(LspError::Refused(message)),
        _ => Err(LspError::Unexpected),
    }
}

/// Connects to the LSP at `origin`, says hello, and returns its checked terms.
#[cfg(target_arch = "wasm32")]
pub async fn fetch_terms(origin: &str, network: Network) -> Result<SignedTerms, LspError> {
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
                let now = (js_sys::Date::now() / 1000.0) as u64;
                return accept_welcome(&frame, now, network);
            }
            Some(Ok(Message::Bytes(_))) => continue,
            Some(Err(e)) => return Err(connect_err(e.to_string())),
            None => return Err(connect_err("connection closed".into())),
        }
    }
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
    fn refuses_non_welcome() {
        let frame = Envelope::new(WireMsg::Pong { nonce: 1 }).encode();
        assert!(matches!(
            accept_welcome(&frame, 0, Network::Regtest),
            Err(LspError::Unexpected)
        ));
    }
}
