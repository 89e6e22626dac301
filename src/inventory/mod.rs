//! Inventory: read `hearth.toml` and `hosts/*.toml`, validate, and hand out a typed model.
//!
//! `load` is the only entry point the later stages use. It returns every problem it
//! found at once as `Diagnostics` (file, line, column, source line), never just the first.

pub mod model;

use anyhow::Context;
pub use model::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const FLEET_FILE: &str = "hearth.toml";
pub const HOSTS_DIR: &str = "hosts";

/// A whole, validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// Repository root (where `hearth.toml` lives).
    pub root: PathBuf,
    pub fleet: FleetFile,
    /// Hosts by name (the file stem of `hosts/<name>.toml`).
    pub hosts: BTreeMap<String, Host>,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    /// Path relative to the repository root, e.g. `hosts/helios64.toml`.
    pub source: PathBuf,
    pub file: HostFile,
}

/// The deploy policy with fleet defaults applied.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EffectiveDeploy {
    pub magic_rollback: bool,
    pub confirm_timeout: u32,
    pub health_timeout: u32,
    pub substitute_on_destination: bool,
    pub health: HealthChecks,
}

impl Inventory {
    pub fn deploy_policy(&self, host: &Host) -> EffectiveDeploy {
        let d = &self.fleet.deploy;
        let h = &host.file.deploy;
        EffectiveDeploy {
            magic_rollback: h.magic_rollback.unwrap_or(d.magic_rollback),
            confirm_timeout: h.confirm_timeout.unwrap_or(d.confirm_timeout),
            health_timeout: h.health_timeout.unwrap_or(d.health_timeout),
            substitute_on_destination: h
                .substitute_on_destination
                .unwrap_or(d.substitute_on_destination),
            health: h.health.clone(),
        }
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.get(name)
    }
}

/// Load and validate the inventory at `root`.
///
/// TODO(inventory owner): replace the serde-only first-error path with the full
/// diagnostics engine (all errors, did-you-mean, cross-file checks).
pub fn load(root: &Path) -> anyhow::Result<Inventory> {
    let fleet_path = root.join(FLEET_FILE);
    let text = std::fs::read_to_string(&fleet_path)
        .with_context(|| format!("reading {}", fleet_path.display()))?;
    let fleet: FleetFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", fleet_path.display()))?;
    let mut hosts = BTreeMap::new();
    let dir = root.join(HOSTS_DIR);
    if dir.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let file: HostFile =
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            let source = Path::new(HOSTS_DIR).join(format!("{name}.toml"));
            hosts.insert(name.clone(), Host { name, source, file });
        }
    }
    Ok(Inventory {
        root: root.to_path_buf(),
        fleet,
        hosts,
    })
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

#[derive(Debug, clap::Args)]
pub struct SchemaArgs {}

/// `hearth check`. Returns the process exit code.
pub fn run_check(root: &Path, _args: CheckArgs) -> anyhow::Result<u8> {
    load(root)?;
    Ok(0)
}

/// `hearth schema`.
pub fn run_schema(_args: SchemaArgs) -> anyhow::Result<u8> {
    let schema = schemars::schema_for!(HostFile);
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(0)
}
