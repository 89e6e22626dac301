//! Helpers shared by the compile tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Copy a fixture fleet into a fresh temporary directory.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(name), dir.path());
    dir
}

pub fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        let target = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file gen owns under `root`: generated/** and secrets/secrets.nix, repo-relative.
pub fn output_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for base in ["generated", "secrets"] {
        if !root.join(base).exists() {
            continue;
        }
        for entry in walkdir::WalkDir::new(root.join(base)).sort_by_file_name() {
            let entry = entry.unwrap();
            if entry.file_type().is_file() {
                files.push(entry.path().strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    files
}

/// (inode, mtime) of every output file, to prove a run touched nothing.
pub fn snapshot(root: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    output_files(root)
        .into_iter()
        .map(|rel| {
            let m = std::fs::metadata(root.join(&rel)).unwrap();
            (rel, m.ino(), m.modified().unwrap())
        })
        .collect()
}
