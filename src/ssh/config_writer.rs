//! The one ssh_config writer: every generated ssh_config (deploy, build hook, lab client)
//! is made here, so a value from a host file can't add a directive. OpenSSH splits an
//! argument on whitespace, reads `"`/`'` as quotes and `\` as an escape, starts a comment
//! at `#`, expands `%` tokens and `${VAR}` in many directives: a value with any of those
//! or a control character is refused, one with spaces is double-quoted.

use crate::lines::{no_control, LineError};
use std::path::Path;

/// An ssh_config being written, one `Host` block after another.
#[derive(Debug, Default)]
pub struct SshConfig {
    text: String,
}

/// One argument as OpenSSH reads it back: quoted when it has spaces, refused when it
/// holds a character OpenSSH would interpret.
pub fn arg(directive: &str, value: &str) -> Result<String, LineError> {
    let format = format!("ssh_config {directive}");
    no_control(&format, value)?;
    if value.is_empty() || value.contains(['"', '\'', '\\', '%', '$']) {
        return Err(LineError::new(
            format,
            value,
            "must be non-empty, without `\"`, `'`, `\\`, `%` or `$`",
        ));
    }
    Ok(if value.contains([' ', '#', '=']) {
        format!("\"{value}\"")
    } else {
        value.to_string()
    })
}

/// A `Host` pattern that is one literal name (an alias or address): never an option on a
/// command line (`-…`), a negation (`!…`) or a wildcard.
pub fn host_name(directive: &str, name: &str) -> Result<String, LineError> {
    let a = arg(directive, name)?;
    if name.starts_with(['-', '!']) || name.contains([' ', '#', '=', '*', '?', ',']) {
        return Err(LineError::new(
            format!("ssh_config {directive}"),
            name,
            "must be one host name or address: not starting with `-` or `!`, no spaces or `#=*?,`",
        ));
    }
    Ok(a)
}

/// A login name: one argument that is never an option either, since it also starts the
/// `user@host` of command lines and store URIs (`ssh-ng://user@host` becomes `ssh user@host`).
pub fn user_name(user: &str) -> Result<String, LineError> {
    let a = arg("User", user)?;
    if user.starts_with('-') || user.contains(['@', ' ', '#', '=', ':', '/']) {
        return Err(LineError::new(
            "ssh_config User",
            user,
            "must be one login name: not starting with `-`, no spaces or `@#=:/`",
        ));
    }
    Ok(a)
}

/// `user@host` for a command line or store URI: both parts checked, so it can never be
/// read as an option or as more than one destination.
pub fn destination(user: &str, host: &str) -> Result<String, LineError> {
    Ok(format!(
        "{}@{}",
        user_name(user)?,
        host_name("HostName", host)?
    ))
}

impl SshConfig {
    /// A config starting with a `#` comment line.
    pub fn new(comment: &str) -> SshConfig {
        SshConfig {
            text: format!("# {}\n", comment.replace('\n', " ")),
        }
    }

    /// `Host <names…>`: each a literal host name or address.
    pub fn host(&mut self, names: &[&str]) -> Result<&mut Self, LineError> {
        let names: Vec<String> = names
            .iter()
            .map(|n| host_name("Host", n))
            .collect::<Result<_, _>>()?;
        self.text.push_str(&format!("Host {}\n", names.join(" ")));
        Ok(self)
    }

    /// `Host *`: settings for every host.
    pub fn all_hosts(&mut self) -> &mut Self {
        self.text.push_str("Host *\n");
        self
    }

    /// `  <Directive> <value>` (a `HostName` must be a literal host name or address).
    pub fn set(&mut self, directive: &'static str, value: &str) -> Result<&mut Self, LineError> {
        let v = match directive {
            "HostName" | "HostKeyAlias" => host_name(directive, value)?,
            "User" => user_name(value)?,
            _ => arg(directive, value)?,
        };
        self.text.push_str(&format!("  {directive} {v}\n"));
        Ok(self)
    }

    /// `  <Directive> <path>`.
    pub fn set_path(&mut self, directive: &'static str, p: &Path) -> Result<&mut Self, LineError> {
        self.set(directive, &p.display().to_string())
    }

    /// `Include <path>` at the top level (ends the current `Host` block).
    pub fn include(&mut self, p: &Path) -> Result<&mut Self, LineError> {
        let v = arg("Include", &p.display().to_string())?;
        self.text.push_str(&format!("Include {v}\n"));
        Ok(self)
    }

    /// A blank line, for readability between blocks.
    pub fn blank(&mut self) -> &mut Self {
        self.text.push('\n');
        self
    }

    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.text)
    }
}

/// OpenSSH's reading of one `  Directive value` line: (directive, argument), or None when
/// it is not exactly one directive with one argument.
pub fn parse_line(line: &str) -> Option<(String, String)> {
    if line.contains('\n') {
        return None;
    }
    let (key, rest) = line.trim_start().split_once(' ')?;
    let value = match rest.strip_prefix('"') {
        Some(q) => q.strip_suffix('"').filter(|v| !v.contains('"'))?,
        None if !rest.contains([' ', '"', '#']) => rest,
        None => return None,
    };
    Some((key.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_text() {
        let mut c = SshConfig::new("Generated");
        c.host(&["h1", "10.0.0.2"]).unwrap();
        c.set("HostName", "10.0.0.2").unwrap();
        c.set("User", "deploy").unwrap();
        c.set_path("IdentityFile", Path::new("/home/me/my keys/id"))
            .unwrap();
        c.all_hosts().set("BatchMode", "yes").unwrap();
        assert_eq!(
            c.finish(),
            "# Generated\nHost h1 10.0.0.2\n  HostName 10.0.0.2\n  User deploy\n  \
             IdentityFile \"/home/me/my keys/id\"\nHost *\n  BatchMode yes\n"
        );
    }

    #[test]
    fn refusals() {
        let mut c = SshConfig::new("x");
        assert!(c
            .set("User", "root\nProxyCommand touch /tmp/pwned")
            .is_err());
        assert!(c.set("HostName", "-oProxyCommand=touch /tmp/x").is_err());
        assert!(c.host(&["-oProxyCommand=x"]).is_err());
        assert!(c.host(&["a*"]).is_err());
        assert!(c.set("User", "%n").is_err());
        assert!(c.set("User", "-oProxyCommand=x").is_err());
        assert_eq!(
            destination("deploy", "10.0.0.2").unwrap(),
            "deploy@10.0.0.2"
        );
        assert!(destination("-oProxyCommand=x", "h").is_err());
        assert!(destination("root", "-oProxyCommand=x").is_err());
        assert!(destination("a@b", "h").is_err());
        assert!(c.set_path("IdentityFile", Path::new("/x/${HOME}")).is_err());
        assert_eq!(
            c.set("User", "a\nb").unwrap_err().to_string(),
            "ssh_config User: \"a\\nb\" contains the control character U+000A, which would \
             end or change the line"
        );
        assert_eq!(c.finish(), "# x\n", "nothing written by a refused call");
    }

    proptest! {
        #[test]
        fn values_are_refused_or_read_back(
            v in prop_oneof![any::<String>(), "[a-z0-9 #=\"'%$@:/\\\n-]{0,10}"]
        ) {
            let mut c = SshConfig::new("x");
            if c.set("User", &v).is_ok() {
                let text = c.finish();
                let line = text.lines().nth(1).unwrap();
                prop_assert_eq!(parse_line(line), Some(("User".to_string(), v)));
                prop_assert_eq!(text.lines().count(), 2);
            }
        }
    }
}
