//! modules/nixos/zfs-health.sh against a fake `zpool`, under the same shell options
//! nixpkgs' writeShellApplication uses (errexit, nounset, pipefail).

use std::path::{Path, PathBuf};
use std::process::Command;

const FAKE_ZPOOL: &str = r#"#!/bin/sh
# Fake zpool: the pool "tank" in state $FAKE_STATE (healthy | degraded | missing).
case "$FAKE_STATE:$*" in
  healthy:"status -x") echo "all pools are healthy" ;;
  missing:"status -x") echo "no pools available" ;;
  degraded:"status -x")
    printf '  pool: tank\n state: DEGRADED\nstatus: One or more devices has experienced an unrecoverable error.\n' ;;
  healthy:"list -H -o name,health") printf 'tank\tONLINE\n' ;;
  degraded:"list -H -o name,health") printf 'tank\tDEGRADED\n' ;;
  missing:"list -H -o name,health") ;;
  missing:"list -H -o name tank") echo "cannot open 'tank': no such pool" >&2; exit 1 ;;
  *:"list -H -o name tank") echo tank ;;
  healthy:"status -p tank")
    printf '  pool: tank\n state: ONLINE\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n\ttank        ONLINE       0     0     0\n\t  raidz1-0  ONLINE       0     0     0\n' ;;
  degraded:"status -p tank")
    printf '  pool: tank\n state: DEGRADED\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n\ttank        DEGRADED     0     0    12\n\t  raidz1-0  DEGRADED     0     0    12\n' ;;
  *) echo "fake zpool: unexpected: $FAKE_STATE $*" >&2; exit 2 ;;
esac
"#;

struct Run {
    code: i32,
    stdout: String,
    metrics: String,
    led: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("modules/nixos/zfs-health.sh")
}

fn run(state: &str, pools: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let textfile = dir.path().join("textfile");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&textfile).unwrap();
    let zpool = bin.join("zpool");
    std::fs::write(&zpool, FAKE_ZPOOL).unwrap();
    make_executable(&zpool);
    let led = dir.path().join("brightness");
    std::fs::write(&led, "0\n").unwrap();

    let out = Command::new("bash")
        .args(["-o", "errexit", "-o", "nounset", "-o", "pipefail"])
        .arg(script())
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("FAKE_STATE", state)
        .env("HEARTH_ZFS_POOLS", pools)
        .env("HEARTH_ZFS_TEXTFILE_DIR", &textfile)
        .env("HEARTH_ZFS_FAULT_LED", &led)
        .output()
        .expect("run bash");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("fake zpool: unexpected"), "{stderr}");
    assert!(!stderr.contains("unbound variable"), "{stderr}");
    let leftovers: Vec<_> = std::fs::read_dir(&textfile)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".zfs-health"))
        .collect();
    assert!(leftovers.is_empty(), "temporary metrics file left behind");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        metrics: std::fs::read_to_string(textfile.join("zfs-health.prom")).unwrap_or_default(),
        led: std::fs::read_to_string(&led).unwrap(),
    }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn healthy_pool_passes_and_clears_the_fault_led() {
    let r = run("healthy", "tank");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.metrics
            .contains("hearth_zfs_pool_healthy{pool=\"tank\",health=\"ONLINE\"} 1"),
        "{}",
        r.metrics
    );
    assert!(
        r.metrics
            .contains("hearth_zfs_pool_errors{pool=\"tank\",kind=\"checksum\"} 0"),
        "{}",
        r.metrics
    );
    assert!(r.metrics.contains("hearth_zfs_healthy 1"), "{}", r.metrics);
    assert_eq!(r.led.trim(), "0");
}

#[test]
fn degraded_pool_fails_logs_at_error_priority_and_lights_the_led() {
    let r = run("degraded", "tank");
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("<3> state: DEGRADED"), "{}", r.stdout);
    assert!(
        r.metrics
            .contains("hearth_zfs_pool_healthy{pool=\"tank\",health=\"DEGRADED\"} 0"),
        "{}",
        r.metrics
    );
    assert!(
        r.metrics
            .contains("hearth_zfs_pool_errors{pool=\"tank\",kind=\"checksum\"} 12"),
        "{}",
        r.metrics
    );
    // Only the pool's own row counts, not the vdev rows below it.
    assert_eq!(
        r.metrics.matches("kind=\"checksum\"").count(),
        1,
        "{}",
        r.metrics
    );
    assert!(r.metrics.contains("hearth_zfs_healthy 0"));
    assert_eq!(r.led.trim(), "1");
}

#[test]
fn a_pool_that_is_not_imported_counts_as_unhealthy() {
    let r = run("missing", "tank");
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("<3>pool tank is not imported"),
        "{}",
        r.stdout
    );
    assert!(
        r.metrics
            .contains("hearth_zfs_pool_healthy{pool=\"tank\",health=\"MISSING\"} 0"),
        "{}",
        r.metrics
    );
    assert_eq!(r.led.trim(), "1");
}

#[test]
fn without_expected_pools_no_pools_is_fine() {
    let r = run("missing", "");
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.metrics.contains("hearth_zfs_healthy 1"), "{}", r.metrics);
}

/// nixpkgs' writeShellApplication runs shellcheck on these scripts at build time, and a
/// finding fails the build; catch it here first.
#[test]
fn module_scripts_pass_shellcheck() {
    if Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIPPED: shellcheck is not installed (Debian: shellcheck)");
        return;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("modules/nixos");
    for script in [
        "zfs-health.sh",
        "helios64-ups.sh",
        "helios64-leds.sh",
        "deploy-metrics.sh",
        "restic-restore-test.sh",
    ] {
        let out = Command::new("shellcheck")
            .args(["--shell=bash"])
            .arg(dir.join(script))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
