//! Narrow wrapper around OpenSSH: multiplexed sessions for the pipeline, fresh
//! non-multiplexed connections for confirmation, strict host-key checking. Every way hearth
//! reaches a host is a named [`Profile`] in `profiles`, with its reason there.
//!
//! Every host is reached through an alias in a generated ssh config, with
//! `HostKeyAlias <alias>` and a generated `known_hosts` holding the inventory's host keys,
//! so the same strict checking applies to us, to Nix (`NIX_SSHOPTS`) and to plain `ssh`.

mod control;

pub mod config_writer;
pub mod profiles;

pub use profiles::{
    as_root, config, fresh_ssh_args, known_hosts, nix_sshopts, one_shot_ssh_args, Profile,
};

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// How to reach one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshHost {
    /// The alias used on every command line (the host's inventory name).
    pub alias: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    /// `ssh-ed25519 AAAA…` from the inventory.
    pub host_key: String,
}

impl SshHost {
    /// Commands run as root: non-root users go through `sudo -n` (never prompts).
    pub fn root_prefix(&self) -> &'static str {
        if self.user == "root" {
            ""
        } else {
            "sudo -n "
        }
    }
}

/// Options that apply to every connection.
#[derive(Debug, Clone, Default)]
pub struct SshSettings {
    /// Private key to offer (else ssh's defaults).
    pub identity: Option<PathBuf>,
    /// An extra user config, included after ours (ours wins: first value counts in ssh).
    pub include: Option<PathBuf>,
}

/// Where a repository keeps the ssh files of the `Deploy` profile (shared by `deploy`,
/// `status`, `rollback` and `diff`, so they agree on masters and known_hosts).
pub fn repo_files_dir(root: &Path) -> PathBuf {
    root.join(".hearth").join("ssh")
}

/// The files of one deploy's ssh setup.
#[derive(Debug, Clone)]
pub struct SshFiles {
    pub config: PathBuf,
    pub known_hosts: PathBuf,
}

/// Write config + known_hosts under `base/<content hash>/` (e.g. `<repo>/.hearth/ssh`):
/// the same hosts and settings always give the same files, so concurrent runs agree and
/// persisted masters can be recognised across runs.
pub fn write_files(base: &Path, hosts: &[SshHost], settings: &SshSettings) -> Result<SshFiles> {
    for h in hosts {
        if h.host_key.split_whitespace().count() < 2 {
            bail!(
                "host `{}` has no usable `host_key` in hosts/{}.toml; add its public host key \
                 (e.g. the output of `ssh-keyscan -t ed25519 {}`, without the host name) so the \
                 deployer can check it strictly",
                h.alias,
                h.alias,
                h.address
            );
        }
    }
    let tag = {
        use sha2::{Digest, Sha256};
        let probe = config(hosts, Path::new("known_hosts"), settings)? + &known_hosts(hosts)?;
        hex::encode(Sha256::digest(probe.as_bytes()))[..16].to_string()
    };
    let dir = &base.join(tag);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let known = dir.join("known_hosts");
    let cfg = dir.join("config");
    write_atomic(&known, &known_hosts(hosts)?)?;
    write_atomic(&cfg, &config(hosts, &known, settings)?)?;
    Ok(SshFiles {
        config: cfg,
        known_hosts: known,
    })
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// One multiplexed session per host for the whole pipeline.
pub struct Session {
    pub alias: String,
    inner: openssh::Session,
    /// The master was already running (left by an earlier run).
    pub reused: bool,
}

/// Output of a remote command.
#[derive(Debug, Clone)]
pub struct RemoteOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl RemoteOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

pub use profiles::CONTROL_PERSIST_SECS;

pub use control::{control_dir, ensure_private_dir};

/// A master's socket name: changes whenever anything about reaching the host changes.
pub fn control_socket_name(h: &SshHost, settings_tag: &str) -> String {
    use sha2::{Digest, Sha256};
    let id = format!(
        "{}\0{}\0{}\0{}\0{}\0{settings_tag}",
        h.alias, h.address, h.port, h.user, h.host_key
    );
    format!("{}.sock", &hex::encode(Sha256::digest(id.as_bytes()))[..20])
}

impl Session {
    /// Reuse a live master for this host, else start one (`ControlPersist`).
    pub async fn connect(files: &SshFiles, host: &SshHost, control_dir: &Path) -> Result<Session> {
        // Whoever can open a master's socket runs commands on the host: the
        // directory must be ours alone (made 0700 by us, never a symlink).
        ensure_private_dir(control_dir)?;
        let settings = std::fs::read_to_string(&files.config).unwrap_or_default();
        let sock = control_dir.join(control_socket_name(host, &settings));
        if sock.exists() {
            let inner = openssh::Session::resume_mux(sock.clone().into_boxed_path(), None);
            let s = Session {
                alias: host.alias.clone(),
                inner,
                reused: true,
            };
            // A master can outlive its link: callers give the first command over a reused
            // master a short deadline and `reconnect` when it fails.
            if s.inner.check().await.is_ok() {
                return Ok(s);
            }
            stop_master(&sock).await;
        }
        let log = control_dir.join(format!("{}.log", host.alias));
        let status = tokio::process::Command::new("ssh")
            .arg("-F")
            .arg(&files.config)
            .arg("-E")
            .arg(&log)
            .args(profiles::master_args(&sock, &host.alias))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .status()
            .await
            .context("starting ssh")?;
        if !status.success() {
            let why = std::fs::read_to_string(&log).unwrap_or_default();
            anyhow::bail!(
                "connecting to `{}` ({}@{}:{}) over ssh failed: {}",
                host.alias,
                host.user,
                host.address,
                host.port,
                crate::process::tail(why.trim(), 5)
            );
        }
        let inner = openssh::Session::resume_mux(sock.into_boxed_path(), None);
        Ok(Session {
            alias: host.alias.clone(),
            inner,
            reused: false,
        })
    }

    /// Drop this (possibly stale) master and start a new one.
    pub async fn reconnect(
        self,
        files: &SshFiles,
        host: &SshHost,
        control_dir: &Path,
    ) -> Result<Session> {
        let sock = self.inner.control_socket().to_path_buf();
        let _ = self.inner.detach();
        stop_master(&sock).await;
        Session::connect(files, host, control_dir).await
    }

    /// Keep this session usable: if its master does not answer within `deadline`, start a
    /// new one in its place. True when it was restarted. An idle master can die while its
    /// link is saturated by other copies (its keepalives lose out in the uplink's queue),
    /// though the host is fine; the new master takes over every later command.
    pub async fn revive(
        &mut self,
        files: &SshFiles,
        host: &SshHost,
        control_dir: &Path,
        deadline: std::time::Duration,
    ) -> Result<bool> {
        if let Ok(Ok(())) = tokio::time::timeout(deadline, self.inner.check()).await {
            return Ok(false);
        }
        stop_master(self.inner.control_socket()).await;
        let fresh = Session::connect(files, host, control_dir).await?;
        let _ = std::mem::replace(self, fresh).inner.detach();
        Ok(true)
    }

    /// The master's control socket (lets `nix copy` reuse the connection).
    pub fn control_socket(&self) -> &Path {
        self.inner.control_socket()
    }

    /// Run one shell command line (already quoted by the caller's pure builder).
    pub async fn sh(&self, script: &str) -> Result<RemoteOutput> {
        let out = self
            .inner
            .raw_command(format!("sh -c {}", quote(script)))
            .output()
            .await
            .map_err(|e| anyhow::anyhow!("{}", ssh_error_text(&e)))
            .with_context(|| format!("running a command on `{}`", self.alias))?;
        Ok(RemoteOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Start one shell command line and read its stdout line by line as it comes (for
    /// commands that report progress, so silence can be noticed).
    pub async fn spawn_sh(&self, script: &str) -> Result<StreamingCommand<'_>> {
        let mut child = self
            .inner
            .raw_command(format!("sh -c {}", quote(script)))
            .stdin(openssh::Stdio::null())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped())
            .spawn()
            .await
            .map_err(|e| anyhow::anyhow!("{}", ssh_error_text(&e)))
            .with_context(|| format!("running a command on `{}`", self.alias))?;
        let stdout = child.stdout().take().expect("piped");
        let stderr = child.stderr().take().expect("piped");
        Ok(StreamingCommand {
            child,
            lines: tokio::io::BufReader::new(stdout).lines(),
            stderr,
            alias: self.alias.clone(),
        })
    }

    /// Leave the master running for the next run (it exits after `CONTROL_PERSIST_SECS` idle).
    pub fn close(self) {
        let _ = self.inner.detach();
    }
}

/// Ask the master behind `sock` to exit, and remove the socket (best effort: it may be dead).
async fn stop_master(sock: &Path) {
    let _ = tokio::process::Command::new("ssh")
        .arg("-S")
        .arg(sock)
        .args(["-O", "exit", "x"])
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    let _ = std::fs::remove_file(sock);
}

/// A command started with [`Session::spawn_sh`].
pub struct StreamingCommand<'s> {
    child: openssh::RemoteChild<'s>,
    lines: tokio::io::Lines<tokio::io::BufReader<openssh::ChildStdout>>,
    stderr: openssh::ChildStderr,
    alias: String,
}

impl StreamingCommand<'_> {
    /// The next line of stdout; `None` at its end.
    pub async fn next_line(&mut self) -> Result<Option<String>> {
        self.lines
            .next_line()
            .await
            .with_context(|| format!("reading a command's output from `{}`", self.alias))
    }

    /// After stdout ended: its exit status and stderr (stdout is empty here, already read).
    pub async fn finish(mut self) -> Result<RemoteOutput> {
        use tokio::io::AsyncReadExt;
        let mut err = String::new();
        let _ = self.stderr.read_to_string(&mut err).await;
        let status = self
            .child
            .wait()
            .await
            .map_err(|e| anyhow::anyhow!("{}", ssh_error_text(&e)))
            .with_context(|| format!("running a command on `{}`", self.alias))?;
        Ok(RemoteOutput {
            code: status.code(),
            stdout: String::new(),
            stderr: err,
        })
    }
}

fn ssh_error_text(e: &openssh::Error) -> String {
    use std::error::Error as _;
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// `ssh` over a fresh connection, for callers that read its output as it comes.
pub fn fresh_command(files: &SshFiles, alias: &str, remote_cmd: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("ssh");
    c.args(fresh_ssh_args(files, alias, remote_cmd))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    c
}

/// Run a command over a fresh connection, with an overall deadline.
pub async fn fresh_run(
    files: &SshFiles,
    alias: &str,
    remote_cmd: &str,
    timeout: Duration,
) -> Result<RemoteOutput> {
    let mut c = fresh_command(files, alias, remote_cmd);
    let out = tokio::time::timeout(timeout, c.output())
        .await
        .with_context(|| format!("ssh to `{alias}` timed out after {}s", timeout.as_secs()))?
        .context("starting ssh")?;
    Ok(RemoteOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// POSIX single-quote a string for a remote shell (the one quoter: `lines::shell`).
pub use crate::lines::shell::quote;

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> SshHost {
        SshHost {
            alias: "h1".into(),
            address: "10.0.0.2".into(),
            port: 2222,
            user: "deploy".into(),
            host_key: "ssh-ed25519 AAAAkey root@h1".into(),
        }
    }

    #[test]
    fn known_hosts_keyed_by_alias_without_comment() {
        assert_eq!(known_hosts(&[host()]).unwrap(), "h1 ssh-ed25519 AAAAkey\n");
        let mut evil = host();
        evil.host_key = "ssh-ed25519 AAAA\n@cert-authority * ssh-ed25519 BBBB".into();
        assert!(known_hosts(&[evil]).is_err());
    }

    #[test]
    fn config_is_strict() {
        let c = config(&[host()], Path::new("/r/kh"), &SshSettings::default()).unwrap();
        for want in [
            "Host h1\n  HostName 10.0.0.2\n  Port 2222\n  User deploy\n  HostKeyAlias h1\n",
            "StrictHostKeyChecking yes",
            "UserKnownHostsFile /r/kh",
            "BatchMode yes",
            "ServerAliveInterval 2",
        ] {
            assert!(c.contains(want), "missing {want:?} in\n{c}");
        }
        assert_eq!(host().root_prefix(), "sudo -n ");
    }

    #[test]
    fn config_refuses_values_that_add_lines_or_options() {
        let mut h = host();
        h.user = "deploy\nProxyCommand touch /tmp/pwned".into();
        assert!(config(&[h], Path::new("/r/kh"), &SshSettings::default()).is_err());
        let mut h = host();
        h.address = "-oProxyCommand=touch /tmp/pwned".into();
        assert!(config(&[h], Path::new("/r/kh"), &SshSettings::default()).is_err());
    }

    #[test]
    fn refuses_hosts_without_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = host();
        h.host_key = String::new();
        let err = write_files(dir.path(), &[h], &SshSettings::default()).unwrap_err();
        assert!(format!("{err}").contains("host_key"), "{err}");
    }

    #[test]
    fn fresh_connection_never_uses_a_master() {
        let f = SshFiles {
            config: "/c".into(),
            known_hosts: "/k".into(),
        };
        let a = fresh_ssh_args(&f, "h1", "touch '/x'");
        let joined = a.join(" ");
        assert!(
            joined.contains("-o ControlMaster=no -o ControlPath=none"),
            "{joined}"
        );
        assert!(joined.contains("-F /c h1 sh -c"), "{joined}");
        assert_eq!(a.last().unwrap(), r#"sh -c 'touch '\''/x'\'''"#);
    }
}
