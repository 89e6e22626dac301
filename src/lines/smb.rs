//! smb.conf: `key = value` lines in `[section]`s. Samba trims the value, joins a line that
//! ends in `\` with the next, and a section header ends at `]`.

use super::{no_control, LineError};

/// Check a value for `key = value`: one line, no surrounding spaces, no continuation.
pub fn value(v: &str) -> Result<(), LineError> {
    const F: &str = "smb.conf value";
    no_control(F, v)?;
    if v.trim() != v {
        return Err(LineError::new(
            F,
            v,
            "starts or ends with spaces, which Samba drops",
        ));
    }
    if v.ends_with('\\') {
        return Err(LineError::new(
            F,
            v,
            "ends with `\\`, which joins the next line of smb.conf to it",
        ));
    }
    Ok(())
}

/// Check a section (share) name for `[name]`.
pub fn section(name: &str) -> Result<(), LineError> {
    const F: &str = "smb.conf share name";
    no_control(F, name)?;
    if name.is_empty() || name.trim() != name || name.contains(['[', ']']) {
        return Err(LineError::new(
            F,
            name,
            "must be non-empty, without surrounding spaces, `[` or `]`",
        ));
    }
    Ok(())
}

/// `key = value` as Samba writes it (for tests and callers outside Nix).
pub fn line(key: &str, v: &str) -> Result<String, LineError> {
    value(v)?;
    Ok(format!("{key} = {v}"))
}

/// Samba's reading of one `key = value` line: the trimmed text after the first `=`;
/// None for a continued line.
pub fn parse_value(line: &str) -> Option<String> {
    if line.ends_with('\\') || line.contains('\n') {
        return None;
    }
    Some(line.split_once('=')?.1.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn values_stay_one_line() {
        assert_eq!(
            line("comment", "Photos & more").unwrap(),
            "comment = Photos & more"
        );
        for bad in [
            "WORKGROUP\n[root]\npath = /",
            "a\rb",
            "x\\",
            " lead",
            "trail ",
            "t\tab",
        ] {
            assert!(value(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            value("W\n[x]").unwrap_err().to_string(),
            "smb.conf value: \"W\\n[x]\" contains the control character U+000A, which would \
             end or change the line"
        );
        assert!(section("photos").is_ok());
        for bad in ["a]b", "", "x\ny", " p"] {
            assert!(section(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn values_are_refused_or_read_back_exactly(v in any::<String>()) {
            if let Ok(l) = line("comment", &v) {
                prop_assert_eq!(parse_value(&l), Some(v));
            }
        }
    }
}
