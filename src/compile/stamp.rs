//! The no-op shortcut: `.hearth/gen-stamp` records a hash of every input (the
//! inventory files, the repo catalog, the built-in catalog and the hearth binary)
//! and the size and mtime of every file gen wrote. When all of that still matches,
//! the output is what a compile would produce, so `gen` can skip compiling.
//! Any edit to an input, a template, a generated file, or a new hearth build
//! invalidates it. `gen --check` never uses it.

use super::GENERATED_DIR;
use crate::catalog::CATALOG_DIR;
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
    for dir in [HOSTS_DIR, CATALOG_DIR, crate::nix::sign::KEYS_DIR] {
        inputs.extend(
            sorted_entries(&root.join(dir))
                .into_iter()
                .map(|n| Path::new(dir).join(n)),
        );
    }
    // Hash each file on its own (in parallel), then the list in order.
    let digests = super::parallel_map(&inputs, |rel| -> anyhow::Result<[u8; 32]> {
        match std::fs::read(root.join(rel)) {
            Ok(data) => Ok(Sha256::digest(&data).into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok([0; 32]),
            Err(e) => Err(e.into()),
        }
    });
    for (rel, digest) in inputs.iter().zip(digests) {
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(digest?);
    }
    Ok(hex::encode(h.finalize()))
}

fn sorted_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn mtime(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

fn read(root: &Path) -> Option<Stamp> {
    serde_json::from_slice(&std::fs::read(root.join(STAMP_FILE)).ok()?).ok()
}

/// True when the stamp proves the outputs are current for `inputs`.
pub fn is_fresh(root: &Path, inputs: &str) -> bool {
    let Some(stamp) = read(root) else {
        return false;
    };
    if stamp.inputs != inputs
        || sorted_entries(&root.join(GENERATED_DIR)) != stamp.generated_entries
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

/// Record the stamp after a successful write.
pub fn record(root: &Path, inputs: &str, files: &BTreeMap<PathBuf, String>) -> anyhow::Result<()> {
    let mut outputs = BTreeMap::new();
    for rel in files.keys() {
        let meta = std::fs::metadata(root.join(rel))?;
        outputs.insert(rel.clone(), (meta.len(), mtime(&meta)));
    }
    let stamp = Stamp {
        inputs: inputs.to_string(),
        outputs,
        generated_entries: sorted_entries(&root.join(GENERATED_DIR)),
    };
    super::write::write_atomic(&root.join(STAMP_FILE), &serde_json::to_vec(&stamp)?)
}
