//! Closures: `nix path-info -r --json`, whose shape changed in Nix 2.19 (array of
//! objects → object keyed by store path). The parser accepts both, whatever the local
//! version, because the JSON may come from another machine's Nix.

use super::pathinfo;
use anyhow::{bail, Context, Result};

/// One store path of a closure, as `nix path-info -r --json` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosurePath {
    pub path: String,
    pub nar_size: u64,
    pub references: Vec<String>,
}

/// Parse `nix path-info --json` output of either shape, sorted by path. Every path
/// must be valid: a closure with a hole would give a wrong package diff.
pub fn parse_path_info(json: &str) -> Result<Vec<ClosurePath>> {
    let mut out = Vec::new();
    for info in pathinfo::parse(json)? {
        if !info.valid {
            bail!("{} is not valid in the store", info.path);
        }
        out.push(ClosurePath {
            path: info.path,
            nar_size: info.nar_size,
            references: info.references,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// `nix path-info --recursive --json PATH`.
pub fn path_info_args(path: &str) -> Vec<String> {
    ["path-info", "--recursive", "--json", path]
        .map(String::from)
        .to_vec()
}

/// The closure of a local store path.
pub fn closure(path: &str) -> Result<Vec<ClosurePath>> {
    let json = crate::process::run_stdout(crate::nix::command().args(path_info_args(path)))
        .with_context(|| format!("reading the closure of {path}"))?;
    parse_path_info(&json)
}

/// Shell command run on a remote host: print the system profile's store path on the
/// first line, then its closure as JSON. Works with whatever Nix the host runs.
pub fn remote_system_closure_script(profile: &str) -> String {
    let p = crate::lines::shell::quote(profile);
    format!(
        "set -e; p=$(readlink -f {p}); echo \"$p\"; \
         {} path-info --recursive --json \"$p\"",
        crate::nix::NIX_SH
    )
}

/// Split the output of [`remote_system_closure_script`] into (toplevel, closure).
pub fn parse_remote_system_closure(out: &str) -> Result<(String, Vec<ClosurePath>)> {
    let (first, rest) = out.split_once('\n').context("no output from the host")?;
    let top = first.trim();
    if !top.starts_with("/nix/store/") {
        bail!("the host's system profile resolves to `{top}`, not a store path");
    }
    Ok((top.to_string(), parse_path_info(rest)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_array_shape_of_nix_2_8() {
        let json = r#"[{"path":"/nix/store/aaaa-b-1.0","narHash":"sha256:x","narSize":120,"references":["/nix/store/aaaa-b-1.0"],"valid":true},
                       {"path":"/nix/store/cccc-a-2","narSize":8,"references":[]}]"#;
        let v = parse_path_info(json).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].path, "/nix/store/aaaa-b-1.0");
        assert_eq!(v[0].nar_size, 120);
        assert_eq!(v[0].references, vec!["/nix/store/aaaa-b-1.0"]);
    }

    #[test]
    fn parses_object_shape_of_nix_2_19() {
        let json = r#"{"/nix/store/cccc-a-2":{"narHash":"sha256-x","narSize":8,"references":[],"deriver":null},
                       "/nix/store/aaaa-b-1.0":{"narSize":120,"references":["/nix/store/cccc-a-2"]}}"#;
        let v = parse_path_info(json).unwrap();
        assert_eq!(v.iter().map(|p| p.nar_size).sum::<u64>(), 128);
        assert_eq!(v[0].path, "/nix/store/aaaa-b-1.0");
        assert_eq!(v[0].references, vec!["/nix/store/cccc-a-2"]);
        let invalid = parse_path_info(r#"{"/nix/store/x-y":null}"#).unwrap_err();
        assert!(invalid.to_string().contains("not valid"));
    }

    #[test]
    fn remote_script_and_its_output() {
        let s = remote_system_closure_script("/nix/var/nix/profiles/system");
        assert!(
            s.contains("readlink -f /nix/var/nix/profiles/system"),
            "{s}"
        );
        assert!(s.contains("path-info --recursive --json"), "{s}");
        let (top, c) = parse_remote_system_closure(
            "/nix/store/t-top\n[{\"path\":\"/nix/store/t-top\",\"narSize\":1}]",
        )
        .unwrap();
        assert_eq!(top, "/nix/store/t-top");
        assert_eq!(c.len(), 1);
        assert!(parse_remote_system_closure("/run/x\n[]").is_err());
    }
}
