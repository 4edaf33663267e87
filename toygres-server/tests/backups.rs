//! Backups over HTTP against the real binary and the real pgBackRest: the first backup comes on
//! its own; point-in-time restores reach exactly the rows committed before their target (and
//! latest, everything committed before the request); restores of a named backup and from a
//! deleted instance; the restore window's 422s; verifies; final backups; a SIGKILL during a
//! backup, a restore and a verify; archiving that fails turns `backup.status` to `failing` and
//! back; the same through the `toygres` CLI and the curl scripts; exactness against Azurite;
//! with backups off, every backup request is a clear 422.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::process::{run_script, script_and_wait, text, toygres};
use support::*;
use toygres_server::cli::exit;

const PASSWORD: &str = "backup-source-password-1";

fn operation_id(reply: &Reply) -> Result<String, TestError> {
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    Ok(reply.body["operation"]["id"]
        .as_str()
        .ok_or_else(|| format!("no operation in {}", reply.text))?
        .to_string())
}

async fn succeeded(server: &Server, reply: Reply) -> Result<Value, TestError> {
    let id = operation_id(&reply)?;
    let op = server.wait_operation(&id).await?;
    assert_eq!(op["status"], "succeeded", "{op}");
    Ok(op)
}

async fn instance(server: &Server, name: &str) -> Result<Value, TestError> {
    Ok(server.get(&format!("/instances/{name}")).await?.body)
}

fn port_of(instance: &Value) -> Result<u16, TestError> {
    Ok(u16::try_from(instance["port"].as_u64().ok_or("no port")?)?)
}

/// Waits until the instance has a backup (the scheduler's first) and a restore window.
async fn first_backup(server: &Server, name: &str) -> Result<Value, TestError> {
    server
        .wait_instance(name, Duration::from_secs(90), |i| {
            i["backup"]["last_backup_at"].is_string()
                && i["backup"]["restore_window"]["earliest"].is_string()
        })
        .await
}

/// Creates `name` restored from `restore_from`; returns the instance and its password.
async fn restore(
    server: &Server,
    name: &str,
    restore_from: Value,
) -> Result<(Value, String), TestError> {
    let reply = server
        .post(
            "/instances",
            &json!({"name": name, "restore_from": restore_from}),
        )
        .await?;
    let password = reply.body["password"]
        .as_str()
        .ok_or_else(|| format!("no password: {}", reply.text))?
        .to_string();
    succeeded(server, reply).await?;
    Ok((instance(server, name).await?, password))
}

fn batches(port: u16, password: &str) -> Result<String, TestError> {
    Ok(psql(
        port,
        "postgres",
        password,
        "SELECT coalesce(string_agg(b::text, ',' ORDER BY b), '') FROM batches",
    )?)
}

/// Creates `source`, waits for its first backup, writes three batches with a pause between
/// each, and restores to the time after batch 1, after batch 2, and latest: exactly {1}, {1,2},
/// {1,2,3}, each with its own password. Returns the source's port.
async fn three_batches_restore_exactly(server: &Server) -> Result<u16, TestError> {
    let created = server
        .post(
            "/instances",
            &json!({"name": "source", "password": PASSWORD}),
        )
        .await?;
    succeeded(server, created).await?;
    // Restorable from its first minute: the scheduler's first backup, without asking.
    let source = first_backup(server, "source").await?;
    assert_eq!(source["backup"]["status"], "ok", "{source}");
    let port = port_of(&source)?;
    psql(port, "postgres", PASSWORD, "CREATE TABLE batches (b int)")?;

    let mut after = Vec::new();
    for batch in 1..=3 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        psql(
            port,
            "postgres",
            PASSWORD,
            &format!("INSERT INTO batches VALUES ({batch})"),
        )?;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        after.push(chrono::Utc::now().to_rfc3339());
    }
    for (name, restore_from, expected) in [
        (
            "at-one",
            json!({"instance": "source", "point_in_time": after[0]}),
            "1",
        ),
        (
            "at-two",
            json!({"instance": "source", "point_in_time": after[1]}),
            "1,2",
        ),
        ("latest", json!({"instance": "source"}), "1,2,3"),
    ] {
        let (copy, password) = restore(server, name, restore_from).await?;
        assert_eq!(copy["state"], "running");
        let copy_port = port_of(&copy)?;
        assert_eq!(batches(copy_port, &password)?, expected, "{name}");
        // Its own password, not the source's.
        assert!(psql(copy_port, "postgres", PASSWORD, "SELECT 1").is_err());
        succeeded(server, server.delete(&format!("/instances/{name}")).await?).await?;
    }
    Ok(port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_in_time_restores_are_exact_against_azurite() -> TestResult {
    let workspace = Workspace::new("backups_azurite")?;
    let azurite =
        support::azurite::Azurite::start(&workspace.data_dir().join("azurite"), "toygres").await?;
    let mut env: Vec<(&str, String)> = azurite.server_env();
    env.push(("TOYGRES_BACKUP_CHECK_INTERVAL_SECS", "1".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = workspace.start_server("server.log", &env).await?;
    three_batches_restore_exactly(&server).await?;
    // The backups and the WAL are in the container, nothing in a local folder.
    let blobs = azurite.blobs("toygres/").await?;
    assert!(
        blobs.iter().any(|blob| blob.contains("/backup/"))
            && blobs.iter().any(|blob| blob.contains("/archive/")),
        "{blobs:?}"
    );
    assert!(!workspace.data_dir().join("backups").exists());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_in_time_restores_are_exact_and_backups_outlive_their_instance() -> TestResult {
    let workspace = Workspace::new("backups_point_in_time")?;
    let server = workspace
        .start_server("server.log", &[("TOYGRES_BACKUP_CHECK_INTERVAL_SECS", "1")])
        .await?;
    let port = three_batches_restore_exactly(&server).await?;

    // The restore window: before it, and in the future, are 422s naming it.
    let window = instance(&server, "source").await?["backup"]["restore_window"].clone();
    let earliest: chrono::DateTime<chrono::Utc> =
        window["earliest"].as_str().ok_or("no earliest")?.parse()?;
    for at in [
        earliest - chrono::Duration::hours(1),
        chrono::Utc::now() + chrono::Duration::hours(1),
    ] {
        let refused = server
            .post(
                "/instances",
                &json!({"name": "outside", "restore_from": {"instance": "source", "point_in_time": at.to_rfc3339()}}),
            )
            .await?;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.text
        );
        assert_eq!(refused.error_field(), "restore_from.point_in_time");
        assert!(refused.text.contains("restore window"), "{}", refused.text);
    }
    let unknown = server
        .post(
            "/instances",
            &json!({"name": "nothing", "restore_from": {"instance": "nowhere"}}),
        )
        .await?;
    assert_eq!(
        unknown.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown.text
    );
    assert_eq!(unknown.error_field(), "restore_from.instance");

    // An on-demand backup, listed newest first, and restorable by id.
    let reply = server
        .post("/instances/source/backups", &json!({"type": "full"}))
        .await?;
    let backup_id = reply.body["backup"]["id"]
        .as_str()
        .ok_or("no backup id")?
        .to_string();
    assert_eq!(reply.body["backup"]["status"], "running");
    let op = succeeded(&server, reply).await?;
    assert_eq!(op["kind"], "backup");
    psql(port, "postgres", PASSWORD, "INSERT INTO batches VALUES (4)")?;
    let listed = server.get("/instances/source/backups").await?.body;
    let items = listed["items"].as_array().ok_or("no items")?;
    assert!(items.len() >= 2, "{listed}");
    assert_eq!(items[0]["id"], backup_id.as_str());
    assert_eq!(items[0]["status"], "succeeded");
    assert!(
        items[0]["size_bytes"]
            .as_i64()
            .is_some_and(|size| size > 1_000_000)
    );
    assert!(items[0]["stop_lsn"].is_string());
    let (named, password) = restore(
        &server,
        "named",
        json!({"instance": "source", "backup_id": backup_id}),
    )
    .await?;
    assert_eq!(batches(port_of(&named)?, &password)?, "1,2,3");
    succeeded(&server, server.delete("/instances/named").await?).await?;

    // A verify restores it elsewhere and checks it.
    let verify = server
        .post_empty(&format!("/instances/source/backups/{backup_id}/verify"))
        .await?;
    let id = operation_id(&verify)?;
    let op = server.wait_operation(&id).await?;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(op["kind"], "verify_backup");
    assert_eq!(op["result"]["restored"], true, "{op}");
    assert_eq!(op["result"]["repository_intact"], true, "{op}");
    assert!(
        op["result"]["tables"].as_u64().is_some_and(|n| n >= 1),
        "{op}"
    );
    let listed = server.get("/instances/source/backups").await?.body;
    assert!(listed["items"][0]["verified_at"].is_string(), "{listed}");

    // A final backup, then the instance goes; its backups stay and restore.
    let deleted = succeeded(
        &server,
        server.delete("/instances/source?final_backup=true").await?,
    )
    .await?;
    assert_eq!(deleted["kind"], "delete");
    let listed = server.get("/instances/source/backups").await?.body;
    let items = listed["items"].as_array().ok_or("no items")?;
    assert_eq!(items[0]["operation_id"], deleted["id"], "{listed}");
    assert_eq!(items[0]["status"], "succeeded");
    let (late, password) = restore(&server, "late", json!({"instance": "source"})).await?;
    assert_eq!(batches(port_of(&late)?, &password)?, "1,2,3,4");
    Ok(())
}

/// Polls the operation until it reports `step`, then SIGKILLs the server.
async fn kill_in_step(server: &mut Server, id: &str, step: &str) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(120);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_during_a_backup_a_restore_or_a_verify_is_survived() -> TestResult {
    let workspace = Workspace::new("backups_crash")?;
    let env = [
        ("TOYGRES_STEP_DELAY_MS", "300"),
        ("TOYGRES_WORKER_LOCK_TIMEOUT_SECS", "2"),
        ("TOYGRES_RECONCILE_INTERVAL_SECS", "2"),
    ];
    let mut server = workspace.start_server("server-0.log", &env).await?;
    let created = server
        .post(
            "/instances",
            &json!({"name": "victim", "password": PASSWORD}),
        )
        .await?;
    succeeded(&server, created).await?;
    let port = port_of(&instance(&server, "victim").await?)?;
    psql(
        port,
        "postgres",
        PASSWORD,
        "CREATE TABLE batches (b int); INSERT INTO batches VALUES (7)",
    )?;

    // A backup killed mid-way.
    let reply = server.post("/instances/victim/backups", &json!({})).await?;
    let backup_id = reply.body["backup"]["id"]
        .as_str()
        .ok_or("no id")?
        .to_string();
    let id = operation_id(&reply)?;
    kill_in_step(&mut server, &id, "backup").await?;
    let mut server = workspace.start_server("server-1.log", &env).await?;
    let op = server.wait_operation(&id).await?;
    assert!(
        ["succeeded", "failed"].contains(&op["status"].as_str().unwrap_or("")),
        "{op}"
    );
    let listed = server.get("/instances/victim/backups").await?.body;
    let row = listed["items"]
        .as_array()
        .and_then(|items| items.iter().find(|b| b["id"] == backup_id.as_str()))
        .ok_or("the backup row is gone")?;
    assert_ne!(row["status"], "running", "{row}");
    assert_eq!(row["status"], op["status"], "{row} {op}");
    // pgBackRest is usable for the next one.
    let next = succeeded(
        &server,
        server.post("/instances/victim/backups", &json!({})).await?,
    )
    .await?;
    assert_eq!(next["kind"], "backup");

    // A restore killed mid-way: it ends, and what it leaves works or is gone.
    let reply = server
        .post(
            "/instances",
            &json!({"name": "copy", "restore_from": {"instance": "victim"}}),
        )
        .await?;
    let password = reply.body["password"]
        .as_str()
        .ok_or("no password")?
        .to_string();
    let id = operation_id(&reply)?;
    kill_in_step(&mut server, &id, "deploy").await?;
    let mut server = workspace.start_server("server-2.log", &env).await?;
    let op = server.wait_operation(&id).await?;
    let copy = instance(&server, "copy").await?;
    match op["status"].as_str() {
        Some("succeeded") => assert_eq!(batches(port_of(&copy)?, &password)?, "7"),
        Some("failed") => {
            assert_eq!(copy["state"], "failed", "{copy}");
            assert!(
                !workspace.instances_dir().join("copy").exists(),
                "a half instance"
            );
        }
        other => return Err(format!("restore ended {other:?}: {op}").into()),
    }

    // A verify killed mid-way ends, and a second one passes.
    let verify = server
        .post_empty(&format!("/instances/victim/backups/{backup_id}/verify"))
        .await?;
    let id = operation_id(&verify)?;
    if verify.status == StatusCode::ACCEPTED {
        kill_in_step(&mut server, &id, "verify").await?;
        let server = workspace.start_server("server-3.log", &env).await?;
        let op = server.wait_operation(&id).await?;
        assert!(
            ["succeeded", "failed"].contains(&op["status"].as_str().unwrap_or("")),
            "{op}"
        );
        let listed = server.get("/instances/victim/backups").await?.body;
        let newest = &listed["items"][0];
        let again = succeeded(
            &server,
            server
                .post_empty(&format!(
                    "/instances/victim/backups/{}/verify",
                    newest["id"].as_str().ok_or("no id")?
                ))
                .await?,
        )
        .await?;
        assert_eq!(again["result"]["restored"], true);
        let leftovers: Vec<String> = subdirs(&workspace.instances_dir().join(".verify"));
        assert!(leftovers.is_empty(), "scratch clusters left: {leftovers:?}");
    }
    Ok(())
}

/// Sets the mode of `dir` and every folder below it (files keep theirs).
fn set_dir_modes(dir: &std::path::Path, mode: u32) -> TestResult {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type()?.is_dir() {
            set_dir_modes(&entry.path(), mode)?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_failures_turn_backups_failing_and_back() -> TestResult {
    let workspace = Workspace::new("backups_archive_failures")?;
    let server = workspace
        .start_server(
            "server.log",
            &[
                ("TOYGRES_HEALTH_INTERVAL_SECS", "1"),
                ("TOYGRES_ARCHIVE_TIMEOUT_SECS", "2"),
            ],
        )
        .await?;
    let created = server
        .post(
            "/instances",
            &json!({"name": "archiver", "password": PASSWORD}),
        )
        .await?;
    succeeded(&server, created).await?;
    let port = port_of(&instance(&server, "archiver").await?)?;
    psql(port, "postgres", PASSWORD, "CREATE TABLE t (x int)")?;
    let repository = std::fs::read_dir(workspace.data_dir().join("backups"))?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("ins_"))
        })
        .ok_or("no repository folder")?;
    let archive = repository.join("archive");
    set_dir_modes(&archive, 0o500)?;
    let broke = Instant::now();
    let result = async {
        let failing = async {
            loop {
                psql(
                    port,
                    "postgres",
                    PASSWORD,
                    "INSERT INTO t SELECT generate_series(1, 1000)",
                )?;
                let current = instance(&server, "archiver").await?;
                if current["backup"]["status"] == "failing" {
                    return Ok::<_, TestError>(());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(90), failing)
            .await
            .map_err(|_| "backup.status never turned failing")??;
        let noticed = broke.elapsed();
        let events = server.get("/instances/archiver/events").await?.body;
        assert!(
            events["items"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|event| event["kind"] == "backup_status_changed"),
            "{events}"
        );
        let metrics = server.get("/metrics").await?.text;
        assert!(
            metrics.contains("toygres_instances_by_backup_status{status=\"failing\"} 1"),
            "{metrics}"
        );
        println!("archiving failure noticed after {} ms", noticed.as_millis());
        Ok::<_, TestError>(())
    }
    .await;
    set_dir_modes(&archive, 0o700)?;
    result?;
    server
        .wait_instance("archiver", Duration::from_secs(120), |i| {
            i["backup"]["status"] == "ok"
        })
        .await?;
    Ok(())
}

/// `backups NAME -o json` through the CLI: the items.
async fn listed_backups(url: &str, name: &str) -> Result<Vec<Value>, TestError> {
    let listed = toygres(url, &["backups", name, "-o", "json"], None)
        .await?
        .expect_exit(exit::SUCCESS)?
        .json()?;
    assert!(listed["next_cursor"].is_null(), "{listed}");
    Ok(listed["items"].as_array().ok_or("no items")?.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_and_restores_through_the_cli_and_the_scripts() -> TestResult {
    let workspace = Workspace::new("backups_cli_and_scripts")?;
    let server = workspace
        .start_server("server.log", &[("TOYGRES_BACKUP_CHECK_INTERVAL_SECS", "1")])
        .await?;
    let url = server.base.as_str();
    for name in ["backup-instance.sh", "list-backups.sh", "verify-backup.sh"] {
        let help = run_script(name, &["-h"], url, None, None)
            .await?
            .expect_exit(exit::SUCCESS)?;
        assert!(help.stdout.starts_with("Usage:"), "{name}: {}", help.stdout);
        run_script(name, &[], url, None, None)
            .await?
            .expect_exit(exit::USAGE)?;
    }

    let created = toygres(
        url,
        &[
            "create",
            "cli-src",
            "--password-stdin",
            "--wait",
            "-o",
            "json",
        ],
        Some(PASSWORD),
    )
    .await?
    .expect_exit(exit::SUCCESS)?
    .json()?;
    let port = port_of(&created["instance"])?;
    psql(
        port,
        "postgres",
        PASSWORD,
        "CREATE TABLE batches (b int); INSERT INTO batches VALUES (1)",
    )?;
    // The scheduler's first backup holds the instance while it runs.
    first_backup(&server, "cli-src").await?;

    // A backup taken and followed by the CLI, then listed as a table and as JSON.
    let taken = toygres(url, &["backup", "cli-src", "--wait", "-o", "json"], None)
        .await?
        .expect_exit(exit::SUCCESS)?
        .json()?;
    assert_eq!(taken["operation"]["status"], "succeeded", "{taken}");
    assert_eq!(taken["backup"]["status"], "succeeded", "{taken}");
    assert_eq!(taken["backup"]["type"], "full", "{taken}");
    let first = text(&taken["backup"]["id"], "backup id")?.to_string();
    let table = toygres(url, &["backups", "cli-src"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    assert!(table.stdout.starts_with("ID"), "{}", table.stdout);
    assert!(table.stdout.contains(&first), "{}", table.stdout);
    let details = toygres(url, &["get", "cli-src"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    assert!(
        details.stdout.contains("backups:") && details.stdout.contains("restore window:"),
        "{}",
        details.stdout
    );
    psql(port, "postgres", PASSWORD, "INSERT INTO batches VALUES (2)")?;

    // The scripts: an incremental backup, the list, a restore of the first backup's end.
    let (incr, ended) =
        script_and_wait("backup-instance.sh", &["cli-src", "--type", "incr"], url).await?;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    let incr_id = text(&incr["backup"]["id"], "backup id")?.to_string();
    let scripted = run_script("list-backups.sh", &["cli-src"], url, None, None)
        .await?
        .expect_exit(exit::SUCCESS)?
        .json()?;
    let items = scripted["items"].as_array().ok_or("no items")?;
    assert!(
        items.iter().any(|b| b["id"] == incr_id.as_str()
            && b["type"] == "incr"
            && b["status"] == "succeeded"),
        "{scripted}"
    );
    let (copy, ended) = script_and_wait(
        "create-instance.sh",
        &["cli-copy", "--restore-from", "cli-src", "--backup", &first],
        url,
    )
    .await?;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    let copy_password = text(&copy["password"], "password")?.to_string();
    let copy = instance(&server, "cli-copy").await?;
    assert_eq!(batches(port_of(&copy)?, &copy_password)?, "1");
    run_script(
        "create-instance.sh",
        &["x", "--at", "2026-01-01T00:00:00Z"],
        url,
        None,
        None,
    )
    .await?
    .expect_exit(exit::USAGE)?;

    // Verifies: the CLI follows one to its end; the script's unknown backup is a 404.
    let verified = toygres(url, &["verify-backup", "cli-src", &first, "--wait"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    assert!(
        verified.stdout.contains("verification:"),
        "{}",
        verified.stdout
    );
    run_script(
        "verify-backup.sh",
        &["cli-src", "bk_nosuchbackup"],
        url,
        None,
        None,
    )
    .await?
    .expect_exit(exit::NOT_FOUND)?;
    let (_, ended) = script_and_wait("verify-backup.sh", &["cli-src", &incr_id], url).await?;
    assert_eq!(ended["kind"], "verify_backup", "{ended}");

    // Restores the CLI refuses, then a delete with a final backup and a restore as of it.
    let outside = toygres(
        url,
        &[
            "create",
            "cli-bad",
            "--restore-from",
            "cli-src",
            "--at",
            "2000-01-01T00:00:00Z",
        ],
        None,
    )
    .await?
    .expect_exit(exit::USAGE)?;
    assert!(
        outside.stderr.contains("restore window"),
        "{}",
        outside.stderr
    );
    toygres(
        url,
        &["create", "cli-bad", "--at", "2000-01-01T00:00:00Z"],
        None,
    )
    .await?
    .expect_exit(exit::USAGE)?;
    let fulls_before = listed_backups(url, "cli-src")
        .await?
        .iter()
        .filter(|b| b["type"] == "full" && b["status"] == "succeeded")
        .count();
    psql(port, "postgres", PASSWORD, "INSERT INTO batches VALUES (3)")?;
    toygres(
        url,
        &["delete", "cli-src", "--final-backup", "--wait"],
        None,
    )
    .await?
    .expect_exit(exit::SUCCESS)?;
    let after = listed_backups(url, "cli-src").await?;
    let fulls_after = after
        .iter()
        .filter(|b| b["type"] == "full" && b["status"] == "succeeded")
        .count();
    assert_eq!(fulls_after, fulls_before + 1, "{after:?}");
    let later = toygres(
        url,
        &[
            "create",
            "cli-later",
            "--restore-from",
            "cli-src",
            "--wait",
            "-o",
            "json",
        ],
        None,
    )
    .await?
    .expect_exit(exit::SUCCESS)?
    .json()?;
    let later_password = text(&later["password"], "password")?;
    assert_eq!(
        batches(port_of(&later["instance"])?, later_password)?,
        "1,2,3"
    );
    first_backup(&server, "cli-copy").await?;
    let (_, ended) =
        script_and_wait("delete-instance.sh", &["cli-copy", "--final-backup"], url).await?;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    assert!(
        listed_backups(url, "cli-copy")
            .await?
            .iter()
            .any(|b| b["type"] == "full" && b["status"] == "succeeded"),
        "the final backup of cli-copy is listed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_backups_off_every_backup_request_says_so() -> TestResult {
    let workspace = Workspace::new("backups_off")?;
    let server = workspace
        .start_server("server.log", &[("TOYGRES_BACKUPS", "false")])
        .await?;
    let created = server
        .post(
            "/instances",
            &json!({"name": "unbacked", "password": PASSWORD}),
        )
        .await?;
    succeeded(&server, created).await?;
    let unbacked = instance(&server, "unbacked").await?;
    assert_eq!(unbacked["backup"]["status"], "none", "{unbacked}");
    assert!(unbacked["backup"]["restore_window"].is_null(), "{unbacked}");
    // Nothing archives: the server runs without archive_command.
    let archiving = psql(
        port_of(&unbacked)?,
        "postgres",
        PASSWORD,
        "SELECT current_setting('archive_mode')",
    )?;
    assert_eq!(archiving, "off");

    let refusals = [
        server
            .post("/instances/unbacked/backups", &json!({}))
            .await?,
        server
            .post(
                "/instances",
                &json!({"name": "copy", "restore_from": {"instance": "unbacked"}}),
            )
            .await?,
        server
            .delete("/instances/unbacked?final_backup=true")
            .await?,
    ];
    for refused in refusals {
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.text
        );
        assert_eq!(
            refused.error_code(),
            "unsupported_by_backend",
            "{}",
            refused.text
        );
        assert!(
            refused.text.contains("TOYGRES_BACKUPS=false"),
            "{}",
            refused.text
        );
    }
    let listed = server.get("/instances/unbacked/backups").await?;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.body["items"], json!([]));
    // A plain delete still works.
    succeeded(&server, server.delete("/instances/unbacked").await?).await?;
    assert!(!workspace.data_dir().join("backups").exists());
    Ok(())
}

/// The succeeded backups of `name` (live, or deleted while they are kept).
async fn succeeded_backups(server: &Server, name: &str) -> Result<Vec<Value>, TestError> {
    let listed = server
        .get(&format!("/instances/{name}/backups"))
        .await?
        .body;
    Ok(listed["items"]
        .as_array()
        .ok_or_else(|| format!("no items: {listed}"))?
        .iter()
        .filter(|backup| backup["status"] == "succeeded")
        .cloned()
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_backs_up_on_time_skips_stopped_instances_and_expires_deleted_ones()
-> TestResult {
    let workspace = Workspace::new("backups_scheduler")?;
    let server = workspace
        .start_server(
            "server.log",
            &[
                ("TOYGRES_BACKUP_CHECK_INTERVAL_SECS", "1"),
                ("TOYGRES_BACKUP_INTERVAL_SECS", "4"),
            ],
        )
        .await?;
    for name in ["steady", "resting"] {
        let created = server
            .post("/instances", &json!({"name": name, "password": PASSWORD}))
            .await?;
        succeeded(&server, created).await?;
        first_backup(&server, name).await?;
    }
    succeeded(&server, server.post_empty("/instances/resting/stop").await?).await?;
    let resting_before = succeeded_backups(&server, "resting").await?.len();
    tokio::time::sleep(Duration::from_secs(14)).await;
    let steady = succeeded_backups(&server, "steady").await?;
    assert!(steady.len() >= 3, "a backup every 4 s: {steady:?}");
    assert_eq!(
        succeeded_backups(&server, "resting").await?.len(),
        resting_before,
        "a stopped instance is never backed up"
    );

    // A deleted instance's backups stay for the retention period, then go.
    let repositories = || -> Result<usize, TestError> {
        Ok(std::fs::read_dir(workspace.data_dir().join("backups"))?.count())
    };
    let before = repositories()?;
    succeeded(&server, server.delete("/instances/resting").await?).await?;
    assert!(!succeeded_backups(&server, "resting").await?.is_empty());
    let pool = sqlx::PgPool::connect(&workspace.control_plane_url()).await?;
    sqlx::query(
        "UPDATE toygres.instances SET deleted_at = now() - interval '8 days' \
         WHERE name = 'resting' AND state = 'deleted'",
    )
    .execute(&pool)
    .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let backups = server.get("/instances/resting/backups").await?.body;
        let items = backups["items"].as_array().ok_or("no items")?;
        if !items.is_empty() && items.iter().all(|backup| backup["expired_at"].is_string()) {
            break;
        }
        assert!(Instant::now() < deadline, "never expired: {backups}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        repositories()?,
        before - 1,
        "its repository folder is removed"
    );
    let refused = server
        .post(
            "/instances",
            &json!({"name": "too-late", "restore_from": {"instance": "resting"}}),
        )
        .await?;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    assert!(refused.text.contains("expired"), "{}", refused.text);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_overtakes_a_running_backup() -> TestResult {
    let workspace = Workspace::new("backups_delete_overtakes")?;
    // Each step waits a moment, so the delete comes while the backup runs.
    let server = workspace
        .start_server("server.log", &[("TOYGRES_STEP_DELAY_MS", "1500")])
        .await?;
    let created = server
        .post("/instances", &json!({"name": "busy", "password": PASSWORD}))
        .await?;
    succeeded(&server, created).await?;
    // The harness's scheduler waits an hour between passes: this backup is the only one.
    let backup = server.post("/instances/busy/backups", &json!({})).await?;
    let backup_operation = operation_id(&backup)?;
    let deleted = server.delete("/instances/busy").await?;
    let delete_operation = succeeded(&server, deleted).await?;
    assert_eq!(delete_operation["kind"], "delete");
    let overtaken = server.wait_operation(&backup_operation).await?;
    assert_eq!(overtaken["status"], "canceled", "{overtaken}");
    let listed = server.get("/instances/busy/backups").await?.body;
    let canceled = listed["items"]
        .as_array()
        .ok_or("no items")?
        .iter()
        .find(|item| item["operation_id"] == backup_operation.as_str())
        .ok_or_else(|| format!("no backup of {backup_operation}: {listed}"))?
        .clone();
    assert_eq!(canceled["status"], "failed", "{canceled}");
    assert_eq!(canceled["error"]["code"], "canceled", "{canceled}");
    Ok(())
}
