//! One editor session on a decrypted secret. The plaintext lives in a private directory
//! (0700, file 0600) on a memory file system (`$XDG_RUNTIME_DIR`, else `/dev/shm`), and
//! that directory is removed on every way out: editor success or failure, an editor
//! killed by a signal, and SIGINT / SIGTERM / SIGHUP to hearth itself (caught for the
//! whole session, so they can't kill hearth while plaintext is on disk).

use anyhow::{bail, Context, Result};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

const DIR_PREFIX: &str = "hearth-secrets-";
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The last signal caught during a session (0: none).
static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    CAUGHT.store(sig, Ordering::SeqCst);
}

/// Where plaintext may go: `$XDG_RUNTIME_DIR` (a per-user tmpfs under systemd), else `/dev/shm`.
pub fn memory_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        if d.is_dir() {
            return Ok(d);
        }
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        return Ok(shm.to_path_buf());
    }
    bail!("no memory file system for the plaintext: set XDG_RUNTIME_DIR to a tmpfs directory (hearth won't put plaintext on a disk)")
}

/// SIGINT/SIGTERM/SIGHUP handlers for the session; the old ones come back on drop.
struct SignalGuard {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl SignalGuard {
    fn install() -> Self {
        CAUGHT.store(0, Ordering::SeqCst);
        let mut old = Vec::new();
        for sig in SIGNALS {
            // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
            unsafe {
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = on_signal as *const () as usize;
                libc::sigemptyset(&mut new.sa_mask);
                let mut prev: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &new, &mut prev) == 0 {
                    old.push((sig, prev));
                }
            }
        }
        SignalGuard { old }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (sig, prev) in &self.old {
            unsafe { libc::sigaction(*sig, prev, std::ptr::null_mut()) };
        }
    }
}

/// The private directory; removed on drop (errors, panics) and by `close`.
struct PrivateDir(Option<tempfile::TempDir>);

impl PrivateDir {
    fn create(base: &Path) -> Result<Self> {
        let prefix = format!("{DIR_PREFIX}{}-", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(base)
            .with_context(|| format!("creating a private directory in {}", base.display()))?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))?;
        Ok(PrivateDir(Some(dir)))
    }

    fn path(&self) -> &Path {
        self.0.as_ref().expect("open").path()
    }

    fn close(mut self) -> Result<()> {
        let dir = self.0.take().expect("open");
        let path = dir.path().to_path_buf();
        dir.close().with_context(|| {
            format!(
                "removing {} (it holds plaintext: delete it)",
                path.display()
            )
        })
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            let _ = d.close();
        }
    }
}

/// Directories a hearth that was killed outright (SIGKILL) left behind: their process is gone.
fn remove_orphans(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(DIR_PREFIX)
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<libc::pid_t>() else {
            continue;
        };
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// `$VISUAL`, else `$EDITOR`, else `vi`; run by `sh -c` so it may carry arguments, with
/// `exec` so the process hearth stops on a signal is the editor itself.
fn editor_command(file: &Path) -> Command {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(std::env::var_os)
        .find(|v| !v.is_empty())
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vi".into());
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("exec {editor} \"$1\""))
        .arg("sh")
        .arg(file);
    cmd
}

/// Let the user edit `initial`; the edited bytes, or an error with nothing left on disk.
pub fn edit(name: &str, initial: &[u8]) -> Result<Vec<u8>> {
    let base = memory_dir()?;
    remove_orphans(&base);
    let signals = SignalGuard::install();
    let dir = PrivateDir::create(&base)?;
    let file = dir.path().join(name);
    let edited = session(&file, initial);
    let closed = dir.close();
    drop(signals);
    let edited = edited?;
    closed?;
    Ok(edited)
}

fn session(file: &Path, initial: &[u8]) -> Result<Vec<u8>> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("creating {}", file.display()))?;
    f.write_all(initial)?;
    f.sync_all()?;
    drop(f);
    let mut child = editor_command(file)
        .spawn()
        .context("starting the editor ($VISUAL / $EDITOR)")?;
    let status = wait(&mut child)?;
    if !status.success() {
        match status.signal() {
            Some(sig) => bail!("the editor was killed by signal {sig}; the secret is unchanged"),
            None => bail!(
                "the editor exited with status {}; the secret is unchanged",
                status.code().unwrap_or(-1)
            ),
        }
    }
    let bytes =
        fs::read(file).with_context(|| format!("reading {} after the editor", file.display()))?;
    caught()?;
    Ok(bytes)
}

fn caught() -> Result<()> {
    match CAUGHT.load(Ordering::SeqCst) {
        0 => Ok(()),
        sig => bail!(
            "interrupted by signal {sig}; the secret is unchanged and the plaintext is removed"
        ),
    }
}

/// Wait for the editor; on a caught signal, stop it (TERM, then KILL) and fail.
fn wait(child: &mut Child) -> Result<std::process::ExitStatus> {
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        if CAUGHT.load(Ordering::SeqCst) != 0 {
            let pid = child.id() as libc::pid_t;
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(2);
            while child.try_wait()?.is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            caught()?;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
