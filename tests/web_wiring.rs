//! Golden tests of the derived wiring: the reverse proxy's virtual hosts and the DNS
//! records follow the inventory. Adding a host adds its record; adding a web UI adds its
//! vhost and its name; removing them removes everything again. The base fleet's
//! `hearth show --wiring` text and the proxy host's generated module are golden files
//! (tests/golden/wiring/); `HEARTH_BLESS=1 cargo test --test web_wiring` rewrites them.

use hearth::compile::{self, wiring};
use std::path::{Path, PathBuf};

const FLEET: &str = "domain = \"home.arpa\"\n\n[networks.lan]\ncidr = \"10.1.0.0/24\"\n\
                     gateway = \"10.1.0.1\"\ndns = [\"10.1.0.1\", \"9.9.9.9\"]\n";

/// The base fleet: `gw` runs caddy and blocky, `nas` runs jellyfin on a dataset.
fn base(dir: &Path) {
    let w = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w("hearth.toml", FLEET);
    w(
        "hosts/gw.toml",
        &host("10.1.0.2", "[services.caddy]\n[services.blocky]\n"),
    );
    w(
        "hosts/nas.toml",
        &host(
            "10.1.0.3",
            "[disks.root]\ndevice = \"/dev/disk/by-id/ata-ROOT\"\nfilesystem = \"ext4\"\n\
             [disks.pools.tank]\nmode = \"mirror\"\n\
             disks = [\"/dev/disk/by-id/ata-A\", \"/dev/disk/by-id/ata-B\"]\n\
             [disks.pools.tank.datasets.media]\nmountpoint = \"/srv/media\"\n\
             [services.jellyfin]\nlibraries.films = { path = \"/srv/media\", type = \"movies\" }\n",
        ),
    );
}

fn host(ip: &str, rest: &str) -> String {
    host_with("", ip, rest)
}

/// A host file with `top` (top-level keys such as `roles`) before its tables.
fn host_with(top: &str, ip: &str, rest: &str) -> String {
    format!(
        "system = \"x86_64-linux\"\nhardware = \"generic-x86_64\"\n{top}[ssh]\naddress = \"{ip}\"\n\
         [network]\ndhcp = false\ninterface = \"eth0\"\naddress = \"{ip}/24\"\nnetwork = \"lan\"\n{rest}"
    )
}

struct Out {
    wiring: Vec<wiring::Section>,
    gw: String,
}

fn compile(dir: &Path) -> Out {
    let out = compile::compile_repo(dir).unwrap();
    Out {
        wiring: out.resolved.wiring.clone(),
        gw: out.files[&PathBuf::from("generated/gw/default.nix")].clone(),
    }
}

/// (name, address) of every DNS record; (name, upstream) of every vhost.
fn rows(o: &Out, section: &str, cols: [&str; 2]) -> Vec<(String, String)> {
    let s = o.wiring.iter().find(|s| s.name == section).unwrap();
    s.rows
        .iter()
        .map(|r| {
            (
                r[cols[0]].as_str().unwrap().into(),
                r[cols[1]].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn records(o: &Out) -> Vec<(String, String)> {
    rows(o, "dns_records", ["name", "address"])
}

fn vhosts(o: &Out) -> Vec<(String, String)> {
    rows(o, "vhosts", ["name", "upstream"])
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.into(), b.into())
}

fn golden(name: &str, text: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/wiring")
        .join(name);
    if std::env::var("HEARTH_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with HEARTH_BLESS=1", path.display()));
    assert_eq!(
        text,
        want,
        "{} differs; HEARTH_BLESS=1 if intended",
        path.display()
    );
}

#[test]
fn the_base_fleets_wiring_matches_the_golden_files() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    let o = compile(dir.path());
    golden("show.txt", &wiring::text(&o.wiring));
    golden("gw.nix", &o.gw);
    assert_eq!(
        vhosts(&o),
        [pair("jellyfin.nas.home.arpa", "10.1.0.3:8096")]
    );
    assert_eq!(
        records(&o),
        [
            pair("gw.home.arpa", "10.1.0.2"),
            pair("jellyfin.nas.home.arpa", "10.1.0.2"),
            pair("nas.home.arpa", "10.1.0.3"),
        ]
    );
}

#[test]
fn adding_a_host_adds_its_record_and_removing_it_restores_everything() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    let before = compile(dir.path());
    std::fs::write(dir.path().join("hosts/pi.toml"), host("10.1.0.9", "")).unwrap();
    let with = compile(dir.path());
    let mut want = records(&before);
    want.push(pair("pi.home.arpa", "10.1.0.9"));
    want.sort();
    assert_eq!(records(&with), want);
    assert_eq!(vhosts(&with), vhosts(&before), "no web UI, no vhost");
    assert!(
        with.gw.contains("\"pi.home.arpa\" = \"10.1.0.9\";"),
        "{}",
        with.gw
    );
    std::fs::remove_file(dir.path().join("hosts/pi.toml")).unwrap();
    let after = compile(dir.path());
    assert_eq!(after.wiring, before.wiring);
    assert_eq!(after.gw, before.gw);
}

#[test]
fn adding_a_web_ui_adds_its_vhost_and_name_and_removing_it_removes_both() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    let before = compile(dir.path());
    // Prometheus (a web UI, `[web] port = "port"`) on a new host, on a non-default port.
    std::fs::write(
        dir.path().join("hosts/mon.toml"),
        host("10.1.0.5", "[services.prometheus]\nport = 9091\n"),
    )
    .unwrap();
    let with = compile(dir.path());
    let mut want = vhosts(&before);
    want.push(pair("prometheus.mon.home.arpa", "10.1.0.5:9091"));
    want.sort();
    let mut got = vhosts(&with);
    got.sort();
    assert_eq!(got, want);
    let mut want = records(&before);
    want.push(pair("mon.home.arpa", "10.1.0.5"));
    want.push(pair("prometheus.mon.home.arpa", "10.1.0.2")); // the proxy answers for it
    want.sort();
    assert_eq!(records(&with), want);
    assert!(
        with.gw.contains("\"prometheus.mon.home.arpa\".extraConfig = ''\n          tls internal\n          reverse_proxy 10.1.0.5:9091 {\n          health_uri /-/ready\n          health_interval 10s\n          }\n"),
        "{}",
        with.gw
    );
    assert!(with
        .gw
        .contains("\"prometheus.mon.home.arpa\" = \"10.1.0.2\";"));
    std::fs::remove_file(dir.path().join("hosts/mon.toml")).unwrap();
    let after = compile(dir.path());
    assert_eq!(after.wiring, before.wiring);
    assert_eq!(after.gw, before.gw);
    assert!(!after.gw.contains("prometheus"));
}

#[test]
fn a_web_ui_on_the_proxy_host_is_reached_over_loopback() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    std::fs::write(
        dir.path().join("hosts/gw.toml"),
        host_with(
            "roles = [\"monitoring\"]\n",
            "10.1.0.2",
            "[services.caddy]\n[services.blocky]\n",
        ),
    )
    .unwrap();
    let o = compile(dir.path());
    assert!(vhosts(&o).contains(&pair("prometheus.gw.home.arpa", "127.0.0.1:9090")));
}

#[test]
fn without_a_proxy_there_are_no_vhosts_and_no_vhost_records() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    std::fs::write(
        dir.path().join("hosts/gw.toml"),
        host("10.1.0.2", "[services.blocky]\n"),
    )
    .unwrap();
    let o = compile(dir.path());
    assert!(vhosts(&o).is_empty());
    assert_eq!(
        records(&o),
        [
            pair("gw.home.arpa", "10.1.0.2"),
            pair("nas.home.arpa", "10.1.0.3")
        ]
    );
    assert!(!o.gw.contains("caddy"), "{}", o.gw);
}

/// The DNS server never forwards to itself: its own address is dropped from the network's
/// resolvers; an explicit `upstreams` replaces them.
#[test]
fn upstreams_come_from_the_network_minus_the_server_itself() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    std::fs::write(
        dir.path().join("hearth.toml"),
        FLEET.replace("[\"10.1.0.1\", \"9.9.9.9\"]", "[\"10.1.0.2\", \"9.9.9.9\"]"),
    )
    .unwrap();
    let o = compile(dir.path());
    assert!(
        o.gw.contains("upstreams.groups.default = [ \"9.9.9.9\" ];"),
        "{}",
        o.gw
    );
    std::fs::write(
        dir.path().join("hosts/gw.toml"),
        host(
            "10.1.0.2",
            "[services.caddy]\n[services.blocky]\nupstreams = [\"1.1.1.1\"]\n",
        ),
    )
    .unwrap();
    let o = compile(dir.path());
    assert!(
        o.gw.contains("upstreams.groups.default = [ \"1.1.1.1\" ];"),
        "{}",
        o.gw
    );
}

/// caddy's `trust_root`: every host trusts the file; `gen` notices when it disappears even
/// though nothing else changed (the no-op stamp watches it).
#[test]
fn the_trust_root_reaches_every_host_and_its_removal_is_noticed() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    let pem = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/everything/keys/caddy-root.crt"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/caddy-root.crt"), pem).unwrap();
    std::fs::write(
        dir.path().join("hosts/gw.toml"),
        host(
            "10.1.0.2",
            "[services.caddy]\ntrust_root = \"keys/caddy-root.crt\"\n[services.blocky]\n",
        ),
    )
    .unwrap();
    compile::generate(dir.path()).unwrap();
    for h in ["gw", "nas"] {
        let text =
            std::fs::read_to_string(dir.path().join(format!("generated/{h}/default.nix"))).unwrap();
        assert!(
            text.contains("security.pki.certificateFiles = [ ../../keys/caddy-root.crt ];"),
            "{h}: {text}"
        );
    }
    assert_eq!(
        compile::generate(dir.path()).unwrap(),
        compile::GenOutcome::UpToDate
    );
    std::fs::remove_file(dir.path().join("keys/caddy-root.crt")).unwrap();
    let err = format!("{:#}", compile::generate(dir.path()).unwrap_err());
    assert!(
        err.contains("`keys/caddy-root.crt` does not exist"),
        "{err}"
    );
}

/// authelia next to caddy: the UIs without a login of their own (prometheus) are guarded,
/// those with one (jellyfin) are not; the portal gets a vhost and a DNS name. Removing
/// authelia removes all of it.
#[test]
fn authelia_guards_the_uis_without_a_login_and_leaves_no_trace_when_removed() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    let before = compile(dir.path());
    std::fs::write(
        dir.path().join("hosts/mon.toml"),
        host("10.1.0.5", "[services.prometheus]\n"),
    )
    .unwrap();
    let without = compile(dir.path());
    std::fs::write(
        dir.path().join("hosts/gw.toml"),
        host(
            "10.1.0.2",
            "[services.caddy]\n[services.blocky]\n[services.authelia]\n",
        ),
    )
    .unwrap();
    let with = compile(dir.path());
    let vh = &with
        .wiring
        .iter()
        .find(|s| s.name == "vhosts")
        .unwrap()
        .rows;
    let sso: Vec<&str> = vh
        .iter()
        .filter(|r| r.get("sso") == Some(&serde_json::json!(true)))
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(sso, ["prometheus.mon.home.arpa"]);
    assert!(records(&with).contains(&pair("auth.home.arpa", "10.1.0.2")));
    assert!(
        with.gw.contains("\"auth.home.arpa\".extraConfig"),
        "{}",
        with.gw
    );
    assert!(
        with.gw
            .contains("forward_auth 127.0.0.1:9091 {\n          uri /api/authz/forward-auth\n"),
        "{}",
        with.gw
    );
    assert_eq!(with.gw.matches("forward_auth").count(), 1, "{}", with.gw);
    assert!(
        with.gw
            .contains("domain = [ \"prometheus.mon.home.arpa\" ];"),
        "{}",
        with.gw
    );
    assert!(with
        .gw
        .contains("authelia_url = \"https://auth.home.arpa\";"));
    // Back to caddy alone: exactly the wiring and module from before authelia.
    std::fs::write(
        dir.path().join("hosts/gw.toml"),
        host("10.1.0.2", "[services.caddy]\n[services.blocky]\n"),
    )
    .unwrap();
    let after = compile(dir.path());
    assert_eq!(after.wiring, without.wiring);
    assert_eq!(after.gw, without.gw);
    assert_ne!(without.gw, before.gw);
}

/// `hearth show --wiring` prints exactly the golden sections; `--json` the same rows.
#[test]
fn hearth_show_wiring_prints_the_sections() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("-C")
            .arg(dir.path())
            .args(["show", "--wiring"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    golden("show.txt", &run(&[]));
    let json: Vec<serde_json::Value> = serde_json::from_str(&run(&["--json"])).unwrap();
    let names: Vec<&str> = json.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "vhosts",
            "dns_records",
            "media_libraries",
            "alert_rules",
            "dashboards",
            "data_sources",
            "log_shipping"
        ]
    );
    assert_eq!(json[1]["rows"].as_array().unwrap().len(), 3);
}

/// On the example fleet, `hearth show --wiring --json` lists each host's alert rules,
/// dashboard and log shipping next to its vhosts and DNS record.
#[test]
fn the_example_fleets_wiring_shows_rules_dashboards_and_logs_per_host() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-C")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .args(["show", "--wiring", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sections: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let rows = |name: &str| -> Vec<serde_json::Value> {
        let s = sections.iter().find(|s| s["name"] == name).unwrap();
        s["rows"].as_array().unwrap().clone()
    };
    for host in ["nixos", "helios64"] {
        let down = rows("alert_rules")
            .into_iter()
            .filter(|r| r["name"] == "HostDown" && r["host"] == host)
            .count();
        assert_eq!(down, 1, "HostDown for {host}");
        let board = format!("hearth-node-{host}");
        assert!(rows("dashboards")
            .iter()
            .any(|r| r["name"] == board.as_str()));
        assert!(rows("log_shipping").iter().any(|r| r["name"] == host));
        let record = format!("{host}.home.arpa");
        assert!(rows("dns_records")
            .iter()
            .any(|r| r["name"] == record.as_str()));
    }
    let sources: Vec<String> = rows("data_sources")
        .iter()
        .map(|r| r["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sources, ["prometheus", "loki", "alertmanager"]);
}

/// A host whose address hearth does not know (DHCP, SSH by name) gets no record, and a
/// warning says why.
#[test]
fn a_host_without_a_known_address_gets_a_warning_not_a_record() {
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    std::fs::write(
        dir.path().join("hosts/laptop.toml"),
        "system = \"x86_64-linux\"\nhardware = \"generic-x86_64\"\n[ssh]\naddress = \"laptop.local\"\n",
    )
    .unwrap();
    let out = compile::compile_repo(dir.path()).unwrap();
    let w = out.resolved.warnings.join("\n");
    assert!(w.contains("no DNS record for `laptop.home.arpa`"), "{w}");
    let o = compile(dir.path());
    assert!(!records(&o).iter().any(|(n, _)| n.starts_with("laptop")));
}
