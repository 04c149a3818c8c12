//! The wallet's own chain view, against a real LSP on the devnet: a wallet whose chain source
//! cannot be read does not join; a wallet whose chain source fails, or says the tip is far below
//! what the wallet has already seen, when the proposal comes refuses to sign it and says why.
//! Each faulty source is a tiny HTTP server in the test in front of the devnet's Esplora.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use bitcoin::secp256k1::{Keypair, Secp256k1, SecretKey};
use bitcoin::{Amount, Network};
use shared::ceremony::{ClientConfig, ClientOutcome};
use wallet::session::{
    EsploraChain, MemoryStorage, Session, SessionConfig, SessionError, SessionReport, WsConnector,
};

/// What a faulty chain source does after answering its first tip read truthfully.
#[derive(Clone, Copy)]
enum Fault {
    /// Answers every later read with an HTTP error.
    Fails,
    /// Says the tip is this many blocks below the real one.
    Lies(u32),
}

struct Proxy {
    real: String,
    fault: Fault,
    reads: AtomicUsize,
}

async fn tip(State(proxy): State<Arc<Proxy>>) -> Result<String, (StatusCode, &'static str)> {
    let real: u32 = reqwest::get(format!("{}/blocks/tip/height", proxy.real))
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|_| (StatusCode::BAD_GATEWAY, "devnet unreachable"))?
        .text()
        .await
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or((StatusCode::BAD_GATEWAY, "devnet answered nonsense"))?;
    if proxy.reads.fetch_add(1, Ordering::SeqCst) == 0 {
        return Ok(real.to_string());
    }
    match proxy.fault {
        Fault::Fails => Err((StatusCode::SERVICE_UNAVAILABLE, "the index is rebuilding")),
        Fault::Lies(by) => Ok(real.saturating_sub(by).to_string()),
    }
}

/// Serves `/blocks/tip/height` from `real` with `fault`; returns its base URL.
async fn faulty_esplora(real: &str, fault: Fault) -> String {
    let state = Arc::new(Proxy {
        real: real.trim_end_matches('/').to_string(),
        fault,
        reads: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/blocks/tip/height", get(tip))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

/// One wallet session reading the chain at `esplora`.
fn join(
    stack: &common::Stack,
    esplora: &str,
) -> tokio::task::JoinHandle<Result<SessionReport, SessionError>> {
    let secp = Secp256k1::new();
    let identity = Keypair::new(&secp, &mut rand::thread_rng());
    let mut config = SessionConfig::new(
        Network::Regtest,
        identity,
        ClientConfig {
            secret_key: SecretKey::new(&mut rand::thread_rng()),
            channel: Amount::from_sat(20_000),
            liquidity: Amount::from_sat(20_000),
            max_fee: Amount::from_sat(10_000),
            grace_secs: 10,
        },
    );
    config.reconnect_attempts = 3;
    config.reconnect_delay = Duration::from_millis(300);
    let chain = EsploraChain::new(esplora).expect("valid URL");
    let session = Session::new(
        config,
        WsConnector::new(stack.ws_url()),
        MemoryStorage::default(),
        chain,
    );
    tokio::spawn(session.run())
}

fn refusal(result: Result<SessionReport, SessionError>) -> String {
    match result.expect("the session ends with an outcome").outcome {
        ClientOutcome::Refused { reason } => reason.as_str().to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_that_cannot_trust_its_chain_source_signs_nothing() {
    let stack = common::start_with(common::fast_factory(2, 2), None).await;
    common::fund_lsp(&stack, Amount::from_sat(1_000_000)).await;
    let devnet = stack.devnet.esplora_url().to_string();

    // Nothing listens: the wallet does not even join, and names the source.
    let closed = format!("http://{}", closed_port());
    let err = join(&stack, &closed)
        .await
        .expect("no panic")
        .expect_err("no chain, no join");
    let words = err.to_string();
    assert!(matches!(err, SessionError::ChainUnreadable(_)), "{words}");
    assert!(
        words.contains(&format!("cannot read the chain from {closed}"))
            && words.ends_with("not joining"),
        "{words}"
    );

    // Two wallets whose sources answer the first read, then fail or lie when the proposal comes.
    let failing = faulty_esplora(&devnet, Fault::Fails).await;
    let lying = faulty_esplora(&devnet, Fault::Lies(100)).await;
    let a = join(&stack, &failing);
    let b = join(&stack, &lying);
    let (a, b) = tokio::time::timeout(Duration::from_secs(60), async {
        (a.await.expect("no panic"), b.await.expect("no panic"))
    })
    .await
    .expect("both sessions end");

    let why = refusal(a);
    assert!(
        why.contains(&format!("cannot read the chain from {failing}"))
            && why.ends_with("not signing"),
        "{why}"
    );
    let why = refusal(b);
    assert!(
        why.contains(&format!(
            "the chain source at {lying} says the tip is block"
        )) && why.contains("this wallet has already seen")
            && why.ends_with("not signing"),
        "{why}"
    );
}
