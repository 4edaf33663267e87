//! End-to-end tests: the real `toygres` binary on a free port with a temporary data dir (its own
//! embedded control-plane database, real local instances), driven over HTTP.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

/// Runs `pg_ctl ACTION -D data` as the user that owns the data dir (the instance's own OS
/// user); returns whether it succeeded.
fn pg_ctl(action: &str, data: &std::path::Path) -> Result<bool, TestError> {
    use std::os::unix::fs::MetadataExt as _;
    use std::os::unix::process::CommandExt as _;
    let owner = std::fs::metadata(data)?;
    let mut command = std::process::Command::new("/usr/lib/postgresql/15/bin/pg_ctl");
    command.uid(owner.uid()).gid(owner.gid());
    command
        .arg(action)
        .arg("-D")
        .arg(data)
        .args(["-m", "fast", "-w"]);
    if action == "start" {
        command.arg("-l").arg(data.with_file_name("postgres.log"));
    }
    Ok(command
        .stdout(std::process::Stdio::null())
        .status()?
        .success())
}

/// The status of a Duroxide workflow in the control-plane database at `url`.
async fn workflow_status(url: &str, id: &str) -> Result<duroxide::OrchestrationStatus, TestError> {
    let store = toygres_server::runtime::open_store(url).await?;
    Ok(duroxide::Client::new(store)
        .get_orchestration_status(id)
        .await?)
}

fn port_of(instance: &Value) -> Result<u16, TestError> {
    Ok(u16::try_from(instance["port"].as_u64().ok_or("no port")?)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_poll_connect_delete() -> TestResult {
    let workspace = Workspace::new("e2e_create_poll_connect_delete")?;
    let server = workspace.start_server("server.log", &[]).await?;

    let created = server
        .post("/instances", &json!({"name": "orders-db", "storage_gb": 5}))
        .await?;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let operation_id = created.body["operation"]["id"]
        .as_str()
        .ok_or("no operation id")?
        .to_string();
    assert!(operation_id.starts_with("op_"));
    assert_eq!(
        created.headers["location"],
        format!("/operations/{operation_id}").as_str()
    );
    assert!(created.headers.contains_key("retry-after"));
    assert_eq!(created.body["instance"]["state"], "creating");
    assert_eq!(created.body["operation"]["kind"], "create");
    let password = created.body["password"]
        .as_str()
        .ok_or("no password")?
        .to_string();
    assert!(password.len() >= 24);

    let done = server.wait_operation(&operation_id).await?;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress"]["done"], done["progress"]["total"]);
    assert!(
        done["result"]["server_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("PostgreSQL 15")),
        "{done}"
    );
    assert!(done["finished_at"].is_string());

    let instance = server.get("/instances/orders-db").await?;
    assert_eq!(instance.status, StatusCode::OK);
    assert_eq!(instance.body["state"], "running");
    assert_eq!(instance.body["storage_gb"], 5);
    assert!(
        !instance.text.contains(&password),
        "GET must never show the password"
    );
    let port = port_of(&instance.body)?;
    assert_eq!(
        instance.body["connection_uri"],
        format!("postgresql://postgres@127.0.0.1:{port}/postgres").as_str()
    );
    assert_eq!(query_with_password(port, &password).await?, 42);

    let listed = server.get("/instances").await?;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));

    let deleted = server.delete("/instances/orders-db").await?;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.text);
    let delete_id = deleted.body["operation"]["id"]
        .as_str()
        .ok_or("no id")?
        .to_string();
    assert_ne!(delete_id, operation_id);
    assert_eq!(
        deleted.headers["location"],
        format!("/operations/{delete_id}").as_str()
    );
    let done = server.wait_operation(&delete_id).await?;
    assert_eq!(done["status"], "succeeded", "{done}");

    assert_eq!(
        server.get("/instances/orders-db").await?.body["state"],
        "deleted"
    );
    assert_eq!(server.get("/instances").await?.body["items"], json!([]));
    let deleted_list = server.get("/instances?state=deleted").await?;
    assert_eq!(deleted_list.body["items"][0]["name"], "orders-db");
    assert!(!port_is_open(port), "the instance's port must be closed");
    assert!(
        subdirs(&workspace.instances_dir()).is_empty(),
        "no instance data dir may remain"
    );

    let events = server.get("/instances/orders-db/events").await?;
    let kinds: Vec<&str> = events.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        kinds.first().is_some_and(|m| m.starts_with("deleted")),
        "{kinds:?}"
    );

    let operations = server.get("/operations?instance=orders-db").await?;
    assert_eq!(operations.body["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        operations.body["items"][0]["id"],
        delete_id.as_str(),
        "newest first"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_4xx() -> TestResult {
    let workspace = Workspace::new("e2e_bad_requests_get_clear_4xx")?;
    let server = workspace.start_server("server.log", &[]).await?;

    let invalid = [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "Orders"}), "name"),
        (json!({"name": "1db"}), "name"),
        (json!({"name": "a".repeat(41)}), "name"),
        (json!({"name": "../etc/passwd"}), "name"),
        (json!({"name": "dé-db"}), "name"),
        (json!({"name": 42}), "name"),
        (json!({"name": "ok", "password": "short"}), "password"),
        (
            json!({"name": "ok", "password": "x".repeat(129)}),
            "password",
        ),
        (
            json!({"name": "ok", "password": 123456789012i64}),
            "password",
        ),
        (json!({"name": "ok", "storage_gb": 0}), "storage_gb"),
        (json!({"name": "ok", "storage_gb": 1025}), "storage_gb"),
        (json!({"name": "ok", "storage_gb": "ten"}), "storage_gb"),
        (json!({"name": "ok", "storage_gb": 1.5}), "storage_gb"),
        (json!({"name": "ok", "storage_gb": 1e300}), "storage_gb"),
        (json!({"name": "ok", "storage_gb": -3}), "storage_gb"),
        (
            json!({"name": "ok", "postgres_version": "9"}),
            "postgres_version",
        ),
        (
            json!({"name": "ok", "postgres_version": 15}),
            "postgres_version",
        ),
        (json!({"name": "ok", "expose": "everywhere"}), "expose"),
        (
            json!({"name": "ok", "dns_label": "Not_A_Label"}),
            "dns_label",
        ),
        (json!({"name": "ok", "surprise": true}), "surprise"),
        (json!(["ok"]), "body"),
    ];
    for (body, field) in invalid {
        let reply = server.post("/instances", &body).await?;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} -> {}",
            reply.text
        );
        assert_eq!(reply.error_code(), "invalid_request", "{body}");
        assert_eq!(reply.error_field(), field, "{body} -> {}", reply.text);
    }

    for raw in ["{", "not json", "{\"name\": \"x\",}", ""] {
        let reply = server
            .send(Method::POST, "/instances", Some(raw), &[])
            .await?;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{raw:?} -> {}",
            reply.text
        );
        assert_eq!(reply.error_code(), "malformed_json");
    }

    let huge = json!({"name": "big", "password": "p".repeat(70 * 1024)}).to_string();
    let reply = server
        .send(Method::POST, "/instances", Some(&huge), &[])
        .await?;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text
    );
    assert_eq!(reply.error_code(), "payload_too_large");

    for path in [
        "/instances/nope",
        "/instances/..%2F..%2Fetc",
        "/operations/op_doesnotexist",
        "/instances/nope/events",
        "/nowhere",
    ] {
        let reply = server.get(path).await?;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path} -> {}",
            reply.text
        );
        assert_eq!(reply.error_code(), "not_found", "{path}");
    }
    let reply = server.delete("/instances/nope").await?;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    for (path, field) in [
        ("/instances?limit=0", "limit"),
        ("/instances?limit=501", "limit"),
        ("/instances?limit=many", "limit"),
        ("/instances?state=sleeping", "state"),
        ("/instances?cursor=garbage", "cursor"),
        ("/instances?colour=blue", "colour"),
        ("/operations?limit=-1", "limit"),
        ("/operations?cursor=%00", "cursor"),
    ] {
        let reply = server.get(path).await?;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} -> {}",
            reply.text
        );
        assert_eq!(reply.error_field(), field, "{path}");
    }

    let reply = server
        .send(
            Method::POST,
            "/instances",
            Some("{\"name\":\"k\"}"),
            &[("idempotency-key", "")],
        )
        .await?;
    assert_eq!(reply.error_field(), "Idempotency-Key", "{}", reply.text);

    // A duplicate name while the first create runs names the blocking operation; once it is
    // running, the name is simply in use.
    let first = server.post("/instances", &json!({"name": "dup"})).await?;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let first_id = first.body["operation"]["id"]
        .as_str()
        .ok_or("no id")?
        .to_string();
    let second = server.post("/instances", &json!({"name": "dup"})).await?;
    assert_eq!(second.status, StatusCode::CONFLICT, "{}", second.text);
    if second.error_code() == "operation_in_progress" {
        assert_eq!(second.body["error"]["operation_id"], first_id.as_str());
    } else {
        assert_eq!(second.error_code(), "name_in_use");
    }
    assert_eq!(
        server.wait_operation(&first_id).await?["status"],
        "succeeded"
    );
    let third = server.post("/instances", &json!({"name": "dup"})).await?;
    assert_eq!(third.status, StatusCode::CONFLICT);
    assert_eq!(third.error_code(), "name_in_use");

    // Pages: two instances, one per page, the cursor leads from the first to the second.
    let other = server
        .post("/instances", &json!({"name": "another"}))
        .await?;
    let other_id = other.body["operation"]["id"]
        .as_str()
        .ok_or("no id")?
        .to_string();
    assert_eq!(
        server.wait_operation(&other_id).await?["status"],
        "succeeded"
    );
    let page1 = server.get("/instances?limit=1").await?;
    assert_eq!(page1.body["items"][0]["name"], "another");
    let cursor = page1.body["next_cursor"]
        .as_str()
        .ok_or("no next_cursor")?
        .to_string();
    let page2 = server
        .get(&format!("/instances?limit=1&cursor={cursor}"))
        .await?;
    assert_eq!(page2.body["items"][0]["name"], "dup");
    assert_eq!(page2.body["next_cursor"], Value::Null);
    let ops1 = server.get("/operations?limit=1").await?;
    assert_eq!(ops1.body["items"][0]["id"], other_id.as_str());
    let cursor = ops1.body["next_cursor"]
        .as_str()
        .ok_or("no next_cursor")?
        .to_string();
    let ops2 = server
        .get(&format!("/operations?limit=1&cursor={cursor}"))
        .await?;
    assert_eq!(ops2.body["items"][0]["id"], first_id.as_str());

    let openapi = server.get("/openapi.json").await?;
    assert_eq!(openapi.status, StatusCode::OK);
    for path in [
        "/instances",
        "/instances/{name}",
        "/operations/{id}",
        "/operations",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            openapi.body["paths"][path].is_object(),
            "openapi lacks {path}"
        );
    }
    assert!(
        server.log().lines().all(|line| !line.contains("panicked")),
        "no route may panic"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_replay_or_refuse() -> TestResult {
    let workspace = Workspace::new("e2e_idempotency_keys_replay_or_refuse")?;
    let server = workspace.start_server("server.log", &[]).await?;
    let body = json!({"name": "idem", "storage_gb": 2}).to_string();
    let key = [("idempotency-key", "create-idem-1")];
    let first = server
        .send(Method::POST, "/instances", Some(&body), &key)
        .await?;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    let reordered = json!({"storage_gb": 2, "name": "idem"}).to_string();
    let replay = server
        .send(Method::POST, "/instances", Some(&reordered), &key)
        .await?;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{}", replay.text);
    assert_eq!(
        replay.body["operation"]["id"],
        first.body["operation"]["id"]
    );
    assert_eq!(replay.body["password"], first.body["password"]);

    let different = json!({"name": "idem", "storage_gb": 3}).to_string();
    let refused = server
        .send(Method::POST, "/instances", Some(&different), &key)
        .await?;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    assert_eq!(refused.error_code(), "idempotency_key_reused");

    let operation_id = first.body["operation"]["id"].as_str().ok_or("no id")?;
    assert_eq!(
        server.wait_operation(operation_id).await?["status"],
        "succeeded"
    );

    let delete_key = [("idempotency-key", "delete-idem-1")];
    let deleted = server
        .send(Method::DELETE, "/instances/idem", None, &delete_key)
        .await?;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    let again = server
        .send(Method::DELETE, "/instances/idem", None, &delete_key)
        .await?;
    assert_eq!(
        again.body["operation"]["id"],
        deleted.body["operation"]["id"]
    );
    let plain_again = server.delete("/instances/idem").await?;
    assert!(
        plain_again.status == StatusCode::NOT_FOUND
            || plain_again.body["operation"]["id"] == deleted.body["operation"]["id"],
        "a second delete returns the running delete: {}",
        plain_again.text
    );
    let delete_id = deleted.body["operation"]["id"].as_str().ok_or("no id")?;
    assert_eq!(
        server.wait_operation(delete_id).await?["status"],
        "succeeded"
    );
    Ok(())
}

/// Identical creates with one `Idempotency-Key`, sent together while the first is still in
/// flight, all get the first one's answer (its operation and password), never a `409` from the
/// name the first one has just taken. Many rounds, so that the race shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_creates_in_flight_replay_the_first_answer() -> TestResult {
    const ROUNDS: usize = 30;
    let workspace = Workspace::new("e2e_idempotent_creates_in_flight")?;
    // No instance needs to start: the answers are what is tested.
    let server = workspace
        .start_server("server.log", &[("TOYGRES_FAULTS", "deploy=hang")])
        .await?;
    let mut wrong = Vec::new();
    for round in 0..ROUNDS {
        let body = json!({"name": format!("race-{round}"), "storage_gb": 1}).to_string();
        let key = format!("race-key-{round}");
        let headers = [("idempotency-key", key.as_str())];
        let send = || server.send(Method::POST, "/instances", Some(&body), &headers);
        let (a, b, c, d) = tokio::join!(send(), send(), send(), send());
        let replies = [a?, b?, c?, d?];
        let first = &replies[0];
        for reply in &replies {
            let same = reply.status == StatusCode::ACCEPTED
                && reply.body["operation"]["id"] == first.body["operation"]["id"]
                && reply.body["password"] == first.body["password"]
                && reply.body["password"].is_string();
            if !same {
                wrong.push(format!("round {round}: {} {}", reply.status, reply.text));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} answers were not the first one's:\n{}",
        wrong.len(),
        ROUNDS * 4,
        wrong.join("\n")
    );
    Ok(())
}

/// The stored request hash is keyed with the server's secret: who reads the metadata cannot test
/// guesses of a chosen password against it (an unsalted SHA-256 of the request would match the
/// right guess).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_request_hashes_do_not_confirm_password_guesses() -> TestResult {
    use sha2::{Digest as _, Sha256};
    let workspace = Workspace::new("e2e_request_hashes_are_keyed")?;
    let server = workspace
        .start_server("server.log", &[("TOYGRES_FAULTS", "deploy=hang")])
        .await?;
    let password = "Guessable-Summer-2026";
    let created = server
        .send(
            Method::POST,
            "/instances",
            Some(&json!({"name": "guessed", "password": password}).to_string()),
            &[("idempotency-key", "guess-key-1")],
        )
        .await?;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let pool = sqlx::PgPool::connect(&workspace.control_plane_url()).await?;
    let stored: Option<String> = sqlx::query_scalar(
        "SELECT request_hash FROM toygres.operations WHERE idempotency_key = 'guess-key-1'",
    )
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    let stored = stored.ok_or("no request hash stored")?;
    // What an attacker with the metadata would compute for each guess.
    for guess in ["Guessable-Winter-2025", "correct horse battery", password] {
        let mut hasher = Sha256::new();
        hasher.update(b"POST /instances");
        hasher.update(b"\nname=\"guessed\"");
        hasher.update(format!("\npassword={}", json!(guess)).as_bytes());
        let guessed: String = hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_ne!(
            stored, guessed,
            "the stored hash confirms the guess {guess:?}"
        );
    }
    assert!(!stored.contains(password));
    Ok(())
}

/// Polls operation `id` until it is terminal; fails if it ever reads `done == total` while not
/// succeeded. Returns the step names seen, in order, and the final operation.
async fn watch_progress(server: &Server, id: &str) -> Result<(Vec<String>, Value), TestError> {
    let deadline = tokio::time::Instant::now() + OPERATION_LIMIT;
    let mut steps: Vec<String> = Vec::new();
    loop {
        let operation = server.get(&format!("/operations/{id}")).await?.body;
        let (done, total) = (
            &operation["progress"]["done"],
            &operation["progress"]["total"],
        );
        let status = operation["status"].as_str().unwrap_or_default();
        assert!(
            done.as_u64() < total.as_u64() || status == "succeeded",
            "progress reads {done}/{total} while {status}: {operation}"
        );
        if let Some(step) = operation["step"].as_str()
            && steps.last().map(String::as_str) != Some(step)
        {
            steps.push(step.to_string());
        }
        if ["succeeded", "failed", "canceled"].contains(&status) {
            return Ok((steps, operation));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("operation {id} never finished: {operation}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With a pause before every step, each step of a create and of a delete (that overtakes a
/// create) shows in the operation, and progress reads `done == total` only once it succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_names_every_step_and_is_complete_only_on_success() -> TestResult {
    let workspace = Workspace::new("e2e_progress_every_step")?;
    let server = workspace
        .start_server("server.log", &[("TOYGRES_STEP_DELAY_MS", "400")])
        .await?;

    let created = server
        .post("/instances", &json!({"name": "stepwise"}))
        .await?;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let create_id = created.body["operation"]["id"].as_str().ok_or("no id")?;
    let (steps, done) = watch_progress(&server, create_id).await?;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["progress"]["done"], done["progress"]["total"],
        "{done}"
    );
    assert_eq!(
        steps,
        [
            "deploy",
            "wait_ready",
            "connection_info",
            "configure_roles",
            "test_connection",
            "finalize"
        ]
    );

    // A delete that overtakes a create runs every step but `save_backups` (nothing ran to save).
    let overtaken = server
        .post("/instances", &json!({"name": "overtaken"}))
        .await?;
    assert_eq!(overtaken.status, StatusCode::ACCEPTED, "{}", overtaken.text);
    let deleted = server.delete("/instances/overtaken").await?;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.text);
    let delete_id = deleted.body["operation"]["id"].as_str().ok_or("no id")?;
    let (steps, done) = watch_progress(&server, delete_id).await?;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["progress"]["done"], done["progress"]["total"],
        "{done}"
    );
    assert_eq!(
        steps,
        [
            "cancel_create",
            "stop_monitor",
            "mark_deleting",
            "delete_resources",
            "finalize"
        ]
    );
    let create_id = overtaken.body["operation"]["id"].as_str().ok_or("no id")?;
    let (_, canceled) = watch_progress(&server, create_id).await?;
    assert_eq!(canceled["status"], "canceled", "{canceled}");

    // A delete of a running instance skips only the cancel; it archives the instance's last
    // WAL (`save_backups`) before the server goes.
    let deleted = server.delete("/instances/stepwise").await?;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.text);
    let delete_id = deleted.body["operation"]["id"].as_str().ok_or("no id")?;
    let (steps, done) = watch_progress(&server, delete_id).await?;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        steps,
        [
            "stop_monitor",
            "save_backups",
            "mark_deleting",
            "delete_resources",
            "finalize"
        ]
    );
    Ok(())
}

/// The upgrade to per-caller keys forgets the unsalted request hashes stored before it, and
/// their keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_forgets_unsalted_request_hashes() -> TestResult {
    let database_url = toygres_activities::testkit::fresh_database().await?;
    let metadata = toygres_activities::metadata::MetadataStore::connect(&database_url, 2).await?;
    sqlx::query("CREATE SCHEMA IF NOT EXISTS toygres")
        .execute(metadata.pool())
        .await?;
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut before = sqlx::migrate::Migrator::new(folder).await?;
    before.migrations = before
        .migrations
        .iter()
        .filter(|migration| migration.version < 20261202000000)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(metadata.pool()).await?;
    sqlx::query(
        "INSERT INTO instances (id, uid, name, state, backend, postgres_version, storage_gb, expose, \
         sealed_password, last_operation_id) \
         VALUES (1, 'ins_old', 'old', 'running', 'local', '15', 1, 'internal', 'v1.x', 'op_old')",
    )
    .execute(metadata.pool())
    .await?;
    sqlx::query(
        "INSERT INTO operations (id, kind, instance_id, instance_name, status, progress_total, \
         idempotency_key, request_hash) \
         VALUES ('op_old', 'create', 1, 'old', 'succeeded', 5, 'old-key', 'c0ffee')",
    )
    .execute(metadata.pool())
    .await?;
    metadata.migrate().await?;
    let kept: (Option<String>, Option<String>) =
        sqlx::query_as("SELECT idempotency_key, request_hash FROM operations WHERE id = 'op_old'")
            .fetch_one(metadata.pool())
            .await?;
    assert_eq!(kept, (None, None));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_while_creating_cancels_and_cleans_up() -> TestResult {
    let workspace = Workspace::new("e2e_delete_while_creating")?;
    let server = workspace.start_server("server.log", &[]).await?;
    let created = server.post("/instances", &json!({"name": "hasty"})).await?;
    assert_eq!(created.status, StatusCode::ACCEPTED);
    let create_id = created.body["operation"]["id"]
        .as_str()
        .ok_or("no id")?
        .to_string();
    let deleted = server.delete("/instances/hasty").await?;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.text);
    let delete_id = deleted.body["operation"]["id"]
        .as_str()
        .ok_or("no id")?
        .to_string();

    let done = server.wait_operation(&delete_id).await?;
    assert_eq!(done["status"], "succeeded", "{done}");
    let create = server.wait_operation(&create_id).await?;
    assert!(
        ["canceled", "succeeded"].contains(&create["status"].as_str().unwrap_or("")),
        "{create}"
    );
    assert_eq!(
        server.get("/instances/hasty").await?.body["state"],
        "deleted"
    );

    // Nothing may come back to life after the delete: give any straggler time, then look.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        subdirs(&workspace.instances_dir()).is_empty(),
        "no data dir may remain"
    );
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()?;
    let running = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(&*workspace.instances_dir().to_string_lossy()))
        .count();
    assert_eq!(running, 0, "no postgres may run for the deleted instance");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_server_finishes_the_create_after_restart() -> TestResult {
    let workspace = Workspace::new("e2e_sigkill_during_create")?;
    let mut server = workspace.start_server("first.log", &[]).await?;
    let created = server
        .post(
            "/instances",
            &json!({"name": "survivor", "password": "survivor-pass-123"}),
        )
        .await?;
    assert_eq!(created.status, StatusCode::ACCEPTED);
    let operation_id = created.body["operation"]["id"]
        .as_str()
        .ok_or("no id")?
        .to_string();
    // Kill as soon as the workflow reports a step, i.e. in the middle of the create.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let operation = server.get(&format!("/operations/{operation_id}")).await?;
        if operation.body["step"].is_string() || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();

    let server = workspace.start_server("second.log", &[]).await?;
    let done = server.wait_operation(&operation_id).await?;
    assert_eq!(done["status"], "succeeded", "{done}");
    let listed = server.get("/instances").await?;
    assert_eq!(
        listed.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        listed.text
    );
    assert_eq!(
        subdirs(&workspace.instances_dir()),
        vec!["survivor".to_string()]
    );
    let port = port_of(&listed.body["items"][0])?;
    assert_eq!(query_with_password(port, "survivor-pass-123").await?, 42);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_keeps_instances_and_restart_reuses_everything() -> TestResult {
    let workspace = Workspace::new("e2e_graceful_restart")?;
    let mut server = workspace.start_server("first.log", &[]).await?;
    let created = server
        .post(
            "/instances",
            &json!({"name": "keeper", "password": "keeper-pass-1234"}),
        )
        .await?;
    let operation_id = created.body["operation"]["id"]
        .as_str()
        .ok_or("no id")?
        .to_string();
    assert_eq!(
        server.wait_operation(&operation_id).await?["status"],
        "succeeded"
    );
    let port = port_of(&server.get("/instances/keeper").await?.body)?;
    assert!(
        server.terminate(),
        "SIGTERM must shut down cleanly:\n{}",
        server.log()
    );
    assert!(server.log().contains("shutting down"));
    // The instance is a user's database: it keeps serving while the control plane is down.
    assert_eq!(query_with_password(port, "keeper-pass-1234").await?, 42);
    // Stop it behind the control plane's back (as a machine reboot would): the next start
    // finds its data dir and starts it again.
    let data = workspace.instances_dir().join("keeper").join("data");
    assert!(pg_ctl("stop", &data)?);
    assert!(!port_is_open(port));
    // Lose its monitor too (it ends, as after a poison message): the next server must notice
    // and give the instance a new one. The first server's embedded database is stopped; start it.
    let controlplane = workspace.data_dir().join("controlplane");
    let embedded =
        toygres_activities::embedded::EmbeddedPostgres::ensure_running(&controlplane, None).await?;
    let pool = sqlx::PgPool::connect(&embedded.url("postgres")).await?;
    let first_monitor: Option<String> =
        sqlx::query_scalar("SELECT monitor_id FROM toygres.instances WHERE name = 'keeper'")
            .fetch_one(&pool)
            .await?;
    let store = toygres_server::runtime::open_store(&embedded.url("postgres")).await?;
    duroxide::Client::new(store)
        .cancel_instance(first_monitor.clone().unwrap_or_default(), "simulated loss")
        .await?;
    let first_monitor = first_monitor.ok_or("the create did not record a monitor")?;

    let server = workspace
        .start_server("second.log", &[("TOYGRES_HEALTH_INTERVAL_SECS", "1")])
        .await?;
    let mut restarted = false;
    for _ in 0..100 {
        if query_with_password(port, "keeper-pass-1234").await.is_ok() {
            restarted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        restarted,
        "the server must start the instance again:\n{}",
        server.log()
    );
    assert_eq!(
        server.get("/instances/keeper").await?.body["state"],
        "running"
    );
    // A new monitor took over and checks the instance.
    let mut second_monitor = None;
    for _ in 0..150 {
        let current: Option<String> =
            sqlx::query_scalar("SELECT monitor_id FROM toygres.instances WHERE name = 'keeper'")
                .fetch_one(&pool)
                .await?;
        if current.is_some() && current != Some(first_monitor.clone()) {
            second_monitor = current;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let second_monitor = second_monitor.ok_or("no new monitor took over")?;
    server
        .wait_instance("keeper", Duration::from_secs(30), |i| {
            i["health"]["status"] == "healthy"
        })
        .await?;
    let url = workspace.control_plane_url();
    assert!(matches!(
        workflow_status(&url, &second_monitor).await?,
        duroxide::OrchestrationStatus::Running { .. }
    ));

    let deleted = server.delete("/instances/keeper").await?;
    let delete_id = deleted.body["operation"]["id"].as_str().ok_or("no id")?;
    assert_eq!(
        server.wait_operation(delete_id).await?["status"],
        "succeeded"
    );
    assert!(!port_is_open(port));
    // No monitor outlives its instance.
    for monitor in [&first_monitor, &second_monitor] {
        let mut ended = false;
        for _ in 0..100 {
            if !matches!(
                workflow_status(&url, monitor).await?,
                duroxide::OrchestrationStatus::Running { .. }
            ) {
                ended = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(ended, "monitor {monitor} still runs after the delete");
    }
    pool.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_instance_and_metrics_show_it() -> TestResult {
    let workspace = Workspace::new("e2e_health_follows_the_instance")?;
    let env = [
        ("TOYGRES_HEALTH_INTERVAL_SECS", "1"),
        ("TOYGRES_HEALTH_FAILURES", "2"),
        ("TOYGRES_HEALTH_CHECKS_PER_EXECUTION", "2"),
    ];
    let server = workspace.start_server("server.log", &env).await?;
    let created = server
        .post("/instances", &json!({"name": "watched"}))
        .await?;
    let operation_id = created.body["operation"]["id"]
        .as_str()
        .ok_or("no id")?
        .to_string();
    assert_eq!(
        server.wait_operation(&operation_id).await?["status"],
        "succeeded"
    );

    let healthy = server
        .wait_instance("watched", Duration::from_secs(30), |i| {
            i["health"]["status"] == "healthy"
        })
        .await?;
    assert!(healthy["health"]["checked_at"].is_string());
    assert!(healthy["health"]["latency_ms"].is_u64());

    // Stop its postgres behind the control plane's back: unhealthy after 2 failed checks.
    let data = workspace.instances_dir().join("watched").join("data");
    assert!(pg_ctl("stop", &data)?);
    let sick = server
        .wait_instance("watched", Duration::from_secs(30), |i| {
            i["health"]["status"] == "unhealthy"
        })
        .await?;
    assert!(
        sick["health"]["consecutive_failures"].as_u64() >= Some(2),
        "{sick}"
    );
    assert_eq!(
        sick["state"], "running",
        "health is not state: the instance is still ours and running"
    );

    // Start it again: healthy after one good check.
    assert!(pg_ctl("start", &data)?);
    server
        .wait_instance("watched", Duration::from_secs(30), |i| {
            i["health"]["status"] == "healthy"
        })
        .await?;
    let events = server.get("/instances/watched/events").await?;
    let messages: Vec<&str> = events.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("unhealthy: 2 checks in a row failed")),
        "{messages:?}"
    );
    assert!(
        messages.iter().filter(|m| m.starts_with("healthy")).count() >= 2,
        "{messages:?}"
    );

    // Its history stays bounded: it continued as new every 2 checks and pruned the rest.
    let pool = sqlx::PgPool::connect(&workspace.control_plane_url()).await?;
    let monitor: Option<String> =
        sqlx::query_scalar("SELECT monitor_id FROM toygres.instances WHERE name = 'watched'")
            .fetch_one(&pool)
            .await?;
    let monitor = monitor.ok_or("no monitor")?;
    let executions: Vec<i64> = sqlx::query_scalar(
        "SELECT execution_id::bigint FROM toygres_duroxide.executions WHERE instance_id = $1",
    )
    .bind(&monitor)
    .fetch_all(&pool)
    .await?;
    assert!(
        executions.iter().max() >= Some(&3),
        "the monitor continued as new: {executions:?}"
    );
    assert!(
        executions.len() <= 2,
        "old executions are pruned: {executions:?}"
    );

    // /metrics: Prometheus text with the series operators need.
    let metrics = server.get("/metrics").await?;
    assert_eq!(metrics.status, StatusCode::OK);
    let mut names = std::collections::BTreeSet::new();
    for line in metrics
        .text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("not a sample: {line}"))?;
        assert!(
            value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value),
            "bad value in {line}"
        );
        let name = series.split('{').next().unwrap_or_default();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name in {line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "bad labels in {line}"
            );
        }
        names.insert(name.to_string());
    }
    for expected in [
        "toygres_http_requests_total",
        "toygres_http_request_duration_seconds_bucket",
        "toygres_operations_started_total",
        "toygres_operations_finished_total",
        "toygres_activity_duration_seconds_bucket",
        "toygres_instances",
        "toygres_instances_by_health",
        "duroxide_activity_executions_total",
    ] {
        assert!(
            names.contains(expected),
            "/metrics lacks {expected}: {names:?}"
        );
    }
    assert!(
        metrics
            .text
            .contains(r#"toygres_instances{state="running"} 1"#),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains(r#"toygres_instances_by_health{health="healthy"} 1"#)
    );
    assert!(
        metrics.text.contains(r#"route="/instances/{name}""#),
        "requests are labelled by route, not by path"
    );
    assert!(metrics.text.contains(r#"activity="check-health""#));
    pool.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_database_url_it_uses_that_database_and_starts_orphaned_operations() -> TestResult {
    use toygres_activities::metadata::{MetadataStore, NewInstance, NewOperation};
    use toygres_activities::seal::SecretKey;

    let workspace = Workspace::new("e2e_with_database_url")?;
    let database_url = toygres_activities::testkit::fresh_database().await?;
    let key = SecretKey::generate();

    // A create that was recorded but whose workflow never started: the server crashed between
    // the two writes. The next server must start it.
    let metadata = MetadataStore::connect(&database_url, 2).await?;
    metadata.migrate().await?;
    let (_, orphan) = metadata
        .reserve_create(
            &NewInstance {
                uid: "ins_orphan".into(),
                name: toygres_activities::validation::InstanceName::parse("orphan")?,
                namespace: "default".into(),
                backend: "local".into(),
                postgres_version: "15".into(),
                storage_gb: 1,
                expose: toygres_activities::model::Expose::Internal,
                dns_label: None,
                sealed_password: key.seal("orphan-password-1"),
                sealed_admin_password: key.seal("orphan-admin-password-1"),
                sealed_monitor_password: key.seal("orphan-monitor-password-1"),
                parameters: Default::default(),
                deletion_protection: false,
            },
            &NewOperation {
                id: "op_orphanedbeforestart0000".into(),
                progress_total: 5,
                idempotency: None,
                request: None,
            },
        )
        .await?;

    let encoded_key = key.to_base64();
    let env = [
        ("DATABASE_URL", database_url.as_str()),
        ("TOYGRES_SECRET_KEY", encoded_key.as_str()),
        ("TOYGRES_LOG_FORMAT", "json"),
    ];
    let server = workspace.start_server("server.log", &env).await?;
    let done = server.wait_operation(&orphan.id).await?;
    assert_eq!(done["status"], "succeeded", "{done}");
    let port = port_of(&server.get("/instances/orphan").await?.body)?;
    assert_eq!(query_with_password(port, "orphan-password-1").await?, 42);

    assert!(
        !workspace.data_dir().join("controlplane").exists(),
        "no embedded database with DATABASE_URL"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM toygres.instances")
        .fetch_one(metadata.pool())
        .await?;
    assert_eq!(rows, 1);
    let log = server.log();
    assert!(!log.is_empty());
    let mut activity_lines = 0;
    for line in log.lines() {
        let entry: Value =
            serde_json::from_str(line).map_err(|_| format!("not a JSON log line: {line}"))?;
        // Every line logged while running a step names the operation and the instance.
        if entry["span"]["name"] == "activity" {
            activity_lines += 1;
            assert!(
                entry["span"]["operation_id"].is_string() && entry["span"]["instance"].is_string(),
                "{line}"
            );
        }
    }
    let orphan_lines = log
        .lines()
        .filter(|l| {
            l.contains(r#""operation_id":"op_orphanedbeforestart0000""#)
                && l.contains(r#""instance":"orphan""#)
        })
        .count();
    assert!(
        activity_lines > 0 && orphan_lines > 0,
        "the steps of the orphaned create must log with their span"
    );
    Ok(())
}
