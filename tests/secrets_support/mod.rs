//! A small fleet with real SSH keys made by `ssh-keygen` for each test, hearth run
//! against it with its own HOME and XDG_RUNTIME_DIR, and a scan for leftover plaintext.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Fleet {
    /// The repository (hearth.toml, hosts/, secrets/).
    pub root: tempfile::TempDir,
    /// Private keys; never scanned for plaintext (they hold none).
    pub keys: tempfile::TempDir,
    /// HOME for hearth (no ~/.ssh unless a test puts one there).
    pub home: tempfile::TempDir,
    /// XDG_RUNTIME_DIR for hearth: where the editor's plaintext goes.
    pub runtime: tempfile::TempDir,
    /// Editor scripts (contain no plaintext).
    pub scripts: tempfile::TempDir,
    pub admin_key: PathBuf,
    pub host_keys: Vec<(String, PathBuf)>,
}

/// `ssh-keygen -t ed25519 -N PASS` in `dir`: (private key path, public key line).
pub fn keygen(dir: &Path, name: &str, pass: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", pass, "-C", name, "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen (openssh-client) is installed");
    assert!(st.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_string())
}

pub fn host_file(key: &str, n: u8) -> String {
    format!(
        "system = \"x86_64-linux\"\nhardware = \"lab\"\nbuild = \"local\"\nhost_key = \"{key}\"\n\n[ssh]\naddress = \"10.99.0.{n}\"\n"
    )
}

impl Fleet {
    /// Admin `alice`, hosts `h1` and `h2`; secret `one` for h1, `both` for h1 and h2.
    pub fn new() -> Fleet {
        let [root, keys, home, runtime, scripts] = [(); 5].map(|_| {
            tempfile::Builder::new()
                .prefix("hearth-secrets-test-")
                .tempdir()
                .unwrap()
        });
        let (admin_key, admin_pub) = keygen(keys.path(), "alice", "");
        std::fs::write(
            root.path().join("hearth.toml"),
            format!(
                "domain = \"test.arpa\"\n\n[admins.alice]\nssh_keys = [\"{admin_pub}\"]\n\n\
                 [secrets.one]\nhosts = [\"h1\"]\n\n[secrets.both]\nhosts = [\"h1\", \"h2\"]\n"
            ),
        )
        .unwrap();
        std::fs::create_dir(root.path().join("hosts")).unwrap();
        let mut host_keys = Vec::new();
        for (i, h) in ["h1", "h2"].iter().enumerate() {
            let (key, public) = keygen(keys.path(), h, "");
            std::fs::write(
                root.path().join("hosts").join(format!("{h}.toml")),
                host_file(&public, i as u8 + 2),
            )
            .unwrap();
            host_keys.push((h.to_string(), key));
        }
        Fleet {
            root,
            keys,
            home,
            runtime,
            scripts,
            admin_key,
            host_keys,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    pub fn host_key(&self, host: &str) -> &Path {
        &self.host_keys.iter().find(|(h, _)| h == host).unwrap().1
    }

    /// `hearth -C ROOT ARGS` with this fleet's HOME and XDG_RUNTIME_DIR, no editor set.
    pub fn hearth(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hearth"));
        c.arg("-C")
            .arg(self.root.path())
            .args(args)
            .env("HOME", self.home.path())
            .env("XDG_RUNTIME_DIR", self.runtime.path())
            .env_remove("VISUAL")
            .env_remove("EDITOR")
            .env("NO_COLOR", "1");
        c
    }

    /// `hearth secrets set NAME` with `plaintext` on stdin.
    pub fn set(&self, name: &str, plaintext: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .hearth(&["secrets", "set", name])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(plaintext.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// An executable editor script; `body` is sh with the file to edit as `$1`.
    pub fn editor(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.scripts.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// Fail if `marker` is in any file under the places plaintext could be left.
    pub fn assert_no_plaintext(&self, marker: &str) {
        let mut roots: Vec<(PathBuf, usize)> = vec![
            (self.runtime.path().to_path_buf(), 10),
            (self.root.path().to_path_buf(), 10),
            (self.home.path().to_path_buf(), 10),
            (PathBuf::from("/dev/shm"), 3),
            (std::env::temp_dir(), 2),
        ];
        roots.dedup();
        for (dir, depth) in roots {
            for e in walkdir::WalkDir::new(&dir)
                .max_depth(depth)
                .into_iter()
                .flatten()
            {
                if !e.file_type().is_file() || e.path().starts_with(self.scripts.path()) {
                    continue;
                }
                if e.metadata().map_or(true, |m| m.len() > 1 << 20) {
                    continue;
                }
                if let Ok(bytes) = std::fs::read(e.path()) {
                    let hit = bytes.windows(marker.len()).any(|w| w == marker.as_bytes());
                    assert!(!hit, "plaintext marker left in {}", e.path().display());
                }
            }
        }
        let left: Vec<_> = std::fs::read_dir(self.runtime.path()).unwrap().collect();
        assert!(
            left.is_empty(),
            "private directory left in XDG_RUNTIME_DIR: {left:?}"
        );
    }
}

/// A marker unique to this test run, so a scan can't match another test's data.
pub fn marker(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("PLAINTEXT-{tag}-{}-{nanos}", std::process::id())
}

/// Decrypt with the age crate and one SSH private key only, as agenix does on a host.
pub fn decrypt_with(key: &Path, file: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let id = age::ssh::Identity::from_buffer(
        std::io::BufReader::new(std::fs::File::open(key).unwrap()),
        None,
    )
    .map_err(|e| e.to_string())?;
    let bytes = std::fs::read(file).map_err(|e| e.to_string())?;
    let d = age::Decryptor::new_buffered(&bytes[..]).map_err(|e| e.to_string())?;
    let mut r = d
        .decrypt(std::iter::once(&id as &dyn age::Identity))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
