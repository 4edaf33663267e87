//! Reliability over HTTP against the real binary: injected faults end in typed errors within
//! their deadlines; a SIGKILL at every step of create and delete is survived; a second replica
//! finishes a killed one's work; concurrent requests settle in the database; finished
//! operations lose their workflow history but keep their summary.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use support::*;

fn operation_id(reply: &Reply) -> Result<String, TestError> {
    Ok(reply.body["operation"]["id"]
        .as_str()
        .ok_or_else(|| format!("no operation in {}", reply.text))?
        .to_string())
}

/// How long an operation took, from acceptance to its terminal status.
fn took(operation: &Value) -> Result<Duration, TestError> {
    let parse = |field: &str| -> Result<chrono::DateTime<chrono::Utc>, TestError> {
        Ok(operation[field]
            .as_str()
            .ok_or_else(|| format!("no {field}"))?
            .parse()?)
    };
    Ok((parse("finished_at")? - parse("created_at")?).to_std()?)
}

async fn create(server: &Server, name: &str, password: &str) -> Result<String, TestError> {
    let reply = server
        .post("/instances", &json!({"name": name, "password": password}))
        .await?;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    operation_id(&reply)
}

async fn live_names(server: &Server) -> Result<BTreeSet<String>, TestError> {
    let listed = server.get("/instances?limit=500").await?;
    Ok(listed.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["name"].as_str().map(str::to_string))
        .collect())
}

/// Postmasters running from under `instances_dir`.
fn postmasters_under(instances_dir: &std::path::Path) -> Result<usize, TestError> {
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()?;
    let needle = format!("{}/", instances_dir.display());
    Ok(String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|line| line.contains(&needle))
        .count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_end_in_typed_errors_and_nothing_hangs() -> TestResult {
    let workspace = Workspace::new("rel_injected_faults")?;
    let mut longest = Duration::ZERO;

    // A readiness check that hangs: the create fails at the ready deadline, cleans up, and the
    // failed instance can be deleted.
    let mut server = workspace
        .start_server(
            "hang.log",
            &[
                ("TOYGRES_FAULTS", "readiness=hang"),
                ("TOYGRES_READY_TIMEOUT_SECS", "3"),
            ],
        )
        .await?;
    let op = server
        .wait_operation(&create(&server, "stuck", "stuck-password-1").await?)
        .await?;
    longest = longest.max(took(&op)?);
    assert_eq!(op["status"], "failed", "{op}");
    assert_eq!(op["error"]["code"], "deadline_exceeded", "{op}");
    assert_eq!(op["step"], "wait_ready", "{op}");
    let instance = server.get("/instances/stuck").await?.body;
    assert_eq!(instance["state"], "failed");
    assert_eq!(instance["error"]["code"], "deadline_exceeded");
    assert!(
        !workspace.instances_dir().join("stuck").exists(),
        "the failed create cleaned up"
    );
    let delete = server
        .wait_operation(&operation_id(&server.delete("/instances/stuck").await?)?)
        .await?;
    assert_eq!(delete["status"], "succeeded", "{delete}");
    assert!(server.terminate());

    // A deploy that fails twice, then works: retried, the create succeeds.
    let mut server = workspace
        .start_server("flaky.log", &[("TOYGRES_FAULTS", "deploy=fail:2")])
        .await?;
    let op = server
        .wait_operation(&create(&server, "flaky", "flaky-password-1").await?)
        .await?;
    longest = longest.max(took(&op)?);
    assert_eq!(op["status"], "succeeded", "{op}");
    assert!(server.terminate());

    // A backend delete that always fails: the delete ends failed (no hang), the instance is
    // failed and a later delete can run.
    let mut server = workspace
        .start_server(
            "delete-fails.log",
            &[
                ("TOYGRES_FAULTS", "delete=fail"),
                ("TOYGRES_DELETE_TIMEOUT_SECS", "20"),
            ],
        )
        .await?;
    let op = server
        .wait_operation(&operation_id(&server.delete("/instances/flaky").await?)?)
        .await?;
    longest = longest.max(took(&op)?);
    assert_eq!(op["status"], "failed", "{op}");
    assert_eq!(op["error"]["code"], "delete_failed", "{op}");
    assert_eq!(op["step"], "delete_resources", "{op}");
    assert_eq!(
        server.get("/instances/flaky").await?.body["state"],
        "failed"
    );
    assert!(server.terminate());

    // An operation deadline: a deploy slower than the whole operation may take. The later
    // delete of `flaky` (no faults on delete here) succeeds.
    let server = workspace
        .start_server(
            "slow.log",
            &[
                ("TOYGRES_FAULTS", "deploy=delay:60000"),
                ("TOYGRES_OPERATION_TIMEOUT_SECS", "4"),
            ],
        )
        .await?;
    let op = server
        .wait_operation(&create(&server, "slow", "slow-password-12").await?)
        .await?;
    longest = longest.max(took(&op)?);
    assert_eq!(op["status"], "failed", "{op}");
    assert_eq!(op["error"]["code"], "deadline_exceeded", "{op}");
    assert_eq!(op["step"], "deploy", "{op}");
    assert!(
        op["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("in step deploy")),
        "{op}"
    );
    let delete = server
        .wait_operation(&operation_id(&server.delete("/instances/flaky").await?)?)
        .await?;
    assert_eq!(delete["status"], "succeeded", "{delete}");
    assert!(!workspace.instances_dir().join("flaky").exists());
    println!(
        "longest time to a terminal status under injected faults: {} ms",
        longest.as_millis()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_a_sigkill_at_every_step_is_survived() -> TestResult {
    let workspace = Workspace::new("rel_crash_matrix")?;
    let env = [
        ("TOYGRES_STEP_DELAY_MS", "600"),
        ("TOYGRES_WORKER_LOCK_TIMEOUT_SECS", "2"),
        ("TOYGRES_RECONCILE_INTERVAL_SECS", "2"),
    ];
    let mut matrix: Vec<(String, String, String, Duration)> = Vec::new();
    let mut expected_live = BTreeSet::new();

    /// Polls the operation until it reports `step`, then SIGKILLs the server; returns the kill time.
    async fn kill_in_step(server: &mut Server, id: &str, step: &str) -> Result<Instant, TestError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let op = server.get(&format!("/operations/{id}")).await?.body;
            if op["step"] == step {
                server.kill();
                return Ok(Instant::now());
            }
            if ["succeeded", "failed", "canceled"].contains(&op["status"].as_str().unwrap_or(""))
                || Instant::now() > deadline
            {
                return Err(format!("operation {id} never showed step {step}: {op}").into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Time from the kill until the restarted server moves the operation past `step`.
    async fn resumed_after(
        server: &Server,
        id: &str,
        step: &str,
        killed: Instant,
    ) -> Result<Duration, TestError> {
        loop {
            let op = server.get(&format!("/operations/{id}")).await?.body;
            let terminal =
                ["succeeded", "failed", "canceled"].contains(&op["status"].as_str().unwrap_or(""));
            if terminal || op["step"] != step {
                return Ok(killed.elapsed());
            }
            if killed.elapsed() > OPERATION_LIMIT {
                return Err(format!("operation {id} never resumed: {op}").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    for (index, step) in [
        "deploy",
        "wait_ready",
        "connection_info",
        "test_connection",
        "finalize",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("create-{index}");
        let password = format!("crash-password-{index}");
        let mut server = workspace
            .start_server(&format!("create-{step}-1.log"), &env)
            .await?;
        let id = create(&server, &name, &password).await?;
        let killed = kill_in_step(&mut server, &id, step).await?;
        let server = workspace
            .start_server(&format!("create-{step}-2.log"), &env)
            .await?;
        let resumed = resumed_after(&server, &id, step, killed).await?;
        let op = server.wait_operation(&id).await?;
        assert_eq!(op["status"], "succeeded", "create killed in {step}: {op}");
        let instance = server.get(&format!("/instances/{name}")).await?.body;
        assert_eq!(instance["state"], "running");
        let port = u16::try_from(instance["port"].as_u64().ok_or("no port")?)?;
        assert_eq!(
            query_with_password(port, &password).await?,
            42,
            "create killed in {step}"
        );
        expected_live.insert(name.clone());
        assert_eq!(
            live_names(&server).await?,
            expected_live,
            "exactly one instance per create"
        );
        matrix.push((
            "create".into(),
            step.to_string(),
            "succeeded, one instance, connectable".into(),
            resumed,
        ));
    }

    for (index, step) in [
        "cancel_create",
        "stop_monitor",
        "mark_deleting",
        "delete_resources",
        "finalize",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("delete-{index}");
        let mut server = workspace
            .start_server(&format!("delete-{step}-1.log"), &env)
            .await?;
        let create_id = create(&server, &name, "delete-password-1").await?;
        if *step != "cancel_create" {
            assert_eq!(
                server.wait_operation(&create_id).await?["status"],
                "succeeded"
            );
        }
        let id = operation_id(&server.delete(&format!("/instances/{name}")).await?)?;
        let killed = kill_in_step(&mut server, &id, step).await?;
        let server = workspace
            .start_server(&format!("delete-{step}-2.log"), &env)
            .await?;
        let resumed = resumed_after(&server, &id, step, killed).await?;
        let op = server.wait_operation(&id).await?;
        assert_eq!(op["status"], "succeeded", "delete killed in {step}: {op}");
        let create_op = server.wait_operation(&create_id).await?;
        assert!(
            ["succeeded", "canceled"].contains(&create_op["status"].as_str().unwrap_or("")),
            "{create_op}"
        );
        assert_eq!(
            server.get(&format!("/instances/{name}")).await?.body["state"],
            "deleted"
        );
        assert!(
            !workspace.instances_dir().join(&name).exists(),
            "delete killed in {step} left a data dir"
        );
        assert_eq!(
            live_names(&server).await?,
            expected_live,
            "no instance after a delete"
        );
        matrix.push((
            "delete".into(),
            step.to_string(),
            "succeeded, instance gone".into(),
            resumed,
        ));
    }

    // Nothing orphaned: the data dirs and postmasters are exactly the live instances'.
    let dirs: BTreeSet<String> = subdirs(&workspace.instances_dir()).into_iter().collect();
    assert_eq!(dirs, expected_live, "data dirs");
    assert_eq!(
        postmasters_under(&workspace.instances_dir())?,
        expected_live.len(),
        "postgres processes"
    );

    let mut resumes: Vec<Duration> = matrix.iter().map(|row| row.3).collect();
    resumes.sort();
    println!(
        "crash matrix (kill -9 in step -> outcome, time from SIGKILL to the operation moving on):"
    );
    for (kind, step, outcome, resumed) in &matrix {
        println!(
            "  {kind:<6} {step:<17} {outcome:<40} {:>6} ms",
            resumed.as_millis()
        );
    }
    println!(
        "median time from SIGKILL to resuming: {} ms",
        resumes[resumes.len() / 2].as_millis()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_finishes_the_work_of_a_killed_one() -> TestResult {
    let workspace = Workspace::new("rel_two_replicas")?;
    let database_url = toygres_activities::testkit::fresh_database().await?;
    let key = toygres_activities::seal::SecretKey::generate().to_base64();
    let env = [
        ("DATABASE_URL", database_url.as_str()),
        ("TOYGRES_SECRET_KEY", key.as_str()),
        ("TOYGRES_WORKER_LOCK_TIMEOUT_SECS", "2"),
        ("TOYGRES_RECONCILE_INTERVAL_SECS", "2"),
    ];
    let mut first = workspace.start_server("replica-a.log", &env).await?;
    let second = workspace.start_server("replica-b.log", &env).await?;
    let mut ids = Vec::new();
    for index in 0..20 {
        ids.push(create(&first, &format!("replica-{index}"), "replica-password-1").await?);
    }
    first.kill();

    let mut longest = Duration::ZERO;
    for id in &ids {
        let op = second.wait_operation(id).await?;
        assert_eq!(op["status"], "succeeded", "{op}");
        longest = longest.max(took(&op)?);
    }
    let listed = second.get("/instances?limit=500").await?;
    let items = listed.body["items"].as_array().ok_or("no items")?;
    assert_eq!(items.len(), 20);
    let ports: BTreeSet<u64> = items.iter().filter_map(|i| i["port"].as_u64()).collect();
    assert_eq!(ports.len(), 20, "every instance has its own port");
    for port in ports {
        assert_eq!(
            query_with_password(u16::try_from(port)?, "replica-password-1").await?,
            42
        );
    }
    assert_eq!(subdirs(&workspace.instances_dir()).len(), 20);
    println!(
        "20 creates through a replica killed at once: the other finished all, the slowest in {} ms",
        longest.as_millis()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_settle_in_the_database() -> TestResult {
    let workspace = Workspace::new("rel_concurrency")?;
    let server = std::sync::Arc::new(workspace.start_server("server.log", &[]).await?);

    let mut creates = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let server = server.clone();
        creates.spawn(async move {
            server
                .post("/instances", &json!({"name": "contended"}))
                .await
        });
    }
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut create_id = None;
    while let Some(reply) = creates.join_next().await {
        let reply = reply??;
        *statuses.entry(reply.status.as_u16()).or_default() += 1;
        if reply.status == StatusCode::ACCEPTED {
            create_id = Some(operation_id(&reply)?);
        }
    }
    assert_eq!(
        statuses,
        BTreeMap::from([(202, 1), (409, 49)]),
        "one create wins, 49 conflict"
    );
    let create_id = create_id.ok_or("no winner")?;
    assert_eq!(
        server.wait_operation(&create_id).await?["status"],
        "succeeded"
    );

    let mut deletes = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let server = server.clone();
        deletes.spawn(async move { server.delete("/instances/contended").await });
    }
    let mut delete_ids = BTreeSet::new();
    while let Some(reply) = deletes.join_next().await {
        let reply = reply??;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
        delete_ids.insert(operation_id(&reply)?);
    }
    assert_eq!(
        delete_ids.len(),
        1,
        "20 concurrent deletes are one delete operation"
    );
    let delete_id = delete_ids.into_iter().next().ok_or("no delete")?;
    assert_eq!(
        server.wait_operation(&delete_id).await?["status"],
        "succeeded"
    );
    let operations = server.get("/operations?instance=contended").await?;
    assert_eq!(
        operations.body["items"].as_array().map(Vec::len),
        Some(2),
        "{}",
        operations.text
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_operations_lose_their_history_but_keep_their_summary() -> TestResult {
    let workspace = Workspace::new("rel_history_retention")?;
    let env = [
        ("TOYGRES_HISTORY_RETENTION_SECS", "1"),
        ("TOYGRES_RECONCILE_INTERVAL_SECS", "1"),
    ];
    let server = workspace.start_server("server.log", &env).await?;
    let create_id = create(&server, "short-lived", "short-lived-pass").await?;
    assert_eq!(
        server.wait_operation(&create_id).await?["status"],
        "succeeded"
    );
    let delete_id = operation_id(&server.delete("/instances/short-lived").await?)?;
    assert_eq!(
        server.wait_operation(&delete_id).await?["status"],
        "succeeded"
    );

    let pool = sqlx::PgPool::connect(&workspace.control_plane_url()).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM toygres_duroxide.history WHERE instance_id = ANY($1)",
        )
        .bind(vec![create_id.clone(), delete_id.clone()])
        .fetch_one(&pool)
        .await?;
        let pruned: i64 = sqlx::query_scalar("SELECT count(*) FROM toygres.operations WHERE history_pruned_at IS NOT NULL AND id = ANY($1)")
            .bind(vec![create_id.clone(), delete_id.clone()])
            .fetch_one(&pool)
            .await?;
        if events == 0 && pruned == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "history not pruned: {events} events left, {pruned} marked"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let summary = server.get(&format!("/operations/{create_id}")).await?;
    assert_eq!(summary.status, StatusCode::OK);
    assert_eq!(summary.body["status"], "succeeded");
    assert!(
        summary.body["result"]["server_version"].is_string(),
        "{}",
        summary.text
    );
    pool.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_detected_and_repaired() -> TestResult {
    let workspace = Workspace::new("rel_drift")?;
    let env = [
        ("TOYGRES_DRIFT_INTERVAL_SECS", "1"),
        ("TOYGRES_DRIFT_GRACE_SECS", "2"),
        ("TOYGRES_RECONCILE_INTERVAL_SECS", "1"),
    ];
    let server = workspace.start_server("server.log", &env).await?;
    let lost_id = create(&server, "vanishing", "vanishing-pass-1").await?;
    let orphan_id = create(&server, "forgotten", "forgotten-pass-1").await?;
    assert_eq!(
        server.wait_operation(&lost_id).await?["status"],
        "succeeded"
    );
    assert_eq!(
        server.wait_operation(&orphan_id).await?["status"],
        "succeeded"
    );
    let orphan_port = u16::try_from(
        server.get("/instances/forgotten").await?.body["port"]
            .as_u64()
            .ok_or("no port")?,
    )?;

    // Behind the control plane's back: one instance's resources vanish, and the metadata of the
    // other is lost (its row reads deleted while its postgres still runs).
    let backend = toygres_activities::backend::local::LocalBackend::new(
        toygres_activities::backend::local::LocalConfig {
            root: workspace.instances_dir(),
            bin_dir: None,
            ports: 1..=1,
        },
    )?;
    let pool = sqlx::PgPool::connect(&workspace.control_plane_url()).await?;
    let vanishing_uid: String =
        sqlx::query_scalar("SELECT uid FROM toygres.instances WHERE name = 'vanishing'")
            .fetch_one(&pool)
            .await?;
    toygres_activities::backend::Backend::delete(
        &backend,
        toygres_activities::backend::InstanceRef::in_default(
            &toygres_activities::validation::InstanceName::parse("vanishing")?,
        ),
        &vanishing_uid,
    )
    .await?;
    sqlx::query("UPDATE toygres.instances SET state = 'deleted', deleted_at = now() WHERE name = 'forgotten'").execute(&pool).await?;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lost = server.get("/instances/vanishing").await?.body;
        let orphan_gone = !workspace.instances_dir().join("forgotten").exists();
        if lost["state"] == "failed" && orphan_gone {
            assert_eq!(lost["error"]["code"], "backend_lost", "{lost}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "drift not repaired: {lost}, orphan dir exists: {}",
            !orphan_gone
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        !port_is_open(orphan_port),
        "the orphan's postgres is stopped"
    );
    let events = |name: &str| {
        let server = &server;
        let path = format!("/instances/{name}/events");
        async move {
            let reply = server.get(&path).await?;
            Ok::<Vec<String>, TestError>(
                reply.body["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["message"].as_str().map(str::to_string))
                    .collect(),
            )
        }
    };
    assert!(
        events("vanishing")
            .await?
            .iter()
            .any(|m| m.contains("backend_lost")),
        "the loss is an event"
    );
    assert!(
        events("forgotten")
            .await?
            .iter()
            .any(|m| m.starts_with("cleanup: removed backend resources")),
        "the cleanup is an event"
    );

    // The lost instance can be deleted (there is nothing left to remove).
    let delete = server
        .wait_operation(&operation_id(
            &server.delete("/instances/vanishing").await?,
        )?)
        .await?;
    assert_eq!(delete["status"], "succeeded", "{delete}");
    pool.close().await;
    Ok(())
}
