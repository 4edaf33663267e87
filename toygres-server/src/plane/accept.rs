//! The one way every operation kind is accepted: replay a repeated `Idempotency-Key`, claim the
//! instance and record the operation in one metadata transaction (the kind's reservation),
//! start the kind's workflow (or leave it to the reconciler when that fails), and answer with
//! the operation's live view.

use super::{ControlPlane, Idempotency, OperationView, ServiceError, random_id, workflows};
use serde::{Deserialize, Serialize};
use std::future::Future;
use toygres_activities::metadata::{InstanceRecord, NewOperation, OperationRecord, ReserveError};
use toygres_activities::model::OperationKind;
use toygres_activities::seal::SealedSecret;
use toygres_orchestrations::types::{InitialParameters, RestorePlan};

/// What an accepted operation returns.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The instance.
    pub instance: InstanceRecord,
    /// The operation (new, or the one a repeated request started).
    pub operation: OperationView,
}

/// What a reservation recorded.
pub(super) struct Reserved {
    instance: InstanceRecord,
    operation: OperationRecord,
    /// False when the reservation found the operation already under way (a second delete).
    fresh: bool,
}

impl Reserved {
    /// A new operation, whose workflow is to start.
    pub fn new(instance: InstanceRecord, operation: OperationRecord) -> Self {
        Self {
            instance,
            operation,
            fresh: true,
        }
    }

    /// An operation already under way, returned as it is.
    pub fn existing(instance: InstanceRecord, operation: OperationRecord) -> Self {
        Self {
            instance,
            operation,
            fresh: false,
        }
    }
}

/// What a create records with its operation: the password it was accepted with (sealed, for
/// the replay of a repeated request) and the parameters it sets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct CreateRecord {
    /// The owner's password, sealed.
    pub sealed_password: SealedSecret,
    /// The parameters it sets, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<InitialParameters>,
    /// The backups its data comes from, when it restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestorePlan>,
}

impl CreateRecord {
    /// As the operation's `request`.
    pub fn to_json(&self) -> Result<serde_json::Value, ServiceError> {
        serde_json::to_value(self).map_err(|error| ServiceError::Internal(error.to_string()))
    }

    /// The record of a create operation (`None` for rows recorded before creates kept one).
    pub fn of(operation: &OperationRecord) -> Result<Option<Self>, ServiceError> {
        operation
            .request
            .clone()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|error| ServiceError::Internal(error.to_string()))
    }

    /// The password an accepted create was accepted with.
    pub fn password(plane: &ControlPlane, accepted: &Accepted) -> Result<String, ServiceError> {
        let sealed = match Self::of(&accepted.operation.record)? {
            Some(record) => record.sealed_password,
            None => SealedSecret::from_stored(accepted.instance.sealed_password.clone()),
        };
        plane
            .secret_key
            .open(&sealed)
            .map_err(|error| ServiceError::Internal(error.to_string()))
    }
}

impl ControlPlane {
    /// Accepts an operation of `kind`: a repeated `Idempotency-Key` replays the first answer;
    /// otherwise `reserve` claims the instance and records the new operation (with `request`,
    /// what its workflow needs beyond the instance), and its workflow starts.
    pub(super) async fn accept<F, Fut>(
        &self,
        kind: OperationKind,
        idempotency: Option<Idempotency>,
        request: Option<serde_json::Value>,
        reserve: F,
    ) -> Result<Accepted, ServiceError>
    where
        F: FnOnce(NewOperation) -> Fut,
        Fut: Future<Output = Result<Reserved, ReserveError>>,
    {
        if let Some(key) = &idempotency
            && let Some(replayed) = self.replay(key, kind).await?
        {
            return Ok(replayed);
        }
        let operation = NewOperation {
            id: random_id("op_"),
            progress_total: i32::try_from(workflows::steps_of(kind)).unwrap_or(i32::MAX),
            idempotency: idempotency.clone(),
            request,
        };
        let reserved = match reserve(operation).await {
            Ok(reserved) => reserved,
            Err(error) => {
                // A request with the same key may have won the race (it took the name, holds
                // the instance, or even finished): answer as it did.
                if let Some(key) = &idempotency
                    && let Some(replayed) = self.replay(key, kind).await?
                {
                    return Ok(replayed);
                }
                return Err(error.into());
            }
        };
        if reserved.fresh {
            metrics::counter!("toygres_operations_started_total", "kind" => kind.as_str())
                .increment(1);
            self.start_workflow(&reserved.instance, &reserved.operation)
                .await;
        }
        Ok(Accepted {
            operation: self.view(reserved.operation).await?,
            instance: reserved.instance,
        })
    }

    /// Starts the workflow of a recorded operation. A failure is logged, not returned: the
    /// operation is recorded, and the reconciler starts it later.
    pub async fn start_workflow(&self, instance: &InstanceRecord, operation: &OperationRecord) {
        if let Err(error) = self.try_start_workflow(instance, operation).await {
            tracing::warn!(operation_id = %operation.id, instance = %instance.name, %error, "could not start the workflow; the reconciler will retry");
        }
    }

    /// The first answer to a request of `kind` with this caller's key, if there was one;
    /// `422` when the key came with another request (another body, route or kind).
    pub(super) async fn replay(
        &self,
        idempotency: &Idempotency,
        kind: OperationKind,
    ) -> Result<Option<Accepted>, ServiceError> {
        let Some(record) = self
            .metadata
            .operation_by_idempotency_key(&idempotency.scope, &idempotency.key)
            .await?
        else {
            return Ok(None);
        };
        if record.kind != kind
            || record.request_hash.as_deref() != Some(idempotency.request_hash.as_str())
        {
            return Err(ServiceError::IdempotencyKeyReused);
        }
        let instance = self
            .metadata
            .instance(record.instance_id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        Ok(Some(Accepted {
            instance,
            operation: self.view(record).await?,
        }))
    }
}
