//! Narrow wrappers around the `nix` CLI. Command lines come from pure functions
//! (unit-tested); running them goes through `crate::process`.
//!
//! Tests run Nix 2.8 (Debian); users run 2.18+. Anything whose shape differs by
//! version branches on [`NixVersion`] or accepts both shapes.

pub mod build;
pub mod closure;
pub mod copy;
pub mod flake;
pub mod pathinfo;
pub mod sign;
pub mod version;

pub use version::NixVersion;

use std::process::Command;

/// Passed on every `nix` call hearth makes. A stock install (Debian's 2.8, or any Nix whose
/// config does not enable them) refuses the new CLI and flakes otherwise; `extra-` adds to
/// whatever the user's config already enables instead of replacing it.
pub const EXPERIMENTAL_FEATURE_ARGS: [&str; 2] =
    ["--extra-experimental-features", "nix-command flakes"];

/// The same, as the start of a POSIX-sh command line for scripts hearth runs on other machines.
pub const NIX_SH: &str = "nix --extra-experimental-features 'nix-command flakes'";

/// `nix` with the experimental features hearth needs: the one way hearth starts `nix`.
pub fn command() -> Command {
    let mut c = Command::new("nix");
    c.args(EXPERIMENTAL_FEATURE_ARGS);
    c
}

/// [`command`] for async callers.
pub fn tokio_command() -> tokio::process::Command {
    tokio::process::Command::from(command())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nix_call_enables_the_features_hearth_needs() {
        let c = command();
        assert_eq!(c.get_program(), "nix");
        let args: Vec<_> = c.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            ["--extra-experimental-features", "nix-command flakes"]
        );
        assert!(NIX_SH.starts_with("nix --extra-experimental-features 'nix-command flakes'"));
    }

    /// Guard against a new call site that starts `nix` by hand and forgets the features.
    #[test]
    fn no_other_module_starts_nix_by_hand() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        for e in walkdir::WalkDir::new(&src) {
            let e = e.unwrap();
            if e.path().extension().is_none_or(|x| x != "rs") || e.path().ends_with("nix/mod.rs") {
                continue;
            }
            let text = std::fs::read_to_string(e.path()).unwrap();
            for (n, line) in text.lines().enumerate() {
                if line.contains("Command::new(\"nix\")") {
                    offenders.push(format!("{}:{}", e.path().display(), n + 1));
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "use crate::nix::command(): {offenders:?}"
        );
    }
}
