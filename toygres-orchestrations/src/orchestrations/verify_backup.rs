//! verify-backup: restore the backup into a scratch cluster, check it (it starts, every
//! catalog and user table reads, `pgbackrest verify` passes) and remove it -> the result on
//! the backup. It holds no instance: the instance goes on meanwhile (or is deleted already).

use crate::steps::{StepPolicy, Tracker, call, start_operation, within};
use crate::types::{VERIFY_STEPS, VerifyBackupWorkflowInput};
use duroxide::OrchestrationContext;
use std::time::Duration;
use toygres_activities::activities::{fail_operation, record_verification, verify_backup};
use toygres_activities::types::{
    Applied, FailOperationInput, FailOutcome, RecordVerificationInput, Verification,
    VerifyBackupInput,
};

/// Runs the verify workflow.
pub async fn run(
    ctx: OrchestrationContext,
    input: VerifyBackupWorkflowInput,
) -> Result<(), String> {
    start_operation(&ctx, &input.operation_id, &input.name).await?;
    let tracker = Tracker::new(&ctx, VERIFY_STEPS.len() as u32);
    let limit = Duration::from_millis(input.verify_timeout_ms);
    tracker.enter("verify", 0);
    let verify = VerifyBackupInput {
        name: input.name.clone(),
        stanza: input.stanza.clone(),
        label: input.label.clone(),
    };
    let outcome = within(
        &ctx,
        limit,
        "verify",
        call::<_, Verification>(
            &ctx,
            verify_backup::NAME,
            &verify,
            StepPolicy::retried(2, limit).retrying_timeouts(),
        ),
    )
    .await;
    let record = |verification: serde_json::Value, failed: bool| RecordVerificationInput {
        name: input.name.clone(),
        backup_id: input.backup_id.clone(),
        operation_id: input.operation_id.clone(),
        verification,
        failed,
    };
    match outcome {
        Ok(verification) => {
            tracker.enter("finalize", 1);
            let json = serde_json::to_value(&verification).unwrap_or_default();
            let _: Applied = call(
                &ctx,
                record_verification::NAME,
                &record(json, false),
                StepPolicy::metadata(),
            )
            .await?;
            tracker.finish();
            Ok(())
        }
        Err(error) => {
            let json = serde_json::json!({"restored": false, "error": error.message});
            if let Err(record_error) = call::<_, Applied>(
                &ctx,
                record_verification::NAME,
                &record(json, true),
                StepPolicy::metadata(),
            )
            .await
            {
                ctx.trace_warn(format!(
                    "could not record the failed verify: {record_error}"
                ));
            }
            let failure = FailOperationInput {
                instance_id: input.instance_id,
                name: input.name.clone(),
                operation_id: input.operation_id.clone(),
                step: "verify".into(),
                error: error.clone(),
                cleanup_note: String::new(),
                settle: None,
            };
            if let Err(record_error) =
                call::<_, FailOutcome>(&ctx, fail_operation::NAME, &failure, StepPolicy::metadata())
                    .await
            {
                ctx.trace_error(format!("could not record the failure: {record_error}"));
            }
            Err(error.into())
        }
    }
}
