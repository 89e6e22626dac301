//! The steps of `hearth install` and `hearth image`, in order, with their I/O.

use super::command::{self, Anywhere, BuildOn};
use super::{hostkey, plan, target, ImageArgs, InstallArgs, Rekey};
use crate::builders::placement::{self, Where};
use crate::inventory::{self, Host, Inventory};
use anyhow::{bail, Context, Result};
use std::io::{IsTerminal, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `hearth install`: the secrets granted to the host are re-keyed for its new key, decrypted
/// with the `--ssh-identity` key (if it is an admin's) or the default ones.
pub fn run_install(root: &Path, args: InstallArgs) -> Result<u8> {
    let ids: Vec<PathBuf> = args.ssh_identity.iter().cloned().collect();
    install(root, &args, &|r: &Path, h: &str| {
        crate::secrets::rekey_for_host_with(r, h, &ids)
    })
}

/// The install, with the secrets re-key step as a parameter.
pub fn install(root: &Path, args: &InstallArgs, rekey: Rekey) -> Result<u8> {
    let inv = inventory::load(root)?;
    let host = inv
        .host(&args.host)
        .with_context(|| format!("unknown host `{}` (no hosts/{}.toml)", args.host, args.host))?;
    let layout = super::layout_disks(host);
    // Lab hosts have no disks of their own: nothing to erase, everything else is the same.
    if layout.is_empty() && host.file.hardware != crate::inventory::model::Hardware::Lab {
        bail!(
            "{}: no [disks] section, so there is no disk layout to install; add one (docs/HOST_FILE.md)",
            host.source.display()
        );
    }
    let flake = match &args.flake {
        Some(f) => f.clone(),
        None => crate::nix::flake::repo_flake_ref(root)?,
    };
    let dir = hostkey::install_dir(&inv.root, &host.name);
    let (build_on, build_desc) = build_on(host, &inv)?;
    let installer = args
        .installer
        .clone()
        .unwrap_or_else(|| command::default_installer(&flake));
    let rescue = write_rescue_ssh(&dir, args)?;
    let anywhere = Anywhere {
        flake: flake.clone(),
        host: host.name.clone(),
        target: args.target.clone(),
        port: args.port,
        identity: args.ssh_identity.as_ref().map(|p| p.display().to_string()),
        extra_files: hostkey::extra_files_dir(&dir).display().to_string(),
        build_on,
    };
    let cmdline = command::installer_command(&installer, &command::anywhere_args(&anywhere));
    let facts = probe_target(&rescue);
    let decision = facts
        .as_ref()
        .map_err(|e| format!("{e:#}"))
        .and_then(|f| target::decide(&layout, f, args.wipe).map_err(|r| r.to_string()));
    let key = hostkey::staged_key(&dir);
    if args.dry_run {
        let p = plan::Plan {
            host: &host.name,
            target: &args.target,
            disks: decision.map(|e| target::render_erase(&e)),
            build: build_desc,
            key: key_plan(args.host_key.as_deref(), &key),
            host_file: host.source.display().to_string(),
            installer: cmdline,
            rekey: super::report_rekey(root, &host.name)?,
        };
        print!("{}", plan::render(&p));
        return Ok(0);
    }
    let erase = decision.map_err(anyhow::Error::msg)?;
    print!("{}", target::render_erase(&erase));
    println!("build: {build_desc}");
    confirm(&host.name, args.yes)?;
    let public = identity(root, &dir, host, args.host_key.as_deref(), rekey)?;
    run_installer(&cmdline)?;
    verify_first_boot(root, &inv, host, &public, args)
}

/// Which key the new system gets, for the plan.
fn key_plan(given: Option<&Path>, staged: &Path) -> String {
    match (given, staged.exists()) {
        (Some(g), _) => format!("use {} (staged at {})", g.display(), staged.display()),
        (None, true) => format!("reuse {}", staged.display()),
        (None, false) => format!("generate {}", staged.display()),
    }
}

/// Step 1: the key staged for `--extra-files`, its public half in the host file, `hearth gen`,
/// and the secrets re-keyed; returns the public key.
fn identity(
    root: &Path,
    dir: &Path,
    host: &Host,
    given: Option<&Path>,
    rekey: Rekey,
) -> Result<String> {
    if let Some(given) = given {
        stage_given_key(dir, given, host)?;
    } else if host.file.host_key.is_some() && !hostkey::staged_key(dir).exists() {
        println!(
            "host key: {} names a key whose private half hearth was not given; a new key \
             replaces it (pass --host-key FILE to keep the old one)",
            host.source.display()
        );
    }
    let public = ensure_key(dir, &host.name)?;
    write_host_key(root, host, &public)?;
    crate::compile::generate(root).context("hearth gen after writing the host key")?;
    println!("{}", rekey(root, &host.name)?);
    Ok(public)
}

/// Placement's decision, in nixos-anywhere's terms.
fn build_on(host: &Host, inv: &Inventory) -> Result<(BuildOn, String)> {
    let local = crate::builders::localnix::LocalNix::detect()?;
    let p = placement::place(host, inv, &local)?;
    let system = host.file.system.as_str();
    let on = match &p.location {
        Where::Local => BuildOn::Local,
        Where::Target => BuildOn::Remote,
        Where::Builder { name, .. } => BuildOn::Builders(
            crate::builders::machines::machines(inv, Some(system), None)
                .into_iter()
                .filter(|m| &m.name == name)
                .collect(),
        ),
    };
    let place = match &p.location {
        Where::Local => "this machine".to_string(),
        Where::Target => "the target (in the installer)".to_string(),
        Where::Builder { name, emulated } => {
            format!(
                "builder {name}{}",
                if *emulated { " (emulated)" } else { "" }
            )
        }
    };
    Ok((on, format!("{system} system on {place}: {}", p.reason)))
}

struct Rescue {
    config: PathBuf,
}

/// The rescue system's key is unknown and thrown away with it: its own known_hosts, filled
/// on first contact, never the user's or the deploy's.
pub fn rescue_ssh_config(
    user: &str,
    address: &str,
    port: u16,
    known_hosts: &Path,
    identity: Option<&Path>,
) -> String {
    let mut s = format!(
        "Host rescue\n  HostName {address}\n  Port {port}\n  User {user}\n  \
         UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  \
         StrictHostKeyChecking accept-new\n  BatchMode yes\n  ConnectTimeout 10\n  LogLevel ERROR\n",
        known_hosts.display()
    );
    if let Some(id) = identity {
        s.push_str(&format!(
            "  IdentityFile {}\n  IdentitiesOnly yes\n",
            id.display()
        ));
    }
    s
}

fn write_rescue_ssh(dir: &Path, args: &InstallArgs) -> Result<Rescue> {
    private_dir(dir)?;
    let (user, address) = super::split_target(&args.target);
    let known_hosts = dir.join("rescue_known_hosts");
    let config = dir.join("rescue_ssh_config");
    let text = rescue_ssh_config(
        &user,
        &address,
        args.port,
        &known_hosts,
        args.ssh_identity.as_deref(),
    );
    std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
    // Every run is a first contact: a rescue system booted again has a new key, and the
    // retry after a half-finished install must not trip over the old one.
    match std::fs::remove_file(&known_hosts) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", known_hosts.display()))
        }
        _ => {}
    }
    Ok(Rescue { config })
}

fn probe_target(r: &Rescue) -> Result<target::Facts> {
    let out = Command::new("ssh")
        .arg("-F")
        .arg(&r.config)
        .arg("rescue")
        .arg(format!(
            "sh -c {}",
            crate::ssh::quote(target::probe_script())
        ))
        .stdin(Stdio::null())
        .output()
        .context("starting ssh")?;
    if !out.status.success() {
        bail!(
            "could not log in to the target to list its disks: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    target::parse_probe(&String::from_utf8_lossy(&out.stdout))
}

/// On a terminal: type the host name. Without one: only `--yes`.
fn confirm(host: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to confirm on; pass --yes to erase the disks listed above");
    }
    print!("type `{host}` to erase these disks and install: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    if line.trim() != host {
        bail!("not confirmed; nothing was changed");
    }
    Ok(())
}

fn private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 0700 {}", dir.display()))
}

/// The staged key's path, with every directory above it private (0700).
fn key_dirs(dir: &Path) -> Result<PathBuf> {
    let key = hostkey::staged_key(dir);
    for d in [
        dir.join("extra"),
        dir.join("extra/etc"),
        dir.join("extra/etc/ssh"),
    ] {
        private_dir(&d)?;
    }
    Ok(key)
}

/// The staged key's public half: reused when an earlier (half-finished) install made one,
/// so a retry keeps the identity the host file already names.
fn ensure_key(dir: &Path, host: &str) -> Result<String> {
    let key = key_dirs(dir)?;
    let pub_path = key.with_extension("pub");
    if !key.exists() {
        let mut c = Command::new("ssh-keygen");
        c.args(command::keygen_args(&key.display().to_string(), host));
        crate::process::run(&mut c).context("generating the host key (ssh-keygen)")?;
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    // The .pub travels too: sshd and NixOS expect it beside the private key.
    let text = std::fs::read_to_string(&pub_path)
        .with_context(|| format!("reading {}", pub_path.display()))?;
    hostkey::parse_public_key(&text)
}

/// Stage a private key the user was given, after checking that it is the host file's key.
fn stage_given_key(dir: &Path, given: &Path, host: &Host) -> Result<()> {
    let mut c = Command::new("ssh-keygen");
    c.arg("-y").arg("-f").arg(given);
    let public = crate::process::run_stdout(&mut c)
        .with_context(|| format!("reading the public half of {}", given.display()))?;
    let public = hostkey::parse_public_key(&public)?;
    let words = |k: &str| k.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    if let Some(known) = &host.file.host_key {
        if words(known) != words(&public) {
            bail!(
                "{} is not the private half of `host_key` in {}; pass the matching key, or drop                  --host-key to generate a new one",
                given.display(),
                host.source.display()
            );
        }
    }
    let key = key_dirs(dir)?;
    std::fs::copy(given, &key).with_context(|| format!("copying {}", given.display()))?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(key.with_extension("pub"), format!("{public}\n"))?;
    Ok(())
}

fn write_host_key(root: &Path, host: &Host, public: &str) -> Result<()> {
    let path = root.join(&host.source);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let new = hostkey::set_host_key(&text, public)
        .with_context(|| format!("editing {}", path.display()))?;
    if new == text {
        return Ok(());
    }
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, &new).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    println!("host key: wrote host_key into {}", host.source.display());
    Ok(())
}

/// The installer's output goes straight to ours: its progress is the progress.
fn run_installer(cmdline: &[String]) -> Result<()> {
    println!("run: {}", command::shell_line(cmdline));
    let status = Command::new(&cmdline[0])
        .args(&cmdline[1..])
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("starting `{}`", cmdline[0]))?;
    if status.code() == Some(127) {
        bail!(
            "the installer `{}` was not found; the repository pins nixos-anywhere: \
             `nix run .#nixos-anywhere -- --help` (or `nix develop` for the dev shell), or pass \
             --installer CMD; nothing was erased",
            cmdline[2]
        );
    }
    if !status.success() {
        bail!(
            "the installer failed ({status}); the host file keeps the new host_key and the key stays \
             staged, so re-running `hearth install` reuses it (docs/INSTALL.md, recovery)"
        );
    }
    Ok(())
}

/// Wait for the new system, log in with strict checking against the key from step 1 (the
/// deploy's own ssh setup), and read back what it runs.
fn verify_first_boot(
    root: &Path,
    inv: &Inventory,
    host: &Host,
    public: &str,
    args: &InstallArgs,
) -> Result<u8> {
    let mut sh = inv.ssh_host(&host.name)?;
    sh.host_key = public.to_string();
    let settings = crate::ssh::SshSettings {
        identity: args.ssh_identity.clone(),
        include: None,
    };
    let files = crate::ssh::write_files(&root.join(".hearth").join("ssh"), &[sh], &settings)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(args.boot_timeout);
    println!("waiting for {} to boot its new system…", host.name);
    let mut last = String::new();
    while Instant::now() < deadline {
        let out = rt.block_on(crate::ssh::fresh_run(
            &files,
            &host.name,
            READ_BACK,
            Duration::from_secs(15),
        ));
        match out {
            Ok(o) if o.success() => {
                let r = parse_read_back(&o.stdout);
                println!("{}", render_read_back(&host.name, &r));
                return Ok(if r.system.is_empty() { 1 } else { 0 });
            }
            Ok(o) => last = o.stderr.trim().to_string(),
            Err(e) => last = format!("{e:#}"),
        }
        std::thread::sleep(Duration::from_secs(3));
    }
    bail!(
        "{} did not come back within {}s with the new host key (last: {last})",
        host.name,
        args.boot_timeout
    )
}

/// What the new host runs: the system profile, its generation, and the booted system.
const READ_BACK: &str =
    "printf 'system=%s\\n' \"$(readlink -f /nix/var/nix/profiles/system 2>/dev/null)\"; \
printf 'link=%s\\n' \"$(readlink /nix/var/nix/profiles/system 2>/dev/null)\"; \
if [ -e /run/booted-system ]; then printf 'booted=%s\\n' \"$(readlink -f /run/booted-system)\"; fi";

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReadBack {
    pub system: String,
    pub generation: Option<u32>,
    pub booted: String,
}

pub fn parse_read_back(text: &str) -> ReadBack {
    let mut r = ReadBack::default();
    for l in text.lines() {
        match l.split_once('=') {
            Some(("system", v)) => r.system = v.to_string(),
            Some(("booted", v)) => r.booted = v.to_string(),
            Some(("link", v)) => {
                r.generation = v
                    .strip_prefix("system-")
                    .and_then(|g| g.strip_suffix("-link"))
                    .and_then(|g| g.parse().ok())
            }
            _ => {}
        }
    }
    r
}

pub fn render_read_back(host: &str, r: &ReadBack) -> String {
    if r.system.is_empty() {
        return format!(
            "{host}: FAILED: logged in with the new host key but no system profile is set"
        );
    }
    let gen = r
        .generation
        .map_or(String::new(), |g| format!(" (generation {g})"));
    let booted = if r.booted.is_empty() || r.booted == r.system {
        String::new()
    } else {
        format!("; booted {}", r.booted)
    };
    format!(
        "{host}: installed, running {}{gen}{booted}; host key verified",
        r.system
    )
}

/// `hearth image HOST`: build the SD image where the host's placement says, then print how
/// to write it. The host key is generated (or reused) and written into the host file first,
/// and staged for the image (see docs/INSTALL.md for how it reaches the image).
pub fn run_image(root: &Path, args: ImageArgs) -> Result<u8> {
    let inv = inventory::load(root)?;
    let host = inv
        .host(&args.host)
        .with_context(|| format!("unknown host `{}` (no hosts/{}.toml)", args.host, args.host))?;
    let flake = crate::nix::flake::repo_flake_ref(root)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("result-{}", host.name)));
    let (on, build_desc) = build_on(host, &inv)?;
    let builders = match on {
        BuildOn::Builders(ms) => ms,
        // An image is built before the host exists: "the target builds" means here.
        BuildOn::Local | BuildOn::Remote => Vec::new(),
    };
    let nix_args =
        command::image_build_args(&flake, &host.name, &out.display().to_string(), &builders);
    let image = format!("{}/sd-image/*.img.zst", out.display());
    let to_sd = command::write_image_command(&image, "/dev/sdX");
    let emmc = host
        .file
        .disks
        .as_ref()
        .map_or("/dev/mmcblk2".to_string(), |d| d.root.device.clone());
    let to_emmc = command::write_image_command(&image, &emmc);
    let nix_line = format!("{} {}", crate::nix::NIX_SH, command::shell_line(&nix_args));
    if args.dry_run {
        println!("build: {build_desc}");
        println!("run: {nix_line}");
        println!("then, to an SD card (here): {to_sd}");
        println!("or, to the eMMC from a rescue system on the board (only with the firmware in SPI flash, docs/INSTALL.md): {to_emmc}");
        return Ok(0);
    }
    let dir = hostkey::install_dir(&inv.root, &host.name);
    private_dir(&dir)?;
    identity(root, &dir, host, None, &crate::secrets::rekey_for_host)?;
    println!("build: {build_desc}");
    println!("run: {nix_line}");
    let mut c = crate::nix::command();
    c.args(&nix_args);
    let status = c.status().context("starting nix build")?;
    if !status.success() {
        bail!("building the image failed ({status})");
    }
    println!(
        "built {}; write it to an SD card with:\n  {to_sd}\nor to the eMMC, from a rescue system on the board (only with the firmware in SPI flash, docs/INSTALL.md):\n  {to_emmc}",
        out.display()
    );
    println!(
        "then copy the host key onto the card's root partition:\n  \
         sudo install -D -m 0600 -o root -g root {} <mounted root>/etc/ssh/ssh_host_ed25519_key",
        hostkey::staged_key(&dir).display()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescue_config_exact() {
        assert_eq!(
            rescue_ssh_config("nixos", "192.0.2.7", 22, Path::new("/r/kh"), Some(Path::new("/k"))),
            "Host rescue\n  HostName 192.0.2.7\n  Port 22\n  User nixos\n  UserKnownHostsFile /r/kh\n  \
GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking accept-new\n  BatchMode yes\n  ConnectTimeout 10\n  \
LogLevel ERROR\n  IdentityFile /k\n  IdentitiesOnly yes\n"
        );
    }

    #[test]
    fn read_back_reports_like_deploy() {
        let r = parse_read_back(
            "system=/nix/store/abc-nixos\nlink=system-1-link\nbooted=/nix/store/abc-nixos\n",
        );
        assert_eq!(r.generation, Some(1));
        assert_eq!(
            render_read_back("nas", &r),
            "nas: installed, running /nix/store/abc-nixos (generation 1); host key verified"
        );
        assert!(render_read_back("nas", &parse_read_back("system=\n")).contains("FAILED"));
    }
}
