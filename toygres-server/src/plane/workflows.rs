//! Which workflow each operation kind runs, and its input, built from the recorded rows alone
//! (the instance and the operation with its `request`), so that the API and the reconciler
//! start a recorded operation the same way.

use super::changes::{ResetRecord, UpdateRecord};
use super::{ControlPlane, ServiceError, accept::CreateRecord};
use serde::Serialize;
use toygres_activities::metadata::{InstanceRecord, OperationRecord};
use toygres_activities::model::{InstanceState, OperationKind};
use toygres_activities::roles::MONITOR;
use toygres_activities::seal::SealedSecret;
use toygres_activities::validation::InstanceName;
use toygres_orchestrations::names;
use toygres_orchestrations::types::{
    BACKUP_STEPS, BackupInstanceInput, CREATE_STEPS, CreateInstanceInput, DELETE_STEPS_V1_1,
    DeleteInstanceInput, LifecycleInput, MonitorInstanceInput, OperationTarget,
    RESET_PASSWORD_STEPS, RESTART_STEPS, ResetPasswordInput, START_STEPS, STOP_STEPS, SaveBackups,
    UPDATE_STEPS, UpdateInstanceInput, VERIFY_STEPS, VerifyBackupWorkflowInput,
};

/// Steps in all of an operation of `kind`, for its progress.
pub(super) fn steps_of(kind: OperationKind) -> usize {
    match kind {
        OperationKind::Create => CREATE_STEPS.len(),
        OperationKind::Delete => DELETE_STEPS_V1_1.len(),
        OperationKind::Stop => STOP_STEPS.len(),
        OperationKind::Start => START_STEPS.len(),
        OperationKind::Restart => RESTART_STEPS.len(),
        OperationKind::Update => UPDATE_STEPS.len(),
        OperationKind::ResetPassword => RESET_PASSWORD_STEPS.len(),
        OperationKind::Backup => BACKUP_STEPS.len(),
        OperationKind::VerifyBackup => VERIFY_STEPS.len(),
    }
}

fn internal(error: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(error.to_string())
}

/// Starts the workflow of `operation` on `instance`.
pub(super) async fn start(
    plane: &ControlPlane,
    instance: &InstanceRecord,
    operation: &OperationRecord,
) -> Result<(), ServiceError> {
    let id = operation.id.as_str();
    match operation.kind {
        OperationKind::Create => {
            let input = create_input(plane, instance, operation)?;
            start_typed(plane, id, names::CREATE_INSTANCE, input).await
        }
        OperationKind::Delete => {
            let input = DeleteInstanceInput {
                operation_id: operation.id.clone(),
                instance_id: instance.id,
                name: name_of(instance)?,
                namespace: instance.namespace.clone(),
                uid: Some(instance.uid.clone()),
                cancels_operation_id: operation.cancels_operation_id.clone(),
                limits: plane.delete_limits.clone(),
                save_backups: save_backups(plane, instance, operation).await?,
            };
            start_typed(plane, id, names::DELETE_INSTANCE, input).await
        }
        OperationKind::Stop | OperationKind::Start | OperationKind::Restart => {
            let input = LifecycleInput {
                target: target(plane, instance, operation)?,
                archives: operation.kind == OperationKind::Stop && plane.archives(),
            };
            let name = match operation.kind {
                OperationKind::Stop => names::STOP_INSTANCE,
                OperationKind::Start => names::START_INSTANCE,
                _ => names::RESTART_INSTANCE,
            };
            start_typed(plane, id, name, input).await
        }
        OperationKind::Update => {
            let input = UpdateInstanceInput {
                target: target(plane, instance, operation)?,
                plan: UpdateRecord::of(operation)?.plan,
            };
            start_typed(plane, id, names::UPDATE_INSTANCE, input).await
        }
        OperationKind::ResetPassword => {
            let input = ResetPasswordInput {
                target: target(plane, instance, operation)?,
                sealed_password: ResetRecord::of(operation)?.sealed_password,
            };
            start_typed(plane, id, names::RESET_PASSWORD, input).await
        }
        OperationKind::Backup => {
            let policy = plane.backup_policy()?;
            let backup = plane
                .metadata
                .backup_of_operation(&operation.id)
                .await?
                .ok_or_else(|| {
                    internal(format!("backup operation {} has no backup", operation.id))
                })?;
            let timeout_ms = millis(policy.timeout);
            let mut limits = plane.change_limits.clone();
            limits.operation_timeout_ms = limits
                .operation_timeout_ms
                .max(timeout_ms.saturating_add(OPERATION_MARGIN_MS));
            let input = BackupInstanceInput {
                target: OperationTarget::for_instance(
                    instance,
                    &operation.id,
                    limits,
                    plane.health.clone(),
                )
                .map_err(internal)?,
                backup_id: backup.id,
                kind: backup.r#type,
                backup_timeout_ms: timeout_ms,
            };
            start_typed(plane, id, names::BACKUP_INSTANCE, input).await
        }
        OperationKind::VerifyBackup => {
            let policy = plane.backup_policy()?;
            let record: super::backups::VerifyRecord =
                serde_json::from_value(operation.request.clone().unwrap_or_default())
                    .map_err(internal)?;
            let backup = plane
                .metadata
                .backup(&record.backup_id)
                .await?
                .ok_or_else(|| internal(format!("no backup {}", record.backup_id)))?;
            let input = VerifyBackupWorkflowInput {
                operation_id: operation.id.clone(),
                instance_id: instance.id,
                name: name_of(instance)?,
                stanza: backup.stanza.clone(),
                label: backup
                    .label
                    .clone()
                    .ok_or_else(|| internal(format!("backup {} has no label", backup.id)))?,
                backup_id: backup.id,
                verify_timeout_ms: millis(policy.timeout),
            };
            start_typed(plane, id, names::VERIFY_BACKUP, input).await
        }
    }
}

/// How much longer than the backup itself a backup operation may take in all.
const OPERATION_MARGIN_MS: u64 = 600_000;

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// What a delete does with backups first: the final backup its request asked for, or the
/// archiving of a running instance's current WAL; nothing for an instance that never ran or
/// without backups.
async fn save_backups(
    plane: &ControlPlane,
    instance: &InstanceRecord,
    operation: &OperationRecord,
) -> Result<Option<SaveBackups>, ServiceError> {
    let Some(policy) = plane.backups.as_ref().filter(|_| plane.archives()) else {
        return Ok(None);
    };
    let final_backup = plane.metadata.backup_of_operation(&operation.id).await?;
    let (Some(sealed), Some(_)) = (&instance.sealed_admin_password, &instance.host) else {
        return Ok(None);
    };
    let online = instance.state == InstanceState::Running;
    if final_backup.is_none() && !online {
        return Ok(None);
    }
    Ok(Some(SaveBackups {
        final_backup_id: final_backup.map(|backup| backup.id),
        online,
        sealed_admin_password: SealedSecret::from_stored(sealed.clone()),
        timeout_ms: millis(policy.timeout),
    }))
}

async fn start_typed(
    plane: &ControlPlane,
    id: &str,
    orchestration: &str,
    input: impl Serialize,
) -> Result<(), ServiceError> {
    plane
        .client
        .start_orchestration_typed(id, orchestration, input)
        .await
        .map_err(internal)
}

fn name_of(instance: &InstanceRecord) -> Result<InstanceName, ServiceError> {
    InstanceName::parse(&instance.name).map_err(internal)
}

fn create_input(
    plane: &ControlPlane,
    instance: &InstanceRecord,
    operation: &OperationRecord,
) -> Result<CreateInstanceInput, ServiceError> {
    let record = CreateRecord::of(operation)?;
    Ok(CreateInstanceInput {
        operation_id: operation.id.clone(),
        instance_id: instance.id,
        uid: instance.uid.clone(),
        name: name_of(instance)?,
        namespace: instance.namespace.clone(),
        postgres_version: instance.postgres_version.clone(),
        storage_gb: u32::try_from(instance.storage_gb).unwrap_or(1),
        user: instance.username.clone(),
        database: instance.database_name.clone(),
        sealed_password: SealedSecret::from_stored(instance.sealed_password.clone()),
        sealed_admin_password: instance
            .sealed_admin_password
            .clone()
            .map(SealedSecret::from_stored),
        sealed_monitor_password: instance
            .sealed_monitor_password
            .clone()
            .map(SealedSecret::from_stored),
        expose: instance.expose,
        dns_label: instance.dns_label.clone(),
        limits: plane.create_limits.clone(),
        health: plane.health.clone(),
        parameters: record.as_ref().and_then(|record| record.parameters.clone()),
        restore: record.and_then(|record| record.restore),
    })
}

/// What an operation on an existing instance's server knows of it. The claim made sure the
/// instance ran and has the control plane's roles.
fn target(
    plane: &ControlPlane,
    instance: &InstanceRecord,
    operation: &OperationRecord,
) -> Result<OperationTarget, ServiceError> {
    OperationTarget::for_instance(
        instance,
        &operation.id,
        plane.change_limits.clone(),
        plane.health.clone(),
    )
    .map_err(internal)
}

/// Starts the monitor workflow `monitor_id` of a running instance.
pub(super) async fn start_monitor(
    plane: &ControlPlane,
    instance: &InstanceRecord,
    monitor_id: &str,
) -> Result<(), ServiceError> {
    let (Some(host), Some(port)) = (instance.host.clone(), instance.port) else {
        return Err(internal(format!(
            "running instance {} has no endpoint",
            instance.name
        )));
    };
    // The control plane's own monitoring role where the instance has it; the owner (then
    // its superuser) for an instance that the upgrade has not converted yet.
    let (user, sealed_password) = match (
        instance.has_control_plane_roles(),
        &instance.sealed_monitor_password,
    ) {
        (true, Some(sealed)) => (
            MONITOR.to_string(),
            SealedSecret::from_stored(sealed.clone()),
        ),
        _ => (
            instance.username.clone(),
            SealedSecret::from_stored(instance.sealed_password.clone()),
        ),
    };
    let input = MonitorInstanceInput {
        monitor_id: monitor_id.to_string(),
        instance_id: instance.id,
        name: name_of(instance)?,
        namespace: instance.namespace.clone(),
        host,
        port: u16::try_from(port).map_err(internal)?,
        user,
        database: instance.database_name.clone(),
        sealed_password,
        settings: plane.health.clone(),
        generation: 0,
    };
    start_typed(plane, monitor_id, names::MONITOR_INSTANCE, input).await
}
