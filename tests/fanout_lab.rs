//! Signed store paths, the non-trusted push user, and fan-out deploys, against lab hosts
//! (namespaces, sshd, a nix-daemon and a /nix per host). Needs root; otherwise prints
//! `SKIPPED:`. One test function: the steps share one lab (its own id and 10.78.x subnet,
//! picked by `deploy_common`, so it never collides with the other lab suites).
//!
//! Lab hosts are not NixOS, so the test sets up by hand what the generated modules set up:
//! the `hearth-push` user, the fleet's `trusted-public-keys`, each host's peer key, and the
//! `restrict,command="nix-daemon --stdio"` lines in `authorized_keys`.

mod daemon_protocol;
mod deploy_common;
mod fanout_support;
use deploy_common::*;
use fanout_support::*;
use hearth::nix::sign;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

fn step(name: &str, t0: Instant) {
    println!("[{:>6.2}s] {name}", t0.elapsed().as_secs_f64());
}

/// A fresh store path on the deployer (unsigned: built locally).
fn fresh_path(lab: &Lab, tag: &str) -> String {
    let expr = format!(
        "derivation {{ name = \"fanout-{tag}\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; \
         args = [ \"-c\" \"echo {tag} {nonce} > $out\" ]; }}",
        nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let out = ok(Command::new("nix")
        .args(["build", "--no-link", "--json", "--expr", &expr])
        .env("NIX_CONFIG", lab.lab.nix_config()));
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0]["outputs"]["out"].as_str().unwrap().to_string()
}

/// `nix copy` to `hearth-push@<host>` with only `identity` (a builder's push key).
fn copy_as_push_user(lab: &Lab, cfg: &Path, host: &str, path: &str, extra: &[&str]) -> Output {
    let addr = &lab.host(host).addr;
    run(Command::new("nix")
        .args([
            "copy",
            "--to",
            &format!("ssh-ng://{}@{addr}", sign::PUSH_USER),
        ])
        .args(extra)
        .arg(path)
        .env("NIX_CONFIG", lab.lab.nix_config())
        .env("NIX_SSHOPTS", format!("-F {}", cfg.display())))
}

fn builder_ssh_config(lab: &Lab, dir: &Path, key: &Path) -> PathBuf {
    let p = dir.join("builder-ssh-config");
    std::fs::write(
        &p,
        format!(
            "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 5\n",
            key.display(),
            lab.lab.known_hosts_path().display()
        ),
    )
    .unwrap();
    p
}

/// Signed paths in, unsigned paths and daemon settings refused, for a key authorised as the
/// non-trusted push user on its assigned host only.
fn push_user_is_least_privilege(lab: &Lab, secret: &Path, t0: Instant) {
    let dir = lab.base.path().join("builder");
    let key = dir.join("push_key");
    let pk = keygen(&key, "nixbuild@builder");
    // h1 is the builder's assigned host; h2 is not.
    append(
        &lab.host("h1").dir.join("ssh/authorized_keys"),
        &restricted(&pk, "hearth-push-from-builder"),
    );
    let cfg = builder_ssh_config(lab, &dir, &key);
    let p = fresh_path(lab, "unsigned");
    let out = copy_as_push_user(lab, &cfg, "h1", &p, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("lacks a valid signature"),
        "unsigned path: {err}"
    );
    assert!(!lab.host("h1").has_path(&p));
    // Even asking not to check: only a trusted user may.
    let out = copy_as_push_user(lab, &cfg, "h1", &p, &["--no-check-sigs"]);
    assert!(!out.status.success(), "--no-check-sigs as the push user");
    assert!(!lab.host("h1").has_path(&p));
    step(
        "the push user refuses an unsigned path, with or without --no-check-sigs",
        t0,
    );
    push_user_cannot_set_daemon_options(lab, &cfg, t0);

    ok(Command::new("nix")
        .args(sign::sign_args(secret, std::slice::from_ref(&p)))
        .env("NIX_CONFIG", lab.lab.nix_config()));
    let out = copy_as_push_user(lab, &cfg, "h1", &p, &[]);
    assert!(
        out.status.success(),
        "signed path: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lab.host("h1").has_path(&p));
    step("the push user accepts the same path once signed", t0);

    let out = copy_as_push_user(lab, &cfg, "h2", &p, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Permission denied"),
        "h2: {err}"
    );
    assert!(!lab.host("h2").has_path(&p));
    step(
        "the builder's key is refused on a host not assigned to it",
        t0,
    );
}

/// The daemon ignores restricted settings the push user's client sends, and logs so; the
/// same settings from root (trusted) are taken silently. A post-build hook would run as
/// root after every build, and an extra trusted key would defeat the signature check.
fn push_user_cannot_set_daemon_options(lab: &Lab, cfg: &Path, t0: Instant) {
    let addr = &lab.host("h1").addr;
    let settings = [
        ("post-build-hook", "/bin/true"),
        (
            "trusted-public-keys",
            "attacker-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ),
    ];
    let ignored = |log: &[String], name: &str| {
        log.iter()
            .any(|l| l.contains(&format!("setting '{name}'")) && l.contains("not a trusted user"))
    };
    let as_root =
        daemon_protocol::send_settings(&lab.ssh_config(), &format!("root@{addr}"), &settings);
    assert!(
        !settings.iter().any(|(name, _)| ignored(&as_root, name)),
        "root's settings were refused: {as_root:?}"
    );
    let push_login = format!("{}@{addr}", sign::PUSH_USER);
    let as_push_user = daemon_protocol::send_settings(cfg, &push_login, &settings);
    for (name, _) in settings {
        assert!(
            ignored(&as_push_user, name),
            "{name} from the push user: {as_push_user:?}"
        );
    }
    step(
        "the push user's daemon settings (post-build-hook, trusted-public-keys) are ignored; root's are taken",
        t0,
    );
}

/// Paths the deployer itself copied to each host (its `nix copy` progress).
fn deployer_paths(r: &Run) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for e in r.events.iter().filter(|e| e["event"] == "copy_progress") {
        m.insert(
            e["host"].as_str().unwrap().to_string(),
            e["paths_done"].as_u64().unwrap(),
        );
    }
    m
}

fn sources(r: &Run) -> BTreeMap<String, Value> {
    r.events
        .iter()
        .filter(|e| e["event"] == "copy_source")
        .map(|e| (e["host"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

/// Deploy a new revision of every host; returns the run and the deployer's bytes sent.
fn deploy_revision(
    lab: &mut Lab,
    xdg: &Path,
    revision: u32,
    extra: &[&str],
) -> (Run, u64, Vec<String>) {
    let names: Vec<String> = lab.hosts.iter().map(|h| h.name.clone()).collect();
    for h in &names {
        lab.set(h, |c| {
            c.payload_mib = 16;
            c.payload_paths = 8;
            c.revision = revision;
        });
    }
    let tops = lab.build_all();
    let before = deployer_tx(lab);
    let start = Instant::now();
    let mut args = vec!["deploy", "--all", "--json"];
    args.extend(extra);
    // The lab's links are all LAN-fast: unless a step sets a threshold of its own
    // (`--fast-link-mbit=N`, a test-only word), hosts would rightly skip fan-out.
    let fast_link = match args.iter().position(|a| a.starts_with("--fast-link-mbit=")) {
        Some(i) => args
            .remove(i)
            .trim_start_matches("--fast-link-mbit=")
            .to_string(),
        None => "0".to_string(),
    };
    let mut cmd = lab.hearth_cmd(&args);
    cmd.env("XDG_CONFIG_HOME", xdg);
    cmd.env("HEARTH_FAN_OUT_FAST_LINK_MBIT", &fast_link);
    let out = run(&mut cmd);
    let r = deploy_common_run(out, start);
    let sent = deployer_tx(lab) - before;
    assert_eq!(r.code, Some(0), "{}", r.debug());
    for (h, top) in names.iter().zip(&tops) {
        assert_eq!(r.results()[h], "deployed", "{}", r.debug());
        assert_eq!(
            lab.host(h).current().as_deref(),
            Some(top.as_str()),
            "{h} on its new system"
        );
    }
    (r, sent, tops)
}

/// Processes in `host`'s namespace running as `uid` with this command name.
fn pids_as(lab: &Lab, host: &str, uid: u32, comm: &str) -> Vec<String> {
    let ns = &lab.lab.host(host).unwrap().netns;
    ok(Command::new("ip").args(["netns", "pids", ns]))
        .split_whitespace()
        .filter(|pid| {
            let c = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let real_uid = st
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_string));
            c.trim() == comm && real_uid == Some(uid.to_string())
        })
        .map(str::to_string)
        .collect()
}

/// Deploy a new revision of every host with fan-out forced, calling `on_event` with each
/// `--json` event as it arrives (to break something at the right moment). Returns the run,
/// the deployer's bytes sent and the new toplevels.
fn deploy_watching(
    lab: &mut Lab,
    xdg: &Path,
    revision: u32,
    mut on_event: impl FnMut(&Lab, &Value),
) -> (Run, u64, Vec<String>) {
    use std::io::BufRead;
    let names: Vec<String> = lab.hosts.iter().map(|h| h.name.clone()).collect();
    for h in &names {
        lab.set(h, |c| c.revision = revision);
    }
    let tops = lab.build_all();
    let before = deployer_tx(lab);
    let start = Instant::now();
    let mut child = lab
        .hearth_cmd(&["deploy", "--all", "--json"])
        .env("XDG_CONFIG_HOME", xdg)
        .env("HEARTH_FAN_OUT_FAST_LINK_MBIT", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = String::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        on_event(lab, &serde_json::from_str(&line).unwrap_or(Value::Null));
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let out = child.wait_with_output().unwrap();
    let r = deploy_common_run(
        Output {
            status: out.status,
            stdout: stdout.into_bytes(),
            stderr: out.stderr,
        },
        start,
    );
    (r, deployer_tx(lab) - before, tops)
}

/// `tc` on a lab host's side of its link (`eth0` in its namespace), or on the deployer's
/// side of the bridge (`host` None).
fn tc(lab: &Lab, host: Option<&str>, args: &[&str]) {
    let out = match host {
        Some(h) => run(Command::new("ip")
            .args(["netns", "exec", &lab.lab.host(h).unwrap().netns, "tc"])
            .args(["qdisc"])
            .args(args.iter().map(|a| a.replace("DEV", "eth0")))),
        None => run(Command::new("tc").args(["qdisc"]).args(
            args.iter()
                .map(|a| a.replace("DEV", &lab.lab.config.bridge())),
        )),
    };
    assert!(
        out.status.success() || args[0] == "del",
        "tc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A deploy of a new revision during which `peer` dies in the middle of serving `host`:
/// once `host` reports pulling from `peer`, the peer's `nix-daemon --stdio` for the
/// `hearth-push` login is killed. `peer`'s outgoing link is slowed so the pull is still
/// running then. Returns the run, the deployer's bytes sent and the new toplevels.
fn deploy_killing_peer_midway(
    lab: &mut Lab,
    xdg: &Path,
    revision: u32,
    peer: &str,
    host: &str,
) -> (Run, u64, Vec<String>) {
    let slow = [
        "add", "dev", "DEV", "root", "tbf", "rate", "24mbit", "burst", "64kb", "latency", "1s",
    ];
    tc(lab, Some(peer), &slow);
    let mut killed = Vec::new();
    let out = deploy_watching(lab, xdg, revision, |lab, v| {
        if v["event"] == "copy_source" && v["host"] == host && v["from"] == peer {
            // Let the pull get going, then kill the peer's side of it.
            std::thread::sleep(std::time::Duration::from_millis(1500));
            killed = pids_as(lab, peer, 1989, "nix-daemon");
            for pid in &killed {
                ok(Command::new("kill").args(["-9", pid]));
            }
        }
    });
    tc(lab, Some(peer), &["del", "dev", "DEV", "root"]);
    assert!(
        !killed.is_empty(),
        "no peer daemon was serving {host}: {}",
        out.0.debug()
    );
    out
}

/// The pids of the deployer's ssh masters (`ssh … -M … <alias>`) for `host` of this lab.
fn masters_of(lab: &Lab, host: &str) -> Vec<String> {
    let root = lab.root().display().to_string();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let ours = args.iter().any(|a| a.starts_with(&root));
        if ours
            && args.iter().any(|a| a == "-M")
            && args.iter().rev().nth(1).is_some_and(|a| a == host)
        {
            pids.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    pids
}

/// A deploy over a slowed deployer link during which the masters of the hosts waiting for
/// their peer die (as ssh gives up on an idle master whose keepalives queue behind another
/// host's push on a saturated uplink): they are killed once the first host's copy is under
/// way. Returns the run, the deployer's bytes sent, the new toplevels and the hosts whose
/// masters were killed.
fn deploy_losing_waiting_masters(
    lab: &mut Lab,
    xdg: &Path,
    revision: u32,
) -> (Run, u64, Vec<String>, Vec<String>) {
    let first = lab.hosts[0].name.clone();
    let waiting: Vec<String> = lab.hosts[1..].iter().map(|h| h.name.clone()).collect();
    // 16 MiB at 16 Mbit/s: the first host's copy takes about 8 s.
    let slow = [
        "add", "dev", "DEV", "root", "tbf", "rate", "16mbit", "burst", "64kb", "latency", "1s",
    ];
    tc(lab, None, &slow);
    let mut killed = Vec::new();
    let out = deploy_watching(lab, xdg, revision, |lab, v| {
        if killed.is_empty() && v["event"] == "copy_progress" && v["host"] == first.as_str() {
            for h in &waiting {
                for pid in masters_of(lab, h) {
                    ok(Command::new("kill").args(["-9", &pid]));
                    killed.push(h.clone());
                }
            }
        }
    });
    tc(lab, None, &["del", "dev", "DEV", "root"]);
    (out.0, out.1, out.2, killed)
}

#[test]
fn signed_paths_push_user_and_fan_out() {
    let t0 = Instant::now();
    let Some(mut lab) = Lab::start("fanout_lab", 4) else {
        return;
    };
    let xdg = lab.base.path().join("xdg");
    let public = set_up_trust(&lab, &xdg);
    let inv = hearth::inventory::load(lab.root()).unwrap();
    let secret = sign::deployer_secret_path(&xdg, &inv.fleet.domain);
    step(&format!("trust set up: deployer key {public}"), t0);

    push_user_is_least_privilege(&lab, &secret, t0);

    // The plan says who copies from whom.
    let plan = run(lab
        .hearth_cmd(&["deploy", "--all", "--dry-run"])
        .env("XDG_CONFIG_HOME", &xdg));
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("h1 → h2, h1 → h3, h2 → h4"), "{text}");
    assert!(text.contains("from peer h2 over the LAN"), "{text}");
    step("--dry-run shows the fan-out tree", t0);

    // Fan-out: every shared path crosses the deployer's link once.
    let (r, sent, tops) = deploy_revision(&mut lab, &xdg, 101, &[]);
    let (h1_paths, one_closure) = closure(&lab, &tops[0]);
    let src = sources(&r);
    for (h, peer) in [("h2", "h1"), ("h3", "h1"), ("h4", "h2")] {
        assert_eq!(src[h]["from"], peer, "{}", r.debug());
    }
    let per_host = deployer_paths(&r);
    let from_deployer: u64 = per_host.values().sum();
    let union: BTreeSet<String> = tops.iter().flat_map(|t| closure(&lab, t).0).collect();
    println!(
        "fan-out: deployer sent {sent} bytes for a {one_closure}-byte closure ({:.2}x); paths it copied {per_host:?} (union of closures {})",
        sent as f64 / one_closure as f64,
        union.len()
    );
    assert!(
        from_deployer as usize <= union.len(),
        "each path from the deployer once: {per_host:?}"
    );
    assert!(
        (sent as f64) < 1.3 * one_closure as f64,
        "deployer sent {sent} bytes, one closure is {one_closure}"
    );
    assert!(h1_paths.len() > 8);
    step(
        "fan-out deploy of 4 hosts: each path once over the deployer's link",
        t0,
    );

    // The same without fan-out, for comparison: one closure per host.
    let (_, sent_direct, _) = deploy_revision(&mut lab, &xdg, 102, &["--no-fan-out"]);
    println!(
        "--no-fan-out: deployer sent {sent_direct} bytes ({:.2}x one closure)",
        sent_direct as f64 / one_closure as f64
    );
    assert!(sent_direct as f64 > 3.0 * one_closure as f64);
    step("--no-fan-out sends a closure per host", t0);

    // A deployer link faster than the threshold (here 50 Mbit/s; the lab's link is as fast as
    // its LAN): after judging the first host's copy, the others take theirs directly.
    let (r, _, _) = deploy_revision(&mut lab, &xdg, 110, &["--fast-link-mbit=50"]);
    let src = sources(&r);
    let direct: Vec<&String> = src
        .iter()
        .filter(|(_, e)| e["from"].is_null() && e["note"].as_str().unwrap().contains("fast"))
        .map(|(h, _)| h)
        .collect();
    assert!(!direct.is_empty(), "{}", r.debug());
    step(
        &format!("a LAN-fast deployer link: {direct:?} went direct"),
        t0,
    );

    // A peer that dies in the middle of serving: h4 pulls from h2, whose daemon for that
    // pull is killed mid-copy; h4 falls back to the deployer and ends on its new system.
    let (r, sent, tops) = deploy_killing_peer_midway(&mut lab, &xdg, 105, "h2", "h4");
    assert_eq!(r.code, Some(0), "{}", r.debug());
    let h4: Vec<&Value> = r
        .events
        .iter()
        .filter(|e| e["event"] == "copy_source" && e["host"] == "h4")
        .collect();
    assert_eq!(
        h4.first().map(|e| &e["from"]),
        Some(&Value::from("h2")),
        "{}",
        r.debug()
    );
    let last = h4.last().unwrap();
    assert!(
        last["from"].is_null() && last["note"].as_str().unwrap().contains("failed"),
        "{}",
        r.debug()
    );
    for (h, top) in ["h1", "h2", "h3", "h4"].iter().zip(&tops) {
        assert_eq!(r.results()[*h], "deployed", "{}", r.debug());
        assert_eq!(lab.host(h).current().as_deref(), Some(top.as_str()), "{h}");
    }
    println!(
        "peer h2 killed mid-pull: h4 fell back ({}); deployer sent {:.2}x one closure",
        last["note"],
        sent as f64 / one_closure as f64
    );
    assert!((sent as f64) < 2.3 * one_closure as f64);
    step(
        "a peer killed in the middle of a pull: the host still ends on its new generation",
        t0,
    );

    // The hosts waiting for their peer lose their masters (ssh gives up on idle masters
    // behind a saturated uplink): each starts a new one and still pulls from its peer, so
    // the deployer's link still carries each path once.
    let (r, sent, tops, killed) = deploy_losing_waiting_masters(&mut lab, &xdg, 106);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    assert!(
        killed.len() >= 3,
        "masters killed: {killed:?}\n{}",
        r.debug()
    );
    let src = sources(&r);
    for (h, peer) in [("h2", "h1"), ("h3", "h1"), ("h4", "h2")] {
        assert_eq!(src[h]["from"], peer, "{}", r.debug());
    }
    let reconnected: BTreeSet<&str> = r
        .events
        .iter()
        .filter(|e| e["event"] == "message" && e["text"].as_str().unwrap().contains("reconnected"))
        .map(|e| e["host"].as_str().unwrap())
        .collect();
    assert_eq!(
        reconnected,
        BTreeSet::from(["h2", "h3", "h4"]),
        "{}",
        r.debug()
    );
    for (h, top) in ["h1", "h2", "h3", "h4"].iter().zip(&tops) {
        assert_eq!(r.results()[*h], "deployed", "{}", r.debug());
        assert_eq!(lab.host(h).current().as_deref(), Some(top.as_str()), "{h}");
    }
    println!(
        "masters of {killed:?} killed while waiting: deployer sent {:.2}x one closure",
        sent as f64 / one_closure as f64
    );
    assert!((sent as f64) < 1.3 * one_closure as f64);
    step(
        "waiting hosts whose masters died reconnect and still pull from their peers",
        t0,
    );

    // A peer that fails: h2 refuses peer logins, so h4 (which pulls from h2) is routed
    // around and gets everything from the deployer; every host still ends on its new system.
    let ak = lab.host("h2").dir.join("ssh/authorized_keys");
    let kept: String = std::fs::read_to_string(&ak)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("hearth-peer-"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&ak, kept).unwrap();
    let (r, sent, _) = deploy_revision(&mut lab, &xdg, 103, &[]);
    let src = sources(&r);
    assert_eq!(src["h4"]["from"], Value::Null, "{}", r.debug());
    let note = src["h4"]["note"].as_str().unwrap();
    assert!(note.contains("h2") && note.contains("failed"), "{note}");
    assert_eq!(src["h3"]["from"], "h1");
    println!(
        "peer h2 failing: deployer sent {sent} bytes ({:.2}x one closure)",
        sent as f64 / one_closure as f64
    );
    assert!((sent as f64) < 2.3 * one_closure as f64);
    step(
        "a failing peer is routed around; all hosts on the new generation",
        t0,
    );
}
