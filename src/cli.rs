//! Command-line definition. Each subcommand's arguments live in the module that
//! implements it, so the stages stay independent.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "hearth",
    version,
    about = "Turn a homelab's host files into NixOS, build each system on the right machine, and deploy it safely",
    after_help = "Examples:\n  hearth gen                 compile hosts/*.toml into generated/\n  hearth gen --check         fail if generated/ is stale (CI)\n  hearth show helios64       print one host with defaults applied\n  hearth deploy helios64     build, copy, activate with magic rollback\n  hearth deploy @nas --dry-run\n  hearth install nas --target root@192.0.2.7 --dry-run\n  hearth image helios64      SD image for a first boot\n  sudo hearth lab up 3       start three local test hosts\n\nExit codes: 0 success, 1 failure (invalid inventory, stale output, failed deploy), 2 usage error."
)]
pub struct Cli {
    /// Run as if started in DIR (the repository root holding hearth.toml).
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile the inventory into generated/.
    Gen(crate::compile::GenArgs),
    /// Validate the inventory without writing anything.
    Check(crate::check::CheckArgs),
    /// Print the resolved inventory (defaults applied, fleet facts derived).
    Show(crate::compile::ShowArgs),
    /// Print the JSON Schema of the host-file format.
    Schema(crate::inventory::SchemaArgs),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Local throwaway test hosts (network + mount namespaces with sshd and /nix).
    Lab(crate::lab::LabArgs),
    /// Build, push and activate hosts with magic rollback and health checks.
    Deploy(crate::deploy::DeployArgs),
    /// Roll a host back to its previous generation.
    Rollback(crate::deploy::RollbackArgs),
    /// Show each host's current generation and drift from the repository.
    Status(crate::deploy::StatusArgs),
    /// Remote builders: where each host builds, machines list, and `check`.
    Builders(crate::builders::BuildersArgs),
    /// Update flake.lock and write a pull-request body with per-host package diffs.
    Update(crate::update::UpdateArgs),
    /// Create, edit, re-key, check and list the agenix secrets the inventory declares.
    Secrets(crate::secrets::SecretsArgs),
    /// Show a host's package diff between what it runs and what the repo builds.
    Diff(crate::update::DiffArgs),
    /// First install over SSH with nixos-anywhere: host key first, disks checked, first boot verified.
    Install(crate::install::InstallArgs),
    /// Build a bootable SD image of a host (boards nixos-anywhere can't reach, e.g. the Helios64).
    Image(crate::install::ImageArgs),
}

impl Cli {
    /// The repository root: `-C DIR`, else the current directory.
    pub fn root(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| PathBuf::from("."))
    }
}
