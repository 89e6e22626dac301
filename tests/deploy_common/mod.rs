//! Test hosts for the deploy tests: each host is a network namespace (veth to the root
//! namespace) plus a private mount namespace with its own /nix, /etc/nix and /tmp, and an
//! sshd living in both. The fixture flake builds lab toplevels from raw derivations
//! whose switch-to-configuration can misbehave on purpose.
//!
//! Needs root, nix, sshd, ip, unshare; otherwise `Lab::start` returns None after printing
//! a `SKIPPED:` line.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn sh(cmd: &str) -> Output {
    Command::new("sh").args(["-c", cmd]).output().expect("sh")
}

fn must(cmd: &str) -> String {
    let o = sh(cmd);
    assert!(
        o.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Why these tests cannot run here, if they cannot.
pub fn missing_prerequisite(need_hosts: bool) -> Option<String> {
    if sh("command -v nix").stdout.is_empty() {
        return Some("nix is not installed".into());
    }
    if need_hosts {
        if unsafe { libc::geteuid() } != 0 {
            return Some("test hosts need root (network and mount namespaces)".into());
        }
        for tool in [
            "/usr/sbin/sshd",
            "ip",
            "unshare",
            "ssh",
            "ssh-keygen",
            "setsid",
        ] {
            if !sh(&format!("command -v {tool}")).status.success() {
                return Some(format!("`{tool}` is not installed"));
            }
        }
        if !sh("ip netns add hearth-probe-$$ && ip netns del hearth-probe-$$")
            .status
            .success()
        {
            return Some("cannot create network namespaces here".into());
        }
    }
    None
}

pub fn skip(test: &str, why: &str) {
    println!("SKIPPED: {test}: {why}");
}

/// Per-host fixture settings (what `lab.json` tells the flake).
#[derive(Debug, Clone, Default)]
pub struct HostCfg {
    pub fault: String,
    pub revision: u32,
    pub payload_mib: u32,
    pub payload_paths: u32,
    pub tcp_checks: Vec<u16>,
    pub tags: Vec<String>,
    /// `[deploy] confirm_timeout` of this host (the fleet default is 10 s).
    pub confirm_timeout: Option<u32>,
}

pub struct Host {
    pub name: String,
    pub ns: String,
    pub addr: String,
    pub dir: PathBuf,
}

impl Host {
    /// Path of the host's private /nix as seen from the root namespace.
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
    /// Does the host's own store hold this path (registered, not just present)?
    pub fn has_path(&self, path: &str) -> bool {
        let rel = path.trim_start_matches('/').trim_start_matches("nix/");
        self.nix().join(rel).exists()
    }
    /// Run a command on the host's console (inside its namespaces, without SSH).
    pub fn console(&self, cmd: &str) -> Output {
        let pid = std::fs::read_to_string(self.nix().join("var/lab/sshd.pid")).unwrap_or_default();
        sh(&format!(
            "nsenter -t {} -m -n sh -c {}",
            pid.trim(),
            shell_quote(cmd)
        ))
    }
}

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

pub struct Lab {
    pub base: tempfile::TempDir,
    pub hosts: Vec<Host>,
    pub cfg: BTreeMap<String, HostCfg>,
    subnet: String,
    tag: String,
}

const FLAKE: &str = r#"{
  outputs = { self }: let
    lab = builtins.fromJSON (builtins.readFile ./lab.json);
    system = "x86_64-linux";
    mkPayload = name: h: builtins.genList (i: derivation {
      name = "payload-${name}-${toString i}";
      inherit system;
      builder = "/bin/sh";
      args = [ "-c" "PATH=/usr/bin:/bin; head -c ${toString (h.payloadMib * 1048576 / h.payloadPaths)} /dev/urandom > $out # ${h.nonce}" ];
    }) (if h.payloadMib > 0 then h.payloadPaths else 0);
    faultCmd = f: {
      none = "";
      activation-fails = "echo 'activation failed on purpose' >&2; exit 1";
      link-down = "ip link set eth0 down";
      kill-sshd = "kill $(cat /nix/var/lab/sshd.pid)";
      slow = "sleep 3";
      activation-hangs = "sleep 100000";
    }.${f};
    mk = name: h: derivation {
      name = "lab-${name}-system";
      inherit system;
      builder = "/bin/sh";
      payload = mkPayload name h;
      buildFails = if h.fault == "build-fails" then "1" else "";
      args = [ "-c" ''
        PATH=/usr/bin:/bin
        if [ -n "$buildFails" ]; then echo "compiling ${name}"; echo "error: this configuration is broken on purpose" >&2; exit 2; fi
        mkdir -p $out/bin
        echo "${name}-r${toString h.revision}" > $out/nixos-version
        echo "$payload" > $out/payload
        cat > $out/bin/switch-to-configuration <<'EOF'
        #!/bin/sh
        mode=''${1:-switch}
        echo "$(date +%s) $mode $(cat $(dirname $0)/../nixos-version)" >> /nix/var/lab/activations
        [ "$mode" = dry-activate ] && exit 0
        ip link set eth0 up 2>/dev/null
        if ! kill -0 "$(cat /nix/var/lab/sshd.pid 2>/dev/null)" 2>/dev/null; then /usr/sbin/sshd -f /nix/var/lab/sshd_config; fi
        ${if h.fault == "build-fails" then "" else faultCmd h.fault}
        exit 0
        EOF
        sed -i 's/^ *//' $out/bin/switch-to-configuration
        chmod +x $out/bin/switch-to-configuration
      '' ];
    };
  in {
    nixosConfigurations = builtins.mapAttrs (name: h: { config.system.build.toplevel = mk name h; }) lab.hosts;
  };
}
"#;

pub fn nix_config(base: &Path) -> String {
    format!(
        "experimental-features = nix-command flakes\nsandbox = false\nsubstituters =\nflake-registry = {}/registry.json\nwarn-dirty = false\n",
        base.display()
    )
}

impl Lab {
    /// Start `n` hosts named h1..hn. None (after a SKIPPED line) when this machine can't.
    pub fn start(test: &str, n: usize) -> Option<Lab> {
        if let Some(why) = missing_prerequisite(true) {
            skip(test, &why);
            return None;
        }
        let base = tempfile::Builder::new()
            .prefix("hearth-dt-")
            .tempdir()
            .unwrap();
        let seq = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{:x}", (std::process::id() * 7 + seq) % 0xfff);
        // A /24 of 10.213.x.0 nobody uses yet.
        let mut k = (std::process::id() * 13 + seq * 17) % 250 + 1;
        let used = must("ip -o addr");
        while used.contains(&format!("10.213.{k}.")) {
            k = k % 250 + 1;
        }
        let subnet = format!("10.213.{k}");
        std::fs::write(
            base.path().join("registry.json"),
            r#"{"flakes":[],"version":2}"#,
        )
        .unwrap();
        must(&format!(
            "ssh-keygen -q -t ed25519 -N '' -f {}/id",
            base.path().display()
        ));
        must("mkdir -p /run/sshd");
        let mut lab = Lab {
            base,
            hosts: Vec::new(),
            cfg: BTreeMap::new(),
            subnet,
            tag,
        };
        for i in 1..=n {
            lab.add_host(i);
        }
        lab.write_inventory();
        Some(lab)
    }

    fn add_host(&mut self, i: usize) {
        let name = format!("h{i}");
        let ns = format!("hdt{}-{i}", self.tag);
        let veth = format!("hd{}{i}", self.tag);
        let dir = self.base.path().join(&name);
        let root_ip = format!("{}.{}", self.subnet, 4 * i + 1);
        let addr = format!("{}.{}", self.subnet, 4 * i + 2);
        let labdir = dir.join("nix/var/lab");
        std::fs::create_dir_all(&labdir).unwrap();
        std::fs::create_dir_all(dir.join("etc-nix")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::write(
            dir.join("etc-nix/nix.conf"),
            "sandbox = false\nsubstituters =\n",
        )
        .unwrap();
        must(&format!(
            "ssh-keygen -q -t ed25519 -N '' -f {}/ssh_host_ed25519_key",
            labdir.display()
        ));
        std::fs::copy(
            self.base.path().join("id.pub"),
            labdir.join("authorized_keys"),
        )
        .unwrap();
        std::fs::write(
            labdir.join("sshd_config"),
            format!(
                "ListenAddress {addr}:22\nHostKey /nix/var/lab/ssh_host_ed25519_key\nPidFile /nix/var/lab/sshd.pid\n\
                 AuthorizedKeysFile /nix/var/lab/authorized_keys\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nUseDNS no\n\
                 MaxStartups 64:30:128\nMaxSessions 64\n"
            ),
        )
        .unwrap();
        must(&format!(
            "ip netns add {ns} && ip link add {veth} type veth peer name {veth}p && \
             ip link set {veth}p netns {ns} && ip netns exec {ns} ip link set {veth}p name eth0 && \
             ip addr add {root_ip}/30 dev {veth} && ip link set {veth} up && \
             ip netns exec {ns} ip addr add {addr}/30 dev eth0 && ip netns exec {ns} ip link set eth0 up && \
             ip netns exec {ns} ip link set lo up"
        ));
        let d = dir.display();
        must(&format!(
            "ip netns exec {ns} unshare -m --propagation private sh -c \
             'mount --bind {d}/nix /nix && mount --bind {d}/etc-nix /etc/nix && mount --bind {d}/tmp /tmp && exec /usr/sbin/sshd -f /nix/var/lab/sshd_config'"
        ));
        self.cfg.insert(
            name.clone(),
            HostCfg {
                payload_paths: 1,
                ..Default::default()
            },
        );
        self.hosts.push(Host {
            name,
            ns,
            addr,
            dir,
        });
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts.iter().find(|h| h.name == name).unwrap()
    }

    pub fn root(&self) -> &Path {
        self.base.path()
    }

    pub fn flake(&self) -> String {
        format!("path:{}/flake", self.base.path().display())
    }

    /// (Re)write hearth.toml, hosts/*.toml and the fixture flake from `self.cfg`.
    pub fn write_inventory(&self) {
        let root = self.base.path();
        std::fs::create_dir_all(root.join("hosts")).unwrap();
        std::fs::create_dir_all(root.join("flake")).unwrap();
        std::fs::write(root.join("hearth.toml"), "domain = \"lab.test\"\n[deploy]\nconfirm_timeout = 10\nhealth_timeout = 3\nsubstitute_on_destination = false\n").unwrap();
        let mut hosts_json = serde_json::Map::new();
        for h in &self.hosts {
            let c = &self.cfg[&h.name];
            let key =
                std::fs::read_to_string(h.nix().join("var/lab/ssh_host_ed25519_key.pub")).unwrap();
            let tags: Vec<String> = c.tags.iter().map(|t| format!("\"{t}\"")).collect();
            let tcp: Vec<String> = c.tcp_checks.iter().map(|p| p.to_string()).collect();
            std::fs::write(
                root.join(format!("hosts/{}.toml", h.name)),
                format!(
                    "system = \"x86_64-linux\"\nhardware = \"lab\"\nhost_key = \"{}\"\ntags = [{}]\n\
                     [ssh]\naddress = \"{}\"\n[deploy]\n{}[deploy.health]\ntcp = [{}]\n",
                    key.trim(),
                    tags.join(", "),
                    h.addr,
                    c.confirm_timeout.map(|t| format!("confirm_timeout = {t}\n")).unwrap_or_default(),
                    tcp.join(", ")
                ),
            )
            .unwrap();
            hosts_json.insert(
                h.name.clone(),
                serde_json::json!({
                    "fault": if c.fault.is_empty() { "none" } else { &c.fault },
                    "revision": c.revision,
                    "payloadMib": c.payload_mib,
                    "payloadPaths": c.payload_paths.max(1),
                    "nonce": format!("{}-{}", self.tag, c.revision),
                }),
            );
        }
        std::fs::write(root.join("flake/flake.nix"), FLAKE).unwrap();
        std::fs::write(
            root.join("flake/lab.json"),
            serde_json::to_string_pretty(&serde_json::json!({ "hosts": hosts_json })).unwrap(),
        )
        .unwrap();
    }

    pub fn set(&mut self, host: &str, f: impl FnOnce(&mut HostCfg)) {
        f(self.cfg.get_mut(host).unwrap());
        self.write_inventory();
    }

    /// `hearth <args>` against this lab, with `--json` output parsed.
    pub fn hearth_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hearth"));
        c.arg("-C").arg(self.root()).args(args);
        c.env("NIX_CONFIG", nix_config(self.root()))
            .env("HEARTH_FLAKE", self.flake())
            .env("HEARTH_SSH_IDENTITY", self.root().join("id"));
        c
    }

    pub fn hearth(&self, args: &[&str]) -> Run {
        let start = Instant::now();
        let out = self.hearth_cmd(args).stdin(Stdio::null()).output().unwrap();
        Run::new(out, start.elapsed())
    }

    /// Can we log in over a NEW ssh connection (what a human would need)?
    pub fn reachable(&self, host: &str) -> bool {
        let h = self.host(host);
        let kh = self.root().join("kh-test");
        let key =
            std::fs::read_to_string(h.nix().join("var/lab/ssh_host_ed25519_key.pub")).unwrap();
        std::fs::write(&kh, format!("{} {}\n", h.addr, key.trim())).unwrap();
        sh(&format!(
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -o ConnectTimeout=3 \
             -o ControlMaster=no -o ControlPath=none -i {}/id root@{} true",
            kh.display(),
            self.root().display(),
            h.addr
        ))
        .status
        .success()
    }

    /// Wait until `f` holds or `secs` pass.
    pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        f()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in &self.hosts {
            let _ = sh(&format!(
                "for p in $(ip netns pids {ns} 2>/dev/null); do kill -9 $p; done; ip netns del {ns} 2>/dev/null",
                ns = h.ns
            ));
        }
        // Store paths are read-only; make the tree removable.
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
            .unwrap_or_else(|| {
                panic!(
                    "no summary event\nstdout:\n{}\nstderr:\n{}",
                    self.stdout, self.stderr
                )
            })
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

impl Lab {
    /// An ssh config reaching every host by name (strict host keys), for plain `nix copy`.
    pub fn ssh_config(&self) -> PathBuf {
        let root = self.root();
        let mut kh = String::new();
        let mut cfg = String::new();
        for h in &self.hosts {
            let key =
                std::fs::read_to_string(h.nix().join("var/lab/ssh_host_ed25519_key.pub")).unwrap();
            kh.push_str(&format!("{} {}\n", h.name, key.trim()));
            cfg.push_str(&format!(
                "Host {}\n  HostName {}\n  HostKeyAlias {}\n",
                h.name, h.addr, h.name
            ));
        }
        cfg.push_str(&format!(
            "Host *\n  User root\n  IdentityFile {}/id\n  UserKnownHostsFile {}/bench_known_hosts\n  \
             StrictHostKeyChecking yes\n  BatchMode yes\n",
            root.display(),
            root.display()
        ));
        std::fs::write(root.join("bench_known_hosts"), kh).unwrap();
        std::fs::write(root.join("bench_ssh_config"), cfg).unwrap();
        root.join("bench_ssh_config")
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
            .env("NIX_CONFIG", nix_config(self.root()))
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
