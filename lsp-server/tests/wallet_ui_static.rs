//! The wallet served from its own static origin, not by the LSP: a plain static file server on
//! another loopback port serves the built bundle, and two real headless Chromiums open it with
//! the provider's address (`?lsp=`) and the devnet's chain source (`?esplora=`), create wallets
//! and join one factory against a real LSP that serves no wallet at all. The LSP answers their
//! cross-origin reads (terms, a gathering factory) and not the admin API's. The service worker
//! keeps the bundle: with the static server down, the installed wallet still opens and shows
//! its live factory. The built bundle holds its manifest, icons and service worker.
//!
//! Screenshots: `target/screenshots/static-*.png`.

mod common;
mod wallet_ui_support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::Router;
use bitcoin::Amount;
use tower_http::services::ServeDir;
use wallet_ui_support::{browser_factory, wallet_dist, wallet_url, Driver, SCREEN};

/// A static file server for `dir` on a free loopback port; answers 503 to everything while
/// `down` is set. Returns its origin.
async fn static_host(dir: &Path, down: Arc<AtomicBool>) -> String {
    let app = Router::new()
        .fallback_service(ServeDir::new(dir))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let down = down.clone();
                async move {
                    if down.load(Ordering::SeqCst) {
                        return (StatusCode::SERVICE_UNAVAILABLE, "the host is down")
                            .into_response();
                    }
                    next.run(req).await
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// The bundle holds its manifest (with icons that exist), its service worker (listing every
/// other file of the bundle) and an index that links and registers both.
fn check_bundle(dist: &Path) {
    let read = |name: &str| {
        std::fs::read_to_string(dist.join(name))
            .unwrap_or_else(|e| panic!("{name} is not in the built wallet: {e}"))
    };
    let manifest: serde_json::Value =
        serde_json::from_str(&read("manifest.webmanifest")).expect("the manifest is JSON");
    assert_eq!(manifest["display"], "standalone");
    let icons = manifest["icons"].as_array().expect("icons");
    assert!(!icons.is_empty());
    for icon in icons {
        let src = icon["src"].as_str().expect("an icon's src");
        assert!(dist.join(src).is_file(), "icon {src} is missing");
    }
    let index = read("index.html");
    assert!(
        index.contains(r#"rel="manifest" href="manifest.webmanifest""#),
        "{index}"
    );
    assert!(index.contains(r#"register("sw.js")"#), "{index}");
    let sw = read("sw.js");
    assert!(
        !sw.contains("__BUNDLE__"),
        "the build wrote the bundle into sw.js"
    );
    for entry in std::fs::read_dir(dist).expect("dist") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .to_string();
        if name != "sw.js" && name != "index.html" {
            assert!(
                sw.contains(&format!("\"{name}\"")),
                "sw.js does not keep {name}"
            );
        }
    }
}

/// Whether `origin` may read `url` from a page on another origin, as the LSP answers.
async fn readable_from_elsewhere(url: &str) -> Option<String> {
    let response = reqwest::Client::new()
        .get(url)
        .header("origin", "http://wallet.example")
        .send()
        .await
        .expect("the LSP answers");
    response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().expect("ascii").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallet_runs_from_any_static_origin_and_opens_offline() {
    let dist = wallet_dist();
    check_bundle(&dist);
    let stack = common::start_with(browser_factory(2), None).await;
    common::fund_lsp(&stack, Amount::from_sat(10_000_000)).await;
    let lsp = stack.http_url();
    let esplora = stack.devnet.esplora_url().to_string();

    // What the wallet reads over HTTP is readable from any origin; the admin API is not.
    let terms = format!("{lsp}/.well-known/superscalar.json");
    assert_eq!(readable_from_elsewhere(&terms).await.as_deref(), Some("*"));
    assert_eq!(
        readable_from_elsewhere(&format!("{lsp}/admin/status")).await,
        None
    );
    // This LSP serves no wallet.
    let root = reqwest::get(format!("{lsp}/"))
        .await
        .expect("the LSP answers");
    assert_eq!(root.status(), reqwest::StatusCode::NOT_FOUND);

    let down = Arc::new(AtomicBool::new(false));
    let host = static_host(&dist, down.clone()).await;
    assert_ne!(host, lsp);
    let page = wallet_url(&host, &lsp, &esplora);

    let driver = Driver::start();
    let a = driver.browser("static-a").await;
    let b = driver.browser("static-b").await;
    a.open_wallet(&page, None, Some("static-")).await;
    b.open_wallet(&page, None, None).await;
    a.click("#nav-lsp").await;
    let origin = a.text("#lsp-chosen #lsp-origin", SCREEN).await;
    assert_eq!(
        origin, lsp,
        "the wallet's provider is the LSP, not the page's host"
    );
    a.join(None).await;
    b.join(None).await;
    // The gathering factory's count is read across origins while it waits.
    for w in [&a, &b] {
        w.wait_attr(
            "#step-stored",
            "data-state",
            "done",
            Duration::from_secs(180),
        )
        .await;
    }
    stack.devnet.mine(1).await.expect("mine");
    a.wait_attr("#step-open", "data-state", "done", Duration::from_secs(60))
        .await;
    a.click("#join-home").await;
    a.wait_attr("#factory-status", "data-phase", "live", SCREEN)
        .await;
    let funding = a.content("#funding-txid", SCREEN).await;
    a.screenshot("static-home-live").await;

    // The service worker took the page; then the host goes down and the wallet still opens.
    let deadline = std::time::Instant::now() + SCREEN;
    loop {
        let controlled = a
            .client
            .execute("return !!navigator.serviceWorker.controller;", vec![])
            .await
            .expect("script runs");
        if controlled == serde_json::json!(true) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no service worker controls the wallet"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    down.store(true, Ordering::SeqCst);
    let gone = reqwest::get(format!("{host}/index.html"))
        .await
        .expect("the host answers");
    assert_eq!(gone.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    a.client.refresh().await.expect("reload");
    a.click("#unlock").await;
    a.wait_attr("#factory-status", "data-phase", "live", SCREEN)
        .await;
    assert_eq!(a.content("#funding-txid", SCREEN).await, funding);
    a.screenshot("static-offline-reopened").await;

    for w in [a, b] {
        w.client.close().await.expect("close the browser");
    }
}
