//! The devnet's error type: what failed while starting, driving or stopping the node, and what
//! to do about it.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::faucet::FaucetError;
use crate::rpc::RpcError;

/// Everything [`Devnet`](crate::Devnet) can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevnetError {
    /// No bitcoind binary was found.
    #[error(
        "no bitcoind found (looked at $BITCOIND, {cached}, and PATH); \
         run `cargo xtask setup` to build it, or set BITCOIND=/path/to/bitcoind"
    )]
    BitcoindNotFound {
        /// Where `cargo xtask setup` puts it.
        cached: PathBuf,
    },
    /// `$BITCOIND` names a file that does not exist.
    #[error("BITCOIND is set to {0}, which does not exist; fix it or unset it")]
    BitcoindEnvMissing(PathBuf),
    /// The bitcoind process could not be started.
    #[error("could not start {path}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// bitcoind exited before its RPC answered.
    #[error("bitcoind exited during startup ({status}); its last output:\n{output}")]
    BitcoindExited {
        /// The exit status.
        status: String,
        /// The tail of its stderr and debug.log.
        output: String,
    },
    /// bitcoind's RPC did not answer in time.
    #[error("bitcoind's RPC did not answer within {0:?}; is the machine overloaded?")]
    StartupTimeout(Duration),
    /// The data directory could not be created or used.
    #[error("data directory {path}: {source}")]
    Datadir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A loopback port could not be bound.
    #[error("could not listen on {addr}: {source} (is another devnet using this port?)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The faucet key file in a persistent datadir is unreadable.
    #[error("faucet key file {path} is corrupt; delete it and the datadir to start afresh")]
    FaucetKey {
        /// The file.
        path: PathBuf,
    },
    /// An address for another network than regtest was given.
    #[error("{0} is not a regtest address (expected bcrt1..., m/n/2... prefixes)")]
    WrongNetwork(String),
    /// The address index found the chain in a state it cannot follow.
    #[error("address index: {0}")]
    Index(String),
    /// A bitcoind RPC call failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The faucet could not pay.
    #[error(transparent)]
    Faucet(#[from] FaucetError),
}
