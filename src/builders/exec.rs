//! Carry out a placement for one host: the entry point deploy's build step calls for hosts
//! that don't build locally.

use super::machines::machine;
use super::mechanism::{BuilderSsh, Remote, Runner};
use super::placement::{builder_role, Where};
use super::sshenv::known_hosts_line;
use crate::inventory::{Host, Inventory};
use anyhow::{anyhow, bail, Context, Result};

/// How a builder's result reaches the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Route {
    /// The builder copies straight to the target (the default: nothing passes through the
    /// deployer, which may be a laptop on Wi-Fi).
    #[default]
    BuilderToTarget,
    /// The deployer's Nix builds through the builder (`--builders`); the output comes back
    /// to the deployer and deploy pushes it as for a local build.
    ThroughDeployer,
}

/// Where the built toplevel is afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Built {
    /// In the deployer's store: deploy pushes it as usual.
    Local { out: String },
    /// Already in the target's store: deploy skips the push and activates.
    OnTarget { out: String },
}

impl Built {
    pub fn out(&self) -> &str {
        match self {
            Built::Local { out } | Built::OnTarget { out } => out,
        }
    }
}

/// Options that are not in the inventory.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub route: Route,
    /// Identity file that exists on the builder, for its login to the target.
    pub builder_identity: Option<String>,
    /// Forward the deployer's SSH agent to the builder instead.
    pub forward_agent: bool,
    /// Identity the local Nix uses for `--builders` (ThroughDeployer).
    pub local_identity: Option<std::path::PathBuf>,
}

pub fn remote_of(host: &Host, user: &str) -> Result<Remote> {
    Remote::new(&host.name, user, &host.file.ssh.address)
}

/// Build `installable` (the host's toplevel) where `location` says.
pub fn build_placed(
    inv: &Inventory,
    runner: &Runner,
    host: &Host,
    location: &Where,
    installable: &str,
    opts: &ExecOptions,
) -> Result<Built> {
    let target = remote_of(host, &host.file.ssh.user)?;
    match location {
        Where::Local => bail!(
            "{}: a local build belongs to deploy's single `nix build`",
            host.name
        ),
        Where::Target => {
            let drv = runner.instantiate(installable)?;
            let out = runner.realise_on(&target, &drv)?;
            Ok(Built::OnTarget { out })
        }
        Where::Builder { name, .. } => {
            let bhost = inv
                .host(name)
                .ok_or_else(|| anyhow!("builder {name} is not in the inventory"))?;
            let role =
                builder_role(bhost).ok_or_else(|| anyhow!("{name} lacks the `builder` role"))?;
            match opts.route {
                Route::ThroughDeployer => {
                    // The machines line carries `user@address`: checked like any destination.
                    remote_of(bhost, &role.user)?;
                    let m = machine(bhost, opts.local_identity.as_deref())
                        .ok_or_else(|| anyhow!("{name} lacks the `builder` role"))?;
                    let out = runner.build_local_with_builders(installable, &[m], true)?;
                    Ok(Built::Local { out })
                }
                Route::BuilderToTarget => {
                    let builder = remote_of(bhost, &role.user)?;
                    builder_to_target(inv, runner, host, name, &builder, installable, opts)
                }
            }
        }
    }
}

/// Build on builder `name`, then copy the result from the builder straight to the target
/// (signed for the target's push user when the builder has a signing key).
fn builder_to_target(
    inv: &Inventory,
    runner: &Runner,
    host: &Host,
    name: &str,
    builder: &Remote,
    installable: &str,
    opts: &ExecOptions,
) -> Result<Built> {
    let key = host.file.host_key.as_deref().with_context(|| {
        format!(
            "{}: builder {name} must verify {}'s host key to copy there; set `host_key` in {}",
            host.name,
            host.name,
            host.source.display()
        )
    })?;
    let drv = runner.instantiate(installable)?;
    let out = runner.realise_on(builder, &drv)?;
    // A builder with a signing key signs what it builds and pushes as the
    // target's non-trusted push user, whose Nix checks the signatures.
    let signed = crate::nix::sign::Trust::builder_signs(&inv.root, name);
    let user = if signed {
        crate::nix::sign::PUSH_USER
    } else {
        host.file.ssh.user.as_str()
    };
    let target = remote_of(host, user)?;
    let how = BuilderSsh {
        signed,
        known_hosts_line: known_hosts_line(&host.file.ssh.address, host.file.ssh.port, key)
            .with_context(|| format!("{}: `host_key`", host.source.display()))?,
        identity: opts.builder_identity.clone(),
        forward_agent: opts.forward_agent,
        port: host.file.ssh.port,
        substitute_on_destination: inv.deploy_policy(host).substitute_on_destination,
    };
    runner.copy_builder_to_target(builder, &target, std::slice::from_ref(&out), &how)?;
    Ok(Built::OnTarget { out })
}
