//! NFS `exports(5)` lines: `path client(options)`. Whitespace separates fields, `#` starts
//! a comment, `"` quotes a path; a client spec or option list with spaces or parentheses
//! would add clients, so all three are checked here.

use super::{no_control, LineError};

/// One export line for `path` to `client` with `options`.
pub fn line(path: &str, client: &str, options: &str) -> Result<String, LineError> {
    Ok(format!(
        "{} {}({})",
        quote_path(path)?,
        check_client(client)?,
        check_options(options)?
    ))
}

/// An absolute path, double-quoted when it holds spaces.
fn quote_path(path: &str) -> Result<String, LineError> {
    const F: &str = "exports path";
    no_control(F, path)?;
    if !path.starts_with('/') {
        return Err(LineError::new(F, path, "must be an absolute path"));
    }
    if path.contains(['"', '\\', '#']) {
        return Err(LineError::new(
            F,
            path,
            "must not contain `\"`, `\\` or `#`",
        ));
    }
    Ok(if path.contains(' ') {
        format!("\"{path}\"")
    } else {
        path.to_string()
    })
}

/// A host name, address, network (`192.168.1.0/24`), wildcard or `@netgroup`.
fn check_client(client: &str) -> Result<&str, LineError> {
    const F: &str = "exports client";
    no_control(F, client)?;
    let ok = !client.is_empty()
        && client
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_*?:/@[]".contains(c));
    if !ok {
        return Err(LineError::new(
            F,
            client,
            "must be one host, address, network, wildcard or @netgroup (letters, digits, `.-_*?:/@[]`)",
        ));
    }
    Ok(client)
}

/// A comma-separated option list such as `ro,sync,no_subtree_check`.
fn check_options(options: &str) -> Result<&str, LineError> {
    const F: &str = "exports options";
    no_control(F, options)?;
    let ok = options.split(',').all(|o| {
        !o.is_empty()
            && o.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_=-:/.@".contains(c))
    });
    if !ok {
        return Err(LineError::new(
            F,
            options,
            "must be comma-separated options such as `ro,sync` (letters, digits, `_=-:/.@`)",
        ));
    }
    Ok(options)
}

/// exportfs's reading of a line (ASCII whitespace separates; control characters never
/// get here): (path, client, options), or None when it isn't one export.
pub fn parse(line: &str) -> Option<(String, String, String)> {
    if line.contains(['\n', '#']) {
        return None;
    }
    let (path, rest) = match line.strip_prefix('"') {
        Some(q) => {
            let (p, rest) = q.split_once('"')?;
            (p, rest.strip_prefix(' ')?)
        }
        None => line.split_once(' ')?,
    };
    if rest.contains(' ') {
        return None;
    }
    let (client, opts) = rest.strip_suffix(')')?.split_once('(')?;
    Some((path.to_string(), client.to_string(), opts.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_lines_and_refusals() {
        assert_eq!(
            line("/tank/media", "192.168.1.0/24", "ro,sync").unwrap(),
            "/tank/media 192.168.1.0/24(ro,sync)"
        );
        assert_eq!(
            line("/tank/my media", "*", "ro").unwrap(),
            "\"/tank/my media\" *(ro)"
        );
        assert_eq!(
            parse("\"/tank/my media\" *(ro)"),
            Some(("/tank/my media".into(), "*".into(), "ro".into()))
        );
        assert_eq!(
            parse("/tank/media 10.0.0.0/8(ro,sync)"),
            Some(("/tank/media".into(), "10.0.0.0/8".into(), "ro,sync".into()))
        );
        assert_eq!(parse("/a *(ro)\n/ *(rw)"), None);
        for (p, c, o) in [
            ("/x\n/ *(rw,no_root_squash)", "*", "ro"),
            ("relative", "*", "ro"),
            ("/x", "a b", "ro"),
            ("/x", "", "ro"),
            ("/x", "*", "ro) *(rw"),
            ("/x", "*", ""),
            ("/x#", "*", "ro"),
        ] {
            assert!(line(p, c, o).is_err(), "{p:?} {c:?} {o:?}");
        }
    }

    proptest! {
        #[test]
        fn lines_are_refused_or_read_back_exactly(
            p in any::<String>(),
            c in prop_oneof![any::<String>(), "[a-z0-9.*/@ ()\n]{0,8}"],
            o in prop_oneof![any::<String>(), "[a-z_=,()# \n]{0,12}"],
        ) {
            if let Ok(l) = line(&format!("/{p}"), &c, &o) {
                prop_assert_eq!(parse(&l), Some((format!("/{p}"), c, o)));
            }
        }
    }
}
