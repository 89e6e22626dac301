//! `nix build` of many hosts' toplevels in one evaluator, results read from `--json`,
//! and failures turned into "which derivation, its log tail, where the full log is".

use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The flake attribute every deployable flake exposes for a host.
pub fn toplevel_attr(flake: &str, host: &str) -> String {
    format!(
        "{flake}#nixosConfigurations.{}.config.system.build.toplevel",
        nix_attr_name(host)
    )
}

/// Quote a host name for a Nix attribute path when it isn't a plain identifier.
fn nix_attr_name(host: &str) -> String {
    let plain = host
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '\''));
    if plain {
        host.to_string()
    } else {
        format!("\"{}\"", host.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// `nix build --json --no-link --keep-going <installable>…`: one evaluator for all hosts.
pub fn build_args(installables: &[String]) -> Vec<String> {
    let mut a: Vec<String> = ["build", "--json", "--no-link", "--keep-going"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(installables.iter().cloned());
    a
}

/// One entry of `nix build --json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildResult {
    pub drv_path: String,
    pub out: String,
}

/// Parse `nix build --json` (same shape on 2.8 and 2.19+; newer versions add fields).
pub fn parse_build_json(json: &str) -> Result<Vec<BuildResult>> {
    let v: Value = serde_json::from_str(json).context("parsing `nix build --json` output")?;
    let items = v
        .as_array()
        .context("`nix build --json` did not print an array")?;
    items
        .iter()
        .map(|o| {
            let drv_path = o
                .get("drvPath")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let out = o
                .pointer("/outputs/out")
                .and_then(Value::as_str)
                .context("`nix build --json` entry without outputs.out")?
                .to_string();
            Ok(BuildResult { drv_path, out })
        })
        .collect()
}

/// What we could learn about a failed build from Nix's stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildFailure {
    /// The derivation whose builder failed, when Nix named one.
    pub drv: Option<String>,
    /// Nix's own error text (trimmed).
    pub message: String,
}

/// Find the failing derivation in `nix build` stderr
/// (`error: builder for '/nix/store/…drv' failed with exit code 3;`).
pub fn parse_build_failure(stderr: &str) -> BuildFailure {
    let stderr = crate::nix::copy::strip_ansi(stderr);
    let drv = stderr.lines().find_map(|l| {
        let rest = &l[l.find("builder for '")? + "builder for '".len()..];
        Some(rest[..rest.find('\'')?].to_string())
    });
    let drv = drv.or_else(|| {
        stderr.lines().find_map(|l| {
            let i = l.find("/nix/store/")?;
            let w: String = l[i..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '\'')
                .collect();
            w.ends_with(".drv").then_some(w)
        })
    });
    let message = stderr
        .lines()
        .filter(|l| !l.trim_start().starts_with("building '"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string();
    BuildFailure { drv, message }
}

/// Where Nix keeps a derivation's build log: `/nix/var/log/nix/drvs/<2>/<rest>.bz2`.
pub fn log_path(drv: &str) -> Option<PathBuf> {
    let base = Path::new(drv).file_name()?.to_str()?;
    if base.len() < 3 {
        return None;
    }
    Some(
        Path::new("/nix/var/log/nix/drvs")
            .join(&base[..2])
            .join(format!("{}.bz2", &base[2..])),
    )
}

/// `nix log <drv>` (the log's full text).
pub fn log_command(drv: &str) -> Command {
    let mut c = crate::nix::command();
    c.args(["log", drv]);
    c
}

/// GC root per host: `nix-store --add-root <dir>/<host> --realise <out>`.
pub fn gcroot_command(root_dir: &Path, host: &str, out: &str) -> Command {
    let mut c = Command::new("nix-store");
    c.arg("--add-root")
        .arg(root_dir.join(host))
        .args(["--realise", out]);
    c
}

/// Map build results back to hosts: `nix build --json` keeps the order of installables.
pub fn results_by_host(
    hosts: &[String],
    results: Vec<BuildResult>,
) -> Result<BTreeMap<String, BuildResult>> {
    anyhow::ensure!(
        hosts.len() == results.len(),
        "`nix build --json` returned {} results for {} hosts",
        results.len(),
        hosts.len()
    );
    Ok(hosts.iter().cloned().zip(results).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_paths() {
        assert_eq!(
            toplevel_attr("/repo", "helios64"),
            "/repo#nixosConfigurations.helios64.config.system.build.toplevel"
        );
        assert_eq!(
            toplevel_attr(".", "1box"),
            ".#nixosConfigurations.\"1box\".config.system.build.toplevel"
        );
        assert_eq!(
            build_args(&["a".into(), "b".into()]).join(" "),
            "build --json --no-link --keep-going a b"
        );
    }

    #[test]
    fn parses_build_json_of_2_8() {
        let j = r#"[{"drvPath":"/nix/store/51b-a.drv","outputs":{"out":"/nix/store/1sl-a"}},
                    {"drvPath":"/nix/store/62c-b.drv","outputs":{"out":"/nix/store/2zz-b"},"startTime":0}]"#;
        let r = parse_build_json(j).unwrap();
        assert_eq!(r[1].out, "/nix/store/2zz-b");
        let m = results_by_host(&["a".into(), "b".into()], r).unwrap();
        assert_eq!(m["a"].out, "/nix/store/1sl-a");
        assert!(results_by_host(&["a".into()], vec![]).is_err());
    }

    #[test]
    fn finds_failing_derivation_and_log() {
        let stderr = "building '/nix/store/q3j-b.drv'...\n\
            error: builder for '/nix/store/q3j633rfip2vxnfq9hsqlsqjjh28jbg8-b.drv' failed with exit code 3;\n\
            \x20      last 2 log lines:\n       > line1\n       > oops\n\
            \x20      For full logs, run 'nix log /nix/store/q3j633rfip2vxnfq9hsqlsqjjh28jbg8-b.drv'.";
        let f = parse_build_failure(stderr);
        assert_eq!(
            f.drv.as_deref(),
            Some("/nix/store/q3j633rfip2vxnfq9hsqlsqjjh28jbg8-b.drv")
        );
        assert!(f.message.starts_with("error: builder for"), "{}", f.message);
        assert_eq!(
            log_path(f.drv.as_deref().unwrap()).unwrap(),
            Path::new("/nix/var/log/nix/drvs/q3/j633rfip2vxnfq9hsqlsqjjh28jbg8-b.drv.bz2")
        );
        let none = parse_build_failure("error: attribute 'x' missing");
        assert_eq!(none.drv, None);
    }
}
