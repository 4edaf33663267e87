//! Connecting to an instance with its own credentials, as a user would, over the connection
//! its backend opens ([`Backend::dial`]).

use crate::backend::{Backend, BackendError, Endpoint};
use crate::validation::InstanceName;
use std::time::Duration;

/// Where and as whom to connect.
#[derive(Clone)]
pub struct ConnectTarget {
    /// The instance.
    pub name: InstanceName,
    /// Its namespace (`None`: the backend's default).
    pub namespace: Option<String>,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Database name.
    pub database: String,
    /// The password, in memory only.
    pub password: String,
}

impl ConnectTarget {
    /// The instance, where its backend finds it.
    pub fn instance(&self) -> crate::backend::InstanceRef<'_> {
        crate::backend::InstanceRef::new(&self.name, self.namespace.as_deref())
    }
}

impl std::fmt::Debug for ConnectTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "postgresql://{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer within the timeout.
    #[error("no answer within {0} ms")]
    Timeout(u128),
    /// The backend could not open a connection.
    #[error("unreachable: {0}")]
    Unreachable(#[from] BackendError),
    /// Connecting or querying failed.
    #[error("{0}")]
    Postgres(String),
}

impl ProbeError {
    /// Whether another attempt may succeed (all but a connection the backend refuses for good,
    /// such as a port-forward its Role forbids).
    pub fn is_retryable(&self) -> bool {
        match self {
            ProbeError::Unreachable(error) => error.is_retryable(),
            ProbeError::Timeout(_) | ProbeError::Postgres(_) => true,
        }
    }
}

/// Connects (with `timeout` for connect and query together) and returns `SELECT version()`.
pub async fn server_version(
    backend: &dyn Backend,
    target: &ConnectTarget,
    timeout: Duration,
) -> Result<String, ProbeError> {
    query_text(backend, target, timeout, "SELECT version()").await
}

/// Connects and runs `SELECT 1` (within `timeout` for both); returns how long it took.
pub async fn select_one(
    backend: &dyn Backend,
    target: &ConnectTarget,
    timeout: Duration,
) -> Result<Duration, ProbeError> {
    let started = std::time::Instant::now();
    let answer = query_text(backend, target, timeout, "SELECT '1'").await?;
    if answer != "1" {
        return Err(ProbeError::Postgres(format!(
            "SELECT 1 answered {answer:?}"
        )));
    }
    Ok(started.elapsed())
}

/// What `pg_stat_archiver` says of an instance's WAL archiving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveProbe {
    /// The last archive attempt failed (no success since).
    pub failing: bool,
    /// The segment that failed last, when failing.
    pub failed_wal: Option<String>,
}

/// Connects (as a member of `pg_monitor`) and reads whether WAL archiving fails.
pub async fn archive_status(
    backend: &dyn Backend,
    target: &ConnectTarget,
    timeout: Duration,
) -> Result<ArchiveProbe, ProbeError> {
    let answer = query_text(
        backend,
        target,
        timeout,
        "SELECT (last_failed_time IS NOT NULL AND (last_archived_time IS NULL            OR last_failed_time > last_archived_time))::text || '|' || coalesce(last_failed_wal, '')          FROM pg_catalog.pg_stat_archiver",
    )
    .await?;
    let (failing, wal) = answer
        .split_once('|')
        .ok_or_else(|| ProbeError::Postgres(format!("pg_stat_archiver answered {answer:?}")))?;
    Ok(ArchiveProbe {
        failing: failing == "true",
        failed_wal: (!wal.is_empty()).then(|| wal.to_string()),
    })
}

/// Connects and returns the first column of the first row of `sql` (a text value).
async fn query_text(
    backend: &dyn Backend,
    target: &ConnectTarget,
    timeout: Duration,
    sql: &str,
) -> Result<String, ProbeError> {
    let attempt = async {
        let endpoint = Endpoint {
            host: target.host.clone(),
            port: target.port,
        };
        let stream = backend
            .dial(target.instance(), &endpoint)
            .await
            .map_err(ProbeError::Unreachable)?;
        let mut config = tokio_postgres::Config::new();
        config
            .user(&target.user)
            .dbname(&target.database)
            .password(target.password.as_bytes())
            .application_name("toygres-probe");
        let (client, connection) = config
            .connect_raw(stream, tokio_postgres::NoTls)
            .await
            .map_err(describe)?;
        let driver = tokio::spawn(connection);
        let row = client.query_one(sql, &[]).await.map_err(describe);
        drop(client);
        driver.abort();
        row?.try_get::<_, String>(0).map_err(describe)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| ProbeError::Timeout(timeout.as_millis()))?
}

fn describe(error: tokio_postgres::Error) -> ProbeError {
    // The database error carries the server's message (e.g. "password authentication failed");
    // other errors say what went wrong in their sources ("error communicating with the
    // server: connection refused").
    if let Some(db) = error.as_db_error() {
        return ProbeError::Postgres(db.message().to_string());
    }
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !detail.contains(&cause_text) {
            detail = format!("{detail}: {cause_text}");
        }
        source = cause.source();
    }
    ProbeError::Postgres(detail)
}
