//! What the vault stores, byte for byte, apart from the browser: the header record, the record
//! names, the associated data that binds each ciphertext to its place, and the backup file.
//! Platform-neutral so it is unit-tested natively.
//!
//! Object store [`STORE`], string keys:
//!
//! | key            | value                                                               |
//! |----------------|---------------------------------------------------------------------|
//! | `meta`         | [`Header`] as JSON bytes, in the clear (format, protection, salt)  |
//! | `check`        | `iv \|\| AES-GCM(CHECK_PLAINTEXT)`, proves the key is the right one |
//! | `device_key`   | the non-extractable `CryptoKey` (only with no passphrase)           |
//! | `r:<name>`     | `iv \|\| AES-GCM(value)` of the caller's record `<name>`            |
//!
//! Every ciphertext has associated data naming its place ([`record_aad`], [`CHECK_AAD`]), so a
//! ciphertext moved to another name fails authentication. Record names are not encrypted.

// Natively only the tests use these; the browser store uses all of them.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use serde::{Deserialize, Serialize};

use super::VaultError;

/// The one object store.
pub(crate) const STORE: &str = "records";
/// IndexedDB schema version.
pub(crate) const DB_VERSION: u32 = 1;
/// Key of the header.
pub(crate) const META_KEY: &str = "meta";
/// Key of the check record.
pub(crate) const CHECK_KEY: &str = "check";
/// Key of the device `CryptoKey`.
pub(crate) const DEVICE_KEY: &str = "device_key";
/// Prefix of the caller's records.
const RECORD_PREFIX: &str = "r:";

/// The known plaintext of the check record.
pub(crate) const CHECK_PLAINTEXT: &[u8] = b"superscalar vault check v1";
/// Associated data of the check record.
pub(crate) const CHECK_AAD: &[u8] = b"superscalar-vault/1/check";
/// Associated data of the backup ciphertext.
pub(crate) const BACKUP_AAD: &[u8] = b"superscalar-vault-backup/1";

/// PBKDF2-SHA256 iterations for new passphrase keys and backups (OWASP's 2023 figure).
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// Iteration counts accepted from storage or a backup: not absurdly weak, not a hang.
const ITERATIONS_ACCEPTED: std::ops::RangeInclusive<u32> = 100_000..=10_000_000;
/// Salt length for PBKDF2.
pub(crate) const SALT_LEN: usize = 16;
/// AES-GCM nonce length.
pub(crate) const IV_LEN: usize = 12;

const VAULT_FORMAT: &str = "superscalar-vault";
const BACKUP_FORMAT: &str = "superscalar-vault-backup";
const VERSION: u32 = 1;

/// The IndexedDB key of the caller's record `name`.
pub(crate) fn record_key(name: &str) -> String {
    format!("{RECORD_PREFIX}{name}")
}

/// The caller's name of a stored key, if it is a record.
pub(crate) fn record_name(stored_key: &str) -> Option<&str> {
    stored_key.strip_prefix(RECORD_PREFIX)
}

/// Associated data of the caller's record `name`.
pub(crate) fn record_aad(name: &str) -> Vec<u8> {
    [b"superscalar-vault/1/record/".as_slice(), name.as_bytes()].concat()
}

/// How the vault's key is kept, as the caller chooses it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Protection<'a> {
    /// A key derived from this passphrase with PBKDF2-SHA256; nothing secret is stored.
    Passphrase(&'a str),
    /// A random non-extractable WebCrypto key stored in IndexedDB beside the data.
    DeviceKey,
}

impl std::fmt::Debug for Protection<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protection::Passphrase(_) => "Passphrase(redacted)",
            Protection::DeviceKey => "DeviceKey",
        })
    }
}

/// How a stored vault is protected (what to ask the user for before opening it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtectionMode {
    /// Open with the passphrase.
    Passphrase,
    /// Open without one.
    DeviceKey,
}

/// PBKDF2 salt and iteration count, stored in the clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KdfParams {
    #[serde(with = "hex_salt")]
    pub salt: [u8; SALT_LEN],
    pub iterations: u32,
}

impl KdfParams {
    /// Checks an iteration count read from storage or a backup.
    pub fn validate(self) -> Result<KdfParams, String> {
        if ITERATIONS_ACCEPTED.contains(&self.iterations) {
            Ok(self)
        } else {
            Err(format!(
                "PBKDF2 iteration count {} is out of range",
                self.iterations
            ))
        }
    }
}

/// The stored protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum StoredProtection {
    Passphrase {
        #[serde(flatten)]
        kdf: KdfParams,
    },
    DeviceKey,
}

impl StoredProtection {
    pub fn mode(self) -> ProtectionMode {
        match self {
            StoredProtection::Passphrase { .. } => ProtectionMode::Passphrase,
            StoredProtection::DeviceKey => ProtectionMode::DeviceKey,
        }
    }
}

/// The `meta` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Header {
    format: String,
    version: u32,
    pub protection: StoredProtection,
}

impl Header {
    pub fn new(protection: StoredProtection) -> Header {
        Header {
            format: VAULT_FORMAT.into(),
            version: VERSION,
            protection,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a header always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Header, VaultError> {
        let header: Header = serde_json::from_slice(bytes)
            .map_err(|e| VaultError::Corrupt(format!("header: {e}")))?;
        if header.format != VAULT_FORMAT {
            return Err(VaultError::Corrupt("header: not a wallet vault".into()));
        }
        if header.version != VERSION {
            return Err(VaultError::UnsupportedVersion(header.version));
        }
        if let StoredProtection::Passphrase { kdf } = header.protection {
            kdf.validate()
                .map_err(|e| VaultError::Corrupt(format!("header: {e}")))?;
        }
        Ok(header)
    }
}

/// The backup file: a JSON envelope in the clear around the encrypted [`BackupContents`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BackupEnvelope {
    format: String,
    version: u32,
    kdf: String,
    #[serde(flatten)]
    pub params: KdfParams,
    /// `iv || AES-GCM(contents JSON)`, hex.
    #[serde(with = "hex::serde")]
    pub data: Vec<u8>,
}

const BACKUP_KDF: &str = "pbkdf2-sha256";

impl BackupEnvelope {
    pub fn new(params: KdfParams, data: Vec<u8>) -> BackupEnvelope {
        BackupEnvelope {
            format: BACKUP_FORMAT.into(),
            version: VERSION,
            kdf: BACKUP_KDF.into(),
            params,
            data,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("an envelope always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<BackupEnvelope, VaultError> {
        let envelope: BackupEnvelope =
            serde_json::from_slice(bytes).map_err(|e| VaultError::BadBackup(e.to_string()))?;
        if envelope.format != BACKUP_FORMAT {
            return Err(VaultError::BadBackup("not a wallet backup".into()));
        }
        if envelope.version != VERSION {
            return Err(VaultError::UnsupportedVersion(envelope.version));
        }
        if envelope.kdf != BACKUP_KDF {
            return Err(VaultError::BadBackup(format!(
                "unknown key derivation {}",
                envelope.kdf
            )));
        }
        envelope.params.validate().map_err(VaultError::BadBackup)?;
        if envelope.data.len() < IV_LEN + 16 {
            return Err(VaultError::BadBackup(
                "the encrypted part is truncated".into(),
            ));
        }
        Ok(envelope)
    }
}

/// The plaintext inside a backup: every record by name. Wiped from memory on drop.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BackupContents {
    pub records: Vec<BackupRecord>,
}

/// One record in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BackupRecord {
    pub name: String,
    #[serde(with = "hex::serde")]
    pub value: Vec<u8>,
}

impl Drop for BackupContents {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for record in &mut self.records {
            record.value.zeroize();
        }
    }
}

impl BackupContents {
    pub fn encode(&self) -> zeroize::Zeroizing<Vec<u8>> {
        zeroize::Zeroizing::new(serde_json::to_vec(self).expect("contents always serialize"))
    }

    pub fn decode(bytes: &[u8]) -> Result<BackupContents, VaultError> {
        serde_json::from_slice(bytes).map_err(|e| VaultError::BadBackup(format!("contents: {e}")))
    }
}

mod hex_salt {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::SALT_LEN;

    pub fn serialize<S: Serializer>(salt: &[u8; SALT_LEN], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(salt))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; SALT_LEN], D::Error> {
        let text = String::deserialize(d)?;
        let mut salt = [0u8; SALT_LEN];
        hex::decode_to_slice(&text, &mut salt).map_err(|e| {
            serde::de::Error::custom(format!("salt must be {SALT_LEN} bytes of hex: {e}"))
        })?;
        Ok(salt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kdf() -> KdfParams {
        KdfParams {
            salt: [7; SALT_LEN],
            iterations: PBKDF2_ITERATIONS,
        }
    }

    #[test]
    fn header_round_trips_and_names_its_fields() {
        for protection in [
            StoredProtection::Passphrase { kdf: kdf() },
            StoredProtection::DeviceKey,
        ] {
            let header = Header::new(protection);
            assert_eq!(Header::decode(&header.encode()), Ok(header));
        }
        let text =
            String::from_utf8(Header::new(StoredProtection::Passphrase { kdf: kdf() }).encode())
                .expect("json");
        assert_eq!(
            text,
            r#"{"format":"superscalar-vault","version":1,"protection":{"kind":"passphrase","salt":"07070707070707070707070707070707","iterations":600000}}"#
        );
    }

    #[test]
    fn header_refuses_garbage_newer_versions_and_silly_iterations() {
        assert!(matches!(
            Header::decode(b"not json"),
            Err(VaultError::Corrupt(_))
        ));
        let newer =
            br#"{"format":"superscalar-vault","version":2,"protection":{"kind":"device_key"}}"#;
        assert_eq!(
            Header::decode(newer),
            Err(VaultError::UnsupportedVersion(2))
        );
        let weak = Header::new(StoredProtection::Passphrase {
            kdf: KdfParams {
                salt: [0; SALT_LEN],
                iterations: 1,
            },
        });
        assert!(matches!(
            Header::decode(&weak.encode()),
            Err(VaultError::Corrupt(_))
        ));
        let other = br#"{"format":"x","version":1,"protection":{"kind":"device_key"}}"#;
        assert!(matches!(Header::decode(other), Err(VaultError::Corrupt(_))));
    }

    #[test]
    fn backup_envelope_round_trips_and_refuses_bad_input() {
        let envelope = BackupEnvelope::new(kdf(), vec![1; IV_LEN + 20]);
        assert_eq!(
            BackupEnvelope::decode(&envelope.encode()),
            Ok(envelope.clone())
        );
        assert!(matches!(
            BackupEnvelope::decode(b"{}"),
            Err(VaultError::BadBackup(_))
        ));
        let short = BackupEnvelope::new(kdf(), vec![1; IV_LEN]);
        assert!(matches!(
            BackupEnvelope::decode(&short.encode()),
            Err(VaultError::BadBackup(_))
        ));
        let slow = BackupEnvelope::new(
            KdfParams {
                salt: [0; SALT_LEN],
                iterations: u32::MAX,
            },
            vec![1; 40],
        );
        assert!(matches!(
            BackupEnvelope::decode(&slow.encode()),
            Err(VaultError::BadBackup(_))
        ));
    }

    #[test]
    fn backup_contents_round_trip() {
        let contents = BackupContents {
            records: vec![BackupRecord {
                name: "seed".into(),
                value: vec![0, 1, 255],
            }],
        };
        assert_eq!(
            BackupContents::decode(&contents.encode()),
            Ok(contents.clone())
        );
        assert!(BackupContents::decode(b"[1]").is_err());
    }

    #[test]
    fn record_names_map_both_ways_and_bind_the_name() {
        let key = record_key("seed");
        assert_eq!(record_name(&key), Some("seed"));
        assert_eq!(record_name(META_KEY), None);
        assert_ne!(record_aad("seed"), record_aad("seeds"));
    }
}
