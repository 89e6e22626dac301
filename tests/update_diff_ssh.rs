//! `hearth diff HOST` over SSH: a throwaway sshd on loopback serves "the host"; its
//! system profile points at one raw toplevel, the repo side is another.

mod update_support;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use update_support::*;

struct Sshd(Child);
impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn toplevel(dir: &Path, name: &str, pkgs: &[&str], nix_config: &str) -> String {
    let links: String = pkgs
        .iter()
        .enumerate()
        .map(|(i, p)| format!(" ln -s ${{mk \"{p}\" \"echo {p} > $out\"}} $out/p{i};"))
        .collect();
    let expr = format!(
        r#"let mk = name: script: derivation {{ inherit name; system = "{}"; builder = "/bin/sh"; args = [ "-c" script ]; }};
in mk "nixos-system-box-1" "PATH=/usr/bin:/bin; mkdir $out;{links}"
"#,
        system()
    );
    let file = dir.join(name);
    std::fs::write(&file, expr).unwrap();
    let json = nix(
        dir,
        &["build", "--no-link", "--json", "-f", file.to_str().unwrap()],
        nix_config,
    );
    hearth::nix::flake::parse_build_json(&json).unwrap()
}

#[test]
fn diff_reads_the_running_system_over_ssh() {
    let (_g, base) = tempdir();
    let Some(nix_config) = offline_nix(&base) else {
        return;
    };
    if unsafe { libc::geteuid() } != 0 || !Path::new("/usr/sbin/sshd").exists() {
        println!("SKIPPED: needs root and /usr/sbin/sshd");
        return;
    }
    let old = toplevel(
        &base,
        "old.nix",
        &["openssh-9.8p1", "samba-4.20.1"],
        &nix_config,
    );
    let new = toplevel(
        &base,
        "new.nix",
        &["openssh-9.9p1", "samba-4.20.1", "htop-3.3.0"],
        &nix_config,
    );
    // "The host's" system profile.
    let profile = base.join("system");
    std::os::unix::fs::symlink(&old, &profile).unwrap();

    keygen(&base.join("host_key"));
    keygen(&base.join("client_key"));
    std::fs::copy(base.join("client_key.pub"), base.join("authorized_keys")).unwrap();
    let port = free_port();
    let cfg = format!(
        "ListenAddress 127.0.0.1:{port}\nHostKey {b}/host_key\nAuthorizedKeysFile {b}/authorized_keys\n\
         PidFile {b}/sshd.pid\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nUseDNS no\n",
        b = base.display()
    );
    std::fs::write(base.join("sshd_config"), cfg).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let _sshd = Sshd(
        Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(base.join("sshd_config"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The host file carries the host key: hearth checks it strictly, as deploy does.
    let host_pub = std::fs::read_to_string(base.join("host_key.pub")).unwrap();
    let host_key = host_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let repo = base.join("repo");
    std::fs::create_dir_all(repo.join("hosts")).unwrap();
    std::fs::write(repo.join("hearth.toml"), "domain = \"home.arpa\"\n").unwrap();
    let host_file = |key: &str| {
        format!(
            "system = \"x86_64-linux\"\nhardware = \"lab\"\nhost_key = \"{key}\"\n\n[ssh]\naddress = \"127.0.0.1\"\nport = {port}\n"
        )
    };
    std::fs::write(repo.join("hosts/box.toml"), host_file(&host_key)).unwrap();

    // sshd needs a moment to listen.
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let identity = base.join("client_key");
    let args = [
        "diff",
        "box",
        "--ssh-identity",
        identity.to_str().unwrap(),
        "--profile",
        profile.to_str().unwrap(),
        "--to",
        new.as_str(),
    ];
    let out = hearth(&repo, &args, Some(&nix_config));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    println!("{stdout}");
    assert!(
        stdout.starts_with("box: 1 upgraded, 1 added; closure "),
        "{stdout}"
    );
    assert!(stdout.contains("[U] openssh  9.8p1 → 9.9p1"), "{stdout}");
    assert!(stdout.contains("[A] htop  — → 3.3.0"), "{stdout}");
    assert!(!stdout.contains("samba"), "{stdout}");

    // A host key that is not the host's: refused, never trusted on first use.
    keygen(&base.join("other_key"));
    let other = std::fs::read_to_string(base.join("other_key.pub")).unwrap();
    let other = other
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(repo.join("hosts/box.toml"), host_file(&other)).unwrap();
    let out = hearth(&repo, &args, Some(&nix_config));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("reading the current system of box"), "{err}");
    assert!(
        err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || err.contains("Host key verification failed"),
        "{err}"
    );
}
