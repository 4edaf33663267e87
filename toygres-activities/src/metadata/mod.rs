//! The metadata store: instances, operations and the audit trail, in the PostgreSQL schema
//! `toygres`. Activities write state transitions; the API reserves names and reads.

mod backups;
mod catalog;
mod drift;
mod health;
mod overview;
#[cfg(test)]
mod read_plans;
mod reads;
mod records;
mod reservations;
mod roles;
mod transitions;

pub use backups::NewBackup;
pub use health::{
    HEALTH_SAMPLES_KEPT, HealthRecorded, HealthSample, HealthSampleRecord, InstanceCounts,
};
pub use overview::OperationCount;
pub use reads::Page;
pub use records::{BackupRecord, EventRecord, InstanceRecord, OperationRecord};
pub use reservations::{
    Claim, DeleteReservation, IdempotencyKey, NewInstance, NewOperation, ReserveError,
};
pub use transitions::{InstanceChanges, MonitorChange, Placement, TransitionError};

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr as _;
use std::time::Duration;

/// The PostgreSQL schema that holds the metadata tables.
pub const SCHEMA: &str = "toygres";

/// A pooled connection idle for longer than this is pinged before it is handed out.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// A metadata store failure.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The database URL is not valid.
    #[error("invalid database URL: {0}")]
    BadUrl(String),
    /// A query failed.
    #[error("metadata database: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("metadata migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A handle on the metadata database; cheap to clone.
#[derive(Debug, Clone)]
pub struct MetadataStore {
    pool: PgPool,
}

impl MetadataStore {
    /// Connects to `database_url` with `search_path` set to the metadata schema.
    pub async fn connect(database_url: &str, max_connections: u32) -> Result<Self, MetadataError> {
        let options = PgConnectOptions::from_str(database_url)
            .map_err(|error| MetadataError::BadUrl(error.to_string()))?
            .options([("search_path", SCHEMA)]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings a connection before every acquire by default: one more round trip per
            // query, about a third of a by-name GET. Only a connection idle for a while (and so
            // possibly cut by a database restart meanwhile) is checked, and replaced if dead.
            .test_before_acquire(false)
            .before_acquire(|connection, meta| {
                Box::pin(async move {
                    if meta.idle_for < CHECK_IDLE_AFTER {
                        return Ok(true);
                    }
                    Ok(sqlx::Connection::ping(connection).await.is_ok())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    /// Creates the schema when missing and applies every migration in `migrations/`.
    pub async fn migrate(&self) -> Result<(), MetadataError> {
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
            .execute(&self.pool)
            .await?;
        sqlx::migrate!("../migrations").run(&self.pool).await?;
        Ok(())
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}
