//! The Kubernetes backend against kube-fake-client (CRUD semantics, labels, manifests, injected
//! faults) and a tower-test mock (the exact requests), and, when `KUBECONFIG` is set, a cluster.

use super::*;
use crate::backend::OwnedInstance;
use crate::model::Expose;
use crate::testkit::kube_simulator::{self as simulator, Simulation, tick};
use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_fake_client::{ClientBuilder, interceptor};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const NS: &str = "toygres";

fn spec(
    name: &str,
    expose: Expose,
) -> Result<DeploySpec, Box<dyn std::error::Error + Send + Sync>> {
    Ok(DeploySpec {
        name: InstanceName::parse(name)?,
        namespace: None,
        uid: "ins_first".into(),
        postgres_version: "16".into(),
        storage_gb: 3,
        superuser: "toygres_admin".into(),
        superuser_verifier: "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy".into(),
        expose,
        dns_label: Some("orders".into()),
    })
}

async fn fake() -> Result<Client, Box<dyn std::error::Error + Send + Sync>> {
    Ok(ClientBuilder::new().build().await?)
}

fn backend(client: Client) -> KubernetesBackend {
    KubernetesBackend::new(client, KubernetesConfig::default())
}

/// A backend that keeps volume claims when instances are deleted.
fn retaining_backend(client: Client) -> KubernetesBackend {
    KubernetesBackend::new(
        client,
        KubernetesConfig {
            retain_volumes: true,
            ..KubernetesConfig::default()
        },
    )
}

fn simulation() -> Simulation {
    Simulation {
        namespace: NS.into(),
        load_balancer_ip: "203.0.113.7".into(),
        runtime: None,
        interval: Duration::from_millis(20),
    }
}

async fn names<K: Managed>(client: &Client, selector: &str) -> Result<Vec<String>, kube::Error> {
    let api: Api<K> = Api::namespaced(client.clone(), NS);
    let listed = api.list(&ListParams::default().labels(selector)).await?;
    let mut names: Vec<String> = listed.items.iter().map(|o| o.name_any()).collect();
    names.sort();
    Ok(names)
}

// ---- manifests -------------------------------------------------------------------------

#[test]
fn port_forwards_go_to_the_port_the_service_targets() -> TestResult {
    let rendered = manifests::render(
        &spec("orders-db", Expose::Internal)?,
        &KubernetesConfig::default(),
    )?;
    let pod = rendered
        .statefulset
        .spec
        .and_then(|spec| spec.template.spec)
        .ok_or("pod spec")?;
    let declared = pod
        .containers
        .iter()
        .flat_map(|container| container.ports.iter().flatten())
        .find(|port| port.name.as_deref() == Some(manifests::POSTGRES))
        .ok_or("no postgres port")?;
    assert_eq!(
        i32::from(manifests::container_port()?),
        declared.container_port
    );
    let target = rendered
        .service
        .spec
        .and_then(|spec| spec.ports)
        .and_then(|ports| ports.into_iter().next())
        .and_then(|port| port.target_port)
        .ok_or("no target port")?;
    assert_eq!(
        target,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
            manifests::POSTGRES.into()
        )
    );
    Ok(())
}

#[test]
fn statefulset_reads_the_password_from_the_secret_and_runs_unprivileged() -> TestResult {
    let rendered = manifests::render(
        &spec("orders-db", Expose::Internal)?,
        &KubernetesConfig::default(),
    )?;
    let set = rendered.statefulset;
    assert_eq!(
        set.metadata.labels,
        Some(labels::owned("orders-db", "ins_first"))
    );
    let set_spec = set.spec.ok_or("spec")?;
    let pod = set_spec.template.spec.ok_or("pod spec")?;
    let security = pod.security_context.ok_or("securityContext")?;
    assert_eq!(
        (security.run_as_user, security.fs_group),
        (Some(999), Some(999))
    );
    assert_eq!(security.run_as_non_root, Some(true));
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some("postgres:16"));
    let env = container.env.as_ref().ok_or("env")?;
    let password = env
        .iter()
        .find(|v| v.name == "POSTGRES_PASSWORD")
        .ok_or("password var")?;
    assert_eq!(password.value, None, "never a literal");
    let reference = password
        .value_from
        .as_ref()
        .and_then(|from| from.secret_key_ref.as_ref())
        .ok_or("secretKeyRef")?;
    assert_eq!(
        (reference.name.as_str(), reference.key.as_str()),
        ("orders-db-credentials", "password")
    );
    for probe in [&container.readiness_probe, &container.liveness_probe] {
        let command = probe
            .as_ref()
            .and_then(|p| p.exec.as_ref())
            .and_then(|e| e.command.clone())
            .ok_or("probe")?;
        assert_eq!(command[0], "pg_isready");
    }
    let resources = container.resources.as_ref().ok_or("resources")?;
    let limits = resources.limits.as_ref().ok_or("limits")?;
    assert_eq!(limits["memory"].0, "1Gi");
    assert_eq!(
        resources.requests.as_ref().ok_or("requests")?["cpu"].0,
        "250m"
    );
    let claim = &set_spec.volume_claim_templates.ok_or("claims")?[0];
    assert_eq!(
        claim.metadata.labels,
        Some(labels::owned("orders-db", "ins_first"))
    );
    let storage = claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .ok_or("storage")?;
    assert_eq!(storage["storage"].0, "3Gi");
    // The claim template, and so the claim, is named after the incarnation; the container
    // mounts that volume.
    assert_eq!(claim.metadata.name.as_deref(), Some("data-ins-first"));
    let mounts = container.volume_mounts.as_ref().ok_or("mounts")?;
    assert_eq!(mounts[0].name, "data-ins-first");
    assert_eq!(
        manifests::pvc_name("orders-db", "ins_first"),
        "data-ins-first-orders-db-0"
    );
    assert_eq!(
        set_spec.selector.match_labels,
        Some(labels::selector("orders-db"))
    );
    Ok(())
}

#[test]
fn service_type_and_annotation_follow_expose() -> TestResult {
    let config = KubernetesConfig::default();
    let public = manifests::render(&spec("orders-db", Expose::Public)?, &config)?.service;
    assert_eq!(
        public.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("LoadBalancer")
    );
    assert_eq!(
        public
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(&config.dns_label_annotation)),
        Some(&"orders".to_string())
    );
    let internal = manifests::render(&spec("orders-db", Expose::Internal)?, &config)?.service;
    assert_eq!(
        internal.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("ClusterIP")
    );
    assert_eq!(internal.metadata.annotations, None);
    let mut unlabelled = spec("orders-db", Expose::Public)?;
    unlabelled.dns_label = None;
    assert_eq!(
        manifests::render(&unlabelled, &config)?
            .service
            .metadata
            .annotations,
        None
    );
    Ok(())
}

#[test]
fn hostile_values_stay_values() -> TestResult {
    let hostile = "x\": {}\n  kind: Pod\n- '{{ . }}' : y\r\n#";
    let mut spec = spec("orders-db", Expose::Public)?;
    spec.superuser_verifier = hostile.into();
    spec.dns_label = Some(hostile.into());
    let config = KubernetesConfig {
        image: "registry.example/pg\nkind: Pod".into(),
        ..KubernetesConfig::default()
    };
    let rendered = manifests::render(&spec, &config)?;
    // The values are exactly what was given, in the fields they were given for...
    let data = rendered.secret.string_data.clone().ok_or("stringData")?;
    assert_eq!(data.len(), 1);
    assert_eq!(data["password"], hostile);
    let annotations = rendered
        .service
        .metadata
        .annotations
        .clone()
        .ok_or("annotations")?;
    assert_eq!(annotations.len(), 1);
    assert_eq!(annotations[&config.dns_label_annotation], hostile);
    // ...and survive a YAML round trip unchanged: they never became structure.
    let secret_yaml = serde_saphyr::to_string(&rendered.secret)?;
    let secret: Secret = serde_saphyr::from_str(&secret_yaml)?;
    assert_eq!(secret, rendered.secret);
    let service_yaml = serde_saphyr::to_string(&rendered.service)?;
    let service: Service = serde_saphyr::from_str(&service_yaml)?;
    assert_eq!(service, rendered.service);
    let set_yaml = serde_saphyr::to_string(&rendered.statefulset)?;
    let set: StatefulSet = serde_saphyr::from_str(&set_yaml)?;
    assert_eq!(set, rendered.statefulset);
    Ok(())
}

// ---- create, adopt, delete against kube-fake-client --------------------------------------

#[tokio::test]
async fn deploy_creates_labelled_objects_then_adopts_them() -> TestResult {
    let client = fake().await?;
    let backend = backend(client.clone());
    let spec = spec("orders-db", Expose::Public)?;
    assert_eq!(backend.deploy(&spec).await?, DeployOutcome::Created);
    let selector = "app.kubernetes.io/managed-by=toygres,toygres.io/instance=orders-db,toygres.io/uid=ins_first";
    assert_eq!(
        names::<Secret>(&client, selector).await?,
        ["orders-db-credentials"]
    );
    assert_eq!(
        names::<StatefulSet>(&client, selector).await?,
        ["orders-db"]
    );
    assert_eq!(names::<Service>(&client, selector).await?, ["orders-db"]);
    assert_eq!(backend.deploy(&spec).await?, DeployOutcome::Adopted);
    assert_eq!(backend.list_owned().await?, [owned(&spec)]);
    Ok(())
}

/// What `list_owned` reports for the objects of `spec`.
fn owned(spec: &DeploySpec) -> OwnedInstance {
    OwnedInstance {
        name: spec.name.clone(),
        namespace: Some(NS.into()),
        uid: Some(spec.uid.clone()),
    }
}

#[tokio::test]
async fn a_foreign_object_with_the_name_is_a_permanent_failure() -> TestResult {
    let foreign = Service {
        metadata: ObjectMeta {
            name: Some("orders-db".into()),
            namespace: Some(NS.into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            ports: Some(vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let client = ClientBuilder::new().with_object(foreign).build().await?;
    let backend = backend(client.clone());
    let error = backend
        .deploy(&spec("orders-db", Expose::Internal)?)
        .await
        .err()
        .ok_or("deploy over a foreign Service succeeded")?;
    assert!(matches!(error, BackendError::Permanent(_)), "{error:?}");
    assert!(!error.is_retryable());
    assert!(
        error.to_string().contains("not managed by Toygres"),
        "{error}"
    );
    // The foreign Service is untouched, and not reported as ours.
    let service: Api<Service> = Api::namespaced(client, NS);
    assert!(service.get("orders-db").await?.metadata.labels.is_none());
    let names = backend.list_owned().await?;
    assert_eq!(
        names,
        [owned(&spec("orders-db", Expose::Internal)?)],
        "the Secret and StatefulSet are ours"
    );
    Ok(())
}

#[tokio::test]
async fn a_leftover_of_an_older_incarnation_is_replaced() -> TestResult {
    let client = fake().await?;
    let backend = backend(client.clone());
    let old = spec("orders-db", Expose::Internal)?;
    backend.deploy(&old).await?;
    let new = DeploySpec {
        uid: "ins_second".into(),
        ..old
    };
    // Each leftover is deleted and waited out, then created anew: one attempt.
    assert_eq!(backend.deploy(&new).await?, DeployOutcome::Created);
    let selector = "toygres.io/uid=ins_second";
    assert_eq!(
        names::<Secret>(&client, selector).await?,
        ["orders-db-credentials"]
    );
    assert_eq!(
        names::<StatefulSet>(&client, selector).await?,
        ["orders-db"]
    );
    assert_eq!(names::<Service>(&client, selector).await?, ["orders-db"]);
    Ok(())
}

#[tokio::test]
async fn a_retained_volume_of_an_older_incarnation_is_never_the_new_ones() -> TestResult {
    let client = fake().await?;
    let backend = retaining_backend(client.clone());
    let old = spec("orders-db", Expose::Internal)?;
    backend.deploy(&old).await?;
    tick(&client, &simulation()).await?;
    backend.delete(old.instance(), &old.uid).await?;
    let new = DeploySpec {
        uid: "ins_second".into(),
        ..old
    };
    backend.deploy(&new).await?;
    tick(&client, &simulation()).await?;
    let instance = labels::instance_selector("orders-db");
    assert_eq!(
        names::<PersistentVolumeClaim>(&client, &instance).await?,
        ["data-ins-first-orders-db-0", "data-ins-second-orders-db-0"],
        "the new StatefulSet claims a volume of its own; the retained one stays as it was"
    );
    Ok(())
}

/// A Service of incarnation `uid` held by a load balancer's cleanup finalizer after its delete.
fn terminating_service(uid: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("orders-db".into()),
            namespace: Some(NS.into()),
            labels: Some(labels::owned("orders-db", uid)),
            finalizers: Some(vec!["service.kubernetes.io/load-balancer-cleanup".into()]),
            deletion_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            )),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(vec![ServicePort {
                name: Some("postgres".into()),
                port: 5432,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[tokio::test]
async fn a_create_waits_out_a_service_held_by_its_cleanup_finalizer() -> TestResult {
    let client = ClientBuilder::new()
        .with_object(terminating_service("ins_old"))
        .build()
        .await?;
    // The cloud controller releases the load balancer a moment later.
    let releasing = client.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let services: Api<Service> = Api::namespaced(releasing, NS);
        let _ = services.delete("orders-db", &DeleteParams::default()).await;
    });
    let backend = backend(client.clone());
    let started = std::time::Instant::now();
    backend.deploy(&spec("orders-db", Expose::Public)?).await?;
    assert!(started.elapsed() >= Duration::from_millis(400), "it waited");
    assert_eq!(
        names::<Service>(&client, "toygres.io/uid=ins_first").await?,
        ["orders-db"],
        "one attempt: the new Service once the old one was gone"
    );
    Ok(())
}

#[tokio::test]
async fn a_service_terminating_past_the_wait_is_a_retryable_failure() -> TestResult {
    let client = ClientBuilder::new()
        .with_object(terminating_service("ins_old"))
        .build()
        .await?;
    let backend = KubernetesBackend::new(
        client.clone(),
        KubernetesConfig {
            terminating_wait: Duration::from_millis(300),
            ..KubernetesConfig::default()
        },
    );
    let error = backend
        .deploy(&spec("orders-db", Expose::Public)?)
        .await
        .err()
        .ok_or("created over a terminating Service")?;
    assert!(error.is_retryable(), "{error:?}");
    assert!(error.to_string().contains("terminating"), "{error}");
    Ok(())
}

#[tokio::test]
async fn readiness_ignores_an_old_or_terminating_pod() -> TestResult {
    let client = fake().await?;
    let backend = backend(client.clone());
    let spec = spec("orders-db", Expose::Internal)?;
    backend.deploy(&spec).await?;
    let ready_pod = |uid: &str| Pod {
        metadata: ObjectMeta {
            name: Some("orders-db-0".into()),
            namespace: Some(NS.into()),
            labels: Some(labels::owned("orders-db", uid)),
            ..ObjectMeta::default()
        },
        status: Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![k8s_openapi::api::core::v1::PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Pod::default()
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    // The old incarnation's pod, still Ready.
    pods.create(&PostParams::default(), &ready_pod("ins_old"))
        .await?;
    match backend.readiness(spec.instance()).await? {
        Readiness::NotReady(detail) => assert!(detail.contains("incarnation"), "{detail}"),
        other => return Err(format!("an old pod counted: {other:?}").into()),
    }
    pods.delete("orders-db-0", &DeleteParams::default()).await?;
    pods.create(&PostParams::default(), &ready_pod("ins_first"))
        .await?;
    assert_eq!(backend.readiness(spec.instance()).await?, Readiness::Ready);
    Ok(())
}

#[tokio::test]
async fn readiness_ignores_a_terminating_pod() -> TestResult {
    let mut pod = Pod::default();
    pod.metadata.name = Some("orders-db-0".into());
    pod.metadata.namespace = Some(NS.into());
    pod.metadata.labels = Some(labels::owned("orders-db", "ins_first"));
    pod.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    pod.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
        conditions: Some(vec![k8s_openapi::api::core::v1::PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    let client = ClientBuilder::new().with_object(pod).build().await?;
    let backend = backend(client.clone());
    let spec = spec("orders-db", Expose::Internal)?;
    backend.deploy(&spec).await?;
    match backend.readiness(spec.instance()).await? {
        Readiness::NotReady(detail) => assert!(detail.contains("terminating"), "{detail}"),
        other => return Err(format!("a terminating pod counted: {other:?}").into()),
    }
    Ok(())
}

#[tokio::test]
async fn a_stale_pod_is_waited_out_before_the_create_finishes() -> TestResult {
    let mut pod = Pod::default();
    pod.metadata.name = Some("orders-db-0".into());
    pod.metadata.namespace = Some(NS.into());
    pod.metadata.labels = Some(labels::owned("orders-db", "ins_old"));
    let client = ClientBuilder::new().with_object(pod).build().await?;
    let backend = backend(client.clone());
    backend
        .deploy(&spec("orders-db", Expose::Internal)?)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client, NS);
    assert!(
        pods.get_opt("orders-db-0").await?.is_none(),
        "the old incarnation's pod was removed"
    );
    Ok(())
}

#[tokio::test]
async fn public_instances_report_their_dns_name() -> TestResult {
    use k8s_openapi::api::core::v1::Node;
    let mut node = Node::default();
    node.metadata.name = Some("node-1".into());
    node.metadata.labels = Some(std::collections::BTreeMap::from([(
        dns::REGION_LABEL.to_string(),
        "westeurope".to_string(),
    )]));
    let client = ClientBuilder::new().with_object(node).build().await?;
    let from_nodes = backend(client.clone());
    let public = spec("orders-db", Expose::Public)?;
    from_nodes.deploy(&public).await?;
    assert_eq!(
        from_nodes.dns_name(public.instance()).await?.as_deref(),
        Some("orders.westeurope.cloudapp.azure.com")
    );
    let configured = KubernetesBackend::new(
        client.clone(),
        KubernetesConfig {
            dns_suffix: Some("db.example.com".into()),
            ..KubernetesConfig::default()
        },
    );
    assert_eq!(
        configured.dns_name(public.instance()).await?.as_deref(),
        Some("orders.db.example.com")
    );
    // An internal instance, or a public one without a label, has none.
    let internal = spec("ledger", Expose::Internal)?;
    from_nodes.deploy(&internal).await?;
    assert_eq!(from_nodes.dns_name(internal.instance()).await?, None);
    let unlabelled = DeploySpec {
        dns_label: None,
        ..spec("plain", Expose::Public)?
    };
    from_nodes.deploy(&unlabelled).await?;
    assert_eq!(from_nodes.dns_name(unlabelled.instance()).await?, None);
    // No node names a region: no name.
    let bare = backend(fake().await?);
    bare.deploy(&public).await?;
    assert_eq!(bare.dns_name(public.instance()).await?, None);
    Ok(())
}

#[tokio::test]
async fn an_instance_without_its_statefulset_no_longer_runs() -> TestResult {
    let client = fake().await?;
    let backend = backend(client.clone());
    let spec = spec("orders-db", Expose::Internal)?;
    backend.deploy(&spec).await?;
    assert_eq!(backend.list_running().await?, Some(vec![owned(&spec)]));
    let sets: Api<StatefulSet> = Api::namespaced(client, NS);
    sets.delete("orders-db", &DeleteParams::default()).await?;
    assert_eq!(
        backend.list_owned().await?,
        [owned(&spec)],
        "its Secret and Service remain"
    );
    assert_eq!(
        backend.list_running().await?,
        Some(vec![]),
        "but nothing runs it"
    );
    Ok(())
}

#[tokio::test]
async fn delete_removes_everything_and_tolerates_absence() -> TestResult {
    let client = fake().await?;
    let backend = backend(client.clone());
    let spec = spec("orders-db", Expose::Public)?;
    backend.delete(spec.instance(), &spec.uid).await?; // nothing there: fine
    backend.deploy(&spec).await?;
    tick(&client, &simulation()).await?; // the PVC and the pod appear
    let instance = labels::instance_selector("orders-db");
    assert_eq!(
        names::<PersistentVolumeClaim>(&client, &instance).await?,
        ["data-ins-first-orders-db-0"]
    );
    backend.delete(spec.instance(), &spec.uid).await?;
    backend.delete(spec.instance(), &spec.uid).await?;
    for kind in [
        names::<Secret>(&client, &instance).await?,
        names::<StatefulSet>(&client, &instance).await?,
        names::<Service>(&client, &instance).await?,
        names::<PersistentVolumeClaim>(&client, &instance).await?,
    ] {
        assert!(kind.is_empty(), "left behind: {kind:?}");
    }
    assert!(backend.list_owned().await?.is_empty());
    assert_eq!(
        backend.readiness(spec.instance()).await?,
        Readiness::Missing
    );
    Ok(())
}

#[tokio::test]
async fn retained_volumes_survive_a_delete() -> TestResult {
    let client = fake().await?;
    let backend = retaining_backend(client.clone());
    let spec = spec("orders-db", Expose::Internal)?;
    backend.deploy(&spec).await?;
    tick(&client, &simulation()).await?;
    backend.delete(spec.instance(), &spec.uid).await?;
    let instance = labels::instance_selector("orders-db");
    assert_eq!(
        names::<PersistentVolumeClaim>(&client, &instance).await?,
        ["data-ins-first-orders-db-0"]
    );
    assert!(names::<StatefulSet>(&client, &instance).await?.is_empty());
    assert!(
        backend.list_owned().await?.is_empty(),
        "a retained volume is not an orphan"
    );
    Ok(())
}

#[tokio::test]
async fn the_sweep_removes_objects_found_only_by_label() -> TestResult {
    let client = fake().await?;
    let secret = |name: &str, labels| Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            labels,
            ..ObjectMeta::default()
        },
        ..Secret::default()
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    // An object of this incarnation under another name (a renamed template), one of an older
    // incarnation of the same name, and someone else's.
    for object in [
        secret(
            "orders-db-renamed",
            Some(labels::owned("orders-db", "ins_first")),
        ),
        secret(
            "orders-db-older",
            Some(labels::owned("orders-db", "ins_old")),
        ),
        secret("someone-elses", None),
    ] {
        secrets.create(&PostParams::default(), &object).await?;
    }
    let backend = backend(client.clone());
    let name = InstanceName::parse("orders-db")?;
    let incarnation = |uid: &str| OwnedInstance {
        name: name.clone(),
        namespace: Some(NS.into()),
        uid: Some(uid.into()),
    };
    assert_eq!(
        backend.list_owned().await?,
        [incarnation("ins_first"), incarnation("ins_old")]
    );
    backend
        .delete(crate::backend::InstanceRef::in_default(&name), "ins_first")
        .await?;
    assert!(secrets.get_opt("orders-db-renamed").await?.is_none());
    assert!(
        secrets.get_opt("orders-db-older").await?.is_some(),
        "a delete never removes another incarnation's objects"
    );
    assert!(secrets.get_opt("someone-elses").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn a_delete_of_an_old_incarnation_spares_the_new_one() -> TestResult {
    let client = fake().await?;
    let backend = backend(client.clone());
    let new = DeploySpec {
        uid: "ins_second".into(),
        ..spec("orders-db", Expose::Public)?
    };
    backend.deploy(&new).await?;
    tick(&client, &simulation()).await?;
    // A late delete (or an orphan removal) of the first incarnation of the name.
    backend.delete(new.instance(), "ins_first").await?;
    let selector = labels::incarnation_selector("orders-db", "ins_second");
    assert_eq!(
        names::<Secret>(&client, &selector).await?,
        ["orders-db-credentials"]
    );
    assert_eq!(
        names::<StatefulSet>(&client, &selector).await?,
        ["orders-db"]
    );
    assert_eq!(names::<Service>(&client, &selector).await?, ["orders-db"]);
    assert_eq!(
        names::<NetworkPolicy>(&client, &selector).await?,
        ["orders-db"]
    );
    assert_eq!(
        names::<PersistentVolumeClaim>(&client, &selector).await?,
        ["data-ins-second-orders-db-0"]
    );
    assert_eq!(backend.list_owned().await?, [owned(&new)]);
    Ok(())
}

// ---- readiness and endpoints -------------------------------------------------------------

#[tokio::test]
async fn public_instances_are_ready_with_a_pod_and_a_load_balancer_address() -> TestResult {
    let client = fake().await?;
    let backend = backend(client.clone());
    let spec = spec("orders-db", Expose::Public)?;
    assert_eq!(
        backend.readiness(spec.instance()).await?,
        Readiness::Missing
    );
    backend.deploy(&spec).await?;
    assert!(matches!(
        backend.readiness(spec.instance()).await?,
        Readiness::NotReady(_)
    ));
    assert!(
        backend.endpoint(spec.instance()).await.is_err(),
        "no address yet"
    );
    tick(&client, &simulation()).await?;
    assert_eq!(backend.readiness(spec.instance()).await?, Readiness::Ready);
    assert_eq!(
        backend.endpoint(spec.instance()).await?,
        Endpoint {
            host: "203.0.113.7".into(),
            port: 5432
        }
    );
    Ok(())
}

#[tokio::test]
async fn internal_instances_are_reached_by_cluster_dns() -> TestResult {
    let client = fake().await?;
    let backend = backend(client.clone());
    let spec = spec("orders-db", Expose::Internal)?;
    backend.deploy(&spec).await?;
    let _simulator = simulator::Simulator::start(client.clone(), simulation());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while backend.readiness(spec.instance()).await? != Readiness::Ready {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        backend.endpoint(spec.instance()).await?,
        Endpoint {
            host: "orders-db.toygres.svc.cluster.local".into(),
            port: 5432
        }
    );
    Ok(())
}

#[tokio::test]
async fn unsupported_versions_are_refused_before_any_call() -> TestResult {
    let backend = backend(fake().await?);
    let spec = DeploySpec {
        postgres_version: "9".into(),
        ..spec("orders-db", Expose::Internal)?
    };
    let error = backend
        .deploy(&spec)
        .await
        .err()
        .ok_or("deployed version 9")?;
    assert!(
        matches!(error, BackendError::UnsupportedVersion { .. }),
        "{error:?}"
    );
    assert!(backend.list_owned().await?.is_empty());
    Ok(())
}

// ---- injected faults ---------------------------------------------------------------------

fn failing_service_creates(failures: usize) -> (interceptor::Funcs, Arc<AtomicUsize>) {
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = attempts.clone();
    let funcs = interceptor::Funcs::new().create(move |ctx| {
        if ctx.object.get("kind").and_then(|k| k.as_str()) == Some("Service")
            && seen.fetch_add(1, Ordering::SeqCst) < failures
        {
            return Err(kube_fake_client::Error::Internal("injected".into()));
        }
        Ok(None)
    });
    (funcs, attempts)
}

#[tokio::test]
async fn a_500_on_the_service_is_retryable_and_a_retry_completes_the_deploy() -> TestResult {
    let (funcs, attempts) = failing_service_creates(2);
    let client = ClientBuilder::new()
        .with_interceptor_funcs(funcs)
        .build()
        .await?;
    let backend = backend(client.clone());
    let spec = spec("orders-db", Expose::Public)?;
    for _ in 0..2 {
        let error = backend
            .deploy(&spec)
            .await
            .err()
            .ok_or("the 500 was not seen")?;
        assert!(error.is_retryable(), "{error:?}");
    }
    // Earlier objects were adopted on the retries, not duplicated or refused.
    assert_eq!(backend.deploy(&spec).await?, DeployOutcome::Created);
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(
        names::<Service>(&client, &labels::managed_selector()).await?,
        ["orders-db"]
    );
    Ok(())
}

// ---- the exact requests (tower-test) -----------------------------------------------------

#[tokio::test]
async fn a_deploy_sends_four_creates_in_order_and_looks_for_an_old_pod() -> TestResult {
    use http::{Method, Request, Response};
    use kube::client::Body;
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NS);
    let server = tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        let mut seen = Vec::new();
        for _ in 0..5 {
            let Some((request, respond)) = handle.next_request().await else {
                break;
            };
            let method = request.method().clone();
            let path = request.uri().path().to_string();
            if method == Method::GET {
                // No pod of an older incarnation.
                seen.push((method, path, String::new(), serde_json::Value::Null));
                let status = serde_json::json!({
                    "kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "NotFound", "code": 404, "message": "pods \"orders-db-0\" not found"
                });
                let mut response = Response::new(Body::from(status.to_string().into_bytes()));
                *response.status_mut() = http::StatusCode::NOT_FOUND;
                respond.send_response(response);
                continue;
            }
            let body = request.into_body().collect_bytes().await?;
            let object: serde_json::Value = serde_json::from_slice(&body)?;
            seen.push((
                method,
                path,
                object["kind"].as_str().unwrap_or_default().to_string(),
                object,
            ));
            let mut response = Response::new(Body::from(body.to_vec()));
            *response.status_mut() = http::StatusCode::CREATED;
            respond.send_response(response);
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(seen)
    });
    let backend = backend(client);
    assert_eq!(
        backend.deploy(&spec("orders-db", Expose::Public)?).await?,
        DeployOutcome::Created
    );
    let seen = server.await??;
    let summary: Vec<(Method, &str, &str)> = seen
        .iter()
        .map(|(m, p, k, _)| (m.clone(), p.as_str(), k.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (Method::POST, "/api/v1/namespaces/toygres/secrets", "Secret"),
            (
                Method::POST,
                "/apis/apps/v1/namespaces/toygres/statefulsets",
                "StatefulSet"
            ),
            (
                Method::GET,
                "/api/v1/namespaces/toygres/pods/orders-db-0",
                ""
            ),
            (
                Method::POST,
                "/api/v1/namespaces/toygres/services",
                "Service"
            ),
            (
                Method::POST,
                "/apis/networking.k8s.io/v1/namespaces/toygres/networkpolicies",
                "NetworkPolicy"
            ),
        ]
    );
    // The superuser's verifier travels only in the Secret (and no password anywhere).
    for (_, _, kind, object) in seen.iter().filter(|(m, ..)| m == Method::POST) {
        assert_eq!(
            object.to_string().contains("SCRAM-SHA-256$4096:"),
            kind == "Secret",
            "{kind}"
        );
    }
    // The pod mounts no service-account token, and runs the control plane's superuser.
    let (_, _, _, set) = &seen[1];
    let pod = &set["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    let env = pod["containers"][0]["env"].as_array().ok_or("env")?;
    assert!(
        env.iter()
            .any(|v| v["name"] == "POSTGRES_USER" && v["value"] == "toygres_admin")
    );
    // The policy admits PostgreSQL traffic to the instance's pod only.
    let (_, _, _, policy) = &seen[4];
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress"])
    );
    assert_eq!(
        policy["spec"]["ingress"],
        serde_json::json!([{"ports": [{"protocol": "TCP", "port": 5432}]}])
    );
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"]["toygres.io/instance"],
        "orders-db"
    );
    Ok(())
}

#[tokio::test]
async fn a_forbidden_answer_is_permanent() -> TestResult {
    use http::{Request, Response};
    use kube::client::Body;
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NS);
    tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        if let Some((_, respond)) = handle.next_request().await {
            let status = serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "secrets is forbidden", "reason": "Forbidden", "code": 403
            });
            let mut response = Response::new(Body::from(status.to_string().into_bytes()));
            *response.status_mut() = http::StatusCode::FORBIDDEN;
            respond.send_response(response);
        }
    });
    let error = backend(client)
        .deploy(&spec("orders-db", Expose::Internal)?)
        .await
        .err()
        .ok_or("a 403 passed")?;
    assert!(matches!(error, BackendError::Permanent(_)), "{error:?}");
    Ok(())
}

// ---- a real cluster, opt in --------------------------------------------------------------

/// Runs only with `KUBECONFIG` set: deploys into `TOYGRES_K8S_TEST_NAMESPACE` (default
/// `toygres-test`, which must exist), waits until ready, runs `SELECT 1` as the owner the way
/// the server would (through a port-forward from outside the cluster), deletes.
#[tokio::test]
async fn real_cluster_round_trip_when_kubeconfig_is_set() -> TestResult {
    if std::env::var_os("KUBECONFIG").is_none() {
        println!("skipped: KUBECONFIG is not set, so no real cluster is used");
        return Ok(());
    }
    let namespace =
        std::env::var("TOYGRES_K8S_TEST_NAMESPACE").unwrap_or_else(|_| "toygres-test".into());
    let backend = KubernetesBackend::connect(KubernetesConfig {
        namespace,
        ..KubernetesConfig::default()
    })
    .await?;
    let spec = DeploySpec {
        uid: format!("ins_test{}", std::process::id()),
        superuser_verifier: crate::roles::scram_verifier(OPT_IN_PASSWORD),
        ..spec("toygres-opt-in-test", Expose::Internal)?
    };
    backend.delete(spec.instance(), &spec.uid).await?;
    backend.deploy(&spec).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    let ready = loop {
        match backend.readiness(spec.instance()).await? {
            Readiness::Ready => break Ok(()),
            other if tokio::time::Instant::now() > deadline => break Err(format!("{other:?}")),
            _ => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    };
    let outcome = match ready {
        Ok(()) => connect_as_owner(&backend, &spec).await,
        Err(error) => Err(error),
    };
    backend.delete(spec.instance(), &spec.uid).await?;
    outcome?;
    assert!(!backend.list_owned().await?.contains(&owned(&spec)));
    Ok(())
}

/// The bootstrap superuser's password of the opt-in test's instance.
const OPT_IN_PASSWORD: &str = "opt-in-test-password";

/// `SELECT 1` as the instance's bootstrap superuser, over the connection the backend dials.
async fn connect_as_owner(backend: &KubernetesBackend, spec: &DeploySpec) -> Result<(), String> {
    let endpoint = backend
        .endpoint(spec.instance())
        .await
        .map_err(|error| error.to_string())?;
    let target = crate::probe::ConnectTarget {
        name: spec.name.clone(),
        namespace: spec.namespace.clone(),
        host: endpoint.host,
        port: endpoint.port,
        user: spec.superuser.clone(),
        database: "postgres".into(),
        password: OPT_IN_PASSWORD.into(),
    };
    crate::probe::select_one(backend, &target, Duration::from_secs(30))
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}

#[tokio::test]
async fn waiting_for_a_pod_backs_off_instead_of_polling_the_api() -> TestResult {
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = reads.clone();
    let funcs = interceptor::Funcs::new().get(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok(None)
    });
    let client = ClientBuilder::new()
        .with_interceptor_funcs(funcs)
        .build()
        .await?;
    let backend = backend(client);
    let spec = spec("orders-db", Expose::Internal)?;
    backend.deploy(&spec).await?;
    reads.store(0, Ordering::SeqCst);
    // No kubelet: the pod never appears, so the wait runs to its limit.
    let started = std::time::Instant::now();
    let readiness = backend
        .wait_ready(spec.instance(), Duration::from_secs(3))
        .await?;
    assert!(matches!(readiness, Readiness::NotReady(_)), "{readiness:?}");
    assert!(started.elapsed() >= Duration::from_secs(3));
    // Each check reads the StatefulSet and the pod; with a backoff from 100 ms to 1 s, three
    // seconds hold at most 7 checks (polling every 10 ms would make about 600 reads).
    let made = reads.load(Ordering::SeqCst);
    assert!((2..=14).contains(&made), "{made} API reads in 3 s");
    Ok(())
}
