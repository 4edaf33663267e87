//! Reliability of the day-2 operations over HTTP against the real binary: injected backend
//! faults and deadlines end them in typed errors with the instance in the state its server is
//! really in; a SIGKILL in every step of stop, start, restart, update and reset-password is
//! survived (the operation finishes once, the instance is consistent).

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::*;

const PASSWORD: &str = "reliable-password-1";

fn operation_id(reply: &Reply) -> Result<String, TestError> {
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    Ok(reply.body["operation"]["id"]
        .as_str()
        .ok_or_else(|| format!("no operation in {}", reply.text))?
        .to_string())
}

async fn run(server: &Server, reply: Reply) -> Result<Value, TestError> {
    let id = operation_id(&reply)?;
    server.wait_operation(&id).await
}

async fn state(server: &Server, name: &str) -> Result<Value, TestError> {
    Ok(server.get(&format!("/instances/{name}")).await?.body)
}

async fn create(server: &Server, name: &str) -> Result<u16, TestError> {
    let reply = server
        .post("/instances", &json!({"name": name, "password": PASSWORD}))
        .await?;
    let op = run(server, reply).await?;
    assert_eq!(op["status"], "succeeded", "{op}");
    let port = state(server, name).await?["port"]
        .as_u64()
        .ok_or("no port")?;
    Ok(u16::try_from(port)?)
}

fn expect_failed(op: &Value, code: &str, step: &str) {
    assert_eq!(op["status"], "failed", "{op}");
    assert_eq!(op["error"]["code"], code, "{op}");
    assert_eq!(op["step"], step, "{op}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_deadlines_end_day_two_operations_in_typed_errors() -> TestResult {
    let workspace = Workspace::new("life_faults")?;

    // A stop that hangs, a restart and a resize that always fail.
    let mut server = workspace
        .start_server(
            "faults-1.log",
            &[
                ("TOYGRES_FAULTS", "stop=hang;restart=fail;resize=fail"),
                ("TOYGRES_STEP_TIMEOUT_SECS", "3"),
            ],
        )
        .await?;
    let port = create(&server, "faulty").await?;
    let op = run(&server, server.post_empty("/instances/faulty/stop").await?).await?;
    expect_failed(&op, "deadline_exceeded", "stop_server");
    let instance = state(&server, "faulty").await?;
    assert_eq!(
        instance["state"], "running",
        "the server never went down: {instance}"
    );
    assert_eq!(query_with_password(port, PASSWORD).await?, 42);

    let op = run(
        &server,
        server.post_empty("/instances/faulty/restart").await?,
    )
    .await?;
    expect_failed(&op, "restart_failed", "restart_server");
    assert_eq!(state(&server, "faulty").await?["state"], "running");

    let op = run(
        &server,
        server
            .patch("/instances/faulty", &json!({"storage_gb": 20}))
            .await?,
    )
    .await?;
    expect_failed(&op, "update_failed", "resize_storage");
    let instance = state(&server, "faulty").await?;
    assert_eq!(instance["state"], "running");
    assert_eq!(
        instance["storage_gb"], 10,
        "a failed update changes nothing"
    );
    assert!(server.terminate());

    // A start that fails twice is retried; an operation past its deadline fails and says in
    // which step.
    let server = workspace
        .start_server(
            "faults-2.log",
            &[
                ("TOYGRES_FAULTS", "start=fail:2;restart=delay:30000"),
                ("TOYGRES_OPERATION_TIMEOUT_SECS", "4"),
            ],
        )
        .await?;
    let op = run(&server, server.post_empty("/instances/faulty/stop").await?).await?;
    assert_eq!(op["status"], "succeeded", "{op}");
    let op = run(&server, server.post_empty("/instances/faulty/start").await?).await?;
    assert_eq!(op["status"], "succeeded", "retried past two failures: {op}");
    assert_eq!(query_with_password(port, PASSWORD).await?, 42);
    let op = run(
        &server,
        server.post_empty("/instances/faulty/restart").await?,
    )
    .await?;
    expect_failed(&op, "deadline_exceeded", "restart_server");
    assert!(
        op["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("in step restart_server")),
        "{op}"
    );
    assert_eq!(state(&server, "faulty").await?["state"], "running");
    Ok(())
}

/// Polls the operation until it reports `step`, then SIGKILLs the server.
async fn kill_in_step(server: &mut Server, id: &str, step: &str) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let op = server.get(&format!("/operations/{id}")).await?.body;
        if op["step"] == step {
            server.kill();
            return Ok(());
        }
        if ["succeeded", "failed", "canceled"].contains(&op["status"].as_str().unwrap_or(""))
            || Instant::now() > deadline
        {
            return Err(format!("operation {id} never showed step {step}: {op}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One row of the matrix: the kind, the request, and what must hold afterwards.
struct Row {
    kind: &'static str,
    instance: &'static str,
    needs: &'static str,
    steps: &'static [&'static str],
}

const ROWS: &[Row] = &[
    Row {
        kind: "stop",
        instance: "cm-stop",
        needs: "running",
        steps: &["mark_stopping", "stop_server", "finalize"],
    },
    Row {
        kind: "start",
        instance: "cm-start",
        needs: "stopped",
        steps: &[
            "mark_starting",
            "start_server",
            "wait_ready",
            "test_connection",
            "finalize",
        ],
    },
    Row {
        kind: "restart",
        instance: "cm-restart",
        needs: "running",
        steps: &[
            "mark_updating",
            "restart_server",
            "wait_ready",
            "test_connection",
            "finalize",
        ],
    },
    Row {
        kind: "update",
        instance: "cm-update",
        needs: "running",
        steps: &[
            "mark_updating",
            "resize_storage",
            "set_parameters",
            "restart_server",
            "finalize",
        ],
    },
    Row {
        kind: "reset_password",
        instance: "cm-reset",
        needs: "running",
        steps: &[
            "mark_updating",
            "set_password",
            "test_connection",
            "finalize",
        ],
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_a_sigkill_in_every_day_two_step_is_survived() -> TestResult {
    let workspace = Workspace::new("life_crash_matrix")?;
    let env = [
        ("TOYGRES_STEP_DELAY_MS", "600"),
        ("TOYGRES_WORKER_LOCK_TIMEOUT_SECS", "2"),
        ("TOYGRES_RECONCILE_INTERVAL_SECS", "2"),
    ];
    let mut generation = 0;
    let mut server = workspace.start_server("server-0.log", &env).await?;
    let mut ports = std::collections::BTreeMap::new();
    for row in ROWS {
        let port = create(&server, row.instance).await?;
        psql(
            port,
            "postgres",
            PASSWORD,
            "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)",
        )?;
        ports.insert(row.instance, port);
    }
    let mut password = PASSWORD.to_string();
    let mut outcomes = Vec::new();
    for row in ROWS {
        let port = ports[row.instance];
        for (index, step) in row.steps.iter().enumerate() {
            // Bring the instance to the state the operation applies to.
            if state(&server, row.instance).await?["state"] != row.needs {
                let action = if row.needs == "stopped" {
                    "stop"
                } else {
                    "start"
                };
                let op = run(
                    &server,
                    server
                        .post_empty(&format!("/instances/{}/{action}", row.instance))
                        .await?,
                )
                .await?;
                assert_eq!(op["status"], "succeeded", "{op}");
            }
            let path = format!("/instances/{}", row.instance);
            let new_password = format!("crash-password-{index}-abc");
            let reply = match row.kind {
                "update" => {
                    let parameters = json!({"work_mem": format!("{}MB", index + 2), "max_connections": 50 + index});
                    let body = json!({"storage_gb": 11 + index, "parameters": parameters});
                    server.patch(&path, &body).await?
                }
                "reset_password" => {
                    server
                        .post(
                            &format!("{path}/reset-password"),
                            &json!({"password": new_password}),
                        )
                        .await?
                }
                kind => server.post_empty(&format!("{path}/{kind}")).await?,
            };
            let id = operation_id(&reply)?;
            kill_in_step(&mut server, &id, step).await?;
            generation += 1;
            server = workspace
                .start_server(&format!("server-{generation}.log"), &env)
                .await?;
            let op = server.wait_operation(&id).await?;
            assert_eq!(
                op["status"], "succeeded",
                "{} killed in {step}: {op}",
                row.kind
            );
            let instance = state(&server, row.instance).await?;
            let expected = if row.kind == "stop" {
                "stopped"
            } else {
                "running"
            };
            assert_eq!(
                instance["state"], expected,
                "{} killed in {step}: {instance}",
                row.kind
            );
            match row.kind {
                "stop" => assert!(!port_is_open(port), "stopped, yet its port is open"),
                "update" => {
                    assert_eq!(instance["storage_gb"], 11 + index);
                    assert_eq!(
                        psql(port, "postgres", PASSWORD, "SHOW max_connections")?,
                        (50 + index).to_string()
                    );
                    assert_eq!(
                        psql(port, "postgres", PASSWORD, "SHOW work_mem")?,
                        format!("{}MB", index + 2)
                    );
                }
                "reset_password" => {
                    assert!(psql(port, "postgres", &password, "SELECT 1").is_err());
                    password = new_password.clone();
                }
                _ => {}
            }
            if row.kind != "stop" {
                let owner = if row.kind == "reset_password" {
                    password.as_str()
                } else {
                    PASSWORD
                };
                assert_eq!(psql(port, "postgres", owner, "SELECT x FROM kept")?, "42");
            }
            // Exactly one operation of this kind per request.
            let listed = server
                .get(&format!("/operations?instance={}&limit=500", row.instance))
                .await?;
            let same: Vec<&Value> = listed.body["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|o| o["id"] == id.as_str())
                .collect();
            assert_eq!(same.len(), 1);
            outcomes.push(format!("{:<15} {step:<16} -> {expected}", row.kind));
        }
    }
    println!("day-2 crash matrix (kill -9 in step -> instance after resuming):");
    for outcome in outcomes {
        println!("  {outcome}");
    }
    Ok(())
}
