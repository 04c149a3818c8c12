//! The LSP's WebSocket endpoint over a real connection: hello, terms, and bad input.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::secp256k1::Secp256k1;
use futures::{SinkExt, StreamExt};
use shared::wire::{Envelope, ErrorCode, WireMsg, MAX_FRAME_BYTES};
use tokio_tungstenite::tungstenite::Message;

use common::raw::{recv, send_text};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn hello_gets_signed_terms_and_bad_frames_get_clear_errors() {
    let stack = common::start(None).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(stack.ws_url())
        .await
        .expect("connects");

    send_text(
        &mut ws,
        Envelope::new(WireMsg::Hello {
            agent: "test".into(),
        })
        .encode(),
    )
    .await;
    let WireMsg::Welcome { terms } = recv(&mut ws).await else {
        panic!("expected welcome")
    };
    terms
        .verify(
            &Secp256k1::verification_only(),
            now(),
            bitcoin::Network::Regtest,
        )
        .expect("terms are signed, fresh and for regtest");
    assert_eq!(terms.body.esplora_url, stack.devnet.esplora_url());

    // The same terms are served over HTTP.
    let http = common::terms(&stack).await;
    assert_eq!(http.body.lsp_pubkey, terms.body.lsp_pubkey);

    // Malformed JSON, an unknown message, and a foreign version: each a clear, non-fatal error.
    for (frame, want) in [
        ("{not json".to_string(), ErrorCode::Malformed),
        (
            r#"{"v":1,"msg":{"type":"steal"}}"#.to_string(),
            ErrorCode::Malformed,
        ),
        (
            r#"{"v":9,"msg":{"type":"ping","nonce":1}}"#.to_string(),
            ErrorCode::UnsupportedVersion,
        ),
    ] {
        send_text(&mut ws, frame).await;
        match recv(&mut ws).await {
            WireMsg::Error {
                code,
                fatal,
                message,
                ..
            } => {
                assert_eq!(code, want, "{message}");
                assert!(!fatal);
                assert!(!message.is_empty());
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }
    // A message a wallet may not send.
    send_text(
        &mut ws,
        Envelope::new(WireMsg::Welcome {
            terms: terms.clone(),
        })
        .encode(),
    )
    .await;
    assert!(matches!(
        recv(&mut ws).await,
        WireMsg::Error {
            code: ErrorCode::Unexpected,
            ..
        }
    ));

    // The connection still works.
    send_text(&mut ws, Envelope::new(WireMsg::Ping { nonce: 42 }).encode()).await;
    assert_eq!(recv(&mut ws).await, WireMsg::Pong { nonce: 42 });

    // An oversized frame closes that connection, and only that one.
    let huge = "x".repeat(MAX_FRAME_BYTES + 1024);
    let _ = ws.send(Message::Text(huge.into())).await;
    let mut told = None;
    while let Some(Ok(frame)) = ws.next().await {
        if let Message::Text(t) = frame {
            told = Some(Envelope::decode(t.as_str()).expect("decodes").msg);
        }
    }
    assert!(
        matches!(
            told,
            Some(WireMsg::Error {
                code: ErrorCode::TooLarge,
                fatal: true,
                ..
            })
        ),
        "an oversized frame gets a fatal too-large error, then the connection ends: {told:?}"
    );

    let (mut other, _) = tokio_tungstenite::connect_async(stack.ws_url())
        .await
        .expect("reconnects");
    send_text(
        &mut other,
        Envelope::new(WireMsg::Ping { nonce: 7 }).encode(),
    )
    .await;
    assert_eq!(recv(&mut other).await, WireMsg::Pong { nonce: 7 });
}

#[tokio::test]
async fn healthz_reports_the_chain_tip() {
    let stack = common::start(None).await;
    stack.devnet.mine(3).await.expect("mine");
    let height = stack.devnet.height().await.expect("height");
    // The LSP reads the tip on its own schedule (`--chain-poll-ms`): it reports the new tip
    // within a few polls.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let health = loop {
        let health: serde_json::Value = reqwest::get(format!("{}/healthz", stack.http_url()))
            .await
            .expect("GET /healthz")
            .json()
            .await
            .expect("JSON");
        let caught_up = health["chain_tip"].as_u64() == Some(u64::from(height.to_consensus_u32()));
        if caught_up || std::time::Instant::now() > deadline {
            break health;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(health["status"], "ok");
    assert_eq!(
        health["chain_tip"].as_u64(),
        Some(u64::from(height.to_consensus_u32()))
    );
}
