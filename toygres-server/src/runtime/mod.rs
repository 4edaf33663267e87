//! The Duroxide runtime on duroxide-pg, tuned for a control plane.

mod waking_store;

pub use waking_store::WakingStore;

use duroxide::runtime::{Runtime, RuntimeOptions};
use duroxide::{Client, providers::Provider};
use duroxide_pg::PostgresProvider;
use std::sync::Arc;
use std::time::Duration;
use toygres_activities::registry::{ActivityDeps, create_activity_registry};
use toygres_orchestrations::registry::create_orchestration_registry;

/// The PostgreSQL schema of the Duroxide store (kept apart from the metadata schema).
pub const DUROXIDE_SCHEMA: &str = "toygres_duroxide";

/// Knobs of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// How long an idle dispatcher waits for work before polling the store again. Work this
    /// process enqueues wakes it at once; delayed work (timers) and work enqueued by other
    /// replicas is seen within this time.
    pub poll_interval: Duration,
    /// Activity lock timeout: bounds crash recovery and how fast a cancellation is seen.
    pub worker_lock_timeout: Duration,
    /// Activities run at once.
    pub worker_concurrency: usize,
    /// Orchestration turns run at once.
    pub orchestration_concurrency: usize,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(250),
            worker_lock_timeout: Duration::from_secs(10),
            worker_concurrency: 8,
            orchestration_concurrency: 2,
        }
    }
}

impl RuntimeSettings {
    /// The Duroxide options these settings stand for.
    pub fn options(&self) -> RuntimeOptions {
        RuntimeOptions {
            dispatcher_min_poll_interval: Duration::from_millis(10),
            dispatcher_long_poll_timeout: self.poll_interval,
            worker_lock_timeout: self.worker_lock_timeout,
            worker_lock_renewal_buffer: Duration::from_secs(2),
            orchestrator_lock_timeout: Duration::from_secs(5),
            activity_cancellation_grace_period: Duration::from_secs(5),
            worker_concurrency: self.worker_concurrency,
            orchestration_concurrency: self.orchestration_concurrency,
            ..RuntimeOptions::default()
        }
    }
}

/// Opens the Duroxide store in its own schema (creating its tables on first use), wrapped so
/// that idle dispatchers wake when work is enqueued.
pub async fn open_store(database_url: &str) -> anyhow::Result<Arc<dyn Provider>> {
    let provider = PostgresProvider::new_with_schema(database_url, Some(DUROXIDE_SCHEMA))
        .await
        .map_err(|error| anyhow::anyhow!("opening the Duroxide store: {error}"))?;
    Ok(Arc::new(WakingStore::new(Arc::new(provider))))
}

/// A started runtime and a client on the same store.
pub struct Workflows {
    /// The runtime executing workflows and activities.
    pub runtime: Arc<Runtime>,
    /// A client for starting, cancelling and reading workflows.
    pub client: Client,
}

impl Workflows {
    /// Starts the runtime with every Toygres workflow and activity.
    pub async fn start(
        store: Arc<dyn Provider>,
        deps: ActivityDeps,
        settings: &RuntimeSettings,
    ) -> Self {
        let runtime = Runtime::start_with_options(
            store.clone(),
            create_activity_registry(deps),
            create_orchestration_registry(),
            settings.options(),
        )
        .await;
        Self {
            runtime,
            client: Client::new(store),
        }
    }

    /// Stops the runtime, letting running steps finish for up to `timeout`.
    pub async fn shutdown(self, timeout: Duration) {
        self.runtime
            .shutdown(Some(timeout.as_millis() as u64))
            .await;
    }
}
