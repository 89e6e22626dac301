//! `hearth deploy`: select → eval/build → push → activate (magic rollback) → health → report.

use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// Hosts: names, `@tag`, or globs.
    pub hosts: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    pub host: String,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    pub hosts: Vec<String>,
}

pub fn run_deploy(_root: &Path, _args: DeployArgs) -> anyhow::Result<u8> {
    anyhow::bail!("hearth deploy is not implemented yet")
}

pub fn run_rollback(_root: &Path, _args: RollbackArgs) -> anyhow::Result<u8> {
    anyhow::bail!("hearth rollback is not implemented yet")
}

pub fn run_status(_root: &Path, _args: StatusArgs) -> anyhow::Result<u8> {
    anyhow::bail!("hearth status is not implemented yet")
}
