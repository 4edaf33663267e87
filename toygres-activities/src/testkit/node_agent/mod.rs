//! For tests (feature `testkit`): a node agent that plays what a real API server and controller
//! manager leave to others, the kubelet and the cloud controller, on this machine.
//!
//! One agent (one node, one kubelet port) serves every namespace of
//! [`AgentConfig::namespaces`]: their pods, claims and LoadBalancer Services. What it keeps per
//! object is keyed by the object's uid (unique across namespaces), and the PersistentVolumes it
//! makes, their folders and the local ports of their servers are shared by none.
//!
//! - [`node`]: registers a Node (address 127.0.0.1, the kubelet port of [`kubelet`]) and keeps
//!   its `Ready` condition fresh.
//! - [`volumes`]: a `hostPath` PersistentVolume for each pending claim, pre-bound to it so the
//!   real PV binder binds it; released volumes are removed with their folders.
//! - [`pods`]: binds pending pods to the node, runs each pod's `postgres` container as a local
//!   PostgreSQL the way the image's entrypoint would (its environment and `secretKeyRef`s
//!   resolved through the API, data on the bound volume's folder, the image tag's major
//!   version mapped to the installed binaries or refused), reports readiness in the pod's
//!   status, and stops the server when the pod goes.
//! - [`kubelet`]: the kubelet's `portForward` endpoint (TLS), so `pods/portforward` through the
//!   API server reaches a pod's PostgreSQL.
//! - [`balancer`]: for LoadBalancer Services, an ingress address of 127.0.0.0/8 forwarding to
//!   the pod, and the cleanup finalizer, held for a configurable moment after the deletion.

pub mod balancer;
pub mod kubelet;
pub mod node;
pub mod pods;
pub mod volumes;

use kube::Client;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A failure of the node agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The API answered with an error.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The API's error.
        source: Box<kube::Error>,
    },
    /// A local file or socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The node's TLS identity could not be made.
    #[error("the kubelet's TLS identity: {0}")]
    Tls(String),
}

impl AgentError {
    fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |source| Self::Api {
            what,
            source: Box::new(source),
        }
    }

    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// What the node agent does.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The node's name.
    pub node_name: String,
    /// The namespaces whose pods, claims and Services it serves (each pass covers them all; a
    /// namespace listed twice is served once). Push to it, or use
    /// [`AgentConfig::with_namespace`].
    pub namespaces: Vec<String>,
    /// Where volumes live (one folder per PersistentVolume; mode 0755).
    pub root: PathBuf,
    /// Folder of the PostgreSQL binaries; discovered under `/usr/lib/postgresql` when `None`.
    pub bin_dir: Option<PathBuf>,
    /// Local ports handed to pods' PostgreSQL servers.
    pub ports: RangeInclusive<u16>,
    /// The node's `topology.kubernetes.io/region` label.
    pub region: String,
    /// How long a deleted LoadBalancer Service keeps its cleanup finalizer.
    pub finalizer_hold: Duration,
    /// How often each loop looks at the API.
    pub interval: Duration,
}

impl AgentConfig {
    /// Defaults for the one namespace `namespace` with volumes under `root`.
    pub fn new(namespace: &str, root: PathBuf) -> Self {
        Self {
            node_name: "toygres-node".into(),
            namespaces: vec![namespace.into()],
            root,
            bin_dir: None,
            ports: 26432..=26999,
            region: "testbed".into(),
            finalizer_hold: Duration::from_secs(2),
            interval: Duration::from_millis(200),
        }
    }

    /// The same, serving namespace `namespace` too (unless already listed).
    pub fn with_namespace(mut self, namespace: &str) -> Self {
        if !self.namespaces.iter().any(|listed| listed == namespace) {
            self.namespaces.push(namespace.into());
        }
        self
    }
}

/// The running agent: its loops stop, and every PostgreSQL it started is stopped, on
/// [`NodeAgent::shutdown`] (or, without waiting, on drop).
pub struct NodeAgent {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pods: Arc<pods::Pods>,
    kubelet_port: u16,
}

impl std::fmt::Debug for NodeAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAgent")
            .field("kubelet_port", &self.kubelet_port)
            .finish_non_exhaustive()
    }
}

impl NodeAgent {
    /// Registers the node and starts serving, with `client` (an identity that may manage
    /// nodes, pods, their bindings and status, volumes and Services: the testbed's admin).
    pub async fn start(client: Client, config: AgentConfig) -> Result<Self, AgentError> {
        volumes::prepare_root(&config.root)?;
        let pods = Arc::new(pods::Pods::new(client.clone(), config.clone()));
        let kubelet = kubelet::Kubelet::start(pods.clone()).await?;
        let kubelet_port = kubelet.port();
        node::register(&client, &config, kubelet_port).await?;
        let mut tasks = vec![kubelet.into_task()];
        tasks.push(spawn_loop("node", config.interval * 25, {
            let client = client.clone();
            let config = config.clone();
            move || {
                let client = client.clone();
                let config = config.clone();
                async move { node::heartbeat(&client, &config, kubelet_port).await }
            }
        }));
        tasks.push(spawn_loop("volumes", config.interval, {
            let client = client.clone();
            let config = config.clone();
            move || {
                let client = client.clone();
                let config = config.clone();
                async move { volumes::pass(&client, &config).await }
            }
        }));
        tasks.push(spawn_loop("pods", config.interval, {
            let pods = pods.clone();
            move || {
                let pods = pods.clone();
                async move { pods.pass().await }
            }
        }));
        let balancer = Arc::new(balancer::Balancer::new(
            client,
            config.clone(),
            pods.clone(),
        ));
        tasks.push(spawn_loop("balancer", config.interval, {
            move || {
                let balancer = balancer.clone();
                async move { balancer.pass().await }
            }
        }));
        Ok(Self {
            tasks,
            pods,
            kubelet_port,
        })
    }

    /// The port of the kubelet endpoint.
    pub fn kubelet_port(&self) -> u16 {
        self.kubelet_port
    }

    /// Stops the loops and every PostgreSQL the agent started.
    pub async fn shutdown(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.pods.stop_all().await;
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.pods.stop_all_blocking();
    }
}

/// Runs `pass` for each of `namespaces` (once each, in order), the rest still when one fails;
/// the first failure is returned, later ones logged.
async fn for_each_namespace<'a, F, Fut>(
    namespaces: &'a [String],
    mut pass: F,
) -> Result<(), AgentError>
where
    F: FnMut(&'a str) -> Fut,
    Fut: std::future::Future<Output = Result<(), AgentError>>,
{
    let mut failure = None;
    for (index, namespace) in namespaces.iter().enumerate() {
        if namespaces[..index].contains(namespace) {
            continue;
        }
        if let Err(error) = pass(namespace).await {
            match failure {
                None => failure = Some(error),
                Some(_) => tracing::warn!(%error, %namespace, "node agent: a pass failed"),
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Runs `pass` every `interval`, logging failures (a pass that fails is simply tried again).
fn spawn_loop<F, Fut>(
    what: &'static str,
    interval: Duration,
    pass: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), AgentError>> + Send,
{
    tokio::spawn(async move {
        loop {
            if let Err(error) = pass().await {
                tracing::warn!(%error, "node agent: {what} pass failed; retrying");
            }
            tokio::time::sleep(interval).await;
        }
    })
}
