//! The deploy plan: for every selected host, where its system is built, where the closure
//! is copied from and to, and what activates. `--dry-run` prints exactly this.

use crate::events::PlannedHost;
use crate::inventory::{EffectiveDeploy, Inventory};
use crate::ssh::SshHost;
use anyhow::{Context, Result};

use super::supervisor::Mode;

/// Where a host's system is built, decided by [`crate::builders::place`]; the build step
/// groups hosts by placement, and the push step skips a closure the target already has
/// (which is where builder-to-target and on-target builds leave it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildPlacement {
    /// The deployer's own Nix, in one `nix build` for all such hosts.
    Local,
    /// A builder host; by default it copies the result straight to the target.
    Builder { name: String, emulated: bool },
    /// The target builds its own system.
    Target,
}

impl BuildPlacement {
    /// Where the built closure lives afterwards, for the plan (`None` = the local store).
    pub fn source_store(&self) -> Option<String> {
        match self {
            BuildPlacement::Local => None,
            BuildPlacement::Builder { name, .. } => Some(format!("builder {name}")),
            BuildPlacement::Target => Some("the target's own store".into()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            BuildPlacement::Local => "local".to_string(),
            BuildPlacement::Builder {
                name,
                emulated: false,
            } => format!("on builder {name}"),
            BuildPlacement::Builder {
                name,
                emulated: true,
            } => {
                format!("on builder {name} (emulated)")
            }
            BuildPlacement::Target => "on the target".to_string(),
        }
    }
}

/// Decide where a host builds, and why (issue 5: `auto` = local if this machine's Nix can,
/// else the best builder that lists the system, else the target).
pub fn place(
    inv: &Inventory,
    host: &str,
    local: &crate::builders::LocalNix,
) -> Result<(BuildPlacement, String)> {
    let h = inv
        .host(host)
        .with_context(|| format!("unknown host `{host}`"))?;
    let p = crate::builders::place(h, inv, local)?;
    let placement = match p.location {
        crate::builders::Where::Local => BuildPlacement::Local,
        crate::builders::Where::Builder { name, emulated } => {
            BuildPlacement::Builder { name, emulated }
        }
        crate::builders::Where::Target => BuildPlacement::Target,
    };
    Ok((placement, p.reason))
}

/// What this machine's Nix builds (`HEARTH_LOCAL_SYSTEM` pretends it builds only that system);
/// without a working `nix`, assume its own platform only.
pub fn local_nix() -> crate::builders::LocalNix {
    if let Ok(s) = std::env::var("HEARTH_LOCAL_SYSTEM") {
        return crate::builders::LocalNix::native(&s);
    }
    crate::builders::LocalNix::detect().unwrap_or_else(|_| {
        crate::builders::LocalNix::native(&format!(
            "{}-{}",
            std::env::consts::ARCH,
            std::env::consts::OS
        ))
    })
}

#[derive(Debug, Clone)]
pub struct HostPlan {
    pub name: String,
    pub system: String,
    pub placement: BuildPlacement,
    /// Why it builds there (shown by `--dry-run`).
    pub placement_reason: String,
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
    /// How builder and target builds run (routes, identities); set by the caller.
    pub remote_build: crate::builders::exec::ExecOptions,
    /// This machine's Nix as read for placement; the build step reuses it.
    pub local: crate::builders::LocalNix,
    /// Fan-out: hosts of a batch pull shared paths from a peer (set by the caller when the
    /// fleet has a signing key and `--no-fan-out` is not given).
    pub fan_out: bool,
    /// Hosts with a peer key in the repository (`keys/peer-<host>.pub`): only they pull.
    pub peer_keys: std::collections::BTreeSet<String>,
}

impl Plan {
    pub fn host(&self, name: &str) -> &HostPlan {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .expect("host in plan")
    }

    /// Whether the deployer pushes `h`'s closure from its own store (so fan-out can apply).
    fn pushed_from_here(&self, h: &HostPlan) -> bool {
        match h.placement {
            BuildPlacement::Local => true,
            BuildPlacement::Builder { .. } => {
                self.remote_build.route == crate::builders::exec::Route::ThroughDeployer
            }
            BuildPlacement::Target => false,
        }
    }

    /// Fan-out: the peer each host pulls shared paths from (the tree of its batch).
    pub fn peers(&self) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        if !self.fan_out {
            return out;
        }
        for batch in &self.batches {
            let hosts: Vec<String> = batch
                .iter()
                .filter(|h| self.pushed_from_here(self.host(h)))
                .cloned()
                .collect();
            if hosts.len() < 2 {
                continue;
            }
            for (h, p) in super::fanout::tree(&hosts) {
                if let Some(p) = p.filter(|_| self.peer_keys.contains(&h)) {
                    out.insert(h, p);
                }
            }
        }
        out
    }

    /// The plan as events (what `--dry-run` and `--json` print).
    pub fn describe(&self) -> Vec<PlannedHost> {
        let peers = self.peers();
        self.hosts
            .iter()
            .map(|h| {
                let through_deployer = matches!(h.placement, BuildPlacement::Builder { .. })
                    && self.remote_build.route == crate::builders::exec::Route::ThroughDeployer;
                let from = match h.placement.source_store() {
                    Some(_) if through_deployer => "local store".to_string(),
                    Some(s) => format!("{s} directly (not through this machine)"),
                    None => "local store".into(),
                };
                let copy = if h.placement == BuildPlacement::Target {
                    "nothing to copy: built in the target's own store".to_string()
                } else {
                    let peer = match peers.get(&h.name) {
                        Some(p) => format!(
                            "paths shared with {p} from peer {p} over the LAN (signatures checked; from this machine if {p} fails or this machine's link proves LAN-fast), the rest: "
                        ),
                        None => String::new(),
                    };
                    format!(
                        "{peer}{from} → ssh-ng://{}@{}:{}{}",
                        h.ssh.user,
                        h.ssh.address,
                        h.ssh.port,
                        if h.policy.substitute_on_destination {
                            " (target may substitute)"
                        } else {
                            ""
                        }
                    )
                };
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
                    build: if through_deployer {
                        format!(
                            "{}, output back to this machine ({})",
                            h.placement.describe(),
                            h.placement_reason
                        )
                    } else {
                        format!("{} ({})", h.placement.describe(), h.placement_reason)
                    },
                    copy,
                    activate,
                    batch: h.batch,
                }
            })
            .collect()
    }
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
    let local = local_nix();
    let hosts = selected
        .iter()
        .map(|name| {
            let h = inv
                .host(name)
                .with_context(|| format!("unknown host `{name}`"))?;
            let (placement, placement_reason) = place(inv, name, &local)?;
            Ok(HostPlan {
                name: name.clone(),
                system: h.file.system.to_string(),
                placement,
                placement_reason,
                ssh: inv.ssh_host(name)?,
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
        remote_build: Default::default(),
        local,
        fan_out: false,
        peer_keys: Default::default(),
    })
}

/// Human-readable plan for `--dry-run`.
pub fn render(plan: &Plan) -> String {
    let mut s = format!(
        "Plan ({} host(s), flake {}):\n",
        plan.hosts.len(),
        plan.flake
    );
    let peers = plan.peers();
    if !peers.is_empty() {
        let pairs: Vec<String> = peers.iter().map(|(h, p)| format!("{p} → {h}")).collect();
        s.push_str(&format!(
            "Fan-out (hosts pull shared paths from a peer; --no-fan-out to turn off): {}\n",
            pairs.join(", ")
        ));
    }
    for p in plan.describe() {
        s.push_str(&format!(
            "  {} [{}] batch {}\n    build:    {}\n    copy:     {}\n    activate: {}\n",
            p.host, p.system, p.batch, p.build, p.copy, p.activate
        ));
    }
    s.push_str("Nothing was changed (--dry-run).\n");
    s
}
