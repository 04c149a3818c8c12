//! Driving the browser wallet in tests: chromedriver, one headless Chromium per wallet (each
//! with its own profile directory, so its own IndexedDB and Web Locks), and the onboarding and
//! join steps as a person would do them, by element id.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use lsp_server::FactoryOptions;

/// A factory of exactly `size` browser wallets, with room for people-paced steps: joining waits
/// up to 10 minutes, rounds up to 2, and the chain is read every 200 ms.
pub fn browser_factory(size: usize) -> FactoryOptions {
    FactoryOptions {
        factory_size: Some(size),
        min_clients: size,
        gather_secs: 600,
        round_timeout_secs: 120,
        reconnect_grace_secs: 30,
        funding_confirmations: Some(1),
        chain_poll_ms: 200,
        ..FactoryOptions::default()
    }
}

/// The built wallet: `WALLET_DIST` (set by `cargo xtask test`), else `web/dist`.
pub fn wallet_dist() -> PathBuf {
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

/// The wallet's address at `page` (any origin serving the built wallet), starting with the
/// provider at `lsp` and reading the chain from `esplora` (the devnet's, which the wallet
/// cannot guess: its regtest default is the demo's port).
pub fn wallet_url(page: &str, lsp: &str, esplora: &str) -> String {
    let page = page.trim_end_matches('/');
    let lsp = lsp.trim_end_matches('/');
    if page == lsp {
        format!("{page}/?esplora={esplora}")
    } else {
        format!("{page}/?lsp={lsp}&esplora={esplora}")
    }
}

/// The first amount in `text` ("1,500 sats (5,000 sats per million)" → 1,500).
pub fn sats_in(text: &str) -> u64 {
    let digits: String = text
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no amount in {text:?}"))
}

/// The chain source the LSP at `lsp` names in its terms (in these tests, the devnet's).
pub async fn lsp_esplora(lsp: &str) -> String {
    let terms: serde_json::Value = reqwest::get(format!("{lsp}/.well-known/superscalar.json"))
        .await
        .expect("GET terms")
        .json()
        .await
        .expect("terms JSON");
    terms["body"]["esplora_url"]
        .as_str()
        .expect("the terms name a chain source")
        .to_string()
}

/// Where screenshots go: `target/screenshots/` of the workspace.
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

/// chromedriver on a free port; killed on drop.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    pub fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("address")
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

    /// A new headless Chromium with its own fresh profile, phone-sized.
    pub async fn browser(&self, name: &str) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let downloads = profile.path().join("downloads");
        std::fs::create_dir_all(&downloads).expect("downloads dir");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": std::env::var("CHROME").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--disable-background-timer-throttling",
                         "--disable-renderer-backgrounding",
                         format!("--window-size={WIDTH},{HEIGHT}"),
                         format!("--user-data-dir={}", profile.path().display())],
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false
                }
            }),
        );
        let url = format!("http://127.0.0.1:{}", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
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
        Browser {
            name: name.into(),
            client,
            _profile: profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One person's browser.
pub struct Browser {
    pub name: String,
    pub client: Client,
    _profile: tempfile::TempDir,
}

/// How long a screen may take to show.
pub const SCREEN: Duration = Duration::from_secs(30);
/// The browsers' window: a large phone, tall enough for a whole screen in one screenshot.
const WIDTH: u32 = 412;
const HEIGHT: u32 = 1400;

impl Browser {
    /// Waits until `css` exists, and returns it.
    pub async fn find(&self, css: &str, limit: Duration) -> fantoccini::elements::Element {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                return el;
            }
            if Instant::now() > deadline {
                let body = self.body_text().await;
                panic!(
                    "{}: {css} did not appear within {limit:?}; page: {body}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The `attr` attribute of `css` (waited for up to [`SCREEN`]), parsed.
    pub async fn parsed_attr<T: std::str::FromStr>(&self, css: &str, attr: &str) -> T {
        let value = self
            .find(css, SCREEN)
            .await
            .attr(attr)
            .await
            .expect("attribute");
        value
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{}: {css} has no {attr} to read: {value:?}", self.name))
    }

    /// The page's visible text (for failure messages).
    /// Waits until the browser has finished downloading `name`, and returns its path.
    pub async fn downloaded(&self, name: &str, limit: Duration) -> std::path::PathBuf {
        let path = self._profile.path().join("downloads").join(name);
        let deadline = Instant::now() + limit;
        while !path.exists() {
            assert!(
                Instant::now() < deadline,
                "{}: {name} was not downloaded within {limit:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        path
    }

    pub async fn body_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(b) => b.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until `css` has non-empty text, and returns it.
    pub async fn text(&self, css: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                if let Ok(t) = el.text().await {
                    if !t.trim().is_empty() {
                        return t;
                    }
                }
            }
            if Instant::now() > deadline {
                let body = self.body_text().await;
                panic!(
                    "{}: {css} has no text within {limit:?}; page: {body}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `css` has non-empty text content, shown or not (inside a closed "Details"),
    /// and returns it.
    pub async fn content(&self, css: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let got = self
                .client
                .execute(
                    "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
                    vec![serde_json::json!(css)],
                )
                .await
                .ok()
                .and_then(|v| v.as_str().map(|s| s.trim().to_string()))
                .unwrap_or_default();
            if !got.is_empty() {
                return got;
            }
            if Instant::now() > deadline {
                let body = self.body_text().await;
                panic!(
                    "{}: {css} has no content within {limit:?}; page: {body}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every `.amount` element on the page that is shown: whether it is one line high (its
    /// height at most 1.5 times its line height), with its text and height, for layout checks.
    pub async fn amount_lines(&self) -> Vec<(String, f64, f64)> {
        let got = self
            .client
            .execute(
                "return Array.from(document.querySelectorAll('.amount'))
                    .filter(e => e.getClientRects().length > 0)
                    .map(e => {
                        const r = e.getBoundingClientRect();
                        const cs = getComputedStyle(e);
                        let lh = parseFloat(cs.lineHeight);
                        if (isNaN(lh)) { lh = parseFloat(cs.fontSize) * 1.2; }
                        return [e.textContent, r.height, lh];
                    });",
                vec![],
            )
            .await
            .expect("the amounts' boxes");
        got.as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        (
                            r[0].as_str().unwrap_or_default().to_string(),
                            r[1].as_f64().unwrap_or_default(),
                            r[2].as_f64().unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Checks that every amount shown on this screen is one line high, and that there is one;
    /// saves a screenshot `<shot>.png` first.
    pub async fn amounts_fit(&self, shot: &str) {
        self.screenshot(shot).await;
        let amounts = self.amount_lines().await;
        assert!(!amounts.is_empty(), "{}: {shot} shows no amount", self.name);
        let broken: Vec<_> = amounts
            .iter()
            .filter(|(_, height, line)| *height > line * 1.5)
            .collect();
        assert!(
            broken.is_empty(),
            "{}: on {shot} these amounts wrap (text, height, line height): {broken:?}",
            self.name
        );
    }

    /// At 390 x 844 (a phone) no amount of the screen wraps ([`Browser::amounts_fit`], which
    /// shoots it as `shot`); then back to the usual window.
    pub async fn on_a_phone(&self, shot: &str) {
        self.resize(390, 844).await;
        self.amounts_fit(shot).await;
        self.resize(WIDTH, HEIGHT).await;
    }

    /// Sets the window to `width` x `height` CSS pixels (a phone: 390 x 844).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize the window");
    }

    /// Waits until attribute `attr` of `css` is `want`.
    pub async fn wait_attr(&self, css: &str, attr: &str, want: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                if let Ok(Some(v)) = el.attr(attr).await {
                    if v == want {
                        return;
                    }
                }
            }
            if Instant::now() > deadline {
                let body = self.body_text().await;
                panic!(
                    "{}: {css}[{attr}] is not {want:?} within {limit:?}; page: {body}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let el = self.find(css, SCREEN).await;
        // Out from under the fixed navigation bar, as a person would scroll.
        let arg = serde_json::to_value(&el).expect("an element serializes");
        let _ = self
            .client
            .execute("arguments[0].scrollIntoView({block: 'center'});", vec![arg])
            .await;
        el.click()
            .await
            .unwrap_or_else(|e| panic!("{}: click {css}: {e}", self.name));
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css, SCREEN).await;
        el.clear().await.ok();
        el.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("{}: type into {css}: {e}", self.name));
    }

    /// Saves a PNG of the page as `target/screenshots/<file>.png`.
    pub async fn screenshot(&self, file: &str) {
        // Let the last render and fonts settle.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(screenshot_dir().join(format!("{file}.png")), png).expect("write png");
    }

    /// Creates a wallet through the onboarding screens: reads the 24 words, types back the
    /// three asked for, and locks it with `passphrase` (or the device key). Returns the words.
    pub async fn create_wallet(
        &self,
        lsp_url: &str,
        passphrase: Option<&str>,
        shots: Option<&str>,
    ) -> Vec<String> {
        let esplora = lsp_esplora(lsp_url).await;
        self.open_wallet(&wallet_url(lsp_url, lsp_url, &esplora), passphrase, shots)
            .await
    }

    /// [`Browser::create_wallet`] from the wallet at `page` (its address with `?lsp=` and
    /// `?esplora=` as needed, see [`wallet_url`]).
    pub async fn open_wallet(
        &self,
        page: &str,
        passphrase: Option<&str>,
        shots: Option<&str>,
    ) -> Vec<String> {
        self.client.goto(page).await.expect("open the wallet");
        self.find("#lsp-name", SCREEN).await;
        if let Some(p) = shots {
            self.text("#tip-height", SCREEN).await;
            self.screenshot(&format!("{p}01-welcome")).await;
        }
        self.click("#create-wallet").await;
        let mut words = Vec::new();
        for i in 1..=24 {
            words.push(self.text(&format!("#seed-word-{i}"), SCREEN).await);
        }
        if let Some(p) = shots {
            self.screenshot(&format!("{p}02-seed-words")).await;
        }
        self.click("#seed-written").await;
        for i in 1..=3 {
            let css = format!("#seed-check-{i}");
            let position: usize = self.parsed_attr(&css, "data-position").await;
            self.type_into(&css, &words[position - 1]).await;
        }
        if let Some(p) = shots {
            self.screenshot(&format!("{p}03-seed-check")).await;
        }
        self.click("#seed-check-submit").await;
        self.find("#no-passphrase", SCREEN).await;
        if let Some(p) = shots {
            self.screenshot(&format!("{p}04-protect")).await;
        }
        match passphrase {
            Some(pass) => {
                self.type_into("#passphrase", pass).await;
                self.type_into("#passphrase-repeat", pass).await;
                self.click("#use-passphrase").await;
            }
            None => self.click("#no-passphrase").await,
        }
        self.find("#balances", SCREEN).await;
        self.wait_attr("#factory-status", "data-phase", "none", SCREEN)
            .await;
        if let Some(p) = shots {
            self.screenshot(&format!("{p}05-home-empty")).await;
        }
        words
    }

    /// Goes to the provider screen, then the join form, and confirms the quote; returns the
    /// quote's fee as the join screen showed it (checked to be its two parts' sum, and said to
    /// be taken from the first payment received).
    pub async fn join(&self, shots: Option<&str>) -> u64 {
        self.click("#nav-lsp").await;
        self.text("#terms-status", SCREEN).await;
        if shots.is_some() {
            // Look a provider up by its address and choose it (here: the same one again).
            let origin = self.client.current_url().await.expect("url");
            let origin = origin.origin().ascii_serialization();
            self.type_into("#lsp-url", &origin).await;
            self.click("#lsp-add").await;
            let check = self.text("#lsp-candidate #terms-status", SCREEN).await;
            assert!(check.contains("signed"), "{check}");
        }
        if let Some(p) = shots {
            self.screenshot(&format!("{p}06-provider")).await;
            self.click("#choose-lsp").await;
            self.text("#lsp-chosen #terms-status", SCREEN).await;
        }
        self.click("#go-join").await;
        let fee = sats_in(&self.text("#quote-fee", SCREEN).await);
        let parts = sats_in(&self.text("#quote-join-fee", SCREEN).await)
            + sats_in(&self.text("#quote-liquidity-fee", SCREEN).await);
        assert_eq!(
            parts, fee,
            "the join fee and the liquidity fee add up to the fee"
        );
        let when = self.text("#quote-fee-when", SCREEN).await;
        assert!(when.contains("first payment you receive"), "{when}");
        if let Some(p) = shots {
            self.screenshot(&format!("{p}07-join-quote")).await;
            self.on_a_phone(&format!("{p}07b-join-quote-phone")).await;
        }
        self.click("#join").await;
        self.find("#join-progress", SCREEN).await;
        fee
    }
}

/// Mines a block a second until `css[attr] == want` in every browser (or `limit`).
pub async fn mine_until(
    stack: &crate::common::Stack,
    browsers: &[&Browser],
    (css, attr, want): (&str, &str, &str),
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    loop {
        let mut reached = 0;
        for b in browsers {
            if let Ok(el) = b.client.find(Locator::Css(css)).await {
                if el.attr(attr).await.ok().flatten().as_deref() == Some(want) {
                    reached += 1;
                }
            }
        }
        if reached == browsers.len() {
            return;
        }
        if Instant::now() > deadline {
            let mut pages = String::new();
            for b in browsers {
                pages += &format!("\n--- {}: {}", b.name, b.body_text().await);
            }
            panic!("{css}[{attr}={want}] not reached in every wallet; pages:{pages}");
        }
        stack.devnet.mine(1).await.expect("mine");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Waits until the text of `css` is `want`.
pub async fn text_becomes(b: &Browser, css: &str, want: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(el) = b.client.find(Locator::Css(css)).await {
            if el.text().await.ok().as_deref() == Some(want) {
                return;
            }
        }
        if Instant::now() > deadline {
            panic!(
                "{}: {css} is not {want:?} within {limit:?}; page: {}",
                b.name,
                b.body_text().await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A factory of two, live: a new browser wallet `name` joins it with a native wallet as the
/// other member (the stack's factories must be of two, e.g. [`browser_factory`]`(2)`). Returns
/// the browser, the other member's leaf, and the browser's client index.
pub async fn beside_a_native_member(
    stack: &crate::common::Stack,
    driver: &Driver,
    name: &str,
) -> (Browser, wallet::pay::PayLeaf, u32) {
    let (a, run, mine) = beside_a_native_run(stack, driver, name).await;
    (a, crate::common::pay::leaf_of(&run), mine)
}

/// [`beside_a_native_member`], returning the other member's whole run (its identity keys too,
/// for a wallet that joins another factory as the same member).
pub async fn beside_a_native_run(
    stack: &crate::common::Stack,
    driver: &Driver,
    name: &str,
) -> (Browser, crate::common::swarm::ClientRun, u32) {
    use crate::common::swarm::{self, ClientSpec};
    let a = driver.browser(name).await;
    a.create_wallet(&stack.http_url(), None, None).await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = crate::common::swarm_config(stack, storage.path());
    let mut clients = swarm::spawn(&config, &[ClientSpec::honest()]);
    a.join(None).await;
    a.wait_attr(
        "#step-stored",
        "data-state",
        "done",
        Duration::from_secs(180),
    )
    .await;
    let heard = clients
        .wait_for(Duration::from_secs(90), |log| {
            swarm::broadcast_heard(log, 0..1)
        })
        .await;
    assert!(heard, "the other member hears of the funding");
    stack.devnet.mine(1).await.expect("mine");
    let (mut runs, _) = clients.finish(Duration::from_secs(60)).await;
    let run = runs.remove(0);
    let mine = 1 - crate::common::pay::leaf_of(&run).channel.client.0;
    a.wait_attr("#step-open", "data-state", "done", Duration::from_secs(60))
        .await;
    a.click("#join-home").await;
    a.wait_attr("#factory-status", "data-phase", "live", SCREEN)
        .await;
    (a, run, mine)
}

/// Checks that nothing matches `css` now.
pub async fn absent(b: &Browser, css: &str) {
    let found = b.client.find(Locator::Css(css)).await;
    assert!(
        found.is_err(),
        "{}: {css} is shown; page: {}",
        b.name,
        b.body_text().await
    );
}

impl Browser {
    /// What "Get test sats" asks for (its button's `data-sats`).
    pub async fn faucet_offer(&self) -> u64 {
        // The offer is 0 until the wallet's first snapshot of its channel says what it can
        // receive, which may come a moment after it shows itself connected.
        let deadline = Instant::now() + SCREEN;
        loop {
            let offer: u64 = self.parsed_attr("#faucet", "data-sats").await;
            if offer > 0 {
                return offer;
            }
            assert!(
                Instant::now() < deadline,
                "{}: the faucet offers nothing within {SCREEN:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The wallet's own on-chain address (where leaving pays), as Home shows it.
    pub async fn sweep_address(&self) -> bitcoin::Address {
        self.text("#sweep-address", SCREEN)
            .await
            .parse::<bitcoin::Address<_>>()
            .expect("an address")
            .require_network(bitcoin::Network::Regtest)
            .expect("a regtest address")
    }
}

impl Browser {
    /// Confirms the liquidity purchase quoted on Home and waits until its steps are done.
    pub async fn confirm_liquidity(&self) {
        self.click("#liquidity-buy").await;
        self.wait_attr(
            "#liquidity-progress",
            "data-step",
            "done",
            Duration::from_secs(60),
        )
        .await;
    }

    /// The balance Home shows, once it is above zero and stays the same for two seconds.
    pub async fn settled_balance(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = 0;
        loop {
            let now = sats_in(&self.text("#balance", SCREEN).await);
            if now > 0 && now == last {
                return now;
            }
            last = now;
            assert!(
                Instant::now() < deadline,
                "{}: the balance settles above zero",
                self.name
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Reloads the page and unlocks the wallet (kept under the device key).
    pub async fn reload(&self) {
        self.client.refresh().await.expect("reload");
        self.click("#unlock").await;
        self.find("#balances", SCREEN).await;
    }
}

/// Checks that Home shows the factory of `new` (its funding, phase, countdown and picture),
/// nothing of `old`'s picture, `balance`, and no dying banner (`new` and `old` are another
/// member's leaves of the two factories: the browser's picture shares their upper part).
pub async fn home_shows_factory(
    a: &Browser,
    new: &wallet::pay::PayLeaf,
    old: &wallet::pay::PayLeaf,
    balance: u64,
) {
    let funding = new.path.funding_outpoint().txid.to_string();
    let deadline = Instant::now() + SCREEN;
    while a.content("#funding-txid", SCREEN).await != funding {
        assert!(
            Instant::now() < deadline,
            "{}: Home shows the new factory; page: {}",
            a.name,
            a.body_text().await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    a.wait_attr("#factory-status", "data-phase", "live", SCREEN)
        .await;
    let proposal = new.path.proposal();
    let dying_at = proposal.creation_height.to_consensus_u32() + proposal.params.active.to_blocks();
    let dying_in = a.text("#dying-in", SCREEN).await;
    assert!(
        dying_in.starts_with("in ") && dying_in.contains(&format!("at block {dying_at}")),
        "{dying_in}"
    );
    let shared = |p: &wallet::pay::PayLeaf| {
        let nodes = p.path.nodes();
        nodes[..nodes.len() - 1]
            .iter()
            .map(|n| n.txid())
            .collect::<Vec<_>>()
    };
    for txid in shared(new) {
        a.find(&format!("g.tree-node[data-txid='{txid}']"), SCREEN)
            .await;
    }
    for txid in shared(old) {
        absent(a, &format!("g.tree-node[data-txid='{txid}']")).await;
    }
    let want = wallet::format::sats(bitcoin::Amount::from_sat(balance));
    text_becomes(a, "#balance", &want, SCREEN).await;
    absent(a, "#dying-banner").await;
}
