//! The cloud controller's part for LoadBalancer Services: each gets an address of 127.0.0.0/8
//! (`127.0.0.<n>`), where the agent listens on the Service's port and forwards to the selected
//! pod's PostgreSQL; it carries the cleanup finalizer, which the agent removes only a
//! configurable moment after the Service's deletion (as clouds take a while to release a
//! load balancer). Services of every served namespace are balanced, each to the pods of its
//! own namespace.

use super::pods::Pods;
use super::{AgentConfig, AgentError, for_each_namespace};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt as _};
use serde_json::json;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::{TcpListener, TcpStream};

/// The finalizer cloud controllers hold on LoadBalancer Services.
pub const CLEANUP_FINALIZER: &str = "service.kubernetes.io/load-balancer-cleanup";

struct Balanced {
    namespace: String,
    address: Ipv4Addr,
    proxy: tokio::task::JoinHandle<()>,
}

/// The load balancers of the served namespaces' Services.
pub struct Balancer {
    client: Client,
    config: AgentConfig,
    pods: Arc<Pods>,
    /// By Service uid (unique across namespaces).
    balanced: Mutex<HashMap<String, Balanced>>,
    /// When each deleted Service (by uid) was first seen deleting.
    deleting: Mutex<HashMap<String, Instant>>,
}

impl Balancer {
    /// Load balancers for `config`'s namespaces, forwarding to `pods`.
    pub fn new(client: Client, config: AgentConfig, pods: Arc<Pods>) -> Self {
        Self {
            client,
            config,
            pods,
            balanced: Mutex::default(),
            deleting: Mutex::default(),
        }
    }

    fn api(&self, namespace: &str) -> Api<Service> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn balanced(&self) -> std::sync::MutexGuard<'_, HashMap<String, Balanced>> {
        self.balanced
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One pass over the Services of every served namespace.
    pub async fn pass(&self) -> Result<(), AgentError> {
        for_each_namespace(&self.config.namespaces, |namespace| self.pass_in(namespace)).await
    }

    /// One pass over the Services of namespace `namespace`.
    async fn pass_in(&self, namespace: &str) -> Result<(), AgentError> {
        let services = self
            .api(namespace)
            .list(&ListParams::default())
            .await
            .map_err(AgentError::api(format!("listing Services in {namespace}")))?
            .items;
        let live: Vec<String> = services
            .iter()
            .filter_map(|s| s.metadata.uid.clone())
            .collect();
        self.balanced().retain(|uid, balanced| {
            let keep = balanced.namespace != namespace || live.contains(uid);
            if !keep {
                balanced.proxy.abort();
            }
            keep
        });
        for service in &services {
            let balanced_type = service.spec.as_ref().and_then(|spec| spec.type_.as_deref())
                == Some("LoadBalancer");
            let Some(uid) = service.metadata.uid.clone() else {
                continue;
            };
            let held = service.finalizers().iter().any(|f| f == CLEANUP_FINALIZER);
            if service.metadata.deletion_timestamp.is_some() {
                if let Some(balanced) = self.balanced().remove(&uid) {
                    balanced.proxy.abort();
                }
                if held {
                    self.release_when_due(namespace, service, &uid).await?;
                }
                continue;
            }
            if !balanced_type {
                continue;
            }
            if !held {
                let mut finalizers = service.finalizers().to_vec();
                finalizers.push(CLEANUP_FINALIZER.to_string());
                self.patch(
                    namespace,
                    service,
                    &json!({"metadata": {"finalizers": finalizers}}),
                )
                .await?;
            }
            let existing = self.balanced().get(&uid).map(|balanced| balanced.address);
            let address = match existing {
                Some(address) => address,
                None => self.open(namespace, service, &uid).await?,
            };
            let reported = service
                .status
                .as_ref()
                .and_then(|status| status.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .and_then(|ingress| ingress.first())
                .and_then(|ingress| ingress.ip.clone());
            if reported != Some(address.to_string()) {
                let status =
                    json!({"status": {"loadBalancer": {"ingress": [{"ip": address.to_string()}]}}});
                self.api(namespace)
                    .patch_status(
                        &service.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&status),
                    )
                    .await
                    .map_err(AgentError::api(format!(
                        "addressing Service {namespace}/{}",
                        service.name_any()
                    )))?;
            }
        }
        Ok(())
    }

    /// Removes the cleanup finalizer once the Service has been deleting for the hold.
    async fn release_when_due(
        &self,
        namespace: &str,
        service: &Service,
        uid: &str,
    ) -> Result<(), AgentError> {
        let since = *self
            .deleting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(uid.to_string())
            .or_insert_with(Instant::now);
        if since.elapsed() < self.config.finalizer_hold {
            return Ok(());
        }
        let finalizers: Vec<String> = service
            .finalizers()
            .iter()
            .filter(|f| *f != CLEANUP_FINALIZER)
            .cloned()
            .collect();
        self.patch(
            namespace,
            service,
            &json!({"metadata": {"finalizers": finalizers}}),
        )
        .await?;
        self.deleting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(uid);
        Ok(())
    }

    async fn patch(
        &self,
        namespace: &str,
        service: &Service,
        patch: &serde_json::Value,
    ) -> Result<(), AgentError> {
        match self
            .api(namespace)
            .patch(
                &service.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(AgentError::api(format!(
                "updating Service {namespace}/{}",
                service.name_any()
            ))(error)),
        }
    }

    /// Listens on a free 127.0.0.<n> at the Service's port, forwarding to its pod (of the
    /// Service's namespace, `namespace`).
    async fn open(
        &self,
        namespace: &str,
        service: &Service,
        uid: &str,
    ) -> Result<Ipv4Addr, AgentError> {
        let port = service
            .spec
            .as_ref()
            .and_then(|spec| spec.ports.as_ref())
            .and_then(|ports| ports.first())
            .and_then(|port| u16::try_from(port.port).ok())
            .unwrap_or(5432);
        let selector = service
            .spec
            .as_ref()
            .and_then(|spec| spec.selector.clone())
            .unwrap_or_default();
        let taken: Vec<Ipv4Addr> = self.balanced().values().map(|b| b.address).collect();
        let mut listener = None;
        for n in 2..=254u8 {
            let address = Ipv4Addr::new(127, 0, 0, n);
            if taken.contains(&address) {
                continue;
            }
            if let Ok(bound) = TcpListener::bind((address, port)).await {
                listener = Some((address, bound));
                break;
            }
        }
        let (address, listener) = listener.ok_or_else(|| {
            AgentError::io(format!("no free 127.0.0.x address on port {port}"))(
                std::io::Error::other("all taken"),
            )
        })?;
        let pods = self.pods.clone();
        let selecting = namespace.to_string();
        let proxy = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let Some(pod) = pods.selected(&selecting, &selector) else {
                    continue; // no ready pod: the connection is closed, as with no endpoints
                };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", pod.port)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        self.balanced().insert(
            uid.to_string(),
            Balanced {
                namespace: namespace.to_string(),
                address,
                proxy,
            },
        );
        Ok(address)
    }
}
