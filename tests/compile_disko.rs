//! Every disko layout the compiler can produce (ext4, btrfs and ZFS roots; ESP, BIOS
//! boot and extlinux /boot; swap; mirror / raidz pools with datasets) evaluated with real
//! disko and nixpkgs.lib through tests/disko/eval.nix. Needs HEARTH_DISKO and
//! HEARTH_NIXPKGS_LIB (checkouts of nix-community/disko and nix-community/nixpkgs.lib);
//! without them it reports itself as skipped.

mod checkouts;
mod compile_common;

use compile_common::*;
use hearth::compile;
use std::path::{Path, PathBuf};
use std::process::Command;

fn disko_and_lib() -> Result<(PathBuf, PathBuf), String> {
    let mut dirs = checkouts::checkouts(&["HEARTH_DISKO", "HEARTH_NIXPKGS_LIB"])?;
    let lib = dirs.remove(1);
    Ok((dirs.remove(0), lib))
}

#[test]
fn every_fixture_layout_evaluates_with_real_disko() {
    let (disko, lib) = match disko_and_lib() {
        Ok(c) => c,
        Err(reason) => {
            println!("SKIPPED: {reason}");
            return;
        }
    };
    let repo = copy_fixture("everything");
    compile::generate(repo.path()).unwrap();
    let eval_nix = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/disko/eval.nix");
    let expected_root = [
        ("edge", "zfs"),
        ("grubefi", "ext4"),
        ("helios64", "ext4"),
        ("nixos", "btrfs"),
    ];
    for (host, fs) in expected_root {
        let layout = repo.path().join("generated").join(host).join("disko.nix");
        let out = Command::new("nix-instantiate")
            .args(["--eval", "--strict", "--json"])
            .arg(&eval_nix)
            .arg("--arg")
            .arg("disko")
            .arg(&disko)
            .arg("--arg")
            .arg("nixpkgsLib")
            .arg(&lib)
            .arg("--arg")
            .arg("layout")
            .arg(&layout)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{host}: disko rejected the layout:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["fileSystems"]["/"]["fsType"], fs, "{host}: {v}");
        assert!(v["createScriptBytes"].as_u64().unwrap() > 0);
        if host == "helios64" {
            assert_eq!(v["fileSystems"]["/tank/media"]["device"], "tank/media");
            assert_eq!(
                v["zpools"]["tank"]["mode"]["topology"]["vdev"][0]["mode"],
                "raidz1"
            );
        }
        if host == "edge" {
            assert_eq!(v["fileSystems"]["/nix"]["device"], "zroot/nix");
        }
        if host == "grubefi" {
            assert_eq!(v["fileSystems"]["/boot"]["fsType"], "vfat");
            assert_eq!(v["swapDevices"].as_array().unwrap().len(), 1);
        }
    }
}
