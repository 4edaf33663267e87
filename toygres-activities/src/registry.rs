//! The activity registry and the dependencies injected into every activity.

use crate::activities::*;
use crate::backend::Backend;
use crate::metadata::MetadataStore;
use crate::seal::SecretKey;
use crate::types::ActivityInput;
use duroxide::runtime::registry::ActivityRegistry;
use std::sync::Arc;
use tracing::Instrument as _;

/// What the activities need: where instances run, where metadata lives, and the sealing key.
#[derive(Debug, Clone)]
pub struct ActivityDeps {
    /// The backend instances run on.
    pub backend: Arc<dyn Backend>,
    /// The metadata store.
    pub metadata: MetadataStore,
    /// The key that opens sealed passwords.
    pub secret_key: SecretKey,
    /// A pause before every activity, for tests and drills only (makes every step observable).
    pub step_delay: Option<std::time::Duration>,
}

/// Registers one activity module (its `NAME` and `run`) with the dependencies bound, each run
/// inside a span naming the operation and the instance, and timed into
/// `toygres_activity_duration_seconds{activity, outcome}`.
macro_rules! register {
    ($builder:expr, $deps:expr, $($module:ident),+ $(,)?) => {{
        let mut builder = $builder;
        $(
            let deps = $deps.clone();
            builder = builder.register_typed($module::NAME, move |ctx: duroxide::ActivityContext, input| {
                let deps = deps.clone();
                let span = tracing::info_span!(
                    "activity",
                    name = short_name($module::NAME),
                    operation_id = %ctx.instance_id(),
                    instance = %ActivityInput::instance(&input),
                );
                async move {
                    if let Some(delay) = deps.step_delay {
                        tokio::time::sleep(delay).await;
                    }
                    let started = std::time::Instant::now();
                    let outcome = $module::run(deps, ctx, input).await;
                    record_duration($module::NAME, outcome.is_ok(), started.elapsed());
                    outcome
                }
                .instrument(span)
            });
        )+
        builder
    }};
}

/// The last segment of an activity name (`deploy-postgres`).
fn short_name(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}

fn record_duration(name: &'static str, ok: bool, elapsed: std::time::Duration) {
    let outcome = if ok { "success" } else { "error" };
    metrics::histogram!("toygres_activity_duration_seconds", "activity" => short_name(name), "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

/// Builds the registry of every Toygres activity, bound to `deps`.
pub fn create_activity_registry(deps: ActivityDeps) -> ActivityRegistry {
    let deps = Arc::new(deps);
    register!(
        ActivityRegistry::builder(),
        deps,
        start_operation,
        deploy_postgres,
        wait_for_ready,
        get_connection_strings,
        configure_roles,
        test_connection,
        delete_postgres,
        transition_instance,
        complete_create,
        complete_delete,
        fail_operation,
        cancel_operation,
        check_health,
        stop_monitor,
        prune_history,
        detect_drift,
        remove_orphan,
        mark_backend_lost,
        stop_postgres,
        start_postgres,
        restart_postgres,
        resize_storage,
        set_parameters,
        set_owner_password,
        observe_instance,
        complete_operation,
        take_backup,
        complete_backup,
        flush_archive,
        deploy_restored,
        verify_backup,
        record_verification,
        plan_backups,
        request_backup,
        expire_backups,
        refill_pool,
    )
    .build()
}
