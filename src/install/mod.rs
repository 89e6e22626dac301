//! `hearth install HOST --target …`: from an empty disk (any Linux reachable over SSH) to a
//! host that `hearth deploy` accepts, by driving nixos-anywhere with the generated disko
//! layout and a host key generated here first. Also `hearth image HOST` for the boards
//! nixos-anywhere can't reach (the Helios64). One job per file:
//! - `command`: every external command line (pure);
//! - `hostkey`: the host file edit and where the key is staged;
//! - `target`: what the target has and whether the layout may be installed on it;
//! - `plan`: the `--dry-run` text;
//! - `run`: the steps in order, with I/O.

pub mod command;
pub mod hostkey;
pub mod plan;
mod run;
pub mod target;

use crate::inventory::Host;
use clap::Args;
use std::path::PathBuf;

pub use run::{install, run_image, run_install};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
hearth install nas --target root@192.0.2.7 --dry-run   show what would be erased and built\n  \
hearth install nas --target nixos@192.0.2.7 --ssh-identity ~/.ssh/id_ed25519\n  \
hearth install nas --target root@192.0.2.7 --wipe --yes   (scripts; erases mounted disks)\n\n\
The target runs any Linux with SSH (installer ISO, rescue system). Only disks named in the\n\
host file's [disks] section are erased. See docs/INSTALL.md.")]
pub struct InstallArgs {
    /// The host to install (hosts/HOST.toml).
    pub host: String,
    /// The machine as it runs now: `[user@]ADDRESS` (default user root).
    #[arg(long, value_name = "[USER@]ADDRESS")]
    pub target: String,
    /// SSH port of the target as it runs now.
    #[arg(long, default_value_t = 22)]
    pub port: u16,
    /// Erase disks of the layout even when they hold mounted file systems.
    #[arg(long)]
    pub wipe: bool,
    /// Don't ask for confirmation (required without a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Print the plan (disks to erase, where the system builds, where the key goes); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Private key to log in with (to the target and, afterwards, to the new host).
    #[arg(long, env = "HEARTH_SSH_IDENTITY", value_name = "FILE")]
    pub ssh_identity: Option<PathBuf>,
    /// The installer command, given nixos-anywhere's arguments
    /// (default: `nix run <repo>#nixos-anywhere --`).
    #[arg(long, value_name = "CMD", env = "HEARTH_INSTALLER")]
    pub installer: Option<String>,
    /// The host's existing private host key (when the host file's `host_key` is its public
    /// half); without it a new key is generated, or the one a previous run staged is reused.
    #[arg(long, value_name = "FILE")]
    pub host_key: Option<PathBuf>,
    /// Flake to install from (default: the repository root).
    #[arg(long, env = "HEARTH_FLAKE", value_name = "REF")]
    pub flake: Option<String>,
    /// How long to wait for the first boot, in seconds.
    #[arg(long, default_value_t = 600)]
    pub boot_timeout: u64,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
hearth image helios64                  build result-helios64/sd-image/*.img.zst\n  \
hearth image helios64 --out /tmp/h64   choose the out link\n\n\
The image carries the host key that `hearth image` generates (or reuses); write it with the\n\
printed command. See docs/INSTALL.md and docs/HELIOS64.md.")]
pub struct ImageArgs {
    /// The host whose system the image boots.
    pub host: String,
    /// Out link of the build (default `result-HOST`).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Print what would be built and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Re-encrypts the secrets granted to a host for its new key
/// ([`crate::secrets::rekey_for_host`]; tests pass their own).
pub type Rekey<'a> = &'a dyn Fn(&std::path::Path, &str) -> anyhow::Result<String>;

/// What the re-key step will do, for `--dry-run`: names it, changes nothing.
pub fn report_rekey(_root: &std::path::Path, host: &str) -> anyhow::Result<String> {
    Ok(format!(
        "secrets: the secrets granted to {host} are re-encrypted to its new key (`hearth secrets rekey`)"
    ))
}

/// The by-id devices of the host's disko layout: the root disk, then every pool member.
pub fn layout_disks(host: &Host) -> Vec<String> {
    let Some(d) = &host.file.disks else {
        return Vec::new();
    };
    let mut v = vec![d.root.device.clone()];
    for p in d.pools.values() {
        for m in &p.disks {
            if !v.contains(m) {
                v.push(m.clone());
            }
        }
    }
    v
}

/// `[user@]address` → (user, address), root by default.
pub fn split_target(t: &str) -> (String, String) {
    match t.split_once('@') {
        Some((u, a)) => (u.to_string(), a.to_string()),
        None => ("root".to_string(), t.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_target_defaults_to_root() {
        assert_eq!(
            super::split_target("10.0.0.1"),
            ("root".into(), "10.0.0.1".into())
        );
        assert_eq!(super::split_target("nixos@h"), ("nixos".into(), "h".into()));
    }
}
