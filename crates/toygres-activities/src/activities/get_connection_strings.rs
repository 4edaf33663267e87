//! Reads how clients reach an instance.

use crate::activities::backend_failure;
use crate::error::ErrorCode;
use crate::registry::ActivityDeps;
use crate::types::{ConnectionInfo, ConnectionInfoInput};
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`ConnectionInfoInput`], output [`ConnectionInfo`]. Read-only.
pub const NAME: &str = "toygres-activities::activity::get-connection-strings";

/// Asks the backend for the endpoint and builds the password-less connection URI.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: ConnectionInfoInput,
) -> Result<ConnectionInfo, String> {
    let endpoint = deps
        .backend
        .endpoint(&input.name)
        .await
        .map_err(|error| backend_failure(ErrorCode::BackendLost, error))?;
    let connection_uri = format!(
        "postgresql://{}@{}:{}/{}",
        input.user, endpoint.host, endpoint.port, input.database
    );
    Ok(ConnectionInfo {
        host: endpoint.host,
        port: endpoint.port,
        connection_uri,
    })
}
