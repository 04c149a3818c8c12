//! The LSP's one view of the chain tip. One task reads Esplora's tip every second, each read
//! bounded by a timeout, and publishes it; the router, the HTTP endpoints and every `hello`
//! read the last published value and never wait on Esplora. So a hung Esplora delays nothing
//! but the tip itself, and unauthenticated requests cost no Esplora call.

use std::time::{Duration, Instant};

use esplora_client::AsyncClient;
use tokio::sync::watch;

/// How long one read of the tip may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the tip is read.
const EVERY: Duration = Duration::from_secs(1);
/// A tip older than this is not served: Esplora has stopped answering.
const STALE: Duration = Duration::from_secs(60);

/// Why no tip is available.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TipError {
    /// No read has succeeded yet.
    #[error("the chain tip has not been read from Esplora yet")]
    NotYet,
    /// The last good read is too old.
    #[error("Esplora has not answered for {0} s")]
    Stale(u64),
}

/// The last tip read, shared by everyone who needs it.
#[derive(Debug, Clone)]
pub struct Tip(watch::Receiver<Option<(u32, Instant)>>);

impl Tip {
    /// The latest tip height, if a read succeeded within the last minute.
    pub fn height(&self) -> Result<u32, TipError> {
        match *self.0.borrow() {
            None => Err(TipError::NotYet),
            Some((_, at)) if at.elapsed() > STALE => Err(TipError::Stale(at.elapsed().as_secs())),
            Some((height, _)) => Ok(height),
        }
    }
}

/// Reads the tip once (within the timeout), for start-up.
pub async fn read_once(esplora: &AsyncClient) -> Option<u32> {
    tokio::time::timeout(READ_TIMEOUT, esplora.get_height())
        .await
        .ok()?
        .ok()
}

/// The shared tip, starting from `first` (if start-up read one), and the task that keeps it
/// current until the server stops.
pub fn watch_tip(
    esplora: AsyncClient,
    first: Option<u32>,
) -> (Tip, impl std::future::Future<Output = ()>) {
    let (tx, rx) = watch::channel(first.map(|h| (h, Instant::now())));
    let task = async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match read_once(&esplora).await {
                // A lower answer (a lagging server) never moves the tip back.
                Some(h) => {
                    tx.send_modify(|t| {
                        let best = t.map_or(h, |(old, _)| old.max(h));
                        *t = Some((best, Instant::now()));
                    });
                }
                None => tracing::debug!("could not read the chain tip"),
            }
            if tx.is_closed() {
                return;
            }
        }
    };
    (Tip(rx), task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tip_is_served_only_while_fresh() {
        let (tx, rx) = watch::channel(None);
        let tip = Tip(rx);
        assert!(matches!(tip.height(), Err(TipError::NotYet)));
        tx.send_replace(Some((120, Instant::now())));
        assert_eq!(tip.height().unwrap(), 120);
        if let Some(old) = Instant::now().checked_sub(STALE + Duration::from_secs(1)) {
            tx.send_replace(Some((121, old)));
            assert!(matches!(tip.height(), Err(TipError::Stale(_))));
        }
    }
}
