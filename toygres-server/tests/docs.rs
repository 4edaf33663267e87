//! The docs say what the code does: `docs/api.md` lists exactly the endpoints of the running
//! server's `/openapi.json`, `docs/configuration.md` and `.env.example` name every setting (the
//! former with its default), `docs/operations.md` has the exit codes of `toygres --help`, and the
//! README's curl walk-through runs as written against a real server.

mod support;

use clap::Args as _;
use std::collections::BTreeSet;
use std::path::PathBuf;
use support::*;
use toygres_server::cli::ClientOptions;
use toygres_server::cli::exit::EXIT_CODES_HELP;
use toygres_server::serve::config::ServeConfig;

fn repository_file(path: &str) -> Result<String, TestError> {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&full).map_err(|error| format!("{}: {error}", full.display()).into())
}

/// `METHOD /path` of every `` ### `METHOD /path` `` heading of api.md.
fn documented_endpoints(api_md: &str) -> BTreeSet<String> {
    api_md
        .lines()
        .filter_map(|line| line.strip_prefix("### `"))
        .filter_map(|rest| rest.strip_suffix('`'))
        .filter(|endpoint| endpoint.contains(" /"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_md_lists_exactly_the_endpoints_of_openapi() -> TestResult {
    let workspace = Workspace::new("docs_api_md_matches_openapi")?;
    let server = workspace.start_server("server.log", &[]).await?;
    let openapi = server.get("/openapi.json").await?;
    assert!(openapi.status.is_success(), "{}", openapi.text);
    let paths = openapi.body["paths"]
        .as_object()
        .ok_or("openapi.json has no paths")?;
    let mut served = BTreeSet::new();
    for (path, operations) in paths {
        let operations = operations.as_object().ok_or("a path is not an object")?;
        for method in operations.keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                served.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    assert!(
        served.len() >= 9,
        "too few endpoints in openapi.json: {served:?}"
    );

    let documented = documented_endpoints(&repository_file("docs/api.md")?);
    let undocumented: Vec<&String> = served.difference(&documented).collect();
    let unserved: Vec<&String> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "endpoints in /openapi.json but not in docs/api.md: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "endpoints in docs/api.md but not in /openapi.json: {unserved:?}"
    );
    Ok(())
}

/// Each `(variable, flag, default)` of a clap argument group that reads the environment.
fn settings(command: clap::Command) -> Vec<(String, String, Option<String>)> {
    command
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_string_lossy().into_owned();
            let flag = format!("--{}", arg.get_long().unwrap_or_default());
            let default = arg
                .get_default_values()
                .first()
                .map(|value| value.to_string_lossy().into_owned());
            Some((env, flag, default))
        })
        .collect()
}

#[test]
fn configuration_md_and_env_example_name_every_setting() -> TestResult {
    let configuration = repository_file("docs/configuration.md")?;
    let env_example = repository_file(".env.example")?;
    let server = settings(ServeConfig::augment_args(clap::Command::new("serve")));
    let client = settings(ClientOptions::augment_args(clap::Command::new("client")));
    assert!(
        server.len() >= 15 && client.len() == 3,
        "{server:?} {client:?}"
    );

    for (env, flag, default) in server.iter().chain(&client) {
        let row = configuration
            .lines()
            .find(|line| line.starts_with(&format!("| `{env}` |")))
            .ok_or_else(|| format!("docs/configuration.md has no row for {env}"))?;
        assert!(
            row.contains(&format!("`{flag}`")),
            "{env}: no {flag} in: {row}"
        );
        match default {
            Some(default) => assert!(
                row.contains(&format!("| `{default}` |")),
                "{env}: the default `{default}` is not in: {row}"
            ),
            None => assert!(
                row.contains("| unset"),
                "{env}: say what unset means: {row}"
            ),
        }
    }
    for (env, _, _) in &server {
        assert!(
            env_example.contains(&format!("{env}=")),
            ".env.example does not name {env}"
        );
    }
    Ok(())
}

#[test]
fn operations_md_has_the_exit_codes_of_the_help() -> TestResult {
    let operations = repository_file("docs/operations.md")?;
    let codes: Vec<&str> = EXIT_CODES_HELP
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| word.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(codes, ["0", "1", "2", "3", "4", "5", "6", "7", "130"]);
    for code in codes {
        assert!(
            operations.contains(&format!("\n| {code} |")),
            "docs/operations.md lacks exit code {code}"
        );
    }
    Ok(())
}

/// The commands of the README's curl walk-through (its first `sh` block), as written.
fn readme_walk_through(readme: &str) -> Result<String, TestError> {
    let section = readme
        .split("## A walk-through with curl")
        .nth(1)
        .ok_or("README.md has no curl walk-through")?;
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .ok_or("the walk-through has no sh block")?;
    Ok(block.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_walk_through_runs_as_written() -> TestResult {
    let workspace = Workspace::new("docs_readme_walk_through")?;
    let server = workspace.start_server("server.log", &[]).await?;
    let walk_through = readme_walk_through(&repository_file("README.md")?)?;
    assert!(
        walk_through.contains("localhost:8080") && walk_through.contains("-X POST"),
        "the walk-through talks to the default address and creates: {walk_through}"
    );
    // Every line but psql's (its port is an example), against this server's port.
    let address = format!("localhost:{}", server.port()?);
    let script: Vec<String> = walk_through
        .lines()
        .filter(|line| !line.contains("psql "))
        .map(|line| line.replace("localhost:8080", &address))
        .collect();
    let scratch = tempfile::tempdir()?;
    let mut command = tokio::process::Command::new("bash");
    command
        .args(["-euo", "pipefail", "-c", &script.join("\n")])
        .current_dir(scratch.path());
    let run = process::run(command, None).await?.expect_exit(0)?;
    let created: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        scratch.path().join("create.json"),
    )?)?;
    assert!(
        created["password"].is_string() && created["operation"]["id"].is_string(),
        "the create of the walk-through was accepted: {created}\n{}",
        run.stderr
    );
    // It deletes what it created: let that finish.
    let operations = server.get("/operations?instance=orders-db").await?;
    let items = operations.body["items"].as_array().ok_or("no operations")?;
    assert_eq!(items.len(), 2, "a create and a delete: {}", operations.text);
    for item in items {
        let id = item["id"].as_str().ok_or("no operation id")?;
        server.wait_operation(id).await?;
    }
    Ok(())
}
