//! Build on the right machine: placement (local, a builder, or the target), the machines
//! list for Nix's remote builders, the build mechanisms, and `hearth builders check`.

pub mod localnix;
pub mod machines;
pub mod mechanism;
pub mod placement;
pub mod sshenv;

pub use localnix::LocalNix;
pub use placement::{place, Placement, PlacementError, Where};

use anyhow::Result;
use std::path::Path;

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
        #[arg(long, value_name = "SYSTEM")]
        local_system: Option<String>,
    },
}

pub fn run(root: &Path, args: BuildersArgs) -> Result<u8> {
    match args.command {
        BuildersCommand::Plan {
            hosts,
            local_system,
        } => {
            let inv = crate::inventory::load(root)?;
            let local = match local_system {
                Some(s) => LocalNix::native(&s),
                None => LocalNix::detect()?,
            };
            let mut failed = false;
            for name in select(&inv, &hosts)? {
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
    }
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
