//! The k3s cluster, derived from the inventory: its members are the hosts tagged
//! `k3s-server` or `k3s-agent` (the tag gives the role and turns the `k3s` service on), the
//! first server by name starts the cluster, every other member joins it at that server's
//! address, all share one join token (an agenix secret), and each member's firewall accepts
//! the cluster's ports from the other members (and its own pods) only.

use super::super::resolve::ResolvedHost;
use crate::catalog::Catalog;
use crate::inventory::{Hardware, Host, Inventory};
use std::collections::BTreeMap;
use std::net::IpAddr;

pub const SERVICE: &str = "k3s";
pub const SERVER_TAG: &str = "k3s-server";
pub const AGENT_TAG: &str = "k3s-agent";
/// Supervisor and Kubernetes API (agents and servers → servers).
pub const API_PORT: u16 = 6443;
/// Kubelet (metrics; every node → every node).
pub const KUBELET_PORT: u16 = 10250;
/// Settings every member must agree on.
const CLUSTER_WIDE: &[&str] = &["token_secret", "flannel_backend", "cluster_cidr"];
/// Settings that only make sense on a server.
const SERVER_ONLY: &[(&str, &str)] = &[("disable", "[]"), ("disable_agent", "false")];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Agent => "agent",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub role: Role,
    pub ip: IpAddr,
}

/// Called by `resolve` once every host's services are known: turns the service on for the
/// tagged hosts, checks the cluster, and hands each member's template its facts.
pub fn wire(
    inv: &Inventory,
    catalog: &Catalog,
    hosts: &mut BTreeMap<String, ResolvedHost>,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    let Some(def) = catalog.get(SERVICE) else {
        return;
    };
    let members = members(inv, hosts, errors, warnings);
    if members.is_empty() {
        return;
    }
    for m in &members {
        let rh = hosts.get_mut(&m.name).expect("a member is a host");
        if !rh.services.contains_key(SERVICE) {
            match def.resolve_settings(&toml::Table::new()) {
                Ok(s) => {
                    rh.secrets.extend(def.secrets(&s));
                    rh.secrets.sort();
                    rh.secrets.dedup();
                    rh.services.insert(SERVICE.to_string(), s);
                }
                Err(e) => errors.push(format!("{}: {e}", rh.source)),
            }
        }
    }
    let before = errors.len();
    check(&members, hosts, errors);
    overlay_port_clashes(catalog, &members, hosts, errors);
    if errors.len() > before {
        return;
    }
    for m in &members {
        let settings = &hosts[&m.name].services[SERVICE];
        let f = facts(m, &members, settings);
        hosts
            .get_mut(&m.name)
            .expect("a member is a host")
            .facts
            .insert(SERVICE.to_string(), f);
    }
}

/// The tagged hosts in name order, with their role and fixed address.
fn members(
    inv: &Inventory,
    hosts: &BTreeMap<String, ResolvedHost>,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Vec<Member> {
    let mut out = Vec::new();
    for (name, rh) in hosts {
        let server = rh.tags.iter().any(|t| t == SERVER_TAG);
        let agent = rh.tags.iter().any(|t| t == AGENT_TAG);
        let src = &rh.source;
        let role = match (server, agent) {
            (true, true) => {
                errors.push(format!(
                    "{src}: tagged both `{SERVER_TAG}` and `{AGENT_TAG}`; a k3s node has one role (a server runs workloads too unless `disable_agent = true`), remove one tag"
                ));
                continue;
            }
            (true, false) => Role::Server,
            (false, true) => Role::Agent,
            (false, false) => {
                if rh.services.contains_key(SERVICE) {
                    errors.push(format!(
                        "{src}: `services.k3s` on a host without a `{SERVER_TAG}` or `{AGENT_TAG}` tag; add one to `tags` (the tag gives the node its role)"
                    ));
                }
                continue;
            }
        };
        if rh.hardware == Hardware::Lab {
            warnings.push(format!(
                "{src}: tagged `{}` but lab hosts run no catalog services; not part of the k3s cluster",
                if server { SERVER_TAG } else { AGENT_TAG }
            ));
            continue;
        }
        match member_ip(&inv.hosts[name]) {
            Some(ip) => out.push(Member {
                name: name.clone(),
                role,
                ip,
            }),
            None => errors.push(format!(
                "{src}: a k3s node needs a fixed IP address (the other members' firewalls accept it by address): set [network] address, or an IP address in [ssh] address"
            )),
        }
    }
    out
}

/// The host's static address, else its SSH address when that is an IP address.
pub fn member_ip(host: &Host) -> Option<IpAddr> {
    let f = &host.file;
    if let Some(cidr) = &f.network.address {
        let ip = cidr.split('/').next().unwrap_or_default();
        if let Ok(ip) = ip.parse() {
            return Some(ip);
        }
    }
    f.ssh.address.parse().ok()
}

/// The cluster's own rules: at least one server, the cluster-wide settings equal on every
/// member, server-only settings only on servers.
fn check(members: &[Member], hosts: &BTreeMap<String, ResolvedHost>, errors: &mut Vec<String>) {
    let settings = |m: &Member| &hosts[&m.name].services[SERVICE];
    if !members.iter().any(|m| m.role == Role::Server) {
        for m in members {
            errors.push(format!(
                "{}: tagged `{AGENT_TAG}`, but no host is tagged `{SERVER_TAG}`: an agent needs a server to join; tag one host `{SERVER_TAG}`",
                hosts[&m.name].source
            ));
        }
    }
    for m in members {
        if settings(m).get("token_secret").and_then(|v| v.as_str()) == Some("") {
            errors.push(format!(
                "{}: `services.k3s.token_secret` is empty, but k3s needs the join token as a secret: set it to a secret's name (default `k3s-token`) and create it with `hearth secrets set NAME`",
                hosts[&m.name].source
            ));
        }
    }
    let first = &members[0];
    for key in CLUSTER_WIDE {
        let want = settings(first).get(*key);
        for m in &members[1..] {
            if settings(m).get(*key) != want {
                errors.push(format!(
                    "{}: `services.k3s.{key}` is {} here but {} on {}; every member of the cluster must use the same value",
                    hosts[&m.name].source,
                    shown(settings(m).get(*key)),
                    shown(want),
                    first.name
                ));
            }
        }
    }
    for m in members.iter().filter(|m| m.role == Role::Agent) {
        for (key, default) in SERVER_ONLY {
            let v = shown(settings(m).get(*key));
            if v != *default {
                errors.push(format!(
                    "{}: `services.k3s.{key}` = {v} only applies to servers, and this host is tagged `{AGENT_TAG}`; remove it",
                    hosts[&m.name].source
                ));
            }
        }
    }
}

fn shown(v: Option<&toml::Value>) -> String {
    v.map_or_else(|| "unset".to_string(), |v| v.to_string())
}

/// What the template of one member needs.
fn facts(me: &Member, members: &[Member], settings: &toml::Table) -> serde_json::Value {
    let get = |k: &str| settings.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let servers: Vec<&Member> = members.iter().filter(|m| m.role == Role::Server).collect();
    let init = servers[0];
    let ha = servers.len() > 1;
    let server_addr = if me.name == init.name {
        String::new()
    } else {
        server_url(init.ip)
    };
    let mut extra_flags = Vec::new();
    if me.role == Role::Server {
        if get("flannel_backend") != "vxlan" {
            extra_flags.push(format!("--flannel-backend={}", get("flannel_backend")));
        }
        if get("cluster_cidr") != DEFAULT_CLUSTER_CIDR {
            extra_flags.push(format!("--cluster-cidr={}", get("cluster_cidr")));
        }
    }
    serde_json::json!({
        "role": me.role.as_str(),
        "server_addr": server_addr,
        "cluster_init": ha && me.name == init.name,
        "node_ip": me.ip.to_string(),
        "extra_flags": extra_flags,
        "firewall": firewall_rules(me, members, get("flannel_backend"), get("cluster_cidr"), ha),
    })
}

/// k3s's default pod network (`--cluster-cidr`).
pub const DEFAULT_CLUSTER_CIDR: &str = "10.42.0.0/16";

/// The pod network's UDP port on a member must be free: another service of the host
/// listening there (hearth's own WireGuard defaults to 51820, as flannel's
/// `wireguard-native` does) would leave one of the two unable to bind.
fn overlay_port_clashes(
    catalog: &Catalog,
    members: &[Member],
    hosts: &BTreeMap<String, ResolvedHost>,
    errors: &mut Vec<String>,
) {
    for m in members {
        let rh = &hosts[&m.name];
        let backend = rh.services[SERVICE]
            .get("flannel_backend")
            .and_then(|v| v.as_str())
            .unwrap_or("vxlan");
        let Some(port) = overlay_port(backend, &m.ip) else {
            continue;
        };
        for (svc, settings) in rh.services.iter().filter(|(s, _)| *s != SERVICE) {
            let Some(def) = catalog.get(svc) else {
                continue;
            };
            // The port a service listens on, whether or not its firewall opens it.
            let mut listening = settings.clone();
            listening.remove("open_firewall");
            if def.ports(&listening).1.contains(&port) {
                errors.push(format!(
                    "{}: `services.{svc}` uses UDP {port}, which the k3s pod network (flannel backend {backend}) also uses on this host; give {svc} another port or choose another `flannel_backend` for the cluster",
                    rh.source
                ));
            }
        }
    }
}

/// `https://ADDR:6443`, IPv6 bracketed.
pub fn server_url(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => format!("https://{a}:{API_PORT}"),
        IpAddr::V6(a) => format!("https://[{a}]:{API_PORT}"),
    }
}

/// The UDP port of the pod network between nodes for an address family, if any.
fn overlay_port(backend: &str, ip: &IpAddr) -> Option<u16> {
    match (backend, ip) {
        ("vxlan", _) => Some(8472),
        ("wireguard-native", IpAddr::V4(_)) => Some(51820),
        ("wireguard-native", IpAddr::V6(_)) => Some(51821),
        _ => None, // host-gw routes pod traffic without an overlay
    }
}

/// `networking.firewall.extraCommands` of one member (NixOS's iptables firewall, chain
/// `nixos-fw`): each other member may reach the ports its role needs from it, and the pod
/// network may reach the API and kubelet (pods on this node arrive with their own address).
/// Addresses are parsed `IpAddr`s and ports numbers, so the lines need no quoting.
pub fn firewall_rules(
    me: &Member,
    members: &[Member],
    backend: &str,
    cluster_cidr: &str,
    ha: bool,
) -> String {
    let mut out = String::new();
    let mut rule = |src: &str, v6: bool, proto: &str, port: &str| {
        let tool = if v6 { "ip6tables" } else { "iptables" };
        out.push_str(&format!(
            "{tool} -A nixos-fw -p {proto} -s {src} --dport {port} -j nixos-fw-accept\n"
        ));
    };
    for peer in members.iter().filter(|m| m.name != me.name) {
        let (src, v6) = (peer.ip.to_string(), peer.ip.is_ipv6());
        if me.role == Role::Server {
            rule(&src, v6, "tcp", &API_PORT.to_string());
            if ha && peer.role == Role::Server {
                rule(&src, v6, "tcp", "2379:2380");
            }
        }
        rule(&src, v6, "tcp", &KUBELET_PORT.to_string());
        if let Some(p) = overlay_port(backend, &peer.ip) {
            rule(&src, v6, "udp", &p.to_string());
        }
    }
    let pods_v6 = cluster_cidr.contains(':');
    if me.role == Role::Server {
        rule(cluster_cidr, pods_v6, "tcp", &API_PORT.to_string());
    }
    rule(cluster_cidr, pods_v6, "tcp", &KUBELET_PORT.to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, role: Role, ip: &str) -> Member {
        Member {
            name: name.into(),
            role,
            ip: ip.parse().unwrap(),
        }
    }

    #[test]
    fn server_url_brackets_ipv6() {
        assert_eq!(
            server_url("10.0.0.1".parse().unwrap()),
            "https://10.0.0.1:6443"
        );
        assert_eq!(
            server_url("fd00::1".parse().unwrap()),
            "https://[fd00::1]:6443"
        );
    }

    #[test]
    fn server_rules_exact() {
        let ms = [
            m("a", Role::Server, "10.0.0.1"),
            m("b", Role::Server, "fd00::2"),
            m("c", Role::Agent, "10.0.0.3"),
        ];
        assert_eq!(
            firewall_rules(&ms[0], &ms, "vxlan", DEFAULT_CLUSTER_CIDR, true),
            "ip6tables -A nixos-fw -p tcp -s fd00::2 --dport 6443 -j nixos-fw-accept\n\
             ip6tables -A nixos-fw -p tcp -s fd00::2 --dport 2379:2380 -j nixos-fw-accept\n\
             ip6tables -A nixos-fw -p tcp -s fd00::2 --dport 10250 -j nixos-fw-accept\n\
             ip6tables -A nixos-fw -p udp -s fd00::2 --dport 8472 -j nixos-fw-accept\n\
             iptables -A nixos-fw -p tcp -s 10.0.0.3 --dport 6443 -j nixos-fw-accept\n\
             iptables -A nixos-fw -p tcp -s 10.0.0.3 --dport 10250 -j nixos-fw-accept\n\
             iptables -A nixos-fw -p udp -s 10.0.0.3 --dport 8472 -j nixos-fw-accept\n\
             iptables -A nixos-fw -p tcp -s 10.42.0.0/16 --dport 6443 -j nixos-fw-accept\n\
             iptables -A nixos-fw -p tcp -s 10.42.0.0/16 --dport 10250 -j nixos-fw-accept\n"
        );
    }

    #[test]
    fn agent_rules_exact() {
        let ms = [
            m("a", Role::Server, "10.0.0.1"),
            m("c", Role::Agent, "10.0.0.3"),
        ];
        assert_eq!(
            firewall_rules(&ms[1], &ms, "wireguard-native", "10.42.0.0/16", false),
            "iptables -A nixos-fw -p tcp -s 10.0.0.1 --dport 10250 -j nixos-fw-accept\n\
             iptables -A nixos-fw -p udp -s 10.0.0.1 --dport 51820 -j nixos-fw-accept\n\
             iptables -A nixos-fw -p tcp -s 10.42.0.0/16 --dport 10250 -j nixos-fw-accept\n"
        );
        // host-gw: no overlay port; the single server of a non-HA cluster opens no etcd.
        let rules = firewall_rules(&ms[0], &ms, "host-gw", "10.42.0.0/16", false);
        assert!(!rules.contains("udp") && !rules.contains("2379"), "{rules}");
    }
}
