//! The Node: registered once, its `Ready` condition and kubelet endpoint kept fresh.

use super::{AgentConfig, AgentError};
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::BTreeMap;

/// Creates the Node (when missing) and reports its status.
pub async fn register(
    client: &Client,
    config: &AgentConfig,
    kubelet_port: u16,
) -> Result<(), AgentError> {
    let nodes: Api<Node> = Api::all(client.clone());
    if nodes
        .get_opt(&config.node_name)
        .await
        .map_err(AgentError::api("reading the node"))?
        .is_none()
    {
        let mut node = Node::default();
        node.metadata.name = Some(config.node_name.clone());
        node.metadata.labels = Some(BTreeMap::from([
            (
                "kubernetes.io/hostname".to_string(),
                config.node_name.clone(),
            ),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            (
                "topology.kubernetes.io/region".to_string(),
                config.region.clone(),
            ),
        ]));
        nodes
            .create(&PostParams::default(), &node)
            .await
            .map_err(AgentError::api("registering the node"))?;
    }
    heartbeat(client, config, kubelet_port).await
}

/// Reports the node Ready now, at 127.0.0.1 with its kubelet port.
pub async fn heartbeat(
    client: &Client,
    config: &AgentConfig,
    kubelet_port: u16,
) -> Result<(), AgentError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let capacity = json!({"cpu": "16", "memory": "64Gi", "pods": "110"});
    let status = json!({"status": {
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "toygres node agent is posting ready status",
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }],
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": config.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "capacity": capacity,
        "allocatable": capacity,
    }});
    nodes
        .patch_status(
            &config.node_name,
            &PatchParams::default(),
            &Patch::Strategic(&status),
        )
        .await
        .map_err(AgentError::api("reporting the node's status"))?;
    Ok(())
}
