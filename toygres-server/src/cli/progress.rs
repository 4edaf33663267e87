//! Showing an operation's progress on stderr: a progress bar with the current step when stderr
//! is a terminal, plain lines (one per change) otherwise.

use super::model::OperationView;
use super::output::note;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal as _;
use std::time::Duration;

const BAR_TEMPLATE: &str = "{spinner} {prefix} [{bar:24}] {pos}/{len} {msg} ({elapsed})";
const TICK: Duration = Duration::from_millis(120);

/// Where an operation's progress goes.
#[derive(Debug)]
pub enum Progress {
    /// A progress bar (stderr is a terminal).
    Bar(ProgressBar),
    /// One line per change (stderr is not a terminal).
    Lines {
        /// What the last line said, so that an unchanged state is not repeated.
        last: Option<String>,
    },
}

impl Progress {
    /// A bar on a terminal, plain lines otherwise.
    pub fn on_stderr() -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress::Lines { last: None };
        }
        match ProgressStyle::with_template(BAR_TEMPLATE) {
            Ok(style) => {
                let bar = ProgressBar::new(0).with_style(style.progress_chars("=> "));
                bar.enable_steady_tick(TICK);
                Progress::Bar(bar)
            }
            Err(_) => Progress::Lines { last: None },
        }
    }

    /// Shows the operation's latest state.
    pub fn update(&mut self, operation: &OperationView) {
        match self {
            Progress::Bar(bar) => {
                bar.set_length(u64::from(operation.progress.total));
                bar.set_position(u64::from(operation.progress.done));
                bar.set_message(current(operation));
                bar.set_prefix(format!("{} {}", operation.kind, operation.instance));
            }
            Progress::Lines { last } => {
                let line = summary(operation);
                if last.as_deref() != Some(line.as_str()) {
                    note(&line);
                    *last = Some(line);
                }
            }
        }
    }

    /// Says something without breaking the bar (such as "retrying").
    pub fn say(&self, line: &str) {
        match self {
            Progress::Bar(bar) => bar.println(line),
            Progress::Lines { .. } => note(line),
        }
    }

    /// Shows the final state: the bar is replaced by one summary line.
    pub fn finish(mut self, operation: &OperationView) {
        if let Progress::Bar(bar) = &self {
            bar.finish_and_clear();
            note(&summary(operation));
        } else {
            self.update(operation);
        }
    }

    /// Leaves the bar where it stands (interrupted, or the server went away).
    pub fn abandon(self) {
        if let Progress::Bar(bar) = self {
            bar.abandon();
        }
    }
}

/// The status and the step it is at.
fn current(operation: &OperationView) -> String {
    match &operation.step {
        Some(step) if !operation.is_finished() => format!("{}: {step}", operation.status),
        _ => operation.status.clone(),
    }
}

/// `op_... create orders-db: running, step deploy (0/5)`.
fn summary(operation: &OperationView) -> String {
    let mut line = format!(
        "{} {} {}: {}",
        operation.id, operation.kind, operation.instance, operation.status
    );
    if let Some(step) = &operation.step
        && !operation.succeeded()
    {
        line.push_str(&format!(", step {step}"));
    }
    line.push_str(&format!(
        " ({}/{})",
        operation.progress.done, operation.progress.total
    ));
    if let Some(error) = &operation.error {
        line.push_str(&format!(": {}: {}", error.code, error.message));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::client::ClientError;
    use crate::cli::model::parse;
    use serde_json::json;

    #[test]
    fn summaries_say_status_step_and_error() -> Result<(), ClientError> {
        let running: OperationView = parse(
            &json!({"id": "op_1", "kind": "create", "instance": "db", "status": "running",
                "step": "deploy", "progress": {"done": 1, "total": 5}, "error": null,
                "result": null, "created_at": "x", "started_at": null, "finished_at": null}),
            "test",
        )?;
        assert_eq!(
            summary(&running),
            "op_1 create db: running, step deploy (1/5)"
        );
        assert_eq!(current(&running), "running: deploy");
        let failed: OperationView = parse(
            &json!({"id": "op_1", "kind": "create", "instance": "db", "status": "failed",
                "step": "deploy", "progress": {"done": 0, "total": 5},
                "error": {"code": "deploy_failed", "message": "no free port", "retryable": false},
                "result": null, "created_at": "x", "started_at": null, "finished_at": "y"}),
            "test",
        )?;
        assert_eq!(
            summary(&failed),
            "op_1 create db: failed, step deploy (0/5): deploy_failed: no free port"
        );
        Ok(())
    }
}
