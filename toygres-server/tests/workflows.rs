//! The create and delete workflows on the Duroxide runtime (duroxide-pg on a real PostgreSQL)
//! with the real local backend: real `postgres` processes, real ports, real data dirs.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use support::plane::{InProcessPlane, PlaneOptions, WaitTerminal as _, delete_all_instances};
use support::{OPERATION_LIMIT, TestResult, port_is_open, query_with_password};
use toygres_activities::backend::Backend;
use toygres_activities::backend::local::{LocalBackend, LocalConfig};
use toygres_activities::metadata::{MetadataStore, Placement};
use toygres_activities::model::{Expose, InstanceState, OperationStatus};
use toygres_activities::seal::SecretKey;
use toygres_activities::testkit;
use toygres_activities::validation::InstanceName;
use toygres_orchestrations::types::CreateLimits;
use toygres_server::plane::CreateRequest;

/// The in-process plane on the local backend (or a wrapper of it).
struct Harness {
    in_process: InProcessPlane,
    backend: LocalBackend,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Harness {
    type Target = InProcessPlane;

    fn deref(&self) -> &InProcessPlane {
        &self.in_process
    }
}

impl std::ops::DerefMut for Harness {
    fn deref_mut(&mut self) -> &mut InProcessPlane {
        &mut self.in_process
    }
}

impl Harness {
    async fn start(
        test: &str,
        backend_override: Option<Arc<dyn Backend>>,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let dir = testkit::shared_tempdir()?;
        let backend = LocalBackend::new(LocalConfig {
            root: dir.path().join("instances"),
            bin_dir: None,
            ports: testkit::port_range_for(test, 20),
        })?;
        let in_process = InProcessPlane::start(
            backend_override.unwrap_or_else(|| Arc::new(backend.clone())),
            PlaneOptions {
                create_limits: CreateLimits {
                    ready_timeout_ms: 30_000,
                    ..CreateLimits::default()
                },
                ..PlaneOptions::default()
            },
        )
        .await?;
        Ok(Self {
            in_process,
            backend,
            _dir: dir,
        })
    }

    fn instance_dir(&self, name: &str) -> PathBuf {
        self.backend.root().join(name)
    }

    async fn count_live(&self, name: &str) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM instances WHERE name = $1 AND state <> 'deleted'")
            .bind(name)
            .fetch_one(self.plane.metadata.pool())
            .await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Never leave postgres processes behind, whatever the test did.
        delete_all_instances(&self.backend);
    }
}

fn request(
    name: &str,
    password: Option<&str>,
) -> Result<CreateRequest, Box<dyn std::error::Error + Send + Sync>> {
    Ok(CreateRequest {
        name: InstanceName::parse(name)?,
        namespace: None,
        password: password.map(str::to_string),
        postgres_version: None,
        storage_gb: 1,
        expose: Expose::Internal,
        dns_label: None,
        parameters: Default::default(),
        deletion_protection: false,
        restore_from: None,
        idempotency: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_connect_delete_round_trip() -> TestResult {
    let harness = Harness::start("create_connect_delete_round_trip", None).await?;
    let (accepted, done) = harness.create_and_wait(request("orders-db", None)?).await?;
    assert_eq!(accepted.password.len(), 32);
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.error);
    let result = done.record.result.clone().unwrap_or_default();
    assert!(
        result["server_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("PostgreSQL")),
        "{result}"
    );
    assert!(result["elapsed_ms"].as_i64().is_some());

    let instance = harness
        .plane
        .metadata
        .live_instance("orders-db")
        .await?
        .ok_or("instance missing")?;
    assert_eq!(instance.state, InstanceState::Running);
    let port = u16::try_from(instance.port.ok_or("no port")?)?;
    assert_eq!(query_with_password(port, &accepted.password).await?, 42);
    assert!(
        query_with_password(port, "wrong-password-123")
            .await
            .is_err(),
        "scram must refuse a wrong password"
    );
    assert!(!instance.sealed_password.contains(&accepted.password));

    let done = harness.delete_and_wait("orders-db").await?;
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.error);
    let gone = harness
        .plane
        .metadata
        .latest_instance("orders-db")
        .await?
        .ok_or("row missing")?;
    assert_eq!(gone.state, InstanceState::Deleted);
    assert!(gone.deleted_at.is_some());
    assert!(!port_is_open(port), "the port must be closed after delete");
    assert!(
        !harness.instance_dir("orders-db").exists(),
        "the data dir must be gone"
    );

    let events: Vec<String> = harness
        .plane
        .metadata
        .events(gone.id, None, 50)
        .await?
        .items
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert!(
        events.iter().any(|m| m.starts_with("running")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|m| m.starts_with("deleting")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|m| m.starts_with("deleted")),
        "{events:?}"
    );

    // The name is free again once the instance is deleted.
    let again = harness
        .plane
        .create(request("orders-db", Some("another-password-1"))?)
        .await?;
    let done = harness
        .plane
        .wait_terminal(&again.operation.record.id, OPERATION_LIMIT)
        .await?;
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.error);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_create_started_twice_yields_one_instance() -> TestResult {
    let harness = Harness::start("the_same_create_started_twice_yields_one_instance", None).await?;
    let accepted = harness
        .plane
        .create(request("twice", Some("twice-password-1"))?)
        .await?;
    // Start the very same operation's workflow again, as a retried request or the reconciler might.
    harness
        .plane
        .try_start_workflow(&accepted.instance, &accepted.operation.record)
        .await
        .ok();
    harness
        .plane
        .start_workflow(&accepted.instance, &accepted.operation.record)
        .await;
    let done = harness
        .plane
        .wait_terminal(&accepted.operation.record.id, OPERATION_LIMIT)
        .await?;
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.error);
    assert_eq!(harness.count_live("twice").await?, 1);
    assert_eq!(harness.backend.list_owned().await?.len(), 1);
    let port = u16::try_from(
        harness
            .plane
            .metadata
            .live_instance("twice")
            .await?
            .and_then(|i| i.port)
            .ok_or("no port")?,
    )?;
    assert_eq!(query_with_password(port, "twice-password-1").await?, 42);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_survives_a_runtime_restart_mid_way() -> TestResult {
    let mut harness = Harness::start("a_create_survives_a_runtime_restart_mid_way", None).await?;
    let accepted = harness
        .plane
        .create(request("resilient", Some("resilient-pass-1"))?)
        .await?;
    let id = accepted.operation.record.id.clone();
    // Wait until the workflow is past its first step, then stop the runtime under it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let view = harness.plane.operation(&id).await?;
        if view.step.is_some()
            || view.status.is_terminal()
            || tokio::time::Instant::now() > deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    harness.restart_runtime().await?;
    let done = harness.plane.wait_terminal(&id, OPERATION_LIMIT).await?;
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.error);
    assert_eq!(harness.count_live("resilient").await?, 1);
    assert_eq!(harness.backend.list_owned().await?.len(), 1);
    let port = u16::try_from(
        harness
            .plane
            .metadata
            .live_instance("resilient")
            .await?
            .and_then(|i| i.port)
            .ok_or("no port")?,
    )?;
    assert_eq!(query_with_password(port, "resilient-pass-1").await?, 42);
    Ok(())
}

/// A backend whose deploy creates real resources and then fails, to prove cleanup.
#[derive(Debug)]
struct FailingDeploy(LocalBackend);

#[async_trait::async_trait]
impl Backend for FailingDeploy {
    fn kind(&self) -> &'static str {
        "local"
    }
    fn versions(&self) -> Vec<String> {
        self.0.versions()
    }
    async fn deploy(
        &self,
        spec: &toygres_activities::backend::DeploySpec,
    ) -> Result<toygres_activities::backend::DeployOutcome, toygres_activities::backend::BackendError>
    {
        self.0.deploy(spec).await?;
        Err(toygres_activities::backend::BackendError::Permanent(
            "injected: the deploy failed after creating resources".into(),
        ))
    }
    async fn readiness(
        &self,
        instance: toygres_activities::backend::InstanceRef<'_>,
    ) -> Result<toygres_activities::backend::Readiness, toygres_activities::backend::BackendError>
    {
        self.0.readiness(instance).await
    }
    async fn endpoint(
        &self,
        instance: toygres_activities::backend::InstanceRef<'_>,
    ) -> Result<toygres_activities::backend::Endpoint, toygres_activities::backend::BackendError>
    {
        self.0.endpoint(instance).await
    }
    async fn delete(
        &self,
        instance: toygres_activities::backend::InstanceRef<'_>,
        uid: &str,
    ) -> Result<(), toygres_activities::backend::BackendError> {
        self.0.delete(instance, uid).await
    }
    async fn list_owned(
        &self,
    ) -> Result<
        Vec<toygres_activities::backend::OwnedInstance>,
        toygres_activities::backend::BackendError,
    > {
        self.0.list_owned().await
    }
    async fn stop(
        &self,
        instance: toygres_activities::backend::InstanceRef<'_>,
        uid: &str,
    ) -> Result<(), toygres_activities::backend::BackendError> {
        self.0.stop(instance, uid).await
    }
    async fn start(
        &self,
        instance: toygres_activities::backend::InstanceRef<'_>,
        uid: &str,
    ) -> Result<(), toygres_activities::backend::BackendError> {
        self.0.start(instance, uid).await
    }
    async fn restart(
        &self,
        instance: toygres_activities::backend::InstanceRef<'_>,
        uid: &str,
        parameters: Option<&std::collections::BTreeMap<String, String>>,
    ) -> Result<(), toygres_activities::backend::BackendError> {
        self.0.restart(instance, uid, parameters).await
    }
    async fn resize(
        &self,
        instance: toygres_activities::backend::InstanceRef<'_>,
        uid: &str,
        storage_gb: u32,
    ) -> Result<(), toygres_activities::backend::BackendError> {
        self.0.resize(instance, uid, storage_gb).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_deploy_ends_failed_and_leaves_nothing_behind() -> TestResult {
    let test = "a_failed_deploy_ends_failed_and_leaves_nothing_behind";
    let dir = testkit::shared_tempdir()?;
    let inner = LocalBackend::new(LocalConfig {
        root: dir.path().join("instances"),
        bin_dir: None,
        ports: testkit::port_range_for(test, 20),
    })?;
    let harness = Harness::start(test, Some(Arc::new(FailingDeploy(inner.clone())))).await?;
    let (_, done) = harness.create_and_wait(request("doomed", None)?).await?;
    assert_eq!(done.status, OperationStatus::Failed);
    let error = done.error.ok_or("no error")?;
    assert_eq!(error.code.as_str(), "deploy_failed");
    assert!(error.message.contains("injected"), "{}", error.message);
    assert_eq!(done.step.as_deref(), Some("deploy"));
    let instance = harness
        .plane
        .metadata
        .live_instance("doomed")
        .await?
        .ok_or("row missing")?;
    assert_eq!(instance.state, InstanceState::Failed);
    assert_eq!(instance.error_code.as_deref(), Some("deploy_failed"));
    assert!(
        instance.active_operation_id.is_none(),
        "a failed instance can be deleted again"
    );
    assert!(
        inner.list_owned().await?.is_empty(),
        "cleanup must remove what the deploy created"
    );
    assert!(!inner.root().join("doomed").exists());

    // A failed instance can be deleted.
    let deleted = harness
        .plane
        .delete(&InstanceName::parse("doomed")?, None, false)
        .await?;
    let done = harness
        .plane
        .wait_terminal(&deleted.operation.record.id, OPERATION_LIMIT)
        .await?;
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.error);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_version_is_refused_before_anything_is_recorded() -> TestResult {
    let harness = Harness::start("an_unsupported_version_is_refused", None).await?;
    let mut create = request("versioned", None)?;
    create.postgres_version = Some("7".into());
    let refused = harness.plane.create(create).await;
    assert!(matches!(
        refused,
        Err(toygres_server::plane::ServiceError::Invalid { ref field, .. }) if field == "postgres_version"
    ));
    assert_eq!(harness.count_live("versioned").await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_transitions_never_move_backwards() -> TestResult {
    use toygres_activities::error::{ActivityError, ErrorCode};
    use toygres_activities::metadata::{DeleteReservation, NewInstance, NewOperation};

    let database_url = testkit::fresh_database().await?;
    let metadata = MetadataStore::connect(&database_url, 2).await?;
    metadata.migrate().await?;
    let key = SecretKey::generate();
    let operation = |id: &str| NewOperation {
        id: id.into(),
        progress_total: 5,
        idempotency: None,
        request: None,
    };
    let (instance, _) = metadata
        .reserve_create(
            &NewInstance {
                uid: "ins_rules".into(),
                name: InstanceName::parse("rules")?,
                namespace: "default".into(),
                backend: "local".into(),
                postgres_version: "15".into(),
                storage_gb: 1,
                expose: Expose::Internal,
                dns_label: None,
                sealed_password: key.seal("rules-password-1"),
                sealed_admin_password: key.seal("rules-admin-password-1"),
                sealed_monitor_password: key.seal("rules-monitor-password-1"),
                parameters: Default::default(),
                deletion_protection: false,
            },
            &operation("op_create"),
        )
        .await?;
    let result = serde_json::json!({"server_version": "x"});
    assert!(metadata.start_operation("op_create").await?);
    assert!(
        !metadata.start_operation("op_create").await?,
        "starting twice is a no-op"
    );
    assert!(
        metadata
            .complete_create(
                instance.id,
                "op_create",
                &Placement {
                    host: "127.0.0.1",
                    port: 1,
                    dns_name: None,
                },
                "monitor-x",
                &result
            )
            .await?
    );
    assert!(
        !metadata
            .complete_create(
                instance.id,
                "op_create",
                &Placement {
                    host: "127.0.0.1",
                    port: 1,
                    dns_name: None,
                },
                "monitor-x",
                &result
            )
            .await?,
        "a replay is a no-op"
    );

    let DeleteReservation::Started {
        operation: delete, ..
    } = metadata
        .reserve_delete(&InstanceName::parse("rules")?, &operation("op_delete"))
        .await?
    else {
        return Err("expected a new delete".into());
    };
    assert!(matches!(
        metadata.reserve_delete(&InstanceName::parse("rules")?, &operation("op_delete_2")).await?,
        DeleteReservation::AlreadyDeleting { operation, .. } if operation.id == delete.id
    ));
    // The old create no longer holds the instance: nothing it does can change it.
    assert!(
        !metadata
            .transition_instance(instance.id, "op_create", InstanceState::Running, "late")
            .await?
    );
    let late_failure = ActivityError::permanent(ErrorCode::DeployFailed, "late");
    metadata
        .fail_operation(instance.id, "op_create", "deploy", &late_failure, "", None)
        .await?;
    assert!(
        metadata
            .transition_instance(
                instance.id,
                "op_delete",
                InstanceState::Deleting,
                "delete started"
            )
            .await?
    );
    assert!(
        !metadata
            .transition_instance(
                instance.id,
                "op_delete",
                InstanceState::Running,
                "backwards"
            )
            .await?
    );
    assert!(metadata.complete_delete(instance.id, "op_delete").await?);
    assert!(
        !metadata
            .transition_instance(instance.id, "op_delete", InstanceState::Deleting, "replay")
            .await?
    );
    let row = metadata.instance(instance.id).await?.ok_or("row missing")?;
    assert_eq!(row.state, InstanceState::Deleted);
    assert_eq!(
        row.error_code, None,
        "the late failure of a released operation left no trace"
    );
    assert_eq!(
        metadata.operation("op_create").await?.map(|o| o.status),
        Some(OperationStatus::Succeeded)
    );
    assert_eq!(
        metadata.operation("op_delete").await?.map(|o| o.status),
        Some(OperationStatus::Succeeded)
    );
    assert_eq!(metadata.live_instance("rules").await?.map(|i| i.id), None);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_waits_for_readiness_the_backends_way_not_by_polling() -> TestResult {
    use toygres_activities::backend::faulty::{FaultPlan, FaultyBackend};
    let test = "a_create_waits_for_readiness_the_backends_way";
    let dir = testkit::shared_tempdir()?;
    let local = LocalBackend::new(LocalConfig {
        root: dir.path().join("instances"),
        bin_dir: None,
        ports: testkit::port_range_for(test, 20),
    })?;
    let counted = Arc::new(FaultyBackend::new(
        Arc::new(local.clone()),
        FaultPlan::default(),
    ));
    let harness = Harness::start(test, Some(counted.clone())).await?;
    let (_, done) = harness.create_and_wait(request("patient", None)?).await?;
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.error);
    // The wait goes through the backend's own wait (the local one reads postmaster.pid, the
    // Kubernetes one backs off), never a readiness check every 10 ms from the activity.
    assert_eq!(counted.calls("readiness"), 0);
    let waits = counted.calls("wait_ready");
    assert!((1..=5).contains(&waits), "{waits} waits for one create");
    let deleted = harness.delete_and_wait("patient").await?;
    assert_eq!(deleted.status, OperationStatus::Succeeded);
    Ok(())
}
