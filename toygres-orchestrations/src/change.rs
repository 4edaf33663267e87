//! The one shape of every operation that changes an existing instance (stop, start, restart,
//! update, reset_password): [`Change::begin`] marks the operation running, the kind's steps run
//! within the operation's deadline ([`Change::within_deadline`]), and [`Change::finish`]
//! records the outcome. A failure is recorded with the state the backend shows afterwards
//! (running, stopped, or failed), so an instance is never left in a state no operation owns.
//! The steps themselves are methods here, each with its deadline and retries.

use crate::steps::{
    StepFailure, StepPolicy, Tracker, call, report, start_operation, wait_until_ready, within,
    within_operation,
};
use crate::types::{MonitorInstanceInput, OperationTarget};
use duroxide::OrchestrationContext;
use std::future::Future;
use std::time::Duration;
use toygres_activities::activities::{
    complete_operation, fail_operation, observe_instance, test_connection, transition_instance,
};
use toygres_activities::error::{ActivityError, ErrorCode};
use toygres_activities::model::{InstanceState, OperationStatus};
use toygres_activities::roles::MONITOR;
use toygres_activities::seal::SealedSecret;
use toygres_activities::types::*;

/// How long the look at the instance after a failure waits for a starting server.
const OBSERVE_WAIT_MS: u64 = 5_000;

/// An operation on an existing instance, under way.
pub(crate) struct Change<'a> {
    /// The workflow's context.
    pub ctx: &'a OrchestrationContext,
    /// The instance and the operation.
    pub target: &'a OperationTarget,
    /// Progress and the current step.
    pub tracker: Tracker,
    /// What the operation is called in messages (`stop`, `update`, ...).
    what: &'static str,
}

impl<'a> Change<'a> {
    /// Marks the operation running (`start-operation`); fails with `canceled` when it had
    /// finished before its workflow ran.
    pub async fn begin(
        ctx: &'a OrchestrationContext,
        target: &'a OperationTarget,
        steps: &[&str],
        what: &'static str,
    ) -> Result<Change<'a>, String> {
        start_operation(ctx, &target.operation_id, &target.name).await?;
        Ok(Self {
            ctx,
            target,
            tracker: Tracker::new(ctx, steps.len() as u32),
            what,
        })
    }

    /// Runs `steps` under the operation's deadline.
    pub async fn within_deadline(
        &self,
        steps: impl Future<Output = Result<(), StepFailure>>,
    ) -> Result<(), StepFailure> {
        let limit = Duration::from_millis(self.target.limits.operation_timeout_ms);
        within_operation(self.ctx, &self.tracker, limit, self.what, steps).await
    }

    /// Ends the workflow: on failure, looks at the instance, records the failure with the state
    /// seen, and fails (unless the operation turns out to have succeeded first).
    pub async fn finish(&self, outcome: Result<(), StepFailure>) -> Result<(), String> {
        let Err(StepFailure { step, error }) = outcome else {
            return Ok(());
        };
        let total = self.tracker.total();
        report(self.ctx, "settle", total.saturating_sub(1), total);
        self.ctx.trace_warn(format!(
            "{} of {} failed in {step}: {error}",
            self.what, self.target.name
        ));
        let observe = ObserveInstanceInput {
            name: self.target.name.clone(),
            namespace: self.target.namespace.clone(),
            wait_ms: OBSERVE_WAIT_MS,
        };
        let seen = call::<_, ObservedState>(
            self.ctx,
            observe_instance::NAME,
            &observe,
            StepPolicy::retried(3, Duration::from_millis(OBSERVE_WAIT_MS * 4)),
        )
        .await;
        let (settle, note) = match seen {
            Ok(ObservedState {
                state,
                detail: None,
            }) => (state, format!("; the instance is {state}")),
            Ok(ObservedState {
                state,
                detail: Some(detail),
            }) => (state, format!("; the instance is {state}: {detail}")),
            Err(error) => (
                InstanceState::Failed,
                format!("; its state could not be seen: {}", error.message),
            ),
        };
        let record = FailOperationInput {
            instance_id: self.target.instance_id,
            name: self.target.name.clone(),
            operation_id: self.target.operation_id.clone(),
            step: step.to_string(),
            error: error.clone(),
            cleanup_note: note,
            settle: Some(settle),
        };
        match call::<_, FailOutcome>(
            self.ctx,
            fail_operation::NAME,
            &record,
            StepPolicy::metadata(),
        )
        .await
        {
            // The finalize committed after its deadline fired: the operation succeeded.
            Ok(FailOutcome {
                recorded: false,
                status: OperationStatus::Succeeded,
            }) => {
                self.ctx.trace_info(format!(
                    "the {} of {} had succeeded after all",
                    self.what, self.target.name
                ));
                return Ok(());
            }
            Ok(_) => {}
            // The reconciler settles the row.
            Err(record_error) => self.ctx.trace_error(format!(
                "could not record the failure of {}: {record_error}",
                self.target.operation_id
            )),
        }
        Err(error.into())
    }

    /// The deadline of a step.
    pub fn step_limit(&self) -> Duration {
        Duration::from_millis(self.target.limits.step_timeout_ms)
    }

    /// The policy of a backend step: retried within the step's deadline.
    pub fn backend_policy(&self) -> StepPolicy {
        StepPolicy::retried(self.target.limits.step_attempts, self.step_limit()).retrying_timeouts()
    }

    /// Enters `step` with `done` steps behind.
    pub fn enter(&self, step: &'static str, done: u32) {
        self.tracker.enter(step, done);
    }

    /// Moves the instance to `to` (while this operation holds it and `to` may follow its
    /// state); a move that does not apply fails the step with `invalid_state`.
    pub async fn mark(&self, step: &'static str, to: InstanceState) -> Result<(), StepFailure> {
        let transition = TransitionInput {
            instance_id: self.target.instance_id,
            name: self.target.name.clone(),
            operation_id: self.target.operation_id.clone(),
            to,
            message: format!("{} started", self.what),
        };
        let applied: Applied = within(
            self.ctx,
            self.step_limit(),
            step,
            call(
                self.ctx,
                transition_instance::NAME,
                &transition,
                StepPolicy::metadata(),
            ),
        )
        .await
        .map_err(StepFailure::at(step))?;
        if applied.applied {
            Ok(())
        } else {
            Err(StepFailure {
                step,
                error: ActivityError::permanent(
                    ErrorCode::InvalidState,
                    format!(
                        "{} can no longer become {to}: another operation changed it",
                        self.target.name
                    ),
                ),
            })
        }
    }

    /// Runs activity `name` as step `step`, with the step's deadline and retries.
    pub async fn run<In: serde::Serialize>(
        &self,
        step: &'static str,
        name: &str,
        input: &In,
    ) -> Result<(), StepFailure> {
        within(
            self.ctx,
            self.step_limit(),
            step,
            call::<_, ()>(self.ctx, name, input, self.backend_policy()),
        )
        .await
        .map_err(StepFailure::at(step))
    }

    /// Runs activity `name` as step `step` within `limit` (all attempts), and decodes its output.
    pub async fn call_within<In: serde::Serialize, Out: serde::de::DeserializeOwned>(
        &self,
        step: &'static str,
        name: &str,
        input: &In,
        limit: Duration,
    ) -> Result<Out, StepFailure> {
        let policy =
            StepPolicy::retried(self.target.limits.step_attempts, limit).retrying_timeouts();
        within(self.ctx, limit, step, call(self.ctx, name, input, policy))
            .await
            .map_err(StepFailure::at(step))
    }

    /// Waits until the server accepts connections, within the ready deadline.
    pub async fn wait_ready(&self, step: &'static str) -> Result<(), StepFailure> {
        wait_until_ready(
            self.ctx,
            &self.target.name,
            self.target.namespace.clone(),
            Duration::from_millis(self.target.limits.ready_timeout_ms),
            self.backend_policy(),
        )
        .await
        .map_err(StepFailure::at(step))
    }

    /// Connects as `user` with password `sealed` and runs `SELECT version()`.
    pub async fn test_connection(
        &self,
        step: &'static str,
        user: &str,
        sealed: &SealedSecret,
    ) -> Result<TestConnectionOutput, StepFailure> {
        let limits = &self.target.limits;
        let probe = TestConnectionInput {
            name: self.target.name.clone(),
            namespace: self.target.namespace.clone(),
            host: self.target.host.clone(),
            port: self.target.port,
            user: user.to_string(),
            database: self.target.database.clone(),
            sealed_password: sealed.clone(),
            timeout_ms: limits.probe_timeout_ms,
        };
        let policy = StepPolicy::retried(
            limits.step_attempts,
            Duration::from_millis(limits.probe_timeout_ms.saturating_mul(2)),
        )
        .retrying_timeouts();
        within(
            self.ctx,
            self.step_limit(),
            step,
            call(self.ctx, test_connection::NAME, &probe, policy),
        )
        .await
        .map_err(StepFailure::at(step))
    }

    /// Connects as the control plane's monitoring role: the server is usable.
    pub async fn test_as_monitor(
        &self,
        step: &'static str,
    ) -> Result<TestConnectionOutput, StepFailure> {
        self.test_connection(step, MONITOR, &self.target.sealed_monitor_password)
            .await
    }

    /// Where the control plane reaches the instance as `toygres_admin`.
    pub fn admin(&self) -> AdminEndpoint {
        AdminEndpoint {
            name: self.target.name.clone(),
            namespace: self.target.namespace.clone(),
            host: self.target.host.clone(),
            port: self.target.port,
            sealed_admin_password: self.target.sealed_admin_password.clone(),
            timeout_ms: self.target.limits.probe_timeout_ms.saturating_mul(3),
        }
    }

    /// Records the success: the instance moves from one of `expected` to `to` with `changes`;
    /// a finalize that no longer applies (another operation took the instance) is a failure.
    pub async fn finalize(
        &self,
        expected: &[InstanceState],
        to: InstanceState,
        changes: InstanceChanges,
        result: Option<serde_json::Value>,
        message: &str,
    ) -> Result<(), StepFailure> {
        let complete = CompleteOperationInput {
            instance_id: self.target.instance_id,
            name: self.target.name.clone(),
            operation_id: self.target.operation_id.clone(),
            expected: expected.to_vec(),
            to,
            changes,
            result,
            message: message.to_string(),
        };
        let applied: Applied = within(
            self.ctx,
            self.step_limit(),
            "finalize",
            call(
                self.ctx,
                complete_operation::NAME,
                &complete,
                StepPolicy::metadata(),
            ),
        )
        .await
        .map_err(StepFailure::at("finalize"))?;
        if !applied.applied {
            return Err(StepFailure {
                step: "finalize",
                error: ActivityError::permanent(
                    ErrorCode::InvalidState,
                    format!(
                        "the {} could not be recorded: the instance is no longer held by it",
                        self.what
                    ),
                ),
            });
        }
        self.tracker.finish();
        Ok(())
    }

    /// The id of the monitor a start of this operation gives the instance.
    pub fn new_monitor_id(&self) -> String {
        format!(
            "{}-{}",
            crate::types::monitor_id_for(&self.target.uid),
            self.target.operation_id
        )
    }

    /// Starts monitor workflow `monitor_id`, checking as the control plane's monitoring role.
    pub fn start_monitor(&self, monitor_id: &str) {
        let monitor = MonitorInstanceInput {
            monitor_id: monitor_id.to_string(),
            instance_id: self.target.instance_id,
            name: self.target.name.clone(),
            namespace: self.target.namespace.clone(),
            host: self.target.host.clone(),
            port: self.target.port,
            user: MONITOR.to_string(),
            database: self.target.database.clone(),
            sealed_password: self.target.sealed_monitor_password.clone(),
            settings: self.target.health.clone(),
            generation: 0,
        };
        self.ctx
            .schedule_orchestration_typed(crate::names::MONITOR_INSTANCE, monitor_id, &monitor);
    }
}
