//! One writer per line-based format hearth produces (smb.conf values, NFS exports,
//! known_hosts and authorized_keys lines, POSIX shell words; ssh_config lives in
//! `crate::ssh::config_writer`). Each refuses, with a [`LineError`], any value that would
//! end the line or change its meaning, so validation upstream is not the only defence.

pub mod alloy;
pub mod caddyfile;
pub mod exports;
pub mod keys;
pub mod shell;
pub mod smb;

/// A value a line format cannot carry as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{format}: {value:?} {reason}")]
pub struct LineError {
    /// The format and field, e.g. "smb.conf value", "ssh_config User".
    pub format: String,
    pub value: String,
    pub reason: String,
}

impl LineError {
    pub fn new(format: impl Into<String>, value: &str, reason: impl Into<String>) -> Self {
        LineError {
            format: format.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Refuse every control character (newline and tab included: each of these formats is
/// one record per line, and tabs separate fields in some).
pub fn no_control(format: &str, value: &str) -> Result<(), LineError> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(LineError::new(
            format,
            value,
            format!(
                "contains the control character U+{:04X}, which would end or change the line",
                u32::from(c)
            ),
        )),
        None => Ok(()),
    }
}
