//! The example homelab in this repository (hearth.toml, hosts/*.toml) must match the
//! inventory model exactly, and the hand-written Nix (flake.nix, modules/nixos/*.nix,
//! tests/disko/*.nix) must at least parse.

use hearth::inventory::model::{
    BuildPolicy, FleetFile, HostFile, PoolMode, Role, RootFilesystem, System,
};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fleet() -> FleetFile {
    let path = repo().join("hearth.toml");
    toml::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn host(name: &str) -> HostFile {
    let path = repo().join("hosts").join(format!("{name}.toml"));
    toml::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn host_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("hosts"))
        .expect("hosts/")
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "toml")
                .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    names
}

#[test]
fn fleet_file_matches_model() {
    let fleet = fleet();
    assert_eq!(fleet.domain, "home.arpa");
    assert_eq!(fleet.time_zone, "Europe/Berlin");
    assert!(fleet.networks.contains_key("lan"));
    for (name, admin) in &fleet.admins {
        assert!(!admin.ssh_keys.is_empty(), "admin {name} has no key");
        for key in &admin.ssh_keys {
            assert!(
                key.starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA"),
                "{name}: {key}"
            );
        }
    }
    assert_eq!(
        fleet.nix.substituters.len(),
        fleet.nix.trusted_public_keys.len()
    );
}

#[test]
fn every_host_file_matches_model() {
    let names = host_names();
    assert_eq!(names, ["helios64", "nixos"]);
    for name in &names {
        let h = host(name);
        let key = h.host_key.as_deref().unwrap_or_default();
        assert!(key.starts_with("ssh-ed25519 "), "{name}: host_key");
        let first_line = read(&repo().join("hosts").join(format!("{name}.toml")));
        assert!(
            first_line.starts_with("#:schema ../schema/host.schema.json\n"),
            "{name}: the first line points editors at the schema"
        );
    }
}

#[test]
fn helios64_is_a_zfs_nas_on_emmc() {
    let h = host("helios64");
    assert_eq!(h.system, System::Aarch64Linux);
    let disks = h.disks.as_ref().expect("disks");
    assert!(disks.root.device.starts_with("/dev/disk/by-id/mmc-"));
    assert_eq!(disks.root.filesystem, RootFilesystem::Ext4);
    let tank = &disks.pools["tank"];
    assert_eq!(tank.mode, PoolMode::Raidz1);
    assert!(tank.disks.len() >= 3);
    assert!(tank
        .disks
        .iter()
        .all(|d| d.starts_with("/dev/disk/by-id/ata-")));
    for ds in ["media", "documents", "photos", "backups"] {
        assert!(tank.datasets[ds].mountpoint.is_some(), "{ds}");
    }
    for svc in [
        "openssh",
        "node-exporter",
        "zfs",
        "samba",
        "nfs",
        "restic",
        "iperf3",
    ] {
        assert!(h.services.contains_key(svc), "helios64 lacks {svc}");
    }
    assert_eq!(h.build, BuildPolicy::Builder("nixos".into()));
    assert!(!h.deploy.health.units.is_empty());
}

#[test]
fn nixos_builds_aarch64_and_monitors() {
    let h = host("nixos");
    assert_eq!(h.system, System::X86_64Linux);
    assert!(h.roles.contains(&Role::Builder) && h.roles.contains(&Role::Monitoring));
    let builder = h.builder.as_ref().expect("[builder]");
    assert_eq!(builder.emulated, [System::Aarch64Linux]);
    assert!(h.services.contains_key("node-exporter"));
    // The escape hatch is a top-level key, not swallowed by the table above it.
    assert_eq!(h.modules, ["modules/nixos/ryzen.nix"]);
}

#[test]
fn cross_references_resolve() {
    let fleet = fleet();
    let names = host_names();
    for (secret, def) in &fleet.secrets {
        for h in &def.hosts {
            assert!(names.contains(h), "secret {secret} names unknown host {h}");
        }
    }
    for name in &names {
        let h = host(name);
        if let BuildPolicy::Builder(b) = &h.build {
            assert!(
                host(b).roles.contains(&Role::Builder),
                "{name} builds on {b}, not a builder"
            );
        }
        if let Some(net) = &h.network.network {
            assert!(
                fleet.networks.contains_key(net),
                "{name}: unknown network {net}"
            );
        }
        for m in &h.modules {
            assert!(repo().join(m).is_file(), "{name}: module {m} missing");
        }
        // Secrets a service refers to exist in hearth.toml and are readable by the host.
        for (svc, settings) in &h.services {
            for (key, value) in settings {
                if key.ends_with("_secret") {
                    let s = value.as_str().expect("secret name is a string");
                    let def = fleet
                        .secrets
                        .get(s)
                        .unwrap_or_else(|| panic!("{name}.{svc}.{key}: no secret {s}"));
                    assert!(def.hosts.contains(name), "{name} cannot decrypt {s}");
                }
            }
        }
    }
}

/// `nix-instantiate --parse` works offline on any Nix; every hand-written Nix file must parse.
#[test]
fn hand_written_nix_parses() {
    let mut files = vec![repo().join("flake.nix")];
    for dir in [
        "modules/nixos",
        "tests/disko",
        "tests/nixos-modules",
        "tests/flake",
    ] {
        let Ok(entries) = std::fs::read_dir(repo().join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "nix") {
                files.push(e.path());
            }
        }
    }
    files.sort();
    assert!(
        files.len() >= 3,
        "expected flake.nix and modules, got {files:?}"
    );
    // rnix is a dependency of the crate: parse with it everywhere, with nix when present.
    for f in &files {
        let parsed = rnix::Root::parse(&read(f));
        assert!(
            parsed.errors().is_empty(),
            "{}: {:?}",
            f.display(),
            parsed.errors()
        );
    }
    if Command::new("nix-instantiate")
        .arg("--version")
        .output()
        .is_err()
    {
        // CI (HEARTH_REQUIRE_EVAL=1) must not pass a check it did not run.
        assert!(
            std::env::var("HEARTH_REQUIRE_EVAL").as_deref() != Ok("1"),
            "HEARTH_REQUIRE_EVAL=1 but this check cannot run"
        );
        println!(
            "SKIPPED (nix-instantiate part): nix-instantiate not installed; rnix parse passed"
        );
        return;
    }
    for f in &files {
        let out = Command::new("nix-instantiate")
            .arg("--parse")
            .arg(f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn flake_lock_pins_every_input_with_a_nar_hash() {
    let lock: serde_json::Value = serde_json::from_str(&read(&repo().join("flake.lock"))).unwrap();
    assert_eq!(lock["version"], 7);
    let nodes = lock["nodes"].as_object().unwrap();
    let root_inputs = nodes["root"]["inputs"].as_object().unwrap();
    for input in ["nixpkgs", "disko", "agenix"] {
        assert!(root_inputs.contains_key(input), "root lacks {input}");
    }
    for (name, node) in nodes {
        if name == "root" {
            continue;
        }
        let locked = &node["locked"];
        let rev = locked["rev"].as_str().unwrap_or_default();
        assert_eq!(rev.len(), 40, "{name}: rev");
        assert!(rev.chars().all(|c| c.is_ascii_hexdigit()), "{name}: rev");
        let nar = locked["narHash"].as_str().unwrap_or_default();
        assert!(
            nar.starts_with("sha256-") && nar.len() == 51,
            "{name}: narHash {nar}"
        );
        assert!(
            locked["lastModified"].as_u64().unwrap_or(0) > 1_600_000_000,
            "{name}"
        );
    }
    // nixpkgs is pinned to a revision of NixOS/nixpkgs on the nixos-25.11 branch.
    let nixpkgs = &nodes["nixpkgs"];
    assert_eq!(nixpkgs["original"]["ref"], "nixos-25.11");
    for key in ["original", "locked"] {
        assert_eq!(nixpkgs[key]["owner"], "NixOS", "nixpkgs {key}.owner");
        assert_eq!(nixpkgs[key]["repo"], "nixpkgs", "nixpkgs {key}.repo");
        assert_eq!(nixpkgs[key]["type"], "github", "nixpkgs {key}.type");
    }
    assert!(
        nixpkgs["original"].get("rev").is_none(),
        "follow the branch, not a revision"
    );
}

/// Every service setting in the example hosts is one its catalog entry declares. Reads the
/// built-in catalog's data files directly, so it needs no compiler.
#[test]
fn service_settings_match_the_catalog() {
    let builtin = repo().join("src/catalog/builtin");
    if !builtin.is_dir() {
        // CI (HEARTH_REQUIRE_EVAL=1) must not pass a check it did not run.
        assert!(
            std::env::var("HEARTH_REQUIRE_EVAL").as_deref() != Ok("1"),
            "HEARTH_REQUIRE_EVAL=1 but this check cannot run"
        );
        println!(
            "SKIPPED: {} does not exist (catalog not merged yet)",
            builtin.display()
        );
        return;
    }
    for name in host_names() {
        let h = host(&name);
        for (svc, settings) in &h.services {
            let def_path = builtin.join(format!("{svc}.toml"));
            let def: toml::Table = toml::from_str(&read(&def_path))
                .unwrap_or_else(|e| panic!("{name}: service {svc}: {}: {e}", def_path.display()));
            let declared = def
                .get("settings")
                .and_then(|s| s.as_table())
                .cloned()
                .unwrap_or_default();
            for key in settings.keys() {
                assert!(
                    declared.contains_key(key),
                    "{name}: [services.{svc}] has no setting `{key}`"
                );
            }
        }
    }
}

/// Nix itself reads flake.lock and accepts it for flake.nix as it is: the inputs and their
/// follows match, so nothing would be re-locked. Offline: github inputs are not fetched.
#[test]
fn nix_accepts_flake_lock_without_changes() {
    if Command::new("nix").arg("--version").output().is_err() {
        // CI (HEARTH_REQUIRE_EVAL=1) must not pass a check it did not run.
        assert!(
            std::env::var("HEARTH_REQUIRE_EVAL").as_deref() != Ok("1"),
            "HEARTH_REQUIRE_EVAL=1 but this check cannot run"
        );
        println!("SKIPPED: nix is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for f in ["flake.nix", "flake.lock"] {
        std::fs::copy(repo().join(f), dir.path().join(f)).unwrap();
    }
    let registry = dir.path().join("registry.json");
    std::fs::write(&registry, r#"{"flakes":[],"version":2}"#).unwrap();
    let config = format!(
        "experimental-features = nix-command flakes\nsandbox = false\nsubstituters =\nflake-registry = {}\n",
        registry.display()
    );
    let out = Command::new("nix")
        .args(["flake", "metadata", "--json", "--no-update-lock-file"])
        .arg(format!("path:{}", dir.path().display()))
        .env("NIX_CONFIG", config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("Permission denied") {
        // CI (HEARTH_REQUIRE_EVAL=1) must not pass a check it did not run.
        assert!(
            std::env::var("HEARTH_REQUIRE_EVAL").as_deref() != Ok("1"),
            "HEARTH_REQUIRE_EVAL=1 but this check cannot run"
        );
        println!("SKIPPED: this user cannot write the Nix store: {stderr}");
        return;
    }
    assert!(out.status.success(), "{stderr}");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = &meta["locks"]["nodes"];
    // Nix reads the pinned revision from the lock, whichever the weekly update chose.
    let lock: serde_json::Value = serde_json::from_str(&read(&repo().join("flake.lock"))).unwrap();
    assert_eq!(
        nodes["nixpkgs"]["locked"]["rev"],
        lock["nodes"]["nixpkgs"]["locked"]["rev"]
    );
    assert_eq!(
        nodes["disko"]["inputs"]["nixpkgs"],
        serde_json::json!(["nixpkgs"])
    );
    assert_eq!(nodes["agenix"]["inputs"]["darwin"], serde_json::json!([]));
    // The lock file is untouched (it would be rewritten if Nix wanted to re-lock).
    assert_eq!(
        read(&dir.path().join("flake.lock")),
        read(&repo().join("flake.lock"))
    );
}
