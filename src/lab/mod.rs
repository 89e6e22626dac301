//! `hearth lab`: throwaway test hosts on this machine (network + mount namespaces,
//! each with its own sshd and /nix).

use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Start N hosts (default 3). Idempotent.
    Up { n: Option<u32> },
    /// Stop every host and remove every trace.
    Down,
    /// Show the hosts and whether each is reachable.
    Status,
}

pub fn run(_root: &Path, _args: LabArgs) -> anyhow::Result<u8> {
    anyhow::bail!("hearth lab is not implemented yet")
}
