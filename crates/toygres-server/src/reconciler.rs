//! Starts accepted operations whose workflow is missing (the server stopped between recording
//! an operation and starting it), and settles operations whose workflow ended without writing
//! its outcome.

use crate::service::ControlPlane;
use chrono::Utc;
use duroxide::OrchestrationStatus;
use toygres_activities::error::{ActivityError, ErrorCode};

/// Operations younger than this are left alone: their request may still be starting them.
const GRACE: chrono::Duration = chrono::Duration::seconds(5);

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Operations whose workflow was started.
    pub started: Vec<String>,
    /// Operations recorded as failed (or canceled) because their workflow ended without doing so.
    pub settled: Vec<String>,
}

/// One pass over every unfinished operation.
pub async fn reconcile(
    plane: &ControlPlane,
    include_recent: bool,
) -> anyhow::Result<ReconcileReport> {
    let mut report = ReconcileReport::default();
    for operation in plane.metadata.unfinished_operations().await? {
        if !include_recent && Utc::now() - operation.created_at < GRACE {
            continue;
        }
        let Some(instance) = plane.metadata.instance(operation.instance_id).await? else {
            continue;
        };
        match plane.client.get_orchestration_status(&operation.id).await? {
            OrchestrationStatus::NotFound => {
                plane.try_start_workflow(&instance, &operation).await?;
                tracing::info!(operation_id = %operation.id, instance = %instance.name, "started a missing workflow");
                report.started.push(operation.id);
            }
            OrchestrationStatus::Failed {
                details:
                    duroxide::ErrorDetails::Application {
                        kind: duroxide::AppErrorKind::Cancelled { reason },
                        ..
                    },
                ..
            } => {
                plane
                    .metadata
                    .cancel_operation(&operation.id, &reason)
                    .await?;
                report.settled.push(operation.id);
            }
            OrchestrationStatus::Failed { details, .. } => {
                let error =
                    ActivityError::permanent(ErrorCode::Internal, details.display_message());
                let step = operation.step.clone().unwrap_or_else(|| "unknown".into());
                plane
                    .metadata
                    .fail_operation(instance.id, &operation.id, &step, &error, "")
                    .await?;
                report.settled.push(operation.id);
            }
            OrchestrationStatus::Completed { .. } | OrchestrationStatus::Running { .. } => {}
        }
    }
    Ok(report)
}
