//! flake.nix's outputs evaluated offline with stand-in inputs (tests/flake/eval.nix): which
//! hosts become nixosConfigurations and with which modules, and the shape of the package,
//! apps, checks, formatter and dev shells. Needs a nix-community/nixpkgs.lib checkout in
//! HEARTH_NIXPKGS_LIB; without it the tests report themselves as skipped.

mod checkouts;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn nixpkgs_lib() -> Result<PathBuf, String> {
    Ok(checkouts::checkouts(&["HEARTH_NIXPKGS_LIB"])?.remove(0))
}

macro_rules! lib_or_skip {
    () => {
        match nixpkgs_lib() {
            Ok(d) => d,
            Err(reason) => {
                println!("SKIPPED: {reason}");
                return;
            }
        }
    };
}

/// A scratch copy of what the flake reads, optionally with the fixture fleet index.
fn scratch(with_fleet: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for f in ["flake.nix", "Cargo.toml", "Cargo.lock"] {
        std::fs::copy(repo().join(f), root.join(f)).unwrap();
    }
    std::fs::create_dir_all(root.join("modules/nixos")).unwrap();
    for entry in std::fs::read_dir(repo().join("modules/nixos"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(
            entry.path(),
            root.join("modules/nixos").join(entry.file_name()),
        )
        .unwrap();
    }
    for d in ["src", "benches"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    if with_fleet {
        std::fs::create_dir_all(root.join("generated")).unwrap();
        std::fs::copy(
            repo().join("tests/flake/fleet.nix"),
            root.join("generated/fleet.nix"),
        )
        .unwrap();
    }
    dir
}

fn eval(lib: &Path, flake_dir: &Path) -> Value {
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(repo().join("tests/flake/eval.nix"))
        .arg("--arg")
        .arg("nixpkgsLib")
        .arg(lib)
        .arg("--arg")
        .arg("flakeDir")
        .arg(flake_dir)
        .output()
        .expect("run nix-instantiate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .expect("an attribute set")
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn every_non_lab_host_becomes_a_nixos_configuration_with_its_modules() {
    let lib = lib_or_skip!();
    let dir = scratch(true);
    let o = eval(&lib, dir.path());

    assert_eq!(
        keys(&o["nixosConfigurations"]),
        ["helios64", "nixos"],
        "lab hosts are built by the lab's flake"
    );
    // `hearth image`: only the Helios64 gets an SD image, of its own configuration, with
    // NixOS's aarch64 sd-image module and disko's file systems off.
    assert_eq!(
        o["images"],
        json!({"helios64": [
            "/nixpkgs/nixos/modules/installer/sd-card/sd-image-aarch64.nix",
            {"attrs": {"disko": {"enableConfig": false}}}
        ]})
    );
    // Deploy metadata covers every host, lab hosts included.
    assert_eq!(keys(&o["hearthHosts"]), ["helios64", "nixos", "t1"]);

    let helios = &o["nixosConfigurations"]["helios64"]["modules"];
    for m in [
        "path:modules/nixos",
        "<agenix module>",
        "path:generated/helios64/default.nix",
        "path:modules/nixos/helios64.nix",
        "<disko module>",
        "path:generated/helios64/disko.nix",
    ] {
        assert!(
            helios.as_array().unwrap().contains(&json!(m)),
            "helios64 lacks {m}: {helios}"
        );
    }
    let inline = helios
        .as_array()
        .unwrap()
        .iter()
        .find_map(|m| m.get("attrs"))
        .expect("inline module");
    assert_eq!(inline["nixpkgs"]["hostPlatform"], "aarch64-linux");
    assert_eq!(inline["hearth"]["helios64"]["enable"]["content"], true);

    let nixos = o["nixosConfigurations"]["nixos"]["modules"]
        .as_array()
        .unwrap();
    assert!(nixos.contains(&json!("path:modules/nixos/generic-x86_64.nix")));
    assert!(
        !nixos.contains(&json!("<disko module>")),
        "no [disks], no disko"
    );
    let inline = nixos.iter().find_map(|m| m.get("attrs")).unwrap();
    assert_eq!(inline["nixpkgs"]["hostPlatform"], "x86_64-linux");
    assert_eq!(inline["hearth"]["helios64"]["enable"]["content"], false);
}

#[test]
fn package_apps_checks_formatter_and_shells() {
    let lib = lib_or_skip!();
    let dir = scratch(true);
    let o = eval(&lib, dir.path());
    let all = [
        "aarch64-darwin",
        "aarch64-linux",
        "x86_64-darwin",
        "x86_64-linux",
    ];

    assert_eq!(keys(&o["packages"]), all);
    let pkg = &o["packages"]["x86_64-linux"];
    assert_eq!(pkg["pname"], "hearth");
    assert_eq!(pkg["default"], "hearth-0.1.0");
    assert_eq!(pkg["cargoLock"], "path:Cargo.lock");
    assert_eq!(pkg["doCheck"], false);
    assert_eq!(pkg["mainProgram"], "hearth");
    let post = pkg["postInstall"].as_str().unwrap();
    assert!(
        post.contains("--zsh <($out/bin/hearth completions zsh)"),
        "{post}"
    );
    assert!(
        post.contains("--suffix PATH :"),
        "the user's nix and ssh must win: {post}"
    );

    assert_eq!(keys(&o["apps"]), all);
    let apps = &o["apps"]["x86_64-linux"];
    assert_eq!(apps["deployType"], "app");
    assert!(
        apps["deploy"].as_str().unwrap().ends_with("-hearth-deploy"),
        "{apps}"
    );
    assert_eq!(
        apps["nixosAnywhere"],
        "/nix/store/00000000000000000000000000000000-nixos-anywhere/bin/nixos-anywhere"
    );
    assert!(
        apps["default"]
            .as_str()
            .unwrap()
            .ends_with("-hearth-0.1.0/bin/hearth"),
        "{apps}"
    );

    assert_eq!(keys(&o["checks"]), ["aarch64-linux", "x86_64-linux"]);
    assert_eq!(
        o["checks"]["x86_64-linux"]["names"],
        json!(["generated-fresh", "package"])
    );
    let fresh = o["checks"]["x86_64-linux"]["generatedFresh"]
        .as_str()
        .unwrap();
    assert!(fresh.contains(" gen --check"), "{fresh}");

    assert_eq!(
        o["formatter"]["x86_64-linux"]["settings"]["formatter"]["nixfmt"]["excludes"],
        json!(["generated/*"])
    );
    let shell = o["devShells"]["aarch64-darwin"].as_array().unwrap();
    for p in ["cargo", "agenix", "nixfmt", "nixos-anywhere"] {
        assert!(shell.contains(&json!(p)), "dev shell lacks {p}");
    }
    assert!(o["inputs"]["nixpkgs"]
        .as_str()
        .unwrap()
        .ends_with("/nixos-25.11"));
}

#[test]
fn a_fresh_clone_without_generated_still_evaluates() {
    let lib = lib_or_skip!();
    let dir = scratch(false);
    let o = eval(&lib, dir.path());
    assert_eq!(o["nixosConfigurations"], json!({}));
    assert_eq!(o["packages"]["x86_64-linux"]["pname"], "hearth");
}

/// The repository's own committed fleet index: both example hosts, each with its layout.
#[test]
fn the_committed_example_fleet_evaluates() {
    let lib = lib_or_skip!();
    let generated = repo().join("generated");
    if !generated.join("fleet.nix").is_file() {
        // CI (HEARTH_REQUIRE_EVAL=1) must not pass a check it did not run.
        assert!(
            std::env::var("HEARTH_REQUIRE_EVAL").as_deref() != Ok("1"),
            "HEARTH_REQUIRE_EVAL=1 but this check cannot run"
        );
        println!("SKIPPED: generated/fleet.nix does not exist (run `hearth gen`)");
        return;
    }
    let dir = scratch(false);
    copy_dir(&generated, &dir.path().join("generated"));
    let o = eval(&lib, dir.path());
    assert_eq!(keys(&o["nixosConfigurations"]), ["helios64", "nixos"]);
    for host in ["helios64", "nixos"] {
        let modules = o["nixosConfigurations"][host]["modules"]
            .as_array()
            .unwrap();
        assert!(
            modules.contains(&json!(format!("path:generated/{host}/disko.nix"))),
            "{host}"
        );
        assert!(
            modules.contains(&json!(format!("path:generated/{host}/default.nix"))),
            "{host}"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
