//! One WebSocket connection with a wallet: decode with limits, answer, never panic on input.

use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use shared::wire::{Envelope, ErrorCode, WireMsg, MAX_FRAME_BYTES};

use crate::AppState;

/// Frames a connection may send per second on average, and in a burst.
const RATE_PER_SEC: f64 = 50.0;
const RATE_BURST: f64 = 200.0;

/// Token bucket limiting one connection's message rate.
struct RateLimit {
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    fn new() -> Self {
        RateLimit {
            tokens: RATE_BURST,
            last: Instant::now(),
        }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * RATE_PER_SEC)
            .min(RATE_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn error(code: ErrorCode, message: impl Into<String>, fatal: bool) -> WireMsg {
    WireMsg::Error {
        code,
        message: message.into(),
        fatal,
    }
}

/// Serves one connection until the peer leaves or a fatal error.
pub async fn serve(mut socket: WebSocket, state: AppState) {
    let mut rate = RateLimit::new();
    let mut ping = tokio::time::interval(Duration::from_secs(20));
    loop {
        let frame = tokio::select! {
            frame = socket.recv() => frame,
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() { return; }
                continue;
            }
        };
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                // The socket layer refused the frame (e.g. over the size limit): say why, then close.
                let msg = error(ErrorCode::TooLarge, format!("connection closed: {e}"), true);
                let _ = socket
                    .send(Message::Text(Envelope::new(msg).encode().into()))
                    .await;
                return;
            }
            None => return,
        };
        let reply = match frame {
            Message::Text(text) if !rate.allow() => {
                let _ = text;
                Some(error(
                    ErrorCode::RateLimited,
                    "too many messages; slow down",
                    false,
                ))
            }
            Message::Text(text) => match Envelope::decode(text.as_str()) {
                Ok(env) => handle(env.msg, &state).await,
                Err(e) => Some(error(e.code(), e.to_string(), false)),
            },
            Message::Binary(b) if b.len() > MAX_FRAME_BYTES => {
                Some(error(ErrorCode::TooLarge, "frame too large", false))
            }
            Message::Binary(_) => Some(error(
                ErrorCode::Malformed,
                "binary frames are not used; send JSON text",
                false,
            )),
            Message::Close(_) => return,
            Message::Ping(_) | Message::Pong(_) => None,
        };
        if let Some(msg) = reply {
            let fatal = matches!(msg, WireMsg::Error { fatal: true, .. });
            if socket
                .send(Message::Text(Envelope::new(msg).encode().into()))
                .await
                .is_err()
                || fatal
            {
                return;
            }
        }
    }
}

async fn handle(msg: WireMsg, state: &AppState) -> Option<WireMsg> {
    match msg {
        WireMsg::Hello { agent } => {
            tracing::info!(%agent, "wallet connected");
            Some(WireMsg::Welcome {
                terms: Box::new(state.terms().await),
            })
        }
        WireMsg::Ping { nonce } => Some(WireMsg::Pong { nonce }),
        WireMsg::Pong { .. } => None,
        other => Some(error(
            ErrorCode::Unexpected,
            format!("the LSP does not accept {} from a wallet now", kind(&other)),
            false,
        )),
    }
}

fn kind(msg: &WireMsg) -> String {
    serde_json::to_value(msg)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "this message".into())
}
