//! The activity registry and the dependencies injected into every activity.

use crate::activities::*;
use crate::backend::Backend;
use crate::metadata::MetadataStore;
use crate::seal::SecretKey;
use duroxide::runtime::registry::ActivityRegistry;
use std::sync::Arc;

/// What the activities need: where instances run, where metadata lives, and the sealing key.
#[derive(Debug, Clone)]
pub struct ActivityDeps {
    /// The backend instances run on.
    pub backend: Arc<dyn Backend>,
    /// The metadata store.
    pub metadata: MetadataStore,
    /// The key that opens sealed passwords.
    pub secret_key: SecretKey,
}

/// Registers one activity module (its `NAME` and `run`) with the dependencies bound.
macro_rules! register {
    ($builder:expr, $deps:expr, $($module:ident),+ $(,)?) => {{
        let mut builder = $builder;
        $(
            let deps = $deps.clone();
            builder = builder.register_typed($module::NAME, move |ctx, input| $module::run(deps.clone(), ctx, input));
        )+
        builder
    }};
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
        test_connection,
        delete_postgres,
        transition_instance,
        complete_create,
        complete_delete,
        fail_operation,
        cancel_operation,
    )
    .build()
}
