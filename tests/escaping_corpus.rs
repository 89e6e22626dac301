//! The escaping layer, end to end. Every `tests/bad_inputs/<case>/gen.toml` says what
//! compiling that fleet (what `hearth gen` writes) must give: each error, exactly, or the
//! text of generated files. And every file generated from the example fleet, the good
//! fleet and the hostile-but-valid fleets holds no control character but newline and tab,
//! and parses with the real `nix-instantiate --parse` as well as with rnix.

use hearth::compile::{compile_repo, nix};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GenExpect {
    #[serde(default)]
    rejected: Vec<Rejected>,
    #[serde(default)]
    file: Vec<FileExpect>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Rejected {
    /// One error line, exactly.
    message: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileExpect {
    path: String,
    contains: Vec<String>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn gen_cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/bad_inputs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("gen.toml").is_file())
        .collect();
    cases.sort();
    cases
}

fn run_case(dir: &Path) -> Result<(), String> {
    let expect: GenExpect = toml::from_str(&std::fs::read_to_string(dir.join("gen.toml")).unwrap())
        .map_err(|e| format!("gen.toml: {e}"))?;
    match compile_repo(dir) {
        Err(e) => {
            let got: Vec<String> = format!("{e:#}").lines().map(String::from).collect();
            let want: Vec<&String> = expect.rejected.iter().map(|r| &r.message).collect();
            if want.is_empty() || got.iter().collect::<Vec<_>>() != want {
                if std::env::var_os("HEARTH_BLESS").is_some_and(|v| v == "1") {
                    bless_rejected(dir, &got);
                    return Ok(());
                }
                return Err(format!("errors {got:#?}\nexpected {want:#?}"));
            }
        }
        Ok(out) => {
            if !expect.rejected.is_empty() {
                return Err("accepted, but gen.toml expects errors".into());
            }
            for f in &expect.file {
                let text = out
                    .files
                    .get(Path::new(&f.path))
                    .ok_or_else(|| format!("{} not generated", f.path))?;
                for want in &f.contains {
                    if !text.contains(want.as_str()) {
                        return Err(format!("{} lacks {want:?}:\n{text}", f.path));
                    }
                }
            }
        }
    }
    Ok(())
}

/// `HEARTH_BLESS=1`: rewrite a rejected case's gen.toml with what `gen` says now.
fn bless_rejected(dir: &Path, got: &[String]) {
    let mut text = String::new();
    for line in got {
        text.push_str(&format!(
            "[[rejected]]\nmessage = {}\n\n",
            toml::Value::String(line.clone())
        ));
    }
    std::fs::write(dir.join("gen.toml"), text.trim_end().to_string() + "\n").unwrap();
}

#[test]
fn gen_outcomes_match() {
    let cases = gen_cases();
    assert!(cases.len() >= 7, "the escaping cases are missing");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| run_case(c).err().map(|e| format!("{}: {e}", c.display())))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_generated_file_is_clean_and_parses_with_real_nix() {
    let mut fleets = vec![repo(), repo().join("tests/good_fleet")];
    fleets.extend(gen_cases().into_iter().filter(|c| compile_repo(c).is_ok()));
    assert!(fleets.len() >= 3, "no hostile-but-valid fleet");
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, fleet) in fleets.iter().enumerate() {
        let out = compile_repo(fleet).unwrap_or_else(|e| panic!("{}: {e:#}", fleet.display()));
        for (rel, text) in &out.files {
            let bad = text
                .chars()
                .find(|c| c.is_control() && *c != '\n' && *c != '\t');
            assert!(
                bad.is_none(),
                "{}: {} holds {bad:?}",
                fleet.display(),
                rel.display()
            );
            nix::check_parse(text)
                .unwrap_or_else(|e| panic!("rnix: {}/{}: {e}", fleet.display(), rel.display()));
            let p = dir.path().join(i.to_string()).join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            paths.push(p);
        }
    }
    let out = Command::new("nix-instantiate")
        .arg("--parse")
        .args(&paths)
        .output()
        .expect("nix-instantiate is needed for this test");
    assert!(
        out.status.success(),
        "nix-instantiate --parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
