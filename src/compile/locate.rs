//! Give a writer's refusal its place in the host file. The writers (Nix strings, smb.conf,
//! exports, keys) check values long after parsing, where the TOML position is gone; their
//! errors quote the value (`{value:?}`) or name a control character, so the string value
//! that caused one can be found again in the file it came from.

use std::path::Path;

/// `message` starts with `<file>: `; when a string value of that file is the one the
/// message is about, insert its `line:col` after the file name. Otherwise unchanged.
pub fn with_location(root: &Path, message: &str) -> String {
    let Some((file, rest)) = message.split_once(": ") else {
        return message.to_string();
    };
    if !file.ends_with(".toml") || file.contains(' ') || !from_a_writer(rest) {
        return message.to_string();
    }
    let Ok(text) = std::fs::read_to_string(root.join(file)) else {
        return message.to_string();
    };
    match find(&text, rest) {
        Some((line, col)) => format!("{file}:{line}:{col}: {rest}"),
        None => message.to_string(),
    }
}

/// Is this one of the writers' refusals (the only messages located here)?
fn from_a_writer(message: &str) -> bool {
    [
        "control character",
        "smb.conf ",
        "exports ",
        "ssh_config ",
        "SSH public key",
        "known_hosts ",
        "authorized_keys ",
    ]
    .iter()
    .any(|w| message.contains(w))
}

/// The `(line, col)` of the first string value or key in `text` that `message` quotes,
/// or, for a control-character error, the first one holding a control character that Nix
/// refuses.
pub fn find(text: &str, message: &str) -> Option<(usize, usize)> {
    let doc = toml_edit::ImDocument::parse(text.to_string()).ok()?;
    let control = message.contains("control character");
    let mut found = None;
    let mut visit = |s: &str, span: Option<std::ops::Range<usize>>| {
        if found.is_some() {
            return;
        }
        let quoted = !s.is_empty() && message.contains(&format!("{s:?}"));
        let bad = s.chars().any(|c| c.is_control() && c != '\n' && c != '\t');
        if quoted || (control && bad) {
            found = span.map(|r| r.start);
        }
    };
    walk_table(doc.as_table(), &mut visit);
    found.map(|offset| super::nix::line_col(text, offset))
}

type Visit<'a> = dyn FnMut(&str, Option<std::ops::Range<usize>>) + 'a;

fn walk_table(t: &toml_edit::Table, f: &mut Visit) {
    for (k, _) in t.iter() {
        if let Some((key, item)) = t.get_key_value(k) {
            f(key.get(), key.span());
            walk_item(item, f);
        }
    }
}

fn walk_item(item: &toml_edit::Item, f: &mut Visit) {
    match item {
        toml_edit::Item::Value(v) => walk_value(v, f),
        toml_edit::Item::Table(t) => walk_table(t, f),
        toml_edit::Item::ArrayOfTables(a) => a.iter().for_each(|t| walk_table(t, f)),
        toml_edit::Item::None => {}
    }
}

fn walk_value(v: &toml_edit::Value, f: &mut Visit) {
    match v {
        toml_edit::Value::Array(a) => a.iter().for_each(|x| walk_value(x, f)),
        toml_edit::Value::InlineTable(t) => {
            for (k, x) in t.iter() {
                if let Some((key, _)) = t.get_key_value(k) {
                    f(key.get(), key.span());
                }
                walk_value(x, f);
            }
        }
        toml_edit::Value::String(s) => f(s.value(), v.span()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_quoted_or_control_value() {
        let text = "a = \"x\"\n[s]\nw = \"W\\n[root]\"\nk = [\"ok\", \"bad\\u0000\"]\n";
        assert_eq!(
            find(text, r#"smb.conf value: "W\n[root]" contains"#),
            Some((3, 5))
        );
        assert_eq!(
            find(
                text,
                "the value of `x.y` contains the control character U+0000"
            ),
            Some((4, 12))
        );
        assert_eq!(find(text, "something else"), None);
        let keys = "[s.\"a\\u001bb\"]\nx = 1\n";
        assert_eq!(find(keys, "control character U+001B"), Some((1, 4)));
    }

    #[test]
    fn inserts_line_and_column_after_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("hosts")).unwrap();
        std::fs::write(dir.path().join("hosts/a.toml"), "x = 1\ny = \"a\\u0000\"\n").unwrap();
        assert_eq!(
            with_location(
                dir.path(),
                "hosts/a.toml: the value contains the control character U+0000"
            ),
            "hosts/a.toml:2:5: the value contains the control character U+0000"
        );
        assert_eq!(with_location(dir.path(), "no file here"), "no file here");
        std::fs::write(dir.path().join("hosts/a.toml"), "x = \"no\"\n").unwrap();
        let other = "hosts/a.toml: `a` is set twice with different values: \"no\" and \"yes\"";
        assert_eq!(
            with_location(dir.path(), other),
            other,
            "not a writer's refusal"
        );
    }
}
