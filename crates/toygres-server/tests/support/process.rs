//! Running a command as a user would (the `toygres` client, a curl script) and checking its
//! exit code and output.

use super::{OPERATION_LIMIT, TestError};
use serde_json::Value;
use std::process::Stdio;
use tokio::io::AsyncWriteExt as _;

/// What one run of a command did.
pub struct Run {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl Run {
    /// Fails the test, with the output, unless the exit code is `expected`.
    pub fn expect_exit(self, expected: u8) -> Result<Run, TestError> {
        if self.code != i32::from(expected) {
            return Err(format!(
                "expected exit code {expected}, got {}\nstdout:\n{}\nstderr:\n{}",
                self.code, self.stdout, self.stderr
            )
            .into());
        }
        Ok(self)
    }

    /// Stdout as JSON.
    pub fn json(&self) -> Result<Value, TestError> {
        serde_json::from_str(&self.stdout)
            .map_err(|error| format!("stdout is not JSON ({error}):\n{}", self.stdout).into())
    }
}

/// Runs `command` with `stdin` piped in when given (otherwise no stdin) and stdout and stderr
/// captured through pipes, for at most [`OPERATION_LIMIT`].
pub async fn run(
    mut command: tokio::process::Command,
    stdin: Option<&str>,
) -> Result<Run, TestError> {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).await?;
    }
    let output = tokio::time::timeout(OPERATION_LIMIT, child.wait_with_output()).await??;
    Ok(Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout)?,
        stderr: String::from_utf8(output.stderr)?,
    })
}
