//! A small Nix data model for generated files: build a tree, merge trees from
//! several sources, print it formatted (2-space indent, one binding per line,
//! sorted keys), and read template output back into the tree through rnix.

use rnix::ast::{self, HasEntry};
use rowan::ast::AstNode;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// A string literal; printed with escaping (`"…"`, or `''…''` when multi-line text
    /// needs no escapes there).
    Str(String),
    /// A relative path such as `./helios64/default.nix`: printed as a literal when it is
    /// one, else as a directory literal plus a quoted string (see [`path`]).
    Path(String),
    /// Any other expression (`config.age.secrets.x.path`, `pkgs.foo`), printed as is.
    /// Only template text read back by [`parse_value`] becomes `Raw`, never host-file text.
    Raw(String),
    List(Vec<Value>),
    Attrs(BTreeMap<String, Value>),
}

impl Value {
    pub fn attrs() -> Value {
        Value::Attrs(BTreeMap::new())
    }
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }
    pub fn strs<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Value {
        Value::List(items.into_iter().map(|s| Value::Str(s.into())).collect())
    }

    /// Set `path` (dot-separated is NOT parsed: pass components) to `value`, merging.
    pub fn set(&mut self, path: &[&str], value: Value) -> Result<(), String> {
        let mut single = Value::attrs();
        let mut cur = &mut single;
        for (i, key) in path.iter().enumerate() {
            let Value::Attrs(map) = cur else {
                unreachable!()
            };
            if i + 1 == path.len() {
                map.insert(key.to_string(), value);
                break;
            }
            cur = map.entry(key.to_string()).or_insert_with(Value::attrs);
        }
        merge(self, single, &mut Vec::new())
    }

    /// Set a dotted path, e.g. `"services.openssh.enable"` (keys must not contain dots).
    pub fn put(&mut self, dotted: &str, value: Value) {
        let path: Vec<&str> = dotted.split('.').collect();
        self.set(&path, value)
            .unwrap_or_else(|e| panic!("internal merge conflict: {e}"));
    }

    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Raw(float_literal(n.as_f64().unwrap_or(0.0))),
            },
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(a) => Value::List(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(o) => Value::Attrs(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }
}

/// A float as Nix reads it: Nix needs a `.` (`1e300` would be the integer 1 and then the
/// name `e300`), and a negative one goes in parentheses (a list element can't be `-x`).
pub fn float_literal(f: f64) -> String {
    let mut s = format!("{f:?}");
    if !s.contains('.') {
        let at = s.find(['e', 'E']).unwrap_or(s.len());
        s.insert_str(at, ".0");
    }
    if s.starts_with('-') {
        s = format!("({s})");
    }
    s
}

/// Deep-merge `b` into `a`. Attribute sets merge, lists concatenate, equal scalars
/// agree; anything else is a conflict named by its attribute path.
pub fn merge(a: &mut Value, b: Value, path: &mut Vec<String>) -> Result<(), String> {
    match (a, b) {
        (Value::Attrs(x), Value::Attrs(y)) => {
            for (k, v) in y {
                path.push(k.clone());
                match x.get_mut(&k) {
                    Some(existing) => merge(existing, v, path)?,
                    None => {
                        x.insert(k, v);
                    }
                }
                path.pop();
            }
            Ok(())
        }
        (Value::List(x), Value::List(y)) => {
            x.extend(y);
            Ok(())
        }
        (x, y) if *x == y => Ok(()),
        (x, y) => Err(format!(
            "`{}` is set twice with different values: {} and {}",
            path.join("."),
            inline(x),
            inline(&y)
        )),
    }
}

const KEYWORDS: &[&str] = &[
    "assert", "else", "if", "in", "inherit", "let", "or", "rec", "then", "with",
];

/// Text that cannot go into generated Nix. Nix strings cannot hold NUL at all, and the
/// other control characters (carriage return included) are refused too: every value that
/// reaches Nix also ends up in some line-based file on the host (smb.conf, exports,
/// known_hosts, a unit file), where they change the meaning of the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NixTextError {
    #[error(
        "contains the control character U+{:04X} at character {at}; only newline and tab \
         may appear in a value: remove it",
        u32::from(*ch)
    )]
    ControlChar { ch: char, at: usize },
}

/// Refuse every control character but newline and tab (see [`NixTextError`]).
pub fn check_text(s: &str) -> Result<(), NixTextError> {
    match s
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        Some((at, ch)) => Err(NixTextError::ControlChar { ch, at }),
        None => Ok(()),
    }
}

/// A value (somewhere in a tree) that cannot be written as Nix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the value of `{path}` {error}")]
pub struct NixValueError {
    /// The attribute path to the value, dot-separated.
    pub path: String,
    pub error: NixTextError,
}

/// Check every string, key, path and raw expression of `v` with [`check_text`]: after this
/// the printer cannot produce anything but the literals it means to.
pub fn validate(v: &Value) -> Result<(), NixValueError> {
    fn walk(v: &Value, path: &mut Vec<String>) -> Result<(), NixValueError> {
        let fail = |path: &Vec<String>, error| NixValueError {
            path: path.join("."),
            error,
        };
        match v {
            Value::Str(s) | Value::Path(s) | Value::Raw(s) => {
                check_text(s).map_err(|e| fail(path, e))
            }
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(format!("[{i}]"));
                    walk(item, path)?;
                    path.pop();
                }
                Ok(())
            }
            Value::Attrs(map) => {
                for (k, item) in map {
                    path.push(k.clone());
                    check_text(k).map_err(|e| fail(path, e))?;
                    walk(item, path)?;
                    path.pop();
                }
                Ok(())
            }
            Value::Null | Value::Bool(_) | Value::Int(_) => Ok(()),
        }
    }
    walk(v, &mut Vec::new())
}

/// An attribute name as written in Nix: bare when it is an identifier, quoted otherwise.
pub fn key(name: &str) -> Result<String, NixTextError> {
    check_text(name)?;
    Ok(key_unchecked(name))
}

fn key_unchecked(name: &str) -> String {
    let mut chars = name.chars();
    let ident = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '\''))
        && !KEYWORDS.contains(&name);
    if ident {
        name.to_string()
    } else {
        quote_unchecked(name)
    }
}

/// A double-quoted Nix string literal: `\`, `"`, `${`, newline and tab escaped.
pub fn quote(s: &str) -> Result<String, NixTextError> {
    check_text(s)?;
    Ok(quote_unchecked(s))
}

/// [`quote`] for text [`check_text`] accepted. Other control characters are written as
/// `\r` or dropped escapes would be wrong, so they never get here (see `validate`).
fn quote_unchecked(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Can `s` be written as an indented string `''…''` with no escapes at all, and read
/// back exactly? Nix strips common indentation, drops a whitespace-only last line and
/// interprets `''` and `${`: so only multi-line text with no `'`, no `$` and no line
/// starting with a space or tab qualifies. Anything else is written `"…"`.
fn indented_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.contains(['\'', '$'])
        && s.split('\n').all(|line| !line.starts_with([' ', '\t']))
}

/// An indented string for `s` at nesting `level` when [`indented_ok`], else [`quote`].
pub fn indented(s: &str, level: usize) -> Result<String, NixTextError> {
    check_text(s)?;
    let mut out = String::new();
    write_string(s, level, &mut out);
    Ok(out)
}

fn write_string(s: &str, level: usize, out: &mut String) {
    if indented_ok(s) {
        write_indented_string(s, level, out);
    } else {
        out.push_str(&quote_unchecked(s));
    }
}

/// Characters Nix accepts in a path literal's components.
fn path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+')
}

/// Is `p` a relative path Nix reads literally: `./` or `../` then non-empty components
/// of path characters, no trailing slash?
fn is_path_literal(p: &str) -> bool {
    (p.starts_with("./") || p.starts_with("../"))
        && p.split('/')
            .all(|c| !c.is_empty() && c.chars().all(path_char))
}

/// A relative path (`./x`, `../x/y`) as Nix: the literal when it is one, else the
/// directory literal plus a quoted string (`(../secrets + "/a b.age")`), which Nix joins
/// and normalises the same way, so no name can break the syntax.
pub fn path(p: &str) -> Result<String, NixTextError> {
    check_text(p)?;
    Ok(path_unchecked(p))
}

fn path_unchecked(p: &str) -> String {
    if is_path_literal(p) {
        return p.to_string();
    }
    let (dir, rest) = match p.rsplit_once('/') {
        Some((dir, file)) if is_path_literal(dir) => (dir.to_string(), format!("/{file}")),
        _ => (
            "./.".to_string(),
            format!("/{}", p.strip_prefix("./").unwrap_or(p)),
        ),
    };
    format!("({dir} + {})", quote_unchecked(&rest))
}

/// One-line rendering, after [`validate`] (for the `nix` template filter).
pub fn inline_checked(v: &Value) -> Result<String, NixValueError> {
    validate(v)?;
    Ok(inline(v))
}

/// One-line rendering for messages; generated text goes through [`inline_checked`].
pub fn inline(v: &Value) -> String {
    let mut out = String::new();
    write_inline(v, &mut out);
    out
}

fn write_inline(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // Nix reads `-N` as minus N, and 2^63 is no integer: the smallest one is a sum.
        Value::Int(i64::MIN) => out.push_str("(-9223372036854775807 - 1)"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Str(s) => out.push_str(&quote_unchecked(s)),
        Value::Path(p) => out.push_str(&path_unchecked(p)),
        Value::Raw(p) => out.push_str(p),
        Value::List(items) if items.is_empty() => out.push_str("[ ]"),
        Value::List(items) => {
            out.push('[');
            for item in items {
                out.push(' ');
                let paren = needs_parens_in_list(item);
                if paren {
                    out.push('(');
                }
                write_inline(item, out);
                if paren {
                    out.push(')');
                }
            }
            out.push_str(" ]");
        }
        Value::Attrs(map) if map.is_empty() => out.push_str("{ }"),
        Value::Attrs(map) => {
            out.push('{');
            for (k, v) in map {
                out.push(' ');
                out.push_str(&key_unchecked(k));
                out.push_str(" = ");
                write_inline(v, out);
                out.push(';');
            }
            out.push_str(" }");
        }
    }
}

fn needs_parens_in_list(v: &Value) -> bool {
    match v {
        // `[ -1 ]` is a unary minus, which a list element can't be without parentheses.
        Value::Int(i) => *i < 0,
        Value::Raw(r) => {
            let r = r.trim();
            !(r.starts_with('(') && r.ends_with(')'))
                && r.contains(|c: char| c.is_whitespace())
                && !(r.starts_with('"') || r.starts_with("''"))
        }
        _ => false,
    }
}

/// Format a whole file: `header` comment lines, optional `function_args` line
/// (e.g. `{ config, lib, pkgs, ... }:`), then the value. `imports` goes first.
/// Refuses a tree holding text Nix cannot carry (see [`validate`]).
pub fn format_file(
    header: &str,
    function_args: Option<&str>,
    v: &Value,
) -> Result<String, NixValueError> {
    validate(v)?;
    let mut out = String::with_capacity(4096);
    for line in header.lines() {
        // File names end up here: no control character may reach the file through them.
        out.push_str("# ");
        out.extend(line.chars().map(|c| if c.is_control() { '?' } else { c }));
        out.push('\n');
    }
    if let Some(args) = function_args {
        out.push_str(args);
        out.push('\n');
    }
    write_value(v, 0, &mut out);
    out.push('\n');
    Ok(out)
}

fn indent(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push_str("  ");
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::List(_) | Value::Attrs(_)) && !matches!(v, Value::Str(s) if indented_ok(s))
}

fn write_value(v: &Value, level: usize, out: &mut String) {
    match v {
        Value::Str(s) => write_string(s, level, out),
        Value::Raw(r) if r.contains('\n') => write_raw_multiline(r, level, out),
        Value::List(items) if items.is_empty() => out.push_str("[ ]"),
        Value::List(items) if items.len() == 1 && is_scalar(&items[0]) => write_inline(v, out),
        Value::List(items) => {
            out.push_str("[\n");
            for item in items {
                indent(out, level + 1);
                let paren = needs_parens_in_list(item);
                if paren {
                    out.push('(');
                }
                write_value(item, level + 1, out);
                if paren {
                    out.push(')');
                }
                out.push('\n');
            }
            indent(out, level);
            out.push(']');
        }
        Value::Attrs(map) if map.is_empty() => out.push_str("{ }"),
        Value::Attrs(map) => {
            out.push_str("{\n");
            let imports = map.get_key_value("imports");
            for (k, v) in imports
                .into_iter()
                .chain(map.iter().filter(|(k, _)| *k != "imports"))
            {
                indent(out, level + 1);
                // Collapse single-child chains: `a = { b = 1; };` → `a.b = 1;`.
                let mut path = key_unchecked(k);
                let mut value = v;
                while let Value::Attrs(inner) = value {
                    if inner.len() != 1 {
                        break;
                    }
                    let (ik, iv) = inner.iter().next().unwrap();
                    path.push('.');
                    path.push_str(&key_unchecked(ik));
                    value = iv;
                }
                out.push_str(&path);
                out.push_str(" = ");
                write_value(value, level + 1, out);
                out.push_str(";\n");
            }
            indent(out, level);
            out.push('}');
        }
        scalar => write_inline(scalar, out),
    }
}

/// `''…''` with the content indented one level deeper than the binding; only for text
/// [`indented_ok`] accepted, which needs no escapes.
fn write_indented_string(s: &str, level: usize, out: &mut String) {
    out.push_str("''\n");
    for line in s.split_inclusive('\n') {
        let content = line.strip_suffix('\n').unwrap_or(line);
        if !content.is_empty() {
            indent(out, level + 1);
            out.push_str(content);
        }
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    if !s.ends_with('\n') {
        // No trailing newline in the value: close on the same line.
        out.push_str("''");
        return;
    }
    indent(out, level);
    out.push_str("''");
}

fn write_raw_multiline(r: &str, level: usize, out: &mut String) {
    let lines: Vec<&str> = r.lines().collect();
    let common = lines[1..]
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    out.push_str(lines[0].trim_end());
    for line in &lines[1..] {
        out.push('\n');
        if line.trim().is_empty() {
            continue;
        }
        // Later lines keep their shape, shifted to this level.
        indent(out, level);
        out.push_str(line[common.min(line.len())..].trim_end());
    }
}

/// Parse Nix text with rnix; the first error with its line and column.
pub fn check_parse(text: &str) -> Result<rnix::Root, String> {
    let parse = rnix::Root::parse(text);
    if let Some(err) = parse.errors().first() {
        return Err(describe_parse_error(text, err));
    }
    Ok(parse.tree())
}

fn describe_parse_error(text: &str, err: &rnix::parser::ParseError) -> String {
    use rnix::parser::ParseError as E;
    let offset = match err {
        E::Unexpected(r) | E::UnexpectedExtra(r) | E::UnexpectedWanted(_, r, _) => {
            usize::from(r.start())
        }
        E::UnexpectedDoubleBind(r) => usize::from(r.start()),
        _ => text.len(),
    };
    let (line, col) = line_col(text, offset);
    let src = text.lines().nth(line - 1).unwrap_or("");
    format!("{line}:{col}: {err}\n  | {src}")
}

pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// Read Nix text (an attribute set, optionally behind a module's `{ … }:` header)
/// into a `Value`. Attribute sets, lists and literals become data; anything else is
/// kept as `Raw` source text.
pub fn parse_value(text: &str) -> Result<Value, String> {
    let root = check_parse(text)?;
    let mut expr = root.expr().ok_or("empty Nix expression")?;
    if let ast::Expr::Lambda(lambda) = &expr {
        expr = lambda.body().ok_or("lambda without a body")?;
    }
    from_expr(&expr)
}

fn from_expr(expr: &ast::Expr) -> Result<Value, String> {
    Ok(match expr {
        ast::Expr::AttrSet(set) if set.rec_token().is_none() => {
            let mut v = Value::attrs();
            for entry in set.entries() {
                match entry {
                    ast::Entry::AttrpathValue(apv) => {
                        let path = attrpath(&apv.attrpath().ok_or("binding without a name")?)?;
                        let value = from_expr(&apv.value().ok_or("binding without a value")?)?;
                        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                        v.set(&refs, value)?;
                    }
                    ast::Entry::Inherit(i) => {
                        return Err(format!("`{}` is not supported here", i.syntax().text()))
                    }
                }
            }
            v
        }
        ast::Expr::List(list) => Value::List(
            list.items()
                .map(|i| from_expr(&i))
                .collect::<Result<_, _>>()?,
        ),
        ast::Expr::Literal(lit) => match lit.kind() {
            ast::LiteralKind::Integer(i) => Value::Int(i.value().map_err(|e| e.to_string())?),
            _ => Value::Raw(lit.syntax().text().to_string()),
        },
        ast::Expr::Ident(id) => match id.syntax().text().to_string().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            other => Value::Raw(other.to_string()),
        },
        ast::Expr::Str(s) => match plain_string(s) {
            Some(text) => Value::Str(text),
            None => Value::Raw(s.syntax().text().to_string()),
        },
        // A template's own path literal is its author's text, kept as written.
        ast::Expr::Path(p) => Value::Raw(p.syntax().text().to_string()),
        other => Value::Raw(other.syntax().text().to_string()),
    })
}

fn plain_string(s: &ast::Str) -> Option<String> {
    let mut out = String::new();
    for part in s.normalized_parts() {
        match part {
            ast::InterpolPart::Literal(text) => out.push_str(&text),
            ast::InterpolPart::Interpolation(_) => return None,
        }
    }
    Some(out)
}

fn attrpath(path: &ast::Attrpath) -> Result<Vec<String>, String> {
    path.attrs()
        .map(|attr| match attr {
            ast::Attr::Ident(id) => Ok(id.syntax().text().to_string()),
            ast::Attr::Str(s) => plain_string(&s)
                .ok_or_else(|| format!("interpolated attribute name {}", s.syntax().text())),
            ast::Attr::Dynamic(d) => Err(format!(
                "dynamic attribute name {} is not supported",
                d.syntax().text()
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_everything_nix_interprets() {
        let q = |s: &str| quote(s).unwrap();
        assert_eq!(q(r#"a"b"#), r#""a\"b""#);
        assert_eq!(q(r"a\b"), r#""a\\b""#);
        assert_eq!(q("${x}"), r#""\${x}""#);
        assert_eq!(q("$x $"), r#""$x $""#);
        assert_eq!(q("a\nb\tc"), r#""a\nb\tc""#);
        // Round trip through rnix: the parsed string equals the input.
        for s in [
            "${pkgs.evil}",
            "quote\" back\\slash",
            "dollar $ {x}",
            "tab\t",
            "''",
        ] {
            let v = parse_value(&format!("{{ x = {}; }}", quote(s).unwrap())).unwrap();
            assert_eq!(v, {
                let mut a = Value::attrs();
                a.put("x", Value::str(s));
                a
            });
        }
    }

    #[test]
    fn keys_are_bare_only_when_identifiers() {
        let k = |s: &str| key(s).unwrap();
        assert_eq!(k("trusted-public-keys"), "trusted-public-keys");
        assert_eq!(k("map to guest"), "\"map to guest\"");
        assert_eq!(k("1abc"), "\"1abc\"");
        assert_eq!(k("with"), "\"with\"");
        assert_eq!(k("restic-password.age"), "\"restic-password.age\"");
        assert_eq!(k("${x}"), "\"\\${x}\"");
        assert_eq!(k(""), "\"\"");
        assert_eq!(
            inline(&Value::List(vec![Value::Int(-1), Value::Int(2)])),
            "[ (-1) 2 ]"
        );
        assert_eq!(
            inline(&Value::from_json(&serde_json::json!([-1.5, 2.5]))),
            "[ (-1.5) 2.5 ]"
        );
        assert_eq!(float_literal(1e300), "1.0e300");
        assert_eq!(float_literal(-2.5e-7), "(-2.5e-7)");
        assert_eq!(float_literal(0.5), "0.5");
        assert!(key("a\u{0}b").is_err());
    }

    #[test]
    fn json_values_render_as_nix_literals() {
        let v = serde_json::json!({"a b": [1, true, null, "x${y}"], "c": {}});
        assert_eq!(
            inline(&Value::from_json(&v)),
            r#"{ "a b" = [ 1 true null "x\${y}" ]; c = { }; }"#
        );
    }

    #[test]
    fn printer_collapses_chains_sorts_and_indents() {
        let mut v = Value::attrs();
        v.put("services.openssh.enable", Value::Bool(true));
        v.put("networking.hostName", Value::str("h"));
        v.put(
            "networking.firewall.allowedTCPPorts",
            Value::List(vec![Value::Int(22), Value::Int(80)]),
        );
        v.put("imports", Value::List(vec![Value::Path("./a.nix".into())]));
        let text = format_file("header", Some("{ config, ... }:"), &v).unwrap();
        let expected = "# header
{ config, ... }:
{
  imports = [ ./a.nix ];
  networking = {
    firewall.allowedTCPPorts = [
      22
      80
    ];
    hostName = \"h\";
  };
  services.openssh.enable = true;
}
";
        assert_eq!(text, expected);
        // The printed text reads back to the same value (a path as the template text it is).
        let mut back = v.clone();
        if let Value::Attrs(m) = &mut back {
            m.insert(
                "imports".into(),
                Value::List(vec![Value::Raw("./a.nix".into())]),
            );
        }
        assert_eq!(parse_value(&text).unwrap(), back);
    }

    #[test]
    fn multiline_strings_use_indented_form_and_round_trip() {
        let mut v = Value::attrs();
        v.put("a.b", Value::str("line1 ${x}\n  ''quoted''\nline3\n"));
        v.put("a.c", Value::Int(1));
        let text = format_file("h", None, &v).unwrap();
        // `$` and `'` would need escapes in `''…''`: such text is written `"…"`.
        assert!(
            text.contains(r#"b = "line1 \${x}\n  ''quoted''\nline3\n";"#),
            "{text}"
        );
        assert_eq!(parse_value(&text).unwrap(), v);
        let mut v = Value::attrs();
        v.put("a.b", Value::str("/x *(ro)\n/y 10.0.0.0/8(rw)\n"));
        v.put("a.c", Value::Int(1));
        let text = format_file("h", None, &v).unwrap();
        assert!(
            text.contains("    b = ''\n      /x *(ro)\n      /y 10.0.0.0/8(rw)\n    '';\n"),
            "{text}"
        );
        assert_eq!(parse_value(&text).unwrap(), v);
    }

    #[test]
    fn merge_combines_and_reports_conflicts() {
        let mut a = parse_value("{ x.y = 1; l = [ 1 ]; }").unwrap();
        let b = parse_value("{ x.z = 2; l = [ 2 ]; x.y = 1; }").unwrap();
        merge(&mut a, b, &mut vec![]).unwrap();
        assert_eq!(inline(&a), "{ l = [ 1 2 ]; x = { y = 1; z = 2; }; }");
        let c = parse_value("{ x.y = 3; }").unwrap();
        let err = merge(&mut a, c, &mut vec![]).unwrap_err();
        assert!(err.contains("`x.y` is set twice"), "{err}");
    }

    #[test]
    fn raw_expressions_survive() {
        let v = parse_value("{ p = config.age.secrets.x.path; l = [ (pkgs.foo) \"a${b}\" ]; }")
            .unwrap();
        let text = format_file("h", None, &v).unwrap();
        assert!(text.contains("p = config.age.secrets.x.path;"), "{text}");
        assert!(text.contains("(pkgs.foo)"), "{text}");
        assert!(check_parse(&text).is_ok());
    }

    #[test]
    fn indented_form_only_when_it_reads_back_without_escapes() {
        assert_eq!(indented("a\nb\n", 0).unwrap(), "''\n  a\n  b\n''");
        assert_eq!(indented("a\n\nb", 1).unwrap(), "''\n    a\n\n    b''");
        // Leading spaces would be stripped as indentation, `'${` would turn live.
        assert_eq!(indented("  a\nb", 0).unwrap(), r#""  a\nb""#);
        assert_eq!(
            indented("Photos\n'${builtins.readFile /etc/hostname}", 0).unwrap(),
            r#""Photos\n'\${builtins.readFile /etc/hostname}""#
        );
        assert_eq!(indented("a\n  ", 0).unwrap(), r#""a\n  ""#);
        assert_eq!(indented("one line", 0).unwrap(), r#""one line""#);
    }

    #[test]
    fn control_characters_are_refused_with_their_place() {
        assert_eq!(
            quote("ab\u{0}").unwrap_err(),
            NixTextError::ControlChar { ch: '\0', at: 2 }
        );
        assert!(quote("a\rb").is_err());
        assert!(quote("a\u{1b}[31m").is_err());
        assert!(quote("a\u{85}").is_err(), "C1 controls too");
        assert!(quote("tab\tand\nnewline").is_ok());
        let mut v = Value::attrs();
        v.put(
            "services.samba.settings.global.workgroup",
            Value::str("W\u{0}"),
        );
        let err = format_file("h", None, &v).unwrap_err().to_string();
        assert_eq!(
            err,
            "the value of `services.samba.settings.global.workgroup` contains the control \
             character U+0000 at character 1; only newline and tab may appear in a value: \
             remove it"
        );
    }

    #[test]
    fn paths_are_literals_only_when_safe() {
        let p = |s: &str| path(s).unwrap();
        assert_eq!(p("../../modules/nixos/x.nix"), "../../modules/nixos/x.nix");
        assert_eq!(p("./h1/default.nix"), "./h1/default.nix");
        assert_eq!(
            p("../../secrets/a b.age"),
            r#"(../../secrets + "/a b.age")"#
        );
        assert_eq!(p("../../m/${x}.nix"), r#"(../../m + "/\${x}.nix")"#);
        assert_eq!(
            p("../../my mods/x.nix"),
            r#"(./. + "/../../my mods/x.nix")"#
        );
        assert_eq!(p("./a\"b/c"), r#"(./. + "/a\"b/c")"#);
        assert!(path("../x\u{0}").is_err());
        for text in [p("../../secrets/a b.age"), p("../../my mods/x.nix")] {
            assert!(check_parse(&format!("{{ x = {text}; }}")).is_ok(), "{text}");
        }
    }

    #[test]
    fn parse_errors_name_line_and_column() {
        let err = check_parse("{\n  a = ;\n}").unwrap_err();
        assert!(err.starts_with("2:"), "{err}");
    }
}
