//! The lab as an inventory: `hearth.toml`, `hosts/hN.toml` (hardware = "lab"), the lab
//! flake, and `generated/` from the real `hearth gen`.

use crate::inventory::model::{HostFile, LabSettings, System};
use anyhow::{Context, Result};
use std::net::Ipv4Addr;
use std::path::Path;
use toml_edit::{value, Array, DocumentMut, Item, Table};

pub const FLAKE_NIX: &str = include_str!("flake.nix");
pub const SWITCH_TO_CONFIGURATION: &str = include_str!("switch-to-configuration.sh");

/// What `lab up` knows about a host before writing its file.
pub struct HostSeed<'a> {
    pub name: &'a str,
    pub address: Ipv4Addr,
    pub host_key: &'a str,
    /// Declared a builder for aarch64-linux on the command line.
    pub builder: bool,
}

const NEW_HOST_FILE: &str = "\
# A hearth lab test host, written by `hearth lab up` (which later updates only its
# address and host key). Pick a fault in [lab]: none, activation-fails,
# activation-hangs, link-down, kill-sshd or payload-down; then run `hearth gen`.
system = \"x86_64-linux\"
hardware = \"lab\"
tags = [\"lab\"]

[ssh]
address = \"\"
user = \"root\"

[network]
dhcp = false

[lab]
fault = \"none\"
payload_mib = 0
payload_paths = 1
payload_port = @PORT@
revision = 0

[deploy.health]
tcp = [@PORT@]
";

pub fn fleet_file_text(admin_key: &str) -> String {
    format!(
        "# The hearth lab fleet, written by `hearth lab up`. Hosts are in hosts/.\n\
         domain = \"lab.home.arpa\"\n\
         \n\
         [admins.lab]\n\
         ssh_keys = [{}]\n\
         \n\
         [deploy]\n\
         confirm_timeout = 10\n\
         health_timeout = 10\n",
        toml_string(admin_key.trim())
    )
}

/// `hearth.toml` with the lab's current client key as admin `lab` (a new lab has a new
/// key); everything else in an existing file stays.
pub fn fleet_file_update(existing: Option<&str>, admin_key: &str) -> Result<String> {
    let Some(text) = existing else {
        return Ok(fleet_file_text(admin_key));
    };
    let mut doc: DocumentMut = text.parse().context("parsing hearth.toml")?;
    let admins = table(&mut doc, "admins");
    let lab = admins
        .entry("lab")
        .or_insert(Item::Table(Table::new()))
        .as_table_mut()
        .context("hearth.toml: [admins.lab] must be a table")?;
    let mut keys = Array::new();
    keys.push(admin_key.trim());
    lab["ssh_keys"] = value(keys);
    Ok(doc.to_string())
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A new host file, or `existing` with only the fields the lab owns updated (address,
/// host key, hardware), so faults and payload settings the user chose survive `up`.
pub fn host_file_text(existing: Option<&str>, seed: &HostSeed) -> Result<String> {
    let fresh;
    let text = match existing {
        Some(text) => text,
        None => {
            fresh = NEW_HOST_FILE.replace("@PORT@", "8080");
            &fresh
        }
    };
    let mut doc: DocumentMut = text
        .parse()
        .with_context(|| format!("parsing hosts/{}.toml", seed.name))?;
    let addr = seed.address.to_string();
    doc["hardware"] = value("lab");
    doc["host_key"] = value(seed.host_key.trim());
    if !doc.contains_key("tags") {
        let mut tags = Array::new();
        tags.push("lab");
        doc["tags"] = value(tags);
    }
    table(&mut doc, "ssh")["address"] = value(&addr);
    if !table(&mut doc, "ssh").contains_key("user") {
        doc["ssh"]["user"] = value("root");
    }
    let net = table(&mut doc, "network");
    net["dhcp"] = value(false);
    net["interface"] = value(super::config::HOST_IFACE);
    net["address"] = value(format!("{addr}/24"));
    if seed.builder && !doc.contains_key("builder") {
        let roles = doc.entry("roles").or_insert(value(Array::new()));
        if let Some(arr) = roles.as_array_mut() {
            if !arr.iter().any(|v| v.as_str() == Some("builder")) {
                arr.push("builder");
            }
        }
        let b = table(&mut doc, "builder");
        let mut systems = Array::new();
        systems.push("x86_64-linux");
        b["systems"] = value(systems);
        let mut emulated = Array::new();
        emulated.push("aarch64-linux");
        b["emulated"] = value(emulated);
        b["user"] = value("root");
    }
    if !doc.contains_key("lab") {
        let lab = table(&mut doc, "lab");
        lab["fault"] = value("none");
        lab["payload_mib"] = value(0);
        lab["payload_paths"] = value(1);
        lab["payload_port"] = value(8080);
        lab["revision"] = value(0);
    }
    if !doc.contains_key("deploy") {
        let port = doc["lab"]
            .get("payload_port")
            .and_then(|v| v.as_integer())
            .unwrap_or(8080);
        let mut tcp = Array::new();
        tcp.push(port);
        let mut health = Table::new();
        health["tcp"] = value(tcp);
        let mut deploy = Table::new();
        deploy.set_implicit(true);
        deploy.insert("health", Item::Table(health));
        doc["deploy"] = Item::Table(deploy);
    }
    Ok(doc.to_string())
}

fn table<'a>(doc: &'a mut DocumentMut, key: &str) -> &'a mut Table {
    doc.entry(key)
        .or_insert(Item::Table(Table::new()))
        .as_table_mut()
        .expect("lab host file: a table")
}

/// Replace a host's `[lab]` settings in its file (comments elsewhere survive); an unset
/// `systemd` stays as the file has it.
pub fn set_lab_settings_text(existing: &str, lab: &LabSettings) -> Result<String> {
    let mut doc: DocumentMut = existing.parse().context("parsing host file")?;
    let fault = serde_json::to_value(lab.fault)?
        .as_str()
        .unwrap_or("none")
        .to_string();
    let t = table(&mut doc, "lab");
    t["fault"] = value(fault);
    t["payload_mib"] = value(i64::from(lab.payload_mib));
    t["payload_paths"] = value(i64::from(lab.payload_paths));
    t["payload_port"] = value(i64::from(lab.payload_port));
    t["revision"] = value(i64::from(lab.revision));
    // Unset keeps what the file says: the tests rewrite faults and revisions of hosts
    // whose boot setting they chose before `lab up`.
    if let Some(b) = lab.systemd {
        t["systemd"] = value(b);
    }
    Ok(doc.to_string())
}

/// Systems a lab host must accept beyond its native one: what its `[builder]` lists.
pub fn extra_platforms(host: &HostFile) -> Vec<String> {
    let native = System::X86_64Linux;
    let mut out: Vec<String> = Vec::new();
    if let Some(b) = &host.builder {
        for s in b.systems.iter().chain(&b.emulated) {
            if *s != native && !out.iter().any(|o| o == s.as_str()) {
                out.push(s.as_str().to_string());
            }
        }
    }
    out
}

/// Read every `hosts/*.toml` of the lab fleet.
pub fn read_hosts(fleet_dir: &Path) -> Result<Vec<(String, HostFile)>> {
    let dir = fleet_dir.join(crate::inventory::HOSTS_DIR);
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let file: HostFile = toml::from_str(&text)
            .with_context(|| format!("{}: invalid host file", path.display()))?;
        out.push((name, file));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(builder: bool) -> HostSeed<'static> {
        HostSeed {
            name: "h1",
            address: "10.77.0.11".parse().unwrap(),
            host_key: "ssh-ed25519 AAAAkey",
            builder,
        }
    }

    #[test]
    fn new_host_file_is_a_valid_lab_host() {
        let text = host_file_text(None, &seed(false)).unwrap();
        let h: HostFile = toml::from_str(&text).unwrap();
        assert_eq!(h.hardware, crate::inventory::model::Hardware::Lab);
        assert_eq!(h.ssh.address, "10.77.0.11");
        assert_eq!(h.host_key.as_deref(), Some("ssh-ed25519 AAAAkey"));
        assert_eq!(h.lab.unwrap().payload_port, 8080);
        assert_eq!(h.deploy.health.tcp, vec![8080]);
        assert!(h.builder.is_none());
    }

    #[test]
    fn update_keeps_user_choices_and_refreshes_key() {
        let first = host_file_text(None, &seed(false)).unwrap();
        let edited = first.replace(
            "fault = \"none\"",
            "fault = \"kill-sshd\"  # chosen by hand",
        );
        let s = HostSeed {
            host_key: "ssh-ed25519 NEWKEY",
            ..seed(false)
        };
        let again = host_file_text(Some(&edited), &s).unwrap();
        assert!(
            again.contains("fault = \"kill-sshd\"  # chosen by hand"),
            "{again}"
        );
        let h: HostFile = toml::from_str(&again).unwrap();
        assert_eq!(h.host_key.as_deref(), Some("ssh-ed25519 NEWKEY"));
        assert_eq!(
            host_file_text(Some(&again), &s).unwrap(),
            again,
            "idempotent"
        );
    }

    #[test]
    fn builder_host_gets_role_and_extra_platforms() {
        let text = host_file_text(None, &seed(true)).unwrap();
        let h: HostFile = toml::from_str(&text).unwrap();
        assert_eq!(h.roles, vec![crate::inventory::model::Role::Builder]);
        assert_eq!(extra_platforms(&h), vec!["aarch64-linux".to_string()]);
    }

    #[test]
    fn set_lab_settings_rewrites_only_lab() {
        let text = host_file_text(None, &seed(false)).unwrap();
        let lab = LabSettings {
            fault: crate::inventory::model::LabFault::LinkDown,
            payload_mib: 4,
            payload_paths: 2,
            payload_port: 9000,
            revision: 3,
            systemd: Some(true),
        };
        let text = set_lab_settings_text(&text, &lab).unwrap();
        let h: HostFile = toml::from_str(&text).unwrap();
        assert_eq!(h.lab, Some(lab.clone()));
        assert_eq!(h.ssh.address, "10.77.0.11");
        // Unset: the file's choice stays.
        let again = LabSettings {
            systemd: None,
            revision: 4,
            ..lab.clone()
        };
        let h: HostFile = toml::from_str(&set_lab_settings_text(&text, &again).unwrap()).unwrap();
        assert_eq!(h.lab.unwrap().systemd, Some(true));
    }

    #[test]
    fn fleet_file_follows_the_client_key() {
        let first = fleet_file_update(None, "ssh-ed25519 OLD lab").unwrap();
        let edited = first.replace("confirm_timeout = 10", "confirm_timeout = 7");
        let again = fleet_file_update(Some(&edited), "ssh-ed25519 NEW lab").unwrap();
        let f: crate::inventory::model::FleetFile = toml::from_str(&again).unwrap();
        assert_eq!(
            f.admins["lab"].ssh_keys,
            vec!["ssh-ed25519 NEW lab".to_string()]
        );
        assert_eq!(f.deploy.confirm_timeout, 7);
    }

    #[test]
    fn fleet_file_parses() {
        let f: crate::inventory::model::FleetFile =
            toml::from_str(&fleet_file_text("ssh-ed25519 AAAA lab")).unwrap();
        assert_eq!(
            f.admins["lab"].ssh_keys,
            vec!["ssh-ed25519 AAAA lab".to_string()]
        );
    }

    #[test]
    fn activation_script_is_valid_sh() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.sh");
        std::fs::write(&p, SWITCH_TO_CONFIGURATION).unwrap();
        let st = std::process::Command::new("sh")
            .arg("-n")
            .arg(&p)
            .status()
            .unwrap();
        assert!(st.success());
    }
}
