//! The metadata store: instances, operations and the audit trail, in the PostgreSQL schema
//! `toygres`. Activities write state transitions; the API reserves names and reads.

mod drift;
mod health;
mod reads;
mod records;
mod reservations;
mod transitions;

pub use health::{HealthRecorded, HealthSample};
pub use reads::Page;
pub use records::{EventRecord, InstanceRecord, OperationRecord};
pub use reservations::{DeleteReservation, NewInstance, NewOperation, ReserveError};
pub use transitions::TransitionError;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr as _;
use std::time::Duration;

/// The PostgreSQL schema that holds the metadata tables.
pub const SCHEMA: &str = "toygres";

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
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    /// Creates the schema when missing and applies every migration in `migrations/`.
    pub async fn migrate(&self) -> Result<(), MetadataError> {
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
            .execute(&self.pool)
            .await?;
        sqlx::migrate!("../../migrations").run(&self.pool).await?;
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
