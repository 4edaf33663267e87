//! The `toygres` client subcommands against a real running server (started by the support
//! harness), as a user runs them: tables, `-o json`, `--wait`, and the documented exit codes.

mod support;

use serde_json::Value;
use support::process::{text, toygres};
use support::*;
use toygres_server::cli::exit;

fn port_of(instance: &Value) -> Result<u16, TestError> {
    Ok(u16::try_from(instance["port"].as_u64().ok_or("no port")?)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_get_delete_with_the_cli() -> TestResult {
    let workspace = Workspace::new("cli_create_list_get_delete")?;
    let server = workspace.start_server("server.log", &[]).await?;
    let url = server.base.as_str();

    // create --wait: the password once, progress as plain lines, the instance as it runs.
    let created = toygres(
        url,
        &["create", "orders-db", "--storage-gb", "5", "--wait"],
        None,
    )
    .await?
    .expect_exit(exit::SUCCESS)?;
    let password = created
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("Password: "))
        .ok_or("no password line")?
        .to_string();
    assert!(password.len() >= 24, "{password}");
    let everything = format!("{}{}", created.stdout, created.stderr);
    assert_eq!(everything.matches(&password).count(), 1, "{everything}");
    assert!(
        created.stderr.contains("create orders-db: succeeded (6/6)"),
        "{}",
        created.stderr
    );
    assert!(
        !created.stderr.contains('\u{1b}'),
        "no terminal escapes off a terminal"
    );
    assert!(created.stdout.contains("state:             running"));
    let instance = server.get("/instances/orders-db").await?;
    assert_eq!(
        query_with_password(port_of(&instance.body)?, &password).await?,
        42
    );

    // get and list: tables, and -o json exactly as the server sent it.
    let shown = toygres(url, &["get", "orders-db"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    let uri = text(&instance.body["connection_uri"], "connection_uri")?;
    assert!(shown.stdout.contains(uri), "{}", shown.stdout);
    assert!(!shown.stdout.contains(&password));
    let shown = toygres(url, &["get", "orders-db", "-o", "json"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    assert_eq!(shown.stdout.trim_end(), instance.text);
    let listed = toygres(url, &["list"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    let rows: Vec<&str> = listed.stdout.lines().collect();
    assert!(rows[0].starts_with("NAME"), "{}", listed.stdout);
    assert!(rows[0].contains("NAMESPACE"), "{}", listed.stdout);
    assert!(
        rows[1].starts_with("orders-db")
            && rows[1].contains("default")
            && rows[1].contains("running"),
        "{}",
        listed.stdout
    );
    // The local backend has one namespace, `default`: listed by it, and no other accepted.
    assert_eq!(instance.body["namespace"], "default");
    let in_default = toygres(url, &["list", "--namespace", "default"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    assert!(
        in_default.stdout.contains("orders-db"),
        "{}",
        in_default.stdout
    );
    let elsewhere = toygres(url, &["list", "--namespace", "team-b"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    assert_eq!(elsewhere.stdout, "No instances.\n");
    let refused = toygres(url, &["create", "elsewhere", "--namespace", "team-b"], None)
        .await?
        .expect_exit(exit::USAGE)?;
    assert!(
        refused.stderr.contains("unsupported_by_backend")
            && refused.stderr.contains("has no namespaces"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        server.get("/instances/elsewhere").await?.status,
        reqwest::StatusCode::NOT_FOUND
    );
    let listed = toygres(url, &["list", "-o", "json"], None)
        .await?
        .expect_exit(exit::SUCCESS)?
        .json()?;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["items"][0], instance.body);
    assert_eq!(listed["next_cursor"], Value::Null);
    let deleted_ones = toygres(url, &["list", "--state", "deleted", "-o", "json"], None)
        .await?
        .expect_exit(exit::SUCCESS)?
        .json()?;
    assert_eq!(deleted_ones["items"], serde_json::json!([]));

    // Operations: list, get (as the server sent it), wait on one already done.
    let operations = toygres(
        url,
        &["op", "list", "--instance", "orders-db", "-o", "json"],
        None,
    )
    .await?
    .expect_exit(exit::SUCCESS)?
    .json()?;
    let create_id = text(&operations["items"][0]["id"], "id")?.to_string();
    assert_eq!(operations["items"].as_array().map(Vec::len), Some(1));
    let operation = toygres(url, &["op", "get", &create_id, "-o", "json"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    let from_server = server.get(&format!("/operations/{create_id}")).await?;
    assert_eq!(operation.stdout.trim_end(), from_server.text);
    let waited = toygres(url, &["op", "wait", &create_id], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    assert!(waited.stdout.contains("succeeded"), "{}", waited.stdout);
    let table = toygres(url, &["op", "list"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    assert!(table.stdout.contains(&create_id), "{}", table.stdout);

    // Errors and their exit codes.
    let duplicate = toygres(url, &["create", "orders-db"], None)
        .await?
        .expect_exit(exit::CONFLICT)?;
    assert!(
        duplicate.stderr.contains("name_in_use"),
        "{}",
        duplicate.stderr
    );
    assert!(
        duplicate.stdout.is_empty(),
        "no password for a refused create"
    );
    let invalid = toygres(url, &["create", "old-db", "--postgres-version", "9"], None)
        .await?
        .expect_exit(exit::USAGE)?;
    assert!(
        invalid.stderr.contains("postgres_version"),
        "{}",
        invalid.stderr
    );
    for args in [
        &["get", "nope"][..],
        &["delete", "nope"],
        &["delete", "nope", "--wait"],
        &["op", "get", "op_nope"],
        &["op", "wait", "op_nope"],
    ] {
        let missing = toygres(url, args, None)
            .await?
            .expect_exit(exit::NOT_FOUND)?;
        assert!(
            missing.stderr.contains("not_found"),
            "{args:?}: {}",
            missing.stderr
        );
    }

    // A given password (stdin), JSON output and --wait: one document, with the final states.
    let given = "cli-given-password-42";
    let second = toygres(
        url,
        &[
            "create",
            "second",
            "--password-stdin",
            "--wait",
            "-o",
            "json",
        ],
        Some(&format!("{given}\n")),
    )
    .await?
    .expect_exit(exit::SUCCESS)?;
    assert!(!second.stderr.contains(given), "{}", second.stderr);
    let second = second.json()?;
    assert_eq!(second["password"], given);
    assert_eq!(second["operation"]["status"], "succeeded");
    assert_eq!(second["instance"]["state"], "running");
    assert_eq!(
        query_with_password(port_of(&second["instance"])?, given).await?,
        42
    );

    // delete --wait (table), then delete without waiting (JSON) and op wait.
    let deleted = toygres(url, &["delete", "orders-db", "--wait"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    assert!(
        deleted.stdout.contains("Instance orders-db deleted."),
        "{}",
        deleted.stdout
    );
    let gone = toygres(url, &["get", "orders-db", "-o", "json"], None)
        .await?
        .expect_exit(exit::SUCCESS)?
        .json()?;
    assert_eq!(gone["state"], "deleted");
    let accepted = toygres(url, &["delete", "second", "-o", "json"], None)
        .await?
        .expect_exit(exit::SUCCESS)?
        .json()?;
    let delete_id = text(&accepted["operation"]["id"], "operation id")?;
    let waited = toygres(url, &["op", "wait", delete_id, "-o", "json"], None)
        .await?
        .expect_exit(exit::SUCCESS)?
        .json()?;
    assert_eq!(waited["status"], "succeeded");
    assert_eq!(waited["kind"], "delete");
    let empty = toygres(url, &["list"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    assert_eq!(empty.stdout, "No instances.\n");
    assert!(
        !server.log().contains(&password) && !server.log().contains(given),
        "the server must not log passwords"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_and_an_unreachable_server_have_their_exit_codes() -> TestResult {
    let closed = format!("http://127.0.0.1:{}", free_port()?);

    let help = toygres(&closed, &["--help"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    assert!(
        help.stdout.contains(exit::EXIT_CODES_HELP),
        "--help documents the exit codes:\n{}",
        help.stdout
    );
    for args in [
        &[][..],
        &["create"],
        &["create", "db", "--storage-gb", "ten"],
        &["create", "db", "--expose", "everywhere"],
        &["list", "--state", "sleeping"],
        &["list", "-o", "yaml"],
        &["op", "frobnicate"],
        &["get", "db", "--url", "ftp://toygres.example"],
        &["get", "db", "--ca-cert", "/nonexistent/ca.pem"],
        &["get", "db", "--url", "not a url"],
    ] {
        toygres(&closed, args, None)
            .await?
            .expect_exit(exit::USAGE)?;
    }
    // An empty stdin is refused before the server is asked.
    let empty = toygres(&closed, &["create", "db", "--password-stdin"], Some(""))
        .await?
        .expect_exit(exit::USAGE)?;
    assert!(empty.stderr.contains("stdin is empty"), "{}", empty.stderr);

    for args in [
        &["get", "db"][..],
        &["list"],
        &["create", "db", "--wait"],
        &["delete", "db"],
        &["op", "wait", "op_x"],
        &["op", "list"],
    ] {
        let run = toygres(&closed, args, None)
            .await?
            .expect_exit(exit::UNREACHABLE)?;
        assert!(
            run.stderr.contains("cannot reach the server at"),
            "{args:?}: {}",
            run.stderr
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_create_exits_1_and_the_instance_can_be_deleted() -> TestResult {
    // The server may hand out one port only, and this test holds it: every deploy fails.
    let held = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    let port = held.local_addr()?.port();
    let range = format!("{port}-{port}");
    let workspace = Workspace::new("cli_failed_create")?;
    let server = workspace
        .start_server("server.log", &[("TOYGRES_PORT_RANGE", &range)])
        .await?;
    let url = server.base.as_str();

    let failed = toygres(url, &["create", "doomed", "--wait", "-o", "json"], None)
        .await?
        .expect_exit(exit::OPERATION_FAILED)?;
    assert!(
        failed
            .stderr
            .contains("failed at step deploy: deploy_failed"),
        "{}",
        failed.stderr
    );
    let document = failed.json()?;
    assert_eq!(document["operation"]["status"], "failed");
    assert_eq!(document["operation"]["error"]["code"], "deploy_failed");
    assert_eq!(document["instance"]["state"], "failed");
    assert!(document["password"].is_string());
    let operation_id = text(&document["operation"]["id"], "operation id")?;

    let waited = toygres(url, &["op", "wait", operation_id], None)
        .await?
        .expect_exit(exit::OPERATION_FAILED)?;
    assert!(waited.stdout.contains("deploy_failed"), "{}", waited.stdout);
    let shown = toygres(url, &["get", "doomed"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    assert!(
        shown.stdout.contains("state:             failed"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("error:             deploy_failed"),
        "{}",
        shown.stdout
    );

    // The curl script says the same.
    let script = support::process::script("wait-operation.sh");
    let output = tokio::process::Command::new(&script)
        .arg(operation_id)
        .env("TOYGRES_URL", url)
        .env_remove("TOYGRES_TOKEN")
        .output()
        .await?;
    assert_eq!(
        output.status.code(),
        Some(i32::from(exit::OPERATION_FAILED))
    );
    let body: Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(body["status"], "failed");

    // A change of an instance that never ran is refused at once, not accepted and left with a
    // workflow that can never start.
    let patched = server
        .patch(
            "/instances/doomed",
            &serde_json::json!({"deletion_protection": true}),
        )
        .await?;
    assert_eq!(
        patched.status,
        reqwest::StatusCode::CONFLICT,
        "{}",
        patched.text
    );
    assert_eq!(patched.error_code(), "invalid_state", "{}", patched.text);
    assert!(patched.text.contains("never ran"), "{}", patched.text);

    // Recovery, as docs/operations.md says: delete the failed instance.
    toygres(url, &["delete", "doomed", "--wait"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    let gone = toygres(url, &["get", "doomed", "-o", "json"], None)
        .await?
        .expect_exit(exit::SUCCESS)?
        .json()?;
    assert_eq!(gone["state"], "deleted");
    drop(held);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_start_restart_set_resize_and_reset_password_with_the_cli() -> TestResult {
    let workspace = Workspace::new("cli_day_two")?;
    let server = workspace.start_server("server.log", &[]).await?;
    let url = server.base.as_str();
    let given = "cli-day-two-password-1";
    toygres(
        url,
        &[
            "create",
            "tuned",
            "--parameter",
            "work_mem=8MB",
            "--deletion-protection",
            "--password-stdin",
            "--wait",
        ],
        Some(&format!("{given}\n")),
    )
    .await?
    .expect_exit(exit::SUCCESS)?;
    let port = port_of(&server.get("/instances/tuned").await?.body)?;

    let stopped = toygres(url, &["stop", "tuned", "--wait"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    assert!(
        stopped.stdout.contains("Stopping instance tuned"),
        "{}",
        stopped.stdout
    );
    assert!(
        stopped.stdout.contains("state:             stopped"),
        "{}",
        stopped.stdout
    );
    assert!(
        stopped.stderr.contains("stop tuned: succeeded (4/4)"),
        "{}",
        stopped.stderr
    );
    // Stopping a stopped instance is a conflict (exit 5).
    toygres(url, &["stop", "tuned"], None)
        .await?
        .expect_exit(exit::CONFLICT)?;
    toygres(url, &["start", "tuned", "--wait"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    let restarted = toygres(url, &["restart", "tuned", "--wait", "-o", "json"], None)
        .await?
        .expect_exit(exit::SUCCESS)?
        .json()?;
    assert_eq!(restarted["operation"]["kind"], "restart");
    assert_eq!(restarted["instance"]["state"], "running");

    let set = toygres(
        url,
        &[
            "set",
            "tuned",
            "max_connections=70",
            "--reset",
            "work_mem",
            "--deletion-protection",
            "false",
            "--wait",
        ],
        None,
    )
    .await?
    .expect_exit(exit::SUCCESS)?;
    assert!(set.stdout.contains("max_connections=70"), "{}", set.stdout);
    assert!(
        set.stdout
            .lines()
            .any(|line| line.starts_with("protected:") && line.ends_with(" no")),
        "{}",
        set.stdout
    );
    let refused = toygres(url, &["set", "tuned", "no_such_setting=1"], None)
        .await?
        .expect_exit(exit::USAGE)?;
    assert!(
        refused.stderr.contains("no_such_setting"),
        "{}",
        refused.stderr
    );
    toygres(url, &["resize", "tuned", "20", "--wait"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    toygres(url, &["resize", "tuned", "5"], None)
        .await?
        .expect_exit(exit::USAGE)?;
    assert_eq!(server.get("/instances/tuned").await?.body["storage_gb"], 20);

    let reset = toygres(url, &["reset-password", "tuned", "--wait"], None)
        .await?
        .expect_exit(exit::SUCCESS)?;
    let password = reset
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("New password: "))
        .ok_or("no password line")?
        .to_string();
    let everything = format!("{}{}", reset.stdout, reset.stderr);
    assert_eq!(everything.matches(&password).count(), 1, "{everything}");
    assert!(query_with_password(port, given).await.is_err());
    assert_eq!(query_with_password(port, &password).await?, 42);
    Ok(())
}
