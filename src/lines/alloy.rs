//! Alloy configuration syntax: string literals. Alloy strings are double-quoted with Go's
//! escapes; hearth writes only derived values (host names, URLs), and refuses control
//! characters rather than escaping them, so a value stays one visible line.

use super::LineError;

/// `s` as an Alloy string literal.
pub fn string(s: &str) -> Result<String, LineError> {
    super::no_control("Alloy string", s)?;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_refuses() {
        assert_eq!(string("nixos").unwrap(), "\"nixos\"");
        assert_eq!(string("a\"b\\c").unwrap(), "\"a\\\"b\\\\c\"");
        assert!(string("a\nb").is_err());
    }
}
