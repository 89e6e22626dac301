//! The deploy plan: for every selected host, where its system is built, where the closure
//! is copied from and to, and what activates. `--dry-run` prints exactly this.

use crate::events::PlannedHost;
use crate::inventory::{EffectiveDeploy, Inventory};
use crate::ssh::SshHost;
use anyhow::{Context, Result};

use super::supervisor::Mode;

/// Where a host's system is built. The placement decision (issue 5) picks one per host;
/// the build step groups hosts by placement, and the push step copies from where the
/// closure ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildPlacement {
    /// The deployer's own Nix, in one `nix build` for all such hosts.
    Local,
}

impl BuildPlacement {
    /// Where the built closure lives afterwards, as a store reference for `nix copy --from`
    /// (`None` = the local store).
    pub fn source_store(&self) -> Option<String> {
        match self {
            BuildPlacement::Local => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            BuildPlacement::Local => "local".to_string(),
        }
    }
}

/// Decide where a host builds. Today everything builds locally; issue 5 replaces this
/// body with the `auto` policy (local if it can, else a builder, else the target).
pub fn place(_inv: &Inventory, _host: &str) -> BuildPlacement {
    BuildPlacement::Local
}

#[derive(Debug, Clone)]
pub struct HostPlan {
    pub name: String,
    pub system: String,
    pub placement: BuildPlacement,
    pub ssh: SshHost,
    pub policy: EffectiveDeploy,
    pub batch: usize,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub flake: String,
    pub mode: Mode,
    pub hosts: Vec<HostPlan>,
    pub batches: Vec<Vec<String>>,
}

impl Plan {
    pub fn host(&self, name: &str) -> &HostPlan {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .expect("host in plan")
    }

    /// The plan as events (what `--dry-run` and `--json` print).
    pub fn describe(&self) -> Vec<PlannedHost> {
        self.hosts
            .iter()
            .map(|h| {
                let from = h
                    .placement
                    .source_store()
                    .unwrap_or_else(|| "local store".into());
                let copy = format!(
                    "{from} → ssh-ng://{}@{}:{}{}",
                    h.ssh.user,
                    h.ssh.address,
                    h.ssh.port,
                    if h.policy.substitute_on_destination {
                        " (target may substitute)"
                    } else {
                        ""
                    }
                );
                let activate = match self.mode {
                    Mode::DryActivate => "switch-to-configuration dry-activate (no changes)".into(),
                    m => format!(
                        "switch-to-configuration {}{}",
                        m.as_str(),
                        if h.policy.magic_rollback {
                            format!(
                                ", magic rollback after {}s without confirmation",
                                h.policy.confirm_timeout
                            )
                        } else {
                            ", no magic rollback".into()
                        }
                    ),
                };
                PlannedHost {
                    host: h.name.clone(),
                    system: h.system.clone(),
                    build: h.placement.describe(),
                    copy,
                    activate,
                    batch: h.batch,
                }
            })
            .collect()
    }
}

/// Resolve one inventory host into its SSH target.
pub fn ssh_host(inv: &Inventory, name: &str) -> Result<SshHost> {
    let h = inv
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

pub fn make_plan(
    inv: &Inventory,
    selected: &[String],
    flake: String,
    mode: Mode,
    batch_size: usize,
) -> Result<Plan> {
    let batches = super::select::batches(selected, batch_size);
    let batch_of = super::select::batch_of(&batches);
    let hosts = selected
        .iter()
        .map(|name| {
            let h = inv
                .host(name)
                .with_context(|| format!("unknown host `{name}`"))?;
            Ok(HostPlan {
                name: name.clone(),
                system: h.file.system.to_string(),
                placement: place(inv, name),
                ssh: ssh_host(inv, name)?,
                policy: inv.deploy_policy(h),
                batch: batch_of[name],
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Plan {
        flake,
        mode,
        hosts,
        batches,
    })
}

/// Human-readable plan for `--dry-run`.
pub fn render(plan: &Plan) -> String {
    let mut s = format!(
        "Plan ({} host(s), flake {}):\n",
        plan.hosts.len(),
        plan.flake
    );
    for p in plan.describe() {
        s.push_str(&format!(
            "  {} [{}] batch {}\n    build:    {}\n    copy:     {}\n    activate: {}\n",
            p.host, p.system, p.batch, p.build, p.copy, p.activate
        ));
    }
    s.push_str("Nothing was changed (--dry-run).\n");
    s
}
