//! Where instances run. [`Backend`] is what the activities need from one; [`local`] runs one
//! `postgres` process per instance on this machine.

pub mod faulty;
pub mod kubernetes;
pub mod local;

use crate::model::Expose;
use crate::validation::InstanceName;
use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to an instance's PostgreSQL port: a TCP connection, or a tunnel such as a
/// Kubernetes port-forward.
pub trait InstanceIo: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> InstanceIo for T {}

/// An open connection to an instance, as [`Backend::dial`] returns it.
pub type InstanceStream = Box<dyn InstanceIo>;

/// Opens a TCP connection to `endpoint` (every address its host resolves to, in turn).
pub async fn dial_tcp(endpoint: &Endpoint) -> Result<InstanceStream, BackendError> {
    let stream = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|error| {
            BackendError::Transient(format!(
                "connecting to {}:{}: {error}",
                endpoint.host, endpoint.port
            ))
        })?;
    // Probes exchange a few small messages; don't hold them back.
    let _ = stream.set_nodelay(true);
    Ok(Box::new(stream))
}

/// What to deploy.
#[derive(Clone)]
pub struct DeploySpec {
    /// The instance name.
    pub name: InstanceName,
    /// Unique per instance incarnation: resources of an older instance with the same name are
    /// not adopted but replaced.
    pub uid: String,
    /// The major PostgreSQL version, one that [`Backend::versions`] offers.
    pub postgres_version: String,
    /// Requested storage in GiB.
    pub storage_gb: u32,
    /// The superuser password, in memory only.
    pub password: String,
    /// How clients reach the instance (the local backend serves loopback either way).
    pub expose: Expose,
    /// The DNS label a public instance asks for, where the backend supports one.
    pub dns_label: Option<String>,
}

impl std::fmt::Debug for DeploySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploySpec")
            .field("name", &self.name)
            .field("uid", &self.uid)
            .field("postgres_version", &self.postgres_version)
            .field("storage_gb", &self.storage_gb)
            .field("expose", &self.expose)
            .field("dns_label", &self.dns_label)
            .finish_non_exhaustive()
    }
}

/// What a deploy found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployOutcome {
    /// The resources were created now.
    Created,
    /// The resources already existed and are ours: adopted as they are.
    Adopted,
}

/// Whether an instance accepts connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// It accepts connections.
    Ready,
    /// It exists and is starting; the detail says what was seen.
    NotReady(String),
    /// Nothing is deployed under this name.
    Missing,
}

/// How clients reach an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// A backend failure.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The requested PostgreSQL version is not offered.
    #[error("PostgreSQL {requested} is not offered (offered: {offered})")]
    UnsupportedVersion {
        /// What was asked for.
        requested: String,
        /// What is offered, comma separated.
        offered: String,
    },
    /// No free port is left in the configured range.
    #[error("no free port in {0}")]
    NoFreePort(String),
    /// The instance has no resources.
    #[error("instance {0} is not deployed")]
    NotDeployed(String),
    /// Something failed that may succeed on a retry.
    #[error("{0}")]
    Transient(String),
    /// Something failed that a retry will not fix.
    #[error("{0}")]
    Permanent(String),
}

impl BackendError {
    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            BackendError::Transient(_) | BackendError::NoFreePort(_)
        )
    }
}

/// A place where PostgreSQL instances run. Every method is idempotent.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The backend's wire name (`local`, `kubernetes`).
    fn kind(&self) -> &'static str;

    /// The major PostgreSQL versions offered, oldest first.
    fn versions(&self) -> Vec<String>;

    /// Creates the instance's resources and starts it, or adopts them when they exist and are ours.
    async fn deploy(&self, spec: &DeploySpec) -> Result<DeployOutcome, BackendError>;

    /// Whether the instance accepts connections now (without waiting).
    async fn readiness(&self, name: &InstanceName) -> Result<Readiness, BackendError>;

    /// How clients reach the instance.
    async fn endpoint(&self, name: &InstanceName) -> Result<Endpoint, BackendError>;

    /// Stops the instance and removes every resource it has; succeeds when nothing is there.
    async fn delete(&self, name: &InstanceName) -> Result<(), BackendError>;

    /// The names of every instance that has resources on this backend.
    async fn list_owned(&self) -> Result<Vec<InstanceName>, BackendError>;

    /// Opens a connection to the PostgreSQL port of instance `name`, published at `endpoint`,
    /// from where this server runs. A plain TCP connection unless the backend knows a better
    /// way (Kubernetes tunnels to internal instances when the server runs outside the cluster).
    async fn dial(
        &self,
        _name: &InstanceName,
        endpoint: &Endpoint,
    ) -> Result<InstanceStream, BackendError> {
        dial_tcp(endpoint).await
    }
}
