//! The no-op shortcut: `.hearth/gen-stamp` records a hash of every input (the
//! inventory files, every entry name in `hosts/`, `catalog/` and `secrets/`, the repo
//! catalog, the built-in catalog and the hearth binary), what the modules the
//! inventory references looked like, and the size and mtime of every file gen wrote. When all of that still matches,
//! the output is what a compile would produce, so `gen` can skip compiling.
//! Any edit to an input, a template, a generated file, or a new hearth build
//! invalidates it. `gen --check` never uses it.

use super::GENERATED_DIR;
use crate::catalog::CATALOG_DIR;
use crate::inventory::files::{self, MAX_FILE_BYTES};
use crate::inventory::{FLEET_FILE, HOSTS_DIR};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

pub const STAMP_FILE: &str = ".hearth/gen-stamp";

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Stamp {
    inputs: String,
    /// Repo-relative path → (size, mtime in ns).
    outputs: BTreeMap<PathBuf, (u64, u128)>,
    /// Entries of `generated/` at the time, so an added host directory is noticed.
    generated_entries: Vec<String>,
    /// Repo-relative modules the inventory references → what they were (`probe`), so
    /// deleting or replacing one is noticed (`check` rejects a missing module).
    #[serde(default)]
    referenced: BTreeMap<PathBuf, String>,
}

/// Hash of everything the output depends on.
pub fn input_hash(root: &Path) -> anyhow::Result<String> {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    h.update(crate::catalog::builtin_fingerprint());
    // A rebuilt hearth may compile differently: tie the stamp to this binary.
    if let Ok(meta) = std::env::current_exe().and_then(std::fs::metadata) {
        h.update(meta.len().to_le_bytes());
        h.update(mtime(&meta).to_le_bytes());
    }
    let mut inputs = vec![PathBuf::from(FLEET_FILE)];
    // Every name, UTF-8 or not, regular file or not: `check` judges them all.
    for dir in [HOSTS_DIR, CATALOG_DIR, crate::nix::sign::KEYS_DIR] {
        inputs.extend(
            raw_entries(&root.join(dir))
                .into_iter()
                .map(|n| Path::new(dir).join(n)),
        );
    }
    // Each file on its own (in parallel), then the list in order. Nothing here blocks
    // or fails: a FIFO or a directory is hashed as what it is, and `check` refuses it.
    let digests = super::parallel_map(&inputs, |rel| file_digest(&root.join(rel)));
    for (rel, digest) in inputs.iter().zip(digests) {
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update(digest);
    }
    // Secrets are referenced by name; the rules file is an output, not an input.
    h.update(b"secrets\0");
    for name in raw_entries(&root.join("secrets")) {
        if name
            != Path::new(super::SECRETS_RULES)
                .file_name()
                .unwrap_or_default()
        {
            h.update(name.as_encoded_bytes());
            h.update([0]);
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// The sha256 of a regular file's content; for anything else (missing, a directory, a
/// FIFO, too large), of what it is: it changes when the file does, without reading it.
fn file_digest(path: &Path) -> [u8; 32] {
    match files::read_bytes(path, MAX_FILE_BYTES) {
        Ok(data) => Sha256::new()
            .chain_update(b"file\0")
            .chain_update(&data)
            .finalize()
            .into(),
        Err(e) => Sha256::digest(format!("{e}\0{}", probe(path)).as_bytes()).into(),
    }
}

/// What is at `path` now, without opening it: type, size and mtime, or the error.
fn probe(path: &Path) -> String {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => match std::fs::metadata(path) {
            Ok(t) => format!("symlink to {:?} {} {}", t.file_type(), t.len(), mtime(&t)),
            Err(e) => format!("symlink: {e}"),
        },
        Ok(m) => format!("{:?} {} {}", m.file_type(), m.len(), mtime(&m)),
        Err(e) => format!("{e}"),
    }
}

/// Entry names of `dir`, sorted, as the file system has them.
fn raw_entries(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| Some(e.ok()?.file_name())).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn sorted_entries(dir: &Path) -> Vec<String> {
    raw_entries(dir)
        .into_iter()
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}

fn mtime(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

fn read(root: &Path) -> Option<Stamp> {
    // Through the safe reader: a FIFO planted as the stamp must not block `gen`.
    serde_json::from_slice(&files::read_bytes(&root.join(STAMP_FILE), MAX_FILE_BYTES * 64).ok()?)
        .ok()
}

/// True when the stamp proves the outputs are current for `inputs`.
pub fn is_fresh(root: &Path, inputs: &str) -> bool {
    let Some(stamp) = read(root) else {
        return false;
    };
    if stamp.inputs != inputs
        || sorted_entries(&root.join(GENERATED_DIR)) != stamp.generated_entries
        || stamp
            .referenced
            .iter()
            .any(|(rel, was)| probe(&root.join(rel)) != *was)
    {
        return false;
    }
    let outputs: Vec<(&PathBuf, &(u64, u128))> = stamp.outputs.iter().collect();
    super::parallel_map(&outputs, |(rel, (len, mt))| {
        std::fs::metadata(root.join(rel)).is_ok_and(|m| m.len() == *len && mtime(&m) == *mt)
    })
    .into_iter()
    .all(|ok| ok)
}

/// Record the stamp after a successful write. `referenced`: the repo-relative files the
/// inventory points at (modules), whose existence `check` depends on.
pub fn record(
    root: &Path,
    inputs: &str,
    files: &BTreeMap<PathBuf, String>,
    referenced: &[PathBuf],
) -> anyhow::Result<()> {
    let mut outputs = BTreeMap::new();
    for rel in files.keys() {
        let meta = std::fs::metadata(root.join(rel))?;
        outputs.insert(rel.clone(), (meta.len(), mtime(&meta)));
    }
    let stamp = Stamp {
        inputs: inputs.to_string(),
        outputs,
        generated_entries: sorted_entries(&root.join(GENERATED_DIR)),
        referenced: referenced
            .iter()
            .map(|rel| (rel.clone(), probe(&root.join(rel))))
            .collect(),
    };
    super::write::write_atomic(&root.join(STAMP_FILE), &serde_json::to_vec(&stamp)?)
}
