//! Wiring between services on different hosts that no host file states: the reverse
//! proxy's virtual hosts ([`vhosts`]), the DNS records ([`dns`]) and the media libraries
//! ([`media`]). Each derivation reads the resolved hosts, hands its results to the
//! templates as facts and returns a [`Section`] that `hearth show` prints.

pub mod dns;
pub mod media;
pub mod vhosts;

use super::resolve::ResolvedHost;
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
        Section {
            name: name.into(),
            about: about.into(),
            rows: rows
                .iter()
                .map(|r| serde_json::to_value(r).expect("plain data serializes"))
                .collect(),
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
    let vhosts = vhosts::derive(inv, catalog, hosts, errors, warnings);
    let records = dns::derive(inv, hosts, &vhosts, errors);
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
