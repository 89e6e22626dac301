//! Encrypting to the inventory's SSH keys and decrypting with the user's identity, in
//! memory only: the plaintext never touches a file here.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// Encrypt `plaintext` to every recipient (binary age format, as agenix writes).
pub fn encrypt(recipients: &[age::ssh::Recipient], plaintext: &[u8]) -> Result<Vec<u8>> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| anyhow!("can't encrypt: {e}"))?;
    let mut out = Vec::new();
    let mut w = encryptor.wrap_output(&mut out)?;
    w.write_all(plaintext)?;
    w.finish()?;
    Ok(out)
}

/// The user's private keys, loaded from `-i` paths or the default SSH keys.
pub struct Identities {
    pub paths: Vec<PathBuf>,
    list: Vec<Box<dyn age::Identity>>,
}

/// `~/.ssh/id_ed25519` and `~/.ssh/id_rsa`, those that exist.
pub fn default_identity_paths() -> Vec<PathBuf> {
    let Some(home) = std::env::var_os("HOME") else {
        return vec![];
    };
    ["id_ed25519", "id_rsa"]
        .iter()
        .map(|f| Path::new(&home).join(".ssh").join(f))
        .filter(|p| p.is_file())
        .collect()
}

impl Identities {
    /// Load `paths`, or the default SSH keys when there are none.
    pub fn load(paths: &[PathBuf]) -> Result<Self> {
        let paths = if paths.is_empty() {
            default_identity_paths()
        } else {
            paths.to_vec()
        };
        if paths.is_empty() {
            bail!("no identity to decrypt with: ~/.ssh/id_ed25519 doesn't exist; pass `-i` with an SSH private key or an age identity file");
        }
        let mut list = Vec::new();
        for p in &paths {
            list.extend(load_one(p).with_context(|| format!("identity {}", p.display()))?);
        }
        Ok(Self { paths, list })
    }

    fn names(&self) -> String {
        let v: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        v.join(", ")
    }
}

fn load_one(path: &Path) -> Result<Vec<Box<dyn age::Identity>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if String::from_utf8_lossy(&bytes).contains("AGE-SECRET-KEY-") {
        let file = age::IdentityFile::from_buffer(&bytes[..])?;
        return file.into_identities().map_err(|e| anyhow!("{e}"));
    }
    let name = path.display().to_string();
    let id = age::ssh::Identity::from_buffer(&bytes[..], Some(name.clone()))
        .map_err(|e| anyhow!("not an SSH private key or age identity file: {e}"))?;
    let key = match id {
        age::ssh::Identity::Unencrypted(k) => k,
        age::ssh::Identity::Encrypted(enc) => {
            let pass = ask_passphrase(&name)?;
            enc.decrypt(pass)
                .map_err(|_| anyhow!("wrong passphrase for {name}"))?
        }
        age::ssh::Identity::Unsupported(k) => {
            bail!("unsupported SSH key type ({k:?}); age reads ssh-ed25519 and ssh-rsa keys")
        }
    };
    Ok(vec![Box::new(age::ssh::Identity::from(key))])
}

/// A passphrase from the terminal, without echo. Without a terminal there is nobody to
/// ask (and age can't use ssh-agent), so say what to use instead.
fn ask_passphrase(name: &str) -> Result<age::secrecy::SecretString> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "{name} is protected by a passphrase and stdin is not a terminal to ask for it \
             (age can't use ssh-agent). Run hearth from a terminal, or pass `-i` an unencrypted \
             identity: an age identity file (`age-keygen`) or a copy of the key without a \
             passphrase (`ssh-keygen -p -N '' -f COPY`) kept on a memory file system"
        );
    }
    let pass = read_tty_no_echo(&format!("Enter passphrase for {name}: "))
        .context("reading the passphrase from /dev/tty")?;
    Ok(age::secrecy::SecretString::from(pass))
}

fn read_tty_no_echo(prompt: &str) -> std::io::Result<String> {
    use std::os::fd::AsRawFd;
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let fd = tty.as_raw_fd();
    // SAFETY: plain termios calls on a file descriptor we own.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut old) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut quiet = old;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    // The prompt only after echo is off, so nothing typed in answer is ever shown.
    if let Err(e) = tty.write_all(prompt.as_bytes()) {
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
        return Err(e);
    }
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let read = loop {
        match tty.read(&mut byte) {
            Ok(0) => break Ok(()),
            Ok(_) if byte[0] == b'\n' => break Ok(()),
            Ok(_) => line.push(byte[0]),
            Err(e) => break Err(e),
        }
    };
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
    read?;
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Why a file could not be decrypted; `NotRecipient` is the one callers explain.
#[derive(Debug, thiserror::Error)]
pub enum DecryptFailure {
    #[error("none of the identities ({ids}) is a recipient of {file}")]
    NotRecipient { ids: String, file: String },
    #[error("{file} is corrupted or truncated ({why}); restore it from git or replace it with `hearth secrets set {name}`")]
    Corrupt {
        file: String,
        name: String,
        why: String,
    },
}

/// Decrypt a whole file in memory.
pub fn decrypt(
    ids: &Identities,
    name: &str,
    file: &Path,
    bytes: &[u8],
) -> Result<Vec<u8>, DecryptFailure> {
    let corrupt = |why: String| DecryptFailure::Corrupt {
        file: file.display().to_string(),
        name: name.to_string(),
        why,
    };
    let decryptor = age::Decryptor::new_buffered(bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(ids.list.iter().map(|i| i.as_ref()))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => DecryptFailure::NotRecipient {
                ids: ids.names(),
                file: file.display().to_string(),
            },
            e => corrupt(e.to_string()),
        })?;
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(out)
}
