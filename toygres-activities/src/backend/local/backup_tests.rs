//! The local backend's backups against real clusters and the real pgBackRest: WAL archived
//! from creation, backups annotated and found again, restores at the end of a backup, at a
//! point in time and latest (exactly the rows committed before each), from a deleted instance,
//! and verifies.

use super::test_specs::TestResult;
use super::*;
use crate::backend::InstanceRef;
use crate::backup::agent::{InstanceBackups, RestoreSource, RestoreTarget};
use crate::backup::{BackupSettings, Repository};
use crate::model::BackupType;
use std::time::Duration;

const ADMIN_PASSWORD: &str = "backup-test-admin-password";

fn spec(name: &str, uid: &str) -> Result<DeploySpec, Box<dyn std::error::Error + Send + Sync>> {
    super::test_specs::spec(name, uid, ADMIN_PASSWORD)
}

async fn admin(
    backend: &LocalBackend,
    name: &InstanceName,
) -> Result<tokio_postgres::Client, Box<dyn std::error::Error + Send + Sync>> {
    let endpoint = backend.endpoint(InstanceRef::in_default(name)).await?;
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(endpoint.port)
        .user(crate::roles::ADMIN)
        .password(ADMIN_PASSWORD)
        .dbname("postgres")
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn ready(backend: &LocalBackend, name: &InstanceName) -> TestResult {
    match backend
        .wait_ready(InstanceRef::in_default(name), Duration::from_secs(60))
        .await?
    {
        Readiness::Ready => Ok(()),
        other => Err(format!("{name} not ready: {other:?}").into()),
    }
}

async fn values(
    backend: &LocalBackend,
    name: &InstanceName,
) -> Result<Vec<i32>, Box<dyn std::error::Error + Send + Sync>> {
    let client = admin(backend, name).await?;
    Ok(client
        .query("SELECT b FROM batches ORDER BY b", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_reach_exactly_their_target() -> TestResult {
    let Some(binary) = BackupSettings::locate(None) else {
        return Err("pgbackrest is not installed (apt-get install pgbackrest)".into());
    };
    let dir = crate::testkit::shared_tempdir()?;
    let settings = BackupSettings {
        repository: Repository::Posix {
            root: dir.path().join("backups"),
        },
        retention_days: 7,
        archive_timeout_secs: 60,
        binary,
    };
    let backend = LocalBackend::with_backups(
        LocalConfig {
            root: dir.path().join("instances"),
            bin_dir: None,
            ports: crate::testkit::port_range_for("restores_reach_exactly_their_target", 10),
        },
        settings,
    )?;
    let source = spec("source", "ins_source")?;
    backend.deploy(&source).await?;
    ready(&backend, &source.name).await?;
    let client = admin(&backend, &source.name).await?;
    client.batch_execute("CREATE TABLE batches (b int)").await?;
    let taken = backend
        .backup(
            &source.name,
            &source.uid,
            "bk_first",
            BackupType::Full,
            ADMIN_PASSWORD,
        )
        .await?;
    // Idempotent: the same id finds the same backup.
    let again = backend
        .backup(
            &source.name,
            &source.uid,
            "bk_first",
            BackupType::Full,
            ADMIN_PASSWORD,
        )
        .await?;
    assert_eq!(taken.label, again.label);
    assert_eq!(backend.list(&source.uid).await?.len(), 1);
    // A verify while the source runs.
    let live = backend.verify(&source.uid, &taken.label).await?;
    assert!(live.restored && live.repository_intact, "{live:?}");

    let mut after = Vec::new();
    for batch in 1..=3 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        client
            .execute("INSERT INTO batches VALUES ($1)", &[&batch])
            .await?;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        after.push(chrono::Utc::now());
    }
    backend
        .flush_archive(&source.name, &source.uid, ADMIN_PASSWORD)
        .await?;

    let restores = [
        (RestoreTarget::Time { at: after[0] }, vec![1]),
        (RestoreTarget::Time { at: after[1] }, vec![1, 2]),
        (RestoreTarget::Latest, vec![1, 2, 3]),
        (
            RestoreTarget::Backup {
                label: taken.label.clone(),
            },
            vec![],
        ),
    ];
    for (index, (target, expected)) in restores.into_iter().enumerate() {
        let copy = spec(&format!("copy-{index}"), &format!("ins_copy{index}"))?;
        let restore = RestoreSource {
            stanza: source.uid.clone(),
            target: target.clone(),
        };
        backend.deploy_restored(&copy, &restore).await?;
        ready(&backend, &copy.name).await?;
        assert_eq!(values(&backend, &copy.name).await?, expected, "{target:?}");
        // The copy archives into a stanza of its own and can be backed up.
        backend
            .backup(
                &copy.name,
                &copy.uid,
                "bk_copy",
                BackupType::Full,
                ADMIN_PASSWORD,
            )
            .await?;
        backend.delete(copy.instance(), &copy.uid).await?;
    }

    // The source goes; its backups stay, restorable and verifiable.
    backend.delete(source.instance(), &source.uid).await?;
    let verified = backend.verify(&source.uid, &taken.label).await?;
    assert!(verified.restored && verified.repository_intact);
    assert!(
        verified.databases >= 1 && verified.tables >= 1,
        "{verified:?}"
    );
    let late = spec("late", "ins_late")?;
    backend
        .deploy_restored(
            &late,
            &RestoreSource {
                stanza: source.uid.clone(),
                target: RestoreTarget::Latest,
            },
        )
        .await?;
    ready(&backend, &late.name).await?;
    assert_eq!(values(&backend, &late.name).await?, vec![1, 2, 3]);
    backend.delete(late.instance(), &late.uid).await?;
    InstanceBackups::remove(&backend, &source.uid).await?;
    assert!(backend.list(&source.uid).await?.is_empty());
    Ok(())
}

/// Waits until instance `name` archived a segment after `before` segments, for at most `limit`.
async fn archived_after(
    backend: &LocalBackend,
    name: &InstanceName,
    before: i64,
    limit: Duration,
) -> Result<i64, Box<dyn std::error::Error + Send + Sync>> {
    let client = admin(backend, name).await?;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let archived: i64 = client
            .query_one("SELECT archived_count FROM pg_stat_archiver", &[])
            .await?
            .get(0);
        if archived > before {
            return Ok(archived);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("nothing archived within {limit:?} (archive_timeout 1 s)").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `archive_timeout` holds from the start of a server on, not only after its first
/// checkpoint (PostgreSQL's checkpointer ignores it during recovery, then sleeps 5 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_timeout_holds_from_the_start() -> TestResult {
    let Some(binary) = BackupSettings::locate(None) else {
        return Err("pgbackrest is not installed (apt-get install pgbackrest)".into());
    };
    let dir = crate::testkit::shared_tempdir()?;
    let settings = BackupSettings {
        repository: Repository::Posix {
            root: dir.path().join("backups"),
        },
        retention_days: 7,
        archive_timeout_secs: 1,
        binary,
    };
    let backend = LocalBackend::with_backups(
        LocalConfig {
            root: dir.path().join("instances"),
            bin_dir: None,
            ports: crate::testkit::port_range_for("archive_timeout_holds_from_the_start", 10),
        },
        settings,
    )?;
    let instance = spec("timely", "ins_timely")?;
    backend.deploy(&instance).await?;
    ready(&backend, &instance.name).await?;
    let client = admin(&backend, &instance.name).await?;
    client.batch_execute("CREATE TABLE t (x int)").await?;
    let archived = archived_after(&backend, &instance.name, 0, Duration::from_secs(30)).await?;
    // And again after a stop and a start.
    backend.stop(instance.instance(), &instance.uid).await?;
    backend.start(instance.instance(), &instance.uid).await?;
    ready(&backend, &instance.name).await?;
    let client = admin(&backend, &instance.name).await?;
    let before: i64 = client
        .query_one("SELECT archived_count FROM pg_stat_archiver", &[])
        .await?
        .get(0);
    client.batch_execute("INSERT INTO t VALUES (1)").await?;
    archived_after(&backend, &instance.name, before, Duration::from_secs(30)).await?;
    assert!(archived > 0);
    backend.delete(instance.instance(), &instance.uid).await?;
    Ok(())
}
