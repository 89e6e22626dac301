//! Fault tests: every bad activation ends with the host on its previous generation,
//! reachable, and `hearth deploy` exiting non-zero with what really happened.
//! Needs root (namespace test hosts); prints SKIPPED otherwise.

mod deploy_common;
use deploy_common::*;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

fn initial_deploy(lab: &Lab) -> Vec<(String, String)> {
    let r = lab.hearth(&["deploy", "--all", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    lab.hosts
        .iter()
        .map(|h| (h.name.clone(), h.current().unwrap()))
        .collect()
}

#[test]
fn bad_activations_roll_back_and_one_good_host_is_reported_truthfully() {
    let Some(mut lab) = Lab::start("bad_activations_roll_back", 5) else {
        return;
    };
    let before = initial_deploy(&lab);
    for (h, fault) in [
        ("h1", "activation-fails"),
        ("h2", "link-down"),
        ("h3", "kill-sshd"),
        ("h4", "none"),
    ] {
        lab.set(h, |c| {
            c.fault = fault.into();
            c.revision = 1;
            // Lockouts wait this long; the healthy h5 keeps the default.
            c.confirm_timeout = Some(4);
        });
    }
    // h4's health check asks for a port nobody listens on.
    lab.set("h4", |c| c.tcp_checks = vec![9]);
    lab.set("h5", |c| c.revision = 1);
    let r = lab.hearth(&["deploy", "--all", "--json"]);
    assert_eq!(r.code, Some(1), "{}", r.debug());
    let res = r.results();
    for (h, old) in &before[..4] {
        assert_eq!(res[h], "rolled-back", "{h}: {}", r.debug());
        let host = lab.host(h);
        assert_eq!(
            host.current().as_ref(),
            Some(old),
            "{h} is back on its old system"
        );
        assert_eq!(
            host.generation(),
            Some(1),
            "{h} profile back to generation 1"
        );
        assert_eq!(
            host.generations(),
            vec![1],
            "{h}: the failed generation was removed"
        );
        assert!(lab.reachable(h), "{h} reachable over a new ssh connection");
        let o = r.outcome(h);
        assert_eq!(o["rolled_back"], true);
        assert_eq!(o["new_generation"], 1, "read back from the host: {o}");
        assert_eq!(o["current"].as_str(), Some(old.as_str()));
    }
    assert!(r.outcome("h1")["detail"]
        .as_str()
        .unwrap()
        .contains("activation failed on purpose"));
    assert!(r.outcome("h2")["detail"]
        .as_str()
        .unwrap()
        .contains("no confirmation"));
    assert!(r.outcome("h3")["detail"]
        .as_str()
        .unwrap()
        .contains("no confirmation"));
    assert!(
        r.outcome("h4")["detail"]
            .as_str()
            .unwrap()
            .contains("tcp:9"),
        "{}",
        r.debug()
    );
    assert_eq!(res["h5"], "deployed", "{}", r.debug());
    assert_eq!(lab.host("h5").generation(), Some(2));
}

#[test]
fn a_broken_config_deployed_twice_rolls_back_both_times() {
    let Some(mut lab) = Lab::start("a_broken_config_deployed_twice", 1) else {
        return;
    };
    let before = initial_deploy(&lab);
    lab.set("h1", |c| {
        c.fault = "link-down".into();
        c.revision = 1;
    });
    for attempt in 1..=2 {
        let r = lab.hearth(&["deploy", "h1", "--json", "--confirm-timeout", "3"]);
        assert_eq!(r.code, Some(1), "attempt {attempt}: {}", r.debug());
        assert_eq!(
            r.results()["h1"],
            "rolled-back",
            "attempt {attempt}: {}",
            r.debug()
        );
        assert_eq!(
            lab.host("h1").current().as_ref(),
            Some(&before[0].1),
            "attempt {attempt}"
        );
        assert!(lab.reachable("h1"), "attempt {attempt}");
    }
    // The second attempt had its own token: attempt 1's files never confirmed it.
    let attempts = std::fs::read_dir(lab.host("h1").nix().join("var/hearth"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("attempt-")
        })
        .count();
    assert_eq!(attempts, 3, "initial + two broken attempts");
}

#[test]
fn a_concurrent_deploy_is_refused_naming_the_holder() {
    let Some(mut lab) = Lab::start("a_concurrent_deploy_is_refused", 1) else {
        return;
    };
    initial_deploy(&lab);
    lab.set("h1", |c| {
        c.fault = "slow".into();
        c.revision = 1;
    });
    let first = lab
        .hearth_cmd(&["deploy", "h1", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lock = lab.host("h1").nix().join("var/hearth/lock/holder");
    assert!(
        Lab::wait_until(120, || lock.exists()),
        "first deploy never took the lock"
    );
    let second = lab.hearth(&["deploy", "h1", "--json", "--force"]);
    assert_eq!(second.code, Some(1), "{}", second.debug());
    assert_eq!(second.results()["h1"], "refused", "{}", second.debug());
    let detail = second.outcome("h1")["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains("pid=") && detail.contains("deployer="),
        "{detail}"
    );
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(lab.host("h1").generation(), Some(2));
}

/// Start a deploy, wait for a JSON event matching `at`, SIGKILL the deployer.
fn kill_deployer_at(lab: &Lab, args: &[&str], at: impl Fn(&serde_json::Value) -> bool) {
    let mut child = lab
        .hearth_cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut seen = false;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if serde_json::from_str::<serde_json::Value>(&line).is_ok_and(|e| at(&e)) {
            seen = true;
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        seen,
        "the deployer finished before the point where it should be killed"
    );
}

#[test]
fn a_killed_deployer_leaves_a_complete_generation_and_a_rerun_converges() {
    let Some(mut lab) = Lab::start("a_killed_deployer", 1) else {
        return;
    };
    let before = initial_deploy(&lab);
    let old = before[0].1.clone();
    // 1. Killed while copying a large closure.
    lab.set("h1", |c| {
        c.revision = 1;
        c.payload_mib = 96;
        c.payload_paths = 24;
    });
    kill_deployer_at(&lab, &["deploy", "h1", "--json"], |e| {
        e["event"] == "copy_progress" && e["paths_done"].as_u64() > Some(0)
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        lab.host("h1").current(),
        Some(old.clone()),
        "nothing activated"
    );
    assert_eq!(lab.host("h1").generations(), vec![1]);
    let r = lab.hearth(&["deploy", "h1", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    let new = lab.host("h1").current().unwrap();
    assert_ne!(new, old);
    assert!(lab.host("h1").has_path(&new));

    // 2. Killed inside the unconfirmed window (activation takes 3 s here).
    lab.set("h1", |c| {
        c.revision = 2;
        c.fault = "slow".into();
    });
    kill_deployer_at(
        &lab,
        &["deploy", "h1", "--json", "--confirm-timeout", "3"],
        |e| e["event"] == "supervisor" && e["state"] == "activating",
    );
    // Nobody confirms: the host goes back on its own.
    let host = lab.host("h1");
    assert!(
        Lab::wait_until(30, || !host.nix().join("var/hearth/lock").exists()),
        "supervisor never finished"
    );
    assert_eq!(
        host.current(),
        Some(new.clone()),
        "back on the confirmed generation"
    );
    assert_eq!(host.generations(), vec![1, 2]);
    assert!(lab.reachable("h1"));
    let r = lab.hearth(&["deploy", "h1", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    assert_eq!(r.results()["h1"], "deployed");
    assert_eq!(host.generation(), Some(3));
}

#[test]
fn rollback_and_status_with_drift() {
    let Some(mut lab) = Lab::start("rollback_and_status_with_drift", 1) else {
        return;
    };
    let before = initial_deploy(&lab);
    lab.set("h1", |c| c.revision = 1);
    let r = lab.hearth(&["deploy", "h1", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    let gen2 = lab.host("h1").current().unwrap();

    let s = lab.hearth(&["status", "--json"]);
    assert_eq!(s.code, Some(0), "{}", s.debug());
    assert_eq!(s.events[0]["drift"], false, "{}", s.debug());
    assert_eq!(s.events[0]["generation"], 2);

    lab.set("h1", |c| c.revision = 2);
    let s = lab.hearth(&["status", "--json"]);
    assert_eq!(s.events[0]["drift"], true, "{}", s.debug());
    assert_eq!(s.events[0]["current"].as_str(), Some(gen2.as_str()));

    let rb = lab.hearth(&["rollback", "h1", "--json"]);
    assert_eq!(rb.code, Some(0), "{}", rb.debug());
    assert_eq!(rb.results()["h1"], "deployed", "{}", rb.debug());
    assert_eq!(lab.host("h1").current(), Some(before[0].1.clone()));
    assert_eq!(lab.host("h1").generation(), Some(1));
    let s = lab.hearth(&["status", "--json"]);
    assert_eq!(s.events[0]["generation"], 1);
}
