//! Ids derived from a seed: the same seed gives the same id, so work retried with the same
//! seed records nothing twice.

use sha2::{Digest as _, Sha256};

/// `prefix` and 24 lowercase letters and digits derived from `seed` (SHA-256).
pub fn derived(prefix: &str, seed: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let digest = Sha256::digest(format!("{prefix}{seed}").as_bytes());
    let tail: String = digest
        .iter()
        .take(24)
        .map(|byte| char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]))
        .collect();
    format!("{prefix}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_id() {
        let id = derived("op_", "sched-1-7");
        assert_eq!(id, derived("op_", "sched-1-7"));
        assert_ne!(id, derived("op_", "sched-1-8"));
        assert_ne!(derived("bk_", "x")[3..], derived("op_", "x")[3..]);
        assert_eq!(id.len(), 27);
    }
}
