//! Day-2 changes of an instance on Kubernetes: stop and start scale its StatefulSet to 0 and
//! back (the claim and its data stay), a restart replaces its pod (with new server settings as
//! container arguments when there are some), a resize grows its volume claim.

use super::errors::classify;
use super::{KubernetesBackend, labels, manifests};
use crate::backend::BackendError;
use crate::backend::InstanceRef;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::Resource as _;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use labels::Ownership;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long one call waits for a pod to go before it reports a retryable error (the workflow
/// step's deadline bounds the attempts).
const POD_GONE_WAIT: Duration = Duration::from_secs(60);

/// The arguments of the postgres container that start the server with `parameters`
/// (`None` when there are none: the image's own command).
pub fn container_args(parameters: &BTreeMap<String, String>) -> Option<Vec<String>> {
    if parameters.is_empty() {
        return None;
    }
    let mut args = vec!["postgres".to_string()];
    for (name, value) in parameters {
        args.push("-c".into());
        args.push(format!("{name}={value}"));
    }
    Some(args)
}

impl KubernetesBackend {
    /// The StatefulSet of incarnation `uid` of `name`.
    async fn own_statefulset(
        &self,
        instance: InstanceRef<'_>,
        uid: &str,
    ) -> Result<StatefulSet, BackendError> {
        let name = instance.name;
        let set = self
            .api_of::<StatefulSet>(instance)
            .get_opt(name.as_str())
            .await
            .map_err(|error| classify(&format!("reading StatefulSet {name}"), error))?;
        match set {
            Some(set) if labels::ownership(set.meta(), name.as_str(), uid) == Ownership::Ours => {
                Ok(set)
            }
            _ => Err(BackendError::NotDeployed(format!("{name} ({uid})"))),
        }
    }

    /// Sets the StatefulSet's replicas.
    async fn scale(&self, instance: InstanceRef<'_>, replicas: i32) -> Result<(), BackendError> {
        let name = instance.name;
        let patch = json!({"spec": {"replicas": replicas}});
        self.api_of::<StatefulSet>(instance)
            .patch(
                name.as_str(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|error| {
                classify(&format!("scaling StatefulSet {name} to {replicas}"), error)
            })?;
        Ok(())
    }

    /// The uid of the instance's pod now, if there is one.
    async fn pod_uid(&self, instance: InstanceRef<'_>) -> Result<Option<String>, BackendError> {
        let name = instance.name;
        let pod_name = manifests::pod_name(name.as_str());
        let pod = self
            .api_of::<Pod>(instance)
            .get_opt(&pod_name)
            .await
            .map_err(|error| classify(&format!("reading Pod {pod_name}"), error))?;
        Ok(pod.and_then(|pod| pod.metadata.uid))
    }

    /// Waits (backing off from 100 ms to 1 s) until the pod with uid `gone` no longer exists.
    async fn wait_pod_gone(
        &self,
        instance: InstanceRef<'_>,
        gone: &str,
    ) -> Result<(), BackendError> {
        let name = instance.name;
        let deadline = tokio::time::Instant::now() + POD_GONE_WAIT;
        let mut pause = Duration::from_millis(100);
        loop {
            if self.pod_uid(instance).await?.as_deref() != Some(gone) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BackendError::Transient(format!(
                    "pod {} is still terminating after {} s",
                    manifests::pod_name(name.as_str()),
                    POD_GONE_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Scales to 0 and waits until the pod is gone.
    pub(super) async fn stop_incarnation(
        &self,
        instance: InstanceRef<'_>,
        uid: &str,
    ) -> Result<(), BackendError> {
        self.own_statefulset(instance, uid).await?;
        self.scale(instance, 0).await?;
        match self.pod_uid(instance).await? {
            Some(pod) => self.wait_pod_gone(instance, &pod).await,
            None => Ok(()),
        }
    }

    /// Scales back to 1.
    pub(super) async fn start_incarnation(
        &self,
        instance: InstanceRef<'_>,
        uid: &str,
    ) -> Result<(), BackendError> {
        self.own_statefulset(instance, uid).await?;
        self.scale(instance, 1).await
    }

    /// Replaces the pod, after setting the container's arguments to `parameters` when given.
    pub(super) async fn restart_incarnation(
        &self,
        instance: InstanceRef<'_>,
        uid: &str,
        parameters: Option<&BTreeMap<String, String>>,
    ) -> Result<(), BackendError> {
        let name = instance.name;
        let mut set = self.own_statefulset(instance, uid).await?;
        let old_pod = self.pod_uid(instance).await?;
        match parameters {
            Some(parameters) => {
                // The whole object back, as read (its resourceVersion guards against a change
                // in between: a conflict is retried), with the container's arguments set.
                let container = set
                    .spec
                    .as_mut()
                    .and_then(|spec| spec.template.spec.as_mut())
                    .and_then(|pod| {
                        pod.containers
                            .iter_mut()
                            .find(|container| container.name == manifests::POSTGRES)
                    })
                    .ok_or_else(|| {
                        BackendError::Permanent(format!(
                            "StatefulSet {name} has no container named {}",
                            manifests::POSTGRES
                        ))
                    })?;
                container.args = container_args(parameters);
                if let Some(spec) = set.spec.as_mut() {
                    spec.replicas = Some(1);
                }
                self.api_of::<StatefulSet>(instance)
                    .replace(name.as_str(), &PostParams::default(), &set)
                    .await
                    .map_err(|error| {
                        classify(&format!("setting the server settings of {name}"), error)
                    })?;
            }
            None => self.scale(instance, 1).await?,
        }
        let Some(old_pod) = old_pod else {
            return Ok(()); // no pod to replace: the controller makes one with the new template
        };
        let pod_name = manifests::pod_name(name.as_str());
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(old_pod.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self
            .api_of::<Pod>(instance)
            .delete(&pod_name, &params)
            .await
        {
            Ok(_) => {}
            // Gone already, or replaced by the controller's own rollout.
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => return Err(classify(&format!("deleting Pod {pod_name}"), error)),
        }
        self.wait_pod_gone(instance, &old_pod).await
    }

    /// Grows the volume claim; a storage class that cannot expand is
    /// [`BackendError::Unsupported`].
    pub(super) async fn resize_incarnation(
        &self,
        instance: InstanceRef<'_>,
        uid: &str,
        storage_gb: u32,
    ) -> Result<(), BackendError> {
        let name = instance.name;
        let set = self.own_statefulset(instance, uid).await?;
        let claim = claim_of(&set, name.as_str(), uid);
        let patch =
            json!({"spec": {"resources": {"requests": {"storage": format!("{storage_gb}Gi")}}}});
        match self
            .api_of::<PersistentVolumeClaim>(instance)
            .patch(&claim, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            // The API server refuses to grow a claim whose storage class does not allow it
            // (403 from admission, or 422).
            Err(kube::Error::Api(status)) if status.code == 403 || status.code == 422 => {
                Err(BackendError::Unsupported(format!(
                    "the volume claim {claim} cannot grow: {}",
                    status.message
                )))
            }
            Err(error) => Err(classify(&format!("growing volume claim {claim}"), error)),
        }
    }
}

/// The claim of the StatefulSet's only pod: [`manifests::pvc_name`] of the incarnation, or
/// `data-<name>-0` for a StatefulSet rendered before claims were named after incarnations.
fn claim_of(set: &StatefulSet, name: &str, uid: &str) -> String {
    let legacy = set
        .spec
        .as_ref()
        .and_then(|spec| spec.volume_claim_templates.as_ref())
        .is_some_and(|templates| {
            templates
                .iter()
                .any(|template| template.metadata.name.as_deref() == Some(manifests::DATA_VOLUME))
        });
    if legacy {
        format!("{}-{name}-0", manifests::DATA_VOLUME)
    } else {
        manifests::pvc_name(name, uid)
    }
}

/// Whether the StatefulSet is scaled to 0 (the instance is stopped).
pub(super) fn is_scaled_down(set: &StatefulSet) -> bool {
    set.spec.as_ref().and_then(|spec| spec.replicas) == Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::kubernetes::KubernetesConfig;
    use crate::backend::{Backend, DeploySpec, Readiness};
    use crate::model::Expose;
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use kube::api::{Api, PostParams};
    use kube_fake_client::ClientBuilder;

    type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

    const NS: &str = "toygres";

    fn spec() -> Result<DeploySpec, Box<dyn std::error::Error + Send + Sync>> {
        Ok(DeploySpec {
            name: crate::validation::InstanceName::parse("orders-db")?,
            namespace: None,
            uid: "ins_first".into(),
            postgres_version: "16".into(),
            storage_gb: 3,
            superuser: "toygres_admin".into(),
            superuser_verifier: "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy".into(),
            expose: Expose::Internal,
            dns_label: None,
        })
    }

    /// A deployed instance on the fake API with its pod (what the StatefulSet controller would
    /// make), and the claim the controller would make.
    async fn deployed(
        client: kube::Client,
    ) -> Result<(KubernetesBackend, DeploySpec), Box<dyn std::error::Error + Send + Sync>> {
        let backend = KubernetesBackend::new(client.clone(), KubernetesConfig::default());
        let spec = spec()?;
        backend.deploy(&spec).await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let mut pod = Pod::default();
        pod.metadata.name = Some(manifests::pod_name(spec.name.as_str()));
        pod.metadata.uid = Some("pod-1".into());
        pods.create(&PostParams::default(), &pod).await?;
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client, NS);
        let mut claim = PersistentVolumeClaim::default();
        claim.metadata.name = Some(manifests::pvc_name(spec.name.as_str(), &spec.uid));
        claim.spec = Some(Default::default());
        claims.create(&PostParams::default(), &claim).await?;
        Ok((backend, spec))
    }

    /// Plays the StatefulSet controller removing the pod a moment later.
    fn remove_pod_soon(client: kube::Client, name: String) {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let pods: Api<Pod> = Api::namespaced(client, NS);
            let _ = pods.delete(&name, &Default::default()).await;
        });
    }

    async fn statefulset(client: &kube::Client) -> Result<StatefulSet, kube::Error> {
        Api::<StatefulSet>::namespaced(client.clone(), NS)
            .get("orders-db")
            .await
    }

    #[tokio::test]
    async fn stop_scales_to_zero_keeps_the_claim_and_start_scales_back() -> TestResult {
        let client = ClientBuilder::new().build().await?;
        let (backend, spec) = deployed(client.clone()).await?;
        remove_pod_soon(client.clone(), manifests::pod_name(spec.name.as_str()));
        backend.stop(spec.instance(), &spec.uid).await?;
        let set = statefulset(&client).await?;
        assert_eq!(set.spec.and_then(|s| s.replicas), Some(0));
        assert_eq!(
            backend.readiness(spec.instance()).await?,
            Readiness::Stopped
        );
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
        assert!(
            claims
                .get_opt(&manifests::pvc_name(spec.name.as_str(), &spec.uid))
                .await?
                .is_some(),
            "the data stays"
        );
        backend.start(spec.instance(), &spec.uid).await?;
        let set = statefulset(&client).await?;
        assert_eq!(set.spec.and_then(|s| s.replicas), Some(1));
        assert!(matches!(
            backend.readiness(spec.instance()).await?,
            Readiness::NotReady(_)
        ));
        // Another incarnation's objects are never scaled.
        assert!(matches!(
            backend.stop(spec.instance(), "ins_other").await,
            Err(BackendError::NotDeployed(_))
        ));
        Ok(())
    }

    #[tokio::test]
    async fn a_restart_sets_the_arguments_and_replaces_the_pod() -> TestResult {
        let client = ClientBuilder::new().build().await?;
        let (backend, spec) = deployed(client.clone()).await?;
        let parameters = BTreeMap::from([("max_connections".to_string(), "200".to_string())]);
        backend
            .restart(spec.instance(), &spec.uid, Some(&parameters))
            .await?;
        let set = statefulset(&client).await?;
        let container = set
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|pod| pod.containers.into_iter().next())
            .ok_or("no container")?;
        assert_eq!(container.args, container_args(&parameters));
        assert!(
            container.image.is_some(),
            "the rest of the container is kept"
        );
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        assert!(
            pods.get_opt(&manifests::pod_name(spec.name.as_str()))
                .await?
                .is_none(),
            "the old pod is gone"
        );
        // Back to no settings: no arguments (the image's own command).
        backend
            .restart(spec.instance(), &spec.uid, Some(&BTreeMap::new()))
            .await?;
        let set = statefulset(&client).await?;
        let args = set
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|pod| pod.containers.into_iter().next())
            .and_then(|container| container.args);
        assert_eq!(args, None);
        Ok(())
    }

    /// A backend on a mock API server that shows the instance's StatefulSet, then answers the
    /// claim's patch as a real API server does for a storage class that cannot expand.
    fn refusing_resizes(
        spec: &DeploySpec,
    ) -> Result<KubernetesBackend, Box<dyn std::error::Error + Send + Sync>> {
        use http::{Request, Response};
        use kube::client::Body;
        let rendered = manifests::render(spec, &KubernetesConfig::default())?;
        let set = serde_json::to_vec(&rendered.statefulset)?;
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(async move {
            let mut handle = std::pin::pin!(handle);
            if let Some((request, respond)) = handle.next_request().await {
                assert_eq!(request.method(), http::Method::GET, "{}", request.uri());
                respond.send_response(Response::new(Body::from(set)));
            }
            if let Some((request, respond)) = handle.next_request().await {
                assert_eq!(request.method(), http::Method::PATCH, "{}", request.uri());
                let status = serde_json::json!({
                    "kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "persistentvolumeclaims \"data-ins-first-orders-db-0\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
                    "reason": "Forbidden", "code": 403
                });
                let mut response = Response::new(Body::from(status.to_string().into_bytes()));
                *response.status_mut() = http::StatusCode::FORBIDDEN;
                respond.send_response(response);
            }
        });
        Ok(KubernetesBackend::new(
            kube::Client::new(service, NS),
            KubernetesConfig::default(),
        ))
    }

    #[tokio::test]
    async fn a_resize_grows_the_claim_or_says_why_it_cannot() -> TestResult {
        let client = ClientBuilder::new().build().await?;
        let (backend, spec) = deployed(client.clone()).await?;
        backend.resize(spec.instance(), &spec.uid, 20).await?;
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client, NS);
        let claim = claims
            .get(&manifests::pvc_name(spec.name.as_str(), &spec.uid))
            .await?;
        let requested = claim
            .spec
            .and_then(|spec| spec.resources)
            .and_then(|resources| resources.requests)
            .and_then(|requests| requests.get("storage").cloned());
        assert_eq!(requested, Some(Quantity("20Gi".into())));

        // The API server refuses to grow a claim of a storage class that cannot expand: the
        // exact answer of a real one (403 from admission).
        let backend = refusing_resizes(&spec)?;
        match backend.resize(spec.instance(), &spec.uid, 20).await {
            Err(BackendError::Unsupported(message)) => {
                assert!(message.contains("storageclass"), "{message}")
            }
            other => return Err(format!("expected unsupported, got {other:?}").into()),
        }
        Ok(())
    }

    #[test]
    fn settings_become_container_arguments() {
        assert_eq!(container_args(&BTreeMap::new()), None);
        let parameters = BTreeMap::from([
            ("max_connections".to_string(), "200".to_string()),
            ("shared_buffers".to_string(), "64MB".to_string()),
        ]);
        assert_eq!(
            container_args(&parameters),
            Some(vec![
                "postgres".to_string(),
                "-c".into(),
                "max_connections=200".into(),
                "-c".into(),
                "shared_buffers=64MB".into(),
            ])
        );
    }
}
