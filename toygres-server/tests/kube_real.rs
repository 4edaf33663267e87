//! The `toygres` binary with `TOYGRES_BACKEND=kubernetes` against a real control plane: a
//! kube-apiserver and kube-controller-manager 1.20.2 with etcd (`scripts/kube-testbed.sh`), the
//! test node agent playing the kubelet and the cloud controller
//! (`toygres_activities::testkit::node_agent`). The server authenticates as the ServiceAccount
//! `deploy/rbac.yaml` binds, with a token for that account: the real RBAC decides every call.
//!
//! The binaries come from `scripts/kube-testbed-build.sh` (its cache, or `TOYGRES_KUBE_BIN`).
//! Without them the tests fail when `TOYGRES_REQUIRE_KUBE_TESTBED=1` (CI sets it) and otherwise
//! say loudly that they did not run.

mod support;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{Server, TestError, TestResult, Workspace};
use toygres_activities::backend::kubernetes::{install_crypto_provider, labels, tunnel};
use toygres_activities::testkit::node_agent::{AgentConfig, NodeAgent};

type Fallible<T> = Result<T, TestError>;

const NS: &str = "toygres";
/// The version `scripts/kube-testbed-build.sh` builds by default.
const KUBE_VERSION: &str = "v1.20.2";

/// A running testbed; stopped (and its folder removed) on drop.
struct Testbed {
    dir: tempfile::TempDir,
    admin: kube::Client,
    agent: Option<NodeAgent>,
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The folder with the testbed's binaries, or why there is none.
fn binaries() -> Result<PathBuf, String> {
    let dir = match std::env::var("TOYGRES_KUBE_BIN") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("/var/cache/toygres-kube").join(KUBE_VERSION),
    };
    for binary in ["kube-apiserver", "kube-controller-manager"] {
        if !dir.join(binary).exists() {
            return Err(format!(
                "{} is missing (run scripts/kube-testbed-build.sh)",
                dir.join(binary).display()
            ));
        }
    }
    for tool in ["etcd", "kubectl", "openssl"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !found {
            return Err(format!("{tool} is not installed"));
        }
    }
    Ok(dir)
}

/// A client for the kubeconfig at `path`.
async fn client_for(path: &Path) -> Fallible<kube::Client> {
    install_crypto_provider();
    let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

impl Testbed {
    /// Starts a testbed and the node agent, or `None` (said loudly) when this machine cannot
    /// run one and CI does not require it.
    async fn start(test: &str, finalizer_hold: Duration) -> Fallible<Option<Self>> {
        let bin = match binaries() {
            Ok(bin) => bin,
            Err(why) if std::env::var("TOYGRES_REQUIRE_KUBE_TESTBED").as_deref() == Ok("1") => {
                return Err(format!(
                    "the Kubernetes testbed is required (TOYGRES_REQUIRE_KUBE_TESTBED=1): {why}"
                )
                .into());
            }
            Err(why) => {
                eprintln!(
                    "\n!!! {test}: NOT RUN: no Kubernetes testbed on this machine: {why}. \
                     CI sets TOYGRES_REQUIRE_KUBE_TESTBED=1 and fails instead.\n"
                );
                return Ok(None);
            }
        };
        let dir = toygres_activities::testkit::shared_tempdir()?;
        let output = Command::new(repository().join("scripts/kube-testbed.sh"))
            .arg("start")
            .arg(dir.path().join("cluster"))
            .env("TOYGRES_KUBE_BIN", &bin)
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            return Err(format!(
                "kube-testbed.sh start failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        let admin = client_for(&dir.path().join("cluster/admin.kubeconfig")).await?;
        let mut config = AgentConfig::new(NS, dir.path().join("node"));
        config.ports = toygres_activities::testkit::port_range_for(&format!("{test}-pods"), 20);
        config.finalizer_hold = finalizer_hold;
        let agent = NodeAgent::start(admin.clone(), config).await?;
        Ok(Some(Self {
            dir,
            admin,
            agent: Some(agent),
        }))
    }

    /// The ServiceAccount's kubeconfig.
    fn service_account_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("cluster/toygres.kubeconfig")
    }

    /// `toygres serve` on the Kubernetes backend as the ServiceAccount, with `extra` settings.
    async fn serve(
        &self,
        workspace: &Workspace,
        log: &str,
        extra: &[(&str, &str)],
    ) -> Fallible<Server> {
        let kubeconfig = self.service_account_kubeconfig();
        let kubeconfig = kubeconfig.to_str().ok_or("path is not UTF-8")?;
        let versions = installed_versions().join(",");
        let mut env = vec![
            ("TOYGRES_BACKEND", "kubernetes"),
            ("KUBECONFIG", kubeconfig),
            ("KUBERNETES_SERVICE_HOST", ""),
            ("TOYGRES_K8S_CONNECT", "port-forward"),
            ("TOYGRES_K8S_VERSIONS", versions.as_str()),
            ("TOYGRES_HEALTH_INTERVAL_SECS", "1"),
            ("TOYGRES_DRIFT_INTERVAL_SECS", "1"),
            ("TOYGRES_DRIFT_GRACE_SECS", "2"),
        ];
        env.extend_from_slice(extra);
        workspace.start_server(log, &env).await
    }

    /// The names of every object of kind `K` labelled with instance `name`.
    async fn labelled<K>(&self, name: &str) -> Fallible<Vec<String>>
    where
        K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        // Across namespaces: cluster-scoped volumes too.
        let api: Api<K> = Api::all(self.admin.clone());
        let listed = api
            .list(&ListParams::default().labels(&labels::instance_selector(name)))
            .await?;
        Ok(listed
            .items
            .iter()
            .filter_map(|object| Some(format!("{}/{}", K::kind(&()), object.meta().name.clone()?)))
            .collect())
    }

    /// Every pod, claim, volume, Service, Secret, NetworkPolicy and StatefulSet labelled with
    /// instance `name`.
    async fn everything_labelled(&self, name: &str) -> Fallible<Vec<String>> {
        let mut all = self.labelled::<Pod>(name).await?;
        all.extend(self.labelled::<PersistentVolumeClaim>(name).await?);
        all.extend(self.labelled::<PersistentVolume>(name).await?);
        all.extend(self.labelled::<Service>(name).await?);
        all.extend(self.labelled::<Secret>(name).await?);
        all.extend(self.labelled::<NetworkPolicy>(name).await?);
        all.extend(self.labelled::<StatefulSet>(name).await?);
        Ok(all)
    }

    /// Waits until nothing is labelled with instance `name` (pods and volumes go a moment
    /// after the delete: the garbage collector, the kubelet, the binder).
    async fn wait_nothing_labelled(&self, name: &str) -> TestResult {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let left = self.everything_labelled(name).await?;
            if left.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("left behind for {name}: {left:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Forwards a local port to port 5432 of pod `pod` through the API server, as the
    /// ServiceAccount (each accepted connection opens its own `pods/portforward`), for `psql`.
    async fn forward(&self, pod: &str) -> Fallible<(u16, tokio::task::JoinHandle<()>)> {
        let client = client_for(&self.service_account_kubeconfig()).await?;
        let pods: Api<Pod> = Api::namespaced(client, NS);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let pod = pod.to_string();
        let task = tokio::spawn(async move {
            while let Ok((mut local, _)) = listener.accept().await {
                let pods = pods.clone();
                let pod = pod.clone();
                tokio::spawn(async move {
                    if let Ok(mut remote) = tunnel::PodTunnel::open(&pods, &pod, 5432).await {
                        let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                    }
                });
            }
        });
        Ok((port, task))
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        // The agent's servers first, then the control plane.
        drop(self.agent.take());
        let _ = Command::new(repository().join("scripts/kube-testbed.sh"))
            .arg("stop")
            .arg(self.dir.path().join("cluster"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn installed_versions() -> Vec<String> {
    let mut versions: Vec<String> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .filter(|entry| entry.path().join("bin/postgres").exists())
                .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
}

/// `psql` at `host:port` as `postgres` with `password`: its output, or its error.
fn psql_at(host: &str, port: u16, password: &str, sql: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args([
            "-h",
            host,
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-v", "ON_ERROR_STOP=1", "-X", "-A", "-t", "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run psql: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

fn text<'a>(value: &'a Value, what: &str) -> Fallible<&'a str> {
    value
        .as_str()
        .ok_or_else(|| format!("no {what} in {value}").into())
}

/// Creates an instance over REST and waits for the create: `(password, instance)`.
async fn create(server: &Server, body: Value) -> Fallible<(String, Value)> {
    let name = text(&body["name"], "name")?.to_string();
    let created = server.post("/instances", &body).await?;
    assert_eq!(
        created.status,
        reqwest::StatusCode::ACCEPTED,
        "{}",
        created.text
    );
    let password = text(&created.body["password"], "password")?.to_string();
    let operation = text(&created.body["operation"]["id"], "operation id")?.to_string();
    let done = server.wait_operation(&operation).await?;
    assert_eq!(done["status"], "succeeded", "{done}\n{}", server.log());
    let instance = server.get(&format!("/instances/{name}")).await?.body;
    Ok((password, instance))
}

/// Deletes an instance over REST and waits for the delete to succeed.
async fn delete(server: &Server, name: &str) -> TestResult {
    let deleted = server.delete(&format!("/instances/{name}")).await?;
    assert_eq!(
        deleted.status,
        reqwest::StatusCode::ACCEPTED,
        "{}",
        deleted.text
    );
    let operation = text(&deleted.body["operation"]["id"], "operation id")?.to_string();
    let done = server.wait_operation(&operation).await?;
    assert_eq!(done["status"], "succeeded", "{done}");
    Ok(())
}

/// Runs a day-2 action (`stop`, `start`, `restart`) over REST to its end.
async fn act(server: &Server, name: &str, action: &str) -> TestResult {
    let reply = server
        .post_empty(&format!("/instances/{name}/{action}"))
        .await?;
    assert_eq!(
        reply.status,
        reqwest::StatusCode::ACCEPTED,
        "{action}: {}",
        reply.text
    );
    let operation = text(&reply.body["operation"]["id"], "operation id")?.to_string();
    let done = server.wait_operation(&operation).await?;
    assert_eq!(done["status"], "succeeded", "{action}: {done}");
    Ok(())
}

/// `SELECT 42` through a port-forward to the instance's pod.
async fn query_through_forward(testbed: &Testbed, name: &str, password: &str) -> Fallible<String> {
    let (port, forward) = testbed.forward(&format!("{name}-0")).await?;
    let answer = tokio::task::spawn_blocking({
        let password = password.to_string();
        move || psql_at("127.0.0.1", port, &password, "SELECT 42")
    })
    .await?;
    forward.abort();
    Ok(answer?)
}

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

/// Runs `sql` on instance `name` through a port-forward.
async fn psql_through(
    testbed: &Testbed,
    name: &str,
    password: &str,
    sql: &str,
) -> Fallible<String> {
    let (port, forward) = testbed.forward(&format!("{name}-0")).await?;
    let answer = tokio::task::spawn_blocking({
        let (password, sql) = (password.to_string(), sql.to_string());
        move || psql_at("127.0.0.1", port, &password, &sql)
    })
    .await?;
    forward.abort();
    Ok(answer?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_create_and_mid_delete_finishes_after_a_restart() -> TestResult {
    let Some(testbed) = Testbed::start("kube_real_sigkill", Duration::from_secs(1)).await? else {
        return Ok(());
    };
    let workspace = Workspace::new("kube_real_sigkill")?;
    let mut server = testbed.serve(&workspace, "server.log", &[]).await?;
    let created = server
        .post(
            "/instances",
            &json!({"name": "ledger", "expose": "internal"}),
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
    let sets: Api<StatefulSet> = Api::namespaced(testbed.admin.clone(), NS);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while sets.get_opt("ledger").await?.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no StatefulSet");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    let server = testbed.serve(&workspace, "server2.log", &[]).await?;
    let done = server.wait_operation(&operation).await?;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        psql_through(&testbed, "ledger", &password, "SELECT 42").await?,
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
    let services: Api<Service> = Api::namespaced(testbed.admin.clone(), NS);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while services.get_opt("ledger").await?.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delete never began"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    let server = testbed.serve(&workspace, "server3.log", &[]).await?;
    let done = server.wait_operation(&operation).await?;
    assert_eq!(done["status"], "succeeded", "{done}");
    testbed.wait_nothing_labelled("ledger").await?;

    // A delete while the create runs: the delete wins, nothing is left.
    let created = server
        .post(
            "/instances",
            &json!({"name": "hasty", "expose": "internal"}),
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
    let secrets: Api<Secret> = Api::namespaced(testbed.admin.clone(), NS);
    let mut orphan = Secret::default();
    orphan.metadata.name = Some("ghost-credentials".into());
    orphan.metadata.labels = Some(labels::owned("ghost", "ins_ghost"));
    secrets
        .create(&kube::api::PostParams::default(), &orphan)
        .await?;
    testbed.wait_nothing_labelled("ghost").await?;
    Ok(())
}
