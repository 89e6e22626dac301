//! Runtime side of the lab: namespaces, links, host trees, sshd. Everything goes
//! through `ip`, `unshare`, `ssh-keygen` and `sshd`, with stderr captured on failure.

use super::config::{self, LabConfig, HOST_IFACE, HOST_STATE_DIR};
use super::LabHost;
use crate::process;
use anyhow::{bail, Context, Result};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// Root and Linux, and the tools the lab runs.
pub fn preflight() -> Result<()> {
    if !cfg!(target_os = "linux") {
        bail!(
            "hearth lab needs Linux (network and mount namespaces); this is {}",
            std::env::consts::OS
        );
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("hearth lab needs root (it creates network namespaces, veths and a bridge): run it with sudo");
    }
    let tools = [
        ("ip", "iproute2"),
        ("unshare", "util-linux"),
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
        ("nix-store", "nix-bin (or any Nix install)"),
        ("perl", "perl-base"),
    ];
    let mut missing = Vec::new();
    for (tool, package) in tools {
        if which(tool).is_none() {
            missing.push(format!("{tool} (package {package})"));
        }
    }
    if !Path::new(SSHD).exists() {
        missing.push(format!("{SSHD} (package openssh-server)"));
    }
    if !missing.is_empty() {
        bail!("hearth lab is missing: {}", missing.join(", "));
    }
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

pub fn ip(args: &[&str]) -> Result<()> {
    process::run(Command::new("ip").args(args)).map(|_| ())
}

/// Delete a link; one that vanished meanwhile (a veth dies with its namespace) is fine.
fn del_link(name: &str) -> Result<()> {
    match ip(&["link", "del", name]) {
        Err(_) if !link_names()?.iter().any(|l| l == name) => Ok(()),
        other => other,
    }
}

fn ip_out(args: &[&str]) -> Result<String> {
    process::run_stdout(Command::new("ip").args(args))
}

pub fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let tmp = path.with_extension("hearth-tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

fn keygen(path: &Path, comment: &str) -> Result<()> {
    if path.exists() && path.with_extension("pub").exists() {
        return Ok(());
    }
    let _ = std::fs::remove_file(path);
    process::run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
    )?;
    Ok(())
}

/// The lab's client key pair and the offline flake registry.
pub fn ensure_client(c: &LabConfig) -> Result<()> {
    let dir = c.client_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    keygen(&c.identity_path(), &format!("hearth-lab-{}", c.id))?;
    write_if_changed(&c.flake_registry_path(), config::EMPTY_FLAKE_REGISTRY)?;
    // sshd's privilege-separation directory (shared by every host).
    std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")
}

/// Links by name → their IPv4 addresses, from `ip -o addr`.
fn addresses() -> Result<Vec<(String, String)>> {
    let out = ip_out(&["-o", "-4", "addr", "show"])?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let i = f.iter().position(|x| *x == "inet")?;
            Some((f.get(1)?.to_string(), f.get(i + 1)?.to_string()))
        })
        .collect())
}

fn link_names() -> Result<Vec<String>> {
    let out = ip_out(&["-o", "link", "show"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect())
}

pub fn ensure_bridge(c: &LabConfig) -> Result<()> {
    let bridge = c.bridge();
    let prefix = format!(
        "{}.",
        c.subnet.octets()[..3]
            .iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
            .join(".")
    );
    for (dev, addr) in addresses()? {
        if dev != bridge && addr.starts_with(&prefix) {
            bail!(
                "subnet {}/24 is already used by {dev} ({addr}); pick another with --base",
                c.subnet
            );
        }
    }
    if !link_names()?.contains(&bridge) {
        ip(&["link", "add", &bridge, "type", "bridge"])?;
    }
    ip(&[
        "addr",
        "replace",
        &format!("{}/24", c.bridge_address()),
        "dev",
        &bridge,
    ])?;
    ip(&["link", "set", &bridge, "up"])
}

/// This lab's namespaces: (host index, name).
pub fn lab_netns(c: &LabConfig) -> Result<Vec<(u32, String)>> {
    let prefix = c.netns_prefix();
    let out = ip_out(&["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|n| Some((n.strip_prefix(&prefix)?.parse().ok()?, n.to_string())))
        .collect())
}

/// The host's tree, keys and config files; returns its public host key.
pub fn ensure_host_tree(
    c: &LabConfig,
    name: &str,
    address: Ipv4Addr,
    client_pub: &str,
) -> Result<String> {
    let dir = c.host_dir(name);
    for sub in [
        "nix/store",
        "nix/var/nix/profiles",
        "nix/var/lab",
        "etc-nix",
        "tmp",
        "ssh",
        "run-systemd",
        "root",
        "home",
        "etc",
    ] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    std::fs::set_permissions(dir.join("root"), std::fs::Permissions::from_mode(0o700))?;
    let (passwd, group, id) = config::with_deploy_user(
        &std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?,
        &std::fs::read_to_string("/etc/group").context("reading /etc/group")?,
        &dir.join("home"),
    );
    write_if_changed(&dir.join("etc/passwd"), &passwd)?;
    write_if_changed(&dir.join("etc/group"), &group)?;
    write_if_changed(&dir.join("etc/shadow"), &config::shadow_text(&passwd))?;
    std::fs::set_permissions(
        dir.join("etc/shadow"),
        std::fs::Permissions::from_mode(0o600),
    )?;
    write_if_changed(&dir.join("etc/sudoers"), &config::sudoers_text())?;
    // sudo refuses a sudoers file that others can write or read.
    std::fs::set_permissions(
        dir.join("etc/sudoers"),
        std::fs::Permissions::from_mode(0o440),
    )?;
    std::os::unix::fs::chown(dir.join("home"), Some(id), Some(id))
        .with_context(|| format!("handing {} to the deploy user", dir.join("home").display()))?;
    let ssh = dir.join("ssh");
    let key = ssh.join("ssh_host_ed25519_key");
    keygen(&key, &format!("{name}@hearth-lab-{}", c.id))?;
    write_if_changed(&ssh.join("authorized_keys"), client_pub)?;
    write_if_changed(
        &ssh.join("sshd_config"),
        &config::sshd_config_text(address, &ssh),
    )?;
    write_if_changed(
        &dir.join("etc-nix/flake-registry.json"),
        config::EMPTY_FLAKE_REGISTRY,
    )?;
    write_if_changed(&dir.join("nix/var/lab/env"), &config::host_env_text(&dir))?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    // Drop the comment: the inventory records just "type key".
    Ok(public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" "))
}

/// Namespace, veth into it (as eth0), address, and the bridge side.
pub fn ensure_link(c: &LabConfig, index: u32) -> Result<()> {
    let ns = c.netns(index);
    let veth = c.veth(index);
    if !lab_netns(c)?.iter().any(|(_, n)| *n == ns) {
        ip(&["netns", "add", &ns])?;
    }
    if !link_names()?.contains(&veth) {
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", HOST_IFACE, "netns", &ns,
        ])?;
    }
    ip(&["link", "set", &veth, "master", &c.bridge(), "up"])?;
    ip(&[
        "-n",
        &ns,
        "addr",
        "replace",
        &format!("{}/24", c.host_address(index)),
        "dev",
        HOST_IFACE,
    ])?;
    ip(&["-n", &ns, "link", "set", "lo", "up"])?;
    ip(&["-n", &ns, "link", "set", HOST_IFACE, "up"])
}

/// Shell that bind-mounts the host's tree over `/nix`, `/etc/nix`, `/tmp`, `/root` and then
/// runs `then`.
pub fn mount_script(dir: &Path, then: &str) -> String {
    let q = |sub: &str| crate::lines::shell::quote(&dir.join(sub).display().to_string());
    // An empty /run/systemd: a lab host has no systemd, and a `systemctl` or
    // `systemd-run` there must fail instead of reaching the machine's own systemd.
    // Its own (empty) /root: sshd runs every command through root's shell, which would
    // otherwise read this machine's ~/.bashrc on each login, as no fresh host does.
    // Its own /etc/passwd, /etc/group, /etc/shadow and /etc/sudoers: a non-root deploy user
    // that exists only inside the host.
    format!(
        "mount --bind {} /nix && mount --bind {} /etc/nix && mount --bind {} /tmp && \
         mount --bind {} /root && mount --bind {} /etc/passwd && mount --bind {} /etc/group && \
         {{ [ ! -e /etc/shadow ] || mount --bind {} /etc/shadow; }} && \
         {{ [ ! -e /etc/sudoers ] || mount --bind {} /etc/sudoers; }} && \
         {{ [ ! -d /run/systemd ] || mount --bind {} /run/systemd; }} && {then}",
        q("nix"),
        q("etc-nix"),
        q("tmp"),
        q("root"),
        q("etc/passwd"),
        q("etc/group"),
        q("etc/shadow"),
        q("etc/sudoers"),
        q("run-systemd")
    )
}

/// `ip netns exec <ns> unshare -m --propagation private sh -c '<mounts> && <then>' host-<name> args…`
pub fn in_host(h: &LabHost, then: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        &h.netns,
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
    ])
    .arg(mount_script(&h.dir, then))
    .arg(format!("lab-{}", h.name))
    .args(args);
    c
}

pub fn init_store(c: &LabConfig, h: &LabHost) -> Result<()> {
    let _ = c;
    if h.dir.join("nix/var/nix/db/db.sqlite").exists() {
        return Ok(());
    }
    process::run(&mut in_host(h, "exec nix-store --init", &[]))
        .with_context(|| format!("initialising the Nix store of lab host {}", h.name))?;
    Ok(())
}

/// Stage 1 and 2 of a lab host that boots systemd: see the script's header.
const SYSTEMD_BOOT: &str = include_str!("systemd-boot.sh");

/// The machine's unit files a lab host's systemd gets (its whole unit directory, with the
/// lab's own): what PID 1, journald, `systemd-run` and `poweroff` need, nothing that
/// touches the machine (no tmpfiles, sysctl, binfmt, gettys, fstab mounts).
const SYSTEMD_UNITS: &[&str] = &[
    "sysinit.target",
    "basic.target",
    "shutdown.target",
    "poweroff.target",
    "reboot.target",
    "halt.target",
    "exit.target",
    "final.target",
    "umount.target",
    "sockets.target",
    "timers.target",
    "paths.target",
    "slices.target",
    "systemd-poweroff.service",
    "systemd-reboot.service",
    "systemd-halt.service",
    "systemd-exit.service",
    "systemd-journald.service",
    "systemd-journald.socket",
    "systemd-journald-dev-log.socket",
];

/// Where the machine keeps systemd and its units, if it has them.
pub fn systemd_available() -> bool {
    Path::new("/lib/systemd/systemd").exists()
        && SYSTEMD_UNITS
            .iter()
            .all(|u| Path::new("/lib/systemd/system").join(u).exists())
        && which("nsenter").is_some()
        && which("pivot_root").is_some()
}

/// The lab's default target: journald's sockets, sshd, the nix-daemon; a toplevel's
/// units join it through `hearth-lab.target.wants/`.
pub fn lab_target_text() -> String {
    "[Unit]\nDescription=hearth lab host\nRequires=basic.target\nAfter=basic.target\n\
     Wants=systemd-journald.socket systemd-journald-dev-log.socket lab-sshd.service lab-nix-daemon.service\n\
     AllowIsolate=yes\n"
        .to_string()
}

/// sshd before any toplevel is activated; toplevels carry the same unit (plus a revision).
/// `KillMode=process`: a restart ends the listener, not the open sessions.
pub fn sshd_unit_text() -> String {
    "[Unit]\nDescription=hearth lab sshd\n[Service]\n\
     ExecStart=/bin/sh -c \". /nix/var/lab/env && exec /usr/sbin/sshd -D -f $$SSHD_CONFIG\"\n\
     KillMode=process\nRestart=on-failure\n"
        .to_string()
}

pub fn nix_daemon_unit_text(nix_daemon: &Path) -> String {
    format!(
        "[Unit]\nDescription=hearth lab nix-daemon\n[Service]\nExecStart={}\nKillMode=process\n",
        nix_daemon.display()
    )
}

/// The host's systemd files: unit directory, /etc/systemd, journal, console, fstab.
pub fn ensure_systemd_tree(dir: &Path, name: &str) -> Result<()> {
    let sd = dir.join("systemd");
    for sub in ["units", "empty", "etc/system", "journal"] {
        std::fs::create_dir_all(sd.join(sub))
            .with_context(|| format!("creating {}", sd.join(sub).display()))?;
    }
    for u in SYSTEMD_UNITS {
        let text = std::fs::read_to_string(Path::new("/lib/systemd/system").join(u))
            .with_context(|| format!("reading the machine's unit {u}"))?;
        write_if_changed(&sd.join("units").join(u), &text)?;
    }
    write_if_changed(&sd.join("units/hearth-lab.target"), &lab_target_text())?;
    write_if_changed(&sd.join("units/lab-sshd.service"), &sshd_unit_text())?;
    let daemon = which("nix-daemon").context("nix-daemon is not installed (package nix-bin)")?;
    write_if_changed(
        &sd.join("units/lab-nix-daemon.service"),
        &nix_daemon_unit_text(&daemon),
    )?;
    let default = sd.join("etc/system/default.target");
    if std::fs::symlink_metadata(&default).is_err() {
        std::os::unix::fs::symlink("/usr/lib/systemd/system/hearth-lab.target", &default)?;
    }
    write_if_changed(&sd.join("console.log"), "")?;
    write_if_changed(&sd.join("boot.sh"), SYSTEMD_BOOT)?;
    write_if_changed(&dir.join("etc/fstab"), "")?;
    write_if_changed(&dir.join("etc/hostname"), &format!("{name}\n"))?;
    if !dir.join("etc/machine-id").exists() {
        let mut id = [0u8; 16];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut id))
            .context("reading /dev/urandom")?;
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        write_if_changed(&dir.join("etc/machine-id"), &format!("{hex}\n"))?;
    }
    Ok(())
}

/// The cgroup every process of a systemd host lives under (in each hierarchy).
pub fn cgroup_name(h: &LabHost) -> String {
    h.netns.clone()
}

/// Boot the host's systemd (detached); returns once it is PID 1 of its namespaces.
pub fn boot_systemd(h: &LabHost) -> Result<()> {
    let log = h.dir.join("systemd/boot.log");
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    process::run(
        Command::new("setsid")
            .arg("-f")
            .arg("nsenter")
            .arg(format!("--net=/run/netns/{}", h.netns))
            .args([
                "unshare",
                "--pid",
                "--fork",
                "--mount",
                "--uts",
                "--ipc",
                "--propagation",
                "private",
                "sh",
            ])
            .arg(h.dir.join("systemd/boot.sh"))
            .arg(&h.dir)
            .arg(&h.name)
            .arg(cgroup_name(h))
            .stdin(std::process::Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file),
    )
    .with_context(|| format!("booting systemd on lab host {}", h.name))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = systemd_pid(h) {
            let running = Command::new("nsenter")
                .args(ns_args(pid))
                .args(["systemctl", "is-system-running", "--wait"])
                .output();
            // `--wait` blocks until boot is done; before systemd execs, PID 1 is the boot
            // script and the answer is "offline".
            let state = running.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
            if state.is_ok_and(|s| s == "running" || s == "degraded") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "systemd on lab host {} did not come up; see {}",
                h.name,
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `-t <pid> -m -u -i -n -p`: every namespace of the host's PID 1.
fn ns_args(pid: i32) -> Vec<String> {
    ["-t", &pid.to_string(), "-m", "-u", "-i", "-n", "-p"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn netns_pids(ns: &str) -> Vec<i32> {
    ip_out(&["netns", "pids", ns])
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The machine's pid of the host's PID 1 (its systemd): the process in the host's network
/// namespace whose innermost pid is 1.
pub fn systemd_pid(h: &LabHost) -> Option<i32> {
    netns_pids(&h.netns).into_iter().find(|pid| {
        pid_alive(*pid)
            && std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("NSpid:").map(String::from))
                })
                .is_some_and(|l| is_ns_init(&l))
    })
}

/// Whether an `NSpid:` field names a process that is PID 1 of a nested namespace.
pub fn is_ns_init(nspid: &str) -> bool {
    let ids: Vec<&str> = nspid.split_whitespace().collect();
    ids.len() >= 2 && ids.last() == Some(&"1")
}

/// Remove the cgroups systemd hosts made (named `<prefix>…`), innermost first.
pub fn remove_cgroups(prefix: &str) -> Result<()> {
    for root in [
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ] {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) && e.path().is_dir() {
                rmdir_tree(&e.path())?;
            }
        }
    }
    Ok(())
}

fn rmdir_tree(dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir)?.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            rmdir_tree(&e.path())?;
        }
    }
    // A cgroup empties a moment after its last process is reaped.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(e).with_context(|| format!("removing cgroup {}", dir.display()))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A command for `then` (sh) inside the host: its systemd's namespaces on a systemd host,
/// else a fresh mount namespace with the host's binds.
pub fn console(h: &LabHost, then: &str, args: &[&str]) -> Command {
    match systemd_pid(h).filter(|_| h.systemd) {
        Some(pid) => {
            let mut c = Command::new("nsenter");
            c.args(ns_args(pid))
                .args(["sh", "-c", then])
                .arg(format!("lab-{}", h.name))
                .args(args);
            c
        }
        None => in_host(h, then, args),
    }
}

/// The host's listening sshd: on a systemd host, the unit's main process.
fn sshd_listening(h: &LabHost) -> bool {
    if !h.systemd {
        return sshd_pid(h).is_some();
    }
    netns_pids(&h.netns).into_iter().any(|pid| {
        pid_alive(pid)
            && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| is_sshd_listener(&c))
    })
}

/// Whether a `/proc/<pid>/cmdline` is a listening sshd (OpenSSH retitles it
/// `sshd: /usr/sbin/sshd -D … [listener] …`; sessions are `sshd: root@notty` and the like).
pub fn is_sshd_listener(cmdline: &[u8]) -> bool {
    let c = String::from_utf8_lossy(cmdline);
    c.starts_with("/usr/sbin/sshd\0-D")
        || (c.starts_with("sshd: /usr/sbin/sshd") && c.contains("[listener]"))
}

/// Power-cycle a host: every process dies, then it boots from its boot entry.
pub fn reboot(c: &LabConfig, h: &LabHost) -> Result<()> {
    kill_netns_processes(&h.netns)?;
    if h.systemd {
        remove_cgroups(&cgroup_name(h))?;
        boot_systemd(h)?;
    } else {
        // No systemd: stage 2 is ours to do; the boot entry becomes the running system.
        let state = h.dir.join(HOST_STATE_DIR.trim_start_matches('/'));
        if let Ok(boot) = std::fs::read_link(state.join("boot-system")) {
            let _ = std::fs::remove_file(state.join("current-system"));
            std::os::unix::fs::symlink(boot, state.join("current-system"))?;
        }
        ip(&["-n", &h.netns, "link", "set", HOST_IFACE, "up"])?;
        start_sshd(c, h)?;
        if state.join("boot-system").exists() {
            // What systemd would start at boot: the boot entry's services.
            process::run(&mut in_host(
                h,
                "exec /nix/var/lab/boot-system/bin/switch-to-configuration test",
                &[],
            ))
            .with_context(|| format!("starting the boot entry's services on {}", h.name))?;
        }
    }
    wait_for_port(h.address, 22, Duration::from_secs(20))
}

/// Running, not merely a zombie waiting for its parent (init may reap late).
fn pid_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    process_state(&stat).is_some_and(|s| s != 'Z' && s != 'X')
}

/// The state letter of a `/proc/<pid>/stat` line (after the parenthesised command).
pub fn process_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn pidfile_pid(path: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    if !pid_alive(pid) {
        return None;
    }
    // A recycled pid must not pass for sshd.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "sshd").then_some(pid)
}

pub fn sshd_pid(h: &LabHost) -> Option<i32> {
    pidfile_pid(&h.dir.join("ssh/sshd.pid"))
}

/// Start the host's sshd, and with it (when not running) its nix-daemon: what a non-root
/// login's `nix-daemon --stdio` (the far end of `nix copy`) talks to.
pub fn start_sshd(_c: &LabConfig, h: &LabHost) -> Result<()> {
    if h.systemd {
        process::run(&mut console(
            h,
            "exec systemctl start lab-sshd.service",
            &[],
        ))
        .with_context(|| format!("starting sshd on lab host {}", h.name))?;
        return Ok(());
    }
    let ssh = h.dir.join("ssh");
    let q = |p: PathBuf| crate::lines::shell::quote(&p.display().to_string());
    let daemon = if nix_daemon_running(h) {
        String::new()
    } else {
        format!(
            "setsid -f nix-daemon </dev/null >>{} 2>&1; ",
            q(h.dir.join("nix-daemon.log"))
        )
    };
    let then = format!(
        "{daemon}exec {SSHD} -f {} -E {}",
        q(ssh.join("sshd_config")),
        q(ssh.join("sshd.log"))
    );
    process::run(&mut in_host(h, &then, &[]))
        .with_context(|| format!("starting sshd on lab host {}", h.name))?;
    Ok(())
}

/// Whether a nix-daemon runs inside this host's network namespace.
fn nix_daemon_running(h: &LabHost) -> bool {
    let Ok(out) = Command::new("ip")
        .args(["netns", "pids", &h.netns])
        .output()
    else {
        return false;
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .any(|pid| {
            pid_alive(pid)
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "nix-daemon")
        })
}

pub fn kill_sshd(h: &LabHost) -> Result<()> {
    if h.systemd {
        // KillMode=process: the listener goes, open sessions stay.
        process::run(&mut console(h, "exec systemctl stop lab-sshd.service", &[]))
            .with_context(|| format!("stopping sshd on lab host {}", h.name))?;
        return Ok(());
    }
    let Some(pid) = sshd_pid(h) else {
        return Ok(());
    };
    // SAFETY: plain kill(2) on a pid we just checked is this host's sshd.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_alive(pid) {
        if Instant::now() > deadline {
            bail!("sshd of lab host {} (pid {pid}) did not exit", h.name);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

pub fn wait_for_port(addr: Ipv4Addr, port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let sa = SocketAddr::from((addr, port));
    loop {
        if TcpStream::connect_timeout(&sa, Duration::from_millis(300)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing listens on {sa} after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until the host answers on `port`, even if only to refuse the connection.
pub fn wait_reachable(addr: Ipv4Addr, port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let sa = SocketAddr::from((addr, port));
    loop {
        match TcpStream::connect_timeout(&sa, Duration::from_millis(300)) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(()),
            Err(_) if Instant::now() > deadline => bail!("{addr} is unreachable after {timeout:?}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn kill_netns_processes(ns: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids: Vec<i32> = ip_out(&["netns", "pids", ns])?
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("processes {pids:?} in namespace {ns} survive SIGKILL");
        }
        for pid in pids {
            // SAFETY: kill(2) on pids the kernel lists in the lab's own namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn remove_host(c: &LabConfig, index: u32, ns: &str) -> Result<()> {
    kill_netns_processes(ns)?;
    ip(&["netns", "del", ns])?;
    let veth = c.veth(index);
    if link_names()?.contains(&veth) {
        del_link(&veth)?;
    }
    let dir = c.host_dir(&LabConfig::host_name(index));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    // Last: a cgroup stays busy until its killed processes are reaped.
    remove_cgroups(ns)
}

/// Everything of lab `c.id`, found by name (so it works without `lab.json` too).
pub fn teardown(c: &LabConfig) -> Result<()> {
    for (_, ns) in lab_netns(c)? {
        kill_netns_processes(&ns)?;
        ip(&["netns", "del", &ns])?;
    }
    let veth_prefix = c.veth_prefix();
    for link in link_names()? {
        if link.starts_with(&veth_prefix) {
            del_link(&link)?;
        }
    }
    if link_names()?.contains(&c.bridge()) {
        del_link(&c.bridge())?;
    }
    if c.run_dir.exists() {
        std::fs::remove_dir_all(&c.run_dir)
            .with_context(|| format!("removing {}", c.run_dir.display()))?;
    }
    // Last: a cgroup stays busy until its killed processes are reaped.
    remove_cgroups(&c.netns_prefix())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Up,
    /// The host took its own interface down.
    Down,
    /// The bridge side is down (cable cut from outside).
    Cut,
}

impl std::fmt::Display for LinkState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkState::Up => "up",
            LinkState::Down => "down",
            LinkState::Cut => "cut",
        })
    }
}

/// A host's state as a console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    /// `(number, store path)` of each `/nix/var/nix/profiles/system-N-link`, oldest first.
    pub generations: Vec<(u32, String)>,
    /// What `/nix/var/nix/profiles/system` points at now.
    pub profile_generation: Option<u32>,
    /// The toplevel last activated with `switch`/`test`.
    pub current_system: Option<String>,
    /// The toplevel last installed with `switch`/`boot`.
    pub boot_system: Option<String>,
    pub activation_log: Vec<String>,
    pub sshd_running: bool,
    pub link: LinkState,
}

impl std::fmt::Display for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "link: {}", self.link)?;
        writeln!(
            f,
            "sshd: {}",
            if self.sshd_running {
                "running"
            } else {
                "not running"
            }
        )?;
        writeln!(
            f,
            "current system: {}",
            self.current_system.as_deref().unwrap_or("-")
        )?;
        writeln!(
            f,
            "boot system: {}",
            self.boot_system.as_deref().unwrap_or("-")
        )?;
        writeln!(f, "generations:")?;
        for (n, path) in &self.generations {
            let mark = if Some(*n) == self.profile_generation {
                "  (current)"
            } else {
                ""
            };
            writeln!(f, "  {n:>3}  {path}{mark}")?;
        }
        writeln!(f, "activation log:")?;
        for l in &self.activation_log {
            writeln!(f, "  {l}")?;
        }
        Ok(())
    }
}

fn link_target(path: &Path) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .map(|p| p.display().to_string())
}

/// `system-12-link` → 12.
pub fn generation_number(file_name: &str) -> Option<u32> {
    file_name
        .strip_prefix("system-")?
        .strip_suffix("-link")?
        .parse()
        .ok()
}

pub fn read_state(h: &LabHost) -> Result<HostState> {
    let profiles = h.dir.join("nix/var/nix/profiles");
    let mut generations = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&profiles) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let (Some(n), Some(target)) = (generation_number(&name), link_target(&e.path())) {
                generations.push((n, target));
            }
        }
    }
    generations.sort();
    let profile_generation =
        link_target(&profiles.join("system")).and_then(|t| generation_number(&t));
    // The host's /nix is its tree's nix/.
    let state = h.dir.join(HOST_STATE_DIR.trim_start_matches('/'));
    let activation_log = std::fs::read_to_string(state.join("activation.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    let outer = ip_out(&["-o", "link", "show", &h.veth]).unwrap_or_default();
    let inner = ip_out(&["-n", &h.netns, "-o", "link", "show", HOST_IFACE]).unwrap_or_default();
    let link = if !is_admin_up(&inner) {
        LinkState::Down
    } else if !is_admin_up(&outer) {
        LinkState::Cut
    } else {
        LinkState::Up
    };
    Ok(HostState {
        generations,
        profile_generation,
        current_system: link_target(&state.join("current-system")),
        boot_system: link_target(&state.join("boot-system")),
        activation_log,
        sshd_running: sshd_listening(h),
        link,
    })
}

/// Whether `ip -o link show` output has the UP flag in `<…>`.
pub fn is_admin_up(line: &str) -> bool {
    line.split('<')
        .nth(1)
        .and_then(|s| s.split('>').next())
        .is_some_and(|flags| flags.split(',').any(|f| f == "UP"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_init_is_pid_1_of_a_nested_namespace() {
        assert!(is_ns_init("\t5916\t1"));
        assert!(!is_ns_init("\t1"));
        assert!(!is_ns_init("\t5914"));
        assert!(!is_ns_init("\t5917\t12"));
    }

    #[test]
    fn sshd_listener_cmdlines() {
        assert!(is_sshd_listener(
            b"sshd: /usr/sbin/sshd -D -f /r/h1/ssh/sshd_config [listener] 0 of 64-128 startups\0"
        ));
        assert!(is_sshd_listener(b"/usr/sbin/sshd\0-D\0-f\0/r/c\0"));
        assert!(!is_sshd_listener(b"sshd: root@notty\0"));
        assert!(!is_sshd_listener(b"sshd: root [priv]\0"));
    }

    #[test]
    fn unit_texts() {
        assert_eq!(
            sshd_unit_text(),
            "[Unit]\nDescription=hearth lab sshd\n[Service]\n\
             ExecStart=/bin/sh -c \". /nix/var/lab/env && exec /usr/sbin/sshd -D -f $$SSHD_CONFIG\"\n\
             KillMode=process\nRestart=on-failure\n"
        );
        assert_eq!(
            nix_daemon_unit_text(Path::new("/usr/bin/nix-daemon")),
            "[Unit]\nDescription=hearth lab nix-daemon\n[Service]\nExecStart=/usr/bin/nix-daemon\nKillMode=process\n"
        );
        assert!(lab_target_text().contains(
            "Wants=systemd-journald.socket systemd-journald-dev-log.socket lab-sshd.service lab-nix-daemon.service\n"
        ));
    }

    #[test]
    fn generation_numbers() {
        assert_eq!(generation_number("system-12-link"), Some(12));
        assert_eq!(generation_number("system"), None);
        assert_eq!(generation_number("per-user"), None);
    }

    #[test]
    fn process_states() {
        assert_eq!(process_state("123 (sshd) S 1 2 3"), Some('S'));
        assert_eq!(process_state("9 (a) b) Z 1"), Some('Z'));
        assert_eq!(process_state(""), None);
    }

    #[test]
    fn link_flags() {
        assert!(is_admin_up(
            "5: eth0@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500"
        ));
        assert!(!is_admin_up(
            "5: eth0@if6: <BROADCAST,MULTICAST> mtu 1500 state DOWN"
        ));
        assert!(!is_admin_up(""));
    }

    #[test]
    fn mount_script_binds_the_hosts_tree() {
        let s = mount_script(Path::new("/l/h1"), "exec sshd");
        assert!(s.starts_with(
            "mount --bind /l/h1/nix /nix && mount --bind /l/h1/etc-nix /etc/nix && mount --bind /l/h1/tmp /tmp && \
             mount --bind /l/h1/root /root && mount --bind /l/h1/etc/passwd /etc/passwd && \
             mount --bind /l/h1/etc/group /etc/group && \
             { [ ! -e /etc/shadow ] || mount --bind /l/h1/etc/shadow /etc/shadow; } && \
             { [ ! -e /etc/sudoers ] || mount --bind /l/h1/etc/sudoers /etc/sudoers; } && "
        ), "{s}");
        assert!(
            s.contains("mount --bind /l/h1/run-systemd /run/systemd;"),
            "{s}"
        );
        assert!(s.ends_with(" && exec sshd"), "{s}");
    }
}
