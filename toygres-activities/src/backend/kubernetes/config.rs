//! Settings of the Kubernetes backend.

/// CPU and memory of each instance's PostgreSQL container (Kubernetes quantities).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    /// CPU request, e.g. `250m`.
    pub cpu_request: String,
    /// CPU limit, e.g. `1`.
    pub cpu_limit: String,
    /// Memory request, e.g. `256Mi`.
    pub memory_request: String,
    /// Memory limit, e.g. `1Gi`.
    pub memory_limit: String,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpu_request: "250m".into(),
            cpu_limit: "1".into(),
            memory_request: "256Mi".into(),
            memory_limit: "1Gi".into(),
        }
    }
}

/// How the server reaches the PostgreSQL of internal instances (ClusterIP Services, whose
/// cluster DNS names resolve only inside the cluster). Public instances are always reached at
/// their load-balancer address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectMode {
    /// Direct inside a cluster (`KUBERNETES_SERVICE_HOST` is set in every pod), through a
    /// port-forward outside one.
    #[default]
    Auto,
    /// Connect to the Service's cluster DNS name.
    Direct,
    /// Tunnel to the instance's pod through the API server (`pods/portforward`).
    PortForward,
}

impl ConnectMode {
    /// Whether internal instances are reached through a port-forward, given whether this
    /// process runs inside the cluster.
    pub fn tunnels(self, in_cluster: bool) -> bool {
        match self {
            ConnectMode::Auto => !in_cluster,
            ConnectMode::Direct => false,
            ConnectMode::PortForward => true,
        }
    }

    /// Whether this process runs in a Kubernetes pod (the kubelet sets `KUBERNETES_SERVICE_HOST`
    /// in every container; an empty value counts as unset).
    pub fn in_cluster() -> bool {
        std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|host| !host.is_empty())
    }
}

impl std::fmt::Display for ConnectMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConnectMode::Auto => "auto",
            ConnectMode::Direct => "direct",
            ConnectMode::PortForward => "port-forward",
        })
    }
}

impl std::str::FromStr for ConnectMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(ConnectMode::Auto),
            "direct" => Ok(ConnectMode::Direct),
            "port-forward" => Ok(ConnectMode::PortForward),
            other => Err(format!(
                "{other:?} is not a connect mode (auto, direct or port-forward)"
            )),
        }
    }
}

/// Settings of the Kubernetes backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// The namespace an instance goes into when its create names none.
    pub namespace: String,
    /// The namespaces instances may go into (the default among them): drift, orphan removal
    /// and the permission check cover each.
    pub namespaces: Vec<String>,
    /// The image repository; the tag is the major PostgreSQL version.
    pub image: String,
    /// The major versions offered, oldest first.
    pub versions: Vec<String>,
    /// Keep PVCs when an instance is deleted.
    pub retain_volumes: bool,
    /// The Service annotation that carries a public instance's DNS label.
    pub dns_label_annotation: String,
    /// The port the Service listens on.
    pub service_port: u16,
    /// The storage class of the data volume; the cluster default when `None`.
    pub storage_class: Option<String>,
    /// CPU and memory per instance.
    pub resources: Resources,
    /// How the server reaches internal instances.
    pub connect: ConnectMode,
    /// How long a create waits out objects of an older incarnation of the name that are still
    /// terminating (a LoadBalancer Service held by its cleanup finalizer, an old pod) before
    /// it reports a retryable error.
    pub terminating_wait: std::time::Duration,
    /// The DNS zone public instances' DNS labels live in (`<label>.<suffix>`); when `None`, the
    /// nodes' `topology.kubernetes.io/region` label and [`KubernetesConfig::AZURE_DNS_SUFFIX`].
    pub dns_suffix: Option<String>,
}

impl KubernetesConfig {
    /// The default namespace.
    pub const DEFAULT_NAMESPACE: &str = "toygres";
    /// The default image repository.
    pub const DEFAULT_IMAGE: &str = "postgres";
    /// The default DNS-label annotation (Azure's).
    pub const DEFAULT_DNS_LABEL_ANNOTATION: &str =
        "service.beta.kubernetes.io/azure-dns-label-name";
    /// The default Service port.
    pub const DEFAULT_SERVICE_PORT: u16 = 5432;
    /// The default wait for terminating objects of an older incarnation.
    pub const DEFAULT_TERMINATING_WAIT: std::time::Duration = std::time::Duration::from_secs(120);
    /// The zone under a region of Azure's load-balancer DNS labels
    /// (`<label>.<region>.cloudapp.azure.com`).
    pub const AZURE_DNS_SUFFIX: &str = "cloudapp.azure.com";
}

impl KubernetesConfig {
    /// Checks the namespace settings: every allowed namespace a DNS-1123 label, the default
    /// among them, none twice.
    pub fn check_namespaces(&self) -> Result<(), String> {
        if let Some(bad) = self
            .namespaces
            .iter()
            .chain(std::iter::once(&self.namespace))
            .find(|namespace| !crate::validation::is_dns_label(namespace))
        {
            return Err(format!(
                "{bad:?} is not a namespace name (1-63 lowercase letters, digits and '-')"
            ));
        }
        if !self.namespaces.contains(&self.namespace) {
            return Err(format!(
                "TOYGRES_K8S_NAMESPACES ({}) must include the default namespace \
                 TOYGRES_K8S_NAMESPACE ({})",
                self.namespaces.join(","),
                self.namespace
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(twice) = self.namespaces.iter().find(|ns| !seen.insert(ns.as_str())) {
            return Err(format!("TOYGRES_K8S_NAMESPACES lists {twice} twice"));
        }
        Ok(())
    }
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            namespace: Self::DEFAULT_NAMESPACE.into(),
            namespaces: vec![Self::DEFAULT_NAMESPACE.into()],
            image: Self::DEFAULT_IMAGE.into(),
            versions: ["14", "15", "16", "17"].map(String::from).to_vec(),
            retain_volumes: false,
            dns_label_annotation: Self::DEFAULT_DNS_LABEL_ANNOTATION.into(),
            service_port: Self::DEFAULT_SERVICE_PORT,
            storage_class: None,
            resources: Resources::default(),
            connect: ConnectMode::default(),
            terminating_wait: Self::DEFAULT_TERMINATING_WAIT,
            dns_suffix: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ConnectMode, KubernetesConfig};

    #[test]
    fn namespace_settings_are_checked() {
        let mut config = KubernetesConfig::default();
        assert_eq!(config.check_namespaces(), Ok(()));
        config.namespaces = vec!["team-a".into(), "toygres".into()];
        assert_eq!(config.check_namespaces(), Ok(()));
        config.namespaces = vec!["team-a".into()];
        assert!(
            config
                .check_namespaces()
                .is_err_and(|error| error.contains("must include"))
        );
        config.namespaces = vec!["toygres".into(), "Team_A".into()];
        assert!(config.check_namespaces().is_err());
        config.namespaces = vec!["toygres".into(), "toygres".into()];
        assert!(
            config
                .check_namespaces()
                .is_err_and(|error| error.contains("twice"))
        );
    }

    #[test]
    fn connect_modes_parse_print_and_decide() -> Result<(), String> {
        for mode in [
            ConnectMode::Auto,
            ConnectMode::Direct,
            ConnectMode::PortForward,
        ] {
            assert_eq!(mode.to_string().parse::<ConnectMode>()?, mode);
        }
        assert!("tunnel".parse::<ConnectMode>().is_err());
        assert!(ConnectMode::Auto.tunnels(false), "outside a cluster");
        assert!(!ConnectMode::Auto.tunnels(true), "inside a cluster");
        assert!(!ConnectMode::Direct.tunnels(false));
        assert!(ConnectMode::PortForward.tunnels(true));
        Ok(())
    }
}
