//! Fuzzing the API with schemathesis against the server's own `/openapi.json`: the real binary,
//! with tokens required, a temporary data dir and real instances. Any 5xx, or a panic in the
//! server's log, fails the test.
//!
//! Ignored by `cargo test` (it needs schemathesis); `.ci/run` installs schemathesis and runs it:
//! `TOYGRES_SCHEMATHESIS=/path/to/schemathesis cargo test -p toygres-server --test fuzz -- --ignored --nocapture`.
//! `TOYGRES_FUZZ_SEED=<seed>` replays the run a failure names.

mod support;

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

const ADMIN: &str = "fuzz-admin-5e7a9c1b3d5f7a9c";
/// Test cases per API operation and phase: about 5,000 requests, a minute and a half on 2 cores.
const MAX_EXAMPLES: &str = "500";
/// The whole run may not take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(900);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs schemathesis: .ci/run installs it and runs this test"]
async fn schemathesis_finds_no_server_error() -> TestResult {
    let schemathesis =
        std::env::var("TOYGRES_SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".to_string());
    let workspace = Workspace::new("fuzz_schemathesis")?;
    // Two ports: valid creates beyond two instances fail at once (deploy_failed, a 202 all the
    // same) instead of starting a postgres each.
    let ports = workspace.first_ports(2)?;
    let tokens = format!("admin:{ADMIN}");
    let options = StartOptions {
        token: Some(ADMIN.to_string()),
        ..StartOptions::default()
    };
    let mut server = workspace
        .start_server_with(
            "server.log",
            &[
                ("TOYGRES_API_TOKENS", &tokens),
                ("TOYGRES_PORT_RANGE", &ports),
                ("TOYGRES_READY_TIMEOUT_SECS", "30"),
            ],
            &options,
        )
        .await?;

    // The token goes through the environment, not the command line.
    let scratch = tempfile::tempdir()?;
    let config = scratch.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        "headers = { Authorization = \"Bearer ${TOYGRES_FUZZ_TOKEN}\" }\n",
    )?;
    let report = scratch.path().join("report.json");
    let mut command = Command::new(&schemathesis);
    command
        .arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .args(["run", &format!("{}/openapi.json", server.base)])
        .args(["--checks", "not_a_server_error"])
        .args(["--max-examples", MAX_EXAMPLES])
        // One worker: with two, hypothesis parses sources in two threads and CPython 3.11 can
        // fail with "AST constructor recursion depth mismatch" (python/cpython#106905).
        .args(["--workers", "1"])
        .args(["--request-timeout", "40"])
        .args(["--generation-database", "none"])
        .args(
            std::env::var("TOYGRES_FUZZ_SEED")
                .map(|seed| vec!["--seed".to_string(), seed])
                .unwrap_or_default(),
        )
        .args(["--report", "json", "--report-json-path"])
        .arg(&report)
        .env("TOYGRES_FUZZ_TOKEN", ADMIN)
        .current_dir(scratch.path())
        .stdin(Stdio::null());
    let mut child = command.spawn().map_err(|error| {
        format!(
            "cannot run '{schemathesis}' ({error}): install it (pip install 'schemathesis>=4,<5') or set TOYGRES_SCHEMATHESIS"
        )
    })?;
    let status = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + RUN_LIMIT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("schemathesis ran longer than {RUN_LIMIT:?}"));
                }
                Err(error) => return Err(error.to_string()),
            }
        }
    })
    .await??;

    let raw_report = std::fs::read_to_string(&report)?;
    let summary: Value = serde_json::from_str(&raw_report)?;
    // The seed is a 128-bit integer: read its digits, not a float.
    let seed = raw_report
        .split("\"seed\":")
        .nth(1)
        .and_then(|rest| {
            rest.trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()
        })
        .unwrap_or("unknown");
    let generated = summary["test_cases"]["generated"].as_u64().unwrap_or(0);
    let failures = summary["test_cases"]["with_failures"].as_u64().unwrap_or(0);
    let errored = summary["test_cases"]["errored"].as_u64().unwrap_or(0);
    println!(
        "schemathesis: {generated} test cases, {failures} with failures, {errored} errored (seed {seed}; replay with --seed)"
    );
    let log = server.log();
    let panics = log.lines().filter(|line| line.contains("panicked")).count();
    let internal: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("internal error"))
        .collect();
    for line in internal.iter().take(5) {
        println!("server: {line}");
    }
    assert!(server.terminate(), "the server must shut down cleanly");

    assert!(
        status.success(),
        "schemathesis failed (exit {status}); its output above names each failing request"
    );
    assert!(
        generated >= 500,
        "too few test cases ({generated}) for the run to mean something"
    );
    assert_eq!(failures + errored, 0);
    assert_eq!(panics, 0, "the server panicked during the run");
    assert_eq!(
        internal.len(),
        0,
        "the server answered 500 during the run (the first lines above)"
    );
    Ok(())
}
