//! The committed schemas and the key reference in docs/HOST_FILE.md must equal what
//! `hearth schema` prints. Regenerate with `HEARTH_BLESS=1 cargo test --test inventory_schema`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn hearth_schema(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-C")
        .arg(repo())
        .arg("schema")
        .args(args)
        .output()
        .expect("run hearth schema");
    assert!(
        out.status.success(),
        "hearth schema {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn bless() -> bool {
    std::env::var_os("HEARTH_BLESS").is_some()
}

const HOW: &str =
    "regenerate with `HEARTH_BLESS=1 cargo test --test inventory_schema` and commit the result";

fn assert_file(path: &Path, expected: &str) {
    if bless() {
        std::fs::write(path, expected).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == expected,
        "{} is out of date with `hearth schema`: {HOW}",
        path.display()
    );
}

#[test]
fn committed_host_schema_is_current() {
    let json = hearth_schema(&[]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(
        v["additionalProperties"],
        serde_json::json!(false),
        "unknown keys are rejected"
    );
    assert_eq!(
        v["required"],
        serde_json::json!(["hardware", "ssh", "system"])
    );
    assert_file(&repo().join("schema/host.schema.json"), &json);
}

#[test]
fn committed_fleet_schema_is_current() {
    let json = hearth_schema(&["--fleet"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(v["title"], "FleetFile");
    assert_file(&repo().join("schema/fleet.schema.json"), &json);
}

#[test]
fn host_file_reference_matches_the_schema() {
    let generated = hearth_schema(&["--markdown"]);
    let begin = generated.lines().next().unwrap().to_string();
    let end = generated.lines().last().unwrap().to_string();
    let path = repo().join("docs/HOST_FILE.md");
    let doc = std::fs::read_to_string(&path).expect("docs/HOST_FILE.md exists");
    let (Some(b), Some(e)) = (doc.find(&begin), doc.find(&end)) else {
        panic!("docs/HOST_FILE.md lacks the generated-reference markers `{begin}` … `{end}`");
    };
    let stop = (e + end.len() + 1).min(doc.len());
    let current = &doc[b..stop];
    if bless() {
        let updated = format!("{}{}{}", &doc[..b], generated, &doc[stop..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert!(
        current == generated,
        "the reference in docs/HOST_FILE.md is out of date: {HOW}"
    );
    // Every key of the schema appears in the reference.
    for key in [
        "`ssh`",
        "`allow_unstable_paths`",
        "`emulated`",
        "`payload_mib`",
        "`cidr`",
        "`ssh_keys`",
    ] {
        assert!(generated.contains(key), "{key} missing from the reference");
    }
}
