//! The control plane's request handling below HTTP: validating and accepting creates and
//! deletes (record first, then start the workflow), and reading operations with live progress.

use duroxide::{Client, OrchestrationStatus};
use rand::Rng as _;
use std::time::Duration;
use toygres_activities::error::{ActivityError, ErrorCode};
use toygres_activities::metadata::{
    DeleteReservation, InstanceRecord, MetadataError, MetadataStore, NewInstance, NewOperation,
    OperationRecord, ReserveError,
};
use toygres_activities::model::{Expose, OperationKind, OperationStatus};
use toygres_activities::seal::{SealedSecret, SecretKey};
use toygres_activities::validation::InstanceName;
use toygres_orchestrations::names;
use toygres_orchestrations::types::{
    CREATE_STEPS, CreateInstanceInput, CreateLimits, DELETE_STEPS, DeleteInstanceInput,
    DeleteLimits, HealthSettings, MonitorInstanceInput, Progress,
};

/// Length of generated passwords.
pub const GENERATED_PASSWORD_LEN: usize = 32;

/// A failure of a service call, mapped one-to-one to API error codes.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A field is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
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
    /// The idempotency key was used with a different request.
    #[error("the Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    /// Anything else (logged, never shown).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<MetadataError> for ServiceError {
    fn from(error: MetadataError) -> Self {
        ServiceError::Internal(error.to_string())
    }
}

/// A client's `Idempotency-Key` and the hash of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// The key.
    pub key: String,
    /// Hash of method, path and body.
    pub request_hash: String,
}

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

/// What an accepted delete returns.
#[derive(Debug, Clone)]
pub struct DeleteAccepted {
    /// The instance.
    pub instance: InstanceRecord,
    /// The delete operation (new, or the one already running).
    pub operation: OperationView,
}

/// The control plane: metadata, workflows, and the sealing key.
#[derive(Clone)]
pub struct ControlPlane {
    /// The metadata store.
    pub metadata: MetadataStore,
    /// The Duroxide client.
    pub client: Client,
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
    /// How running instances are watched.
    pub health: HealthSettings,
    /// Time between drift scans.
    pub drift_interval: std::time::Duration,
    /// How long resources stay orphaned before they are removed.
    pub drift_grace: std::time::Duration,
}

impl ControlPlane {
    /// Validates, records and starts a create. Replays the first answer for a repeated
    /// idempotency key with the same request.
    pub async fn create(&self, request: CreateRequest) -> Result<CreateAccepted, ServiceError> {
        if let Some(idempotency) = &request.idempotency
            && let Some(replayed) = self.replay_create(idempotency).await?
        {
            return Ok(replayed);
        }
        let postgres_version = match &request.postgres_version {
            Some(version) if self.versions.contains(version) => version.clone(),
            Some(_) => {
                return Err(ServiceError::Invalid {
                    field: "postgres_version",
                    message: format!("must be one of: {}", self.versions.join(", ")),
                });
            }
            None => self
                .versions
                .last()
                .cloned()
                .ok_or_else(|| ServiceError::Internal("no versions offered".into()))?,
        };
        let password = request.password.clone().unwrap_or_else(generate_password);
        let new = NewInstance {
            uid: random_id("ins_"),
            name: request.name.clone(),
            backend: self.backend_kind.clone(),
            postgres_version,
            storage_gb: i32::try_from(request.storage_gb).unwrap_or(i32::MAX),
            expose: request.expose,
            dns_label: request.dns_label.clone(),
            sealed_password: self.secret_key.seal(&password),
        };
        let operation = NewOperation {
            id: random_id("op_"),
            progress_total: CREATE_STEPS.len() as i32,
            idempotency_key: request.idempotency.as_ref().map(|i| i.key.clone()),
            request_hash: request.idempotency.as_ref().map(|i| i.request_hash.clone()),
        };
        let (instance, record) = match self.metadata.reserve_create(&new, &operation).await {
            Ok(reserved) => reserved,
            Err(ReserveError::IdempotencyKeyTaken) => {
                // Another request with the same key won the race: answer as it did.
                let idempotency = request
                    .idempotency
                    .as_ref()
                    .ok_or(ServiceError::IdempotencyKeyReused)?;
                return self
                    .replay_create(idempotency)
                    .await?
                    .ok_or(ServiceError::IdempotencyKeyReused);
            }
            Err(error) => return Err(reserve_error(error)),
        };
        metrics::counter!("toygres_operations_started_total", "kind" => "create").increment(1);
        self.start_workflow(&instance, &record).await;
        let operation = self.view(record).await?;
        Ok(CreateAccepted {
            instance,
            operation,
            password,
        })
    }

    /// Records and starts a delete; a delete already running is returned as is.
    pub async fn delete(
        &self,
        name: &InstanceName,
        idempotency: Option<Idempotency>,
    ) -> Result<DeleteAccepted, ServiceError> {
        if let Some(idempotency) = &idempotency
            && let Some(record) = self
                .metadata
                .operation_by_idempotency_key(&idempotency.key)
                .await?
        {
            if record.request_hash.as_deref() != Some(idempotency.request_hash.as_str()) {
                return Err(ServiceError::IdempotencyKeyReused);
            }
            let instance = self
                .metadata
                .instance(record.instance_id)
                .await?
                .ok_or(ServiceError::NotFound)?;
            return Ok(DeleteAccepted {
                instance,
                operation: self.view(record).await?,
            });
        }
        let operation = NewOperation {
            id: random_id("op_"),
            progress_total: DELETE_STEPS.len() as i32,
            idempotency_key: idempotency.as_ref().map(|i| i.key.clone()),
            request_hash: idempotency.as_ref().map(|i| i.request_hash.clone()),
        };
        match self
            .metadata
            .reserve_delete(name, &operation)
            .await
            .map_err(reserve_error)?
        {
            DeleteReservation::Started {
                instance,
                operation,
            } => {
                metrics::counter!("toygres_operations_started_total", "kind" => "delete")
                    .increment(1);
                self.start_workflow(&instance, &operation).await;
                Ok(DeleteAccepted {
                    instance,
                    operation: self.view(operation).await?,
                })
            }
            DeleteReservation::AlreadyDeleting {
                instance,
                operation,
            } => Ok(DeleteAccepted {
                instance,
                operation: self.view(operation).await?,
            }),
        }
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

    /// Starts the workflow of a recorded operation. A failure is logged, not returned: the
    /// operation is recorded, and the reconciler starts it later.
    pub async fn start_workflow(&self, instance: &InstanceRecord, operation: &OperationRecord) {
        if let Err(error) = self.try_start_workflow(instance, operation).await {
            tracing::warn!(operation_id = %operation.id, instance = %instance.name, %error, "could not start the workflow; the reconciler will retry");
        }
    }

    /// Starts the workflow of a recorded operation.
    pub async fn try_start_workflow(
        &self,
        instance: &InstanceRecord,
        operation: &OperationRecord,
    ) -> Result<(), ServiceError> {
        let name = InstanceName::parse(&instance.name)
            .map_err(|error| ServiceError::Internal(error.to_string()))?;
        let internal = |error: duroxide::ClientError| ServiceError::Internal(error.to_string());
        match operation.kind {
            OperationKind::Create => {
                let input = CreateInstanceInput {
                    operation_id: operation.id.clone(),
                    instance_id: instance.id,
                    uid: instance.uid.clone(),
                    name,
                    postgres_version: instance.postgres_version.clone(),
                    storage_gb: u32::try_from(instance.storage_gb).unwrap_or(1),
                    user: instance.username.clone(),
                    database: instance.database_name.clone(),
                    sealed_password: SealedSecret::from_stored(instance.sealed_password.clone()),
                    expose: instance.expose,
                    dns_label: instance.dns_label.clone(),
                    limits: self.create_limits.clone(),
                    health: self.health.clone(),
                };
                self.client
                    .start_orchestration_typed(&operation.id, names::CREATE_INSTANCE, input)
                    .await
                    .map_err(internal)
            }
            OperationKind::Delete => {
                let input = DeleteInstanceInput {
                    operation_id: operation.id.clone(),
                    instance_id: instance.id,
                    name,
                    cancels_operation_id: operation.cancels_operation_id.clone(),
                    limits: self.delete_limits.clone(),
                };
                self.client
                    .start_orchestration_typed(&operation.id, names::DELETE_INSTANCE, input)
                    .await
                    .map_err(internal)
            }
        }
    }

    /// Starts the monitor workflow `monitor_id` of a running instance.
    pub async fn start_monitor(
        &self,
        instance: &InstanceRecord,
        monitor_id: &str,
    ) -> Result<(), ServiceError> {
        let internal = |error: String| ServiceError::Internal(error);
        let (Some(host), Some(port)) = (instance.host.clone(), instance.port) else {
            return Err(internal(format!(
                "running instance {} has no endpoint",
                instance.name
            )));
        };
        let input = MonitorInstanceInput {
            monitor_id: monitor_id.to_string(),
            instance_id: instance.id,
            name: InstanceName::parse(&instance.name)
                .map_err(|error| internal(error.to_string()))?,
            host,
            port: u16::try_from(port).map_err(|error| internal(error.to_string()))?,
            user: instance.username.clone(),
            database: instance.database_name.clone(),
            sealed_password: SealedSecret::from_stored(instance.sealed_password.clone()),
            settings: self.health.clone(),
            generation: 0,
        };
        self.client
            .start_orchestration_typed(monitor_id, names::MONITOR_INSTANCE, input)
            .await
            .map_err(|error| internal(error.to_string()))
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
                        step: Some(progress.step),
                        done: progress.done,
                        total: progress.total,
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

    async fn replay_create(
        &self,
        idempotency: &Idempotency,
    ) -> Result<Option<CreateAccepted>, ServiceError> {
        let Some(record) = self
            .metadata
            .operation_by_idempotency_key(&idempotency.key)
            .await?
        else {
            return Ok(None);
        };
        if record.kind != OperationKind::Create
            || record.request_hash.as_deref() != Some(idempotency.request_hash.as_str())
        {
            return Err(ServiceError::IdempotencyKeyReused);
        }
        let instance = self
            .metadata
            .instance(record.instance_id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let password = self
            .secret_key
            .open(&SealedSecret::from_stored(instance.sealed_password.clone()))
            .map_err(|error| ServiceError::Internal(error.to_string()))?;
        let operation = self.view(record).await?;
        Ok(Some(CreateAccepted {
            instance,
            operation,
            password,
        }))
    }

    /// Waits until an operation is terminal, polling every 100 ms, for at most `limit`.
    pub async fn wait_terminal(
        &self,
        id: &str,
        limit: Duration,
    ) -> Result<OperationView, ServiceError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let view = self.operation(id).await?;
            if view.status.is_terminal() || tokio::time::Instant::now() >= deadline {
                return Ok(view);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
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

fn reserve_error(error: ReserveError) -> ServiceError {
    match error {
        ReserveError::NameInUse => ServiceError::NameInUse,
        ReserveError::NotFound => ServiceError::NotFound,
        ReserveError::OperationInProgress(id) => ServiceError::OperationInProgress(id),
        ReserveError::IdempotencyKeyTaken => ServiceError::IdempotencyKeyReused,
        ReserveError::Metadata(error) => ServiceError::Internal(error.to_string()),
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
