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

/// Runs `toygres ARGS` against `url` (no token), with `stdin` piped in when given. Stdout and
/// stderr are pipes, not terminals: progress comes as plain lines.
pub async fn toygres(url: &str, args: &[&str], stdin: Option<&str>) -> Result<Run, TestError> {
    let scratch = tempfile::tempdir()?;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_toygres"));
    command
        .args(args)
        .env("TOYGRES_URL", url)
        .env_remove("TOYGRES_TOKEN")
        .current_dir(scratch.path());
    run(command, stdin).await
}

/// The path of `scripts/NAME`.
pub fn script(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
}

/// Runs `scripts/NAME ARGS` against `url` with `token` (unset when `None`) and `stdin`.
pub async fn run_script(
    name: &str,
    args: &[&str],
    url: &str,
    token: Option<&str>,
    stdin: Option<&str>,
) -> Result<Run, TestError> {
    let mut command = tokio::process::Command::new(script(name));
    command
        .args(args)
        .env("TOYGRES_URL", url)
        .env_remove("TOYGRES_TOKEN");
    if let Some(token) = token {
        command.env("TOYGRES_TOKEN", token);
    }
    run(command, stdin).await
}

/// `value` as a string, or an error naming `what`.
pub fn text<'a>(value: &'a Value, what: &str) -> Result<&'a str, TestError> {
    value
        .as_str()
        .ok_or_else(|| format!("{what} is not a string in {value}").into())
}

/// Runs a script that starts an operation (it must exit 0), then `wait-operation.sh` on it;
/// returns the script's accepted answer and the ended operation.
pub async fn script_and_wait(
    name: &str,
    args: &[&str],
    url: &str,
) -> Result<(Value, Value), TestError> {
    let accepted = run_script(name, args, url, None, None)
        .await?
        .expect_exit(0)?
        .json()?;
    let id = text(&accepted["operation"]["id"], "operation id")?;
    let ended = run_script("wait-operation.sh", &[id], url, None, None)
        .await?
        .expect_exit(0)?
        .json()?;
    Ok((accepted, ended))
}
