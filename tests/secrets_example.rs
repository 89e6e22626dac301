//! The example fleet ships its `.age` files: every `age.secrets.<name>.file` the
//! generated host modules reference exists, is tracked by git (the flake sees only
//! tracked files), and `hearth check` / `hearth secrets check` pass on the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `(host module, referenced file)` for every `X.file = ../../secrets/X.age;` line (or
/// `file = …` line of an `X = { … }` block).
fn referenced_secret_files(root: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root.join("generated")).unwrap().flatten() {
        let module = e.path().join("default.nix");
        let Ok(text) = std::fs::read_to_string(&module) else {
            continue;
        };
        for line in text.lines() {
            // `X.file = …;`, or `file = …;` inside `X = { … }` (a secret with an owner).
            let line = line.trim();
            let Some(rhs) = line
                .split_once(".file = ")
                .map(|(_, r)| r)
                .or_else(|| line.strip_prefix("file = "))
            else {
                continue;
            };
            let rel = rhs.trim_end_matches(';');
            if rel.ends_with(".age") {
                out.push((module.clone(), e.path().join(rel)));
            }
        }
    }
    out
}

#[test]
fn every_referenced_age_file_exists_and_is_tracked() {
    let root = repo();
    let refs = referenced_secret_files(&root);
    assert_eq!(refs.len(), 8, "helios64 uses 3 secrets, nixos 5: {refs:?}");
    let tracked = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["ls-files", "secrets"])
        .output()
        .expect("git");
    assert!(tracked.status.success());
    let tracked = String::from_utf8_lossy(&tracked.stdout).to_string();
    for (module, file) in refs {
        let file = file.canonicalize().unwrap_or_else(|_| {
            panic!(
                "{} references {}, which doesn't exist",
                module.display(),
                file.display()
            )
        });
        let rel = file.strip_prefix(root.canonicalize().unwrap()).unwrap();
        assert!(
            tracked.lines().any(|l| Path::new(l) == rel),
            "{} is not tracked by git, so the flake can't see it",
            rel.display()
        );
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            bytes.starts_with(b"age-encryption.org/v1\n"),
            "{}",
            rel.display()
        );
    }
}

#[test]
fn example_fleet_secrets_match_the_inventory() {
    for args in [&["secrets", "check"][..], &["check"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("-C")
            .arg(repo())
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "hearth {args:?}:\n{stderr}");
        assert!(!stderr.contains("error"), "{stderr}");
        assert!(!stderr.contains("warning"), "{stderr}");
    }
}
