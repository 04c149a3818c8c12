//! Browser transport over gloo-net's WebSocket.

use futures::{SinkExt, StreamExt};
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::Message;

use super::transport::{Connect, Transport, TransportError};

/// Opens WebSocket connections to `url` from the browser.
#[derive(Debug, Clone)]
pub struct BrowserConnector {
    /// The LSP's WebSocket URL.
    pub url: String,
}

impl BrowserConnector {
    /// A connector for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        BrowserConnector { url: url.into() }
    }
}

/// One browser WebSocket.
pub struct BrowserTransport {
    url: String,
    ws: WebSocket,
}

impl BrowserTransport {
    fn error(&self, e: impl std::fmt::Display) -> TransportError {
        TransportError {
            url: self.url.clone(),
            reason: e.to_string(),
        }
    }
}

impl Transport for BrowserTransport {
    async fn send(&mut self, frame: String) -> Result<(), TransportError> {
        let result = self.ws.send(Message::Text(frame)).await;
        result.map_err(|e| self.error(e))
    }

    async fn next(&mut self) -> Result<Option<String>, TransportError> {
        loop {
            match self.ws.next().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(self.error(e)),
                Some(Ok(Message::Text(text))) => return Ok(Some(text)),
                Some(Ok(Message::Bytes(_))) => continue,
            }
        }
    }
}

impl Connect for BrowserConnector {
    type Transport = BrowserTransport;

    async fn connect(&mut self) -> Result<BrowserTransport, TransportError> {
        let ws = WebSocket::open(&self.url).map_err(|e| TransportError {
            url: self.url.clone(),
            reason: e.to_string(),
        })?;
        Ok(BrowserTransport {
            url: self.url.clone(),
            ws,
        })
    }
}
