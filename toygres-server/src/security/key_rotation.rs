//! `toygres rotate-key`: re-seals every stored instance password with a new key, while no server
//! runs against the database, restarts the health monitors, whose workflow inputs hold the
//! passwords sealed with the old key, and forgets the idempotency keys, whose request hashes the
//! old key made.
//!
//! Servers hold a shared advisory lock ([`SERVER_LOCK_ID`]) for their whole life; a rotation
//! takes it exclusively, so the two never overlap. The rotation refuses to run while an
//! operation is in flight (its workflow input holds the old sealing). It can be run again after
//! an interruption: passwords already sealed with the new key are left as they are.
//!
//! With the key file (the default), the new key is written to `secret.key.next` before the
//! database changes, and replaces `secret.key` after they are committed; the old key is kept in
//! `secret.key.previous` for backups taken before the rotation. With `TOYGRES_SECRET_KEY`, the
//! new key comes from `TOYGRES_NEW_SECRET_KEY` and nothing is written to disk.

use crate::runtime::open_store;
use crate::serve::config::Secret;
use sqlx::pool::PoolConnection;
use sqlx::{Connection as _, Postgres};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use toygres_activities::embedded::{EmbeddedError, EmbeddedPostgres};
use toygres_activities::metadata::{MetadataError, MetadataStore};
use toygres_activities::seal::{SealError, SealedSecret, SecretKey};

/// The advisory lock every server holds shared, and a key rotation exclusively.
pub const SERVER_LOCK_ID: i64 = 0x0074_6f79_6772_6573; // "toygres" in ASCII

/// The columns of `toygres.instances` that hold sealed passwords.
const SEALED_COLUMNS: [&str; 3] = [
    "sealed_password",
    "sealed_admin_password",
    "sealed_monitor_password",
];

/// The key file under the data dir.
pub const KEY_FILE: &str = "secret.key";
/// The new key while a rotation runs; its presence means a rotation did not finish.
pub const NEXT_KEY_FILE: &str = "secret.key.next";
/// The key before the last rotation, for restoring older backups.
pub const PREVIOUS_KEY_FILE: &str = "secret.key.previous";

/// Settings of `toygres rotate-key` (the same variables as `toygres serve` where they overlap).
#[derive(Debug, Clone, clap::Args)]
pub struct RotateKeyArgs {
    /// The server's data dir (its key file and embedded control-plane database).
    #[arg(long, env = "TOYGRES_DATA_DIR", default_value = "./.toygres")]
    pub data_dir: PathBuf,

    /// The control-plane database; when unset, the embedded one under the data dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// The current key, when it comes from the environment rather than the key file.
    #[arg(long, env = "TOYGRES_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<Secret>,

    /// Base64 of the new 32-byte key. Required with TOYGRES_SECRET_KEY; with the key file, a
    /// new key is generated when unset.
    #[arg(long, env = "TOYGRES_NEW_SECRET_KEY", hide_env_values = true)]
    pub new_secret_key: Option<Secret>,

    /// Folder of the PostgreSQL server binaries (for the embedded database); discovered when
    /// unset.
    #[arg(long, env = "TOYGRES_PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,
}

/// Why a rotation did not happen (nothing was changed unless the message says so).
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// The current key is in the environment, and the new one was not given.
    #[error(
        "the key comes from TOYGRES_SECRET_KEY: give the new one in TOYGRES_NEW_SECRET_KEY (base64 of 32 bytes, e.g. `openssl rand -base64 32`)"
    )]
    NewKeyRequired,
    /// The new key is the current key.
    #[error("the new key is the current key")]
    SameKey,
    /// A key could not be read or parsed.
    #[error("{what}: {source}")]
    Key {
        /// Which key.
        what: String,
        /// Why.
        source: SealError,
    },
    /// A key file could not be written or moved.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A server holds the lock.
    #[error("a toygres server is running against this database: stop it, then rotate the key")]
    ServerRunning,
    /// An operation is in flight.
    #[error(
        "operation {operation} is in progress on instance {instance}: start the server, let it finish (toygres op wait {operation}), stop the server, then rotate the key"
    )]
    OperationInProgress {
        /// The operation.
        operation: String,
        /// Its instance.
        instance: String,
    },
    /// A stored password opens with neither key.
    #[error("the sealed password of instance {0} opens with neither the current nor the new key")]
    Unreadable(String),
    /// The database failed.
    #[error("control-plane database: {0}")]
    Database(String),
    /// The embedded database could not be started.
    #[error("embedded control-plane database: {0}")]
    Embedded(#[from] EmbeddedError),
}

impl From<sqlx::Error> for RotationError {
    fn from(error: sqlx::Error) -> Self {
        RotationError::Database(error.to_string())
    }
}

impl From<MetadataError> for RotationError {
    fn from(error: MetadataError) -> Self {
        RotationError::Database(error.to_string())
    }
}

/// What a rotation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// Passwords sealed anew with the new key.
    pub resealed: usize,
    /// Passwords already sealed with the new key (an interrupted rotation run again).
    pub already_resealed: usize,
    /// Monitors canceled; the server starts new ones at its next start.
    pub monitors_restarted: usize,
    /// `Idempotency-Key`s forgotten: their request hashes were keyed with the old key.
    pub idempotency_keys_forgotten: u64,
    /// Where the new key is: the key file, or `None` when it is in the environment.
    pub key_file: Option<PathBuf>,
}

/// The current and the new key, and where the new one goes.
struct Keys {
    current: SecretKey,
    new: SecretKey,
    /// `(secret.key, secret.key.next, secret.key.previous)` with the key file.
    files: Option<(PathBuf, PathBuf, PathBuf)>,
}

impl Keys {
    /// Reads the current key and finds (or makes, in memory) the new one: the one staged in
    /// `secret.key.next` by an interrupted rotation, the given one, or a generated one.
    fn resolve(args: &RotateKeyArgs, data_dir: &Path) -> Result<Self, RotationError> {
        let given_new = args
            .new_secret_key
            .as_ref()
            .map(|raw| parse_key("TOYGRES_NEW_SECRET_KEY", raw.expose()))
            .transpose()?;
        if let Some(current) = &args.secret_key {
            let current = parse_key("TOYGRES_SECRET_KEY", current.expose())?;
            let new = given_new.ok_or(RotationError::NewKeyRequired)?;
            return Self::distinct(current, new, None);
        }
        let key_file = data_dir.join(KEY_FILE);
        let next_file = data_dir.join(NEXT_KEY_FILE);
        let current = read_key(&key_file)?;
        let new = match (read_existing_key(&next_file)?, given_new) {
            // An interrupted rotation: finish it with the key it started with.
            (Some(next), None) => next,
            (Some(next), Some(given)) if next.to_base64() == given.to_base64() => next,
            (Some(_), Some(_)) => {
                return Err(RotationError::Key {
                    what: format!("{}", next_file.display()),
                    source: SealError::BadKey,
                });
            }
            (None, given) => given.unwrap_or_else(SecretKey::generate),
        };
        let previous_file = data_dir.join(PREVIOUS_KEY_FILE);
        Self::distinct(current, new, Some((key_file, next_file, previous_file)))
    }

    fn distinct(
        current: SecretKey,
        new: SecretKey,
        files: Option<(PathBuf, PathBuf, PathBuf)>,
    ) -> Result<Self, RotationError> {
        if current.to_base64() == new.to_base64() {
            return Err(RotationError::SameKey);
        }
        Ok(Self {
            current,
            new,
            files,
        })
    }

    /// With the key file: writes the new key to `secret.key.next` (before any password is
    /// sealed with it, so that it cannot be lost).
    fn stage(&self) -> Result<(), RotationError> {
        match &self.files {
            Some((_, next_file, _)) => write_key_file(next_file, &self.new),
            None => Ok(()),
        }
    }

    /// With the key file: keeps the old key as `secret.key.previous`, then moves the new key
    /// into place (each step safe to repeat).
    fn install(&self) -> Result<Option<PathBuf>, RotationError> {
        let Some((key_file, next_file, previous_file)) = &self.files else {
            return Ok(None);
        };
        write_key_file(previous_file, &self.current)?;
        std::fs::rename(next_file, key_file).map_err(|source| RotationError::Io {
            path: key_file.clone(),
            source,
        })?;
        Ok(Some(key_file.clone()))
    }
}

fn parse_key(what: &str, encoded: &str) -> Result<SecretKey, RotationError> {
    SecretKey::from_base64(encoded).map_err(|source| RotationError::Key {
        what: what.to_string(),
        source,
    })
}

fn read_key(path: &Path) -> Result<SecretKey, RotationError> {
    let encoded = std::fs::read_to_string(path).map_err(|source| RotationError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_key(&path.display().to_string(), &encoded)
}

fn read_existing_key(path: &Path) -> Result<Option<SecretKey>, RotationError> {
    match std::fs::metadata(path) {
        Ok(_) => read_key(path).map(Some),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RotationError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes `key` to `path` (mode 0600, replacing it) and syncs it.
fn write_key_file(path: &Path, key: &SecretKey) -> Result<(), RotationError> {
    let io_error = |source| RotationError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error)?;
    file.write_all(key.to_base64().as_bytes())
        .map_err(io_error)?;
    file.sync_all().map_err(io_error)
}

/// Held by a running server: a rotation cannot start while it is held.
pub async fn hold_server_lock(
    metadata: &MetadataStore,
) -> Result<PoolConnection<Postgres>, RotationError> {
    let mut connection = metadata.pool().acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock_shared($1)")
        .bind(SERVER_LOCK_ID)
        .fetch_one(&mut *connection)
        .await?;
    if !locked {
        return Err(RotationError::Database(
            "a key rotation (toygres rotate-key) is running against this database; start the server once it has finished".into(),
        ));
    }
    Ok(connection)
}

/// Runs the rotation.
pub async fn rotate(args: &RotateKeyArgs) -> Result<RotationReport, RotationError> {
    let data_dir = std::path::absolute(&args.data_dir).map_err(|source| RotationError::Io {
        path: args.data_dir.clone(),
        source,
    })?;
    let keys = Keys::resolve(args, &data_dir)?;
    let (url, started_here) = match &args.database_url {
        Some(url) => (url.clone(), None),
        None => {
            let dir = data_dir.join("controlplane");
            let running_before =
                accepts_connections(&EmbeddedPostgres::url_in(&dir, "postgres")).await;
            let embedded =
                EmbeddedPostgres::ensure_running(&dir, args.pg_bin_dir.as_deref()).await?;
            let url = embedded.url("postgres");
            (url, (!running_before).then_some(embedded))
        }
    };
    let outcome = reseal(&url, &keys).await;
    if let Some(embedded) = started_here
        && let Err(error) = embedded.stop().await
    {
        tracing::warn!(%error, "stopping the embedded control-plane database failed");
    }
    let mut report = outcome?;
    report.key_file = keys.install()?;
    Ok(report)
}

async fn accepts_connections(url: &str) -> bool {
    match sqlx::PgConnection::connect(url).await {
        Ok(connection) => {
            let _ = connection.close().await;
            true
        }
        Err(_) => false,
    }
}

/// Takes the lock, checks that nothing is in flight, stages the new key, cancels the monitors,
/// and re-seals every password in one transaction.
async fn reseal(url: &str, keys: &Keys) -> Result<RotationReport, RotationError> {
    let metadata = MetadataStore::connect(url, 2).await?;
    let mut connection = metadata.pool().acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(SERVER_LOCK_ID)
        .fetch_one(&mut *connection)
        .await?;
    if !locked {
        return Err(RotationError::ServerRunning);
    }
    let mut report = RotationReport::default();
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('toygres.instances') IS NOT NULL")
        .fetch_one(&mut *connection)
        .await?;
    if !exists {
        keys.stage()?;
        return Ok(report);
    }
    let busy: Option<(String, String)> = sqlx::query_as(
        "SELECT active_operation_id, name FROM toygres.instances \
         WHERE active_operation_id IS NOT NULL ORDER BY id LIMIT 1",
    )
    .fetch_optional(&mut *connection)
    .await?;
    if let Some((operation, instance)) = busy {
        return Err(RotationError::OperationInProgress {
            operation,
            instance,
        });
    }

    keys.stage()?;

    // Monitors first: their inputs hold the old sealing. The next server start cancels them
    // and, since no instance names a monitor any more, starts new ones from the re-sealed rows.
    let monitors: Vec<String> = sqlx::query_scalar(
        "SELECT monitor_id FROM toygres.instances WHERE monitor_id IS NOT NULL ORDER BY id",
    )
    .fetch_all(&mut *connection)
    .await?;
    if !monitors.is_empty() {
        let store = open_store(url)
            .await
            .map_err(|error| RotationError::Database(format!("{error:#}")))?;
        let client = duroxide::Client::new(store);
        for monitor in &monitors {
            client
                .cancel_instance(monitor.as_str(), "the secret key was rotated")
                .await
                .map_err(|error| RotationError::Database(error.to_string()))?;
        }
    }
    report.monitors_restarted = monitors.len();

    let mut transaction = connection.begin().await?;
    // The owner's password and those of the control plane's roles in the instance.
    for column in SEALED_COLUMNS {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(&format!(
            "SELECT id, name, {column} FROM toygres.instances WHERE {column} IS NOT NULL ORDER BY id FOR UPDATE"
        ))
        .fetch_all(&mut *transaction)
        .await?;
        for (id, name, stored) in rows {
            let sealed = SealedSecret::from_stored(stored);
            if keys.new.open(&sealed).is_ok() {
                report.already_resealed += 1;
                continue;
            }
            let password = keys
                .current
                .open(&sealed)
                .map_err(|_| RotationError::Unreadable(name))?;
            sqlx::query(&format!(
                "UPDATE toygres.instances SET {column} = $2 WHERE id = $1"
            ))
            .bind(id)
            .bind(keys.new.seal(&password).as_str())
            .execute(&mut *transaction)
            .await?;
            report.resealed += 1;
        }
    }
    sqlx::query("UPDATE toygres.instances SET monitor_id = NULL WHERE monitor_id IS NOT NULL")
        .execute(&mut *transaction)
        .await?;
    // Request hashes and scopes of idempotency keys are HMACs under a subkey of the old key: no
    // retry would match again, and it would be refused as a reused key. Nothing is in flight
    // (checked above), so forgetting the keys is safe: a retry is a new request.
    report.idempotency_keys_forgotten = sqlx::query(
        "UPDATE toygres.operations SET idempotency_key = NULL, request_hash = NULL \
         WHERE idempotency_key IS NOT NULL OR request_hash IS NOT NULL",
    )
    .execute(&mut *transaction)
    .await?
    .rows_affected();
    transaction.commit().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn args(
        data_dir: &Path,
        current: Option<&SecretKey>,
        new: Option<&SecretKey>,
    ) -> RotateKeyArgs {
        let secret = |key: &SecretKey| Secret::new(key.to_base64());
        RotateKeyArgs {
            data_dir: data_dir.to_path_buf(),
            database_url: None,
            secret_key: current.map(secret),
            new_secret_key: new.map(secret),
            pg_bin_dir: None,
        }
    }

    #[test]
    fn with_the_key_file_a_new_key_is_staged_then_installed() -> TestResult {
        let dir = tempfile::tempdir()?;
        let old = SecretKey::load_or_generate(&dir.path().join(KEY_FILE))?;
        let keys = Keys::resolve(&args(dir.path(), None, None), dir.path())?;
        assert!(
            !dir.path().join(NEXT_KEY_FILE).exists(),
            "nothing written yet"
        );
        keys.stage()?;
        let staged = std::fs::read_to_string(dir.path().join(NEXT_KEY_FILE))?;
        assert_eq!(staged, keys.new.to_base64());
        assert_ne!(staged, old.to_base64());

        // Run again after an interruption: the staged key is kept.
        let again = Keys::resolve(&args(dir.path(), None, None), dir.path())?;
        assert_eq!(again.new.to_base64(), staged);
        let conflicting = SecretKey::generate();
        assert!(Keys::resolve(&args(dir.path(), None, Some(&conflicting)), dir.path()).is_err());

        assert_eq!(again.install()?, Some(dir.path().join(KEY_FILE)));
        assert_eq!(std::fs::read_to_string(dir.path().join(KEY_FILE))?, staged);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(PREVIOUS_KEY_FILE))?,
            old.to_base64()
        );
        assert!(!dir.path().join(NEXT_KEY_FILE).exists());
        for file in [KEY_FILE, PREVIOUS_KEY_FILE] {
            let mode = std::fs::metadata(dir.path().join(file))?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        Ok(())
    }

    #[test]
    fn with_the_environment_the_new_key_must_be_given_and_differ() -> TestResult {
        let dir = tempfile::tempdir()?;
        let current = SecretKey::generate();
        let new = SecretKey::generate();
        assert!(matches!(
            Keys::resolve(&args(dir.path(), Some(&current), None), dir.path()),
            Err(RotationError::NewKeyRequired)
        ));
        assert!(matches!(
            Keys::resolve(
                &args(dir.path(), Some(&current), Some(&current)),
                dir.path()
            ),
            Err(RotationError::SameKey)
        ));
        let keys = Keys::resolve(&args(dir.path(), Some(&current), Some(&new)), dir.path())?;
        keys.stage()?;
        assert_eq!(keys.install()?, None);
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 0, "nothing on disk");
        Ok(())
    }

    #[test]
    fn a_missing_key_file_is_an_error() -> TestResult {
        let dir = tempfile::tempdir()?;
        assert!(matches!(
            Keys::resolve(&args(dir.path(), None, None), dir.path()),
            Err(RotationError::Io { .. })
        ));
        assert!(!dir.path().join(NEXT_KEY_FILE).exists());
        Ok(())
    }
}
