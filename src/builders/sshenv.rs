//! The SSH settings every `nix` and `ssh` child of this module uses: strict host-key checking
//! against a `known_hosts` made from the inventory, batch mode, optional identity, and ports.
//! Nix reads them from `NIX_SSHOPTS`, which it splits on whitespace: paths must not contain spaces.
//!
//! Unlike `crate::ssh::config` this keys hosts by address, not by alias with `HostKeyAlias`:
//! Nix's build hook checks a builder against the host key in its machines line by address,
//! and an alias would send that lookup to a name the hook's known_hosts doesn't have.

use crate::inventory::Inventory;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// `known_hosts` lines for every host with a `host_key` (`[addr]:port` when the port isn't 22).
pub fn known_hosts(inv: &Inventory) -> String {
    let mut out = String::new();
    for h in inv.hosts.values() {
        if let Some(key) = &h.file.host_key {
            out.push_str(&known_hosts_line(&h.file.ssh.address, h.file.ssh.port, key));
            out.push('\n');
        }
    }
    out
}

pub fn known_hosts_line(address: &str, port: u16, key: &str) -> String {
    let key: Vec<&str> = key.split_whitespace().take(2).collect();
    if port == 22 {
        format!("{address} {}", key.join(" "))
    } else {
        format!("[{address}]:{port} {}", key.join(" "))
    }
}

/// An ssh_config: strict checking for everything, plus a `Port` per host that needs one
/// (a store URI can't carry a port before Nix 2.31).
pub fn ssh_config(inv: &Inventory, known_hosts: &Path, identity: Option<&Path>) -> String {
    let mut out = String::new();
    for h in inv.hosts.values().filter(|h| h.file.ssh.port != 22) {
        out.push_str(&format!(
            "Host {}\n  Port {}\n",
            h.file.ssh.address, h.file.ssh.port
        ));
    }
    out.push_str("Host *\n");
    out.push_str(&format!("  UserKnownHostsFile {}\n", known_hosts.display()));
    out.push_str("  StrictHostKeyChecking yes\n  BatchMode yes\n");
    out.push_str("  ConnectTimeout 10\n  ServerAliveInterval 2\n  ServerAliveCountMax 3\n");
    if let Some(id) = identity {
        out.push_str(&format!(
            "  IdentityFile {}\n  IdentitiesOnly yes\n",
            id.display()
        ));
    }
    out
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
        std::fs::write(&known, known_hosts(inv)).context("writing known_hosts")?;
        std::fs::write(&config, ssh_config(inv, &known, identity)).context("writing ssh_config")?;
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
        format!("-F {}", self.config.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::placement::tests::{host, inventory};

    #[test]
    fn known_hosts_brackets_odd_ports_and_drops_comments() {
        assert_eq!(
            known_hosts_line("10.0.0.1", 22, "ssh-ed25519 AAAA c"),
            "10.0.0.1 ssh-ed25519 AAAA"
        );
        assert_eq!(
            known_hosts_line("b", 2222, "ssh-ed25519 AAAA"),
            "[b]:2222 ssh-ed25519 AAAA"
        );
        let inv = inventory(vec![
            host("a", "host_key = \"ssh-ed25519 K1\"\n"),
            host("nokey", ""),
        ]);
        assert_eq!(known_hosts(&inv), "10.0.0.1 ssh-ed25519 K1\n");
    }

    #[test]
    fn config_is_strict_and_sets_ports() {
        let mut h = host("odd", "");
        h.file.ssh.port = 2222;
        let inv = inventory(vec![h, host("a", "")]);
        let c = ssh_config(&inv, Path::new("/k"), Some(Path::new("/id")));
        assert!(c.starts_with("Host 10.0.0.3\n  Port 2222\nHost *\n"), "{c}");
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
