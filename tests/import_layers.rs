//! The import graph of hearth's top-level modules has no cycle and no upward edge.
//!
//! Every `crate::<module>` path in code (comments are ignored) is an edge from the file's
//! top-level module to `<module>`. The layers below are the rule written down in
//! docs/ARCHITECTURE.md ("Import layering"): a module may use only modules of a lower
//! layer. A new top-level module must be given a layer here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first. A module may import only modules of a strictly lower layer.
const LAYERS: &[&[&str]] = &[
    &["lines", "events", "files"],
    &["process", "ui"],
    &["ssh"],
    &["nix"],
    &["values"],
    &["catalog"],
    &["inventory"],
    &["builders"],
    &["compile"],
    &["secrets"],
    &["deploy", "install", "lab", "update", "check"],
    &["cli"],
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`src/deploy/plan.rs` → `deploy`).
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// Code of a line without its `//` comment (doc comments included). A `//` inside a
/// string literal also ends the scan, which can only hide an edge in a string, not a real one.
fn code(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

/// `crate::x` paths in `text`, `use crate::{a, b}` groups included.
fn targets(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_group = false;
    for line in text.lines().map(code) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                in_group = true;
                rest = group;
                continue;
            }
            out.insert(ident(rest));
        }
        if in_group {
            // Inside `use crate::{…}`: every leading identifier of a comma-separated item.
            for item in rest.split(',') {
                let name = ident(item.trim_start_matches(|c: char| c.is_whitespace() || c == '{'));
                if !name.is_empty() && name != "self" {
                    out.insert(name);
                }
            }
            if line.contains("};") {
                in_group = false;
            }
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn graph() -> Graph {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut edges = Graph::new();
    for file in files {
        let Some(from) = module_of(&file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for to in targets(&text) {
            if to != from {
                let rel = file.strip_prefix(src()).unwrap().display().to_string();
                edges
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .insert(rel);
            }
        }
    }
    edges
}

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn top_level_modules() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_string())
        .collect()
}

#[test]
fn every_top_level_module_has_a_layer() {
    let missing: Vec<_> = top_level_modules()
        .into_iter()
        .filter(|m| layer(m).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "give these modules a layer in LAYERS (tests/import_layers.rs) and docs/ARCHITECTURE.md: {missing:?}"
    );
}

#[test]
fn imports_only_go_down_the_layers() {
    let mut upward = Vec::new();
    for (from, tos) in graph() {
        for (to, files) in tos {
            let (Some(f), Some(t)) = (layer(&from), layer(&to)) else {
                continue;
            };
            if t >= f {
                upward.push(format!("{from} → {to} (in {files:?})"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that do not go to a lower layer:\n{}",
        upward.join("\n")
    );
}

type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// A cycle of `edges` as a path that ends where it starts, if there is one.
fn find_cycle(edges: &Graph) -> Option<Vec<String>> {
    // Depth-first search with colours; a grey node reached again closes a cycle.
    fn visit(
        n: &str,
        edges: &Graph,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(1) => {
                let start = path.iter().position(|p| p == n).unwrap();
                let mut cycle = path[start..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            Some(2) => return None,
            _ => {}
        }
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for next in edges.get(n).into_iter().flat_map(|m| m.keys()) {
            if let Some(c) = visit(next, edges, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut state, &mut Vec::new()))
}

#[test]
fn the_import_graph_has_no_cycle() {
    if let Some(cycle) = find_cycle(&graph()) {
        panic!("import cycle: {}", cycle.join(" → "));
    }
}

#[test]
fn the_scanner_sees_paths_groups_and_skips_comments() {
    let text = "use crate::inventory::Host;\n\
                // use crate::deploy::x;\n\
                use crate::{nix, ssh::SshHost};\n\
                let x = crate::process::run(); /// crate::update\n\
                use crate::{\n    lines::shell,\n    values::Kind,\n};\n";
    let got: Vec<_> = targets(text).into_iter().collect();
    assert_eq!(
        got,
        ["inventory", "lines", "nix", "process", "ssh", "values"]
    );
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut g = Graph::new();
    for (a, b) in [
        ("catalog", "inventory"),
        ("inventory", "values"),
        ("values", "catalog"),
    ] {
        g.entry(a.into()).or_default().entry(b.into()).or_default();
    }
    assert_eq!(
        find_cycle(&g).unwrap(),
        ["catalog", "inventory", "values", "catalog"]
    );
    g.remove("values");
    assert_eq!(find_cycle(&g), None);
}
