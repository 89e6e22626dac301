//! The service catalog: what `[services.<name>]` in a host file may say, and how it
//! becomes NixOS configuration.
//!
//! Each service is data plus a template: `<name>.toml` declares its settings, the
//! ports it opens and the data directories it backs up; `<name>.nix.tera` renders
//! the NixOS module. Built-ins are embedded in the binary; a repository's own
//! `catalog/` directory adds services or overrides built-ins of the same name,
//! so users extend hearth without touching Rust.
//!
//! CONTRACT (shared by inventory validation and the compiler):
//! - `Catalog::load(repo_root)` → every service definition, built-ins first, then repo-local.
//! - `Catalog::get(name)` → `Option<&ServiceDef>`.
//! - `ServiceDef::settings` declares each accepted key with its kind, default and doc.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Directory, relative to the repository root, holding user catalog entries.
pub const CATALOG_DIR: &str = "catalog";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceDef {
    /// Filled from the file name, not the file.
    #[serde(skip)]
    pub name: String,
    pub description: String,
    /// Accepted settings by key.
    #[serde(default)]
    pub settings: BTreeMap<String, SettingDef>,
    /// The Tera template source (from `<name>.nix.tera`).
    #[serde(skip)]
    pub template: String,
    /// Where this definition came from (`builtin` or a repo path), for messages.
    #[serde(skip)]
    pub origin: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SettingDef {
    pub kind: SettingKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<toml::Value>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub doc: String,
    /// For `kind = "enum"`: the allowed strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SettingKind {
    String,
    Integer,
    Boolean,
    Port,
    Enum,
    StringList,
    PortList,
    /// A free-form table (e.g. samba shares), checked by the service's template.
    Table,
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub services: BTreeMap<String, ServiceDef>,
}

impl Catalog {
    pub fn get(&self, name: &str) -> Option<&ServiceDef> {
        self.services.get(name)
    }
}

impl Catalog {
    /// Built-in services, then `<root>/catalog/*.toml` (+ `.nix.tera`) adding or overriding.
    ///
    /// TODO(compile owner): embed the built-ins and read the repo-local directory.
    pub fn load(_root: &std::path::Path) -> anyhow::Result<Catalog> {
        Ok(Catalog::default())
    }
}
