//! The real create-instance and delete-instance workflows on the Kubernetes backend, under the
//! Duroxide runtime on a real PostgreSQL, against kube-fake-client and a simulated cluster.
//!
//! The simulated kubelet runs each StatefulSet's pod as a local PostgreSQL started with the
//! password it reads from the instance's Secret, on the port the Service is configured with;
//! the simulated cloud controller gives LoadBalancer Services the address 127.0.0.1. So the
//! create's connection test really connects, with the password the workflow sealed, through
//! the endpoint the backend read from the Service. (Internal instances resolve to cluster DNS
//! names, which do not exist here: they are covered by the backend's unit tests.)

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service};
use kube::api::{Api, ListParams};
use kube_fake_client::{ClientBuilder, interceptor};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use toygres_activities::backend::Backend;
use toygres_activities::backend::kubernetes::simulator::{Simulation, Simulator};
use toygres_activities::backend::kubernetes::{KubernetesBackend, KubernetesConfig, labels};
use toygres_activities::backend::local::{LocalBackend, LocalConfig};
use toygres_activities::metadata::MetadataStore;
use toygres_activities::model::{Expose, InstanceState, OperationStatus};
use toygres_activities::registry::ActivityDeps;
use toygres_activities::seal::SecretKey;
use toygres_activities::testkit;
use toygres_activities::validation::InstanceName;
use toygres_orchestrations::types::{CreateLimits, DeleteLimits, HealthSettings};
use toygres_server::runtime::{RuntimeSettings, Workflows, open_store};
use toygres_server::service::{ControlPlane, CreateRequest};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type Fallible<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const NS: &str = "toygres";
const OPERATION_LIMIT: Duration = Duration::from_secs(120);

struct Harness {
    plane: ControlPlane,
    client: kube::Client,
    port: u16,
    local: LocalBackend,
    _workflows: Workflows,
    _simulator: Simulator,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(test: &str, interceptors: Option<interceptor::Funcs>) -> Fallible<Self> {
        let dir = testkit::shared_tempdir()?;
        let database_url = testkit::fresh_database().await?;
        let metadata = MetadataStore::connect(&database_url, 5).await?;
        metadata.migrate().await?;
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
        let backend = KubernetesBackend::new(
            client.clone(),
            KubernetesConfig {
                versions: local.versions(),
                service_port: port,
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
        let secret_key = SecretKey::generate();
        let deps = ActivityDeps {
            backend: Arc::new(backend.clone()),
            metadata: metadata.clone(),
            secret_key: secret_key.clone(),
            step_delay: None,
        };
        let workflows = Workflows::start(
            open_store(&database_url).await?,
            deps,
            &RuntimeSettings::default(),
        )
        .await;
        let plane = ControlPlane {
            metadata,
            client: workflows.client.clone(),
            backend_kind: backend.kind().into(),
            versions: backend.versions(),
            secret_key,
            create_limits: CreateLimits {
                ready_timeout_ms: 60_000,
                deploy_timeout_ms: 20_000,
                ..CreateLimits::default()
            },
            delete_limits: DeleteLimits::default(),
            health: HealthSettings::default(),
            drift_interval: Duration::from_secs(60),
            drift_grace: Duration::from_secs(300),
        };
        Ok(Self {
            plane,
            client,
            port,
            local,
            _workflows: workflows,
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

impl Drop for Harness {
    fn drop(&mut self) {
        // Never leave the simulated pods' postgres processes behind.
        let local = self.local.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                for name in local.list_owned().await.unwrap_or_default() {
                    let _ = local.delete(&name).await;
                }
            });
        })
        .join();
    }
}

fn public_request(name: &str) -> Fallible<CreateRequest> {
    Ok(CreateRequest {
        name: InstanceName::parse(name)?,
        password: None,
        postgres_version: None,
        storage_gb: 2,
        expose: Expose::Public,
        dns_label: Some("orders".into()),
        idempotency: None,
    })
}

async fn query(port: u16, password: &str) -> Result<i32, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname("postgres")
        .password(password)
        .connect_timeout(Duration::from_secs(5))
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(connection);
    client.query_one("SELECT 40 + 2", &[]).await?.try_get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_delete_run_end_to_end_on_the_kubernetes_backend() -> TestResult {
    let harness = Harness::start("k8s_create_and_delete_end_to_end", None).await?;
    let accepted = harness.plane.create(public_request("orders-db")?).await?;
    let done = harness
        .plane
        .wait_terminal(&accepted.operation.record.id, OPERATION_LIMIT)
        .await?;
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.error);

    let instance = harness
        .plane
        .metadata
        .live_instance("orders-db")
        .await?
        .ok_or("instance missing")?;
    assert_eq!(instance.state, InstanceState::Running);
    assert_eq!(
        instance.host.as_deref(),
        Some("127.0.0.1"),
        "the load balancer's address"
    );
    assert_eq!(instance.port, Some(i32::from(harness.port)));
    assert_eq!(query(harness.port, &accepted.password).await?, 42);

    // The objects: labelled, the password only in the Secret, the Service public with its label.
    assert_eq!(
        harness.labelled::<Secret>("orders-db").await?,
        ["orders-db-credentials"]
    );
    assert_eq!(
        harness.labelled::<StatefulSet>("orders-db").await?,
        ["orders-db"]
    );
    let services: Api<Service> = Api::namespaced(harness.client.clone(), NS);
    let service = services.get("orders-db").await?;
    assert_eq!(
        service.spec.and_then(|s| s.type_).as_deref(),
        Some("LoadBalancer")
    );
    let annotations = service.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations
            .get(KubernetesConfig::DEFAULT_DNS_LABEL_ANNOTATION)
            .map(String::as_str),
        Some("orders")
    );
    let sets: Api<StatefulSet> = Api::namespaced(harness.client.clone(), NS);
    let set = serde_json::to_string(&sets.get("orders-db").await?)?;
    assert!(
        !set.contains(&accepted.password),
        "the password is not in the StatefulSet"
    );

    let deleted = harness
        .plane
        .delete(&InstanceName::parse("orders-db")?, None)
        .await?;
    let done = harness
        .plane
        .wait_terminal(&deleted.operation.record.id, OPERATION_LIMIT)
        .await?;
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.error);
    assert_eq!(
        harness.everything_labelled("orders-db").await?,
        Vec::<String>::new()
    );
    let gone = harness
        .plane
        .metadata
        .latest_instance("orders-db")
        .await?
        .ok_or("row missing")?;
    assert_eq!(gone.state, InstanceState::Deleted);
    Ok(())
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
    let harness = Harness::start("k8s_endless_500s", Some(funcs)).await?;
    let accepted = harness.plane.create(public_request("doomed")?).await?;
    let done = harness
        .plane
        .wait_terminal(&accepted.operation.record.id, OPERATION_LIMIT)
        .await?;
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
