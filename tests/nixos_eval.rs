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
    "nixos/modules/misc/meta.nix",
    "nixos/modules/services/networking/ssh/sshd.nix",
    "nixos/modules/services/networking/wireguard.nix",
    "nixos/modules/tasks/filesystems/zfs.nix",
    "nixos/modules/system/boot/binfmt.nix",
    "nixos/modules/config/nix-remote-build.nix",
];
/// Modules of this repository loaded next to the real ones (absolute paths).
const EXTRA_MODULES: &[&str] = &[
    // prometheus/exporters.nix can't load from nixpkgs-sparse (it imports every exporter's
    // file): services.prometheus.exporters.node built as exporters.nix builds it, with the
    // real exporters/node.nix.
    "tests/nixos-eval/prometheus-node-exporter.nix",
    // networking.wireguard.useNetworkd, declared by the unvendored wireguard-networkd.nix.
    "tests/nixos-eval/wireguard-networkd-stub.nix",
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
    "openssh",
    "zfs",
];
/// Namespaces outside `services` that the real modules declare, forced like REAL_SERVICES;
/// `<name>` is every attribute (the harness and the manifest write it the same way).
const REAL_PATHS: &[&str] = &[
    "boot.zfs",
    "boot.binfmt",
    "nix.buildMachines",
    "nix.distributedBuilds",
    "networking.wireguard",
    "users.users.<name>.openssh",
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
/// The host's system is x86_64-linux; `harness_on` takes another.
fn harness(host: &Path) -> Option<Result<Value, String>> {
    harness_on(host, "x86_64-linux")
}

/// The `system` of each host in a generated fleet.nix.
fn fleet_systems(fleet_nix: &str) -> std::collections::BTreeMap<String, String> {
    use hearth::compile::nix::{parse_value, Value as Nix};
    let Ok(Nix::Attrs(top)) = parse_value(fleet_nix) else {
        panic!("fleet.nix is an attribute set")
    };
    let Some(Nix::Attrs(hosts)) = top.get("hosts") else {
        panic!("fleet.nix has hosts")
    };
    let system = |h: &Nix| match h {
        Nix::Attrs(a) => match a.get("system") {
            Some(Nix::Str(s)) => s.clone(),
            other => panic!("system: {other:?}"),
        },
        other => panic!("host: {other:?}"),
    };
    hosts.iter().map(|(n, h)| (n.clone(), system(h))).collect()
}

fn harness_on(host: &Path, system: &str) -> Option<Result<Value, String>> {
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
        .args(["--arg", "realPaths", &nix_list(REAL_PATHS)])
        .args(["--arg", "extraModules", &extra_modules()])
        .args(["--argstr", "system", system])
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
    edited_text(&text, &format!("generated/{host}"), from, to)
}

/// Like `edited`, for a host of the `everything` fixture (for what the example fleet lacks).
fn edited_fixture(host: &str, from: &str, to: &str) -> (tempfile::TempDir, PathBuf) {
    let repo = compile_common::copy_fixture("everything");
    let out = hearth::compile::compile_repo(repo.path()).unwrap();
    let rel = PathBuf::from(format!("generated/{host}/default.nix"));
    edited_text(&out.files[&rel], &format!("everything: {host}"), from, to)
}

fn edited_text(text: &str, what: &str, from: &str, to: &str) -> (tempfile::TempDir, PathBuf) {
    assert_eq!(text.matches(from).count(), 1, "{from:?} in {what}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.nix");
    std::fs::write(&path, text.replace(from, to)).unwrap();
    (dir, path)
}

/// The evaluation error of `path` (which must not evaluate); None without the trees.
fn eval_error(path: &Path) -> Option<String> {
    let r = harness(path)?;
    Some(r.expect_err("must not evaluate"))
}

/// The failed assertions and the warnings of `path` (which must evaluate), as JSON text.
fn eval_failed_and_warnings(path: &Path) -> Option<(String, String)> {
    let v = harness(path)?.expect("evaluates");
    Some((v["failed"].to_string(), v["warnings"].to_string()))
}

#[test]
fn example_hosts_pass_the_real_modules() {
    let fleet = std::fs::read_to_string(repo().join("generated/fleet.nix")).unwrap();
    let systems = fleet_systems(&fleet);
    assert_eq!(systems["helios64"], "aarch64-linux");
    for host in ["helios64", "nixos"] {
        let module = repo().join(format!("generated/{host}/default.nix"));
        let Some(r) = harness_on(&module, &systems[host]) else {
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
        let under = |ns: &str| path == ns || path.starts_with(&format!("{ns}."));
        let real = REAL_SERVICES
            .iter()
            .any(|s| under(&format!("services.{s}")))
            || REAL_PATHS.iter().any(|p| under(p));
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
    let systems = fleet_systems(&out.files[&PathBuf::from("generated/fleet.nix")]);
    let mut hosts = 0;
    for (rel, text) in &out.files {
        if !rel.ends_with("default.nix") || rel.components().count() != 3 {
            continue; // generated/<host>/default.nix only
        }
        let name = rel
            .components()
            .nth(1)
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("default.nix");
        std::fs::write(&path, text).unwrap();
        let Some(r) = harness_on(&path, &systems[name]) else {
            return;
        };
        let v = r.unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
        assert_eq!(v["failed"], serde_json::json!([]), "{}", rel.display());
        assert_eq!(v["warnings"], serde_json::json!([]), "{}", rel.display());
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

// sshd.nix: services.openssh and each user's `openssh` options.

#[test]
fn openssh_root_login_outside_the_enum_fails_with_the_option_path() {
    let (_d, p) = edited(
        "helios64",
        "PermitRootLogin = \"prohibit-password\";",
        "PermitRootLogin = \"never\";",
    );
    let Some(err) = eval_error(&p) else { return };
    assert!(
        err.contains("services.openssh.settings.PermitRootLogin"),
        "{err}"
    );
}

#[test]
fn openssh_ports_as_a_number_fail_with_the_option_path() {
    let (_d, p) = edited("helios64", "ports = [ 22 ];", "ports = 22;");
    let Some(err) = eval_error(&p) else { return };
    assert!(err.contains("services.openssh.ports"), "{err}");
}

/// sshd_config keys are case-insensitive: a second spelling is the module's assertion.
#[test]
fn openssh_setting_in_another_case_fails_the_duplicate_key_assertion() {
    let (_d, p) = edited(
        "helios64",
        "KbdInteractiveAuthentication = false;",
        "KbdInteractiveAuthentication = false; kbdInteractiveAuthentication = false;",
    );
    let Some((failed, _)) = eval_failed_and_warnings(&p) else {
        return;
    };
    assert!(failed.contains("Duplicate sshd config key"), "{failed}");
}

/// The pre-23.05 top-level spelling still evaluates, with the rename warning NixOS prints.
#[test]
fn openssh_renamed_option_warns_with_its_new_path() {
    let (_d, p) = edited(
        "helios64",
        "ports = [ 22 ];",
        "ports = [ 22 ]; passwordAuthentication = false;",
    );
    let Some((_, warnings)) = eval_failed_and_warnings(&p) else {
        return;
    };
    assert!(
        warnings.contains("has been renamed to `services.openssh.settings.PasswordAuthentication'"),
        "{warnings}"
    );
}

const BOB_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII/rkn2HPquOka3Lus05071xZie+GiON97j3G90K4Zx0 bob@thinkpad";

/// An authorized key is one line (types.singleLineStr): a key broken in two is refused.
#[test]
fn an_authorized_key_over_two_lines_fails_with_the_option_path() {
    let broken = BOB_KEY.replace(" bob@", "\\nbob@");
    let (_d, p) = edited("nixos", &format!("\"{BOB_KEY}\""), &format!("\"{broken}\""));
    let Some(err) = eval_error(&p) else { return };
    assert!(
        err.contains("users.users.nixbuild.openssh.authorizedKeys.keys"),
        "{err}"
    );
}

/// users.users is a freeform stub around sshd.nix's options: a misspelt one is still refused.
#[test]
fn a_misspelt_user_openssh_option_fails_with_its_path() {
    let (_d, p) = edited(
        "nixos",
        "openssh.authorizedKeys.keys = [",
        "openssh.authorizedKeys.key = [",
    );
    let Some(err) = eval_error(&p) else { return };
    assert!(
        err.contains("`users.users.nixbuild.openssh.authorizedKeys.key' does not exist"),
        "{err}"
    );
}

// zfs.nix: boot.zfs and services.zfs.

#[test]
fn zfs_without_a_host_id_fails_the_assertion() {
    let (_d, p) = edited("helios64", "hostId = \"296748f2\";", "");
    let Some((failed, _)) = eval_failed_and_warnings(&p) else {
        return;
    };
    assert!(
        failed.contains("ZFS requires networking.hostId to be set"),
        "{failed}"
    );
}

#[test]
fn zfs_hibernation_with_force_import_fails_the_assertion() {
    let (_d, p) = edited(
        "helios64",
        "zfs.forceImportRoot = false;",
        "zfs.forceImportRoot = true; zfs.allowHibernation = true;",
    );
    let Some((failed, _)) = eval_failed_and_warnings(&p) else {
        return;
    };
    assert!(
        failed.contains("boot.zfs.allowHibernation while force importing"),
        "{failed}"
    );
}

#[test]
fn zfs_force_import_as_a_string_fails_with_the_option_path() {
    let (_d, p) = edited(
        "helios64",
        "zfs.forceImportRoot = false;",
        "zfs.forceImportRoot = \"no\";",
    );
    let Some(err) = eval_error(&p) else { return };
    assert!(err.contains("boot.zfs.forceImportRoot"), "{err}");
}

#[test]
fn zfs_snapshot_count_as_a_string_fails_with_the_option_path() {
    let (_d, p) = edited("helios64", "daily = 14;", "daily = \"14\";");
    let Some(err) = eval_error(&p) else { return };
    assert!(err.contains("services.zfs.autoSnapshot.daily"), "{err}");
}

// binfmt.nix and nix-remote-build.nix.

#[test]
fn binfmt_system_without_an_emulator_fails_with_the_option_path() {
    let (_d, p) = edited(
        "nixos",
        "binfmt.emulatedSystems = [ \"aarch64-linux\" ];",
        "binfmt.emulatedSystems = [ \"aarch64-darwin\" ];",
    );
    let Some(err) = eval_error(&p) else { return };
    assert!(err.contains("boot.binfmt.emulatedSystems"), "{err}");
}

#[test]
fn build_machine_jobs_as_a_string_fail_with_the_option_path() {
    let (_d, p) = edited("helios64", "maxJobs = 8;", "maxJobs = \"8\";");
    let Some(err) = eval_error(&p) else { return };
    assert!(err.contains("nix.buildMachines."), "{err}");
    assert!(err.contains(".maxJobs' is not of type"), "{err}");
}

#[test]
fn distributed_builds_as_a_string_fail_with_the_option_path() {
    let (_d, p) = edited(
        "helios64",
        "distributedBuilds = true;",
        "distributedBuilds = \"yes\";",
    );
    let Some(err) = eval_error(&p) else { return };
    assert!(
        err.contains("`nix.distributedBuilds' is not of type"),
        "{err}"
    );
}

#[test]
fn build_machine_without_a_system_fails_the_assertion() {
    let (_d, p) = edited(
        "helios64",
        "systems = [\n          \"x86_64-linux\"\n          \"aarch64-linux\"\n        ];",
        "systems = [ ];",
    );
    let Some((failed, _)) = eval_failed_and_warnings(&p) else {
        return;
    };
    assert!(failed.contains("At least one system type"), "{failed}");
    assert!(
        failed.contains("192.168.1.10"),
        "names the machine: {failed}"
    );
}

// The node exporter (exporters/node.nix through tests/nixos-eval/prometheus-node-exporter.nix).

#[test]
fn node_exporter_port_as_a_string_fails_with_the_option_path() {
    let (_d, p) = edited("helios64", "port = 9100;", "port = \"9100\";");
    let Some(err) = eval_error(&p) else { return };
    assert!(
        err.contains("services.prometheus.exporters.node.port"),
        "{err}"
    );
}

#[test]
fn node_exporter_collectors_as_a_string_fail_with_the_option_path() {
    let (_d, p) = edited(
        "helios64",
        "enabledCollectors = [ \"systemd\" ];",
        "enabledCollectors = \"systemd\";",
    );
    let Some(err) = eval_error(&p) else { return };
    assert!(
        err.contains("services.prometheus.exporters.node.enabledCollectors"),
        "{err}"
    );
}

#[test]
fn node_exporter_unknown_option_fails_with_its_path() {
    let (_d, p) = edited(
        "helios64",
        "port = 9100;",
        "port = 9100; listenPort = 9100;",
    );
    let Some(err) = eval_error(&p) else { return };
    assert!(
        err.contains("`services.prometheus.exporters.node.listenPort' does not exist"),
        "{err}"
    );
}

// wireguard.nix (only the `everything` fixture has a WireGuard interface).

const WG_KEY_LINE: &str = "privateKeyFile = config.age.secrets.wireguard-key.path;";

#[test]
fn wireguard_interface_without_a_key_fails_the_assertion() {
    let (_d, p) = edited_fixture("nixos", WG_KEY_LINE, "");
    let Some((failed, _)) = eval_failed_and_warnings(&p) else {
        return;
    };
    assert!(
        failed.contains("networking.wireguard.interfaces.wg0.privateKeyFile must be set"),
        "{failed}"
    );
}

#[test]
fn wireguard_keepalive_as_a_string_fails_with_the_option_path() {
    let (_d, p) = edited_fixture(
        "nixos",
        "persistentKeepalive = 25;",
        "persistentKeepalive = \"25\";",
    );
    let Some(err) = eval_error(&p) else { return };
    assert!(
        err.contains("networking.wireguard.interfaces.wg0.peers."),
        "{err}"
    );
    assert!(
        err.contains(".persistentKeepalive' is not of type"),
        "{err}"
    );
}

#[test]
fn wireguard_unknown_interface_option_fails_with_its_path() {
    let (_d, p) = edited_fixture(
        "nixos",
        "listenPort = 51822;",
        "listenPort = 51822; port = 51822;",
    );
    let Some(err) = eval_error(&p) else { return };
    assert!(
        err.contains("`networking.wireguard.interfaces.wg0.port' does not exist"),
        "{err}"
    );
}

/// docs/FLAKE.md states the coverage the manifest records (it had gone stale once).
#[test]
fn flake_md_states_the_manifest_coverage() {
    let text = std::fs::read_to_string(repo().join("docs/options-manifest.toml")).unwrap();
    let m: toml::Table = toml::from_str(&text).unwrap();
    let options = m["option"].as_array().unwrap();
    let yes = options
        .iter()
        .filter(|o| o["harness"].as_str() == Some("yes"));
    let (checked, total) = (yes.count(), options.len());
    let doc = std::fs::read_to_string(repo().join("docs/FLAKE.md")).unwrap();
    let stated = format!("Coverage: {checked} of the {total} option paths hearth can emit");
    assert!(doc.contains(&stated), "docs/FLAKE.md must say: {stated}");
    let rest = format!("the other {} option paths", total - checked);
    assert!(doc.contains(&rest), "docs/FLAKE.md must say: {rest}");
}

/// binfmt.nix refuses to emulate the host's own system; the harness evaluates each host on
/// its fleet.nix system, so on the aarch64 Helios64 aarch64 is refused and x86_64 is not.
#[test]
fn binfmt_emulating_the_hosts_own_system_is_refused() {
    let line = "zfs.forceImportRoot = false;";
    let emulate = |s: &str| format!("{line} binfmt.emulatedSystems = [ \"{s}\" ];");
    let (_d, own) = edited("helios64", line, &emulate("aarch64-linux"));
    let Some(r) = harness_on(&own, "aarch64-linux") else {
        return;
    };
    let err = r.expect_err("emulating the own system must not evaluate");
    assert!(
        err.contains("system != (pkgs).stdenv.hostPlatform.system"),
        "{err}"
    );
    let (_d, foreign) = edited("helios64", line, &emulate("x86_64-linux"));
    let Some(r) = harness_on(&foreign, "aarch64-linux") else {
        return;
    };
    assert_eq!(r.expect("evaluates")["failed"], serde_json::json!([]));
}

/// Vendored NixOS modules the harness does not load directly, and why.
const NOT_LOADED: &[(&str, &str)] = &[
    (
        "nixos/modules/services/monitoring/prometheus/exporters.nix",
        "imports every exporter's file; prometheus-node-exporter.nix stands in",
    ),
    (
        "nixos/modules/services/monitoring/prometheus/exporters/node.nix",
        "read by prometheus-node-exporter.nix",
    ),
    (
        "nixos/modules/services/web-servers/caddy/vhost-options.nix",
        "imported by caddy/default.nix",
    ),
    (
        "nixos/modules/security/acme/mk-cert-ownership-assertion.nix",
        "imported by caddy/default.nix",
    ),
    (
        "nixos/modules/services/cluster/rancher/k3s.nix",
        "imported by rancher/default.nix",
    ),
    (
        "nixos/modules/services/cluster/rancher/rke2.nix",
        "imported by rancher/default.nix",
    ),
    (
        "nixos/modules/services/networking/adguardhome.nix",
        "hearth's DNS service is blocky",
    ),
    (
        "nixos/modules/services/logging/promtail.nix",
        "hearth ships logs with alloy",
    ),
];

/// Every NixOS module in nixpkgs-sparse is loaded by the harness or explained in
/// NOT_LOADED, so a module vendored later cannot be forgotten.
#[test]
fn every_vendored_module_is_loaded_or_explained() {
    let Ok(dirs) = checkouts::checkouts(&["HEARTH_NIXPKGS_SPARSE"]) else {
        println!("SKIPPED: set HEARTH_NIXPKGS_SPARSE");
        return;
    };
    let tsv = std::fs::read_to_string(dirs[0].join("MANIFEST.tsv")).unwrap();
    let vendored: Vec<&str> = tsv
        .lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|p| p.starts_with("nixos/modules/"))
        .collect();
    assert!(vendored.len() > 20, "{vendored:?}");
    for path in vendored {
        let loaded = REAL_MODULES.contains(&path);
        let explained = NOT_LOADED.iter().any(|(p, _)| *p == path);
        assert!(
            loaded != explained,
            "{path}: loaded {loaded}, explained {explained}"
        );
    }
}
