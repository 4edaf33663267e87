//! The DNS names of public instances: the Service's DNS label in the cloud's zone, as Azure's
//! cloud controller publishes it (`<label>.<region>.cloudapp.azure.com`).

use super::errors::classify;
use super::{KubernetesBackend, is_load_balancer};
use crate::backend::BackendError;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, ListParams};

/// The node label that names the cloud region.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";

/// `<label>.<suffix>`, the name a DNS label gets in zone `suffix`.
pub fn dns_name(label: &str, suffix: &str) -> String {
    format!("{label}.{}", suffix.trim_matches('.'))
}

/// The zone of a region under Azure's suffix: `<region>.cloudapp.azure.com`.
pub fn region_suffix(region: &str) -> String {
    format!("{region}.{}", super::KubernetesConfig::AZURE_DNS_SUFFIX)
}

impl KubernetesBackend {
    /// The DNS label a Service asks for, if it is a LoadBalancer with the annotation.
    pub(super) fn dns_label_of<'a>(&self, service: &'a Service) -> Option<&'a str> {
        if !is_load_balancer(service) {
            return None;
        }
        service
            .metadata
            .annotations
            .as_ref()?
            .get(&self.config.dns_label_annotation)
            .map(String::as_str)
            .filter(|label| !label.is_empty())
    }

    /// The configured DNS suffix, or the one of the nodes' region (read once and kept). `None`
    /// when no node names a region, or when the server may not list nodes (logged).
    pub(super) async fn dns_suffix(&self) -> Result<Option<String>, BackendError> {
        if let Some(suffix) = &self.config.dns_suffix {
            return Ok(Some(suffix.clone()));
        }
        if let Some(found) = self.region_suffix.get() {
            return Ok(Some(found.clone()));
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        let listed = match nodes.list(&ListParams::default().limit(50)).await {
            Ok(listed) => listed,
            Err(kube::Error::Api(status)) if status.code == 403 => {
                tracing::warn!(
                    "may not list nodes to learn the region of public instances' DNS names; \
                     set TOYGRES_K8S_DNS_SUFFIX or grant nodes list: {}",
                    status.message
                );
                return Ok(None);
            }
            Err(error) => return Err(classify("listing nodes", error)),
        };
        let region = listed.items.iter().find_map(|node| {
            node.metadata
                .labels
                .as_ref()?
                .get(REGION_LABEL)
                .filter(|region| !region.is_empty())
                .cloned()
        });
        Ok(region.map(|region| {
            let suffix = region_suffix(&region);
            let _ = self.region_suffix.set(suffix.clone());
            suffix
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_join_label_and_zone() {
        assert_eq!(
            dns_name("orders", &region_suffix("westeurope")),
            "orders.westeurope.cloudapp.azure.com"
        );
        assert_eq!(
            dns_name("orders", "db.example.com."),
            "orders.db.example.com"
        );
    }
}
