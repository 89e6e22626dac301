//! Compile a validated inventory into `generated/`: per-host NixOS modules, disko
//! layouts, the fleet index and agenix rules.

use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct GenArgs {
    /// Write nothing; list stale files and exit 1 if any.
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Only this host.
    pub host: Option<String>,
    /// Print JSON instead of TOML-like text.
    #[arg(long)]
    pub json: bool,
}

pub fn run_gen(_root: &Path, _args: GenArgs) -> anyhow::Result<u8> {
    anyhow::bail!("hearth gen is not implemented yet")
}

pub fn run_show(_root: &Path, _args: ShowArgs) -> anyhow::Result<u8> {
    anyhow::bail!("hearth show is not implemented yet")
}
