//! `hearth lab`: throwaway test hosts on this machine. Each host is a network namespace
//! (veth to a bridge, one address from the lab's private /24) plus a private mount
//! namespace with its own `/nix`, `/etc/nix`, `/tmp` and `/root`, and its own key-only sshd.
//! The lab is also an inventory (`hosts/hN.toml`, hardware = "lab"), so the real
//! compile, build and deploy code runs against it.
//!
//! Rust API for tests and other stages: [`Lab::up`], [`Lab::open`], [`Lab::down`],
//! [`Lab::ssh_config_path`], [`Lab::nix_sshopts`], [`Lab::console_exec`], and the
//! outside faults [`Lab::cut_link`] / [`Lab::kill_sshd`] and their repairs.

pub mod config;
pub mod fleet;
mod host;

pub use config::LabConfig;
pub use host::{HostState, LinkState};

use crate::process;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A lab host about to be written into the fleet: (name, index, host key).
type HostSeed = (String, u32, String);

#[derive(Debug, clap::Args)]
pub struct LabArgs {
    /// Lab id (1–8 lowercase letters/digits): namespaces are `hearth-<id>-hN`.
    #[arg(long, global = true, default_value = "lab")]
    pub id: String,
    /// The lab's private /24 (hosts get .11, .12, …; the bridge .1). Default 10.77.0.0/24.
    #[arg(long, global = true, value_name = "SUBNET")]
    pub base: Option<String>,
    /// Lab fleet directory (its inventory and flake). Default: <repo>/.hearth/lab.
    #[arg(long = "dir", global = true, value_name = "DIR")]
    pub fleet_dir: Option<PathBuf>,
    /// Runtime directory (host stores, sshd files, client keys). Default: /var/tmp/hearth-<id>.
    #[arg(long = "run-dir", global = true, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Start hosts h1…hN (default: the current count, or 3). Idempotent.
    Up {
        n: Option<u32>,
        /// Make this host a remote builder for aarch64-linux (`extra-platforms`). Repeatable.
        #[arg(long, value_name = "HOST")]
        builder: Vec<String>,
        /// Boot systemd as PID 1 of each host (its own root, units, journal); sshd, the
        /// nix-daemon and the payload run as units. Default: HEARTH_LAB_SYSTEMD=1, else off.
        #[arg(long, conflicts_with = "no_systemd")]
        systemd: bool,
        /// Hosts without systemd (sshd and the payload started by the lab directly).
        #[arg(long)]
        no_systemd: bool,
    },
    /// Stop every host and remove every trace (processes, namespaces, links, runtime files).
    Down,
    /// Show the hosts and whether each is reachable over SSH.
    Status,
    /// Inject or repair a fault from outside the host.
    Fault {
        #[arg(value_enum)]
        kind: OutsideFault,
        host: String,
    },
    /// Run a command on a host without SSH (inside its namespaces), like a serial console.
    Console {
        host: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Print a host's state read without SSH: generations, current system, activation log.
    State { host: String },
    /// Print shell exports for reaching the lab (NIX_SSHOPTS, NIX_CONFIG, HEARTH_FLAKE, …).
    Env,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OutsideFault {
    /// Pull the host's cable (its veth goes down on the bridge side).
    CutLink,
    /// Plug it back in (both ends up).
    RestoreLink,
    /// Kill the host's listening sshd (open sessions survive).
    KillSshd,
    /// Start the host's sshd again.
    StartSshd,
    /// Power-cycle the host: kill every process of it, then boot what its boot entry says.
    Reboot,
}

/// One running lab host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabHost {
    pub name: String,
    pub index: u32,
    pub address: Ipv4Addr,
    pub netns: String,
    /// Root-namespace end of its veth.
    pub veth: String,
    /// Its runtime tree: `nix/`, `etc-nix/`, `tmp/`, `ssh/`.
    pub dir: PathBuf,
    /// Systems it builds beyond x86_64-linux (`extra-platforms`), from its host file.
    pub extra_platforms: Vec<String>,
    /// Whether systemd is its PID 1 (`hearth lab up --systemd`).
    #[serde(default)]
    pub systemd: bool,
}

/// Whether `hearth lab up` boots systemd hosts when not told: `HEARTH_LAB_SYSTEMD=1`.
pub fn systemd_by_default() -> bool {
    std::env::var("HEARTH_LAB_SYSTEMD").is_ok_and(|v| v == "1")
}

/// Directories each host mounts its own tree over: a run dir beneath one would be hidden
/// from the host (its sshd reads its config and keys from there).
const HIDDEN_IN_HOST: &[&str] = &[
    "/tmp", "/root", "/home", "/nix", "/etc", "/run", "/var/log", "/dev", "/proc", "/sys",
];

/// Refuse, up front, a run dir that a host's own mounts would hide.
pub fn check_run_dir(run_dir: &Path) -> Result<()> {
    for d in HIDDEN_IN_HOST {
        if run_dir.starts_with(d) {
            bail!(
                "--run-dir {}: each lab host mounts its own {d} over the machine's, which would hide \
                 the host's files there from its sshd; pick a directory outside {} (default: /var/tmp/hearth-<id>)",
                run_dir.display(),
                HIDDEN_IN_HOST.join(", ")
            );
        }
    }
    Ok(())
}

/// Whether a host boots systemd: its `[lab] systemd`, else the lab's choice. A running
/// host keeps what it booted: switching needs `hearth lab down` first.
fn host_boots_systemd(
    file: &crate::inventory::model::HostFile,
    lab_default: bool,
    running: Option<&Lab>,
    config: &LabConfig,
    name: &str,
) -> Result<bool> {
    let (systemd, why) = match file.lab.as_ref().and_then(|l| l.systemd) {
        Some(b) => (b, format!("hosts/{name}.toml says `[lab] systemd = {b}`")),
        None if lab_default => (
            true,
            "the lab boots systemd (--systemd or HEARTH_LAB_SYSTEMD=1)".to_string(),
        ),
        None => (
            false,
            "the lab boots plain hosts (no --systemd, no HEARTH_LAB_SYSTEMD=1)".to_string(),
        ),
    };
    if let Some(old) = running.and_then(|l| l.hosts.iter().find(|h| h.name == name)) {
        if old.systemd != systemd {
            bail!(
                "lab host {name} runs {} systemd, but {why}; run `hearth lab down --id {}` first",
                if old.systemd { "with" } else { "without" },
                config.id
            );
        }
    }
    if systemd && !host::systemd_available() {
        bail!("lab host {name} boots systemd ({why}), which needs /lib/systemd/systemd with its units, nsenter and pivot_root (packages systemd, util-linux)");
    }
    Ok(systemd)
}

/// A running lab; its description is saved in `<run_dir>/lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lab {
    pub config: LabConfig,
    pub hosts: Vec<LabHost>,
}

impl Lab {
    /// Bring up hosts h1…h`count` (idempotent), write the lab fleet and run `hearth gen` on it.
    /// `builders` names hosts to declare as aarch64-linux builders in their host files.
    pub fn up(config: LabConfig, count: u32, builders: &[String]) -> Result<Lab> {
        Lab::up_with(config, count, builders, systemd_by_default())
    }

    /// [`Lab::up`] with systemd as each host's PID 1 (`systemd`) or not; a host file's
    /// `[lab] systemd` wins over `systemd` for that host.
    pub fn up_with(
        config: LabConfig,
        count: u32,
        builders: &[String],
        systemd: bool,
    ) -> Result<Lab> {
        let running = Lab::check_up(&config, count, builders)?;
        let (client_key, seeds) = Lab::prepare_runtime(&config, count)?;
        write_fleet(&config, &client_key, &seeds, builders)?;
        regenerate(&config.fleet_dir)?;
        let files = fleet::read_hosts(&config.fleet_dir)?;
        let mut hosts = Vec::new();
        let mut keys = Vec::new();
        for (name, index, _) in &seeds {
            let (_, file) = files
                .iter()
                .find(|(n, _)| n == name)
                .context("lab host file vanished")?;
            let systemd = host_boots_systemd(file, systemd, running.as_ref(), &config, name)?;
            let (host, key) = Lab::describe_host(&config, name, *index, file, systemd)?;
            hosts.push(host);
            keys.push(key);
        }
        host::write_if_changed(
            &config.known_hosts_path(),
            &config::known_hosts_text(&keys)?,
        )?;
        host::write_if_changed(
            &config.ssh_config_path(),
            &config::ssh_config_text(&config.identity_path(), &config.known_hosts_path(), &keys)?,
        )?;
        let lab = Lab { config, hosts };
        lab.boot()?;
        lab.save()?;
        Ok(lab)
    }

    /// What `up` refuses before touching anything; the lab already running with this id.
    fn check_up(config: &LabConfig, count: u32, builders: &[String]) -> Result<Option<Lab>> {
        host::preflight()?;
        check_run_dir(&config.run_dir)?;
        if count == 0 || count > config::MAX_HOSTS {
            bail!("lab size {count}: pick 1 to {}", config::MAX_HOSTS);
        }
        for b in builders {
            match LabConfig::host_index(b) {
                Some(i) if i <= count => {}
                _ => bail!("--builder {b}: not a host of this lab (hosts are h1…h{count})"),
            }
        }
        let running = Lab::open(config).ok();
        if let Some(old) = &running {
            if old.config.subnet != config.subnet || old.config.fleet_dir != config.fleet_dir {
                bail!(
                    "lab {:?} already runs on {}/24 with fleet {}; run `hearth lab down --id {}` first",
                    config.id,
                    old.config.subnet,
                    old.config.fleet_dir.display(),
                    config.id
                );
            }
        }
        Ok(running)
    }

    /// Namespaces, links, bridge, client key and host trees for h1…h`count` (hosts beyond
    /// it removed). The client's public key and (name, index, host key) per host.
    fn prepare_runtime(config: &LabConfig, count: u32) -> Result<(String, Vec<HostSeed>)> {
        if !config.state_path().exists() && !host::lab_netns(config)?.is_empty() {
            // An `up` that never finished (or a runtime tree someone deleted): its
            // namespaces may hold sshds whose files are gone. Start from scratch.
            host::teardown(config)?;
        }
        host::ensure_client(config)?;
        host::ensure_bridge(config)?;
        // Hosts beyond the new count go away entirely.
        for (index, netns) in host::lab_netns(config)? {
            if index > count {
                host::remove_host(config, index, &netns)?;
                let _ = std::fs::remove_file(
                    config
                        .fleet_dir
                        .join("hosts")
                        .join(format!("{}.toml", LabConfig::host_name(index))),
                );
            }
        }
        let client_key = std::fs::read_to_string(config.identity_path().with_extension("pub"))?;
        let mut seeds = Vec::new();
        for index in 1..=count {
            let name = LabConfig::host_name(index);
            let host_key =
                host::ensure_host_tree(config, &name, config.host_address(index), &client_key)?;
            host::ensure_link(config, index)?;
            seeds.push((name, index, host_key));
        }
        Ok((client_key, seeds))
    }

    /// One host as its file describes it (its nix.conf written), and its known_hosts entry.
    fn describe_host(
        config: &LabConfig,
        name: &str,
        index: u32,
        file: &crate::inventory::model::HostFile,
        systemd: bool,
    ) -> Result<(LabHost, config::HostKeyEntry)> {
        let extra_platforms = fleet::extra_platforms(file);
        let dir = config.host_dir(name);
        host::write_if_changed(
            &dir.join("etc-nix/nix.conf"),
            &config::nix_conf_text(name, &extra_platforms),
        )?;
        let address = config.host_address(index);
        let host_key = file
            .host_key
            .clone()
            .with_context(|| format!("hosts/{name}.toml has no host_key"))?;
        let key = config::HostKeyEntry {
            name: name.to_string(),
            address,
            host_key,
        };
        let host = LabHost {
            name: name.to_string(),
            index,
            address,
            netns: config.netns(index),
            veth: config.veth(index),
            dir,
            extra_platforms,
            systemd,
        };
        Ok((host, key))
    }

    /// Start what is not running (systemd, or sshd on a plain host) and wait for sshd.
    fn boot(&self) -> Result<()> {
        for h in &self.hosts {
            host::init_store(&self.config, h)?;
            if h.systemd {
                host::ensure_systemd_tree(&h.dir, &h.name)?;
                if host::systemd_pid(h).is_none() {
                    host::boot_systemd(h)?;
                }
            } else if host::sshd_pid(h).is_none() {
                host::start_sshd(&self.config, h)?;
            }
        }
        for h in &self.hosts {
            host::wait_for_port(h.address, 22, std::time::Duration::from_secs(10)).with_context(
                || {
                    format!(
                        "sshd on {} ({}) did not come up; see {}/ssh/sshd.log",
                        h.name,
                        h.address,
                        h.dir.display()
                    )
                },
            )?;
        }
        Ok(())
    }

    /// The lab described by `<run_dir>/lab.json` (started earlier by `up`).
    pub fn open(config: &LabConfig) -> Result<Lab> {
        let path = config.state_path();
        if !path.exists() {
            bail!(
                "no lab {:?} is running here ({} is missing); start it with `hearth lab up`",
                config.id,
                path.display()
            );
        }
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no lab {:?} is running here ({} is missing); start it with `hearth lab up`",
                config.id,
                path.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
    }

    fn save(&self) -> Result<()> {
        host::write_if_changed(
            &self.config.state_path(),
            &serde_json::to_string_pretty(self)?,
        )
    }

    /// Stop everything the lab `config.id` started: processes, namespaces, veths, bridge,
    /// runtime files. The lab fleet directory (an inventory) stays. Safe to repeat.
    pub fn down(config: &LabConfig) -> Result<()> {
        host::preflight()?;
        host::teardown(config)
    }

    pub fn host(&self, name: &str) -> Result<&LabHost> {
        self.hosts.iter().find(|h| h.name == name).with_context(|| {
            let names: Vec<_> = self.hosts.iter().map(|h| h.name.as_str()).collect();
            format!("no lab host {name:?} (hosts: {})", names.join(", "))
        })
    }
    pub fn address(&self, name: &str) -> Result<Ipv4Addr> {
        Ok(self.host(name)?.address)
    }
    pub fn fleet_dir(&self) -> &Path {
        &self.config.fleet_dir
    }
    /// Flake reference of the lab fleet. `path:` because the fleet usually sits inside an
    /// (ignored) directory of a git work tree, where a plain path would hide its files.
    pub fn flake_ref(&self) -> String {
        format!("path:{}", self.config.fleet_dir.display())
    }
    pub fn ssh_config_path(&self) -> PathBuf {
        self.config.ssh_config_path()
    }
    pub fn known_hosts_path(&self) -> PathBuf {
        self.config.known_hosts_path()
    }
    pub fn identity_path(&self) -> PathBuf {
        self.config.identity_path()
    }
    /// For `NIX_SSHOPTS`, so `nix copy --to ssh://root@<addr>` uses the lab's keys.
    pub fn nix_sshopts(&self) -> String {
        config::nix_sshopts(&self.ssh_config_path())
    }
    /// `NIX_CONFIG` for offline Nix on this machine (no substituters, local registry).
    pub fn nix_config(&self) -> String {
        config::offline_nix_config(&self.config.flake_registry_path())
    }
    /// `ssh -F <lab config> <host> -- <cmd>` (a fresh connection, no multiplexing).
    pub fn ssh_command(&self, name: &str, cmd: &str) -> Result<Command> {
        self.ssh_command_with(name, &[], cmd)
    }
    /// Like [`Lab::ssh_command`] with extra ssh options, e.g. `["-o", "ConnectTimeout=2"]`.
    pub fn ssh_command_with(&self, name: &str, options: &[&str], cmd: &str) -> Result<Command> {
        let h = self.host(name)?;
        let mut c = Command::new("ssh");
        c.arg("-F")
            .arg(self.ssh_config_path())
            .args(options)
            .arg(&h.name)
            .arg("--")
            .arg(cmd);
        Ok(c)
    }

    /// A command that runs `cmd` (sh) inside the host's network namespace and a mount
    /// namespace with its `/nix`, `/etc/nix`, `/tmp` and `/root`: a console that needs no SSH and
    /// works while sshd is dead or the link is down.
    pub fn console_command(&self, name: &str, cmd: &str) -> Result<Command> {
        Ok(host::console(self.host(name)?, "exec sh -c \"$1\"", &[cmd]))
    }
    /// Run `cmd` on the console; its stdout, or an error with its stderr.
    pub fn console_exec(&self, name: &str, cmd: &str) -> Result<String> {
        process::run_stdout(&mut self.console_command(name, cmd)?)
            .with_context(|| format!("console on lab host {name}"))
    }

    /// Pull the cable: the host's veth goes down on the bridge side.
    pub fn cut_link(&self, name: &str) -> Result<()> {
        let h = self.host(name)?;
        host::ip(&["link", "set", &h.veth, "down"])
    }
    /// Plug the cable back in and bring the host's own interface up (undoes both
    /// `cut_link` and an activation that took the link down); returns once the host
    /// answers on the network again.
    pub fn restore_link(&self, name: &str) -> Result<()> {
        let h = self.host(name)?;
        host::ip(&["link", "set", &h.veth, "up"])?;
        host::ip(&["-n", &h.netns, "link", "set", config::HOST_IFACE, "up"])?;
        host::wait_reachable(h.address, 22, std::time::Duration::from_secs(10))
    }
    /// Kill the host's listening sshd and wait until it is gone.
    pub fn kill_sshd(&self, name: &str) -> Result<()> {
        host::kill_sshd(self.host(name)?)
    }
    /// Start the host's sshd if it is not running, and wait until it listens.
    pub fn start_sshd(&self, name: &str) -> Result<()> {
        let h = self.host(name)?;
        if h.systemd || host::sshd_pid(h).is_none() {
            host::start_sshd(&self.config, h)?;
        }
        host::wait_for_port(h.address, 22, std::time::Duration::from_secs(10))
    }
    /// Power-cycle the host: every process is killed and it boots its boot entry (on a
    /// systemd host, systemd comes up again and starts that system's units). Returns once
    /// sshd listens again.
    pub fn reboot(&self, name: &str) -> Result<()> {
        host::reboot(&self.config, self.host(name)?)
    }
    /// The machine's pid of the host's systemd (PID 1 of its namespaces), if it runs one.
    pub fn systemd_pid(&self, name: &str) -> Result<Option<i32>> {
        let h = self.host(name)?;
        Ok(host::systemd_pid(h).filter(|_| h.systemd))
    }
    /// The host's state read from its own tree, without SSH.
    pub fn state(&self, name: &str) -> Result<HostState> {
        host::read_state(self.host(name)?)
    }

    /// Rewrite a host's `[lab]` settings (fault, payload, revision) in its host file.
    /// Run [`regenerate`] (or `hearth gen`) afterwards.
    pub fn set_lab_settings(
        &self,
        name: &str,
        lab: &crate::inventory::model::LabSettings,
    ) -> Result<()> {
        self.host(name)?;
        let path = self
            .config
            .fleet_dir
            .join("hosts")
            .join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        std::fs::write(&path, fleet::set_lab_settings_text(&text, lab)?)
            .with_context(|| format!("writing {}", path.display()))
    }
}

fn write_fleet(
    config: &LabConfig,
    client_key: &str,
    seeds: &[HostSeed],
    builders: &[String],
) -> Result<()> {
    let dir = &config.fleet_dir;
    std::fs::create_dir_all(dir.join("hosts"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let fleet_file = dir.join(crate::inventory::FLEET_FILE);
    let existing = std::fs::read_to_string(&fleet_file).ok();
    host::write_if_changed(
        &fleet_file,
        &fleet::fleet_file_update(existing.as_deref(), client_key)?,
    )?;
    host::write_if_changed(&dir.join("flake.nix"), fleet::FLAKE_NIX)?;
    host::write_if_changed(
        &dir.join("switch-to-configuration.sh"),
        fleet::SWITCH_TO_CONFIGURATION,
    )?;
    for (name, index, host_key) in seeds {
        let path = dir.join("hosts").join(format!("{name}.toml"));
        let existing = std::fs::read_to_string(&path).ok();
        let seed = fleet::HostSeed {
            name,
            address: config.host_address(*index),
            host_key,
            builder: builders.iter().any(|b| b == name),
        };
        host::write_if_changed(&path, &fleet::host_file_text(existing.as_deref(), &seed)?)?;
    }
    Ok(())
}

/// Compile the lab fleet with the real `hearth gen` (`generated/fleet.nix` and friends).
pub fn regenerate(fleet_dir: &Path) -> Result<()> {
    crate::compile::generate(fleet_dir)
        .with_context(|| format!("hearth gen on the lab fleet {}", fleet_dir.display()))?;
    Ok(())
}

fn config_from_args(root: &Path, args: &LabArgs) -> Result<LabConfig> {
    config::validate_id(&args.id)?;
    let run_dir = std::path::absolute(
        args.run_dir
            .clone()
            .unwrap_or_else(|| config::default_run_dir(&args.id)),
    )?;
    // Commands after `up` follow the running lab's subnet and fleet directory.
    let default_subnet = Ipv4Addr::new(10, 77, 0, 0);
    let probe = LabConfig {
        id: args.id.clone(),
        subnet: default_subnet,
        run_dir: run_dir.clone(),
        fleet_dir: PathBuf::new(),
    };
    let running = Lab::open(&probe).ok().map(|l| l.config);
    let fleet_dir = match (&args.fleet_dir, &running) {
        (Some(d), _) => std::path::absolute(d)?,
        (None, Some(r)) => r.fleet_dir.clone(),
        (None, None) => std::path::absolute(root.join(".hearth").join("lab"))?,
    };
    let subnet = match (&args.base, &running) {
        (Some(b), _) => config::parse_subnet(b)?,
        (None, Some(r)) => r.subnet,
        (None, None) => default_subnet,
    };
    let mut c = LabConfig::new(&args.id, subnet, fleet_dir)?;
    c.run_dir = run_dir;
    Ok(c)
}

pub fn run(root: &Path, args: LabArgs) -> Result<u8> {
    // Every subcommand enters or inspects namespaces: say up front what is missing.
    host::preflight()?;
    let config = config_from_args(root, &args)?;
    match args.command {
        LabCommand::Up {
            n,
            builder,
            systemd,
            no_systemd,
        } => {
            let count = match n {
                Some(n) => n,
                None => Lab::open(&config)
                    .map(|l| l.hosts.len() as u32)
                    .unwrap_or(3),
            };
            let systemd = systemd || (!no_systemd && systemd_by_default());
            let lab = Lab::up_with(config, count, &builder, systemd)?;
            print_summary(&lab);
            Ok(0)
        }
        LabCommand::Down => {
            Lab::down(&config)?;
            println!(
                "lab {:?} is down: no processes, namespaces, links or runtime files left",
                config.id
            );
            Ok(0)
        }
        LabCommand::Status => print_status(&config),
        LabCommand::Fault { kind, host } => {
            let lab = Lab::open(&config)?;
            match kind {
                OutsideFault::CutLink => lab.cut_link(&host)?,
                OutsideFault::RestoreLink => lab.restore_link(&host)?,
                OutsideFault::KillSshd => lab.kill_sshd(&host)?,
                OutsideFault::StartSshd => lab.start_sshd(&host)?,
                OutsideFault::Reboot => lab.reboot(&host)?,
            }
            Ok(0)
        }
        LabCommand::Console { host, cmd } => {
            let lab = Lab::open(&config)?;
            let h = lab.host(&host)?;
            let status = host::console(
                h,
                "exec \"$@\"",
                &cmd.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .status()
            .context("starting the console")?;
            Ok(status.code().map(|c| c.clamp(0, 255) as u8).unwrap_or(1))
        }
        LabCommand::State { host } => {
            let lab = Lab::open(&config)?;
            print!("{}", lab.state(&host)?);
            Ok(0)
        }
        LabCommand::Env => {
            let lab = Lab::open(&config)?;
            print!("{}", env_text(&lab));
            Ok(0)
        }
    }
}

/// `hearth lab status`: each host's link, sshd, SSH login and current system.
fn print_status(config: &LabConfig) -> Result<u8> {
    let lab = Lab::open(config)?;
    let mut all_ok = true;
    println!(
        "{:<6} {:<14} {:<6} {:<6} {:<5} current system",
        "host", "address", "link", "sshd", "ssh"
    );
    for h in &lab.hosts {
        let st = lab.state(&h.name)?;
        let ssh_ok = lab
            .ssh_command_with(&h.name, &["-o", "ConnectTimeout=3"], "true")?
            .stdin(std::process::Stdio::null())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        all_ok &= ssh_ok;
        println!(
            "{:<6} {:<14} {:<6} {:<6} {:<5} {}",
            h.name,
            h.address.to_string(),
            st.link.to_string(),
            if st.sshd_running { "up" } else { "down" },
            if ssh_ok { "ok" } else { "FAIL" },
            st.current_system.as_deref().unwrap_or("-")
        );
    }
    Ok(if all_ok { 0 } else { 1 })
}

/// Shell exports so `nix`, `ssh` and `hearth deploy` reach the lab: `hearth deploy`
/// reads HEARTH_FLAKE and HEARTH_SSH_IDENTITY, Nix reads NIX_SSHOPTS and NIX_CONFIG.
fn env_text(lab: &Lab) -> String {
    let q = |s: String| crate::lines::shell::quote(&s);
    format!(
        "export NIX_SSHOPTS={}\nexport NIX_CONFIG={}\nexport HEARTH_FLAKE={}\nexport HEARTH_SSH_IDENTITY={}\nexport HEARTH_LAB_SSH_CONFIG={}\nexport HEARTH_LAB_FLEET={}\n",
        q(lab.nix_sshopts()),
        q(lab.nix_config()),
        q(lab.flake_ref()),
        q(lab.identity_path().display().to_string()),
        q(lab.ssh_config_path().display().to_string()),
        q(lab.fleet_dir().display().to_string())
    )
}

fn print_summary(lab: &Lab) {
    println!(
        "lab {:?}: {} hosts on {}/24 (bridge {})",
        lab.config.id,
        lab.hosts.len(),
        lab.config.subnet,
        lab.config.bridge()
    );
    for h in &lab.hosts {
        let builder = if h.extra_platforms.is_empty() {
            String::new()
        } else {
            format!("  builder for {}", h.extra_platforms.join(", "))
        };
        println!(
            "  {:<5} {:<14} netns {}{}{builder}",
            h.name,
            h.address.to_string(),
            h.netns,
            if h.systemd { "  systemd" } else { "" }
        );
    }
    println!(
        "fleet:   {}  (flake {}#nixosConfigurations.<host>)",
        lab.fleet_dir().display(),
        lab.flake_ref()
    );
    println!("ssh:     ssh -F {} h1", lab.ssh_config_path().display());
    println!(
        "nix:     NIX_SSHOPTS='{}' nix copy --to ssh://root@{} <path>",
        lab.nix_sshopts(),
        lab.hosts[0].address
    );
    println!("console: hearth lab console h1 -- <cmd>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_dirs_a_host_would_hide_are_refused() {
        let e = check_run_dir(Path::new("/tmp/lab-run"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--run-dir /tmp/lab-run: each lab host mounts its own /tmp"),
            "{e}"
        );
        assert!(check_run_dir(Path::new("/root/x")).is_err());
        assert!(check_run_dir(Path::new("/var/tmp/hearth-lab")).is_ok());
        assert!(check_run_dir(Path::new("/tmpfoo/x")).is_ok());
    }

    #[test]
    fn env_exports_what_nix_and_hearth_deploy_read() {
        let config =
            LabConfig::new("lab", Ipv4Addr::new(10, 77, 0, 0), "/r/.hearth/lab".into()).unwrap();
        let lab = Lab {
            config,
            hosts: vec![],
        };
        let env = env_text(&lab);
        assert!(
            env.contains("export NIX_SSHOPTS='-F /var/tmp/hearth-lab/client/ssh_config'\n"),
            "{env}"
        );
        assert!(
            env.contains("export HEARTH_FLAKE='path:/r/.hearth/lab'\n"),
            "{env}"
        );
        assert!(
            env.contains("export HEARTH_SSH_IDENTITY=/var/tmp/hearth-lab/client/id_ed25519\n"),
            "{env}"
        );
        assert!(env.contains("substituters =\n"), "{env}");
    }
}
