//! `hearth builders plan|machines` on a small inventory: no Nix, no network.

use assert_cmd::Command;

const EMU_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmuEmuEmuEmuEmuEmuEmuEmuEmuEmuEmuEmuEmuEmuA big";

fn fleet() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("hosts")).unwrap();
    std::fs::write(d.path().join("hearth.toml"), "domain = \"home.arpa\"\n").unwrap();
    let host = |name: &str, text: &str| {
        std::fs::write(d.path().join(format!("hosts/{name}.toml")), text).unwrap()
    };
    host(
        "big",
        &format!(
            "system = \"x86_64-linux\"\nhardware = \"generic-x86_64\"\nhost_key = \"{EMU_KEY}\"\nssh = {{ address = \"192.168.1.10\" }}\nroles = [\"builder\"]\n\n[builder]\nemulated = [\"aarch64-linux\"]\nspeed_factor = 4\nmax_jobs = 8\n"
        ),
    );
    host(
        "nas",
        "system = \"aarch64-linux\"\nhardware = \"helios64\"\nssh = { address = \"192.168.1.20\" }\n",
    );
    host(
        "web",
        "system = \"x86_64-linux\"\nhardware = \"generic-x86_64\"\nssh = { address = \"192.168.1.30\" }\nbuild = \"target\"\n",
    );
    d
}

#[test]
fn plan_says_where_and_why() {
    let d = fleet();
    let out = Command::cargo_bin("hearth")
        .unwrap()
        .args(["-C"])
        .arg(d.path())
        .args(["builders", "plan", "--local-system", "x86_64-linux"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("nas: build on big (emulated) (this machine's Nix builds x86_64-linux, not aarch64-linux; builder big builds it by emulation (speed factor 4))"),
        "{text}"
    );
    assert!(
        text.contains(
            "web: build on the target (build policy is `target`: web builds its own system)"
        ),
        "{text}"
    );
    assert!(
        text.contains("big: build locally (this machine's Nix builds x86_64-linux natively)"),
        "{text}"
    );
}

#[test]
fn machines_prints_nix_lines() {
    let d = fleet();
    let out = Command::cargo_bin("hearth")
        .unwrap()
        .arg("-C")
        .arg(d.path())
        .args([
            "builders",
            "machines",
            "--system",
            "aarch64-linux",
            "--ssh-key",
            "/root/.ssh/id_builder",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = hearth::builders::machines::host_key_base64(EMU_KEY);
    assert_eq!(
        text,
        format!("ssh://nixbuild@192.168.1.10 x86_64-linux,aarch64-linux /root/.ssh/id_builder 8 4 - - {key}\n")
    );
}

#[test]
fn unknown_host_is_a_clear_error() {
    let d = fleet();
    let out = Command::cargo_bin("hearth")
        .unwrap()
        .arg("-C")
        .arg(d.path())
        .args(["builders", "plan", "--local-system", "x86_64-linux", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no host `nope`") && err.contains("big, nas, web"),
        "{err}"
    );
}

#[test]
fn deploy_dry_run_shows_where_and_why() {
    let d = fleet();
    let out = Command::cargo_bin("hearth")
        .unwrap()
        .arg("-C")
        .arg(d.path())
        .args(["deploy", "nas", "web", "big", "--dry-run"])
        .env("HEARTH_LOCAL_SYSTEM", "x86_64-linux")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("build:    on builder big (emulated) (this machine's Nix builds x86_64-linux, not aarch64-linux; builder big builds it by emulation (speed factor 4))"),
        "{text}"
    );
    assert!(text.contains("copy:     builder big directly (not through this machine) → ssh-ng://root@192.168.1.20:22"), "{text}");
    assert!(
        text.contains(
            "build:    on the target (build policy is `target`: web builds its own system)"
        ),
        "{text}"
    );
    assert!(
        text.contains("copy:     nothing to copy: built in the target's own store"),
        "{text}"
    );
    assert!(
        text.contains("build:    local (this machine's Nix builds x86_64-linux natively)"),
        "{text}"
    );

    let via = Command::cargo_bin("hearth")
        .unwrap()
        .arg("-C")
        .arg(d.path())
        .args(["deploy", "nas", "--dry-run", "--build-via", "deployer"])
        .env("HEARTH_LOCAL_SYSTEM", "x86_64-linux")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&via.stdout);
    assert!(
        text.contains("on builder big (emulated), output back to this machine ("),
        "{text}"
    );
    assert!(
        text.contains("copy:     local store → ssh-ng://root@192.168.1.20:22"),
        "{text}"
    );
}
