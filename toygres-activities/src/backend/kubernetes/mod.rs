//! The Kubernetes backend: each instance is a Secret, a StatefulSet (one pod and its PVC), a
//! Service and a NetworkPolicy in one namespace, all labelled
//! `app.kubernetes.io/managed-by=toygres`, `toygres.io/instance=<name>` and
//! `toygres.io/uid=<uid>`. Deletes name the incarnation: objects of another incarnation of the
//! same name are never removed by them.
//!
//! The [`kube::Client`] is injected, so tests swap its transport (kube-fake-client, tower-test).

mod config;
pub mod dns;
mod errors;
pub mod labels;
mod lifecycle;
pub mod manifests;
pub mod permissions;
#[cfg(test)]
mod tests;
pub mod tunnel;

pub use config::{ConnectMode, KubernetesConfig, Resources};

use super::{
    Backend, BackendError, DeployOutcome, DeploySpec, Endpoint, InstanceRef, InstanceStream,
    MissingPermission, OwnedInstance, PlacementError, Readiness, dial_tcp,
};
use crate::validation::InstanceName;
use async_trait::async_trait;
use errors::{classify, is_already_exists, is_not_found};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
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
    /// The DNS suffix read from the nodes' region, once found.
    region_suffix: std::sync::Arc<std::sync::OnceLock<String>>,
    /// The last permission check.
    permissions: std::sync::Arc<std::sync::Mutex<permissions::PermissionCache>>,
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
            region_suffix: Default::default(),
            permissions: Default::default(),
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

    /// The namespace `instance` lives in (the configured default when it names none).
    fn namespace_of<'a>(&'a self, instance: InstanceRef<'a>) -> &'a str {
        instance.namespace.unwrap_or(&self.config.namespace)
    }

    fn api<K: Managed>(&self, namespace: &str) -> Api<K> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Objects of kind `K` in the namespace of `instance`.
    fn api_of<K: Managed>(&self, instance: InstanceRef<'_>) -> Api<K> {
        self.api(self.namespace_of(instance))
    }

    /// Creates `object`, or adopts it when it exists with this incarnation's labels. An object
    /// of an older incarnation of the name is deleted and, like one that is terminating already
    /// (a LoadBalancer Service held by its cleanup finalizer), waited out until `deadline`: then
    /// the create is tried again. Past the deadline the error is retryable.
    async fn create_or_adopt<K: Managed>(
        &self,
        object: &K,
        spec: &DeploySpec,
        deadline: tokio::time::Instant,
    ) -> Result<DeployOutcome, BackendError> {
        let api = self.api_of::<K>(spec.instance());
        let kind = K::kind(&());
        let name = object.name_any();
        let what = format!("{kind} {name}");
        loop {
            let error = match api.create(&PostParams::default(), object).await {
                Ok(_) => return Ok(DeployOutcome::Created),
                Err(error) if is_already_exists(&error) => error,
                Err(error) => return Err(classify(&format!("creating {what}"), error)),
            };
            let existing = match api.get_opt(&name).await {
                Ok(Some(existing)) => existing,
                // Deleted in between (a finishing delete): create it now.
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(%what, %error, "vanished while adopting it; creating it");
                    continue;
                }
                Ok(None) => {
                    return Err(BackendError::Transient(format!(
                        "{what} vanished while adopting it: {error}"
                    )));
                }
                Err(error) => return Err(classify(&format!("reading {what}"), error)),
            };
            match labels::ownership(existing.meta(), spec.name.as_str(), &spec.uid) {
                Ownership::Ours if !is_terminating(existing.meta()) => {
                    return Ok(DeployOutcome::Adopted);
                }
                // Ours but being deleted (a delete of this incarnation won the race): a retry
                // after it finishes creates it again, if the create is still wanted.
                Ownership::Ours => {
                    return Err(BackendError::Transient(format!(
                        "{what} of this instance is being deleted"
                    )));
                }
                Ownership::Stale => {
                    self.clear_stale(&api, &existing, &what, deadline).await?;
                }
                Ownership::Foreign => {
                    return Err(BackendError::Permanent(format!(
                        "{what} already exists in namespace {} and is not managed by Toygres \
                         for this instance; remove or rename it",
                        self.namespace_of(spec.instance())
                    )));
                }
            }
        }
    }

    /// Deletes `stale` (an older incarnation's object) unless it is terminating already, then
    /// waits until it is gone, until `deadline`.
    async fn clear_stale<K: Managed>(
        &self,
        api: &Api<K>,
        stale: &K,
        what: &str,
        deadline: tokio::time::Instant,
    ) -> Result<(), BackendError> {
        if !is_terminating(stale.meta()) {
            tracing::info!(%what, "deleting a leftover of an older incarnation");
            delete_exactly(api, stale).await?;
        }
        wait_gone(api, stale, what, deadline).await
    }

    /// Waits out the pod of the instance's StatefulSet when it belongs to an older incarnation
    /// (deleting it unless it is terminating already), so the new StatefulSet's pod is never
    /// the old one's.
    async fn clear_stale_pod(
        &self,
        spec: &DeploySpec,
        deadline: tokio::time::Instant,
    ) -> Result<(), BackendError> {
        let api = self.api_of::<Pod>(spec.instance());
        let pod_name = manifests::pod_name(spec.name.as_str());
        let what = format!("Pod {pod_name}");
        let existing = api
            .get_opt(&pod_name)
            .await
            .map_err(|error| classify(&format!("reading {what}"), error))?;
        match existing {
            Some(pod)
                if labels::ownership(pod.meta(), spec.name.as_str(), &spec.uid)
                    == Ownership::Stale =>
            {
                self.clear_stale(&api, &pod, &what, deadline).await
            }
            _ => Ok(()),
        }
    }

    /// Deletes the object of kind `K` called `object` if it belongs to incarnation `uid` of
    /// instance `name` (exactly that object: the delete carries its Kubernetes uid as a
    /// precondition, so a newer object of the same name is never the one removed).
    async fn delete_if_ours<K: Managed>(
        &self,
        object: &str,
        instance: InstanceRef<'_>,
        uid: &str,
    ) -> Result<(), BackendError> {
        let name = instance.name;
        let api = self.api_of::<K>(instance);
        let what = format!("{} {object}", K::kind(&()));
        let existing = api
            .get_opt(object)
            .await
            .map_err(|error| classify(&format!("reading {what}"), error))?;
        match existing {
            Some(existing)
                if labels::ownership(existing.meta(), name.as_str(), uid) == Ownership::Ours =>
            {
                delete_exactly(&api, &existing).await
            }
            // Gone, or another incarnation's (or not ours at all): not this delete's to remove.
            _ => Ok(()),
        }
    }

    /// Deletes every object of kind `K` labelled with incarnation `uid` of instance `name`.
    async fn sweep<K: Managed>(
        &self,
        instance: InstanceRef<'_>,
        uid: &str,
    ) -> Result<(), BackendError> {
        let api = self.api_of::<K>(instance);
        let selector = labels::incarnation_selector(instance.name.as_str(), uid);
        let listed = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|error| classify(&format!("listing {}s", K::kind(&())), error))?;
        for object in &listed.items {
            delete_exactly(&api, object).await?;
        }
        Ok(())
    }

    /// The incarnations that own objects of kind `K`, in every allowed namespace.
    async fn owners<K: Managed>(
        &self,
        into: &mut BTreeSet<OwnedInstance>,
    ) -> Result<(), BackendError> {
        for namespace in &self.config.namespaces {
            let listed = self
                .api::<K>(namespace)
                .list(&ListParams::default().labels(&labels::managed_selector()))
                .await
                .map_err(|error| {
                    classify(&format!("listing {}s in {namespace}", K::kind(&())), error)
                })?;
            into.extend(listed.items.iter().filter_map(|object| {
                let labels = object.labels();
                Some(OwnedInstance {
                    name: InstanceName::parse(labels.get(labels::INSTANCE)?).ok()?,
                    namespace: Some(namespace.clone()),
                    uid: labels.get(labels::UID).cloned(),
                })
            }));
        }
        Ok(())
    }

    /// The cluster DNS name of an internal instance's Service.
    fn cluster_host(&self, instance: InstanceRef<'_>) -> String {
        format!(
            "{}.{}.svc.cluster.local",
            instance.name,
            self.namespace_of(instance)
        )
    }

    async fn service(&self, instance: InstanceRef<'_>) -> Result<Option<Service>, BackendError> {
        self.api_of::<Service>(instance)
            .get_opt(instance.name.as_str())
            .await
            .map_err(|error| classify(&format!("reading Service {instance}"), error))
    }
}

/// Deletes exactly `object` (its Kubernetes uid is a precondition), tolerating its absence.
async fn delete_exactly<K: Managed>(api: &Api<K>, object: &K) -> Result<(), BackendError> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: object.meta().uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    delete_with(api, &object.name_any(), &params).await
}

async fn delete_with<K: Managed>(
    api: &Api<K>,
    name: &str,
    params: &DeleteParams,
) -> Result<(), BackendError> {
    match api.delete(name, params).await {
        Ok(_) => Ok(()),
        Err(error) if is_not_found(&error) => Ok(()),
        // The precondition failed: the object was replaced meanwhile, by another incarnation.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(classify(
            &format!("deleting {} {name}", K::kind(&())),
            error,
        )),
    }
}

/// Whether the object is being deleted (it has a deletion timestamp; finalizers may hold it).
fn is_terminating(meta: &kube::api::ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

/// Waits (backing off from 100 ms to 1 s) until `object` (exactly it: by its Kubernetes uid) is
/// gone; past `deadline`, a retryable error.
async fn wait_gone<K: Managed>(
    api: &Api<K>,
    object: &K,
    what: &str,
    deadline: tokio::time::Instant,
) -> Result<(), BackendError> {
    let mut pause = std::time::Duration::from_millis(100);
    loop {
        let current = api
            .get_opt(&object.name_any())
            .await
            .map_err(|error| classify(&format!("reading {what}"), error))?;
        match current {
            Some(current) if current.meta().uid == object.meta().uid => {}
            _ => return Ok(()),
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(BackendError::Transient(format!(
                "{what} of an older incarnation is still terminating"
            )));
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(1));
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

    fn default_namespace(&self) -> &str {
        &self.config.namespace
    }

    fn allowed_namespaces(&self) -> Vec<String> {
        self.config.namespaces.clone()
    }

    async fn check_placement(&self, namespace: &str) -> Result<(), PlacementError> {
        self.placement(namespace).await
    }

    async fn missing_permissions(&self) -> Result<Vec<MissingPermission>, BackendError> {
        self.check_permissions().await
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
        let deadline = tokio::time::Instant::now() + self.config.terminating_wait;
        let secret = self
            .create_or_adopt(&rendered.secret, spec, deadline)
            .await?;
        let statefulset = self
            .create_or_adopt(&rendered.statefulset, spec, deadline)
            .await?;
        // After the StatefulSet: an older incarnation's set is gone by now, and its pod (which
        // the garbage collector removes) no longer comes back.
        self.clear_stale_pod(spec, deadline).await?;
        let outcomes = [
            secret,
            statefulset,
            self.create_or_adopt(&rendered.service, spec, deadline)
                .await?,
            self.create_or_adopt(&rendered.network_policy, spec, deadline)
                .await?,
        ];
        if outcomes.contains(&DeployOutcome::Created) {
            Ok(DeployOutcome::Created)
        } else {
            Ok(DeployOutcome::Adopted)
        }
    }

    async fn readiness(&self, instance: InstanceRef<'_>) -> Result<Readiness, BackendError> {
        let name = instance.name;
        let set = self
            .api_of::<StatefulSet>(instance)
            .get_opt(name.as_str())
            .await
            .map_err(|error| classify(&format!("reading StatefulSet {name}"), error))?;
        let incarnation = match &set {
            None => return Ok(Readiness::Missing),
            Some(set) if lifecycle::is_scaled_down(set) => return Ok(Readiness::Stopped),
            Some(set) => set.labels().get(labels::UID).cloned(),
        };
        let pod_name = manifests::pod_name(name.as_str());
        let pod = self
            .api_of::<Pod>(instance)
            .get_opt(&pod_name)
            .await
            .map_err(|error| classify(&format!("reading Pod {pod_name}"), error))?;
        let Some(pod) = pod else {
            return Ok(Readiness::NotReady(format!(
                "pod {pod_name} is not created yet"
            )));
        };
        if is_terminating(&pod.metadata) {
            return Ok(Readiness::NotReady(format!(
                "pod {pod_name} is terminating"
            )));
        }
        if pod.labels().get(labels::UID) != incarnation.as_ref() {
            return Ok(Readiness::NotReady(format!(
                "pod {pod_name} belongs to another incarnation"
            )));
        }
        if !pod_is_ready(&pod) {
            let phase = pod
                .status
                .as_ref()
                .and_then(|status| status.phase.clone())
                .unwrap_or_else(|| "Pending".into());
            return Ok(Readiness::NotReady(format!(
                "pod {pod_name} is not ready (phase {phase})"
            )));
        }
        match self.service(instance).await? {
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

    async fn endpoint(&self, instance: InstanceRef<'_>) -> Result<Endpoint, BackendError> {
        let name = instance.name;
        let service = self
            .service(instance)
            .await?
            .ok_or_else(|| BackendError::NotDeployed(instance.to_string()))?;
        let port = service_port(&service).unwrap_or(self.config.service_port);
        let host = if is_load_balancer(&service) {
            load_balancer_address(&service).ok_or_else(|| {
                BackendError::Transient(format!("Service {name} has no load-balancer address yet"))
            })?
        } else {
            self.cluster_host(instance)
        };
        Ok(Endpoint { host, port })
    }

    async fn dns_name(&self, instance: InstanceRef<'_>) -> Result<Option<String>, BackendError> {
        let Some(service) = self.service(instance).await? else {
            return Ok(None);
        };
        let Some(label) = self.dns_label_of(&service) else {
            return Ok(None);
        };
        Ok(self
            .dns_suffix()
            .await?
            .map(|suffix| dns::dns_name(label, &suffix)))
    }

    async fn dial(
        &self,
        instance: InstanceRef<'_>,
        endpoint: &Endpoint,
    ) -> Result<InstanceStream, BackendError> {
        if !(self.tunnels_internal && endpoint.host == self.cluster_host(instance)) {
            return dial_tcp(endpoint).await;
        }
        let port = manifests::container_port()
            .map_err(|error| BackendError::Permanent(error.to_string()))?;
        let tunnel = tunnel::PodTunnel::open(
            &self.api_of::<Pod>(instance),
            &manifests::pod_name(instance.name.as_str()),
            port,
        )
        .await?;
        Ok(Box::new(tunnel))
    }

    async fn delete(&self, instance: InstanceRef<'_>, uid: &str) -> Result<(), BackendError> {
        let object = instance.name.as_str();
        self.delete_if_ours::<Service>(object, instance, uid)
            .await?;
        self.delete_if_ours::<NetworkPolicy>(object, instance, uid)
            .await?;
        self.delete_if_ours::<StatefulSet>(object, instance, uid)
            .await?;
        self.delete_if_ours::<Secret>(&manifests::secret_name(object), instance, uid)
            .await?;
        if !self.config.retain_volumes {
            self.delete_if_ours::<PersistentVolumeClaim>(
                &manifests::pvc_name(object, uid),
                instance,
                uid,
            )
            .await?;
        }
        // Whatever else carries the incarnation's labels (objects of renamed templates).
        self.sweep::<Service>(instance, uid).await?;
        self.sweep::<NetworkPolicy>(instance, uid).await?;
        self.sweep::<StatefulSet>(instance, uid).await?;
        self.sweep::<Secret>(instance, uid).await?;
        if !self.config.retain_volumes {
            self.sweep::<PersistentVolumeClaim>(instance, uid).await?;
        }
        Ok(())
    }

    async fn list_owned(&self) -> Result<Vec<OwnedInstance>, BackendError> {
        // PVCs are left out: retained volumes are kept on purpose, not orphans to remove.
        let mut owners = BTreeSet::new();
        self.owners::<StatefulSet>(&mut owners).await?;
        self.owners::<Service>(&mut owners).await?;
        self.owners::<Secret>(&mut owners).await?;
        self.owners::<NetworkPolicy>(&mut owners).await?;
        Ok(owners.into_iter().collect())
    }

    async fn list_running(&self) -> Result<Option<Vec<OwnedInstance>>, BackendError> {
        // An instance runs as its StatefulSet: without it, a Service or Secret left over
        // serves nothing.
        let mut owners = BTreeSet::new();
        self.owners::<StatefulSet>(&mut owners).await?;
        Ok(Some(owners.into_iter().collect()))
    }

    async fn stop(&self, instance: InstanceRef<'_>, uid: &str) -> Result<(), BackendError> {
        self.stop_incarnation(instance, uid).await
    }

    async fn start(&self, instance: InstanceRef<'_>, uid: &str) -> Result<(), BackendError> {
        self.start_incarnation(instance, uid).await
    }

    async fn restart(
        &self,
        instance: InstanceRef<'_>,
        uid: &str,
        parameters: Option<&std::collections::BTreeMap<String, String>>,
    ) -> Result<(), BackendError> {
        self.restart_incarnation(instance, uid, parameters).await
    }

    async fn resize(
        &self,
        instance: InstanceRef<'_>,
        uid: &str,
        storage_gb: u32,
    ) -> Result<(), BackendError> {
        self.resize_incarnation(instance, uid, storage_gb).await
    }
}
