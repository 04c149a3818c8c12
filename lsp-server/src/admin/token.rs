//! The admin bearer token.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use bitcoin::hashes::{sha256, Hash};

/// The operator's bearer token. Compared by hash, so the comparison takes the same time
/// whatever the presented token shares with it.
#[derive(Clone)]
pub struct AdminToken {
    digest: sha256::Hash,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

impl AdminToken {
    /// A token with this value.
    pub fn new(value: &str) -> AdminToken {
        AdminToken {
            digest: sha256::Hash::hash(value.as_bytes()),
        }
    }

    /// Whether `presented` is the token.
    pub fn matches(&self, presented: &str) -> bool {
        let a = sha256::Hash::hash(presented.as_bytes()).to_byte_array();
        let b = self.digest.to_byte_array();
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

/// The file in the data dir holding a generated token.
pub const TOKEN_FILE: &str = "admin.token";

/// `configured` if given, else the token in `data_dir/admin.token` (created on first use,
/// mode 0600 on Unix).
pub fn load_or_create(data_dir: &Path, configured: Option<&str>) -> Result<AdminToken> {
    if let Some(value) = configured.filter(|v| !v.is_empty()) {
        return Ok(AdminToken::new(value));
    }
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(value) if !value.trim().is_empty() => return Ok(AdminToken::new(value.trim())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let value = hex::encode(rand::random::<[u8; 32]>());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(value.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "created the admin API token");
    Ok(AdminToken::new(&value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_token_persists_and_matches_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path(), None).unwrap();
        let value = std::fs::read_to_string(dir.path().join(TOKEN_FILE)).unwrap();
        assert_eq!(value.len(), 64);
        assert!(a.matches(&value));
        assert!(!a.matches("wrong"));
        let b = load_or_create(dir.path(), None).unwrap();
        assert!(b.matches(&value), "the same token after a restart");
        let c = load_or_create(dir.path(), Some("set-by-operator")).unwrap();
        assert!(c.matches("set-by-operator") && !c.matches(&value));
    }
}
