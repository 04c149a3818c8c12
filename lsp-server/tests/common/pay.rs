//! Payment clients for the tests: funded factories of native wallets, and a running
//! `wallet::pay::PayClient` per wallet.

use std::time::Duration;

use bitcoin::Amount;
use futures::channel::mpsc::{unbounded, UnboundedReceiver};
use futures::StreamExt;
use shared::pay::ChannelId;
use tokio::task::JoinHandle;
use wallet::pay::{
    LiquidityBought, MemoryPayStore, PayClient, PayConfig, PayEvent, PayHandle, PayLeaf, Snapshot,
};
use wallet::session::{EsploraChain, WsConnector};

use super::swarm::{self, ClientRun, ClientSpec, SwarmConfig};
use super::Stack;

/// A devnet and an LSP (factories of two, `options` for payments) with funds, and two
/// wallets of `spec` in one funded factory; the temp dir holds their storage.
pub async fn two_funded(
    options: lsp_server::PaymentOptions,
    spec: ClientSpec,
) -> (Stack, Vec<ClientRun>, tempfile::TempDir) {
    two_funded_on(devnet::DevnetConfig::default(), options, spec).await
}

/// [`two_funded`] on a devnet started as `devnet` says.
pub async fn two_funded_on(
    devnet: devnet::DevnetConfig,
    options: lsp_server::PaymentOptions,
    spec: ClientSpec,
) -> (Stack, Vec<ClientRun>, tempfile::TempDir) {
    let stack = super::start_on(devnet, super::fast_factory(2, 2), options, None).await;
    super::fund_lsp(&stack, Amount::from_sat(2_000_000)).await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = super::swarm_config(&stack, storage.path());
    let runs = funded_factory(&stack, &config, spec, 2).await;
    (stack, runs, storage)
}

/// The LSP's entry for `channel` in `/admin/payments`.
pub async fn admin_channel(stack: &Stack, channel: ChannelId) -> serde_json::Value {
    admin_channel_at(&stack.http_url(), channel).await
}

/// [`admin_channel`] of the LSP at `http_url`.
pub async fn admin_channel_at(http_url: &str, channel: ChannelId) -> serde_json::Value {
    let view = super::admin_get(http_url, "/admin/payments").await;
    view["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|c| c["channel"] == channel.to_string().as_str())
        .expect("the LSP has the channel")
        .clone()
}

/// Runs `n` honest clients into one factory and confirms it; returns their runs.
pub async fn funded_factory(
    stack: &Stack,
    config: &SwarmConfig,
    spec: ClientSpec,
    n: usize,
) -> Vec<ClientRun> {
    funded_factory_of(&stack.devnet, swarm::spawn(config, &vec![spec; n]), n).await
}

/// Runs the `n` clients of `clients` into one factory and confirms it; returns their runs.
pub async fn funded_factory_of(
    devnet: &devnet::Devnet,
    mut clients: swarm::Swarm,
    n: usize,
) -> Vec<ClientRun> {
    let heard = clients
        .wait_for(Duration::from_secs(90), |log| {
            swarm::broadcast_heard(log, 0..n)
        })
        .await;
    assert!(
        heard,
        "every client hears of the funding broadcast: {:?}",
        clients.log
    );
    devnet.mine(1).await.expect("mine");
    let (runs, _) = clients.finish(Duration::from_secs(60)).await;
    for run in &runs {
        super::assert_verified_path(devnet, run).await;
    }
    runs
}

/// The fee of the join quote a finished run accepted (its channel owes it).
pub fn join_fee_of(run: &ClientRun) -> Amount {
    let report = run.result.as_ref().expect("session succeeded");
    report.quote.expect("the LSP quoted the join").fee
}

/// The leaf a finished run holds.
pub fn leaf_of(run: &ClientRun) -> PayLeaf {
    let report = run.result.as_ref().expect("session succeeded");
    let stored = report.path.as_ref().expect("path stored");
    PayLeaf {
        channel: ChannelId {
            factory: stored.factory,
            client: stored.path.client(),
        },
        path: stored.path.clone(),
        factory_secret: run.factory_secret,
        join_fee: join_fee_of(run),
    }
}

/// A running payment client.
pub struct Payer {
    pub handle: PayHandle,
    pub events: UnboundedReceiver<PayEvent>,
    pub store: MemoryPayStore,
    pub task: JoinHandle<()>,
    pub leaves: Vec<PayLeaf>,
    pub keys: bitcoin::secp256k1::Keypair,
}

/// Starts the payment client of `run` (a stored `store` makes it a restart).
pub fn start_payer(stack: &Stack, run: &ClientRun, store: MemoryPayStore) -> Payer {
    start_payer_with(stack, run.keys, vec![leaf_of(run)], store)
}

/// Starts a payment client for `leaves`.
pub fn start_payer_with(
    stack: &Stack,
    keys: bitcoin::secp256k1::Keypair,
    leaves: Vec<PayLeaf>,
    store: MemoryPayStore,
) -> Payer {
    start_payer_at(
        &stack.ws_url(),
        stack.devnet.esplora_url(),
        keys,
        leaves,
        store,
    )
}

/// Starts a payment client for `leaves` against the LSP at `ws_url`.
pub fn start_payer_at(
    ws_url: &str,
    esplora_url: &str,
    keys: bitcoin::secp256k1::Keypair,
    leaves: Vec<PayLeaf>,
    store: MemoryPayStore,
) -> Payer {
    let config = PayConfig::new(bitcoin::Network::Regtest, keys, leaves);
    start_payer_config(ws_url, esplora_url, config, store)
}

/// Starts a payment client of `config` (reconnecting every 300 ms) against the LSP at `ws_url`.
pub fn start_payer_config(
    ws_url: &str,
    esplora_url: &str,
    mut config: PayConfig,
    store: MemoryPayStore,
) -> Payer {
    config.reconnect_delay = Duration::from_millis(300);
    let (keys, leaves) = (config.identity, config.leaves.clone());
    let chain = EsploraChain::new(esplora_url).expect("esplora");
    let (client, handle) = PayClient::new(config, WsConnector::new(ws_url), store.clone(), chain);
    let (tx, events) = unbounded();
    let client = client.with_events(tx);
    let task = tokio::spawn(async move {
        if let Err(e) = client.run().await {
            panic!("payment client failed: {e}");
        }
    });
    Payer {
        handle,
        events,
        store,
        task,
        leaves,
        keys,
    }
}

impl Payer {
    /// Waits until every channel is open and committed.
    pub async fn ready(&mut self, secs: u64) -> Snapshot {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.handle.snapshot().await.expect("snapshot");
            if s.connected
                && s.channels.len() == self.leaves.len()
                && s.channels.iter().all(|c| c.ready)
                && s.inbound > Amount::ZERO
            {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "channels open in time: {s:?}"
            );
            let _ = tokio::time::timeout(Duration::from_millis(200), self.events.next()).await;
        }
    }

    /// Asks the demo faucet for `amount` (the wallet has one channel) and waits until it
    /// arrived; returns what the balance grew by: `amount`, less the channel's join fee when
    /// this payment is the one that pays it (`shared::pay::join_fee`).
    pub async fn faucet(&mut self, amount: Amount, secs: u64) -> Amount {
        let before = self.handle.snapshot().await.expect("snapshot");
        assert_eq!(before.channels.len(), 1, "one channel: {before:?}");
        let arrives = amount - before.channels[0].join_fee.deduction(amount);
        self.handle.faucet(amount).await.expect("faucet");
        self.balance_becomes(before.balance + arrives, secs).await;
        arrives
    }

    /// Waits until the balance is `want` with no HTLC pending.
    pub async fn balance_becomes(&mut self, want: Amount, secs: u64) -> Snapshot {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.handle.snapshot().await.expect("snapshot");
            if s.balance == want && s.channels.iter().all(|c| c.pending == 0) {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "balance becomes {want}: {s:?}"
            );
            let _ = tokio::time::timeout(Duration::from_millis(200), self.events.next()).await;
        }
    }
}

impl Payer {
    /// Buys `amount` of inbound liquidity and waits for the `LiquidityBought` event and for
    /// the channel on the new leaf state to be open again; returns the purchase and the
    /// snapshot after it.
    pub async fn buy_liquidity(
        &mut self,
        amount: Amount,
        secs: u64,
    ) -> (LiquidityBought, Snapshot) {
        let handle = self.handle.clone();
        let mut buying = tokio::spawn(async move { handle.buy_liquidity(amount).await });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        let mut seen = None;
        while seen.is_none() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(!left.is_zero(), "liquidity of {amount} bought in time");
            if buying.is_finished() {
                // Refused before any event (a quote the wallet itself turns down).
                let result = (&mut buying).await.expect("the purchase task ran");
                assert!(result.is_ok(), "the purchase failed: {result:?}");
            }
            let wait = left.min(Duration::from_millis(200));
            match tokio::time::timeout(wait, self.events.next()).await {
                Ok(Some(PayEvent::LiquidityBought(b))) => seen = Some(b),
                Ok(Some(PayEvent::LiquidityFailed { reason, .. })) => {
                    panic!("the purchase failed: {reason}")
                }
                Ok(Some(_)) => {}
                Ok(None) => panic!("the payment client stopped"),
                Err(_) => {}
            }
        }
        let bought = buying
            .await
            .expect("the purchase task ran")
            .expect("the purchase succeeded");
        assert_eq!(Some(&bought), seen.as_ref());
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let snapshot = self.ready(left.as_secs().max(1)).await;
        let channel = snapshot
            .channels
            .iter()
            .find(|c| c.channel == bought.channel)
            .expect("the channel is still there");
        assert_eq!(
            channel.leaf, bought.leaf,
            "the channel lives on the new leaf state"
        );
        (bought, snapshot)
    }
}

/// Gives each wallet of `runs` a balance in its factory from the faucet (20,000 sat, 5,000
/// more for each next one); returns their payment stores and what each holds.
pub async fn with_balances(
    stack: &Stack,
    runs: &[ClientRun],
) -> (Vec<MemoryPayStore>, Vec<Amount>) {
    let mut stores = Vec::new();
    let mut balances = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let store = MemoryPayStore::default();
        let mut payer = start_payer_with(stack, run.keys, vec![leaf_of(run)], store.clone());
        payer.ready(30).await;
        let got = payer
            .faucet(Amount::from_sat(20_000 + 5_000 * i as u64), 30)
            .await;
        balances.push(got);
        payer.handle.stop();
        let _ = payer.task.await;
        stores.push(store);
    }
    (stores, balances)
}

/// Wallets with identities `keys` join one new factory together (new factory keys each).
pub async fn join_with(
    stack: &Stack,
    storage: &std::path::Path,
    tag: &str,
    spec: ClientSpec,
    keys: &[bitcoin::secp256k1::Keypair],
) -> Vec<ClientRun> {
    let config = super::swarm_config(stack, &storage.join(tag));
    let keyed: Vec<_> = keys.iter().map(|k| (spec, *k)).collect();
    funded_factory_of(&stack.devnet, swarm::spawn_as(&config, &keyed), keys.len()).await
}

/// Whether the admin view of a channel (`admin_channel`) shows a confirmed claim of each kind.
pub fn claims_confirmed(view: &serde_json::Value, kinds: &[&str]) -> bool {
    let claims = view["claims"].as_array().cloned().unwrap_or_default();
    kinds.iter().all(|kind| {
        claims.iter().any(|c| {
            c["kind"].as_str().is_some_and(|k| k.starts_with(kind)) && c["confirmed"] == true
        })
    })
}
