//! Chain data from any Esplora endpoint: the user's choice, else a public one for the network
//! ([`default_esplora`]), never the provider's by default. Every tip read passes the
//! [`TipWatch`]: a failed read is an error, never height 0, and a tip far below one this
//! wallet has already seen is refused.

mod source;
mod tip;

pub use source::{default_esplora, normalize, same_source, DEVNET_ESPLORA};
pub use tip::{judge, Backwards, TipWatch, LAG_BLOCKS};

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
    #[error("cannot read the chain from {url}: {source}")]
    Esplora {
        /// The endpoint.
        url: String,
        /// What went wrong.
        source: esplora_client::Error,
    },
    /// The endpoint's tip contradicts what this wallet has already seen.
    #[error("the chain source at {url} {source}")]
    Backwards {
        /// The endpoint.
        url: String,
        /// The two heights.
        source: Backwards,
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

/// The chain tip height at `url`, judged by `watch`.
pub async fn tip_height(url: &str, watch: &TipWatch) -> Result<u32, ChainError> {
    let tip = esplora(url)?
        .get_height()
        .await
        .map_err(|source| ChainError::Esplora {
            url: url.into(),
            source,
        })?;
    checked_tip(url, watch, tip)
}

/// `tip`, read from `url`, judged by `watch`: the height to go on with.
pub fn checked_tip(url: &str, watch: &TipWatch, tip: u32) -> Result<u32, ChainError> {
    watch.check(tip).map_err(|source| ChainError::Backwards {
        url: url.into(),
        source,
    })
}
