//! modules/nixos/helios64-ups.sh against a fake sysfs and a fake `systemctl` that records
//! its calls, under writeShellApplication's shell options.

use std::path::Path;
use std::process::Command;

const FAKE_SYSTEMCTL: &str = r#"#!/bin/sh
echo "$*" >> "$FAKE_LOG"
if [ "$1" = is-active ]; then
  [ -e "$FAKE_TIMER_ACTIVE" ]
  exit $?
fi
"#;

#[derive(Default)]
struct Board {
    /// None: no Mains supply at all (mainline device tree).
    mains_online: Option<bool>,
    timer_active: bool,
    /// (raw, scale) of ADC channel 2.
    adc: Option<(u32, &'static str)>,
}

struct Outcome {
    code: i32,
    stdout: String,
    calls: Vec<String>,
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn run(board: Board) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let sysfs = root.join("sys");
    // A battery supply that is not Mains, which the script must skip.
    write(&sysfs.join("class/power_supply/battery/type"), "Battery\n");
    if let Some(online) = board.mains_online {
        write(
            &sysfs.join("class/power_supply/gpio-charger/type"),
            "Mains\n",
        );
        write(
            &sysfs.join("class/power_supply/gpio-charger/online"),
            if online { "1\n" } else { "0\n" },
        );
    } else {
        std::fs::create_dir_all(sysfs.join("class/power_supply")).unwrap();
    }
    if let Some((raw, scale)) = board.adc {
        write(
            &sysfs.join("bus/iio/devices/iio:device0/in_voltage2_raw"),
            &format!("{raw}\n"),
        );
        write(
            &sysfs.join("bus/iio/devices/iio:device0/in_voltage_scale"),
            &format!("{scale}\n"),
        );
    }
    let systemctl = root.join("bin/systemctl");
    write(&systemctl, FAKE_SYSTEMCTL);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let active = root.join("timer-active");
    if board.timer_active {
        write(&active, "");
    }
    let log = root.join("calls");
    write(&log, "");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("modules/nixos/helios64-ups.sh");
    let out = Command::new("bash")
        .args(["-o", "errexit", "-o", "nounset", "-o", "pipefail"])
        .arg(script)
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", root.join("bin").display()),
        )
        .env("HEARTH_UPS_SYSFS", &sysfs)
        .env("HEARTH_UPS_SHUTDOWN_AFTER", "10min")
        .env("HEARTH_UPS_CRITICAL_MV", "916")
        .env("FAKE_LOG", &log)
        .env("FAKE_TIMER_ACTIVE", &active)
        .output()
        .expect("run bash");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        calls: std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(String::from)
            .collect(),
    }
}

const TIMER: &str = "hearth-helios64-ups-shutdown.timer";

#[test]
fn without_a_charger_in_the_device_tree_it_says_so_and_does_nothing() {
    let o = run(Board {
        mains_online: None,
        ..Default::default()
    });
    assert_eq!(o.code, 0);
    assert!(
        o.stdout.contains("power loss cannot be detected"),
        "{}",
        o.stdout
    );
    assert!(o.calls.is_empty(), "{:?}", o.calls);
}

#[test]
fn on_mains_nothing_happens() {
    let o = run(Board {
        mains_online: Some(true),
        ..Default::default()
    });
    assert_eq!(o.code, 0);
    assert_eq!(o.calls, [format!("is-active --quiet {TIMER}")]);
}

#[test]
fn mains_loss_arms_the_shutdown_timer_once() {
    let o = run(Board {
        mains_online: Some(false),
        adc: Some((600, "1.757812500")),
        ..Default::default()
    });
    assert_eq!(o.code, 0);
    assert!(
        o.stdout.contains("<4>on battery: powering off in 10min"),
        "{}",
        o.stdout
    );
    assert_eq!(
        o.calls,
        [
            format!("is-active --quiet {TIMER}"),
            format!("start {TIMER}")
        ]
    );

    let again = run(Board {
        mains_online: Some(false),
        timer_active: true,
        adc: Some((600, "1.757812500")),
    });
    assert_eq!(
        again.calls,
        [format!("is-active --quiet {TIMER}")],
        "re-armed an armed timer"
    );
}

#[test]
fn mains_return_disarms_the_timer() {
    let o = run(Board {
        mains_online: Some(true),
        timer_active: true,
        ..Default::default()
    });
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("shutdown cancelled"), "{}", o.stdout);
    assert_eq!(
        o.calls,
        [
            format!("is-active --quiet {TIMER}"),
            format!("stop {TIMER}")
        ]
    );
}

#[test]
fn a_nearly_empty_battery_powers_off_at_once() {
    // 500 * 1.7578125 = 878 mV <= 916 mV.
    let o = run(Board {
        mains_online: Some(false),
        timer_active: true,
        adc: Some((500, "1.757812500")),
    });
    assert_eq!(o.code, 0);
    assert!(
        o.stdout.contains("<2>battery critical (ADC 878 mV"),
        "{}",
        o.stdout
    );
    assert_eq!(o.calls.last().map(String::as_str), Some("poweroff"));
}

#[test]
fn the_threshold_is_inclusive_and_a_healthy_battery_keeps_running() {
    // 521 * 1.7578125 = 915.8 -> 915 mV: off. 522 -> 917 mV: keeps running.
    let low = run(Board {
        mains_online: Some(false),
        timer_active: true,
        adc: Some((521, "1.757812500")),
    });
    assert!(low.calls.iter().any(|c| c == "poweroff"), "{:?}", low.calls);
    let ok = run(Board {
        mains_online: Some(false),
        timer_active: true,
        adc: Some((522, "1.757812500")),
    });
    assert!(!ok.calls.iter().any(|c| c == "poweroff"), "{:?}", ok.calls);
}

/// The charger overlay compiles the way NixOS compiles `hardware.deviceTree.overlays`
/// (cpp, then `dtc -@`), and refers only to labels the mainline Helios64 tree defines.
#[test]
fn charger_overlay_compiles_against_mainline_labels() {
    for tool in ["cpp", "dtc"] {
        if Command::new(tool).arg("--version").output().is_err() {
            println!("SKIPPED: {tool} is not installed (Debian: cpp, device-tree-compiler)");
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    // The few dt-bindings constants the overlay uses (include/dt-bindings in Linux).
    write(
        &dir.path().join("include/dt-bindings/gpio/gpio.h"),
        "#define GPIO_ACTIVE_HIGH 0\n",
    );
    write(
        &dir.path().join("include/dt-bindings/pinctrl/rockchip.h"),
        "#define RK_PA2 2\n#define RK_PD3 27\n#define RK_FUNC_GPIO 0\n",
    );
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("modules/nixos/helios64-charger.dts");
    let pre = Command::new("cpp")
        .args([
            "-nostdinc",
            "-undef",
            "-D__DTS__",
            "-x",
            "assembler-with-cpp",
            "-I",
        ])
        .arg(dir.path().join("include"))
        .arg(&source)
        .output()
        .unwrap();
    assert!(
        pre.status.success(),
        "{}",
        String::from_utf8_lossy(&pre.stderr)
    );
    let dts = dir.path().join("overlay.dts");
    std::fs::write(&dts, &pre.stdout).unwrap();
    let dtbo = dir.path().join("overlay.dtbo");
    let out = Command::new("dtc")
        .args(["-I", "dts", "-O", "dtb", "-@", "-o"])
        .arg(&dtbo)
        .arg(&dts)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = Command::new("dtc")
        .args(["-I", "dtb", "-O", "dts"])
        .arg(&dtbo)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&back.stdout);
    assert!(text.contains(r#"compatible = "kobol,helios64";"#), "{text}");
    assert!(text.contains(r#"charger-type = "mains";"#), "{text}");
    // gpio0 PA2 = AC present, gpio2 PD3 = charging; both active high.
    assert!(text.contains("gpios = <0xffffffff 0x02 0x00>;"), "{text}");
    assert!(
        text.contains("charge-status-gpios = <0xffffffff 0x1b 0x00>;"),
        "{text}"
    );
    // Unresolved references, resolved against the base tree's symbols at apply time.
    let fixups = text.split("__fixups__").nth(1).expect("__fixups__");
    let mut labels: Vec<&str> = fixups
        .lines()
        .skip(1)
        .take_while(|l| l.trim() != "};")
        .filter_map(|l| l.trim().split_once(" = ").map(|(k, _)| k))
        .collect();
    labels.sort();
    assert_eq!(
        labels,
        ["gpio0", "gpio2", "pcfg_pull_none", "pinctrl"],
        "{fixups}"
    );
}

fn run_leds(leds: &[&str]) -> (std::process::Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for led in leds {
        for attr in ["trigger", "device_name", "link", "rx", "tx"] {
            write(&dir.path().join("class/leds").join(led).join(attr), "");
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("modules/nixos/helios64-leds.sh");
    let out = Command::new("bash")
        .args(["-o", "errexit", "-o", "nounset", "-o", "pipefail"])
        .arg(script)
        .env("HEARTH_LED_SYSFS", dir.path())
        .env("HEARTH_LED_NET_INTERFACE", "end0")
        .output()
        .unwrap();
    (out, dir)
}

fn led_attr(dir: &Path, led: &str, attr: &str) -> String {
    std::fs::read_to_string(dir.join("class/leds").join(led).join(attr))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn leds_on_the_mainline_device_tree() {
    let (out, dir) = run_leds(&["helios64:green:status", "helios64:red:fault"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        led_attr(dir.path(), "helios64:green:status", "trigger"),
        "heartbeat"
    );
    // The fault LED belongs to the ZFS health check.
    assert_eq!(led_attr(dir.path(), "helios64:red:fault", "trigger"), "");
}

#[test]
fn leds_on_the_armbian_device_tree() {
    let (out, dir) = run_leds(&["helios64::status", "helios64:blue:net"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        led_attr(dir.path(), "helios64::status", "trigger"),
        "heartbeat"
    );
    assert_eq!(
        led_attr(dir.path(), "helios64:blue:net", "trigger"),
        "netdev"
    );
    assert_eq!(
        led_attr(dir.path(), "helios64:blue:net", "device_name"),
        "end0"
    );
    assert_eq!(led_attr(dir.path(), "helios64:blue:net", "rx"), "1");
}

#[test]
fn no_leds_is_reported_not_fatal() {
    let (out, _dir) = run_leds(&[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no LED among"));
}
