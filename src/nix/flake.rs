//! Flake commands `hearth update` needs: update the lock, list hosts, build a host's
//! toplevel. Argument lists come from pure functions; the runners use `crate::process`.

use super::NixVersion;
use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::Path;

/// Arguments (after `nix`) that update `inputs` in the lock of the flake in the current
/// directory; all inputs when empty. Nix 2.19 turned `nix flake update`'s positional
/// argument from a flake reference into input names, so neither shape passes the flake.
pub fn lock_update_args(version: NixVersion, inputs: &[String]) -> Vec<String> {
    let mut args: Vec<String> = vec!["flake".into()];
    if inputs.is_empty() {
        args.push("update".into());
    } else if version.has_flake_update_input_args() {
        args.push("update".into());
        args.extend(inputs.iter().cloned());
    } else {
        args.push("lock".into());
        for i in inputs {
            args.push("--update-input".into());
            args.push(i.clone());
        }
    }
    args
}

/// Run the lock update in `flake_dir`.
pub fn update_lock(flake_dir: &Path, version: NixVersion, inputs: &[String]) -> Result<()> {
    crate::process::run(
        crate::nix::command()
            .current_dir(flake_dir)
            .args(lock_update_args(version, inputs)),
    )
    .with_context(|| format!("updating the lock of the flake in {}", flake_dir.display()))?;
    Ok(())
}

/// The flake of the repository at `root`, as an absolute path (what Nix needs to copy it).
pub fn repo_flake_ref(root: &Path) -> Result<String> {
    Ok(std::fs::canonicalize(root)
        .with_context(|| format!("resolving {}", root.display()))?
        .display()
        .to_string())
}

/// Build a host's toplevel without touching the lock file and print the result as JSON
/// (`--print-out-paths` does not exist before 2.9; `--json` does everywhere).
pub fn build_toplevel_args(flake_ref: &str, host: &str) -> Vec<String> {
    vec![
        "build".into(),
        "--no-link".into(),
        "--json".into(),
        "--no-write-lock-file".into(),
        "--log-lines".into(),
        "40".into(),
        crate::nix::build::toplevel_attr(flake_ref, host),
    ]
}

/// `nix eval --json <flake>#nixosConfigurations --apply builtins.attrNames`.
pub fn host_names_args(flake_ref: &str) -> Vec<String> {
    vec![
        "eval".into(),
        "--json".into(),
        "--no-write-lock-file".into(),
        format!("{flake_ref}#nixosConfigurations"),
        "--apply".into(),
        "builtins.attrNames".into(),
    ]
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BuildResult {
    outputs: std::collections::BTreeMap<String, String>,
}

/// The `out` path from `nix build --json`.
pub fn parse_build_json(json: &str) -> Result<String> {
    let results: Vec<BuildResult> =
        serde_json::from_str(json).context("unexpected `nix build --json` output")?;
    let first = results
        .into_iter()
        .next()
        .context("`nix build --json` printed no result")?;
    first
        .outputs
        .get("out")
        .cloned()
        .context("the build result has no `out` output")
}

/// Why a host's toplevel did not build.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildFailure {
    /// The derivation whose builder failed (`/nix/store/…-foo.drv`), when Nix names one;
    /// evaluation errors have none.
    pub derivation: Option<String>,
    /// The last lines of Nix's output, including the builder's log tail.
    pub log_tail: String,
}

/// The first derivation whose builder failed, from Nix's stderr.
pub fn failed_derivation(stderr: &str) -> Option<String> {
    let start = stderr.find("builder for '")? + "builder for '".len();
    let end = stderr[start..].find('\'')?;
    Some(stderr[start..start + end].to_string())
}

/// Build one host. `Err(BuildFailure)` when Nix ran and failed; an `anyhow` error when
/// `nix` could not be started or printed nonsense.
pub fn build_toplevel(
    flake_ref: &str,
    host: &str,
) -> Result<std::result::Result<String, BuildFailure>> {
    let mut cmd = crate::nix::command();
    cmd.args(build_toplevel_args(flake_ref, host));
    let what = crate::process::display_command(&cmd);
    let out = cmd.output().with_context(|| format!("starting `{what}`"))?;
    if out.status.success() {
        return Ok(Ok(parse_build_json(&String::from_utf8_lossy(&out.stdout))?));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Ok(Err(BuildFailure {
        derivation: failed_derivation(&stderr),
        log_tail: crate::process::tail(stderr.trim_end(), 40),
    }))
}

/// Names of the flake's `nixosConfigurations`.
pub fn host_names(flake_ref: &str) -> Result<Vec<String>> {
    let json = crate::process::run_stdout(crate::nix::command().args(host_names_args(flake_ref)))
        .context("listing the flake's nixosConfigurations")?;
    serde_json::from_str(&json).context("unexpected `nix eval --json` output")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn lock_update_per_nix_version() {
        let old = NixVersion::new(2, 8, 0);
        let new = NixVersion::new(2, 19, 2);
        let inputs = s(&["nixpkgs", "home-manager"]);
        assert_eq!(lock_update_args(old, &[]), s(&["flake", "update"]));
        assert_eq!(lock_update_args(new, &[]), s(&["flake", "update"]));
        assert_eq!(
            lock_update_args(old, &inputs),
            s(&[
                "flake",
                "lock",
                "--update-input",
                "nixpkgs",
                "--update-input",
                "home-manager"
            ])
        );
        assert_eq!(
            lock_update_args(NixVersion::new(2, 18, 9), &inputs)[1],
            "lock"
        );
        assert_eq!(
            lock_update_args(new, &inputs),
            s(&["flake", "update", "nixpkgs", "home-manager"])
        );
    }

    #[test]
    fn build_and_eval_command_lines() {
        assert_eq!(
            build_toplevel_args("/repo", "nas"),
            s(&[
                "build",
                "--no-link",
                "--json",
                "--no-write-lock-file",
                "--log-lines",
                "40",
                "/repo#nixosConfigurations.nas.config.system.build.toplevel"
            ])
        );
        assert_eq!(
            crate::nix::build::toplevel_attr(".", "a.b"),
            ".#nixosConfigurations.\"a.b\".config.system.build.toplevel"
        );
        assert_eq!(host_names_args("/r")[3], "/r#nixosConfigurations");
    }

    #[test]
    fn parses_build_output_and_failures() {
        let json = r#"[{"drvPath":"/nix/store/d-x.drv","outputs":{"out":"/nix/store/o-x"}}]"#;
        assert_eq!(parse_build_json(json).unwrap(), "/nix/store/o-x");
        assert!(parse_build_json("[]").is_err());
        let stderr = "building '/nix/store/1q-bad.drv'...\nerror: builder for '/nix/store/1q-bad.drv' failed with exit code 3;\n       last 2 log lines:\n       > oops";
        assert_eq!(
            failed_derivation(stderr).as_deref(),
            Some("/nix/store/1q-bad.drv")
        );
        assert_eq!(failed_derivation("error: attribute 'x' missing"), None);
    }
}
