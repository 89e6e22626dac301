//! DNS records: on the host running `blocky`, an A/AAAA record `<host>.<domain>` for every
//! host with a known address and one per proxied web UI pointing at the proxy's address.
//! Everything else is forwarded to the upstream resolvers of the host's network.

use super::host_ip;
use super::vhosts::Vhost;
use crate::compile::resolve::ResolvedHost;
use crate::inventory::{Hardware, Inventory};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    pub name: String,
    pub address: String,
    /// `host` (the host itself) or `vhost` (a proxied web UI).
    pub kind: String,
}

/// Every record; the blocky host gets them as `facts.blocky.records` (name → address).
pub fn derive(
    inv: &Inventory,
    hosts: &mut BTreeMap<String, ResolvedHost>,
    vhosts: &[Vhost],
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Vec<Record> {
    let servers: Vec<String> = hosts
        .values()
        .filter(|h| h.services.contains_key("blocky"))
        .map(|h| h.name.clone())
        .collect();
    if servers.is_empty() {
        return vec![];
    }
    let records = records(inv, hosts, vhosts);
    for rh in hosts.values().filter(|h| h.hardware != Hardware::Lab) {
        if host_ip(inv, &rh.name).is_none() {
            warnings.push(format!(
                "{}: no DNS record for `{}`: hearth knows no IP address of it (DHCP, and `ssh.address` is a name); give it a static `[network] address` or an IP in `ssh.address`",
                rh.source, rh.fqdn
            ));
        }
    }
    let mapping: BTreeMap<&str, &str> = records
        .iter()
        .map(|r| (r.name.as_str(), r.address.as_str()))
        .collect();
    for server in &servers {
        let upstreams = upstreams(inv, &hosts[server]);
        if upstreams.is_empty() {
            errors.push(format!(
                "{}: `services.blocky` has no upstream resolver: set `upstreams`, or give the host a `[network] network` whose `[networks]` entry lists `dns` servers other than the host itself",
                hosts[server].source
            ));
        }
        hosts.get_mut(server).unwrap().facts.insert(
            "blocky".into(),
            serde_json::json!({ "records": mapping, "upstreams": upstreams }),
        );
    }
    records
}

/// One record per host with an address and per vhost (at the proxy's address).
fn records(
    inv: &Inventory,
    hosts: &BTreeMap<String, ResolvedHost>,
    vhosts: &[Vhost],
) -> Vec<Record> {
    let mut out = BTreeSet::new();
    // Lab hosts live in throwaway namespaces: no records for them.
    for rh in hosts.values().filter(|h| h.hardware != Hardware::Lab) {
        if let Some(ip) = host_ip(inv, &rh.name) {
            out.insert(Record {
                name: rh.fqdn.clone(),
                address: ip,
                kind: "host".into(),
            });
        }
    }
    for v in vhosts {
        if let Some(ip) = host_ip(inv, &v.proxy) {
            out.insert(Record {
                name: v.name.clone(),
                address: ip,
                kind: "vhost".into(),
            });
        }
    }
    out.into_iter().collect()
}

/// The DNS server's upstreams: its `upstreams` setting, else the `dns` of its network,
/// never its own address (it would ask itself).
fn upstreams(inv: &Inventory, rh: &ResolvedHost) -> Vec<String> {
    let s = &rh.services["blocky"];
    let given: Vec<String> = s
        .get("upstreams")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if !given.is_empty() {
        return given;
    }
    let own: BTreeSet<String> = host_ip(inv, &rh.name).into_iter().collect();
    let f = &inv.hosts[&rh.name].file;
    f.network
        .network
        .as_ref()
        .and_then(|n| inv.fleet.networks.get(n))
        .map(|n| {
            n.dns
                .iter()
                .filter(|d| !own.contains(*d))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}
