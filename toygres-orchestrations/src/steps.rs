//! Running one activity as a workflow step: typed, with a per-attempt deadline, retries of
//! retryable errors only, and progress published as the custom status.

use crate::types::Progress;
use duroxide::{Either2, OrchestrationContext};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use toygres_activities::error::{ActivityError, ErrorCode};
use toygres_activities::types::StartOperationInput;
use toygres_activities::validation::InstanceName;

/// How a step is run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Deadline of one attempt; past it the step fails with `deadline_exceeded`, or (with
    /// `retry_timeouts`) tries again.
    pub timeout: Option<Duration>,
    /// Whether an attempt past its deadline is retried like a retryable error. The deadline of
    /// an attempt counts the time its activity waited in the queue too (behind a crashed
    /// worker's lock, say), so an attempt that never ran is worth another; the step's own
    /// deadline still bounds them all. Only for idempotent activities.
    pub retry_timeouts: bool,
}

impl StepPolicy {
    /// The policy of a metadata step: 10 attempts of at most 30 s each. Every metadata
    /// activity is a conditional write or a read, so an attempt past its deadline (one that
    /// waited in the queue behind a busy or crashed worker) is tried again too.
    pub fn metadata() -> Self {
        Self::retried(10, Duration::from_secs(30)).retrying_timeouts()
    }

    /// `attempts` attempts, each with a deadline.
    pub fn retried(attempts: u32, timeout: Duration) -> Self {
        Self {
            attempts: attempts.max(1),
            timeout: Some(timeout),
            retry_timeouts: false,
        }
    }

    /// The same policy, retrying attempts that pass their deadline.
    pub fn retrying_timeouts(self) -> Self {
        Self {
            retry_timeouts: true,
            ..self
        }
    }
}

/// Backoff before retry `attempt` (1-based): 250 ms doubling, at most 8 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << attempt.saturating_sub(1).min(5)))
        .min(Duration::from_secs(8))
}

/// A failed step and why.
pub(crate) struct StepFailure {
    /// The step that failed.
    pub step: &'static str,
    /// Why.
    pub error: ActivityError,
}

impl StepFailure {
    /// Turns an error of `step` into a failure (for `map_err`).
    pub fn at(step: &'static str) -> impl Fn(ActivityError) -> StepFailure {
        move |error| StepFailure { step, error }
    }
}

/// Marks an operation running (`start-operation`). Fails with `canceled` when it had already
/// finished, e.g. a delete canceled it before its workflow got to run.
pub(crate) async fn start_operation(
    ctx: &OrchestrationContext,
    operation_id: &str,
    name: &InstanceName,
) -> Result<(), ActivityError> {
    let start = StartOperationInput {
        operation_id: operation_id.to_string(),
        name: name.clone(),
    };
    let proceed: bool = call(
        ctx,
        toygres_activities::activities::start_operation::NAME,
        &start,
        StepPolicy::metadata(),
    )
    .await?;
    if proceed {
        return Ok(());
    }
    ctx.trace_info(format!(
        "operation {operation_id} already finished; nothing to do"
    ));
    Err(ActivityError::permanent(
        ErrorCode::Canceled,
        "the operation finished before it started",
    ))
}

/// Runs the steps of an operation under its overall deadline; past it, the failure names the
/// step `tracker` is in.
pub(crate) async fn within_operation<T>(
    ctx: &OrchestrationContext,
    tracker: &Tracker,
    limit: Duration,
    what: &str,
    steps: impl Future<Output = Result<T, StepFailure>>,
) -> Result<T, StepFailure> {
    match ctx.select2(steps, ctx.schedule_timer(limit)).await {
        Either2::First(outcome) => outcome,
        Either2::Second(()) => Err(StepFailure {
            step: tracker.current(),
            error: ActivityError::permanent(
                ErrorCode::DeadlineExceeded,
                format!(
                    "the {what} did not finish within {} s (in step {})",
                    limit.as_secs(),
                    tracker.current()
                ),
            ),
        }),
    }
}

/// Publishes progress and remembers the step running now, so that an operation deadline can
/// say where the operation was when it expired.
#[derive(Clone)]
pub(crate) struct Tracker {
    ctx: OrchestrationContext,
    current: Arc<Mutex<&'static str>>,
    total: u32,
}

impl Tracker {
    /// A tracker for a workflow of `total` steps.
    pub fn new(ctx: &OrchestrationContext, total: u32) -> Self {
        Self {
            ctx: ctx.clone(),
            current: Arc::new(Mutex::new("start")),
            total,
        }
    }

    /// Enters `step`, with `done` steps behind.
    pub fn enter(&self, step: &'static str, done: u32) {
        *self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = step;
        report(&self.ctx, step, done, self.total);
    }

    /// Marks every step done.
    pub fn finish(&self) {
        let step = self.current();
        report(&self.ctx, step, self.total, self.total);
    }

    /// Steps in all.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// The step running now.
    pub fn current(&self) -> &'static str {
        *self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How long one wait-for-ready call waits before the workflow decides.
const READY_POLL_MS: u64 = 2_000;
/// The durable pause between wait-for-ready calls.
const READY_PAUSE: Duration = Duration::from_millis(200);

/// Waits until instance `name` (in `namespace`; `None`: the backend's default) accepts
/// connections: short activity waits with a durable pause between them, within `limit` (past
/// it, `deadline_exceeded`).
pub(crate) async fn wait_until_ready(
    ctx: &OrchestrationContext,
    name: &InstanceName,
    namespace: Option<String>,
    limit: Duration,
    policy: StepPolicy,
) -> Result<(), ActivityError> {
    let wait = toygres_activities::types::WaitForReadyInput {
        name: name.clone(),
        namespace,
        wait_ms: READY_POLL_MS,
    };
    let polls = async {
        loop {
            let output: toygres_activities::types::WaitForReadyOutput = call(
                ctx,
                toygres_activities::activities::wait_for_ready::NAME,
                &wait,
                policy,
            )
            .await?;
            if output.ready {
                return Ok::<(), ActivityError>(());
            }
            if let Some(detail) = output.detail {
                ctx.trace_info(format!("{name} not ready yet: {detail}"));
            }
            ctx.schedule_timer(READY_PAUSE).await;
        }
    };
    within(
        ctx,
        limit,
        "waiting for the instance to accept connections",
        polls,
    )
    .await
}

/// The attempt deadline of one wait-for-ready call.
pub(crate) fn ready_poll_timeout() -> Duration {
    Duration::from_millis(READY_POLL_MS * 5)
}

/// Runs `work`, failing with `deadline_exceeded` if it is not done within `limit` (a durable timer).
pub(crate) async fn within<T>(
    ctx: &OrchestrationContext,
    limit: Duration,
    what: &str,
    work: impl Future<Output = Result<T, ActivityError>>,
) -> Result<T, ActivityError> {
    match ctx.select2(work, ctx.schedule_timer(limit)).await {
        Either2::First(outcome) => outcome,
        Either2::Second(()) => Err(ActivityError::permanent(
            ErrorCode::DeadlineExceeded,
            format!("{what} did not finish within {} s", limit.as_secs_f64()),
        )),
    }
}

/// Publishes `step` as the workflow's progress.
pub(crate) fn report(ctx: &OrchestrationContext, step: &str, done: u32, total: u32) {
    let progress = Progress {
        step: step.to_string(),
        done,
        total,
    };
    if let Ok(json) = serde_json::to_string(&progress) {
        ctx.set_custom_status(json);
    }
}

/// Runs activity `name` under `policy` and decodes its output.
pub(crate) async fn call<In: Serialize, Out: DeserializeOwned>(
    ctx: &OrchestrationContext,
    name: &str,
    input: &In,
    policy: StepPolicy,
) -> Result<Out, ActivityError> {
    let payload = serde_json::to_string(input)
        .map_err(|error| ActivityError::permanent(ErrorCode::Internal, error.to_string()))?;
    let mut attempt = 1;
    loop {
        let activity = ctx.schedule_activity(name, payload.clone());
        let outcome = match policy.timeout {
            None => activity.await,
            Some(limit) => match ctx.select2(activity, ctx.schedule_timer(limit)).await {
                Either2::First(outcome) => outcome,
                Either2::Second(()) => {
                    let seconds = limit.as_secs_f64();
                    let message =
                        format!("{} did not finish within {seconds:.0} s", short_name(name));
                    if !policy.retry_timeouts || attempt >= policy.attempts {
                        return Err(ActivityError::permanent(
                            ErrorCode::DeadlineExceeded,
                            message,
                        ));
                    }
                    ctx.trace_warn(format!(
                        "attempt {attempt}/{}: {message}; retrying",
                        policy.attempts
                    ));
                    attempt += 1;
                    continue;
                }
            },
        };
        match outcome {
            Ok(raw) => {
                return serde_json::from_str(&raw).map_err(|error| {
                    ActivityError::permanent(ErrorCode::Internal, error.to_string())
                });
            }
            Err(raw) => {
                let error = ActivityError::decode(&raw);
                if !error.retryable || attempt >= policy.attempts {
                    return Err(error);
                }
                ctx.trace_warn(format!(
                    "{} attempt {attempt}/{} failed: {error}; retrying",
                    short_name(name),
                    policy.attempts
                ));
                ctx.schedule_timer(backoff(attempt)).await;
                attempt += 1;
            }
        }
    }
}

/// The last path segment of an activity name (`deploy-postgres`).
fn short_name(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(30), Duration::from_secs(8));
    }

    #[test]
    fn short_names() {
        assert_eq!(
            short_name("toygres-activities::activity::deploy-postgres"),
            "deploy-postgres"
        );
        assert_eq!(short_name("plain"), "plain");
    }
}
