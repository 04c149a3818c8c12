//! Chain data from any Esplora endpoint (the user's choice, not only the LSP's).

use esplora_client::{AsyncClient, Builder, Sleeper};

/// Sleeps with the platform's timer: browser timers on wasm32, tokio natively.
#[derive(Debug, Clone, Copy)]
pub struct PlatformSleeper;

#[cfg(target_arch = "wasm32")]
impl Sleeper for PlatformSleeper {
    type Sleep = gloo_timers::future::TimeoutFuture;
    fn sleep(dur: std::time::Duration) -> Self::Sleep {
        gloo_timers::future::TimeoutFuture::new(dur.as_millis().min(u32::MAX as u128) as u32)
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Sleeper for PlatformSleeper {
    type Sleep = tokio::time::Sleep;
    fn sleep(dur: std::time::Duration) -> Self::Sleep {
        tokio::time::sleep(dur)
    }
}

/// An Esplora client for this platform.
pub type Esplora = AsyncClient<PlatformSleeper>;

/// Why the chain could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The endpoint failed or answered nonsense.
    #[error("could not read the chain from {url}: {source}")]
    Esplora {
        /// The endpoint.
        url: String,
        /// What went wrong.
        source: esplora_client::Error,
    },
}

/// Opens a client for `url` (e.g. `http://127.0.0.1:8801`).
pub fn esplora(url: &str) -> Result<Esplora, ChainError> {
    Builder::new(url.trim_end_matches('/'))
        .build_async_with_sleeper::<PlatformSleeper>()
        .map_err(|source| ChainError::Esplora {
            url: url.into(),
            source,
        })
}

/// The chain tip height at `url`.
pub async fn tip_height(url: &str) -> Result<u32, ChainError> {
    esplora(url)?
        .get_height()
        .await
        .map_err(|source| ChainError::Esplora {
            url: url.into(),
            source,
        })
}
