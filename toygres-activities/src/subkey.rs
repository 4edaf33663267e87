//! Keys for one purpose each, derived from the server's [`SecretKey`], and HMAC-SHA256 with them.
//!
//! A [`MacKey`] is HKDF-Expand (RFC 5869) of the secret key with a purpose label as `info`: each
//! use gets its own key, and none is the sealing key itself. It lets the server recognize a value
//! again (an `Idempotency-Key`'s request) while what it stores gives a reader of the database
//! nothing to test guesses against. A key rotation changes every subkey.

use crate::seal::SecretKey;
use sha2::{Digest as _, Sha256};

/// SHA-256's block size, the size of HMAC's padded key.
const BLOCK: usize = 64;

/// A 256-bit HMAC-SHA256 key for one purpose. `Debug` never shows it.
#[derive(Clone)]
pub struct MacKey([u8; 32]);

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl MacKey {
    /// The subkey of `secret` for `purpose`, a label fixed per use (for example
    /// `"toygres idempotency v1"`): HKDF-Expand(secret, purpose, 32). The secret key is already
    /// uniformly random, so it serves as HKDF's pseudorandom key without an extract step.
    pub fn derive(secret: &SecretKey, purpose: &str) -> Self {
        Self(hmac_sha256(secret.as_bytes(), &[purpose.as_bytes(), &[1]]))
    }

    /// HMAC-SHA256 of the concatenation of `parts`.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        hmac_sha256(&self.0, parts)
    }
}

/// HMAC-SHA256 (RFC 2104) of the concatenation of `parts` under `key` of any length.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut padded = [0u8; BLOCK];
    if key.len() > BLOCK {
        padded[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        padded[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(padded.map(|byte| byte ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(padded.map(|byte| byte ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 1: a 20-byte key.
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], &[b"Hi There"])),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2: a key shorter than the output, the data in two parts.
        assert_eq!(
            hex(&hmac_sha256(
                b"Jefe",
                &[b"what do ya want ", b"for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block, hashed first.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn derivation_is_hkdf_expand_of_rfc_5869() {
        // Test case 1: the first 32 bytes of the OKM are T(1) = HMAC(PRK, info || 0x01).
        let prk: Vec<u8> = (0..32)
            .map(|i| {
                u8::from_str_radix(
                    &"077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
                        [i * 2..i * 2 + 2],
                    16,
                )
                .unwrap_or_default()
            })
            .collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        assert_eq!(
            hex(&hmac_sha256(&prk, &[&info, &[1]])),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );
    }

    #[test]
    fn each_purpose_and_each_key_has_its_own_subkey() {
        let secret = SecretKey::generate();
        let a = MacKey::derive(&secret, "purpose a").mac(&[b"x"]);
        assert_eq!(a, MacKey::derive(&secret, "purpose a").mac(&[b"x"]));
        assert_ne!(a, MacKey::derive(&secret, "purpose b").mac(&[b"x"]));
        assert_ne!(
            a,
            MacKey::derive(&SecretKey::generate(), "purpose a").mac(&[b"x"])
        );
        assert_ne!(
            MacKey::derive(&secret, "purpose a").0.as_slice(),
            secret.as_bytes(),
            "never the sealing key itself"
        );
        assert_eq!(format!("{:?}", MacKey::derive(&secret, "a")), "MacKey(..)");
    }
}
