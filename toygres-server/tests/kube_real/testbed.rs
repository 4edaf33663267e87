//! A throwaway Kubernetes control plane for one test (`scripts/kube-testbed.sh`), the node
//! agent serving its namespaces, and the REST and psql helpers the tests share.

use crate::support::{Server, StartOptions, TestError, TestResult, Workspace};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Service,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use toygres_activities::backend::kubernetes::{install_crypto_provider, labels, tunnel};
use toygres_activities::testkit::node_agent::{AgentConfig, NodeAgent};

pub(crate) type Fallible<T> = Result<T, TestError>;

/// The server's default namespace, where `deploy/rbac.yaml` binds it.
pub(crate) const NS: &str = "toygres";
/// A second namespace every testbed has, without a RoleBinding until a test makes one.
pub(crate) const TEAM_B: &str = "team-b";
/// A third namespace every testbed has, never bound.
pub(crate) const TEAM_C: &str = "team-c";
/// The version `scripts/kube-testbed-build.sh` builds by default.
const KUBE_VERSION: &str = "v1.20.2";

/// An object labelled with an instance.
pub(crate) struct Labelled {
    /// Its kind.
    kind: String,
    /// Its namespace (`None`: cluster-scoped).
    namespace: Option<String>,
    /// Its name.
    name: String,
}

/// A running testbed; stopped (and its folder removed) on drop.
pub(crate) struct Testbed {
    dir: tempfile::TempDir,
    pub(crate) admin: kube::Client,
    agent: Option<NodeAgent>,
}

pub(crate) fn repository() -> PathBuf {
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
    pub(crate) async fn start(test: &str, finalizer_hold: Duration) -> Fallible<Option<Self>> {
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
        let namespaces: Api<Namespace> = Api::all(admin.clone());
        for namespace in [TEAM_B, TEAM_C] {
            let mut object = Namespace::default();
            object.metadata.name = Some(namespace.into());
            namespaces.create(&PostParams::default(), &object).await?;
        }
        let mut config = AgentConfig::new(NS, dir.path().join("node"))
            .with_namespace(TEAM_B)
            .with_namespace(TEAM_C);
        config.ports = toygres_activities::testkit::port_range_for(&format!("{test}-pods"), 20);
        config.finalizer_hold = finalizer_hold;
        let agent = NodeAgent::start(admin.clone(), config).await?;
        Ok(Some(Self {
            dir,
            admin,
            agent: Some(agent),
        }))
    }

    /// A client authenticated as the server's ServiceAccount.
    pub(crate) async fn service_account(&self) -> Fallible<kube::Client> {
        client_for(&self.service_account_kubeconfig()).await
    }

    /// Binds the ClusterRole toygres-instances to the ServiceAccount in `namespace`, as
    /// deploy/README.md says to add a namespace.
    pub(crate) async fn bind(&self, namespace: &str) -> TestResult {
        let binding = RoleBinding {
            metadata: kube::api::ObjectMeta {
                name: Some("toygres".into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: "toygres-instances".into(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: "toygres".into(),
                namespace: Some(NS.into()),
                ..Default::default()
            }]),
        };
        Api::<RoleBinding>::namespaced(self.admin.clone(), namespace)
            .create(&PostParams::default(), &binding)
            .await?;
        Ok(())
    }

    /// Removes the RoleBinding [`Testbed::bind`] made in `namespace`.
    pub(crate) async fn unbind(&self, namespace: &str) -> TestResult {
        Api::<RoleBinding>::namespaced(self.admin.clone(), namespace)
            .delete("toygres", &DeleteParams::default())
            .await?;
        Ok(())
    }

    /// Where every object labelled with instance `name` is: `(kind, namespace)` (volumes,
    /// cluster-scoped, left out).
    pub(crate) async fn placement_of(&self, name: &str) -> Fallible<Vec<(String, Option<String>)>> {
        Ok(self
            .all_labelled(name)
            .await?
            .into_iter()
            .filter(|object| object.kind != "PersistentVolume")
            .map(|object| (object.kind, object.namespace))
            .collect())
    }

    /// The ServiceAccount's kubeconfig.
    pub(crate) fn service_account_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("cluster/toygres.kubeconfig")
    }

    /// `toygres serve` on the Kubernetes backend as the ServiceAccount, with `extra` settings,
    /// once it is ready.
    pub(crate) async fn serve(
        &self,
        workspace: &Workspace,
        log: &str,
        extra: &[(&str, &str)],
    ) -> Fallible<Server> {
        self.serve_with(workspace, log, extra, &StartOptions::default())
            .await
    }

    /// `toygres serve` as [`Testbed::serve`] does, started as `options` say.
    pub(crate) async fn serve_with(
        &self,
        workspace: &Workspace,
        log: &str,
        extra: &[(&str, &str)],
        options: &StartOptions,
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
        workspace.start_server_with(log, &env, options).await
    }

    /// Every object of kind `K` labelled with instance `name`, in any namespace.
    async fn labelled<K>(&self, name: &str) -> Fallible<Vec<Labelled>>
    where
        K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let api: Api<K> = Api::all(self.admin.clone());
        let listed = api
            .list(&ListParams::default().labels(&labels::instance_selector(name)))
            .await?;
        Ok(listed
            .items
            .iter()
            .map(|object| Labelled {
                kind: K::kind(&()).to_string(),
                namespace: object.meta().namespace.clone(),
                name: object.meta().name.clone().unwrap_or_default(),
            })
            .collect())
    }

    /// Every pod, claim, volume, Service, Secret, NetworkPolicy and StatefulSet labelled with
    /// instance `name`.
    async fn all_labelled(&self, name: &str) -> Fallible<Vec<Labelled>> {
        let mut all = self.labelled::<Pod>(name).await?;
        all.extend(self.labelled::<PersistentVolumeClaim>(name).await?);
        all.extend(self.labelled::<PersistentVolume>(name).await?);
        all.extend(self.labelled::<Service>(name).await?);
        all.extend(self.labelled::<Secret>(name).await?);
        all.extend(self.labelled::<NetworkPolicy>(name).await?);
        all.extend(self.labelled::<StatefulSet>(name).await?);
        Ok(all)
    }

    /// [`Testbed::all_labelled`] as `Kind/name`.
    pub(crate) async fn everything_labelled(&self, name: &str) -> Fallible<Vec<String>> {
        Ok(self
            .all_labelled(name)
            .await?
            .into_iter()
            .map(|object| format!("{}/{}", object.kind, object.name))
            .collect())
    }

    /// Waits until nothing is labelled with instance `name` (pods and volumes go a moment
    /// after the delete: the garbage collector, the kubelet, the binder).
    pub(crate) async fn wait_nothing_labelled(&self, name: &str) -> TestResult {
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

    /// Forwards a local port to port 5432 of pod `pod` of the default namespace; see
    /// [`Testbed::forward_in`].
    pub(crate) async fn forward(&self, pod: &str) -> Fallible<(u16, tokio::task::JoinHandle<()>)> {
        self.forward_in(NS, pod).await
    }

    /// Forwards a local port to port 5432 of pod `pod` of `namespace` through the API server,
    /// as the ServiceAccount (each accepted connection opens its own `pods/portforward`), for
    /// `psql`.
    pub(crate) async fn forward_in(
        &self,
        namespace: &str,
        pod: &str,
    ) -> Fallible<(u16, tokio::task::JoinHandle<()>)> {
        let client = self.service_account().await?;
        let pods: Api<Pod> = Api::namespaced(client, namespace);
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

pub(crate) fn installed_versions() -> Vec<String> {
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
pub(crate) fn psql_at(host: &str, port: u16, password: &str, sql: &str) -> Result<String, String> {
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

pub(crate) fn text<'a>(value: &'a Value, what: &str) -> Fallible<&'a str> {
    value
        .as_str()
        .ok_or_else(|| format!("no {what} in {value}").into())
}

/// Creates an instance over REST and waits for the create: `(password, instance)`.
pub(crate) async fn create(server: &Server, body: Value) -> Fallible<(String, Value)> {
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
pub(crate) async fn delete(server: &Server, name: &str) -> TestResult {
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
pub(crate) async fn act(server: &Server, name: &str, action: &str) -> TestResult {
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
pub(crate) async fn query_through_forward(
    testbed: &Testbed,
    name: &str,
    password: &str,
) -> Fallible<String> {
    let (port, forward) = testbed.forward(&format!("{name}-0")).await?;
    let answer = tokio::task::spawn_blocking({
        let password = password.to_string();
        move || psql_at("127.0.0.1", port, &password, "SELECT 42")
    })
    .await?;
    forward.abort();
    Ok(answer?)
}

/// Runs `sql` on instance `name` of the default namespace through a port-forward.
pub(crate) async fn psql_through(
    testbed: &Testbed,
    name: &str,
    password: &str,
    sql: &str,
) -> Fallible<String> {
    psql_through_in(testbed, NS, name, password, sql).await
}

/// Runs `sql` on instance `name` of `namespace` through a port-forward.
pub(crate) async fn psql_through_in(
    testbed: &Testbed,
    namespace: &str,
    name: &str,
    password: &str,
    sql: &str,
) -> Fallible<String> {
    let (port, forward) = testbed.forward_in(namespace, &format!("{name}-0")).await?;
    let answer = tokio::task::spawn_blocking({
        let (password, sql) = (password.to_string(), sql.to_string());
        move || psql_at("127.0.0.1", port, &password, &sql)
    })
    .await?;
    forward.abort();
    Ok(answer?)
}
