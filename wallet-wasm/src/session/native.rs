//! Native transport over tokio-tungstenite (the swarm harness and any native client).

use futures::{SinkExt, StreamExt};
use shared::wire::MAX_FRAME_BYTES;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::transport::{Connect, Transport, TransportError};

/// Initial socket buffers; they grow for the rare large frame (a proposal).
const BUFFER_BYTES: usize = 16 * 1024;

/// Opens WebSocket connections to `url` (e.g. `ws://127.0.0.1:8800/ws`).
#[derive(Debug, Clone)]
pub struct WsConnector {
    /// The LSP's WebSocket URL.
    pub url: String,
}

impl WsConnector {
    /// A connector for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        WsConnector { url: url.into() }
    }
}

/// One tokio-tungstenite connection.
#[derive(Debug)]
pub struct WsTransport {
    url: String,
    ws: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

impl WsTransport {
    fn error(&self, e: impl std::fmt::Display) -> TransportError {
        TransportError {
            url: self.url.clone(),
            reason: e.to_string(),
        }
    }
}

impl Transport for WsTransport {
    async fn send(&mut self, frame: String) -> Result<(), TransportError> {
        let result = self.ws.send(Message::Text(frame.into())).await;
        result.map_err(|e| self.error(e))
    }

    async fn next(&mut self) -> Result<Option<String>, TransportError> {
        loop {
            match self.ws.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Err(e)) => return Err(self.error(e)),
                Some(Ok(Message::Text(text))) => return Ok(Some(text.as_str().to_owned())),
                Some(Ok(_)) => continue,
            }
        }
    }
}

impl Connect for WsConnector {
    type Transport = WsTransport;

    async fn connect(&mut self) -> Result<WsTransport, TransportError> {
        let mut config = WebSocketConfig::default();
        config.read_buffer_size = BUFFER_BYTES;
        config.write_buffer_size = BUFFER_BYTES;
        config.max_message_size = Some(MAX_FRAME_BYTES);
        config.max_frame_size = Some(MAX_FRAME_BYTES);
        let (ws, _) =
            // `true`: TCP_NODELAY, as browsers set for WebSockets; a round's small frames go
            // out at once instead of waiting on the LSP's delayed ACK.
            tokio_tungstenite::connect_async_with_config(self.url.as_str(), Some(config), true)
                .await
                .map_err(|e| TransportError {
                    url: self.url.clone(),
                    reason: e.to_string(),
                })?;
        Ok(WsTransport {
            url: self.url.clone(),
            ws,
        })
    }
}
