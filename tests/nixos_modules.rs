//! modules/nixos/*.nix evaluated with nixpkgs.lib's module system against a declared slice
//! of NixOS options (tests/nixos-modules/eval.nix, which doubles as the manifest of options
//! these modules may set). Needs a nix-community/nixpkgs.lib checkout in HEARTH_NIXPKGS_LIB;
//! without it the tests report themselves as skipped.

mod checkouts;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn nixpkgs_lib() -> Result<PathBuf, String> {
    Ok(checkouts::checkouts(&["HEARTH_NIXPKGS_LIB"])?.remove(0))
}

macro_rules! lib_or_skip {
    () => {
        match nixpkgs_lib() {
            Ok(d) => d,
            Err(reason) => {
                println!("SKIPPED: {reason}");
                return;
            }
        }
    };
}

fn eval(lib: &Path, host: &Path) -> Result<Value, String> {
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(repo().join("tests/nixos-modules/eval.nix"))
        .arg("--arg")
        .arg("nixpkgsLib")
        .arg(lib)
        .arg("--arg")
        .arg("host")
        .arg(host)
        .output()
        .expect("run nix-instantiate");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(stderr);
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {stderr}"))
}

fn host(name: &str) -> PathBuf {
    repo()
        .join("tests/nixos-modules")
        .join(format!("{name}.nix"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .expect("a list")
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

#[test]
fn helios64_hardware() {
    let lib = lib_or_skip!();
    let c = eval(&lib, &host("helios64-host")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c["failedAssertions"], json!([]));

    let params = strings(&c["boot"]["kernelParams"]);
    for p in [
        "console=ttyS2,1500000n8",
        "earlycon=uart8250,mmio32,0xff1a0000",
        "zfs.zfs_arc_max=1073741824",
    ] {
        assert!(params.contains(&p), "{p} missing from {params:?}");
    }
    assert_eq!(c["boot"]["extlinux"], true);
    assert_eq!(c["boot"]["grub"], false);
    assert_eq!(
        c["deviceTree"]["name"],
        "rockchip/rk3399-kobol-helios64.dtb"
    );
    assert_eq!(c["zram"], true);

    let fan = c["fancontrol"]["config"].as_str().unwrap();
    assert_eq!(c["fancontrol"]["enable"], true);
    assert!(
        fan.contains("MINTEMP=/dev/helios64-fan-p6/pwm1=40 /dev/helios64-fan-p7/pwm1=40"),
        "{fan}"
    );
    assert!(
        fan.contains("/dev/helios64-fan-p7/pwm1=/dev/helios64-thermal-cpu/temp1_input"),
        "{fan}"
    );

    let udev = c["udevRules"].as_str().unwrap();
    assert!(
        udev.contains(r#"SUBSYSTEM=="power_supply", ACTION=="change", ATTR{type}=="Mains""#),
        "{udev}"
    );
    assert!(
        udev.contains("/bin/systemctl start --no-block hearth-helios64-ups.service"),
        "{udev}"
    );
    assert!(udev.contains("/dev/helios64-fan-p6"), "{udev}");

    for unit in [
        "hearth-helios64-leds",
        "hearth-helios64-ups",
        "hearth-helios64-ups-shutdown",
    ] {
        assert!(c["services"][unit].is_object(), "{unit} missing");
    }
    assert_eq!(
        c["services"]["hearth-helios64-leds"]["wantedBy"],
        json!(["multi-user.target"])
    );
    // The shutdown timer is armed by the check only, never at boot.
    assert_eq!(
        c["timers"]["hearth-helios64-ups-shutdown"]["wantedBy"],
        json!([])
    );
    assert_eq!(
        c["timers"]["hearth-helios64-ups-shutdown"]["timerConfig"]["OnActiveSec"],
        "10min"
    );
    assert_eq!(
        c["timers"]["hearth-helios64-ups"]["wantedBy"],
        json!(["timers.target"])
    );
}

#[test]
fn zfs_health_on_helios64_reports_to_node_exporter_and_the_fault_led() {
    let lib = lib_or_skip!();
    let c = eval(&lib, &host("helios64-host")).unwrap_or_else(|e| panic!("{e}"));
    let env = &c["services"]["hearth-zfs-health"]["environment"];
    assert_eq!(env["HEARTH_ZFS_POOLS"], "tank");
    assert_eq!(
        env["HEARTH_ZFS_FAULT_LED"],
        "/sys/class/leds/helios64:red:fault/brightness"
    );
    assert_eq!(
        env["HEARTH_ZFS_TEXTFILE_DIR"],
        "/var/lib/hearth/node-exporter"
    );
    assert_eq!(
        c["timers"]["hearth-zfs-health"]["timerConfig"]["OnCalendar"],
        "*:0/30"
    );
    // The node-exporter catalog service owns the textfile flag and the directory (a second
    // --collector.textfile.directory would stop the exporter); zfs-health only writes there.
    assert_eq!(c["nodeExporterFlags"], json!([]));
    assert_eq!(c["tmpfiles"], json!([]));
}

/// modules/nixos/deploy-metrics.nix and restic-restore-test.nix as generated/helios64 sets
/// them: the units, their environment (every value the scripts read) and triggers.
#[test]
fn deploy_metrics_and_restore_test_units() {
    let lib = lib_or_skip!();
    let c = eval(&lib, &host("obs-host")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c["failedAssertions"], json!([]));
    let deploy = &c["services"]["hearth-deploy-metrics"];
    assert_eq!(deploy["wantedBy"], json!(["multi-user.target"]));
    assert_eq!(
        deploy["environment"]["HEARTH_DEPLOY_STATE_DIR"],
        "/nix/var/hearth"
    );
    assert_eq!(
        deploy["environment"]["HEARTH_DEPLOY_TEXTFILE_DIR"],
        "/var/lib/hearth/node-exporter"
    );
    assert_eq!(
        c["paths"]["hearth-deploy-metrics"]["pathConfig"]["PathChanged"],
        "/nix/var/hearth/last"
    );
    let restore = &c["services"]["hearth-restic-restore-test"]["environment"];
    let sets: Value =
        serde_json::from_str(restore["HEARTH_RESTORE_SETS"].as_str().unwrap()).unwrap();
    assert_eq!(
        sets,
        json!([{ "client": "nixos", "path": "/home", "repository": "/srv/backup/nixos" }])
    );
    assert_eq!(restore["HEARTH_RESTORE_SAMPLE"], "5");
    assert_eq!(
        restore["HEARTH_RESTORE_TEXTFILE_DIR"],
        "/var/lib/hearth/node-exporter"
    );
    assert_eq!(
        restore["RESTIC_PASSWORD_FILE"],
        "/run/agenix/restic-password"
    );
    assert_eq!(
        c["timers"]["hearth-restic-restore-test"]["timerConfig"]["OnCalendar"],
        "weekly"
    );
}

#[test]
fn generic_x86_64_with_the_ryzen_escape_hatch() {
    let lib = lib_or_skip!();
    let c = eval(&lib, &host("nixos-host")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c["failedAssertions"], json!([]));
    assert_eq!(c["boot"]["kernelModules"], json!(["kvm-amd"]));
    assert_eq!(c["microcode"], json!({"amd": true, "intel": false}));
    assert_eq!(c["fstrim"], true);
    assert!(strings(&c["boot"]["initrdModules"]).contains(&"nvme"));
    // None of the Helios64 or ZFS machinery leaks onto other hosts.
    assert_eq!(c["services"], json!({}));
    assert_eq!(c["deviceTree"]["enable"], false);
    assert_eq!(c["boot"]["kernelParams"], json!([]));
}

#[test]
fn zfs_health_without_zfs_is_refused() {
    let lib = lib_or_skip!();
    let c = eval(&lib, &host("zfs-without-zfs")).unwrap_or_else(|e| panic!("{e}"));
    let failed = strings(&c["failedAssertions"]);
    assert!(
        failed
            .iter()
            .any(|m| m.contains("boot.supportedFilesystems.zfs")),
        "{failed:?}"
    );
}

/// The option slice is the manifest: a module that sets an undeclared option must fail.
#[test]
fn an_option_outside_the_manifest_is_rejected() {
    let lib = lib_or_skip!();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.nix");
    let modules = repo().join("modules/nixos");
    std::fs::write(
        &bad,
        format!(
            "{{ imports = [ {} ]; hearth.helios64.enable = true; services.smartd.enable = true; }}",
            modules.display()
        ),
    )
    .unwrap();
    let err = eval(&lib, &bad).expect_err("must not evaluate");
    assert!(
        err.contains("services.smartd") && err.contains("does not exist"),
        "{err}"
    );
}
