//! Read-only questions the wiring modules ask about the resolved fleet.

use crate::compile::resolve::ResolvedHost;
use crate::inventory::Inventory;
use std::collections::BTreeMap;

pub struct Fleet<'a> {
    pub inv: &'a Inventory,
    pub hosts: &'a BTreeMap<String, ResolvedHost>,
}

impl Fleet<'_> {
    /// Hosts running `service`, in name order.
    pub fn running(&self, service: &str) -> Vec<&ResolvedHost> {
        self.hosts
            .values()
            .filter(|h| h.services.contains_key(service))
            .collect()
    }

    /// A resolved setting of a service on a host.
    pub fn setting(&self, host: &str, service: &str, key: &str) -> Option<&toml::Value> {
        self.hosts.get(host)?.services.get(service)?.get(key)
    }

    pub fn str_setting(&self, host: &str, service: &str, key: &str) -> String {
        self.setting(host, service, key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    }

    pub fn port(&self, host: &str, service: &str, default: i64) -> i64 {
        self.setting(host, service, "port")
            .and_then(|v| v.as_integer())
            .unwrap_or(default)
    }

    /// `http://address:port` of `service` on `server` as seen from `client`: loopback when
    /// both are the same host (its port may be closed to the network), else the address
    /// hearth reaches the server at.
    pub fn url(&self, client: &str, server: &str, service: &str, default_port: i64) -> String {
        let addr = if client == server {
            "127.0.0.1".to_string()
        } else {
            self.inv.hosts[server].file.ssh.address.clone()
        };
        format!(
            "http://{}",
            host_port(&addr, self.port(server, service, default_port))
        )
    }

    /// `address:port` of `service` on `server` (for Prometheus targets).
    pub fn target(&self, server: &str, service: &str, default_port: i64) -> String {
        host_port(
            &self.inv.hosts[server].file.ssh.address,
            self.port(server, service, default_port),
        )
    }

    pub fn source(&self, host: &str) -> &str {
        &self.hosts[host].source
    }
}

/// `host:port` with IPv6 addresses bracketed.
pub fn host_port(addr: &str, port: i64) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_bracketed() {
        assert_eq!(host_port("fd00::1", 3100), "[fd00::1]:3100");
    }
}
