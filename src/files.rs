//! Reading the repository's input files safely: a FIFO, socket, device, directory or
//! symlink loop where a TOML file belongs is refused by name before anything opens it
//! for reading (opening a FIFO would block forever), and every file is read up to a
//! size cap, so one bad file can neither hang nor exhaust hearth.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest input file hearth reads (host files, `hearth.toml`, catalog entries).
/// The largest real host file is a few KiB; 1 MiB leaves room and bounds the work.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why a file could not be read; `Display` is the reason, without the path.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("does not exist")]
    Missing,
    #[error("is a dangling symlink (its target does not exist)")]
    Dangling,
    #[error("is a symlink loop")]
    Loop,
    /// A directory, FIFO, socket or device.
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("is not valid UTF-8 text")]
    NotUtf8,
    #[error("cannot be read: {0}")]
    Io(std::io::Error),
}

/// What kind of non-regular file `meta` describes, if it is one.
pub fn irregular_kind(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_block_device() || t.is_char_device() {
        Some("a device")
    } else if t.is_symlink() {
        Some("a symlink")
    } else {
        Some("not a regular file")
    }
}

/// `metadata` (following symlinks) with the failures named for people.
pub fn stat(path: &Path) -> Result<Metadata, FileError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(FileError::Loop),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(path).is_ok() {
                Err(FileError::Dangling)
            } else {
                Err(FileError::Missing)
            }
        }
        Err(e) => Err(FileError::Io(e)),
    }
}

/// The bytes of the regular file at `path` (symlinks followed), at most `cap` of them.
/// Non-regular files are refused from their metadata; the open is non-blocking and the
/// opened file is checked again, so a file swapped for a FIFO in between can't block.
pub fn read_bytes(path: &Path, cap: u64) -> Result<Vec<u8>, FileError> {
    let meta = stat(path)?;
    check_regular(&meta, cap)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => FileError::Loop,
            _ => FileError::Io(e),
        })?;
    check_regular(&file.metadata().map_err(FileError::Io)?, cap)?;
    read_capped(file, cap)
}

fn check_regular(meta: &Metadata, cap: u64) -> Result<(), FileError> {
    if let Some(kind) = irregular_kind(meta) {
        return Err(FileError::NotRegular(kind));
    }
    if meta.len() > cap {
        return Err(FileError::TooLarge {
            size: meta.len(),
            limit: cap,
        });
    }
    Ok(())
}

/// Read at most `cap` bytes: a file that grows while being read still can't go past it.
fn read_capped(file: File, cap: u64) -> Result<Vec<u8>, FileError> {
    let mut data = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut data)
        .map_err(FileError::Io)?;
    if data.len() as u64 > cap {
        return Err(FileError::TooLarge {
            size: data.len() as u64,
            limit: cap,
        });
    }
    Ok(data)
}

/// The UTF-8 text of the regular file at `path`, at most [`MAX_FILE_BYTES`].
pub fn read_text(path: &Path) -> Result<String, FileError> {
    String::from_utf8(read_bytes(path, MAX_FILE_BYTES)?).map_err(|_| FileError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Run `f` on a thread and fail (instead of hanging) if it takes over 5 s.
    fn within_5s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("reading took over 5 s (blocked on a FIFO?)")
    }

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    }

    #[test]
    fn regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(&p, "x = 1\n").unwrap();
        assert_eq!(read_text(&p).unwrap(), "x = 1\n");
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert_eq!(read_text(&link).unwrap(), "x = 1\n");
    }

    #[test]
    fn fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        mkfifo(&p);
        let err = within_5s(move || read_text(&p).unwrap_err().to_string());
        assert_eq!(err, "is a FIFO (named pipe), not a regular file");
    }

    #[test]
    fn socket_directory_loop_dangling_and_missing_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let _sock = UnixListener::bind(d.join("s.toml")).unwrap();
        std::fs::create_dir(d.join("d.toml")).unwrap();
        std::os::unix::fs::symlink(d.join("l1"), d.join("l2")).unwrap();
        std::os::unix::fs::symlink(d.join("l2"), d.join("l1")).unwrap();
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling")).unwrap();
        let err = |name: &str| read_text(&d.join(name)).unwrap_err().to_string();
        assert_eq!(err("s.toml"), "is a socket, not a regular file");
        assert_eq!(err("d.toml"), "is a directory, not a regular file");
        assert_eq!(err("l1"), "is a symlink loop");
        assert_eq!(
            err("dangling"),
            "is a dangling symlink (its target does not exist)"
        );
        assert_eq!(err("absent"), "does not exist");
        assert_eq!(
            read_text(Path::new("/dev/null")).unwrap_err().to_string(),
            "is a device, not a regular file"
        );
    }

    #[test]
    fn size_and_encoding_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert_eq!(
            read_text(&big).unwrap_err().to_string(),
            "is 1048577 bytes; the limit is 1048576 bytes"
        );
        let bin = dir.path().join("bin.toml");
        std::fs::write(&bin, b"x = \"\xff\"\n").unwrap();
        assert_eq!(
            read_text(&bin).unwrap_err().to_string(),
            "is not valid UTF-8 text"
        );
        assert_eq!(
            read_bytes(&bin, 3).unwrap_err().to_string(),
            "is 8 bytes; the limit is 3 bytes"
        );
    }
}
