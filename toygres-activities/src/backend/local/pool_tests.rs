//! The warm pool against real clusters: a claim interrupted between naming a pooled cluster
//! after its create and moving it into place goes to that create's retry only, is never counted
//! or handed out again, and goes with that create's delete; a taken cluster's private socket
//! lets nobody in without a password once the deploy returns.

use super::test_specs::TestResult;
use super::*;
use crate::backend::InstanceRef;
use std::time::Duration;

const ADMIN_PASSWORD: &str = "pool-test-admin-password";

fn spec(name: &str, uid: &str) -> Result<DeploySpec, Box<dyn std::error::Error + Send + Sync>> {
    super::test_specs::spec(name, uid, ADMIN_PASSWORD)
}

/// The one unclaimed slot folder of the pool, and its port.
fn only_slot(
    backend: &LocalBackend,
) -> Result<(PathBuf, u16), Box<dyn std::error::Error + Send + Sync>> {
    let mut free: Vec<(PathBuf, u16)> = std::fs::read_dir(backend.root().join(".pool"))?
        .flatten()
        .filter(|entry| entry.path().is_dir() && !entry.path().join(MARKER).exists())
        .filter_map(|entry| {
            let slot: serde_json::Value =
                serde_json::from_slice(&std::fs::read(entry.path().join("slot.json")).ok()?)
                    .ok()?;
            Some((entry.path(), u16::try_from(slot["port"].as_u64()?).ok()?))
        })
        .collect();
    match free.len() {
        1 => Ok(free.remove(0)),
        count => Err(format!("{count} free slots").into()),
    }
}

/// Names a slot after a create, as a claim does just before it moves the slot into place.
fn interrupted_claim(dir: &Path, spec: &DeploySpec, port: u16) -> TestResult {
    let marker = Marker::pooled_for(spec, spec.postgres_version.clone(), port);
    std::fs::write(dir.join(MARKER), serde_json::to_vec(&marker)?)?;
    Ok(())
}

async fn port_of(backend: &LocalBackend, spec: &DeploySpec) -> Result<u16, BackendError> {
    Ok(backend
        .endpoint(InstanceRef::in_default(&spec.name))
        .await?
        .port)
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300))
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_claim_goes_to_its_own_create_only() -> TestResult {
    let dir = crate::testkit::shared_tempdir()?;
    let backend = LocalBackend::new(LocalConfig {
        root: dir.path().join("instances"),
        bin_dir: None,
        ports: crate::testkit::port_range_for(
            "an_interrupted_claim_goes_to_its_own_create_only",
            10,
        ),
    })?;
    backend.set_warm_pool(1);
    let report = backend.refill_pool().await?;
    assert_eq!((report.made, report.ready), (1, 1), "{report:?}");
    let (slot, pooled_port) = only_slot(&backend)?;
    assert!(listening(pooled_port));

    let first = spec("first", "ins_first")?;
    interrupted_claim(&slot, &first, pooled_port)?;
    // Named after `first`: another create copies the template instead, on another port...
    let second = spec("second", "ins_second")?;
    backend.deploy(&second).await?;
    assert_ne!(port_of(&backend, &second).await?, pooled_port);
    // ...and a refill does not count it as ready (it makes another) nor removes it.
    let report = backend.refill_pool().await?;
    assert_eq!((report.made, report.removed), (1, 0), "{report:?}");
    assert!(slot.exists());

    // The retry of `first` takes the very cluster, started all along.
    assert_eq!(backend.deploy(&first).await?, DeployOutcome::Created);
    assert_eq!(port_of(&backend, &first).await?, pooled_port);
    assert!(!slot.exists());
    let marker = backend.read_marker(&first.name)?.ok_or("no marker")?;
    assert!(!marker.awaiting_credentials && marker.port_keyed);
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(pooled_port)
        .user(crate::roles::ADMIN)
        .password(ADMIN_PASSWORD)
        .dbname("postgres")
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(connection);
    client.batch_execute("SELECT 1").await?;
    // Its private socket no longer lets the control plane in without the password.
    assert!(
        super::restore::connect(&backend.socket_dir(&first.name, &marker), pooled_port, None)
            .await
            .is_err()
    );
    // Deploying again adopts it.
    assert_eq!(backend.deploy(&first).await?, DeployOutcome::Adopted);

    // A create that gave up after naming a slot: its delete removes that slot and its server.
    let (slot, abandoned_port) = only_slot(&backend)?;
    let third = spec("third", "ins_third")?;
    interrupted_claim(&slot, &third, abandoned_port)?;
    backend
        .delete(InstanceRef::in_default(&third.name), &third.uid)
        .await?;
    assert!(!slot.exists());
    assert!(!listening(abandoned_port));

    // Turned off: the next refill empties the pool; the instances stay.
    backend.set_warm_pool(0);
    let report = backend.refill_pool().await?;
    assert_eq!(report.ready, 0, "{report:?}");
    assert!(backend.pooled_ports().is_empty());
    assert!(listening(pooled_port));
    for name in [&first, &second] {
        backend
            .delete(InstanceRef::in_default(&name.name), &name.uid)
            .await?;
    }
    assert!(!listening(pooled_port));
    Ok(())
}
