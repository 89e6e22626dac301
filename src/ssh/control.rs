//! The directory holding the deployer's SSH control sockets. Whoever can open a
//! master's socket runs commands on that host as the deploy user (root), so the
//! directory must be ours alone: hearth creates it with mode 0700 and, whether it made
//! it or found it, refuses to use it unless it is a real directory (not a symlink)
//! owned by the current user with mode exactly 0700.

use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The longest name ssh puts in the directory: `control_socket_name` (20 hex digits and
/// `.sock`), plus the `.` and 16 random characters ssh appends to the socket while the
/// master starts up.
const LONGEST_NAME: usize = 20 + ".sock".len() + 17;

/// `sun_path` holds 108 bytes on Linux and 104 on the BSDs and macOS, with the NUL.
const SUN_PATH: usize = 104;

/// Whether sockets in `dir` fit in a `sockaddr_un`.
pub fn socket_paths_fit(dir: &Path) -> bool {
    dir.as_os_str().len() + 1 + LONGEST_NAME < SUN_PATH
}

/// Where masters' sockets live: `$XDG_RUNTIME_DIR/hearth-ssh` (a per-user tmpfs the
/// login manager made private) when that directory is ours with mode 0700, else
/// `hearth-ssh-<uid>` in the temporary directory.
pub fn control_dir() -> PathBuf {
    let uid = unsafe { libc::geteuid() };
    // Only a runtime dir that is itself ours and private: after `su` or `sudo` the
    // variable can still name another user's, who could swap our directory inside it.
    let xdg = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| verify_private_dir(Path::new(d), uid).is_ok());
    choose(xdg, std::env::temp_dir(), uid)
}

/// `control_dir` without the environment: the first candidate that is absolute and
/// short enough for socket paths, `/tmp/hearth-ssh-<uid>` as the last resort.
fn choose(xdg_runtime_dir: Option<OsString>, temp_dir: PathBuf, uid: u32) -> PathBuf {
    let xdg = xdg_runtime_dir
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
        .map(|d| d.join("hearth-ssh"));
    let tmp = temp_dir.join(format!("hearth-ssh-{uid}"));
    xdg.into_iter()
        .chain([tmp])
        .find(|d| d.is_absolute() && socket_paths_fit(d))
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/hearth-ssh-{uid}")))
}

/// Create `dir` (mode 0700) unless it exists, then check it is private to us.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        // The umask may have taken bits away; the mode must be exactly 0700.
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting the mode of {}", dir.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "creating the SSH control socket directory {}",
                    dir.display()
                )
            })
        }
    }
    verify_private_dir(dir, unsafe { libc::geteuid() })
}

/// Refuse `dir` unless it is a directory (not a symlink to one) owned by `uid` with
/// mode 0700.
pub fn verify_private_dir(dir: &Path, uid: u32) -> Result<()> {
    let refuse = |why: String| -> Result<()> {
        bail!(
            "refusing to keep SSH control sockets in {}: it {why}; remove it and run again \
             (hearth recreates it private to you)",
            dir.display()
        )
    };
    let meta = std::fs::symlink_metadata(dir).with_context(|| {
        format!(
            "checking the SSH control socket directory {}",
            dir.display()
        )
    })?;
    if meta.file_type().is_symlink() {
        return refuse("is a symlink".into());
    }
    if !meta.is_dir() {
        return refuse("is not a directory".into());
    }
    if meta.uid() != uid {
        return refuse(format!(
            "is owned by uid {}, not by you (uid {uid})",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode != 0o700 {
        return refuse(format!("has mode {mode:04o}, not 0700"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid() -> u32 {
        unsafe { libc::geteuid() }
    }

    #[test]
    fn creates_a_private_directory_and_accepts_it_again() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("hearth-ssh");
        ensure_private_dir(&dir).unwrap();
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.mode() & 0o7777, 0o700);
        assert_eq!(meta.uid(), uid());
        ensure_private_dir(&dir).unwrap();
    }

    #[test]
    fn a_symlink_is_refused_even_to_a_private_directory() {
        let base = tempfile::tempdir().unwrap();
        let real = base.path().join("real");
        ensure_private_dir(&real).unwrap();
        let link = base.path().join("hearth-ssh");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = ensure_private_dir(&link).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "refusing to keep SSH control sockets in {}: it is a symlink; remove it and run \
                 again (hearth recreates it private to you)",
                link.display()
            )
        );
    }

    #[test]
    fn a_wrong_mode_a_file_and_another_owner_are_refused() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("hearth-ssh");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = ensure_private_dir(&dir).unwrap_err().to_string();
        assert!(err.contains(": it has mode 0755, not 0700;"), "{err}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = verify_private_dir(&dir, uid() + 1).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                ": it is owned by uid {}, not by you (uid {})",
                uid(),
                uid() + 1
            )),
            "{err}"
        );
        let file = base.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = ensure_private_dir(&file).unwrap_err().to_string();
        assert!(err.contains(": it is not a directory;"), "{err}");
    }

    #[test]
    fn prefers_the_runtime_dir_and_keeps_socket_paths_short() {
        let tmp = PathBuf::from("/tmp");
        assert_eq!(
            choose(Some("/run/user/1000".into()), tmp.clone(), 1000),
            PathBuf::from("/run/user/1000/hearth-ssh")
        );
        assert_eq!(
            choose(None, tmp.clone(), 1000),
            PathBuf::from("/tmp/hearth-ssh-1000")
        );
        // A relative or too long runtime dir falls back to the temporary directory.
        assert_eq!(
            choose(Some("run/user".into()), tmp.clone(), 7),
            PathBuf::from("/tmp/hearth-ssh-7")
        );
        let long = format!("/{}", "x".repeat(60));
        assert_eq!(
            choose(Some(long.clone().into()), PathBuf::from(&long), 7),
            PathBuf::from("/tmp/hearth-ssh-7")
        );
        // The longest socket path in the chosen directory fits sun_path.
        let dir = choose(Some("/run/user/4294967294".into()), tmp, 1);
        assert!(socket_paths_fit(&dir));
        assert!(dir.as_os_str().len() + 1 + LONGEST_NAME < 104);
        assert!(!socket_paths_fit(Path::new(&long)));
    }
}
