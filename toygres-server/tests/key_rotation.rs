//! `toygres rotate-key` against the real binary: it refuses while an operation is in flight or
//! a server runs, then re-seals the stored password with a new key file (forgetting the
//! idempotency keys, whose request hashes the old key made), and the next server monitors the
//! instance with it.

mod support;

use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;
use toygres_activities::seal::{SealedSecret, SecretKey};

/// Runs `toygres rotate-key` on the workspace's data dir; returns (success, stdout, stderr).
fn rotate_key(workspace: &Workspace) -> Result<(bool, String, String), TestError> {
    let output = Command::new(env!("CARGO_BIN_EXE_toygres"))
        .arg("rotate-key")
        .env_remove("DATABASE_URL")
        .env_remove("TOYGRES_SECRET_KEY")
        .env_remove("TOYGRES_NEW_SECRET_KEY")
        .env("TOYGRES_DATA_DIR", workspace.data_dir())
        .stdin(Stdio::null())
        .output()?;
    Ok((
        output.status.success(),
        String::from_utf8(output.stdout)?,
        String::from_utf8(output.stderr)?,
    ))
}

/// The monitor the metadata names for the instance `rotating`.
async fn monitor_of(workspace: &Workspace) -> Result<String, TestError> {
    let pool = sqlx::PgPool::connect(&workspace.control_plane_url()).await?;
    let monitor: Option<String> =
        sqlx::query_scalar("SELECT monitor_id FROM toygres.instances WHERE name = 'rotating'")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    Ok(monitor.ok_or("no monitor recorded")?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_key_reseals_passwords_and_restarts_monitors() -> TestResult {
    let workspace = Workspace::new("key_rotation_reseals")?;
    let env = [("TOYGRES_HEALTH_INTERVAL_SECS", "1")];
    let password = "Rotation-Canary-41b7e2";

    // A server killed in the middle of a create: the operation is still in flight.
    let mut server = workspace.start_server("server-1.log", &env).await?;
    let body = json!({"name": "rotating", "password": password}).to_string();
    let keyed = [("idempotency-key", "rotating-create-1")];
    let created = server
        .send(reqwest::Method::POST, "/instances", Some(&body), &keyed)
        .await?;
    let operation = created.body["operation"]["id"]
        .as_str()
        .ok_or("no operation id")?
        .to_string();
    server.kill();
    let (ok, _, stderr) = rotate_key(&workspace)?;
    assert!(
        !ok && stderr.contains("is in progress on instance rotating"),
        "{stderr}"
    );
    let key_file = workspace.data_dir().join("secret.key");
    let old_key = std::fs::read_to_string(&key_file)?;
    assert!(!workspace.data_dir().join("secret.key.next").exists());

    // A running server holds the lock.
    let mut server = workspace.start_server("server-2.log", &env).await?;
    assert_eq!(
        server.wait_operation(&operation).await?["status"],
        "succeeded"
    );
    server
        .wait_instance("rotating", OPERATION_LIMIT, |i| {
            i["health"]["status"] == "healthy"
        })
        .await?;
    let old_monitor = monitor_of(&workspace).await?;
    let (ok, _, stderr) = rotate_key(&workspace)?;
    assert!(!ok && stderr.contains("server is running"), "{stderr}");
    assert!(server.terminate(), "graceful stop");

    let (ok, stdout, stderr) = rotate_key(&workspace)?;
    assert!(ok, "{stdout}\n{stderr}");
    // The owner's password and those of the control plane's two roles in the instance.
    assert!(stdout.contains("re-sealed 3 password(s)"), "{stdout}");
    assert!(stdout.contains("1 monitor(s)"), "{stdout}");
    assert!(stdout.contains("forgot 1 idempotency key(s)"), "{stdout}");
    let new_key = std::fs::read_to_string(&key_file)?;
    assert_ne!(new_key, old_key);
    assert_eq!(
        std::fs::read_to_string(workspace.data_dir().join("secret.key.previous"))?,
        old_key
    );
    assert!(!workspace.data_dir().join("secret.key.next").exists());
    for secret in [new_key.trim(), old_key.trim(), password] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }

    // The next server monitors the instance with the new key, under a new monitor.
    let server = workspace.start_server("server-3.log", &env).await?;
    let restarted = chrono::Utc::now();
    server
        .wait_instance("rotating", OPERATION_LIMIT, |instance| {
            instance["health"]["status"] == "healthy"
                && instance["health"]["checked_at"]
                    .as_str()
                    .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                    .is_some_and(|at| at > restarted)
        })
        .await?;
    let pool = sqlx::PgPool::connect(&workspace.control_plane_url()).await?;
    let sealed: String =
        sqlx::query_scalar("SELECT sealed_password FROM toygres.instances WHERE name = 'rotating'")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    let sealed = SealedSecret::from_stored(sealed);
    assert_eq!(SecretKey::from_base64(&new_key)?.open(&sealed)?, password);
    assert!(SecretKey::from_base64(&old_key)?.open(&sealed).is_err());
    // The request hashes were keyed with the old key: the rotation forgot the keys, so a
    // retry is a new request (refused, the name is taken), not a mismatch or a replay.
    let pool = sqlx::PgPool::connect(&workspace.control_plane_url()).await?;
    let keys: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM toygres.operations \
         WHERE idempotency_key IS NOT NULL OR request_hash IS NOT NULL",
    )
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    assert_eq!(keys, 0, "no request hash of the old key is left");
    let retried = server
        .send(reqwest::Method::POST, "/instances", Some(&body), &keyed)
        .await?;
    assert_eq!(
        retried.status,
        reqwest::StatusCode::CONFLICT,
        "{}",
        retried.text
    );
    assert_eq!(retried.error_code(), "name_in_use", "{}", retried.text);
    let new_monitor = monitor_of(&workspace).await?;
    assert_ne!(new_monitor, old_monitor);
    let client = duroxide::Client::new(
        toygres_server::runtime::open_store(&workspace.control_plane_url()).await?,
    );
    assert!(matches!(
        client.get_orchestration_status(&new_monitor).await?,
        duroxide::OrchestrationStatus::Running { .. }
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while matches!(
        client.get_orchestration_status(&old_monitor).await?,
        duroxide::OrchestrationStatus::Running { .. }
    ) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old monitor was never canceled"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let deleted = server.delete("/instances/rotating").await?;
    let delete_id = deleted.body["operation"]["id"]
        .as_str()
        .ok_or("no delete operation")?
        .to_string();
    assert_eq!(
        server.wait_operation(&delete_id).await?["status"],
        "succeeded"
    );
    Ok(())
}
