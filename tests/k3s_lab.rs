//! The k3s firewall rules hearth derives, applied with the real iptables in lab hosts'
//! network namespaces: a cluster member reaches the server's API and kubelet ports, a host
//! outside the cluster on the same network does not. The chain around the derived lines is
//! the part of NixOS's iptables firewall they are appended to (`nixos-fw`, its accept chain,
//! loopback, established connections, and the final refusal).
//!
//! Own lab id `in2` on 10.77.245.0/24. Needs root, the lab's tools and iptables (else
//! SKIPPED; under HEARTH_REQUIRE_EVAL=1 a failure).

#[path = "lab_support/mod.rs"]
mod lab_support;

use hearth::compile::{self, nix::Value};
use hearth::lab::{Lab, LabConfig};
use lab_support::DownOnDrop;
use std::process::Command;

/// A fleet of three hosts at the lab's addresses: `s1` (server) on h1, `a1` (agent) on h2,
/// `out` (in no cluster) on h3; returns the server's derived firewall lines.
fn server_rules(lab: &Lab) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hearth.toml"),
        "domain = \"home.arpa\"\n\n[admins.alice]\nssh_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAliceAliceAliceAliceAliceAliceAliceAlice1AA alice@laptop\"]\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("hosts")).unwrap();
    for (name, lab_host, tag) in [
        ("s1", "h1", "\"k3s-server\""),
        ("a1", "h2", "\"k3s-agent\""),
        ("out", "h3", ""),
    ] {
        let addr = lab.address(lab_host).unwrap();
        let key = format!("{name:A<43}");
        std::fs::write(
            dir.path().join(format!("hosts/{name}.toml")),
            format!(
                "system = \"x86_64-linux\"\nhardware = \"generic-x86_64\"\n\
                 host_key = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{key}\"\ntags = [{tag}]\n\n\
                 [ssh]\naddress = \"{addr}\"\n\n[network]\ninterface = \"eth0\"\naddress = \"{addr}/24\"\n"
            ),
        )
        .unwrap();
    }
    let out = compile::compile_repo(dir.path()).unwrap();
    let text = out
        .files
        .iter()
        .find(|(rel, _)| rel.ends_with("s1/default.nix"))
        .map(|(_, t)| t.clone())
        .unwrap();
    let v = compile::nix::parse_value(&text).unwrap();
    let Value::Attrs(top) = v else { panic!() };
    let Some(Value::Attrs(net)) = top.get("networking") else {
        panic!("{text}")
    };
    let Some(Value::Attrs(fw)) = net.get("firewall") else {
        panic!("{text}")
    };
    match fw.get("extraCommands") {
        Some(Value::Str(s)) => s.clone(),
        other => panic!("no extraCommands: {other:?}\n{text}"),
    }
}

/// NixOS's `nixos-fw` around the derived lines (its start script, reduced to what applies
/// here: no rpfilter, no other open ports but the lab's SSH).
fn firewall_script(rules: &str) -> String {
    format!(
        "set -e\n\
         iptables -N nixos-fw-accept\n\
         iptables -A nixos-fw-accept -j ACCEPT\n\
         iptables -N nixos-fw\n\
         iptables -A nixos-fw -i lo -j nixos-fw-accept\n\
         iptables -A nixos-fw -m conntrack --ctstate ESTABLISHED,RELATED -j nixos-fw-accept\n\
         iptables -A nixos-fw -p tcp --dport 22 -j nixos-fw-accept\n\
         {rules}\
         iptables -A nixos-fw -p tcp -j REJECT --reject-with tcp-reset\n\
         iptables -A nixos-fw -j DROP\n\
         iptables -A INPUT -j nixos-fw\n"
    )
}

/// A TCP server on `port` that greets every client (detached, silent).
fn listen(port: u16) -> String {
    format!("setsid perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => {port}, Listen => 5, ReuseAddr => 1) or die; while ($c = $s->accept) {{ print $c \"ok\\n\"; close $c }}' </dev/null >/dev/null 2>&1 &")
}

/// Exit 0 when `addr:port` greets within 3 s.
fn connect(addr: &str, port: u16) -> String {
    format!("perl -MIO::Socket::INET -e '$c = IO::Socket::INET->new(PeerAddr => \"{addr}:{port}\", Timeout => 3) or exit 1; $l = <$c>; exit($l eq \"ok\\n\" ? 0 : 1)'")
}

/// Whether `from` gets the listener's greeting from `addr:port`.
fn reaches(lab: &Lab, from: &str, addr: &str, port: u16) -> bool {
    let mut c = lab.console_command(from, &connect(addr, port)).unwrap();
    c.status().unwrap().success()
}

#[test]
fn only_cluster_members_reach_the_server_ports() {
    if let Some(reason) = lab_support::missing_prerequisite() {
        println!("SKIPPED: {reason}");
        return;
    }
    if Command::new("iptables").arg("--version").output().is_err() {
        assert!(
            !lab_support::strict(),
            "HEARTH_REQUIRE_EVAL=1 but `iptables` is not installed"
        );
        println!("SKIPPED: `iptables` is not installed");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("hearth-in2-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let cfg = LabConfig::new(
        "in2",
        "10.77.245.0".parse().unwrap(),
        dir.path().join("lab"),
    )
    .unwrap();
    Lab::down(&cfg).unwrap();
    let _guard = DownOnDrop(cfg.clone());
    let lab = Lab::up(cfg.clone(), 3, &[]).unwrap();
    let rules = server_rules(&lab);
    let server = lab.address("h1").unwrap().to_string();
    let member = lab.address("h2").unwrap().to_string();
    let outsider = lab.address("h3").unwrap().to_string();
    assert!(
        rules.contains(&format!("-s {member} --dport 6443")),
        "{rules}"
    );
    assert!(!rules.contains(&outsider), "{rules}");

    for port in [6443u16, 10250, 7000] {
        lab.console_exec("h1", &listen(port)).unwrap();
    }
    // Up: the server reaches itself over loopback (accepted like every NixOS host's lo).
    let mut up = false;
    for _ in 0..50 {
        if [6443, 10250, 7000]
            .iter()
            .all(|p| reaches(&lab, "h1", "127.0.0.1", *p))
        {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(up, "the listeners on h1 did not start");
    // Before the firewall every host reaches every port: what follows is the rules' doing.
    for port in [6443, 10250, 7000] {
        assert!(reaches(&lab, "h3", &server, port), "h3 → {server}:{port}");
    }
    lab.console_exec("h1", &firewall_script(&rules)).unwrap();

    for port in [6443, 10250] {
        assert!(
            reaches(&lab, "h2", &server, port),
            "member h2 must reach {server}:{port}\n{rules}"
        );
        assert!(
            !reaches(&lab, "h3", &server, port),
            "h3 is in no cluster and must not reach {server}:{port}\n{rules}"
        );
    }
    // A port nobody opened stays closed to members too: the rules name ports, not hosts.
    assert!(!reaches(&lab, "h2", &server, 7000));
}
