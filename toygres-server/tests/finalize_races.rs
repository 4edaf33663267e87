//! Races around the last write of an operation (review findings 1 and 2 of the hardening
//! issue): a success that commits after the workflow gave up on it must never be destroyed by
//! the cleanup, and an operation must end even when its last write no longer applies or its
//! workflow ended without recording anything.

mod support;

use std::sync::Arc;
use std::time::Duration;
use support::plane::{InProcessPlane, PlaneOptions, WaitTerminal as _, delete_all_instances};
use support::{OPERATION_LIMIT, TestError, TestResult, port_is_open};
use toygres_activities::backend::Backend;
use toygres_activities::backend::faulty::{FaultPlan, FaultyBackend};
use toygres_activities::backend::local::{LocalBackend, LocalConfig};
use toygres_activities::metadata::Placement;
use toygres_activities::model::{Expose, InstanceState, OperationStatus};
use toygres_activities::testkit;
use toygres_activities::validation::InstanceName;
use toygres_orchestrations::types::{CreateLimits, monitor_id_for};
use toygres_server::plane::{CreateRequest, reconciler};

/// The in-process plane on a local backend wrapped with `faults`; stops its instances at the end.
struct Harness {
    in_process: InProcessPlane,
    local: LocalBackend,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(test: &str, faults: &str, limits: CreateLimits) -> Result<Self, TestError> {
        let dir = testkit::shared_tempdir()?;
        let local = LocalBackend::new(LocalConfig {
            root: dir.path().join("instances"),
            bin_dir: None,
            ports: testkit::port_range_for(test, 20),
        })?;
        let backend: Arc<dyn Backend> = Arc::new(FaultyBackend::new(
            Arc::new(local.clone()),
            FaultPlan::parse(faults)?,
        ));
        let in_process = InProcessPlane::start(
            backend,
            PlaneOptions {
                create_limits: limits,
                ..PlaneOptions::default()
            },
        )
        .await?;
        Ok(Self {
            in_process,
            local,
            _dir: dir,
        })
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        delete_all_instances(&self.local);
    }
}

fn request(name: &str) -> Result<CreateRequest, TestError> {
    Ok(CreateRequest {
        name: InstanceName::parse(name)?,
        namespace: None,
        password: None,
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
async fn a_success_that_commits_after_its_deadline_is_never_cleaned_up() -> TestResult {
    // Readiness answers only after the step's deadline: the create gives up on wait_ready...
    let harness = Harness::start(
        "race_late_success",
        "readiness=delay:4000",
        CreateLimits {
            ready_timeout_ms: 1_500,
            ..CreateLimits::default()
        },
    )
    .await?;
    let plane = &harness.in_process.plane;
    let accepted = plane.create(request("late")?).await?;
    let operation = accepted.operation.record.id.clone();
    let name = InstanceName::parse("late")?;
    // ...while (as a finalize that ran after its own deadline would) the success commits.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let endpoint = loop {
        if let Ok(endpoint) = harness
            .local
            .endpoint(toygres_activities::backend::InstanceRef::in_default(&name))
            .await
        {
            break endpoint;
        }
        assert!(tokio::time::Instant::now() < deadline, "never deployed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let committed = plane
        .metadata
        .complete_create(
            accepted.instance.id,
            &operation,
            &Placement {
                host: &endpoint.host,
                port: endpoint.port,
                dns_name: None,
            },
            &monitor_id_for(&accepted.instance.uid),
            &serde_json::json!({}),
        )
        .await?;
    assert!(
        committed,
        "the success must commit while the workflow waits"
    );

    // The workflow's own failure path runs (wait_ready passed its deadline) and finds the
    // success: nothing is removed, nothing is marked failed.
    let deadline = tokio::time::Instant::now() + OPERATION_LIMIT;
    while matches!(
        plane.client.get_orchestration_status(&operation).await?,
        duroxide::OrchestrationStatus::Running { .. }
    ) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the workflow never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = plane.wait_terminal(&operation, OPERATION_LIMIT).await?;
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.error);
    let instance = plane.metadata.live_instance("late").await?.ok_or("gone")?;
    assert_eq!(instance.state, InstanceState::Running);
    let owned = harness.local.list_owned().await?;
    assert!(
        owned
            .iter()
            .any(|o| o.uid.as_deref() == Some(accepted.instance.uid.as_str())),
        "the running instance's resources were removed: {owned:?}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !port_is_open(endpoint.port) {
        assert!(tokio::time::Instant::now() < deadline, "its server is down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_last_write_no_longer_applies_ends_failed() -> TestResult {
    let harness = Harness::start(
        "race_not_applied",
        "readiness=delay:2000",
        CreateLimits::default(),
    )
    .await?;
    let plane = &harness.in_process.plane;
    let accepted = plane.create(request("overtaken")?).await?;
    let operation = accepted.operation.record.id.clone();
    // What a delete that overtook the create, failed to cancel it, and released the instance
    // leaves behind: the create no longer holds the instance.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::query(
        "UPDATE instances SET active_operation_id = NULL, state = 'failed', error_code = 'delete_failed' WHERE id = $1",
    )
    .bind(accepted.instance.id)
    .execute(plane.metadata.pool())
    .await?;
    // The create goes on to its finalize, which no longer applies: the operation must not stay
    // running forever.
    let done = plane.wait_terminal(&operation, OPERATION_LIMIT).await?;
    assert_eq!(done.status, OperationStatus::Failed, "{done:?}");
    assert_eq!(done.step.as_deref(), Some("finalize"));
    let error = done.error.ok_or("no error")?;
    assert!(
        error.message.contains("another operation"),
        "{}",
        error.message
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_settles_an_operation_whose_workflow_ended_without_recording_it()
-> TestResult {
    let harness = Harness::start("race_settle", "", CreateLimits::default()).await?;
    let plane = &harness.in_process.plane;
    let accepted = plane.create(request("settled")?).await?;
    let operation = accepted.operation.record.id.clone();
    let done = plane.wait_terminal(&operation, OPERATION_LIMIT).await?;
    assert_eq!(done.status, OperationStatus::Succeeded);
    // The row is final before the workflow's last turn: wait until the workflow has ended.
    let deadline = tokio::time::Instant::now() + OPERATION_LIMIT;
    while matches!(
        plane.client.get_orchestration_status(&operation).await?,
        duroxide::OrchestrationStatus::Running { .. }
    ) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the workflow never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A workflow that completed while its row stayed unfinished (as 1.0.0's did when its
    // finalize did not apply).
    sqlx::query("UPDATE operations SET status = 'running', finished_at = NULL WHERE id = $1")
        .bind(&operation)
        .execute(plane.metadata.pool())
        .await?;
    let report = reconciler::reconcile(plane, true, false).await?;
    assert_eq!(report.settled, std::slice::from_ref(&operation));
    let settled = plane.operation(&operation).await?;
    assert_eq!(settled.status, OperationStatus::Failed);
    let error = settled.error.ok_or("no error")?;
    assert!(
        error.message.contains("ended without recording"),
        "{}",
        error.message
    );
    assert!(
        reconciler::reconcile(plane, true, false)
            .await?
            .settled
            .is_empty()
    );
    Ok(())
}
