//! Sealed secrets: instance passwords encrypted at rest with XChaCha20-Poly1305.
//!
//! A [`SealedSecret`] is what workflow inputs, metadata rows and Duroxide history hold; only a
//! holder of the [`SecretKey`] can open it. The key comes from `TOYGRES_SECRET_KEY` (base64 of 32
//! bytes) or is generated into the data dir with mode 0600.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, Generate, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Format tag at the front of every sealed value, so the scheme can change later.
const SEAL_PREFIX: &str = "v1.";
const NONCE_LEN: usize = 24;

/// Why a key could not be loaded or a secret could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key is not base64 of exactly 32 bytes.
    #[error("the secret key must be base64 of 32 bytes")]
    BadKey,
    /// The sealed value is not in the expected format.
    #[error("the sealed value is malformed")]
    Malformed,
    /// Authentication failed: wrong key or tampered data.
    #[error("the sealed value cannot be opened with this key")]
    WrongKey,
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The 256-bit key that seals and opens secrets. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct SecretKey(Key);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A new random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self(Key::generate())
    }

    /// Parses a base64-encoded 32-byte key.
    pub fn from_base64(encoded: &str) -> Result<Self, SealError> {
        let bytes = B64.decode(encoded.trim()).map_err(|_| SealError::BadKey)?;
        let key = Key::try_from(bytes.as_slice()).map_err(|_| SealError::BadKey)?;
        Ok(Self(key))
    }

    /// The key as base64, for writing it to its file.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0.as_slice())
    }

    /// Reads the key file at `path`, or creates it (mode 0600) with a new key when it is missing.
    pub fn load_or_generate(path: &Path) -> Result<Self, SealError> {
        let io_error = |source| SealError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(encoded) => return Self::from_base64(&encoded),
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_error(error));
            }
            Err(_) => {}
        }
        // Written to a private temporary file, then linked into place: another process
        // starting at the same moment either wins (and we read its key) or loses to us, and
        // nobody ever reads a half-written key.
        let key = Self::generate();
        let scratch = path.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_file(&scratch);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&scratch)
            .map_err(io_error)?;
        file.write_all(key.to_base64().as_bytes())
            .map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        let linked = std::fs::hard_link(&scratch, path);
        let _ = std::fs::remove_file(&scratch);
        match linked {
            Ok(()) => Ok(key),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                let encoded = std::fs::read_to_string(path).map_err(io_error)?;
                Self::from_base64(&encoded)
            }
            Err(error) => Err(io_error(error)),
        }
    }

    /// The key's bytes, for deriving purpose-bound subkeys ([`crate::subkey`]).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// Encrypts `plaintext` with a fresh random nonce.
    pub fn seal(&self, plaintext: &str) -> SealedSecret {
        let nonce = XNonce::generate();
        let cipher = XChaCha20Poly1305::new(&self.0);
        // Encryption into a Vec cannot fail for inputs of this size.
        let ciphertext = cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .unwrap_or_default();
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        SealedSecret(format!("{SEAL_PREFIX}{}", B64.encode(blob)))
    }

    /// Decrypts a sealed secret; fails on a wrong key or tampered data.
    pub fn open(&self, sealed: &SealedSecret) -> Result<String, SealError> {
        let encoded = sealed
            .0
            .strip_prefix(SEAL_PREFIX)
            .ok_or(SealError::Malformed)?;
        let blob = B64.decode(encoded).map_err(|_| SealError::Malformed)?;
        if blob.len() < NONCE_LEN {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| SealError::Malformed)?;
        let plaintext = XChaCha20Poly1305::new(&self.0)
            .decrypt(&nonce, ciphertext)
            .map_err(|_| SealError::WrongKey)?;
        String::from_utf8(plaintext).map_err(|_| SealError::Malformed)
    }
}

/// An encrypted secret, safe to store and log. `Debug` shows only that it is sealed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedSecret(String);

impl SealedSecret {
    /// Wraps a value read back from storage.
    pub fn from_stored(stored: String) -> Self {
        Self(stored)
    }

    /// The stored form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedSecret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn round_trip() {
        let key = SecretKey::generate();
        let sealed = key.seal("s3cret-Passw0rd!");
        assert!(!sealed.as_str().contains("s3cret"));
        assert_eq!(key.open(&sealed).ok().as_deref(), Some("s3cret-Passw0rd!"));
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let key = SecretKey::generate();
        assert_ne!(key.seal("same"), key.seal("same"));
    }

    #[test]
    fn a_wrong_key_fails() {
        let sealed = SecretKey::generate().seal("secret");
        assert!(matches!(
            SecretKey::generate().open(&sealed),
            Err(SealError::WrongKey)
        ));
    }

    #[test]
    fn tampering_fails() {
        let key = SecretKey::generate();
        let sealed = key.seal("secret");
        let mut raw = sealed.as_str().to_string();
        let flipped = if raw.ends_with('A') { 'B' } else { 'A' };
        raw.pop();
        raw.push(flipped);
        assert!(key.open(&SealedSecret::from_stored(raw)).is_err());
        assert!(matches!(
            key.open(&SealedSecret::from_stored("v1.!!".into())),
            Err(SealError::Malformed)
        ));
        assert!(matches!(
            key.open(&SealedSecret::from_stored("nope".into())),
            Err(SealError::Malformed)
        ));
    }

    #[test]
    fn key_base64_round_trip_and_validation() {
        let key = SecretKey::generate();
        let again = SecretKey::from_base64(&key.to_base64())
            .map(|k| k.to_base64())
            .ok();
        assert_eq!(again, Some(key.to_base64()));
        assert!(SecretKey::from_base64("c2hvcnQ=").is_err());
        assert!(format!("{key:?}").contains(".."));
    }

    #[test]
    fn key_file_is_created_0600_and_reused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("secret.key");
        let first = SecretKey::load_or_generate(&path)?;
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = SecretKey::load_or_generate(&path)?;
        assert_eq!(first.to_base64(), second.to_base64());
        Ok(())
    }
}
