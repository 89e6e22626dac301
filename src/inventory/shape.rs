//! The structural checker: a schema compiled (once per load) into a tree of shapes,
//! and a walk of a parsed `toml_edit` document against it that collects every unknown
//! key, wrong type, bad enum value, out-of-range number and missing key with its span.

use super::diag::{did_you_mean, list_code, Diagnostic, Sources};
use super::model::values::{shown, Kind};
use super::schema::{enum_values, int_range, kind_of};
use schemars::Schema;
use std::ops::Range;
use toml_edit::{Item, Key, Value};

#[derive(Debug, Clone)]
pub enum Shape {
    Any,
    Bool,
    Int { min: i64, max: i64 },
    Float,
    Str(StrShape),
    Array(Box<Shape>),
    Table(Box<TableShape>),
}

#[derive(Debug, Clone, Default)]
pub struct StrShape {
    /// Allowed values, when the string is an enum.
    pub values: Option<Vec<String>>,
    pub pattern: Option<regex::Regex>,
    /// What the value means, for the help line of a pattern mismatch.
    pub hint: Option<String>,
    /// What the string becomes; its check replaces `pattern`.
    pub kind: Option<Kind>,
}

#[derive(Debug, Clone, Default)]
pub struct TableShape {
    pub fields: Vec<(String, Shape)>,
    pub required: Vec<String>,
    /// Shape of keys not in `fields`; `None` rejects them.
    pub extra: Option<Shape>,
    /// What the names of keys not in `fields` must be.
    pub keys: Option<StrShape>,
}

impl TableShape {
    fn field(&self, key: &str) -> Option<&Shape> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, s)| s)
    }
}

impl Shape {
    /// Compile a root schema. Unknown constructs become `Any` (accept), never a panic.
    pub fn compile(root: &Schema) -> Shape {
        let root = root.as_value();
        compile(root, root, 0)
    }

    fn expected(&self) -> String {
        match self {
            Shape::Any => "any value".into(),
            Shape::Bool => "boolean".into(),
            Shape::Int { .. } => "integer".into(),
            Shape::Float => "number".into(),
            Shape::Str(_) => "string".into(),
            Shape::Array(_) => "array".into(),
            Shape::Table(_) => "table".into(),
        }
    }

    /// A placeholder value for "add `key = …`" help.
    fn example(&self) -> String {
        match self {
            Shape::Bool => "true".into(),
            Shape::Int { min, .. } => (*min).max(0).to_string(),
            Shape::Float => "1.0".into(),
            Shape::Str(s) => match &s.values {
                Some(v) if !v.is_empty() => format!("\"{}\"", v[0]),
                _ => "\"…\"".into(),
            },
            Shape::Array(_) => "[…]".into(),
            Shape::Table(_) | Shape::Any => "{ … }".into(),
        }
    }
}

/// JSON values of the schema; TOML values are `Value` in this module.
type Json = serde_json::Value;

fn compile(root: &Json, s: &Json, depth: usize) -> Shape {
    // A boolean schema (`true`) constrains nothing hearth checks.
    if depth > 32 || !s.is_object() {
        return Shape::Any;
    }
    let sub = |s: &Json| compile(root, s, depth + 1);
    if let Some(r) = s.get("$ref").and_then(Json::as_str) {
        let name = r.trim_start_matches("#/definitions/");
        return match root.get("definitions").and_then(|d| d.get(name)) {
            Some(def) => sub(def),
            None => Shape::Any,
        };
    }
    let has_kind = kind_of(s).is_some();
    if let Some(values) = enum_values(s).filter(|_| !has_kind) {
        return Shape::Str(StrShape {
            values: Some(values),
            ..Default::default()
        });
    }
    if let Some(alternatives) = alternatives(s) {
        return match alternatives.as_slice() {
            [one] => sub(one),
            // Real unions don't occur in the model; accept rather than guess.
            _ => Shape::Any,
        };
    }
    match instance_type(s) {
        Some("boolean") => Shape::Bool,
        Some("integer") => {
            let (min, max) = int_range(s).unwrap_or((i64::MIN, i64::MAX));
            Shape::Int { min, max }
        }
        Some("number") => Shape::Float,
        Some("string") => Shape::Str(str_shape(s)),
        Some("array") => {
            let item = match s.get("items") {
                // A list of schemas (a tuple) is not checked item by item.
                Some(item) if !item.is_array() => sub(item),
                _ => Shape::Any,
            };
            Shape::Array(Box::new(item))
        }
        Some("object") => Shape::Table(Box::new(table_shape(s, sub))),
        _ => Shape::Any,
    }
}

/// The non-null alternatives of the first `allOf`/`anyOf`/`oneOf` list (an `Option<T>`
/// is `T` or null), if the schema has one.
fn alternatives(s: &Json) -> Option<Vec<&Json>> {
    let list = ["allOf", "anyOf", "oneOf"]
        .iter()
        .find_map(|k| s.get(*k).and_then(Json::as_array))?;
    let is_null = |a: &&Json| a.get("type").and_then(Json::as_str) == Some("null");
    Some(list.iter().filter(|a| !is_null(a)).collect())
}

/// The one non-null instance type, if there is exactly one.
fn instance_type(s: &Json) -> Option<&str> {
    match s.get("type")? {
        Json::String(t) => Some(t),
        Json::Array(types) => {
            let non_null: Vec<&str> = types
                .iter()
                .filter_map(Json::as_str)
                .filter(|t| *t != "null")
                .collect();
            match non_null.as_slice() {
                [one] => Some(one),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A table: its fields, required keys, the kind of its keys and what extra keys hold.
fn table_shape(s: &Json, sub: impl Fn(&Json) -> Shape) -> TableShape {
    let mut t = TableShape::default();
    if let Some(props) = s.get("properties").and_then(Json::as_object) {
        t.fields = props.iter().map(|(k, v)| (k.clone(), sub(v))).collect();
    }
    if let Some(required) = s.get("required").and_then(Json::as_array) {
        t.required = required
            .iter()
            .filter_map(|k| k.as_str().map(String::from))
            .collect();
    }
    t.keys = match s.get("propertyNames") {
        Some(k @ Json::Object(_)) => Some(str_shape(k)),
        _ => None,
    };
    t.extra = match s.get("additionalProperties") {
        Some(Json::Bool(false)) => None,
        Some(other) => Some(sub(other)),
        None => Some(Shape::Any),
    };
    t
}

fn str_shape(s: &Json) -> StrShape {
    let kind = kind_of(s);
    let pattern = match kind {
        Some(_) => None,
        None => s
            .get("pattern")
            .and_then(Json::as_str)
            .and_then(|p| regex::Regex::new(p).ok()),
    };
    let hint = s
        .get("description")
        .and_then(Json::as_str)
        .map(String::from);
    StrShape {
        values: enum_values(s).filter(|_| kind.is_none()),
        pattern,
        hint,
        kind,
    }
}

/// A TOML node: items and values are two types in toml_edit.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Value(&'a Value),
    Table(&'a toml_edit::Table),
}

impl<'a> Node<'a> {
    fn found(self) -> &'static str {
        match self {
            Node::Item(Item::None) => "nothing",
            Node::Item(Item::Value(v)) | Node::Value(v) => match v {
                Value::String(_) => "string",
                Value::Integer(_) => "integer",
                Value::Float(_) => "float",
                Value::Boolean(_) => "boolean",
                Value::Datetime(_) => "datetime",
                Value::Array(_) => "array",
                Value::InlineTable(_) => "table",
            },
            Node::Item(Item::Table(_)) | Node::Table(_) => "table",
            Node::Item(Item::ArrayOfTables(_)) => "array of tables",
        }
    }

    fn value(self) -> Option<&'a Value> {
        match self {
            Node::Item(Item::Value(v)) | Node::Value(v) => Some(v),
            _ => None,
        }
    }

    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Item(i) => i.span(),
            Node::Value(v) => v.span(),
            Node::Table(t) => t.span(),
        }
    }

    /// Keys of a table node with their key and item; `None` if not a table.
    fn entries(self) -> Option<Vec<(&'a str, &'a Key, &'a Item)>> {
        fn collect<'a>(
            names: impl Iterator<Item = &'a str>,
            kv: impl Fn(&str) -> Option<(&'a Key, &'a Item)>,
        ) -> Vec<(&'a str, &'a Key, &'a Item)> {
            names
                .filter_map(|n| kv(n).map(|(k, i)| (k.get(), k, i)))
                .collect()
        }
        match self {
            Node::Item(Item::Table(t)) | Node::Table(t) => {
                Some(collect(t.iter().map(|(k, _)| k), |n| t.get_key_value(n)))
            }
            Node::Item(Item::Value(Value::InlineTable(t))) | Node::Value(Value::InlineTable(t)) => {
                Some(collect(t.iter().map(|(k, _)| k), |n| t.get_key_value(n)))
            }
            _ => None,
        }
    }
}

/// Where a diagnostic should point when a node has no span of its own.
fn best_span(node: Node, key: Option<&Key>, anchor: &Range<usize>) -> Range<usize> {
    node.span()
        .or_else(|| key.and_then(Key::span))
        .unwrap_or_else(|| anchor.clone())
}

/// Walks one file, appending diagnostics.
pub struct Walker<'a> {
    pub sources: &'a Sources,
    pub file: usize,
    pub out: &'a mut Vec<Diagnostic>,
}

impl Walker<'_> {
    pub fn document(&mut self, shape: &Shape, doc: &toml_edit::ImDocument<String>) {
        let mut path = Vec::new();
        self.node(shape, Node::Table(doc.as_table()), None, &mut path, 0..0);
    }

    fn label(&self, span: Range<usize>, text: impl Into<String>) -> super::diag::Label {
        self.sources.label(self.file, span, text)
    }

    fn node(
        &mut self,
        shape: &Shape,
        node: Node,
        key: Option<&Key>,
        path: &mut Vec<String>,
        anchor: Range<usize>,
    ) {
        // The top level has no header: point at the start of the file.
        let here = if path.is_empty() {
            anchor.clone()
        } else {
            best_span(node, key, &anchor)
        };
        match shape {
            Shape::Any => {}
            Shape::Table(t) => match node.entries() {
                Some(entries) => self.table(t, entries, path, here),
                None => self.wrong_type(shape, node, path, here),
            },
            Shape::Array(item) => match node {
                Node::Item(Item::ArrayOfTables(tables)) => {
                    for (i, t) in tables.iter().enumerate() {
                        path.push(format!("[{i}]"));
                        self.node(item, Node::Table(t), None, path, here.clone());
                        path.pop();
                    }
                }
                _ => match node.value() {
                    Some(Value::Array(a)) => {
                        for (i, v) in a.iter().enumerate() {
                            path.push(format!("[{i}]"));
                            self.node(item, Node::Value(v), None, path, here.clone());
                            path.pop();
                        }
                    }
                    _ => self.wrong_type(shape, node, path, here),
                },
            },
            Shape::Bool => {
                if !matches!(node.value(), Some(Value::Boolean(_))) {
                    self.wrong_type(shape, node, path, here);
                }
            }
            Shape::Float => {
                if !matches!(node.value(), Some(Value::Float(_) | Value::Integer(_))) {
                    self.wrong_type(shape, node, path, here);
                }
            }
            Shape::Int { min, max } => match node.value() {
                Some(Value::Integer(i)) => {
                    let v = *i.value();
                    if v < *min || v > *max {
                        let name = display_path(path);
                        self.out.push(
                            Diagnostic::error(format!("`{name}` is out of range"))
                                .at(self.label(here, format!("must be between {min} and {max}")))
                                .help(format!("use a whole number from {min} to {max}")),
                        );
                    }
                }
                _ => self.wrong_type(shape, node, path, here),
            },
            Shape::Str(s) => match node.value() {
                Some(Value::String(v)) => self.string(s, v.value(), path, here),
                _ => self.wrong_type(shape, node, path, here),
            },
        }
    }

    fn string(&mut self, s: &StrShape, v: &str, path: &[String], here: Range<usize>) {
        let name = || display_path(path);
        if let Some(kind) = s.kind {
            if let Err(why) = kind.check(v) {
                self.out.push(
                    Diagnostic::error(format!(
                        "invalid {} `{}` for `{}`",
                        kind.noun(),
                        shown(v, 60),
                        name()
                    ))
                    .at(self.label(here, why))
                    .help(format!("expected {}", kind.allowed())),
                );
            }
            return;
        }
        if let Some(values) = &s.values {
            if !values.iter().any(|a| a == v) {
                let mut d =
                    Diagnostic::error(format!("invalid value `{}` for `{}`", shown(v, 60), name()))
                        .at(self.label(here.clone(), format!("expected {}", list_code(values))));
                if let Some(close) = did_you_mean(v, values.iter().map(String::as_str)) {
                    d = d.help(format!("did you mean `{close}`?"));
                }
                self.out
                    .push(d.help(format!("allowed values: {}", list_code(values))));
            }
        }
        if let Some(p) = &s.pattern {
            if !p.is_match(v) {
                let mut d =
                    Diagnostic::error(format!("invalid value `{}` for `{}`", shown(v, 60), name()))
                        .at(self.label(here, "not in the expected form"));
                d = match &s.hint {
                    Some(h) => d.help(h.clone()),
                    None => d.help(format!("the value must match `{}`", p.as_str())),
                };
                self.out.push(d);
            }
        }
    }

    fn wrong_type(&mut self, shape: &Shape, node: Node, path: &[String], here: Range<usize>) {
        let name = display_path(path);
        let expected = shape.expected();
        let found = node.found();
        let mut d = Diagnostic::error(format!(
            "wrong type for `{name}`: expected {expected}, found {found}"
        ))
        .at(self.label(here, format!("expected {expected}")));
        d = match shape {
            Shape::Str(StrShape {
                values: Some(values),
                ..
            }) => d.help(format!("use one of {} (in quotes)", list_code(values))),
            Shape::Str(_) if found != "table" && found != "array" => {
                d.help("put the value in double quotes")
            }
            Shape::Table(_) => d.help(format!(
                "write it as a table: `[{name}]` with keys below it"
            )),
            Shape::Array(item) => d.help(format!(
                "write a list: `{} = [{}]`",
                last(path),
                item.example()
            )),
            Shape::Int { .. } | Shape::Float | Shape::Bool
                if node
                    .value()
                    .and_then(Value::as_str)
                    .is_some_and(|v| unquoted_fits(shape, v)) =>
            {
                let v = node.value().and_then(Value::as_str).unwrap_or_default();
                d.help(format!(
                    "remove the quotes: `{} = {}`",
                    last(path),
                    v.trim()
                ))
            }
            Shape::Int { .. } => d.help("write a whole number without quotes"),
            _ => d.help(format!("write `{} = {}`", last(path), shape.example())),
        };
        self.out.push(d);
    }

    fn table(
        &mut self,
        t: &TableShape,
        entries: Vec<(&str, &Key, &Item)>,
        path: &mut Vec<String>,
        here: Range<usize>,
    ) {
        // Keys that unknown keys look like typos of: a missing key suggested there
        // needs no second error.
        let mut suggested = Vec::new();
        for (name, key, item) in &entries {
            let key_span = key.span().unwrap_or_else(|| here.clone());
            let known = t.field(name);
            if let (None, Some(keys)) = (known, &t.keys) {
                if t.extra.is_some() {
                    self.key_name(keys, name, path, key_span.clone());
                }
            }
            match known.or(t.extra.as_ref()) {
                Some(shape) => {
                    path.push(name.to_string());
                    self.node(shape, Node::Item(item), Some(key), path, key_span);
                    path.pop();
                }
                None => suggested.extend(self.unknown_key(t, name, path, key_span)),
            }
        }
        for req in &t.required {
            if entries.iter().any(|(n, _, _)| n == req) || suggested.contains(&req.as_str()) {
                continue;
            }
            let shape = t.field(req).unwrap_or(&Shape::Any);
            let (what, owner) = noun(path);
            let message = match &owner {
                Some(o) => format!("missing required {what} `{req}` in {o}"),
                None => format!("missing required {what} `{req}`"),
            };
            let label = match &owner {
                Some(o) => format!("{o} needs `{req}`"),
                None => format!("this file needs `{req}`"),
            };
            let help = match shape {
                Shape::Table(_) => {
                    let mut full = path.clone();
                    full.push(req.clone());
                    format!("add a `[{}]` table", display_path(&full))
                }
                _ => format!("add `{req} = {}`", shape.example()),
            };
            self.out.push(
                Diagnostic::error(message)
                    .at(self.label(here.clone(), label))
                    .help(help),
            );
        }
    }

    /// Checks the name of a key that names something (a pool, a secret, a share).
    fn key_name(&mut self, keys: &StrShape, name: &str, path: &[String], span: Range<usize>) {
        let Some(kind) = keys.kind else { return };
        if let Err(why) = kind.check(name) {
            self.out.push(
                Diagnostic::error(format!(
                    "invalid {} `{}` in `[{}]`",
                    kind.noun(),
                    shown(name, 60),
                    display_path(path)
                ))
                .at(self.label(span, why))
                .help(format!("expected {}", kind.allowed())),
            );
        }
    }

    /// Reports an unknown key; returns the key it suggests instead, if any.
    fn unknown_key<'t>(
        &mut self,
        t: &'t TableShape,
        name: &str,
        path: &[String],
        span: Range<usize>,
    ) -> Option<&'t str> {
        let (what, owner) = noun(path);
        let message = match &owner {
            Some(o) => format!("unknown {what} `{}` in {o}", shown(name, 60)),
            None => format!("unknown {what} `{}`", shown(name, 60)),
        };
        let known: Vec<&str> = t
            .fields
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| *k != "$schema")
            .collect();
        let mut d = Diagnostic::error(message).at(self.label(span, format!("unknown {what}")));
        // Past what is shown, skip the costly hints: 50,000 unknown keys stay quick.
        if self.out.len() >= super::diag::MAX_SHOWN {
            self.out.push(d);
            return None;
        }
        if let Some(close) = did_you_mean(name, known.iter().copied()) {
            self.out.push(d.help(format!("did you mean `{close}`?")));
            return Some(close);
        }
        d = if known.is_empty() {
            d.help(format!("remove `{name}`: this table takes no keys"))
        } else {
            let plural = match what {
                "service" => "services",
                "setting" => "settings",
                _ => "keys",
            };
            d.help(format!("known {plural}: {}", list_code(&known)))
        };
        self.out.push(d);
        None
    }
}

/// Whether the text of a quoted value would be right without its quotes.
fn unquoted_fits(shape: &Shape, v: &str) -> bool {
    let v = v.trim();
    match shape {
        Shape::Int { min, max } => v.parse::<i64>().is_ok_and(|n| n >= *min && n <= *max),
        Shape::Float => v.parse::<f64>().is_ok(),
        Shape::Bool => v == "true" || v == "false",
        _ => false,
    }
}

/// What a key in the table at `path` is called, and how to name that table.
fn noun(path: &[String]) -> (&'static str, Option<String>) {
    match path {
        [] => ("key", None),
        [s] if s == "services" => ("service", None),
        [s, svc] if s == "services" => ("setting", Some(format!("service `{svc}`"))),
        _ => ("key", Some(format!("`[{}]`", display_path(path)))),
    }
}

fn last(path: &[String]) -> &str {
    path.last().map(String::as_str).unwrap_or("value")
}

/// `disks.pools.tank.disks[1]`.
pub fn display_path(path: &[String]) -> String {
    let mut s = String::new();
    for p in path {
        if !s.is_empty() && !p.starts_with('[') {
            s.push('.');
        }
        if p.starts_with('[') || is_bare_key(p) {
            s.push_str(p);
        } else {
            s.push_str(&format!("\"{}\"", shown(p, 60)));
        }
    }
    s
}

fn is_bare_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
