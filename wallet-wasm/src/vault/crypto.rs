//! WebCrypto for the vault: AES-256-GCM keys (from a passphrase by PBKDF2-SHA256, or generated
//! non-extractable), and sealing/opening `iv || ciphertext` with associated data.
//!
//! Keys never leave WebCrypto as bytes: derived and generated keys are non-extractable.

use js_sys::{Array, Uint8Array};
use rand::RngCore;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AesDerivedKeyParams, AesGcmParams, AesKeyGenParams, CryptoKey, Pbkdf2Params, SubtleCrypto,
};

use super::format::{KdfParams, IV_LEN, PBKDF2_ITERATIONS, SALT_LEN};
use super::{describe, VaultError};

/// An AES-256-GCM key held by WebCrypto (usable for encrypt and decrypt only).
#[derive(Clone)]
pub(crate) struct AesKey(CryptoKey);

impl AesKey {
    /// The `CryptoKey`, to store it (structured clone keeps it non-extractable).
    pub fn crypto_key(&self) -> &CryptoKey {
        &self.0
    }

    /// A stored `CryptoKey` read back from IndexedDB.
    pub fn from_stored(value: JsValue) -> Result<AesKey, VaultError> {
        value
            .dyn_into::<CryptoKey>()
            .map(AesKey)
            .map_err(|_| VaultError::Corrupt("device key is not a CryptoKey".into()))
    }
}

/// Authentication failed: wrong key, or the ciphertext or its place was changed.
pub(crate) struct OpenFailed;

fn crypto_error(e: JsValue) -> VaultError {
    VaultError::Crypto(describe(&e))
}

fn subtle() -> Result<SubtleCrypto, VaultError> {
    let window = web_sys::window().ok_or(VaultError::Unavailable("a browser window"))?;
    let crypto = window
        .crypto()
        .map_err(|_| VaultError::Unavailable("WebCrypto"))?;
    Ok(crypto.subtle())
}

fn usages(list: &[&str]) -> Array {
    list.iter().map(|u| JsValue::from_str(u)).collect()
}

/// `n` random bytes from the platform CSPRNG (`crypto.getRandomValues`).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// Fresh PBKDF2 parameters: a random salt and the default iteration count.
pub(crate) fn fresh_kdf() -> KdfParams {
    KdfParams {
        salt: random_bytes::<SALT_LEN>(),
        iterations: PBKDF2_ITERATIONS,
    }
}

/// The AES key of `passphrase` under `params` (PBKDF2-SHA256, non-extractable).
pub(crate) async fn passphrase_key(
    passphrase: &str,
    params: KdfParams,
) -> Result<AesKey, VaultError> {
    if passphrase.is_empty() {
        return Err(VaultError::EmptyPassphrase);
    }
    let subtle = subtle()?;
    let raw = Uint8Array::from(passphrase.as_bytes());
    let base = subtle
        .import_key_with_str("raw", &raw, "PBKDF2", false, &usages(&["deriveKey"]))
        .map_err(crypto_error)?;
    let base: CryptoKey = JsFuture::from(base)
        .await
        .and_then(|k| k.dyn_into())
        .map_err(crypto_error)?;
    let salt = Uint8Array::from(params.salt.as_slice());
    let pbkdf2 = Pbkdf2Params::new_with_str("PBKDF2", "SHA-256", params.iterations, &salt);
    let aes = AesDerivedKeyParams::new("AES-GCM", 256);
    let derived = subtle
        .derive_key_with_object_and_object(
            &pbkdf2,
            &base,
            &aes,
            false,
            &usages(&["encrypt", "decrypt"]),
        )
        .map_err(crypto_error)?;
    JsFuture::from(derived)
        .await
        .and_then(|k| k.dyn_into())
        .map(AesKey)
        .map_err(crypto_error)
}

/// A new random non-extractable AES key.
pub(crate) async fn generate_device_key() -> Result<AesKey, VaultError> {
    let params = AesKeyGenParams::new("AES-GCM", 256);
    let key = subtle()?
        .generate_key_with_object(&params, false, &usages(&["encrypt", "decrypt"]))
        .map_err(crypto_error)?;
    JsFuture::from(key)
        .await
        .and_then(|k| k.dyn_into())
        .map(AesKey)
        .map_err(crypto_error)
}

fn gcm_params(iv: &[u8], aad: &[u8]) -> AesGcmParams {
    let params = AesGcmParams::new_with_u8_array("AES-GCM", &Uint8Array::from(iv));
    params.set_additional_data_u8_array(&Uint8Array::from(aad));
    params
}

/// Encrypts `plaintext` under `key` with a fresh random 12-byte IV: `iv || ciphertext+tag`.
pub(crate) async fn seal(
    key: &AesKey,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let iv = random_bytes::<IV_LEN>();
    let data = Uint8Array::from(plaintext);
    let sealed = subtle()?
        .encrypt_with_object_and_js_u8_array(&gcm_params(&iv, aad), &key.0, &data)
        .map_err(crypto_error)?;
    let sealed = JsFuture::from(sealed).await.map_err(crypto_error)?;
    let mut out = iv.to_vec();
    out.extend(Uint8Array::new(&sealed).to_vec());
    Ok(out)
}

/// Decrypts `iv || ciphertext+tag`. `Ok(Err(OpenFailed))` when authentication fails.
pub(crate) async fn open(
    key: &AesKey,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Result<Vec<u8>, OpenFailed>, VaultError> {
    if sealed.len() < IV_LEN + 16 {
        return Ok(Err(OpenFailed));
    }
    let (iv, ciphertext) = sealed.split_at(IV_LEN);
    let data = Uint8Array::from(ciphertext);
    let opened = subtle()?
        .decrypt_with_object_and_js_u8_array(&gcm_params(iv, aad), &key.0, &data)
        .map_err(crypto_error)?;
    match JsFuture::from(opened).await {
        Ok(plain) => Ok(Ok(Uint8Array::new(&plain).to_vec())),
        Err(e) if error_name(&e).as_deref() == Some("OperationError") => Ok(Err(OpenFailed)),
        Err(e) => Err(crypto_error(e)),
    }
}

fn error_name(e: &JsValue) -> Option<String> {
    js_sys::Reflect::get(e, &"name".into()).ok()?.as_string()
}
