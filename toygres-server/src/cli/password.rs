//! `--password-stdin`: the password comes from stdin, never from the command line (which `ps`
//! shows to every user).

use super::exit::CliError;
use std::io::Read as _;

/// Stdin longer than this is not a password (the server accepts at most 128 characters).
const MAX_STDIN_BYTES: u64 = 4096;

/// Reads the password from stdin: everything up to the end, without the final line break.
pub fn read_from_stdin() -> Result<String, CliError> {
    let mut raw = String::new();
    std::io::stdin()
        .lock()
        .take(MAX_STDIN_BYTES)
        .read_to_string(&mut raw)
        .map_err(|source| CliError::Io {
            context: "cannot read the password from stdin",
            source,
        })?;
    from_text(raw)
}

/// The password in `raw`: one trailing `\n` or `\r\n` removed; empty is a usage error.
fn from_text(mut raw: String) -> Result<String, CliError> {
    if raw.ends_with('\n') {
        raw.pop();
        if raw.ends_with('\r') {
            raw.pop();
        }
    }
    if raw.is_empty() {
        return Err(CliError::Usage(
            "--password-stdin: stdin is empty; pipe the password in".to_string(),
        ));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_one_line_break_only() {
        assert_eq!(
            from_text("s3cret pass\n".into()).ok().as_deref(),
            Some("s3cret pass")
        );
        assert_eq!(from_text("a\r\n".into()).ok().as_deref(), Some("a"));
        assert_eq!(from_text(" a \n\n".into()).ok().as_deref(), Some(" a \n"));
        assert!(matches!(from_text(String::new()), Err(CliError::Usage(_))));
        assert!(matches!(from_text("\n".into()), Err(CliError::Usage(_))));
    }
}
