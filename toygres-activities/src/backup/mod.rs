//! Backups with pgBackRest: Toygres orchestrates it, pgBackRest does the work.
//!
//! Every instance incarnation has a stanza of its own (named by its `uid`, so clones of one
//! template and re-created names never meet) and a repository path of its own: on the local
//! backend a folder owned by the instance's own OS id (no other instance's server can read it),
//! or a prefix in an Azure Blob container or an S3 bucket. The server archives its WAL with
//! `archive-push` from its creation; backups, restores and verifies run `pgbackrest` as the
//! identity that owns the data.
//!
//! - [`config`]: the `pgbackrest.conf` of a stanza.
//! - [`command`]: running `pgbackrest` as another identity, tied to this process's life.
//! - [`info`]: reading `pgbackrest info --output=json`.
//! - [`agent`]: [`agent::InstanceBackups`], what a backend that runs backups offers.

pub mod agent;
pub mod command;
pub mod config;
pub mod info;

use std::path::PathBuf;

/// Where backups and archived WAL go.
#[derive(Clone, PartialEq, Eq)]
pub enum Repository {
    /// A folder of this machine (default: `<data_dir>/backups`), one sub-folder per stanza.
    Posix {
        /// The folder.
        root: PathBuf,
    },
    /// An Azure Blob container.
    Azure(AzureRepository),
    /// An S3 bucket.
    S3(S3Repository),
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Repository::Posix { root } => f.debug_struct("Posix").field("root", root).finish(),
            Repository::Azure(azure) => f
                .debug_struct("Azure")
                .field("account", &azure.account)
                .field("container", &azure.container)
                .field("endpoint", &azure.endpoint)
                .finish_non_exhaustive(),
            Repository::S3(s3) => f
                .debug_struct("S3")
                .field("bucket", &s3.bucket)
                .field("endpoint", &s3.endpoint)
                .finish_non_exhaustive(),
        }
    }
}

impl Repository {
    /// The repository's kind, as settings and logs name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Repository::Posix { .. } => "posix",
            Repository::Azure(_) => "azure",
            Repository::S3(_) => "s3",
        }
    }
}

/// An Azure Blob container (the key is a secret: never logged).
#[derive(Clone, PartialEq, Eq)]
pub struct AzureRepository {
    /// The storage account.
    pub account: String,
    /// Its shared key.
    pub key: String,
    /// The container (it must exist).
    pub container: String,
    /// A host other than `<account>.blob.core.windows.net` (an emulator such as Azurite).
    pub endpoint: Option<Endpoint>,
    /// Path within the container under which each stanza gets a folder.
    pub prefix: String,
}

/// An S3 bucket (the secret key is a secret: never logged).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Repository {
    /// The bucket (it must exist).
    pub bucket: String,
    /// The region.
    pub region: String,
    /// The endpoint (`s3.amazonaws.com`, or a compatible service).
    pub endpoint: Endpoint,
    /// The access key id.
    pub key: String,
    /// The secret access key.
    pub secret: String,
    /// Path within the bucket under which each stanza gets a folder.
    pub prefix: String,
}

/// A storage service's address, for emulators and compatible services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// TCP port (`None`: 443).
    pub port: Option<u16>,
    /// Bucket or container in the path (`/<container>/...`) instead of the host name.
    pub path_style: bool,
    /// Whether the service's TLS certificate is verified.
    pub verify_tls: bool,
}

/// How backups are taken and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// Where they go.
    pub repository: Repository,
    /// Days a full backup (and the WAL to restore from it) is kept.
    pub retention_days: u32,
    /// A WAL segment is archived at the latest this long after a write (`archive_timeout`):
    /// what a lost server can lose.
    pub archive_timeout_secs: u32,
    /// The `pgbackrest` binary.
    pub binary: PathBuf,
}

impl BackupSettings {
    /// Finds `pgbackrest` on the `PATH` (or at `binary` when given).
    pub fn locate(binary: Option<PathBuf>) -> Option<PathBuf> {
        if let Some(binary) = binary {
            return binary.is_file().then_some(binary);
        }
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("pgbackrest"))
                .find(|candidate| candidate.is_file())
        })
    }
}

/// A backup failure.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// pgBackRest ran and failed; its message.
    #[error("pgbackrest {command} failed (exit code {code}): {message}")]
    Failed {
        /// The pgBackRest command (`backup`, `restore`, ...).
        command: String,
        /// Its exit code.
        code: i32,
        /// Its last lines of error output.
        message: String,
    },
    /// It could not be run, or ran too long.
    #[error("pgbackrest {command}: {message}")]
    Run {
        /// The pgBackRest command.
        command: String,
        /// What went wrong.
        message: String,
    },
    /// Its output could not be read.
    #[error("reading pgbackrest's answer: {0}")]
    Output(String),
    /// Something else about files or processes.
    #[error("{0}")]
    Io(String),
}

impl BackupError {
    /// Whether running the same command again may succeed: lock conflicts (another pgbackrest
    /// still runs), a repository that did not answer, a process that could not run.
    pub fn is_retryable(&self) -> bool {
        match self {
            // 50: lock; 39: file open; 41: file read; 45: host connect; 46-47: protocol.
            BackupError::Failed { code, .. } => [39, 41, 45, 46, 47, 50].contains(code),
            BackupError::Run { .. } | BackupError::Io(_) => true,
            BackupError::Output(_) => false,
        }
    }
}
