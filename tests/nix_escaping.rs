//! Generated Nix is escaped by construction: for every string kind the compiler writes
//! (`"…"`, `''…''`, attribute names, path literals), arbitrary Unicode is either refused
//! (control characters other than newline and tab) or read back exactly by the real Nix
//! evaluator. Cases are batched into one `nix-instantiate` call so the test takes seconds.

use hearth::compile::nix::{self, NixTextError};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use std::path::Path;
use std::process::Command;

const CASES: usize = 256;

/// Arbitrary Unicode, plus text dense in what Nix interprets (quotes, `$`, `{`, `''`,
/// backslashes, indentation, newlines, control characters).
fn text() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        any::<String>(),
        "[\\\\\"'${} \n\ta-z\r\u{0}\u{1b}\u{7f}\u{85}é🎉]{0,16}",
        "( *[a-z'$]{0,3}(\\$\\{|''|'\\$|\\$\\$)?[a-z]{0,2}\n){1,4} *",
        // Multi-line text the indented form could take, but for one `'` or `$`.
        "([a-z'$]{0,3}(\\$\\{|''|'\\$|\\$\\$)?[a-z} ]{0,3}\n){1,4}[a-z]{0,2}",
        "([a-z]{1,4}[ \t]?[a-z]{0,4}\n\n?){1,4}[a-z]{0,2}",
    ]
}

fn sample<S: Strategy>(s: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| s.new_tree(&mut runner).unwrap().current())
        .collect()
}

fn has_forbidden_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

/// Evaluate `expr` (a Nix file's text) in `dir` and return its JSON value.
fn nix_eval(dir: &Path, expr: &str) -> serde_json::Value {
    let file = dir.join("cases.nix");
    std::fs::write(&file, expr).unwrap();
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(&file)
        .output()
        .expect("nix-instantiate is needed for this test");
    assert!(
        out.status.success(),
        "nix-instantiate failed: {}\n--- input ---\n{expr}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Check `render(s)` for every sample: refused exactly when `s` has a forbidden control
/// character, else `eval` of all accepted literals (one Nix call) gives back the inputs.
fn round_trip(
    kind: &str,
    inputs: Vec<String>,
    render: impl Fn(&str) -> Result<String, NixTextError>,
    wrap: impl Fn(&[String]) -> String,
    read: impl Fn(&serde_json::Value) -> Vec<String>,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut accepted = Vec::new();
    let mut literals = Vec::new();
    for s in inputs {
        match render(&s) {
            Ok(lit) => {
                assert!(!has_forbidden_control(&s), "{kind}: accepted {s:?}");
                assert!(
                    !has_forbidden_control(&lit),
                    "{kind}: control char in {lit:?}"
                );
                literals.push(lit);
                accepted.push(s);
            }
            Err(NixTextError::ControlChar { ch, .. }) => {
                assert!(has_forbidden_control(&s), "{kind}: refused {s:?}");
                assert!(s.contains(ch));
            }
        }
    }
    assert!(accepted.len() > CASES / 3, "{kind}: too few accepted cases");
    let got = read(&nix_eval(dir.path(), &wrap(&literals)));
    for (i, (want, got)) in accepted.iter().zip(&got).enumerate() {
        assert_eq!(
            want, got,
            "{kind} case {i}: literal {} read back differently",
            literals[i]
        );
    }
    assert_eq!(got.len(), accepted.len());
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn list(literals: &[String]) -> String {
    // One literal per line, each in parentheses so nothing can run into its neighbour.
    let mut s = String::from("[\n");
    for l in literals {
        s.push_str(&format!("  ({l})\n"));
    }
    s.push_str("]\n");
    s
}

#[test]
fn double_quoted_strings_round_trip() {
    round_trip("quote", sample(text(), CASES), nix::quote, list, strings);
}

#[test]
fn indented_strings_round_trip() {
    round_trip(
        "indented",
        sample(text(), CASES),
        |s| nix::indented(s, 2),
        list,
        strings,
    );
}

#[test]
fn attribute_names_round_trip() {
    // Each name in its own set, read back with attrNames.
    round_trip(
        "key",
        sample(text(), CASES),
        nix::key,
        |keys| {
            list(
                &keys
                    .iter()
                    .map(|k| format!("{{ {k} = 1; }}"))
                    .collect::<Vec<_>>(),
            )
        },
        |v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|set| {
                    let o = set.as_object().unwrap();
                    assert_eq!(o.len(), 1);
                    o.keys().next().unwrap().clone()
                })
                .collect()
        },
    );
}

#[test]
fn paths_round_trip() {
    // Relative paths of one to three components (no `.`, `..` or empty ones, which Nix
    // normalises away), under `./` or `../`; read back relative to the file's directory.
    let component = text().prop_filter("a path component", |c| {
        !c.is_empty() && c != "." && c != ".." && !c.contains('/')
    });
    let paths = sample(
        (
            prop_oneof![Just("./"), Just("../")],
            proptest::collection::vec(component, 1..4),
        )
            .prop_map(|(start, parts)| format!("{start}{}", parts.join("/"))),
        CASES,
    );
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("d");
    std::fs::create_dir(&sub).unwrap();
    let base = std::fs::canonicalize(&sub).unwrap();
    let parent = base.parent().unwrap().to_path_buf();
    let expected = |p: &str| match p.strip_prefix("./") {
        Some(rest) => format!("{}/{rest}", base.display()),
        None => format!("{}/{}", parent.display(), &p[3..]),
    };
    let mut accepted = Vec::new();
    let mut literals = Vec::new();
    for p in paths {
        match nix::path(&p) {
            Ok(lit) => {
                assert!(!has_forbidden_control(&p), "accepted {p:?}");
                literals.push(format!("toString {lit}"));
                accepted.push(expected(&p));
            }
            Err(_) => assert!(has_forbidden_control(&p), "refused {p:?}"),
        }
    }
    let file = sub.join("cases.nix");
    std::fs::write(&file, list(&literals)).unwrap();
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = strings(&serde_json::from_slice(&out.stdout).unwrap());
    assert_eq!(got.len(), accepted.len());
    for (i, (want, got)) in accepted.iter().zip(&got).enumerate() {
        assert_eq!(want, got, "path case {i}: {}", literals[i]);
    }
}

#[test]
fn the_samba_comment_from_the_issue_stays_a_string() {
    let evil = "Photos\n'${builtins.readFile /etc/hostname}";
    let dir = tempfile::tempdir().unwrap();
    let lit = nix::indented(evil, 3).unwrap();
    assert_eq!(lit, r#""Photos\n'\${builtins.readFile /etc/hostname}""#);
    assert_eq!(nix_eval(dir.path(), &lit), serde_json::json!(evil));
    let spaces = "  two leading spaces\n    and four\n";
    let lit = nix::indented(spaces, 1).unwrap();
    assert_eq!(nix_eval(dir.path(), &lit), serde_json::json!(spaces));
}

/// Arbitrary trees of attribute sets, lists and scalars, with keys and strings from
/// `text()` minus what `validate` refuses.
fn tree() -> impl Strategy<Value = nix::Value> {
    fn strip(s: String) -> String {
        s.replace(|c: char| c.is_control() && c != '\n' && c != '\t', "")
    }
    let clean = text().prop_map(strip as fn(String) -> String);
    let leaf = prop_oneof![
        Just(nix::Value::Null),
        any::<bool>().prop_map(nix::Value::Bool),
        any::<i64>().prop_map(nix::Value::Int),
        Just(nix::Value::Int(i64::MIN)),
        clean.clone().prop_map(nix::Value::Str),
    ];
    leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(nix::Value::List),
            proptest::collection::btree_map(clean.clone(), inner, 0..4).prop_map(nix::Value::Attrs),
        ]
    })
}

fn to_json(v: &nix::Value) -> serde_json::Value {
    use nix::Value as V;
    match v {
        V::Null => serde_json::Value::Null,
        V::Bool(b) => (*b).into(),
        V::Int(i) => (*i).into(),
        V::Str(s) => s.clone().into(),
        V::List(items) => items.iter().map(to_json).collect(),
        V::Attrs(m) => m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect(),
        V::Path(_) | V::Raw(_) => unreachable!("not generated"),
    }
}

#[test]
fn whole_files_evaluate_to_the_tree_they_print() {
    // Every printer context at once (nested sets, collapsed `a.b.c` chains, lists, strings
    // in both forms at every depth): one file holding all cases, one evaluation.
    let cases = sample(tree(), CASES / 2);
    let file: std::collections::BTreeMap<String, nix::Value> = cases
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("case{i:03}"), t.clone()))
        .collect();
    let file = nix::Value::Attrs(file);
    let text = nix::format_file("cases", None, &file).unwrap();
    if let Err(e) = nix::check_parse(&text) {
        panic!("rnix: {e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let got = nix_eval(dir.path(), &text);
    let want = to_json(&file);
    for (k, w) in want.as_object().unwrap() {
        assert_eq!(&got[k], w, "{k} printed as a different value");
    }
}
