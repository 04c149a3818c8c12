//! End to end in a real headless Chromium: the wallet page served by the LSP connects over
//! WebSocket, shows the LSP's signed terms, and shows the tip height it read from Esplora.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};

/// The built wallet: `WALLET_DIST` (set by `cargo xtask test`), else `web/dist`.
fn wallet_dist() -> PathBuf {
    let dist = std::env::var_os("WALLET_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("web")
                .join("dist")
        });
    assert!(
        dist.join("index.html").is_file(),
        "no built wallet at {}; run the tests with `cargo xtask test` (it builds web/ with Trunk)",
        dist.display()
    );
    dist
}

/// chromedriver on a free port; killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}; run `cargo xtask setup`"));
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn text_of(client: &fantoccini::Client, css: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(el) = client.find(Locator::Css(css)).await {
            if let Ok(t) = el.text().await {
                if !t.is_empty() {
                    return t;
                }
            }
        }
        if Instant::now() > deadline {
            let status = match client.find(Locator::Css("#lsp-status")).await {
                Ok(el) => el.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            panic!("{css} did not appear within {limit:?} (status: {status:?})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn wallet_page_shows_terms_and_tip_height() {
    let stack = common::start(Some(wallet_dist())).await;
    stack.devnet.mine(5).await.expect("mine");
    let height = stack
        .devnet
        .height()
        .await
        .expect("height")
        .to_consensus_u32();

    let driver = Driver::start();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": std::env::var("CHROME").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync"]
        }),
    );
    let url = format!("http://127.0.0.1:{}", driver.port);
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromedriver did not start a session: {e}"),
        }
    };

    client
        .goto(&stack.http_url())
        .await
        .expect("open the wallet");
    let name = text_of(&client, "#lsp-name", Duration::from_secs(30)).await;
    assert_eq!(name, "test LSP");
    assert_eq!(
        text_of(&client, "#lsp-network", Duration::from_secs(5)).await,
        "regtest"
    );
    assert!(text_of(&client, "#terms-status", Duration::from_secs(5))
        .await
        .contains("signed"));
    // The wallet works out a worst-case exit itself from the signed parameters, before joining.
    let exit = text_of(&client, "#exit-cost", Duration::from_secs(5)).await;
    assert!(
        exit.contains("transactions") && exit.contains("blocks of waiting"),
        "{exit}"
    );
    let shown: u32 = text_of(&client, "#tip-height", Duration::from_secs(30))
        .await
        .parse()
        .expect("the tip height is a number");
    assert!(
        shown >= height,
        "page shows height {shown}, chain is at {height}"
    );

    client.close().await.expect("close the browser");
}
