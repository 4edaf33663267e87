//! The `pgbackrest.conf` of one stanza: the repository (with its credentials: the file is
//! readable by the identity that runs pgBackRest only), the paths of its lock, log and spool,
//! retention, and where the cluster is.

use super::{BackupSettings, Repository};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The options of the WAL archiving and backups of one stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaConfig {
    /// The stanza (an instance incarnation's uid).
    pub stanza: String,
    /// The cluster's data directory.
    pub pg_path: PathBuf,
    /// The folder of its unix socket, and its port (for backups of a running cluster).
    pub socket: Option<(PathBuf, u16)>,
    /// Where pgBackRest keeps its locks, logs and asynchronous archiving queue.
    pub work_dir: PathBuf,
}

/// Why a value cannot go into a configuration file.
#[derive(Debug, thiserror::Error)]
#[error("{option}: a configuration value cannot hold a line break or start with a space")]
pub struct ConfigError {
    option: &'static str,
}

/// The role pgBackRest connects as: the control plane's superuser inside the instance.
pub const PG_USER: &str = crate::roles::ADMIN;

/// The path of stanza `stanza` in a posix repository rooted at `root`.
pub fn posix_path(root: &Path, stanza: &str) -> PathBuf {
    root.join(stanza)
}

/// Renders the configuration file.
pub fn render(settings: &BackupSettings, config: &StanzaConfig) -> Result<String, ConfigError> {
    let mut lines: Vec<(&'static str, String)> = Vec::new();
    let retention = settings.retention_days.max(1).to_string();
    match &settings.repository {
        Repository::Posix { root } => {
            lines.push(("repo1-type", "posix".into()));
            lines.push((
                "repo1-path",
                posix_path(root, &config.stanza).display().to_string(),
            ));
        }
        Repository::Azure(azure) => {
            lines.push(("repo1-type", "azure".into()));
            lines.push(("repo1-path", repo_path(&azure.prefix, &config.stanza)));
            lines.push(("repo1-azure-account", azure.account.clone()));
            lines.push(("repo1-azure-key", azure.key.clone()));
            lines.push(("repo1-azure-container", azure.container.clone()));
            if let Some(endpoint) = &azure.endpoint {
                lines.push(("repo1-storage-host", endpoint.host.clone()));
                if let Some(port) = endpoint.port {
                    lines.push(("repo1-storage-port", port.to_string()));
                }
                if endpoint.path_style {
                    lines.push(("repo1-azure-uri-style", "path".into()));
                }
                lines.push(("repo1-storage-verify-tls", yes(endpoint.verify_tls)));
            }
        }
        Repository::S3(s3) => {
            lines.push(("repo1-type", "s3".into()));
            lines.push(("repo1-path", repo_path(&s3.prefix, &config.stanza)));
            lines.push(("repo1-s3-bucket", s3.bucket.clone()));
            lines.push(("repo1-s3-region", s3.region.clone()));
            lines.push(("repo1-s3-endpoint", s3.endpoint.host.clone()));
            lines.push(("repo1-s3-key", s3.key.clone()));
            lines.push(("repo1-s3-key-secret", s3.secret.clone()));
            if let Some(port) = s3.endpoint.port {
                lines.push(("repo1-storage-port", port.to_string()));
            }
            if s3.endpoint.path_style {
                lines.push(("repo1-s3-uri-style", "path".into()));
            }
            lines.push(("repo1-storage-verify-tls", yes(s3.endpoint.verify_tls)));
        }
    }
    lines.push(("repo1-retention-full-type", "time".into()));
    lines.push(("repo1-retention-full", retention));
    for (option, value) in [
        ("compress-type", "lz4"),
        ("compress-level", "1"),
        ("start-fast", "y"),
        ("archive-async", "y"),
        ("archive-timeout", "60"),
        ("process-max", "2"),
        ("log-level-console", "warn"),
        ("log-level-stderr", "error"),
        ("log-level-file", "info"),
    ] {
        lines.push((option, value.into()));
    }
    let work = &config.work_dir;
    lines.push(("lock-path", work.join("lock").display().to_string()));
    lines.push(("log-path", work.join("log").display().to_string()));
    lines.push(("spool-path", work.join("spool").display().to_string()));

    let mut stanza: Vec<(&'static str, String)> =
        vec![("pg1-path", config.pg_path.display().to_string())];
    if let Some((socket_dir, port)) = &config.socket {
        stanza.push(("pg1-socket-path", socket_dir.display().to_string()));
        stanza.push(("pg1-port", port.to_string()));
        stanza.push(("pg1-user", PG_USER.into()));
    }

    let mut text = String::from("# Written by toygres; changes are overwritten.\n[global]\n");
    write_lines(&mut text, &lines)?;
    check("stanza", &config.stanza)?;
    let _ = writeln!(text, "\n[{}]", config.stanza);
    write_lines(&mut text, &stanza)?;
    Ok(text)
}

/// `prefix/stanza` as an absolute path in a bucket or container.
fn repo_path(prefix: &str, stanza: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        format!("/{stanza}")
    } else {
        format!("/{prefix}/{stanza}")
    }
}

fn yes(value: bool) -> String {
    if value { "y" } else { "n" }.to_string()
}

fn check(option: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.contains(['\n', '\r']) || value.starts_with(char::is_whitespace) {
        Err(ConfigError { option })
    } else {
        Ok(())
    }
}

fn write_lines(text: &mut String, lines: &[(&'static str, String)]) -> Result<(), ConfigError> {
    for (option, value) in lines {
        check(option, value)?;
        let _ = writeln!(text, "{option}={value}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{AzureRepository, Endpoint};
    use super::*;

    fn stanza() -> StanzaConfig {
        StanzaConfig {
            stanza: "ins_abc".into(),
            pg_path: "/d/instances/db/data".into(),
            socket: Some(("/d/instances/db/run".into(), 15432)),
            work_dir: "/d/instances/db/pgbackrest".into(),
        }
    }

    fn settings(repository: Repository) -> BackupSettings {
        BackupSettings {
            repository,
            retention_days: 7,
            archive_timeout_secs: 60,
            binary: "pgbackrest".into(),
        }
    }

    #[test]
    fn a_posix_stanza_has_its_own_folder_and_retention() -> Result<(), ConfigError> {
        let text = render(
            &settings(Repository::Posix {
                root: "/d/backups".into(),
            }),
            &stanza(),
        )?;
        assert!(text.contains("repo1-path=/d/backups/ins_abc\n"), "{text}");
        assert!(text.contains("repo1-retention-full-type=time\nrepo1-retention-full=7\n"));
        assert!(
            text.contains("[ins_abc]\npg1-path=/d/instances/db/data\n"),
            "{text}"
        );
        assert!(
            text.contains("pg1-port=15432\npg1-user=toygres_admin\n"),
            "{text}"
        );
        assert!(text.contains("archive-async=y"));
        Ok(())
    }

    #[test]
    fn azure_goes_to_a_prefix_with_its_endpoint() -> Result<(), ConfigError> {
        let azure = AzureRepository {
            account: "devstoreaccount1".into(),
            key: "a2V5".into(),
            container: "toygres".into(),
            endpoint: Some(Endpoint {
                host: "127.0.0.1".into(),
                port: Some(10000),
                path_style: true,
                verify_tls: false,
            }),
            prefix: "/prod/".into(),
        };
        let text = render(&settings(Repository::Azure(azure)), &stanza())?;
        for line in [
            "repo1-type=azure",
            "repo1-path=/prod/ins_abc",
            "repo1-storage-host=127.0.0.1",
            "repo1-storage-port=10000",
            "repo1-azure-uri-style=path",
            "repo1-storage-verify-tls=n",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in {text}");
        }
        Ok(())
    }

    #[test]
    fn values_cannot_add_lines() {
        let mut hostile = stanza();
        hostile.stanza = "x\n[global]\nrepo1-path=/".into();
        assert!(render(&settings(Repository::Posix { root: "/b".into() }), &hostile).is_err());
    }
}
