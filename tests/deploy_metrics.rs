//! modules/nixos/deploy-metrics.sh against a state directory laid out as the deploy
//! supervisor (src/deploy/supervisor.rs) leaves it: `last` names the attempt, the attempt's
//! `status` holds `state=` and `time=`. Run under writeShellApplication's shell options.

use std::path::PathBuf;
use std::process::Command;

fn run(last: Option<&str>, status: Option<&str>) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let textfile = dir.path().join("textfile");
    std::fs::create_dir_all(state.join("attempt-0123abcd")).unwrap();
    std::fs::create_dir_all(&textfile).unwrap();
    if let Some(token) = last {
        std::fs::write(state.join("last"), format!("{token}\n")).unwrap();
    }
    if let Some(text) = status {
        std::fs::write(state.join("attempt-0123abcd/status"), text).unwrap();
    }
    let out = Command::new("bash")
        .args(["-o", "errexit", "-o", "nounset", "-o", "pipefail"])
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("modules/nixos/deploy-metrics.sh"))
        .env("HEARTH_DEPLOY_STATE_DIR", &state)
        .env("HEARTH_DEPLOY_TEXTFILE_DIR", &textfile)
        .output()
        .unwrap();
    let metrics = std::fs::read_to_string(textfile.join("hearth-deploy.prom")).unwrap_or_default();
    let leftovers = std::fs::read_dir(&textfile).unwrap().count();
    assert_eq!(leftovers, 1, "temporary file left behind");
    (out.status.code().unwrap_or(-1), metrics)
}

const STATUS: &str = "state=STATE\nreason=no confirmation within 30s\naction=deploy\nmode=switch\n\
old_gen=4\nold_path=/nix/store/a\nnew_gen=5\nnew_path=/nix/store/b\ncur_gen=4\ncur_path=/nix/store/a\n\
holder=\npid=42\ntime=1767225600\n";

#[test]
fn a_rolled_back_deploy_sets_the_metric() {
    for state in ["rolled-back", "rollback-failed"] {
        let (code, m) = run(Some("0123abcd"), Some(&STATUS.replace("STATE", state)));
        assert_eq!(code, 0);
        assert!(m.contains("hearth_deploy_rolled_back 1\n"), "{state}: {m}");
        assert!(
            m.contains(&format!(
                "hearth_deploy_last_state{{state=\"{state}\"}} 1\n"
            )),
            "{m}"
        );
        assert!(
            m.contains("hearth_deploy_last_timestamp_seconds 1767225600\n"),
            "{m}"
        );
    }
}

#[test]
fn a_committed_deploy_clears_it() {
    let (code, m) = run(
        Some("0123abcd"),
        Some(&STATUS.replace("STATE", "committed")),
    );
    assert_eq!(code, 0);
    assert!(m.contains("hearth_deploy_rolled_back 0\n"), "{m}");
    assert!(
        m.contains("hearth_deploy_last_state{state=\"committed\"} 1\n"),
        "{m}"
    );
}

/// Never deployed, a token that is no hex, or a status line that would break the exposition
/// format: report `none`/0, never follow the path or copy the text.
#[test]
fn missing_or_odd_state_reports_none() {
    let (code, m) = run(None, None);
    assert_eq!(code, 0);
    assert!(
        m.contains("hearth_deploy_last_state{state=\"none\"} 1\n"),
        "{m}"
    );
    let (_, m) = run(
        Some("../../etc"),
        Some(&STATUS.replace("STATE", "rolled-back")),
    );
    assert!(m.contains("hearth_deploy_rolled_back 0\n"), "{m}");
    let (_, m) = run(
        Some("0123abcd"),
        Some(&STATUS.replace("STATE", "x\"} 1\nevil")),
    );
    assert!(
        m.contains("hearth_deploy_last_state{state=\"none\"} 1\n"),
        "{m}"
    );
    assert!(!m.contains("evil"), "{m}");
}
