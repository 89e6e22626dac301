//! Naming and text for a lab: every interface, namespace, path and config file is a
//! pure function of the lab's id, subnet and directories, so `up`, `down` and tests
//! agree without shared state.

use crate::lines::{keys, LineError};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Host `hN` gets `<subnet>.(HOST_OFFSET + N)`; the bridge is `<subnet>.1`.
pub const HOST_OFFSET: u32 = 10;
/// At most this many hosts per lab (addresses .11 … .210).
pub const MAX_HOSTS: u32 = 200;
/// Interface name of a host's end of its veth, inside its namespace.
pub const HOST_IFACE: &str = "eth0";
/// Where a host keeps lab state, inside its own `/nix` (per host, survives sshd restarts).
pub const HOST_STATE_DIR: &str = "/nix/var/lab";

/// Identifies one lab on this machine. Several labs (e.g. one per test binary) can
/// run side by side when their ids and subnets differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabConfig {
    /// 1–8 lowercase letters/digits; part of every namespace and interface name.
    pub id: String,
    /// The lab's private /24, as its network address (e.g. `10.77.0.0`).
    pub subnet: Ipv4Addr,
    /// Runtime trees: each host's `/nix`, `/etc/nix`, `/tmp`, sshd files; client keys.
    pub run_dir: PathBuf,
    /// The lab fleet (an inventory: `hearth.toml`, `hosts/`, `flake.nix`, `generated/`).
    pub fleet_dir: PathBuf,
}

impl LabConfig {
    /// Defaults for a lab id: subnet 10.77.0.0/24, runtime under /var/tmp (on disk:
    /// host stores can hold gigabytes, too much for a tmpfs `/run`).
    pub fn new(id: &str, subnet: Ipv4Addr, fleet_dir: PathBuf) -> Result<Self> {
        validate_id(id)?;
        let subnet = network_of(subnet)?;
        Ok(Self {
            id: id.to_string(),
            subnet,
            run_dir: default_run_dir(id),
            fleet_dir,
        })
    }

    pub fn netns(&self, index: u32) -> String {
        format!("hearth-{}-h{index}", self.id)
    }
    /// Prefix shared by every namespace of this lab (for cleanup by scanning).
    pub fn netns_prefix(&self) -> String {
        format!("hearth-{}-h", self.id)
    }
    /// Root-namespace end of host N's veth (≤ 15 chars: id ≤ 8, N ≤ 3 digits).
    pub fn veth(&self, index: u32) -> String {
        format!("hv-{}-{index}", self.id)
    }
    pub fn veth_prefix(&self) -> String {
        format!("hv-{}-", self.id)
    }
    pub fn bridge(&self) -> String {
        format!("hb-{}", self.id)
    }
    pub fn bridge_address(&self) -> Ipv4Addr {
        offset(self.subnet, 1)
    }
    pub fn host_address(&self, index: u32) -> Ipv4Addr {
        offset(self.subnet, HOST_OFFSET + index)
    }
    pub fn host_name(index: u32) -> String {
        format!("h{index}")
    }
    /// `h12` → 12.
    pub fn host_index(name: &str) -> Option<u32> {
        name.strip_prefix('h')?
            .parse()
            .ok()
            .filter(|n| (1..=MAX_HOSTS).contains(n))
    }
    pub fn host_dir(&self, name: &str) -> PathBuf {
        self.run_dir.join("hosts").join(name)
    }
    pub fn client_dir(&self) -> PathBuf {
        self.run_dir.join("client")
    }
    pub fn identity_path(&self) -> PathBuf {
        self.client_dir().join("id_ed25519")
    }
    pub fn ssh_config_path(&self) -> PathBuf {
        self.client_dir().join("ssh_config")
    }
    pub fn known_hosts_path(&self) -> PathBuf {
        self.client_dir().join("known_hosts")
    }
    pub fn state_path(&self) -> PathBuf {
        self.run_dir.join("lab.json")
    }
    /// Registry file so offline flake evaluation never reaches for the global registry.
    pub fn flake_registry_path(&self) -> PathBuf {
        self.client_dir().join("flake-registry.json")
    }
}

pub fn default_run_dir(id: &str) -> PathBuf {
    PathBuf::from(format!("/var/tmp/hearth-{id}"))
}

pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 8
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        bail!("lab id {id:?} must be 1–8 lowercase letters or digits (it is part of interface names, which Linux limits to 15 characters)");
    }
    Ok(())
}

/// Accept `10.77.0.0`, `10.77.0.0/24` or `10.77.0`; the lab always uses the whole /24.
pub fn parse_subnet(s: &str) -> Result<Ipv4Addr> {
    let s = s.trim();
    let addr = s.strip_suffix("/24").unwrap_or(s);
    if addr.contains('/') {
        bail!("lab subnet {s:?}: only a /24 is supported (e.g. 10.77.0.0/24)");
    }
    let full = if addr.split('.').count() == 3 {
        format!("{addr}.0")
    } else {
        addr.to_string()
    };
    let ip: Ipv4Addr = full
        .parse()
        .map_err(|_| anyhow::anyhow!("lab subnet {s:?} is not an IPv4 /24 such as 10.77.0.0/24"))?;
    network_of(ip)
}

fn network_of(ip: Ipv4Addr) -> Result<Ipv4Addr> {
    let o = ip.octets();
    if !ip.is_private() {
        bail!("lab subnet {ip}/24 is not private (RFC 1918); pick e.g. 10.77.0.0/24 so lab traffic never leaves the machine");
    }
    Ok(Ipv4Addr::new(o[0], o[1], o[2], 0))
}

fn offset(subnet: Ipv4Addr, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet) + n)
}

/// A host as the client side needs it: name, address and public host key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKeyEntry {
    pub name: String,
    pub address: Ipv4Addr,
    pub host_key: String,
}

/// `ssh -F` config: the `LabClient` profile of `crate::ssh::profiles`.
pub fn ssh_config_text(
    identity: &Path,
    known_hosts: &Path,
    hosts: &[HostKeyEntry],
) -> Result<String, LineError> {
    let addrs: Vec<String> = hosts.iter().map(|h| h.address.to_string()).collect();
    let named: Vec<(&str, &str)> = hosts
        .iter()
        .zip(&addrs)
        .map(|(h, a)| (h.name.as_str(), a.as_str()))
        .collect();
    crate::ssh::profiles::lab_client_config(identity, known_hosts, &named)
}

/// `known_hosts` lines from the host keys recorded in the inventory.
pub fn known_hosts_text(hosts: &[HostKeyEntry]) -> Result<String, LineError> {
    let mut out = String::new();
    for h in hosts {
        out.push_str(&keys::known_hosts_line(
            &[keys::host_pattern(&h.address.to_string(), 22)?],
            h.host_key.trim(),
        )?);
        out.push('\n');
    }
    Ok(out)
}

/// sshd config for one host; everything it reads lives in the host's own directory.
pub fn sshd_config_text(address: Ipv4Addr, ssh_dir: &Path) -> String {
    let d = ssh_dir.display();
    format!(
        "# Generated by `hearth lab up`.\n\
         ListenAddress {address}:22\n\
         HostKey {d}/ssh_host_ed25519_key\n\
         AuthorizedKeysFile {d}/authorized_keys\n\
         PidFile {d}/sshd.pid\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         UseDNS no\n\
         MaxStartups 64:30:128\n\
         MaxSessions 64\n\
         ClientAliveInterval 2\n\
         ClientAliveCountMax 3\n\
         PrintMotd no\n\
         Subsystem sftp internal-sftp\n"
    )
}

/// A non-root login on every lab host, allowed `sudo -n` and trusted by the host's
/// nix-daemon: how a host with `[ssh] user = "deploy"` is reached.
pub const DEPLOY_USER: &str = "deploy";

/// The host's `/etc/passwd` and `/etc/group`: the machine's, plus [`DEPLOY_USER`] with the
/// first uid/gid from 1990 that neither file uses. Returns (passwd, group, uid).
pub fn with_deploy_user(passwd: &str, group: &str, home: &Path) -> (String, String, u32) {
    let ids = |text: &str| -> Vec<u32> {
        text.lines()
            .filter_map(|l| l.split(':').nth(2)?.parse().ok())
            .collect()
    };
    let taken: Vec<u32> = ids(passwd).into_iter().chain(ids(group)).collect();
    let id = (1990..).find(|i| !taken.contains(i)).expect("a free id");
    let strip = |text: &str| -> String {
        text.lines()
            .filter(|l| l.split(':').next() != Some(DEPLOY_USER))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    (
        format!(
            "{}{DEPLOY_USER}:x:{id}:{id}:hearth lab deploy user:{}:/bin/sh\n",
            strip(passwd),
            home.display()
        ),
        format!("{}{DEPLOY_USER}:x:{id}:\n", strip(group)),
        id,
    )
}

/// The host's `/etc/shadow`: every account of `passwd` without a password (key logins
/// only), as on a fresh host; PAM's account check (sudo) needs an entry per user.
pub fn shadow_text(passwd: &str) -> String {
    passwd
        .lines()
        .filter_map(|l| l.split(':').next().filter(|n| !n.is_empty()))
        .map(|name| format!("{name}:*:19000:0:99999:7:::\n"))
        .collect()
}

/// The host's `/etc/sudoers`: root, and [`DEPLOY_USER`] without a password (what a
/// NixOS `security.sudo.extraRules` entry for a deploy user gives).
pub fn sudoers_text() -> String {
    format!(
        "# hearth lab host. Generated by `hearth lab up`.\n\
         Defaults env_reset\n\
         Defaults secure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\n\
         root ALL=(ALL:ALL) ALL\n\
         {DEPLOY_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n"
    )
}

/// A host's `/etc/nix/nix.conf`: offline, no sandbox, builds as root; `extra_platforms`
/// makes it a builder for foreign systems (raw `/bin/sh` derivations need no emulation).
pub fn nix_conf_text(host: &str, extra_platforms: &[String]) -> String {
    let mut s = format!(
        "# hearth lab host {host}. Generated by `hearth lab up`.\n\
         experimental-features = nix-command flakes\n\
         sandbox = false\n\
         substituters =\n\
         build-users-group =\n\
         trusted-users = root {DEPLOY_USER}\n\
         flake-registry = /etc/nix/flake-registry.json\n"
    );
    if !extra_platforms.is_empty() {
        s.push_str(&format!(
            "extra-platforms = {}\n",
            extra_platforms.join(" ")
        ));
    }
    s
}

pub const EMPTY_FLAKE_REGISTRY: &str = "{\"flakes\":[],\"version\":2}\n";

/// Sourced by the toplevel's `switch-to-configuration`: where this host's sshd lives, so
/// activation can restart (or, as a fault, kill) it like systemd would.
pub fn host_env_text(host_dir: &Path) -> String {
    let ssh = host_dir.join("ssh");
    format!(
        "SSHD_CONFIG={}\nSSHD_PIDFILE={}\n",
        crate::lines::shell::quote(&ssh.join("sshd_config").display().to_string()),
        crate::lines::shell::quote(&ssh.join("sshd.pid").display().to_string())
    )
}

/// `NIX_SSHOPTS` value (Nix splits it on spaces).
pub fn nix_sshopts(ssh_config: &Path) -> String {
    crate::ssh::profiles::nix_sshopts(ssh_config, None)
}

/// `NIX_CONFIG` for offline Nix on the deployer side.
pub fn offline_nix_config(registry: &Path) -> String {
    format!(
        "experimental-features = nix-command flakes\nsandbox = false\nsubstituters =\nflake-registry = {}\n",
        registry.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LabConfig {
        LabConfig::new(
            "lab",
            "10.77.0.0".parse().unwrap(),
            "/repo/.hearth/lab".into(),
        )
        .unwrap()
    }

    #[test]
    fn names_fit_linux_limits() {
        let c = LabConfig::new("abcdefgh", "10.77.3.0".parse().unwrap(), "/x".into()).unwrap();
        assert_eq!(c.veth(200), "hv-abcdefgh-200");
        assert!(c.veth(200).len() <= 15);
        assert!(c.bridge().len() <= 15);
        assert_eq!(cfg().netns(3), "hearth-lab-h3");
    }

    #[test]
    fn addresses_come_from_one_slash24() {
        let c = cfg();
        assert_eq!(c.bridge_address().to_string(), "10.77.0.1");
        assert_eq!(c.host_address(1).to_string(), "10.77.0.11");
        assert_eq!(c.host_address(8).to_string(), "10.77.0.18");
        assert_eq!(LabConfig::host_index("h12"), Some(12));
        assert_eq!(LabConfig::host_index("x1"), None);
        assert_eq!(LabConfig::host_index("h0"), None);
    }

    #[test]
    fn subnet_parsing() {
        assert_eq!(
            parse_subnet("10.77.5.0/24").unwrap().to_string(),
            "10.77.5.0"
        );
        assert_eq!(parse_subnet("10.77.5").unwrap().to_string(), "10.77.5.0");
        assert!(parse_subnet("8.8.8.0/24").is_err());
        assert!(parse_subnet("10.0.0.0/16").is_err());
        assert!(validate_id("Lab").is_err());
        assert!(validate_id("toolongid").is_err());
    }

    #[test]
    fn ssh_config_is_strict_and_names_every_host() {
        let hosts = vec![HostKeyEntry {
            name: "h1".into(),
            address: "10.77.0.11".parse().unwrap(),
            host_key: "ssh-ed25519 AAAA".into(),
        }];
        let text = ssh_config_text(Path::new("/k/id"), Path::new("/k/known"), &hosts).unwrap();
        assert!(text.contains("Host h1 10.77.0.11\n  HostName 10.77.0.11"));
        for line in [
            "StrictHostKeyChecking yes",
            "BatchMode yes",
            "ServerAliveInterval 2",
            "ServerAliveCountMax 3",
            "IdentityFile /k/id",
            "UserKnownHostsFile /k/known",
        ] {
            assert!(text.contains(line), "{line}");
        }
        assert_eq!(
            known_hosts_text(&hosts).unwrap(),
            "10.77.0.11 ssh-ed25519 AAAA\n"
        );
        let mut evil = hosts.clone();
        evil[0].host_key = "ssh-ed25519 AAAA\n@cert-authority * ssh-ed25519 BBBB".into();
        assert!(known_hosts_text(&evil).is_err());
    }

    #[test]
    fn sshd_is_key_only_and_self_contained() {
        let t = sshd_config_text("10.77.0.11".parse().unwrap(), Path::new("/run/h1/ssh"));
        assert!(t.contains("ListenAddress 10.77.0.11:22"));
        assert!(t.contains("PasswordAuthentication no"));
        assert!(t.contains("PidFile /run/h1/ssh/sshd.pid"));
        assert!(t.contains("HostKey /run/h1/ssh/ssh_host_ed25519_key"));
    }

    #[test]
    fn deploy_user_gets_a_free_id_and_replaces_an_old_entry() {
        let (p, g, id) = with_deploy_user(
            "root:x:0:0::/root:/bin/bash\nu:x:1990:1990::/h:/bin/sh\ndeploy:x:5:5::/x:/bin/sh\n",
            "root:x:0:\ng:x:1991:\n",
            Path::new("/run/h1/home"),
        );
        assert_eq!(id, 1992);
        assert_eq!(
            p,
            "root:x:0:0::/root:/bin/bash\nu:x:1990:1990::/h:/bin/sh\n\
             deploy:x:1992:1992:hearth lab deploy user:/run/h1/home:/bin/sh\n"
        );
        assert_eq!(g, "root:x:0:\ng:x:1991:\ndeploy:x:1992:\n");
        assert!(sudoers_text().contains("\ndeploy ALL=(ALL:ALL) NOPASSWD: ALL\n"));
        assert!(shadow_text(&p).ends_with("u:*:19000:0:99999:7:::\ndeploy:*:19000:0:99999:7:::\n"));
        assert!(nix_conf_text("h1", &[]).contains("trusted-users = root deploy\n"));
    }

    #[test]
    fn builder_nix_conf_declares_extra_platforms() {
        assert!(!nix_conf_text("h1", &[]).contains("extra-platforms"));
        let t = nix_conf_text("h2", &["aarch64-linux".into()]);
        assert!(t.contains("extra-platforms = aarch64-linux\n"));
        assert!(t.contains("substituters =\n"));
    }
}
