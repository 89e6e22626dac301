//! `nix path-info --json`: an array of objects on Nix < 2.19, an object keyed by
//! store path on 2.19+. [`parse`] accepts both, so callers never branch on the version.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;
use std::process::Command;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    pub path: String,
    /// False when Nix reports the path as not valid in that store.
    pub valid: bool,
    pub nar_size: u64,
    /// `closureSize`, present with `-S`.
    pub closure_size: Option<u64>,
    pub references: Vec<String>,
}

/// Parse either JSON shape of `nix path-info --json`. Errors carry the JSON line and
/// column, because the output may come from another machine's Nix.
pub fn parse(json: &str) -> Result<Vec<PathInfo>> {
    let v: Value = serde_json::from_str(json).map_err(|e| {
        anyhow!(
            "unexpected `nix path-info --json` output at {}:{}: {e}",
            e.line(),
            e.column()
        )
    })?;
    let entry = |path: String, o: &Value| -> PathInfo {
        // 2.19+ prints `null` for an invalid path; older versions print `"valid": false`.
        let valid = !o.is_null() && o.get("valid").and_then(Value::as_bool).unwrap_or(true);
        let references = o
            .get("references")
            .and_then(Value::as_array)
            .map(|refs| {
                refs.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        PathInfo {
            path,
            valid,
            nar_size: o.get("narSize").and_then(Value::as_u64).unwrap_or(0),
            closure_size: o.get("closureSize").and_then(Value::as_u64),
            references,
        }
    };
    match v {
        Value::Array(items) => items
            .iter()
            .map(|o| match o.get("path").and_then(Value::as_str) {
                Some(path) => Ok(entry(path.to_string(), o)),
                None => bail!("`nix path-info --json` entry without `path`"),
            })
            .collect(),
        // In store-path order whatever order Nix printed them in (serde_json keeps the
        // text's order here: docs/ARCHITECTURE.md, "Dependencies").
        Value::Object(mut map) => {
            map.sort_keys();
            Ok(map.iter().map(|(k, o)| entry(k.clone(), o)).collect())
        }
        other => bail!("unexpected `nix path-info --json` output: {other}"),
    }
}

/// `nix path-info --json [--store URI] [-r] [-S] PATH`.
pub fn command(store: Option<&str>, path: &str, recursive: bool, closure_size: bool) -> Command {
    let mut c = crate::nix::command();
    c.args(["path-info", "--json"]);
    if let Some(s) = store {
        c.args(["--store", s]);
    }
    if recursive {
        c.arg("-r");
    }
    if closure_size {
        c.arg("-S");
    }
    c.arg(path);
    c
}

/// Total NAR bytes and path count of `paths` (the output of `-r`).
pub fn totals(infos: &[PathInfo]) -> (u64, u64) {
    (infos.iter().map(|i| i.nar_size).sum(), infos.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_array_shape_of_nix_2_8() {
        let j = r#"[{"path":"/nix/store/aaa-x","narHash":"sha256:1","narSize":120,"references":[],"closureSize":300,"valid":true},
                    {"path":"/nix/store/bbb-y","valid":false}]"#;
        let v = parse(j).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].path, "/nix/store/aaa-x");
        assert!(v[0].valid);
        assert_eq!(v[0].nar_size, 120);
        assert_eq!(v[0].closure_size, Some(300));
        assert!(v[0].references.is_empty());
        assert!(!v[1].valid);
    }

    #[test]
    fn parses_object_shape_of_nix_2_19() {
        let j = r#"{"/nix/store/aaa-x":{"narHash":"sha256-x","narSize":120,"references":[]},
                    "/nix/store/bbb-y":null}"#;
        let v = parse(j).unwrap();
        assert_eq!(v.len(), 2);
        let a = v.iter().find(|i| i.path == "/nix/store/aaa-x").unwrap();
        assert!(a.valid);
        assert_eq!(a.nar_size, 120);
        let b = v.iter().find(|i| i.path == "/nix/store/bbb-y").unwrap();
        assert!(!b.valid);
        assert_eq!(totals(&v), (120, 2));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("42").is_err());
        assert!(parse("not json").is_err());
    }
}
