//! Store-path signing: the fleet's binary-cache key pairs and the commands that use them.
//!
//! Trust model (docs/DEPLOYMENT.md, "Trust"):
//! - the deployer's key pair: the secret half in the user's config dir
//!   (`$XDG_CONFIG_HOME/hearth/signing/<fleet>.sec`), made on first need; the public half in
//!   the repository, `keys/deployer.pub`;
//! - one per builder: the secret half on the builder (`nix.settings.secret-key-files`), the
//!   public half in `keys/builder-<name>.pub`;
//! - peer logins for fan-out: each host's SSH key for `nix-daemon --stdio` only, public half in
//!   `keys/peer-<host>.pub`.
//!
//! `hearth gen` puts every Nix public key into each host's `nix.settings.trusted-public-keys`,
//! so a target verifies what it receives even from a user its Nix does not trust.

use super::NixVersion;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Repository directory that holds the public halves (flat: the gen stamp hashes its entries).
pub const KEYS_DIR: &str = "keys";
pub const DEPLOYER_PUB: &str = "deployer.pub";
/// Where a host keeps its secret peer-login key (root only; a NixOS module or the lab makes it).
pub const PEER_KEY_PATH: &str = "/nix/var/hearth/peer/id_ed25519";
/// A builder's secret signing key (made by `builder_keygen_script`, root only).
pub const BUILDER_SECRET_PATH: &str = "/var/lib/hearth/signing/builder.sec";
/// The non-trusted user builders and peers push to: `nix-daemon --stdio` only.
pub const PUSH_USER: &str = "hearth-push";

/// `keys/builder-<name>.pub`.
pub fn builder_pub_file(builder: &str) -> String {
    format!("builder-{builder}.pub")
}

/// `keys/peer-<host>.pub`.
pub fn peer_pub_file(host: &str) -> String {
    format!("peer-{host}.pub")
}

/// The key's name (what signatures carry before the colon): `<fleet>-deployer-1`.
pub fn deployer_key_name(fleet: &str) -> String {
    format!("{fleet}-deployer-1")
}

/// The secret key file of the deployer, in the user's config dir.
pub fn deployer_secret_path(config_home: &Path, fleet: &str) -> PathBuf {
    config_home
        .join("hearth")
        .join("signing")
        .join(format!("{fleet}.sec"))
}

/// `$XDG_CONFIG_HOME`, else `~/.config`.
pub fn config_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
}

/// Commands that make a key pair, writing the secret to `sec` and the public half to `pub_`.
/// Nix 2.8 has `nix-store --generate-binary-cache-key`; 2.18+ also `nix key generate-secret`,
/// which prints to stdout (the caller writes it) — both are returned as argv lists.
pub fn generate_args(version: NixVersion, name: &str, sec: &Path, pub_: &Path) -> Vec<Vec<String>> {
    if version >= NixVersion::new(2, 18, 0) {
        vec![
            vec![
                "key".into(),
                "generate-secret".into(),
                "--key-name".into(),
                name.into(),
            ],
            vec!["key".into(), "convert-secret-to-public".into()],
        ]
    } else {
        vec![vec![
            "--generate-binary-cache-key".into(),
            name.into(),
            sec.display().to_string(),
            pub_.display().to_string(),
        ]]
    }
}

/// The script (run as root on a builder) that makes its signing key once and prints the
/// public half, for `keys/builder-<name>.pub`. Nix 2.8's `nix-store` has the command too.
pub fn builder_keygen_script(builder: &str) -> String {
    let dir = BUILDER_SECRET_PATH.rsplit_once('/').expect("absolute").0;
    format!(
        "set -eu\nif [ ! -e {BUILDER_SECRET_PATH} ]; then\n  mkdir -p -m 700 {dir}\n  nix-store --generate-binary-cache-key {builder}-builder-1 {BUILDER_SECRET_PATH} {dir}/builder.pub\n  chmod 600 {BUILDER_SECRET_PATH}\nfi\ncat {dir}/builder.pub\n"
    )
}

/// `nix store sign --key-file K --recursive P…` (after the program name and feature flags).
pub fn sign_args(key_file: &Path, paths: &[String]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "store".into(),
        "sign".into(),
        "--key-file".into(),
        key_file.display().to_string(),
        "--recursive".into(),
    ];
    a.extend(paths.iter().cloned());
    a
}

/// A Nix public key line `name:base64` (what `trusted-public-keys` lists).
pub fn valid_public_key(s: &str) -> bool {
    let Some((name, key)) = s.trim().split_once(':') else {
        return false;
    };
    !name.is_empty()
        && !name.contains(char::is_whitespace)
        && key.len() == 44
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=')
}

/// The public keys of the fleet found in `keys/`: the deployer's, then the builders' by name.
/// Only `*.pub` files that hold a Nix key (`name:base64`); peer SSH keys are read apart.
pub fn fleet_public_keys(root: &Path) -> Result<Vec<String>> {
    let dir = root.join(KEYS_DIR);
    let mut files: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(d) => d
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n == DEPLOYER_PUB || (n.starts_with("builder-") && n.ends_with(".pub")))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    files.sort_by_key(|n| (n != DEPLOYER_PUB, n.clone()));
    let mut keys = Vec::new();
    for f in files {
        let path = dir.join(&f);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let key = text.trim();
        if !valid_public_key(key) {
            anyhow::bail!(
                "{}:1:1: not a Nix public key (`name:base64`, as `nix key convert-secret-to-public` prints); regenerate it or delete the file",
                path.display()
            );
        }
        keys.push(key.to_string());
    }
    Ok(keys)
}

/// A host's peer-login public SSH key from `keys/peer-<host>.pub`, if the fleet has one.
pub fn peer_public_key(root: &Path, host: &str) -> Option<String> {
    let text = std::fs::read_to_string(root.join(KEYS_DIR).join(peer_pub_file(host))).ok()?;
    let key: Vec<&str> = text.split_whitespace().take(2).collect();
    let key = (key.len() == 2 && key[0].starts_with("ssh-")).then(|| key.join(" "))?;
    // It becomes an authorized_keys line on every host: one line, a well-formed key.
    crate::lines::keys::public_key(&key).ok()?;
    Some(key)
}

/// The fleet's public trust material from `keys/`, as `hearth gen` emits it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// Nix signing keys (`name:base64`): the deployer's, then the builders'.
    pub nix_keys: Vec<String>,
    /// Peer-login SSH keys by host (`keys/peer-<host>.pub`).
    pub peer_keys: std::collections::BTreeMap<String, String>,
}

impl Trust {
    pub fn load(root: &Path, hosts: impl IntoIterator<Item = String>) -> Result<Trust> {
        Ok(Trust {
            nix_keys: fleet_public_keys(root)?,
            peer_keys: hosts
                .into_iter()
                .filter_map(|h| peer_public_key(root, &h).map(|k| (h, k)))
                .collect(),
        })
    }
    /// Signing is set up: targets check signatures, so pushes go to the untrusted user.
    pub fn signing(&self) -> bool {
        !self.nix_keys.is_empty()
    }
    /// Whether `builder` has a signing key (its pushes are then signed and go to [`PUSH_USER`]).
    pub fn builder_signs(root: &Path, builder: &str) -> bool {
        root.join(KEYS_DIR).join(builder_pub_file(builder)).exists()
    }
}

/// The deployer's signing key, if this fleet has one configured (public half in the repo)
/// and its secret half is here. `None` means: copy the old way (`--no-check-sigs`, as a user
/// the target trusts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployerKey {
    pub secret: PathBuf,
    pub public: String,
}

/// Find the deployer's key: `keys/deployer.pub` in the repo and the secret in the config dir.
/// A public half without its secret is an error naming both paths (signing was set up on
/// another machine: copy the secret, or rotate with `hearth keys`/docs).
pub fn deployer_key(root: &Path, fleet: &str) -> Result<Option<DeployerKey>> {
    let pub_path = root.join(KEYS_DIR).join(DEPLOYER_PUB);
    let Ok(public) = std::fs::read_to_string(&pub_path) else {
        return Ok(None);
    };
    let home = config_home().context("neither XDG_CONFIG_HOME nor HOME is set")?;
    let secret = deployer_secret_path(&home, fleet);
    if !secret.exists() {
        anyhow::bail!(
            "{} names the deployer's signing key, but its secret half {} is not on this machine; copy it from the machine that made it, or rotate the key (docs/DEPLOYMENT.md, \"Rotating keys\")",
            pub_path.display(),
            secret.display()
        );
    }
    Ok(Some(DeployerKey {
        secret,
        public: public.trim().to_string(),
    }))
}

/// Make the deployer's key pair: the secret in the config dir (mode 0600), the public half in
/// `keys/deployer.pub`. Refuses to replace an existing secret.
pub fn create_deployer_key(root: &Path, fleet: &str, version: NixVersion) -> Result<DeployerKey> {
    let home = config_home().context("neither XDG_CONFIG_HOME nor HOME is set")?;
    let secret = deployer_secret_path(&home, fleet);
    if secret.exists() {
        anyhow::bail!(
            "{} exists already; not replacing a signing key",
            secret.display()
        );
    }
    let dir = secret.parent().expect("has a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    set_mode(dir, 0o700)?;
    let pub_path = root.join(KEYS_DIR).join(DEPLOYER_PUB);
    std::fs::create_dir_all(root.join(KEYS_DIR))?;
    let steps = generate_args(version, &deployer_key_name(fleet), &secret, &pub_path);
    if steps.len() == 1 {
        run(Command::new("nix-store").args(&steps[0]), None)?;
    } else {
        let sec = run(super::command().args(&steps[0]), None)?;
        write_private(&secret, &sec)?;
        let public = run(super::command().args(&steps[1]), Some(&sec))?;
        std::fs::write(&pub_path, public)?;
    }
    set_mode(&secret, 0o600)?;
    Ok(DeployerKey {
        secret,
        public: std::fs::read_to_string(&pub_path)?.trim().to_string(),
    })
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))?;
    set_mode(path, 0o600)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<Vec<u8>> {
    use std::io::Write;
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        });
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    if let Some(data) = stdin {
        child.stdin.take().expect("piped").write_all(data)?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        anyhow::bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Sign `paths` and their closures with the deployer's key (idempotent: Nix skips a
/// signature a path already has).
pub async fn sign_closure(key: &DeployerKey, paths: &[String]) -> Result<()> {
    let out = super::tokio_command()
        .args(sign_args(&key.secret, paths))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("starting `nix store sign`")?;
    if !out.status.success() {
        anyhow::bail!(
            "signing the closure with {} failed: {}",
            key.secret.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "lab-deployer-1:0vYtd4fB1GuB3hJ0ly5l5O/P4ay+QdS3kb8d6pi/4Vk=";

    #[test]
    fn command_lines() {
        assert_eq!(
            sign_args(Path::new("/c/f.sec"), &["/nix/store/a-x".into()]).join(" "),
            "store sign --key-file /c/f.sec --recursive /nix/store/a-x"
        );
        let old = generate_args(
            NixVersion::new(2, 8, 0),
            "f-deployer-1",
            Path::new("/c/f.sec"),
            Path::new("/r/keys/deployer.pub"),
        );
        assert_eq!(
            old,
            vec![vec![
                "--generate-binary-cache-key".to_string(),
                "f-deployer-1".into(),
                "/c/f.sec".into(),
                "/r/keys/deployer.pub".into()
            ]]
        );
        let new = generate_args(
            NixVersion::new(2, 24, 0),
            "f-deployer-1",
            Path::new("/c/f.sec"),
            Path::new("/p"),
        );
        assert_eq!(
            new[0].join(" "),
            "key generate-secret --key-name f-deployer-1"
        );
        assert_eq!(new[1].join(" "), "key convert-secret-to-public");
        assert_eq!(
            builder_keygen_script("big"),
            "set -eu\nif [ ! -e /var/lib/hearth/signing/builder.sec ]; then\n  mkdir -p -m 700 /var/lib/hearth/signing\n  nix-store --generate-binary-cache-key big-builder-1 /var/lib/hearth/signing/builder.sec /var/lib/hearth/signing/builder.pub\n  chmod 600 /var/lib/hearth/signing/builder.sec\nfi\ncat /var/lib/hearth/signing/builder.pub\n"
        );
        assert_eq!(
            deployer_secret_path(Path::new("/home/a/.config"), "home"),
            Path::new("/home/a/.config/hearth/signing/home.sec")
        );
    }

    #[test]
    fn reads_the_fleets_public_keys_deployer_first() {
        let d = tempfile::tempdir().unwrap();
        assert!(fleet_public_keys(d.path()).unwrap().is_empty());
        let k = d.path().join(KEYS_DIR);
        std::fs::create_dir_all(&k).unwrap();
        std::fs::write(
            k.join("builder-big.pub"),
            "big-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        )
        .unwrap();
        std::fs::write(k.join(DEPLOYER_PUB), format!("{KEY}\n")).unwrap();
        std::fs::write(k.join("peer-h1.pub"), "ssh-ed25519 AAAAC3Nz h1\n").unwrap();
        assert_eq!(
            fleet_public_keys(d.path()).unwrap(),
            vec![
                KEY.to_string(),
                "big-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()
            ]
        );
        assert_eq!(
            peer_public_key(d.path(), "h1").as_deref(),
            Some("ssh-ed25519 AAAAC3Nz")
        );
        assert_eq!(peer_public_key(d.path(), "h2"), None);
        std::fs::write(k.join("builder-bad.pub"), "not a key").unwrap();
        let e = fleet_public_keys(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("builder-bad.pub:1:1: not a Nix public key"),
            "{e}"
        );
    }

    #[test]
    fn public_key_shape() {
        assert!(valid_public_key(KEY));
        assert!(!valid_public_key("no-colon"));
        assert!(!valid_public_key(
            "a b:0vYtd4fB1GuB3hJ0ly5l5O/P4ay+QdS3kb8d6pi/4Vk="
        ));
        assert!(!valid_public_key("a:short"));
    }
}
