//! The monitoring configuration hearth derives, checked by the real programs: Prometheus'
//! `promtool` (check config, check rules, and rule unit tests that fire the derived alerts
//! on synthetic series) and Alertmanager's `amtool check-config`.
//!
//! The files are the ones the real NixOS modules would write: the generated host module is
//! evaluated with its real modules by tests/nixos-eval/harness.nix, and
//! tests/nixos-eval/monitoring-files.nix renders prometheus.yml, the rule file and
//! alertmanager.yml from the evaluated options with those modules' own expressions.
//!
//! Needs the vendored trees (see tests/checkouts) and Debian's `prometheus` and
//! `prometheus-alertmanager` packages; without them it skips, under HEARTH_REQUIRE_EVAL=1 it
//! fails.

mod checkouts;
mod compile_common;
mod obs_support;
use obs_support::{files, repo, run, tools, write};
use std::path::Path;
use std::process::Command;

fn check_all(dir: &Path, label: &str) {
    let ok = |r: Result<String, String>, what: &str| match r {
        Ok(out) => assert!(out.contains("SUCCESS"), "{label}: {what}: {out}"),
        Err(e) => panic!("{label}: {what} rejected the derived file:\n{e}"),
    };
    ok(
        run(Command::new("promtool")
            .arg("check")
            .arg("config")
            .arg(dir.join("prometheus.yml"))),
        "promtool check config",
    );
    ok(
        run(Command::new("promtool")
            .arg("check")
            .arg("rules")
            .arg(dir.join("rules.yml"))),
        "promtool check rules",
    );
    if dir.join("alertmanager.yml").exists() {
        ok(
            run(Command::new("amtool")
                .arg("check-config")
                .arg(dir.join("alertmanager.yml"))),
            "amtool check-config",
        );
    }
}

#[test]
fn example_fleet_monitoring_passes_promtool_and_amtool() {
    let Some(dirs) = tools() else { return };
    let f = files(&dirs, &repo().join("generated/nixos/default.nix"));
    assert!(f["rules"].as_str().unwrap().contains("HostDown"));
    let dir = write(&f);
    check_all(dir.path(), "generated/nixos");
}

/// The `everything` fixture: e-mail with SMTP auth and a webhook, a weekday schedule.
#[test]
fn fixture_with_email_and_webhook_passes_promtool_and_amtool() {
    let Some(dirs) = tools() else { return };
    let fixture = compile_common::copy_fixture("everything");
    let out = hearth::compile::compile_repo(fixture.path()).unwrap();
    let (_, text) = out
        .files
        .iter()
        .find(|(rel, _)| rel.ends_with("nixos/default.nix"))
        .expect("fixture host nixos");
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("default.nix");
    std::fs::write(&host, text).unwrap();
    let f = files(&dirs, &host);
    let am = f["alertmanagerYml"].as_str().unwrap();
    assert!(am.contains("smtp_auth_password_file"), "{am}");
    assert!(am.contains("alice@home.arpa, ops+alerts@home.arpa"), "{am}");
    let dir = write(&f);
    check_all(dir.path(), "fixture everything/nixos");
}

/// The validators are not vacuous: a broken rule and a config naming an undefined receiver
/// are rejected.
#[test]
fn the_validators_reject_broken_files() {
    let Some(_) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("bad.yml");
    std::fs::write(
        &rules,
        r#"{"groups":[{"name":"g","rules":[{"alert":"A","expr":"up =="}]}]}"#,
    )
    .unwrap();
    assert!(run(Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules))
    .is_err());
    let am = dir.path().join("am.yml");
    std::fs::write(
        &am,
        r#"{"route":{"receiver":"nobody"},"receivers":[{"name":"hearth"}]}"#,
    )
    .unwrap();
    assert!(run(Command::new("amtool").arg("check-config").arg(&am)).is_err());
}

/// promtool's rule unit tests: the derived alerts fire on the series they are meant for.
#[test]
fn derived_alerts_fire_on_synthetic_series() {
    let Some(dirs) = tools() else { return };
    let f = files(&dirs, &repo().join("generated/nixos/default.nix"));
    let dir = write(&f);
    let test = dir.path().join("test.yml");
    std::fs::write(&test, UNIT_TESTS).unwrap();
    match run(Command::new("promtool").args(["test", "rules"]).arg(&test)) {
        Ok(out) => assert!(out.contains("SUCCESS"), "{out}"),
        Err(e) => panic!("promtool test rules:\n{e}"),
    }
}

/// Series and the alerts they must raise (promtool test rules format, JSON-as-YAML).
const UNIT_TESTS: &str = r#"{
  "rule_files": ["rules.yml"],
  "evaluation_interval": "1m",
  "tests": [
    {
      "interval": "1m",
      "input_series": [
        {"series": "up{job=\"node\",host=\"helios64\"}", "values": "0x10"},
        {"series": "up{job=\"node\",host=\"nixos\"}", "values": "1x10"},
        {"series": "hearth_zfs_pool_healthy{host=\"helios64\",pool=\"tank\",health=\"DEGRADED\"}", "values": "0x10"},
        {"series": "hearth_deploy_rolled_back{host=\"nixos\"}", "values": "1x10"},
        {"series": "hearth_restore_test_success{host=\"helios64\",client=\"nixos\",path=\"/home\"}", "values": "0x10"},
        {"series": "hearth_restore_test_last_run_timestamp_seconds{host=\"helios64\"}", "values": "0x10"},
        {"series": "hearth_backup_last_success_timestamp_seconds{host=\"nixos\"}", "values": "0x10"},
        {"series": "hearth_backup_last_success_timestamp_seconds{host=\"helios64\"}", "values": "0x10"}
      ],
      "alert_rule_test": [
        {"eval_time": "10m", "alertname": "HostDown", "exp_alerts": [
          {"exp_labels": {"severity": "critical", "job": "node", "host": "helios64"},
           "exp_annotations": {"summary": "helios64 is down: node-exporter at 192.168.1.20:9100 does not answer"}}
        ]},
        {"eval_time": "10m", "alertname": "ZfsPoolNotOnline", "exp_alerts": [
          {"exp_labels": {"severity": "critical", "host": "helios64", "pool": "tank", "health": "DEGRADED"},
           "exp_annotations": {"summary": "ZFS pool tank on helios64 is DEGRADED"}}
        ]},
        {"eval_time": "10m", "alertname": "DeployRolledBack", "exp_alerts": [
          {"exp_labels": {"severity": "warning", "host": "nixos"},
           "exp_annotations": {"summary": "the last deploy to nixos was rolled back; see `hearth status`"}}
        ]},
        {"eval_time": "10m", "alertname": "RestoreTestFailed", "exp_alerts": [
          {"exp_labels": {"severity": "critical", "host": "helios64", "client": "nixos", "path": "/home"},
           "exp_annotations": {"summary": "restoring /home of nixos on helios64 failed; see `journalctl -u hearth-restic-restore-test` there"}}
        ]},
        {"eval_time": "10m", "alertname": "BackupTooOld", "exp_alerts": []}
      ]
    },
    {
      "interval": "1h",
      "input_series": [
        {"series": "hearth_backup_last_success_timestamp_seconds{host=\"nixos\"}", "values": "0x80"},
        {"series": "hearth_backup_last_success_timestamp_seconds{host=\"helios64\"}", "values": "86400x80"}
      ],
      "alert_rule_test": [
        {"eval_time": "1h", "alertname": "ZfsHealthNotReporting", "exp_alerts": []},
        {"eval_time": "3h", "alertname": "ZfsHealthNotReporting", "exp_alerts": [
          {"exp_labels": {"severity": "warning", "host": "helios64"},
           "exp_annotations": {"summary": "the ZFS health check on helios64 has not reported for 2h; see `systemctl status hearth-zfs-health` there"}}
        ]},
        {"eval_time": "47h", "alertname": "BackupTooOld", "exp_alerts": []},
        {"eval_time": "49h", "alertname": "BackupTooOld", "exp_alerts": [
          {"exp_labels": {"severity": "warning", "host": "nixos"},
           "exp_annotations": {"summary": "the newest backup of nixos is older than 2d"}}
        ]},
        {"eval_time": "73h", "alertname": "BackupTooOld", "exp_alerts": [
          {"exp_labels": {"severity": "warning", "host": "helios64"},
           "exp_annotations": {"summary": "the newest backup of helios64 is older than 2d"}},
          {"exp_labels": {"severity": "warning", "host": "nixos"},
           "exp_annotations": {"summary": "the newest backup of nixos is older than 2d"}}
        ]}
      ]
    }
  ]
}
"#;
