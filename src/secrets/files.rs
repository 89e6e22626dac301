//! Reading and replacing `.age` files. A secret file must be a regular file: a symlink
//! could point hearth's write (or read) anywhere, and a FIFO would block or feed it
//! another process's data, so both are refused without being opened for reading.
//! Writes go to a temporary file next to the target and are renamed over it, so the
//! old file stays whole until the new one is complete.

use anyhow::{bail, Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What kind of non-file sits where a secret should be.
fn kind(ft: &fs::FileType) -> Option<&'static str> {
    if ft.is_file() {
        None
    } else if ft.is_symlink() {
        Some("a symlink")
    } else if ft.is_fifo() {
        Some("a FIFO")
    } else if ft.is_dir() {
        Some("a directory")
    } else if ft.is_socket() {
        Some("a socket")
    } else {
        Some("a device")
    }
}

/// `Ok(None)` when there is nothing at `path`; an error when it is not a regular file.
pub fn metadata(path: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) => match kind(&m.file_type()) {
            None => Ok(Some(m)),
            Some(k) => bail!(
                "{} is {k}, not a regular file; hearth refuses to read or replace it (put the encrypted file itself there)",
                path.display()
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The bytes of the secret file, `None` when it doesn't exist.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    if metadata(path)?.is_none() {
        return Ok(None);
    }
    // O_NOFOLLOW and O_NONBLOCK: if the file was swapped for a symlink or FIFO since the
    // check above, the open fails or returns at once instead of following or blocking.
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    if let Some(k) = kind(&f.metadata()?.file_type()) {
        bail!("{} is {k}, not a regular file", path.display());
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(bytes))
}

/// Replace `path` with `bytes` atomically (temporary file + rename, both synced).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let old = metadata(path)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = temp_name(path);
    let mode = old.map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let result = (|| -> Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        File::open(dir).and_then(|d| d.sync_all()).ok();
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// `.NAME.age.tmp-PID` beside the target: same file system, so the rename is atomic.
fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_symlinks_and_fifos_and_replaces_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.age");
        assert!(read(&file).unwrap().is_none());
        write_atomic(&file, b"one").unwrap();
        write_atomic(&file, b"two").unwrap();
        assert_eq!(read(&file).unwrap().unwrap(), b"two");
        let link = dir.path().join("l.age");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let err = read(&link).unwrap_err().to_string();
        assert!(err.contains("is a symlink"), "{err}");
        assert!(write_atomic(&link, b"x").is_err());
        assert_eq!(fs::read(&file).unwrap(), b"two");
        let fifo = dir.path().join("f.age");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read(&fifo).unwrap_err().to_string();
        assert!(err.contains("is a FIFO"), "{err}");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 3, "no temporary file left");
    }
}
