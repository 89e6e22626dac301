//! Command lines for every external tool `hearth install` and `hearth image` run. Pure:
//! what goes in is decided elsewhere; these only spell it, so tests compare exact strings.

use crate::builders::machines::Machine;

/// Where nixos-anywhere builds the system (from the host's build placement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOn {
    /// The deployer's own Nix.
    Local,
    /// The target (running the installer) builds its own system.
    Remote,
    /// The deployer's Nix with exactly these remote builders and no local jobs.
    Builders(Vec<Machine>),
}

/// Everything one nixos-anywhere run needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anywhere {
    /// The repository flake, e.g. `/srv/homelab`.
    pub flake: String,
    pub host: String,
    /// `user@address` of the target's current (rescue / installer) system.
    pub target: String,
    pub port: u16,
    pub identity: Option<String>,
    /// Directory copied to `/` of the new system (holds `etc/ssh/ssh_host_ed25519_key`).
    pub extra_files: String,
    pub build_on: BuildOn,
}

/// Arguments after the installer command (`nixos-anywhere …`).
///
/// No `--copy-host-keys`: the key hearth generated is the host's identity, never the
/// rescue system's. No `--disk-encryption-keys`: the generated layouts encrypt nothing.
/// `--chown` pins the key's owner to root even if the deployer's uid differs.
pub fn anywhere_args(a: &Anywhere) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "--flake".into(),
        format!("{}#{}", a.flake, a.host),
        "--target-host".into(),
        a.target.clone(),
        "--ssh-port".into(),
        a.port.to_string(),
    ];
    if let Some(id) = &a.identity {
        v.extend(["-i".into(), id.clone()]);
    }
    // No `--ssh-option UserKnownHostsFile=…`: nixos-anywhere puts its own
    // `UserKnownHostsFile=/dev/null` and `StrictHostKeyChecking=no` first, and ssh keeps the
    // first value (the key changes at kexec anyway). hearth's own login to the target checks
    // against its own file (`rescue_known_hosts`, accept-new) before anything is erased.
    v.extend([
        "--extra-files".into(),
        a.extra_files.clone(),
        "--chown".into(),
        "/etc/ssh".into(),
        "0:0".into(),
        "--phases".into(),
        "kexec,disko,install,reboot".into(),
    ]);
    match &a.build_on {
        BuildOn::Local => v.extend(["--build-on".into(), "local".into()]),
        BuildOn::Remote => v.extend(["--build-on".into(), "remote".into()]),
        BuildOn::Builders(ms) => {
            v.extend(["--build-on".into(), "local".into()]);
            let spec = ms.iter().map(Machine::line).collect::<Vec<_>>().join(" ; ");
            v.extend(["--option".into(), "builders".into(), spec]);
            v.extend(["--option".into(), "max-jobs".into(), "0".into()]);
        }
    }
    v
}

/// The installer invocation through `sh`, so `--installer 'nix run .#nixos-anywhere --'`
/// (several words) and a plain path both work: `sh -c '<cmd> "$@"' nixos-anywhere <args>`.
pub fn installer_command(installer: &str, args: &[String]) -> Vec<String> {
    let mut v = vec![
        "sh".to_string(),
        "-c".into(),
        format!("{installer} \"$@\""),
        "nixos-anywhere".into(),
    ];
    v.extend(args.iter().cloned());
    v
}

/// The default installer: nixos-anywhere as pinned by the repository flake (nixpkgs' package).
pub fn default_installer(flake: &str) -> String {
    format!(
        "nix --extra-experimental-features 'nix-command flakes' run {}#nixos-anywhere --",
        crate::ssh::quote(flake)
    )
}

/// `nix build` of the host's SD image (the flake's `images.<host>`: NixOS's sd-image machinery
/// over the host's own configuration), after `nix`'s feature flags. With builders, they
/// alone build it (`--max-jobs 0`), as for a deploy.
pub fn image_build_args(
    flake: &str,
    host: &str,
    out_link: &str,
    builders: &[Machine],
) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "build".into(),
        "--no-write-lock-file".into(),
        "--out-link".into(),
        out_link.into(),
    ];
    if !builders.is_empty() {
        v.extend(crate::builders::machines::builders_flags(builders, true));
    }
    v.push(format!("{flake}#images.{host}"));
    v
}

/// A command line as a user would type it: words with shell-special characters quoted,
/// `*` left bare where the caller means a glob.
pub fn shell_line(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_word(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@#%+,*".contains(c));
    if plain {
        w.to_string()
    } else {
        crate::ssh::quote(w)
    }
}

/// What the user runs to write the image: to an SD card from here, or to the eMMC from a
/// rescue system booted off SD. `conv=fsync` so pulling the card after `dd` returns is safe.
pub fn write_image_command(image: &str, device: &str) -> String {
    let src = shell_word(image);
    let dev = shell_word(device);
    if image.ends_with(".zst") {
        format!("zstdcat {src} | sudo dd of={dev} bs=4M conv=fsync status=progress")
    } else {
        format!("sudo dd if={src} of={dev} bs=4M conv=fsync status=progress")
    }
}

/// `ssh-keygen` for a new host key with no passphrase, named like sshd's own.
pub fn keygen_args(path: &str, host: &str) -> Vec<String> {
    vec![
        "-q".into(),
        "-t".into(),
        "ed25519".into(),
        "-N".into(),
        String::new(),
        "-C".into(),
        format!("root@{host}"),
        "-f".into(),
        path.into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(build_on: BuildOn) -> Anywhere {
        Anywhere {
            flake: "/srv/homelab".into(),
            host: "nas".into(),
            target: "root@192.0.2.7".into(),
            port: 2222,
            identity: Some("/home/me/.ssh/id_ed25519".into()),
            extra_files: "/srv/homelab/.hearth/install/nas/extra".into(),
            build_on,
        }
    }

    #[test]
    fn local_build_exact() {
        assert_eq!(
            anywhere_args(&base(BuildOn::Local)).join(" "),
            "--flake /srv/homelab#nas --target-host root@192.0.2.7 --ssh-port 2222 \
             -i /home/me/.ssh/id_ed25519 --extra-files /srv/homelab/.hearth/install/nas/extra \
             --chown /etc/ssh 0:0 --phases kexec,disko,install,reboot --build-on local"
        );
    }

    #[test]
    fn remote_build_without_identity() {
        let mut a = base(BuildOn::Remote);
        a.identity = None;
        assert_eq!(
            anywhere_args(&a).join(" "),
            "--flake /srv/homelab#nas --target-host root@192.0.2.7 --ssh-port 2222 \
             --extra-files /srv/homelab/.hearth/install/nas/extra \
             --chown /etc/ssh 0:0 --phases kexec,disko,install,reboot --build-on remote"
        );
    }

    fn machine() -> Machine {
        Machine {
            name: "nixos".into(),
            uri: "ssh://root@192.0.2.2".into(),
            systems: vec!["x86_64-linux".into(), "aarch64-linux".into()],
            ssh_key: None,
            max_jobs: 4,
            speed_factor: 1,
            features: vec![],
            mandatory_features: vec![],
            host_key_base64: None,
            substitutes: false,
            port: 22,
        }
    }

    #[test]
    fn builder_placement_passes_machine_line() {
        let m = machine();
        let args = anywhere_args(&base(BuildOn::Builders(vec![m.clone()])));
        let tail = args[args.len() - 8..].to_vec();
        assert_eq!(
            tail,
            vec![
                "--build-on".to_string(),
                "local".into(),
                "--option".into(),
                "builders".into(),
                m.line(),
                "--option".into(),
                "max-jobs".into(),
                "0".into()
            ]
        );
    }

    #[test]
    fn installer_through_sh() {
        assert_eq!(
            installer_command(
                "nix run .#nixos-anywhere --",
                &["--flake".into(), "x#y".into()]
            ),
            vec![
                "sh",
                "-c",
                "nix run .#nixos-anywhere -- \"$@\"",
                "nixos-anywhere",
                "--flake",
                "x#y"
            ]
        );
        assert_eq!(
            default_installer("/srv/h l"),
            "nix --extra-experimental-features 'nix-command flakes' run '/srv/h l'#nixos-anywhere --"
        );
    }

    #[test]
    fn image_commands() {
        assert_eq!(
            shell_line(&image_build_args(
                "/srv/homelab",
                "helios64",
                "result-helios64",
                &[]
            )),
            "build --no-write-lock-file --out-link result-helios64 /srv/homelab#images.helios64"
        );
        let m = machine();
        assert_eq!(
            shell_line(&image_build_args(
                "/srv/h",
                "helios64",
                "r",
                std::slice::from_ref(&m)
            )),
            format!(
                "build --no-write-lock-file --out-link r --builders '{}' --option \
                 builders-use-substitutes false --max-jobs 0 /srv/h#images.helios64",
                m.line()
            )
        );
        assert_eq!(
            write_image_command("result/sd-image/*.img.zst", "/dev/sdX"),
            "zstdcat result/sd-image/*.img.zst | sudo dd of=/dev/sdX bs=4M conv=fsync status=progress"
        );
        assert_eq!(
            write_image_command("my image.img", "/dev/mmcblk1"),
            "sudo dd if='my image.img' of=/dev/mmcblk1 bs=4M conv=fsync status=progress"
        );
    }

    #[test]
    fn keygen_exact() {
        assert_eq!(
            keygen_args("/k/ssh_host_ed25519_key", "nas"),
            vec![
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "root@nas",
                "-f",
                "/k/ssh_host_ed25519_key"
            ]
        );
    }
}
