//! What the monitoring validator tests share: the derived Prometheus and Alertmanager files
//! as the real NixOS modules render them, and the tools that check them.
#![allow(dead_code)]

use super::checkouts;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub const REAL_MODULES: &str = "[ \"nixos/modules/misc/assertions.nix\" \
    \"nixos/modules/services/monitoring/prometheus/default.nix\" \
    \"nixos/modules/services/monitoring/prometheus/alertmanager.nix\" ]";

/// The tools, or why the test cannot run (a failure under HEARTH_REQUIRE_EVAL=1).
pub fn tools() -> Option<Vec<PathBuf>> {
    let dirs = match checkouts::checkouts(&["HEARTH_NIXPKGS_LIB", "HEARTH_NIXPKGS_SPARSE"]) {
        Ok(d) => d,
        Err(reason) => {
            println!("SKIPPED: {reason}");
            return None;
        }
    };
    for tool in ["promtool", "amtool"] {
        if Command::new(tool).arg("--version").output().is_err() {
            let why =
                format!("`{tool}` is not installed (Debian: prometheus, prometheus-alertmanager)");
            assert!(!checkouts::strict(), "HEARTH_REQUIRE_EVAL=1 but {why}");
            println!("SKIPPED: {why}");
            return None;
        }
    }
    Some(dirs)
}

/// prometheus.yml, the rule file and alertmanager.yml of a generated host module.
pub fn files(dirs: &[PathBuf], host: &Path) -> Value {
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(repo().join("tests/nixos-eval/harness.nix"))
        .args(["--arg", "nixpkgsLib"])
        .arg(&dirs[0])
        .args(["--arg", "sparse"])
        .arg(&dirs[1])
        .args(["--arg", "host"])
        .arg(host)
        .args(["--arg", "realModules", REAL_MODULES])
        .args(["--arg", "realServices", "[ \"prometheus\" ]"])
        .args(["--arg", "extraModules"])
        .arg(format!(
            "[ {} ]",
            repo()
                .join("tests/nixos-eval/prometheus-exporters-stub.nix")
                .display()
        ))
        .args(["--arg", "extraOutput"])
        .arg(format!(
            "import {}",
            repo()
                .join("tests/nixos-eval/monitoring-files.nix")
                .display()
        ))
        .output()
        .expect("nix-instantiate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", host.display());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["failed"], serde_json::json!([]), "{}", host.display());
    v["extra"].clone()
}

/// Run a validator; Ok(stdout) or Err(stdout + stderr).
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().expect("run validator");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Write the files into a temp dir: prometheus.yml, rules.yml, alertmanager.yml.
pub fn write(files: &Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        files["prometheusYml"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        files["rules"].as_str().unwrap(),
    )
    .unwrap();
    if let Some(am) = files["alertmanagerYml"].as_str() {
        std::fs::write(dir.path().join("alertmanager.yml"), amtool_compatible(am)).unwrap();
    }
    dir
}

/// Debian 12's amtool is 0.25; webhook `url_file` came in 0.26 (NixOS 25.11 ships 0.28).
/// With an older amtool the webhook's `url_file` is checked as a `url` instead (printed),
/// so everything else in the file is still validated by the real program.
pub fn amtool_compatible(yml: &str) -> String {
    let version = Command::new("amtool").arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&version.stdout).to_string()
        + &String::from_utf8_lossy(&version.stderr);
    let old = text.contains("version 0.25.") || text.contains("version 0.24.");
    if old && yml.contains("\"url_file\"") {
        println!(
            "NOTE: {}: webhook url_file checked as url",
            text.lines().next().unwrap_or("")
        );
        let mut v: Value = serde_json::from_str(yml).unwrap();
        for r in v["receivers"].as_array_mut().unwrap() {
            for w in r["webhook_configs"].as_array_mut().into_iter().flatten() {
                let obj = w.as_object_mut().unwrap();
                obj.remove("url_file");
                obj.insert("url".into(), "http://webhook.invalid/".into());
            }
        }
        return v.to_string();
    }
    yml.to_string()
}
