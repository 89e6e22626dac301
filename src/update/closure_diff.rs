//! Package-level diff of two closures, like nvd / dix: store paths are grouped by
//! package name, versions compared with Nix's rules.

use super::version::compare_versions;
pub use crate::nix::closure::ClosurePath;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// Output names that nixpkgs appends after the version (`openssl-3.0.14-dev`); they are
/// the same package, not a different version.
const OUTPUT_SUFFIXES: &[&str] = &[
    "bin", "dev", "out", "lib", "man", "doc", "devdoc", "info", "debug", "static", "lib32",
    "terminfo",
];

/// `/nix/store/<hash>-<name>` → `<name>` (the part after the 32-char hash).
pub fn store_path_name(path: &str) -> &str {
    let base = path.rsplit('/').next().unwrap_or(path);
    match base.split_once('-') {
        Some((hash, name)) if hash.len() == 32 => name,
        _ => base,
    }
}

/// Split a store path name into (package name, version) like nvd: the version starts at
/// the first `-` followed by a digit; a trailing output name is dropped.
pub fn parse_name(name: &str) -> (String, String) {
    let bytes = name.as_bytes();
    let split = (0..bytes.len())
        .find(|&i| bytes[i] == b'-' && bytes.get(i + 1).is_some_and(|b| b.is_ascii_digit()));
    let Some(i) = split else {
        return (name.to_string(), String::new());
    };
    let (pname, mut version) = (&name[..i], &name[i + 1..]);
    if let Some((v, out)) = version.rsplit_once('-') {
        if OUTPUT_SUFFIXES.contains(&out) {
            version = v;
        }
    }
    (pname.to_string(), version.to_string())
}

/// A closure reduced to package name → versions present, plus its total size.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackageSet {
    pub versions: BTreeMap<String, BTreeSet<String>>,
    pub nar_size: u64,
}

impl PackageSet {
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a ClosurePath>) -> Self {
        let mut set = PackageSet::default();
        for p in paths {
            set.nar_size += p.nar_size;
            let name = store_path_name(&p.path);
            if name.ends_with(".drv") {
                continue;
            }
            let (pname, version) = parse_name(name);
            set.versions.entry(pname).or_default().insert(version);
        }
        set
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Upgraded,
    Downgraded,
    /// Same newest version, but the set of versions differs (several versions of one name).
    Changed,
    Added,
    Removed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PackageChange {
    pub name: String,
    pub kind: ChangeKind,
    /// Sorted oldest first; empty for an added package.
    pub old: Vec<String>,
    /// Sorted oldest first; empty for a removed package.
    pub new: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClosureDiff {
    pub changes: Vec<PackageChange>,
    pub old_size: u64,
    pub new_size: u64,
}

impl ClosureDiff {
    pub fn size_delta(&self) -> i64 {
        self.new_size as i64 - self.old_size as i64
    }
    pub fn count(&self, kind: ChangeKind) -> usize {
        self.changes.iter().filter(|c| c.kind == kind).count()
    }
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.old_size == self.new_size
    }
}

fn sorted(set: &BTreeSet<String>) -> Vec<String> {
    let mut v: Vec<String> = set.iter().cloned().collect();
    v.sort_by(|a, b| compare_versions(a, b).then_with(|| a.cmp(b)));
    v
}

/// Diff two package sets by name. Unversioned paths (`etc`, `unit-foo.service`) only
/// count as added or removed, since a new hash of the same name tells a reviewer nothing.
pub fn diff_package_sets(old: &PackageSet, new: &PackageSet) -> ClosureDiff {
    let mut changes = Vec::new();
    let names: BTreeSet<&String> = old.versions.keys().chain(new.versions.keys()).collect();
    for name in names {
        let (o, n) = (old.versions.get(name), new.versions.get(name));
        let change = match (o, n) {
            (None, Some(n)) => PackageChange {
                name: name.clone(),
                kind: ChangeKind::Added,
                old: vec![],
                new: sorted(n),
            },
            (Some(o), None) => PackageChange {
                name: name.clone(),
                kind: ChangeKind::Removed,
                old: sorted(o),
                new: vec![],
            },
            (Some(o), Some(n)) if o != n => {
                let (o, n) = (sorted(o), sorted(n));
                let kind = match compare_versions(o.last().unwrap(), n.last().unwrap()) {
                    Ordering::Less => ChangeKind::Upgraded,
                    Ordering::Greater => ChangeKind::Downgraded,
                    Ordering::Equal => ChangeKind::Changed,
                };
                PackageChange {
                    name: name.clone(),
                    kind,
                    old: o,
                    new: n,
                }
            }
            _ => continue,
        };
        changes.push(change);
    }
    ClosureDiff {
        changes,
        old_size: old.nar_size,
        new_size: new.nar_size,
    }
}

/// Diff two closures (lists of store paths with sizes).
pub fn diff_closures(old: &[ClosurePath], new: &[ClosurePath]) -> ClosureDiff {
    diff_package_sets(&PackageSet::from_paths(old), &PackageSet::from_paths(new))
}

/// The packages of `environment.systemPackages`: the references of the toplevel's
/// `system-path` (what `<toplevel>/sw` points at). `None` when the closure has none,
/// e.g. for a toplevel not built by NixOS.
pub fn system_package_names(closure: &[ClosurePath], toplevel: &str) -> Option<BTreeSet<String>> {
    let by_path: BTreeMap<&str, &ClosurePath> =
        closure.iter().map(|p| (p.path.as_str(), p)).collect();
    let top = by_path.get(toplevel)?;
    let sw = top
        .references
        .iter()
        .find(|r| store_path_name(r) == "system-path")?;
    let sw = by_path.get(sw.as_str())?;
    Some(
        sw.references
            .iter()
            .filter(|r| *r != &sw.path)
            .map(|r| parse_name(store_path_name(r)).0)
            .collect(),
    )
}

/// A host's diff with the system packages set apart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostDiff {
    pub diff: ClosureDiff,
    /// Names in `environment.systemPackages` (old or new); `None` when unknown.
    pub system_packages: Option<BTreeSet<String>>,
}

impl HostDiff {
    pub fn new(old: &[ClosurePath], old_top: &str, new: &[ClosurePath], new_top: &str) -> Self {
        let diff = diff_closures(old, new);
        let system_packages = match (
            system_package_names(old, old_top),
            system_package_names(new, new_top),
        ) {
            (None, None) => None,
            (a, b) => Some(a.into_iter().chain(b).flatten().collect()),
        };
        HostDiff {
            diff,
            system_packages,
        }
    }

    /// (system packages, everything else), each in name order.
    pub fn split(&self) -> (Vec<&PackageChange>, Vec<&PackageChange>) {
        let sys = self.system_packages.as_ref();
        self.diff
            .changes
            .iter()
            .partition(|c| sys.is_some_and(|s| s.contains(&c.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn cp(name: &str, size: u64) -> ClosurePath {
        ClosurePath {
            path: format!("/nix/store/{}-{name}", "a".repeat(32)),
            nar_size: size,
            references: vec![],
        }
    }

    #[test]
    fn parses_names_like_nvd() {
        assert_eq!(
            parse_name("linux-6.12.40"),
            ("linux".into(), "6.12.40".into())
        );
        assert_eq!(
            parse_name("linux-6.12.40-modules"),
            ("linux".into(), "6.12.40-modules".into())
        );
        assert_eq!(
            parse_name("openssl-3.0.14-dev"),
            ("openssl".into(), "3.0.14".into())
        );
        assert_eq!(
            parse_name("python3.12-requests-2.32.3"),
            ("python3.12-requests".into(), "2.32.3".into())
        );
        assert_eq!(
            parse_name("nss-cacert-3.101"),
            ("nss-cacert".into(), "3.101".into())
        );
        assert_eq!(parse_name("etc"), ("etc".into(), "".into()));
        assert_eq!(
            parse_name("unit-sshd.service"),
            ("unit-sshd.service".into(), "".into())
        );
        assert_eq!(
            parse_name("nixos-system-nas-25.11.20251101.abcdef0"),
            ("nixos-system-nas".into(), "25.11.20251101.abcdef0".into())
        );
        assert_eq!(
            store_path_name("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-samba-4.20.1"),
            "samba-4.20.1"
        );
    }

    #[test]
    fn upgrade_downgrade_add_remove_and_size() {
        let old = [
            cp("linux-6.12.40", 100),
            cp("samba-4.20.1", 50),
            cp("htop-3.3.0", 5),
            cp("etc", 1),
        ];
        let new = [
            cp("linux-6.12.44", 110),
            cp("samba-4.19.9", 45),
            cp("btop-1.4.0", 7),
            cp("etc", 2),
        ];
        let d = diff_closures(&old, &new);
        let get = |n: &str| d.changes.iter().find(|c| c.name == n).unwrap();
        assert_eq!(get("linux").kind, ChangeKind::Upgraded);
        assert_eq!(get("linux").old, vec!["6.12.40"]);
        assert_eq!(get("linux").new, vec!["6.12.44"]);
        assert_eq!(get("samba").kind, ChangeKind::Downgraded);
        assert_eq!(get("btop").kind, ChangeKind::Added);
        assert_eq!(get("htop").kind, ChangeKind::Removed);
        // Same unversioned name with a new hash is not a package change.
        assert!(d.changes.iter().all(|c| c.name != "etc"));
        assert_eq!(d.changes.len(), 4);
        assert_eq!((d.old_size, d.new_size, d.size_delta()), (156, 164, 8));
    }

    #[test]
    fn several_versions_of_one_name() {
        let old = [
            cp("python3-3.11.9", 1),
            cp("python3-3.12.4", 1),
            cp("glibc-2.39-52", 1),
        ];
        let new = [
            cp("python3-3.12.4", 1),
            cp("python3-3.12.4-env", 1),
            cp("glibc-2.39-52", 1),
            cp("glibc-2.40-36", 1),
        ];
        let d = diff_closures(&old, &new);
        let py = d.changes.iter().find(|c| c.name == "python3").unwrap();
        // 3.11.9 dropped, 3.12.4-env appeared: newest differs, so it is an upgrade.
        assert_eq!(py.old, vec!["3.11.9", "3.12.4"]);
        assert_eq!(py.new, vec!["3.12.4", "3.12.4-env"]);
        let glibc = d.changes.iter().find(|c| c.name == "glibc").unwrap();
        assert_eq!(glibc.kind, ChangeKind::Upgraded);
        assert_eq!(glibc.new, vec!["2.39-52", "2.40-36"]);
        // Dropping an older second version keeps the newest: "changed", not up/down.
        let d2 = diff_closures(
            &[cp("zlib-1.2.13", 1), cp("zlib-1.3.1", 1)],
            &[cp("zlib-1.3.1", 1)],
        );
        assert_eq!(d2.changes[0].kind, ChangeKind::Changed);
    }

    #[test]
    fn identical_closures_have_no_changes() {
        let c = [cp("a-1", 1), cp("b-2", 2)];
        assert!(diff_closures(&c, &c).is_empty());
    }

    #[test]
    fn system_packages_come_from_system_path_references() {
        let hash = |c: char| c.to_string().repeat(32);
        let top = format!("/nix/store/{}-nixos-system-nas-25.11", hash('t'));
        let sw = format!("/nix/store/{}-system-path", hash('s'));
        let htop = format!("/nix/store/{}-htop-3.3.0", hash('h'));
        let closure = vec![
            ClosurePath {
                path: top.clone(),
                nar_size: 1,
                references: vec![sw.clone()],
            },
            ClosurePath {
                path: sw.clone(),
                nar_size: 1,
                references: vec![htop.clone(), sw.clone()],
            },
            ClosurePath {
                path: htop,
                nar_size: 1,
                references: vec![],
            },
        ];
        let names = system_package_names(&closure, &top).unwrap();
        assert_eq!(names.into_iter().collect::<Vec<_>>(), vec!["htop"]);
        assert_eq!(system_package_names(&closure[1..], &top), None);
    }
}
