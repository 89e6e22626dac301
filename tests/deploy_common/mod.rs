//! The deploy tests' view of the lab (`hearth::lab::Lab`): throwaway hosts, each a network
//! namespace plus a private mount namespace with its own /nix, /etc/nix and /tmp and an sshd
//! living in both. The lab fleet is a real inventory; faults, payload and revision are set
//! in its host files (`[lab]`) and compiled with `hearth gen`.
//!
//! Needs root, nix, sshd and iproute2; otherwise `Lab::start` prints a `SKIPPED:` line and
//! returns None.
#![allow(dead_code)]

#[path = "../lab_support/mod.rs"]
mod lab_support;

use hearth::inventory::model::{LabFault, LabSettings};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn sh(cmd: &str) -> Output {
    Command::new("sh").args(["-c", cmd]).output().expect("sh")
}

/// Why these tests cannot run here, if they cannot.
pub fn missing_prerequisite(need_hosts: bool) -> Option<String> {
    if sh("command -v nix").stdout.is_empty() {
        return Some("nix is not installed".into());
    }
    if need_hosts {
        return lab_support::missing_prerequisite();
    }
    None
}

pub fn skip(test: &str, why: &str) {
    println!("SKIPPED: {test}: {why}");
}

pub fn nix_config(base: &Path) -> String {
    format!(
        "experimental-features = nix-command flakes\nsandbox = false\nsubstituters =\nflake-registry = {}/registry.json\nwarn-dirty = false\n",
        base.display()
    )
}

/// Per-host settings the tests change.
#[derive(Debug, Clone)]
pub struct HostCfg {
    /// `none`, `activation-fails`, `activation-hangs`, `link-down`, `kill-sshd`, `payload-down`.
    pub fault: String,
    pub revision: u32,
    pub payload_mib: u32,
    pub payload_paths: u32,
    /// `[deploy] confirm_timeout` of this host (the lab fleet's default is 10 s).
    pub confirm_timeout: Option<u32>,
}

impl Default for HostCfg {
    fn default() -> Self {
        Self {
            fault: "none".into(),
            revision: 0,
            payload_mib: 0,
            payload_paths: 1,
            confirm_timeout: None,
        }
    }
}

pub struct Host {
    pub name: String,
    pub addr: String,
    /// The host's runtime tree (`nix/` is its /nix).
    pub dir: PathBuf,
}

impl Host {
    /// The host's private /nix as seen from the root namespace.
    pub fn nix(&self) -> PathBuf {
        self.dir.join("nix")
    }
    /// The store path the host's system profile points to, read from outside.
    pub fn current(&self) -> Option<String> {
        let p = self.nix().join("var/nix/profiles");
        let link = std::fs::read_link(p.join("system")).ok()?;
        let target = std::fs::read_link(p.join(link)).ok()?;
        Some(target.display().to_string())
    }
    pub fn generation(&self) -> Option<u32> {
        let link = std::fs::read_link(self.nix().join("var/nix/profiles/system")).ok()?;
        link.to_str()?
            .strip_prefix("system-")?
            .strip_suffix("-link")?
            .parse()
            .ok()
    }
    pub fn generations(&self) -> Vec<u32> {
        let mut v: Vec<u32> = std::fs::read_dir(self.nix().join("var/nix/profiles"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().to_string();
                        n.strip_prefix("system-")?
                            .strip_suffix("-link")?
                            .parse()
                            .ok()
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
    /// Is this store path in the host's own store?
    pub fn has_path(&self, path: &str) -> bool {
        let rel = path.trim_start_matches("/nix/");
        self.nix().join(rel).exists()
    }
    /// Activation attempts the supervisor ran on this host.
    pub fn attempts(&self) -> usize {
        std::fs::read_dir(self.nix().join("var/hearth"))
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("attempt-"))
                })
                .count()
            })
            .unwrap_or(0)
    }
}

pub struct Lab {
    pub base: tempfile::TempDir,
    pub lab: hearth::lab::Lab,
    pub hosts: Vec<Host>,
    pub cfg: BTreeMap<String, HostCfg>,
}

impl Lab {
    /// Start `n` hosts named h1..hn. None (after a SKIPPED line) when this machine can't.
    pub fn start(test: &str, n: u32) -> Option<Lab> {
        Lab::start_with(test, n, hearth::lab::systemd_by_default())
    }

    /// [`Lab::start`] with hosts that boot systemd (`systemd`) or not. A machine without
    /// systemd fails the test rather than skipping it: CI installs it.
    pub fn start_with(test: &str, n: u32, systemd: bool) -> Option<Lab> {
        if let Some(why) = missing_prerequisite(true) {
            skip(test, &why);
            return None;
        }
        let seq = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("d{:x}", (std::process::id() * 7 + seq * 131) % 0xfffff);
        // A /24 of 10.78.x.0 nobody uses yet.
        let used = String::from_utf8_lossy(&sh("ip -o addr").stdout).into_owned();
        let mut k = (std::process::id() * 13 + seq * 17) % 250 + 1;
        while used.contains(&format!("10.78.{k}.")) {
            k = k % 250 + 1;
        }
        Lab::start_on(&id, Ipv4Addr::new(10, 78, k as u8, 0), n, systemd)
    }

    /// [`Lab::start_with`] on a lab id and /24 of the test's own (a leftover of an earlier
    /// run with that id is taken down first).
    pub fn start_at(test: &str, id: &str, subnet: Ipv4Addr, n: u32, systemd: bool) -> Option<Lab> {
        if let Some(why) = missing_prerequisite(true) {
            skip(test, &why);
            return None;
        }
        Lab::start_on(id, subnet, n, systemd)
    }

    fn start_on(id: &str, subnet: Ipv4Addr, n: u32, systemd: bool) -> Option<Lab> {
        // Not under /tmp: each host mounts its own /tmp over it.
        let base = tempfile::Builder::new()
            .prefix("hearth-dt-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let mut config =
            hearth::lab::config::LabConfig::new(id, subnet, base.path().join("fleet")).unwrap();
        config.run_dir = base.path().join("run");
        let lab = match hearth::lab::Lab::up_with(config.clone(), n, &[], systemd) {
            Ok(l) => l,
            Err(e) => {
                // Leave nothing behind (namespaces, links) before failing the test.
                let _ = hearth::lab::Lab::down(&config);
                panic!("lab up: {e:#}");
            }
        };
        let hosts = lab
            .hosts
            .iter()
            .map(|h| Host {
                name: h.name.clone(),
                addr: h.address.to_string(),
                dir: h.dir.clone(),
            })
            .collect::<Vec<_>>();
        let cfg = hosts
            .iter()
            .map(|h| (h.name.clone(), HostCfg::default()))
            .collect();
        std::fs::write(
            base.path().join("registry.json"),
            r#"{"flakes":[],"version":2}"#,
        )
        .unwrap();
        Some(Lab {
            base,
            lab,
            hosts,
            cfg,
        })
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts.iter().find(|h| h.name == name).unwrap()
    }

    /// The lab fleet (the inventory root hearth runs in).
    pub fn root(&self) -> &Path {
        self.lab.fleet_dir()
    }

    pub fn flake(&self) -> String {
        self.lab.flake_ref()
    }

    /// Change one host's settings and recompile the lab fleet.
    pub fn set(&mut self, host: &str, f: impl FnOnce(&mut HostCfg)) {
        let c = self.cfg.get_mut(host).unwrap();
        f(c);
        let c = c.clone();
        let settings = LabSettings {
            fault: serde_json::from_value::<LabFault>(Value::String(c.fault.clone()))
                .expect("a lab fault"),
            payload_mib: c.payload_mib,
            payload_paths: c.payload_paths.max(1),
            payload_port: 8080,
            revision: c.revision,
            systemd: None,
        };
        self.lab.set_lab_settings(host, &settings).unwrap();
        let path = self.root().join("hosts").join(format!("{host}.toml"));
        let mut doc: toml_edit::DocumentMut =
            std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let deploy = doc["deploy"]
            .as_table_mut()
            .expect("[deploy] in a lab host file");
        match c.confirm_timeout {
            Some(t) => deploy["confirm_timeout"] = toml_edit::value(i64::from(t)),
            None => {
                deploy.remove("confirm_timeout");
            }
        }
        std::fs::write(&path, doc.to_string()).unwrap();
        hearth::lab::regenerate(self.root()).unwrap();
    }

    /// Deploy a new revision of `host` whose activation fails; it must end rolled back.
    pub fn deploy_failing_activation(&mut self, host: &str) -> Run {
        let revision = self.cfg[host].revision + 1;
        self.set(host, |c| {
            c.fault = "activation-fails".into();
            c.revision = revision;
        });
        let r = self.hearth(&["deploy", host, "--json"]);
        assert_eq!(r.code, Some(1), "{}", r.debug());
        assert_eq!(r.results()[host], "rolled-back", "{}", r.debug());
        r
    }

    /// Log in to `host` as `user` (the host file's `[ssh] user`) and recompile.
    pub fn set_ssh_user(&self, host: &str, user: &str) {
        self.edit_host_file(host, |doc| doc["ssh"]["user"] = toml_edit::value(user));
    }

    /// Edit `hosts/<host>.toml` and recompile.
    pub fn edit_host_file(&self, host: &str, f: impl FnOnce(&mut toml_edit::DocumentMut)) {
        let path = self.root().join("hosts").join(format!("{host}.toml"));
        let mut doc: toml_edit::DocumentMut =
            std::fs::read_to_string(&path).unwrap().parse().unwrap();
        f(&mut doc);
        std::fs::write(&path, doc.to_string()).unwrap();
        hearth::lab::regenerate(self.root()).unwrap();
    }

    /// Run `cmd` on `host` as `user` over a new ssh connection; (exit code, stdout).
    pub fn ssh_as(&self, host: &str, user: &str, cmd: &str) -> (Option<i32>, String) {
        let out = self.fresh_ssh(&["-l", user], host, cmd).unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Can we log in over a NEW ssh connection (what a human would need)?
    pub fn reachable(&self, host: &str) -> bool {
        self.fresh_ssh(&[], host, "true")
            .is_ok_and(|o| o.status.success())
    }

    /// `ssh` to `host` over a new connection (never a master), as the lab's client config
    /// says, with `extra` options.
    fn fresh_ssh(&self, extra: &[&str], host: &str, cmd: &str) -> std::io::Result<Output> {
        Command::new("ssh")
            .arg("-F")
            .arg(self.lab.ssh_config_path())
            .args(["-o", "ControlMaster=no", "-o", "ControlPath=none"])
            .args(["-o", "ConnectTimeout=5"])
            .args(extra)
            .args([host, cmd])
            .stdin(Stdio::null())
            .output()
    }

    /// `hearth -C <fleet> <args>` against this lab.
    pub fn hearth_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hearth"));
        c.arg("-C").arg(self.root()).args(args);
        c.env("NIX_CONFIG", self.lab.nix_config())
            .env("HEARTH_FLAKE", self.flake())
            .env("HEARTH_SSH_IDENTITY", self.lab.identity_path());
        c
    }

    pub fn hearth(&self, args: &[&str]) -> Run {
        let start = Instant::now();
        let out = self.hearth_cmd(args).stdin(Stdio::null()).output().unwrap();
        Run::new(out, start.elapsed())
    }

    /// Wait until `f` holds or `secs` pass.
    pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        f()
    }

    /// The lab's ssh config: every host by name, strict host keys (for plain `nix copy`).
    pub fn ssh_config(&self) -> PathBuf {
        self.lab.ssh_config_path()
    }

    /// Build every host's toplevel now (so timings exclude the build); returns them.
    pub fn build_all(&self) -> Vec<String> {
        let attrs: Vec<String> = self
            .hosts
            .iter()
            .map(|h| {
                format!(
                    "{}#nixosConfigurations.{}.config.system.build.toplevel",
                    self.flake(),
                    h.name
                )
            })
            .collect();
        let out = Command::new("nix")
            .args(["build", "--json", "--no-link"])
            .args(&attrs)
            .env("NIX_CONFIG", self.lab.nix_config())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|o| o["outputs"]["out"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = hearth::lab::Lab::down(&self.lab.config);
        let _ = sh(&format!(
            "chmod -R u+w {} 2>/dev/null",
            self.base.path().display()
        ));
    }
}

/// A finished `hearth … --json` run.
pub struct Run {
    pub code: Option<i32>,
    pub events: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    fn new(out: Output, elapsed: Duration) -> Run {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let events = stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        Run {
            code: out.status.code(),
            events,
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed,
        }
    }

    pub fn summary(&self) -> &Value {
        self.events
            .iter()
            .rev()
            .find(|e| e["event"] == "summary")
            .unwrap_or_else(|| panic!("no summary event\n{}", self.debug()))
    }

    /// host → result string from the summary.
    pub fn results(&self) -> BTreeMap<String, String> {
        self.summary()["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["host"].as_str().unwrap().to_string(),
                    o["result"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    pub fn outcome(&self, host: &str) -> &Value {
        self.summary()["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["host"] == host)
            .unwrap()
    }

    pub fn debug(&self) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}
