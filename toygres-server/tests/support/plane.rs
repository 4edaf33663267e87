//! The control plane inside the test process: the Duroxide runtime on a fresh database, the
//! real workflows and activities, on whatever backend the test picks.

use super::{TestError, TestResult};
use std::sync::Arc;
use std::time::Duration;
use toygres_activities::backend::Backend;
use toygres_activities::backend::local::LocalBackend;
use toygres_activities::metadata::MetadataStore;
use toygres_activities::registry::ActivityDeps;
use toygres_activities::seal::SecretKey;
use toygres_activities::testkit;
use toygres_activities::validation::InstanceName;
use toygres_orchestrations::types::{CreateLimits, DeleteLimits, HealthSettings};
use toygres_server::plane::{ControlPlane, CreateAccepted, CreateRequest, OperationView};
use toygres_server::runtime::{RuntimeSettings, Workflows, open_store};

/// Waiting for an operation to end, for tests.
pub trait WaitTerminal {
    /// Waits until operation `id` is terminal, polling every 100 ms, for at most `limit`
    /// (returning its last view either way).
    async fn wait_terminal(&self, id: &str, limit: Duration) -> Result<OperationView, TestError>;
}

impl WaitTerminal for ControlPlane {
    async fn wait_terminal(&self, id: &str, limit: Duration) -> Result<OperationView, TestError> {
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

/// What a test may change about the plane.
#[derive(Debug, Clone, Default)]
pub struct PlaneOptions {
    /// Deadlines and retries of creates.
    pub create_limits: CreateLimits,
    /// How monitors check instances.
    pub health: HealthSettings,
}

/// A running plane; its runtime stops when dropped.
pub struct InProcessPlane {
    /// What the REST API calls.
    pub plane: ControlPlane,
    /// The runtime (`None` between a stop and a restart).
    pub workflows: Option<Workflows>,
    /// What the activities run with.
    pub deps: ActivityDeps,
    /// The control-plane database.
    pub database_url: String,
}

impl InProcessPlane {
    /// Migrates a fresh database and starts the runtime on `backend`.
    pub async fn start(
        backend: Arc<dyn Backend>,
        options: PlaneOptions,
    ) -> Result<Self, TestError> {
        let database_url = testkit::fresh_database().await?;
        let metadata = MetadataStore::connect(&database_url, 5).await?;
        metadata.migrate().await?;
        let secret_key = SecretKey::generate();
        let deps = ActivityDeps {
            backend: backend.clone(),
            metadata: metadata.clone(),
            secret_key: secret_key.clone(),
            step_delay: None,
        };
        let workflows = Workflows::start(
            open_store(&database_url).await?,
            deps.clone(),
            &RuntimeSettings::default(),
        )
        .await;
        let plane = ControlPlane {
            metadata,
            client: workflows.client.clone(),
            backend: backend.clone(),
            backend_kind: backend.kind().into(),
            versions: backend.versions(),
            secret_key,
            create_limits: options.create_limits,
            delete_limits: DeleteLimits::default(),
            change_limits: Default::default(),
            catalogs: Default::default(),
            backups: None,
            health: options.health,
            drift_interval: Duration::from_secs(60),
            drift_grace: Duration::from_secs(300),
        };
        Ok(Self {
            plane,
            workflows: Some(workflows),
            deps,
            database_url,
        })
    }

    /// Starts a create and waits until its operation ends (at most [`super::OPERATION_LIMIT`]).
    pub async fn create_and_wait(
        &self,
        request: CreateRequest,
    ) -> Result<(CreateAccepted, OperationView), TestError> {
        let accepted = self.plane.create(request).await?;
        let done = self
            .plane
            .wait_terminal(&accepted.operation.record.id, super::OPERATION_LIMIT)
            .await?;
        Ok((accepted, done))
    }

    /// Starts a delete of `name` and waits until its operation ends.
    pub async fn delete_and_wait(&self, name: &str) -> Result<OperationView, TestError> {
        let accepted = self
            .plane
            .delete(&InstanceName::parse(name)?, None, false)
            .await?;
        self.plane
            .wait_terminal(&accepted.operation.record.id, super::OPERATION_LIMIT)
            .await
    }

    /// Stops the runtime (as a crash or shutdown would) and starts a new one on the same store.
    pub async fn restart_runtime(&mut self) -> TestResult {
        if let Some(workflows) = self.workflows.take() {
            workflows.shutdown(Duration::from_millis(100)).await;
        }
        let workflows = Workflows::start(
            open_store(&self.database_url).await?,
            self.deps.clone(),
            &RuntimeSettings::default(),
        )
        .await;
        self.plane.client = workflows.client.clone();
        self.workflows = Some(workflows);
        Ok(())
    }
}

/// Deletes every instance of `backend`, on a thread of its own so that `Drop` can call it.
pub fn delete_all_instances(backend: &LocalBackend) {
    let backend = backend.clone();
    super::block_on_own_thread(async move { super::delete_all(&backend).await });
}
