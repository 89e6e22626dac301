//! Every option path the compiler emits must be listed in docs/options-manifest.toml
//! (with its type and declaring file, checked against nixpkgs 25.11+). The fixture
//! `everything` turns on every built-in catalog service and every compiler feature.

mod compile_common;

use compile_common::*;
use hearth::catalog::Catalog;
use hearth::compile::{self, nix::Value};
use std::collections::BTreeSet;
use std::path::Path;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    option: Vec<OptionEntry>,
    kernel_module: Vec<KernelModule>,
}

/// A kernel module the Helios64 module loads, with the kernel Makefile line defining it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KernelModule {
    name: String,
    makefile: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionEntry {
    /// Dotted path; `<name>` matches any attribute name, `*` a list element.
    path: String,
    #[serde(rename = "type")]
    ty: String,
    /// The file declaring the option.
    declared_in: String,
    /// Repository of `declared_in` (`NixOS/nixpkgs`, `nix-community/disko`, `ryantm/agenix`, or `hearth`).
    repo: String,
    /// "yes" when tests/nixos_eval.rs evaluates the option against its real declaration.
    harness: String,
}

fn manifest() -> Manifest {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/options-manifest.toml");
    toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Option paths set in a parsed file: descend attribute sets (and list elements that are
/// attribute sets, as `*`) until a manifest entry matches; report leaves that never match.
fn walk(
    v: &Value,
    path: &mut Vec<String>,
    patterns: &[Vec<String>],
    found: &mut BTreeSet<String>,
    unknown: &mut BTreeSet<String>,
) {
    if !path.is_empty() {
        if let Some(p) = patterns.iter().find(|p| matches(p, path)) {
            found.insert(p.join("."));
            return;
        }
    }
    match v {
        Value::Attrs(map) if !map.is_empty() => {
            for (k, child) in map {
                path.push(k.clone());
                walk(child, path, patterns, found, unknown);
                path.pop();
            }
        }
        Value::List(items) if items.iter().any(|i| matches!(i, Value::Attrs(_))) => {
            path.push("*".into());
            for item in items {
                walk(item, path, patterns, found, unknown);
            }
            path.pop();
        }
        _ => {
            unknown.insert(path.join("."));
        }
    }
}

fn matches(pattern: &[String], path: &[String]) -> bool {
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(path)
            .all(|(p, k)| p == "<name>" || p == k)
}

#[test]
fn every_emitted_option_is_in_the_manifest() {
    let m = manifest();
    let patterns: Vec<Vec<String>> = m
        .option
        .iter()
        .map(|o| o.path.split('.').map(String::from).collect())
        .collect();
    let repo = copy_fixture("everything");
    let out = compile::compile_repo(repo.path()).unwrap();

    // The fixture must turn on every built-in service.
    let catalog = Catalog::builtin().unwrap();
    let used: BTreeSet<&String> = out
        .resolved
        .hosts
        .values()
        .flat_map(|h| h.services.keys())
        .collect();
    for name in catalog.services.keys() {
        assert!(
            used.contains(name),
            "fixture `everything` does not enable built-in service `{name}`"
        );
    }

    let mut found = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    for (rel, text) in &out.files {
        let file = rel.to_string_lossy();
        if file.ends_with("fleet.nix") || file.starts_with("secrets/") {
            continue; // data for the flake and agenix, not NixOS options
        }
        let mut v = compile::nix::parse_value(text).unwrap();
        if let Value::Attrs(map) = &mut v {
            map.remove("imports");
        }
        walk(&v, &mut Vec::new(), &patterns, &mut found, &mut unknown);
    }
    if std::env::var_os("HEARTH_LIST_OPTIONS").is_some() {
        for u in &unknown {
            println!("UNLISTED {u}");
        }
    }
    assert!(
        unknown.is_empty(),
        "options emitted but not in docs/options-manifest.toml:\n{}",
        unknown.iter().cloned().collect::<Vec<_>>().join("\n")
    );
    // No stale entries either: everything listed is emitted by the fixture.
    let listed: BTreeSet<String> = m.option.iter().map(|o| o.path.clone()).collect();
    let stale: Vec<&String> = listed.difference(&found).collect();
    assert!(
        stale.is_empty(),
        "manifest entries the compiler never emits: {stale:?}"
    );
    let checked = m.option.iter().filter(|o| o.harness == "yes").count();
    println!(
        "coverage: {checked} of {} emitted option paths checked against a real NixOS declaration by tests/nixos_eval.rs",
        m.option.len()
    );
    for o in &m.option {
        assert!(
            o.harness == "yes" || o.harness == "no",
            "{}: harness must be \"yes\" or \"no\"",
            o.path
        );
        assert!(
            !o.ty.is_empty() && !o.declared_in.is_empty(),
            "{} lacks type or file",
            o.path
        );
        assert!(
            [
                "NixOS/nixpkgs",
                "nix-community/disko",
                "ryantm/agenix",
                "hearth"
            ]
            .contains(&o.repo.as_str()),
            "{}: unknown repo {}",
            o.path,
            o.repo
        );
    }
}

#[test]
fn hearth_options_match_docs_catalog() {
    // docs/CATALOG.md is what the fleet's hand-written modules implement.
    let catalog_md =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/CATALOG.md"))
            .unwrap();
    for o in manifest().option.iter().filter(|o| o.repo == "hearth") {
        assert!(
            catalog_md.contains(&format!("`{}`", o.path)),
            "{} missing from docs/CATALOG.md",
            o.path
        );
    }
}

/// The Helios64 module's kernel module names are exactly the manifest's cited list, and each
/// citation's object file is that name (kbuild turns `-` into `_`).
#[test]
fn helios64_kernel_modules_are_cited_in_the_manifest() {
    let m = manifest();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("modules/nixos/helios64.nix");
    let text = std::fs::read_to_string(path).unwrap();
    let mut loaded = BTreeSet::new();
    // `kernelModules` and `availableKernelModules` lists.
    for list in text.split("ernelModules = [").skip(1) {
        let body = &list[..list.find(']').unwrap()];
        for line in body.lines() {
            let code = line.split('#').next().unwrap();
            loaded.extend(code.split('"').skip(1).step_by(2).map(String::from));
        }
    }
    let cited: BTreeSet<String> = m.kernel_module.iter().map(|k| k.name.clone()).collect();
    assert_eq!(
        loaded, cited,
        "modules/nixos/helios64.nix vs docs/options-manifest.toml"
    );
    for k in &m.kernel_module {
        let object = format!("{}.o", k.name.replace('_', "-"));
        let plain = format!("{}.o", k.name);
        assert!(
            k.makefile.contains(&object) || k.makefile.contains(&plain),
            "{}: citation names no {object}",
            k.name
        );
        assert!(
            k.makefile.contains("obj-$(CONFIG_"),
            "{}: no Kconfig symbol",
            k.name
        );
    }
}
