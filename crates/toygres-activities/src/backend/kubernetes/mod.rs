//! The Kubernetes backend: each instance is a Secret, a StatefulSet (one pod and its PVC) and a
//! Service in one namespace, all labelled `app.kubernetes.io/managed-by=toygres`,
//! `toygres.io/instance=<name>` and `toygres.io/uid=<uid>`.
//!
//! The [`kube::Client`] is injected, so tests swap its transport (kube-fake-client, tower-test).

#[cfg(feature = "testkit")]
pub mod apiserver;
mod config;
mod errors;
pub mod labels;
pub mod manifests;
#[cfg(any(test, feature = "testkit"))]
pub mod simulator;
#[cfg(test)]
mod tests;
pub mod tunnel;

pub use config::{ConnectMode, KubernetesConfig, Resources};

use super::{
    Backend, BackendError, DeployOutcome, DeploySpec, Endpoint, InstanceStream, Readiness, dial_tcp,
};
use crate::validation::InstanceName;
use async_trait::async_trait;
use errors::{classify, is_already_exists, is_not_found};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, Resource, ResourceExt as _};
use labels::Ownership;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;

/// Installs rustls's ring provider as the process default, once (kube's TLS needs one; a test
/// build may link a second provider, and then none is picked automatically).
pub fn install_crypto_provider() {
    // Fails only when a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs each instance as a StatefulSet in one namespace of a cluster.
#[derive(Clone)]
pub struct KubernetesBackend {
    client: Client,
    config: KubernetesConfig,
    /// Whether internal instances are reached through a port-forward.
    tunnels_internal: bool,
}

impl std::fmt::Debug for KubernetesBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesBackend")
            .field("config", &self.config)
            .field("tunnels_internal", &self.tunnels_internal)
            .finish_non_exhaustive()
    }
}

/// Bounds of the objects the backend manages.
trait Managed:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
{
}

impl<K> Managed for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
{
}

impl KubernetesBackend {
    /// A backend using `client` (its transport may be a fake in tests).
    pub fn new(client: Client, config: KubernetesConfig) -> Self {
        let tunnels_internal = config.connect.tunnels(ConnectMode::in_cluster());
        Self {
            client,
            config,
            tunnels_internal,
        }
    }

    /// Whether internal instances are reached through a port-forward (rather than by their
    /// cluster DNS name).
    pub fn tunnels_internal(&self) -> bool {
        self.tunnels_internal
    }

    /// Connects with `KUBECONFIG` (or `~/.kube/config`) or, inside a cluster, the pod's service
    /// account.
    pub async fn connect(config: KubernetesConfig) -> Result<Self, BackendError> {
        install_crypto_provider();
        let client = Client::try_default().await.map_err(|error| {
            BackendError::Permanent(format!("no Kubernetes cluster configured: {error}"))
        })?;
        Ok(Self::new(client, config))
    }

    /// The settings.
    pub fn config(&self) -> &KubernetesConfig {
        &self.config
    }

    fn api<K: Managed>(&self) -> Api<K> {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }

    /// Creates `object`, or adopts it when it exists with this incarnation's labels.
    async fn create_or_adopt<K: Managed>(
        &self,
        object: &K,
        spec: &DeploySpec,
    ) -> Result<DeployOutcome, BackendError> {
        let api = self.api::<K>();
        let kind = K::kind(&());
        let name = object.name_any();
        let what = format!("{kind} {name}");
        let error = match api.create(&PostParams::default(), object).await {
            Ok(_) => return Ok(DeployOutcome::Created),
            Err(error) if is_already_exists(&error) => error,
            Err(error) => return Err(classify(&format!("creating {what}"), error)),
        };
        let existing = match api.get_opt(&name).await {
            Ok(Some(existing)) => existing,
            // Deleted in between (a finishing delete): the next attempt creates it.
            Ok(None) => {
                return Err(BackendError::Transient(format!(
                    "{what} vanished while adopting it: {error}"
                )));
            }
            Err(error) => return Err(classify(&format!("reading {what}"), error)),
        };
        match labels::ownership(existing.meta(), spec.name.as_str(), &spec.uid) {
            Ownership::Ours => Ok(DeployOutcome::Adopted),
            Ownership::Stale => {
                delete_named(&api, &name).await?;
                Err(BackendError::Transient(format!(
                    "{what} belonged to an older instance named {}; deleting it",
                    spec.name
                )))
            }
            Ownership::Foreign => Err(BackendError::Permanent(format!(
                "{what} already exists in namespace {} and is not managed by Toygres for this \
                 instance; remove or rename it",
                self.config.namespace
            ))),
        }
    }

    /// Deletes every object of kind `K` labelled with instance `name`.
    async fn sweep<K: Managed>(&self, name: &InstanceName) -> Result<(), BackendError> {
        let api = self.api::<K>();
        let listed = api
            .list(&ListParams::default().labels(&labels::instance_selector(name.as_str())))
            .await
            .map_err(|error| classify(&format!("listing {}s", K::kind(&())), error))?;
        for object in listed.items {
            delete_named(&api, &object.name_any()).await?;
        }
        Ok(())
    }

    /// The names of the instances that own objects of kind `K`.
    async fn owners<K: Managed>(&self, into: &mut BTreeSet<String>) -> Result<(), BackendError> {
        let listed = self
            .api::<K>()
            .list(&ListParams::default().labels(&labels::managed_selector()))
            .await
            .map_err(|error| classify(&format!("listing {}s", K::kind(&())), error))?;
        into.extend(
            listed
                .items
                .iter()
                .filter_map(|object| object.labels().get(labels::INSTANCE).cloned()),
        );
        Ok(())
    }

    /// The cluster DNS name of an internal instance's Service.
    fn cluster_host(&self, name: &InstanceName) -> String {
        format!("{name}.{}.svc.cluster.local", self.config.namespace)
    }

    async fn service(&self, name: &InstanceName) -> Result<Option<Service>, BackendError> {
        self.api::<Service>()
            .get_opt(name.as_str())
            .await
            .map_err(|error| classify(&format!("reading Service {name}"), error))
    }
}

/// Deletes one object, tolerating its absence.
async fn delete_named<K: Managed>(api: &Api<K>, name: &str) -> Result<(), BackendError> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(classify(
            &format!("deleting {} {name}", K::kind(&())),
            error,
        )),
    }
}

/// The public address of a LoadBalancer Service, once the cloud gave it one.
fn load_balancer_address(service: &Service) -> Option<String> {
    service
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .iter()
        .find_map(|ingress| ingress.ip.clone().or_else(|| ingress.hostname.clone()))
}

fn is_load_balancer(service: &Service) -> bool {
    service.spec.as_ref().and_then(|spec| spec.type_.as_deref()) == Some("LoadBalancer")
}

/// Whether the pod has condition `Ready=True`.
pub(crate) fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True")
        })
}

fn service_port(service: &Service) -> Option<u16> {
    service
        .spec
        .as_ref()?
        .ports
        .as_ref()?
        .iter()
        .find(|port| port.name.as_deref() == Some(manifests::POSTGRES))
        .and_then(|port| u16::try_from(port.port).ok())
}

#[async_trait]
impl Backend for KubernetesBackend {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn versions(&self) -> Vec<String> {
        self.config.versions.clone()
    }

    async fn deploy(&self, spec: &DeploySpec) -> Result<DeployOutcome, BackendError> {
        if !self.config.versions.contains(&spec.postgres_version) {
            return Err(BackendError::UnsupportedVersion {
                requested: spec.postgres_version.clone(),
                offered: self.config.versions.join(", "),
            });
        }
        let rendered = manifests::render(spec, &self.config)
            .map_err(|error| BackendError::Permanent(error.to_string()))?;
        let outcomes = [
            self.create_or_adopt(&rendered.secret, spec).await?,
            self.create_or_adopt(&rendered.statefulset, spec).await?,
            self.create_or_adopt(&rendered.service, spec).await?,
        ];
        if outcomes.contains(&DeployOutcome::Created) {
            Ok(DeployOutcome::Created)
        } else {
            Ok(DeployOutcome::Adopted)
        }
    }

    async fn readiness(&self, name: &InstanceName) -> Result<Readiness, BackendError> {
        let set = self
            .api::<StatefulSet>()
            .get_opt(name.as_str())
            .await
            .map_err(|error| classify(&format!("reading StatefulSet {name}"), error))?;
        if set.is_none() {
            return Ok(Readiness::Missing);
        }
        let pod_name = manifests::pod_name(name.as_str());
        let pod = self
            .api::<Pod>()
            .get_opt(&pod_name)
            .await
            .map_err(|error| classify(&format!("reading Pod {pod_name}"), error))?;
        match pod {
            None => {
                return Ok(Readiness::NotReady(format!(
                    "pod {pod_name} is not created yet"
                )));
            }
            Some(pod) if !pod_is_ready(&pod) => {
                let phase = pod
                    .status
                    .as_ref()
                    .and_then(|status| status.phase.clone())
                    .unwrap_or_else(|| "Pending".into());
                return Ok(Readiness::NotReady(format!(
                    "pod {pod_name} is not ready (phase {phase})"
                )));
            }
            Some(_) => {}
        }
        match self.service(name).await? {
            None => Ok(Readiness::NotReady(format!("Service {name} is missing"))),
            Some(service)
                if is_load_balancer(&service) && load_balancer_address(&service).is_none() =>
            {
                Ok(Readiness::NotReady(format!(
                    "Service {name} has no load-balancer address yet"
                )))
            }
            Some(_) => Ok(Readiness::Ready),
        }
    }

    async fn endpoint(&self, name: &InstanceName) -> Result<Endpoint, BackendError> {
        let service = self
            .service(name)
            .await?
            .ok_or_else(|| BackendError::NotDeployed(name.to_string()))?;
        let port = service_port(&service).unwrap_or(self.config.service_port);
        let host = if is_load_balancer(&service) {
            load_balancer_address(&service).ok_or_else(|| {
                BackendError::Transient(format!("Service {name} has no load-balancer address yet"))
            })?
        } else {
            self.cluster_host(name)
        };
        Ok(Endpoint { host, port })
    }

    async fn dial(
        &self,
        name: &InstanceName,
        endpoint: &Endpoint,
    ) -> Result<InstanceStream, BackendError> {
        if !(self.tunnels_internal && endpoint.host == self.cluster_host(name)) {
            return dial_tcp(endpoint).await;
        }
        let port = manifests::container_port()
            .map_err(|error| BackendError::Permanent(error.to_string()))?;
        let tunnel = tunnel::PodTunnel::open(
            &self.api::<Pod>(),
            &manifests::pod_name(name.as_str()),
            port,
        )
        .await?;
        Ok(Box::new(tunnel))
    }

    async fn delete(&self, name: &InstanceName) -> Result<(), BackendError> {
        let instance = name.as_str();
        delete_named(&self.api::<Service>(), instance).await?;
        delete_named(&self.api::<StatefulSet>(), instance).await?;
        delete_named(&self.api::<Secret>(), &manifests::secret_name(instance)).await?;
        if !self.config.retain_volumes {
            delete_named(
                &self.api::<PersistentVolumeClaim>(),
                &manifests::pvc_name(instance),
            )
            .await?;
        }
        // Whatever else carries the instance's label (renamed templates, older incarnations).
        self.sweep::<Service>(name).await?;
        self.sweep::<StatefulSet>(name).await?;
        self.sweep::<Secret>(name).await?;
        if !self.config.retain_volumes {
            self.sweep::<PersistentVolumeClaim>(name).await?;
        }
        Ok(())
    }

    async fn list_owned(&self) -> Result<Vec<InstanceName>, BackendError> {
        // PVCs are left out: retained volumes are kept on purpose, not orphans to remove.
        let mut names = BTreeSet::new();
        self.owners::<StatefulSet>(&mut names).await?;
        self.owners::<Service>(&mut names).await?;
        self.owners::<Secret>(&mut names).await?;
        Ok(names
            .iter()
            .filter_map(|name| InstanceName::parse(name).ok())
            .collect())
    }
}
