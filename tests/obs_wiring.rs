//! Golden and add/remove tests of the observability wiring hearth derives
//! (src/compile/wiring/): scrape targets, alert rules, Grafana data sources and dashboards,
//! alloy → Loki, Alertmanager receivers, restore-test sets.
//! `HEARTH_BLESS=1 cargo test --test obs_wiring` rewrites tests/golden/obs-wiring.json.

mod compile_common;
use serde_json::{json, Value};
use std::path::Path;

/// The derived wiring of a compiled fleet, per host and service, as one JSON document.
fn wiring(root: &Path) -> Value {
    let out = hearth::compile::compile_repo(root).unwrap();
    let mut hosts = serde_json::Map::new();
    for (name, rh) in &out.resolved.hosts {
        let mut facts = serde_json::Map::new();
        for svc in [
            "prometheus",
            "grafana",
            "alloy",
            "alertmanager",
            "restic-restore-test",
        ] {
            let Some(f) = rh.facts.get(svc) else { continue };
            let mut f = f.clone();
            // Text fields as data, so a diff shows the rule or panel that changed.
            if let Some(rules) = f.get("rules").and_then(Value::as_str) {
                f["rules"] = serde_json::from_str(rules).unwrap();
            }
            if let Some(dbs) = f.get_mut("dashboards").and_then(Value::as_array_mut) {
                for d in dbs {
                    d["json"] = serde_json::from_str(d["json"].as_str().unwrap()).unwrap();
                }
            }
            facts.insert(svc.into(), f);
        }
        if !facts.is_empty() {
            hosts.insert(name.clone(), Value::Object(facts));
        }
    }
    json!({ "targets": out.resolved.prometheus_targets, "hosts": hosts })
}

/// Objects with their keys in name order at every level: serde_json keeps insertion
/// order (its `preserve_order` is on for schemars), which is not what the golden compares.
fn sort_keys(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.sort_keys();
            m.values_mut().for_each(sort_keys);
        }
        Value::Array(a) => a.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

#[test]
fn derived_wiring_matches_golden() {
    let repo = compile_common::copy_fixture("everything");
    let mut value = wiring(repo.path());
    sort_keys(&mut value);
    let got = serde_json::to_string_pretty(&value).unwrap() + "\n";
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/obs-wiring.json");
    if std::env::var_os("HEARTH_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&golden, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&golden).expect("tests/golden/obs-wiring.json");
    pretty_assertions::assert_eq!(got, want, "rerun with HEARTH_BLESS=1 if intended");
}

const EXTRA: &str = r#"system = "x86_64-linux"
hardware = "generic-x86_64"
host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExtraExtraExtraExtraExtraExtraExtraExtraExA"

[ssh]
address = "192.168.1.77"

[disks.root]
device = "/dev/disk/by-id/ata-EXTRA"
filesystem = "ext4"

[services.node-exporter]

[services.restic]
paths = ["/srv/extra"]
target = "helios64"
"#;

fn names(v: &Value, pointer: &str, key: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x[key].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn rules_about(v: &Value, host: &str) -> Vec<String> {
    let mut out = Vec::new();
    for g in v["hosts"]["nixos"]["prometheus"]["rules"]["groups"]
        .as_array()
        .unwrap()
    {
        for r in g["rules"].as_array().unwrap() {
            if r["labels"]["host"] == host {
                out.push(r["alert"].as_str().unwrap().to_string());
            }
        }
    }
    out
}

/// A host added to the fleet gets its scrape target, dashboard, alerts, log shipping and a
/// place in the restore test; removing its file removes all of it, byte for byte.
#[test]
fn adding_a_host_adds_its_wiring_and_removing_it_removes_everything() {
    let repo = compile_common::copy_fixture("everything");
    let before = hearth::compile::compile_repo(repo.path()).unwrap().files;
    let base = wiring(repo.path());
    assert!(rules_about(&base, "extra").is_empty());

    std::fs::write(repo.path().join("hosts/extra.toml"), EXTRA).unwrap();
    let with = wiring(repo.path());
    assert!(names(&with, "/targets", "host").contains(&"extra".to_string()));
    assert_eq!(
        rules_about(&with, "extra"),
        ["HostDown", "BackupTooOld", "BackupNeverSucceeded"]
    );
    let files: Vec<String> = names(&with, "/hosts/nixos/grafana/dashboards", "file");
    assert!(
        files.contains(&"hearth-node-extra.json".to_string()),
        "{files:?}"
    );
    let backups = with["hosts"]["nixos"]["grafana"]["dashboards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["file"] == "hearth-backups.json")
        .unwrap();
    assert!(backups["json"]
        .to_string()
        .contains("hearth_backup_last_success_timestamp_seconds{host=\\\"extra\\\"}"));
    assert_eq!(
        with["hosts"]["extra"]["alloy"]["url"],
        "http://192.168.1.10:3100/loki/api/v1/push"
    );
    let sets = &with["hosts"]["helios64"]["restic-restore-test"]["sets"];
    assert!(
        sets.as_array().unwrap().contains(&json!({
            "client": "extra", "path": "/srv/extra", "repository": "/srv/backup/extra"
        })),
        "{sets}"
    );

    std::fs::remove_file(repo.path().join("hosts/extra.toml")).unwrap();
    let after = hearth::compile::compile_repo(repo.path()).unwrap().files;
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (rel, text) in &before {
        assert!(
            after[rel] == *text,
            "{} differs after removing the host",
            rel.display()
        );
    }
}

/// The fleet's Alertmanager is every Prometheus' target and a Grafana data source; dropping
/// the Loki removes the Loki data source and every host's log shipping, nothing else.
#[test]
fn services_added_and_removed_change_only_their_wiring() {
    let repo = compile_common::copy_fixture("everything");
    let base = wiring(repo.path());
    let am = &base["hosts"]["nixos"]["prometheus"]["alertmanagers"];
    assert_eq!(am, &json!(["192.168.1.10:9093"]));
    let ds = names(&base, "/hosts/nixos/grafana/datasources", "type");
    assert_eq!(ds, ["prometheus", "loki", "alertmanager"]);

    let nixos = repo.path().join("hosts/nixos.toml");
    let text = std::fs::read_to_string(&nixos).unwrap();
    let without_loki = text.replace("[services.loki]\nretention = \"14d\"\n", "");
    assert_ne!(without_loki, text);
    std::fs::write(&nixos, &without_loki).unwrap();
    let v = wiring(repo.path());
    assert_eq!(
        names(&v, "/hosts/nixos/grafana/datasources", "type"),
        ["prometheus", "alertmanager"]
    );
    for (host, facts) in v["hosts"].as_object().unwrap() {
        assert!(facts.get("alloy").is_none(), "{host} still ships logs");
    }
}
