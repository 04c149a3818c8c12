//! The LSP's identity key: created once in the data dir, never logged.

use std::path::Path;

use anyhow::{Context, Result};
use bitcoin::secp256k1::{Keypair, SecretKey};

const KEY_FILE: &str = "identity.key";

/// Loads the identity key from `data_dir`, creating it (mode 0600) on first start.
pub fn load_or_create(data_dir: &Path) -> Result<Keypair> {
    let secp = shared::secp::ctx();
    let path = data_dir.join(KEY_FILE);
    if path.exists() {
        let hex_key = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let bytes = hex::decode(hex_key.trim()).context("identity key file is not hex")?;
        let sk = SecretKey::from_slice(&bytes).context("identity key file holds no valid key")?;
        return Ok(Keypair::from_secret_key(secp, &sk));
    }
    let sk = SecretKey::new(&mut rand::thread_rng());
    write_private(&path, &hex::encode(sk.secret_bytes()))?;
    Ok(Keypair::from_secret_key(secp, &sk))
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_survives_restart() {
        let dir = std::env::temp_dir().join(format!("lsp-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = super::load_or_create(&dir).unwrap();
        let b = super::load_or_create(&dir).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
