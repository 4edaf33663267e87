//! Finding the installed PostgreSQL server binaries and the versions they offer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The installed PostgreSQL binary folders, by major version.
#[derive(Debug, Clone, Default)]
pub struct PgBinaries {
    by_version: BTreeMap<u32, PathBuf>,
}

impl PgBinaries {
    /// Finds binaries in `configured` when given, else through `pg_config --bindir` and
    /// `/usr/lib/postgresql/*/bin`.
    pub fn discover(configured: Option<&Path>) -> Self {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(dir) = configured {
            candidates.push(dir.to_path_buf());
        } else {
            if let Ok(output) = std::process::Command::new("pg_config")
                .arg("--bindir")
                .output()
                && output.status.success()
            {
                candidates.push(PathBuf::from(
                    String::from_utf8_lossy(&output.stdout).trim(),
                ));
            }
            if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
                let mut found: Vec<PathBuf> = entries
                    .flatten()
                    .map(|entry| entry.path().join("bin"))
                    .collect();
                found.sort();
                candidates.extend(found);
            }
        }
        let mut by_version = BTreeMap::new();
        for dir in candidates {
            if let Some(major) = major_version_of(&dir) {
                by_version.entry(major).or_insert(dir);
            }
        }
        Self { by_version }
    }

    /// The major versions found, oldest first.
    pub fn versions(&self) -> Vec<String> {
        self.by_version.keys().map(u32::to_string).collect()
    }

    /// The newest major version found.
    pub fn newest(&self) -> Option<String> {
        self.by_version.keys().next_back().map(u32::to_string)
    }

    /// The binary folder of a major version.
    pub fn bin_dir(&self, version: &str) -> Option<&Path> {
        let major: u32 = version.parse().ok()?;
        self.by_version.get(&major).map(PathBuf::as_path)
    }
}

/// Runs `postgres --version` in `dir` and returns the major version.
fn major_version_of(dir: &Path) -> Option<u32> {
    if !dir.join("initdb").exists() || !dir.join("pg_ctl").exists() {
        return None;
    }
    let output = std::process::Command::new(dir.join("postgres"))
        .arg("--version")
        .output()
        .ok()?;
    // "postgres (PostgreSQL) 15.19 (Debian ...)"
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.split_whitespace().nth(2)?;
    version.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_installed_binaries() {
        let binaries = PgBinaries::discover(None);
        let newest = binaries.newest();
        assert!(
            newest.is_some(),
            "PostgreSQL server binaries must be installed"
        );
        let dir = newest
            .as_deref()
            .and_then(|version| binaries.bin_dir(version));
        assert!(dir.is_some_and(|dir| dir.join("initdb").exists()));
    }

    #[test]
    fn a_folder_without_binaries_offers_nothing() {
        let binaries = PgBinaries::discover(Some(Path::new("/nonexistent")));
        assert!(binaries.versions().is_empty());
        assert_eq!(binaries.bin_dir("15"), None);
        assert_eq!(binaries.bin_dir("fifteen"), None);
    }
}
