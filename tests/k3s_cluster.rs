//! The k3s cluster hearth derives from tags (`k3s-server`, `k3s-agent`): golden tests of the
//! wiring (roles, server address, join token secret, member-only firewall rules) as hosts
//! join and leave, the mistakes it refuses, and the generated modules evaluated against the
//! real NixOS k3s module (services/cluster/rancher, vendored nixpkgs-sparse) by
//! tests/nixos-eval/harness.nix. Golden files: tests/golden/k3s/ (`HEARTH_BLESS=1`).

mod checkouts;

use hearth::compile::{self, nix::Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const FLEET: &str = "domain = \"home.arpa\"\n\n[admins.alice]\nssh_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAliceAliceAliceAliceAliceAliceAliceAlice1AA alice@laptop\"]\n";

/// A host file: `tags` as given, a static address 10.0.0.N, extra lines appended.
fn host_file(name: &str, n: u8, tags: &[&str], extra: &str) -> String {
    let key = format!("{name:A<43}");
    let tags: Vec<String> = tags.iter().map(|t| format!("{t:?}")).collect();
    format!(
        "system = \"x86_64-linux\"\nhardware = \"generic-x86_64\"\n\
         host_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{key}\"\ntags = [{}]\n\n\
         [ssh]\naddress = \"10.0.0.{n}\"\n\n[network]\ninterface = \"eno1\"\naddress = \"10.0.0.{n}/24\"\n{extra}",
        tags.join(", ")
    )
}

struct Spec<'a> {
    name: &'a str,
    n: u8,
    tags: &'a [&'a str],
    extra: &'a str,
}

fn spec<'a>(name: &'a str, n: u8, tags: &'a [&'a str]) -> Spec<'a> {
    Spec {
        name,
        n,
        tags,
        extra: "",
    }
}

fn fleet(hosts: &[Spec]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hearth.toml"), FLEET).unwrap();
    std::fs::create_dir(dir.path().join("hosts")).unwrap();
    for h in hosts {
        std::fs::write(
            dir.path().join(format!("hosts/{}.toml", h.name)),
            host_file(h.name, h.n, h.tags, h.extra),
        )
        .unwrap();
    }
    dir
}

/// Every generated file by repo-relative path.
fn compiled(hosts: &[Spec]) -> BTreeMap<PathBuf, String> {
    let dir = fleet(hosts);
    let out = compile::compile_repo(dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
    out.files.into_iter().collect()
}

fn compile_error(hosts: &[Spec]) -> String {
    let dir = fleet(hosts);
    match compile::compile_repo(dir.path()) {
        Ok(_) => panic!("the fleet compiled, but it should have been refused"),
        Err(e) => format!("{e:#}"),
    }
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| match v {
        Value::Attrs(m) => m.get(*k),
        _ => None,
    })
}

/// The derived wiring, as text: per host its `services.k3s`, its firewall lines and its
/// token secret; then who may decrypt the token.
fn wiring(files: &BTreeMap<PathBuf, String>) -> String {
    let mut out = String::new();
    for (rel, text) in files {
        let parts: Vec<_> = rel.iter().map(|p| p.to_string_lossy()).collect();
        if parts.len() != 3 || parts[2] != "default.nix" {
            continue;
        }
        let v = compile::nix::parse_value(text).unwrap();
        out.push_str(&format!("== {}\n", parts[1]));
        match get(&v, &["services", "k3s"]) {
            Some(k) => out.push_str(&format!("services.k3s = {};\n", compile::nix::inline(k))),
            None => out.push_str("(no k3s)\n"),
        }
        if let Some(Value::Str(s)) = get(&v, &["networking", "firewall", "extraCommands"]) {
            out.push_str("firewall:\n");
            out.push_str(s);
        }
        if let Some(f) = get(&v, &["age", "secrets", "k3s-token"]) {
            out.push_str(&format!(
                "age.secrets.k3s-token = {};\n",
                compile::nix::inline(f)
            ));
        }
    }
    // No secret at all: no secrets.nix either.
    let v = files
        .get(Path::new("secrets/secrets.nix"))
        .map_or(Value::attrs(), |t| compile::nix::parse_value(t).unwrap());
    match get(&v, &["k3s-token.age"]) {
        Some(k) => out.push_str(&format!(
            "== secrets.nix\nk3s-token.age = {};\n",
            compile::nix::inline(k)
        )),
        None => out.push_str("== secrets.nix\n(no k3s-token)\n"),
    }
    out
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/k3s/{name}.txt"));
    if std::env::var_os("HEARTH_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing; bless with HEARTH_BLESS=1", path.display()));
    assert_eq!(
        actual,
        want,
        "{name}: wiring differs from {}",
        path.display()
    );
}

const S: &[&str] = &["k3s-server"];
const A: &[&str] = &["k3s-agent"];

fn base() -> Vec<Spec<'static>> {
    vec![spec("a1", 11, A), spec("plain", 20, &[]), spec("s1", 1, S)]
}

#[test]
fn one_server_one_agent() {
    let files = compiled(&base());
    let w = wiring(&files);
    golden("base", &w);
    // The untagged host has nothing of the cluster.
    let plain = &files[Path::new("generated/plain/default.nix")];
    assert!(
        !plain.contains("k3s") && !plain.contains("extraCommands"),
        "{plain}"
    );
}

#[test]
fn adding_an_agent_wires_it_everywhere() {
    let mut hosts = base();
    hosts.push(spec("a2", 12, A));
    let w = wiring(&compiled(&hosts));
    golden("add_agent", &w);
    // a2 joins s1, s1 and a1 accept it, and it may decrypt the token.
    assert!(w.contains("-s 10.0.0.12 --dport 6443"), "{w}");
    assert!(
        w.matches("serverAddr = \"https://10.0.0.1:6443\"").count() == 2,
        "{w}"
    );
}

#[test]
fn a_second_server_makes_the_first_start_an_ha_cluster() {
    let mut hosts = base();
    hosts.push(spec("s2", 2, S));
    let w = wiring(&compiled(&hosts));
    golden("add_server", &w);
    assert!(w.contains("clusterInit = true;"), "{w}");
    assert!(w.contains("-s 10.0.0.2 --dport 2379:2380"), "{w}");
}

/// Adding a host and removing it again gives back the very same files, and an untagged
/// host's files are those of a host that never was in the cluster.
#[test]
fn removing_a_member_removes_everything() {
    let before = compiled(&base());
    let mut hosts = base();
    hosts.push(spec("a2", 12, A));
    let with = compiled(&hosts);
    assert_ne!(before, with);
    hosts[3].tags = &[];
    let untagged = compiled(&hosts);
    let a2 = &untagged[Path::new("generated/a2/default.nix")];
    assert!(!a2.contains("k3s") && !a2.contains("extraCommands"), "{a2}");
    // (common.nix and fleet.nix list every host, members or not.)
    for (rel, text) in untagged.iter().filter(|(r, _)| r.ends_with("default.nix")) {
        assert!(
            !text.contains("10.0.0.12") || rel.ends_with("a2/default.nix"),
            "{} still names a2's address:\n{text}",
            rel.display()
        );
    }
    hosts.pop();
    assert_eq!(compiled(&hosts), before);
    // Untag everyone: no host keeps any of it, the token is no one's secret.
    let none = compiled(&[
        spec("a1", 11, &[]),
        spec("plain", 20, &[]),
        spec("s1", 1, &[]),
    ]);
    let w = wiring(&none);
    assert_eq!(
        w,
        "== a1\n(no k3s)\n== plain\n(no k3s)\n== s1\n(no k3s)\n== secrets.nix\n(no k3s-token)\n"
    );
}

#[test]
fn settings_reach_the_servers_only_where_they_belong() {
    let mut hosts = base();
    hosts[2].extra = "\n[services.k3s]\nflannel_backend = \"wireguard-native\"\ndisable = [\"traefik\"]\ncluster_cidr = \"10.52.0.0/16\"\n";
    hosts[0].extra = "\n[services.k3s]\nflannel_backend = \"wireguard-native\"\ncluster_cidr = \"10.52.0.0/16\"\n";
    let w = wiring(&compiled(&hosts));
    golden("settings", &w);
    assert!(w.contains("--flannel-backend=wireguard-native"), "{w}");
    assert!(w.contains("-s 10.52.0.0/16 --dport 10250"), "{w}");
    assert!(
        w.contains("--dport 51820") && !w.contains("--dport 8472"),
        "{w}"
    );
}

// ---- refusals ----

#[test]
fn an_agent_without_a_server_is_refused() {
    let e = compile_error(&[spec("a1", 11, A), spec("a2", 12, A)]);
    assert!(
        e.contains("hosts/a1.toml: tagged `k3s-agent`, but no host is tagged `k3s-server`"),
        "{e}"
    );
    assert!(e.contains("hosts/a2.toml"), "{e}");
}

#[test]
fn a_token_that_is_not_a_secret_name_is_refused_with_its_location() {
    let mut hosts = base();
    hosts[0].extra = "\n[services.k3s]\ntoken_secret = \"K10f00::server:b4r\"\n";
    let dir = fleet(&hosts);
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-C")
        .arg(dir.path())
        .arg("check")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("invalid secret name `K10f00::server:b4r` for `services.k3s.token_secret`"),
        "{text}"
    );
    assert!(text.contains("--> hosts/a1.toml:14:16"), "{text}");
    // An empty name (no token at all) is refused by the cluster check.
    hosts[0].extra = "\n[services.k3s]\ntoken_secret = \"\"\n";
    let e = compile_error(&hosts);
    assert!(
        e.contains("hosts/a1.toml: `services.k3s.token_secret` is empty"),
        "{e}"
    );
}

#[test]
fn both_tags_or_a_service_without_a_tag_are_refused() {
    let e = compile_error(&[spec("s1", 1, &["k3s-server", "k3s-agent"])]);
    assert!(
        e.contains("tagged both `k3s-server` and `k3s-agent`"),
        "{e}"
    );
    let mut hosts = base();
    hosts[1].extra = "\n[services.k3s]\n";
    let e = compile_error(&hosts);
    assert!(
        e.contains(
            "hosts/plain.toml: `services.k3s` on a host without a `k3s-server` or `k3s-agent` tag"
        ),
        "{e}"
    );
}

#[test]
fn members_disagreeing_on_cluster_settings_are_refused() {
    let mut hosts = base();
    hosts[0].extra = "\n[services.k3s]\nflannel_backend = \"host-gw\"\n";
    let e = compile_error(&hosts);
    assert!(
        e.contains(
            "hosts/s1.toml: `services.k3s.flannel_backend` is \"vxlan\" here but \"host-gw\" on a1"
        ),
        "{e}"
    );
    let mut hosts = base();
    hosts[0].extra = "\n[services.k3s]\ndisable = [\"traefik\"]\n";
    // `hearth check` points at the setting.
    let dir = fleet(&hosts);
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-C")
        .arg(dir.path())
        .arg("check")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("--> hosts/a1.toml:14:1"), "{text}");
    let e = compile_error(&hosts);
    assert!(
        e.contains("hosts/a1.toml: `services.k3s.disable` = [\"traefik\"] only applies to servers"),
        "{e}"
    );
}

/// flannel's `wireguard-native` and hearth's WireGuard both default to UDP 51820: on one
/// host one of them could not bind, so the compile refuses it and `hearth check` points
/// at the clashing service.
#[test]
fn a_service_on_the_pod_networks_port_is_refused() {
    let mut hosts = base();
    let both = "\n[services.k3s]\nflannel_backend = \"wireguard-native\"\n";
    let clash = "\n[services.k3s]\nflannel_backend = \"wireguard-native\"\n\n[services.wireguard]\nips = [\"10.100.0.1/24\"]\n";
    hosts[0].extra = clash;
    hosts[2].extra = both;
    let e = compile_error(&hosts);
    assert!(
        e.contains("hosts/a1.toml: `services.wireguard` uses UDP 51820, which the k3s pod network (flannel backend wireguard-native) also uses on this host"),
        "{e}"
    );
    let dir = fleet(&hosts);
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-C")
        .arg(dir.path())
        .arg("check")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("--> hosts/a1.toml:16:"), "{text}");
    // Another port for WireGuard, or another backend, and the cluster compiles.
    let moved = "\n[services.k3s]\nflannel_backend = \"wireguard-native\"\n\n[services.wireguard]\nips = [\"10.100.0.1/24\"]\nlisten_port = 51822\n";
    hosts[0].extra = moved;
    compiled(&hosts);
}

#[test]
fn a_member_without_a_fixed_address_is_refused() {
    let dir = fleet(&base());
    let path = dir.path().join("hosts/a1.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let dhcp = text
        .replace("address = \"10.0.0.11\"", "address = \"a1.home.arpa\"")
        .replace(
            "interface = \"eno1\"\naddress = \"10.0.0.11/24\"\n",
            "dhcp = true\n",
        );
    std::fs::write(&path, dhcp).unwrap();
    let e = match compile::compile_repo(dir.path()) {
        Ok(_) => panic!("a member without a fixed address compiled"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains("hosts/a1.toml: a k3s node needs a fixed IP address"),
        "{e}"
    );
}

// ---- the real NixOS module ----

/// Evaluate a generated host module with the real k3s module: Ok(failed assertions and
/// warnings) or Err(the evaluation error); None when the trees are missing (SKIPPED).
fn harness(module: &str) -> Option<Result<serde_json::Value, String>> {
    let dirs = match checkouts::checkouts(&["HEARTH_NIXPKGS_LIB", "HEARTH_NIXPKGS_SPARSE"]) {
        Ok(d) => d,
        Err(reason) => {
            println!("SKIPPED: {reason}");
            return None;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("default.nix");
    std::fs::write(&host, module).unwrap();
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nixos-eval/harness.nix"))
        .args(["--arg", "nixpkgsLib"])
        .arg(&dirs[0])
        .args(["--arg", "sparse"])
        .arg(&dirs[1])
        .args(["--arg", "host"])
        .arg(&host)
        .args([
            "--arg",
            "realModules",
            "[ \"nixos/modules/misc/assertions.nix\" \"nixos/modules/services/cluster/rancher/default.nix\" ]",
        ])
        .args(["--arg", "realServices", "[ \"k3s\" ]"])
        .output()
        .expect("nix-instantiate");
    Some(if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

fn module(files: &BTreeMap<PathBuf, String>, host: &str) -> String {
    files[&PathBuf::from(format!("generated/{host}/default.nix"))].clone()
}

#[test]
fn servers_and_agents_pass_the_real_module() {
    let mut hosts = base();
    hosts.push(spec("s2", 2, S));
    hosts[2].extra = "\n[services.k3s]\ndisable = [\"traefik\"]\ndisable_agent = true\nflannel_backend = \"wireguard-native\"\n";
    for h in [0, 3] {
        hosts[h].extra = "\n[services.k3s]\nflannel_backend = \"wireguard-native\"\n";
    }
    let files = compiled(&hosts);
    for host in ["a1", "s1", "s2"] {
        let Some(r) = harness(&module(&files, host)) else {
            return;
        };
        let v = r.unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(v["failed"], serde_json::json!([]), "{host}");
        // The module warns about an agent without server or token: none here.
        assert_eq!(v["warnings"], serde_json::json!([]), "{host}");
    }
}

#[test]
fn the_real_module_rejects_what_the_wiring_prevents() {
    let files = compiled(&base());
    let agent = module(&files, "a1");
    // An agent that starts a cluster: the module's assertion.
    let bad = agent.replace(
        "role = \"agent\";",
        "role = \"agent\";\n      clusterInit = true;",
    );
    let Some(r) = harness(&bad) else { return };
    let failed = r.expect("evaluates")["failed"].to_string();
    assert!(
        failed.contains("clusterInit must be false if role is 'agent'"),
        "{failed}"
    );
    // An agent that runs no agent (the setting the wiring keeps to servers).
    let bad = agent.replace(
        "role = \"agent\";",
        "role = \"agent\";\n      disableAgent = true;",
    );
    let Some(r) = harness(&bad) else { return };
    let failed = r.expect("evaluates")["failed"].to_string();
    assert!(
        failed.contains("disableAgent must be false if role is 'agent'"),
        "{failed}"
    );
    // (The vendored module's "serverAddr should be set if role is 'agent'" warning is lost
    // in its k3s.nix, which replaces the base warnings; see the tree's README.)
    // A role the module does not know: a type error naming the option.
    let bad = agent.replace("role = \"agent\";", "role = \"worker\";");
    let Some(r) = harness(&bad) else { return };
    let err = r.expect_err("an unknown role must not evaluate");
    assert!(err.contains("services.k3s.role"), "{err}");
}
