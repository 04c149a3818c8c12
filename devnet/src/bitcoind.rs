//! The bitcoind child process: finding the binary, choosing loopback ports, starting it on
//! regtest, waiting for its RPC, and stopping it.
//!
//! Guarantee: once [`BitcoindProcess`] is dropped, the process has exited (asked to stop over
//! RPC, killed if it does not within [`STOP_TIMEOUT`]) and a temporary datadir is removed.

use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::DevnetError;
use crate::rpc::{RpcClient, RpcError};

/// Where `cargo xtask setup` installs bitcoind, below the superscalar cache directory.
const CACHED_BITCOIND: &str = "bitcoin-core-libbitcoinkernel-sys-0.4.1/bin/bitcoind";
/// How long bitcoind may take to exit after `stop` before it is killed.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// bitcoind's RPC error code while it is still loading.
const RPC_IN_WARMUP: i64 = -28;
/// The fee the node would use if it had a wallet (accepted, unused, kept for tools that read it).
const FALLBACK_FEE_BTC_PER_KVB: &str = "0.0002";

/// Finds bitcoind: `$BITCOIND`, else the `cargo xtask setup` cache, else `bitcoind` on `PATH`.
pub fn locate_bitcoind() -> Result<PathBuf, DevnetError> {
    if let Some(path) = std::env::var_os("BITCOIND").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(DevnetError::BitcoindEnvMissing(path))
        };
    }
    let cache = std::env::var_os("SUPERSCALAR_CACHE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/superscalar")));
    let cached = cache.map(|c| c.join(CACHED_BITCOIND));
    if let Some(cached) = cached.as_ref().filter(|p| p.is_file()) {
        return Ok(cached.clone());
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(found) = std::env::split_paths(&path)
            .map(|dir| dir.join("bitcoind"))
            .find(|p| p.is_file())
        {
            return Ok(found);
        }
    }
    Err(DevnetError::BitcoindNotFound {
        cached: cached
            .unwrap_or_else(|| PathBuf::from("~/.cache/superscalar").join(CACHED_BITCOIND)),
    })
}

/// Asks the OS for a free loopback port (bind port 0, read it back, release it).
pub(crate) fn free_port() -> Result<u16, DevnetError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    TcpListener::bind(addr)
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| DevnetError::Bind { addr, source })
}

/// Where the node keeps its data.
#[derive(Debug)]
pub(crate) enum Datadir {
    /// A fresh directory removed on drop.
    Temp(TempDir),
    /// A directory the caller owns; kept.
    Persistent(PathBuf),
}

impl Datadir {
    /// A new temporary datadir.
    pub(crate) fn temp() -> Result<Self, DevnetError> {
        tempfile::Builder::new()
            .prefix("superscalar-devnet-")
            .tempdir()
            .map(Datadir::Temp)
            .map_err(|source| DevnetError::Datadir {
                path: std::env::temp_dir(),
                source,
            })
    }

    /// The given directory, created if missing.
    pub(crate) fn persistent(path: PathBuf) -> Result<Self, DevnetError> {
        fs::create_dir_all(&path).map_err(|source| DevnetError::Datadir {
            path: path.clone(),
            source,
        })?;
        Ok(Datadir::Persistent(path))
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            Datadir::Temp(t) => t.path(),
            Datadir::Persistent(p) => p,
        }
    }

    pub(crate) fn is_temporary(&self) -> bool {
        matches!(self, Datadir::Temp(_))
    }
}

/// How to start bitcoind.
#[derive(Debug, Clone)]
pub(crate) struct BitcoindArgs {
    pub(crate) exe: PathBuf,
    pub(crate) rpc_port: u16,
    pub(crate) p2p_port: u16,
    pub(crate) rpc_user: String,
    pub(crate) rpc_password: String,
    /// Passed after the devnet's own arguments.
    pub(crate) extra: Vec<String>,
}

/// A running bitcoind on regtest. Field order matters: the process is stopped in `Drop`
/// before the datadir (a [`TempDir`]) is removed.
#[derive(Debug)]
pub(crate) struct BitcoindProcess {
    child: Option<Child>,
    /// Stops bitcoind if this process dies without dropping us (see [`spawn_watchdog`]).
    watchdog: Option<Child>,
    rpc: RpcClient,
    datadir: Datadir,
}

impl BitcoindProcess {
    /// Starts bitcoind in `datadir` (the datadir is owned from here on, also on error).
    pub(crate) fn spawn(args: &BitcoindArgs, datadir: Datadir) -> Result<Self, DevnetError> {
        let dir = datadir.path().to_path_buf();
        let stderr_path = dir.join("bitcoind.stderr");
        let stderr = File::create(&stderr_path).map_err(|source| DevnetError::Datadir {
            path: stderr_path,
            source,
        })?;
        let child = Command::new(&args.exe)
            .arg("-regtest")
            .arg("-server")
            .arg("-txindex=1")
            .arg("-listen=0")
            .arg("-rpcbind=127.0.0.1")
            .arg("-rpcallowip=127.0.0.1")
            .arg(format!("-rpcport={}", args.rpc_port))
            .arg(format!("-port={}", args.p2p_port))
            .arg(format!("-rpcuser={}", args.rpc_user))
            .arg(format!("-rpcpassword={}", args.rpc_password))
            .arg(format!("-fallbackfee={FALLBACK_FEE_BTC_PER_KVB}"))
            .arg("-rpcworkqueue=256")
            .arg("-debug=0")
            .arg("-printtoconsole=0")
            .arg(format!("-datadir={}", dir.display()))
            .args(&args.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|source| DevnetError::Spawn {
                path: args.exe.clone(),
                source,
            })?;
        tracing::debug!(pid = child.id(), rpc_port = args.rpc_port, datadir = %dir.display(), "bitcoind started");
        let rpc = RpcClient::new(
            format!("http://127.0.0.1:{}", args.rpc_port),
            &args.rpc_user,
            &args.rpc_password,
        );
        let watchdog = spawn_watchdog(child.id(), datadir.is_temporary().then_some(&dir));
        Ok(BitcoindProcess {
            child: Some(child),
            watchdog,
            rpc,
            datadir,
        })
    }

    pub(crate) fn rpc(&self) -> &RpcClient {
        &self.rpc
    }

    pub(crate) fn datadir(&self) -> &Datadir {
        &self.datadir
    }

    /// The OS process id, while running.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits until the RPC answers, failing early (with its output) if bitcoind exits.
    pub(crate) async fn wait_ready(&mut self, timeout: Duration) -> Result<(), DevnetError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.rpc.get_block_count().await {
                Ok(_) => return Ok(()),
                // Not listening yet, or (port clash) someone else's node answering.
                Err(RpcError::Transport { .. } | RpcError::Decode { .. }) => {}
                Err(e) if e.node_error().is_some_and(|(c, _)| c == RPC_IN_WARMUP) => {}
                Err(e) => return Err(e.into()),
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(DevnetError::BitcoindExited {
                        status: status.to_string(),
                        output: self.output_tail(),
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(DevnetError::StartupTimeout(timeout));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the node: RPC `stop`, wait up to [`STOP_TIMEOUT`], then kill.
    pub(crate) async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Err(e) = self.rpc.stop().await {
            tracing::debug!(error = %e, "bitcoind did not take the stop request");
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        kill(&mut child);
        self.end_watchdog();
    }

    /// Ends the watchdog once bitcoind is gone.
    fn end_watchdog(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }

    /// The same as [`stop`](Self::stop), for `Drop`: blocks the calling thread.
    fn stop_blocking(&mut self) {
        let Some(mut child) = self.child.take() else {
            self.end_watchdog();
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            // A fresh client on a private runtime, so this works inside or outside of tokio.
            let (url, (user, password)) = (self.rpc.url().to_owned(), self.rpc.credentials());
            let rpc = RpcClient::new(url, user, password);
            let asked = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| {
                        rt.block_on(async {
                            tokio::time::timeout(Duration::from_secs(5), rpc.stop()).await
                        })
                    })
                    .is_ok_and(|r| matches!(r, Ok(Ok(()))))
            })
            .join()
            .unwrap_or(false);
            if asked {
                let deadline = Instant::now() + STOP_TIMEOUT;
                while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(25));
                }
            }
        }
        kill(&mut child);
        self.end_watchdog();
    }

    /// The last lines bitcoind wrote to stderr and debug.log, for error messages.
    fn output_tail(&self) -> String {
        let dir = self.datadir.path();
        [dir.join("bitcoind.stderr"), dir.join("regtest/debug.log")]
            .iter()
            .filter_map(|p| fs::read_to_string(p).ok())
            .map(|text| {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(15)..].join("\n")
            })
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// True if the startup failure looks like a port somebody else took meanwhile.
    pub(crate) fn is_port_clash(err: &DevnetError) -> bool {
        matches!(err, DevnetError::BitcoindExited { output, .. }
            if output.contains("Unable to bind") || output.contains("Address already in use"))
    }
}

/// Starts a small `sh` loop that sends bitcoind SIGTERM (and then removes a temporary datadir)
/// once this process is gone, for the cases `Drop` never runs: a devnet leaked into a static,
/// `std::process::exit`, SIGKILL. Optional: if `sh` is missing, only `Drop` cleans up.
fn spawn_watchdog(bitcoind: u32, temp_dir: Option<&PathBuf>) -> Option<Child> {
    let me = std::process::id();
    let mut script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; kill -TERM {bitcoind} 2>/dev/null; "
    );
    if let Some(dir) = temp_dir {
        let quoted = dir.display().to_string().replace('\'', "'\\''");
        script.push_str(&format!(
            "while kill -0 {bitcoind} 2>/dev/null; do sleep 1; done; rm -rf '{quoted}'"
        ));
    }
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| tracing::debug!(error = %e, "no watchdog for bitcoind"))
        .ok()
}

/// Kills and reaps the child if it is still running.
fn kill(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        tracing::warn!(
            pid = child.id(),
            "bitcoind did not stop in time; killing it"
        );
        if let Err(e) = child.kill() {
            tracing::warn!(error = %e, "could not kill bitcoind");
        }
    }
    if let Err(e) = child.wait() {
        if e.kind() != io::ErrorKind::InvalidInput {
            tracing::warn!(error = %e, "could not reap bitcoind");
        }
    }
}

impl Drop for BitcoindProcess {
    fn drop(&mut self) {
        self.stop_blocking();
    }
}
