//! The backup settings of `toygres serve` (pgBackRest; docs/backups.md).

use super::config::Secret;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use toygres_activities::backup::{
    AzureRepository, BackupSettings, Endpoint, Repository, S3Repository,
};

/// Where backups go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RepositoryKind {
    /// A folder of this machine.
    Posix,
    /// An Azure Blob container.
    Azure,
    /// An S3 bucket.
    S3,
}

/// How a storage service is addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UriStyle {
    /// The bucket or container in the host name.
    Host,
    /// The bucket or container in the path (emulators, most S3-compatible services).
    Path,
}

/// Backups and WAL archiving.
#[derive(Debug, Clone, Args)]
pub struct BackupConfig {
    /// Back up every instance (WAL archived from creation, a full backup at once and on
    /// schedule): `true` or `false`. Needs pgBackRest.
    #[arg(long = "backups", env = "TOYGRES_BACKUPS", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,

    /// The pgbackrest binary (unset: found on the PATH).
    #[arg(long, env = "TOYGRES_PGBACKREST")]
    pub pgbackrest: Option<PathBuf>,

    /// Where backups go: `posix` (a folder), `azure` (Blob) or `s3`.
    #[arg(
        long = "backup-repo",
        env = "TOYGRES_BACKUP_REPO",
        value_enum,
        default_value = "posix"
    )]
    pub repo: RepositoryKind,

    /// The folder of a posix repository (unset: `<data dir>/backups`).
    #[arg(long = "backup-path", env = "TOYGRES_BACKUP_PATH")]
    pub path: Option<PathBuf>,

    /// The path inside an Azure container or S3 bucket under which each instance's backups go.
    #[arg(
        long = "backup-prefix",
        env = "TOYGRES_BACKUP_PREFIX",
        default_value = "toygres"
    )]
    pub prefix: String,

    /// Azure storage account.
    #[arg(long = "backup-azure-account", env = "TOYGRES_BACKUP_AZURE_ACCOUNT")]
    pub azure_account: Option<String>,

    /// Azure shared key (a secret).
    #[arg(
        long = "backup-azure-key",
        env = "TOYGRES_BACKUP_AZURE_KEY",
        hide_env_values = true
    )]
    pub azure_key: Option<Secret>,

    /// Azure container (it must exist).
    #[arg(
        long = "backup-azure-container",
        env = "TOYGRES_BACKUP_AZURE_CONTAINER"
    )]
    pub azure_container: Option<String>,

    /// S3 bucket (it must exist).
    #[arg(long = "backup-s3-bucket", env = "TOYGRES_BACKUP_S3_BUCKET")]
    pub s3_bucket: Option<String>,

    /// S3 region.
    #[arg(long = "backup-s3-region", env = "TOYGRES_BACKUP_S3_REGION")]
    pub s3_region: Option<String>,

    /// S3 endpoint.
    #[arg(
        long = "backup-s3-endpoint",
        env = "TOYGRES_BACKUP_S3_ENDPOINT",
        default_value = "s3.amazonaws.com"
    )]
    pub s3_endpoint: String,

    /// S3 access key id.
    #[arg(long = "backup-s3-key", env = "TOYGRES_BACKUP_S3_KEY")]
    pub s3_key: Option<String>,

    /// S3 secret access key (a secret).
    #[arg(
        long = "backup-s3-secret",
        env = "TOYGRES_BACKUP_S3_SECRET",
        hide_env_values = true
    )]
    pub s3_secret: Option<Secret>,

    /// The storage service's host, for emulators and compatible services (unset: the cloud's).
    #[arg(long = "backup-storage-host", env = "TOYGRES_BACKUP_STORAGE_HOST")]
    pub storage_host: Option<String>,

    /// The storage service's port (unset: 443).
    #[arg(long = "backup-storage-port", env = "TOYGRES_BACKUP_STORAGE_PORT")]
    pub storage_port: Option<u16>,

    /// How buckets and containers are addressed: `host` or `path`.
    #[arg(
        long = "backup-uri-style",
        env = "TOYGRES_BACKUP_URI_STYLE",
        value_enum,
        default_value = "host"
    )]
    pub uri_style: UriStyle,

    /// Whether the storage service's TLS certificate is verified.
    #[arg(long = "backup-verify-tls",
        env = "TOYGRES_BACKUP_VERIFY_TLS", default_value_t = true, action = clap::ArgAction::Set)]
    pub verify_tls: bool,

    /// Days a full backup (and the WAL to restore from it) is kept; a deleted instance's
    /// backups are removed this long after its delete.
    #[arg(long = "backup-retention-days",
        env = "TOYGRES_BACKUP_RETENTION_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    pub retention_days: u32,

    /// Time between an instance's scheduled full backups, in seconds.
    #[arg(long = "backup-interval-secs",
        env = "TOYGRES_BACKUP_INTERVAL_SECS", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_secs: u64,

    /// After a failed backup, the next attempt waits this long, in seconds.
    #[arg(long = "backup-retry-secs",
        env = "TOYGRES_BACKUP_RETRY_SECS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..))]
    pub retry_secs: u64,

    /// Time between passes of the backup scheduler (a new instance's first backup starts
    /// within one), in seconds.
    #[arg(long = "backup-check-interval-secs",
        env = "TOYGRES_BACKUP_CHECK_INTERVAL_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub check_interval_secs: u64,

    /// How long one backup, restore or verify may take, in seconds.
    #[arg(long = "backup-timeout-secs",
        env = "TOYGRES_BACKUP_TIMEOUT_SECS", default_value_t = 3_600, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_secs: u64,

    /// `archive_timeout`: a written WAL segment is archived at the latest this long after the
    /// write, in seconds (what a lost machine can lose).
    #[arg(long, env = "TOYGRES_ARCHIVE_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub archive_timeout_secs: u32,
}

impl BackupConfig {
    /// The backup settings (`None` when backups are off), or what is missing.
    pub fn settings(&self, data_dir: &Path) -> Result<Option<BackupSettings>, String> {
        if !self.enabled {
            return Ok(None);
        }
        let binary = BackupSettings::locate(self.pgbackrest.clone()).ok_or_else(|| {
            "backups need pgBackRest: install it (Debian: apt-get install pgbackrest), point \
             TOYGRES_PGBACKREST at it, or set TOYGRES_BACKUPS=false"
                .to_string()
        })?;
        let required = |value: &Option<String>, variable: &str| {
            value
                .clone()
                .filter(|value| !value.is_empty())
                .ok_or_else(|| format!("TOYGRES_BACKUP_REPO={:?} needs {variable}", self.repo))
        };
        let endpoint = |default_host: Option<&str>| -> Option<Endpoint> {
            let host = self
                .storage_host
                .clone()
                .or_else(|| default_host.map(str::to_string))?;
            Some(Endpoint {
                host,
                port: self.storage_port,
                path_style: self.uri_style == UriStyle::Path,
                verify_tls: self.verify_tls,
            })
        };
        let repository = match self.repo {
            RepositoryKind::Posix => Repository::Posix {
                root: self
                    .path
                    .clone()
                    .unwrap_or_else(|| data_dir.join("backups")),
            },
            RepositoryKind::Azure => Repository::Azure(AzureRepository {
                account: required(&self.azure_account, "TOYGRES_BACKUP_AZURE_ACCOUNT")?,
                key: required(
                    &self.azure_key.as_ref().map(|key| key.expose().to_string()),
                    "TOYGRES_BACKUP_AZURE_KEY",
                )?,
                container: required(&self.azure_container, "TOYGRES_BACKUP_AZURE_CONTAINER")?,
                endpoint: endpoint(None),
                prefix: self.prefix.clone(),
            }),
            RepositoryKind::S3 => Repository::S3(S3Repository {
                bucket: required(&self.s3_bucket, "TOYGRES_BACKUP_S3_BUCKET")?,
                region: required(&self.s3_region, "TOYGRES_BACKUP_S3_REGION")?,
                endpoint: endpoint(Some(&self.s3_endpoint)).ok_or("no S3 endpoint")?,
                key: required(&self.s3_key, "TOYGRES_BACKUP_S3_KEY")?,
                secret: required(
                    &self
                        .s3_secret
                        .as_ref()
                        .map(|secret| secret.expose().to_string()),
                    "TOYGRES_BACKUP_S3_SECRET",
                )?,
                prefix: self.prefix.clone(),
            }),
        };
        Ok(Some(BackupSettings {
            repository,
            retention_days: self.retention_days,
            archive_timeout_secs: self.archive_timeout_secs,
            binary,
        }))
    }
}
