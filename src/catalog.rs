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

use crate::values::Kind;
use crate::values::Role;
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
    builtin!("alertmanager"),
    builtin!("alloy"),
    builtin!("authelia"),
    builtin!("blocky"),
    builtin!("caddy"),
    builtin!("fail2ban"),
    builtin!("grafana"),
    builtin!("iperf3"),
    builtin!("jellyfin"),
    builtin!("k3s"),
    builtin!("loki"),
    builtin!("nfs"),
    builtin!("node-exporter"),
    builtin!("openssh"),
    builtin!("prometheus"),
    builtin!("restic"),
    builtin!("restic-restore-test"),
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
    /// The service serves a web UI: the reverse proxy gives it a virtual host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebDef>,
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

/// `[web]` of a service definition: where its web UI listens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebDef {
    /// The UI's TCP port: a number, or the name of a `port` setting.
    pub port: PortRef,
    /// Path of the UI below the root (`/` unless the service serves it elsewhere).
    #[serde(default = "root_path")]
    pub path: String,
    /// A path answering 200 when the service is up (for health checks), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// The UI has a login of its own; without one, `authelia` (when the fleet runs it)
    /// guards its virtual host.
    #[serde(default)]
    pub login: bool,
}

fn root_path() -> String {
    "/".into()
}

impl WebDef {
    fn validate(&self, settings: &BTreeMap<String, SettingDef>) -> Result<(), String> {
        if let PortRef::Setting(s) = &self.port {
            if settings.get(s).map(|d| d.kind) != Some(SettingKind::Port) {
                return Err(format!("[web] port `{s}` is not a `port` setting"));
            }
        }
        for (what, p) in [("path", Some(&self.path)), ("health", self.health.as_ref())] {
            let Some(p) = p else { continue };
            // The characters the Caddyfile writer takes in a `health_uri` (lines::caddyfile).
            let url_char = |c: char| c.is_ascii_alphanumeric() || "/-._~%=&".contains(c);
            if !p.starts_with('/') || !p.chars().all(url_char) || p.contains("..") {
                return Err(format!(
                    "[web] {what} `{p}` must be an absolute URL path (`/`, `/-/ready`) of letters, digits and `/-._~%=&`, without `..`"
                ));
            }
        }
        Ok(())
    }

    /// The UI's port for resolved settings.
    pub fn port(&self, settings: &toml::Table) -> Option<u16> {
        match &self.port {
            PortRef::Number(n) => Some(*n),
            PortRef::Setting(s) => settings
                .get(s)
                .and_then(|v| v.as_integer())
                .and_then(|i| u16::try_from(i).ok()),
        }
    }
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
    /// For `kind = "integer"`: the smallest allowed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// For `kind = "integer"`: the largest allowed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// For `kind = "list"`: what each element is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<Box<SettingDef>>,
    /// For `kind = "table"` with fixed keys: each key it accepts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, SettingDef>,
    /// For `kind = "table"` of named entries (shares, exports, peers): what each entry is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<Box<SettingDef>>,
    /// For `entries`: the kind of the entry names (default `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<SettingKind>,
}

/// What a setting's value is. In the TOML: `string` (one line), `text` (may span lines),
/// `integer`, `boolean`, `port`, `enum`, `string-list`, `port-list`, `list`, `table`, or
/// any value kind of the inventory (`size`, `path`, `calendar`, `nfs-client`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    String,
    Text,
    Integer,
    Boolean,
    Port,
    Enum,
    StringList,
    PortList,
    /// A list of `item`.
    List,
    /// A table with declared `fields`, or of named `entries`.
    Table,
    /// A string of a kind the inventory knows (`size`, `path`, `nfs-client`, …).
    Value(Kind),
}

const PLAIN_KINDS: &[(&str, SettingKind)] = &[
    ("string", SettingKind::String),
    ("text", SettingKind::Text),
    ("integer", SettingKind::Integer),
    ("boolean", SettingKind::Boolean),
    ("port", SettingKind::Port),
    ("enum", SettingKind::Enum),
    ("string-list", SettingKind::StringList),
    ("port-list", SettingKind::PortList),
    ("list", SettingKind::List),
    ("table", SettingKind::Table),
];

impl SettingKind {
    pub fn name(self) -> &'static str {
        match self {
            SettingKind::Value(k) => k.format(),
            other => PLAIN_KINDS
                .iter()
                .find(|(_, k)| *k == other)
                .map_or("?", |(n, _)| n),
        }
    }

    pub fn parse(s: &str) -> Option<SettingKind> {
        PLAIN_KINDS
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, k)| *k)
            .or_else(|| Kind::from_format(s).map(SettingKind::Value))
    }

    /// The value kind of a string setting.
    pub fn string_kind(self) -> Option<Kind> {
        match self {
            SettingKind::String => Some(Kind::Line),
            SettingKind::Text => Some(Kind::Text),
            SettingKind::Value(k) => Some(k),
            _ => None,
        }
    }

    fn describe(self) -> String {
        match self {
            SettingKind::Integer => "an integer".into(),
            SettingKind::Boolean => "a boolean (`true` or `false`)".into(),
            SettingKind::Port => "a port number (1-65535)".into(),
            SettingKind::Enum => "one of the listed strings".into(),
            SettingKind::StringList => "a list of strings".into(),
            SettingKind::PortList => "a list of port numbers".into(),
            SettingKind::List => "a list".into(),
            SettingKind::Table => "a table".into(),
            other => match other.string_kind() {
                Some(k) => format!("a string ({})", k.noun()),
                None => "a string".into(),
            },
        }
    }
}

impl Serialize for SettingKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for SettingKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SettingKind::parse(&s).ok_or_else(|| {
            let mut names: Vec<&str> = PLAIN_KINDS.iter().map(|(n, _)| *n).collect();
            names.extend(crate::values::ALL.iter().map(|k| k.format()));
            serde::de::Error::custom(format!(
                "unknown kind `{s}`; expected one of {}",
                names.join(", ")
            ))
        })
    }
}

impl SettingDef {
    /// A setting of `kind` with nothing else declared.
    pub fn of(kind: SettingKind) -> SettingDef {
        SettingDef {
            kind,
            default: None,
            required: false,
            doc: String::new(),
            values: vec![],
            secret: false,
            min: None,
            max: None,
            item: None,
            fields: BTreeMap::new(),
            entries: None,
            keys: None,
        }
    }

    /// The inclusive range of an integer setting.
    pub fn int_range(&self) -> (i64, i64) {
        match self.kind {
            SettingKind::Port => (1, 65535),
            _ => (self.min.unwrap_or(i64::MIN), self.max.unwrap_or(i64::MAX)),
        }
    }

    /// The kind of an entry table's names.
    pub fn key_kind(&self) -> Kind {
        self.keys
            .and_then(SettingKind::string_kind)
            .unwrap_or(Kind::Name)
    }

    /// Why `value` is not acceptable for this setting, if it isn't.
    pub fn check(&self, value: &toml::Value) -> Result<(), String> {
        use toml::Value as V;
        let wrong = || {
            Err(format!(
                "expected {}, found {}",
                self.kind.describe(),
                value.type_str()
            ))
        };
        match (self.kind, value) {
            (SettingKind::Integer | SettingKind::Port, V::Integer(i)) => {
                let (lo, hi) = self.int_range();
                if *i < lo || *i > hi {
                    return Err(format!("{i} is not between {lo} and {hi}"));
                }
                Ok(())
            }
            (SettingKind::Boolean, V::Boolean(_)) => Ok(()),
            (SettingKind::Enum, V::String(s)) => match self.values.iter().any(|v| v == s) {
                true => Ok(()),
                false => Err(format!("`{s}` is not one of {}", self.values.join(", "))),
            },
            (SettingKind::StringList, V::Array(a)) => list(a, &SettingDef::of(SettingKind::String)),
            (SettingKind::PortList, V::Array(a)) => list(a, &SettingDef::of(SettingKind::Port)),
            (SettingKind::List, V::Array(a)) => match &self.item {
                Some(item) => list(a, item),
                None => Err("a list without `item`".into()),
            },
            (SettingKind::Table, V::Table(t)) => self.check_table(t),
            (kind, V::String(s)) => match kind.string_kind() {
                // A secret setting is a secret's name; empty means none.
                Some(_) if self.secret => Kind::SecretRef.check(s),
                Some(k) => k.check(s),
                None => wrong(),
            },
            _ => wrong(),
        }
    }

    fn check_table(&self, t: &toml::Table) -> Result<(), String> {
        if let Some(entry) = &self.entries {
            for (name, v) in t {
                self.key_kind()
                    .check(name)
                    .map_err(|e| format!("entry name `{name}`: {e}"))?;
                entry.check(v).map_err(|e| format!("`{name}`: {e}"))?;
            }
            return Ok(());
        }
        for key in t.keys() {
            if !self.fields.contains_key(key) {
                let known: Vec<&str> = self.fields.keys().map(String::as_str).collect();
                return Err(format!("unknown key `{key}` (known: {})", known.join(", ")));
            }
        }
        for (key, def) in &self.fields {
            match t.get(key) {
                Some(v) => def.check(v).map_err(|e| format!("`{key}`: {e}"))?,
                None if def.required => return Err(format!("missing `{key}`")),
                None => {}
            }
        }
        Ok(())
    }

    /// Whether the declaration itself makes sense (catalog authors' mistakes).
    fn validate(&self) -> Result<(), String> {
        if let Some(default) = &self.default {
            self.check(default).map_err(|e| format!("default: {e}"))?;
        }
        let integer = matches!(self.kind, SettingKind::Integer);
        if !integer && (self.min.is_some() || self.max.is_some()) {
            return Err("`min`/`max` only apply to `integer`".into());
        }
        if let (Some(lo), Some(hi)) = (self.min, self.max) {
            if lo > hi {
                return Err(format!("`min` {lo} is above `max` {hi}"));
            }
        }
        match (self.kind, &self.item) {
            (SettingKind::List, None) => return Err("a `list` needs `item`".into()),
            (SettingKind::List, Some(item)) => item.validate().map_err(|e| format!("item: {e}"))?,
            (_, Some(_)) => return Err("`item` only applies to `list`".into()),
            _ => {}
        }
        let table = self.kind == SettingKind::Table;
        match (table, self.fields.is_empty(), &self.entries) {
            (true, true, None) => {
                return Err(
                    "a `table` needs `fields` (its keys) or `entries` (named entries)".into(),
                )
            }
            (true, false, Some(_)) => {
                return Err("a `table` has `fields` or `entries`, not both".into())
            }
            (false, false, _) | (false, _, Some(_)) => {
                return Err("`fields` and `entries` only apply to `table`".into())
            }
            _ => {}
        }
        if self.keys.is_some_and(|k| k.string_kind().is_none())
            || (self.keys.is_some() && self.entries.is_none())
        {
            return Err("`keys` is the string kind of the names of `entries`".into());
        }
        for (key, f) in &self.fields {
            f.validate().map_err(|e| format!("field `{key}`: {e}"))?;
        }
        if let Some(e) = &self.entries {
            e.validate().map_err(|e| format!("entries: {e}"))?;
        }
        if self.kind == SettingKind::Enum && self.values.is_empty() {
            return Err("an enum without `values`".into());
        }
        Ok(())
    }
}

fn list(items: &[toml::Value], item: &SettingDef) -> Result<(), String> {
    for (i, v) in items.iter().enumerate() {
        item.check(v)
            .map_err(|e| format!("element {}: {e}", i + 1))?;
    }
    Ok(())
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
    use crate::files;
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
    crate::files::read_text(path).map_err(|e| anyhow::anyhow!("`{}` {e}", rel.display()))
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
            setting
                .validate()
                .map_err(|e| format!("setting `{key}`: {e}"))?;
        }
        for port in self.ports.tcp.iter().chain(&self.ports.udp) {
            if let PortRef::Setting(s) = port {
                match self.settings.get(s).map(|d| d.kind) {
                    Some(SettingKind::Port | SettingKind::PortList) => {}
                    _ => return Err(format!("port `{s}` is not a port or port-list setting")),
                }
            }
        }
        if let Some(web) = &self.web {
            web.validate(&self.settings)?;
        }
        for import in &self.imports {
            Kind::RepoPath
                .check(import)
                .map_err(|e| format!("import `{import}`: {e}"))?;
        }
        for dir in &self.data_dirs {
            if dir.starts_with('/') {
                Kind::AbsPath
                    .check(dir)
                    .map_err(|e| format!("data dir `{dir}`: {e}"))?;
                continue;
            }
            let first = dir.split('.').next().unwrap_or_default();
            let def = self.settings.get(first);
            let string_like = |d: &SettingDef| {
                d.kind.string_kind().is_some()
                    || d.kind == SettingKind::StringList
                    || d.item
                        .as_ref()
                        .is_some_and(|i| i.kind.string_kind().is_some())
            };
            let entry_key = |d: &SettingDef| {
                let key = dir.split('.').nth(2).unwrap_or_default();
                d.entries
                    .as_ref()
                    .is_some_and(|e| e.fields.contains_key(key))
            };
            match def {
                Some(d) if string_like(d) && !dir.contains('.') => {}
                Some(d) if d.kind == SettingKind::Table && dir.split('.').count() == 3 && entry_key(d) => {}
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
    fn nested_settings_are_typed_and_closed() {
        let c = Catalog::builtin().unwrap();
        let samba = c.get("samba").unwrap();
        let check = |text: &str| samba.resolve_settings(&toml::from_str(text).unwrap());
        assert!(check("[shares.media]\npath = \"/srv/media\"\nguest_ok = true").is_ok());
        let err = check("[shares.media]\npath = \"/srv/media\"\nguest_ok = \"no\"").unwrap_err();
        assert!(err.contains("`guest_ok`: expected a boolean"), "{err}");
        let err = check("[shares.media]\npath = \"/srv/media\"\nreadonly = true").unwrap_err();
        assert!(err.contains("unknown key `readonly`"), "{err}");
        let err = check("[shares.media]\nread_only = true").unwrap_err();
        assert!(err.contains("missing `path`"), "{err}");
        let err = check("workgroup = \"HOME\\n[x]\"").unwrap_err();
        assert!(err.contains("control character"), "{err}");
        let nfs = c.get("nfs").unwrap();
        let err = nfs
            .resolve_settings(&toml::from_str("[exports.m]\npath = \"/m\"\nclients = 192").unwrap())
            .unwrap_err();
        assert!(
            err.contains("`clients`: expected a string (NFS client), found integer"),
            "{err}"
        );
        let zfs = c.get("zfs").unwrap();
        let err = zfs
            .resolve_settings(&toml::from_str("hourly = -1").unwrap())
            .unwrap_err();
        assert!(err.contains("-1 is not between 0 and 10000"), "{err}");
    }

    #[test]
    fn declarations_that_cannot_be_checked_are_refused() {
        let parse = |settings: &str| {
            ServiceDef::parse(
                "x",
                &format!("description = \"x\"\n{settings}"),
                String::new(),
                "catalog/x.toml",
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
        };
        let cases = [
            ("[settings.t]\nkind = \"table\"", "needs `fields`"),
            ("[settings.l]\nkind = \"list\"", "needs `item`"),
            ("[settings.s]\nkind = \"string\"\nmin = 1", "only apply to `integer`"),
            ("[settings.i]\nkind = \"integer\"\nmin = 5\nmax = 1", "above `max`"),
            ("[settings.i]\nkind = \"integer\"\nmin = 1\ndefault = 0", "not between 1"),
            ("[settings.s]\nkind = \"size\"\ndefault = \"lots\"", "default"),
            ("[settings.s]\nkind = \"sizes\"", "unknown kind `sizes`"),
            ("[settings.t]\nkind = \"table\"\nkeys = \"name\"\n[settings.t.fields.a]\nkind = \"string\"", "`keys`"),
            ("imports = [\"../x.nix\"]", "import `../x.nix`"),
            ("[web]\nport = \"nope\"", "[web] port `nope` is not a `port` setting"),
            ("[settings.p]\nkind = \"integer\"\n[web]\nport = \"p\"", "not a `port` setting"),
            ("[web]\nport = 80\npath = \"ui\"", "must be an absolute URL path"),
            ("[web]\nport = 80\nhealth = \"/a b\"", "must be an absolute URL path"),
            ("[web]\nport = 80\nhealth = \"/../x\"", "must be an absolute URL path"),
            ("[web]\nprot = 80", "unknown field `prot`"),
            ("data_dirs = [\"/var/lib/x\\n\"]", "data dir"),
        ];
        for (text, want) in cases {
            let err = parse(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
        assert!(parse(
            "[settings.p]\nkind = \"list\"\nitem = { kind = \"path\" }\ndefault = [\"/srv\"]"
        )
        .is_ok());
    }

    #[test]
    fn web_uis_resolve_their_port() {
        let c = Catalog::builtin().unwrap();
        let prom = c.get("prometheus").unwrap();
        let s = prom
            .resolve_settings(&toml::from_str("port = 9091").unwrap())
            .unwrap();
        assert_eq!(prom.web.as_ref().unwrap().port(&s), Some(9091));
        let jf = c.get("jellyfin").unwrap();
        let s = jf.resolve_settings(&toml::Table::new()).unwrap();
        assert_eq!(jf.web.as_ref().unwrap().port(&s), Some(8096));
        assert!(c.get("openssh").unwrap().web.is_none());
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
