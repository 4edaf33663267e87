//! Where instances run. [`Backend`] is what the activities need from one; [`local`] runs one
//! `postgres` process per instance on this machine.

pub mod faulty;
pub mod kubernetes;
pub mod local;

use crate::model::Expose;
use crate::validation::InstanceName;
use async_trait::async_trait;
use std::collections::BTreeMap;
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

/// An instance as its backend finds it: its name and, on a backend with namespaces, the
/// namespace it lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceRef<'a> {
    /// The instance name (unique across the control plane).
    pub name: &'a InstanceName,
    /// Its namespace; `None` is the backend's default (inputs recorded before instances had
    /// one named none).
    pub namespace: Option<&'a str>,
}

impl<'a> InstanceRef<'a> {
    /// Instance `name` in `namespace` (`None`: the backend's default).
    pub fn new(name: &'a InstanceName, namespace: Option<&'a str>) -> Self {
        Self { name, namespace }
    }

    /// Instance `name` in the backend's default namespace.
    pub fn in_default(name: &'a InstanceName) -> Self {
        Self::new(name, None)
    }
}

impl std::fmt::Display for InstanceRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.namespace {
            Some(namespace) => write!(f, "{namespace}/{}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

/// What to deploy.
#[derive(Clone)]
pub struct DeploySpec {
    /// The instance name.
    pub name: InstanceName,
    /// The namespace it goes into (`None`: the backend's default).
    pub namespace: Option<String>,
    /// Unique per instance incarnation: resources of an older instance with the same name are
    /// not adopted but replaced.
    pub uid: String,
    /// The major PostgreSQL version, one that [`Backend::versions`] offers.
    pub postgres_version: String,
    /// Requested storage in GiB.
    pub storage_gb: u32,
    /// The bootstrap superuser (`toygres_admin`; `postgres` for instances created before the
    /// control plane had roles of its own).
    pub superuser: String,
    /// The bootstrap superuser's password as a SCRAM-SHA-256 verifier: what PostgreSQL keeps,
    /// never the password itself.
    pub superuser_verifier: String,
    /// How clients reach the instance (the local backend serves loopback either way).
    pub expose: Expose,
    /// The DNS label a public instance asks for, where the backend supports one.
    pub dns_label: Option<String>,
}

impl std::fmt::Debug for DeploySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploySpec")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("uid", &self.uid)
            .field("postgres_version", &self.postgres_version)
            .field("storage_gb", &self.storage_gb)
            .field("superuser", &self.superuser)
            .field("expose", &self.expose)
            .field("dns_label", &self.dns_label)
            .finish_non_exhaustive()
    }
}

impl DeploySpec {
    /// The instance this spec deploys.
    pub fn instance(&self) -> InstanceRef<'_> {
        InstanceRef::new(&self.name, self.namespace.as_deref())
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
    /// It exists and its server was stopped on purpose (by [`Backend::stop`]).
    Stopped,
    /// Nothing is deployed under this name.
    Missing,
}

/// One incarnation of an instance that has resources on a backend.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct OwnedInstance {
    /// The instance name.
    pub name: InstanceName,
    /// The namespace its resources are in (`None` on a backend without namespaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its incarnation (`None` for resources that carry no incarnation: they are never removed
    /// by a sweep that names one).
    pub uid: Option<String>,
}

impl OwnedInstance {
    /// The instance these resources belong to.
    pub fn instance(&self) -> InstanceRef<'_> {
        InstanceRef::new(&self.name, self.namespace.as_deref())
    }
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
    /// The backend cannot do this (the message says why), for example grow a volume whose
    /// storage class cannot expand.
    #[error("{0}")]
    Unsupported(String),
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

/// The one namespace of a backend without namespaces (the local backend).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Why a new instance may not go into a namespace.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// The backend has no namespaces: only its one default is accepted.
    #[error("the {backend} backend has no namespaces; leave namespace out or send \"{default}\"")]
    NoNamespaces {
        /// The backend's wire name.
        backend: &'static str,
        /// Its one namespace.
        default: String,
    },
    /// The namespace is not among those the server is configured to allow.
    #[error("namespace {namespace} is not allowed; allowed: {allowed}")]
    NotAllowed {
        /// What was asked for.
        namespace: String,
        /// The allowed namespaces, comma separated.
        allowed: String,
    },
    /// The namespace does not exist (or the server cannot see it: the message says which).
    #[error("{0}")]
    Missing(String),
    /// The server lacks permissions it needs in the namespace.
    #[error("{0}")]
    Forbidden(String),
    /// The backend could not tell.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// A permission the server needs in a namespace and does not hold.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct MissingPermission {
    /// The namespace.
    pub namespace: String,
    /// The verb (`create`, `get`, ...).
    pub verb: String,
    /// The resource, with its API group and subresource where it has them
    /// (`statefulsets.apps`, `pods/portforward`).
    pub resource: String,
}

impl std::fmt::Display for MissingPermission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} in namespace {}",
            self.verb, self.resource, self.namespace
        )
    }
}

/// A place where PostgreSQL instances run. Every method is idempotent.
/// What a refill of the warm pool did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolReport {
    /// The configured size per version (0: the pool is off, and now empty).
    pub per_version: usize,
    /// Ready clusters the pool holds, over all versions.
    pub ready: usize,
    /// Clusters made by this refill.
    pub made: usize,
    /// Clusters removed (left by a crash, dead, or beyond the configured size).
    pub removed: usize,
}

/// A pool of started clusters waiting for creates ([`Backend::warm_pool`]).
#[async_trait]
pub trait WarmPool: Send + Sync {
    /// How many clusters per version the pool keeps.
    fn size(&self) -> usize;
    /// Tops the pool up to its size per version, or trims it, after removing leftovers.
    async fn refill(&self) -> Result<PoolReport, BackendError>;
    /// Stops and removes every pooled cluster; returns how many.
    async fn drain(&self) -> Result<usize, BackendError>;
}

#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The backend's wire name (`local`, `kubernetes`).
    fn kind(&self) -> &'static str;

    /// The namespace a create that names none goes into ([`DEFAULT_NAMESPACE`] on a backend
    /// without namespaces).
    fn default_namespace(&self) -> &str {
        DEFAULT_NAMESPACE
    }

    /// The namespaces new instances may go into, the default first.
    fn allowed_namespaces(&self) -> Vec<String> {
        vec![self.default_namespace().to_string()]
    }

    /// Checks, before anything is written anywhere, that a new instance may go into
    /// `namespace`: allowed, existing, and the server holds what it needs there. The default
    /// (a backend without namespaces) accepts its one namespace only.
    async fn check_placement(&self, namespace: &str) -> Result<(), PlacementError> {
        if namespace == self.default_namespace() {
            Ok(())
        } else {
            Err(PlacementError::NoNamespaces {
                backend: self.kind(),
                default: self.default_namespace().to_string(),
            })
        }
    }

    /// The permissions the server needs in its allowed namespaces and does not hold (empty:
    /// none missing; always empty on a backend without permissions).
    async fn missing_permissions(&self) -> Result<Vec<MissingPermission>, BackendError> {
        Ok(Vec::new())
    }

    /// The major PostgreSQL versions offered, oldest first.
    fn versions(&self) -> Vec<String>;

    /// Creates the instance's resources and starts it, or adopts them when they exist and are ours.
    async fn deploy(&self, spec: &DeploySpec) -> Result<DeployOutcome, BackendError>;

    /// Whether the instance accepts connections now (without waiting).
    async fn readiness(&self, instance: InstanceRef<'_>) -> Result<Readiness, BackendError>;

    /// Waits until the instance accepts connections, is found missing, or `limit` passed
    /// (then it answers [`Readiness::NotReady`] with what it saw last). The default asks
    /// [`Backend::readiness`] with a backoff from 100 ms to 1 s, which keeps the load on a
    /// remote API low; a backend with a cheap local check overrides it.
    async fn wait_ready(
        &self,
        instance: InstanceRef<'_>,
        limit: std::time::Duration,
    ) -> Result<Readiness, BackendError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut pause = std::time::Duration::from_millis(100);
        loop {
            let readiness = self.readiness(instance).await?;
            if !matches!(readiness, Readiness::NotReady(_)) {
                return Ok(readiness);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(readiness);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(1));
        }
    }

    /// How clients reach the instance.
    async fn endpoint(&self, instance: InstanceRef<'_>) -> Result<Endpoint, BackendError>;

    /// The stable DNS name clients should use for the instance, where the backend gives it
    /// one (a public Kubernetes instance's DNS label in the cloud's zone); it may take a while
    /// to resolve after the create. `None` by default.
    async fn dns_name(&self, instance: InstanceRef<'_>) -> Result<Option<String>, BackendError> {
        let _ = instance;
        Ok(None)
    }

    /// Stops incarnation `uid` of instance `name` and removes every resource it has; succeeds
    /// when nothing is there. Resources of another incarnation of the same name are never
    /// touched.
    async fn delete(&self, instance: InstanceRef<'_>, uid: &str) -> Result<(), BackendError>;

    /// Every incarnation that has resources on this backend.
    async fn list_owned(&self) -> Result<Vec<OwnedInstance>, BackendError>;

    /// The incarnations whose server still exists (on Kubernetes: those with a StatefulSet),
    /// when that is narrower than [`Backend::list_owned`]: a running instance not among them
    /// has lost its backend even though other resources of it remain. `None` (the default):
    /// every owned incarnation runs.
    async fn list_running(&self) -> Result<Option<Vec<OwnedInstance>>, BackendError> {
        Ok(None)
    }

    /// Stops the server of incarnation `uid` of instance `name`, keeping its data, and returns
    /// once it is down. It stays down, also across restarts of the control plane, until
    /// [`Backend::start`]; [`Backend::readiness`] reports it [`Readiness::Stopped`].
    async fn stop(&self, instance: InstanceRef<'_>, uid: &str) -> Result<(), BackendError>;

    /// Starts the server of a stopped incarnation again, with the data and endpoint it had,
    /// without waiting for it to accept connections. Succeeds on a running one.
    async fn start(&self, instance: InstanceRef<'_>, uid: &str) -> Result<(), BackendError>;

    /// Restarts the server (a fast shutdown, then a start, without waiting for it to accept
    /// connections). With `parameters`, the server runs with exactly these settings on its
    /// command line from now on (every later start too); without, it keeps the ones it has.
    async fn restart(
        &self,
        instance: InstanceRef<'_>,
        uid: &str,
        parameters: Option<&BTreeMap<String, String>>,
    ) -> Result<(), BackendError>;

    /// The backups this backend runs for its instances (`None`: it runs none, and backups,
    /// verifies and restores are refused as [`BackendError::Unsupported`]).
    fn backups(&self) -> Option<&dyn crate::backup::agent::InstanceBackups> {
        None
    }

    /// The warm pool of started, unassigned clusters this backend keeps (`None`: it keeps
    /// none).
    fn warm_pool(&self) -> Option<&dyn WarmPool> {
        None
    }

    /// Deploys a new instance whose data is restored from `source` (another incarnation's
    /// backups) instead of made by initdb; otherwise like [`Backend::deploy`].
    async fn deploy_restored(
        &self,
        _spec: &DeploySpec,
        _source: &crate::backup::agent::RestoreSource,
    ) -> Result<DeployOutcome, BackendError> {
        Err(BackendError::Unsupported(format!(
            "the {} backend does not run backups or restores yet",
            self.kind()
        )))
    }

    /// Grows the instance's storage to `storage_gb`, or says why it cannot
    /// ([`BackendError::Unsupported`]).
    async fn resize(
        &self,
        instance: InstanceRef<'_>,
        uid: &str,
        storage_gb: u32,
    ) -> Result<(), BackendError>;

    /// Opens a connection to the PostgreSQL port of instance `name`, published at `endpoint`,
    /// from where this server runs. A plain TCP connection unless the backend knows a better
    /// way (Kubernetes tunnels to internal instances when the server runs outside the cluster).
    async fn dial(
        &self,
        _instance: InstanceRef<'_>,
        endpoint: &Endpoint,
    ) -> Result<InstanceStream, BackendError> {
        dial_tcp(endpoint).await
    }
}
