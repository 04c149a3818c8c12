//! What the networked benches share: a devnet, a funded LSP running as its own process (so its
//! memory is its own), and reading a process's memory.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use bitcoin::{Amount, Network};
use devnet::Devnet;
use lsp_server::wallet::LspWallet;

/// The LSP process; killed on drop.
pub struct Lsp {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// How it was started (to start it again).
    command: Vec<std::ffi::OsString>,
    log_path: std::path::PathBuf,
}

impl Drop for Lsp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Lsp {
    /// Funds a wallet in `data_dir` with `funds`, then starts `lsp-server` on it with factories
    /// of `size` clients and the `extra` flags, and waits until it answers.
    pub async fn start(
        devnet: &Devnet,
        data_dir: &Path,
        funds: Amount,
        size: usize,
        extra: &[&str],
    ) -> Lsp {
        {
            let wallet = LspWallet::open(data_dir, Network::Regtest, devnet.esplora_url())
                .await
                .expect("LSP wallet");
            let address = wallet.next_address().expect("address");
            devnet.faucet(&address, funds).await.expect("faucet");
            devnet.mine(1).await.expect("mine");
            wallet.sync().await.expect("sync");
        }
        let port = free_port();
        let log_path = std::env::var("BENCH_LSP_LOG_FILE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| data_dir.join("lsp.log"));
        let mut command: Vec<std::ffi::OsString> = [
            "--network",
            "regtest",
            "--esplora-url",
            devnet.esplora_url(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--factory-size",
            &size.to_string(),
            "--min-clients",
            "1",
            "--gather-secs",
            "900",
            "--round-timeout-secs",
            "600",
            "--reconnect-grace-secs",
            "120",
            "--funding-confirmations",
            "1",
            "--chain-poll-ms",
            "200",
        ]
        .iter()
        .map(Into::into)
        .collect();
        command.push("--data-dir".into());
        command.push(data_dir.into());
        command.extend(extra.iter().map(Into::into));
        let lsp = Lsp {
            child: spawn(&command, &log_path, false),
            port,
            command,
            log_path,
        };
        lsp.wait_healthy().await;
        lsp
    }

    /// Stops the process (as a crash would) and starts it again on the same data dir; returns
    /// how long it took from the new process's start until it answered, the start-up a
    /// restart costs (it restores every factory and channel before it listens).
    #[allow(dead_code)] // only the payments bench restarts the LSP
    pub async fn restart(&mut self) -> Duration {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let started = Instant::now();
        self.child = spawn(&self.command, &self.log_path, true);
        self.wait_healthy().await;
        started.elapsed()
    }

    async fn wait_healthy(&self) {
        let health = format!("http://127.0.0.1:{}/healthz", self.port);
        let started = Instant::now();
        while reqwest::get(&health).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the LSP starts"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Its process id.
    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Its WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// Settings for a swarm of native wallets joining this LSP, storing under `storage`.
    pub fn swarm_config(&self, devnet: &Devnet, storage: &Path) -> crate::swarm::SwarmConfig {
        crate::swarm::SwarmConfig {
            ws_url: self.ws_url(),
            esplora_url: devnet.esplora_url().to_string(),
            network: Network::Regtest,
            confirmations: 1,
            storage_root: storage.to_path_buf(),
            reconnect_attempts: 20,
            reconnect_delay: Duration::from_millis(500),
            grace_secs: 600,
        }
    }

    /// Its peak resident memory so far, MB.
    pub fn peak_mb(&self) -> f64 {
        status_mb(&self.pid(), "VmHWM:")
    }

    /// CPU seconds it has used so far (all threads, user and system).
    #[allow(dead_code)] // only the payments bench reads CPU time
    pub fn cpu_s(&self) -> f64 {
        cpu_s(&self.pid())
    }
}

/// Starts `lsp-server` with `args`, its output to `log_path` (appended to on a restart).
fn spawn(args: &[std::ffi::OsString], log_path: &Path, append: bool) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .open(log_path)
        .expect("log file");
    Command::new(env!("CARGO_BIN_EXE_lsp-server"))
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_LSP_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("start the lsp-server binary")
}

/// CPU seconds process `pid` (`"self"` for this one) has used: `utime + stime` of
/// `/proc/<pid>/stat`, in clock ticks of 1/100 s (Linux's `USER_HZ` on every architecture).
#[allow(dead_code)] // only the payments bench reads CPU time
pub fn cpu_s(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) start at `state`.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| f.get(i)?.parse::<f64>().ok();
            Some((ticks(11)? + ticks(12)?) / 100.0)
        })
        .unwrap_or(0.0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `field` (kB) of `/proc/<pid>/status`, in MB.
pub fn status_mb(pid: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A multi-threaded runtime running `f`.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// The first non-flag argument as N, or `default`.
pub fn arg_n(default: usize) -> usize {
    std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// Polls `h` until its snapshot satisfies `done` (at most 300 s), and returns that snapshot.
#[allow(dead_code)] // the swarm bench runs no payment client
pub async fn wait(
    h: &wallet::pay::PayHandle,
    done: impl Fn(&wallet::pay::Snapshot) -> bool,
) -> wallet::pay::Snapshot {
    let started = Instant::now();
    loop {
        let s = h.snapshot().await.expect("snapshot");
        if done(&s) {
            return s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "timed out: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for every wallet of `clients` to hear of the funding, mines it, and returns the runs.
#[allow(dead_code)] // the swarm bench pays nothing
pub async fn funded(
    devnet: &Devnet,
    mut clients: crate::swarm::Swarm,
    n: usize,
) -> Vec<crate::swarm::ClientRun> {
    let heard = clients
        .wait_for(Duration::from_secs(1200), |log| {
            crate::swarm::broadcast_heard(log, 0..n)
        })
        .await;
    assert!(heard, "every wallet hears of the funding broadcast");
    devnet.mine(1).await.expect("mine");
    clients.finish(Duration::from_secs(600)).await.0
}

#[allow(dead_code)] // the swarm bench pays nothing
pub fn leaf(run: &crate::swarm::ClientRun) -> wallet::pay::PayLeaf {
    let report = run.result.as_ref().expect("session");
    let stored = report.path.clone().expect("path");
    wallet::pay::PayLeaf {
        channel: shared::pay::ChannelId {
            factory: stored.factory,
            client: stored.path.client(),
        },
        path: stored.path,
        factory_secret: run.factory_secret,
        join_fee: report.quote.expect("the LSP quoted the join").fee,
    }
}

/// Starts a payment client of `leaves` against `lsp`; its handle and task.
#[allow(dead_code)] // the swarm bench runs no payment client
pub fn start_client(
    devnet: &Devnet,
    lsp: &Lsp,
    keys: bitcoin::secp256k1::Keypair,
    leaves: Vec<wallet::pay::PayLeaf>,
    store: wallet::pay::MemoryPayStore,
) -> (wallet::pay::PayHandle, tokio::task::JoinHandle<()>) {
    let chain = wallet::session::EsploraChain::new(devnet.esplora_url()).expect("esplora");
    let (client, handle) = wallet::pay::PayClient::new(
        wallet::pay::PayConfig::new(Network::Regtest, keys, leaves),
        wallet::session::WsConnector::new(lsp.ws_url()),
        store,
        chain,
    );
    let task = tokio::spawn(async move {
        client.run().await.expect("payment client runs");
    });
    (handle, task)
}
