//! The service catalog: what `[services.<name>]` in a host file may say, and how it
//! becomes NixOS configuration.
//!
//! Each service is data plus a template: `<name>.toml` declares its settings, the
//! ports it opens and the data directories it backs up; `<name>.nix.tera` renders
//! the NixOS options. Built-ins are embedded in the binary; a repository's own
//! `catalog/` directory adds services or overrides built-ins of the same name,
//! so users extend hearth without touching Rust.
//!
//! CONTRACT (shared by inventory validation and the compiler):
//! - `Catalog::load(repo_root)` → every service definition, built-ins first, then repo-local.
//! - `Catalog::get(name)` → `Option<&ServiceDef>`.
//! - `ServiceDef::settings` declares each accepted key with its kind, default and doc.
//! - `ServiceDef::resolve_settings(table)` → the settings with defaults applied.

use crate::inventory::Role;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Directory, relative to the repository root, holding user catalog entries.
pub const CATALOG_DIR: &str = "catalog";

macro_rules! builtin {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("catalog/builtin/", $name, ".toml")),
            include_str!(concat!("catalog/builtin/", $name, ".nix.tera")),
        )
    };
}

/// Built-in entries: (name, definition, template).
const BUILTINS: &[(&str, &str, &str)] = &[
    builtin!("fail2ban"),
    builtin!("iperf3"),
    builtin!("nfs"),
    builtin!("node-exporter"),
    builtin!("openssh"),
    builtin!("prometheus"),
    builtin!("restic"),
    builtin!("restic-server"),
    builtin!("samba"),
    builtin!("tailscale"),
    builtin!("wireguard"),
    builtin!("zfs"),
];

/// Hash of the embedded built-in entries (definitions and templates).
pub fn builtin_fingerprint() -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, def, template) in BUILTINS {
        for part in [name, def, template] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    h.finalize().into()
}

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
    /// Enabled on every (non-lab) host unless the host says otherwise.
    #[serde(default)]
    pub default_enabled: bool,
    /// Enabled automatically on hosts with any of these roles.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Ports opened in the firewall: numbers, or names of `port` / `port-list` settings.
    #[serde(default)]
    pub ports: PortsDef,
    /// Data directories the service keeps (restic backs them up): absolute paths,
    /// names of `string` / `string-list` settings, or `table.*.key` selectors.
    #[serde(default)]
    pub data_dirs: Vec<String>,
    /// Hand-written modules the template's options need, relative to the repository root.
    #[serde(default)]
    pub imports: Vec<String>,
    /// The Tera template source (from `<name>.nix.tera`).
    #[serde(skip)]
    pub template: String,
    /// Where this definition came from (`builtin` or a repo path), for messages.
    #[serde(skip)]
    pub origin: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortsDef {
    #[serde(default)]
    pub tcp: Vec<PortRef>,
    #[serde(default)]
    pub udp: Vec<PortRef>,
}

/// A port number, or the name of a setting holding one or a list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PortRef {
    Number(u16),
    Setting(String),
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
    /// The value names an agenix secret (`secrets/<name>.age`): the host becomes one of
    /// its recipients and gets `age.secrets.<name>`.
    #[serde(default)]
    pub secret: bool,
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

impl SettingKind {
    fn describe(self) -> &'static str {
        match self {
            SettingKind::String => "a string",
            SettingKind::Integer => "an integer",
            SettingKind::Boolean => "a boolean",
            SettingKind::Port => "a port number (1-65535)",
            SettingKind::Enum => "one of the listed strings",
            SettingKind::StringList => "a list of strings",
            SettingKind::PortList => "a list of port numbers",
            SettingKind::Table => "a table",
        }
    }
}

impl SettingDef {
    /// Why `value` is not acceptable for this setting, if it isn't.
    pub fn check(&self, value: &toml::Value) -> Result<(), String> {
        use toml::Value as V;
        let is_port = |v: &V| matches!(v, V::Integer(i) if (1..=65535).contains(i));
        let ok = match self.kind {
            SettingKind::String => value.is_str(),
            SettingKind::Integer => value.is_integer(),
            SettingKind::Boolean => value.is_bool(),
            SettingKind::Port => is_port(value),
            SettingKind::Enum => match value.as_str() {
                Some(s) if self.values.iter().any(|v| v == s) => true,
                Some(s) => return Err(format!("`{s}` is not one of {}", self.values.join(", "))),
                None => false,
            },
            SettingKind::StringList => value
                .as_array()
                .is_some_and(|a| a.iter().all(|v| v.is_str())),
            SettingKind::PortList => value.as_array().is_some_and(|a| a.iter().all(is_port)),
            SettingKind::Table => value.is_table(),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "expected {}, found {}",
                self.kind.describe(),
                value.type_str()
            ))
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub services: BTreeMap<String, ServiceDef>,
}

impl Catalog {
    pub fn get(&self, name: &str) -> Option<&ServiceDef> {
        self.services.get(name)
    }

    /// Built-in services, then `<root>/catalog/*.toml` (+ `.nix.tera`) adding or overriding.
    /// A repo-local `.toml` without a template keeps the built-in template of that name.
    pub fn load(root: &Path) -> anyhow::Result<Catalog> {
        let mut catalog = Catalog::builtin()?;
        let dir = root.join(CATALOG_DIR);
        if std::fs::symlink_metadata(&dir).is_err() {
            return Ok(catalog);
        }
        for path in entries(&dir)? {
            let file_name = path.file_name().unwrap_or_default().to_str().unwrap_or("");
            if let Some(name) = file_name.strip_suffix(".nix.tera") {
                if !dir.join(format!("{name}.toml")).exists() && catalog.get(name).is_none() {
                    bail!(
                        "{}: template without a definition; add {CATALOG_DIR}/{name}.toml",
                        Path::new(CATALOG_DIR).join(file_name).display()
                    );
                }
                continue;
            }
            let Some(name) = file_name.strip_suffix(".toml") else {
                continue;
            };
            let rel = Path::new(CATALOG_DIR).join(file_name);
            let text = read(&path, &rel)?;
            let template_path = dir.join(format!("{name}.nix.tera"));
            let template = if std::fs::symlink_metadata(&template_path).is_ok() {
                read(
                    &template_path,
                    &Path::new(CATALOG_DIR).join(format!("{name}.nix.tera")),
                )?
            } else if let Some(builtin) = catalog.get(name) {
                builtin.template.clone()
            } else {
                bail!(
                    "{}: no template; add {CATALOG_DIR}/{name}.nix.tera next to it",
                    rel.display()
                );
            };
            let def = ServiceDef::parse(name, &text, template, &rel.display().to_string())?;
            catalog.services.insert(name.to_string(), def);
        }
        Ok(catalog)
    }

    /// Only the services embedded in the binary.
    pub fn builtin() -> anyhow::Result<Catalog> {
        let mut services = BTreeMap::new();
        for (name, toml_text, template) in BUILTINS {
            let def = ServiceDef::parse(name, toml_text, template.to_string(), "builtin")?;
            services.insert(name.to_string(), def);
        }
        Ok(Catalog { services })
    }

    /// Text that changes whenever any definition or template changes (for the no-op stamp).
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for def in self.services.values() {
            h.update(def.name.as_bytes());
            h.update([0]);
            h.update(serde_json::to_string(def).unwrap_or_default().as_bytes());
            h.update([0]);
            h.update(def.template.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    }
}

/// The entries of `catalog/`, sorted. Each must be a regular file (or a symlink to one)
/// with a UTF-8 name: anything else is refused by name, before it is opened.
fn entries(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use crate::inventory::files;
    let meta = files::stat(dir).map_err(|e| anyhow::anyhow!("`{CATALOG_DIR}/` {e}"))?;
    if !meta.is_dir() {
        bail!("`{CATALOG_DIR}` is not a directory; it must hold `<service>.toml` and `<service>.nix.tera` files");
    }
    let mut paths = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("`{CATALOG_DIR}/` cannot be read"))?
    {
        let entry = entry.with_context(|| format!("`{CATALOG_DIR}/` cannot be listed"))?;
        let name = entry.file_name();
        let rel = Path::new(CATALOG_DIR).join(&name);
        if name.to_str().is_none() {
            bail!(
                "`{}` has a file name that is not valid UTF-8; rename it",
                rel.display()
            );
        }
        let meta =
            files::stat(&entry.path()).map_err(|e| anyhow::anyhow!("`{}` {e}", rel.display()))?;
        if let Some(kind) = files::irregular_kind(&meta) {
            bail!(
                "`{}` is {kind}, not a regular file; `{CATALOG_DIR}/` holds only catalog files",
                rel.display()
            );
        }
        paths.push(entry.path());
    }
    paths.sort();
    Ok(paths)
}

/// A catalog file's text, refused by name when it isn't a readable regular file.
fn read(path: &Path, rel: &Path) -> anyhow::Result<String> {
    crate::inventory::files::read_text(path).map_err(|e| anyhow::anyhow!("`{}` {e}", rel.display()))
}

impl ServiceDef {
    /// Parse and check one entry. `origin` is `builtin` or the repo-relative path.
    pub fn parse(name: &str, text: &str, template: String, origin: &str) -> anyhow::Result<Self> {
        let mut def: ServiceDef = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{origin}: invalid catalog entry `{name}`: {e}"))?;
        def.name = name.to_string();
        def.template = template;
        def.origin = origin.to_string();
        def.validate()
            .map_err(|e| anyhow::anyhow!("{origin}: catalog entry `{name}`: {e}"))?;
        Ok(def)
    }

    fn validate(&self) -> Result<(), String> {
        for (key, setting) in &self.settings {
            if let Some(default) = &setting.default {
                setting
                    .check(default)
                    .map_err(|e| format!("default of `{key}`: {e}"))?;
            }
            if setting.kind == SettingKind::Enum && setting.values.is_empty() {
                return Err(format!("setting `{key}` is an enum without `values`"));
            }
        }
        for port in self.ports.tcp.iter().chain(&self.ports.udp) {
            if let PortRef::Setting(s) = port {
                match self.settings.get(s).map(|d| d.kind) {
                    Some(SettingKind::Port | SettingKind::PortList) => {}
                    _ => return Err(format!("port `{s}` is not a port or port-list setting")),
                }
            }
        }
        for dir in &self.data_dirs {
            if dir.starts_with('/') {
                continue;
            }
            let first = dir.split('.').next().unwrap_or_default();
            match self.settings.get(first).map(|d| d.kind) {
                Some(SettingKind::String | SettingKind::StringList) if !dir.contains('.') => {}
                Some(SettingKind::Table) if dir.split('.').count() == 3 => {}
                _ => {
                    return Err(format!(
                        "data dir `{dir}` is neither an absolute path, a string setting, nor `table.*.key`"
                    ))
                }
            }
        }
        Ok(())
    }

    /// The host's settings with defaults applied. Errors name the offending key.
    pub fn resolve_settings(&self, given: &toml::Table) -> Result<toml::Table, String> {
        let mut out = toml::Table::new();
        for key in given.keys() {
            if !self.settings.contains_key(key) {
                let known: Vec<&str> = self.settings.keys().map(String::as_str).collect();
                return Err(format!(
                    "unknown setting `{key}` for service `{}` (known: {})",
                    self.name,
                    known.join(", ")
                ));
            }
        }
        for (key, def) in &self.settings {
            match given.get(key).or(def.default.as_ref()) {
                Some(v) => {
                    def.check(v)
                        .map_err(|e| format!("`{}.{key}`: {e}", self.name))?;
                    out.insert(key.clone(), v.clone());
                }
                None if def.required => {
                    return Err(format!("service `{}` needs setting `{key}`", self.name))
                }
                None => {}
            }
        }
        Ok(out)
    }

    /// Firewall ports (tcp, udp) for resolved settings; none when `open_firewall = false`.
    pub fn ports(&self, settings: &toml::Table) -> (Vec<u16>, Vec<u16>) {
        if settings.get("open_firewall").and_then(|v| v.as_bool()) == Some(false) {
            return (vec![], vec![]);
        }
        let expand = |refs: &[PortRef]| {
            let mut out = Vec::new();
            for r in refs {
                match r {
                    PortRef::Number(n) => out.push(*n),
                    PortRef::Setting(s) => match settings.get(s) {
                        Some(toml::Value::Integer(i)) => out.push(*i as u16),
                        Some(toml::Value::Array(a)) => {
                            out.extend(a.iter().filter_map(|v| v.as_integer()).map(|i| i as u16))
                        }
                        _ => {}
                    },
                }
            }
            out
        };
        (expand(&self.ports.tcp), expand(&self.ports.udp))
    }

    /// Data directories for resolved settings.
    pub fn data_dirs(&self, settings: &toml::Table) -> Vec<String> {
        let mut out = Vec::new();
        for dir in &self.data_dirs {
            if dir.starts_with('/') {
                out.push(dir.clone());
                continue;
            }
            let parts: Vec<&str> = dir.split('.').collect();
            match (settings.get(parts[0]), parts.as_slice()) {
                (Some(toml::Value::String(s)), [_]) => out.push(s.clone()),
                (Some(toml::Value::Array(a)), [_]) => {
                    out.extend(a.iter().filter_map(|v| v.as_str()).map(String::from))
                }
                (Some(toml::Value::Table(t)), [_, "*", key]) => out.extend(
                    t.values()
                        .filter_map(|entry| entry.get(*key)?.as_str().map(String::from)),
                ),
                _ => {}
            }
        }
        out
    }

    /// Names of agenix secrets the resolved settings refer to.
    pub fn secrets(&self, settings: &toml::Table) -> Vec<String> {
        self.settings
            .iter()
            .filter(|(_, d)| d.secret)
            .filter_map(|(k, _)| settings.get(k)?.as_str().map(String::from))
            .filter(|s| !s.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_load_and_validate() {
        let c = Catalog::builtin().unwrap();
        for name in [
            "openssh",
            "node-exporter",
            "prometheus",
            "samba",
            "nfs",
            "restic",
            "zfs",
        ] {
            assert!(c.get(name).is_some(), "{name} missing");
        }
        let ssh = c.get("openssh").unwrap();
        assert!(ssh.default_enabled);
        let s = ssh.resolve_settings(&toml::Table::new()).unwrap();
        assert_eq!(ssh.ports(&s), (vec![22], vec![]));
    }

    #[test]
    fn docs_list_every_builtin_and_setting() {
        let doc = include_str!("../docs/CATALOG.md");
        for (name, def) in &Catalog::builtin().unwrap().services {
            let heading = format!("### `{name}`");
            let start = doc
                .find(&heading)
                .unwrap_or_else(|| panic!("docs/CATALOG.md lacks {heading}"));
            let section = &doc[start..];
            let end = section[heading.len()..]
                .find("### ")
                .map_or(section.len(), |i| i + heading.len());
            for key in def.settings.keys() {
                assert!(
                    section[..end].contains(&format!("| `{key}` |")),
                    "docs/CATALOG.md: `{name}` lacks setting `{key}`"
                );
            }
        }
    }

    #[test]
    fn resolve_rejects_unknown_and_mistyped() {
        let c = Catalog::builtin().unwrap();
        let ssh = c.get("openssh").unwrap();
        let bad: toml::Table = toml::from_str("prot = 22").unwrap();
        assert!(ssh
            .resolve_settings(&bad)
            .unwrap_err()
            .contains("unknown setting `prot`"));
        let bad: toml::Table = toml::from_str("port = \"22\"").unwrap();
        assert!(ssh
            .resolve_settings(&bad)
            .unwrap_err()
            .contains("expected a port"));
        let bad: toml::Table = toml::from_str("port = 70000").unwrap();
        assert!(ssh.resolve_settings(&bad).is_err());
    }

    #[test]
    fn data_dirs_from_table_selector() {
        let c = Catalog::builtin().unwrap();
        let samba = c.get("samba").unwrap();
        let given: toml::Table = toml::from_str(
            "[shares.media]\npath = \"/tank/media\"\n[shares.docs]\npath = \"/tank/docs\"",
        )
        .unwrap();
        let s = samba.resolve_settings(&given).unwrap();
        let mut dirs = samba.data_dirs(&s);
        dirs.sort();
        assert_eq!(dirs, ["/tank/docs", "/tank/media"]);
    }

    #[test]
    fn repo_local_entry_adds_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let cat = dir.path().join(CATALOG_DIR);
        std::fs::create_dir(&cat).unwrap();
        std::fs::write(
            cat.join("jellyfin.toml"),
            "description = \"media\"\ndata_dirs = [\"/var/lib/jellyfin\"]\n[ports]\ntcp = [8096]\n",
        )
        .unwrap();
        std::fs::write(
            cat.join("jellyfin.nix.tera"),
            "{ services.jellyfin.enable = true; }",
        )
        .unwrap();
        std::fs::write(
            cat.join("iperf3.toml"),
            "description = \"overridden\"\n[settings.port]\nkind = \"port\"\ndefault = 5999\n[ports]\ntcp = [\"port\"]\n",
        )
        .unwrap();
        let c = Catalog::load(dir.path()).unwrap();
        let jf = c.get("jellyfin").unwrap();
        assert_eq!(jf.origin, "catalog/jellyfin.toml");
        assert_eq!(jf.ports(&toml::Table::new()), (vec![8096], vec![]));
        let iperf = c.get("iperf3").unwrap();
        assert_eq!(iperf.description, "overridden");
        assert!(
            iperf.template.contains("services.iperf3"),
            "keeps the built-in template"
        );
        let s = iperf.resolve_settings(&toml::Table::new()).unwrap();
        assert_eq!(iperf.ports(&s).0, vec![5999]);
    }

    #[test]
    fn bad_entry_is_rejected_with_origin() {
        let err = ServiceDef::parse("x", "description = 1", String::new(), "catalog/x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("catalog/x.toml"), "{err}");
        let err = ServiceDef::parse(
            "x",
            "description = \"x\"\n[ports]\ntcp = [\"nope\"]",
            String::new(),
            "catalog/x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("port `nope`"), "{err}");
    }
}
