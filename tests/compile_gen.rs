//! `hearth gen` on disk: idempotence, the no-op stamp, removed hosts, `--check`.

mod compile_common;

use assert_cmd::Command;
use compile_common::*;
use hearth::compile::{self, GenOutcome};
use std::path::Path;

fn hearth(root: &Path) -> Command {
    let mut cmd = Command::cargo_bin("hearth").unwrap();
    cmd.arg("-C").arg(root);
    cmd
}

fn touch_later(path: &Path, content: &str) {
    // Make sure a rewrite gets a different mtime even on coarse clocks.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(path, content).unwrap();
}

#[test]
fn second_run_touches_no_file() {
    let repo = copy_fixture("fleet");
    let root = repo.path();
    assert!(matches!(compile::generate(root).unwrap(), GenOutcome::Compiled(c) if !c.is_empty()));
    let before = snapshot(root);
    // With the stamp: nothing is compiled.
    assert_eq!(compile::generate(root).unwrap(), GenOutcome::UpToDate);
    assert_eq!(snapshot(root), before);
    // Without the stamp: a full compile that finds every file current writes nothing.
    std::fs::remove_file(root.join(compile::stamp::STAMP_FILE)).unwrap();
    assert_eq!(
        compile::generate(root).unwrap(),
        GenOutcome::Compiled(Default::default())
    );
    assert_eq!(snapshot(root), before);
}

#[test]
fn stamp_is_invalidated_by_inputs_templates_and_outputs() {
    let repo = copy_fixture("fleet");
    let root = repo.path();
    compile::generate(root).unwrap();

    // A host file edit recompiles and rewrites only that host's module (and facts that depend on it).
    let host = root.join("hosts/edge.toml");
    let text = std::fs::read_to_string(&host).unwrap();
    touch_later(
        &host,
        &text.replace("tcp = [80, 443]", "tcp = [80, 443, 8443]"),
    );
    match compile::generate(root).unwrap() {
        GenOutcome::Compiled(c) => {
            assert_eq!(c.stale, [Path::new("generated/edge/default.nix")]);
            assert!(c.missing.is_empty() && c.extra.is_empty());
        }
        other => panic!("expected a compile, got {other:?}"),
    }

    // A repo-local template edit recompiles.
    let tpl = root.join("catalog/jellyfin.nix.tera");
    let text = std::fs::read_to_string(&tpl).unwrap();
    touch_later(
        &tpl,
        &text.replace(
            "enable = true;",
            "enable = true;\n    openFirewall = false;",
        ),
    );
    match compile::generate(root).unwrap() {
        GenOutcome::Compiled(c) => assert_eq!(c.stale, [Path::new("generated/edge/default.nix")]),
        other => panic!("expected a compile, got {other:?}"),
    }

    // A hand edit of a generated file is repaired.
    let out = root.join("generated/nixos/default.nix");
    let good = std::fs::read_to_string(&out).unwrap();
    touch_later(&out, "# edited by hand\n{ }\n");
    match compile::generate(root).unwrap() {
        GenOutcome::Compiled(c) => assert_eq!(c.stale, [Path::new("generated/nixos/default.nix")]),
        other => panic!("expected a compile, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&out).unwrap(), good);
    assert_eq!(compile::generate(root).unwrap(), GenOutcome::UpToDate);
}

#[test]
fn removed_host_directory_is_deleted_but_hand_written_files_stay() {
    let repo = copy_fixture("fleet");
    let root = repo.path();
    compile::generate(root).unwrap();
    std::fs::create_dir_all(root.join("generated/notes")).unwrap();
    std::fs::write(root.join("generated/notes/mine.nix"), "{ }\n").unwrap();
    std::fs::remove_file(root.join("hosts/edge.toml")).unwrap();
    match compile::generate(root).unwrap() {
        GenOutcome::Compiled(c) => {
            assert_eq!(
                c.extra,
                [
                    Path::new("generated/edge/default.nix"),
                    Path::new("generated/edge/disko.nix")
                ]
            );
        }
        other => panic!("expected a compile, got {other:?}"),
    }
    assert!(!root.join("generated/edge").exists());
    assert!(root.join("generated/notes/mine.nix").exists());
    let fleet = std::fs::read_to_string(root.join("generated/fleet.nix")).unwrap();
    assert!(!fleet.contains("edge"));
}

#[test]
fn check_lists_problems_writes_nothing_and_exits_1() {
    let repo = copy_fixture("fleet");
    let root = repo.path();
    let out = hearth(root).args(["gen", "--check"]).assert().code(1);
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.contains("missing  generated/helios64/default.nix"),
        "{stdout}"
    );
    assert!(!root.join("generated").exists(), "--check must not write");

    hearth(root).arg("gen").assert().success();
    hearth(root).args(["gen", "--check"]).assert().code(0);

    let before = snapshot(root);
    std::fs::write(root.join("generated/nixos/default.nix"), "# stale\n{ }\n").unwrap();
    std::fs::create_dir_all(root.join("generated/gone")).unwrap();
    std::fs::write(
        root.join("generated/gone/default.nix"),
        "# Generated by hearth from hosts/gone.toml. Do not edit.\n{ }\n",
    )
    .unwrap();
    let out = hearth(root).args(["gen", "--check"]).assert().code(1);
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.contains("stale    generated/nixos/default.nix"),
        "{stdout}"
    );
    assert!(
        stdout.contains("extra    generated/gone/default.nix"),
        "{stdout}"
    );
    assert!(
        root.join("generated/gone/default.nix").exists(),
        "--check must not delete"
    );
    let _ = before;
}

#[test]
fn gen_refuses_bad_catalog_output_and_writes_nothing() {
    let repo = copy_fixture("fleet");
    let root = repo.path();
    std::fs::write(
        root.join("catalog/jellyfin.nix.tera"),
        "{ services.jellyfin.enable = ; }",
    )
    .unwrap();
    let out = hearth(root).arg("gen").assert().code(1);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains("hosts/edge.toml") && stderr.contains("jellyfin"),
        "{stderr}"
    );
    assert!(stderr.contains("rendered invalid Nix"), "{stderr}");
    assert!(!root.join("generated").exists());
}

#[test]
fn show_prints_resolved_facts() {
    let repo = copy_fixture("fleet");
    let root = repo.path();
    let out = hearth(root).args(["show", "--json"]).assert().success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["hosts"]["helios64"]["build_machines"][0], "nixos");
    assert_eq!(v["hosts"]["helios64"]["services"]["openssh"]["port"], 22);
    assert_eq!(v["prometheus_targets"].as_array().unwrap().len(), 3);
    assert_eq!(
        v["backup_pairs"][1]["repository"],
        "rest:http://192.168.1.20:8000/nixos"
    );
    let out = hearth(root).args(["show", "edge"]).assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.contains("host_id = \"cafe0123\""), "{text}");
    hearth(root).args(["show", "nope"]).assert().code(1);
}
