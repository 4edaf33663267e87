//! Reads how clients reach an instance.

use crate::activities::backend_failure;
use crate::error::ErrorCode;
use crate::registry::ActivityDeps;
use crate::types::{ConnectionInfo, ConnectionInfoInput};
use duroxide::ActivityContext;
use std::sync::Arc;

/// Activity name. Input [`ConnectionInfoInput`], output [`ConnectionInfo`]. Read-only.
pub const NAME: &str = "toygres-activities::activity::get-connection-strings";

/// Asks the backend for the endpoint (and the DNS name, where there is one) and builds the
/// password-less connection URI: on the DNS name when there is one, on the address otherwise.
pub async fn run(
    deps: Arc<ActivityDeps>,
    _ctx: ActivityContext,
    input: ConnectionInfoInput,
) -> Result<ConnectionInfo, String> {
    let endpoint = deps
        .backend
        .endpoint(input.instance())
        .await
        .map_err(|error| backend_failure(ErrorCode::BackendLost, error))?;
    let dns_name = deps
        .backend
        .dns_name(input.instance())
        .await
        .map_err(|error| backend_failure(ErrorCode::BackendLost, error))?;
    let uri = |host: &str| {
        format!(
            "postgresql://{}@{host}:{}/{}",
            input.user, endpoint.port, input.database
        )
    };
    let connection_uri = uri(dns_name.as_deref().unwrap_or(&endpoint.host));
    Ok(ConnectionInfo {
        host: endpoint.host,
        port: endpoint.port,
        connection_uri,
        dns_name,
    })
}
