//! The observability wiring as `hearth show` prints it: alert rules, dashboards, data
//! sources and log shipping, read back from the facts the derivations hand the templates,
//! so the printout is exactly what the hosts get.

use super::{Derived, Section};
use serde::Serialize;
use serde_json::Value;

#[derive(Serialize)]
struct AlertRule {
    name: String,
    prometheus: String,
    group: String,
    host: Option<String>,
    #[serde(rename = "for")]
    after: String,
    severity: String,
}

#[derive(Serialize)]
struct Dashboard {
    name: String,
    grafana: String,
    title: String,
}

#[derive(Serialize)]
struct DataSource {
    name: String,
    grafana: String,
    #[serde(rename = "type")]
    kind: String,
    url: String,
}

#[derive(Serialize)]
struct LogShipping {
    name: String,
    loki: String,
    url: String,
}

/// The sections, in the order `hearth show` prints them.
pub fn sections(d: &Derived) -> Vec<Section> {
    let of = |svc: &'static str| d.facts.iter().filter(move |(_, s, _)| s == svc);
    let rules: Vec<AlertRule> = of("prometheus")
        .flat_map(|(h, _, f)| alert_rules(h, f))
        .collect();
    let boards: Vec<Dashboard> = of("grafana")
        .flat_map(|(h, _, f)| dashboards(h, f))
        .collect();
    let sources: Vec<DataSource> = of("grafana")
        .flat_map(|(h, _, f)| data_sources(h, f))
        .collect();
    let logs: Vec<LogShipping> = of("alloy")
        .map(|(h, _, f)| LogShipping {
            name: h.clone(),
            loki: text(&f["loki"]),
            url: text(&f["url"]),
        })
        .collect();
    vec![
        Section::new(
            "alert_rules",
            "alert rules each Prometheus host evaluates",
            &rules,
        ),
        Section::new(
            "dashboards",
            "Grafana dashboards provisioned from the inventory",
            &boards,
        ),
        Section::new(
            "data_sources",
            "Grafana data sources: the fleet's Prometheus, Loki and Alertmanager",
            &sources,
        ),
        Section::new(
            "log_shipping",
            "hosts whose journal alloy ships to Loki",
            &logs,
        ),
    ]
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The rules of one Prometheus host's rule file (JSON text in its facts).
fn alert_rules(prometheus: &str, facts: &Value) -> Vec<AlertRule> {
    let doc: Value =
        serde_json::from_str(facts["rules"].as_str().unwrap_or("{}")).unwrap_or_default();
    let groups = doc["groups"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for g in &groups {
        for r in g["rules"].as_array().into_iter().flatten() {
            out.push(AlertRule {
                name: text(&r["alert"]),
                prometheus: prometheus.to_string(),
                group: text(&g["name"]),
                host: r["labels"]["host"].as_str().map(String::from),
                after: text(&r["for"]),
                severity: text(&r["labels"]["severity"]),
            });
        }
    }
    out
}

fn dashboards(grafana: &str, facts: &Value) -> Vec<Dashboard> {
    let files = facts["dashboards"].as_array().cloned().unwrap_or_default();
    files
        .iter()
        .map(|f| {
            let db: Value =
                serde_json::from_str(f["json"].as_str().unwrap_or("{}")).unwrap_or_default();
            Dashboard {
                name: text(&db["uid"]),
                grafana: grafana.to_string(),
                title: text(&db["title"]),
            }
        })
        .collect()
}

fn data_sources(grafana: &str, facts: &Value) -> Vec<DataSource> {
    let sources = facts["datasources"].as_array().cloned().unwrap_or_default();
    sources
        .iter()
        .map(|s| DataSource {
            name: text(&s["uid"]),
            grafana: grafana.to_string(),
            kind: text(&s["type"]),
            url: text(&s["url"]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_dashboards_sources_and_shipping_become_rows() {
        let mut d = Derived::default();
        let rules = json!({ "groups": [{ "name": "hearth-hosts", "rules": [
            { "alert": "HostDown", "expr": "up == 0", "for": "5m",
              "labels": { "severity": "critical", "host": "nas" } }] }] });
        d.add("mon", "prometheus", json!({ "rules": rules.to_string() }));
        d.add("mon", "grafana", json!({
            "datasources": [{ "uid": "prometheus-mon", "type": "prometheus", "url": "http://127.0.0.1:9090" }],
            "dashboards": [{ "file": "hearth-node-nas.json",
                             "json": json!({ "uid": "hearth-node-nas", "title": "nas" }).to_string() }],
        }));
        d.add(
            "nas",
            "alloy",
            json!({ "loki": "mon", "url": "http://10.0.0.1:3100/loki/api/v1/push" }),
        );
        let s = sections(&d);
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["alert_rules", "dashboards", "data_sources", "log_shipping"]
        );
        assert_eq!(
            s[0].rows,
            [
                json!({ "name": "HostDown", "prometheus": "mon", "group": "hearth-hosts",
                     "host": "nas", "for": "5m", "severity": "critical" })
            ]
        );
        assert_eq!(
            s[1].rows,
            [json!({ "name": "hearth-node-nas", "grafana": "mon", "title": "nas" })]
        );
        assert_eq!(s[2].rows[0]["type"], "prometheus");
        assert_eq!(
            s[3].rows,
            [json!({ "name": "nas", "loki": "mon",
                                       "url": "http://10.0.0.1:3100/loki/api/v1/push" })]
        );
    }
}
