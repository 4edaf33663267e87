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

/// Settings of the Kubernetes backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// The namespace every instance lives in.
    pub namespace: String,
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
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            namespace: Self::DEFAULT_NAMESPACE.into(),
            image: Self::DEFAULT_IMAGE.into(),
            versions: ["14", "15", "16", "17"].map(String::from).to_vec(),
            retain_volumes: false,
            dns_label_annotation: Self::DEFAULT_DNS_LABEL_ANNOTATION.into(),
            service_port: Self::DEFAULT_SERVICE_PORT,
            storage_class: None,
            resources: Resources::default(),
        }
    }
}
