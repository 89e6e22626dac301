//! The pinned upstream trees the evaluation tests need: nix-community/disko in HEARTH_DISKO,
//! nix-community/nixpkgs.lib in HEARTH_NIXPKGS_LIB, each defaulting to the read-only copy in
//! `<repo>/../shared/vendor/` when it exists. Without them the tests report themselves as
//! skipped, except under HEARTH_REQUIRE_EVAL=1 (set by .ci/run), where a missing tree is a
//! failure: CI must never pass an evaluation test it did not run. See docs/FLAKE.md.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The vendored tree each variable defaults to, relative to `<repo>/../shared/vendor`.
fn default_dir(var: &str) -> Option<PathBuf> {
    let name = match var {
        "HEARTH_DISKO" => "disko",
        "HEARTH_NIXPKGS_LIB" => "nixpkgs-lib",
        "HEARTH_NIXPKGS_SPARSE" => "nixpkgs-sparse",
        _ => return None,
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/vendor")
        .join(name);
    dir.is_dir().then_some(dir)
}

/// Whether a missing tree or prerequisite must fail the test instead of skipping it.
pub fn strict() -> bool {
    std::env::var("HEARTH_REQUIRE_EVAL").is_ok_and(|v| v == "1")
}

/// The checkouts named by `vars`, in order, made absolute; or why the tests cannot run.
/// Under [`strict`] the reason is a panic, so the calling test fails.
pub fn checkouts(vars: &[&str]) -> Result<Vec<PathBuf>, String> {
    let found = find(vars);
    match found {
        Err(reason) if strict() => {
            panic!("HEARTH_REQUIRE_EVAL=1 but an evaluation test cannot run: {reason}")
        }
        other => other,
    }
}

fn find(vars: &[&str]) -> Result<Vec<PathBuf>, String> {
    let mut found = Vec::new();
    for var in vars {
        let Some(dir) = std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| default_dir(var))
        else {
            return Err(format!("set {} (see docs/FLAKE.md)", vars.join(" and ")));
        };
        let marker = if *var == "HEARTH_NIXPKGS_SPARSE" {
            "MANIFEST.tsv"
        } else {
            "lib/default.nix"
        };
        if !dir.join(marker).is_file() {
            return Err(format!("{var}={} has no {marker}", dir.display()));
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
