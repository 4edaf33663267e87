//! Machinery for tests only (feature `testkit`), kept out of the production modules: a throwaway
//! database per test on a shared embedded server (or on `TOYGRES_TEST_DATABASE_URL`), temporary
//! folders the `postgres` user can use, and for the Kubernetes backend a simulated kubelet and
//! cloud controller ([`kube_simulator`]) and an HTTP API server over kube-fake-client
//! ([`kube_apiserver`]).

#[cfg(feature = "testkit")]
pub mod kube_apiserver;
pub mod kube_simulator;
#[cfg(feature = "testkit")]
pub mod node_agent;

use crate::embedded::EmbeddedPostgres;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

/// Creates a fresh, empty database and returns its URL.
///
/// Uses the server at `TOYGRES_TEST_DATABASE_URL` when set; otherwise an embedded server under
/// `target/toygres-test-pg`, started on first use and shared by every test process.
pub async fn fresh_database() -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let admin_url = match std::env::var("TOYGRES_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => EmbeddedPostgres::ensure_running(&shared_server_dir(), None)
            .await?
            .url("postgres"),
    };
    let name = format!("toygres_test_{}", random_suffix());
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await?;
    sqlx::Executor::execute(&mut connection, format!("CREATE DATABASE {name}").as_str()).await?;
    sqlx::Connection::close(connection).await?;
    Ok(url_with_database(&admin_url, &name))
}

/// A temporary folder readable and traversable by the `postgres` user (mode 0755).
pub fn shared_tempdir() -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("toygres-test-").tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

/// A port range of `size` ports for one test, distinct (by hashing `seed`) from other tests'.
/// `TOYGRES_TEST_PORT_SEED`, when set, is hashed in too, so that two checkouts running the same
/// tests at once on one machine pick different ranges.
pub fn port_range_for(seed: &str, size: u16) -> std::ops::RangeInclusive<u16> {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    seed.hash(&mut hasher);
    std::env::var("TOYGRES_TEST_PORT_SEED")
        .unwrap_or_default()
        .hash(&mut hasher);
    let slot = (hasher.finish() % 2000) as u16;
    let start = 20_000 + slot * 20;
    start..=start + size - 1
}

fn shared_server_dir() -> PathBuf {
    // toygres-activities -> workspace root -> target/toygres-test-pg
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("toygres-test-pg")
}

fn random_suffix() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..12)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

/// Replaces the database of `url` (path part) with `database`, keeping the query string.
fn url_with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base.find("://").map(|scheme| scheme + 3).unwrap_or(0);
    let path_start = base[authority_end..]
        .find('/')
        .map(|index| index + authority_end)
        .unwrap_or(base.len());
    let mut rebuilt = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        rebuilt.push('?');
        rebuilt.push_str(query);
    }
    rebuilt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            url_with_database("postgres://u@h:5432/postgres", "t1"),
            "postgres://u@h:5432/t1"
        );
        assert_eq!(
            url_with_database("postgres://u@h/x?host=/run", "t1"),
            "postgres://u@h/t1?host=/run"
        );
        assert_eq!(
            url_with_database("postgres://u@h", "t1"),
            "postgres://u@h/t1"
        );
    }

    #[test]
    fn port_ranges_are_stable_and_sized() {
        let range = port_range_for("a", 10);
        assert_eq!(range.clone().count(), 10);
        assert_eq!(range, port_range_for("a", 10));
    }
}
