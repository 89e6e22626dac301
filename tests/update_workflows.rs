//! The update and CI workflows parse as YAML and contain what docs/UPDATES.md promises.

use std::path::Path;
use std::process::Command;

const WORKFLOWS: [&str; 3] = [
    ".github/workflows/flake-update.yml",
    ".forgejo/workflows/flake-update.yml",
    ".github/workflows/ci.yml",
];

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

#[test]
fn workflows_are_valid_yaml_with_jobs_and_steps() {
    let has_yaml = Command::new("python3")
        .args(["-c", "import yaml"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_yaml {
        println!("SKIPPED: python3 with PyYAML is not installed (apt-get install python3-yaml)");
        return;
    }
    // Every job has runs-on and steps; every step is exactly one of run / uses.
    let check = r#"
import sys, yaml
for f in sys.argv[1:]:
    d = yaml.safe_load(open(f))
    assert d.get("on") or d.get(True), f + ": no triggers"
    for name, job in d["jobs"].items():
        assert "runs-on" in job and job["steps"], f"{f}: job {name}"
        for s in job["steps"]:
            assert ("run" in s) != ("uses" in s), f"{f}: {name}: {s}"
"#;
    let out = Command::new("python3")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("-c")
        .arg(check)
        .args(WORKFLOWS)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn update_workflows_schedule_label_automerge_and_explain_the_token() {
    for f in &WORKFLOWS[..2] {
        let w = read(f);
        assert!(
            w.contains("cron:") && w.contains("workflow_dispatch:"),
            "{f}"
        );
        assert!(
            w.contains("hearth -- update") && w.contains("--check-build") && w.contains("--commit"),
            "{f}"
        );
        assert!(w.contains("automerge"), "{f}");
        assert!(w.contains("FLAKE_UPDATE_TOKEN"), "{f}");
        assert!(
            w.contains("do not start other workflows") || w.contains("do NOT trigger other"),
            "{f}"
        );
    }
    let gh = read(WORKFLOWS[0]);
    assert!(gh.contains("gh pr merge \"$pr\" --auto --squash"));
    assert!(gh.contains("actions/create-github-app-token"));
    let fj = read(WORKFLOWS[1]);
    assert!(fj.contains("merge_when_checks_succeed"));
    let ci = read(WORKFLOWS[2]);
    for step in [
        ".ci/run",
        "hearth gen --check",
        "nix fmt",
        "nix flake check",
    ] {
        assert!(ci.contains(step), "ci.yml lacks {step}");
    }
}
