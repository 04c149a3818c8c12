//! Which chain source the wallet reads when the user has not chosen one: a public Esplora per
//! network, never the provider's. A provider that also tells the wallet the chain could hide
//! the blocks that make its proposal unsafe, so the wallet's view of the chain is its own.

use bitcoin::Network;

/// The devnet's Esplora API as `cargo xtask demo` serves it (regtest's default).
pub const DEVNET_ESPLORA: &str = "http://127.0.0.1:8801";

/// The Esplora endpoint a wallet on `network` reads unless its user chose another. Public
/// servers run by neither this project nor any provider; on regtest, the local devnet.
pub fn default_esplora(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => "https://blockstream.info/api",
        Network::Testnet => "https://blockstream.info/testnet/api",
        Network::Testnet4 => "https://mempool.space/testnet4/api",
        Network::Signet => "https://mempool.space/signet/api",
        _ => DEVNET_ESPLORA,
    }
}

/// `url` as the wallet stores and compares it: trimmed, without a trailing `/`.
pub fn normalize(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

/// Whether two endpoints are the same source (scheme and host compared without case).
pub fn same_source(a: &str, b: &str) -> bool {
    let (a, b) = (normalize(a), normalize(b));
    let split = |u: &str| -> (String, String) {
        match u.find("://").map(|i| i + 3) {
            Some(start) => {
                let end = u[start..].find('/').map_or(u.len(), |i| start + i);
                (u[..end].to_ascii_lowercase(), u[end..].to_string())
            }
            None => (u.to_ascii_lowercase(), String::new()),
        }
    };
    !a.is_empty() && split(&a) == split(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_networks_default_to_a_public_server_and_regtest_to_the_devnet() {
        assert!(default_esplora(Network::Bitcoin).starts_with("https://"));
        assert!(default_esplora(Network::Signet).starts_with("https://"));
        assert_eq!(default_esplora(Network::Regtest), DEVNET_ESPLORA);
    }

    #[test]
    fn the_same_source_is_recognised_however_it_is_written() {
        assert!(same_source(
            "https://Esplora.Example/api/",
            "https://esplora.example/api"
        ));
        assert!(same_source(
            " http://127.0.0.1:8801",
            "http://127.0.0.1:8801/"
        ));
        assert!(!same_source(
            "https://esplora.example/api",
            "https://esplora.example/API"
        ));
        assert!(!same_source(
            "http://127.0.0.1:8801",
            "http://127.0.0.1:8802"
        ));
        assert!(!same_source("", ""));
    }
}
