//! The real `watchtower` binary as a child process, and its status endpoint.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use devnet::Devnet;
use serde_json::Value;
use shared::pay::ChannelId;
use tokio::process::{Child, Command};

/// One run of the tower binary.
pub struct TowerProcess {
    child: Child,
    pub url: String,
}

impl TowerProcess {
    /// Starts the binary on `addr`, keeping its store in `data_dir`, passing every 300 ms.
    pub async fn start(devnet: &Devnet, data_dir: &Path, addr: SocketAddr) -> TowerProcess {
        Self::start_with(devnet, data_dir, addr, &[]).await
    }

    /// [`TowerProcess::start`] with `extra` flags (e.g. `--fee-wallet`).
    pub async fn start_with(
        devnet: &Devnet,
        data_dir: &Path,
        addr: SocketAddr,
        extra: &[&str],
    ) -> TowerProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_watchtower"))
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--esplora-url")
            .arg(devnet.esplora_url())
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--poll-ms", "300"])
            .args(extra)
            .env("RUST_LOG", "info,lsp_server=debug")
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the watchtower binary starts");
        let url = format!("http://{addr}");
        super::process::answers(&url, "the tower").await;
        TowerProcess { child, url }
    }

    /// What the tower holds and did for `channel` of `identity` (`Null` if nothing).
    pub async fn status(
        &self,
        identity: &bitcoin::secp256k1::XOnlyPublicKey,
        channel: ChannelId,
    ) -> Value {
        let url = format!(
            "{}/v1/appointments/{identity}/{}/{}",
            self.url, channel.factory.0, channel.client.0
        );
        let response = reqwest::get(url).await.expect("the tower answers");
        if response.status() == 404 {
            return Value::Null;
        }
        response.json().await.expect("JSON")
    }

    /// SIGKILL: no shutdown code runs.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL");
        let _ = self.child.wait().await;
    }
}
