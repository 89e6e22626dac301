//! `hearth deploy` against throwaway test hosts (network + mount namespaces with sshd and
//! their own /nix). Needs root; prints SKIPPED otherwise.

mod deploy_common;
use deploy_common::*;

#[test]
fn deploys_in_parallel_and_redeploy_is_a_no_op() {
    let Some(lab) = Lab::start("deploys_in_parallel_and_redeploy_is_a_no_op", 8) else {
        return;
    };
    let r = lab.hearth(&["deploy", "--all", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    for h in &lab.hosts {
        assert_eq!(r.results()[&h.name], "deployed", "{}", r.debug());
        let o = r.outcome(&h.name);
        let cur = h.current().expect("profile set");
        assert_eq!(
            o["current"].as_str(),
            Some(cur.as_str()),
            "outcome is what the host runs"
        );
        assert_eq!(h.generation(), Some(1));
        assert!(h.has_path(&cur));
        assert_eq!(h.attempts(), 1, "activated once");
    }
    // Progress came from Nix's internal-json stream.
    assert!(r
        .events
        .iter()
        .any(|e| e["event"] == "copy_progress" && e["paths_done"].as_u64() > Some(0)));

    let again = lab.hearth(&["deploy", "--all", "--json"]);
    assert_eq!(again.code, Some(0), "{}", again.debug());
    for h in &lab.hosts {
        assert_eq!(again.results()[&h.name], "unchanged");
        assert_eq!(h.generation(), Some(1));
        assert_eq!(h.attempts(), 1, "no activation on a no-op redeploy");
    }
    assert!(
        !again.events.iter().any(|e| e["event"] == "copy_progress"),
        "nothing copied"
    );
    println!(
        "8-host deploy {:.2}s, no-op redeploy {:.2}s",
        r.elapsed.as_secs_f64(),
        again.elapsed.as_secs_f64()
    );
}

#[test]
fn modes_dry_activate_and_test_leave_the_profile_alone() {
    let Some(mut lab) = Lab::start("modes_dry_activate_and_test", 1) else {
        return;
    };
    let r = lab.hearth(&["deploy", "h1", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    let first = lab.host("h1").current().unwrap();
    lab.set("h1", |c| c.revision = 1);

    let r = lab.hearth(&["deploy", "h1", "--json", "--mode", "dry-activate"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    assert_eq!(r.results()["h1"], "dry-activated");
    assert_eq!(lab.host("h1").current(), Some(first.clone()));
    assert_eq!(lab.host("h1").generations(), vec![1]);

    let r = lab.hearth(&["deploy", "h1", "--json", "--mode", "test"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    assert_eq!(r.results()["h1"], "deployed");
    assert_eq!(
        lab.host("h1").generations(),
        vec![1],
        "test mode adds no generation"
    );
    let state = lab.lab.state("h1").unwrap();
    let running = state.current_system.unwrap();
    assert_ne!(running, first, "test mode activated the new system");
    assert_eq!(lab.host("h1").current(), Some(first), "profile untouched");
}

#[test]
fn rolling_batches_stop_at_the_first_failure_unless_keep_going() {
    let Some(mut lab) = Lab::start("rolling_batches", 3) else {
        return;
    };
    let r = lab.hearth(&["deploy", "--all", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    lab.set("h1", |c| {
        c.fault = "activation-fails".into();
        c.revision = 1;
    });
    lab.set("h2", |c| c.revision = 1);
    lab.set("h3", |c| c.revision = 1);
    let r = lab.hearth(&["deploy", "--all", "--json", "--batch-size", "1"]);
    assert_eq!(r.code, Some(1), "{}", r.debug());
    let res = r.results();
    assert_eq!(res["h1"], "rolled-back");
    assert_eq!(res["h2"], "skipped");
    assert_eq!(res["h3"], "skipped");
    assert_eq!(lab.host("h2").generation(), Some(1), "h2 untouched");

    let r = lab.hearth(&[
        "deploy",
        "--all",
        "--json",
        "--batch-size",
        "1",
        "--keep-going",
    ]);
    assert_eq!(r.code, Some(1), "{}", r.debug());
    let res = r.results();
    assert_eq!(res["h1"], "rolled-back");
    assert_eq!(res["h2"], "deployed");
    assert_eq!(res["h3"], "deployed");
}

#[test]
fn a_non_root_user_deploys_through_sudo() {
    if !sh("command -v sudo").status.success() {
        skip(
            "a_non_root_user_deploys_through_sudo",
            "`sudo` is not installed",
        );
        return;
    }
    let Some(mut lab) = Lab::start("a_non_root_user_deploys_through_sudo", 1) else {
        return;
    };
    // The lab's deploy user really is unprivileged: only `sudo -n` reaches the profile.
    let (code, out) = lab.ssh_as(
        "h1",
        "deploy",
        "id -u; test -w /nix/var/nix/profiles && echo writable; sudo -n id -u",
    );
    assert_eq!(code, Some(0), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines.first(), Some(&"0"), "{out}");
    assert_eq!(lines.last(), Some(&"0"), "sudo -n works: {out}");
    assert!(!out.contains("writable"), "{out}");

    lab.set_ssh_user("h1", "deploy");
    let r = lab.hearth(&["deploy", "h1", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    assert_eq!(r.results()["h1"], "deployed", "{}", r.debug());
    let plan = r.events.iter().find(|e| e["event"] == "plan").unwrap();
    assert!(
        plan["hosts"][0]["copy"]
            .as_str()
            .is_some_and(|c| c.contains("ssh-ng://deploy@")),
        "{plan}"
    );
    let h1 = lab.host("h1");
    let first = h1.current().expect("profile set");
    assert!(h1.has_path(&first));
    assert_eq!(h1.generation(), Some(1));
    assert!(r
        .events
        .iter()
        .any(|e| e["event"] == "copy_progress" && e["paths_done"].as_u64() > Some(0)));

    // A broken config rolls back through sudo too.
    lab.deploy_failing_activation("h1");
    assert_eq!(lab.host("h1").current(), Some(first));

    let s = lab.hearth(&["status", "h1", "--json"]);
    let row: serde_json::Value = serde_json::from_str(s.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(row["reachable"], true, "{}", s.debug());
    assert_eq!(row["generation"], 1, "{}", s.debug());
    assert_eq!(row["drift"], true, "{}", s.debug());
}

/// The `authorized_keys` line `hearth gen` writes on targets for a builder's push key,
/// against a real sshd and Nix: `nix copy --to ssh-ng://` gets in, a shell does not.
#[test]
fn a_builders_push_key_line_admits_nix_copy_and_nothing_else() {
    let Some(lab) = Lab::start(
        "a_builders_push_key_line_admits_nix_copy_and_nothing_else",
        1,
    ) else {
        return;
    };
    let h1 = lab.host("h1");
    let key = lab.base.path().join("push_key");
    assert!(sh(&format!(
        "ssh-keygen -q -t ed25519 -N '' -f {}",
        key.display()
    ))
    .status
    .success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let line = hearth::compile::emit::push_key_entry("big", public.trim());
    let authorized = h1.dir.join("ssh/authorized_keys");
    let mut keys = std::fs::read_to_string(&authorized).unwrap();
    keys.push_str(&format!("{line}\n"));
    std::fs::write(&authorized, keys).unwrap();
    let config = lab.base.path().join("push_ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host h1\n  HostName {}\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n  BatchMode yes\n",
            h1.addr,
            key.display(),
            lab.lab.known_hosts_path().display()
        ),
    )
    .unwrap();

    let expr = format!(
        "derivation {{ name = \"pushed-{}\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; args = [ \"-c\" \"echo pushed > $out\" ]; }}",
        std::process::id()
    );
    let built = std::process::Command::new("nix-build")
        .args(["--no-out-link", "-E", &expr])
        .env("NIX_CONFIG", lab.lab.nix_config())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let path = String::from_utf8_lossy(&built.stdout).trim().to_string();
    let copy = std::process::Command::new("nix")
        .args(["copy", "--no-check-sigs", "--to", "ssh-ng://root@h1", &path])
        .env("NIX_SSHOPTS", format!("-F {}", config.display()))
        .env("NIX_CONFIG", lab.lab.nix_config())
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    assert!(h1.has_path(&path), "the closure landed in h1's store");

    // Any other command runs the Nix daemon instead, which a shell command is not.
    let marker = h1.dir.join("tmp/push-key-ran-a-shell");
    let out = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["h1", "touch /tmp/push-key-ran-a-shell"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!marker.exists(), "the push key opened a shell");
}

/// `magic_rollback = false` and no health checks: nothing to confirm and nothing to check,
/// so the deployer commits at once (the host would otherwise keep the generation only after
/// its verdict timeout); a failing activation still rolls back.
#[test]
fn without_magic_rollback_the_deployer_commits_at_once() {
    let Some(mut lab) = Lab::start("without_magic_rollback_the_deployer_commits_at_once", 1) else {
        return;
    };
    lab.edit_host_file("h1", |doc| {
        let deploy = doc["deploy"].as_table_mut().expect("[deploy]");
        deploy["magic_rollback"] = toml_edit::value(false);
        deploy.remove("health");
    });
    let r = lab.hearth(&["deploy", "h1", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    assert_eq!(r.results()["h1"], "deployed", "{}", r.debug());
    let states: Vec<&str> = r
        .events
        .iter()
        .filter(|e| e["event"] == "supervisor")
        .filter_map(|e| e["state"].as_str())
        .collect();
    assert_eq!(states, ["confirmed", "committed"], "{}", r.debug());
    assert!(
        !r.events
            .iter()
            .any(|e| e["event"] == "phase_started" && e["phase"] == "confirm"),
        "nothing to confirm: {}",
        r.debug()
    );
    // The verdict was given, not waited out.
    let hearth_dir = lab.host("h1").nix().join("var/hearth");
    let committed = std::fs::read_dir(&hearth_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.path().join("commit").exists());
    assert!(
        committed,
        "a commit file in an attempt under {}",
        hearth_dir.display()
    );

    lab.deploy_failing_activation("h1");
    assert_eq!(lab.host("h1").generation(), Some(1));
}

#[test]
fn unchanged_means_running_and_status_never_calls_a_refusal_drift() {
    let Some(mut lab) = Lab::start("unchanged_means_running", 1) else {
        return;
    };
    let r = lab.hearth(&["deploy", "h1", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    let first = lab.lab.state("h1").unwrap().current_system.unwrap();
    lab.set("h1", |c| c.revision = 1);

    // `--mode boot`: the profile and boot entry move, the running system does not.
    let r = lab.hearth(&["deploy", "h1", "--json", "--mode", "boot"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    let new = lab.host("h1").current().unwrap();
    assert_ne!(new, first);
    assert_eq!(lab.lab.state("h1").unwrap().current_system, Some(first));
    let s = lab.hearth(&["status", "--json"]);
    assert_eq!(
        s.events[0]["drift"],
        true,
        "runs the old system: {}",
        s.debug()
    );

    // A normal deploy of the same closure must still switch to it.
    let r = lab.hearth(&["deploy", "h1", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.debug());
    assert_eq!(r.results()["h1"], "deployed", "{}", r.debug());
    assert_eq!(
        lab.lab.state("h1").unwrap().current_system,
        Some(new.clone())
    );
    let s = lab.hearth(&["status", "--json"]);
    assert_eq!(s.events[0]["drift"], false, "{}", s.debug());
    let r = lab.hearth(&["deploy", "h1", "--json"]);
    assert_eq!(r.results()["h1"], "unchanged", "{}", r.debug());

    // A deploy user whose sudo is refused: status says so, and never reports drift.
    lab.set_ssh_user("h1", "deploy");
    std::fs::write(lab.host("h1").dir.join("etc/sudoers"), "").unwrap();
    let s = lab.hearth(&["status", "--json"]);
    let row = &s.events[0];
    assert!(row["drift"].is_null(), "{}", s.debug());
    assert!(
        row["error"].as_str().unwrap_or("").contains("unauthorised"),
        "{}",
        s.debug()
    );
}
