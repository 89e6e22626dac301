//! Grafana: the fleet's Prometheus and Loki as provisioned data sources, and dashboards
//! generated from the inventory (one per node-exporter host, ZFS pools, backups).

use super::fleet::Fleet;
use super::Derived;
use crate::compile::resolve::{BackupPair, ScrapeTarget};
use serde_json::{json, Value};

/// Grafana caps dashboard and data source uids at 40 characters.
const UID_MAX: usize = 40;

pub fn derive(fleet: &Fleet, targets: &[ScrapeTarget], pairs: &[BackupPair], d: &mut Derived) {
    for g in fleet.running("grafana") {
        let sources = datasources(fleet, &g.name);
        let prom_uid = sources
            .iter()
            .find(|s| s["type"] == "prometheus")
            .and_then(|s| s["uid"].as_str())
            .map(String::from);
        let dashboards = match &prom_uid {
            Some(uid) => dashboards(fleet, targets, pairs, uid),
            None => vec![],
        };
        let files: Vec<Value> = dashboards
            .into_iter()
            .map(|mut db| {
                // Keys sorted: the file's text stays the same (docs/ARCHITECTURE.md,
                // "Dependencies").
                db.sort_all_objects();
                json!({
                    "file": format!("{}.json", db["uid"].as_str().unwrap_or("dashboard")),
                    "json": serde_json::to_string_pretty(&db).expect("JSON of JSON values"),
                })
            })
            .collect();
        d.add(
            &g.name,
            "grafana",
            json!({ "datasources": sources, "dashboards": files }),
        );
    }
}

/// A uid of at most 40 characters: `<prefix>-<name>`, shortened with a hash when longer.
pub fn uid(prefix: &str, name: &str) -> String {
    let full = format!("{prefix}-{name}");
    if full.len() <= UID_MAX {
        return full;
    }
    use sha2::{Digest, Sha256};
    let hash = hex::encode(&Sha256::digest(full.as_bytes())[..4]);
    format!("{}-{hash}", &full[..UID_MAX - 9])
}

/// Every Prometheus, Loki and Alertmanager of the fleet; the first Prometheus is the default.
pub fn datasources(fleet: &Fleet, grafana: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for (service, kind, title, port) in [
        ("prometheus", "prometheus", "Prometheus", 9090),
        ("loki", "loki", "Loki", 3100),
        ("alertmanager", "alertmanager", "Alertmanager", 9093),
    ] {
        let servers = fleet.running(service);
        for (i, s) in servers.iter().enumerate() {
            let name = if servers.len() == 1 {
                title.to_string()
            } else {
                format!("{title} ({})", s.name)
            };
            let mut source = json!({
                "name": name,
                "type": kind,
                "uid": uid(service, &s.name),
                "access": "proxy",
                "url": fleet.url(grafana, &s.name, service, port),
                "isDefault": service == "prometheus" && i == 0,
                "editable": false,
            });
            if kind == "alertmanager" {
                // Prometheus' Alertmanager (not Grafana's own), shown read-only.
                source["jsonData"] = json!({ "implementation": "prometheus" });
            }
            out.push(source);
        }
    }
    out
}

/// hearth's dashboards, each a Grafana dashboard JSON model.
pub fn dashboards(
    fleet: &Fleet,
    targets: &[ScrapeTarget],
    pairs: &[BackupPair],
    ds: &str,
) -> Vec<Value> {
    let mut out: Vec<Value> = targets.iter().map(|t| node(&t.host, ds)).collect();
    let zfs: Vec<String> = fleet
        .running("zfs")
        .iter()
        .filter(|h| targets.iter().any(|t| t.host == h.name))
        .filter(|h| {
            fleet
                .setting(&h.name, "zfs", "health")
                .and_then(|v| v.as_bool())
                == Some(true)
        })
        .map(|h| h.name.clone())
        .collect();
    if !zfs.is_empty() {
        out.push(zfs_pools(&zfs, ds));
    }
    let clients: Vec<&str> = pairs.iter().map(|p| p.client.as_str()).collect();
    let restorers: Vec<String> = fleet
        .running("restic-restore-test")
        .iter()
        .map(|h| h.name.clone())
        .collect();
    if !clients.is_empty() || !restorers.is_empty() {
        out.push(backups(&clients, &restorers, ds));
    }
    out
}

/// One panel: `queries` are (PromQL, legend).
fn panel(
    id: u64,
    kind: &str,
    title: &str,
    unit: &str,
    queries: &[(String, &str)],
    ds: &str,
) -> Value {
    let source = json!({ "type": "prometheus", "uid": ds });
    let targets: Vec<Value> = queries
        .iter()
        .zip(["A", "B", "C", "D"])
        .map(|((expr, legend), ref_id)| {
            json!({ "refId": ref_id, "expr": expr, "legendFormat": legend, "datasource": source })
        })
        .collect();
    let (w, h) = (12, 8);
    json!({
        "id": id,
        "type": kind,
        "title": title,
        "datasource": source,
        "gridPos": { "h": h, "w": w, "x": ((id - 1) % 2) * w, "y": ((id - 1) / 2) * h },
        "fieldConfig": { "defaults": { "unit": unit }, "overrides": [] },
        "targets": targets,
    })
}

fn dashboard(uid_name: &str, title: &str, panels: Vec<Value>) -> Value {
    json!({
        "uid": uid_name,
        "title": title,
        "tags": ["hearth"],
        "editable": false,
        "schemaVersion": 39,
        "time": { "from": "now-24h", "to": "now" },
        "refresh": "1m",
        "panels": panels,
    })
}

fn node(host: &str, ds: &str) -> Value {
    let sel = format!("host=\"{host}\"");
    let fs = format!("{sel},fstype!~\"tmpfs|ramfs|devtmpfs|overlay|squashfs\"");
    let panels = vec![
        panel(1, "timeseries", "CPU busy", "percent", &[(
            format!("100 * (1 - avg(rate(node_cpu_seconds_total{{{sel},mode=\"idle\"}}[5m])))"),
            "busy",
        )], ds),
        panel(2, "timeseries", "Memory used", "percent", &[(
            format!("100 * (1 - node_memory_MemAvailable_bytes{{{sel}}} / node_memory_MemTotal_bytes{{{sel}}})"),
            "used",
        )], ds),
        panel(3, "timeseries", "Filesystems used", "percent", &[(
            format!("100 * (1 - node_filesystem_avail_bytes{{{fs}}} / node_filesystem_size_bytes{{{fs}}})"),
            "{{mountpoint}}",
        )], ds),
        panel(4, "timeseries", "Network", "Bps", &[
            (format!("rate(node_network_receive_bytes_total{{{sel},device!=\"lo\"}}[5m])"), "{{device}} in"),
            (format!("rate(node_network_transmit_bytes_total{{{sel},device!=\"lo\"}}[5m])"), "{{device}} out"),
        ], ds),
        panel(5, "timeseries", "Load", "short", &[
            (format!("node_load1{{{sel}}}"), "1m"),
            (format!("node_load15{{{sel}}}"), "15m"),
        ], ds),
        panel(6, "stat", "Last deploy rolled back", "bool_yes_no", &[(
            format!("hearth_deploy_rolled_back{{{sel}}}"),
            "rolled back",
        )], ds),
    ];
    dashboard(&uid("hearth-node", host), &format!("Node: {host}"), panels)
}

fn zfs_pools(hosts: &[String], ds: &str) -> Value {
    let mut panels = Vec::new();
    for h in hosts {
        let n = panels.len() as u64;
        panels.push(panel(
            n + 1,
            "stat",
            &format!("Pools on {h} (1 = ONLINE)"),
            "short",
            &[(
                format!("hearth_zfs_pool_healthy{{host=\"{h}\"}}"),
                "{{pool}} {{health}}",
            )],
            ds,
        ));
        panels.push(panel(
            n + 2,
            "timeseries",
            &format!("Pool errors on {h}"),
            "short",
            &[(
                format!("hearth_zfs_pool_errors{{host=\"{h}\"}}"),
                "{{pool}} {{kind}}",
            )],
            ds,
        ));
    }
    dashboard("hearth-zfs", "ZFS pools", panels)
}

fn backups(clients: &[&str], restorers: &[String], ds: &str) -> Value {
    let mut panels = Vec::new();
    for c in clients {
        let n = panels.len() as u64 + 1;
        panels.push(panel(
            n,
            "stat",
            &format!("Age of the last backup of {c}"),
            "s",
            &[(
                format!("time() - hearth_backup_last_success_timestamp_seconds{{host=\"{c}\"}}"),
                "age",
            )],
            ds,
        ));
    }
    for r in restorers {
        let n = panels.len() as u64 + 1;
        panels.push(panel(
            n,
            "stat",
            &format!("Restore tests on {r} (1 = passed)"),
            "short",
            &[(
                format!("hearth_restore_test_success{{host=\"{r}\"}}"),
                "{{client}} {{path}}",
            )],
            ds,
        ));
    }
    dashboard("hearth-backups", "Backups", panels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_fit_grafana() {
        assert_eq!(uid("hearth-node", "nas"), "hearth-node-nas");
        let long = uid("hearth-node", &"a".repeat(63));
        assert_eq!(long.len(), 40);
        assert_ne!(long, uid("hearth-node", &format!("{}b", "a".repeat(62))));
    }

    #[test]
    fn node_dashboard_queries_the_host() {
        let db = node("nas", "prometheus-mon");
        assert_eq!(db["uid"], "hearth-node-nas");
        let expr = db["panels"][0]["targets"][0]["expr"].as_str().unwrap();
        assert_eq!(
            expr,
            "100 * (1 - avg(rate(node_cpu_seconds_total{host=\"nas\",mode=\"idle\"}[5m])))"
        );
        assert_eq!(db["panels"][0]["datasource"]["uid"], "prometheus-mon");
    }
}
