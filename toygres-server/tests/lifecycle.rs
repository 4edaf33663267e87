//! Day-2 operations over HTTP against the real binary, checked with `psql` as a client: stop
//! and start keep data, port and connection string (also across a control-plane restart);
//! restart; parameters of both kinds (reload and restart) take effect, survive restarts and
//! return to their defaults, bad ones are 422s naming them, and a server that cannot start
//! with new settings is rolled back; storage only grows; password resets; deletion protection;
//! one operation at a time; `Idempotency-Key` on the new routes.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

const PASSWORD: &str = "lifecycle-password-1";

fn operation_id(reply: &Reply) -> Result<String, TestError> {
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert!(
        reply.headers.contains_key("location") && reply.headers.contains_key("retry-after"),
        "{:?}",
        reply.headers
    );
    Ok(reply.body["operation"]["id"]
        .as_str()
        .ok_or_else(|| format!("no operation in {}", reply.text))?
        .to_string())
}

/// Sends a change and waits for its operation; returns the finished operation.
async fn settle(server: &Server, reply: Reply) -> Result<Value, TestError> {
    let id = operation_id(&reply)?;
    server.wait_operation(&id).await
}

async fn succeeded(server: &Server, reply: Reply) -> Result<Value, TestError> {
    let op = settle(server, reply).await?;
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(op["progress"]["done"], op["progress"]["total"], "{op}");
    Ok(op)
}

async fn instance(server: &Server, name: &str) -> Result<Value, TestError> {
    Ok(server.get(&format!("/instances/{name}")).await?.body)
}

fn port_of(instance: &Value) -> Result<u16, TestError> {
    Ok(u16::try_from(instance["port"].as_u64().ok_or("no port")?)?)
}

async fn create(server: &Server, body: Value) -> Result<Value, TestError> {
    let name = body["name"].as_str().unwrap_or_default().to_string();
    let reply = server.post("/instances", &body).await?;
    succeeded(server, reply).await?;
    instance(server, &name).await
}

fn show(port: u16, setting: &str) -> Result<String, TestError> {
    Ok(psql(
        port,
        "postgres",
        PASSWORD,
        &format!("SHOW {setting}"),
    )?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_start_keep_data_port_and_endpoint_across_a_control_plane_restart() -> TestResult {
    let workspace = Workspace::new("life_stop_start")?;
    let env = [("TOYGRES_HEALTH_INTERVAL_SECS", "1")];
    let mut server = workspace.start_server("server-1.log", &env).await?;
    let created = create(&server, json!({"name": "life", "password": PASSWORD})).await?;
    let port = port_of(&created)?;
    psql(
        port,
        "postgres",
        PASSWORD,
        "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)",
    )?;

    let stop = succeeded(&server, server.post_empty("/instances/life/stop").await?).await?;
    assert_eq!(stop["kind"], "stop");
    let stopped = instance(&server, "life").await?;
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    assert_eq!(stopped["port"], created["port"]);
    assert_eq!(stopped["connection_uri"], created["connection_uri"]);
    assert!(!port_is_open(port), "a stopped instance's server is down");
    let again = server.post_empty("/instances/life/stop").await?;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_eq!(again.error_code(), "invalid_state");

    // The control plane restarts: a stopped instance stays stopped (and unchecked).
    assert!(server.terminate());
    let server = workspace.start_server("server-2.log", &env).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !port_is_open(port),
        "a restart of the control plane started it"
    );
    let still = instance(&server, "life").await?;
    assert_eq!(still["state"], "stopped");
    assert_eq!(still["health"]["status"], "unknown", "{still}");

    let start = succeeded(&server, server.post_empty("/instances/life/start").await?).await?;
    assert_eq!(start["kind"], "start");
    let started = instance(&server, "life").await?;
    assert_eq!(started["state"], "running");
    assert_eq!(started["port"], created["port"], "same port after a start");
    assert_eq!(
        psql(port, "postgres", PASSWORD, "SELECT x FROM kept")?,
        "42"
    );
    let again = server.post_empty("/instances/life/start").await?;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_eq!(again.error_code(), "invalid_state");
    // Its monitor is back.
    server
        .wait_instance("life", Duration::from_secs(30), |i| {
            i["health"]["status"] == "healthy"
        })
        .await?;

    // A restart: a new postmaster, the same data.
    let before = psql(
        port,
        "postgres",
        PASSWORD,
        "SELECT pg_postmaster_start_time()",
    )?;
    let restart = succeeded(&server, server.post_empty("/instances/life/restart").await?).await?;
    assert_eq!(restart["kind"], "restart");
    assert!(restart["result"]["server_version"].is_string(), "{restart}");
    let after = psql(
        port,
        "postgres",
        PASSWORD,
        "SELECT pg_postmaster_start_time()",
    )?;
    assert_ne!(before, after, "the server was restarted");
    assert_eq!(
        psql(port, "postgres", PASSWORD, "SELECT x FROM kept")?,
        "42"
    );
    assert_eq!(instance(&server, "life").await?["state"], "running");

    // Stopped instances can be deleted.
    succeeded(&server, server.post_empty("/instances/life/stop").await?).await?;
    succeeded(&server, server.delete("/instances/life").await?).await?;
    assert!(!workspace.instances_dir().join("life").exists());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_apply_by_reload_or_restart_persist_and_reset() -> TestResult {
    let workspace = Workspace::new("life_parameters")?;
    let server = workspace.start_server("server.log", &[]).await?;
    // One parameter of each kind at create time.
    let created = create(
        &server,
        json!({"name": "tuned", "password": PASSWORD,
               "parameters": {"work_mem": "8MB", "max_connections": 60}}),
    )
    .await?;
    let port = port_of(&created)?;
    assert_eq!(
        created["parameters"],
        json!({"work_mem": "8MB", "max_connections": "60"})
    );
    assert_eq!(show(port, "work_mem")?, "8MB");
    assert_eq!(show(port, "max_connections")?, "60");

    // A reload kind and a restart kind.
    let before = psql(
        port,
        "postgres",
        PASSWORD,
        "SELECT pg_postmaster_start_time()",
    )?;
    let update = succeeded(
        &server,
        server
            .patch(
                "/instances/tuned",
                &json!({"parameters": {"work_mem": "16MB", "max_connections": 80,
                                       "log_min_duration_statement": "250ms"}}),
            )
            .await?,
    )
    .await?;
    assert_eq!(update["kind"], "update");
    assert_eq!(show(port, "work_mem")?, "16MB");
    assert_eq!(show(port, "max_connections")?, "80");
    assert_eq!(show(port, "log_min_duration_statement")?, "250ms");
    let after = psql(
        port,
        "postgres",
        PASSWORD,
        "SELECT pg_postmaster_start_time()",
    )?;
    assert_ne!(before, after, "max_connections needs a restart");
    let tuned = instance(&server, "tuned").await?;
    assert_eq!(tuned["state"], "running");
    assert_eq!(
        tuned["parameters"],
        json!({"work_mem": "16MB", "max_connections": "80", "log_min_duration_statement": "250ms"})
    );

    // A reload-only change does not restart.
    let before = psql(
        port,
        "postgres",
        PASSWORD,
        "SELECT pg_postmaster_start_time()",
    )?;
    succeeded(
        &server,
        server
            .patch(
                "/instances/tuned",
                &json!({"parameters": {"random_page_cost": 1.5}}),
            )
            .await?,
    )
    .await?;
    assert_eq!(show(port, "random_page_cost")?, "1.5");
    let after = psql(
        port,
        "postgres",
        PASSWORD,
        "SELECT pg_postmaster_start_time()",
    )?;
    assert_eq!(before, after, "a reload kind reloads");

    // Both survive a restart and a stop/start.
    succeeded(
        &server,
        server.post_empty("/instances/tuned/restart").await?,
    )
    .await?;
    assert_eq!(show(port, "work_mem")?, "16MB");
    assert_eq!(show(port, "max_connections")?, "80");
    succeeded(&server, server.post_empty("/instances/tuned/stop").await?).await?;
    succeeded(&server, server.post_empty("/instances/tuned/start").await?).await?;
    assert_eq!(show(port, "work_mem")?, "16MB");
    assert_eq!(show(port, "max_connections")?, "80");

    // null returns a parameter to the server's default.
    succeeded(
        &server,
        server
            .patch(
                "/instances/tuned",
                &json!({"parameters": {"work_mem": null, "max_connections": null}}),
            )
            .await?,
    )
    .await?;
    assert_eq!(show(port, "work_mem")?, "4MB");
    assert_eq!(show(port, "max_connections")?, "100");
    let reset = instance(&server, "tuned").await?;
    assert_eq!(
        reset["parameters"],
        json!({"log_min_duration_statement": "250ms", "random_page_cost": "1.5"})
    );

    // Refusals name the parameter.
    for (parameters, field, what) in [
        (
            json!({"max_connections": 99_999_999}),
            "parameters.max_connections",
            "out of range",
        ),
        (
            json!({"no_such_setting": "1"}),
            "parameters.no_such_setting",
            "not a parameter",
        ),
        (json!({"port": 5433}), "parameters.port", "managed"),
        (
            json!({"work_mem": "5 parsecs"}),
            "parameters.work_mem",
            "unit",
        ),
        (
            json!({"log_statement": "everything"}),
            "parameters.log_statement",
            "one of",
        ),
    ] {
        let refused = server
            .patch("/instances/tuned", &json!({ "parameters": parameters }))
            .await?;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.text
        );
        assert_eq!(refused.error_field(), field, "{}", refused.text);
        assert!(refused.text.contains(what), "{}", refused.text);
    }
    let empty = server.patch("/instances/tuned", &json!({})).await?;
    assert_eq!(
        empty.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        empty.text
    );

    // A setting the server cannot start with is rolled back, and the update says why.
    let failed = settle(
        &server,
        server
            .patch(
                "/instances/tuned",
                &json!({"parameters": {"superuser_reserved_connections": 100}}),
            )
            .await?,
    )
    .await?;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "restart_failed", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("restored")),
        "{failed}"
    );
    let rolled_back = instance(&server, "tuned").await?;
    assert_eq!(rolled_back["state"], "running", "{rolled_back}");
    assert!(
        rolled_back["parameters"]
            .get("superuser_reserved_connections")
            .is_none()
    );
    assert_eq!(show(port, "superuser_reserved_connections")?, "3");

    // Storage only grows.
    let shrink = server
        .patch("/instances/tuned", &json!({"storage_gb": 1}))
        .await?;
    assert_eq!(
        shrink.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        shrink.text
    );
    assert_eq!(shrink.error_field(), "storage_gb");
    succeeded(
        &server,
        server
            .patch("/instances/tuned", &json!({"storage_gb": 20}))
            .await?,
    )
    .await?;
    assert_eq!(instance(&server, "tuned").await?["storage_gb"], 20);

    // Parameters change only while the server runs; storage also while it is stopped.
    succeeded(&server, server.post_empty("/instances/tuned/stop").await?).await?;
    let refused = server
        .patch(
            "/instances/tuned",
            &json!({"parameters": {"work_mem": "1MB"}}),
        )
        .await?;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.error_code(), "invalid_state");
    succeeded(
        &server,
        server
            .patch("/instances/tuned", &json!({"storage_gb": 30}))
            .await?,
    )
    .await?;
    let grown = instance(&server, "tuned").await?;
    assert_eq!(grown["state"], "stopped");
    assert_eq!(grown["storage_gb"], 30);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_reset_and_protected_instances_survive_delete() -> TestResult {
    let workspace = Workspace::new("life_password_protection")?;
    let server = workspace
        .start_server("server.log", &[("TOYGRES_HEALTH_INTERVAL_SECS", "1")])
        .await?;
    let created = create(
        &server,
        json!({"name": "guarded", "password": PASSWORD, "deletion_protection": true}),
    )
    .await?;
    assert_eq!(created["deletion_protection"], true);
    let port = port_of(&created)?;

    let refused = server.delete("/instances/guarded").await?;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert_eq!(refused.error_code(), "deletion_protected");
    assert_eq!(instance(&server, "guarded").await?["state"], "running");

    // A chosen password: the old one stops working, the new one works.
    let new_password = "brand-new-password-2";
    let reply = server
        .post(
            "/instances/guarded/reset-password",
            &json!({"password": new_password}),
        )
        .await?;
    assert_eq!(reply.body["password"], new_password);
    let op = succeeded(&server, reply).await?;
    assert_eq!(op["kind"], "reset_password");
    assert!(psql(port, "postgres", PASSWORD, "SELECT 1").is_err());
    assert_eq!(psql(port, "postgres", new_password, "SELECT 1")?, "1");
    // A generated one, returned once and nowhere else.
    let reply = server
        .post_empty("/instances/guarded/reset-password")
        .await?;
    let generated = reply.body["password"]
        .as_str()
        .ok_or("no password")?
        .to_string();
    assert_eq!(generated.len(), 32);
    let operation = succeeded(&server, reply).await?;
    assert!(!operation.to_string().contains(&generated));
    assert!(
        !instance(&server, "guarded")
            .await?
            .to_string()
            .contains(&generated)
    );
    assert!(psql(port, "postgres", new_password, "SELECT 1").is_err());
    assert_eq!(psql(port, "postgres", &generated, "SELECT 1")?, "1");
    // The control plane's checks never used the owner's password.
    server
        .wait_instance("guarded", Duration::from_secs(30), |i| {
            i["health"]["status"] == "healthy"
                && i["health"]["checked_at"].as_str() > operation["finished_at"].as_str()
        })
        .await?;

    succeeded(
        &server,
        server
            .patch("/instances/guarded", &json!({"deletion_protection": false}))
            .await?,
    )
    .await?;
    assert_eq!(
        instance(&server, "guarded").await?["deletion_protection"],
        false
    );
    succeeded(&server, server.delete("/instances/guarded").await?).await?;
    assert_eq!(instance(&server, "guarded").await?["state"], "deleted");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_operation_at_a_time_and_idempotent_replays() -> TestResult {
    let workspace = Workspace::new("life_one_at_a_time")?;
    let server = workspace
        .start_server("server.log", &[("TOYGRES_STEP_DELAY_MS", "400")])
        .await?;
    create(&server, json!({"name": "busy", "password": PASSWORD})).await?;

    let key = [("Idempotency-Key", "stop-busy-1")];
    let first = server
        .send(reqwest::Method::POST, "/instances/busy/stop", None, &key)
        .await?;
    let stop_id = operation_id(&first)?;
    // While the stop holds the instance, every other change is refused, naming it.
    for (method, path, body) in [
        (reqwest::Method::POST, "/instances/busy/restart", None),
        (reqwest::Method::POST, "/instances/busy/start", None),
        (
            reqwest::Method::POST,
            "/instances/busy/reset-password",
            None,
        ),
        (
            reqwest::Method::PATCH,
            "/instances/busy",
            Some(r#"{"deletion_protection": true}"#),
        ),
        (reqwest::Method::DELETE, "/instances/busy", None),
    ] {
        let refused = server.send(method.clone(), path, body, &[]).await?;
        assert_eq!(
            refused.status,
            StatusCode::CONFLICT,
            "{method} {path}: {}",
            refused.text
        );
        assert_eq!(
            refused.error_code(),
            "operation_in_progress",
            "{}",
            refused.text
        );
        assert_eq!(refused.body["error"]["operation_id"], stop_id.as_str());
    }
    // The same key and request replays the first answer, during and after.
    let replay = server
        .send(reqwest::Method::POST, "/instances/busy/stop", None, &key)
        .await?;
    assert_eq!(operation_id(&replay)?, stop_id);
    server.wait_operation(&stop_id).await?;
    let replay = server
        .send(reqwest::Method::POST, "/instances/busy/stop", None, &key)
        .await?;
    assert_eq!(operation_id(&replay)?, stop_id);
    // The same key on another route is another request.
    let reused = server
        .send(reqwest::Method::POST, "/instances/busy/start", None, &key)
        .await?;
    assert_eq!(
        reused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reused.text
    );
    assert_eq!(reused.error_code(), "idempotency_key_reused");

    // A replayed password reset answers with the same password.
    succeeded(&server, server.post_empty("/instances/busy/start").await?).await?;
    let key = [("Idempotency-Key", "reset-busy-1")];
    let first = server
        .send(
            reqwest::Method::POST,
            "/instances/busy/reset-password",
            None,
            &key,
        )
        .await?;
    let second = server
        .send(
            reqwest::Method::POST,
            "/instances/busy/reset-password",
            None,
            &key,
        )
        .await?;
    assert_eq!(operation_id(&first)?, operation_id(&second)?);
    assert_eq!(first.body["password"], second.body["password"]);
    server.wait_operation(&operation_id(&first)?).await?;
    Ok(())
}
