//! The real create-instance and delete-instance workflows on the Kubernetes backend, under the
//! Duroxide runtime on a real PostgreSQL, against kube-fake-client and a simulated cluster: what
//! a real API server cannot be made to do on demand (injected 500s, refused forwards) and the
//! exact set of calls the backend makes (checked against `deploy/rbac.yaml`). What a real
//! cluster does with those calls is shown on a real API server in `tests/kube_real.rs`.
//!
//! The simulated kubelet runs each StatefulSet's pod as a local PostgreSQL started with the
//! password it reads from the instance's Secret, on the port the Service is configured with;
//! the simulated cloud controller gives LoadBalancer Services the address 127.0.0.1. So the
//! create's connection test really connects, with the password the workflow sealed, through
//! the endpoint the backend read from the Service.
//!
//! Internal instances resolve to cluster DNS names, which a server outside the cluster cannot
//! reach: it tunnels through the API server's pod port-forward instead. Those tests put a real
//! HTTP API server in front of the fake ([`TestApiServer`]): it serves port-forwards to the
//! simulated pods' PostgreSQL and records every call, which is checked against the Role in
//! `deploy/rbac.yaml`.

mod support;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use kube_fake_client::{ClientBuilder, interceptor};
use reqwest::StatusCode;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use toygres_activities::backend::kubernetes::{
    ConnectMode, KubernetesBackend, KubernetesConfig, labels, manifests,
};
use toygres_activities::backend::local::{LocalBackend, LocalConfig};
use toygres_activities::backend::{Backend, DeployOutcome, DeploySpec, InstanceRef};
use toygres_activities::model::{Expose, HealthStatus, InstanceState, OperationStatus};
use toygres_activities::probe::{ConnectTarget, ProbeError, select_one};
use toygres_activities::seal::SecretKey;
use toygres_activities::testkit;
use toygres_activities::testkit::kube_apiserver::{Access, PortMap, TestApiServer};
use toygres_activities::testkit::kube_simulator::{Simulation, Simulator};
use toygres_activities::validation::InstanceName;
use toygres_orchestrations::types::{CreateLimits, HealthSettings};
use toygres_server::plane::CreateRequest;
use toygres_server::serve::config::{BackendKind, ServeConfig};

use support::TestResult;
use support::plane::{InProcessPlane, PlaneOptions, delete_all_instances};

type Fallible<T> = Result<T, support::TestError>;

const NS: &str = "toygres";

/// How the backend reaches the (fake) API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// Over HTTP to a [`TestApiServer`], tunnelling to internal instances as a server outside
    /// the cluster does.
    Http,
    /// As `Http`, with every port-forward forbidden (a Role without `pods/portforward`).
    HttpForwardsForbidden,
}

struct Harness {
    in_process: InProcessPlane,
    /// Straight into the fake (what the simulator and the assertions use).
    client: kube::Client,
    backend: KubernetesBackend,
    local: LocalBackend,
    api_server: Option<TestApiServer>,
    _simulator: Simulator,
    _dir: tempfile::TempDir,
}

/// Forwards port 5432 of pod `<instance>-0` to the simulated pod's local PostgreSQL.
fn pods_on(local: LocalBackend) -> PortMap {
    Arc::new(move |_namespace, pod, port| {
        let local = local.clone();
        Box::pin(async move {
            let address = async {
                let name = InstanceName::parse(pod.strip_suffix("-0")?).ok()?;
                if port != manifests::container_port().ok()? {
                    return None;
                }
                let endpoint = local.endpoint(InstanceRef::in_default(&name)).await.ok()?;
                format!("{}:{}", endpoint.host, endpoint.port).parse().ok()
            };
            address.await.ok_or(StatusCode::NOT_FOUND)
        })
    })
}

/// Refuses every port-forward, as an API server does for a Role without `pods/portforward`.
fn forbidden() -> PortMap {
    Arc::new(|_namespace, _pod, _port| Box::pin(async { Err(StatusCode::FORBIDDEN) }))
}

impl Harness {
    async fn start(
        test: &str,
        interceptors: Option<interceptor::Funcs>,
        transport: Transport,
    ) -> Fallible<Self> {
        let dir = testkit::shared_tempdir()?;
        // One port: the simulated pod's PostgreSQL listens where the Service says.
        let ports = testkit::port_range_for(test, 1);
        let port = *ports.start();
        let local = LocalBackend::new(LocalConfig {
            root: dir.path().join("pods"),
            bin_dir: None,
            ports,
        })?;
        let mut builder = ClientBuilder::new();
        if let Some(funcs) = interceptors {
            builder = builder.with_interceptor_funcs(funcs);
        }
        let client = builder.build().await?;
        let (api_server, backend_client, connect) = match transport {
            Transport::Http | Transport::HttpForwardsForbidden => {
                let forwards = if transport == Transport::Http {
                    pods_on(local.clone())
                } else {
                    forbidden()
                };
                let server = TestApiServer::start(client.clone(), forwards, &[NS]).await?;
                let http_client = server.client(NS)?;
                (Some(server), http_client, ConnectMode::PortForward)
            }
        };
        let backend = KubernetesBackend::new(
            backend_client,
            KubernetesConfig {
                versions: local.versions(),
                service_port: port,
                connect,
                ..KubernetesConfig::default()
            },
        );
        let simulator = Simulator::start(
            client.clone(),
            Simulation {
                namespace: NS.into(),
                load_balancer_ip: "127.0.0.1".into(),
                runtime: Some(local.clone()),
                interval: Duration::from_millis(100),
            },
        );
        let in_process = InProcessPlane::start(
            Arc::new(backend.clone()),
            PlaneOptions {
                create_limits: CreateLimits {
                    ready_timeout_ms: 60_000,
                    deploy_timeout_ms: 20_000,
                    ..CreateLimits::default()
                },
                health: HealthSettings {
                    interval_ms: 300,
                    ..HealthSettings::default()
                },
            },
        )
        .await?;
        Ok(Self {
            in_process,
            client,
            backend,
            local,
            api_server,
            _simulator: simulator,
            _dir: dir,
        })
    }

    /// The names of every object of kind `K` labelled with instance `name`.
    async fn labelled<K>(&self, name: &str) -> Fallible<Vec<String>>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), NS);
        let listed = api
            .list(&ListParams::default().labels(&labels::instance_selector(name)))
            .await?;
        Ok(listed
            .items
            .iter()
            .filter_map(|object| object.meta().name.clone())
            .collect())
    }

    async fn everything_labelled(&self, name: &str) -> Fallible<Vec<String>> {
        let mut all = self.labelled::<Secret>(name).await?;
        all.extend(self.labelled::<StatefulSet>(name).await?);
        all.extend(self.labelled::<Service>(name).await?);
        all.extend(self.labelled::<PersistentVolumeClaim>(name).await?);
        Ok(all)
    }
}

impl std::ops::Deref for Harness {
    type Target = InProcessPlane;

    fn deref(&self) -> &InProcessPlane {
        &self.in_process
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Never leave the simulated pods' postgres processes behind.
        delete_all_instances(&self.local);
    }
}

fn public_request(name: &str) -> Fallible<CreateRequest> {
    Ok(CreateRequest {
        name: InstanceName::parse(name)?,
        namespace: None,
        password: None,
        postgres_version: None,
        storage_gb: 2,
        expose: Expose::Public,
        dns_label: Some("orders".into()),
        parameters: Default::default(),
        deletion_protection: false,
        restore_from: None,
        idempotency: None,
    })
}

fn internal_request(name: &str) -> Fallible<CreateRequest> {
    Ok(CreateRequest {
        expose: Expose::Internal,
        dns_label: None,
        ..public_request(name)?
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_500s_on_the_service_fail_the_create_and_leave_nothing_behind() -> TestResult {
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = attempts.clone();
    let funcs = interceptor::Funcs::new().create(move |ctx| {
        if ctx.object.get("kind").and_then(|kind| kind.as_str()) == Some("Service") {
            seen.fetch_add(1, Ordering::SeqCst);
            return Err(kube_fake_client::Error::Internal("injected".into()));
        }
        Ok(None)
    });
    let harness = Harness::start("k8s_endless_500s", Some(funcs), Transport::Http).await?;
    let (_, done) = harness.create_and_wait(public_request("doomed")?).await?;
    assert_eq!(done.status, OperationStatus::Failed);
    let error = done.error.ok_or("no error recorded")?;
    assert_eq!(error.code.as_str(), "deploy_failed", "{error:?}");
    assert!(
        attempts.load(Ordering::SeqCst) >= 2,
        "the 500s were retried: {} attempts",
        attempts.load(Ordering::SeqCst)
    );
    assert_eq!(
        harness.everything_labelled("doomed").await?,
        Vec::<String>::new()
    );
    let instance = harness
        .plane
        .metadata
        .latest_instance("doomed")
        .await?
        .ok_or("row missing")?;
    assert_eq!(instance.state, InstanceState::Failed);
    Ok(())
}

impl Harness {
    /// The recording API server of an [`Transport::Http`] harness.
    fn api_server(&self) -> Fallible<&TestApiServer> {
        Ok(self.api_server.as_ref().ok_or("not an HTTP harness")?)
    }

    /// Port-forward requests to the pod of instance `name` so far.
    fn forwards_to(&self, name: &str) -> Fallible<usize> {
        let path = format!("/api/v1/namespaces/{NS}/pods/{name}-0/portforward");
        Ok(self
            .api_server()?
            .requests()
            .iter()
            .filter(|request| request.upgrade && request.path == path)
            .count())
    }

    /// Runs a create to its end and checks it succeeded.
    async fn create_succeeds(&self, request: CreateRequest) -> TestResult {
        let (_, done) = self.create_and_wait(request).await?;
        assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.error);
        Ok(())
    }

    /// Runs a delete to its end and checks it succeeded and left nothing labelled.
    async fn delete_succeeds(&self, name: &str) -> TestResult {
        let done = self.delete_and_wait(name).await?;
        assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.error);
        assert_eq!(self.everything_labelled(name).await?, Vec::<String>::new());
        Ok(())
    }

    /// Waits until the monitor of instance `name` has seen it healthy.
    async fn wait_healthy(&self, name: &str) -> TestResult {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let instance = self
                .plane
                .metadata
                .live_instance(name)
                .await?
                .ok_or("instance missing")?;
            if instance.health_status == HealthStatus::Healthy {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("{name} never became healthy: {instance:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_the_pod_refuses_fails_at_once_with_the_reason() -> TestResult {
    let client = ClientBuilder::new().build().await?;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let ports: PortMap = Arc::new(move |_namespace, pod, _port| {
        Box::pin(async move {
            (pod == "refusing-0")
                .then_some(closed)
                .ok_or(StatusCode::NOT_FOUND)
        })
    });
    let server = TestApiServer::start(client, ports, &[NS]).await?;
    let backend = KubernetesBackend::new(
        server.client(NS)?,
        KubernetesConfig {
            connect: ConnectMode::PortForward,
            ..KubernetesConfig::default()
        },
    );
    let target = |name: &str| -> Fallible<ConnectTarget> {
        Ok(ConnectTarget {
            name: InstanceName::parse(name)?,
            namespace: None,
            host: format!("{name}.{NS}.svc.cluster.local"),
            port: 5432,
            user: "postgres".into(),
            database: "postgres".into(),
            password: "not-used-here".into(),
        })
    };

    let started = std::time::Instant::now();
    let refused = select_one(&backend, &target("refusing")?, Duration::from_secs(20)).await;
    let Err(ProbeError::Postgres(message)) = refused else {
        return Err(format!("expected the pod's refusal, got {refused:?}").into());
    };
    assert!(
        message.contains("could not forward the port") && message.contains("refused"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it failed on the API server's word, not on the timeout"
    );

    // No such pod: the API server refuses the upgrade, and a retry may find the pod.
    let missing = select_one(&backend, &target("missing")?, Duration::from_secs(20)).await;
    let Err(ProbeError::Unreachable(error)) = missing else {
        return Err(format!("expected an unreachable pod, got {missing:?}").into());
    };
    assert!(error.to_string().contains("404"), "{error}");
    assert!(error.is_retryable(), "the pod may appear: {error}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_port_forward_fails_the_create_without_retrying() -> TestResult {
    let harness = Harness::start(
        "k8s_forbidden_forward",
        None,
        Transport::HttpForwardsForbidden,
    )
    .await?;
    let (_, done) = harness.create_and_wait(internal_request("sealed")?).await?;
    assert_eq!(done.status, OperationStatus::Failed);
    let error = done.error.ok_or("no error recorded")?;
    assert_eq!(error.code.as_str(), "connection_failed", "{error:?}");
    assert!(
        error.message.contains("pods/portforward"),
        "{}",
        error.message
    );
    assert_eq!(
        harness.forwards_to("sealed")?,
        1,
        "no retry can fix a forbidden forward"
    );
    assert_eq!(
        harness.everything_labelled("sealed").await?,
        Vec::<String>::new(),
        "the failed create cleaned up"
    );
    Ok(())
}

/// The documents of `deploy/rbac.yaml`.
fn rbac_documents() -> Fallible<Vec<serde_json::Value>> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/rbac.yaml"))?;
    Ok(serde_saphyr::from_multiple(&text)?)
}

/// The accesses the rules of the ClusterRoles in `deploy/rbac.yaml` grant (toygres-instances
/// where it is bound, toygres-nodes cluster-wide).
fn role_grants() -> Fallible<BTreeSet<Access>> {
    let documents = rbac_documents()?;
    assert!(
        documents.iter().all(|doc| doc["kind"] != "Role"),
        "the rules live in ClusterRoles, bound per namespace"
    );
    let mut granted = BTreeSet::new();
    for document in documents.iter().filter(|doc| doc["kind"] == "ClusterRole") {
        let role: ClusterRole = serde_json::from_value(document.clone())?;
        for rule in role.rules.into_iter().flatten() {
            for group in rule.api_groups.unwrap_or_default() {
                for resource in rule.resources.iter().flatten() {
                    for verb in &rule.verbs {
                        granted.insert(Access {
                            group: group.clone(),
                            resource: resource.clone(),
                            verb: verb.clone(),
                        });
                    }
                }
            }
        }
    }
    Ok(granted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_grants_exactly_the_calls_the_backend_makes() -> TestResult {
    let harness = Harness::start("k8s_rbac", None, Transport::Http).await?;
    // Everything the backend does: both kinds of instance through create (with the connection
    // test and health checks) and delete, and the drift reconciler's listing.
    harness.create_succeeds(internal_request("inside")?).await?;
    harness.wait_healthy("inside").await?;
    harness.delete_succeeds("inside").await?;
    harness.create_succeeds(public_request("outside")?).await?;
    harness.delete_succeeds("outside").await?;
    harness.backend.list_owned().await?;
    // A deploy that finds its objects (a create resumed after a crash) adopts them.
    let again = DeploySpec {
        name: InstanceName::parse("again")?,
        namespace: None,
        uid: "ins_again".into(),
        postgres_version: harness
            .local
            .versions()
            .first()
            .cloned()
            .ok_or("no version")?,
        storage_gb: 1,
        superuser: toygres_activities::roles::ADMIN.into(),
        superuser_verifier: toygres_activities::roles::scram_verifier("a-password-for-the-test"),
        expose: Expose::Internal,
        dns_label: None,
    };
    assert_eq!(
        harness.backend.deploy(&again).await?,
        DeployOutcome::Created
    );
    assert_eq!(
        harness.backend.deploy(&again).await?,
        DeployOutcome::Adopted
    );
    // Day-2 changes: stop and start scale the StatefulSet, a restart with settings replaces
    // its template's arguments and its pod, a resize grows its claim.
    harness.backend.stop(again.instance(), &again.uid).await?;
    harness.backend.start(again.instance(), &again.uid).await?;
    // The (simulated) StatefulSet controller brings the pod back, which the restart replaces.
    let pods: Api<Pod> = Api::namespaced(harness.client.clone(), NS);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pods.get_opt("again-0").await?.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no pod again-0");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settings = std::collections::BTreeMap::from([("work_mem".to_string(), "8MB".to_string())]);
    harness
        .backend
        .restart(again.instance(), &again.uid, Some(&settings))
        .await?;
    harness
        .backend
        .restart(again.instance(), &again.uid, None)
        .await?;
    // The (simulated) StatefulSet controller makes the claim a moment after the deploy.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(harness.client.clone(), NS);
    let claim = manifests::pvc_name(again.name.as_str(), &again.uid);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while claims.get_opt(&claim).await?.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no claim {claim}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    harness
        .backend
        .resize(again.instance(), &again.uid, 2)
        .await?;
    harness.backend.delete(again.instance(), &again.uid).await?;

    // SelfSubjectAccessReviews every authenticated user may create (system:basic-user).
    let used: BTreeSet<Access> = harness
        .api_server()?
        .requests()
        .iter()
        .flat_map(|request| request.accesses())
        .filter(|access| access.resource != "selfsubjectaccessreviews")
        .collect();
    let granted = role_grants()?;
    let missing: Vec<_> = used.difference(&granted).collect();
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(missing.is_empty(), "the Role lacks {missing:?}");
    assert!(
        unused.is_empty(),
        "the Role grants more than used: {unused:?}"
    );
    Ok(())
}

/// Parses `toygres serve`'s settings from `env` as if they were its environment (each variable
/// passed as its flag, so the test's own environment is left alone).
fn serve_config_from(env: &[(String, String)]) -> Fallible<ServeConfig> {
    use clap::{Args as _, FromArgMatches as _};
    let command = ServeConfig::augment_args(clap::Command::new("toygres"));
    let mut args = vec!["toygres".to_string()];
    for (name, value) in env {
        let flag = command
            .get_arguments()
            .find(|arg| arg.get_env().is_some_and(|env| env == name.as_str()))
            .and_then(|arg| arg.get_long())
            .ok_or(format!("{name} is not a setting of toygres serve"))?;
        args.push(format!("--{flag}={value}"));
    }
    let matches = command.try_get_matches_from(args)?;
    Ok(ServeConfig::from_arg_matches(&matches)?)
}

#[test]
fn the_server_manifests_fit_together() -> TestResult {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
    let mut documents: Vec<serde_json::Value> = Vec::new();
    for file in ["rbac.yaml", "server.yaml"] {
        let text = std::fs::read_to_string(format!("{root}/{file}"))?;
        documents.extend(serde_saphyr::from_multiple::<serde_json::Value>(&text)?);
    }
    let only = |kind: &str| -> Fallible<serde_json::Value> {
        let mut found = documents.iter().filter(|doc| doc["kind"] == kind);
        let first = found.next().ok_or(format!("no {kind}"))?.clone();
        assert!(found.next().is_none(), "one {kind}");
        Ok(first)
    };
    let account: ServiceAccount = serde_json::from_value(only("ServiceAccount")?)?;
    let binding: RoleBinding = serde_json::from_value(only("RoleBinding")?)?;
    let deployment: Deployment = serde_json::from_value(only("Deployment")?)?;
    let service: Service = serde_json::from_value(only("Service")?)?;
    let cluster_role = |name: &str| -> Fallible<ClusterRole> {
        let found = documents
            .iter()
            .find(|doc| doc["kind"] == "ClusterRole" && doc["metadata"]["name"] == name)
            .ok_or(format!("no ClusterRole {name}"))?;
        Ok(serde_json::from_value(found.clone())?)
    };
    // Cluster-wide: listing nodes (their region), nothing else.
    let nodes = cluster_role("toygres-nodes")?;
    let cluster_binding: ClusterRoleBinding = serde_json::from_value(only("ClusterRoleBinding")?)?;
    let cluster_rules = nodes.rules.unwrap_or_default();
    assert!(
        cluster_rules.iter().all(|rule| {
            rule.resources.as_deref() == Some(&["nodes".to_string()][..]) && rule.verbs == ["list"]
        }),
        "cluster-wide, only nodes may be listed: {cluster_rules:?}"
    );
    assert_eq!(cluster_binding.role_ref.kind, "ClusterRole");
    assert_eq!(
        Some(&cluster_binding.role_ref.name),
        nodes.metadata.name.as_ref()
    );
    assert!(
        cluster_binding
            .subjects
            .iter()
            .flatten()
            .all(|subject| subject.kind == "ServiceAccount"
                && Some(&subject.name) == account.metadata.name.as_ref()),
        "only the server's ServiceAccount lists nodes"
    );

    // The instances' verbs are granted per namespace: by a RoleBinding of toygres-instances in
    // the namespace, to the ServiceAccount the Deployment runs as.
    let instances = cluster_role("toygres-instances")?;
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(
        Some(&binding.role_ref.name),
        instances.metadata.name.as_ref()
    );
    assert_eq!(binding.metadata.namespace.as_deref(), Some(NS));
    let subjects = binding.subjects.unwrap_or_default();
    assert!(
        subjects
            .iter()
            .any(|subject| subject.kind == "ServiceAccount"
                && Some(&subject.name) == account.metadata.name.as_ref())
    );
    let pod = deployment
        .spec
        .ok_or("no Deployment spec")?
        .template
        .spec
        .ok_or("no pod spec")?;
    assert_eq!(pod.service_account_name, account.metadata.name);

    // Its settings are the server's own and parse: the environment as the pod would have it.
    let container = pod.containers.first().ok_or("no container")?;
    let mut env = Vec::new();
    for variable in container.env.iter().flatten() {
        // Values from Secrets or the downward API stand in as valid examples.
        let value = match (&variable.value, variable.name.as_str()) {
            (Some(value), _) => value.clone(),
            (None, "TOYGRES_K8S_NAMESPACE") => "toygres".into(),
            (None, "DATABASE_URL") => "postgres://toygres@db:5432/toygres".into(),
            (None, "TOYGRES_SECRET_KEY") => SecretKey::generate().to_base64(),
            (None, "TOYGRES_API_TOKENS") => "admin:0123456789abcdef0123".into(),
            (None, other) => return Err(format!("no example for {other}").into()),
        };
        env.push((variable.name.clone(), value));
    }
    let config = serve_config_from(&env)?;
    assert_eq!(config.backend, BackendKind::Kubernetes);
    assert!(
        config.api_tokens.is_some(),
        "it listens beyond loopback, so it needs API tokens"
    );
    assert!(
        !config.listen.ip().is_loopback(),
        "reachable through its Service"
    );

    // The probes and the Service reach the API's port, on paths that need no token.
    let port = i32::from(config.listen.port());
    let container_port = container
        .ports
        .iter()
        .flatten()
        .find(|p| p.container_port == port)
        .ok_or("the API port is not declared")?;
    for probe in [&container.readiness_probe, &container.liveness_probe] {
        let get = probe
            .as_ref()
            .and_then(|probe| probe.http_get.as_ref())
            .ok_or("a probe is missing")?;
        let path = get.path.as_deref().unwrap_or("/");
        assert!(
            toygres_server::http::api::auth::PUBLIC_PATHS.contains(&path),
            "{path}"
        );
        assert_eq!(
            get.port,
            IntOrString::String(container_port.name.clone().ok_or("unnamed port")?)
        );
    }
    let service_spec = service.spec.ok_or("no Service spec")?;
    assert_eq!(
        service_spec.selector,
        deployment.metadata.labels.map(|labels| labels
            .into_iter()
            .filter(|(key, _)| key == "app.kubernetes.io/name")
            .collect())
    );
    let target = service_spec
        .ports
        .iter()
        .flatten()
        .find_map(|p| p.target_port.clone())
        .ok_or("no target port")?;
    assert_eq!(
        target,
        IntOrString::String(container_port.name.clone().ok_or("unnamed port")?)
    );
    Ok(())
}
