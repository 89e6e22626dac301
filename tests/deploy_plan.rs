//! Deploy behaviour that needs Nix but no test hosts: dry runs and build failures.

mod deploy_common;
use deploy_common::*;

fn fixture() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    std::fs::create_dir_all(root.join("hosts")).unwrap();
    std::fs::create_dir_all(root.join("flake")).unwrap();
    std::fs::write(root.join("registry.json"), r#"{"flakes":[],"version":2}"#).unwrap();
    std::fs::write(root.join("hearth.toml"), "domain = \"lab.test\"\n").unwrap();
    let hosts = [
        ("web-1", "\"web\""),
        ("web-2", "\"web\""),
        ("nas", "\"nas\""),
    ];
    for (i, (h, tags)) in hosts.iter().enumerate() {
        std::fs::write(
            root.join(format!("hosts/{h}.toml")),
            format!("system = \"x86_64-linux\"\nhardware = \"lab\"\nhost_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOL7e3tGVbE8miB+hYF+hWip1ncEdoBQxnYWwzhOt9U1\"\ntags = [{tags}]\n[ssh]\naddress = \"127.0.0.{}\"\n", 11 + i),
        )
        .unwrap();
    }
    std::fs::write(
        root.join("flake/flake.nix"),
        r#"{ outputs = { self }: let
  mk = name: script: { config.system.build.toplevel = derivation {
    inherit name; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" script ]; }; };
in { nixosConfigurations = {
  web-1 = mk "web-1" "PATH=/usr/bin:/bin; mkdir -p $out";
  web-2 = mk "web-2" "PATH=/usr/bin:/bin; echo compiling web-2; echo 'error: broken on purpose' >&2; exit 3";
  nas = mk "nas" "PATH=/usr/bin:/bin; mkdir -p $out";
}; }; }
"#,
    )
    .unwrap();
    t
}

fn hearth(root: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-C")
        .arg(root)
        .args(args)
        .env("NIX_CONFIG", nix_config(root))
        .env("HEARTH_FLAKE", format!("path:{}/flake", root.display()))
        .output()
        .unwrap()
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let t = fixture();
    let out = hearth(
        t.path(),
        &["deploy", "@web", "--dry-run", "--batch-size", "1"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("web-1 [x86_64-linux] batch 1"), "{stdout}");
    assert!(stdout.contains("web-2 [x86_64-linux] batch 2"), "{stdout}");
    assert!(stdout.contains("build:    local"), "{stdout}");
    assert!(
        stdout.contains("switch-to-configuration switch, magic rollback after 30s"),
        "{stdout}"
    );
    assert!(!stdout.contains("nas"), "{stdout}");
    assert!(
        !t.path().join(".hearth").exists(),
        "a dry run writes nothing"
    );

    let out = hearth(t.path(), &["deploy", "--dry-run", "--json", "'nope-*'"]);
    assert!(!out.status.success());
    let out = hearth(t.path(), &["deploy", "--dry-run"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no hosts selected"));
}

#[test]
fn a_build_failure_names_the_derivation_and_its_log() {
    if let Some(why) = missing_prerequisite(false) {
        skip("a_build_failure_names_the_derivation_and_its_log", &why);
        return;
    }
    let t = fixture();
    let out = hearth(t.path(), &["deploy", "@web", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failed: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "build_failed")
        .unwrap_or_else(|| panic!("no build_failed event:\n{stdout}"));
    assert!(
        failed["drv"].as_str().unwrap().ends_with("-web-2.drv"),
        "{failed}"
    );
    assert!(
        failed["log_tail"]
            .as_str()
            .unwrap()
            .contains("broken on purpose"),
        "{failed}"
    );
    assert!(
        failed["log_path"]
            .as_str()
            .unwrap()
            .starts_with("/nix/var/log/nix/drvs/"),
        "{failed}"
    );
    assert!(stdout.contains(r#""result":"skipped""#), "{stdout}");
}
