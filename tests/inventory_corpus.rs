//! The bad-input corpus: every `tests/bad_inputs/<case>/` is a small fleet and an
//! `expect.toml` with the exit code of `hearth check` and each diagnostic it must print
//! (`file:line:col` and a message substring). Unexpected errors fail the case too.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    exit: i32,
    /// Skip the case unless the machine's architecture is this (its warnings depend on it).
    only_on_arch: Option<String>,
    /// Substrings of the whole stderr.
    #[serde(default)]
    contains: Vec<String>,
    #[serde(default)]
    error: Vec<Expected>,
    #[serde(default)]
    warning: Vec<Expected>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    /// `file:line:col`; absent for problems that have no place in a file.
    at: Option<String>,
    message: String,
}

/// One rendered diagnostic: its header line and the location on its `-->` line.
#[derive(Debug)]
struct Block {
    severity: &'static str,
    message: String,
    at: Option<String>,
}

fn blocks(stderr: &str) -> Vec<Block> {
    let lines: Vec<&str> = stderr.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let (severity, message) = if let Some(m) = line.strip_prefix("error: ") {
            ("error", m)
        } else if let Some(m) = line.strip_prefix("warning: ") {
            ("warning", m)
        } else {
            continue;
        };
        let at = lines
            .get(i + 1)
            .and_then(|l| l.trim_start().strip_prefix("--> "))
            .map(|l| l.trim().to_string());
        out.push(Block {
            severity,
            message: message.to_string(),
            at,
        });
    }
    out
}

fn is_count_line(b: &Block) -> bool {
    b.at.is_none()
        && b.message.contains(" in ")
        && b.message.contains("error")
        && b.message
            .split_whitespace()
            .next()
            .is_some_and(|n| n.parse::<usize>().is_ok())
}

fn run_case(dir: &Path) -> Result<(), String> {
    let expect_text =
        std::fs::read_to_string(dir.join("expect.toml")).map_err(|e| e.to_string())?;
    let expect: Expect = toml::from_str(&expect_text).map_err(|e| format!("expect.toml: {e}"))?;
    if let Some(arch) = &expect.only_on_arch {
        if arch != std::env::consts::ARCH {
            println!("SKIPPED: {} (only on {arch})", dir.display());
            return Ok(());
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-C")
        .arg(dir)
        .arg("check")
        .env_remove("NO_COLOR")
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let fail = |why: String| Err(format!("{why}\n--- stderr ---\n{stderr}"));
    if stderr.contains("panicked") {
        return fail("hearth panicked".into());
    }
    if stderr.contains('\u{1b}') {
        return fail("ANSI escapes in non-terminal output".into());
    }
    if out.status.code() != Some(expect.exit) {
        return fail(format!(
            "exit code {:?}, expected {}",
            out.status.code(),
            expect.exit
        ));
    }
    let found = blocks(&stderr);
    for (severity, list) in [("error", &expect.error), ("warning", &expect.warning)] {
        for e in list {
            let hit = found
                .iter()
                .any(|b| b.severity == severity && b.message.contains(&e.message) && b.at == e.at);
            if !hit {
                return fail(format!("missing {severity} at {:?}: {}", e.at, e.message));
            }
        }
    }
    let errors: Vec<&Block> = found
        .iter()
        .filter(|b| b.severity == "error" && !is_count_line(b))
        .collect();
    if errors.len() != expect.error.len() {
        return fail(format!(
            "{} errors printed, {} expected",
            errors.len(),
            expect.error.len()
        ));
    }
    if expect.exit == 1 {
        let n = expect.error.len();
        let count = format!("error: {n} error{} in ", if n == 1 { "" } else { "s" });
        if !stderr.lines().any(|l| l.starts_with(&count)) {
            return fail(format!("no count line `{count}…`"));
        }
    }
    for c in &expect.contains {
        if !stderr.contains(c.as_str()) {
            return fail(format!("stderr lacks `{c}`"));
        }
    }
    Ok(())
}

#[test]
fn bad_input_corpus() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bad_inputs");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/bad_inputs")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expect.toml").is_file())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 90,
        "the corpus has only {} cases",
        cases.len()
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            run_case(c)
                .err()
                .map(|e| format!("== {}: {e}", c.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn good_fleet_passes() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/good_fleet");
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-C")
        .arg(&dir)
        .arg("check")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    assert!(stderr.contains("ok: 3 hosts valid"), "{stderr}");
    let inv = hearth::inventory::load(&dir).expect("loads");
    assert_eq!(
        inv.hosts.keys().collect::<Vec<_>>(),
        ["helios64", "labhost", "nixos"]
    );
    assert_eq!(inv.hosts["helios64"].host_id(), "296748f2");
}

#[test]
fn check_json_lists_diagnostics() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bad_inputs/unknown-key-typo");
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-C")
        .arg(&dir)
        .args(["check", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["ok"], false);
    let d = &v["diagnostics"][0];
    assert_eq!(d["severity"], "error");
    assert_eq!(d["primary"]["file"], "hosts/a.toml");
    assert_eq!(d["primary"]["line"], 6);
    assert_eq!(d["primary"]["column"], 1);
    assert_eq!(d["help"][0], "did you mean `address`?");
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["check", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `check` is `gen` without writing: the valid edge values also generate (in a copy).
#[test]
fn valid_edge_values_also_generate() {
    let case = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bad_inputs/valid-edge-values");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("hosts")).unwrap();
    for rel in ["hearth.toml", "hosts/a.toml"] {
        std::fs::copy(case.join(rel), dir.path().join(rel)).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-C")
        .arg(dir.path())
        .arg("gen")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let host = std::fs::read_to_string(dir.path().join("generated/a/default.nix")).unwrap();
    assert!(host.contains("\"Family Photos\""), "{host}");
    assert!(host.contains("deploy$"), "{host}");
}
