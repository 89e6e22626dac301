//! Resolve the inventory against the catalog: each host's services with defaults
//! applied, and the fleet-wide facts no single host file states (scrape targets,
//! builder placement, backup pairs, secret recipients). `hearth show` prints this.

use crate::catalog::Catalog;
use crate::inventory::{
    BootLoader, BuildPolicy, EffectiveDeploy, Hardware, Host, Inventory, Role, RootFilesystem,
    System,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Serialize)]
pub struct Resolved {
    pub hosts: BTreeMap<String, ResolvedHost>,
    /// Every host running node-exporter, scraped by every monitoring host.
    pub prometheus_targets: Vec<ScrapeTarget>,
    /// restic client → where its backups go.
    pub backup_pairs: Vec<BackupPair>,
    /// agenix secret → hosts that can decrypt it (admins always can).
    pub secrets: BTreeMap<String, Vec<String>>,
    /// Derived wiring between hosts (vhosts, DNS records, …), by section.
    pub wiring: Vec<super::wiring::Section>,
    /// Problems that don't stop the compile (printed by `gen`).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScrapeTarget {
    pub host: String,
    pub target: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupPair {
    pub client: String,
    /// The backup-target host, or null for an rclone remote.
    pub target: Option<String>,
    pub repository: String,
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResolvedHost {
    pub name: String,
    pub source: String,
    pub system: System,
    pub hardware: Hardware,
    pub boot_loader: BootLoader,
    pub host_id: String,
    pub state_version: String,
    pub fqdn: String,
    pub roles: Vec<Role>,
    pub tags: Vec<String>,
    /// Services with every setting resolved (defaults applied).
    pub services: BTreeMap<String, toml::Table>,
    pub firewall_tcp: Vec<u16>,
    pub firewall_udp: Vec<u16>,
    /// Data directories declared by services and datasets with `backup = true`.
    pub data_dirs: Vec<String>,
    /// Builders this host's Nix daemon offloads to (`nix.buildMachines`).
    pub build_machines: Vec<String>,
    /// Hosts that offload to this builder.
    pub builder_clients: Vec<String>,
    /// Secrets this host decrypts.
    pub secrets: Vec<String>,
    /// Repository files of CA roots this host trusts (the proxy's internal CA).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_ca_files: Vec<String>,
    pub deploy: EffectiveDeploy,
    /// Per-service facts handed to templates.
    #[serde(skip)]
    pub facts: BTreeMap<String, serde_json::Value>,
}

pub fn default_boot_loader(hw: Hardware) -> BootLoader {
    match hw {
        Hardware::Helios64 => BootLoader::Extlinux,
        Hardware::GenericX86_64 => BootLoader::SystemdBoot,
        Hardware::Lab => BootLoader::None,
    }
}

/// `host:port` with IPv6 addresses bracketed.
fn host_port(addr: &str, port: i64) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// The systems a builder serves: (native, emulated).
pub fn builder_systems(host: &Host) -> (Vec<System>, Vec<System>) {
    let b = host.file.builder.as_ref();
    let mut native = b.map(|b| b.systems.clone()).unwrap_or_default();
    if native.is_empty() {
        native.push(host.file.system);
    }
    let emulated = b
        .map(|b| {
            b.emulated
                .iter()
                .copied()
                .filter(|s| !native.contains(s))
                .collect()
        })
        .unwrap_or_default();
    (native, emulated)
}

fn is_builder(h: &Host) -> bool {
    h.file.roles.contains(&Role::Builder) && h.file.hardware != Hardware::Lab
}

/// What went wrong while resolving: errors stop the compile, warnings are printed by `gen`.
#[derive(Default)]
struct Problems {
    errors: Vec<String>,
    warnings: Vec<String>,
}

/// Resolve every host. All problems are collected; the error lists each with its file.
pub fn resolve(inv: &Inventory, catalog: &Catalog) -> Result<Resolved, Vec<String>> {
    let mut p = Problems::default();
    // Pass 1: per-host services and settings.
    let mut hosts: BTreeMap<String, ResolvedHost> = BTreeMap::new();
    for (name, host) in &inv.hosts {
        let rh = resolve_host(inv, catalog, name, host, &mut p.errors);
        hosts.insert(name.clone(), rh);
    }
    // Pass 2: fleet-wide facts.
    let targets = scrape_targets(inv, &hosts);
    let mut backup_pairs = Vec::new();
    let mut builder_clients: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let names: Vec<String> = hosts.keys().cloned().collect();
    for name in &names {
        let machines = build_machines(inv, name, &mut p.errors);
        for m in &machines {
            let clients = builder_clients.entry(m.clone()).or_default();
            clients.push(name.clone());
        }
        let facts = service_facts(inv, &hosts, name, &targets, &mut backup_pairs, &mut p);
        let rh = hosts.get_mut(name).unwrap();
        rh.facts = facts;
        rh.build_machines = machines;
    }
    for (builder, clients) in builder_clients {
        hosts.get_mut(&builder).unwrap().builder_clients = clients;
    }
    let mut wiring =
        super::wiring::derive(inv, catalog, &mut hosts, &mut p.errors, &mut p.warnings);
    wiring.extend(super::wiring::observability(
        inv,
        &mut hosts,
        &targets,
        &backup_pairs,
        &mut p.errors,
    ));
    let secrets = secret_recipients(inv, &hosts, &mut p.warnings);
    if p.errors.is_empty() {
        Ok(Resolved {
            hosts,
            prometheus_targets: targets,
            backup_pairs,
            secrets,
            wiring,
            warnings: p.warnings,
        })
    } else {
        Err(p.errors)
    }
}

/// Pass 1 for one host: its services with settings resolved, firewall ports, data
/// directories and secrets. Fleet-wide fields stay empty until pass 2.
fn resolve_host(
    inv: &Inventory,
    catalog: &Catalog,
    name: &str,
    host: &Host,
    errors: &mut Vec<String>,
) -> ResolvedHost {
    let f = &host.file;
    let src = host.source.display().to_string();
    let services = host_services(catalog, host, &src, errors);
    let mut tcp = BTreeSet::new();
    let mut udp = BTreeSet::new();
    let mut data_dirs = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for (svc, settings) in &services {
        let def = catalog.get(svc).expect("resolved above");
        let (t, u) = def.ports(settings);
        tcp.extend(t);
        udp.extend(u);
        if svc != "restic" {
            data_dirs.extend(def.data_dirs(settings));
        }
        secrets.extend(def.secrets(settings));
    }
    if f.hardware != Hardware::Lab {
        tcp.extend(f.firewall.tcp.iter().copied());
        udp.extend(f.firewall.udp.iter().copied());
    }
    data_dirs.extend(backed_up_datasets(host));
    for (secret, def) in &inv.fleet.secrets {
        if def.hosts.iter().any(|h| h == name) {
            secrets.insert(secret.clone());
        }
    }
    ResolvedHost {
        name: name.to_string(),
        source: src,
        system: f.system,
        hardware: f.hardware,
        boot_loader: f.boot_loader.unwrap_or(default_boot_loader(f.hardware)),
        host_id: host.host_id(),
        state_version: f
            .state_version
            .clone()
            .unwrap_or_else(|| inv.fleet.state_version.clone()),
        fqdn: format!("{name}.{}", inv.fleet.domain),
        roles: f.roles.clone(),
        tags: f.tags.clone(),
        services,
        firewall_tcp: tcp.into_iter().collect(),
        firewall_udp: udp.into_iter().collect(),
        data_dirs: data_dirs.into_iter().collect(),
        build_machines: vec![],
        builder_clients: vec![],
        secrets: secrets.into_iter().collect(),
        trusted_ca_files: vec![],
        deploy: inv.deploy_policy(host),
        facts: BTreeMap::new(),
    }
}

/// The services a host runs, settings resolved: the catalog's defaults and those its
/// roles bring, then its own `[services.*]` tables. Lab hosts run none.
fn host_services(
    catalog: &Catalog,
    host: &Host,
    src: &str,
    errors: &mut Vec<String>,
) -> BTreeMap<String, toml::Table> {
    let f = &host.file;
    let mut services = BTreeMap::new();
    if f.hardware == Hardware::Lab {
        return services;
    }
    let mut wanted: BTreeMap<&str, toml::Table> = BTreeMap::new();
    for def in catalog.services.values() {
        if def.default_enabled || def.roles.iter().any(|r| f.roles.contains(r)) {
            wanted.insert(&def.name, toml::Table::new());
        }
    }
    for (svc, table) in &f.services {
        wanted.insert(svc, table.clone());
    }
    for (svc, table) in wanted {
        match catalog.get(svc) {
            None => {
                let known: Vec<&str> = catalog.services.keys().map(String::as_str).collect();
                errors.push(format!(
                    "{src}: unknown service `{svc}` (known: {})",
                    known.join(", ")
                ));
            }
            Some(def) => match def.resolve_settings(&table) {
                Ok(s) => {
                    services.insert(svc.to_string(), s);
                }
                Err(e) => errors.push(format!("{src}: {e}")),
            },
        }
    }
    services
}

/// Mountpoints of the host's datasets with `backup = true`.
fn backed_up_datasets(host: &Host) -> Vec<String> {
    let Some(disks) = &host.file.disks else {
        return vec![];
    };
    let datasets = disks.pools.values().flat_map(|p| p.datasets.values());
    datasets
        .filter(|ds| ds.backup)
        .filter_map(|ds| ds.mountpoint.clone())
        .collect()
}

/// Every host running node-exporter, as Prometheus scrapes it.
fn scrape_targets(inv: &Inventory, hosts: &BTreeMap<String, ResolvedHost>) -> Vec<ScrapeTarget> {
    let mut targets = Vec::new();
    for (name, rh) in hosts {
        if let Some(s) = rh.services.get("node-exporter") {
            let port = s.get("port").and_then(|p| p.as_integer()).unwrap_or(9100);
            targets.push(ScrapeTarget {
                host: name.clone(),
                target: host_port(&inv.hosts[name].file.ssh.address, port),
            });
        }
    }
    targets.sort();
    targets
}

/// Builders this host's own Nix daemon offloads to (`nix.buildMachines`), best first.
fn build_machines(inv: &Inventory, name: &str, errors: &mut Vec<String>) -> Vec<String> {
    let host = &inv.hosts[name];
    if host.file.hardware == Hardware::Lab {
        return vec![];
    }
    match &host.file.build {
        BuildPolicy::Builder(b) if b != name => match inv.hosts.get(b) {
            Some(bh) if is_builder(bh) => vec![b.clone()],
            _ => {
                errors.push(format!(
                    "{}: build = \"builder:{b}\" names no host with the `builder` role",
                    host.source.display()
                ));
                vec![]
            }
        },
        BuildPolicy::Auto | BuildPolicy::Target => builders_for(inv, name, host.file.system),
        _ => vec![],
    }
}

/// Every other builder that builds `system`: native before emulated, then faster first,
/// then by name.
fn builders_for(inv: &Inventory, name: &str, system: System) -> Vec<String> {
    let mut candidates: Vec<(&String, bool, u32)> = inv
        .hosts
        .iter()
        .filter(|(n, h)| *n != name && is_builder(h))
        .filter_map(|(n, h)| {
            let (native, emulated) = builder_systems(h);
            let speed = h.file.builder.as_ref().map_or(1, |b| b.speed_factor);
            if native.contains(&system) {
                Some((n, true, speed))
            } else if emulated.contains(&system) {
                Some((n, false, speed))
            } else {
                None
            }
        })
        .collect();
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(b.0)));
    candidates.into_iter().map(|c| c.0.clone()).collect()
}

/// Per-service facts handed to the templates of host `name`. One call per service that
/// needs facts from other hosts; a new derivation goes into its own function or module.
fn service_facts(
    inv: &Inventory,
    hosts: &BTreeMap<String, ResolvedHost>,
    name: &str,
    targets: &[ScrapeTarget],
    backup_pairs: &mut Vec<BackupPair>,
    p: &mut Problems,
) -> BTreeMap<String, serde_json::Value> {
    let host = &inv.hosts[name];
    let src = host.source.display().to_string();
    let rh = &hosts[name];
    let errors = &mut p.errors;
    let mut facts = BTreeMap::new();
    if rh.services.contains_key("prometheus") {
        let v = serde_json::json!({ "node_targets": targets });
        facts.insert("prometheus".into(), v);
    }
    if rh.services.contains_key("restic-server") {
        facts.insert("restic-server".into(), restic_server_facts(host));
    }
    if let Some(s) = rh.services.get("restic") {
        if let Some(pair) = restic_pair(inv, hosts, name, s, &src, errors) {
            let v = serde_json::json!({ "repository": pair.repository, "paths": pair.paths });
            facts.insert("restic".into(), v);
            backup_pairs.push(pair);
        }
    }
    if let Some(s) = rh.services.get("fail2ban") {
        facts.insert("fail2ban".into(), fail2ban_facts(inv, s));
    }
    if let Some(s) = rh.services.get("nfs") {
        facts.insert("nfs".into(), nfs_facts(s, &src, errors));
    }
    if let Some(s) = rh.services.get("samba") {
        check_samba_shares(s, &src, errors);
    }
    if rh.services.contains_key("zfs") {
        facts.insert("zfs".into(), zfs_facts(host, &src, &mut p.warnings));
    }
    facts
}

fn restic_server_facts(host: &Host) -> serde_json::Value {
    let path = host
        .file
        .backup_target
        .as_ref()
        .map_or_else(crate::inventory::default_backup_path, |b| b.path.clone());
    serde_json::json!({ "path": path })
}

/// Where host `name`'s restic backups go and what they hold: an rclone remote, the named
/// `target`, or the one backup-target host there is.
fn restic_pair(
    inv: &Inventory,
    hosts: &BTreeMap<String, ResolvedHost>,
    name: &str,
    s: &toml::Table,
    src: &str,
    errors: &mut Vec<String>,
) -> Option<BackupPair> {
    let get = |k: &str| s.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let mut paths: BTreeSet<String> = hosts[name].data_dirs.iter().cloned().collect();
    if let Some(extra) = s.get("paths").and_then(|v| v.as_array()) {
        paths.extend(extra.iter().filter_map(|v| v.as_str()).map(String::from));
    }
    let paths: Vec<String> = paths.into_iter().collect();
    if paths.is_empty() {
        errors.push(format!(
            "{src}: restic has nothing to back up: no service declares a data directory, no dataset has `backup = true`, and `paths` is empty"
        ));
    }
    let remote = get("rclone_remote");
    let (target, repository) = if !remote.is_empty() {
        (None, format!("rclone:{remote}"))
    } else {
        let t = restic_target(hosts, name, &get("target"), src, errors)?;
        let port = hosts[&t].services["restic-server"]
            .get("port")
            .and_then(|p| p.as_integer())
            .unwrap_or(8000);
        let addr = host_port(&inv.hosts[&t].file.ssh.address, port);
        (Some(t), format!("rest:http://{addr}/{name}"))
    };
    Some(BackupPair {
        client: name.to_string(),
        target,
        repository,
        paths,
    })
}

/// The backup-target host for `name`: `target` if set (it must run restic-server), else
/// the only other host that does.
fn restic_target(
    hosts: &BTreeMap<String, ResolvedHost>,
    name: &str,
    target: &str,
    src: &str,
    errors: &mut Vec<String>,
) -> Option<String> {
    let backup_targets: Vec<&String> = hosts
        .values()
        .filter(|h| h.services.contains_key("restic-server"))
        .map(|h| &h.name)
        .collect();
    if !target.is_empty() {
        if backup_targets.iter().any(|t| *t == target) {
            return Some(target.to_string());
        }
        errors.push(format!(
            "{src}: restic target `{target}` is not a host with the `backup-target` role"
        ));
        return None;
    }
    let others: Vec<&String> = backup_targets.into_iter().filter(|t| *t != name).collect();
    match others.as_slice() {
        [one] => Some((*one).clone()),
        [] => {
            errors.push(format!(
                "{src}: restic needs a backup destination: give a host the `backup-target` role, or set `target` or `rclone_remote`"
            ));
            None
        }
        many => {
            let list: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
            errors.push(format!(
                "{src}: several backup targets ({}); set `target` in [services.restic]",
                list.join(", ")
            ));
            None
        }
    }
}

/// fail2ban never bans loopback or the fleet's own networks.
fn fail2ban_facts(inv: &Inventory, s: &toml::Table) -> serde_json::Value {
    let mut ignore: BTreeSet<String> = ["127.0.0.0/8", "::1"].map(String::from).into();
    ignore.extend(inv.fleet.networks.values().map(|n| n.cidr.clone()));
    if let Some(extra) = s.get("ignore_ip").and_then(|v| v.as_array()) {
        ignore.extend(extra.iter().filter_map(|v| v.as_str()).map(String::from));
    }
    serde_json::json!({ "ignore_ip": ignore })
}

/// The exports(5) text of the host's NFS exports.
fn nfs_facts(s: &toml::Table, src: &str, errors: &mut Vec<String>) -> serde_json::Value {
    let mut lines = String::new();
    let exports = s.get("exports").and_then(|v| v.as_table());
    for (export, e) in exports.into_iter().flatten() {
        let Some(path) = e.get("path").and_then(|p| p.as_str()) else {
            errors.push(format!("{src}: nfs export `{export}` needs a `path`"));
            continue;
        };
        let clients = e.get("clients").and_then(|v| v.as_str()).unwrap_or("*");
        let options = e
            .get("options")
            .and_then(|v| v.as_str())
            .unwrap_or("rw,sync,no_subtree_check");
        // One writer for exports lines: a newline or space in any field
        // would add an export, so those are errors, not text.
        match crate::lines::exports::line(path, clients, options) {
            Ok(line) => {
                lines.push_str(&line);
                lines.push('\n');
            }
            Err(e) => errors.push(format!("{src}: nfs export `{export}`: {e}")),
        }
    }
    serde_json::json!({ "exports": lines })
}

fn check_samba_shares(s: &toml::Table, src: &str, errors: &mut Vec<String>) {
    let shares = s.get("shares").and_then(|v| v.as_table());
    for (share, e) in shares.into_iter().flatten() {
        if e.get("path").and_then(|p| p.as_str()).is_none() {
            errors.push(format!("{src}: samba share `{share}` needs a `path`"));
        }
    }
}

/// The pools ZFS maintenance covers: `zroot` for a ZFS root, then the data pools.
fn zfs_facts(host: &Host, src: &str, warnings: &mut Vec<String>) -> serde_json::Value {
    let mut pools = Vec::new();
    if let Some(d) = &host.file.disks {
        if d.root.filesystem == RootFilesystem::Zfs {
            pools.push("zroot".to_string());
        }
        pools.extend(d.pools.keys().cloned());
    }
    pools.sort();
    if pools.is_empty() {
        warnings.push(format!("{src}: service `zfs` on a host without ZFS pools"));
    }
    serde_json::json!({ "pools": pools })
}

/// agenix secret → hosts that decrypt it; a host without a `host_key` is warned about.
fn secret_recipients(
    inv: &Inventory,
    hosts: &BTreeMap<String, ResolvedHost>,
    warnings: &mut Vec<String>,
) -> BTreeMap<String, Vec<String>> {
    let mut secrets: BTreeMap<String, Vec<String>> = inv
        .fleet
        .secrets
        .keys()
        .map(|k| (k.clone(), vec![]))
        .collect();
    for rh in hosts.values() {
        for s in &rh.secrets {
            secrets.entry(s.clone()).or_default().push(rh.name.clone());
            if inv.hosts[&rh.name].file.host_key.is_none() {
                warnings.push(format!(
                    "{}: needs secret `{s}` but has no `host_key`, so it can't decrypt it; record the host key",
                    rh.source
                ));
            }
        }
    }
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_targets_are_bracketed() {
        assert_eq!(host_port("10.0.0.1", 9100), "10.0.0.1:9100");
        assert_eq!(host_port("fd00::1", 9100), "[fd00::1]:9100");
    }
}
