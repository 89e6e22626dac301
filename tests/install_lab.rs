//! `hearth install` end to end against a lab host in a "rescue" state: no system profile,
//! and an sshd host key nobody knows (as an installer ISO presents). nixos-anywhere's
//! install phase is played by tests/install/installer-standin.sh (lab hosts can't kexec or
//! partition). Afterwards the host must pass strict host-key checking with the key hearth
//! generated, and `hearth deploy` must accept it with no further step.
//!
//! Own lab id `in1` on 10.77.230.0/24. Needs root, nix, sshd, iproute2 (else SKIPPED).

#[path = "lab_support/mod.rs"]
mod lab_support;

use hearth::lab::{Lab, LabConfig};
use lab_support::DownOnDrop;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn standin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/install/installer-standin.sh")
}

fn hearth(lab: &Lab, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("-C")
        .arg(lab.fleet_dir())
        .args(args)
        .env("NIX_CONFIG", lab.nix_config())
        .env("HEARTH_FLAKE", lab.flake_ref())
        .env("HEARTH_SSH_IDENTITY", lab.identity_path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Put h1 in the rescue state: a fresh sshd key the inventory doesn't know, no `host_key`.
fn rescue(lab: &Lab) -> String {
    let key = lab.host("h1").unwrap().dir.join("ssh/ssh_host_ed25519_key");
    let _ = std::fs::remove_file(&key);
    let _ = std::fs::remove_file(key.with_extension("pub"));
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "rescue", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(ok.success());
    let path = lab.fleet_dir().join("hosts/h1.toml");
    let t = std::fs::read_to_string(&path).unwrap();
    let without: String = t
        .lines()
        .filter(|l| !l.starts_with("host_key"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(t, without, "the lab host file had a host_key to remove");
    std::fs::write(&path, &without).unwrap();
    hearth::lab::regenerate(lab.fleet_dir()).unwrap();
    without
}

fn profile(lab: &Lab) -> Option<PathBuf> {
    std::fs::read_link(
        lab.host("h1")
            .unwrap()
            .dir
            .join("nix/var/nix/profiles/system"),
    )
    .ok()
}

/// Run `script` in h1's mount namespace (that of its sshd, which every login inherits).
fn in_host_mounts(lab: &Lab, script: &str) {
    let dir = &lab.host("h1").unwrap().dir;
    let pid = std::fs::read_to_string(dir.join("ssh/sshd.pid")).unwrap();
    let o = Command::new("nsenter")
        .args(["-t", pid.trim(), "-m", "sh", "-ec", script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

/// Fake disks for h1, inside its private mount namespace only: an overlay over /dev holding
/// /dev/disk/by-id links, and a file system "on" /dev/fake-data (a tmpfs named after it).
fn fake_disks(lab: &Lab) {
    let work = lab.host("h1").unwrap().dir.join("fake-dev");
    let (up, wk) = (work.join("upper"), work.join("work"));
    std::fs::create_dir_all(&up).unwrap();
    std::fs::create_dir_all(&wk).unwrap();
    in_host_mounts(
        lab,
        &format!(
            "mount -t overlay overlay -o lowerdir=/dev,upperdir={},workdir={} /dev\n\
             mkdir -p /dev/disk/by-id /tmp/fake-data\n\
             ln -s ../../fake-root /dev/disk/by-id/ata-FAKE_ROOT\n\
             ln -s ../../fake-data /dev/disk/by-id/ata-FAKE_DATA\n\
             mount -t tmpfs /dev/fake-data /tmp/fake-data\n",
            up.display(),
            wk.display()
        ),
    );
}

const DISKS: &str = "\n[disks.root]\ndevice = \"/dev/disk/by-id/ata-FAKE_ROOT\"\nfilesystem = \"ext4\"\n\n\
[disks.pools.tank]\nmode = \"mirror\"\ndisks = [\"/dev/disk/by-id/ata-FAKE_DATA\", \"/dev/disk/by-id/ata-FAKE_GONE\"]\n";

/// The target checks against the fake disks: each refusal names what it found and leaves
/// the host (profile, mounts) and the host file as they were.
fn refusals(lab: &Lab, base: &[&str], host_file: &str) {
    let path = lab.fleet_dir().join("hosts/h1.toml");
    let with_disks = format!("{host_file}{DISKS}");
    std::fs::write(&path, &with_disks).unwrap();
    hearth::lab::regenerate(lab.fleet_dir()).unwrap();
    fake_disks(lab);
    let run = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend(extra);
        let r = hearth(lab, &a);
        (r.status.code(), text(&r))
    };
    let (code, out) = run(&["--yes", "--wipe"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("missing: /dev/disk/by-id/ata-FAKE_GONE"),
        "{out}"
    );
    assert!(
        !out.contains("missing: /dev/disk/by-id/ata-FAKE_ROOT"),
        "{out}"
    );
    in_host_mounts(lab, "ln -s ../../fake-gone /dev/disk/by-id/ata-FAKE_GONE");
    let (code, out) = run(&["--yes"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("in use: /dev/disk/by-id/ata-FAKE_DATA (/dev/fake-data) has mounted file systems at /tmp/fake-data"),
        "{out}"
    );
    assert!(out.contains("pass --wipe"), "{out}");
    let (code, out) = run(&["--wipe", "--dry-run"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("will ERASE these disks (and nothing else):"),
        "{out}"
    );
    for d in [
        "ata-FAKE_ROOT  ->  /dev/fake-root",
        "ata-FAKE_GONE  ->  /dev/fake-gone",
    ] {
        assert!(out.contains(d), "{out}");
    }
    assert!(
        out.contains(
            "ata-FAKE_DATA  ->  /dev/fake-data  0.0 B  (no model)  [mounted: /tmp/fake-data]"
        ),
        "{out}"
    );
    // Untouched: no profile, the mount still there, the host file as written.
    assert_eq!(profile(lab), None);
    in_host_mounts(
        lab,
        "grep -q '^/dev/fake-data /tmp/fake-data ' /proc/mounts",
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), with_disks);
    // Back to the disk-less lab host for the install itself.
    std::fs::write(&path, host_file).unwrap();
    hearth::lab::regenerate(lab.fleet_dir()).unwrap();
}

#[test]
fn install_a_rescue_host_then_deploy_accepts_it() {
    if let Some(reason) = lab_support::missing_prerequisite() {
        println!("SKIPPED: {reason}");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("hearth-in1-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let cfg = LabConfig::new(
        "in1",
        "10.77.230.0".parse().unwrap(),
        dir.path().join("lab"),
    )
    .unwrap();
    Lab::down(&cfg).unwrap();
    let _guard = DownOnDrop(cfg.clone());
    let lab = Lab::up(cfg.clone(), 1, &[]).unwrap();
    let host_file = rescue(&lab);
    assert_eq!(profile(&lab), None, "a rescue host has no system profile");
    let target = format!("root@{}", lab.address("h1").unwrap());
    let installer = standin().display().to_string();
    let base = [
        "install",
        "h1",
        "--target",
        &target,
        "--installer",
        &installer,
    ];

    // No terminal and no --yes: refused, the target and the host file untouched.
    let r = hearth(&lab, &base);
    assert_eq!(r.status.code(), Some(1), "{}", text(&r));
    assert!(
        text(&r).contains("no terminal to confirm on; pass --yes"),
        "{}",
        text(&r)
    );
    assert_eq!(profile(&lab), None, "{}", text(&r));
    let path = lab.fleet_dir().join("hosts/h1.toml");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), host_file);

    refusals(&lab, &base, &host_file);

    // The plan: nothing to erase on a lab host, the installer command, where the key goes.
    let mut dry = base.to_vec();
    dry.push("--dry-run");
    let r = hearth(&lab, &dry);
    let out = text(&r);
    assert_eq!(r.status.code(), Some(0), "{out}");
    assert!(out.contains("will erase no disk"), "{out}");
    assert!(
        out.contains("private half -> /etc/ssh/ssh_host_ed25519_key"),
        "{out}"
    );
    assert!(out.contains(&format!("--target-host {target}")), "{out}");
    assert_eq!(profile(&lab), None, "{out}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), host_file);

    // The install.
    let mut run = base.to_vec();
    run.extend(["--yes", "--boot-timeout", "60"]);
    let r = hearth(&lab, &run);
    let out = text(&r);
    assert_eq!(r.status.code(), Some(0), "{out}");
    assert!(out.contains("### installation finished ###"), "{out}");
    assert!(out.contains("h1: installed, running /nix/store/"), "{out}");
    assert!(out.contains("(generation 1); host key verified"), "{out}");

    // The host file names the generated key, and the host presents exactly it.
    let staged = lab
        .fleet_dir()
        .join(".hearth/install/h1/extra/etc/ssh/ssh_host_ed25519_key.pub");
    let public = std::fs::read_to_string(&staged).unwrap();
    let key: Vec<&str> = public.split_whitespace().take(2).collect();
    let now = std::fs::read_to_string(&path).unwrap();
    assert!(
        now.contains(&format!("host_key = \"{}", key.join(" "))),
        "{now}"
    );
    let served = std::fs::read_to_string(
        lab.host("h1")
            .unwrap()
            .dir
            .join("ssh/ssh_host_ed25519_key.pub"),
    )
    .unwrap();
    assert_eq!(served.trim(), public.trim());
    let mode =
        std::fs::metadata(lab.host("h1").unwrap().dir.join("ssh/ssh_host_ed25519_key")).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    assert_eq!(mode.uid(), 0);
    assert!(profile(&lab).is_some());

    // A re-install with the key handed over (`--host-key`), after the staged copy is gone:
    // the same identity, the host file unchanged. A key that isn't the host file's is refused.
    let given = dir.path().join("given_key");
    let install_dir = lab.fleet_dir().join(".hearth/install/h1");
    std::fs::copy(
        install_dir.join("extra/etc/ssh/ssh_host_ed25519_key"),
        &given,
    )
    .unwrap();
    std::fs::remove_dir_all(&install_dir).unwrap();
    let other = dir.path().join("other_key");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(ok.success());
    let mut again = run.clone();
    again.extend(["--host-key", other.to_str().unwrap()]);
    let r = hearth(&lab, &again);
    assert_eq!(r.status.code(), Some(1), "{}", text(&r));
    assert!(
        text(&r).contains("is not the private half of `host_key`"),
        "{}",
        text(&r)
    );
    assert!(!text(&r).contains("### building"), "{}", text(&r));
    let mut again = run.clone();
    again.extend(["--host-key", given.to_str().unwrap()]);
    let r = hearth(&lab, &again);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r));
    assert!(text(&r).contains("host key verified"), "{}", text(&r));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), now);

    // `hearth deploy` (strict host-key checking against the inventory) accepts it as it is.
    let r = hearth(&lab, &["deploy", "h1"]);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r));
    let r = hearth(&lab, &["status", "h1"]);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r));
}
