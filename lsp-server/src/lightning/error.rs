//! Errors of the LSP's Lightning node. Each message says what went wrong and what to do next.

use std::path::PathBuf;

use ldk_node::{BuildError, NodeError};

/// Everything [`LnNode`](super::LnNode) can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LnError {
    /// Reading or writing the seed failed.
    #[error("cannot {action} {path}: {source}; check that the data dir exists and the LSP may write to it")]
    Io {
        /// What was being done, e.g. "read".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `ln.seed` exists but does not hold a seed.
    #[error("{path} does not hold a 64-byte hex seed; restore it from your backup (a new seed could not spend this node's channels)")]
    BadSeed {
        /// The seed file.
        path: PathBuf,
    },
    /// The node's state exists but its seed is gone.
    #[error("{storage} exists but {seed} is missing; restore the seed from your backup, or move {storage} away to start a node without channels")]
    SeedMissing {
        /// Where the seed should be.
        seed: PathBuf,
        /// The node's storage directory.
        storage: PathBuf,
    },
    /// The node's own tokio runtime could not be built.
    #[error("cannot start the Lightning node's threads: {0}")]
    Runtime(#[source] std::io::Error),
    /// LDK refused the configuration or its stored state.
    #[error("cannot set up the Lightning node: {0}; check --ln-listen, --ln-announce, --ln-alias and the node's storage in the data dir")]
    Build(#[source] BuildError),
    /// The node did not start.
    #[error("the Lightning node did not start: {source}; check that Esplora at {esplora} answers and that {listen} is free")]
    Start {
        /// LDK's error.
        #[source]
        source: NodeError,
        /// The chain source.
        esplora: String,
        /// The listen address.
        listen: String,
    },
    /// A request named something malformed.
    #[error("{field} is not valid ({reason})")]
    BadInput {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// No channel has this id.
    #[error("no channel {0}; list the channels at /admin/ln/channels")]
    UnknownChannel(String),
    /// LDK refused or failed an operation.
    #[error("could not {action}: {source}")]
    Node {
        /// What was asked, e.g. "open the channel".
        action: &'static str,
        /// LDK's error.
        #[source]
        source: NodeError,
    },
    /// The node is stopping or stopped.
    #[error("the Lightning node is stopping")]
    Stopped,
}

impl LnError {
    /// An LDK failure while doing `action`.
    pub(crate) fn node(action: &'static str) -> impl FnOnce(NodeError) -> LnError {
        move |source| LnError::Node { action, source }
    }
}

impl From<crate::private_file::FileError> for LnError {
    fn from(e: crate::private_file::FileError) -> Self {
        LnError::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        }
    }
}
