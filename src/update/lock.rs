//! `flake.lock` (format versions 5–7): typed nodes, the tree of input paths seen from
//! the root, and the diff between two locks.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Where a locked input comes from (`locked.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    Github,
    Gitlab,
    Sourcehut,
    Git,
    Hg,
    Path,
    Tarball,
    File,
    Indirect,
    #[serde(other)]
    Other,
}

/// A `locked` or `original` attribute set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRef {
    #[serde(rename = "type")]
    pub kind: SourceType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nar_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev_count: Option<u64>,
    /// Fields this type does not name (`dir`, `submodules`, `id`, …); kept so that two
    /// locks differing only there still count as changed.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// One input of a node: a node name, or a `follows` path from the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InputRef {
    Node(String),
    Follows(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    #[serde(default)]
    pub inputs: BTreeMap<String, InputRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<SourceRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<SourceRef>,
    #[serde(default = "yes")]
    pub flake: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlakeLock {
    pub nodes: BTreeMap<String, Node>,
    pub root: String,
    pub version: u32,
}

/// Versions whose node layout this parser understands.
pub const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u32> = 5..=7;

impl FlakeLock {
    /// Parse lock text; errors name `file`, and line and column for bad JSON.
    pub fn parse(text: &str, file: &Path) -> Result<Self> {
        let lock: FlakeLock = serde_json::from_str(text).map_err(|e| {
            let full = e.to_string();
            let what = full.split(" at line ").next().unwrap_or(&full);
            anyhow::anyhow!(
                "{}:{}:{}: not a valid flake.lock: {what}\n  fix the file or restore it (`git checkout -- flake.lock`), then run again",
                file.display(),
                e.line(),
                e.column()
            )
        })?;
        if !SUPPORTED_VERSIONS.contains(&lock.version) {
            bail!(
                "{}: flake.lock version {} is not supported (expected {}..={}); re-lock with a current Nix",
                file.display(),
                lock.version,
                SUPPORTED_VERSIONS.start(),
                SUPPORTED_VERSIONS.end()
            );
        }
        if !lock.nodes.contains_key(&lock.root) {
            bail!(
                "{}: root node `{}` is missing from `nodes`",
                file.display(),
                lock.root
            );
        }
        Ok(lock)
    }

    /// Read `file`; a missing file is an empty lock (a flake locked for the first time).
    pub fn read(file: &Path) -> Result<Self> {
        match std::fs::read_to_string(file) {
            Ok(text) => Self::parse(&text, file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::empty()),
            Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
        }
    }

    pub fn empty() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "root".to_string(),
            Node {
                inputs: BTreeMap::new(),
                locked: None,
                original: None,
                flake: true,
            },
        );
        Self {
            nodes,
            root: "root".into(),
            version: 7,
        }
    }

    /// Every input reachable from the root, keyed by its path (`home-manager/nixpkgs`).
    pub fn input_tree(&self) -> BTreeMap<String, Resolved> {
        let mut out = BTreeMap::new();
        self.walk(&self.root, "", &mut out, 0);
        out
    }

    fn walk(&self, node: &str, prefix: &str, out: &mut BTreeMap<String, Resolved>, depth: usize) {
        // Locks are trees of references; the bound only guards against a corrupt, cyclic lock.
        if depth > 16 {
            return;
        }
        let Some(n) = self.nodes.get(node) else {
            return;
        };
        for (name, input) in &n.inputs {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            match input {
                InputRef::Follows(target) => {
                    out.insert(path, Resolved::Follows(target.join("/")));
                }
                InputRef::Node(child) => {
                    if let Some(c) = self.nodes.get(child) {
                        out.insert(path.clone(), Resolved::Locked(Box::new(c.clone())));
                        self.walk(child, &path, out, depth + 1);
                    }
                }
            }
        }
    }
}

/// What an input path resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    Locked(Box<Node>),
    /// `follows` another input, given as a root-relative path (`""` = the root flake).
    Follows(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChangedInput {
    pub name: String,
    pub old: SourceRef,
    pub new: SourceRef,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FollowsChange {
    pub name: String,
    /// `None` when the input was locked on its own (not following anything).
    pub old: Option<String>,
    pub new: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct LockDiff {
    pub changed: Vec<ChangedInput>,
    pub added: Vec<(String, SourceRef)>,
    pub removed: Vec<(String, SourceRef)>,
    pub follows: Vec<FollowsChange>,
}

impl LockDiff {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.follows.is_empty()
    }
}

fn locked_of(r: &Resolved) -> Option<&SourceRef> {
    match r {
        Resolved::Locked(n) => n.locked.as_ref(),
        Resolved::Follows(_) => None,
    }
}

fn follows_of(r: &Resolved) -> Option<String> {
    match r {
        Resolved::Follows(t) => Some(t.clone()),
        Resolved::Locked(_) => None,
    }
}

/// Compare two locks input path by input path.
pub fn diff_locks(old: &FlakeLock, new: &FlakeLock) -> LockDiff {
    let (a, b) = (old.input_tree(), new.input_tree());
    let mut d = LockDiff::default();
    for (name, ra) in &a {
        match b.get(name) {
            None => {
                if let Some(l) = locked_of(ra) {
                    d.removed.push((name.clone(), l.clone()));
                }
            }
            Some(rb) => {
                let (fa, fb) = (follows_of(ra), follows_of(rb));
                if fa != fb {
                    d.follows.push(FollowsChange {
                        name: name.clone(),
                        old: fa,
                        new: fb,
                    });
                }
                if let (Some(la), Some(lb)) = (locked_of(ra), locked_of(rb)) {
                    if la != lb {
                        d.changed.push(ChangedInput {
                            name: name.clone(),
                            old: la.clone(),
                            new: lb.clone(),
                        });
                    }
                }
            }
        }
    }
    for (name, rb) in &b {
        if !a.contains_key(name) {
            if let Some(l) = locked_of(rb) {
                d.added.push((name.clone(), l.clone()));
            }
        }
    }
    d
}

/// A short, human-readable revision: 7 hex digits of `rev`, else of the NAR hash.
pub fn short_rev(r: &SourceRef) -> String {
    if let Some(rev) = &r.rev {
        return rev.chars().take(7).collect();
    }
    if let Some(h) = &r.nar_hash {
        let tail = h.split_once('-').map(|(_, t)| t).unwrap_or(h);
        return format!("narHash {}", tail.chars().take(7).collect::<String>());
    }
    "-".into()
}

/// Where the input lives, for the table (`github:NixOS/nixpkgs`, a URL or a path).
pub fn describe_source(r: &SourceRef) -> String {
    match r.kind {
        SourceType::Github | SourceType::Gitlab | SourceType::Sourcehut => {
            let scheme = match r.kind {
                SourceType::Github => "github",
                SourceType::Gitlab => "gitlab",
                _ => "sourcehut",
            };
            format!(
                "{scheme}:{}/{}",
                r.owner.as_deref().unwrap_or("?"),
                r.repo.as_deref().unwrap_or("?")
            )
        }
        // Locked git/hg URLs drop the `git+` of the flake reference; put it back.
        SourceType::Git | SourceType::Hg => {
            let scheme = if r.kind == SourceType::Git {
                "git+"
            } else {
                "hg+"
            };
            match &r.url {
                Some(u) if u.starts_with(scheme) => u.clone(),
                Some(u) => format!("{scheme}{u}"),
                None => scheme.trim_end_matches('+').to_string(),
            }
        }
        _ => r
            .url
            .clone()
            .or_else(|| r.path.clone())
            .unwrap_or_else(|| format!("{:?}", r.kind)),
    }
}

/// A web link showing what changed between two revisions, for forges that have one.
/// sourcehut has no compare view, so it links the new revision's log.
pub fn compare_link(old: &SourceRef, new: &SourceRef) -> Option<String> {
    if old.kind != new.kind
        || old.owner != new.owner
        || old.repo != new.repo
        || old.host != new.host
    {
        return None;
    }
    let (owner, repo) = (new.owner.as_deref()?, new.repo.as_deref()?);
    let (a, b) = (old.rev.as_deref()?, new.rev.as_deref()?);
    match new.kind {
        SourceType::Github => {
            let host = new.host.as_deref().unwrap_or("github.com");
            Some(format!("https://{host}/{owner}/{repo}/compare/{a}...{b}"))
        }
        SourceType::Gitlab => {
            let host = new.host.as_deref().unwrap_or("gitlab.com");
            Some(format!("https://{host}/{owner}/{repo}/-/compare/{a}...{b}"))
        }
        SourceType::Sourcehut => {
            let host = new.host.as_deref().unwrap_or("git.sr.ht");
            let owner = if owner.starts_with('~') {
                owner.to_string()
            } else {
                format!("~{owner}")
            };
            Some(format!("https://{host}/{owner}/{repo}/log/{b}"))
        }
        _ => None,
    }
}

/// `lastModified` (Unix seconds) as a UTC date, `YYYY-MM-DD`.
pub fn format_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> FlakeLock {
        FlakeLock::parse(text, Path::new("flake.lock")).unwrap()
    }

    const LOCK: &str = r#"{
  "nodes": {
    "home-manager": {
      "inputs": { "nixpkgs": ["nixpkgs"] },
      "locked": { "lastModified": 1700000000, "narHash": "sha256-abc", "owner": "nix-community",
                  "repo": "home-manager", "rev": "1111111111111111111111111111111111111111", "type": "github" },
      "original": { "owner": "nix-community", "repo": "home-manager", "type": "github" }
    },
    "nixpkgs": {
      "locked": { "lastModified": 1731000000, "narHash": "sha256-def", "owner": "NixOS", "repo": "nixpkgs",
                  "rev": "2222222222222222222222222222222222222222", "type": "github" },
      "original": { "owner": "NixOS", "ref": "nixos-unstable", "repo": "nixpkgs", "type": "github" }
    },
    "local": {
      "flake": false,
      "locked": { "lastModified": 1, "narHash": "sha256-xyz", "path": "/src/x", "type": "path", "dir": "sub" },
      "original": { "path": "/src/x", "type": "path" }
    },
    "root": { "inputs": { "home-manager": "home-manager", "nixpkgs": "nixpkgs", "local": "local" } }
  },
  "root": "root",
  "version": 7
}"#;

    #[test]
    fn parses_typed_nodes_and_follows() {
        let lock = parse(LOCK);
        let hm = &lock.nodes["home-manager"];
        assert_eq!(
            hm.inputs["nixpkgs"],
            InputRef::Follows(vec!["nixpkgs".into()])
        );
        let l = hm.locked.as_ref().unwrap();
        assert_eq!(l.kind, SourceType::Github);
        assert_eq!(l.last_modified, Some(1_700_000_000));
        assert_eq!(
            lock.nodes["nixpkgs"]
                .original
                .as_ref()
                .unwrap()
                .git_ref
                .as_deref(),
            Some("nixos-unstable")
        );
        let local = &lock.nodes["local"];
        assert!(!local.flake);
        assert_eq!(local.locked.as_ref().unwrap().extra["dir"], "sub");
        let tree = lock.input_tree();
        assert_eq!(
            tree["home-manager/nixpkgs"],
            Resolved::Follows("nixpkgs".into())
        );
        assert!(matches!(tree["nixpkgs"], Resolved::Locked(_)));
    }

    #[test]
    fn bad_json_names_file_line_and_column() {
        let err =
            FlakeLock::parse("{\n  \"nodes\": {,\n}", Path::new("/repo/flake.lock")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("/repo/flake.lock:2:"), "{msg}");
        assert!(msg.contains("not a valid flake.lock"), "{msg}");
    }

    #[test]
    fn unsupported_version_and_missing_root_are_errors() {
        let v3 = r#"{"nodes":{"root":{}},"root":"root","version":3}"#;
        assert!(FlakeLock::parse(v3, Path::new("f"))
            .unwrap_err()
            .to_string()
            .contains("version 3"));
        let noroot = r#"{"nodes":{},"root":"root","version":7}"#;
        assert!(FlakeLock::parse(noroot, Path::new("f")).is_err());
    }

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(1_731_000_000), "2024-11-07");
        assert_eq!(format_date(951_782_400), "2000-02-29");
        assert_eq!(format_date(1_700_000_000), "2023-11-14");
    }

    #[test]
    fn compare_links_per_forge() {
        let lock = parse(LOCK);
        let a = lock.nodes["nixpkgs"].locked.clone().unwrap();
        let mut b = a.clone();
        b.rev = Some("3333333333333333333333333333333333333333".into());
        assert_eq!(
            compare_link(&a, &b).unwrap(),
            "https://github.com/NixOS/nixpkgs/compare/2222222222222222222222222222222222222222...3333333333333333333333333333333333333333"
        );
        let (mut ga, mut gb) = (a.clone(), b.clone());
        ga.kind = SourceType::Gitlab;
        gb.kind = SourceType::Gitlab;
        assert!(compare_link(&ga, &gb)
            .unwrap()
            .starts_with("https://gitlab.com/NixOS/nixpkgs/-/compare/2222222"));
        ga.kind = SourceType::Sourcehut;
        gb.kind = SourceType::Sourcehut;
        assert_eq!(
            compare_link(&ga, &gb).unwrap(),
            "https://git.sr.ht/~NixOS/nixpkgs/log/3333333333333333333333333333333333333333"
        );
        // A moved repository has no meaningful compare view.
        let mut moved = b.clone();
        moved.owner = Some("fork".into());
        assert_eq!(compare_link(&a, &moved), None);
        let local = lock.nodes["local"].locked.clone().unwrap();
        assert_eq!(compare_link(&local, &local), None);
        assert_eq!(short_rev(&local), "narHash xyz");
    }
}
