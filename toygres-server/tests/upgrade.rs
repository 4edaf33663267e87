//! The upgrade path of instances made before the control plane had roles of its own: their
//! owner `postgres` was their bootstrap superuser, and their server ran as the `postgres` OS user
//! the control plane runs as. After the upgrade the owner is no superuser (with the same
//! password and the same objects), the control plane's roles exist, the server runs as an
//! identity of its own, and the hostile tenant's tricks are refused there too.

mod support;

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::sync::Arc;
use std::time::Duration;
use support::plane::{InProcessPlane, PlaneOptions, WaitTerminal as _, delete_all_instances};
use support::{OPERATION_LIMIT, TestError, TestResult, connect_as, connect_as_owner};
use toygres_activities::backend::local::{LocalBackend, LocalConfig};
use toygres_activities::backend::{Backend, Endpoint, InstanceRef};
use toygres_activities::metadata::{DeleteReservation, NewInstance, NewOperation};
use toygres_activities::model::{Expose, OperationStatus};
use toygres_activities::roles::{RolePasswords, legacy};
use toygres_activities::seal::SealedSecret;
use toygres_activities::testkit;
use toygres_activities::validation::InstanceName;
use toygres_orchestrations::names;
use toygres_orchestrations::types::{
    CREATE_STEPS_V1_0, CreateInstanceInput, DeleteInstanceInput, HealthSettings,
};
use toygres_server::plane::reconciler;

const OWNER_PASSWORD: &str = "legacy-owner-password-1";

/// Stops every instance when the test ends, whatever happened.
struct Cleanup(LocalBackend);

impl Drop for Cleanup {
    fn drop(&mut self) {
        delete_all_instances(&self.0);
    }
}

/// A local backend for `test` under `dir` with `ports` ports, and what deletes its instances
/// when the test ends.
fn local_backend(
    test: &str,
    dir: &std::path::Path,
    ports: u16,
) -> Result<(LocalBackend, Cleanup), TestError> {
    let backend = LocalBackend::new(LocalConfig {
        root: dir.join("instances"),
        bin_dir: None,
        ports: testkit::port_range_for(test, ports),
    })?;
    Ok((backend.clone(), Cleanup(backend)))
}

/// Runs `pg_ctl` with `args` as user and group `id`.
fn pg_ctl(bin: &std::path::Path, id: (u32, u32), args: &[&str]) -> Result<(), TestError> {
    let status = std::process::Command::new(bin.join("pg_ctl"))
        .current_dir("/")
        .args(args)
        .uid(id.0)
        .gid(id.1)
        .stdout(std::process::Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("pg_ctl {args:?} failed").into())
    }
}

/// The user id the postmaster of `data` runs as.
fn postmaster_uid(data: &std::path::Path) -> Result<u32, TestError> {
    let pid = std::fs::read_to_string(data.join("postmaster.pid"))
        .map_err(|error| format!("{}/postmaster.pid: {error}", data.display()))?;
    let pid = pid.lines().next().ok_or("no pid")?.trim().to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let uid = status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .ok_or("no Uid line")?;
    Ok(uid.parse()?)
}

/// Gives `path` and everything below it to `id`, as the layout before per-instance ids had it.
fn chown_tree(path: &std::path::Path, id: (u32, u32)) -> Result<(), TestError> {
    let at = |error: std::io::Error| format!("{}: {error}", path.display());
    std::os::unix::fs::lchown(path, Some(id.0), Some(id.1)).map_err(at)?;
    if std::fs::symlink_metadata(path).map_err(at)?.is_dir() {
        for entry in std::fs::read_dir(path).map_err(at)? {
            chown_tree(&entry?.path(), id)?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_instances_are_converted_and_keep_their_data_and_password() -> TestResult {
    let dir = testkit::shared_tempdir()?;
    let (backend, _cleanup) = local_backend("upgrade_older_instances", dir.path(), 20)?;
    let harness = InProcessPlane::start(
        Arc::new(backend.clone()),
        PlaneOptions {
            health: HealthSettings {
                interval_ms: 300,
                ..HealthSettings::default()
            },
            ..PlaneOptions::default()
        },
    )
    .await?;
    let plane = &harness.plane;
    let key = &plane.secret_key;
    let version = plane.versions.last().cloned().ok_or("no version")?;

    // 1. An instance as the previous release made it: its row has no control-plane passwords
    // (what the migration leaves), and create-instance 1.0.0 made the owner its superuser.
    let (instance, operation) = plane
        .metadata
        .reserve_create(
            &NewInstance {
                uid: "ins_legacy".into(),
                name: InstanceName::parse("legacy")?,
                namespace: "default".into(),
                backend: "local".into(),
                postgres_version: version.clone(),
                storage_gb: 1,
                expose: Expose::Internal,
                dns_label: None,
                sealed_password: key.seal(OWNER_PASSWORD),
                sealed_admin_password: key.seal("not-used-by-1.0.0"),
                sealed_monitor_password: key.seal("not-used-by-1.0.0"),
                parameters: Default::default(),
                deletion_protection: false,
            },
            &NewOperation {
                id: "op_legacycreate0000000000000".into(),
                progress_total: CREATE_STEPS_V1_0.len() as i32,
                idempotency: None,
                request: None,
            },
        )
        .await?;
    sqlx::query(
        "UPDATE instances SET sealed_admin_password = NULL, sealed_monitor_password = NULL, roles_version = 0 WHERE id = $1",
    )
    .bind(instance.id)
    .execute(plane.metadata.pool())
    .await?;
    let input = CreateInstanceInput {
        operation_id: operation.id.clone(),
        instance_id: instance.id,
        uid: instance.uid.clone(),
        name: InstanceName::parse("legacy")?,
        namespace: None,
        postgres_version: version.clone(),
        storage_gb: 1,
        user: "postgres".into(),
        database: "postgres".into(),
        sealed_password: SealedSecret::from_stored(instance.sealed_password.clone()),
        sealed_admin_password: None,
        sealed_monitor_password: None,
        expose: Expose::Internal,
        dns_label: None,
        limits: plane.create_limits.clone(),
        health: plane.health.clone(),
        parameters: None,
        restore: None,
    };
    plane
        .client
        .start_orchestration_versioned_typed(&operation.id, names::CREATE_INSTANCE, "1.0.0", input)
        .await?;
    let done = plane.wait_terminal(&operation.id, OPERATION_LIMIT).await?;
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.error);
    let port = backend
        .endpoint(InstanceRef::in_default(&InstanceName::parse("legacy")?))
        .await?
        .port;

    // 2. What its owner made while it was a superuser.
    let owner = connect_as_owner(port, OWNER_PASSWORD).await?;
    let is_super: bool = owner
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await?
        .get(0);
    assert!(is_super, "1.0.0 made the owner the superuser");
    owner
        .batch_execute(
            "CREATE SCHEMA app; \
             CREATE TABLE app.orders (id serial PRIMARY KEY, note text); \
             INSERT INTO app.orders (note) VALUES ('kept'); \
             CREATE VIEW app.recent AS SELECT * FROM app.orders; \
             CREATE MATERIALIZED VIEW app.counted AS SELECT count(*) FROM app.orders; \
             CREATE SEQUENCE app.tickets; \
             CREATE TYPE app.mood AS ENUM ('ok', 'not ok'); \
             CREATE DOMAIN app.positive AS integer CHECK (VALUE > 0); \
             CREATE FUNCTION app.double(x integer) RETURNS integer LANGUAGE sql AS 'SELECT 2 * x'; \
             CREATE EXTENSION pgcrypto; \
             SELECT lo_from_bytea(0, 'blob'); \
             CREATE ROLE helper SUPERUSER; \
             CREATE FUNCTION app.spy() RETURNS event_trigger LANGUAGE plpgsql AS 'BEGIN END'; \
             CREATE EVENT TRIGGER spy ON ddl_command_start EXECUTE FUNCTION app.spy();",
        )
        .await?;
    owner.batch_execute("CREATE DATABASE shop").await?;
    connect_as(port, "postgres", "shop", OWNER_PASSWORD)
        .await?
        .batch_execute("CREATE TABLE items (sku text)")
        .await?;
    drop(owner);

    // 3. And its server ran as the control plane's own `postgres` OS user (the layout before
    // per-instance ids), which only root can set up again here.
    let data = backend.data_dir(&InstanceName::parse("legacy")?);
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let bin = data_bin_dir(&version)?;
    if root {
        let meta = std::fs::metadata(&data)?;
        let own = (meta.uid(), meta.gid());
        pg_ctl(
            &bin,
            own,
            &[
                "stop",
                "-D",
                &data.display().to_string(),
                "-m",
                "fast",
                "-w",
            ],
        )?;
        let service = service_user()?;
        let instance_dir = data.parent().ok_or("no instance dir")?;
        chown_tree(instance_dir, service)?;
        let options =
            format!("-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''");
        pg_ctl(
            &bin,
            service,
            &[
                "start",
                "-D",
                &data.display().to_string(),
                "-l",
                &instance_dir.join("postgres.log").display().to_string(),
                "-o",
                &options,
                "-w",
            ],
        )?;
        assert_eq!(postmaster_uid(&data)?, service.0);
        // The next server start moves it onto an identity of its own.
        for (name, outcome) in backend.resume_all().await {
            outcome.map_err(|error| format!("{name}: {error}"))?;
        }
        let ready = backend
            .wait_ready(
                InstanceRef::in_default(&InstanceName::parse("legacy")?),
                Duration::from_secs(60),
            )
            .await?;
        assert_eq!(ready, toygres_activities::backend::Readiness::Ready);
        let expected = toygres_activities::privilege::INSTANCE_ID_BASE + u32::from(port);
        assert_eq!(postmaster_uid(&data)?, expected);
        assert_eq!(std::fs::metadata(&data)?.uid(), expected);
        assert_eq!(std::fs::metadata(data.join("base"))?.uid(), expected);
        assert_eq!(
            std::fs::metadata(instance_dir)?.uid(),
            0,
            "the instance folder is root's"
        );
    } else {
        println!("not root: instances share this user, so the OS-identity move is not exercised");
    }

    // 4. The reconciler converts it.
    let before = chrono::Utc::now();
    let report = reconciler::reconcile(plane, true, true).await?;
    assert_eq!(report.upgraded, ["legacy"]);
    let converted = plane
        .metadata
        .live_instance("legacy")
        .await?
        .ok_or("instance gone")?;
    assert!(converted.has_control_plane_roles());
    assert_ne!(converted.monitor_id, instance.monitor_id);

    // The owner logs in with its password, is no superuser, and still owns what it made.
    let owner = connect_as_owner(port, OWNER_PASSWORD).await?;
    let row = owner
        .query_one(
            "SELECT r.rolsuper, r.oid <> 10, \
             (SELECT count(*) FROM pg_roles WHERE rolsuper AND rolname NOT IN ('toygres_admin', 'toygres_bootstrap') AND rolname NOT LIKE 'pg\\_%'), \
             (SELECT count(*) FROM pg_event_trigger), \
             (SELECT rolcanlogin FROM pg_roles WHERE oid = 10), \
             (SELECT rolname::text FROM pg_roles WHERE oid = 10) \
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await?;
    assert!(!row.get::<_, bool>(0), "the owner is no superuser");
    assert!(row.get::<_, bool>(1), "the owner is not the bootstrap role");
    assert_eq!(row.get::<_, i64>(2), 0, "no tenant-made superuser is left");
    assert_eq!(row.get::<_, i64>(3), 0, "event triggers are dropped");
    assert!(!row.get::<_, bool>(4), "the bootstrap role cannot log in");
    assert_eq!(row.get::<_, String>(5), legacy::BOOTSTRAP);
    let note: String = owner
        .query_one("SELECT note FROM app.recent", &[])
        .await?
        .get(0);
    assert_eq!(note, "kept");
    owner
        .batch_execute(
            "ALTER TABLE app.orders ADD COLUMN more text; \
             REFRESH MATERIALIZED VIEW app.counted; \
             SELECT nextval('app.tickets'); SELECT setval('app.orders_id_seq', 10); \
             ALTER TYPE app.mood ADD VALUE 'great'; \
             ALTER DOMAIN app.positive SET DEFAULT 1; \
             CREATE OR REPLACE FUNCTION app.double(x integer) RETURNS integer LANGUAGE sql AS 'SELECT x + x'; \
             DROP VIEW app.recent; \
             SELECT lo_unlink(oid) FROM pg_largeobject_metadata;",
        )
        .await?;
    connect_as(port, "postgres", "shop", OWNER_PASSWORD)
        .await?
        .batch_execute("ALTER TABLE items ADD COLUMN price int; DROP TABLE items")
        .await?;
    for sql in [
        "COPY (SELECT 1) TO PROGRAM 'id'",
        "SELECT lo_import('/etc/passwd')",
        "SELECT pg_read_file('postgresql.conf')",
        "SELECT rolpassword FROM pg_authid",
        "GRANT pg_execute_server_program TO postgres",
        "ALTER ROLE postgres SUPERUSER",
        "ALTER SYSTEM SET work_mem = '64MB'",
    ] {
        assert!(
            owner.batch_execute(sql).await.is_err(),
            "allowed after the upgrade: {sql}"
        );
    }

    // Its monitor checks as toygres_monitor now: a changed owner password does not matter.
    owner
        .batch_execute("ALTER ROLE postgres PASSWORD 'changed-by-the-owner-1'")
        .await?;
    let changed = chrono::Utc::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let now = plane
            .metadata
            .live_instance("legacy")
            .await?
            .ok_or("instance gone")?;
        if now.health_status == toygres_activities::model::HealthStatus::Healthy
            && now
                .health_checked_at
                .is_some_and(|at| at > changed + chrono::Duration::milliseconds(700))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no healthy check after the owner changed its password: {:?}",
            now.health_status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT message FROM instance_events WHERE instance_id = $1 AND kind = 'security' AND at >= $2",
    )
    .bind(instance.id)
    .bind(before)
    .fetch_all(plane.metadata.pool())
    .await?;
    assert!(
        events
            .iter()
            .any(|m| m.contains("no superuser") && m.contains("helper")),
        "{events:?}"
    );

    // Nothing more to do on the next pass, and a conversion run again changes nothing.
    assert!(
        reconciler::reconcile(plane, true, true)
            .await?
            .upgraded
            .is_empty()
    );
    let open = |column: &Option<String>| -> Result<String, TestError> {
        let sealed = column.clone().ok_or("no sealed password")?;
        Ok(key.open(&SealedSecret::from_stored(sealed))?)
    };
    let again = legacy::convert(
        &backend,
        InstanceRef::in_default(&InstanceName::parse("legacy")?),
        &Endpoint {
            host: "127.0.0.1".into(),
            port,
        },
        &version,
        &RolePasswords {
            owner: "changed-by-the-owner-1".into(),
            admin: open(&converted.sealed_admin_password)?,
            monitor: open(&converted.sealed_monitor_password)?,
        },
        Duration::from_secs(60),
    )
    .await?;
    assert!(again.demoted_roles.is_empty());
    Ok(())
}

/// The folder of the binaries of PostgreSQL `version`.
fn data_bin_dir(version: &str) -> Result<std::path::PathBuf, TestError> {
    let binaries = toygres_activities::backend::local::PgBinaries::discover(None);
    Ok(binaries
        .bin_dir(version)
        .ok_or("no binaries for the version")?
        .to_path_buf())
}

/// The uid and gid of the `postgres` OS user (the control plane's, and before per-instance ids,
/// every instance's).
fn service_user() -> Result<(u32, u32), TestError> {
    match toygres_activities::privilege::RunAs::detect()? {
        toygres_activities::privilege::RunAs::ServiceUser { uid, gid } => Ok((uid, gid)),
        toygres_activities::privilege::RunAs::CurrentUser => Err("not root".into()),
    }
}

/// A create started by create-instance 1.3.0 and a delete started by delete-instance 1.1.0
/// (inputs of the shape those versions had, without a namespace), as a server of the release
/// before namespaces left them: a server of this release runs them to success, in the
/// backend's default namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_started_by_the_previous_workflow_versions_complete() -> TestResult {
    let dir = testkit::shared_tempdir()?;
    let (backend, _cleanup) = local_backend("upgrade_previous_versions", dir.path(), 10)?;
    let harness = InProcessPlane::start(Arc::new(backend.clone()), PlaneOptions::default()).await?;
    let plane = &harness.plane;
    let key = &plane.secret_key;
    let version = plane.versions.last().cloned().ok_or("no version")?;
    let name = InstanceName::parse("prior")?;
    let (instance, operation) = plane
        .metadata
        .reserve_create(
            &NewInstance {
                uid: "ins_prior".into(),
                name: name.clone(),
                namespace: "default".into(),
                backend: "local".into(),
                postgres_version: version.clone(),
                storage_gb: 1,
                expose: Expose::Internal,
                dns_label: None,
                sealed_password: key.seal(OWNER_PASSWORD),
                sealed_admin_password: key.seal("prior-admin-password-1"),
                sealed_monitor_password: key.seal("prior-monitor-password-1"),
                parameters: Default::default(),
                deletion_protection: false,
            },
            &NewOperation {
                id: "op_priorcreate00000000000000".into(),
                progress_total: toygres_orchestrations::types::CREATE_STEPS.len() as i32,
                idempotency: None,
                request: None,
            },
        )
        .await?;
    let create = CreateInstanceInput {
        operation_id: operation.id.clone(),
        instance_id: instance.id,
        uid: instance.uid.clone(),
        name: name.clone(),
        namespace: None,
        postgres_version: version,
        storage_gb: 1,
        user: "postgres".into(),
        database: "postgres".into(),
        sealed_password: SealedSecret::from_stored(instance.sealed_password.clone()),
        sealed_admin_password: instance
            .sealed_admin_password
            .clone()
            .map(SealedSecret::from_stored),
        sealed_monitor_password: instance
            .sealed_monitor_password
            .clone()
            .map(SealedSecret::from_stored),
        expose: Expose::Internal,
        dns_label: None,
        limits: plane.create_limits.clone(),
        health: plane.health.clone(),
        parameters: None,
        restore: None,
    };
    let shape = serde_json::to_value(&create)?;
    assert!(
        shape.get("namespace").is_none(),
        "the 1.3.0 input shape: {shape}"
    );
    plane
        .client
        .start_orchestration_versioned_typed(&operation.id, names::CREATE_INSTANCE, "1.3.0", create)
        .await?;
    let done = plane.wait_terminal(&operation.id, OPERATION_LIMIT).await?;
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.error);
    let running = plane
        .metadata
        .live_instance("prior")
        .await?
        .ok_or("no instance")?;
    assert_eq!(running.namespace.as_deref(), Some("default"));
    let port = u16::try_from(running.port.ok_or("no port")?)?;
    connect_as_owner(port, OWNER_PASSWORD).await?;

    let reserved = plane
        .metadata
        .reserve_delete_with(
            &name,
            &NewOperation {
                id: "op_priordelete00000000000000".into(),
                progress_total: toygres_orchestrations::types::DELETE_STEPS_V1_1.len() as i32,
                idempotency: None,
                request: None,
            },
            None,
        )
        .await?;
    let (instance, operation) = match reserved {
        DeleteReservation::Started {
            instance,
            operation,
        } => (instance, operation),
        other => return Err(format!("no delete started: {other:?}").into()),
    };
    let delete = DeleteInstanceInput {
        operation_id: operation.id.clone(),
        instance_id: instance.id,
        name: name.clone(),
        namespace: None,
        uid: Some(instance.uid.clone()),
        cancels_operation_id: None,
        limits: plane.delete_limits.clone(),
        save_backups: None,
    };
    plane
        .client
        .start_orchestration_versioned_typed(&operation.id, names::DELETE_INSTANCE, "1.1.0", delete)
        .await?;
    let done = plane.wait_terminal(&operation.id, OPERATION_LIMIT).await?;
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.error);
    assert!(
        backend.list_owned().await?.is_empty(),
        "the delete removed the instance"
    );
    Ok(())
}
