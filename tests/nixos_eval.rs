//! The example fleet's generated host modules evaluated against the real NixOS modules of
//! the services they enable (tests/nixos-eval/harness.nix), with the vendored nixpkgs.lib
//! and nixpkgs-sparse trees. Skips without the trees, fails without them under
//! HEARTH_REQUIRE_EVAL=1. Negative cases prove the harness rejects what NixOS rejects.

mod checkouts;
mod compile_common;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real modules the harness loads, relative to nixpkgs-sparse, and the `services.*`
/// namespaces they declare (forced in full).
const REAL_MODULES: &[&str] = &[
    "nixos/modules/misc/assertions.nix",
    "nixos/modules/services/backup/restic.nix",
    "nixos/modules/services/backup/restic-rest-server.nix",
    "nixos/modules/services/networking/iperf3.nix",
    "nixos/modules/services/security/fail2ban.nix",
    "nixos/modules/services/networking/tailscale.nix",
    "nixos/modules/services/network-filesystems/samba.nix",
    "nixos/modules/services/network-filesystems/samba-wsdd.nix",
    "nixos/modules/services/network-filesystems/nfsd.nix",
    "nixos/modules/services/web-servers/caddy/default.nix",
    "nixos/modules/services/networking/blocky.nix",
    "nixos/modules/services/misc/jellyfin.nix",
    "nixos/modules/services/security/authelia.nix",
    "nixos/modules/services/cluster/rancher/default.nix",
    "nixos/modules/services/monitoring/grafana.nix",
    "nixos/modules/services/monitoring/loki.nix",
    "nixos/modules/services/monitoring/alloy.nix",
    "nixos/modules/services/monitoring/prometheus/default.nix",
    "nixos/modules/services/monitoring/prometheus/alertmanager.nix",
];
/// Modules of this repository loaded next to the real ones (absolute paths).
const EXTRA_MODULES: &[&str] = &[
    // prometheus/exporters.nix can't load from nixpkgs-sparse (it imports every exporter's
    // file); this declares services.prometheus.exporters loosely so that the rest of the
    // services.prometheus namespace (server, alertmanager) is checked for real.
    "tests/nixos-eval/prometheus-exporters-stub.nix",
];
const REAL_SERVICES: &[&str] = &[
    "restic",
    "iperf3",
    "fail2ban",
    "tailscale",
    "samba",
    "samba-wsdd",
    "nfs",
    "caddy",
    "blocky",
    "jellyfin",
    "authelia",
    "k3s",
    "grafana",
    "loki",
    "alloy",
    "prometheus",
];

fn nix_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[ {} ]", quoted.join(" "))
}

fn extra_modules() -> String {
    let paths: Vec<String> = EXTRA_MODULES
        .iter()
        .map(|p| repo().join(p).display().to_string())
        .collect();
    format!("[ {} ]", paths.join(" "))
}

/// The failed assertions of `host` (Ok) or the evaluation error (Err); None without trees.
fn harness(host: &Path) -> Option<Result<Value, String>> {
    let dirs = match checkouts::checkouts(&["HEARTH_NIXPKGS_LIB", "HEARTH_NIXPKGS_SPARSE"]) {
        Ok(d) => d,
        Err(reason) => {
            println!("SKIPPED: {reason}");
            return None;
        }
    };
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(repo().join("tests/nixos-eval/harness.nix"))
        .args(["--arg", "nixpkgsLib"])
        .arg(&dirs[0])
        .args(["--arg", "sparse"])
        .arg(&dirs[1])
        .args(["--arg", "host"])
        .arg(host)
        .args(["--arg", "realModules", &nix_list(REAL_MODULES)])
        .args(["--arg", "realServices", &nix_list(REAL_SERVICES)])
        .args(["--arg", "extraModules", &extra_modules()])
        .output()
        .expect("nix-instantiate");
    Some(if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("json"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

/// The generated module of `host` with `from` replaced by `to` (exactly once), in a temp dir.
fn edited(host: &str, from: &str, to: &str) -> (tempfile::TempDir, PathBuf) {
    let text =
        std::fs::read_to_string(repo().join(format!("generated/{host}/default.nix"))).unwrap();
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} in generated/{host}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.nix");
    std::fs::write(&path, text.replace(from, to)).unwrap();
    (dir, path)
}

#[test]
fn example_hosts_pass_the_real_modules() {
    for host in ["helios64", "nixos"] {
        let Some(r) = harness(&repo().join(format!("generated/{host}/default.nix"))) else {
            return;
        };
        let v = r.unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(
            v["failed"],
            serde_json::json!([]),
            "{host}: failed assertions"
        );
        assert_eq!(v["warnings"], serde_json::json!([]), "{host}: warnings");
    }
}

/// Regression: hearth emitted `":8000"`, which the socket-activated REST server refuses.
#[test]
fn a_colon_listen_address_fails_the_rest_server_assertion() {
    let (_d, p) = edited(
        "helios64",
        "listenAddress = \"8000\";",
        "listenAddress = \":8000\";",
    );
    let Some(r) = harness(&p) else { return };
    let failed = r.expect("evaluates")["failed"].to_string();
    assert!(failed.contains("socket activation"), "{failed}");
}

#[test]
fn a_wrong_type_under_a_real_namespace_fails_with_the_option_path() {
    let (_d, p) = edited("helios64", "appendOnly = true;", "appendOnly = \"yes\";");
    let Some(r) = harness(&p) else { return };
    let err = r.expect_err("a string for a boolean must not evaluate");
    assert!(err.contains("services.restic.server.appendOnly"), "{err}");
}

#[test]
fn an_unknown_option_under_a_real_namespace_fails_with_its_path() {
    let (_d, p) = edited(
        "helios64",
        "appendOnly = true;",
        "appendOnly = true; listenPort = 8000;",
    );
    let Some(r) = harness(&p) else { return };
    let err = r.expect_err("an undeclared option must not evaluate");
    assert!(err.contains("services.restic.server.listenPort"), "{err}");
}

/// Regression: clients of an append-only target must not prune (the target does).
#[test]
fn clients_of_an_append_only_target_do_not_prune() {
    let nixos = std::fs::read_to_string(repo().join("generated/nixos/default.nix")).unwrap();
    assert!(
        nixos.contains("repository = \"rest:http://"),
        "nixos backs up to the target"
    );
    assert!(
        !nixos.contains("pruneOpts"),
        "nixos must not prune an append-only repository"
    );
    let target = std::fs::read_to_string(repo().join("generated/helios64/default.nix")).unwrap();
    assert!(target.contains("appendOnly = true;"));
    assert!(
        target.contains("restic-server-prune = {"),
        "the target prunes"
    );
    assert!(target.contains("forget --prune"));
}

/// The `.age` files the example fleet's `age.secrets.*.file` entries name, relative to the
/// repository root, and those of them that do not exist.
fn referenced_age_files() -> (Vec<String>, Vec<String>) {
    let mut all = Vec::new();
    for host in ["helios64", "nixos"] {
        let text =
            std::fs::read_to_string(repo().join(format!("generated/{host}/default.nix"))).unwrap();
        for line in text.lines().filter(|l| l.contains(".file = ../../")) {
            let rel = line
                .split("../../")
                .nth(1)
                .unwrap()
                .trim_end_matches(';')
                .to_string();
            all.push(rel);
        }
    }
    all.sort();
    all.dedup();
    let missing = all
        .iter()
        .filter(|f| !repo().join(f).is_file())
        .cloned()
        .collect();
    (all, missing)
}

/// Every secret file the fleet references must exist, or the systems cannot build on a
/// fresh clone (`hearth secrets set NAME` creates one).
#[test]
fn every_referenced_age_file_exists() {
    let (all, missing) = referenced_age_files();
    assert!(!all.is_empty(), "the example fleet references no .age file");
    assert!(missing.is_empty(), "secret files missing: {missing:?}");
}

/// docs/options-manifest.toml marks `harness = "yes"` exactly the options under the
/// namespaces this harness forces against their real modules.
#[test]
fn manifest_harness_marks_match_the_real_modules() {
    let text = std::fs::read_to_string(repo().join("docs/options-manifest.toml")).unwrap();
    let m: toml::Table = toml::from_str(&text).unwrap();
    for o in m["option"].as_array().unwrap() {
        let path = o["path"].as_str().unwrap();
        let real = REAL_SERVICES
            .iter()
            .any(|s| path.starts_with(&format!("services.{s}.")));
        let want = if real { "yes" } else { "no" };
        assert_eq!(o["harness"].as_str(), Some(want), "{path}");
    }
}

/// Every catalog service with representative settings: the `everything` fixture (which turns
/// on every built-in service) compiled, and each host's module evaluated by the harness.
#[test]
fn every_catalog_service_passes_the_real_modules() {
    let repo = compile_common::copy_fixture("everything");
    let out = hearth::compile::compile_repo(repo.path()).unwrap();
    let mut hosts = 0;
    for (rel, text) in &out.files {
        if !rel.ends_with("default.nix") || rel.components().count() != 3 {
            continue; // generated/<host>/default.nix only
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("default.nix");
        std::fs::write(&path, text).unwrap();
        let Some(r) = harness(&path) else { return };
        let v = r.unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
        assert_eq!(v["failed"], serde_json::json!([]), "{}", rel.display());
        hosts += 1;
    }
    assert!(hosts >= 2, "the fixture compiled to {hosts} host modules");
}

/// Jellyfin with hardware transcoding but no device: the module's own assertion.
#[test]
fn jellyfin_hardware_transcoding_without_a_device_fails_the_assertion() {
    let (_d, p) = edited(
        "helios64",
        "jellyfin.enable = true;",
        "jellyfin = { enable = true; hardwareAcceleration = { enable = true; type = \"vaapi\"; }; };",
    );
    let Some(r) = harness(&p) else { return };
    let failed = r.expect("evaluates")["failed"].to_string();
    assert!(
        failed.contains("hardwareAcceleration.device cannot be null"),
        "{failed}"
    );
}

/// A transcoding method the module does not know (hearth's enum mirrors the module's).
#[test]
fn jellyfin_unknown_transcoding_type_fails_with_the_option_path() {
    let (_d, p) = edited(
        "helios64",
        "jellyfin.enable = true;",
        "jellyfin = { enable = true; hardwareAcceleration.type = \"cuda\"; };",
    );
    let Some(r) = harness(&p) else { return };
    let err = r.expect_err("an unknown enum value must not evaluate");
    assert!(
        err.contains("services.jellyfin.hardwareAcceleration.type"),
        "{err}"
    );
}

/// A vhost's Caddyfile body must be text (types.lines), not a list of directives.
#[test]
fn caddy_vhost_config_as_a_list_fails_with_the_option_path() {
    let (_d, p) = edited(
        "nixos",
        "\"restic-server.helios64.home.arpa\".extraConfig = ''",
        "\"restic-server.helios64.home.arpa\".extraConfig = [ \"tls internal\" ]; x = ''",
    );
    let Some(r) = harness(&p) else { return };
    let err = r.expect_err("a list for extraConfig must not evaluate");
    assert!(
        err.contains("extraConfig") || err.contains("services.caddy.virtualHosts"),
        "{err}"
    );
}

/// blocky takes everything under `settings`; a top-level key of the old module is refused.
#[test]
fn blocky_options_outside_settings_fail_with_their_path() {
    let (_d, p) = edited(
        "nixos",
        "ports.dns = 53;",
        "ports.dns = 53; }; upstream = [ \"9.9.9.9\" ]; settings = {",
    );
    let Some(r) = harness(&p) else { return };
    let err = r.expect_err("an undeclared blocky option must not evaluate");
    assert!(err.contains("services.blocky.upstream"), "{err}");
}

/// Authelia without its storage key: the module's assertion. (The `everything` fixture's
/// `edge` runs it next to caddy.)
#[test]
fn authelia_without_a_storage_key_fails_the_assertion() {
    let repo = compile_common::copy_fixture("everything");
    let out = hearth::compile::compile_repo(repo.path()).unwrap();
    let text = &out.files[&PathBuf::from("generated/edge/default.nix")];
    let line = "storageEncryptionKeyFile = config.age.secrets.authelia-storage-key.path;";
    assert_eq!(text.matches(line).count(), 1, "{text}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.nix");
    std::fs::write(&path, text).unwrap();
    let Some(r) = harness(&path) else { return };
    assert_eq!(r.expect("evaluates")["failed"], serde_json::json!([]));
    std::fs::write(&path, text.replace(line, "")).unwrap();
    let Some(r) = harness(&path) else { return };
    let failed = r.expect("evaluates")["failed"].to_string();
    assert!(failed.contains("Storage Encryption Key"), "{failed}");
}

/// The observability services (grafana, loki, alloy, alertmanager, prometheus rules) of the
/// example `nixos` host against their real modules: each likely mistake must be caught.
#[test]
fn grafana_with_a_password_in_the_store_warns() {
    let (_d, p) = edited(
        "nixos",
        "admin_password = \"$__file{${config.age.secrets.grafana-admin-password.path}}\";",
        "admin_password = \"hunter2\";",
    );
    let Some(r) = harness(&p) else { return };
    let warnings = r.expect("evaluates")["warnings"].to_string();
    assert!(
        warnings.contains("plaintext in the Nix store"),
        "{warnings}"
    );
}

#[test]
fn grafana_direct_access_to_prometheus_fails_its_assertion() {
    let (_d, p) = edited(
        "nixos",
        "access = \"proxy\";\n              editable = false;\n              isDefault = true;",
        "access = \"direct\";\n              editable = false;\n              isDefault = true;",
    );
    let Some(r) = harness(&p) else { return };
    let failed = r.expect("evaluates")["failed"].to_string();
    assert!(
        failed.contains("`direct` access mode is not supported"),
        "{failed}"
    );
}

#[test]
fn grafana_port_as_a_string_fails_with_the_option_path() {
    let (_d, p) = edited("nixos", "http_port = 3000;", "http_port = \"3000\";");
    let Some(r) = harness(&p) else { return };
    let err = r.expect_err("a string port must not evaluate");
    assert!(
        err.contains("services.grafana.settings.server.http_port"),
        "{err}"
    );
}

#[test]
fn loki_with_both_configuration_and_file_fails_its_assertion() {
    let (_d, p) = edited(
        "nixos",
        "loki = {\n      configuration = {",
        "loki = {\n      configFile = \"/etc/loki.yaml\";\n      configuration = {",
    );
    let Some(r) = harness(&p) else { return };
    let failed = r.expect("evaluates")["failed"].to_string();
    assert!(failed.contains("services.loki.configuration"), "{failed}");
}

#[test]
fn alertmanager_port_out_of_range_fails_with_the_option_path() {
    let (_d, p) = edited("nixos", "port = 9093;", "port = 99999;");
    let Some(r) = harness(&p) else { return };
    let err = r.expect_err("a port above 65535 must not evaluate");
    assert!(
        err.contains("services.prometheus.alertmanager.port"),
        "{err}"
    );
}

#[test]
fn alertmanager_without_configuration_fails_its_assertion() {
    // `(_: null) { … }` keeps the text valid Nix and makes the configuration null.
    let (_d, p) = edited(
        "nixos",
        "alertmanager = {\n        configuration = {",
        "alertmanager = {\n        configuration = (_: null) {",
    );
    let Some(r) = harness(&p) else { return };
    let failed = r.expect("evaluates")["failed"].to_string();
    assert!(
        failed.contains("Can not enable alertmanager without a configuration"),
        "{failed}"
    );
}

#[test]
fn alloy_flags_as_a_string_fail_with_the_option_path() {
    let (_d, p) = edited(
        "nixos",
        "extraFlags = [ \"--disable-reporting\" ];",
        "extraFlags = \"--disable-reporting\";",
    );
    let Some(r) = harness(&p) else { return };
    let err = r.expect_err("a string for a list must not evaluate");
    assert!(err.contains("services.alloy.extraFlags"), "{err}");
}

#[test]
fn prometheus_rules_must_be_a_list_of_strings() {
    let text = std::fs::read_to_string(repo().join("generated/nixos/default.nix")).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("rules = [ "))
        .expect("nixos has derived rules");
    let (_d, p) = edited("nixos", line, "      rules = { groups = [ ]; };");
    let Some(r) = harness(&p) else { return };
    let err = r.expect_err("an attribute set for a list of strings must not evaluate");
    assert!(err.contains("services.prometheus.rules"), "{err}");
}
