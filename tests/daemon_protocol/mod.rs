//! Just enough of the Nix daemon's worker protocol to send `wopSetOptions` the way a hostile
//! client would. Nix's own `ssh-ng://` client never forwards settings (`SSHStore` sends
//! none), so `nix copy --option …` cannot show what the daemon does with them.
//!
//! Wire format: every number is a little-endian u64; a string is its length, its bytes,
//! and zero padding to a multiple of 8.

use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const WORKER_MAGIC_1: u64 = 0x6e69_7863;
const WORKER_MAGIC_2: u64 = 0x6478_696f;
/// Protocol 1.19: before activities (1.20) and structured errors (1.26), so the daemon
/// sends its log as plain `STDERR_NEXT` lines.
const CLIENT_VERSION: u64 = 1 << 8 | 19;
const WOP_SET_OPTIONS: u64 = 19;
const STDERR_NEXT: u64 = 0x6f6c_6d67;
const STDERR_LAST: u64 = 0x616c_7473;
const STDERR_ERROR: u64 = 0x6378_7470;
/// Above every level Nix has (`lvlVomit` is 7 since 2.4), so the daemon forwards it all.
const VERBOSITY_EVERYTHING: u64 = 7;

fn put(to: &mut impl Write, n: u64) {
    to.write_all(&n.to_le_bytes()).unwrap();
}

fn put_str(to: &mut impl Write, s: &str) {
    put(to, s.len() as u64);
    to.write_all(s.as_bytes()).unwrap();
    to.write_all(&[0; 8][..(8 - s.len() % 8) % 8]).unwrap();
}

fn get(from: &mut impl Read) -> u64 {
    let mut b = [0; 8];
    from.read_exact(&mut b)
        .expect("the daemon closed the connection");
    u64::from_le_bytes(b)
}

fn get_str(from: &mut impl Read) -> String {
    let len = get(from) as usize;
    let mut b = vec![0; len + (8 - len % 8) % 8];
    from.read_exact(&mut b).unwrap();
    b.truncate(len);
    String::from_utf8_lossy(&b).into_owned()
}

/// The daemon's log lines up to the end of the current piece of work.
fn log_until_last(from: &mut impl Read) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        match get(from) {
            STDERR_NEXT => lines.push(get_str(from)),
            STDERR_LAST => return lines,
            STDERR_ERROR => panic!("daemon error: {} (status {})", get_str(from), get(from)),
            other => panic!("unexpected daemon message {other:#x}; log so far: {lines:?}"),
        }
    }
}

/// Log in as `login` (`user@address`, with `ssh_config`) running `nix-daemon --stdio`, hand
/// the daemon `overrides` as client settings, and return what it logged while applying them.
pub fn send_settings(ssh_config: &Path, login: &str, overrides: &[(&str, &str)]) -> Vec<String> {
    let mut child = Command::new("ssh")
        .arg("-F")
        .arg(ssh_config)
        .args([login, "nix-daemon", "--stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ssh");
    let mut to = child.stdin.take().unwrap();
    let mut from = BufReader::new(child.stdout.take().unwrap());
    // Magic, our version, no CPU affinity, no reserved space.
    for n in [WORKER_MAGIC_1, CLIENT_VERSION, 0, 0] {
        put(&mut to, n);
    }
    to.flush().unwrap();
    assert_eq!(get(&mut from), WORKER_MAGIC_2, "not a Nix daemon");
    let _daemon_version = get(&mut from);
    log_until_last(&mut from);

    put(&mut to, WOP_SET_OPTIONS);
    // keepFailed, keepGoing, tryFallback, verbosity, maxBuildJobs, maxSilentTime,
    // useBuildHook, verboseBuild, logType, printBuildTrace, buildCores, useSubstitutes.
    for n in [0, 0, 0, VERBOSITY_EVERYTHING, 1, 0, 1, 0, 0, 0, 0, 0] {
        put(&mut to, n);
    }
    put(&mut to, overrides.len() as u64);
    for (name, value) in overrides {
        put_str(&mut to, name);
        put_str(&mut to, value);
    }
    to.flush().unwrap();
    let log = log_until_last(&mut from);
    drop(to);
    let _ = child.kill();
    let _ = child.wait();
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_padded_to_eight_bytes_and_read_back() {
        for s in ["", "a", "post-build-hook", "12345678"] {
            let mut buf = Vec::new();
            put_str(&mut buf, s);
            assert_eq!(buf.len() % 8, 0, "{s:?}");
            assert_eq!(get_str(&mut buf.as_slice()), s);
        }
    }
}
