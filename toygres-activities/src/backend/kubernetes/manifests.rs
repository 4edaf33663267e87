//! Renders an instance's Secret, StatefulSet, Service and NetworkPolicy from `templates/*.yaml`.
//!
//! Each template is parsed into a typed object first; user input (the name, the verifier, the
//! DNS label) is then assigned to string fields of that object. Nothing a user sends is ever
//! pasted into YAML text, so it cannot become structure.

use super::config::KubernetesConfig;
use super::labels;
use crate::backend::DeploySpec;
use crate::model::Expose;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, ResourceRequirements, Secret, Service,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

const SECRET_TEMPLATE: &str = include_str!("../../../../templates/secret.yaml");
const STATEFULSET_TEMPLATE: &str = include_str!("../../../../templates/statefulset.yaml");
const SERVICE_TEMPLATE: &str = include_str!("../../../../templates/service.yaml");
const NETWORK_POLICY_TEMPLATE: &str = include_str!("../../../../templates/networkpolicy.yaml");

/// The key of the bootstrap superuser's SCRAM verifier in the instance's Secret.
pub const PASSWORD_KEY: &str = "password";
/// The name of the PostgreSQL container and of its port.
pub const POSTGRES: &str = "postgres";
/// The name of the data volume in the StatefulSet template; the rendered claim template (and
/// the volume) is named [`volume_name`] of the incarnation.
pub const DATA_VOLUME: &str = "data";

/// A template that does not fit the object it renders.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The template is not valid YAML for its kind.
    #[error("template {template}: {message}")]
    Template {
        /// Which template.
        template: &'static str,
        /// What was wrong.
        message: String,
    },
}

/// The objects of one instance.
#[derive(Debug, Clone)]
pub struct Manifests {
    /// The bootstrap superuser's verifier.
    pub secret: Secret,
    /// PostgreSQL and its volume.
    pub statefulset: StatefulSet,
    /// How clients reach it.
    pub service: Service,
    /// What may reach its pod: PostgreSQL traffic only.
    pub network_policy: NetworkPolicy,
}

/// The name of an instance's Secret.
pub fn secret_name(instance: &str) -> String {
    format!("{instance}-credentials")
}

/// The name of the data volume claim template of incarnation `uid`: `data-<uid>` (in DNS-label
/// form, `_` becoming `-`). The claim a StatefulSet makes is named after its template, so a
/// claim left by an older incarnation of the same name (retained, or left by a stale
/// StatefulSet's removal) is never bound to a newer one.
pub fn volume_name(uid: &str) -> String {
    let uid: String = uid
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{DATA_VOLUME}-{uid}")
}

/// The name of the PVC the StatefulSet of incarnation `uid` creates for instance `instance`'s
/// only pod: `data-<uid>-<name>-0`.
pub fn pvc_name(instance: &str, uid: &str) -> String {
    format!("{}-{instance}-0", volume_name(uid))
}

/// The name of the instance's only pod.
pub fn pod_name(instance: &str) -> String {
    format!("{instance}-0")
}

/// The port PostgreSQL listens on inside the pod: the `postgres` port of the StatefulSet
/// template's container (where a port-forward goes).
pub fn container_port() -> Result<u16, ManifestError> {
    const T: &str = "statefulset.yaml";
    let set: StatefulSet = parse(T, STATEFULSET_TEMPLATE)?;
    set.spec
        .and_then(|spec| spec.template.spec)
        .and_then(|pod| {
            pod.containers
                .into_iter()
                .find(|container| container.name == POSTGRES)
        })
        .and_then(|container| container.ports)
        .and_then(|ports| {
            ports
                .into_iter()
                .find(|port| port.name.as_deref() == Some(POSTGRES))
        })
        .and_then(|port| u16::try_from(port.container_port).ok())
        .ok_or_else(|| missing(T, "the postgres container's postgres port"))
}

/// Renders the objects of `spec` with the settings of `config`.
pub fn render(spec: &DeploySpec, config: &KubernetesConfig) -> Result<Manifests, ManifestError> {
    Ok(Manifests {
        secret: render_secret(spec, config)?,
        statefulset: render_statefulset(spec, config)?,
        service: render_service(spec, config)?,
        network_policy: render_network_policy(spec, config)?,
    })
}

fn parse<T: serde::de::DeserializeOwned>(
    template: &'static str,
    text: &str,
) -> Result<T, ManifestError> {
    serde_saphyr::from_str(text).map_err(|error| ManifestError::Template {
        template,
        message: error.to_string(),
    })
}

fn missing(template: &'static str, what: &str) -> ManifestError {
    ManifestError::Template {
        template,
        message: format!("{what} is missing"),
    }
}

fn metadata(name: String, spec: &DeploySpec, config: &KubernetesConfig) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(
            spec.namespace
                .clone()
                .unwrap_or_else(|| config.namespace.clone()),
        ),
        labels: Some(labels::owned(spec.name.as_str(), &spec.uid)),
        ..ObjectMeta::default()
    }
}

fn render_secret(spec: &DeploySpec, config: &KubernetesConfig) -> Result<Secret, ManifestError> {
    let mut secret: Secret = parse("secret.yaml", SECRET_TEMPLATE)?;
    secret.metadata = metadata(secret_name(spec.name.as_str()), spec, config);
    secret.string_data = Some(BTreeMap::from([(
        PASSWORD_KEY.to_string(),
        spec.superuser_verifier.clone(),
    )]));
    Ok(secret)
}

fn render_statefulset(
    spec: &DeploySpec,
    config: &KubernetesConfig,
) -> Result<StatefulSet, ManifestError> {
    const T: &str = "statefulset.yaml";
    let name = spec.name.as_str();
    let mut set: StatefulSet = parse(T, STATEFULSET_TEMPLATE)?;
    set.metadata = metadata(name.to_string(), spec, config);
    let set_spec = set.spec.as_mut().ok_or_else(|| missing(T, "spec"))?;
    set_spec.service_name = Some(name.to_string());
    set_spec.selector.match_labels = Some(labels::selector(name));

    let pod_meta = set_spec
        .template
        .metadata
        .get_or_insert_with(ObjectMeta::default);
    pod_meta.labels = Some(labels::owned(name, &spec.uid));
    let pod = set_spec
        .template
        .spec
        .as_mut()
        .ok_or_else(|| missing(T, "spec.template.spec"))?;
    let container = pod
        .containers
        .iter_mut()
        .find(|container| container.name == POSTGRES)
        .ok_or_else(|| missing(T, "the postgres container"))?;
    container.image = Some(format!("{}:{}", config.image, spec.postgres_version));
    container
        .volume_mounts
        .iter_mut()
        .flatten()
        .find(|mount| mount.name == DATA_VOLUME)
        .ok_or_else(|| missing(T, "the data volume mount"))?
        .name = volume_name(&spec.uid);
    container.resources = Some(resources(config));
    point_password_at_secret(container, &secret_name(name))
        .ok_or_else(|| missing(T, "POSTGRES_PASSWORD's secretKeyRef"))?;
    set_literal_variable(container, "POSTGRES_USER", &spec.superuser)
        .ok_or_else(|| missing(T, "the POSTGRES_USER variable"))?;
    if pod.automount_service_account_token != Some(false) {
        return Err(missing(T, "automountServiceAccountToken: false"));
    }

    let claims = set_spec
        .volume_claim_templates
        .as_mut()
        .ok_or_else(|| missing(T, "volumeClaimTemplates"))?;
    let claim: &mut PersistentVolumeClaim = claims
        .iter_mut()
        .find(|claim| claim.metadata.name.as_deref() == Some(DATA_VOLUME))
        .ok_or_else(|| missing(T, "the data volume claim template"))?;
    claim.metadata.name = Some(volume_name(&spec.uid));
    claim.metadata.labels = Some(labels::owned(name, &spec.uid));
    let claim_spec = claim
        .spec
        .as_mut()
        .ok_or_else(|| missing(T, "the data claim's spec"))?;
    claim_spec.storage_class_name = config.storage_class.clone();
    claim_spec
        .resources
        .get_or_insert_with(Default::default)
        .requests = Some(BTreeMap::from([(
        "storage".to_string(),
        Quantity(format!("{}Gi", spec.storage_gb.max(1))),
    )]));
    Ok(set)
}

/// Sets the Secret name of the `POSTGRES_PASSWORD` variable's `secretKeyRef`; `None` when the
/// template has no such reference (a literal value is never used).
fn point_password_at_secret(container: &mut Container, secret: &str) -> Option<()> {
    let variable = container
        .env
        .as_mut()?
        .iter_mut()
        .find(|variable| variable.name == "POSTGRES_PASSWORD")?;
    if variable.value.is_some() {
        return None;
    }
    let reference = variable.value_from.as_mut()?.secret_key_ref.as_mut()?;
    reference.name = secret.to_string();
    reference.key = PASSWORD_KEY.to_string();
    Some(())
}

/// Sets the literal value of environment variable `name` (declared in the template).
fn set_literal_variable(container: &mut Container, name: &str, value: &str) -> Option<()> {
    let variable = container
        .env
        .as_mut()?
        .iter_mut()
        .find(|variable| variable.name == name)?;
    variable.value = Some(value.to_string());
    Some(())
}

fn resources(config: &KubernetesConfig) -> ResourceRequirements {
    let pair = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.to_string())),
            ("memory".to_string(), Quantity(memory.to_string())),
        ])
    };
    ResourceRequirements {
        requests: Some(pair(
            &config.resources.cpu_request,
            &config.resources.memory_request,
        )),
        limits: Some(pair(
            &config.resources.cpu_limit,
            &config.resources.memory_limit,
        )),
        ..ResourceRequirements::default()
    }
}

fn render_network_policy(
    spec: &DeploySpec,
    config: &KubernetesConfig,
) -> Result<NetworkPolicy, ManifestError> {
    const T: &str = "networkpolicy.yaml";
    let name = spec.name.as_str();
    let mut policy: NetworkPolicy = parse(T, NETWORK_POLICY_TEMPLATE)?;
    policy.metadata = metadata(name.to_string(), spec, config);
    let policy_spec = policy.spec.as_mut().ok_or_else(|| missing(T, "spec"))?;
    policy_spec
        .pod_selector
        .get_or_insert_with(Default::default)
        .match_labels = Some(labels::selector(name));
    if policy_spec.ingress.as_ref().is_none_or(Vec::is_empty) {
        return Err(missing(T, "the ingress rule"));
    }
    Ok(policy)
}

fn render_service(spec: &DeploySpec, config: &KubernetesConfig) -> Result<Service, ManifestError> {
    const T: &str = "service.yaml";
    let name = spec.name.as_str();
    let mut service: Service = parse(T, SERVICE_TEMPLATE)?;
    service.metadata = metadata(name.to_string(), spec, config);
    let service_spec = service.spec.as_mut().ok_or_else(|| missing(T, "spec"))?;
    service_spec.selector = Some(labels::selector(name));
    let port = service_spec
        .ports
        .as_mut()
        .and_then(|ports| {
            ports
                .iter_mut()
                .find(|port| port.name.as_deref() == Some(POSTGRES))
        })
        .ok_or_else(|| missing(T, "the postgres port"))?;
    port.port = i32::from(config.service_port);
    match spec.expose {
        Expose::Public => {
            service_spec.type_ = Some("LoadBalancer".into());
            if let Some(label) = &spec.dns_label {
                service.metadata.annotations = Some(BTreeMap::from([(
                    config.dns_label_annotation.clone(),
                    label.clone(),
                )]));
            }
        }
        Expose::Internal => service_spec.type_ = Some("ClusterIP".into()),
    }
    Ok(service)
}
