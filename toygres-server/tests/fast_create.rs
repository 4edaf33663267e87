//! Fast create on the local backend, against the real binary: instances copied from one
//! template have their own passwords, ports, data and backups (and share only the database
//! system identifier, harmlessly); the warm pool hands out started clusters, is not listed,
//! refills after claims and is emptied at shutdown; a SIGKILL at any moment of a claim leaves
//! no orphan server and hands no cluster out twice.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

/// Accepted, then succeeded; returns the finished operation.
async fn succeeded(server: &Server, reply: Reply) -> Result<Value, TestError> {
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let id = reply.body["operation"]["id"]
        .as_str()
        .ok_or_else(|| format!("no operation in {}", reply.text))?;
    let op = server.wait_operation(id).await?;
    assert_eq!(op["status"], "succeeded", "{op}");
    Ok(op)
}

/// The port of instance `name`.
async fn port_of(server: &Server, name: &str) -> Result<u16, TestError> {
    let instance = server.get(&format!("/instances/{name}")).await?.body;
    Ok(u16::try_from(
        instance["port"]
            .as_u64()
            .ok_or_else(|| format!("no port: {instance}"))?,
    )?)
}

/// The pool's slots as `(folder, port, ready, claimed)`.
fn pool_slots(instances: &Path) -> Vec<(String, u16, bool, bool)> {
    let Ok(entries) = std::fs::read_dir(instances.join(".pool")) else {
        return Vec::new();
    };
    let mut slots: Vec<(String, u16, bool, bool)> = entries
        .flatten()
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| {
            let slot: Value =
                serde_json::from_slice(&std::fs::read(entry.path().join("slot.json")).ok()?)
                    .ok()?;
            Some((
                entry.file_name().to_string_lossy().into_owned(),
                u16::try_from(slot["port"].as_u64()?).ok()?,
                slot["ready"].as_bool()?,
                entry.path().join("instance.json").exists(),
            ))
        })
        .collect();
    slots.sort();
    slots
}

/// The ports of the pool's ready, unclaimed slots.
fn ready_ports(instances: &Path) -> BTreeSet<u16> {
    pool_slots(instances)
        .into_iter()
        .filter(|(_, _, ready, claimed)| *ready && !claimed)
        .map(|(_, port, _, _)| port)
        .collect()
}

/// Waits until the pool holds `count` ready slots; returns their ports.
async fn pool_of(instances: &Path, count: usize) -> Result<BTreeSet<u16>, TestError> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let ready = ready_ports(instances);
        if ready.len() == count {
            return Ok(ready);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the pool never held {count} ready clusters: {:?}",
                pool_slots(instances)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates `name` with `password` and waits until it runs; returns its port.
async fn create(server: &Server, name: &str, password: &str) -> Result<u16, TestError> {
    let reply = server
        .post("/instances", &json!({"name": name, "password": password}))
        .await?;
    succeeded(server, reply).await?;
    port_of(server, name).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_one_template_have_their_own_passwords_ports_data_and_backups() -> TestResult {
    let workspace = Workspace::new("fast_create_copies")?;
    let server = workspace.start_server("server.log", &[]).await?;
    let (a, b) = ("clone-password-a-1", "clone-password-b-2");
    // Two at once: both copies of the one template.
    let (body_a, body_b) = (
        json!({"name": "clone-a", "password": a}),
        json!({"name": "clone-b", "password": b}),
    );
    let (first, second) = tokio::join!(
        server.post("/instances", &body_a),
        server.post("/instances", &body_b),
    );
    succeeded(&server, first?).await?;
    succeeded(&server, second?).await?;
    let (port_a, port_b) = (
        port_of(&server, "clone-a").await?,
        port_of(&server, "clone-b").await?,
    );
    assert_ne!(port_a, port_b);
    let templates = subdirs_all(&workspace.instances_dir().join(".templates"));
    assert_eq!(
        templates.len(),
        1,
        "one template per version: {templates:?}"
    );

    // Each opens with its own password only; nobody gets in without one.
    assert_eq!(psql(port_a, "postgres", a, "SELECT 1")?, "1");
    assert_eq!(psql(port_b, "postgres", b, "SELECT 1")?, "1");
    assert!(psql(port_a, "postgres", b, "SELECT 1").is_err());
    assert!(psql(port_b, "postgres", a, "SELECT 1").is_err());
    for port in [port_a, port_b] {
        for user in ["postgres", "toygres_admin", "toygres_monitor"] {
            assert!(
                psql(port, user, "", "SELECT 1").is_err(),
                "{user} on {port} without a password"
            );
        }
    }
    // The owner is no superuser, as in an instance made by initdb.
    assert_eq!(
        psql(
            port_a,
            "postgres",
            a,
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        )?,
        "f"
    );

    // None of the other's data.
    psql(
        port_a,
        "postgres",
        a,
        "CREATE TABLE marks (v text); INSERT INTO marks VALUES ('a')",
    )?;
    psql(
        port_b,
        "postgres",
        b,
        "CREATE TABLE marks (v text); INSERT INTO marks VALUES ('b')",
    )?;
    assert_eq!(
        psql(
            port_a,
            "postgres",
            a,
            "SELECT string_agg(v, ',') FROM marks"
        )?,
        "a"
    );
    assert_eq!(
        psql(
            port_b,
            "postgres",
            b,
            "SELECT string_agg(v, ',') FROM marks"
        )?,
        "b"
    );

    // Copies share the template's database system identifier...
    let identifier = |port: u16, name: &'static str| {
        let workspace = &workspace;
        async move {
            let admin = workspace.connect_as_admin(name, port).await?;
            let row = admin
                .query_one(
                    "SELECT system_identifier::text FROM pg_control_system()",
                    &[],
                )
                .await?;
            Ok::<String, TestError>(row.get(0))
        }
    };
    assert_eq!(
        identifier(port_a, "clone-a").await?,
        identifier(port_b, "clone-b").await?
    );
    // ...harmlessly: each has its own stanza, and each backup restores its own data.
    for name in ["clone-a", "clone-b"] {
        succeeded(
            &server,
            server
                .post(
                    &format!("/instances/{name}/backups"),
                    &json!({"type": "full"}),
                )
                .await?,
        )
        .await?;
    }
    for (source, copy, expected) in [("clone-a", "copy-a", "a"), ("clone-b", "copy-b", "b")] {
        let reply = server
            .post(
                "/instances",
                &json!({"name": copy, "restore_from": {"instance": source}}),
            )
            .await?;
        let password = reply.body["password"]
            .as_str()
            .ok_or_else(|| format!("no password: {}", reply.text))?
            .to_string();
        succeeded(&server, reply).await?;
        let port = port_of(&server, copy).await?;
        assert_eq!(
            psql(
                port,
                "postgres",
                &password,
                "SELECT string_agg(v, ',') FROM marks"
            )?,
            expected,
            "{copy} restored from {source}"
        );
    }

    // No password reached a server's log.
    for name in ["clone-a", "clone-b"] {
        let log =
            std::fs::read_to_string(workspace.instances_dir().join(name).join("postgres.log"))?;
        assert!(
            !log.contains(a) && !log.contains(b),
            "{name}'s log holds a password"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warm_pool_hands_out_started_clusters_and_refills() -> TestResult {
    let workspace = Workspace::new("fast_create_pool")?;
    let instances = workspace.instances_dir();
    let mut server = workspace
        .start_server("server.log", &[("TOYGRES_WARM_POOL", "2")])
        .await?;
    let pooled = pool_of(&instances, 2).await?;
    // Pooled clusters are not instances.
    let listed = server.get("/instances").await?.body;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    // A pooled server lets nobody in over TCP.
    for port in &pooled {
        assert!(port_is_open(*port));
        assert!(psql(*port, "toygres_admin", "", "SELECT 1").is_err());
        assert!(psql(*port, "postgres", "", "SELECT 1").is_err());
    }

    let first = create(&server, "pooled-1", "pooled-password-1").await?;
    assert!(
        pooled.contains(&first),
        "{first} came from the pool {pooled:?}"
    );
    assert_eq!(
        psql(first, "postgres", "pooled-password-1", "SELECT 1")?,
        "1"
    );
    assert!(psql(first, "toygres_admin", "", "SELECT 1").is_err());
    // The pool refills to its size, with clusters on other ports.
    let refilled = pool_of(&instances, 2).await?;
    assert!(!refilled.contains(&first), "{refilled:?}");

    let second = create(&server, "pooled-2", "pooled-password-2").await?;
    assert!(
        refilled.contains(&second),
        "{second} came from the pool {refilled:?}"
    );
    assert_ne!(first, second);
    assert!(psql(second, "postgres", "pooled-password-1", "SELECT 1").is_err());
    psql(
        first,
        "postgres",
        "pooled-password-1",
        "CREATE TABLE only_first (x int)",
    )?;
    assert!(
        psql(
            second,
            "postgres",
            "pooled-password-2",
            "SELECT * FROM only_first"
        )
        .is_err(),
        "the second instance sees none of the first's data"
    );
    let listed = server.get("/instances").await?.body;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    // A pooled instance archives to its own stanza (a backup waits for its WAL) and restarts.
    succeeded(
        &server,
        server
            .post("/instances/pooled-1/backups", &json!({"type": "full"}))
            .await?,
    )
    .await?;
    succeeded(
        &server,
        server.post_empty("/instances/pooled-1/restart").await?,
    )
    .await?;
    assert_eq!(port_of(&server, "pooled-1").await?, first);
    assert_eq!(
        psql(
            first,
            "postgres",
            "pooled-password-1",
            "SELECT count(*) FROM only_first"
        )?,
        "0"
    );

    // A graceful stop removes the pool; the instances outlive the server.
    let remaining = pool_of(&instances, 2).await?;
    assert!(server.terminate(), "the server stops cleanly");
    assert!(
        pool_slots(&instances).is_empty(),
        "{:?}",
        pool_slots(&instances)
    );
    for port in remaining {
        assert!(!port_is_open(port), "pooled server on {port} still up");
    }
    assert!(port_is_open(first) && port_is_open(second));

    // Started again without a pool: nothing is pooled, creates copy the template.
    let server = workspace.start_server("server-2.log", &[]).await?;
    let third = create(&server, "unpooled", "unpooled-password-3").await?;
    assert!(pool_slots(&instances).is_empty());
    assert_eq!(
        psql(third, "postgres", "unpooled-password-3", "SELECT 1")?,
        "1"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_during_a_claim_leaves_no_orphan_and_no_double_hand_out() -> TestResult {
    let workspace = Workspace::new("fast_create_kill")?;
    let instances = workspace.instances_dir();
    let pool = [("TOYGRES_WARM_POOL", "1")];
    let mut server = workspace.start_server("server-0.log", &pool).await?;
    // Killed at different moments of the deploy step: before, during and after the claim.
    for (round, pause_ms) in [0u64, 5, 15, 30, 60].into_iter().enumerate() {
        let pooled = pool_of(&instances, 1).await?;
        let name = format!("kill-{round}");
        let password = format!("kill-password-{round}");
        let reply = server
            .post("/instances", &json!({"name": name, "password": password}))
            .await?;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
        let id = reply.body["operation"]["id"]
            .as_str()
            .ok_or("no operation")?
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let op = server.get(&format!("/operations/{id}")).await?.body;
            if op["step"] == "deploy" {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("round {round}: never saw the deploy step: {op}").into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        server.kill();
        server = workspace
            .start_server(&format!("server-{}.log", round + 1), &pool)
            .await?;
        let op = server.wait_operation(&id).await?;
        assert_eq!(op["status"], "succeeded", "round {round}: {op}");
        let port = port_of(&server, &name).await?;
        assert_eq!(
            psql(port, "postgres", &password, "SELECT 1")?,
            "1",
            "round {round}"
        );
        // No slot is left named after a create, and none shares a port with an instance.
        let slots = pool_slots(&instances);
        assert!(
            slots.iter().all(|(_, _, _, claimed)| !claimed),
            "round {round}: {slots:?}"
        );
        let listed = server.get("/instances").await?.body;
        let instance_ports: BTreeSet<u16> = listed["items"]
            .as_array()
            .ok_or("no items")?
            .iter()
            .filter_map(|i| i["port"].as_u64().and_then(|p| u16::try_from(p).ok()))
            .collect();
        assert_eq!(instance_ports.len(), round + 1, "round {round}: {listed}");
        let slot_ports: BTreeSet<u16> = slots.iter().map(|(_, port, _, _)| *port).collect();
        assert!(
            instance_ports.is_disjoint(&slot_ports),
            "round {round}: instances {instance_ports:?}, pool {slot_ports:?}"
        );
        // Every server listening in the test's range is an instance's or a pooled one's.
        pool_of(&instances, 1).await?;
        let expected: BTreeSet<u16> = instance_ports
            .union(&ready_ports(&instances))
            .copied()
            .collect();
        let (first, last) = workspace
            .first_ports(20)?
            .split_once('-')
            .map(|(a, b)| (a.parse::<u16>(), b.parse::<u16>()))
            .ok_or("no range")?;
        let open: BTreeSet<u16> = (first?..=last?)
            .filter(|port| port_is_open(*port))
            .collect();
        assert_eq!(
            open, expected,
            "round {round}: orphan servers (pool was {pooled:?})"
        );
    }
    Ok(())
}

/// Every folder under `root`, hidden ones too.
fn subdirs_all(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
