//! Where a cluster's unix socket lives.
//!
//! A unix socket's path may not exceed 107 bytes, and PostgreSQL appends `/.s.PGSQL.<port>`
//! to the folder it is given. A cluster whose own folder is short keeps its socket there
//! (`<dir>/run`); one whose folder is deep gets a short folder under the temporary directory
//! named by a stable digest of its own folder, so every process (and every release) finds the
//! same socket for the same cluster.

use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

/// The longest socket folder kept, leaving room for `/.s.PGSQL.65535` under the 107-byte limit.
pub const MAX_SOCKET_DIR_LEN: usize = 90;

/// The socket folder of the cluster that lives in `dir`: `<dir>/run` when short enough, or
/// `<tmp>/toygres-<digest of dir>` otherwise.
pub fn socket_dir_for(dir: &Path) -> PathBuf {
    let preferred = dir.join("run");
    if preferred.as_os_str().len() <= MAX_SOCKET_DIR_LEN {
        return preferred;
    }
    let digest = Sha256::digest(dir.as_os_str().as_encoded_bytes());
    let short: String = digest[..12]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    std::env::temp_dir().join(format!("toygres-{short}"))
}

/// Whether `socket_dir` lies outside the cluster folder `dir` (and must be removed on its own).
pub fn is_detached(dir: &Path, socket_dir: &Path) -> bool {
    !socket_dir.starts_with(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_folders_keep_their_socket_inside() {
        let dir = Path::new("/var/lib/toygres/instances/pg-1");
        assert_eq!(socket_dir_for(dir), dir.join("run"));
        assert!(!is_detached(dir, &socket_dir_for(dir)));
    }

    #[test]
    fn long_folders_get_a_short_stable_socket_folder() {
        let long_dir = PathBuf::from(format!("/tmp/{}", "d".repeat(120)));
        let fallback = socket_dir_for(&long_dir);
        assert!(fallback.as_os_str().len() <= MAX_SOCKET_DIR_LEN);
        assert!(fallback.join(".s.PGSQL.65535").as_os_str().len() <= 107);
        assert_eq!(fallback, socket_dir_for(&long_dir));
        assert_ne!(fallback, socket_dir_for(&long_dir.join("x")));
        assert!(is_detached(&long_dir, &fallback));
    }
}
