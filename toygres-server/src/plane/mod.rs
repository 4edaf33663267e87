//! The control plane's request handling below HTTP. Every operation kind goes through one
//! mechanism ([`accept`]): validate, claim the instance and record the operation in one
//! metadata transaction, start the kind's workflow ([`workflows`]); the reconciler starts what
//! was recorded but not started, and reads overlay live progress ([`ControlPlane::view`]).
//! [`ControlPlane::create`] and [`ControlPlane::delete`] are here, the operations that change
//! an existing instance in [`changes`].

mod accept;
pub mod backups;
pub mod catalogs;
pub mod changes;
mod placement;
pub mod reconciler;
pub mod upgrade;
mod workflows;

pub use accept::Accepted;
pub use backups::{BackupPolicy, RestoreRequest, restore_window};
pub use changes::UpdateRequest;

use duroxide::{Client, OrchestrationStatus};
use rand::Rng as _;
use std::collections::BTreeMap;
use toygres_activities::backend::PlacementError;
use toygres_activities::error::{ActivityError, ErrorCode};
use toygres_activities::metadata::{
    DeleteReservation, InstanceRecord, MetadataError, MetadataStore, NewInstance, OperationRecord,
    ReserveError,
};
use toygres_activities::model::{Expose, OperationKind, OperationStatus};
use toygres_activities::seal::SecretKey;
use toygres_activities::validation::InstanceName;
use toygres_orchestrations::types::{
    ChangeLimits, CreateLimits, DeleteLimits, HealthSettings, InitialParameters, Progress,
};

/// Length of generated passwords.
pub const GENERATED_PASSWORD_LEN: usize = 32;

/// A failure of a service call, mapped one-to-one to API error codes.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A field is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field (`parameters.work_mem` for one parameter).
        field: String,
        /// Why.
        message: String,
    },
    /// A live instance has the name.
    #[error("an instance with this name already exists")]
    NameInUse,
    /// No such instance or operation.
    #[error("not found")]
    NotFound,
    /// Another mutating operation holds the instance.
    #[error("operation {0} is in progress on this instance")]
    OperationInProgress(String),
    /// The action does not apply to the instance's state.
    #[error("{0}")]
    InvalidState(String),
    /// Deletion protection is on.
    #[error("{0}")]
    DeletionProtected(String),
    /// The idempotency key was used with a different request.
    #[error("the Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    /// The request cannot be served now; the message says why and what to do.
    #[error("{0}")]
    Unavailable(String),
    /// The backend (or this server's settings) cannot do this; the message says why.
    #[error("{0}")]
    UnsupportedByBackend(String),
    /// Anything else (logged, never shown).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// A 422 for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<PlacementError> for ServiceError {
    fn from(error: PlacementError) -> Self {
        match error {
            PlacementError::NoNamespaces { .. } => {
                ServiceError::UnsupportedByBackend(error.to_string())
            }
            PlacementError::NotAllowed { .. } | PlacementError::Missing(_) => {
                ServiceError::invalid("namespace", error.to_string())
            }
            PlacementError::Forbidden(message) => ServiceError::Unavailable(message),
            PlacementError::Backend(error) => ServiceError::Unavailable(format!(
                "the backend could not check the namespace: {error}"
            )),
        }
    }
}

impl From<MetadataError> for ServiceError {
    fn from(error: MetadataError) -> Self {
        ServiceError::Internal(error.to_string())
    }
}

impl From<ReserveError> for ServiceError {
    fn from(error: ReserveError) -> Self {
        match error {
            ReserveError::NameInUse => ServiceError::NameInUse,
            ReserveError::NotFound => ServiceError::NotFound,
            ReserveError::OperationInProgress(id) => ServiceError::OperationInProgress(id),
            ReserveError::IdempotencyKeyTaken => ServiceError::IdempotencyKeyReused,
            error @ (ReserveError::InvalidState { .. } | ReserveError::NeverRan) => {
                ServiceError::InvalidState(error.to_string())
            }
            error @ ReserveError::DeletionProtected => {
                ServiceError::DeletionProtected(error.to_string())
            }
            error @ ReserveError::Upgrading => ServiceError::Unavailable(error.to_string()),
            ReserveError::Invalid { field, message } => ServiceError::invalid(field, message),
            ReserveError::Metadata(error) => ServiceError::Internal(error.to_string()),
        }
    }
}

/// A caller's `Idempotency-Key`: its scope, the key, and the keyed hash of the request.
pub use toygres_activities::metadata::IdempotencyKey as Idempotency;

/// A validated create request.
#[derive(Clone)]
pub struct CreateRequest {
    /// Instance name.
    pub name: InstanceName,
    /// Caller-chosen password; generated when `None`.
    pub password: Option<String>,
    /// Major version; the newest offered when `None`.
    pub postgres_version: Option<String>,
    /// Storage in GiB.
    pub storage_gb: u32,
    /// Exposure.
    pub expose: Expose,
    /// DNS label for public instances.
    pub dns_label: Option<String>,
    /// The namespace it goes into (checked by the backend here); the backend's default when
    /// `None`.
    pub namespace: Option<String>,
    /// Server parameters (checked against the version's `pg_settings` here).
    pub parameters: BTreeMap<String, String>,
    /// Whether deletes are refused.
    pub deletion_protection: bool,
    /// The backups the data comes from (`None`: a new, empty instance).
    pub restore_from: Option<RestoreRequest>,
    /// Idempotency key, if any.
    pub idempotency: Option<Idempotency>,
}

/// An operation as users see it: the recorded row, with live status and progress while it runs.
#[derive(Debug, Clone)]
pub struct OperationView {
    /// The row.
    pub record: OperationRecord,
    /// Current status.
    pub status: OperationStatus,
    /// Current (or failed) step.
    pub step: Option<String>,
    /// Steps done.
    pub done: u32,
    /// Steps in all.
    pub total: u32,
    /// The error when failed or canceled.
    pub error: Option<ActivityError>,
}

/// What an accepted create returns.
#[derive(Debug, Clone)]
pub struct CreateAccepted {
    /// The instance as recorded.
    pub instance: InstanceRecord,
    /// The operation.
    pub operation: OperationView,
    /// The password, returned once.
    pub password: String,
}

/// The control plane: metadata, workflows, and the sealing key.
#[derive(Clone)]
pub struct ControlPlane {
    /// The metadata store.
    pub metadata: MetadataStore,
    /// The Duroxide client.
    pub client: Client,
    /// Where instances run (the upgrade of older instances connects to them through it).
    pub backend: std::sync::Arc<dyn toygres_activities::backend::Backend>,
    /// The backend's kind (`local`).
    pub backend_kind: String,
    /// Versions the backend offers, oldest first.
    pub versions: Vec<String>,
    /// The key that seals passwords.
    pub secret_key: SecretKey,
    /// Deadlines and retries of creates.
    pub create_limits: CreateLimits,
    /// Deadlines and retries of deletes.
    pub delete_limits: DeleteLimits,
    /// Deadlines and retries of the operations that change an existing instance.
    pub change_limits: ChangeLimits,
    /// How running instances are watched.
    pub health: HealthSettings,
    /// Time between drift scans.
    pub drift_interval: std::time::Duration,
    /// How long resources stay orphaned before they are removed.
    pub drift_grace: std::time::Duration,
    /// The parameter catalogs of the versions seen, read from their servers.
    pub catalogs: catalogs::Catalogs,
    /// How backups are scheduled and bounded (`None`: backups are off).
    pub backups: Option<BackupPolicy>,
}

impl ControlPlane {
    /// Validates, records and starts a create. Replays the first answer for a repeated
    /// idempotency key with the same request.
    pub async fn create(&self, request: CreateRequest) -> Result<CreateAccepted, ServiceError> {
        let idempotency = request.idempotency.clone();
        if let Some(key) = &idempotency
            && let Some(replayed) = self.replay(key, OperationKind::Create).await?
        {
            return self.with_password(replayed);
        }
        let namespace = self.placement(request.namespace.as_deref()).await?;
        let restore = match &request.restore_from {
            Some(restore) => Some(self.restore_plan(restore).await?),
            None => None,
        };
        let postgres_version = match (&request.postgres_version, &restore) {
            (Some(version), Some((_, source))) if *version != source.postgres_version => {
                return Err(ServiceError::invalid(
                    "postgres_version",
                    format!(
                        "a restore of {} makes PostgreSQL {}",
                        source.name, source.postgres_version
                    ),
                ));
            }
            (_, Some((_, source))) => source.postgres_version.clone(),
            (Some(version), None) if self.versions.contains(version) => version.clone(),
            (Some(_), None) => {
                return Err(ServiceError::invalid(
                    "postgres_version",
                    format!("must be one of: {}", self.versions.join(", ")),
                ));
            }
            (None, None) => self
                .versions
                .last()
                .cloned()
                .ok_or_else(|| ServiceError::Internal("no versions offered".into()))?,
        };
        // A restore keeps the source's parameters; the request's come on top.
        let mut parameters = restore
            .as_ref()
            .map(|(_, source)| source.parameters.0.clone())
            .unwrap_or_default();
        parameters.extend(request.parameters.clone());
        let storage_gb = match &restore {
            Some((_, source)) => request
                .storage_gb
                .max(u32::try_from(source.storage_gb).unwrap_or(1)),
            None => request.storage_gb,
        };
        let initial = self
            .initial_parameters(&postgres_version, &parameters)
            .await?;
        let password = request.password.clone().unwrap_or_else(generate_password);
        let sealed_password = self.secret_key.seal(&password);
        let new = NewInstance {
            sealed_admin_password: self.secret_key.seal(&generate_password()),
            sealed_monitor_password: self.secret_key.seal(&generate_password()),
            uid: random_id("ins_"),
            name: request.name.clone(),
            namespace,
            backend: self.backend_kind.clone(),
            postgres_version,
            storage_gb: i32::try_from(storage_gb).unwrap_or(i32::MAX),
            expose: request.expose,
            dns_label: request.dns_label.clone(),
            sealed_password: sealed_password.clone(),
            parameters,
            deletion_protection: request.deletion_protection,
        };
        let recorded = accept::CreateRecord {
            sealed_password,
            parameters: initial,
            restore: restore.map(|(plan, _)| plan),
        };
        let accepted = self
            .accept(
                OperationKind::Create,
                idempotency,
                Some(recorded.to_json()?),
                |operation| async move {
                    let (instance, record) = self.metadata.reserve_create(&new, &operation).await?;
                    Ok(accept::Reserved::new(instance, record))
                },
            )
            .await?;
        self.with_password(accepted)
    }

    /// Records and starts a delete (a create still running is canceled first); a delete
    /// already running is returned as is. With `final_backup`, a full backup is taken first
    /// (the instance must be running or stopped).
    pub async fn delete(
        &self,
        name: &InstanceName,
        idempotency: Option<Idempotency>,
        final_backup: bool,
    ) -> Result<Accepted, ServiceError> {
        let final_backup = if final_backup {
            self.backup_policy()?;
            Some(toygres_activities::metadata::NewBackup {
                id: random_id("bk_"),
                kind: toygres_activities::model::BackupType::Full,
            })
        } else {
            None
        };
        let final_backup = final_backup.as_ref();
        self.accept(
            OperationKind::Delete,
            idempotency,
            None,
            |operation| async move {
                Ok(
                    match self
                        .metadata
                        .reserve_delete_with(name, &operation, final_backup)
                        .await?
                    {
                        DeleteReservation::Started {
                            instance,
                            operation,
                        } => accept::Reserved::new(instance, operation),
                        DeleteReservation::AlreadyDeleting {
                            instance,
                            operation,
                        } => accept::Reserved::existing(instance, operation),
                    },
                )
            },
        )
        .await
    }

    /// The parameters a create sets, checked against the version's catalog, split by when
    /// they take effect.
    async fn initial_parameters(
        &self,
        version: &str,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Option<InitialParameters>, ServiceError> {
        if parameters.is_empty() {
            return Ok(None);
        }
        let catalog = self.catalogs.for_version(self, version).await?;
        let mut initial = InitialParameters::default();
        for (name, value) in parameters {
            let change = catalog
                .check(name, Some(value))
                .map_err(catalogs::invalid_parameter)?;
            match (change.restart, &change.value) {
                (true, Some(value)) => {
                    initial.start.insert(change.name.clone(), value.clone());
                }
                _ => initial.reload.push(change),
            }
        }
        Ok(Some(initial))
    }

    /// The create's answer with the password it was accepted with.
    fn with_password(&self, accepted: Accepted) -> Result<CreateAccepted, ServiceError> {
        let password = accept::CreateRecord::password(self, &accepted)?;
        Ok(CreateAccepted {
            instance: accepted.instance,
            operation: accepted.operation,
            password,
        })
    }

    /// An operation with its live status.
    pub async fn operation(&self, id: &str) -> Result<OperationView, ServiceError> {
        let record = self
            .metadata
            .operation(id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        self.view(record).await
    }

    /// Starts the monitor workflow `monitor_id` of a running instance.
    pub async fn start_monitor(
        &self,
        instance: &InstanceRecord,
        monitor_id: &str,
    ) -> Result<(), ServiceError> {
        workflows::start_monitor(self, instance, monitor_id).await
    }

    /// Starts the workflow of a recorded operation.
    pub async fn try_start_workflow(
        &self,
        instance: &InstanceRecord,
        operation: &OperationRecord,
    ) -> Result<(), ServiceError> {
        workflows::start(self, instance, operation).await
    }

    /// Overlays the workflow's live status on an unfinished operation row.
    pub async fn view(&self, record: OperationRecord) -> Result<OperationView, ServiceError> {
        let recorded = recorded_view(&record);
        if record.status.is_terminal() {
            return Ok(recorded);
        }
        let status = self
            .client
            .get_orchestration_status(&record.id)
            .await
            .map_err(|error| ServiceError::Internal(error.to_string()))?;
        Ok(match status {
            OrchestrationStatus::NotFound => OperationView {
                status: OperationStatus::Pending,
                ..recorded
            },
            OrchestrationStatus::Running { custom_status, .. } => {
                let progress =
                    custom_status.and_then(|raw| serde_json::from_str::<Progress>(&raw).ok());
                match progress {
                    Some(progress) => OperationView {
                        status: OperationStatus::Running,
                        done: running_done(&progress),
                        total: progress.total,
                        step: Some(progress.step),
                        ..recorded
                    },
                    None => OperationView {
                        status: OperationStatus::Running,
                        ..recorded
                    },
                }
            }
            // Finished, but the final metadata write has not landed (or could not): report the
            // workflow's own outcome so nothing looks stuck.
            OrchestrationStatus::Completed { .. } => recorded,
            OrchestrationStatus::Failed { details, .. } => {
                let (status, error) = match &details {
                    duroxide::ErrorDetails::Application {
                        kind: duroxide::AppErrorKind::Cancelled { reason },
                        ..
                    } => (
                        OperationStatus::Canceled,
                        ActivityError::permanent(ErrorCode::Canceled, reason.clone()),
                    ),
                    duroxide::ErrorDetails::Application { message, .. } => {
                        (OperationStatus::Failed, ActivityError::decode(message))
                    }
                    other => (
                        OperationStatus::Failed,
                        ActivityError::permanent(ErrorCode::Internal, other.display_message()),
                    ),
                };
                OperationView {
                    status,
                    error: Some(error),
                    ..recorded
                }
            }
        })
    }
}

/// Steps done of a running workflow: never all of them, since only a succeeded operation has
/// every step done (a workflow may report its last step done a moment before the row says so).
fn running_done(progress: &Progress) -> u32 {
    progress.done.min(progress.total.saturating_sub(1))
}

fn recorded_view(record: &OperationRecord) -> OperationView {
    let error = record.error_code.as_ref().map(|code| ActivityError {
        code: serde_json::from_value(serde_json::Value::String(code.clone()))
            .unwrap_or(ErrorCode::Internal),
        message: record.error_message.clone().unwrap_or_default(),
        retryable: record.error_retryable.unwrap_or(false),
    });
    OperationView {
        record: record.clone(),
        status: record.status,
        step: record.step.clone(),
        done: u32::try_from(record.progress_done).unwrap_or(0),
        total: u32::try_from(record.progress_total).unwrap_or(0),
        error,
    }
}

/// A random password of [`GENERATED_PASSWORD_LEN`] letters and digits from a CSPRNG.
pub fn generate_password() -> String {
    random_string(
        GENERATED_PASSWORD_LEN,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    )
}

/// `prefix` followed by 24 random lowercase letters and digits (about 124 bits).
pub fn random_id(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        random_string(24, b"abcdefghijklmnopqrstuvwxyz0123456789")
    )
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_operation_never_has_every_step_done() {
        let progress = |done, total| Progress {
            step: "finalize".into(),
            done,
            total,
        };
        assert_eq!(running_done(&progress(2, 5)), 2);
        assert_eq!(running_done(&progress(4, 5)), 4);
        assert_eq!(running_done(&progress(5, 5)), 4);
        assert_eq!(running_done(&progress(0, 0)), 0);
    }

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let first = generate_password();
        assert_eq!(first.len(), GENERATED_PASSWORD_LEN);
        assert!(first.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(first, generate_password());
    }

    #[test]
    fn ids_are_prefixed_and_unguessable() {
        let id = random_id("op_");
        assert!(id.starts_with("op_"));
        assert_eq!(id.len(), 27);
        assert_ne!(id, random_id("op_"));
    }
}
