//! Wiring between services on different hosts, derived from the inventory: each module
//! takes the resolved hosts and adds the facts their templates need. Called once from
//! `compile::resolve` after the per-host facts exist.

pub mod alerts;
pub mod fleet;
pub mod grafana;
pub mod logs;

use super::resolve::{BackupPair, ResolvedHost, ScrapeTarget};
use crate::inventory::Inventory;
use std::collections::BTreeMap;

/// Grafana data sources and dashboards, alloy → Loki, alert rules and Alertmanager
/// configuration, restore-test sets. Problems go to `errors` with the host file's name.
pub fn observability(
    inv: &Inventory,
    hosts: &mut BTreeMap<String, ResolvedHost>,
    targets: &[ScrapeTarget],
    pairs: &[BackupPair],
    errors: &mut Vec<String>,
) {
    let derived = {
        let fleet = fleet::Fleet { inv, hosts };
        let mut d = Derived::default();
        logs::derive(&fleet, &mut d, errors);
        grafana::derive(&fleet, targets, pairs, &mut d);
        alerts::derive(&fleet, targets, pairs, &mut d, errors);
        d
    };
    for (host, svc, facts) in derived.facts {
        let rh = hosts.get_mut(&host).expect("derived for a resolved host");
        match (rh.facts.get_mut(&svc), facts) {
            (Some(serde_json::Value::Object(old)), serde_json::Value::Object(new)) => {
                old.extend(new)
            }
            (_, facts) => {
                rh.facts.insert(svc, facts);
            }
        }
    }
}

/// Facts to add: (host, service, object merged into that service's facts).
#[derive(Default)]
pub struct Derived {
    pub facts: Vec<(String, String, serde_json::Value)>,
}

impl Derived {
    pub fn add(&mut self, host: &str, service: &str, facts: serde_json::Value) {
        self.facts
            .push((host.to_string(), service.to_string(), facts));
    }
}
