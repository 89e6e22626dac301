//! `hearth update` and `hearth diff`: flake.lock updates as reviewable pull-request
//! bodies, with each host's package-version diff.

use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Inputs to update (all when empty).
    pub inputs: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    pub host: String,
}

pub fn run_update(_root: &Path, _args: UpdateArgs) -> anyhow::Result<u8> {
    anyhow::bail!("hearth update is not implemented yet")
}

pub fn run_diff(_root: &Path, _args: DiffArgs) -> anyhow::Result<u8> {
    anyhow::bail!("hearth diff is not implemented yet")
}
