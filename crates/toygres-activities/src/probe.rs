//! Connecting to an instance with its own credentials, as a user would.

use std::time::Duration;

/// Where and as whom to connect.
#[derive(Clone)]
pub struct ConnectTarget {
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
    /// Connecting or querying failed.
    #[error("{0}")]
    Postgres(String),
}

/// Connects (with `timeout` for connect and query together) and returns `SELECT version()`.
pub async fn server_version(
    target: &ConnectTarget,
    timeout: Duration,
) -> Result<String, ProbeError> {
    query_text(target, timeout, "SELECT version()").await
}

/// Connects and runs `SELECT 1` (within `timeout` for both); returns how long it took.
pub async fn select_one(target: &ConnectTarget, timeout: Duration) -> Result<Duration, ProbeError> {
    let started = std::time::Instant::now();
    let answer = query_text(target, timeout, "SELECT '1'").await?;
    if answer != "1" {
        return Err(ProbeError::Postgres(format!(
            "SELECT 1 answered {answer:?}"
        )));
    }
    Ok(started.elapsed())
}

/// Connects and returns the first column of the first row of `sql` (a text value).
async fn query_text(
    target: &ConnectTarget,
    timeout: Duration,
    sql: &str,
) -> Result<String, ProbeError> {
    let attempt = async {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&target.host)
            .port(target.port)
            .user(&target.user)
            .dbname(&target.database)
            .password(target.password.as_bytes())
            .application_name("toygres-probe")
            .connect_timeout(timeout);
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
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
    // The database error carries the server's message (e.g. "password authentication failed").
    let detail = error
        .as_db_error()
        .map(|db| db.message().to_string())
        .unwrap_or_else(|| error.to_string());
    ProbeError::Postgres(detail)
}
