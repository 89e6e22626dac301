//! The host's identity before its first boot: an ed25519 key generated here, its public
//! half written into `hosts/<host>.toml`, its private half staged for `--extra-files`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Set `host_key` in a host file's text, keeping every comment and all formatting.
/// An existing value is replaced in place (its trailing comment stays); a new line goes
/// after `boot_loader`, `hardware` or `system` (the order docs/HOST_FILE.md shows).
pub fn set_host_key(text: &str, key: &str) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = text.parse().context("parsing the host file")?;
    if let Some(item) = doc.as_table_mut().get_mut("host_key") {
        let Some(v) = item.as_value_mut() else {
            bail!("`host_key` is not a string");
        };
        let decor = v.decor().clone();
        *v = toml_edit::Value::from(key);
        *v.decor_mut() = decor;
        return Ok(doc.to_string());
    }
    // toml_edit would append the key after the last root key; a line-level insert puts it
    // where a person would, and touches nothing else. Those keys' values are one-line.
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let root_end = lines
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .unwrap_or(lines.len());
    let anchor = ["boot_loader", "hardware", "system"].iter().find_map(|k| {
        lines[..root_end].iter().position(|l| {
            l.strip_prefix(k)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
    });
    let at = anchor.map_or(root_end, |i| i + 1);
    let new_line = format!("host_key = {}\n", toml_edit::Value::from(key));
    let mut out: String = lines[..at].concat();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&new_line);
    out.push_str(&lines[at..].concat());
    // Prove the edit did what it says before anyone writes it.
    let check: toml_edit::DocumentMut = out.parse().context("host file after the edit")?;
    match check.get("host_key").and_then(|i| i.as_str()) {
        Some(k) if k == key => Ok(out),
        _ => bail!("could not place `host_key` in the host file; add it by hand: {new_line}"),
    }
}

/// The public-key line from `ssh-keygen`'s `.pub` file, checked to be ed25519.
pub fn parse_public_key(pub_text: &str) -> Result<String> {
    let line = pub_text.lines().next().unwrap_or("").trim();
    let mut w = line.split_whitespace();
    match (w.next(), w.next()) {
        (Some("ssh-ed25519"), Some(b)) if !b.is_empty() => Ok(line.to_string()),
        _ => bail!("not an ed25519 public key: `{line}`"),
    }
}

/// Where one install keeps its files: `<repo>/.hearth/install/<host>/` (ignored by git).
pub fn install_dir(root: &Path, host: &str) -> PathBuf {
    root.join(".hearth").join("install").join(host)
}

/// The staged `--extra-files` tree and the key inside it.
pub fn extra_files_dir(dir: &Path) -> PathBuf {
    dir.join("extra")
}
pub fn staged_key(dir: &Path) -> PathBuf {
    extra_files_dir(dir).join("etc/ssh/ssh_host_ed25519_key")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINEWKEYnewkeyNEWKEYnewkeyNEWKEYnewkey12 root@helios64";

    fn golden(name: &str) -> String {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/install")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// A new key lands after `boot_loader`; every other byte of the file is unchanged.
    #[test]
    fn adds_key_keeping_comments_golden() {
        let out = set_host_key(&golden("host_without_key.toml"), KEY).unwrap();
        assert_eq!(out, golden("host_with_new_key.toml"));
    }

    /// An existing key is replaced in place; its trailing comment stays.
    #[test]
    fn replaces_key_keeping_trailing_comment() {
        let text = "# c\nsystem = \"x86_64-linux\"\nhost_key = \"ssh-ed25519 OLD\"   # was set by hand\n\n[ssh]\naddress = \"h\"\n";
        assert_eq!(
            set_host_key(text, "ssh-ed25519 NEW").unwrap(),
            "# c\nsystem = \"x86_64-linux\"\nhost_key = \"ssh-ed25519 NEW\"   # was set by hand\n\n[ssh]\naddress = \"h\"\n"
        );
    }

    #[test]
    fn key_before_first_table_without_anchor() {
        let text = "# only ssh\n[ssh]\naddress = \"h\"\n";
        assert_eq!(
            set_host_key(text, "ssh-ed25519 K").unwrap(),
            "# only ssh\nhost_key = \"ssh-ed25519 K\"\n[ssh]\naddress = \"h\"\n"
        );
    }

    #[test]
    fn public_key_must_be_ed25519() {
        assert_eq!(
            parse_public_key("ssh-ed25519 AAAA root@x\n").unwrap(),
            "ssh-ed25519 AAAA root@x"
        );
        assert!(parse_public_key("ssh-rsa AAAA").is_err());
        assert!(parse_public_key("").is_err());
    }
}
