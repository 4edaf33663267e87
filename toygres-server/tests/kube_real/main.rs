//! The `toygres` binary with `TOYGRES_BACKEND=kubernetes` against a real control plane: a
//! kube-apiserver and kube-controller-manager 1.20.2 with etcd (`scripts/kube-testbed.sh`), the
//! test node agent playing the kubelet and the cloud controller
//! (`toygres_activities::testkit::node_agent`). The server authenticates as the ServiceAccount
//! `deploy/rbac.yaml` binds, with a token for that account: the real RBAC decides every call.
//!
//! The binaries come from `scripts/kube-testbed-build.sh` (its cache, or `TOYGRES_KUBE_BIN`).
//! Without them the tests fail when `TOYGRES_REQUIRE_KUBE_TESTBED=1` (CI sets it) and otherwise
//! say loudly that they did not run.

mod namespaces;
#[path = "../support/mod.rs"]
mod support;
mod testbed;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::{Value, json};
use std::time::Duration;
use support::{TestResult, Workspace};
use testbed::{
    NS, TEAM_B, Testbed, act, create, delete, psql_at, psql_through, psql_through_in,
    query_through_forward, text,
};
use toygres_activities::backend::kubernetes::labels;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_and_public_instances_live_and_go_on_a_real_api_server() -> TestResult {
    let Some(testbed) = Testbed::start("kube_real_lifecycle", Duration::from_secs(2)).await? else {
        return Ok(());
    };
    let workspace = Workspace::new("kube_real_lifecycle")?;
    let server = testbed.serve(&workspace, "server.log", &[]).await?;

    let (internal_password, internal) =
        create(&server, json!({"name": "ledger", "expose": "internal"})).await?;
    assert_eq!(internal["host"], "ledger.toygres.svc.cluster.local");
    assert_eq!(internal["dns_name"], Value::Null);
    assert_eq!(
        query_through_forward(&testbed, "ledger", &internal_password).await?,
        "42"
    );

    let (public_password, public) = create(
        &server,
        json!({"name": "shop", "expose": "public", "dns_label": "shop"}),
    )
    .await?;
    let address = text(&public["host"], "host")?.to_string();
    assert!(address.starts_with("127.0.0."), "{public}");
    assert_eq!(
        public["dns_name"], "shop.testbed.cloudapp.azure.com",
        "the node's region"
    );
    assert_eq!(
        public["connection_uri"],
        "postgresql://postgres@shop.testbed.cloudapp.azure.com:5432/postgres"
    );
    assert_eq!(
        public["connection_uri_ip"],
        format!("postgresql://postgres@{address}:5432/postgres")
    );
    let answer =
        tokio::task::spawn_blocking(move || psql_at(&address, 5432, &public_password, "SELECT 42"))
            .await?;
    assert_eq!(answer?, "42");

    // Backups are not offered on Kubernetes.
    let backup = server.post("/instances/ledger/backups", &json!({})).await?;
    assert_eq!(
        backup.status,
        reqwest::StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        backup.text
    );
    assert_eq!(backup.error_code(), "unsupported_by_backend");

    psql_through(
        &testbed,
        "ledger",
        &internal_password,
        "CREATE TABLE old_tenant (x int)",
    )
    .await?;
    delete(&server, "ledger").await?;
    delete(&server, "shop").await?;
    // The name again at once (volumes not retained): a new, empty instance with a new password.
    let (again_password, _) =
        create(&server, json!({"name": "ledger", "expose": "internal"})).await?;
    assert_eq!(
        psql_through(
            &testbed,
            "ledger",
            &again_password,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'old_tenant'"
        )
        .await?,
        "0"
    );
    assert!(
        psql_through(&testbed, "ledger", &internal_password, "SELECT 1")
            .await
            .is_err(),
        "the old password is refused"
    );
    delete(&server, "ledger").await?;
    testbed.wait_nothing_labelled("ledger").await?;
    testbed.wait_nothing_labelled("shop").await?;
    assert!(
        !server.log().contains("is forbidden: User"),
        "the ServiceAccount was refused a call: {}",
        server.log()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_recreated_right_after_its_delete_is_a_new_empty_instance() -> TestResult {
    // The cloud holds a deleted load balancer's finalizer for 5 s.
    let Some(testbed) = Testbed::start("kube_real_recreate", Duration::from_secs(5)).await? else {
        return Ok(());
    };
    let workspace = Workspace::new("kube_real_recreate")?;
    let server = testbed
        .serve(
            &workspace,
            "server.log",
            &[("TOYGRES_K8S_RETAIN_VOLUMES", "true")],
        )
        .await?;
    let body = json!({"name": "shop", "expose": "public", "dns_label": "shop"});

    let (old_password, old) = create(&server, body.clone()).await?;
    let old_host = text(&old["host"], "host")?.to_string();
    let marked = tokio::task::spawn_blocking({
        let (host, password) = (old_host.clone(), old_password.clone());
        move || psql_at(&host, 5432, &password, "CREATE TABLE old_tenant (x int)")
    })
    .await?;
    marked?;
    delete(&server, "shop").await?;
    let services: Api<Service> = Api::namespaced(testbed.admin.clone(), NS);
    let held = services.get_opt("shop").await?;
    assert!(
        held.is_some_and(|service| service.metadata.deletion_timestamp.is_some()),
        "the old Service is still terminating, held by its finalizer"
    );
    let started = std::time::Instant::now();
    let (new_password, new) = create(&server, body).await?;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the create waited out the terminating Service"
    );
    let host = text(&new["host"], "host")?.to_string();
    let check = tokio::task::spawn_blocking({
        let (host, password) = (host.clone(), new_password.clone());
        move || {
            psql_at(
                &host,
                5432,
                &password,
                "SELECT count(*) FROM pg_tables WHERE tablename = 'old_tenant'",
            )
        }
    })
    .await?;
    assert_eq!(check?, "0", "the new instance is empty");
    let refused =
        tokio::task::spawn_blocking(move || psql_at(&host, 5432, &old_password, "SELECT 1"))
            .await?;
    assert!(refused.is_err(), "the old password no longer works");

    // The retained volume of the first incarnation stays, unbound to the new one.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(testbed.admin.clone(), NS);
    let listed = claims
        .list(&ListParams::default().labels(&labels::instance_selector("shop")))
        .await?;
    let mut names: Vec<String> = listed
        .items
        .iter()
        .filter_map(|claim| claim.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    let pods: Api<Pod> = Api::namespaced(testbed.admin.clone(), NS);
    let pod = pods.get("shop-0").await?;
    let mounted: Vec<String> = pod
        .spec
        .and_then(|spec| spec.volumes)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|volume| volume.persistent_volume_claim.map(|claim| claim.claim_name))
        .collect();
    let new_uid = pod
        .metadata
        .labels
        .and_then(|labels| labels.get(labels::UID).cloned())
        .ok_or("no uid label")?;
    assert_eq!(
        mounted,
        [toygres_activities::backend::kubernetes::manifests::pvc_name("shop", &new_uid)]
    );

    delete(&server, "shop").await?;
    for claim in names {
        claims.delete(&claim, &DeleteParams::default()).await?;
    }
    testbed.wait_nothing_labelled("shop").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day_two_changes_and_drift_on_a_real_api_server() -> TestResult {
    let Some(testbed) = Testbed::start("kube_real_day_two", Duration::from_secs(1)).await? else {
        return Ok(());
    };
    let workspace = Workspace::new("kube_real_day_two")?;
    let server = testbed.serve(&workspace, "server.log", &[]).await?;
    let (password, _) = create(&server, json!({"name": "ledger", "expose": "internal"})).await?;
    psql_through(&testbed, "ledger", &password, "CREATE TABLE kept (x int)").await?;

    act(&server, "ledger", "stop").await?;
    let stopped = server
        .wait_instance("ledger", Duration::from_secs(30), |i| {
            i["state"] == "stopped"
        })
        .await?;
    assert_eq!(stopped["state"], "stopped");
    let pods: Api<Pod> = Api::namespaced(testbed.admin.clone(), NS);
    assert!(
        pods.get_opt("ledger-0").await?.is_none(),
        "no pod while stopped"
    );
    act(&server, "ledger", "start").await?;
    act(&server, "ledger", "restart").await?;
    assert_eq!(
        psql_through(
            &testbed,
            "ledger",
            &password,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'kept'"
        )
        .await?,
        "1",
        "the data outlived the pods"
    );

    // A StatefulSet deleted behind the control plane's back: the instance lost its backend.
    let sets: Api<StatefulSet> = Api::namespaced(testbed.admin.clone(), NS);
    sets.delete("ledger", &DeleteParams::background()).await?;
    let lost = server
        .wait_instance("ledger", Duration::from_secs(60), |i| {
            i["state"] == "failed"
        })
        .await?;
    assert_eq!(lost["error"]["code"], "backend_lost", "{lost}");
    delete(&server, "ledger").await?;
    testbed.wait_nothing_labelled("ledger").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_create_and_mid_delete_finishes_after_a_restart() -> TestResult {
    let Some(testbed) = Testbed::start("kube_real_sigkill", Duration::from_secs(1)).await? else {
        return Ok(());
    };
    // All of it in a namespace other than the default: the workflows carry it in their inputs.
    testbed.bind(TEAM_B).await?;
    let allowed = [("TOYGRES_K8S_NAMESPACES", "toygres,team-b")];
    let workspace = Workspace::new("kube_real_sigkill")?;
    let mut server = testbed.serve(&workspace, "server.log", &allowed).await?;
    let created = server
        .post(
            "/instances",
            &json!({"name": "ledger", "expose": "internal", "namespace": TEAM_B}),
        )
        .await?;
    assert_eq!(
        created.status,
        reqwest::StatusCode::ACCEPTED,
        "{}",
        created.text
    );
    let password = text(&created.body["password"], "password")?.to_string();
    let operation = text(&created.body["operation"]["id"], "operation id")?.to_string();
    // Mid-create: once the StatefulSet exists, before the pod is ready.
    let sets: Api<StatefulSet> = Api::namespaced(testbed.admin.clone(), TEAM_B);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while sets.get_opt("ledger").await?.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no StatefulSet");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    let server = testbed.serve(&workspace, "server2.log", &allowed).await?;
    let done = server.wait_operation(&operation).await?;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        psql_through_in(&testbed, TEAM_B, "ledger", &password, "SELECT 42").await?,
        "42"
    );
    // The resumed create adopted what it found, without fighting the server's defaults: the
    // StatefulSet was never updated.
    let set = sets.get("ledger").await?;
    assert_eq!(set.metadata.generation, Some(1), "{:?}", set.metadata);

    // Mid-delete: once the delete has begun removing objects.
    let mut server = server;
    let deleted = server.delete("/instances/ledger").await?;
    let operation = text(&deleted.body["operation"]["id"], "operation id")?.to_string();
    let services: Api<Service> = Api::namespaced(testbed.admin.clone(), TEAM_B);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while services.get_opt("ledger").await?.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delete never began"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    let server = testbed.serve(&workspace, "server3.log", &allowed).await?;
    let done = server.wait_operation(&operation).await?;
    assert_eq!(done["status"], "succeeded", "{done}");
    testbed.wait_nothing_labelled("ledger").await?;

    // A delete while the create runs: the delete wins, nothing is left.
    let created = server
        .post(
            "/instances",
            &json!({"name": "hasty", "expose": "internal", "namespace": TEAM_B}),
        )
        .await?;
    assert_eq!(
        created.status,
        reqwest::StatusCode::ACCEPTED,
        "{}",
        created.text
    );
    let create_id = text(&created.body["operation"]["id"], "operation id")?.to_string();
    delete(&server, "hasty").await?;
    let create = server.wait_operation(&create_id).await?;
    assert!(
        ["canceled", "succeeded"].contains(&create["status"].as_str().unwrap_or_default()),
        "{create}"
    );
    testbed.wait_nothing_labelled("hasty").await?;

    // An object of ours whose instance does not exist is removed by the drift reconciler.
    let secrets: Api<Secret> = Api::namespaced(testbed.admin.clone(), TEAM_B);
    let mut orphan = Secret::default();
    orphan.metadata.name = Some("ghost-credentials".into());
    orphan.metadata.labels = Some(labels::owned("ghost", "ins_ghost"));
    secrets
        .create(&kube::api::PostParams::default(), &orphan)
        .await?;
    testbed.wait_nothing_labelled("ghost").await?;
    Ok(())
}
