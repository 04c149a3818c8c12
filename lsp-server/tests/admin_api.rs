//! The operator's interface against a real LSP: the admin API and `/metrics` refuse requests
//! without the bearer token, show a gathering ceremony live, and report the funded factory,
//! its clients and the wallet as the database holds them.

mod common;

use std::time::{Duration, Instant};

use bitcoin::Amount;
use common::swarm::{self, ClientSpec};
use lsp_server::FactoryOptions;
use serde_json::Value;

async fn get(stack: &common::Stack, path: &str, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(format!("{}{path}", stack.http_url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the LSP answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

async fn admin(stack: &common::Stack, path: &str) -> Value {
    let (status, body) = get(stack, path, Some(common::ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_and_metrics_report_a_factory_from_gathering_to_funded() {
    let options = FactoryOptions {
        gather_secs: 4,
        ..common::fast_factory(5, 2)
    };
    let stack = common::start_with(options, None).await;
    common::fund_lsp(&stack, Amount::from_sat(1_000_000)).await;

    // No token, or a wrong one: refused, and the body says what to do.
    for path in [
        "/admin/status",
        "/admin/factories",
        "/admin/wallet",
        "/metrics",
    ] {
        let (status, body) = get(&stack, path, None).await;
        assert_eq!(status, 401, "{path} without a token");
        assert!(body.contains("Authorization: Bearer"), "{body}");
        let (status, _) = get(&stack, path, Some("not-the-token")).await;
        assert_eq!(status, 401, "{path} with a wrong token");
    }

    let status = admin(&stack, "/admin/status").await;
    assert_eq!(status["network"], "regtest");
    assert_eq!(status["factory_size"], 5);
    let wallet = admin(&stack, "/admin/wallet").await;
    assert_eq!(wallet["confirmed_sat"], 1_000_000);
    assert!(wallet["receive_address"]
        .as_str()
        .is_some_and(|a| a.starts_with("bcrt1")));
    let again = admin(&stack, "/admin/wallet").await;
    assert_eq!(
        wallet["receive_address"], again["receive_address"],
        "looking does not use up addresses"
    );
    let terms = admin(&stack, "/admin/terms").await;
    assert!(terms["body"]["lsp_pubkey"].is_string(), "{terms}");
    // No --ln-listen, no Lightning node: its routes say how to turn it on.
    let (status, body) = get(&stack, "/admin/ln/channels", Some(common::ADMIN_TOKEN)).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("--ln-listen"), "{body}");
    assert!(!stack.data_dir.path().join("ln.seed").exists());

    // Four of five slots fill; the coordinator shows them gathering.
    let storage = tempfile::tempdir().expect("temp dir");
    let config = common::swarm_config(&stack, storage.path());
    let mut clients = swarm::spawn(&config, &[ClientSpec::honest(); 4]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let live = admin(&stack, "/admin/ceremonies").await;
        let gathering = live["ceremonies"]
            .as_array()
            .and_then(|l| l.first())
            .cloned();
        if let Some(c) = gathering.filter(|c| c["members"].as_array().map(Vec::len) == Some(4)) {
            assert_eq!(c["factory"], 1);
            assert_eq!(c["phase"], "gathering", "{c}");
            assert!(c["members"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["connected"] == true));
            break;
        }
        assert!(Instant::now() < deadline, "four members gathering: {live}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Gathering ends with four; they sign, the funding confirms.
    assert!(
        clients
            .wait_for(Duration::from_secs(60), |log| swarm::broadcast_heard(
                log,
                0..4
            ))
            .await,
        "the factory reaches its funding broadcast"
    );
    stack.devnet.mine(1).await.expect("mine");
    let (runs, _) = clients.finish(Duration::from_secs(60)).await;
    for run in &runs {
        common::assert_verified_path(&stack.devnet, run).await;
    }
    common::wait_state(&stack, 1, "funded", 10).await;

    let factories = admin(&stack, "/admin/factories").await;
    let f = &factories[0];
    assert_eq!(
        (f["id"].as_u64(), f["state"].as_str()),
        (Some(1), Some("funded"))
    );
    assert_eq!(f["members"], 4);
    assert_eq!(f["excluded"], 0);
    assert!(f["funding_txid"].is_string());
    assert!(f["channel_sat"].as_u64().is_some_and(|s| s > 0));
    let one = admin(&stack, "/admin/factories/1").await;
    assert_eq!(one["clients"].as_array().map(Vec::len), Some(4));
    let (status, _) = get(&stack, "/admin/factories/99", Some(common::ADMIN_TOKEN)).await;
    assert_eq!(status, 404);
    let all = admin(&stack, "/admin/clients").await;
    assert_eq!(all.as_array().map(Vec::len), Some(4));
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["status"] == "member" && c["factory"] == 1));
    let live = admin(&stack, "/admin/ceremonies").await;
    assert!(
        live["ceremonies"]
            .as_array()
            .is_some_and(|l| l.iter().all(|c| c["factory"] != 1)),
        "a funded factory is no longer in progress: {live}"
    );
    // The coordinator still knows the four (a wallet that was away learns the outcome when it
    // comes back).
    assert_eq!(live["known_wallets"], 4, "{live}");

    let (status, metrics) = get(&stack, "/metrics", Some(common::ADMIN_TOKEN)).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("superscalar_factories{state=\"funded\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("superscalar_factory_clients 4\n"),
        "{metrics}"
    );
    let authenticated: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("superscalar_ws_authenticated_total "))
        .and_then(|v| v.parse().ok())
        .expect("the authentication counter");
    assert!(authenticated >= 4, "{metrics}");
    assert!(
        metrics.contains("superscalar_chain_tip_height "),
        "{metrics}"
    );
    assert!(!metrics.contains("superscalar_ln_"), "{metrics}");
}
