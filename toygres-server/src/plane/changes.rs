//! The operations that change an existing instance: stop, start, restart, update (storage,
//! parameters, deletion protection) and reset-password. Each validates what it can here,
//! plans what its workflow does, and goes through [`ControlPlane::accept`] like every kind.

use super::accept::Reserved;
use super::catalogs::invalid_parameter;
use super::{Accepted, ControlPlane, Idempotency, ServiceError, generate_password};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use toygres_activities::metadata::{Claim, OperationRecord, ReserveError};
use toygres_activities::model::{InstanceState, OperationKind};
use toygres_activities::parameters::{self, ParameterChange};
use toygres_activities::seal::SealedSecret;
use toygres_activities::validation::InstanceName;
use toygres_orchestrations::types::{StartParametersChange, UpdatePlan};

/// A validated `PATCH /instances/{name}`.
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    /// New storage in GiB (only grows).
    pub storage_gb: Option<u32>,
    /// Parameters to set (`None`: back to the server's default).
    pub parameters: Option<BTreeMap<String, Option<String>>>,
    /// New deletion protection.
    pub deletion_protection: Option<bool>,
    /// Idempotency key, if any.
    pub idempotency: Option<Idempotency>,
}

/// What an update records with its operation: its plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct UpdateRecord {
    /// What the workflow changes.
    pub plan: UpdatePlan,
}

/// What a password reset records with its operation: the new password, sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ResetRecord {
    /// The owner's new password.
    pub sealed_password: SealedSecret,
}

/// Reads the record of kind `T` that an operation carries.
fn record_of<T: serde::de::DeserializeOwned>(
    operation: &OperationRecord,
) -> Result<T, ServiceError> {
    let request = operation.request.clone().ok_or_else(|| {
        ServiceError::Internal(format!("operation {} has no request", operation.id))
    })?;
    serde_json::from_value(request).map_err(|error| ServiceError::Internal(error.to_string()))
}

fn to_json(value: &impl Serialize) -> Result<serde_json::Value, ServiceError> {
    serde_json::to_value(value).map_err(|error| ServiceError::Internal(error.to_string()))
}

impl UpdateRecord {
    /// The update record of `operation`.
    pub fn of(operation: &OperationRecord) -> Result<Self, ServiceError> {
        record_of(operation)
    }
}

impl ResetRecord {
    /// The reset record of `operation`.
    pub fn of(operation: &OperationRecord) -> Result<Self, ServiceError> {
        record_of(operation)
    }
}

impl ControlPlane {
    /// Stops a running instance's server, keeping its data.
    pub async fn stop(
        &self,
        name: &InstanceName,
        idempotency: Option<Idempotency>,
    ) -> Result<Accepted, ServiceError> {
        self.claim_and_accept(name, Claim::of(OperationKind::Stop), idempotency, None)
            .await
    }

    /// Starts a stopped instance's server again.
    pub async fn start(
        &self,
        name: &InstanceName,
        idempotency: Option<Idempotency>,
    ) -> Result<Accepted, ServiceError> {
        self.claim_and_accept(name, Claim::of(OperationKind::Start), idempotency, None)
            .await
    }

    /// Restarts a running instance's server.
    pub async fn restart(
        &self,
        name: &InstanceName,
        idempotency: Option<Idempotency>,
    ) -> Result<Accepted, ServiceError> {
        self.claim_and_accept(name, Claim::of(OperationKind::Restart), idempotency, None)
            .await
    }

    /// Gives the owner a new password (`password`, or a generated one); returns it with the
    /// operation, once.
    pub async fn reset_password(
        &self,
        name: &InstanceName,
        password: Option<String>,
        idempotency: Option<Idempotency>,
    ) -> Result<(Accepted, String), ServiceError> {
        let password = password.unwrap_or_else(generate_password);
        let record = ResetRecord {
            sealed_password: self.secret_key.seal(&password),
        };
        let claim = Claim::of(OperationKind::ResetPassword);
        let accepted = self
            .claim_and_accept(name, claim, idempotency, Some(to_json(&record)?))
            .await?;
        // A replayed request answers with the password it was accepted with.
        let sealed = ResetRecord::of(&accepted.operation.record)?.sealed_password;
        let password = self
            .secret_key
            .open(&sealed)
            .map_err(|error| ServiceError::Internal(error.to_string()))?;
        Ok((accepted, password))
    }

    /// Changes storage, parameters or deletion protection. Parameters are checked against the
    /// instance's own `pg_settings` here (a 422 names the parameter); storage only grows.
    pub async fn update(
        &self,
        name: &InstanceName,
        request: UpdateRequest,
    ) -> Result<Accepted, ServiceError> {
        if request.storage_gb.is_none()
            && request.parameters.is_none()
            && request.deletion_protection.is_none()
        {
            return Err(ServiceError::invalid(
                "body",
                "give at least one of storage_gb, parameters, deletion_protection",
            ));
        }
        if let Some(key) = &request.idempotency
            && let Some(replayed) = self.replay(key, OperationKind::Update).await?
        {
            return Ok(replayed);
        }
        let instance = self
            .metadata
            .live_instance(name.as_str())
            .await?
            .ok_or(ServiceError::NotFound)?;
        let mut allowed = OperationKind::Update.claimable_from().to_vec();
        if request.parameters.is_some() {
            allowed.retain(|state| *state == InstanceState::Running);
        }
        if request.storage_gb.is_some() {
            allowed.retain(|state| *state != InstanceState::Failed);
        }
        if let Some(active) = &instance.active_operation_id {
            return Err(ServiceError::OperationInProgress(active.clone()));
        }
        if !allowed.contains(&instance.state) {
            return Err(ReserveError::InvalidState {
                state: instance.state,
                allowed,
            }
            .into());
        }
        let storage_gb = match request.storage_gb {
            Some(gb) if i64::from(gb) < i64::from(instance.storage_gb) => {
                return Err(ServiceError::invalid(
                    "storage_gb",
                    format!(
                        "storage only grows: the instance has {} GiB, {gb} is less",
                        instance.storage_gb
                    ),
                ));
            }
            Some(gb) if i64::from(gb) > i64::from(instance.storage_gb) => Some(gb),
            _ => None,
        };
        let deletion_protection = request
            .deletion_protection
            .filter(|protect| *protect != instance.deletion_protection);
        let mut plan = UpdatePlan {
            resume: instance.state,
            storage_gb,
            deletion_protection,
            reload: Vec::new(),
            reload_undo: Vec::new(),
            start: None,
            parameters: None,
        };
        if let Some(requested) = request.parameters.as_ref().filter(|p| !p.is_empty()) {
            self.plan_parameters(&instance, requested, &mut plan)
                .await?;
        }
        let claim = Claim {
            allowed: vec![instance.state],
            grows_storage_to: storage_gb.map(|gb| i32::try_from(gb).unwrap_or(i32::MAX)),
            unchanged_since: Some(instance.last_operation_id.clone()),
            // Even a change of deletion protection alone runs the update workflow, whose input
            // is the instance's endpoint and roles: an instance that never ran (or is being
            // upgraded) is refused here rather than accepted with a workflow that cannot start.
            ..Claim::of(OperationKind::Update)
        };
        let record = to_json(&UpdateRecord { plan })?;
        self.claim_and_accept(name, claim, request.idempotency, Some(record))
            .await
    }

    /// Checks the requested parameters against the instance's catalog and plans them: those a
    /// reload applies (and how to undo them), the server's command-line settings before and
    /// after, and every parameter after the update.
    async fn plan_parameters(
        &self,
        instance: &toygres_activities::metadata::InstanceRecord,
        requested: &BTreeMap<String, Option<String>>,
        plan: &mut UpdatePlan,
    ) -> Result<(), ServiceError> {
        let catalog = self.catalogs.for_instance(self, instance).await?;
        let changes = requested
            .iter()
            .map(|(name, value)| catalog.check(name, value.as_deref()))
            .collect::<Result<Vec<ParameterChange>, _>>()
            .map_err(invalid_parameter)?;
        let current = &instance.parameters.0;
        let after = parameters::merged(current, &changes);
        plan.reload = changes.iter().filter(|c| !c.restart).cloned().collect();
        plan.reload_undo = plan
            .reload
            .iter()
            .map(|change| ParameterChange {
                value: current.get(&change.name).cloned(),
                ..change.clone()
            })
            .collect();
        let before = parameters::start_parameters(current, &catalog);
        let start_after = parameters::start_parameters(&after, &catalog);
        plan.start = (before != start_after).then_some(StartParametersChange {
            before,
            after: start_after,
        });
        plan.parameters = Some(after);
        Ok(())
    }

    /// Accepts an operation that claims the live instance `name` under `claim`.
    async fn claim_and_accept(
        &self,
        name: &InstanceName,
        claim: Claim,
        idempotency: Option<Idempotency>,
        request: Option<serde_json::Value>,
    ) -> Result<Accepted, ServiceError> {
        let claim = &claim;
        self.accept(claim.kind, idempotency, request, |operation| async move {
            let (instance, record) = self
                .metadata
                .reserve_operation(name, &operation, claim)
                .await?;
            Ok(Reserved::new(instance, record))
        })
        .await
    }
}
