//! The age header, read without decrypting: one stanza per recipient. `ssh-ed25519` and
//! `ssh-rsa` stanzas carry a tag derived from the recipient's public key, which is how
//! `check` finds a stale file without any private key. Format: age-encryption.org/v1.

use base64::Engine as _;
use sha2::{Digest, Sha256};

const VERSION_LINE: &str = "age-encryption.org/v1";
const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";
const ARMOR_END: &str = "-----END AGE ENCRYPTED FILE-----";
/// Stanza bodies are wrapped at 64 base64 characters; a shorter line ends a body.
const BODY_COLUMNS: usize = 64;
/// Far more than any real header (a stanza is ~100 bytes); bounds what a corrupt file costs.
const MAX_HEADER: usize = 1 << 20;

/// One recipient stanza, as far as `check` cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stanza {
    /// `-> ssh-ed25519 TAG …`: TAG is [`ssh_tag`] of the recipient's key.
    SshEd25519 { tag: String },
    /// `-> ssh-rsa TAG`.
    SshRsa { tag: String },
    /// `-> X25519 SHARE`: a native age recipient; nothing in it names the key.
    X25519,
    /// Anything else (scrypt, plugins), by its type.
    Other(String),
}

impl Stanza {
    /// The SSH tag, for stanzas that have one.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Stanza::SshEd25519 { tag } | Stanza::SshRsa { tag } => Some(tag),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("not an age file (it does not start with `{VERSION_LINE}`)")]
    NotAge,
    #[error("truncated: the age header ends before its `---` line")]
    Truncated,
    #[error("corrupted age header: {0}")]
    Corrupt(String),
}

/// The first 4 bytes of SHA-256 of the SSH wire-format key, base64 without padding,
/// as age writes it into `ssh-ed25519` and `ssh-rsa` stanzas.
pub fn ssh_tag(wire_key: &[u8]) -> String {
    let digest = Sha256::digest(wire_key);
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(&digest[..4])
}

/// The tag of a public key line `ssh-ed25519 AAAA… comment`; `None` when the second
/// field is not base64.
pub fn key_line_tag(line: &str) -> Option<String> {
    let data = line.split_whitespace().nth(1)?;
    let wire = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    Some(ssh_tag(&wire))
}

/// The recipient stanzas of an age file (binary or ASCII-armored). Grease stanzas,
/// which age adds at random to keep parsers honest, are left out.
pub fn parse(bytes: &[u8]) -> Result<Vec<Stanza>, HeaderError> {
    let head = &bytes[..bytes.len().min(MAX_HEADER)];
    if head.starts_with(ARMOR_BEGIN.as_bytes()) {
        return parse_binary(&dearmor(head)?);
    }
    parse_binary(head)
}

fn dearmor(text: &[u8]) -> Result<Vec<u8>, HeaderError> {
    let text =
        std::str::from_utf8(text).map_err(|_| HeaderError::Corrupt("armor is not text".into()))?;
    let mut b64 = String::new();
    for line in text.lines().skip(1) {
        let line = line.trim_end_matches('\r');
        if line == ARMOR_END {
            return base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| HeaderError::Corrupt(format!("armor: {e}")));
        }
        b64.push_str(line.trim());
    }
    Err(HeaderError::Truncated)
}

fn parse_binary(bytes: &[u8]) -> Result<Vec<Stanza>, HeaderError> {
    let mut lines = Lines { bytes, pos: 0 };
    match lines.next()? {
        Some(VERSION_LINE) => {}
        _ => return Err(HeaderError::NotAge),
    }
    let mut stanzas = Vec::new();
    loop {
        let line = lines.next()?.ok_or(HeaderError::Truncated)?;
        if line == "---" || line.starts_with("--- ") {
            return Ok(stanzas);
        }
        let Some(args) = line.strip_prefix("-> ") else {
            return Err(HeaderError::Corrupt(format!(
                "unexpected line `{}`",
                clip(line)
            )));
        };
        let args: Vec<&str> = args.split(' ').collect();
        if args.iter().any(|a| a.is_empty()) {
            return Err(HeaderError::Corrupt("empty stanza argument".into()));
        }
        skip_body(&mut lines)?;
        if let Some(s) = stanza(&args)? {
            stanzas.push(s);
        }
    }
}

fn stanza(args: &[&str]) -> Result<Option<Stanza>, HeaderError> {
    let tag = |n: usize| match args.get(1) {
        Some(t) if args.len() == n => Ok(t.to_string()),
        _ => Err(HeaderError::Corrupt(format!("bad `{}` stanza", args[0]))),
    };
    Ok(Some(match args[0] {
        "ssh-ed25519" => Stanza::SshEd25519 { tag: tag(3)? },
        "ssh-rsa" => Stanza::SshRsa { tag: tag(2)? },
        "X25519" => Stanza::X25519,
        t if t.ends_with("-grease") => return Ok(None),
        t => Stanza::Other(t.to_string()),
    }))
}

/// A stanza body: full 64-column lines, then one shorter (possibly empty) line.
fn skip_body(lines: &mut Lines) -> Result<(), HeaderError> {
    loop {
        let line = lines.next()?.ok_or(HeaderError::Truncated)?;
        if line.len() > BODY_COLUMNS || !line.bytes().all(is_b64) {
            return Err(HeaderError::Corrupt(format!(
                "bad stanza body line `{}`",
                clip(line)
            )));
        }
        if line.len() < BODY_COLUMNS {
            return Ok(());
        }
    }
}

fn is_b64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'/'
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// `\n`-terminated lines of the header; a line without its newline is truncation.
struct Lines<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Lines<'a> {
    fn next(&mut self) -> Result<Option<&'a str>, HeaderError> {
        let rest = &self.bytes[self.pos..];
        if rest.is_empty() {
            return Ok(None);
        }
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end])
            .map(Some)
            .map_err(|_| HeaderError::Corrupt("header is not text".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "age-encryption.org/v1\n\
        -> ssh-ed25519 dGFn Zm9v\n\
        YmFy\n\
        -> X25519 c2hhcmU\n\
        \n\
        -> a-grease x y\n\
        AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n\
        AA\n\
        -> ssh-rsa cnNh\n\
        Ym9keQ\n\
        -> scrypt c2FsdA 18\n\
        Ym9keQ\n\
        --- bWFj\n";

    #[test]
    fn parses_stanzas_and_drops_grease() {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(&[0xff, 0x00, 0x10]);
        assert_eq!(
            parse(&bytes).unwrap(),
            vec![
                Stanza::SshEd25519 { tag: "dGFn".into() },
                Stanza::X25519,
                Stanza::SshRsa { tag: "cnNh".into() },
                Stanza::Other("scrypt".into()),
            ]
        );
    }

    #[test]
    fn truncation_and_garbage_are_errors() {
        let cut = &HEADER.as_bytes()[..HEADER.len() - 10];
        assert_eq!(parse(cut), Err(HeaderError::Truncated));
        assert_eq!(parse(b""), Err(HeaderError::NotAge));
        assert_eq!(parse(b"hello\n"), Err(HeaderError::NotAge));
        let bad = HEADER.replace("YmFy", "Ym!y");
        assert!(matches!(
            parse(bad.as_bytes()),
            Err(HeaderError::Corrupt(_))
        ));
        let bad = HEADER.replace("-> X25519", "=> X25519");
        assert!(matches!(
            parse(bad.as_bytes()),
            Err(HeaderError::Corrupt(_))
        ));
    }

    #[test]
    fn armored_header() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(HEADER);
        let armored = format!("{ARMOR_BEGIN}\n{b64}\n{ARMOR_END}\n");
        assert_eq!(parse(armored.as_bytes()).unwrap().len(), 4);
    }

    #[test]
    fn tag_of_a_key_line() {
        // SHA-256("abc") starts ba 78 16 bf.
        let line = format!(
            "ssh-ed25519 {} c",
            base64::engine::general_purpose::STANDARD.encode("abc")
        );
        assert_eq!(key_line_tag(&line).unwrap(), "ungWvw");
        assert_eq!(key_line_tag("ssh-ed25519 !!!"), None);
    }
}
