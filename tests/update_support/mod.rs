//! Helpers shared by the `update_*` integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// NIX_CONFIG for offline tests, or `None` (after printing SKIPPED) without Nix.
pub fn offline_nix(dir: &Path) -> Option<String> {
    let ok = Command::new("nix")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        println!("SKIPPED: `nix` is not installed");
        return None;
    }
    let registry = dir.join("registry.json");
    std::fs::write(&registry, r#"{"flakes":[],"version":2}"#).unwrap();
    Some(format!(
        "experimental-features = nix-command flakes\nsandbox = false\nsubstituters =\nflake-registry = {}\n",
        registry.display()
    ))
}

/// Nix system double of this machine.
pub fn system() -> String {
    let arch = String::from_utf8(Command::new("uname").arg("-m").output().unwrap().stdout).unwrap();
    format!("{}-linux", arch.trim())
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .envs(git_identity())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn git_identity() -> Vec<(&'static str, &'static str)> {
    vec![
        ("GIT_AUTHOR_NAME", "hearth test"),
        ("GIT_AUTHOR_EMAIL", "test@example.invalid"),
        ("GIT_COMMITTER_NAME", "hearth test"),
        ("GIT_COMMITTER_EMAIL", "test@example.invalid"),
    ]
}

/// A git repository at `dir` with `files`, committed; returns the commit hash.
pub fn git_repo(dir: &Path, files: &[(&str, &str)]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    if !dir.join(".git").exists() {
        git(dir, &["-c", "init.defaultBranch=main", "init", "-q"]);
    }
    commit_files(dir, files, "initial")
}

pub fn commit_files(dir: &Path, files: &[(&str, &str)], msg: &str) -> String {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
        git(dir, &["add", name]);
    }
    git(dir, &["commit", "-q", "-m", msg]);
    git(dir, &["rev-parse", "HEAD"])
}

pub fn hearth(root: &Path, args: &[&str], nix_config: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.arg("-C").arg(root).args(args).envs(git_identity());
    if let Some(c) = nix_config {
        cmd.env("NIX_CONFIG", c);
    }
    cmd.output().unwrap()
}

pub fn nix(dir: &Path, args: &[&str], nix_config: &str) -> String {
    let out = Command::new("nix")
        .current_dir(dir)
        .args(args)
        .env("NIX_CONFIG", nix_config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nix {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

pub fn tempdir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().canonicalize().unwrap();
    (d, p)
}
