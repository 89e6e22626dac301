//! `hearth update` and `hearth diff`: flake.lock updates as reviewable pull-request
//! bodies, with each host's package-version diff.
//!
//! Flow of `hearth update`: read and check the current lock → build every selected host
//! with it (the "old" systems) → update the lock (restored byte for byte if anything
//! fails) → build again (the "new" systems) → diff locks and closures → body → commit.
//! Building the old systems before touching the lock works on every Nix version and
//! needs no copy of the repository.

pub mod body;
pub mod closure_diff;
pub mod lock;
pub mod version;

use crate::nix::closure;
use crate::nix::flake::{self, BuildFailure};
use crate::nix::NixVersion;
use anyhow::{bail, Context, Result};
use body::{HostOutcome, HostReport};
use closure_diff::ClosurePath;
use closure_diff::HostDiff;
use lock::{diff_locks, FlakeLock, LockDiff};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Inputs to update (all when empty), e.g. `nixpkgs` or `home-manager/nixpkgs`.
    pub inputs: Vec<String>,
    /// Write the pull-request body to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Commit flake.lock on `--branch` with a conventional message.
    #[arg(long)]
    pub commit: bool,
    /// Branch for `--commit` (created or reset to HEAD).
    #[arg(long, value_name = "NAME", default_value = "flake-update")]
    pub branch: String,
    /// Hosts to build and diff (default: every `nixosConfigurations` entry).
    #[arg(long, value_delimiter = ',', value_name = "HOST,…")]
    pub hosts: Vec<String>,
    /// Fail (exit 1) unless every selected host builds with the new lock.
    #[arg(long)]
    pub check_build: bool,
    /// Skip the per-host package diff (no builds with the old lock).
    #[arg(long)]
    pub no_diff: bool,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The host: its current system is read over SSH, its new one built from the repo.
    #[arg(required_unless_present_all = ["from", "to"])]
    pub host: Option<String>,
    /// Compare from this store path (or a symlink to one, e.g. ./result) instead of
    /// what the host runs.
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
    /// Compare to this store path instead of building the host from the repo.
    #[arg(long, value_name = "PATH")]
    pub to: Option<PathBuf>,
    /// SSH private key to offer the host.
    #[arg(long, env = "HEARTH_SSH_IDENTITY", value_name = "FILE")]
    pub ssh_identity: Option<PathBuf>,
    /// Extra ssh config to include after hearth's own (which checks the inventory's host
    /// key strictly).
    #[arg(long, env = "HEARTH_SSH_CONFIG", value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// The system profile on the host.
    #[arg(long, default_value = "/nix/var/nix/profiles/system")]
    pub profile: String,
    /// Print the Markdown section used in pull-request bodies.
    #[arg(long)]
    pub markdown: bool,
}

const LOCK_FILE: &str = "flake.lock";

/// Puts the original lock back unless disarmed: a failed update must leave it as it was.
struct LockGuard {
    path: PathBuf,
    original: Option<Vec<u8>>,
    armed: bool,
}

impl LockGuard {
    fn restore(&self) -> Result<()> {
        match &self.original {
            Some(bytes) => std::fs::write(&self.path, bytes),
            None => match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        }
        .with_context(|| format!("restoring {}", self.path.display()))
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = self.restore() {
                eprintln!("error: {e:#}");
            }
        }
    }
}

/// A built system: its toplevel and closure.
struct Built {
    toplevel: String,
    closure: Vec<ClosurePath>,
}

fn build_host(
    flake_ref: &str,
    host: &str,
    want_closure: bool,
) -> Result<std::result::Result<Built, BuildFailure>> {
    eprintln!("building {host}…");
    Ok(match flake::build_toplevel(flake_ref, host)? {
        Ok(toplevel) => {
            let closure = if want_closure {
                closure::closure(&toplevel)?
            } else {
                Vec::new()
            };
            Ok(Built { toplevel, closure })
        }
        Err(f) => Err(f),
    })
}

fn select_hosts(flake_ref: &str, requested: &[String]) -> Result<Vec<String>> {
    if !requested.is_empty() {
        return Ok(requested.to_vec());
    }
    match flake::host_names(flake_ref) {
        Ok(h) => Ok(h),
        Err(e) if format!("{e:#}").contains("does not provide attribute") => {
            eprintln!("note: the flake has no nixosConfigurations; no host to build");
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

fn outcome(
    old: Option<&std::result::Result<Built, BuildFailure>>,
    new: std::result::Result<Built, BuildFailure>,
) -> HostOutcome {
    match (old, new) {
        (_, Err(f)) => HostOutcome::NewBuildFailed(f),
        (None, Ok(_)) => HostOutcome::Built,
        (Some(Err(f)), Ok(_)) => HostOutcome::OldBuildFailed(f.clone()),
        (Some(Ok(o)), Ok(n)) if o.toplevel == n.toplevel => HostOutcome::Unchanged,
        (Some(Ok(o)), Ok(n)) => HostOutcome::Diff(HostDiff::new(
            &o.closure,
            &o.toplevel,
            &n.closure,
            &n.toplevel,
        )),
    }
}

pub fn run_update(root: &Path, args: UpdateArgs) -> Result<u8> {
    let root = root
        .canonicalize()
        .with_context(|| format!("opening {}", root.display()))?;
    if !root.join("flake.nix").is_file() {
        bail!(
            "{}: no flake.nix here; run from the repository root or pass -C DIR",
            root.display()
        );
    }
    let lock_path = root.join(LOCK_FILE);
    let (original, old_lock) = read_lock(&lock_path)?;
    let version = NixVersion::detect()?;
    let flake_ref = root.to_string_lossy().to_string();

    let hosts = if args.no_diff && !args.check_build {
        Vec::new()
    } else {
        select_hosts(&flake_ref, &args.hosts)?
    };
    let mut old_builds = BTreeMap::new();
    if !args.no_diff {
        for h in &hosts {
            old_builds.insert(h.clone(), build_host(&flake_ref, h, true)?);
        }
    }

    let new_lock = update_lock(&root, version, &args.inputs, &lock_path, original)?;
    let lock_diff = diff_locks(&old_lock, &new_lock);

    let mut reports = Vec::new();
    for h in &hosts {
        let old = old_builds.remove(h);
        let new = match &old {
            // Same lock, same systems: the old builds already answer.
            Some(Ok(o)) if lock_diff.is_empty() => Ok(Built {
                toplevel: o.toplevel.clone(),
                closure: Vec::new(),
            }),
            _ => build_host(&flake_ref, h, !args.no_diff)?,
        };
        reports.push(HostReport {
            host: h.clone(),
            outcome: outcome(old.as_ref(), new),
        });
    }

    let text = body::render_body(&lock_diff, &reports);
    match &args.output {
        Some(path) => write_atomically(path, &text)?,
        None => print!("{text}"),
    }
    if args.commit {
        commit_lock(&root, &args.branch, &lock_diff)?;
    }
    let failed = reports
        .iter()
        .any(|r| matches!(r.outcome, HostOutcome::NewBuildFailed(_)));
    if failed && args.check_build {
        eprintln!("error: some hosts do not build with the new lock (see the body)");
        return Ok(1);
    }
    Ok(0)
}

/// The lock as it is (its bytes, to restore on failure) and parsed; no file is an empty lock.
fn read_lock(lock_path: &Path) -> Result<(Option<Vec<u8>>, FlakeLock)> {
    let original = match std::fs::read(lock_path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", lock_path.display())),
    };
    let old_lock = match &original {
        Some(b) => FlakeLock::parse(&String::from_utf8_lossy(b), lock_path)?,
        None => FlakeLock::empty(),
    };
    Ok((original, old_lock))
}

/// Let Nix update the lock; the old one comes back unless the new one is readable.
fn update_lock(
    root: &Path,
    version: NixVersion,
    inputs: &[String],
    lock_path: &Path,
    original: Option<Vec<u8>>,
) -> Result<FlakeLock> {
    let mut guard = LockGuard {
        path: lock_path.to_path_buf(),
        original,
        armed: true,
    };
    flake::update_lock(root, version, inputs)
        .with_context(|| format!("{} was left as it was", lock_path.display()))?;
    let text = std::fs::read_to_string(lock_path)
        .with_context(|| format!("reading the updated {}", lock_path.display()))?;
    let lock = FlakeLock::parse(&text, lock_path)
        .context("nix wrote a lock hearth cannot read; restored the old one")?;
    guard.armed = false;
    Ok(lock)
}

fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `git` argument lists that commit only flake.lock on `branch`.
pub fn commit_commands(branch: &str, message: &str) -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        v(&["checkout", "-B", branch]),
        v(&["add", "--", LOCK_FILE]),
        v(&["commit", "--no-verify", "-m", message, "--", LOCK_FILE]),
    ]
}

fn commit_lock(root: &Path, branch: &str, d: &LockDiff) -> Result<()> {
    if d.is_empty() {
        eprintln!("note: no input changed; nothing to commit");
        return Ok(());
    }
    for args in commit_commands(branch, &body::commit_message(d)) {
        crate::process::run(Command::new("git").arg("-C").arg(root).args(&args))?;
    }
    eprintln!("committed flake.lock on branch {branch}");
    Ok(())
}

fn local_system(path: &Path) -> Result<(String, Vec<ClosurePath>)> {
    let top = path
        .canonicalize()
        .with_context(|| format!("resolving {}", path.display()))?;
    let top = top.to_string_lossy().to_string();
    let c = closure::closure(&top)?;
    Ok((top, c))
}

pub fn run_diff(root: &Path, args: DiffArgs) -> Result<u8> {
    let (from_top, from) = match (&args.from, &args.host) {
        (Some(p), _) => local_system(p)?,
        (None, Some(host)) => {
            let inv = crate::inventory::load(root)?;
            if inv.host(host).is_none() {
                bail!("no host `{host}` in {}", root.join("hosts").display());
            }
            // The deploy's SSH setup: the inventory's address, user and host key, strictly.
            let files = crate::ssh::write_files(
                &crate::ssh::repo_files_dir(root),
                &[inv.ssh_host(host)?],
                &crate::ssh::SshSettings {
                    identity: args.ssh_identity.clone(),
                    include: args.ssh_config.clone(),
                },
            )?;
            let script = closure::remote_system_closure_script(&args.profile);
            let out = crate::process::run_stdout(
                Command::new("ssh").args(crate::ssh::one_shot_ssh_args(&files, host, &script)),
            )
            .with_context(|| format!("reading the current system of {host}"))?;
            closure::parse_remote_system_closure(&out)?
        }
        (None, None) => bail!("give a HOST or --from PATH"),
    };
    let (to_top, to) = match (&args.to, &args.host) {
        (Some(p), _) => local_system(p)?,
        (None, Some(host)) => {
            match build_host(&crate::nix::flake::repo_flake_ref(root)?, host, true)? {
                Ok(b) => (b.toplevel, b.closure),
                Err(f) => bail!(
                    "{host} does not build{}:\n{}",
                    f.derivation
                        .map(|d| format!(" ({d} failed)"))
                        .unwrap_or_default(),
                    f.log_tail
                ),
            }
        }
        (None, None) => bail!("give a HOST or --to PATH"),
    };
    let name = args.host.clone().unwrap_or_else(|| "system".into());
    let d = HostDiff::new(&from, &from_top, &to, &to_top);
    if args.markdown {
        print!(
            "{}",
            body::render_host(&HostReport {
                host: name,
                outcome: HostOutcome::Diff(d)
            })
        );
    } else {
        print!("{}", body::render_host_text(&name, &d));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_touches_only_the_lock() {
        let cmds = commit_commands("flake-update", "chore(flake): update inputs");
        assert_eq!(cmds[0], ["checkout", "-B", "flake-update"]);
        assert_eq!(cmds[1], ["add", "--", "flake.lock"]);
        assert_eq!(cmds[2].last().unwrap(), "flake.lock");
        assert!(cmds[2].contains(&"chore(flake): update inputs".to_string()));
    }

    #[test]
    fn lock_guard_restores_or_removes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("flake.lock");
        std::fs::write(&p, "new").unwrap();
        drop(LockGuard {
            path: p.clone(),
            original: Some(b"old".to_vec()),
            armed: true,
        });
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        drop(LockGuard {
            path: p.clone(),
            original: None,
            armed: true,
        });
        assert!(!p.exists());
        std::fs::write(&p, "kept").unwrap();
        drop(LockGuard {
            path: p.clone(),
            original: None,
            armed: false,
        });
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "kept");
    }
}
