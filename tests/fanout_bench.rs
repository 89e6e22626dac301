//! The slow-deployer-link benchmark: prints figures, asserts nothing about speed. Ignored by
//! default; run it with `scripts/bench-deploy.sh` (root, nix, sshd, iproute2 with `tc`).
//!
//! 8 hosts, a fresh ~200 MiB closure in ~50 paths per deploy. The deployer's side of the
//! lab bridge is throttled with `tc … tbf` (the bridge's own interface carries only what the
//! root namespace — the deployer — sends; host-to-host frames are forwarded past it).
//!
//! Unthrottled, ROUNDS rounds (default 3), each interleaving: the floor (plain parallel
//! `nix copy` of a fresh closure), hearth with fan-out after its SSH masters were closed
//! (the cold round), then hearth with fan-out and hearth `--no-fan-out`, warm, taking turns
//! going first.
//! Then per rate of RATES (Mbit/s, `rate[:rounds]`, default "20:1,200:2"): the floor and
//! hearth with fan-out on the throttled link. Every round is printed, then medians.
//!
//! Targets: bytes ≤ 1.3 × one closure; ≤ 0.35 × the floor at 20 Mbit/s; never slower
//! than `--no-fan-out` unthrottled; cold ≤ 1.15 × the floor.

mod deploy_common;
mod fanout_support;
use deploy_common::*;
use fanout_support::*;
use std::process::Command;
use std::time::Instant;

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn throttle(lab: &Lab, mbit: Option<u32>) {
    let dev = lab.lab.config.bridge();
    let _ = run(Command::new("tc").args(["qdisc", "del", "dev", &dev, "root"]));
    if let Some(rate) = mbit {
        ok(Command::new("tc").args([
            "qdisc",
            "add",
            "dev",
            &dev,
            "root",
            "tbf",
            "rate",
            &format!("{rate}mbit"),
            "burst",
            "256kb",
            "latency",
            "2s",
        ]));
    }
}

struct Round {
    secs: f64,
    sent: u64,
    /// hearth only: seconds from start until the first copy began (evaluation, build
    /// check, connections), until the last copy ended, and the link verdict it printed.
    first_copy: f64,
    copies_done: f64,
    verdict: String,
    /// Mean seconds per phase over the hosts.
    phases: Vec<(String, f64)>,
}

impl Round {
    fn plain(secs: f64, sent: u64) -> Round {
        Round {
            secs,
            sent,
            first_copy: 0.0,
            copies_done: 0.0,
            verdict: String::new(),
            phases: Vec::new(),
        }
    }
}

/// Fresh closures, one revision after another, and the space they take: every step's
/// closures (8 hosts × 200 MiB each) are removed once the next revision is deployed, from
/// the hosts' stores and from this machine's, so the run never holds more than two.
struct Revisions {
    names: Vec<String>,
    mib: u32,
    paths: u32,
    rev: u32,
    latest: Vec<String>,
    stale: Vec<String>,
}

impl Revisions {
    /// Build the next revision's closures (one per host).
    fn next(&mut self, lab: &mut Lab) -> Vec<String> {
        self.rev += 1;
        for h in &self.names {
            lab.set(h, |c| {
                c.payload_mib = self.mib;
                c.payload_paths = self.paths;
                c.revision = self.rev;
            });
        }
        self.stale.append(&mut self.latest);
        self.latest = lab.build_all();
        self.latest.clone()
    }

    /// Drop what earlier revisions left: the hosts' old generations and unrooted paths
    /// (each host runs its own store; `nix-store --gc` there), and on this machine only the
    /// stale revisions' own paths (its store is shared: never a general collection).
    fn collect(&mut self, lab: &Lab) {
        std::thread::scope(|s| {
            for h in &self.names {
                s.spawn(move || {
                    lab.ssh_as(
                        h,
                        "root",
                        "nix-env -p /nix/var/nix/profiles/system --delete-generations old >/dev/null 2>&1; nix-store --gc >/dev/null 2>&1",
                    )
                });
            }
        });
        if self.stale.is_empty() {
            return;
        }
        let keep: std::collections::BTreeSet<String> =
            self.latest.iter().flat_map(|t| closure(lab, t).0).collect();
        let mut old: std::collections::BTreeSet<String> =
            self.stale.iter().flat_map(|t| closure(lab, t).0).collect();
        old.retain(|p| !keep.contains(p));
        let delete = |paths: &[&String]| {
            run(Command::new("nix-store")
                .arg("--delete")
                .args(paths)
                .env("NIX_CONFIG", lab.lab.nix_config()))
            .status
            .success()
        };
        let all: Vec<&String> = old.iter().collect();
        if !delete(&all) {
            // One is still alive (hearth's GC root of its last deploy): the others, one by one.
            for p in &all {
                delete(&[p]);
            }
        }
        self.stale.clear();
    }
}

fn disk_free() -> String {
    let out = run(Command::new("df").args(["-h", "--output=avail", "/"]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string()
}

fn floor(lab: &Lab, names: &[String], tops: &[String]) -> Round {
    let before = deployer_tx(lab);
    let t = Instant::now();
    let children: Vec<_> = names
        .iter()
        .zip(tops)
        .map(|(h, top)| {
            Command::new("nix")
                .args([
                    "copy",
                    "--no-check-sigs",
                    "--to",
                    &format!("ssh-ng://root@{h}"),
                    top,
                ])
                .env("NIX_SSHOPTS", format!("-F {}", lab.ssh_config().display()))
                .env("NIX_CONFIG", lab.lab.nix_config())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    Round::plain(t.elapsed().as_secs_f64(), deployer_tx(lab) - before)
}

/// hearth's own runtime dir, so the cold round closes only this benchmark's masters.
fn runtime_dir(lab: &Lab) -> std::path::PathBuf {
    let d = lab.base.path().join("rt");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    d
}

/// Close hearth's SSH masters (as if they had expired): the next deploy is cold.
fn close_masters(lab: &Lab) {
    let dir = runtime_dir(lab).join("hearth-ssh");
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let _ = run(Command::new("ssh")
            .arg("-S")
            .arg(e.path())
            .args(["-O", "exit", "lab-host"]));
    }
}

fn hearth(lab: &Lab, xdg: &std::path::Path, extra: &[&str]) -> Round {
    use std::io::BufRead;
    let before = deployer_tx(lab);
    let t = Instant::now();
    let mut args = vec!["deploy", "--all", "--json"];
    args.extend(extra);
    let mut cmd = lab.hearth_cmd(&args);
    cmd.env("XDG_CONFIG_HOME", xdg)
        .env("XDG_RUNTIME_DIR", runtime_dir(lab))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // Each event with the moment it arrived.
    let mut events = Vec::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            events.push((t.elapsed().as_secs_f64(), v));
        }
    }
    let status = child.wait().unwrap();
    let secs = t.elapsed().as_secs_f64();
    let sent = deployer_tx(lab) - before;
    let text: Vec<String> = events.iter().map(|(_, v)| v.to_string()).collect();
    assert!(status.success(), "{}", text.join("\n"));
    let copy = |v: &serde_json::Value, what: &str| v["event"] == what && v["phase"] == "copy";
    let first_copy = events
        .iter()
        .find(|(_, v)| copy(v, "phase_started"))
        .map_or(0.0, |e| e.0);
    let copies_done = events
        .iter()
        .filter(|(_, v)| copy(v, "phase_finished"))
        .map(|e| e.0)
        .fold(0.0, f64::max);
    let verdict = events
        .iter()
        .filter_map(|(_, v)| v["text"].as_str())
        .find(|t| t.starts_with("this machine's link") || t.starts_with("fan-out without"))
        .map(|t| {
            t.split(':')
                .nth(1)
                .unwrap_or("")
                .split('(')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let mut phases: Vec<(String, f64)> = Vec::new();
    let summary = &events.last().unwrap().1;
    let hosts = summary["hosts"].as_array().unwrap();
    for o in hosts {
        for p in o["phases"].as_array().unwrap() {
            let (name, s) = (p[0].as_str().unwrap().to_string(), p[1].as_f64().unwrap());
            let share = s / hosts.len() as f64;
            match phases.iter_mut().find(|(n, _)| *n == name) {
                Some(e) => e.1 += share,
                None => phases.push((name, share)),
            }
        }
    }
    Round {
        secs,
        sent,
        first_copy,
        copies_done,
        verdict,
        phases,
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}

fn list(v: &[f64], unit: &str) -> String {
    v.iter()
        .map(|x| format!("{x:.2}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line of a hearth run: time, ratio to the floor, bytes, where the time went.
fn describe(r: &Round, floor: f64, closure: u64) -> String {
    let phases = r
        .phases
        .iter()
        .map(|(n, s)| format!("{n} {s:.2}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{:.2}s = {:.2}x floor, deployer sent {:.2}x closure; first copy at {:.2}s, copies done at {:.2}s; link: {}; per host (mean s): {phases}",
        r.secs,
        r.secs / floor,
        r.sent as f64 / closure as f64,
        r.first_copy,
        r.copies_done,
        if r.verdict.is_empty() { "-" } else { &r.verdict },
    )
}

fn rates() -> Vec<(u32, u32)> {
    std::env::var("RATES")
        .unwrap_or_else(|_| "20:1,200:2".into())
        .split(',')
        .filter_map(|r| {
            let mut it = r.trim().split(':');
            let rate = it.next()?.parse().ok()?;
            let rounds = it.next().and_then(|n| n.parse().ok()).unwrap_or(1);
            Some((rate, rounds))
        })
        .collect()
}

#[test]
#[ignore = "benchmark: run scripts/bench-deploy.sh"]
fn fanout_benchmark() {
    let hosts = env_u32("HOSTS", 8);
    let mib = env_u32("MIB", 200);
    let paths = env_u32("PATHS", 50);
    let rounds = env_u32("ROUNDS", 3);
    let Some(mut lab) = Lab::start("fanout_benchmark", hosts) else {
        return;
    };
    let names: Vec<String> = lab.hosts.iter().map(|h| h.name.clone()).collect();
    let xdg = lab.base.path().join("xdg");
    set_up_trust(&lab, &xdg);
    let mut revs = Revisions {
        names: names.clone(),
        mib,
        paths,
        rev: 1000,
        latest: vec![],
        stale: vec![],
    };
    let mut next = |lab: &mut Lab| {
        let tops = revs.next(lab);
        revs.collect(lab);
        tops
    };
    println!("disk free at the start: {}", disk_free());
    let tops = next(&mut lab);
    let closure = closure(&lab, &tops[0]).1;
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "\nfan-out benchmark: {hosts} hosts, one closure {:.1} MiB in {paths} paths (load {})",
        closure as f64 / 1048576.0,
        load()
    );
    // Warm the deploy path once (hosts get the trusted key's configuration; not measured).
    hearth(&lab, &xdg, &["--no-fan-out"]);
    let (mut floors, mut colds, mut warms, mut directs) = (vec![], vec![], vec![], vec![]);
    for round in 1..=rounds {
        let tops = next(&mut lab);
        let f = floor(&lab, &names, &tops);
        next(&mut lab);
        close_masters(&lab);
        let cold = hearth(&lab, &xdg, &[]);
        // Warm fan-out and --no-fan-out take turns going first (the load drifts).
        let mut pair = |fan_out: bool| {
            next(&mut lab);
            hearth(&lab, &xdg, if fan_out { &[] } else { &["--no-fan-out"] })
        };
        let (warm, direct) = if round % 2 == 1 {
            let w = pair(true);
            (w, pair(false))
        } else {
            let d = pair(false);
            (pair(true), d)
        };
        println!(
            "unthrottled round {round} (load {}, disk free {}): floor {:.2}s ({:.2}x closure)",
            load(),
            disk_free(),
            f.secs,
            f.sent as f64 / closure as f64
        );
        println!("  cold fan-out:  {}", describe(&cold, f.secs, closure));
        println!("  warm fan-out:  {}", describe(&warm, f.secs, closure));
        println!("  --no-fan-out:  {}", describe(&direct, f.secs, closure));
        floors.push(f.secs);
        colds.push(cold);
        warms.push(warm);
        directs.push(direct);
    }
    let ratio =
        |v: &[Round]| -> Vec<f64> { v.iter().zip(&floors).map(|(r, f)| r.secs / f).collect() };
    let bytes =
        |v: &[Round]| -> Vec<f64> { v.iter().map(|r| r.sent as f64 / closure as f64).collect() };
    let fan_vs_direct: Vec<f64> = warms
        .iter()
        .zip(&directs)
        .map(|(w, d)| w.secs / d.secs)
        .collect();
    println!("unthrottled, medians of {rounds} rounds:");
    println!(
        "  floor                    {:6.2}s  (rounds: {})",
        median(&floors),
        list(&floors, "s")
    );
    for (name, v) in [
        ("cold fan-out", &colds),
        ("warm fan-out", &warms),
        ("--no-fan-out", &directs),
    ] {
        println!(
            "  {name:<13} / floor    {:6.2}x  (rounds: {}; bytes {})",
            median(&ratio(v)),
            list(&ratio(v), "x"),
            list(&bytes(v), "x")
        );
    }
    println!(
        "  warm fan-out / --no-fan-out {:.2}x  (rounds: {}; target <= 1)",
        median(&fan_vs_direct),
        list(&fan_vs_direct, "x")
    );
    for (rate, rounds) in rates() {
        let (mut fl, mut hs) = (vec![], vec![]);
        for round in 1..=rounds {
            throttle(&lab, Some(rate));
            let tops = next(&mut lab);
            let f = floor(&lab, &names, &tops);
            next(&mut lab);
            let h = hearth(&lab, &xdg, &[]);
            throttle(&lab, None);
            println!(
                "{rate} Mbit/s round {round} (load {}, disk free {}): floor {:.2}s ({:.2}x closure); hearth fan-out {}",
                load(),
                disk_free(),
                f.secs,
                f.sent as f64 / closure as f64,
                describe(&h, f.secs, closure)
            );
            fl.push(f.secs);
            hs.push(h);
        }
        let r: Vec<f64> = hs.iter().zip(&fl).map(|(h, f)| h.secs / f).collect();
        let b: Vec<f64> = hs.iter().map(|h| h.sent as f64 / closure as f64).collect();
        println!(
            "{rate} Mbit/s, medians of {rounds}: floor {:.2}s, hearth fan-out {:.2}s = {:.2}x floor, deployer sent {:.2}x one closure",
            median(&fl),
            median(&hs.iter().map(|h| h.secs).collect::<Vec<_>>()),
            median(&r),
            median(&b)
        );
    }
}
