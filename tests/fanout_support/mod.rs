//! What the fan-out lab test and benchmark share: the trust a generated NixOS module would
//! set up on a host (push user, trusted key, peer keys), done by hand on lab hosts.
#![allow(dead_code)]

use crate::deploy_common::*;
use hearth::nix::sign;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("spawn")
}

pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn append(path: &Path, text: &str) {
    // Append in place: these files are bind-mounted into the host, by inode.
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

pub fn keygen(path: &Path, comment: &str) -> String {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(path);
    ok(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path));
    let pubkey = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    pubkey
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn restricted(key: &str, comment: &str) -> String {
    format!("restrict,command=\"nix-daemon --stdio\" {key} {comment}\n")
}

/// Bytes the root namespace (the deployer) sent into the lab bridge: forwarded host-to-host
/// frames never pass the bridge's own interface, so this is the deployer's side only.
pub fn deployer_tx(lab: &Lab) -> u64 {
    let p = format!(
        "/sys/class/net/{}/statistics/tx_bytes",
        lab.lab.config.bridge()
    );
    std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
}

/// Restart a host's nix-daemon so it reads the new nix.conf (sshd starts it again).
pub fn restart_daemon(lab: &Lab, host: &str) {
    let ns = &lab.lab.host(host).unwrap().netns;
    let pids = ok(Command::new("ip").args(["netns", "pids", ns]));
    for pid in pids.split_whitespace() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "nix-daemon" {
            ok(Command::new("kill").arg(pid));
        }
    }
    lab.lab.kill_sshd(host).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    lab.lab.start_sshd(host).unwrap();
}

/// What generated NixOS modules do on real hosts, done by hand on lab hosts. Returns the
/// deployer's public key.
pub fn set_up_trust(lab: &Lab, xdg: &Path) -> String {
    let root = lab.root().to_path_buf();
    let inv = hearth::inventory::load(&root).unwrap();
    // The CLI makes the key pair: secret in the config dir, public half in the repository.
    let made = ok(lab
        .hearth_cmd(&["deploy", "--init-signing"])
        .env("XDG_CONFIG_HOME", xdg));
    assert!(made.contains("keys/deployer.pub"), "{made}");
    let key = sign::DeployerKey {
        secret: sign::deployer_secret_path(xdg, &inv.fleet.domain),
        public: std::fs::read_to_string(root.join("keys/deployer.pub"))
            .unwrap()
            .trim()
            .to_string(),
    };
    let mode = std::fs::metadata(&key.secret).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    assert!(sign::valid_public_key(&key.public), "{}", key.public);
    let mut peers = BTreeMap::new();
    for h in &lab.hosts {
        let d = &h.dir;
        append(
            &d.join("etc/passwd"),
            &format!(
                "{}:x:1989:1989:hearth push:/nonexistent:/bin/sh\n",
                sign::PUSH_USER
            ),
        );
        append(
            &d.join("etc/group"),
            &format!("{}:x:1989:\n", sign::PUSH_USER),
        );
        append(
            &d.join("etc/shadow"),
            &format!("{}:*:19000:0:99999:7:::\n", sign::PUSH_USER),
        );
        append(
            &d.join("etc-nix/nix.conf"),
            &format!("trusted-public-keys = {}\n", key.public),
        );
        let rel = sign::PEER_KEY_PATH.trim_start_matches("/nix/");
        let pk = keygen(&h.nix().join(rel), &format!("hearth-peer-{}", h.name));
        std::fs::write(
            root.join("keys").join(sign::peer_pub_file(&h.name)),
            format!("{pk}\n"),
        )
        .unwrap();
        peers.insert(h.name.clone(), pk);
    }
    for h in &lab.hosts {
        for (other, pk) in peers.iter().filter(|(o, _)| **o != h.name) {
            append(
                &h.dir.join("ssh/authorized_keys"),
                &restricted(pk, &format!("hearth-peer-{other}")),
            );
        }
        restart_daemon(lab, &h.name);
    }
    hearth::lab::regenerate(&root).unwrap();
    let common = std::fs::read_to_string(root.join("generated/common.nix")).unwrap();
    assert!(
        common.contains(&key.public),
        "gen puts the key into every host: {common}"
    );
    key.public
}

/// The closure of `path` in the deployer's store: (paths, NAR bytes).
pub fn closure(lab: &Lab, path: &str) -> (BTreeSet<String>, u64) {
    let out = ok(Command::new("nix")
        .args(["path-info", "--json", "-r", path])
        .env("NIX_CONFIG", lab.lab.nix_config()));
    let v: Value = serde_json::from_str(&out).unwrap();
    let a = v.as_array().unwrap();
    (
        a.iter()
            .map(|i| i["path"].as_str().unwrap().to_string())
            .collect(),
        a.iter().map(|i| i["narSize"].as_u64().unwrap()).sum(),
    )
}

pub fn deploy_common_run(out: Output, start: Instant) -> Run {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Run {
        code: out.status.code(),
        events: stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}
