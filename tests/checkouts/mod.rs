//! The fetched checkouts the evaluation tests need (nix-community/disko in HEARTH_DISKO,
//! nix-community/nixpkgs.lib in HEARTH_NIXPKGS_LIB). Without them the tests report
//! themselves as skipped; see docs/FLAKE.md.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The checkouts named by `vars`, in order, made absolute; or why the tests cannot run.
pub fn checkouts(vars: &[&str]) -> Result<Vec<PathBuf>, String> {
    let dirs: Vec<Option<PathBuf>> = vars
        .iter()
        .map(|v| std::env::var_os(v).map(PathBuf::from))
        .collect();
    if dirs.iter().any(Option::is_none) {
        return Err(format!("set {}", vars.join(" and ")));
    }
    let mut found = Vec::new();
    for (var, dir) in vars.iter().zip(dirs.into_iter().flatten()) {
        if !dir.join("lib/default.nix").is_file() {
            return Err(format!("{var}={} has no lib/default.nix", dir.display()));
        }
        found.push(std::fs::canonicalize(&dir).map_err(|e| format!("{var}: {e}"))?);
    }
    if Command::new("nix-instantiate")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err("nix-instantiate is not installed".into());
    }
    Ok(found)
}
