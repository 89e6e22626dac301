//! Wiring between services on different hosts that no host file states: the reverse
//! proxy's virtual hosts ([`vhosts`]) and the single sign-on in front of them ([`sso`]),
//! the DNS records ([`dns`]), the media libraries ([`media`]), the k3s cluster
//! ([`k3s`]) and the observability stack ([`observability`]: [`alerts`], [`grafana`],
//! [`logs`]). Each derivation reads the resolved hosts and hands its results to the
//! templates as facts; most return a [`Section`] that `hearth show` prints.

pub mod alerts;
pub mod dns;
pub mod fleet;
pub mod grafana;
pub mod k3s;
pub mod logs;
pub mod media;
pub mod obs_sections;
pub mod sso;
pub mod vhosts;

use super::resolve::{BackupPair, ResolvedHost, ScrapeTarget};
use crate::catalog::Catalog;
use crate::inventory::Inventory;
use serde::Serialize;
use std::collections::BTreeMap;

/// One part of the derived wiring as `hearth show` prints it: a name, what it is, and
/// one row per derived item (a vhost, a DNS record, …).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Section {
    pub name: String,
    pub about: String,
    pub rows: Vec<serde_json::Value>,
}

impl Section {
    pub fn new<T: Serialize>(name: &str, about: &str, rows: &[T]) -> Section {
        // A row's keys sorted, as `--json` has always printed them (docs/ARCHITECTURE.md,
        // "Dependencies").
        let row = |r: &T| {
            let mut v = serde_json::to_value(r).expect("plain data serializes");
            v.sort_all_objects();
            v
        };
        Section {
            name: name.into(),
            about: about.into(),
            rows: rows.iter().map(row).collect(),
        }
    }
}

/// Everything derived here, in the order `hearth show` prints it. Problems go to `errors`
/// (each naming the host file) and `warnings`.
pub fn derive(
    inv: &Inventory,
    catalog: &Catalog,
    hosts: &mut BTreeMap<String, ResolvedHost>,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Vec<Section> {
    k3s::wire(inv, catalog, hosts, errors, warnings);
    let vhosts = vhosts::derive(inv, catalog, hosts, errors, warnings);
    let records = dns::derive(inv, hosts, &vhosts, errors, warnings);
    let libraries = media::derive(inv, hosts, errors);
    vec![
        Section::new(
            "vhosts",
            "virtual hosts of the reverse proxy (caddy), one per web UI",
            &vhosts,
        ),
        Section::new(
            "dns_records",
            "DNS records the fleet's DNS server (blocky) answers",
            &records,
        ),
        Section::new(
            "media_libraries",
            "Jellyfin libraries and the datasets they read",
            &libraries,
        ),
    ]
}

/// The IPv4/IPv6 address other hosts reach `host` at: its static address, else its SSH
/// address when that is an IP (a DNS name has no address to publish).
pub fn host_ip(inv: &Inventory, host: &str) -> Option<String> {
    let f = &inv.hosts.get(host)?.file;
    let ip = |s: &str| s.parse::<std::net::IpAddr>().ok().map(|a| a.to_string());
    f.network
        .address
        .as_deref()
        .and_then(|cidr| ip(cidr.split('/').next().unwrap_or_default()))
        .or_else(|| ip(&f.ssh.address))
}

/// `host:port` with IPv6 addresses bracketed.
pub fn host_port(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// A string setting of a resolved service, or "" when unset.
pub fn setting<'a>(settings: &'a toml::Table, key: &str) -> &'a str {
    settings.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

/// The sections as aligned text tables (`hearth show --wiring`): a heading per section,
/// then a header row and one row per item; `name` first, other columns by name.
pub fn text(sections: &[Section]) -> String {
    let mut out = String::new();
    for s in sections {
        out.push_str(&format!("== {}: {}\n", s.name, s.about));
        let mut cols: Vec<String> = s
            .rows
            .iter()
            .filter_map(|r| r.as_object())
            .flat_map(|o| o.keys().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        cols.sort_by_key(|c| (c != "name", c.clone()));
        let cell = |r: &serde_json::Value, c: &str| match r.get(c) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => "-".into(),
            Some(v) => v.to_string(),
        };
        let mut table = vec![cols.clone()];
        table.extend(
            s.rows
                .iter()
                .map(|r| cols.iter().map(|c| cell(r, c)).collect()),
        );
        let widths: Vec<usize> = (0..cols.len())
            .map(|i| {
                table
                    .iter()
                    .map(|row| row[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        if s.rows.is_empty() {
            out.push_str("(none)\n\n");
            continue;
        }
        for row in table {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// Grafana data sources and dashboards, alloy → Loki, alert rules and Alertmanager
/// configuration, restore-test sets; returns the sections `hearth show` prints. Problems go
/// to `errors` with the host file's name.
pub fn observability(
    inv: &Inventory,
    hosts: &mut BTreeMap<String, ResolvedHost>,
    targets: &[ScrapeTarget],
    pairs: &[BackupPair],
    errors: &mut Vec<String>,
) -> Vec<Section> {
    let derived = {
        let fleet = fleet::Fleet { inv, hosts };
        let mut d = Derived::default();
        logs::derive(&fleet, &mut d, errors);
        grafana::derive(&fleet, targets, pairs, &mut d);
        alerts::derive(&fleet, targets, pairs, &mut d, errors);
        d
    };
    let sections = obs_sections::sections(&derived);
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
    sections
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_print_as_aligned_tables() {
        #[derive(Serialize)]
        struct R {
            name: &'static str,
            address: &'static str,
        }
        let s = vec![
            Section::new(
                "dns_records",
                "DNS records",
                &[
                    R {
                        name: "nixos.home.arpa",
                        address: "192.168.1.10",
                    },
                    R {
                        name: "a.b",
                        address: "fd00::1",
                    },
                ],
            ),
            Section::new::<R>("vhosts", "virtual hosts", &[]),
        ];
        assert_eq!(
            text(&s),
            "== dns_records: DNS records\n\
             name             address\n\
             nixos.home.arpa  192.168.1.10\n\
             a.b              fd00::1\n\
             \n\
             == vhosts: virtual hosts\n\
             (none)\n\n"
        );
    }
}
