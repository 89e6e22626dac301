//! The derived monitoring configuration run by the real programs on a lab host (lab id
//! `ob1`, 10.77.253.0/24): Debian's `promtool` and `amtool` validate the files there, then
//! `prometheus-alertmanager` starts with the derived alertmanager.yml and accepts an alert,
//! and `prometheus` starts with the derived prometheus.yml and loads every derived rule
//! group. The files are the ones the real NixOS modules render (tests/obs_support).
//! Needs root and the lab prerequisites (skips otherwise; fails under HEARTH_REQUIRE_EVAL=1).
//! Run under `flock /work/wt/lab.lock`.

mod checkouts;
mod lab_support;
mod obs_support;
use hearth::lab::{Lab, LabConfig};
use lab_support::DownOnDrop;
use obs_support::{files, repo, tools};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Run `cmd` on the lab host with `input` on stdin; its stdout, or a panic with stderr.
fn on(lab: &Lab, host: &str, cmd: &str, input: &str) -> String {
    // Bounded, so a hung session can't hold the machine-wide lab lock.
    let ssh = lab.ssh_command(host, cmd).unwrap();
    let mut c = std::process::Command::new("timeout");
    c.arg("60").arg(ssh.get_program()).args(ssh.get_args());
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "`{cmd}` on {host} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// One HTTP/1.0 request; the response body (status line checked for 200).
fn http(addr: Ipv4Addr, port: u16, method: &str, path: &str, body: &str) -> Option<String> {
    let mut s =
        TcpStream::connect_timeout(&SocketAddr::from((addr, port)), Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    if !(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200")) {
        return None;
    }
    Some(body.to_string())
}

fn wait_for(what: &str, mut f: impl FnMut() -> Option<String>) -> String {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn derived_monitoring_runs_in_the_real_programs_on_a_lab_host() {
    if let Some(reason) = lab_support::missing_prerequisite() {
        println!("SKIPPED: {reason}");
        return;
    }
    let Some(dirs) = tools() else { return };
    let f = files(&dirs, &repo().join("generated/nixos/default.nix"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = LabConfig::new(
        "ob1",
        "10.77.253.0".parse().unwrap(),
        dir.path().join("lab"),
    )
    .unwrap();
    let _guard = DownOnDrop(cfg.clone());
    let _ = Lab::down(&cfg);
    let lab = Lab::up(cfg, 1, &[]).unwrap();
    let ip = lab.address("h1").unwrap();

    on(&lab, "h1", "mkdir -p /tmp/obs/am /tmp/obs/prom", "");
    on(
        &lab,
        "h1",
        "cat > /tmp/obs/prometheus.yml",
        f["prometheusYml"].as_str().unwrap(),
    );
    on(
        &lab,
        "h1",
        "cat > /tmp/obs/rules.yml",
        f["rules"].as_str().unwrap(),
    );
    let am = obs_support::amtool_compatible(f["alertmanagerYml"].as_str().unwrap());
    on(&lab, "h1", "cat > /tmp/obs/alertmanager.yml", &am);

    let out = on(
        &lab,
        "h1",
        "promtool check config /tmp/obs/prometheus.yml 2>&1",
        "",
    );
    assert!(out.contains("SUCCESS: 1 rule files found"), "{out}");
    let out = on(
        &lab,
        "h1",
        "amtool check-config /tmp/obs/alertmanager.yml 2>&1",
        "",
    );
    assert!(out.contains("SUCCESS"), "{out}");

    // The daemons themselves, on the lab host's address.
    on(
        &lab,
        "h1",
        &format!(
            "setsid prometheus-alertmanager --config.file=/tmp/obs/alertmanager.yml \
         --storage.path=/tmp/obs/am --web.listen-address={ip}:9093 --cluster.listen-address= \
         > /tmp/obs/am.log 2>&1 < /dev/null &"
        ),
        "",
    );
    wait_for("alertmanager ready", || {
        http(ip, 9093, "GET", "/-/ready", "")
    });
    let alert = r#"[{"labels":{"alertname":"HostDown","host":"helios64","severity":"critical"}}]"#;
    wait_for("alert accepted", || {
        http(ip, 9093, "POST", "/api/v2/alerts", alert)
    });
    let groups = wait_for("alert grouped", || {
        http(ip, 9093, "GET", "/api/v2/alerts/groups", "").filter(|b| b.contains("helios64"))
    });
    assert!(
        groups.contains("\"receiver\":{\"name\":\"hearth\"}"),
        "{groups}"
    );

    on(
        &lab,
        "h1",
        &format!(
            "setsid prometheus --config.file=/tmp/obs/prometheus.yml \
         --storage.tsdb.path=/tmp/obs/prom --web.listen-address={ip}:9090 \
         > /tmp/obs/prom.log 2>&1 < /dev/null &"
        ),
        "",
    );
    let rules = wait_for("prometheus rules", || {
        http(ip, 9090, "GET", "/api/v1/rules", "")
    });
    for group in [
        "hearth-hosts",
        "hearth-zfs",
        "hearth-backups",
        "hearth-fleet",
    ] {
        assert!(
            rules.contains(&format!("\"name\":\"{group}\"")),
            "{group}: {rules}"
        );
    }
    assert!(!rules.contains("\"health\":\"err\""), "{rules}");
    let managers = wait_for("alertmanager target", || {
        http(ip, 9090, "GET", "/api/v1/alertmanagers", "").filter(|b| b.contains("9093"))
    });
    assert!(managers.contains("192.168.1.10:9093"), "{managers}");
}
