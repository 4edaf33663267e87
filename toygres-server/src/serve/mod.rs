//! `toygres serve`: start the control-plane database (embedded unless `DATABASE_URL` is set),
//! apply migrations, resume local instances, start the workflow runtime, reconcile accepted
//! operations, serve HTTP until SIGINT/SIGTERM, then shut down in order.

pub mod backup_config;
pub mod config;

use crate::http::api::cross_site::Scheme;
use crate::http::api::{self, AppState};
use crate::http::server as http_server;
use crate::plane::reconciler;
use crate::plane::{BackupPolicy, ControlPlane};
use crate::runtime::{RuntimeSettings, Workflows, open_store};
use crate::security::ApiSecurity;
use crate::security::key_rotation;
use crate::serve::config::{BackendKind, ServeConfig};
use anyhow::Context as _;
use std::sync::Arc;
use std::time::Duration;
use toygres_activities::backend::Backend;
use toygres_activities::backend::faulty::{FaultPlan, FaultyBackend};
use toygres_activities::backend::kubernetes::KubernetesBackend;
use toygres_activities::backend::local::{LocalBackend, LocalConfig};
use toygres_activities::embedded::EmbeddedPostgres;
use toygres_activities::metadata::MetadataStore;
use toygres_activities::registry::ActivityDeps;
use toygres_activities::seal::SecretKey;
use toygres_orchestrations::types::{ChangeLimits, CreateLimits, DeleteLimits, HealthSettings};

/// Runs the server until a shutdown signal.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    // Refuse bad tokens, bad TLS files or an unprotected public address before touching anything.
    let security = ApiSecurity::from_config(&config)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data dir {}", config.data_dir.display()))?;
    let data_dir = std::path::absolute(&config.data_dir)?;

    let secret_key = match &config.secret_key {
        Some(encoded) => SecretKey::from_base64(encoded.expose()).context("TOYGRES_SECRET_KEY")?,
        None => {
            if data_dir.join(key_rotation::NEXT_KEY_FILE).exists() {
                anyhow::bail!(
                    "{} exists: a key rotation did not finish; run `toygres rotate-key` again to finish it",
                    data_dir.join(key_rotation::NEXT_KEY_FILE).display()
                );
            }
            SecretKey::load_or_generate(&data_dir.join(key_rotation::KEY_FILE))?
        }
    };

    let (database_url, embedded) = match &config.database_url {
        Some(url) => (url.clone(), None),
        None => {
            let embedded = EmbeddedPostgres::ensure_running(
                &data_dir.join("controlplane"),
                config.pg_bin_dir.as_deref(),
            )
            .await
            .context("starting the embedded control-plane database")?;
            tracing::info!(dir = %data_dir.join("controlplane").display(), "embedded control-plane database is running");
            (embedded.url("postgres"), Some(embedded))
        }
    };

    let outcome = run_with_database(&config, security, &data_dir, &database_url, secret_key).await;
    if let Some(embedded) = embedded
        && let Err(error) = embedded.stop().await
    {
        tracing::warn!(%error, "stopping the embedded control-plane database failed");
    }
    outcome
}

async fn run_with_database(
    config: &ServeConfig,
    security: ApiSecurity,
    data_dir: &std::path::Path,
    database_url: &str,
    secret_key: SecretKey,
) -> anyhow::Result<()> {
    let metrics_handle = crate::http::metrics::install()?;
    let metadata = MetadataStore::connect(database_url, 10)
        .await
        .context("connecting to the control-plane database")?;
    metadata.migrate().await?;
    // Held until the server stops: `toygres rotate-key` refuses to run meanwhile.
    let _rotation_guard = key_rotation::hold_server_lock(&metadata).await?;

    let backup_settings = config
        .backups
        .settings(data_dir)
        .map_err(|error| anyhow::anyhow!(error))?;
    let backend: Arc<dyn Backend> = match config.backend {
        BackendKind::Local => {
            let local_config = LocalConfig {
                root: data_dir.join("instances"),
                bin_dir: config.pg_bin_dir.clone(),
                ports: config.port_range.clone(),
            };
            let local = match &backup_settings {
                Some(settings) => {
                    tracing::info!(
                        repository = settings.repository.kind(),
                        retention_days = settings.retention_days,
                        "instances are backed up with pgBackRest"
                    );
                    LocalBackend::with_backups(local_config, settings.clone())?
                }
                None => {
                    tracing::warn!(
                        "backups are off (TOYGRES_BACKUPS=false): instances archive no WAL and have no backups"
                    );
                    LocalBackend::new(local_config)?
                }
            };
            local.set_warm_pool(usize::from(config.warm_pool));
            if config.warm_pool == 0 {
                // Turned off (or never on): whatever an earlier run pooled goes.
                match local.drain_pool().await {
                    Ok(0) => {}
                    Ok(removed) => {
                        tracing::info!(removed, "the warm pool is off: removed its clusters")
                    }
                    Err(error) => tracing::warn!(%error, "could not empty the warm pool"),
                }
            } else {
                tracing::info!(
                    per_version = config.warm_pool,
                    "a warm pool of started clusters waits for creates"
                );
            }
            for (name, outcome) in local.resume_all().await {
                match outcome {
                    Ok(true) => tracing::info!(instance = %name, "restarted a local instance"),
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(instance = %name, %error, "could not restart a local instance")
                    }
                }
            }
            Arc::new(local)
        }
        BackendKind::Kubernetes => {
            if backup_settings.is_some() {
                tracing::warn!(
                    "the kubernetes backend runs no backups yet: backup requests are refused (unsupported_by_backend)"
                );
            }
            let settings = config.kubernetes();
            settings
                .check_namespaces()
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            let kubernetes = KubernetesBackend::connect(settings)
                .await
                .context("connecting to the Kubernetes cluster (KUBECONFIG or in-cluster)")?;
            match kubernetes.missing_permissions().await {
                Ok(missing) if missing.is_empty() => {}
                Ok(missing) => {
                    for permission in &missing {
                        tracing::error!(
                            namespace = %permission.namespace,
                            verb = %permission.verb,
                            resource = %permission.resource,
                            "Toygres lacks a permission it needs: bind the ClusterRole toygres-instances in the namespace (deploy/README.md); /readyz answers 503 until then"
                        );
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "could not check Toygres's permissions; /readyz checks again")
                }
            }
            tracing::info!(
                namespace = %config.k8s_namespace,
                allowed_namespaces = %kubernetes.allowed_namespaces().join(","),
                internal_instances_via = if kubernetes.tunnels_internal() { "port-forward" } else { "cluster DNS" },
                "instances run on Kubernetes"
            );
            Arc::new(kubernetes)
        }
    };
    let faults = FaultPlan::parse(config.faults.as_deref().unwrap_or(""))?;
    let backend: Arc<dyn Backend> = if faults.is_empty() {
        backend
    } else {
        tracing::warn!(
            faults = config.faults.as_deref().unwrap_or(""),
            "injecting backend faults (TOYGRES_FAULTS): for tests and drills only"
        );
        Arc::new(FaultyBackend::new(backend, faults))
    };

    let deps = ActivityDeps {
        backend: backend.clone(),
        metadata: metadata.clone(),
        secret_key: secret_key.clone(),
        step_delay: (config.step_delay_ms > 0).then(|| Duration::from_millis(config.step_delay_ms)),
    };
    let settings = RuntimeSettings {
        poll_interval: config.poll_interval(),
        worker_lock_timeout: Duration::from_secs(config.worker_lock_timeout_secs.max(2)),
        ..RuntimeSettings::default()
    };
    let workflows = Workflows::start(open_store(database_url).await?, deps, &settings).await;
    let archives = backup_settings.is_some() && backend.backups().is_some();
    let backup_policy = archives.then(|| BackupPolicy {
        interval: Duration::from_secs(config.backups.interval_secs),
        retry: Duration::from_secs(config.backups.retry_secs),
        retention_days: config.backups.retention_days,
        tick: Duration::from_secs(config.backups.check_interval_secs),
        timeout: Duration::from_secs(config.backups.timeout_secs),
    });
    let plane = Arc::new(ControlPlane {
        metadata,
        client: workflows.client.clone(),
        backend: backend.clone(),
        backend_kind: backend.kind().to_string(),
        versions: backend.versions(),
        secret_key,
        create_limits: CreateLimits {
            ready_timeout_ms: config.ready_timeout_secs.saturating_mul(1000),
            deploy_timeout_ms: config.deploy_timeout_secs.saturating_mul(1000),
            step_timeout_ms: config.step_timeout_secs.saturating_mul(1000),
            operation_timeout_ms: config.operation_timeout_secs.saturating_mul(1000),
            ..CreateLimits::default()
        },
        delete_limits: DeleteLimits {
            delete_timeout_ms: config.delete_timeout_secs.saturating_mul(1000),
            step_timeout_ms: config.step_timeout_secs.saturating_mul(1000),
            operation_timeout_ms: config.operation_timeout_secs.saturating_mul(1000),
            ..DeleteLimits::default()
        },
        change_limits: ChangeLimits {
            ready_timeout_ms: config.ready_timeout_secs.saturating_mul(1000),
            step_timeout_ms: config.step_timeout_secs.saturating_mul(1000),
            operation_timeout_ms: config.operation_timeout_secs.saturating_mul(1000),
            ..ChangeLimits::default()
        },
        catalogs: Default::default(),
        backups: backup_policy,
        health: HealthSettings {
            interval_ms: config.health_interval_secs.saturating_mul(1000),
            unhealthy_after: config.health_failures,
            checks_per_execution: config.health_checks_per_execution,
            check_archiving: archives,
            ..HealthSettings::default()
        },
        drift_interval: Duration::from_secs(config.drift_interval_secs),
        drift_grace: Duration::from_secs(config.drift_grace_secs),
    });

    match plane
        .metadata
        .assign_default_namespace(plane.backend.default_namespace())
        .await
    {
        Ok(0) => {}
        Ok(assigned) => tracing::info!(
            assigned,
            namespace = plane.backend.default_namespace(),
            "gave instances made before namespaces the default namespace"
        ),
        Err(error) => return Err(error).context("giving older instances their namespace"),
    }
    match reconciler::reconcile(&plane, true, true).await {
        Ok(report) if report != Default::default() => {
            tracing::info!(?report, "reconciled accepted operations")
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(%error, "start-up reconciliation failed; it runs again periodically")
        }
    }
    let periodic = tokio::spawn(reconcile_periodically(
        plane.clone(),
        Duration::from_secs(config.reconcile_interval_secs.max(1)),
        Duration::from_secs(config.history_retention_secs),
    ));

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let scheme = if security.tls.is_some() {
        Scheme::Https
    } else {
        Scheme::Http
    };
    tracing::info!(address = %listener.local_addr()?, scheme = scheme.as_str(), "toygres is serving");
    let app = api::router(AppState {
        plane,
        metrics: metrics_handle,
        authentication: security.authentication,
        scheme,
    });
    http_server::serve(listener, security.tls, app, shutdown_signal()).await;

    tracing::info!("shutting down");
    periodic.abort();
    workflows.shutdown(Duration::from_secs(5)).await;
    // Pooled clusters are not instances: none outlives the server (the next start refills).
    if let Some(pool) = backend.warm_pool().filter(|pool| pool.size() > 0) {
        match pool.drain().await {
            Ok(removed) => tracing::info!(removed, "emptied the warm pool"),
            Err(error) => tracing::warn!(%error, "could not empty the warm pool"),
        }
    }
    Ok(())
}

/// Every `every`, starts missing workflows and prunes the history of operations finished more
/// than `retention` ago; every [`MONITOR_PASS_EVERY`] passes, also starts missing monitors.
async fn reconcile_periodically(plane: Arc<ControlPlane>, every: Duration, retention: Duration) {
    for pass in 1u64.. {
        tokio::time::sleep(every).await;
        let check_monitors = pass % MONITOR_PASS_EVERY == 0;
        if let Err(error) = reconciler::reconcile(&plane, false, check_monitors).await {
            tracing::warn!(%error, "reconciliation failed");
        }
        match reconciler::prune_finished_histories(&plane, retention).await {
            Ok(0) => {}
            Ok(pruned) => {
                tracing::info!(pruned, "pruned the workflow history of finished operations")
            }
            Err(error) => tracing::warn!(%error, "pruning finished operations failed"),
        }
    }
}

/// Monitors are checked on every this many reconciler passes (with 30 s passes: every 2.5 min).
const MONITOR_PASS_EVERY: u64 = 5;

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}
