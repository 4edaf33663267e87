//! A copied instance's first credentials: a copy of a template (or a pooled cluster) has no
//! password on any role, so its server first runs with a `pg_hba.conf` that lets in only the
//! control plane's `toygres_admin`, over the instance's private unix socket (0700, its own id's:
//! only root and that id reach it) and nothing over TCP. The deploy sets `toygres_admin`'s
//! password as a SCRAM verifier through that socket, records it in the marker, then writes the
//! instance's real rules and has the server reload them, and checks that the socket no longer
//! lets anyone in without a password. No plaintext password reaches PostgreSQL, a file or a log.

use super::{HBA_RULES, LocalBackend, Marker, transient};
use crate::backend::BackendError;
use crate::pgcluster::{Listen, PgCluster, PostmasterState};
use crate::roles::ADMIN;
use crate::validation::InstanceName;
use std::path::Path;
use std::time::Duration;

/// The rules while a new copy waits for its credentials.
pub(super) const BOOTSTRAP_HBA_RULES: &str = "# Written by toygres while this new instance gets its passwords: only the control plane,\n\
     # over the instance's private socket; replaced before the instance is handed over.\n\
     local all toygres_admin trust\n";

/// How long a copy's server may take to accept connections before its credentials are set.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long the server may take to apply its real rules after the reload signal.
const RELOAD_LIMIT: Duration = Duration::from_secs(10);
/// How long a server just started may show no pid file before it counts as down.
const DOWN_GRACE: Duration = Duration::from_secs(5);
/// Time between two checks of the server's state while waiting.
const CHECK_EVERY: Duration = Duration::from_millis(1);

/// The `pg_hba.conf` rules of the instance `marker` describes.
pub(super) fn hba_rules(marker: &Marker) -> &'static str {
    if marker.awaiting_credentials {
        BOOTSTRAP_HBA_RULES
    } else {
        HBA_RULES
    }
}

impl LocalBackend {
    /// Gives a copied instance's bootstrap superuser `superuser` its password (`verifier`, a
    /// SCRAM verifier) and the instance its real rules; the caller holds the instance's lock
    /// and has started its server. Idempotent: until the marker records it, the password is
    /// set again.
    pub(super) async fn set_first_credentials(
        &self,
        name: &InstanceName,
        marker: &mut Marker,
        cluster: &PgCluster,
        superuser: &str,
        verifier: &str,
    ) -> Result<(), BackendError> {
        let statement = first_password(superuser, verifier)?;
        let socket_dir = socket_of(cluster)?;
        wait_accepting(cluster, START_LIMIT).await?;
        let client = super::restore::connect(socket_dir, marker.port, None)
            .await
            .map_err(|error| transient(format!("setting the first password: {error}")))?;
        client
            .batch_execute(&statement)
            .await
            .map_err(|error| transient(format!("setting the first password: {error}")))?;
        drop(client);
        marker.awaiting_credentials = false;
        self.write_marker(name, marker)?;
        self.write_hba(name, marker)?;
        self.apply_hba(cluster, marker.port).await
    }

    /// Has a running server reload its `pg_hba.conf` and waits until its private socket lets
    /// nobody in without a password (a server that is not up has nothing to apply).
    pub(super) async fn apply_hba(
        &self,
        cluster: &PgCluster,
        port: u16,
    ) -> Result<(), BackendError> {
        if cluster.postmaster_state() == PostmasterState::Down {
            return Ok(());
        }
        let socket_dir = socket_of(cluster)?;
        if cluster.signal_reload().is_none() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + RELOAD_LIMIT;
        loop {
            // A connection without a password fails once the real rules are in force.
            if super::restore::connect(socket_dir, port, None)
                .await
                .is_err()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(transient(
                    "the server did not apply its pg_hba.conf after a reload".to_string(),
                ));
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
    }
}

/// The statement that gives `toygres_admin`, a copy's bootstrap superuser, its password.
fn first_password(superuser: &str, verifier: &str) -> Result<String, BackendError> {
    if superuser != ADMIN {
        return Err(BackendError::Permanent(format!(
            "a template copy's bootstrap superuser is {ADMIN}, not {superuser}"
        )));
    }
    Ok(format!(
        "ALTER ROLE {ADMIN} PASSWORD {}",
        crate::roles::sql::literal(verifier)
    ))
}

/// The private socket folder of a local instance's cluster.
fn socket_of(cluster: &PgCluster) -> Result<&Path, BackendError> {
    match &cluster.listen {
        Listen::Loopback {
            socket_dir: Some(dir),
            ..
        } => Ok(dir),
        _ => Err(BackendError::Permanent(
            "a local instance has a private socket".into(),
        )),
    }
}

/// Waits until the cluster's server accepts connections (read from `postmaster.pid`), failing
/// with its log's last line when it is down or does not come up in time.
pub(super) async fn wait_accepting(
    cluster: &PgCluster,
    limit: Duration,
) -> Result<(), BackendError> {
    let started = tokio::time::Instant::now();
    loop {
        match cluster.postmaster_state() {
            PostmasterState::Ready => return Ok(()),
            // pg_ctl has returned, so the pid file should be there: the server stopped.
            PostmasterState::Down if started.elapsed() > DOWN_GRACE => break,
            _ if started.elapsed() >= limit => break,
            _ => tokio::time::sleep(CHECK_EVERY).await,
        }
    }
    Err(transient(format!(
        "the server did not accept connections in time; last log line: {}",
        cluster.last_log_line().unwrap_or_else(|| "(empty)".into())
    )))
}
