//! Fault tests against lab hosts: every bad activation ends with the host on its previous
//! generation, reachable, and `hearth deploy` exiting non-zero with what really happened.
//! Needs root (namespace test hosts); prints SKIPPED otherwise.

mod deploy_common;
use deploy_common::*;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
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
    let faults = [
        ("h1", "activation-fails"),
        ("h2", "link-down"),
        ("h3", "kill-sshd"),
        ("h4", "payload-down"),
    ];
    for (h, fault) in faults {
        lab.set(h, |c| {
            c.fault = fault.into();
            c.revision = 1;
            // Lockouts wait this long; the healthy h5 keeps the default.
            c.confirm_timeout = Some(4);
        });
    }
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
    let detail = |h: &str| r.outcome(h)["detail"].as_str().unwrap().to_string();
    assert!(
        detail("h1").contains("switch-to-configuration test failed"),
        "{}",
        detail("h1")
    );
    assert!(detail("h2").contains("no confirmation"), "{}", detail("h2"));
    assert!(detail("h3").contains("no confirmation"), "{}", detail("h3"));
    assert!(detail("h4").contains("tcp:8080"), "{}", detail("h4"));
    assert_eq!(res["h5"], "deployed", "{}", r.debug());
    assert_eq!(lab.host("h5").generation(), Some(2));
    // The payload service of the restored systems answers again.
    let st = lab.hearth(&["status", "--json"]);
    assert_eq!(st.code, Some(0), "every host reachable: {}", st.debug());
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
    // Each attempt had its own token: attempt 1's files never confirmed attempt 2.
    assert_eq!(
        lab.host("h1").attempts(),
        3,
        "initial + two broken attempts"
    );
}

#[test]
fn a_concurrent_deploy_is_refused_naming_the_holder() {
    let Some(mut lab) = Lab::start("a_concurrent_deploy_is_refused", 1) else {
        return;
    };
    let before = initial_deploy(&lab);
    lab.set("h1", |c| {
        c.fault = "activation-hangs".into();
        c.revision = 1;
    });
    let first = lab
        .hearth_cmd(&["deploy", "h1", "--json", "--activation-timeout", "8"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lock = lab.host("h1").nix().join("var/hearth/holder");
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
    // The first deploy's hung activation is killed and rolled back.
    let out = first.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(r#""result":"rolled-back""#), "{stdout}");
    assert!(stdout.contains("did not finish within 8s"), "{stdout}");
    assert_eq!(lab.host("h1").current(), Some(before[0].1.clone()));
    // The timeout killed the activation's whole process tree, not only its shell.
    let netns = lab.lab.host("h1").unwrap().netns.clone();
    let left: Vec<String> = String::from_utf8_lossy(&sh(&format!("ip netns pids {netns}")).stdout)
        .split_whitespace()
        .filter_map(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("switch-to-configuration") || c.starts_with("sleep "))
        .collect();
    assert!(left.is_empty(), "left of the hung activation: {left:?}");
}

/// Start a deploy in its own process group, wait for a JSON event matching `at`, then
/// SIGKILL the whole group (the deployer and its ssh/nix children), like a laptop dying.
fn kill_deployer_at(lab: &Lab, args: &[&str], at: impl Fn(&serde_json::Value) -> bool) {
    let mut child = lab
        .hearth_cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
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
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
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

    // 2. Killed inside the confirmation window: nobody confirms, the host goes back.
    lab.set("h1", |c| c.revision = 2);
    kill_deployer_at(
        &lab,
        &["deploy", "h1", "--json", "--confirm-timeout", "3"],
        |e| e["event"] == "supervisor" && e["state"] == "waiting-confirm",
    );
    let host = lab.host("h1");
    assert!(
        Lab::wait_until(30, || !host.nix().join("var/hearth/holder").exists()),
        "supervisor never finished"
    );
    std::thread::sleep(Duration::from_millis(300));
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

/// The host's running system and boot entry, read from its own tree.
fn running_and_boot(lab: &Lab, host: &str) -> (Option<String>, Option<String>) {
    let st = lab.lab.state(host).unwrap();
    (st.current_system, st.boot_system)
}

/// After a power cycle: reachable, and (systemd) its units up.
fn booted_fine(lab: &Lab, host: &str) {
    assert!(lab.reachable(host), "{host} unreachable after the reboot");
    if lab.lab.systemd_pid(host).unwrap().is_some() {
        let out = lab
            .lab
            .console_exec(
                host,
                "systemctl is-system-running; systemctl is-active lab-sshd.service lab-payload.service",
            )
            .unwrap();
        assert_eq!(out, "running\nactive\nactive\n", "{host} after the reboot");
    }
}

/// A reboot during activation and in the confirmation window boots the previous
/// generation; one after the commit boots the new one. Each time the profile, the boot
/// entry and the running system agree on one complete generation.
fn reboot_at_three_moments(systemd: bool) {
    let test = if systemd {
        "reboot_at_three_moments_systemd"
    } else {
        "reboot_at_three_moments_plain"
    };
    let Some(mut lab) = Lab::start_with(test, 1, systemd) else {
        return;
    };
    assert_eq!(lab.lab.systemd_pid("h1").unwrap().is_some(), systemd);
    let old = initial_deploy(&lab)[0].1.clone();
    let old_state = (Some(old.clone()), Some(old.clone()));
    assert_eq!(running_and_boot(&lab, "h1"), old_state);

    // 1. During activation (it hangs): power cut, the old generation boots.
    lab.set("h1", |c| {
        c.revision = 1;
        c.fault = "activation-hangs".into();
    });
    let mut child = lab
        .hearth_cmd(&["deploy", "h1", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let hanging = Lab::wait_until(60, || {
        lab.lab
            .state("h1")
            .unwrap()
            .activation_log
            .iter()
            .any(|l| l.contains("hanging (fault: activation-hangs)"))
    });
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    child.wait().unwrap();
    assert!(hanging, "the activation never started");
    lab.lab.reboot("h1").unwrap();
    assert_eq!(
        running_and_boot(&lab, "h1"),
        old_state,
        "reboot during activation"
    );
    assert_eq!(lab.host("h1").generations(), vec![1]);
    booted_fine(&lab, "h1");

    // 2. In the confirmation window: the new system runs but is not confirmed.
    lab.set("h1", |c| {
        c.revision = 2;
        c.fault = "none".into();
    });
    kill_deployer_at(
        &lab,
        &["deploy", "h1", "--json", "--confirm-timeout", "60"],
        |e| e["event"] == "supervisor" && e["state"] == "waiting-confirm",
    );
    let (running, boot) = running_and_boot(&lab, "h1");
    assert_ne!(running, Some(old.clone()), "the new system was activated");
    assert_eq!(boot, Some(old.clone()), "but is not the boot default yet");
    lab.lab.reboot("h1").unwrap();
    assert_eq!(
        running_and_boot(&lab, "h1"),
        old_state,
        "reboot in the confirm window"
    );
    assert_eq!(lab.host("h1").generations(), vec![1]);
    booted_fine(&lab, "h1");

    // 3. After the commit: the new generation boots. The dead supervisors' lock (from
    // an earlier boot) does not refuse this deploy.
    lab.set("h1", |c| c.revision = 3);
    let r = lab.hearth(&["deploy", "h1", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    let new = lab.host("h1").current().unwrap();
    assert_ne!(new, old);
    lab.lab.reboot("h1").unwrap();
    assert_eq!(
        running_and_boot(&lab, "h1"),
        (Some(new.clone()), Some(new.clone())),
        "reboot after the commit"
    );
    assert_eq!(lab.host("h1").generations(), vec![1, 2]);
    booted_fine(&lab, "h1");
    let served = lab
        .lab
        .console_exec("h1", "perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(\"127.0.0.1:8080\") or exit 1; print $s \"GET / HTTP/1.0\\r\\n\\r\\n\"; print <$s>'")
        .unwrap();
    assert!(served.contains(&new), "payload after the reboot: {served}");
}

#[test]
fn reboot_at_three_moments_plain() {
    reboot_at_three_moments(false);
}

#[test]
fn reboot_at_three_moments_systemd() {
    reboot_at_three_moments(true);
}

#[test]
fn a_failing_first_deploy_says_there_is_nothing_to_return_to() {
    let Some(mut lab) = Lab::start("a_failing_first_deploy", 1) else {
        return;
    };
    lab.set("h1", |c| c.fault = "activation-fails".into());
    let r = lab.hearth(&["deploy", "h1", "--json"]);
    assert_eq!(r.code, Some(1), "{}", r.debug());
    assert_ne!(r.results()["h1"], "rolled-back", "{}", r.debug());
    assert_ne!(r.results()["h1"], "deployed", "{}", r.debug());
    let detail = r.outcome("h1")["detail"].as_str().unwrap_or("").to_string();
    assert!(
        detail.contains("no previous generation to return to"),
        "{detail}"
    );
    assert_eq!(lab.host("h1").generations(), Vec::<u32>::new());
}

/// The lab hosts of this pass boot systemd under `HEARTH_LAB_SYSTEMD=1`, else plain.
fn this_pass() -> bool {
    hearth::lab::systemd_by_default()
}

/// The states of every attempt on `host`, read from its tree: (token, state).
fn attempt_states(lab: &Lab, host: &str) -> Vec<(String, String)> {
    let dir = lab.host(host).nix().join("var/hearth");
    let mut v: Vec<(String, String)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let token = name.strip_prefix("attempt-")?.to_string();
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            let state = status
                .lines()
                .find_map(|l| l.strip_prefix("state="))
                .unwrap_or("")
                .to_string();
            Some((token, state))
        })
        .collect();
    v.sort();
    v
}

/// One `hearth status --json` row for `host`.
fn status_row(lab: &Lab, host: &str) -> serde_json::Value {
    let s = lab.hearth(&["status", host, "--json"]);
    s.events
        .iter()
        .find(|e| e["host"] == host)
        .cloned()
        .unwrap_or_else(|| panic!("no status row for {host}: {}", s.debug()))
}

/// Two deploys started together: exactly one activates, the other is refused and says
/// who holds the host and since when. Then the holder dies with the host (a reboot while
/// it activates): its record stays behind, is never reported as a holder, and the next
/// deploy takes the host. A host that cannot be reached is reported so, never as drift.
#[test]
fn locks_two_deploys_at_once_and_a_stale_lock_after_a_reboot() {
    let test = "locks_two_deploys_at_once_and_a_stale_lock_after_a_reboot";
    let Some(mut lab) = Lab::start_at(
        test,
        "sylock",
        "10.77.240.0".parse().unwrap(),
        1,
        this_pass(),
    ) else {
        return;
    };
    let old = initial_deploy(&lab)[0].1.clone();
    // The winner's activation hangs until its timeout, so the two always overlap.
    lab.set("h1", |c| {
        c.revision = 1;
        c.fault = "activation-hangs".into();
    });
    let args = ["deploy", "h1", "--json", "--activation-timeout", "10"];
    let spawn = || {
        lab.hearth_cmd(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let outs: Vec<String> = [a, b]
        .into_iter()
        .map(|c| String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout).into_owned())
        .collect();
    let result = |out: &str| -> serde_json::Value {
        out.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["event"] == "summary")
            .map(|e| e["hosts"][0].clone())
            .unwrap_or_else(|| panic!("no summary:\n{out}"))
    };
    let (r0, r1) = (result(&outs[0]), result(&outs[1]));
    let (winner, loser) = if r0["result"] == "refused" {
        (r1, r0)
    } else {
        (r0, r1)
    };
    assert_eq!(loser["result"], "refused", "{outs:?}");
    assert_eq!(winner["result"], "rolled-back", "{outs:?}");
    let why = loser["detail"].as_str().unwrap();
    assert!(
        why.contains("host is locked by another deploy: pid=") && why.contains(" since=20"),
        "the loser names the holder and since when: {why}"
    );
    let hung = lab
        .lab
        .state("h1")
        .unwrap()
        .activation_log
        .iter()
        .filter(|l| l.contains("hanging (fault: activation-hangs)"))
        .count();
    assert_eq!(hung, 1, "exactly one activation ran");
    let states: Vec<String> = attempt_states(&lab, "h1")
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let refused = states.iter().filter(|s| *s == "refused").count();
    assert_eq!((states.len(), refused), (3, 1), "{states:?}");
    assert_eq!(lab.host("h1").current(), Some(old.clone()));

    // A holder that dies with its host: the record stays, the lock does not.
    let mut child = lab
        .hearth_cmd(&["deploy", "h1", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let record = lab.host("h1").nix().join("var/hearth/holder");
    let hanging = Lab::wait_until(120, || {
        lab.lab
            .state("h1")
            .unwrap()
            .activation_log
            .iter()
            .filter(|l| l.contains("hanging (fault: activation-hangs)"))
            .count()
            == 2
    });
    assert!(hanging, "the second activation never started");
    let held = status_row(&lab, "h1");
    assert!(
        held["lock"].as_str().unwrap_or("").contains("deployer="),
        "a live holder is shown: {held}"
    );
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    child.wait().unwrap();
    lab.lab.reboot("h1").unwrap();
    let leftover = std::fs::read_to_string(&record).expect("the dead holder's record stays");
    assert!(leftover.contains(" boot="), "{leftover}");
    let row = status_row(&lab, "h1");
    assert_eq!(row["lock"], "", "a dead holder is not shown: {row}");
    lab.set("h1", |c| {
        c.revision = 2;
        c.fault = "none".into();
    });
    let r = lab.hearth(&["deploy", "h1", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    assert_eq!(r.results()["h1"], "deployed", "{}", r.debug());
    assert!(!record.exists(), "released");

    // Unreachable: said so, never drift.
    lab.lab.cut_link("h1").unwrap();
    let row = status_row(&lab, "h1");
    lab.lab.restore_link("h1").unwrap();
    assert_eq!(row["reachable"], false, "{row}");
    assert!(row["drift"].is_null(), "{row}");
    assert!(!row["error"].as_str().unwrap_or("").is_empty(), "{row}");
}

/// After a `--mode boot` deploy (the profile says B, A runs), a deploy of B whose health
/// check fails returns to A, leaves the boot entry on B, and deletes no generation: it
/// created none.
#[test]
fn a_rollback_returns_to_what_ran_and_deletes_only_what_it_created() {
    let test = "a_rollback_returns_to_what_ran_and_deletes_only_what_it_created";
    let Some(mut lab) = Lab::start_at(
        test,
        "sygen",
        "10.77.241.0".parse().unwrap(),
        1,
        this_pass(),
    ) else {
        return;
    };
    let a = initial_deploy(&lab)[0].1.clone();
    let systemd = this_pass();
    if systemd {
        // The `units` check asks the host's real service manager, and passes.
        lab.edit_host_file("h1", |doc| {
            doc["deploy"]["health"]["units"] = toml_edit::value(toml_edit::Array::from_iter([
                "lab-payload.service",
                "lab-sshd.service",
            ]));
        });
    }
    lab.set("h1", |c| c.revision = 1);
    let r = lab.hearth(&["deploy", "h1", "--json", "--mode", "boot"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    let b = lab.host("h1").current().unwrap();
    assert_ne!(a, b);
    assert_eq!(lab.host("h1").generations(), vec![1, 2]);
    if systemd {
        let checks: Vec<&serde_json::Value> = r
            .events
            .iter()
            .filter(|e| e["event"] == "health_check")
            .collect();
        assert!(
            checks
                .iter()
                .any(|e| e["check"] == "unit:lab-payload.service" && e["ok"] == true),
            "{}",
            r.debug()
        );
    }
    // A check that fails (no such unit; nothing listens on port 9), the closure the same.
    lab.edit_host_file("h1", |doc| {
        if systemd {
            doc["deploy"]["health"]["units"] =
                toml_edit::value(toml_edit::Array::from_iter(["lab-no-such.service"]));
        } else {
            doc["deploy"]["health"]["tcp"] = toml_edit::value(toml_edit::Array::from_iter([9i64]));
        }
        doc["deploy"]["health_timeout"] = toml_edit::value(3);
    });
    let r = lab.hearth(&["deploy", "h1", "--json"]);
    assert_eq!(r.code, Some(1), "{}", r.debug());
    assert_eq!(r.results()["h1"], "rolled-back", "{}", r.debug());
    let detail = r.outcome("h1")["detail"].as_str().unwrap().to_string();
    let failed = if systemd {
        "unit:lab-no-such.service"
    } else {
        "tcp:9"
    };
    assert!(detail.contains(failed), "{detail}");
    let st = lab.lab.state("h1").unwrap();
    assert_eq!(st.current_system, Some(a.clone()), "back on what ran: {st}");
    assert_eq!(
        st.boot_system,
        Some(b.clone()),
        "boot entry as before: {st}"
    );
    assert_eq!(lab.host("h1").generations(), vec![1, 2], "nothing deleted");
    assert_eq!(lab.host("h1").current(), Some(b));
}

/// Activation takes the link down for 10 s: the host is waiting for confirmation when
/// the deployer's main connection dies. A new login finds it waiting and confirms it;
/// the checks and the verdict go over new connections; the host ends on the new
/// generation and the report says how.
#[test]
fn a_link_cut_in_the_confirm_window_is_confirmed_over_a_new_login() {
    let test = "a_link_cut_in_the_confirm_window_is_confirmed_over_a_new_login";
    let Some(mut lab) = Lab::start_at(
        test,
        "syflap",
        "10.77.242.0".parse().unwrap(),
        1,
        this_pass(),
    ) else {
        return;
    };
    initial_deploy(&lab);
    lab.set("h1", |c| {
        c.revision = 1;
        c.fault = "link-flap".into();
        c.confirm_timeout = Some(40);
    });
    let r = lab.hearth(&["deploy", "h1", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    assert_eq!(r.results()["h1"], "deployed", "{}", r.debug());
    let new = lab.host("h1").current().unwrap();
    assert_eq!(lab.host("h1").generation(), Some(2));
    let st = lab.lab.state("h1").unwrap();
    assert_eq!(st.current_system, Some(new.clone()), "{st}");
    assert_eq!(st.boot_system, Some(new.clone()), "{st}");
    assert!(
        st.activation_log
            .iter()
            .any(|l| l.contains("fault: link-flap")),
        "{st}"
    );
    if this_pass() {
        // One transient unit per attempt, named by its token, none left once it ended.
        let units = lab
            .lab
            .console_exec(
                "h1",
                "journalctl --no-pager -o cat _PID=1 | sed -n 's/^Started hearth-activate-\\([0-9a-f]*\\).*/\\1/p' | sort -u; \
                 systemctl list-units --all --no-legend 'hearth-activate-*' | wc -l",
            )
            .unwrap();
        let tokens: Vec<String> = attempt_states(&lab, "h1")
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        let mut want = tokens.join("\n");
        want.push_str("\n0\n");
        assert_eq!(units, want, "one collected unit per attempt");
    }
    let o = r.outcome("h1");
    assert_eq!(o["current"].as_str(), Some(new.as_str()), "read back: {o}");
    let detail = o["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("main connection was lost")
            && detail.contains("found waiting and confirmed over a new login"),
        "the report says how: {detail}"
    );
}

/// A failed health check whose rollback verdict cannot be delivered at first (the link
/// is cut once the host is confirmed): the verdict is retried over new connections, the
/// host rolls back, and the report is what the host did, never "deployed".
#[test]
fn a_rollback_verdict_that_cannot_get_through_is_retried() {
    let test = "a_rollback_verdict_that_cannot_get_through_is_retried";
    let Some(mut lab) = Lab::start_at(
        test,
        "syverd",
        "10.77.243.0".parse().unwrap(),
        1,
        this_pass(),
    ) else {
        return;
    };
    let old = initial_deploy(&lab)[0].1.clone();
    lab.set("h1", |c| {
        c.revision = 1;
        c.fault = "payload-down".into();
        c.confirm_timeout = Some(40);
    });
    lab.edit_host_file("h1", |doc| {
        doc["deploy"]["health_timeout"] = toml_edit::value(8);
    });
    let child = lab
        .hearth_cmd(&["deploy", "h1", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let confirmed = Lab::wait_until(120, || {
        attempt_states(&lab, "h1")
            .iter()
            .filter(|(_, s)| s == "confirmed")
            .count()
            == 1
    });
    assert!(confirmed, "the host was never confirmed");
    // Long enough for the master to die and the first verdict to fail.
    lab.lab.cut_link("h1").unwrap();
    std::thread::sleep(Duration::from_secs(15));
    lab.lab.restore_link("h1").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let summary: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary:\n{stdout}"));
    let o = &summary["hosts"][0];
    assert_eq!(o["result"], "rolled-back", "{stdout}");
    assert_eq!(o["current"].as_str(), Some(old.as_str()), "read back: {o}");
    let detail = o["detail"].as_str().unwrap_or("");
    assert!(detail.contains("tcp:8080"), "{detail}");
    assert!(
        detail.contains("the verdict got through on try"),
        "{detail}"
    );
    assert!(stdout.contains("could not send the verdict"), "{stdout}");
    assert_eq!(lab.host("h1").current(), Some(old.clone()));
    assert_eq!(lab.lab.state("h1").unwrap().current_system, Some(old));
    assert_eq!(lab.host("h1").generations(), vec![1]);
}
