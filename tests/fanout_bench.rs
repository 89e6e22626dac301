//! The slow-deployer-link benchmark: prints figures, asserts nothing about speed. Ignored by
//! default; run it with `scripts/bench-deploy.sh` (root, nix, sshd, iproute2 with `tc`).
//!
//! 8 hosts, a fresh ~200 MiB closure in ~50 paths per round. The deployer's side of the
//! lab bridge is throttled with `tc … tbf` (the bridge's own interface carries only what the
//! root namespace — the deployer — sends; host-to-host frames are forwarded past it), at
//! each rate of RATES (Mbit/s, default "20,200"), and unthrottled. Per rate:
//! - the floor: plain `nix copy` of a fresh closure to every host in parallel;
//! - `hearth deploy --all` with fan-out: wall time and bytes the deployer sent;
//! - unthrottled also `--no-fan-out`, fan-out forced on the fast link, and the first (cold:
//!   no SSH masters yet) round apart. By default hearth judges the link on the first host's
//!   copy and skips fan-out above 400 Mbit/s.
//! Targets: bytes ≤ 1.3 × one closure; ≤ 0.35 × the floor at 20 Mbit/s; never slower
//! than `--no-fan-out` unthrottled.

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
}

fn set_revision(lab: &mut Lab, names: &[String], mib: u32, paths: u32, rev: u32) -> Vec<String> {
    for h in names {
        lab.set(h, |c| {
            c.payload_mib = mib;
            c.payload_paths = paths;
            c.revision = rev;
        });
    }
    lab.build_all()
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
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    Round {
        secs: t.elapsed().as_secs_f64(),
        sent: deployer_tx(lab) - before,
    }
}

fn hearth(lab: &Lab, xdg: &std::path::Path, extra: &[&str]) -> Round {
    hearth_env(lab, xdg, extra, None)
}

/// `fast_link`: `HEARTH_FAN_OUT_FAST_LINK_MBIT` (Some("0") forces fan-out on a fast link).
fn hearth_env(lab: &Lab, xdg: &std::path::Path, extra: &[&str], fast_link: Option<&str>) -> Round {
    let before = deployer_tx(lab);
    let t = Instant::now();
    let mut args = vec!["deploy", "--all", "--json"];
    args.extend(extra);
    let mut cmd = lab.hearth_cmd(&args);
    cmd.env("XDG_CONFIG_HOME", xdg);
    if let Some(v) = fast_link {
        cmd.env("HEARTH_FAN_OUT_FAST_LINK_MBIT", v);
    }
    let out = run(&mut cmd);
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Round {
        secs,
        sent: deployer_tx(lab) - before,
    }
}

#[test]
#[ignore = "benchmark: run scripts/bench-deploy.sh"]
fn fanout_benchmark() {
    let hosts = env_u32("HOSTS", 8);
    let mib = env_u32("MIB", 200);
    let paths = env_u32("PATHS", 50);
    let rates: Vec<u32> = std::env::var("RATES")
        .unwrap_or_else(|_| "20,200".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let Some(mut lab) = Lab::start("fanout_benchmark", hosts) else {
        return;
    };
    let names: Vec<String> = lab.hosts.iter().map(|h| h.name.clone()).collect();
    let xdg = lab.base.path().join("xdg");
    set_up_trust(&lab, &xdg);
    let mut rev = 1000;
    let mut next = |lab: &mut Lab| {
        rev += 1;
        set_revision(lab, &names, mib, paths, rev)
    };
    // Unthrottled: the cold first round on its own, then warm rounds.
    let tops = next(&mut lab);
    let closure = closure(&lab, &tops[0]).1;
    println!(
        "one closure: {:.1} MiB; {hosts} hosts",
        closure as f64 / 1048576.0
    );
    let cold_floor = floor(&lab, &names, &tops);
    let tops = next(&mut lab);
    let _ = tops;
    let cold = hearth(&lab, &xdg, &[]);
    let tops = next(&mut lab);
    let warm_floor = floor(&lab, &names, &tops);
    next(&mut lab);
    let warm = hearth(&lab, &xdg, &[]);
    next(&mut lab);
    let direct = hearth(&lab, &xdg, &["--no-fan-out"]);
    next(&mut lab);
    let forced = hearth_env(&lab, &xdg, &[], Some("0"));
    let x = |r: &Round| r.sent as f64 / closure as f64;
    println!(
        "unthrottled cold: floor {:.2}s, hearth fan-out {:.2}s ({:.2}x floor), deployer sent {:.2}x one closure",
        cold_floor.secs, cold.secs, cold.secs / cold_floor.secs, x(&cold)
    );
    println!(
        "unthrottled warm: floor {:.2}s, hearth fan-out {:.2}s ({:.2}x floor, {:.2}x closure), --no-fan-out {:.2}s ({:.2}x floor, {:.2}x closure)",
        warm_floor.secs, warm.secs, warm.secs / warm_floor.secs, x(&warm),
        direct.secs, direct.secs / warm_floor.secs, x(&direct)
    );
    println!(
        "unthrottled, fan-out forced on the fast link (HEARTH_FAN_OUT_FAST_LINK_MBIT=0): {:.2}s ({:.2}x floor, {:.2}x closure)",
        forced.secs, forced.secs / warm_floor.secs, x(&forced)
    );
    for rate in rates {
        throttle(&lab, Some(rate));
        let tops = next(&mut lab);
        let f = floor(&lab, &names, &tops);
        next(&mut lab);
        let h = hearth(&lab, &xdg, &[]);
        throttle(&lab, None);
        println!(
            "{rate} Mbit/s: floor {:.2}s (sent {:.2}x closure), hearth fan-out {:.2}s = {:.2}x floor, deployer sent {:.2}x one closure",
            f.secs, x(&f), h.secs, h.secs / f.secs, x(&h)
        );
    }
}
