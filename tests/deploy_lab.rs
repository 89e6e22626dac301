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
