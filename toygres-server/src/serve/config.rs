//! Settings of `toygres serve`, from flags, environment variables and `.env` (in that order of
//! precedence). `.env.example` documents every variable.

use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;
use toygres_activities::backend::kubernetes::{ConnectMode, KubernetesConfig, Resources};

/// Which backend instances run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// One `postgres` process per instance on this machine.
    Local,
    /// One StatefulSet per instance in a Kubernetes namespace.
    Kubernetes,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Settings of `toygres serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address the API listens on.
    #[arg(long, env = "TOYGRES_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Folder for the embedded control-plane database, the secret key and local instances.
    #[arg(long, env = "TOYGRES_DATA_DIR", default_value = "./.toygres")]
    pub data_dir: PathBuf,

    /// Where instances run.
    #[arg(long, env = "TOYGRES_BACKEND", value_enum, default_value = "local")]
    pub backend: BackendKind,

    /// Control-plane database; when unset, an embedded PostgreSQL is started under the data dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Base64 of the 32-byte key that seals passwords; generated into the data dir when unset.
    #[arg(long, env = "TOYGRES_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<Secret>,

    /// API bearer tokens as ROLE:TOKEN[,ROLE:TOKEN...], ROLE admin or readonly, tokens of at
    /// least 16 characters (prefer the environment variable: flags show in `ps`). Unset: no
    /// authentication, allowed on a loopback address only.
    #[arg(long, env = "TOYGRES_API_TOKENS", hide_env_values = true)]
    pub api_tokens: Option<Secret>,

    /// PEM file of the API's TLS certificate chain; with --tls-key, the API is served over HTTPS.
    #[arg(long, env = "TOYGRES_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file of the private key of --tls-cert.
    #[arg(long, env = "TOYGRES_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Folder of the PostgreSQL server binaries; discovered when unset.
    #[arg(long, env = "TOYGRES_PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,

    /// Ports handed to local instances, as FIRST-LAST.
    #[arg(long, env = "TOYGRES_PORT_RANGE", default_value = "15432-15999", value_parser = parse_port_range)]
    pub port_range: RangeInclusive<u16>,

    /// Local backend: how many started copies of each version's template wait in the warm
    /// pool for creates (0: none; creates copy the template and start it).
    #[arg(long, env = "TOYGRES_WARM_POOL", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=64))]
    pub warm_pool: u16,

    /// How long a new instance may take to accept connections, in seconds.
    #[arg(long, env = "TOYGRES_READY_TIMEOUT_SECS", default_value_t = 120)]
    pub ready_timeout_secs: u64,

    /// How long the deploy step (all its attempts) may take, in seconds.
    #[arg(long, env = "TOYGRES_DEPLOY_TIMEOUT_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub deploy_timeout_secs: u64,

    /// How long any other step of an operation may take, in seconds.
    #[arg(long, env = "TOYGRES_STEP_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub step_timeout_secs: u64,

    /// How long the backend delete step (all its attempts) may take, in seconds.
    #[arg(long, env = "TOYGRES_DELETE_TIMEOUT_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub delete_timeout_secs: u64,

    /// How long a whole operation may take before it fails with `deadline_exceeded`, in seconds.
    #[arg(long, env = "TOYGRES_OPERATION_TIMEOUT_SECS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..))]
    pub operation_timeout_secs: u64,

    /// Faults to inject into the backend, for tests and drills only (e.g. `deploy=fail:2;delete=hang`).
    #[arg(long, env = "TOYGRES_FAULTS")]
    pub faults: Option<String>,

    /// How long the workflow history of a finished operation is kept, in seconds (its row and
    /// summary stay).
    #[arg(long, env = "TOYGRES_HISTORY_RETENTION_SECS", default_value_t = 604_800, value_parser = clap::value_parser!(u64).range(1..))]
    pub history_retention_secs: u64,

    /// A pause before every workflow step, in milliseconds, for tests and drills only (makes
    /// every step observable, e.g. to kill the server in it).
    #[arg(long, env = "TOYGRES_STEP_DELAY_MS", default_value_t = 0)]
    pub step_delay_ms: u64,

    /// How long idle workflow dispatchers wait for work before polling the store again, in
    /// milliseconds (work this server enqueues wakes them at once).
    #[arg(long, env = "TOYGRES_POLL_INTERVAL_MS", default_value_t = 250)]
    pub poll_interval_ms: u64,

    /// Activity lock timeout in seconds: bounds crash recovery and cancellation.
    #[arg(long, env = "TOYGRES_WORKER_LOCK_TIMEOUT_SECS", default_value_t = 10)]
    pub worker_lock_timeout_secs: u64,

    /// How often the reconciler looks for operations whose workflow is missing, in seconds.
    #[arg(long, env = "TOYGRES_RECONCILE_INTERVAL_SECS", default_value_t = 30)]
    pub reconcile_interval_secs: u64,

    /// Seconds between health checks of a running instance.
    #[arg(long, env = "TOYGRES_HEALTH_INTERVAL_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub health_interval_secs: u64,

    /// Failed health checks in a row that make an instance unhealthy.
    #[arg(long, env = "TOYGRES_HEALTH_FAILURES", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub health_failures: u32,

    /// Health checks per monitor execution before it continues as new (bounds its history).
    #[arg(long, env = "TOYGRES_HEALTH_CHECKS_PER_EXECUTION", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub health_checks_per_execution: u32,

    /// Seconds between drift scans (metadata against what the backend owns).
    #[arg(long, env = "TOYGRES_DRIFT_INTERVAL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub drift_interval_secs: u64,

    /// Seconds backend resources must stay orphaned before the drift reconciler removes them.
    #[arg(long, env = "TOYGRES_DRIFT_GRACE_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub drift_grace_secs: u64,

    /// Kubernetes backend: the namespace an instance goes into when its create names none.
    #[arg(long, env = "TOYGRES_K8S_NAMESPACE", default_value = "toygres")]
    pub k8s_namespace: String,

    /// Kubernetes backend: the namespaces instances may go into, comma separated; it must
    /// include TOYGRES_K8S_NAMESPACE (unset: that one alone). Each needs a RoleBinding of the
    /// ClusterRole toygres-instances (deploy/README.md).
    #[arg(long, env = "TOYGRES_K8S_NAMESPACES", value_delimiter = ',')]
    pub k8s_namespaces: Vec<String>,

    /// Kubernetes backend: the PostgreSQL image repository (the tag is the major version).
    #[arg(long, env = "TOYGRES_K8S_IMAGE", default_value = "postgres")]
    pub k8s_image: String,

    /// Kubernetes backend: the major PostgreSQL versions offered, comma separated, oldest first.
    #[arg(
        long,
        env = "TOYGRES_K8S_VERSIONS",
        default_value = "14,15,16,17",
        value_delimiter = ','
    )]
    pub k8s_versions: Vec<String>,

    /// Kubernetes backend: keep an instance's PVC when it is deleted.
    #[arg(long, env = "TOYGRES_K8S_RETAIN_VOLUMES", default_value_t = false, action = clap::ArgAction::Set)]
    pub k8s_retain_volumes: bool,

    /// Kubernetes backend: the Service annotation carrying a public instance's DNS label.
    #[arg(
        long,
        env = "TOYGRES_K8S_DNS_LABEL_ANNOTATION",
        default_value = "service.beta.kubernetes.io/azure-dns-label-name"
    )]
    pub k8s_dns_label_annotation: String,

    /// Kubernetes backend: the port of each instance's Service.
    #[arg(long, env = "TOYGRES_K8S_SERVICE_PORT", default_value_t = 5432, value_parser = clap::value_parser!(u16).range(1..))]
    pub k8s_service_port: u16,

    /// Kubernetes backend: the storage class of data volumes; the cluster default when unset.
    #[arg(long, env = "TOYGRES_K8S_STORAGE_CLASS")]
    pub k8s_storage_class: Option<String>,

    /// Kubernetes backend: CPU request of each instance.
    #[arg(long, env = "TOYGRES_K8S_CPU_REQUEST", default_value = "250m")]
    pub k8s_cpu_request: String,

    /// Kubernetes backend: CPU limit of each instance.
    #[arg(long, env = "TOYGRES_K8S_CPU_LIMIT", default_value = "1")]
    pub k8s_cpu_limit: String,

    /// Kubernetes backend: memory request of each instance.
    #[arg(long, env = "TOYGRES_K8S_MEMORY_REQUEST", default_value = "256Mi")]
    pub k8s_memory_request: String,

    /// Kubernetes backend: memory limit of each instance.
    #[arg(long, env = "TOYGRES_K8S_MEMORY_LIMIT", default_value = "1Gi")]
    pub k8s_memory_limit: String,

    /// Kubernetes backend: how the server reaches internal instances for its connection tests
    /// and health checks: `port-forward` (through the API server), `direct` (cluster DNS), or
    /// `auto` (direct inside a cluster, port-forward outside one).
    #[arg(long, env = "TOYGRES_K8S_CONNECT", default_value = "auto")]
    pub k8s_connect: ConnectMode,

    /// Kubernetes backend: the DNS zone public instances' DNS labels live in
    /// (`<label>.<suffix>`); unset: `<region>.cloudapp.azure.com` from the nodes'
    /// `topology.kubernetes.io/region` label (AKS), no DNS name when no node names a region.
    #[arg(long, env = "TOYGRES_K8S_DNS_SUFFIX")]
    pub k8s_dns_suffix: Option<String>,

    /// Kubernetes backend: how long a create waits out objects of an older incarnation of the
    /// name that are still terminating (a LoadBalancer Service held by its cleanup finalizer,
    /// an old pod) before the attempt fails and is retried.
    #[arg(long, env = "TOYGRES_K8S_TERMINATING_WAIT_SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub k8s_terminating_wait_secs: u64,

    /// Log format.
    #[arg(long, env = "TOYGRES_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,

    /// Backups and WAL archiving.
    #[command(flatten)]
    pub backups: super::backup_config::BackupConfig,
}

impl ServeConfig {
    /// The Kubernetes backend's settings.
    pub fn kubernetes(&self) -> KubernetesConfig {
        KubernetesConfig {
            namespace: self.k8s_namespace.clone(),
            namespaces: {
                let listed: Vec<String> = self
                    .k8s_namespaces
                    .iter()
                    .map(|namespace| namespace.trim().to_string())
                    .filter(|namespace| !namespace.is_empty())
                    .collect();
                if listed.is_empty() {
                    vec![self.k8s_namespace.clone()]
                } else {
                    listed
                }
            },
            image: self.k8s_image.clone(),
            versions: self
                .k8s_versions
                .iter()
                .map(|version| version.trim().to_string())
                .filter(|version| !version.is_empty())
                .collect(),
            retain_volumes: self.k8s_retain_volumes,
            dns_label_annotation: self.k8s_dns_label_annotation.clone(),
            service_port: self.k8s_service_port,
            storage_class: self.k8s_storage_class.clone(),
            resources: Resources {
                cpu_request: self.k8s_cpu_request.clone(),
                cpu_limit: self.k8s_cpu_limit.clone(),
                memory_request: self.k8s_memory_request.clone(),
                memory_limit: self.k8s_memory_limit.clone(),
            },
            connect: self.k8s_connect,
            terminating_wait: std::time::Duration::from_secs(self.k8s_terminating_wait_secs),
            dns_suffix: self
                .k8s_dns_suffix
                .clone()
                .filter(|suffix| !suffix.trim().is_empty()),
        }
    }

    /// The poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(1))
    }
}

/// A setting that holds a secret: `Debug` never shows it, only [`Secret::expose`] does.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Ok(Self(raw.to_string()))
    }
}

/// Parses `FIRST-LAST` into a non-empty port range.
pub fn parse_port_range(raw: &str) -> Result<RangeInclusive<u16>, String> {
    let (first, last) = raw
        .split_once('-')
        .ok_or_else(|| format!("'{raw}' is not FIRST-LAST"))?;
    let first: u16 = first
        .trim()
        .parse()
        .map_err(|_| format!("'{first}' is not a port"))?;
    let last: u16 = last
        .trim()
        .parse()
        .map_err(|_| format!("'{last}' is not a port"))?;
    if first == 0 || first > last {
        return Err(format!("'{raw}' is empty or starts at 0"));
    }
    Ok(first..=last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("15432-15999"), Ok(15432..=15999));
        assert_eq!(parse_port_range("5-5"), Ok(5..=5));
        assert!(parse_port_range("10-5").is_err());
        assert!(parse_port_range("0-5").is_err());
        assert!(parse_port_range("x-5").is_err());
        assert!(parse_port_range("15432").is_err());
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let secret: Secret = "hunter2-hunter2-hunter2"
            .parse()
            .unwrap_or_else(|e| match e {});
        assert_eq!(secret.expose(), "hunter2-hunter2-hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(..)");
    }

    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        serve: ServeConfig,
    }

    fn parse(args: &[&str]) -> Result<KubernetesConfig, clap::Error> {
        use clap::Parser as _;
        let wrapper =
            Wrapper::try_parse_from(std::iter::once("toygres").chain(args.iter().copied()))?;
        Ok(wrapper.serve.kubernetes())
    }

    #[test]
    fn kubernetes_settings_default_to_the_backend_defaults() -> Result<(), clap::Error> {
        // Only meaningful without the variables set (as in CI); flags below override them anyway.
        if std::env::vars().any(|(key, _)| key.starts_with("TOYGRES_K8S_")) {
            return Ok(());
        }
        assert_eq!(parse(&[])?, KubernetesConfig::default());
        Ok(())
    }

    #[test]
    fn kubernetes_settings_from_flags() -> Result<(), clap::Error> {
        let config = parse(&[
            "--k8s-namespace=dbs",
            "--k8s-versions=16, 17",
            "--k8s-retain-volumes=true",
            "--k8s-memory-limit=2Gi",
            "--k8s-storage-class=managed-csi",
            "--k8s-connect=port-forward",
        ])?;
        assert_eq!(config.namespace, "dbs");
        assert_eq!(config.versions, ["16", "17"]);
        assert!(config.retain_volumes);
        assert_eq!(config.resources.memory_limit, "2Gi");
        assert_eq!(config.storage_class.as_deref(), Some("managed-csi"));
        assert_eq!(config.connect, ConnectMode::PortForward);
        assert!(parse(&["--k8s-service-port=0"]).is_err());
        assert!(parse(&["--k8s-connect=tunnel"]).is_err());
        Ok(())
    }
}
