//! Build on the right machine: placement (local, a builder, or the target), the machines
//! list for Nix's remote builders, the build mechanisms, and `hearth builders check`.

pub mod check;
pub mod exec;
pub mod localnix;
pub mod machines;
pub mod mechanism;
pub mod placement;
pub mod sshenv;

pub use localnix::LocalNix;
pub use placement::{builder_role, place, Placement, PlacementError, Where};

use anyhow::Result;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct BuildersArgs {
    #[command(subcommand)]
    pub command: BuildersCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum BuildersCommand {
    /// Show where each host's system would be built, and why.
    Plan {
        /// Host names (default: every host).
        hosts: Vec<String>,
        /// Pretend the local Nix builds only this system (default: ask the local Nix).
        #[arg(long, env = "HEARTH_LOCAL_SYSTEM", value_name = "SYSTEM")]
        local_system: Option<String>,
    },
    /// Print the machines list (the `builders` setting / /etc/nix/machines) for the inventory's builders.
    Machines {
        /// Only builders that build this system.
        #[arg(long, value_name = "SYSTEM")]
        system: Option<String>,
        /// SSH private key the Nix daemon (root) uses to log in to builders.
        #[arg(long, value_name = "FILE")]
        ssh_key: Option<PathBuf>,
    },
    /// Build one host's system where its placement says (without activating it).
    Build {
        host: String,
        /// Flake to build from (default: the repository root).
        #[arg(long, env = "HEARTH_FLAKE", value_name = "REF")]
        flake: Option<String>,
        /// For a builder placement: `target` = the builder copies straight to the target;
        /// `deployer` = the output comes back to this machine.
        #[arg(long, value_enum, default_value = "target")]
        via: Via,
        /// SSH private key this machine logs in with.
        #[arg(long, env = "HEARTH_SSH_IDENTITY", value_name = "FILE")]
        identity: Option<PathBuf>,
        /// Identity file ON THE BUILDER for its login to the target.
        #[arg(long, value_name = "PATH")]
        builder_identity: Option<String>,
        /// Forward your SSH agent to the builder for its login to the target.
        #[arg(long)]
        forward_agent: bool,
    },
    /// Log in to each builder: Nix version, systems, trust, free disk, and a real build per claimed system.
    Check {
        /// Builder names (default: every host with the `builder` role).
        builders: Vec<String>,
        /// SSH private key to log in with (default: your SSH agent / default keys).
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
        /// First make each builder's signing key (on the builder, as root; kept if it
        /// exists) and record its public half in keys/builder-<name>.pub; then `hearth gen`.
        #[arg(long)]
        setup: bool,
    },
}

pub fn run(root: &Path, args: BuildersArgs) -> Result<u8> {
    match args.command {
        BuildersCommand::Plan {
            hosts,
            local_system,
        } => run_plan(root, &hosts, local_system.as_deref()),
        BuildersCommand::Machines { system, ssh_key } => run_machines(root, system, ssh_key),
        BuildersCommand::Build {
            host,
            flake,
            via,
            identity,
            builder_identity,
            forward_agent,
        } => {
            let opts = exec::ExecOptions {
                route: match via {
                    Via::Target => exec::Route::BuilderToTarget,
                    Via::Deployer => exec::Route::ThroughDeployer,
                },
                builder_identity,
                forward_agent,
                local_identity: identity,
            };
            run_build(root, &host, flake, opts)
        }
        BuildersCommand::Check {
            builders,
            identity,
            setup,
        } => run_check(root, &builders, identity, setup),
    }
}

/// `builders plan`: where each host's system would be built, and why.
fn run_plan(root: &Path, hosts: &[String], local_system: Option<&str>) -> Result<u8> {
    let inv = crate::inventory::load(root)?;
    let local = match local_system {
        Some(s) => LocalNix::native(s),
        None => LocalNix::detect()?,
    };
    let mut failed = false;
    for name in select(&inv, hosts)? {
        match place(&inv.hosts[&name], &inv, &local) {
            Ok(p) => println!("{name}: {} ({})", describe(&p.location), p.reason),
            Err(e) => {
                failed = true;
                eprintln!("{name}: error: {e}");
            }
        }
    }
    Ok(u8::from(failed))
}

/// `builders machines`: the machines list for Nix's `builders` setting.
fn run_machines(root: &Path, system: Option<String>, ssh_key: Option<PathBuf>) -> Result<u8> {
    let inv = crate::inventory::load(root)?;
    let ms = machines::machines(&inv, system.as_deref(), ssh_key.as_deref());
    if ms.is_empty() {
        anyhow::bail!(
            "no host has the `builder` role{}",
            system.map(|s| format!(" for {s}")).unwrap_or_default()
        );
    }
    for m in &ms {
        if m.port != 22 {
            eprintln!("note: {} listens on port {}: a machines-list URI can't say so before Nix 2.31; add `Host {}` with `Port {}` to root's ~/.ssh/config", m.name, m.port, m.uri.rsplit('@').next().unwrap_or(""), m.port);
        }
    }
    print!("{}", machines::machines_file(&ms));
    Ok(0)
}

/// `builders build`: build one host's system where the placement says.
fn run_build(
    root: &Path,
    host: &str,
    flake: Option<String>,
    opts: exec::ExecOptions,
) -> Result<u8> {
    let inv = crate::inventory::load(root)?;
    let h = inv
        .host(host)
        .ok_or_else(|| anyhow::anyhow!("no host `{host}` in {}", root.display()))?;
    let local = LocalNix::detect()?;
    let p = place(h, &inv, &local)?;
    println!("{host}: {} ({})", describe(&p.location), p.reason);
    let flake = match flake {
        Some(f) => f,
        None => crate::nix::flake::repo_flake_ref(root)?,
    };
    let installable = crate::nix::build::toplevel_attr(&flake, host);
    let ssh = sshenv::SshEnv::new(&inv, opts.local_identity.as_deref())?;
    let runner = mechanism::Runner {
        version: local.nix_version(),
        ssh: &ssh,
    };
    let built = if p.location == Where::Local {
        exec::Built::Local {
            out: runner.build_local_with_builders(&installable, &[], false)?,
        }
    } else {
        exec::build_placed(&inv, &runner, h, &p.location, &installable, &opts)?
    };
    match &built {
        exec::Built::Local { out } => println!("{out} (in this machine's store)"),
        exec::Built::OnTarget { out } => println!("{out} (in {host}'s store)"),
    }
    Ok(0)
}

/// `builders check`: what each builder really offers, and the traps that bite.
fn run_check(
    root: &Path,
    builders: &[String],
    identity: Option<PathBuf>,
    setup: bool,
) -> Result<u8> {
    let inv = crate::inventory::load(root)?;
    let local = LocalNix::detect()?;
    let ssh = sshenv::SshEnv::new(&inv, identity.as_deref())?;
    if setup {
        setup_signing(root, &inv, builders, &ssh)?;
    }
    let runner = mechanism::Runner {
        version: local.nix_version(),
        ssh: &ssh,
    };
    let reports = check::check_all(&inv, builders, &ssh, &runner, &local)?;
    if reports.is_empty() {
        anyhow::bail!("no host has the `builder` role");
    }
    let mut problems = 0;
    for r in &reports {
        print!("{}", r.render());
        problems += r.problems().len();
    }
    println!("\n{}", check::TRAPS);
    if problems > 0 {
        eprintln!("{problems} problem(s) found");
    }
    Ok(u8::from(problems > 0))
}

/// `builders check --setup`: make each builder's signing key on the builder (as root) and
/// record the public half in the repository, where `hearth gen` picks it up.
fn setup_signing(
    root: &Path,
    inv: &crate::inventory::Inventory,
    names: &[String],
    ssh: &sshenv::SshEnv,
) -> Result<()> {
    use anyhow::Context;
    for h in inv.hosts.values() {
        if builder_role(h).is_none() || (!names.is_empty() && !names.contains(&h.name)) {
            continue;
        }
        let script = crate::nix::sign::builder_keygen_script(&h.name);
        let user = &h.file.ssh.user;
        let cmd = if user == "root" {
            format!("sh -c {}", crate::ssh::quote(&script))
        } else {
            format!("sudo -n sh -c {}", crate::ssh::quote(&script))
        };
        let remote = exec::remote_of(h, user)?;
        let out = std::process::Command::new("ssh")
            .args(mechanism::ssh_script_args(
                &ssh.ssh_args(),
                &remote,
                false,
                &cmd,
            ))
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("starting ssh to {}", h.name))?;
        let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || !crate::nix::sign::valid_public_key(&key) {
            anyhow::bail!(
                "{}: making the builder's signing key failed: {}",
                h.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let path = root
            .join(crate::nix::sign::KEYS_DIR)
            .join(crate::nix::sign::builder_pub_file(&h.name));
        std::fs::create_dir_all(path.parent().expect("in keys/"))?;
        std::fs::write(&path, format!("{key}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "{}: signing key {key} (public half in {}); run `hearth gen` and deploy",
            h.name,
            path.display()
        );
    }
    Ok(())
}

/// Remote-build options of `hearth deploy`.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoteBuildArgs {
    /// For hosts placed on a builder: `target` = the builder copies the closure straight to
    /// the target; `deployer` = it comes back here and is pushed from here.
    #[arg(long, value_enum, default_value = "target", value_name = "ROUTE")]
    pub build_via: Via,
    /// Identity file ON THE BUILDER for its login to targets (default: its own keys, or your
    /// agent with --forward-agent).
    #[arg(long, value_name = "PATH")]
    pub builder_identity: Option<String>,
    /// Forward your SSH agent to builders so they log in to targets as you.
    #[arg(long)]
    pub forward_agent: bool,
}

impl RemoteBuildArgs {
    pub fn exec_options(&self, local_identity: Option<PathBuf>) -> exec::ExecOptions {
        exec::ExecOptions {
            route: match self.build_via {
                Via::Target => exec::Route::BuilderToTarget,
                Via::Deployer => exec::Route::ThroughDeployer,
            },
            builder_identity: self.builder_identity.clone(),
            forward_agent: self.forward_agent,
            local_identity,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Via {
    Target,
    Deployer,
}

/// Short form of a placement for plans and summaries.
pub fn describe(w: &Where) -> String {
    match w {
        Where::Local => "build locally".into(),
        Where::Builder {
            name,
            emulated: false,
        } => format!("build on {name}"),
        Where::Builder {
            name,
            emulated: true,
        } => format!("build on {name} (emulated)"),
        Where::Target => "build on the target".into(),
    }
}

fn select(inv: &crate::inventory::Inventory, names: &[String]) -> Result<Vec<String>> {
    if names.is_empty() {
        return Ok(inv.hosts.keys().cloned().collect());
    }
    for n in names {
        if !inv.hosts.contains_key(n) {
            anyhow::bail!(
                "no host `{n}`: expected one of {}",
                inv.hosts.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    Ok(names.to_vec())
}
