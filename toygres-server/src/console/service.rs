//! The console's one door to the control plane: every read and change the pages make, over
//! [`ControlPlane`] and the metadata reads the REST API uses, answered in the API's own shapes
//! ([`Instance`], [`Operation`], [`Event`]) and errors ([`ApiError`]). So every rule (validation,
//! 409s, deadlines) is the API's, and a change of the service layer's signatures is fixed here
//! alone.

mod changes;

pub use changes::{Action, BackupAccepted, PasswordReset};

use crate::http::api::cursor;
use crate::http::api::error::ApiError;
use crate::http::api::types::{Event, Instance, Operation};
use crate::plane::{ControlPlane, CreateRequest, ServiceError};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use toygres_activities::metadata::{HealthSampleRecord, InstanceCounts, OperationCount};
use toygres_activities::model::{InstanceState, OperationKind};
use toygres_activities::validation::InstanceName;
use toygres_orchestrations::types::{
    BACKUP_STEPS, CREATE_STEPS, CREATE_STEPS_V1_0, DELETE_STEPS, DELETE_STEPS_V1_1,
    RESET_PASSWORD_STEPS, RESTART_STEPS, START_STEPS, STOP_STEPS, UPDATE_STEPS, VERIFY_STEPS,
};

/// The most instances one console page lists.
pub const MAX_PAGE: i64 = 1000;
/// The largest page the metadata store is asked for at once (the API's limit).
const STORE_PAGE: i64 = 500;

/// Which instances a list page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceFilter {
    /// Only this state (deleted ones only when asked for); all live ones when `None`.
    pub state: Option<InstanceState>,
    /// Only names that start with this.
    pub prefix: Option<String>,
    /// Continue after this position (a cursor of a previous page).
    pub cursor: Option<String>,
    /// At most this many (1 to [`MAX_PAGE`]).
    pub limit: i64,
}

/// One page of instances and where the next one starts.
#[derive(Debug)]
pub struct InstancePage {
    /// The instances, by name.
    pub items: Vec<Instance>,
    /// The cursor of the next page, when there is one.
    pub next_cursor: Option<String>,
}

/// The fleet at a glance.
#[derive(Debug, Default)]
pub struct Fleet {
    /// Instances by state (every state, zero or not).
    pub by_state: Vec<(InstanceState, i64)>,
    /// Running instances by health (`healthy`, `unhealthy`, `unknown`).
    pub by_health: Vec<(String, i64)>,
    /// Operations not finished, whenever accepted.
    pub unfinished: usize,
    /// Operations accepted in the last day, by kind and status.
    pub last_day: Vec<OperationCount>,
}

/// What an accepted create returns to the console: the password, to show once.
pub struct Created {
    /// The instance.
    pub instance: Instance,
    /// Its create operation.
    pub operation: Operation,
    /// The password.
    pub password: String,
}

/// The console's adapter over the control plane.
#[derive(Clone)]
pub struct Service {
    plane: Arc<ControlPlane>,
}

impl Service {
    /// An adapter over `plane`.
    pub fn new(plane: Arc<ControlPlane>) -> Self {
        Self { plane }
    }

    /// The PostgreSQL versions the backend offers, oldest first.
    pub fn versions(&self) -> &[String] {
        &self.plane.versions
    }

    /// The backend's kind (`local`, `kubernetes`).
    pub fn backend_kind(&self) -> &str {
        &self.plane.backend_kind
    }

    /// A page of instances. A name prefix reads the name-ordered listing from the first name
    /// that could match and stops at the first that does not.
    pub async fn instances(&self, filter: &InstanceFilter) -> Result<InstancePage, ApiError> {
        let limit = filter.limit.clamp(1, MAX_PAGE);
        let mut after: Option<(String, i64)> = cursor::decode(filter.cursor.as_ref())?;
        if let Some((name, _)) = &after
            && InstanceName::parse(name).is_err()
        {
            return Err(cursor::invalid());
        }
        if after.is_none()
            && let Some(prefix) = &filter.prefix
        {
            after = Some((prefix.clone(), 0));
        }
        let mut items = Vec::new();
        let mut more = true;
        while more && (items.len() as i64) < limit {
            let want = (limit - items.len() as i64).min(STORE_PAGE);
            let page = self
                .plane
                .metadata
                .list_instances(filter.state, None, after.clone(), want)
                .await?;
            more = page.has_more;
            after = page.items.last().map(|last| (last.name.clone(), last.id));
            for record in &page.items {
                if let Some(prefix) = &filter.prefix
                    && !record.name.starts_with(prefix.as_str())
                {
                    more = false;
                    break;
                }
                items.push(Instance::from(record));
            }
        }
        let next_cursor = match (more, &after) {
            (true, Some(position)) => Some(cursor::encode(position)),
            _ => None,
        };
        Ok(InstancePage { items, next_cursor })
    }

    /// The live instance of a name, or its latest deleted one.
    pub async fn instance(&self, name: &InstanceName) -> Result<(i64, Instance), ApiError> {
        let record = self
            .plane
            .metadata
            .latest_instance(name.as_str())
            .await?
            .ok_or_else(|| no_instance(name))?;
        Ok((record.id, Instance::from(&record)))
    }

    /// The latest events of the instance with database id `id`, newest first.
    pub async fn events(&self, id: i64, limit: i64) -> Result<Vec<Event>, ApiError> {
        let page = self.plane.metadata.events(id, None, limit).await?;
        Ok(page.items.iter().map(Event::from).collect())
    }

    /// The latest health checks of the instance with database id `id`, oldest first.
    pub async fn health_samples(&self, id: i64) -> Result<Vec<HealthSampleRecord>, ApiError> {
        Ok(self.plane.metadata.recent_health_samples(id).await?)
    }

    /// Operations newest first (of one instance name, when given), with live progress.
    pub async fn operations(
        &self,
        instance: Option<&InstanceName>,
        cursor: Option<&String>,
        limit: i64,
    ) -> Result<(Vec<Operation>, Option<String>), ApiError> {
        let before: Option<(DateTime<Utc>, String)> = cursor::decode(cursor)?;
        let page = self
            .plane
            .metadata
            .list_operations(instance.map(InstanceName::as_str), before, limit)
            .await?;
        let next = match page.items.last() {
            Some(last) if page.has_more => {
                Some(cursor::encode(&(last.created_at, last.id.clone())))
            }
            _ => None,
        };
        let mut items = Vec::with_capacity(page.items.len());
        for record in page.items {
            items.push(Operation::from(&self.plane.view(record).await?));
        }
        Ok((items, next))
    }

    /// One operation with live progress.
    pub async fn operation(&self, id: &str) -> Result<Operation, ApiError> {
        match self.plane.operation(id).await {
            Ok(view) => Ok(Operation::from(&view)),
            Err(ServiceError::NotFound) => Err(ApiError::NotFound(format!("no operation '{id}'"))),
            Err(other) => Err(other.into()),
        }
    }

    /// Counts for the fleet page.
    pub async fn fleet(&self) -> Result<Fleet, ApiError> {
        let metadata = &self.plane.metadata;
        let counts = metadata.instance_counts().await?;
        let count_of = InstanceCounts::count_of;
        Ok(Fleet {
            by_state: InstanceState::ALL
                .iter()
                .map(|state| (*state, count_of(&counts.by_state, state.as_str())))
                .collect(),
            by_health: toygres_activities::model::HealthStatus::ALL
                .iter()
                .map(|health| {
                    (
                        health.to_string(),
                        count_of(&counts.by_health, health.as_str()),
                    )
                })
                .collect(),
            unfinished: metadata.unfinished_operations().await?.len(),
            last_day: metadata
                .operation_counts_since(Utc::now() - chrono::Duration::days(1))
                .await?,
        })
    }

    /// Creates an instance, as `POST /instances` does (without an idempotency key).
    pub async fn create(&self, request: CreateRequest) -> Result<Created, ApiError> {
        let name = request.name.clone();
        match self.plane.create(request).await {
            Ok(created) => Ok(Created {
                instance: Instance::from(&created.instance),
                operation: Operation::from(&created.operation),
                password: created.password,
            }),
            Err(ServiceError::NameInUse) => Err(self.conflict_on(&name).await),
            Err(other) => Err(other.into()),
        }
    }

    /// Deletes an instance, as `DELETE /instances/{name}` does (after a full backup with
    /// `final_backup`).
    pub async fn delete(
        &self,
        name: &InstanceName,
        final_backup: bool,
    ) -> Result<Operation, ApiError> {
        match self.plane.delete(name, None, final_backup).await {
            Ok(deleted) => Ok(Operation::from(&deleted.operation)),
            Err(ServiceError::NotFound) => Err(no_instance(name)),
            Err(other) => Err(other.into()),
        }
    }

    /// The steps of an operation of `kind` with `total` steps, in order, as its workflow
    /// reports them.
    pub fn steps(kind: &str, total: u32) -> &'static [&'static str] {
        match OperationKind::parse(kind) {
            Some(OperationKind::Create) if total as usize == CREATE_STEPS_V1_0.len() => {
                &CREATE_STEPS_V1_0
            }
            Some(OperationKind::Create) => &CREATE_STEPS,
            Some(OperationKind::Delete) if total as usize == DELETE_STEPS.len() => &DELETE_STEPS,
            Some(OperationKind::Delete) => &DELETE_STEPS_V1_1,
            Some(OperationKind::Stop) => &STOP_STEPS,
            Some(OperationKind::Start) => &START_STEPS,
            Some(OperationKind::Restart) => &RESTART_STEPS,
            Some(OperationKind::Update) => &UPDATE_STEPS,
            Some(OperationKind::ResetPassword) => &RESET_PASSWORD_STEPS,
            Some(OperationKind::Backup) => &BACKUP_STEPS,
            Some(OperationKind::VerifyBackup) => &VERIFY_STEPS,
            // An unknown kind: the page shows the current step by name.
            None => &[],
        }
    }

    /// Which 409 a create of a taken name gets: the blocking operation when one runs (as the
    /// API answers).
    async fn conflict_on(&self, name: &InstanceName) -> ApiError {
        match self.plane.metadata.live_instance(name.as_str()).await {
            Ok(Some(instance)) => match instance.active_operation_id {
                Some(operation) => ApiError::OperationInProgress(operation),
                None => ApiError::NameInUse,
            },
            _ => ApiError::NameInUse,
        }
    }
}

/// The API's 404 for an instance name.
fn no_instance(name: &InstanceName) -> ApiError {
    ApiError::NotFound(format!("no instance named '{name}'"))
}
