//! The deploy benchmark: prints figures, asserts nothing about speed. Ignored by default;
//! run it with `scripts/bench-deploy.sh` (root, nix, sshd, iproute2).
//!
//! 1. `hearth deploy` of a fresh ~200 MiB closure in ~50 paths to 8 hosts, against the floor:
//!    plain `nix copy` of a same-sized fresh closure to the same hosts in parallel
//!    (target ≤ 1.15 × floor). Both exclude the build (hearth's time includes its
//!    evaluation). ROUNDS (default 3) interleaved rounds; medians are reported.
//! 2. A no-op redeploy of the 8 hosts (target < 1 s).
//! 3. A lockout (activation takes the link down): from activation until the host is back on
//!    its old generation (target ≤ confirm_timeout + 1 s) and until the deployer exits
//!    (target ≤ confirm_timeout + 3 s), watched from outside the host.

mod deploy_common;
use deploy_common::*;
use std::time::{Duration, Instant};

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}

#[test]
#[ignore = "benchmark: run scripts/bench-deploy.sh"]
fn deploy_benchmark() {
    let hosts = env_u32("HOSTS", 8);
    let mib = env_u32("MIB", 200);
    let paths = env_u32("PATHS", 50);
    let confirm = env_u32("CONFIRM", 5);
    let Some(mut lab) = Lab::start("deploy_benchmark", hosts) else {
        return;
    };
    let names: Vec<String> = lab.hosts.iter().map(|h| h.name.clone()).collect();
    for h in &names {
        lab.set(h, |c| {
            c.payload_mib = mib;
            c.payload_paths = paths;
            c.revision = 1;
        });
    }
    // 1. Rounds of: the floor (plain parallel `nix copy` of a fresh closure), then hearth
    // deploy of another fresh closure of the same size. Interleaved, and the median
    // reported, because this machine is shared and noisy.
    let rounds = env_u32("ROUNDS", 3).max(1);
    let cfg = lab.ssh_config();
    let mut floors = Vec::new();
    let mut fulls = Vec::new();
    let mut phase_sums: Vec<(String, f64)> = Vec::new();
    for round in 0..rounds {
        for h in &names {
            lab.set(h, |c| c.revision = 10 * round + 1);
        }
        let tops = lab.build_all();
        let t = Instant::now();
        let children: Vec<_> = names
            .iter()
            .zip(&tops)
            .map(|(h, top)| {
                std::process::Command::new("nix")
                    .args([
                        "copy",
                        "--no-check-sigs",
                        "--to",
                        &format!("ssh-ng://root@{h}"),
                        top,
                    ])
                    .env("NIX_SSHOPTS", format!("-F {}", cfg.display()))
                    .env("NIX_CONFIG", lab.lab.nix_config())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success());
        }
        floors.push(t.elapsed().as_secs_f64());

        for h in &names {
            lab.set(h, |c| c.revision = 10 * round + 2);
        }
        lab.build_all();
        let r = lab.hearth(&["deploy", "--all", "--json"]);
        assert_eq!(r.code, Some(0), "{}", r.debug());
        fulls.push(r.elapsed.as_secs_f64());
        // Mean seconds per phase over hosts and rounds (where the time beyond the copy goes).
        for o in r.summary()["hosts"].as_array().unwrap() {
            for p in o["phases"].as_array().unwrap() {
                let (name, secs) = (p[0].as_str().unwrap().to_string(), p[1].as_f64().unwrap());
                let share = secs / (hosts * rounds) as f64;
                match phase_sums.iter_mut().find(|(n, _)| *n == name) {
                    Some(e) => e.1 += share,
                    None => phase_sums.push((name, share)),
                }
            }
        }
    }
    let phases = phase_sums
        .iter()
        .map(|(n, s)| format!("{n} {s:.2}s"))
        .collect::<Vec<_>>()
        .join(", ");
    let ratios: Vec<f64> = fulls.iter().zip(&floors).map(|(f, c)| f / c).collect();

    // 2. No-op.
    let noop = lab.hearth(&["deploy", "--all", "--json"]);
    assert_eq!(noop.code, Some(0), "{}", noop.debug());

    // 3. Lockout on h1.
    lab.set("h1", |c| {
        c.fault = "link-down".into();
        c.revision = 3;
        c.payload_mib = 0;
    });
    lab.build_all();
    // What the host runs (the lab's /run/current-system), not the profile: the profile
    // moves only once an attempt is confirmed, so a lockout never touches it.
    let running = lab.host("h1").nix().join("var/lab/current-system");
    let old = std::fs::read_link(&running).unwrap();
    let mut child = lab
        .hearth_cmd(&[
            "deploy",
            "h1",
            "--json",
            "--confirm-timeout",
            &confirm.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let limit = Duration::from_secs(u64::from(confirm) + 120);
    let wait_until = |what: &str, done: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < limit, "h1 never {what} within {limit:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let runs_old = || std::fs::read_link(&running).ok().as_ref() == Some(&old);
    wait_until("activated the new system", &|| !runs_old());
    let t_act = Instant::now();
    wait_until("went back to its old system", &runs_old);
    let back = t_act.elapsed();
    child.wait().unwrap();
    let exit = t_act.elapsed();

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nhearth deploy benchmark: {hosts} hosts, {mib} MiB in {paths} paths, confirm_timeout {confirm}s (load {})",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "  nix copy floor (parallel)       {:7.2} s   (median of {rounds}: {})",
        median(&floors),
        list(&floors)
    );
    println!(
        "  hearth deploy                   {:7.2} s   (median of {rounds}: {})",
        median(&fulls),
        list(&fulls)
    );
    println!(
        "  deploy / floor, per round        {:7.2} x   (median; rounds: {}; target <= 1.15)",
        median(&ratios),
        list(&ratios)
    );
    println!("    per host (mean): {phases}");
    println!(
        "  no-op redeploy                  {:7.2} s   (target < 1)",
        noop.elapsed.as_secs_f64()
    );
    println!(
        "  lockout: back on old gen after  {:7.2} s   (target <= {})",
        back.as_secs_f64(),
        confirm + 1
    );
    println!(
        "  lockout: deployer exited after  {:7.2} s   (target <= {})",
        exit.as_secs_f64(),
        confirm + 3
    );
}
