//! The lab against real namespaces, sshd and Nix. Needs root; otherwise prints
//! `SKIPPED:`. Each test uses its own lab id and subnet, so they may run in parallel
//! with each other and with other test binaries that pick different ones.

mod lab_support;
use hearth::inventory::model::{LabFault, LabSettings};
use hearth::lab::{Lab, LabConfig, LinkState};
use lab_support::DownOnDrop;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn step(name: &str, started: Instant) {
    println!("[{:>6.2}s] {name}", started.elapsed().as_secs_f64());
}

fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("spawn")
}

fn ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{:?} failed: {}\n{}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn nix(lab: &Lab) -> Command {
    let mut c = Command::new("nix");
    c.env("NIX_CONFIG", lab.nix_config())
        .env("NIX_SSHOPTS", lab.nix_sshopts());
    c
}

/// A fresh ssh login (no multiplexing) works.
fn ssh_works(lab: &Lab, host: &str) -> bool {
    output(&mut lab.ssh_command(host, "true").unwrap())
        .status
        .success()
}

/// A fresh ssh login fails (short connect timeout: the host is expected to be unreachable).
fn ssh_fails(lab: &Lab, host: &str) -> bool {
    let mut c = lab
        .ssh_command_with(host, &["-o", "ConnectTimeout=2"], "true")
        .unwrap();
    !output(&mut c).status.success()
}

fn tcp_open(addr: Ipv4Addr, port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((addr, port)), Duration::from_millis(1000)).is_ok()
}

fn http_get(addr: Ipv4Addr, port: u16) -> String {
    let mut s = TcpStream::connect_timeout(&SocketAddr::from((addr, port)), Duration::from_secs(2))
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

fn build_toplevels(lab: &Lab, hosts: &[&str]) -> Vec<String> {
    let mut c = nix(lab);
    c.args(["build", "--no-link", "--json"]);
    for h in hosts {
        c.arg(format!(
            "{}#nixosConfigurations.{h}.config.system.build.toplevel",
            lab.flake_ref()
        ));
    }
    let json: serde_json::Value = serde_json::from_str(&ok(&mut c)).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|r| r["outputs"]["out"].as_str().unwrap().to_string())
        .collect()
}

fn copy_to(lab: &Lab, host: &str, path: &str) {
    let addr = lab.address(host).unwrap();
    ok(nix(lab).args([
        "copy",
        "--no-check-sigs",
        "--to",
        &format!("ssh://root@{addr}"),
        path,
    ]));
}

fn activate_cmd(top: &str) -> String {
    format!("nix-env -p /nix/var/nix/profiles/system --set {top} && {top}/bin/switch-to-configuration switch")
}

fn lab_settings(fault: LabFault) -> LabSettings {
    LabSettings {
        fault,
        payload_mib: 0,
        payload_paths: 1,
        payload_port: 8080,
        revision: 0,
        systemd: None,
    }
}

fn netns_list() -> String {
    ok(Command::new("ip").args(["netns", "list"]))
}
fn link_list() -> String {
    ok(Command::new("ip").args(["-o", "link", "show"]))
}

fn is_live(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Field 3 (after the parenthesised command) is the state; Z = zombie, already dead.
    stat.rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .is_some_and(|s| s != "Z")
}

/// Everything `down` must remove, checked against the whole machine.
fn assert_nothing_left(cfg: &LabConfig, pids: &[i32]) {
    let ns = netns_list();
    assert!(!ns.contains(&cfg.netns_prefix()), "namespaces left: {ns}");
    let links = link_list();
    assert!(!links.contains(&cfg.veth_prefix()), "veths left: {links}");
    assert!(
        !links.contains(&format!(": {}:", cfg.bridge())),
        "bridge left: {links}"
    );
    for pid in pids {
        // A killed process may linger as a zombie until its parent reaps it.
        let deadline = Instant::now() + Duration::from_secs(3);
        while is_live(*pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!is_live(*pid), "process {pid} of the lab survived");
    }
    let run_dir = cfg.run_dir.display().to_string();
    assert!(!cfg.run_dir.exists(), "{run_dir} left");
    let mut seen_mount_ns = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(&run_dir),
            "process {pid} still runs from the lab"
        );
        // Mount tables are per namespace: read each one once.
        let Ok(mnt_ns) = std::fs::read_link(format!("/proc/{pid}/ns/mnt")) else {
            continue;
        };
        if !seen_mount_ns.insert(mnt_ns) {
            continue;
        }
        let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
        assert!(
            !mounts.contains(&run_dir),
            "process {pid} still sees a lab mount"
        );
        assert!(
            !mounts.contains(&cfg.netns_prefix()),
            "process {pid} still sees a lab netns mount"
        );
    }
}

#[test]
fn lab_of_eight_hosts_with_faults_builder_and_clean_teardown() {
    if let Some(reason) = lab_support::missing_prerequisite() {
        println!("SKIPPED: {reason}");
        return;
    }
    let t0 = Instant::now();
    let fleet = tempfile::tempdir().unwrap();
    let cfg = LabConfig::new(
        "t8",
        "10.77.208.0".parse().unwrap(),
        fleet.path().join("lab"),
    )
    .unwrap();
    Lab::down(&cfg).unwrap(); // leftovers of an aborted run
    let _guard = DownOnDrop(cfg.clone());

    // Plain hosts whatever HEARTH_LAB_SYSTEMD says: this test looks at what a host without
    // systemd must not see (the machine's /run/systemd); systemd hosts have their own test.
    let lab = Lab::up_with(cfg.clone(), 8, &["h8".to_string()], false).unwrap();
    step("up 8", t0);
    assert_eq!(lab.hosts.len(), 8);
    let pids_before: Vec<_> = lab
        .hosts
        .iter()
        .map(|h| lab.state(&h.name).unwrap().sshd_running)
        .collect();
    assert!(pids_before.iter().all(|r| *r));

    // Idempotent: a second `up` keeps the same hosts, keys and sshds.
    let known = std::fs::read_to_string(lab.known_hosts_path()).unwrap();
    let sshd_pid = |name: &str| {
        std::fs::read_to_string(lab.host(name).unwrap().dir.join("ssh/sshd.pid")).unwrap()
    };
    let pid1 = sshd_pid("h1");
    let again = Lab::up_with(cfg.clone(), 8, &[], false).unwrap();
    assert_eq!(again.hosts, lab.hosts);
    assert_eq!(
        std::fs::read_to_string(lab.known_hosts_path()).unwrap(),
        known
    );
    assert_eq!(sshd_pid("h1"), pid1);
    step("up again (idempotent)", t0);

    // Reachable over SSH with strict host keys from the inventory, each with Nix.
    std::thread::scope(|s| {
        for h in &lab.hosts {
            let lab = &lab;
            s.spawn(move || {
                let out = ok(&mut lab
                    .ssh_command(&h.name, "nix-store --version && cat /etc/nix/nix.conf")
                    .unwrap());
                assert!(out.contains("nix-store (Nix)"), "{out}");
                assert!(
                    out.contains(&format!("hearth lab host {}", h.name)),
                    "{} sees the wrong /etc/nix: {out}",
                    h.name
                );
            });
        }
    });
    let h1_file = std::fs::read_to_string(fleet.path().join("lab/hosts/h1.toml")).unwrap();
    let h1_key = std::fs::read_to_string(
        lab.host("h1")
            .unwrap()
            .dir
            .join("ssh/ssh_host_ed25519_key.pub"),
    )
    .unwrap();
    assert!(
        h1_file.contains(h1_key.split_whitespace().nth(1).unwrap()),
        "host key recorded in the host file"
    );
    // Hosts reach each other too (a builder copies straight to a target).
    let hop = format!("ssh -F {} h2 hostname -I", lab.ssh_config_path().display());
    assert!(ok(&mut lab.ssh_command("h1", &hop).unwrap()).contains("10.77.208.12"));
    step("8 hosts reachable over ssh", t0);

    // Separate stores and /tmp: a path copied to h1 is on h1 only.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let expr = fleet.path().join("probe.nix");
    std::fs::write(
        &expr,
        format!("derivation {{ name = \"lab-probe-{nonce}\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; args = [ \"-c\" \"echo {nonce} > $out\" ]; }}"),
    )
    .unwrap();
    let built: serde_json::Value = serde_json::from_str(&ok(nix(&lab)
        .args(["build", "--no-link", "--json", "-f"])
        .arg(&expr)))
    .unwrap();
    let probe = built[0]["outputs"]["out"].as_str().unwrap().to_string();
    copy_to(&lab, "h1", &probe);
    ok(&mut lab
        .ssh_command(
            "h1",
            &format!(
                "nix-store --check-validity {probe} && test -e {probe} && echo x > /tmp/only-h1"
            ),
        )
        .unwrap());
    for h in lab.hosts.iter().skip(1) {
        let out = lab
            .console_command(
                &h.name,
                &format!(
                    "test -e {probe} || nix-store --check-validity {probe} || test -e /tmp/only-h1"
                ),
            )
            .unwrap()
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{probe} or /tmp/only-h1 leaked to {}",
            h.name
        );
    }
    // No systemd inside: the machine's /run/systemd is hidden, so systemctl cannot escape.
    let run_systemd = lab
        .console_exec("h2", "ls -A /run/systemd 2>/dev/null || true")
        .unwrap();
    assert_eq!(
        run_systemd.trim(),
        "",
        "lab hosts must not see the machine's systemd"
    );
    step("stores and /tmp are per host", t0);

    // Fault variants, chosen in the host files and compiled through the lab flake.
    let mut h1 = lab_settings(LabFault::None);
    h1.payload_mib = 4;
    h1.payload_paths = 2;
    lab.set_lab_settings("h1", &h1).unwrap();
    for (h, f) in [
        ("h2", LabFault::ActivationFails),
        ("h3", LabFault::ActivationHangs),
        ("h4", LabFault::LinkDown),
        ("h5", LabFault::KillSshd),
        ("h6", LabFault::PayloadDown),
    ] {
        lab.set_lab_settings(h, &lab_settings(f)).unwrap();
    }
    hearth::lab::regenerate(lab.fleet_dir()).unwrap();
    let names = ["h1", "h2", "h3", "h4", "h5", "h6"];
    let tops = build_toplevels(&lab, &names);
    let size: u64 = ok(nix(&lab).args(["path-info", "-S", &tops[0]]))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        size > 4 * 1024 * 1024,
        "h1's closure carries its 4 MiB payload ({size} bytes)"
    );
    assert_eq!(
        tops.iter().collect::<std::collections::BTreeSet<_>>().len(),
        6,
        "faults give distinct toplevels"
    );
    std::thread::scope(|s| {
        for (h, top) in names.iter().zip(&tops) {
            let lab = &lab;
            s.spawn(move || copy_to(lab, h, top));
        }
    });
    step("6 toplevels built and copied", t0);

    // none: activation succeeds, generation recorded, payload answers.
    ok(&mut lab.ssh_command("h1", &activate_cmd(&tops[0])).unwrap());
    let st = lab.state("h1").unwrap();
    assert_eq!(st.current_system.as_deref(), Some(tops[0].as_str()));
    assert_eq!(st.generations, vec![(1, tops[0].clone())]);
    assert_eq!(st.profile_generation, Some(1));
    assert!(
        st.activation_log.last().unwrap().ends_with(" ok"),
        "{:?}",
        st.activation_log
    );
    assert!(http_get(lab.address("h1").unwrap(), 8080).contains(&tops[0]));
    let version = ok(&mut lab
        .ssh_command("h1", &format!("cat {}/nixos-version", tops[0]))
        .unwrap());
    assert_eq!(version.trim(), "lab-r0");

    step("  none", t0);
    // activation-fails: non-zero exit, nothing made current.
    let out = output(&mut lab.ssh_command("h2", &activate_cmd(&tops[1])).unwrap());
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("activation-fails"));
    let st = lab.state("h2").unwrap();
    assert_eq!(st.current_system, None);
    assert!(st
        .activation_log
        .iter()
        .any(|l| l.contains("failed (fault: activation-fails)")));

    step("  activation-fails", t0);
    // activation-hangs: still running when the timeout fires.
    let hang = format!("nix-env -p /nix/var/nix/profiles/system --set {t} && timeout 3 {t}/bin/switch-to-configuration switch", t = tops[2]);
    let t_hang = Instant::now();
    let out = lab.console_command("h3", &hang).unwrap().output().unwrap();
    assert_eq!(out.status.code(), Some(124), "timeout(1) reports the hang");
    assert!(t_hang.elapsed() >= Duration::from_secs(3));
    assert!(lab
        .state("h3")
        .unwrap()
        .activation_log
        .iter()
        .any(|l| l.contains("hanging")));

    step("  activation-hangs", t0);
    // link-down: activation (run on the console) locks the host out of the network.
    ok(&mut lab.console_command("h4", &activate_cmd(&tops[3])).unwrap());
    step("    activated", t0);
    let h4 = lab.address("h4").unwrap();
    assert_eq!(lab.state("h4").unwrap().link, LinkState::Down);
    assert!(
        !tcp_open(h4, 22),
        "h4 must be unreachable with its link down"
    );
    assert!(ssh_fails(&lab, "h4"));
    step("    unreachable", t0);
    lab.restore_link("h4").unwrap();
    step("    restored", t0);
    assert!(ssh_works(&lab, "h4"), "restore_link brings h4 back");

    step("  link-down", t0);
    // kill-sshd: the activating session survives, new logins fail.
    ok(&mut lab.ssh_command("h5", &activate_cmd(&tops[4])).unwrap());
    assert!(!lab.state("h5").unwrap().sshd_running);
    assert!(ssh_fails(&lab, "h5"));
    lab.start_sshd("h5").unwrap();
    assert!(ssh_works(&lab, "h5"));

    step("  kill-sshd", t0);
    // payload-down: activation succeeds but nothing listens on the payload port.
    ok(&mut lab.ssh_command("h6", &activate_cmd(&tops[5])).unwrap());
    assert!(
        !tcp_open(lab.address("h6").unwrap(), 8080),
        "payload port must be closed"
    );
    assert!(
        tcp_open(lab.address("h1").unwrap(), 8080),
        "h1's payload is still up"
    );
    step("activation faults shown", t0);

    // A good configuration repairs a locked-out host, like a rollback would.
    let mut fixed = lab_settings(LabFault::None);
    fixed.revision = 1;
    lab.set_lab_settings("h5", &fixed).unwrap();
    hearth::lab::regenerate(lab.fleet_dir()).unwrap();
    let good = build_toplevels(&lab, &["h5"]).remove(0);
    copy_to(&lab, "h5", &good);
    let dry = ok(&mut lab
        .console_command(
            "h5",
            &format!("{good}/bin/switch-to-configuration dry-activate"),
        )
        .unwrap());
    assert!(dry.contains("would activate"), "{dry}");
    ok(&mut lab
        .console_command("h5", &format!("{good}/bin/switch-to-configuration boot"))
        .unwrap());
    let st = lab.state("h5").unwrap();
    assert_eq!(
        st.boot_system.as_deref(),
        Some(good.as_str()),
        "boot installs"
    );
    assert_eq!(
        st.current_system.as_deref(),
        Some(tops[4].as_str()),
        "boot does not switch"
    );
    lab.console_command(
        "h5",
        &format!(
            "kill $(cat {}/ssh/sshd.pid)",
            lab.host("h5").unwrap().dir.display()
        ),
    )
    .unwrap()
    .output()
    .unwrap();
    ok(&mut lab.console_command("h5", &activate_cmd(&good)).unwrap());
    let st = lab.state("h5").unwrap();
    assert!(st.sshd_running, "activation restarts sshd");
    assert_eq!(st.generations.len(), 2);
    assert!(ssh_works(&lab, "h5"));
    assert!(tcp_open(lab.address("h5").unwrap(), 8080));

    // Outside faults on h7, with the console as the way in.
    let h7 = lab.address("h7").unwrap();
    lab.cut_link("h7").unwrap();
    assert_eq!(lab.state("h7").unwrap().link, LinkState::Cut);
    assert!(!tcp_open(h7, 22) && ssh_fails(&lab, "h7"));
    assert!(
        lab.console_exec("h7", "cat /etc/nix/nix.conf")
            .unwrap()
            .contains("hearth lab host h7"),
        "console works without network"
    );
    lab.restore_link("h7").unwrap();
    assert!(ssh_works(&lab, "h7"));
    lab.kill_sshd("h7").unwrap();
    assert!(!lab.state("h7").unwrap().sshd_running);
    assert!(ssh_fails(&lab, "h7"));
    lab.start_sshd("h7").unwrap();
    assert!(ssh_works(&lab, "h7"));
    step("outside faults shown", t0);

    // The builder: an aarch64-linux derivation builds on h8 only.
    let arm = fleet.path().join("arm.nix");
    std::fs::write(
        &arm,
        format!("derivation {{ name = \"lab-arm-{nonce}\"; system = \"aarch64-linux\"; builder = \"/bin/sh\"; args = [ \"-c\" \"echo {nonce} > $out\" ]; }}"),
    )
    .unwrap();
    let local = output(
        nix(&lab)
            .args(["build", "--no-link", "--builders", "", "-f"])
            .arg(&arm),
    );
    let err = String::from_utf8_lossy(&local.stderr);
    assert!(
        !local.status.success() && err.contains("aarch64-linux"),
        "local Nix must refuse: {err}"
    );
    let not_builder = format!("ssh-ng://root@{} aarch64-linux", h7);
    let refused = output(
        nix(&lab)
            .args([
                "build",
                "--no-link",
                "--max-jobs",
                "0",
                "--builders",
                &not_builder,
                "-f",
            ])
            .arg(&arm),
    );
    assert!(!refused.status.success(), "h7 is no aarch64 builder");
    let builder = format!("ssh-ng://root@{} aarch64-linux", lab.address("h8").unwrap());
    let built: serde_json::Value = serde_json::from_str(&ok(nix(&lab)
        .args([
            "build",
            "--no-link",
            "--json",
            "--max-jobs",
            "0",
            "--builders",
            &builder,
            "-f",
        ])
        .arg(&arm)))
    .unwrap();
    let arm_out = built[0]["outputs"]["out"].as_str().unwrap().to_string();
    ok(&mut lab
        .console_command("h8", &format!("nix-store --check-validity {arm_out}"))
        .unwrap());
    step("aarch64-linux builds on the builder only", t0);

    // down leaves nothing.
    let mut pids = Vec::new();
    for h in &lab.hosts {
        let out = ok(Command::new("ip").args(["netns", "pids", &h.netns]));
        pids.extend(out.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
    }
    assert!(pids.len() >= 8, "sshds and payload services were running");
    Lab::down(&cfg).unwrap();
    assert_nothing_left(&cfg, &pids);
    Lab::down(&cfg).unwrap(); // repeatable
    step("down leaves nothing", t0);
}

#[test]
fn cli_up_status_console_down() {
    if let Some(reason) = lab_support::missing_prerequisite() {
        println!("SKIPPED: {reason}");
        return;
    }
    let repo = tempfile::tempdir().unwrap();
    let hearth = env!("CARGO_BIN_EXE_hearth");
    let lab = |args: &[&str]| {
        let mut c = Command::new(hearth);
        c.arg("-C")
            .arg(repo.path())
            .args(["lab", "--id", "t2", "--base", "10.77.209.0/24"])
            .args(args);
        c
    };
    let cfg = LabConfig::new(
        "t2",
        "10.77.209.0".parse().unwrap(),
        repo.path().join(".hearth/lab"),
    )
    .unwrap();
    let _guard = DownOnDrop(cfg.clone());
    ok(&mut lab(&["down"]));
    let up = ok(&mut lab(&["up", "2"]));
    assert!(up.contains("h2    10.77.209.12"), "{up}");
    assert!(
        repo.path().join(".hearth/lab/hosts/h2.toml").exists(),
        "default fleet dir is <repo>/.hearth/lab"
    );
    let status = ok(&mut lab(&["status"]));
    assert_eq!(status.matches(" ok ").count(), 2, "{status}");
    let out = ok(&mut lab(&[
        "console", "h2", "--", "ip", "-o", "-4", "addr", "show", "eth0",
    ]));
    assert!(out.contains("10.77.209.12/24"), "{out}");
    ok(&mut lab(&["fault", "kill-sshd", "h1"]));
    let status = output(&mut lab(&["status"]));
    assert_eq!(
        status.status.code(),
        Some(1),
        "status fails while h1 is unreachable"
    );
    ok(&mut lab(&["fault", "start-sshd", "h1"]));
    assert!(ok(&mut lab(&["env"])).contains("NIX_SSHOPTS="));
    ok(&mut lab(&["down"]));
    assert_nothing_left(&cfg, &[]);
}

/// The README demo's path: the real `hearth deploy` against the lab fleet, then a
/// lockout (activation cuts the link) that magic rollback must undo.
#[test]
fn hearth_deploy_reaches_the_lab_and_rolls_back_a_lockout() {
    if let Some(reason) = lab_support::missing_prerequisite() {
        println!("SKIPPED: {reason}");
        return;
    }
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let cfg = LabConfig::new("t3", "10.77.207.0".parse().unwrap(), dir.path().join("lab")).unwrap();
    Lab::down(&cfg).unwrap();
    let _guard = DownOnDrop(cfg.clone());
    let lab = Lab::up(cfg.clone(), 2, &[]).unwrap();
    let hearth = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hearth"));
        c.arg("-C")
            .arg(lab.fleet_dir())
            .args(args)
            .env("HEARTH_FLAKE", lab.flake_ref())
            .env("HEARTH_SSH_IDENTITY", lab.identity_path())
            .env("NIX_CONFIG", lab.nix_config())
            .env("NIX_SSHOPTS", lab.nix_sshopts());
        c
    };
    ok(&mut hearth(&["deploy", "--all"]));
    let first = lab
        .state("h2")
        .unwrap()
        .current_system
        .expect("h2 deployed");
    assert!(tcp_open(lab.address("h1").unwrap(), 8080));
    step("deployed 2 hosts", t0);

    let mut bad = lab_settings(LabFault::LinkDown);
    bad.revision = 1;
    lab.set_lab_settings("h2", &bad).unwrap();
    hearth::lab::regenerate(lab.fleet_dir()).unwrap();
    let out = output(&mut hearth(&["deploy", "h2"]));
    assert!(!out.status.success(), "a rolled-back deploy exits non-zero");
    let st = lab.state("h2").unwrap();
    assert_eq!(
        st.current_system.as_deref(),
        Some(first.as_str()),
        "back on the old system"
    );
    assert_eq!(st.link, LinkState::Up);
    assert!(st
        .activation_log
        .iter()
        .any(|l| l.contains("fault: link-down")));
    assert!(ssh_works(&lab, "h2"));
    step("lockout rolled back", t0);
}

/// Cgroups under any hierarchy whose name starts with `prefix`.
fn lab_cgroups(prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for root in [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/unified",
    ] {
        for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                found.push(e.path().display().to_string());
            }
        }
    }
    found
}

#[test]
fn systemd_hosts_are_isolated_deploy_through_systemd_run_and_leave_nothing_behind() {
    if let Some(reason) = lab_support::missing_prerequisite() {
        println!("SKIPPED: {reason}");
        return;
    }
    let t0 = Instant::now();
    // Canaries in the machine's shared temporary directories: a lab systemd must not
    // touch them (tmpfiles once emptied /tmp this way).
    let canaries: Vec<PathBuf> = ["/tmp", "/var/tmp"]
        .iter()
        .map(|d| PathBuf::from(d).join(format!("hearth-canary-{}", std::process::id())))
        .collect();
    for c in &canaries {
        std::fs::write(c, "canary").unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = LabConfig::new("ts", "10.77.206.0".parse().unwrap(), dir.path().join("lab")).unwrap();
    Lab::down(&cfg).unwrap();
    let _guard = DownOnDrop(cfg.clone());
    let lab = Lab::up_with(cfg.clone(), 2, &[], true).unwrap();
    step("up 2 with systemd", t0);

    let pid1 = lab.systemd_pid("h1").unwrap().expect("h1 runs systemd");
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid1}/comm"))
            .unwrap()
            .trim(),
        "systemd"
    );
    let services = lab
        .console_exec(
            "h1",
            "systemctl is-system-running; systemctl list-units --all --no-legend --plain --type=service | awk '$2 != \"not-found\" {print $1}' | sort",
        )
        .unwrap();
    assert_eq!(
        services, "running\nlab-nix-daemon.service\nlab-sshd.service\nsystemd-journald.service\n",
        "only the lab's units"
    );
    let canary_name = canaries[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let inside = lab
        .console_exec(
            "h1",
            &format!("ls /tmp /var/tmp; readlink /proc/1/exe; test -e /tmp/{canary_name} && echo SHARED || true"),
        )
        .unwrap();
    assert!(
        !inside.contains("SHARED"),
        "the host sees the machine's /tmp: {inside}"
    );
    assert!(
        !lab_cgroups(&cfg.netns_prefix()).is_empty(),
        "systemd's cgroups are where down looks"
    );

    // A deploy: the supervisor runs as a transient unit (collected afterwards), and the
    // activation restarts sshd (its unit changed) without cutting the deploy.
    let hearth = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hearth"));
        c.arg("-C")
            .arg(lab.fleet_dir())
            .args(args)
            .env("HEARTH_FLAKE", lab.flake_ref())
            .env("HEARTH_SSH_IDENTITY", lab.identity_path())
            .env("NIX_CONFIG", lab.nix_config())
            .env("NIX_SSHOPTS", lab.nix_sshopts());
        c
    };
    ok(&mut hearth(&["deploy", "--all"]));
    let st = lab.state("h1").unwrap();
    assert!(
        st.activation_log
            .iter()
            .any(|l| l.contains("restarting lab-sshd.service")),
        "{st}"
    );
    let units = lab
        .console_exec(
            "h1",
            "journalctl --no-pager -o cat _PID=1 | grep -c '^Started hearth-activate-' || true; \
             systemctl list-units --all --no-legend 'hearth-activate-*' | wc -l; \
             systemctl is-active lab-payload.service",
        )
        .unwrap();
    assert_eq!(
        units, "1\n0\nactive\n",
        "one transient supervisor unit, collected"
    );
    assert!(tcp_open(lab.address("h1").unwrap(), 8080));
    assert!(ssh_works(&lab, "h1"));
    step("deployed through systemd-run", t0);

    let pids: Vec<i32> = lab
        .hosts
        .iter()
        .flat_map(|h| {
            ok(Command::new("ip").args(["netns", "pids", &h.netns]))
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    Lab::down(&cfg).unwrap();
    assert_nothing_left(&cfg, &pids);
    let left = lab_cgroups(&cfg.netns_prefix());
    assert!(left.is_empty(), "cgroups left: {left:?}");
    for c in &canaries {
        assert_eq!(
            std::fs::read_to_string(c).unwrap(),
            "canary",
            "{}",
            c.display()
        );
        std::fs::remove_file(c).unwrap();
    }
    step("down: nothing left, canaries intact", t0);
}

#[test]
fn a_run_dir_a_host_would_hide_is_refused_up_front() {
    if let Some(reason) = lab_support::missing_prerequisite() {
        println!("SKIPPED: {reason}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg =
        LabConfig::new("tr", "10.77.205.0".parse().unwrap(), dir.path().join("lab")).unwrap();
    cfg.run_dir = dir.path().join("run");
    let e = format!("{:#}", Lab::up(cfg.clone(), 1, &[]).unwrap_err());
    assert!(e.contains("each lab host mounts its own /tmp"), "{e}");
    assert!(netns_list()
        .lines()
        .all(|l| !l.starts_with(&cfg.netns_prefix())));
}

/// `[lab] systemd = true` in one host file boots that host with systemd in a lab that
/// boots plain hosts; a running host keeps what it booted until `lab down`.
#[test]
fn a_host_files_lab_systemd_setting_boots_that_host_with_systemd() {
    if let Some(reason) = lab_support::missing_prerequisite() {
        println!("SKIPPED: {reason}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = LabConfig::new(
        "syset",
        "10.77.244.0".parse().unwrap(),
        dir.path().join("lab"),
    )
    .unwrap();
    Lab::down(&cfg).unwrap();
    let _guard = DownOnDrop(cfg.clone());
    let lab = Lab::up_with(cfg.clone(), 2, &[], false).unwrap();
    assert!(lab.hosts.iter().all(|h| !h.systemd));
    let h2 = lab.fleet_dir().join("hosts/h2.toml");
    let text = std::fs::read_to_string(&h2).unwrap();
    let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
    doc["lab"]["systemd"] = toml_edit::value(true);
    std::fs::write(&h2, doc.to_string()).unwrap();
    let e = format!(
        "{:#}",
        Lab::up_with(cfg.clone(), 2, &[], false).unwrap_err()
    );
    assert!(
        e.contains("lab host h2 runs without systemd, but hosts/h2.toml says `[lab] systemd = true`; run `hearth lab down --id syset` first"),
        "{e}"
    );
    Lab::down(&cfg).unwrap();
    let lab = Lab::up_with(cfg.clone(), 2, &[], false).unwrap();
    let booted: Vec<(String, bool)> = lab
        .hosts
        .iter()
        .map(|h| (h.name.clone(), h.systemd))
        .collect();
    assert_eq!(
        booted,
        [("h1".to_string(), false), ("h2".to_string(), true)]
    );
    assert!(lab.systemd_pid("h1").unwrap().is_none());
    let pid1 = lab.systemd_pid("h2").unwrap().expect("h2 runs systemd");
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid1}/comm"))
            .unwrap()
            .trim(),
        "systemd"
    );
    assert_eq!(
        lab.console_exec("h2", "systemctl is-system-running")
            .unwrap(),
        "running\n"
    );
    assert!(ssh_works(&lab, "h1") && ssh_works(&lab, "h2"));
    // The setting survives `lab up` rewriting the host file.
    assert!(std::fs::read_to_string(&h2)
        .unwrap()
        .contains("systemd = true"));
}
