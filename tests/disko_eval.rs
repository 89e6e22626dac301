//! disko layouts evaluated with real disko and nixpkgs.lib (`lib.evalModules` over
//! disko's types, see tests/disko/eval.nix). Needs checkouts of nix-community/disko and
//! nix-community/nixpkgs.lib in HEARTH_DISKO and HEARTH_NIXPKGS_LIB; without them it
//! reports itself as skipped. Commands: docs/FLAKE.md, "Testing the disko layouts".

mod checkouts;
use hearth::inventory::model::{HostFile, RootFilesystem};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Disko {
    disko: PathBuf,
    nixpkgs_lib: PathBuf,
}

/// The checkouts, or why the test cannot run.
fn setup() -> Result<Disko, String> {
    let mut dirs = checkouts::checkouts(&["HEARTH_DISKO", "HEARTH_NIXPKGS_LIB"])?;
    Ok(Disko {
        nixpkgs_lib: dirs.remove(1),
        disko: dirs.remove(0),
    })
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

macro_rules! disko_or_skip {
    () => {
        match setup() {
            Ok(d) => d,
            Err(reason) => {
                println!("SKIPPED: {reason}");
                return;
            }
        }
    };
}

impl Disko {
    /// Evaluates `layout` through tests/disko/eval.nix: Ok(summary) or Err(nix's stderr).
    fn eval(&self, layout: &Path) -> Result<Value, String> {
        let out = Command::new("nix-instantiate")
            .args(["--eval", "--strict", "--json"])
            .arg(repo().join("tests/disko/eval.nix"))
            .arg("--arg")
            .arg("disko")
            .arg(&self.disko)
            .arg("--arg")
            .arg("nixpkgsLib")
            .arg(&self.nixpkgs_lib)
            .arg("--arg")
            .arg("layout")
            .arg(absolute(layout))
            .output()
            .expect("run nix-instantiate");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return Err(stderr);
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {stderr}"))
    }
}

fn host(name: &str) -> HostFile {
    let path = repo().join("hosts").join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fs_type(fs: RootFilesystem) -> &'static str {
    match fs {
        RootFilesystem::Ext4 => "ext4",
        RootFilesystem::Btrfs => "btrfs",
        RootFilesystem::Zfs => "zfs",
    }
}

/// What any layout for `host` must yield: "/" with the host's filesystem, every pool
/// disk by id, and every dataset mountpoint as a zfs mount of `<pool>/<dataset>`.
fn assert_matches_host(name: &str, summary: &Value, file: &Path) {
    let h = host(name);
    let disks = h.disks.as_ref().expect("host has [disks]");
    let ctx = file.display();
    let fs = &summary["fileSystems"];
    assert_eq!(
        fs["/"]["fsType"],
        fs_type(disks.root.filesystem),
        "{ctx}: / fsType"
    );

    let devices: Vec<&str> = summary["disks"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        devices.contains(&disks.root.device.as_str()),
        "{ctx}: root disk {}",
        disks.root.device
    );

    for (pool_name, pool) in &disks.pools {
        for d in &pool.disks {
            assert!(
                devices.contains(&d.as_str()),
                "{ctx}: pool disk {d} missing"
            );
        }
        let zpool = &summary["zpools"][pool_name];
        let mode = serde_json::to_value(pool.mode).unwrap();
        assert_mode(
            &zpool["mode"],
            &mode,
            pool.disks.len(),
            &format!("{ctx}: {pool_name}"),
        );
        for (key, value) in &pool.options {
            assert_eq!(
                zpool["options"][key],
                value.as_str(),
                "{ctx}: {pool_name} option {key}"
            );
        }
        for (ds_name, ds) in &pool.datasets {
            let props = &zpool["datasets"][ds_name];
            assert!(
                props.is_object(),
                "{ctx}: dataset {pool_name}/{ds_name} missing"
            );
            for (prop, want) in [
                ("recordsize", &ds.recordsize),
                ("compression", &ds.compression),
                ("quota", &ds.quota),
            ] {
                if let Some(want) = want {
                    assert_eq!(
                        props[prop],
                        want.as_str(),
                        "{ctx}: {pool_name}/{ds_name} {prop}"
                    );
                }
            }
            if let Some(mp) = &ds.mountpoint {
                let mount = &fs[mp.as_str()];
                assert_eq!(mount["fsType"], "zfs", "{ctx}: {mp}");
                assert_eq!(
                    mount["device"],
                    format!("{pool_name}/{ds_name}"),
                    "{ctx}: {mp}"
                );
            }
        }
    }
}

/// disko accepts the mode as a string or as a topology (`mode.topology.vdev`); either way
/// it must be the host's mode over all of the pool's disks.
fn assert_mode(got: &Value, want: &Value, disks: usize, ctx: &str) {
    if got.is_string() {
        assert_eq!(got, want, "{ctx}: mode");
        return;
    }
    let vdevs = got["topology"]["vdev"]
        .as_array()
        .unwrap_or_else(|| panic!("{ctx}: mode {got}"));
    assert!(!vdevs.is_empty(), "{ctx}: no vdevs");
    let mut members = 0;
    for vdev in vdevs {
        assert_eq!(&vdev["mode"], want, "{ctx}: vdev mode");
        members += vdev["members"].as_array().map_or(0, Vec::len);
    }
    assert_eq!(members, disks, "{ctx}: vdev members");
}

#[test]
fn reference_layouts_type_check_and_match_their_hosts() {
    let d = disko_or_skip!();
    for name in ["helios64", "nixos"] {
        let file = repo().join("tests/disko").join(format!("{name}.nix"));
        let summary = d
            .eval(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(summary["createScriptBytes"].as_u64().unwrap() > 0);
        assert_matches_host(name, &summary, &file);
    }
}

#[test]
fn reference_helios64_mounts_exactly_root_and_datasets() {
    let d = disko_or_skip!();
    let summary = d.eval(&repo().join("tests/disko/helios64.nix")).unwrap();
    let mut mounts: Vec<&str> = summary["fileSystems"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    mounts.sort();
    assert_eq!(
        mounts,
        [
            "/",
            "/srv/backup",
            "/srv/documents",
            "/srv/media",
            "/srv/photos"
        ]
    );
    assert_eq!(
        summary["zpools"]["tank"]["rootFsOptions"]["mountpoint"],
        "none"
    );
    assert_eq!(summary["swapDevices"], serde_json::json!([]));
}

#[test]
fn generated_layouts_type_check_and_match_their_hosts() {
    let d = disko_or_skip!();
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("hosts")).unwrap().flatten() {
        let path = entry.path();
        if path.extension() != Some(std::ffi::OsStr::new("toml")) {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if host(&name).disks.is_none() {
            continue;
        }
        let file = repo().join("generated").join(&name).join("disko.nix");
        if !file.is_file() {
            // CI (HEARTH_REQUIRE_EVAL=1) must not pass a check it did not run.
            assert!(
                std::env::var("HEARTH_REQUIRE_EVAL").as_deref() != Ok("1"),
                "HEARTH_REQUIRE_EVAL=1 but this check cannot run"
            );
            println!(
                "SKIPPED {name}: {} does not exist yet (run `hearth gen`)",
                file.display()
            );
            continue;
        }
        let summary = d
            .eval(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_matches_host(&name, &summary, &file);
        checked += 1;
    }
    println!("checked {checked} generated disko layout(s)");
}

/// The harness must reject what disko rejects, or the tests above prove nothing.
#[test]
fn a_misspelled_option_is_rejected_with_a_suggestion() {
    let d = disko_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.nix");
    std::fs::write(
        &bad,
        r#"{ disko.devices.zpool.tank = { type = "zpool"; mdoe = "raidz1"; datasets = { }; }; }"#,
    )
    .unwrap();
    let err = d.eval(&bad).expect_err("a typo must not type-check");
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains("disko.devices.zpool.tank.mode"), "{err}");
}
