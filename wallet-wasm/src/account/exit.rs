//! Starting an exit from the open wallet: its stored paths of one factory, its leaf's states
//! once liquidity was bought, its factory key for that factory, and its own sweep address.

use bitcoin::secp256k1::Secp256k1;
use shared::exit::ExitKit;
use shared::pay::ChannelId;

use crate::exit::ExitRunner;
use crate::keys::FactoryIndex;
use crate::session::StoredPath;

use super::{Account, AccountError};

impl Account {
    /// A runner that walks `stored`'s factory out (every stored state of it), reading the chain
    /// at `esplora_url` and sweeping to the wallet's own address.
    pub async fn exit_runner(
        &self,
        stored: &StoredPath,
        esplora_url: &str,
    ) -> Result<ExitRunner, AccountError> {
        let funding = stored.path.funding_outpoint();
        let mut kit =
            ExitKit::new(stored.path.clone()).map_err(|e| AccountError::Exit(e.to_string()))?;
        for other in self.paths().await? {
            if other.path.funding_outpoint() == funding && other != *stored {
                kit.add(other.path)
                    .map_err(|e| AccountError::Exit(e.to_string()))?;
            }
        }
        // After a liquidity purchase the leaf's newest state (and the redistributions of the
        // older ones) is what the exit publishes.
        let channel = ChannelId {
            factory: stored.factory,
            client: stored.path.client(),
        };
        if let Some(record) = self.pay_store().leaf(channel).await? {
            if record.states.states().len() > 1 {
                kit.set_leaf(record.states)
                    .map_err(|e| AccountError::Exit(e.to_string()))?;
            }
        }
        let secp = Secp256k1::signing_only();
        let wanted = stored.path.client_key();
        let mut key = None;
        // Only the indexes this wallet's joins used (a restored wallet starts far from 0).
        for i in self.profile().joins.iter().map(|j| j.factory_index) {
            let candidate = self.keys().factory(FactoryIndex::new(i)?)?;
            if candidate.public_key(&secp) == wanted {
                key = Some(candidate.secret_key());
                break;
            }
        }
        let key = key.ok_or(AccountError::Exit(
            "none of this wallet's factory keys is in this factory".into(),
        ))?;
        Ok(ExitRunner::new(
            kit,
            key,
            self.sweep_address()?,
            esplora_url,
        )?)
    }
}
