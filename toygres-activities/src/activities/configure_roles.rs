//! Sets up the owner and the control plane's own roles inside a new instance, connected as its
//! bootstrap superuser `toygres_admin` (see [`crate::roles`]).

use crate::activities::open_password;
use crate::backend::Endpoint;
use crate::error::{ActivityError, ErrorCode};
use crate::registry::ActivityDeps;
use crate::roles::{self, ADMIN, AdminTarget, RolePasswords};
use crate::types::ConfigureRolesInput;
use duroxide::ActivityContext;
use std::sync::Arc;
use std::time::Duration;

/// Activity name. Input [`ConfigureRolesInput`], output `()`. Idempotent.
pub const NAME: &str = "toygres-activities::activity::configure-roles";

/// Opens the three sealed passwords and configures the roles.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: ConfigureRolesInput,
) -> Result<(), String> {
    let passwords = RolePasswords {
        owner: open_password(&deps, &input.sealed_owner_password)?,
        admin: open_password(&deps, &input.sealed_admin_password)?,
        monitor: open_password(&deps, &input.sealed_monitor_password)?,
    };
    let target = AdminTarget {
        name: input.name.clone(),
        namespace: input.namespace.clone(),
        endpoint: Endpoint {
            host: input.host.clone(),
            port: input.port,
        },
        user: ADMIN.to_string(),
        password: passwords.admin.clone(),
    };
    roles::configure(
        deps.backend.as_ref(),
        &target,
        &input.postgres_version,
        &passwords,
        Duration::from_millis(input.timeout_ms),
    )
    .await
    .map_err(|error| {
        let message = format!("configuring the roles of {}: {error}", input.name);
        if error.is_retryable() {
            ActivityError::transient(ErrorCode::ConnectionFailed, message)
        } else {
            ActivityError::permanent(ErrorCode::ConnectionFailed, message)
        }
    })?;
    Ok(())
}
