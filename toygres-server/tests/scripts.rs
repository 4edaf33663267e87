//! The curl scripts in `scripts/` against a real running server (create, wait, get, list,
//! delete, and their exit codes), and `wait-operation.sh` against a fake server that asks for a
//! bearer token and paces the polls with `Retry-After`.

mod support;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::process::{run_script, script_and_wait, text};
use support::*;
use toygres_server::cli::exit;

const SCRIPTS: [&str; 5] = [
    "create-instance.sh",
    "get-instance.sh",
    "list-instances.sh",
    "delete-instance.sh",
    "wait-operation.sh",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_create_wait_get_list_delete() -> TestResult {
    let workspace = Workspace::new("scripts_create_wait_get_list_delete")?;
    let server = workspace.start_server("server.log", &[]).await?;
    let url = server.base.as_str();

    for name in SCRIPTS {
        let help = run_script(name, &["-h"], url, None, None)
            .await?
            .expect_exit(exit::SUCCESS)?;
        assert!(
            help.stdout.starts_with("Usage: "),
            "{name}: {}",
            help.stdout
        );
        assert!(help.stdout.contains("TOYGRES_URL"), "{name}");
        assert!(help.stdout.contains("TOYGRES_TOKEN"), "{name}");
        run_script(name, &["--no-such-option"], url, None, None)
            .await?
            .expect_exit(exit::USAGE)?;
    }

    let created = run_script(
        "create-instance.sh",
        &["scripted-db", "--storage-gb", "3"],
        url,
        None,
        None,
    )
    .await?
    .expect_exit(exit::SUCCESS)?
    .json()?;
    let password = text(&created["password"], "password")?;
    let create_id = text(&created["operation"]["id"], "operation id")?;
    let done = run_script("wait-operation.sh", &[create_id], url, None, None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    assert!(
        done.stderr.contains("create scripted-db: succeeded (6/6)"),
        "{}",
        done.stderr
    );
    assert_eq!(done.json()?["status"], "succeeded");

    let shown = run_script("get-instance.sh", &["scripted-db"], url, None, None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    let instance = shown.json()?;
    assert_eq!(instance["state"], "running");
    assert_eq!(instance["storage_gb"], 3);
    assert!(!shown.stdout.contains(password));
    let port = u16::try_from(instance["port"].as_u64().ok_or("no port")?)?;
    assert_eq!(query_with_password(port, password).await?, 42);

    let listed = run_script("list-instances.sh", &[], url, None, None)
        .await?
        .expect_exit(exit::SUCCESS)?
        .json()?;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["items"][0], instance);
    let deleted_ones = run_script(
        "list-instances.sh",
        &["--state", "deleted"],
        url,
        None,
        None,
    )
    .await?
    .expect_exit(exit::SUCCESS)?
    .json()?;
    assert_eq!(deleted_ones["items"], serde_json::json!([]));

    // Errors: the exit codes of the CLI.
    run_script("create-instance.sh", &["scripted-db"], url, None, None)
        .await?
        .expect_exit(exit::CONFLICT)?;
    let invalid = run_script(
        "create-instance.sh",
        &["other", "--postgres-version", "9"],
        url,
        None,
        None,
    )
    .await?
    .expect_exit(exit::USAGE)?;
    assert!(
        invalid.stderr.contains("postgres_version"),
        "{}",
        invalid.stderr
    );
    run_script(
        "list-instances.sh",
        &["--state", "sleeping"],
        url,
        None,
        None,
    )
    .await?
    .expect_exit(exit::USAGE)?;
    for (name, arg) in [
        ("get-instance.sh", "nope"),
        ("delete-instance.sh", "nope"),
        ("wait-operation.sh", "op_nope"),
    ] {
        let missing = run_script(name, &[arg], url, None, None)
            .await?
            .expect_exit(exit::NOT_FOUND)?;
        assert!(
            missing.stderr.contains("HTTP 404"),
            "{name}: {}",
            missing.stderr
        );
    }

    // A password from stdin, and an idempotent retry that replays the first answer.
    let given = "script-given-password-7";
    let with_password = run_script(
        "create-instance.sh",
        &["second", "--password-stdin", "--idempotency-key", "k-1"],
        url,
        None,
        Some(&format!("{given}\n")),
    )
    .await?
    .expect_exit(exit::SUCCESS)?
    .json()?;
    assert_eq!(with_password["password"], given);
    let replayed = run_script(
        "create-instance.sh",
        &["second", "--password-stdin", "--idempotency-key", "k-1"],
        url,
        None,
        Some(given),
    )
    .await?
    .expect_exit(exit::SUCCESS)?
    .json()?;
    assert_eq!(
        replayed["operation"]["id"],
        with_password["operation"]["id"]
    );

    for name in ["scripted-db", "second"] {
        let accepted = run_script("delete-instance.sh", &[name], url, None, None)
            .await?
            .expect_exit(exit::SUCCESS)?
            .json()?;
        let delete_id = text(&accepted["operation"]["id"], "operation id")?;
        run_script("wait-operation.sh", &[delete_id], url, None, None)
            .await?
            .expect_exit(exit::SUCCESS)?;
    }
    let gone = run_script("get-instance.sh", &["scripted-db"], url, None, None)
        .await?
        .expect_exit(exit::SUCCESS)?
        .json()?;
    assert_eq!(gone["state"], "deleted");
    let empty = run_script("list-instances.sh", &[], url, None, None)
        .await?
        .expect_exit(exit::SUCCESS)?
        .json()?;
    assert_eq!(empty["items"], serde_json::json!([]));

    let closed = format!("http://127.0.0.1:{}", free_port()?);
    for (name, args) in [
        ("get-instance.sh", &["x"][..]),
        ("list-instances.sh", &[]),
        ("wait-operation.sh", &["op_x"]),
    ] {
        let unreachable = run_script(name, args, &closed, None, None)
            .await?
            .expect_exit(exit::UNREACHABLE)?;
        assert!(
            unreachable.stderr.contains("cannot reach the server"),
            "{name}: {}",
            unreachable.stderr
        );
    }
    Ok(())
}

/// Operation `op_1` as JSON with `status`.
fn operation(status: &str) -> String {
    format!(
        r#"{{"id":"op_1","kind":"create","instance":"db","status":"{status}","step":"deploy","progress":{{"done":1,"total":5}},"error":null,"result":null,"created_at":"x","started_at":null,"finished_at":null}}"#
    )
}

/// A fake server whose `/operations/op_1` answers 503 (Retry-After: 2), then running
/// (Retry-After: 2), then succeeded, and 401 without `Authorization: Bearer s3cr3t`.
async fn pacing_server(calls: Arc<AtomicUsize>) -> Result<String, TestError> {
    let app = Router::new().route(
        "/operations/op_1",
        get(move |headers: HeaderMap| {
            let calls = calls.clone();
            async move {
                let authorized = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|value| value.to_str().ok())
                    == Some("Bearer s3cr3t");
                if !authorized {
                    let body = r#"{"error":{"code":"unauthorized","message":"no token"}}"#;
                    return (StatusCode::UNAUTHORIZED, body).into_response();
                }
                let pace = [(header::RETRY_AFTER, "2")];
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        pace,
                        r#"{"error":{"code":"unavailable","message":"starting"}}"#.to_string(),
                    )
                        .into_response(),
                    1 => (StatusCode::OK, pace, operation("running")).into_response(),
                    _ => (StatusCode::OK, pace, operation("succeeded")).into_response(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{address}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_operation_sends_the_token_and_honours_retry_after() -> TestResult {
    let calls = Arc::new(AtomicUsize::new(0));
    let url = pacing_server(calls.clone()).await?;

    let refused = run_script("wait-operation.sh", &["op_1"], &url, None, None)
        .await?
        .expect_exit(exit::AUTH)?;
    assert!(refused.stderr.contains("HTTP 401"), "{}", refused.stderr);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let started = Instant::now();
    let waited = run_script("wait-operation.sh", &["op_1"], &url, Some("s3cr3t"), None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    assert_eq!(waited.stdout.trim_end(), operation("succeeded"));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Two pauses of Retry-After: 2 s, where the default interval is 1 s.
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

/// Runs a script that starts an operation, then `wait-operation.sh` on it; returns the ended
/// operation.
async fn run_and_wait(name: &str, args: &[&str], url: &str) -> Result<Value, TestError> {
    Ok(script_and_wait(name, args, url).await?.1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_stop_start_restart_update_and_reset_password() -> TestResult {
    let workspace = Workspace::new("scripts_day_two")?;
    let server = workspace.start_server("server.log", &[]).await?;
    let url = server.base.as_str();
    for name in [
        "stop-instance.sh",
        "start-instance.sh",
        "restart-instance.sh",
        "update-instance.sh",
        "reset-password.sh",
    ] {
        let help = run_script(name, &["-h"], url, None, None)
            .await?
            .expect_exit(exit::SUCCESS)?;
        assert!(
            help.stdout.starts_with("Usage: "),
            "{name}: {}",
            help.stdout
        );
        assert!(help.stdout.contains("TOYGRES_TOKEN"), "{name}");
        run_script(name, &["--no-such-option"], url, None, None)
            .await?
            .expect_exit(exit::USAGE)?;
    }
    let created = run_and_wait(
        "create-instance.sh",
        &["day-two", "--set", "work_mem=8MB", "--deletion-protection"],
        url,
    )
    .await?;
    assert_eq!(created["status"], "succeeded", "{created}");

    let stopped = run_and_wait("stop-instance.sh", &["day-two"], url).await?;
    assert_eq!(stopped["kind"], "stop");
    run_script("stop-instance.sh", &["day-two"], url, None, None)
        .await?
        .expect_exit(exit::CONFLICT)?;
    run_and_wait("start-instance.sh", &["day-two"], url).await?;
    run_and_wait("restart-instance.sh", &["day-two"], url).await?;
    let updated = run_and_wait(
        "update-instance.sh",
        &[
            "day-two",
            "--set",
            "max_connections=70",
            "--reset",
            "work_mem",
            "--storage-gb",
            "12",
            "--deletion-protection",
            "false",
        ],
        url,
    )
    .await?;
    assert_eq!(updated["status"], "succeeded", "{updated}");
    let instance = run_script("get-instance.sh", &["day-two"], url, None, None)
        .await?
        .expect_exit(exit::SUCCESS)?
        .json()?;
    assert_eq!(
        instance["parameters"],
        serde_json::json!({"max_connections": "70"})
    );
    assert_eq!(instance["storage_gb"], 12);
    assert_eq!(instance["deletion_protection"], false);
    let refused = run_script(
        "update-instance.sh",
        &["day-two", "--set", "max_connections=lots"],
        url,
        None,
        None,
    )
    .await?
    .expect_exit(exit::USAGE)?;
    assert!(
        refused.stderr.contains("max_connections"),
        "{}",
        refused.stderr
    );

    let given = "script-reset-password-9";
    let reset = run_script(
        "reset-password.sh",
        &["day-two", "--password-stdin"],
        url,
        None,
        Some(&format!("{given}\n")),
    )
    .await?
    .expect_exit(exit::SUCCESS)?
    .json()?;
    assert_eq!(reset["password"], given);
    let id = text(&reset["operation"]["id"], "operation id")?;
    run_script("wait-operation.sh", &[id], url, None, None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    let port = u16::try_from(instance["port"].as_u64().ok_or("no port")?)?;
    assert_eq!(query_with_password(port, given).await?, 42);
    Ok(())
}
