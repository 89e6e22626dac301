//! The SSH settings every `nix` and `ssh` child of this module uses: strict host-key checking
//! against a `known_hosts` made from the inventory, batch mode, optional identity, and ports.
//! Nix reads them from `NIX_SSHOPTS`, which it splits on whitespace: paths must not contain spaces.
//!
//! This is the `BuildHook` profile of `crate::ssh::profiles` (keyed by address, not alias:
//! the reason is there).

use crate::inventory::Inventory;
use crate::lines::LineError;
use crate::ssh::profiles;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// `known_hosts` lines for every host with a `host_key` (`[addr]:port` when the port isn't 22).
pub fn known_hosts(inv: &Inventory) -> Result<String, LineError> {
    let mut out = String::new();
    for h in inv.hosts.values() {
        if let Some(key) = &h.file.host_key {
            out.push_str(&known_hosts_line(
                &h.file.ssh.address,
                h.file.ssh.port,
                key,
            )?);
            out.push('\n');
        }
    }
    Ok(out)
}

pub use crate::ssh::profiles::build_hook_known_hosts_line as known_hosts_line;

/// The [`Profile::BuildHook`](crate::ssh::Profile::BuildHook) ssh_config for every host
/// of the inventory.
pub fn ssh_config(
    inv: &Inventory,
    known_hosts: &Path,
    identity: Option<&Path>,
) -> Result<String, LineError> {
    let ports: Vec<(&str, u16)> = inv
        .hosts
        .values()
        .map(|h| (h.file.ssh.address.as_str(), h.file.ssh.port))
        .collect();
    profiles::build_hook_config(&ports, known_hosts, identity)
}

/// Files written for one run; removed when dropped.
#[derive(Debug)]
pub struct SshEnv {
    dir: tempfile::TempDir,
    pub config: PathBuf,
    pub known_hosts: PathBuf,
    pub identity: Option<PathBuf>,
}

impl SshEnv {
    pub fn new(inv: &Inventory, identity: Option<&Path>) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("hearth-ssh-")
            .tempdir()
            .context("creating a temporary directory for ssh settings")?;
        let known = dir.path().join("known_hosts");
        let config = dir.path().join("ssh_config");
        std::fs::write(&known, known_hosts(inv)?).context("writing known_hosts")?;
        std::fs::write(&config, ssh_config(inv, &known, identity)?)
            .context("writing ssh_config")?;
        Ok(Self {
            dir,
            config,
            known_hosts: known,
            identity: identity.map(Path::to_path_buf),
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Arguments for `ssh`.
    pub fn ssh_args(&self) -> Vec<String> {
        vec!["-F".into(), self.config.display().to_string()]
    }

    /// The value of `NIX_SSHOPTS`.
    pub fn nix_sshopts(&self) -> String {
        profiles::nix_sshopts(&self.config, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::placement::tests::{host, inventory};

    #[test]
    fn known_hosts_brackets_odd_ports_and_drops_comments() {
        assert_eq!(
            known_hosts_line("10.0.0.1", 22, "ssh-ed25519 AAAA c").unwrap(),
            "10.0.0.1 ssh-ed25519 AAAA"
        );
        assert_eq!(
            known_hosts_line("b", 2222, "ssh-ed25519 AAAA").unwrap(),
            "[b]:2222 ssh-ed25519 AAAA"
        );
        let inv = inventory(vec![
            host("a", "host_key = \"ssh-ed25519 K1\"\n"),
            host("nokey", ""),
        ]);
        assert_eq!(known_hosts(&inv).unwrap(), "10.0.0.1 ssh-ed25519 K1\n");
        assert!(
            known_hosts_line("b", 22, "ssh-ed25519 A\n@cert-authority * ssh-ed25519 B").is_err()
        );
    }

    #[test]
    fn config_is_strict_and_sets_ports() {
        let mut h = host("odd", "");
        h.file.ssh.port = 2222;
        let inv = inventory(vec![h, host("a", "")]);
        let c = ssh_config(&inv, Path::new("/k"), Some(Path::new("/id"))).unwrap();
        assert!(c.contains("\nHost 10.0.0.3\n  Port 2222\nHost *\n"), "{c}");
        assert!(!c.contains("HostKeyAlias"), "{c}");
        for want in [
            "UserKnownHostsFile /k",
            "StrictHostKeyChecking yes",
            "BatchMode yes",
            "IdentityFile /id",
        ] {
            assert!(c.contains(want), "{want} missing from\n{c}");
        }
    }
}
