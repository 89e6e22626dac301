//! Alerts: Prometheus rules derived from the inventory (a host down per scrape target, ZFS
//! pools not ONLINE, backups older than twice their schedule, failed or stale restore
//! tests, filling disks, rolled-back deploys), the Alertmanager every Prometheus sends them
//! to, its receivers, and the restore-test sets of each backup-target host.

use super::fleet::Fleet;
use super::Derived;
use crate::compile::resolve::{BackupPair, ScrapeTarget};
use crate::inventory::schedule::{calendar_period, duration_seconds, prometheus_duration};
use serde_json::{json, Value};

/// Where systemd's LoadCredential puts the alertmanager secrets (see its template).
pub const CREDENTIALS: &str = "/run/credentials/alertmanager.service";

pub fn derive(
    fleet: &Fleet,
    targets: &[ScrapeTarget],
    pairs: &[BackupPair],
    d: &mut Derived,
    errors: &mut Vec<String>,
) {
    let managers: Vec<String> = fleet
        .running("alertmanager")
        .iter()
        .map(|h| fleet.target(&h.name, "alertmanager", 9093))
        .collect();
    let watched = Watched::of(fleet, targets, pairs);
    for p in fleet.running("prometheus") {
        let get = |k: &str| fleet.str_setting(&p.name, "prometheus", k);
        let free = fleet
            .setting(&p.name, "prometheus", "disk_free_percent")
            .and_then(|v| v.as_integer())
            .unwrap_or(10);
        let doc = rules(&watched, &get("host_down_after"), free);
        d.add(
            &p.name,
            "prometheus",
            json!({ "rules": rules_text(&doc), "alertmanagers": managers }),
        );
    }
    for a in fleet.running("alertmanager") {
        match alertmanager_config(fleet, &a.name) {
            Ok(c) => d.add(&a.name, "alertmanager", json!({ "configuration": c })),
            Err(e) => errors.push(format!("{}: {e}", a.source)),
        }
    }
    for r in fleet.running("restic-restore-test") {
        match restore_sets(fleet, &r.name, pairs) {
            Ok(sets) => d.add(&r.name, "restic-restore-test", json!({ "sets": sets })),
            Err(e) => errors.push(format!("{}: {e}", r.source)),
        }
    }
}

/// What the rules watch, per host: only hosts whose node-exporter is scraped can report.
#[derive(Debug, Default, PartialEq)]
pub struct Watched {
    /// (host, target) of every scrape target.
    pub targets: Vec<(String, String)>,
    /// (host with ZFS health reports, seconds after which its last report is too old, when
    /// the check's schedule tells).
    pub zfs: Vec<(String, Option<u64>)>,
    /// (client, seconds after which its newest backup is too old).
    pub backups: Vec<(String, u64)>,
    /// (restore-test host, seconds after which its last run is too old).
    pub restores: Vec<(String, u64)>,
}

impl Watched {
    pub fn of(fleet: &Fleet, targets: &[ScrapeTarget], pairs: &[BackupPair]) -> Watched {
        let scraped = |h: &str| targets.iter().any(|t| t.host == h);
        let mut w = Watched {
            targets: targets
                .iter()
                .map(|t| (t.host.clone(), t.target.clone()))
                .collect(),
            ..Watched::default()
        };
        for h in fleet.running("zfs") {
            let health = fleet
                .setting(&h.name, "zfs", "health")
                .and_then(|v| v.as_bool());
            if scraped(&h.name) && health == Some(true) {
                let every = fleet.str_setting(&h.name, "zfs", "health_interval");
                w.zfs
                    .push((h.name.clone(), calendar_period(&every).map(|p| 2 * p)));
            }
        }
        for p in pairs.iter().filter(|p| scraped(&p.client)) {
            if let Some(s) = max_age(fleet, &p.client, "restic") {
                w.backups.push((p.client.clone(), s));
            }
        }
        for r in fleet.running("restic-restore-test") {
            if scraped(&r.name) {
                if let Some(s) = max_age(fleet, &r.name, "restic-restore-test") {
                    w.restores.push((r.name.clone(), s));
                }
            }
        }
        w
    }
}

/// `max_age` when set, else twice the period of `schedule`; None (no staleness alert, and a
/// warning from `hearth check`) when the schedule's period can't be told.
fn max_age(fleet: &Fleet, host: &str, service: &str) -> Option<u64> {
    let explicit = fleet.str_setting(host, service, "max_age");
    if !explicit.is_empty() {
        return duration_seconds(&explicit);
    }
    calendar_period(&fleet.str_setting(host, service, "schedule")).map(|p| 2 * p)
}

fn rule(alert: &str, expr: String, after: &str, severity: &str, summary: String) -> Value {
    json!({
        "alert": alert,
        "expr": expr,
        "for": after,
        "labels": { "severity": severity },
        "annotations": { "summary": summary },
    })
}

/// A rule about one host: `host` as a label too, so that the rules of two hosts differ in
/// more than their expression (`promtool check rules` refuses such duplicates) and an
/// `absent(…)` alert, whose series has no labels, still names its host.
fn host_rule(
    host: &str,
    alert: &str,
    expr: String,
    after: &str,
    severity: &str,
    summary: String,
) -> Value {
    let mut r = rule(alert, expr, after, severity, summary);
    r["labels"]["host"] = json!(host);
    r
}

/// The rule file (`groups:` …) as data.
pub fn rules(w: &Watched, host_down_after: &str, disk_free_percent: i64) -> Value {
    let mut groups = Vec::new();
    for (name, rules) in [
        ("hearth-hosts", host_rules(w, host_down_after)),
        ("hearth-zfs", zfs_rules(w)),
        ("hearth-backups", backup_rules(w)),
        ("hearth-fleet", fleet_rules(disk_free_percent)),
    ] {
        if !rules.is_empty() {
            groups.push(json!({ "name": name, "rules": rules }));
        }
    }
    json!({ "groups": groups })
}

/// `HostDown` per scrape target.
fn host_rules(w: &Watched, host_down_after: &str) -> Vec<Value> {
    let mut hosts = Vec::new();
    for (host, target) in &w.targets {
        hosts.push(host_rule(
            host,
            "HostDown",
            format!("up{{job=\"node\",host=\"{host}\"}} == 0"),
            host_down_after,
            "critical",
            format!("{host} is down: node-exporter at {target} does not answer"),
        ));
    }
    hosts
}

/// `ZfsPoolNotOnline` per host with ZFS health reports.
fn zfs_rules(w: &Watched) -> Vec<Value> {
    let mut zfs = Vec::new();
    for (host, stale) in &w.zfs {
        zfs.push(host_rule(
            host,
            "ZfsPoolNotOnline",
            format!("hearth_zfs_pool_healthy{{host=\"{host}\"}} == 0"),
            "0m",
            "critical",
            format!("ZFS pool {{{{ $labels.pool }}}} on {host} is {{{{ $labels.health }}}}"),
        ));
        // A health check that stopped running would silence the rule above.
        if let Some(secs) = stale {
            let metric = format!("hearth_zfs_health_last_run_seconds{{host=\"{host}\"}}");
            let age = prometheus_duration(*secs);
            zfs.push(host_rule(
                host,
                "ZfsHealthNotReporting",
                format!("(time() - {metric} > {secs}) or absent({metric})"),
                &age,
                "warning",
                format!("the ZFS health check on {host} has not reported for {age}; see `systemctl status hearth-zfs-health` there"),
            ));
        }
    }
    zfs
}

/// Stale or missing backups per client, failed or stale restore tests per tester.
fn backup_rules(w: &Watched) -> Vec<Value> {
    let mut backups = Vec::new();
    for (client, secs) in &w.backups {
        let metric = format!("hearth_backup_last_success_timestamp_seconds{{host=\"{client}\"}}");
        let age = prometheus_duration(*secs);
        backups.push(host_rule(
            client,
            "BackupTooOld",
            format!("time() - {metric} > {secs}"),
            "0m",
            "warning",
            format!("the newest backup of {client} is older than {age}"),
        ));
        backups.push(host_rule(
            client,
            "BackupNeverSucceeded",
            format!("absent({metric})"),
            &age,
            "warning",
            format!("{client} has reported no successful backup for {age}"),
        ));
    }
    for (host, secs) in &w.restores {
        let age = prometheus_duration(*secs);
        backups.push(host_rule(
            host,
            "RestoreTestFailed",
            format!("hearth_restore_test_success{{host=\"{host}\"}} == 0"),
            "0m",
            "critical",
            format!("restoring {{{{ $labels.path }}}} of {{{{ $labels.client }}}} on {host} failed; see `journalctl -u hearth-restic-restore-test` there"),
        ));
        backups.push(host_rule(
            host,
            "RestoreTestNotRun",
            format!("(time() - hearth_restore_test_last_run_timestamp_seconds{{host=\"{host}\"}} > {secs}) or absent(hearth_restore_test_last_run_timestamp_seconds{{host=\"{host}\"}})"),
            &age,
            "warning",
            format!("the restore test on {host} has not run for {age}"),
        ));
    }
    backups
}

/// Rules over every host: filling disks, rolled-back deploys.
fn fleet_rules(disk_free_percent: i64) -> Vec<Value> {
    let fs = "fstype!~\"tmpfs|ramfs|devtmpfs|overlay|squashfs\"";
    vec![
        rule(
            "DiskFillingUp",
            format!("100 * node_filesystem_avail_bytes{{{fs}}} / node_filesystem_size_bytes{{{fs}}} < {disk_free_percent}"),
            "15m",
            "warning",
            format!("{{{{ $labels.mountpoint }}}} on {{{{ $labels.host }}}} has less than {disk_free_percent}% free"),
        ),
        rule(
            "DiskFullIn24h",
            format!("predict_linear(node_filesystem_avail_bytes{{{fs}}}[6h], 86400) < 0"),
            "1h",
            "warning",
            "{{ $labels.mountpoint }} on {{ $labels.host }} will be full within a day at this rate".into(),
        ),
        rule(
            "DeployRolledBack",
            "hearth_deploy_rolled_back == 1".into(),
            "0m",
            "warning",
            "the last deploy to {{ $labels.host }} was rolled back; see `hearth status`".into(),
        ),
    ]
}

/// The rule file's text: JSON, which is YAML, written by serde (escaping by construction),
/// keys sorted (docs/ARCHITECTURE.md, "Dependencies": the file's text stays the same).
pub fn rules_text(doc: &Value) -> String {
    let mut doc = doc.clone();
    doc.sort_all_objects();
    let mut s = serde_json::to_string_pretty(&doc).expect("JSON of JSON values");
    s.push('\n');
    s
}

/// alertmanager.yml as data (`services.prometheus.alertmanager.configuration`).
pub fn alertmanager_config(fleet: &Fleet, host: &str) -> Result<Value, String> {
    let s = |k: &str| fleet.str_setting(host, "alertmanager", k);
    let to: Vec<String> = fleet
        .setting(host, "alertmanager", "email_to")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let mut receiver = json!({ "name": "hearth" });
    let mut config = json!({
        "route": {
            "receiver": "hearth",
            "group_by": ["alertname", "host"],
            "group_wait": s("group_wait"),
            "group_interval": "5m",
            "repeat_interval": s("repeat_interval"),
        },
    });
    if !s("webhook_url_secret").is_empty() {
        receiver["webhook_configs"] = json!([{
            "url_file": format!("{CREDENTIALS}/webhook-url"),
            "send_resolved": true,
        }]);
    }
    if !to.is_empty() {
        let (from, smarthost) = (s("email_from"), s("smarthost"));
        if from.is_empty() || smarthost.is_empty() {
            return Err("[services.alertmanager] `email_to` needs `email_from` and `smarthost` (the SMTP server as `host:port`)".into());
        }
        let mut global = json!({
            "smtp_from": from,
            "smtp_smarthost": smarthost,
            "smtp_require_tls": fleet.setting(host, "alertmanager", "smtp_require_tls").and_then(|v| v.as_bool()).unwrap_or(true),
        });
        match (s("smtp_user").is_empty(), s("smtp_password_secret").is_empty()) {
            (true, true) => {}
            (false, false) => {
                global["smtp_auth_username"] = json!(s("smtp_user"));
                global["smtp_auth_password_file"] = json!(format!("{CREDENTIALS}/smtp-password"));
            }
            _ => return Err("[services.alertmanager] `smtp_user` and `smtp_password_secret` go together: set both or neither".into()),
        }
        config["global"] = global;
        receiver["email_configs"] = json!([{ "to": to.join(", "), "send_resolved": true }]);
    } else if !s("email_from").is_empty() || !s("smarthost").is_empty() {
        return Err("[services.alertmanager] `email_from`/`smarthost` without `email_to`: say who gets the mail".into());
    }
    config["receivers"] = json!([receiver]);
    Ok(config)
}

/// The restore-test sets of a backup-target host: every path of every client it serves.
pub fn restore_sets(fleet: &Fleet, host: &str, pairs: &[BackupPair]) -> Result<Vec<Value>, String> {
    if !fleet.hosts[host].services.contains_key("restic-server") {
        return Err("restic-restore-test runs on a backup-target host (it reads the repositories the restic REST server keeps there); give this host the `backup-target` role or remove the service".into());
    }
    let dir = fleet.inv.hosts[host]
        .file
        .backup_target
        .as_ref()
        .map_or_else(crate::inventory::default_backup_path, |b| b.path.clone());
    let mut sets = Vec::new();
    for p in pairs.iter().filter(|p| p.target.as_deref() == Some(host)) {
        for path in &p.paths {
            sets.push(json!({
                "client": p.client,
                "repository": format!("{}/{}", dir.trim_end_matches('/'), p.client),
                "path": path,
            }));
        }
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_per_host_and_fleet() {
        let w = Watched {
            targets: vec![("nas".into(), "10.0.0.2:9100".into())],
            zfs: vec![("nas".into(), Some(7200))],
            backups: vec![("pc".into(), 172800)],
            restores: vec![],
        };
        let doc = rules(&w, "5m", 10);
        let groups = doc["groups"].as_array().unwrap();
        let names: Vec<&str> = groups.iter().map(|g| g["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "hearth-hosts",
                "hearth-zfs",
                "hearth-backups",
                "hearth-fleet"
            ]
        );
        assert_eq!(
            groups[0]["rules"][0]["expr"],
            "up{job=\"node\",host=\"nas\"} == 0"
        );
        assert_eq!(groups[0]["rules"][0]["for"], "5m");
        assert_eq!(
            groups[2]["rules"][0]["expr"],
            "time() - hearth_backup_last_success_timestamp_seconds{host=\"pc\"} > 172800"
        );
        assert_eq!(groups[2]["rules"][1]["for"], "2d");
        let empty = rules(&Watched::default(), "5m", 10);
        assert_eq!(
            empty["groups"].as_array().unwrap().len(),
            1,
            "only the fleet-wide group"
        );
    }
}
