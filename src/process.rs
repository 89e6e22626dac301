//! Running child processes with their stderr captured into the error.

use anyhow::{bail, Context, Result};
use std::process::{Command, Output};

/// Keep at most this many trailing lines of a failing child's stderr in the error.
pub const STDERR_TAIL_LINES: usize = 25;

/// Render a command line for messages (not for a shell).
pub fn display_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().to_string();
    for a in cmd.get_args() {
        s.push(' ');
        // Quoted, so a word with a space (`'nix-command flakes'`) reads as one word.
        s.push_str(&crate::lines::shell::quote(&a.to_string_lossy()));
    }
    s
}

/// Last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Turn a finished child into `Ok(output)` or an error carrying its stderr.
pub fn check_output(what: &str, output: Output) -> Result<Output> {
    if output.status.success() {
        return Ok(output);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = match output.status.code() {
        Some(c) => format!("exit code {c}"),
        None => "killed by a signal".to_string(),
    };
    bail!(
        "{what} failed ({code}):\n{}",
        tail(stderr.trim_end(), STDERR_TAIL_LINES)
    )
}

/// Run to completion, capturing stdout and stderr.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let what = display_command(cmd);
    let output = cmd.output().with_context(|| format!("starting `{what}`"))?;
    check_output(&format!("`{what}`"), output)
}

/// Run to completion and return stdout as UTF-8.
pub fn run_stdout(cmd: &mut Command) -> Result<String> {
    let out = run(cmd)?;
    String::from_utf8(out.stdout).context("child printed non-UTF-8 output")
}

/// Async twin of [`run`], for the deploy pipeline.
pub async fn run_async(cmd: &mut tokio::process::Command) -> Result<Output> {
    let what = display_command(cmd.as_std());
    let output = cmd
        .output()
        .await
        .with_context(|| format!("starting `{what}`"))?;
    check_output(&format!("`{what}`"), output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_child_error_carries_stderr() {
        let err = run(Command::new("sh").args(["-c", "echo boom >&2; exit 3"])).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("boom"), "{msg}");
        assert!(msg.contains("exit code 3"), "{msg}");
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
