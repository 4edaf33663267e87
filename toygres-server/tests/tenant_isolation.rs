//! A hostile tenant: with one instance's owner credentials (what `POST /instances` hands out),
//! every way to reach the server's files, run programs, gain a superuser, or reach the control
//! plane or another instance is refused, while what an owner needs works. And below SQL: the
//! instance's server process runs as an identity that can read neither the control-plane
//! database (its socket, its files, the key) nor another instance's files.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use support::*;

const PASSWORD_A: &str = "tenant-a-password-1";
const PASSWORD_B: &str = "tenant-b-password-1";

/// Creates instance `name` with `password` and waits until it runs; returns its port.
async fn running(server: &Server, name: &str, password: &str) -> Result<u16, TestError> {
    let reply = server
        .post("/instances", &json!({"name": name, "password": password}))
        .await?;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let id = reply.body["operation"]["id"].as_str().ok_or("no id")?;
    let done = server.wait_operation(id).await?;
    assert_eq!(done["status"], "succeeded", "{done}");
    let instance = server.get(&format!("/instances/{name}")).await?.body;
    Ok(u16::try_from(instance["port"].as_u64().ok_or("no port")?)?)
}

/// Runs `sql` and returns PostgreSQL's refusal, failing the test if it was allowed.
async fn refused(client: &tokio_postgres::Client, sql: &str) -> Result<String, TestError> {
    match client.batch_execute(sql).await {
        Ok(()) => Err(format!("the owner was allowed to run: {sql}").into()),
        Err(error) => Ok(error
            .as_db_error()
            .map(|db| db.message().to_string())
            .unwrap_or_else(|| error.to_string())),
    }
}

/// Runs `program` with `args` as user and group `id`, as the instance's server would; returns
/// whether it succeeded and what it printed.
fn run_as(id: u32, program: &str, args: &[&str]) -> Result<(bool, String), TestError> {
    let output = std::process::Command::new(program)
        .args(args)
        .uid(id)
        .gid(id)
        .env_remove("PGPASSWORD")
        .stdin(std::process::Stdio::null())
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), text))
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_owner_reaches_nothing_but_its_own_data() -> TestResult {
    let workspace = Workspace::new("tenant_isolation")?;
    let server = workspace
        .start_server("server.log", &[("TOYGRES_HEALTH_INTERVAL_SECS", "1")])
        .await?;
    let port_a = running(&server, "tenant-a", PASSWORD_A).await?;
    let port_b = running(&server, "tenant-b", PASSWORD_B).await?;
    let data_b = workspace.instances_dir().join("tenant-b").join("data");
    let controlplane = workspace.data_dir().join("controlplane");
    let a = connect_as_owner(port_a, PASSWORD_A).await?;

    // Who the owner is: no superuser, in none of the roles that reach the server.
    let row = a
        .query_one(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, \
             pg_has_role(current_user, 'pg_read_server_files', 'MEMBER'), \
             pg_has_role(current_user, 'pg_write_server_files', 'MEMBER'), \
             pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER') \
             FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await?;
    let flags: Vec<bool> = (0..6).map(|i| row.get(i)).collect();
    assert_eq!(flags, [false, true, true, false, false, false]);

    // Programs and server files.
    let mut refusals = Vec::new();
    for sql in [
        "COPY (SELECT 1) TO PROGRAM 'id'".to_string(),
        "CREATE TEMP TABLE loot (line text); COPY loot FROM PROGRAM 'cat /etc/passwd'".to_string(),
        format!(
            "CREATE TEMP TABLE loot2 (line text); COPY loot2 FROM '{}'",
            text(&data_b.join("PG_VERSION"))
        ),
        "COPY (SELECT 'x') TO '/tmp/toygres-tenant-write'".to_string(),
        format!(
            "SELECT pg_read_file('{}')",
            text(&data_b.join("PG_VERSION"))
        ),
        format!(
            "SELECT pg_read_binary_file('{}')",
            text(&data_b.join("global/pg_control"))
        ),
        format!(
            "SELECT pg_read_file('{}')",
            text(&controlplane.join("data/PG_VERSION"))
        ),
        "SELECT pg_read_file('postgresql.auto.conf')".to_string(),
        format!("SELECT pg_ls_dir('{}')", text(&controlplane)),
        format!("SELECT pg_ls_dir('{}')", text(&data_b)),
        "SELECT pg_ls_dir('.')".to_string(),
        format!("SELECT lo_import('{}')", text(&data_b.join("PG_VERSION"))),
        "SELECT lo_export(lo_creat(-1), '/tmp/toygres-tenant-export')".to_string(),
        "SELECT pg_catalog.pg_reload_conf()".to_string(),
        "ALTER SYSTEM SET archive_command = 'sh -c id'".to_string(),
        "ALTER SYSTEM SET work_mem = '64MB'".to_string(),
        "SET session_preload_libraries = 'auto_explain'".to_string(),
        "LOAD 'auto_explain'".to_string(),
    ] {
        refusals.push((sql.clone(), refused(&a, &sql).await?));
    }

    // Untrusted languages and extensions (plperlu comes with postgresql-plperl, which .ci/run
    // installs; the test insists on it, so a missing package fails instead of skipping).
    let untrusted: Vec<String> = a
        .query(
            "SELECT name FROM pg_available_extensions WHERE name IN ('plperlu', 'adminpack', 'file_fdw', 'dblink', 'postgres_fdw') ORDER BY name",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        untrusted.iter().any(|name| name == "plperlu"),
        "plperlu is not installed (Debian: postgresql-plperl-15); available: {untrusted:?}"
    );
    for extension in &untrusted {
        let sql = format!("CREATE EXTENSION {extension}");
        refusals.push((sql.clone(), refused(&a, &sql).await?));
    }

    // Superusers, the control plane's roles, and the predefined roles that reach the server.
    for sql in [
        "CREATE ROLE usurper SUPERUSER LOGIN PASSWORD 'usurper-password-1'",
        "ALTER ROLE postgres SUPERUSER",
        "ALTER ROLE postgres REPLICATION",
        "ALTER ROLE postgres BYPASSRLS",
        "GRANT pg_execute_server_program TO postgres",
        "GRANT pg_read_server_files TO postgres",
        "GRANT pg_write_server_files TO postgres",
        "CREATE ROLE smuggler IN ROLE pg_execute_server_program",
        "GRANT toygres_admin TO postgres",
        "ALTER ROLE toygres_admin PASSWORD 'taken-over-password-1'",
        "SET ROLE toygres_admin",
        "SET SESSION AUTHORIZATION toygres_admin",
        "CREATE EVENT TRIGGER spy ON ddl_command_start EXECUTE FUNCTION pg_catalog.now()",
        "SELECT rolpassword FROM pg_authid",
    ] {
        refusals.push((sql.to_string(), refused(&a, sql).await?));
    }
    for (sql, refusal) in &refusals {
        println!("refused: {sql}\n  -> {refusal}");
    }

    // What an owner needs works.
    a.batch_execute("CREATE DATABASE own_app").await?;
    a.batch_execute(
        "CREATE ROLE app_user LOGIN PASSWORD 'app-user-password-1'; \
         CREATE TABLE orders (id bigint PRIMARY KEY, note text); \
         INSERT INTO orders VALUES (1, 'mine'); \
         CREATE EXTENSION pgcrypto; \
         GRANT SELECT ON orders TO app_user;",
    )
    .await?;
    let digest: String = a
        .query_one("SELECT encode(digest('x', 'sha256'), 'hex')", &[])
        .await?
        .get(0);
    assert_eq!(digest.len(), 64);
    let app = connect_as(port_a, "app_user", "postgres", "app-user-password-1").await?;
    let note: String = app
        .query_one("SELECT note FROM orders WHERE id = 1", &[])
        .await?
        .get(0);
    assert_eq!(note, "mine");
    let own = connect_as(port_a, "postgres", "own_app", PASSWORD_A).await?;
    own.batch_execute("CREATE TABLE in_own_database (x int)")
        .await?;

    // A's password does not open B, and no owner reaches the control-plane database.
    assert!(connect_as_owner(port_b, PASSWORD_A).await.is_err());
    assert!(
        connect_as(port_a, "toygres_admin", "postgres", PASSWORD_A)
            .await
            .is_err()
    );

    // Below SQL: A's server process runs as an id of its own, which reaches neither the
    // control plane nor B.
    let id_a = toygres_activities::privilege::INSTANCE_ID_BASE + u32::from(port_a);
    let owner = |path: &Path| -> Result<u32, TestError> {
        use std::os::unix::fs::MetadataExt as _;
        Ok(std::fs::metadata(path)?.uid())
    };
    assert_eq!(
        owner(&workspace.instances_dir().join("tenant-a/data"))?,
        id_a
    );
    assert_ne!(owner(&data_b)?, id_a);
    let postmaster = std::fs::read_to_string(
        workspace
            .instances_dir()
            .join("tenant-a/data/postmaster.pid"),
    )?;
    let pid = postmaster
        .lines()
        .next()
        .ok_or("no pid")?
        .trim()
        .to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .ok_or("no Uid")?;
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|uid| uid == id_a.to_string()),
        "A's postmaster runs as {uid_line}, not {id_a}"
    );
    let socket_dir = {
        let url = workspace.control_plane_url();
        url.split("host=")
            .nth(1)
            .ok_or("no socket dir")?
            .to_string()
    };
    let psql = std::path::Path::new("/usr/lib/postgresql/15/bin/psql");
    let (ok, out) = run_as(
        id_a,
        &text(psql),
        &[
            "-h",
            &socket_dir,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            "SELECT count(*) FROM toygres.instances",
        ],
    )?;
    assert!(
        !ok,
        "A's server identity reached the control-plane database: {out}"
    );
    for path in [
        controlplane.join("data/PG_VERSION"),
        controlplane.join("postgres.log"),
        workspace.data_dir().join("secret.key"),
        data_b.join("PG_VERSION"),
        workspace.instances_dir().join("tenant-b/postgres.log"),
        workspace.instances_dir().join("tenant-b/instance.json"),
    ] {
        let (ok, out) = run_as(id_a, "cat", &[&text(&path)])?;
        assert!(!ok, "A's server identity read {}: {out}", path.display());
    }
    for dir in [&controlplane, &workspace.instances_dir(), &data_b] {
        let (ok, out) = run_as(id_a, "ls", &[&text(dir)])?;
        assert!(!ok, "A's server identity listed {}: {out}", dir.display());
    }

    // The owner may change (or forget) its password: health checks go on as toygres_monitor.
    a.batch_execute("ALTER ROLE postgres PASSWORD 'a-brand-new-password-1'")
        .await?;
    let changed = chrono::Utc::now();
    server
        .wait_instance("tenant-a", OPERATION_LIMIT, |instance: &Value| {
            instance["health"]["status"] == "healthy"
                && instance["health"]["checked_at"]
                    .as_str()
                    .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                    .is_some_and(|at| at > changed + chrono::Duration::seconds(1))
        })
        .await?;
    Ok(())
}
