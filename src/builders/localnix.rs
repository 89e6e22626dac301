//! What the deployer's own Nix can build: `system` and `extra-platforms` from its configuration.
//!
//! `nix show-config --json` (up to 2.19) and `nix config show --json` (2.20+) print either
//! `{"system": {"value": "x86_64-linux", …}}` or, on old versions, `{"system": "x86_64-linux"}`.
//! Both shapes are accepted, as is the plain `key = value` text form.

use crate::nix::NixVersion;
use anyhow::{anyhow, Context, Result};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNix {
    pub system: String,
    pub extra_platforms: Vec<String>,
    pub trusted_users: Vec<String>,
    pub version: Option<NixVersion>,
}

impl LocalNix {
    /// The detected version, else the oldest supported one.
    pub fn nix_version(&self) -> NixVersion {
        self.version.unwrap_or(NixVersion::OLDEST_SUPPORTED)
    }

    /// A machine that builds only `system` (tests and `--dry-run` overrides).
    pub fn native(system: &str) -> Self {
        Self {
            system: system.to_string(),
            extra_platforms: Vec::new(),
            trusted_users: Vec::new(),
            version: None,
        }
    }

    pub fn can_build(&self, system: &str) -> bool {
        self.system == system || self.extra_platforms.iter().any(|p| p == system)
    }

    /// Every system this Nix builds, native first, for messages: x86_64 micro-architecture
    /// levels (`x86_64-v3-linux`, …) are left out as noise.
    pub fn systems(&self) -> Vec<String> {
        let mut out = vec![self.system.clone()];
        for p in &self.extra_platforms {
            if !out.contains(p) && !is_microarch_level(p) {
                out.push(p.clone());
            }
        }
        out
    }

    /// Parse `nix show-config --json` / `nix config show --json`.
    pub fn parse_config_json(text: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(text).context("Nix configuration is not JSON")?;
        let obj = v
            .as_object()
            .ok_or_else(|| anyhow!("Nix configuration JSON is not an object"))?;
        let setting = |key: &str| -> Option<Value> {
            let raw = obj.get(key)?;
            match raw {
                Value::Object(o) if o.contains_key("value") => o.get("value").cloned(),
                other => Some(other.clone()),
            }
        };
        let system = match setting("system") {
            Some(Value::String(s)) if !s.is_empty() => s,
            _ => return Err(anyhow!("Nix configuration has no `system` setting")),
        };
        Ok(Self {
            system,
            extra_platforms: setting("extra-platforms").map(words).unwrap_or_default(),
            trusted_users: setting("trusted-users").map(words).unwrap_or_default(),
            version: None,
        })
    }

    /// Parse the plain `key = value` form (`nix show-config` without `--json`).
    pub fn parse_config_text(text: &str) -> Result<Self> {
        let get = |key: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
        };
        let system = get("system")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| anyhow!("Nix configuration has no `system` setting"))?;
        let split = |s: Option<String>| -> Vec<String> {
            s.map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        Ok(Self {
            system,
            extra_platforms: split(get("extra-platforms")),
            trusted_users: split(get("trusted-users")),
            version: None,
        })
    }

    /// Ask the local `nix`.
    pub fn detect() -> Result<Self> {
        let version = NixVersion::detect()?;
        let mut cmd = crate::nix::command();
        cmd.args(config_show_args(version));
        let text =
            crate::process::run_stdout(&mut cmd).context("reading the local Nix configuration")?;
        let mut me = Self::parse_config_json(&text)?;
        me.version = Some(version);
        Ok(me)
    }
}

/// `nix config show` exists from 2.20; `nix show-config` before (and deprecated after).
pub fn config_show_args(version: NixVersion) -> Vec<&'static str> {
    let mut args = Vec::new();
    if version >= NixVersion::new(2, 20, 0) {
        args.extend(["config", "show", "--json"]);
    } else {
        args.extend(["show-config", "--json"]);
    }
    args
}

/// `x86_64-v1-linux` … `x86_64-v4-linux`: listed by default on x86_64, never a host's system.
pub fn is_microarch_level(system: &str) -> bool {
    system
        .strip_prefix("x86_64-v")
        .and_then(|r| r.chars().next())
        .is_some_and(|c| c.is_ascii_digit())
}

/// A list setting is a JSON array on new Nix and a space-separated string on some old ones.
fn words(v: Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_object_shape_of_2_8_and_newer() {
        let text = r#"{
          "system": {"aliases": [], "defaultValue": "x86_64-linux", "value": "x86_64-linux"},
          "extra-platforms": {"value": ["i686-linux", "aarch64-linux"]},
          "trusted-users": {"value": ["root", "@wheel"]}
        }"#;
        let n = LocalNix::parse_config_json(text).unwrap();
        assert_eq!(n.system, "x86_64-linux");
        assert_eq!(n.extra_platforms, ["i686-linux", "aarch64-linux"]);
        assert_eq!(n.trusted_users, ["root", "@wheel"]);
        assert!(n.can_build("aarch64-linux"));
        assert!(!n.can_build("aarch64-darwin"));
    }

    #[test]
    fn parses_flat_shape_of_old_nix() {
        let text = r#"{"system": "aarch64-darwin", "extra-platforms": "x86_64-darwin"}"#;
        let n = LocalNix::parse_config_json(text).unwrap();
        assert_eq!(n.system, "aarch64-darwin");
        assert_eq!(n.extra_platforms, ["x86_64-darwin"]);
        assert!(n.can_build("x86_64-darwin"));
        assert!(!n.can_build("aarch64-linux"));
    }

    #[test]
    fn parses_text_shape() {
        let text = "extra-platforms = i686-linux x86_64-v3-linux\nsystem = x86_64-linux\ntrusted-users = root\n";
        let n = LocalNix::parse_config_text(text).unwrap();
        assert_eq!(n.systems(), ["x86_64-linux", "i686-linux"]);
        assert_eq!(n.trusted_users, ["root"]);
    }

    #[test]
    fn missing_system_is_an_error() {
        assert!(LocalNix::parse_config_json(r#"{"extra-platforms": []}"#).is_err());
        assert!(LocalNix::parse_config_json("[1]").is_err());
        assert!(LocalNix::parse_config_text("a = b").is_err());
    }

    #[test]
    fn config_command_depends_on_version() {
        assert!(config_show_args(NixVersion::new(2, 8, 0)).contains(&"show-config"));
        let new = config_show_args(NixVersion::new(2, 24, 0));
        assert_eq!(new, ["config", "show", "--json"]);
    }
}
