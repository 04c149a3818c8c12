//! Helpers shared by the devnet integration tests: an esplora-client for the devnet, a test
//! key that signs taproot key-path spends, and polling with a deadline.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::future::Future;
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::key::{Keypair, Secp256k1, TapTweak};
use bitcoin::secp256k1::{All, Message};
use bitcoin::sighash::{Prevouts, SighashCache, TapSighashType};
use bitcoin::{taproot, Address, Network, OutPoint, ScriptBuf, Transaction, TxOut, Txid, Witness};
use devnet::Devnet;
use esplora_client::{AsyncClient, Sleeper};

/// esplora-client's sleeper on tokio.
#[derive(Debug, Clone, Copy)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    type Sleep = tokio::time::Sleep;
    fn sleep(dur: Duration) -> Self::Sleep {
        tokio::time::sleep(dur)
    }
}

pub type Esplora = AsyncClient<TokioSleeper>;

/// An HTTP client that never goes through a proxy (everything is on 127.0.0.1).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a plain HTTP client builds")
}

/// An esplora-client pointed at the devnet.
pub fn esplora(devnet: &Devnet) -> Esplora {
    AsyncClient::from_client(devnet.esplora_url().to_owned(), http())
}

/// A fresh key with its P2TR (key path, no script tree) address.
pub struct TestKey {
    secp: Secp256k1<All>,
    keypair: Keypair,
    pub address: Address,
}

impl TestKey {
    pub fn random() -> Self {
        let secp = Secp256k1::new();
        let keypair = Keypair::new(&secp, &mut rand::thread_rng());
        let (xonly, _) = keypair.x_only_public_key();
        let address = Address::p2tr(&secp, xonly, None, Network::Regtest);
        TestKey {
            secp,
            keypair,
            address,
        }
    }

    pub fn spk(&self) -> ScriptBuf {
        self.address.script_pubkey()
    }

    /// Signs input `index` of `tx` (BIP-341 key path, default sighash) given every prevout.
    pub fn sign_key_path(&self, tx: &mut Transaction, index: usize, prevouts: &[TxOut]) {
        let tweaked = self.keypair.tap_tweak(&self.secp, None).to_keypair();
        let mut cache = SighashCache::new(&mut *tx);
        let sighash = cache
            .taproot_key_spend_signature_hash(
                index,
                &Prevouts::All(prevouts),
                TapSighashType::Default,
            )
            .expect("prevouts match the inputs");
        let msg = Message::from_digest(sighash.to_byte_array());
        let signature = taproot::Signature {
            signature: self.secp.sign_schnorr(&msg, &tweaked),
            sighash_type: TapSighashType::Default,
        };
        tx.input[index].witness = Witness::p2tr_key_spend(&signature);
    }
}

/// Polls `f` every 50 ms until it yields `Some`, failing the test after `secs` seconds.
pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until Esplora lists an output of `txid` paying `address`; returns it and its value.
pub async fn wait_for_output(client: &Esplora, address: &Address, txid: Txid) -> (OutPoint, TxOut) {
    eventually("the faucet payment in the address's utxos", 10, || async {
        let utxos = client.get_address_utxos(address).await.ok()?;
        let utxo = utxos.into_iter().find(|u| u.txid == txid)?;
        let txout = TxOut {
            value: utxo.value,
            script_pubkey: address.script_pubkey(),
        };
        Some((OutPoint::new(txid, utxo.vout), txout))
    })
    .await
}

/// Starts a devnet, failing the test with the reason if it cannot.
pub async fn start() -> Devnet {
    match Devnet::start(devnet::DevnetConfig::default()).await {
        Ok(d) => d,
        Err(e) => panic!("devnet did not start: {e}"),
    }
}
