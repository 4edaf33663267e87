//! For tests (feature `testkit`): what a cluster does besides its API, played against any API
//! (usually kube-fake-client, which stores objects and does nothing else).
//!
//! A task polls the API (the fake has no watch) and, like a kubelet and a cloud controller:
//! for every StatefulSet creates its PVC and its pod `<name>-0` and marks the pod Ready; for
//! every LoadBalancer Service sets `status.loadBalancer.ingress[0].ip`; removes the pod of a
//! StatefulSet that is gone. With a [`LocalBackend`], the pod is real: a local PostgreSQL
//! started as the postgres image would (the bootstrap superuser of `POSTGRES_USER`, with the
//! verifier of the instance's Secret), Ready once it accepts connections.

use crate::backend::kubernetes::labels;
use crate::backend::kubernetes::manifests::{self, PASSWORD_KEY};
use crate::backend::local::LocalBackend;
use crate::backend::{Backend, DeploySpec, Endpoint, InstanceRef};
use crate::model::Expose;
use crate::validation::InstanceName;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, PersistentVolumeClaim, Pod, PodCondition, PodStatus,
    Secret, Service, ServiceStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt as _};
use std::time::Duration;

/// What the simulated cluster does.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// The namespace it watches.
    pub namespace: String,
    /// The address load balancers get.
    pub load_balancer_ip: String,
    /// Runs each pod as a local PostgreSQL when set; pods are Ready at once otherwise.
    pub runtime: Option<LocalBackend>,
    /// How often it polls the API.
    pub interval: Duration,
}

/// The running simulation; stops when dropped.
#[derive(Debug)]
pub struct Simulator {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Simulator {
    /// Starts polling `client`.
    pub fn start(client: Client, simulation: Simulation) -> Self {
        let task = tokio::spawn(async move {
            loop {
                if let Err(error) = tick(&client, &simulation).await {
                    tracing::warn!(%error, "cluster simulator pass failed; retrying");
                }
                tokio::time::sleep(simulation.interval).await;
            }
        });
        Self { task }
    }
}

/// One pass over the API.
pub async fn tick(client: &Client, simulation: &Simulation) -> Result<(), kube::Error> {
    let ns = &simulation.namespace;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let all = ListParams::default();
    let live_sets = sets.list(&all).await?.items;
    for set in &live_sets {
        run_statefulset(client, simulation, set).await?;
    }
    for pod in pods.list(&all).await?.items {
        let owner = pod
            .labels()
            .get(labels::INSTANCE)
            .cloned()
            .unwrap_or_default();
        if !live_sets.iter().any(|set| set.name_any() == owner) {
            pods.delete(&pod.name_any(), &DeleteParams::default())
                .await?;
            if let (Some(runtime), Ok(name)) = (&simulation.runtime, InstanceName::parse(&owner)) {
                let uid = pod.labels().get(labels::UID).cloned().unwrap_or_default();
                let _ = runtime.delete(InstanceRef::in_default(&name), &uid).await;
            }
        }
    }
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    for mut service in services.list(&all).await?.items {
        let balanced =
            service.spec.as_ref().and_then(|spec| spec.type_.as_deref()) == Some("LoadBalancer");
        let addressed = service
            .status
            .as_ref()
            .and_then(|status| status.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .is_some_and(|ingress| !ingress.is_empty());
        if balanced && !addressed {
            service.status = Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![LoadBalancerIngress {
                        ip: Some(simulation.load_balancer_ip.clone()),
                        ..LoadBalancerIngress::default()
                    }]),
                }),
                ..ServiceStatus::default()
            });
            services
                .replace(&service.name_any(), &PostParams::default(), &service)
                .await?;
        }
    }
    Ok(())
}

async fn run_statefulset(
    client: &Client,
    simulation: &Simulation,
    set: &StatefulSet,
) -> Result<(), kube::Error> {
    let ns = &simulation.namespace;
    let name = set.name_any();
    let Some(spec) = &set.spec else {
        return Ok(());
    };
    // The StatefulSet controller: the PVC of the claim template.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    for template in spec.volume_claim_templates.iter().flatten() {
        let claim_name = format!("{}-{name}-0", template.name_any());
        if claims.get_opt(&claim_name).await?.is_none() {
            let mut claim = template.clone();
            claim.metadata.name = Some(claim_name);
            claim.metadata.namespace = Some(ns.clone());
            claims.create(&PostParams::default(), &claim).await?;
        }
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod_name = manifests::pod_name(&name);
    // Scaled to 0: the StatefulSet controller removes the pod.
    if spec.replicas == Some(0) {
        if pods.get_opt(&pod_name).await?.is_some() {
            pods.delete(&pod_name, &DeleteParams::default()).await?;
        }
        return Ok(());
    }
    // The kubelet: the pod, Ready when PostgreSQL would accept connections.
    let ready = match &simulation.runtime {
        Some(runtime) => run_locally(client, ns, runtime, set).await,
        None => true,
    };
    let existing = pods.get_opt(&pod_name).await?;
    let was_ready = existing
        .as_ref()
        .map(crate::backend::kubernetes::pod_is_ready);
    if was_ready == Some(ready) {
        return Ok(());
    }
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(pod_name.clone()),
            namespace: Some(ns.clone()),
            labels: spec
                .template
                .metadata
                .as_ref()
                .and_then(|meta| meta.labels.clone()),
            ..ObjectMeta::default()
        },
        spec: spec.template.spec.clone(),
        status: Some(PodStatus {
            phase: Some(if ready { "Running" } else { "Pending" }.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
    };
    if existing.is_some() {
        // A new pod rather than a status update: simpler than the status subresource, and
        // what a restarted pod looks like anyway.
        pods.delete(&pod_name, &DeleteParams::default()).await?;
    }
    pods.create(&PostParams::default(), &pod).await.map(drop)
}

/// Starts the pod's PostgreSQL on this machine with the Secret's password; true once it
/// accepts connections.
async fn run_locally(client: &Client, ns: &str, runtime: &LocalBackend, set: &StatefulSet) -> bool {
    let Ok(name) = InstanceName::parse(&set.name_any()) else {
        return false;
    };
    if let Ok(endpoint) = runtime.endpoint(InstanceRef::in_default(&name)).await {
        // Started already: Ready once it accepts TCP connections (what pg_isready checks).
        return accepts_connections(&endpoint).await;
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let Ok(Some(secret)) = secrets
        .get_opt(&manifests::secret_name(name.as_str()))
        .await
    else {
        return false;
    };
    let password = secret
        .string_data
        .as_ref()
        .and_then(|data| data.get(PASSWORD_KEY).cloned())
        .or_else(|| {
            secret
                .data
                .as_ref()
                .and_then(|data| data.get(PASSWORD_KEY))
                .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
        });
    let Some(verifier) = password else {
        return false;
    };
    let container = set
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .and_then(|pod| pod.containers.first());
    let image = container
        .and_then(|container| container.image.clone())
        .unwrap_or_default();
    // What the postgres image's entrypoint makes the bootstrap superuser.
    let superuser = container
        .and_then(|container| container.env.as_ref())
        .and_then(|env| env.iter().find(|variable| variable.name == "POSTGRES_USER"))
        .and_then(|variable| variable.value.clone())
        .unwrap_or_else(|| "postgres".into());
    let version = image.rsplit(':').next().unwrap_or_default().to_string();
    let spec = DeploySpec {
        name: name.clone(),
        namespace: None,
        uid: set.labels().get(labels::UID).cloned().unwrap_or_default(),
        postgres_version: version,
        storage_gb: 1,
        superuser,
        superuser_verifier: verifier,
        expose: Expose::Internal,
        dns_label: None,
    };
    if let Err(error) = runtime.deploy(&spec).await {
        tracing::warn!(%error, instance = %name, "simulated pod failed to start");
    }
    false
}

async fn accepts_connections(endpoint: &Endpoint) -> bool {
    let address = (endpoint.host.as_str(), endpoint.port);
    matches!(
        tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(address)
        )
        .await,
        Ok(Ok(_))
    )
}
