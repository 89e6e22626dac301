//! How the deployer reaches a host, as the inventory says: the one place an inventory host
//! becomes an [`SshHost`] (deploy, status, diff and update all go through it).

use super::Inventory;
use crate::ssh::SshHost;
use anyhow::{Context, Result};

impl Inventory {
    /// `name`'s SSH target: address, port, user and pinned host key.
    pub fn ssh_host(&self, name: &str) -> Result<SshHost> {
        let h = self
            .host(name)
            .with_context(|| format!("unknown host `{name}`"))?;
        Ok(SshHost {
            alias: name.to_string(),
            address: h.file.ssh.address.clone(),
            port: h.file.ssh.port,
            user: h.file.ssh.user.clone(),
            host_key: h.file.host_key.clone().unwrap_or_default(),
        })
    }
}
