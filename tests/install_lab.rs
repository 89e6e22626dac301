//! `hearth install` end to end against a lab host in a "rescue" state: no system profile,
//! and an sshd host key nobody knows (as an installer ISO presents). nixos-anywhere's
//! install phase is played by tests/install/installer-standin.sh (lab hosts can't kexec or
//! partition). Afterwards the host must pass strict host-key checking with the key hearth
//! generated, `hearth deploy` must accept it with no further step, and a secret granted to
//! it must decrypt on the host with its new key (and no longer with its old one).
//!
//! Own lab id `in1` on 10.77.230.0/24. Needs root, nix, sshd, iproute2, age (else SKIPPED).
//! Runs on plain lab hosts and, with HEARTH_LAB_SYSTEMD=1, on hosts that boot systemd.

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

/// Run `script` in h1's mount namespace, the one every login inherits: that of its sshd on
/// a plain host, that of its systemd (which runs sshd as a unit) on a host that boots it.
fn in_host_mounts(lab: &Lab, script: &str) {
    let mut c = match lab.systemd_pid("h1").unwrap() {
        Some(_) => lab
            .console_command("h1", &format!("set -e\n{script}"))
            .unwrap(),
        None => {
            let dir = &lab.host("h1").unwrap().dir;
            let pid = std::fs::read_to_string(dir.join("ssh/sshd.pid")).unwrap();
            let mut c = Command::new("nsenter");
            c.args(["-t", pid.trim(), "-m", "sh", "-ec", script]);
            c
        }
    };
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

/// Fake disks for h1, inside its mount namespace only: an overlay over /dev (its layers on
/// a tmpfs, a path both kinds of host have) holding /dev/disk/by-id links, and a file
/// system "on" /dev/fake-data (a tmpfs named after it).
fn fake_disks(lab: &Lab) {
    in_host_mounts(
        lab,
        "mkdir -p /tmp/fake-dev && mount -t tmpfs fake-dev /tmp/fake-dev\n\
         mkdir /tmp/fake-dev/upper /tmp/fake-dev/work\n\
         mount -t overlay overlay -o lowerdir=/dev,upperdir=/tmp/fake-dev/upper,workdir=/tmp/fake-dev/work /dev\n\
         mkdir -p /dev/disk/by-id /tmp/fake-data\n\
         ln -s ../../fake-root /dev/disk/by-id/ata-FAKE_ROOT\n\
         ln -s ../../fake-data /dev/disk/by-id/ata-FAKE_DATA\n\
         mount -t tmpfs /dev/fake-data /tmp/fake-data\n",
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

const SECRET: &str = "in-token";
const PLAINTEXT: &str = "the install lab's join token\n";

/// Grant secret `in-token` to h1 while it still has its old key (the lab's), and encrypt it
/// with `hearth secrets set` (to the lab admin and that key). Returns a copy of the old
/// private key, kept to show the re-keyed file no longer opens with it.
fn grant_secret(lab: &Lab, dir: &Path) -> PathBuf {
    let fleet = lab.fleet_dir().join("hearth.toml");
    let mut t = std::fs::read_to_string(&fleet).unwrap();
    t.push_str(&format!("\n[secrets.{SECRET}]\nhosts = [\"h1\"]\n"));
    std::fs::write(&fleet, t).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_hearth"));
    c.arg("-C")
        .arg(lab.fleet_dir())
        .args(["secrets", "set", SECRET])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(PLAINTEXT.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let old = dir.join("old_host_key");
    std::fs::copy(
        lab.host("h1").unwrap().dir.join("ssh/ssh_host_ed25519_key"),
        &old,
    )
    .unwrap();
    let o = age_decrypt_here(lab, &old);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        PLAINTEXT,
        "{}",
        text(&o)
    );
    old
}

fn secret_file(lab: &Lab) -> PathBuf {
    lab.fleet_dir().join(format!("secrets/{SECRET}.age"))
}

/// `age -d` with the given key, here: what agenix does with the host's key.
fn age_decrypt_here(lab: &Lab, key: &Path) -> Output {
    Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(key)
        .arg(secret_file(lab))
        .output()
        .unwrap()
}

/// What agenix does at activation, on the host: `age -d` with the host's own key from its
/// /etc/ssh (in the lab, the sshd directory `/nix/var/lab/env` names), the ciphertext on stdin.
const DECRYPT_ON_HOST: &str =
    ". /nix/var/lab/env && exec age -d -i \"${SSHD_CONFIG%/*}/ssh_host_ed25519_key\"";

fn with_secret_on_stdin(mut c: Command, lab: &Lab) -> Output {
    let file = std::fs::File::open(secret_file(lab)).unwrap();
    c.stdin(file).output().unwrap()
}

/// Log in as `hearth deploy` does (strict checking against the inventory's `host_key`, a
/// fresh known_hosts from it) and decrypt the secret on the host.
fn decrypt_on_host_strict(lab: &Lab, dir: &Path) -> Output {
    let inv = hearth::inventory::load(lab.fleet_dir()).unwrap();
    let sh = inv.ssh_host("h1").unwrap();
    let settings = hearth::ssh::SshSettings {
        identity: Some(lab.identity_path()),
        include: None,
    };
    let files = hearth::ssh::write_files(&dir.join("strict-ssh"), &[sh], &settings).unwrap();
    let cfg = std::fs::read_to_string(&files.config).unwrap();
    assert!(cfg.contains("StrictHostKeyChecking yes"), "{cfg}");
    let mut c = Command::new("ssh");
    c.arg("-F")
        .arg(&files.config)
        .args(["h1", "--", DECRYPT_ON_HOST]);
    with_secret_on_stdin(c, lab)
}

#[test]
fn install_a_rescue_host_then_deploy_accepts_it() {
    if let Some(reason) = lab_support::missing_prerequisite() {
        println!("SKIPPED: {reason}");
        return;
    }
    if Command::new("age").arg("--version").output().is_err() {
        assert!(
            !lab_support::strict(),
            "HEARTH_REQUIRE_EVAL=1 but `age` is not installed"
        );
        println!("SKIPPED: `age` is not installed (it decrypts the host's secret as agenix does)");
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
    // Which kind of host this run is about (test.sh runs the test once per kind).
    assert_eq!(
        lab.systemd_pid("h1").unwrap().is_some(),
        hearth::lab::systemd_by_default(),
        "HEARTH_LAB_SYSTEMD decides whether h1 boots systemd"
    );
    let old_key = grant_secret(&lab, dir.path());
    let host_file = rescue(&lab);
    // The rescue system's key (the host's only one now) can't open the host's secret.
    let c = lab.console_command("h1", DECRYPT_ON_HOST).unwrap();
    let o = with_secret_on_stdin(c, &lab);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no identity matched any of the recipients"),
        "{}",
        text(&o)
    );
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

    // The secret was re-keyed during the install: it opens on the host with the new key
    // (after a strict login), no longer with the old one, and `hearth secrets check` agrees.
    assert!(
        out.contains(&format!("secrets: re-keyed for h1's new key: {SECRET}")),
        "{out}"
    );
    let o = decrypt_on_host_strict(&lab, dir.path());
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), PLAINTEXT);
    let o = age_decrypt_here(&lab, &old_key);
    assert!(!o.status.success(), "{}", text(&o));
    let r = hearth(&lab, &["secrets", "check"]);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r));

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
