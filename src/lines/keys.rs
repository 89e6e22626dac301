//! `known_hosts` and `authorized_keys` lines. A newline in a host key or an admin key
//! would add a line (an `@cert-authority *`, a key nobody listed), so every key goes
//! through [`public_key`] and every line through a writer here.

use super::{no_control, LineError};

/// Key types OpenSSH knows.
pub const ALGORITHMS: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// A public key: `<type> <base64>` and an optional comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey<'a> {
    pub algorithm: &'a str,
    pub blob: &'a str,
    pub comment: Option<&'a str>,
}

impl PublicKey<'_> {
    /// `<type> <base64>`, what known_hosts and `programs.ssh.knownHosts` take.
    pub fn bare(&self) -> String {
        format!("{} {}", self.algorithm, self.blob)
    }
}

/// Parse one public key line (no options prefix), refusing anything that isn't one.
pub fn public_key(s: &str) -> Result<PublicKey<'_>, LineError> {
    const F: &str = "SSH public key";
    no_control(F, s)?;
    let mut words = s.splitn(3, ' ');
    let algorithm = words.next().unwrap_or("");
    let blob = words.next().unwrap_or("");
    if !ALGORITHMS.contains(&algorithm) {
        return Err(LineError::new(
            F,
            s,
            format!(
                "does not start with a key type OpenSSH knows ({})",
                ALGORITHMS.join(", ")
            ),
        ));
    }
    let base64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    if blob.is_empty() || !blob.chars().all(base64) {
        return Err(LineError::new(
            F,
            s,
            "needs the base64 key after its type, separated by one space",
        ));
    }
    let comment = words.next().map(str::trim).filter(|c| !c.is_empty());
    Ok(PublicKey {
        algorithm,
        blob,
        comment,
    })
}

/// An `authorized_keys` line: refused when it holds a control character (one key per
/// line; options such as `restrict,command="…"` may precede it).
pub fn authorized_key(line: &str) -> Result<&str, LineError> {
    no_control("authorized_keys line", line)?;
    if line.trim().is_empty() || line.trim_start().starts_with('#') {
        return Err(LineError::new(
            "authorized_keys line",
            line,
            "is empty or a comment, not a key",
        ));
    }
    Ok(line)
}

/// A host pattern for known_hosts: `name` on port 22, else `[name]:port`.
pub fn host_pattern(host: &str, port: u16) -> Result<String, LineError> {
    const F: &str = "known_hosts host name";
    no_control(F, host)?;
    let ok = !host.is_empty()
        && !host.starts_with(['@', '#', '!', '|'])
        && !host.contains([' ', ',', '*', '?', '[', ']']);
    if !ok {
        return Err(LineError::new(
            F,
            host,
            "must be one host name or address (no spaces, `,*?[]`, not starting with `@#!|`)",
        ));
    }
    Ok(if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    })
}

/// One known_hosts line: the patterns, then the key without its comment.
pub fn known_hosts_line(patterns: &[String], key: &str) -> Result<String, LineError> {
    let key = public_key(key)?;
    Ok(format!("{} {}", patterns.join(","), key.bare()))
}

/// ssh's reading of a known_hosts line: (patterns, type, base64); None unless it is one.
pub fn parse_known_hosts_line(line: &str) -> Option<(Vec<String>, String, String)> {
    if line.contains('\n') || line.starts_with('@') || line.starts_with('#') {
        return None;
    }
    let mut w = line.split(' ');
    let patterns = w.next()?.split(',').map(String::from).collect();
    let (t, b) = (w.next()?, w.next()?);
    w.next().is_none().then(|| (patterns, t.into(), b.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_lines() {
        let k = "ssh-ed25519 AAAAC3Nza root@nas";
        assert_eq!(
            known_hosts_line(&[host_pattern("nas", 22).unwrap()], k).unwrap(),
            "nas ssh-ed25519 AAAAC3Nza"
        );
        assert_eq!(host_pattern("10.0.0.1", 2222).unwrap(), "[10.0.0.1]:2222");
        assert_eq!(public_key(k).unwrap().comment, Some("root@nas"));
        for bad in [
            "ssh-ed25519 AAAA\n@cert-authority * ssh-ed25519 BBBB",
            "ssh-ed25519",
            "rsa AAAA",
            "ssh-ed25519 AA\u{0}AA",
            "ssh-ed25519  AAAA",
        ] {
            assert!(public_key(bad).is_err(), "{bad:?}");
        }
        assert!(authorized_key("ssh-ed25519 AAAA a\nssh-ed25519 EVIL b").is_err());
        assert!(
            host_pattern("-oProxyCommand=x", 22).is_ok(),
            "known_hosts is no command line"
        );
        for bad in ["a b", "@cert-authority", "*", "a,b", ""] {
            assert!(host_pattern(bad, 22).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn lines_are_refused_or_read_back(
            host in prop_oneof![any::<String>(), "[a-z0-9.:@,*\\[\\] \n-]{0,10}"],
            blob in prop_oneof![any::<String>(), "[A-Za-z0-9+/= \n]{0,20}"],
            comment in prop_oneof![any::<String>(), "[a-z@ \n]{0,10}"],
        ) {
            let key = format!("ssh-ed25519 {blob} {comment}");
            if let Ok(p) = host_pattern(&host, 22) {
                if let Ok(l) = known_hosts_line(&[p], &key) {
                    let (pats, t, b) = parse_known_hosts_line(&l).expect("one line");
                    prop_assert_eq!(pats, vec![host]);
                    prop_assert_eq!(t, "ssh-ed25519");
                    // The key is the word after its type; a space in `blob` starts the comment.
                    prop_assert_eq!(b.as_str(), blob.split(' ').next().unwrap());
                }
            }
        }
    }
}
