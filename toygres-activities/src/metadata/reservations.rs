//! Writes the API makes when it accepts a request: reserving a name for a create, claiming an
//! instance for any other operation (a delete with rules of its own). Each is one transaction;
//! races are settled by the database.

use super::records::{InstanceRecord, OperationRecord};
use super::{MetadataError, MetadataStore};
use crate::model::{Expose, InstanceState, OperationKind};
use crate::seal::SealedSecret;
use crate::validation::InstanceName;

/// The instance a create request asks for.
#[derive(Debug, Clone)]
pub struct NewInstance {
    /// Unique per incarnation (`ins_` + random).
    pub uid: String,
    /// The name.
    pub name: InstanceName,
    /// The namespace it goes into (checked by the backend before the reservation).
    pub namespace: String,
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
    /// The owner's sealed password.
    pub sealed_password: SealedSecret,
    /// The sealed password of the control plane's administering role.
    pub sealed_admin_password: SealedSecret,
    /// The sealed password of the control plane's monitoring role.
    pub sealed_monitor_password: SealedSecret,
    /// Server parameters the owner asked for (validated).
    pub parameters: std::collections::BTreeMap<String, String>,
    /// Whether deletes are refused.
    pub deletion_protection: bool,
}

/// A caller's `Idempotency-Key` as stored with the operation it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Whose key it is: keys of different callers never meet.
    pub scope: String,
    /// The key the caller sent.
    pub key: String,
    /// Keyed hash (HMAC) of the request the key came with.
    pub request_hash: String,
}

/// The operation row a request creates.
#[derive(Debug, Clone)]
pub struct NewOperation {
    /// `op_` + random; also the orchestration instance id.
    pub id: String,
    /// Steps in all, for progress.
    pub progress_total: i32,
    /// The caller's `Idempotency-Key`, if it sent one.
    pub idempotency: Option<IdempotencyKey>,
    /// What the request asked for, when the kind needs more than the instance (secrets sealed).
    pub request: Option<serde_json::Value>,
}

/// What an operation on an existing instance needs of it, checked under the instance's row lock.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The operation's kind.
    pub kind: OperationKind,
    /// The states it may claim the instance from.
    pub allowed: Vec<InstanceState>,
    /// Storage it grows the instance to: it must not be less than the current size.
    pub grows_storage_to: Option<i32>,
    /// The instance's latest operation when the request was checked: a request planned on what
    /// the instance was applies only if nothing changed it since.
    pub unchanged_since: Option<String>,
}

impl Claim {
    /// A claim of `kind` from the states it applies to, on the instance's server.
    pub fn of(kind: OperationKind) -> Self {
        Self {
            kind,
            allowed: kind.claimable_from().to_vec(),
            grows_storage_to: None,
            unchanged_since: None,
        }
    }

    /// Why `instance` cannot be claimed, if it cannot.
    fn refusal(&self, instance: &InstanceRecord) -> Option<ReserveError> {
        if let Some(active) = &instance.active_operation_id {
            return Some(ReserveError::OperationInProgress(active.clone()));
        }
        if let Some(seen) = &self.unchanged_since
            && *seen != instance.last_operation_id
        {
            return Some(ReserveError::OperationInProgress(
                instance.last_operation_id.clone(),
            ));
        }
        if !self.allowed.contains(&instance.state) {
            return Some(ReserveError::InvalidState {
                state: instance.state,
                allowed: self.allowed.clone(),
            });
        }
        // Every claimed operation works on the instance's server (its workflow's input is the
        // endpoint and the control plane's roles): it must have run and have those roles.
        if instance.host.is_none() || instance.port.is_none() {
            return Some(ReserveError::NeverRan);
        }
        if !instance.has_control_plane_roles() {
            return Some(ReserveError::Upgrading);
        }
        match self.grows_storage_to {
            Some(storage_gb) if storage_gb < instance.storage_gb => Some(ReserveError::Invalid {
                field: "storage_gb",
                message: format!(
                    "storage only grows: the instance has {} GiB, {storage_gb} is less",
                    instance.storage_gb
                ),
            }),
            _ => None,
        }
    }
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
    /// The operation does not apply to the instance's state.
    #[error(
        "the instance is {state}; this applies to an instance that is {}",
        list(allowed)
    )]
    InvalidState {
        /// The instance's state.
        state: InstanceState,
        /// The states it would apply to.
        allowed: Vec<InstanceState>,
    },
    /// The instance never ran (its create failed): there is no server to act on.
    #[error(
        "the instance never ran (its create failed): there is no server to act on; delete it and create it again"
    )]
    NeverRan,
    /// The instance is being moved onto the control plane's roles (an upgrade).
    #[error("the instance is being upgraded to the control plane's roles; try again in a minute")]
    Upgrading,
    /// Deletion protection is on.
    #[error(
        "deletion protection is on: turn it off (PATCH deletion_protection: false) to delete the instance"
    )]
    DeletionProtected,
    /// A field of the request contradicts the instance.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
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

/// `a, b or c`.
fn list(states: &[InstanceState]) -> String {
    let names: Vec<&str> = states.iter().map(|state| state.as_str()).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
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

/// Records operation `operation` of `kind` on `instance`, pending.
pub(super) async fn insert_operation(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    operation: &NewOperation,
    kind: OperationKind,
    instance: &InstanceRecord,
    cancels: Option<&str>,
) -> Result<OperationRecord, sqlx::Error> {
    let idempotency = operation.idempotency.as_ref();
    sqlx::query_as(
        "INSERT INTO operations \
         (id, kind, instance_id, instance_name, status, progress_total, cancels_operation_id, \
          idempotency_scope, idempotency_key, request_hash, request) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10) RETURNING *",
    )
    .bind(&operation.id)
    .bind(kind.as_str())
    .bind(instance.id)
    .bind(&instance.name)
    .bind(operation.progress_total)
    .bind(cancels)
    .bind(idempotency.map(|i| &i.scope))
    .bind(idempotency.map(|i| &i.key))
    .bind(idempotency.map(|i| &i.request_hash))
    .bind(&operation.request)
    .fetch_one(&mut **tx)
    .await
}

/// Makes `operation_id` the one operation allowed to change instance `instance_id`.
async fn hold_instance(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    instance_id: i64,
    operation_id: &str,
) -> Result<InstanceRecord, sqlx::Error> {
    sqlx::query_as(
        "UPDATE instances SET active_operation_id = $2, last_operation_id = $2, updated_at = now() \
         WHERE id = $1 RETURNING *",
    )
    .bind(instance_id)
    .bind(operation_id)
    .fetch_one(&mut **tx)
    .await
}

/// The live instance named `name`, locked until the transaction ends.
async fn lock_live_instance(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    name: &InstanceName,
) -> Result<InstanceRecord, ReserveError> {
    let instance: Option<InstanceRecord> =
        sqlx::query_as("SELECT * FROM instances WHERE name = $1 AND state <> 'deleted' FOR UPDATE")
            .bind(name.as_str())
            .fetch_optional(&mut **tx)
            .await?;
    instance.ok_or(ReserveError::NotFound)
}

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
             sealed_password, sealed_admin_password, sealed_monitor_password, roles_version, \
             active_operation_id, last_operation_id, parameters, deletion_protection, namespace) \
             VALUES ($1, $2, 'creating', $3, $4, $5, $6, $7, $8, $10, $11, $12, $9, $9, $13, $14, $15) \
             RETURNING *",
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
        .bind(new.sealed_admin_password.as_str())
        .bind(new.sealed_monitor_password.as_str())
        .bind(crate::roles::ROLES_VERSION)
        .bind(sqlx::types::Json(&new.parameters))
        .bind(new.deletion_protection)
        .bind(&new.namespace)
        .fetch_one(&mut *tx)
        .await?;
        let record =
            insert_operation(&mut tx, operation, OperationKind::Create, &instance, None).await?;
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
        self.reserve_delete_with(name, operation, None).await
    }

    /// [`MetadataStore::reserve_delete`], recording `final_backup` (a backup the delete takes
    /// before the instance goes) in the same transaction.
    pub async fn reserve_delete_with(
        &self,
        name: &InstanceName,
        operation: &NewOperation,
        final_backup: Option<&super::NewBackup>,
    ) -> Result<DeleteReservation, ReserveError> {
        let mut tx = self.pool().begin().await?;
        let instance = lock_live_instance(&mut tx, name).await?;
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
                // A create, or a backup (often one the scheduler started), is canceled by the
                // delete rather than making the user wait or retry.
                OperationKind::Create | OperationKind::Backup => cancels = Some(active.id),
                _ => return Err(ReserveError::OperationInProgress(active.id)),
            }
        }
        if instance.deletion_protection {
            return Err(ReserveError::DeletionProtected);
        }
        let record = insert_operation(
            &mut tx,
            operation,
            OperationKind::Delete,
            &instance,
            cancels.as_deref(),
        )
        .await?;
        let instance = hold_instance(&mut tx, instance.id, &record.id).await?;
        if let Some(backup) = final_backup {
            super::backups::insert_backup(&mut tx, &instance, &record.id, backup).await?;
        }
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

    /// Claims the live instance `name` for an operation other than a create or delete: it must
    /// be idle (else [`ReserveError::OperationInProgress`]), in a state the claim allows (else
    /// [`ReserveError::InvalidState`]) and meet the claim's other conditions. Records the
    /// operation and an event, atomically.
    pub async fn reserve_operation(
        &self,
        name: &InstanceName,
        operation: &NewOperation,
        claim: &Claim,
    ) -> Result<(InstanceRecord, OperationRecord), ReserveError> {
        let mut tx = self.pool().begin().await?;
        let claimed = claim_in(&mut tx, name, operation, claim).await?;
        tx.commit().await?;
        Ok(claimed)
    }
}

/// Claims the live instance `name` under `claim` inside `tx`: records the operation, holds the
/// instance, and writes an event.
pub(super) async fn claim_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    name: &InstanceName,
    operation: &NewOperation,
    claim: &Claim,
) -> Result<(InstanceRecord, OperationRecord), ReserveError> {
    let instance = lock_live_instance(tx, name).await?;
    if let Some(refusal) = claim.refusal(&instance) {
        return Err(refusal);
    }
    let record = insert_operation(tx, operation, claim.kind, &instance, None).await?;
    let instance = hold_instance(tx, instance.id, &record.id).await?;
    super::transitions::insert_event(
        tx,
        &instance,
        "operation_requested",
        &format!("{} accepted", claim.kind),
        Some(&record.id),
    )
    .await?;
    Ok((instance, record))
}
