//! Starting an exit from the open wallet: its stored paths of one factory, its leaf's states
//! and channels from the payment store, its factory key for that factory, and its own sweep
//! address.

use shared::exit::ExitKit;
use shared::pay::ChannelId;

use crate::exit::ExitRunner;
use crate::keys::FactoryIndex;
use crate::pay::{PayLeaf, PayStore};
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
        let channel = ChannelId {
            factory: stored.factory,
            client: stored.path.client(),
        };
        let secp = shared::secp::ctx();
        let wanted = stored.path.client_key();
        let mut key = None;
        // Only the indexes this wallet's joins used (a restored wallet starts far from 0).
        for join in self.profile().joins {
            let candidate = self
                .keys()
                .factory(FactoryIndex::new(join.factory_index)?)?;
            if candidate.public_key(secp) == wanted {
                key = Some((candidate.secret_key(), join.fee));
                break;
            }
        }
        let (key, join_fee) = key.ok_or(AccountError::Exit(
            "none of this wallet's factory keys is in this factory".into(),
        ))?;
        // The leaf's states and channels as the payment store holds them.
        let state = self
            .pay_store()
            .load()
            .await
            .map_err(|e| AccountError::Exit(e.to_string()))?;
        let leaf = PayLeaf {
            channel,
            path: stored.path.clone(),
            factory_secret: key,
            join_fee,
        };
        ExitRunner::new(kit, key, self.sweep_address()?, esplora_url)?
            .with_coin_key(self.sweep_secret()?)
            .with_watch(self.tip_watch())
            .with_payments(&state, &leaf)
            .map_err(|e| AccountError::Exit(e.to_string()))
    }
}
