//! What every test that starts lab hosts shares: whether this machine can run them, and a
//! teardown that runs even when a step panics.
#![allow(dead_code)]

use hearth::lab::{Lab, LabConfig};
use std::process::{Command, Stdio};

/// Why lab hosts cannot run here, if they cannot (the tests then print `SKIPPED:`).
/// Under HEARTH_REQUIRE_EVAL=1 (set by .ci/run) a missing prerequisite panics instead, so
/// CI fails rather than passing lab tests it never ran.
pub fn missing_prerequisite() -> Option<String> {
    let reason = probe();
    if let Some(r) = &reason {
        assert!(
            !strict(),
            "HEARTH_REQUIRE_EVAL=1 but lab hosts cannot run here: {r}"
        );
    }
    reason
}

/// Whether a missing prerequisite must fail the test instead of skipping it.
pub fn strict() -> bool {
    std::env::var("HEARTH_REQUIRE_EVAL").is_ok_and(|v| v == "1")
}

fn probe() -> Option<String> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("lab hosts need root (network and mount namespaces)".into());
    }
    for tool in [
        "/usr/sbin/sshd",
        "ip",
        "unshare",
        "setsid",
        "ssh",
        "ssh-keygen",
        "nix",
        "nix-store",
        "nix-daemon",
        "perl",
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    let netns = Command::new("sh")
        .args([
            "-c",
            "ip netns add hearth-probe-$$ && ip netns del hearth-probe-$$",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !netns {
        return Some("cannot create network namespaces here".into());
    }
    None
}

/// Tears the lab down even when a step panics.
pub struct DownOnDrop(pub LabConfig);
impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = Lab::down(&self.0);
    }
}
