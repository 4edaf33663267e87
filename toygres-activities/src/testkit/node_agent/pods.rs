//! Pods: bound to the node, their `postgres` container run as a local PostgreSQL the way the
//! image's entrypoint would, their readiness reported, their server stopped when they go.
//!
//! Every served namespace is covered; pods are told apart by uid (or namespace and name, never
//! name alone), each reads its Secrets and claims in its own namespace, and its server runs in
//! its volume's folder on a port of its volume: both are per PersistentVolume, so pods of the
//! same name in two namespaces share neither.

use super::{AgentConfig, AgentError, for_each_namespace, volumes};
use crate::backend::kubernetes::labels;
use crate::backend::local::{LocalBackend, LocalConfig};
use crate::backend::{Backend, BackendError, DeploySpec, InstanceRef, Readiness};
use crate::model::Expose;
use crate::validation::InstanceName;
use k8s_openapi::api::core::v1::{Container, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, ResourceExt as _};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;

/// The container the agent runs.
const POSTGRES: &str = "postgres";

/// A pod whose PostgreSQL runs here.
#[derive(Debug, Clone)]
pub struct RunningPod {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's Kubernetes uid.
    pub uid: String,
    /// The pod's labels.
    pub labels: BTreeMap<String, String>,
    /// The local port its PostgreSQL listens on.
    pub port: u16,
    instance: InstanceName,
    incarnation: String,
    backend: LocalBackend,
    ready: bool,
}

/// Every pod of the node.
pub struct Pods {
    client: Client,
    config: AgentConfig,
    /// Running pods by pod uid (unique across namespaces).
    running: Mutex<HashMap<String, RunningPod>>,
    /// Pods being started (by uid): a start takes a while (initdb), passes go on meanwhile.
    starting: Mutex<HashSet<String>>,
    /// The local port of each volume (by PersistentVolume name, cluster-wide: a port is never
    /// handed to two volumes, whatever their claims' namespaces).
    ports: Mutex<HashMap<String, u16>>,
    /// The versions of the installed PostgreSQL binaries.
    versions: Vec<String>,
}

impl Pods {
    /// Pods of `config`'s namespaces through `client`.
    pub fn new(client: Client, config: AgentConfig) -> Self {
        let versions =
            crate::backend::local::binaries::PgBinaries::discover(config.bin_dir.as_deref())
                .versions();
        Self {
            client,
            config,
            running: Mutex::default(),
            starting: Mutex::default(),
            ports: Mutex::default(),
            versions,
        }
    }

    fn api(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunningPod>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn starting(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.starting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The running pod `name` of namespace `namespace` (any served one), if its PostgreSQL
    /// runs here.
    pub fn find(&self, namespace: &str, name: &str) -> Option<RunningPod> {
        self.running()
            .values()
            .find(|pod| pod.namespace == namespace && pod.name == name)
            .cloned()
    }

    /// A running, ready pod of namespace `namespace` whose labels include all of `selector`.
    pub fn selected(
        &self,
        namespace: &str,
        selector: &BTreeMap<String, String>,
    ) -> Option<RunningPod> {
        self.running()
            .values()
            .find(|pod| {
                pod.ready
                    && pod.namespace == namespace
                    && selector
                        .iter()
                        .all(|(key, value)| pod.labels.get(key) == Some(value))
            })
            .cloned()
    }

    /// One pass over the pods of every served namespace.
    pub async fn pass(self: &std::sync::Arc<Self>) -> Result<(), AgentError> {
        for_each_namespace(&self.config.namespaces, |namespace| self.pass_in(namespace)).await
    }

    /// One pass over the pods of namespace `namespace`.
    async fn pass_in(self: &std::sync::Arc<Self>, namespace: &str) -> Result<(), AgentError> {
        let pods = self
            .api(namespace)
            .list(&ListParams::default())
            .await
            .map_err(AgentError::api(format!("listing pods in {namespace}")))?
            .items;
        let present: HashSet<String> = pods
            .iter()
            .filter_map(|pod| pod.metadata.uid.clone())
            .collect();
        // The namespace's pods removed outright (a forced delete): their servers stop.
        let vanished: Vec<RunningPod> = self
            .running()
            .values()
            .filter(|pod| pod.namespace == namespace && !present.contains(&pod.uid))
            .cloned()
            .collect();
        for pod in vanished {
            self.stop_pod(&pod).await;
        }
        for pod in &pods {
            let Some(uid) = pod.metadata.uid.clone() else {
                continue;
            };
            let node = pod.spec.as_ref().and_then(|spec| spec.node_name.clone());
            if pod.metadata.deletion_timestamp.is_some() {
                if node.as_deref() == Some(self.config.node_name.as_str()) || node.is_none() {
                    self.finish_deletion(pod, &uid).await?;
                }
                continue;
            }
            match node {
                None => self.bind(pod).await?,
                Some(node) if node == self.config.node_name => {
                    let running = self.running().get(&uid).cloned();
                    match running {
                        Some(running) => self.report_readiness(pod, running).await?,
                        None => self.start_in_background(pod.clone(), uid),
                    }
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Binds a pending pod to the node (the scheduler's job).
    async fn bind(&self, pod: &Pod) -> Result<(), AgentError> {
        let name = pod.name_any();
        let namespace = namespace_of(pod);
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.config.node_name},
        });
        match self
            .api(&namespace)
            .create_subresource::<_, serde_json::Value>(
                "binding",
                &name,
                &PostParams::default(),
                &binding,
            )
            .await
        {
            Ok(_) => Ok(()),
            // Bound meanwhile, or gone.
            Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => Ok(()),
            Err(error) => Err(AgentError::api(format!("binding pod {namespace}/{name}"))(
                error,
            )),
        }
    }

    /// Stops the pod's server (if it ran here), then removes the pod (what the kubelet does
    /// once its containers are down).
    async fn finish_deletion(&self, pod: &Pod, uid: &str) -> Result<(), AgentError> {
        let running = self.running().get(uid).cloned();
        if let Some(running) = running {
            self.stop_pod(&running).await;
        }
        if self.starting().contains(uid) {
            return Ok(()); // the start finishes first; the next pass stops it
        }
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let (namespace, name) = (namespace_of(pod), pod.name_any());
        match self.api(&namespace).delete(&name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
            Err(error) => Err(AgentError::api(format!("removing pod {namespace}/{name}"))(
                error,
            )),
        }
    }

    async fn stop_pod(&self, pod: &RunningPod) {
        if let Err(error) = pod
            .backend
            .stop(InstanceRef::in_default(&pod.instance), &pod.incarnation)
            .await
        {
            tracing::warn!(
                %error,
                namespace = %pod.namespace,
                pod = %pod.name,
                "node agent: stopping the pod's server failed"
            );
        }
        self.running().remove(&pod.uid);
    }

    fn start_in_background(self: &std::sync::Arc<Self>, pod: Pod, uid: String) {
        if !self.starting().insert(uid.clone()) {
            return;
        }
        let pods = self.clone();
        tokio::spawn(async move {
            let (namespace, name) = (namespace_of(&pod), pod.name_any());
            let started = std::time::Instant::now();
            match pods.start_pod(&pod, &uid).await {
                Ok(Some(running)) => {
                    tracing::info!(
                        %namespace,
                        pod = %name,
                        port = running.port,
                        elapsed_ms = started.elapsed().as_millis(),
                        "node agent: the pod's server runs"
                    );
                    pods.running().insert(uid.clone(), running);
                }
                Ok(None) => {} // not startable yet (its volume is not bound): the next pass
                Err(message) => {
                    tracing::warn!(
                        %namespace,
                        pod = %name,
                        %message,
                        "node agent: the pod cannot run"
                    );
                    let _ = pods
                        .report_waiting(&namespace, &name, "CreateContainerConfigError", &message)
                        .await;
                }
            }
            pods.starting().remove(&uid);
        });
    }

    /// Starts the pod's PostgreSQL; `None` while its volume is not bound yet.
    async fn start_pod(&self, pod: &Pod, uid: &str) -> Result<Option<RunningPod>, String> {
        let namespace = namespace_of(pod);
        let spec = pod.spec.as_ref().ok_or("the pod has no spec")?;
        let container = spec
            .containers
            .iter()
            .find(|container| container.name == POSTGRES)
            .ok_or("the pod has no postgres container")?;
        let labels = pod.labels().clone();
        let instance = labels
            .get(labels::INSTANCE)
            .and_then(|name| InstanceName::parse(name).ok())
            .ok_or("the pod has no instance label")?;
        let incarnation = labels
            .get(labels::UID)
            .cloned()
            .ok_or("the pod has no uid label")?;
        let version = image_version(container)?;
        if !self.versions.contains(&version) {
            return Err(format!(
                "image {}: PostgreSQL {version} is not installed on this node (installed: {})",
                container.image.clone().unwrap_or_default(),
                self.versions.join(", ")
            ));
        }
        let Some((volume, dir)) = self.volume_of(pod, container).await? else {
            return Ok(None);
        };
        let env = self.environment(&namespace, container).await?;
        let superuser = env
            .get("POSTGRES_USER")
            .cloned()
            .unwrap_or_else(|| "postgres".into());
        let verifier = env
            .get("POSTGRES_PASSWORD")
            .cloned()
            .ok_or("POSTGRES_PASSWORD is not set")?;
        let port = self.port_of(&volume)?;
        let backend = LocalBackend::new(LocalConfig {
            root: dir,
            bin_dir: self.config.bin_dir.clone(),
            ports: port..=port,
        })
        .map_err(|error| error.to_string())?;
        let deploy = DeploySpec {
            name: instance.clone(),
            namespace: None,
            uid: incarnation.clone(),
            postgres_version: version,
            storage_gb: 1,
            superuser,
            superuser_verifier: verifier,
            expose: Expose::Internal,
            dns_label: None,
        };
        let failed = |error: BackendError| error.to_string();
        backend.deploy(&deploy).await.map_err(failed)?;
        backend
            .start(InstanceRef::in_default(&instance), &incarnation)
            .await
            .map_err(failed)?;
        let parameters = parameters_of(container);
        if !parameters.is_empty() {
            backend
                .restart(
                    InstanceRef::in_default(&instance),
                    &incarnation,
                    Some(&parameters),
                )
                .await
                .map_err(failed)?;
        }
        Ok(Some(RunningPod {
            namespace,
            name: pod.name_any(),
            uid: uid.to_string(),
            labels,
            port,
            instance,
            incarnation,
            backend,
            ready: false,
        }))
    }

    /// The volume mounted at the container's data folder (a claim of the pod's namespace), and
    /// its folder here; `None` while the claim is not bound.
    async fn volume_of(
        &self,
        pod: &Pod,
        container: &Container,
    ) -> Result<Option<(String, PathBuf)>, String> {
        let mount = container
            .volume_mounts
            .iter()
            .flatten()
            .next()
            .ok_or("the container mounts no volume")?;
        let claim_name = pod
            .spec
            .as_ref()
            .and_then(|spec| spec.volumes.as_ref())
            .and_then(|volumes| volumes.iter().find(|volume| volume.name == mount.name))
            .and_then(|volume| volume.persistent_volume_claim.as_ref())
            .map(|claim| claim.claim_name.clone())
            .ok_or("the data volume is not a claim")?;
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &namespace_of(pod));
        let Some(claim) = claims
            .get_opt(&claim_name)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let bound = claim
            .status
            .as_ref()
            .and_then(|status| status.phase.as_deref())
            == Some("Bound");
        let Some(volume) = claim
            .spec
            .and_then(|spec| spec.volume_name)
            .filter(|_| bound)
        else {
            return Ok(None);
        };
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        let path = volumes
            .get_opt(&volume)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|pv| pv.spec)
            .and_then(|spec| spec.host_path)
            .map(|host| PathBuf::from(host.path))
            .unwrap_or_else(|| volumes::volume_dir(&self.config.root, &volume));
        Ok(Some((volume, path)))
    }

    /// The container's environment, `secretKeyRef`s read through the API as a kubelet does
    /// (from the Secrets of the pod's namespace, `namespace`).
    async fn environment(
        &self,
        namespace: &str,
        container: &Container,
    ) -> Result<BTreeMap<String, String>, String> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let mut env = BTreeMap::new();
        for variable in container.env.iter().flatten() {
            if let Some(value) = &variable.value {
                env.insert(variable.name.clone(), value.clone());
                continue;
            }
            let Some(reference) = variable
                .value_from
                .as_ref()
                .and_then(|from| from.secret_key_ref.as_ref())
            else {
                continue;
            };
            let secret = secrets
                .get_opt(&reference.name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("secret {namespace}/{} not found", reference.name))?;
            let value = secret
                .data
                .as_ref()
                .and_then(|data| data.get(&reference.key))
                .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
                .ok_or_else(|| {
                    format!(
                        "couldn't find key {} in Secret {namespace}/{}",
                        reference.key, reference.name
                    )
                })?;
            env.insert(variable.name.clone(), value);
        }
        Ok(env)
    }

    /// The local port of a volume's server (the same across the pods that mount it).
    fn port_of(&self, volume: &str) -> Result<u16, String> {
        let mut ports = self
            .ports
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(port) = ports.get(volume) {
            return Ok(*port);
        }
        let taken: HashSet<u16> = ports.values().copied().collect();
        let port = self
            .config
            .ports
            .clone()
            .find(|port| {
                !taken.contains(port) && std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok()
            })
            .ok_or("no free local port for the pod")?;
        ports.insert(volume.to_string(), port);
        Ok(port)
    }

    /// Runs the readiness probe (the server accepts connections) and reports it when it
    /// changed.
    async fn report_readiness(&self, pod: &Pod, running: RunningPod) -> Result<(), AgentError> {
        let ready = matches!(
            running
                .backend
                .readiness(InstanceRef::in_default(&running.instance))
                .await,
            Ok(Readiness::Ready)
        );
        let reported = crate::backend::kubernetes::pod_is_ready(pod);
        if ready == reported && ready == running.ready {
            return Ok(());
        }
        if let Some(entry) = self.running().get_mut(&running.uid) {
            entry.ready = ready;
        }
        if ready == reported {
            return Ok(());
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let flag = if ready { "True" } else { "False" };
        let image = pod
            .spec
            .as_ref()
            .and_then(|spec| spec.containers.first())
            .and_then(|container| container.image.clone())
            .unwrap_or_default();
        let status = json!({"status": {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
                {"type": "Ready", "status": flag, "lastTransitionTime": now},
            ],
            "containerStatuses": [{
                "name": POSTGRES, "ready": ready, "restartCount": 0, "started": true,
                "image": image, "imageID": "",
                "state": {"running": {"startedAt": now}},
            }],
        }});
        self.patch_status(&namespace_of(pod), &pod.name_any(), &status)
            .await
    }

    /// Reports why the container of pod `namespace`/`name` cannot run.
    async fn report_waiting(
        &self,
        namespace: &str,
        name: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), AgentError> {
        let status = json!({"status": {
            "phase": "Pending",
            "containerStatuses": [{
                "name": POSTGRES, "ready": false, "restartCount": 0, "image": "", "imageID": "",
                "state": {"waiting": {"reason": reason, "message": message}},
            }],
        }});
        self.patch_status(namespace, name, &status).await
    }

    async fn patch_status(
        &self,
        namespace: &str,
        name: &str,
        status: &serde_json::Value,
    ) -> Result<(), AgentError> {
        match self
            .api(namespace)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(AgentError::api(format!(
                "reporting the status of pod {namespace}/{name}"
            ))(error)),
        }
    }

    /// Stops every server the agent started.
    pub async fn stop_all(&self) {
        let all: Vec<RunningPod> = self.running().values().cloned().collect();
        for pod in all {
            self.stop_pod(&pod).await;
        }
    }

    /// [`Pods::stop_all`] from synchronous code (a drop), on a thread of its own.
    pub fn stop_all_blocking(&self) {
        let all: Vec<RunningPod> = self.running().drain().map(|(_, pod)| pod).collect();
        if all.is_empty() {
            return;
        }
        let stopping = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                for pod in all {
                    let _ = pod
                        .backend
                        .stop(InstanceRef::in_default(&pod.instance), &pod.incarnation)
                        .await;
                }
            });
        });
        let _ = stopping.join();
    }
}

/// The namespace of `pod` (listed through a namespaced API, so always set).
fn namespace_of(pod: &Pod) -> String {
    pod.namespace().unwrap_or_default()
}

/// The major version an image's tag names (`postgres:16`, `postgres:16.4`, `postgres:16-alpine`).
fn image_version(container: &Container) -> Result<String, String> {
    let image = container.image.clone().unwrap_or_default();
    let tag = image
        .rsplit_once(':')
        .map(|(_, tag)| tag)
        .filter(|tag| !tag.contains('/'))
        .ok_or_else(|| format!("image {image:?} has no tag naming a PostgreSQL version"))?;
    let major: String = tag.chars().take_while(char::is_ascii_digit).collect();
    if major.is_empty() {
        return Err(format!(
            "image {image:?}: tag {tag:?} names no PostgreSQL version"
        ));
    }
    Ok(major)
}

/// The server settings of `postgres -c name=value ...` arguments.
fn parameters_of(container: &Container) -> BTreeMap<String, String> {
    let args = container.args.clone().unwrap_or_default();
    let mut parameters = BTreeMap::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if word == "-c"
            && let Some((name, value)) = words.next().and_then(|setting| setting.split_once('='))
        {
            parameters.insert(name.to_string(), value.to_string());
        }
    }
    parameters
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, args: &[&str]) -> Container {
        Container {
            name: POSTGRES.into(),
            image: Some(image.into()),
            args: Some(args.iter().map(|arg| arg.to_string()).collect()),
            ..Container::default()
        }
    }

    #[test]
    fn image_tags_name_major_versions() {
        assert_eq!(
            image_version(&container("postgres:16", &[])).as_deref(),
            Ok("16")
        );
        assert_eq!(
            image_version(&container("registry:5000/postgres:15.4-alpine", &[])).as_deref(),
            Ok("15")
        );
        assert!(image_version(&container("postgres", &[])).is_err());
        assert!(image_version(&container("postgres:latest", &[])).is_err());
    }

    #[test]
    fn arguments_become_settings() {
        let parsed = parameters_of(&container(
            "postgres:16",
            &["postgres", "-c", "work_mem=8MB", "-c", "max_connections=50"],
        ));
        assert_eq!(parsed.get("work_mem").map(String::as_str), Some("8MB"));
        assert_eq!(parsed.len(), 2);
    }
}
