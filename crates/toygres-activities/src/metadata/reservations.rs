//! Writes the API makes when it accepts a request: reserving a name for a create, claiming an
//! instance for a delete. Each is one transaction; races are settled by the database.

use super::records::{InstanceRecord, OperationRecord};
use super::{MetadataError, MetadataStore};
use crate::model::{Expose, OperationKind};
use crate::seal::SealedSecret;
use crate::validation::InstanceName;

/// The instance a create request asks for.
#[derive(Debug, Clone)]
pub struct NewInstance {
    /// Unique per incarnation (`ins_` + random).
    pub uid: String,
    /// The name.
    pub name: InstanceName,
    /// Backend kind.
    pub backend: String,
    /// Major PostgreSQL version.
    pub postgres_version: String,
    /// Storage in GiB.
    pub storage_gb: i32,
    /// Exposure.
    pub expose: Expose,
    /// DNS label for public instances.
    pub dns_label: Option<String>,
    /// The sealed superuser password.
    pub sealed_password: SealedSecret,
}

/// The operation row a request creates.
#[derive(Debug, Clone)]
pub struct NewOperation {
    /// `op_` + random; also the orchestration instance id.
    pub id: String,
    /// Steps in all, for progress.
    pub progress_total: i32,
    /// The client's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// Hash of the request body the key came with.
    pub request_hash: Option<String>,
}

/// Why a request could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    /// A live instance already has this name.
    #[error("an instance with this name already exists")]
    NameInUse,
    /// No live instance has this name.
    #[error("no such instance")]
    NotFound,
    /// Another operation holds the instance.
    #[error("operation {0} is in progress on this instance")]
    OperationInProgress(String),
    /// Another request took this idempotency key first.
    #[error("the idempotency key is already used")]
    IdempotencyKeyTaken,
    /// The database failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

impl From<sqlx::Error> for ReserveError {
    fn from(error: sqlx::Error) -> Self {
        match constraint_of(&error) {
            Some("instances_live_name") => ReserveError::NameInUse,
            Some("operations_idempotency_key") => ReserveError::IdempotencyKeyTaken,
            _ => ReserveError::Metadata(MetadataError::Database(error)),
        }
    }
}

fn constraint_of(error: &sqlx::Error) -> Option<&str> {
    error.as_database_error().and_then(|db| db.constraint())
}

/// What accepting a delete did.
#[derive(Debug, Clone)]
pub enum DeleteReservation {
    /// A new delete operation was recorded.
    Started {
        /// The instance.
        instance: InstanceRecord,
        /// The new delete operation.
        operation: OperationRecord,
    },
    /// A delete was already in progress; it is returned as is.
    AlreadyDeleting {
        /// The instance.
        instance: InstanceRecord,
        /// The delete already running.
        operation: OperationRecord,
    },
}

const INSERT_OPERATION: &str = "INSERT INTO operations \
    (id, kind, instance_id, instance_name, status, progress_total, cancels_operation_id, idempotency_key, request_hash) \
    VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8) RETURNING *";

impl MetadataStore {
    /// Reserves the name and records the create operation, atomically.
    pub async fn reserve_create(
        &self,
        new: &NewInstance,
        operation: &NewOperation,
    ) -> Result<(InstanceRecord, OperationRecord), ReserveError> {
        let mut tx = self.pool().begin().await?;
        let instance: InstanceRecord = sqlx::query_as(
            "INSERT INTO instances (uid, name, state, backend, postgres_version, storage_gb, expose, dns_label, \
             sealed_password, active_operation_id, last_operation_id) \
             VALUES ($1, $2, 'creating', $3, $4, $5, $6, $7, $8, $9, $9) RETURNING *",
        )
        .bind(&new.uid)
        .bind(new.name.as_str())
        .bind(&new.backend)
        .bind(&new.postgres_version)
        .bind(new.storage_gb)
        .bind(new.expose.as_str())
        .bind(&new.dns_label)
        .bind(new.sealed_password.as_str())
        .bind(&operation.id)
        .fetch_one(&mut *tx)
        .await?;
        let record: OperationRecord = sqlx::query_as(INSERT_OPERATION)
            .bind(&operation.id)
            .bind(OperationKind::Create.as_str())
            .bind(instance.id)
            .bind(&instance.name)
            .bind(operation.progress_total)
            .bind(None::<String>)
            .bind(&operation.idempotency_key)
            .bind(&operation.request_hash)
            .fetch_one(&mut *tx)
            .await?;
        super::transitions::insert_event(
            &mut tx,
            &instance,
            "state_changed",
            "creating: create accepted",
            Some(&record.id),
        )
        .await?;
        tx.commit().await?;
        Ok((instance, record))
    }

    /// Claims a live instance for a delete. A create still in progress is recorded as the
    /// operation the delete cancels first; a delete in progress is returned as is.
    pub async fn reserve_delete(
        &self,
        name: &InstanceName,
        operation: &NewOperation,
    ) -> Result<DeleteReservation, ReserveError> {
        let mut tx = self.pool().begin().await?;
        let instance: Option<InstanceRecord> = sqlx::query_as(
            "SELECT * FROM instances WHERE name = $1 AND state <> 'deleted' FOR UPDATE",
        )
        .bind(name.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let instance = instance.ok_or(ReserveError::NotFound)?;
        let mut cancels = None;
        if let Some(active_id) = &instance.active_operation_id {
            let active: OperationRecord = sqlx::query_as("SELECT * FROM operations WHERE id = $1")
                .bind(active_id)
                .fetch_one(&mut *tx)
                .await?;
            match active.kind {
                OperationKind::Delete => {
                    return Ok(DeleteReservation::AlreadyDeleting {
                        instance,
                        operation: active,
                    });
                }
                OperationKind::Create => cancels = Some(active.id),
            }
        }
        let record: OperationRecord = sqlx::query_as(INSERT_OPERATION)
            .bind(&operation.id)
            .bind(OperationKind::Delete.as_str())
            .bind(instance.id)
            .bind(&instance.name)
            .bind(operation.progress_total)
            .bind(&cancels)
            .bind(&operation.idempotency_key)
            .bind(&operation.request_hash)
            .fetch_one(&mut *tx)
            .await?;
        let instance: InstanceRecord = sqlx::query_as(
            "UPDATE instances SET active_operation_id = $2, last_operation_id = $2, updated_at = now() \
             WHERE id = $1 RETURNING *",
        )
        .bind(instance.id)
        .bind(&record.id)
        .fetch_one(&mut *tx)
        .await?;
        let message = match &cancels {
            Some(create) => format!("delete accepted; cancels {create} first"),
            None => "delete accepted".to_string(),
        };
        super::transitions::insert_event(
            &mut tx,
            &instance,
            "delete_requested",
            &message,
            Some(&record.id),
        )
        .await?;
        tx.commit().await?;
        Ok(DeleteReservation::Started {
            instance,
            operation: record,
        })
    }
}
