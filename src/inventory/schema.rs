//! The JSON Schemas of `hosts/<name>.toml` and `hearth.toml`, derived from the model
//! (schemars) plus the service catalog, and the Markdown reference generated from them.
//!
//! The validator (`shape`) is compiled from these same schemas, so the checker, the
//! editor schema and the docs cannot drift from the serde model.

use super::model::values::Kind;
use super::model::{FleetFile, HostFile};
use crate::catalog::{Catalog, SettingDef, SettingKind};
use schemars::generate::SchemaSettings;
use schemars::transform::{RecursiveTransform, ReplaceConstValue};
use schemars::{json_schema, Schema, SchemaGenerator};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

fn generator() -> SchemaGenerator {
    SchemaSettings::draft07()
        .with(|s| {
            // Before draft 7's own transforms: `RemoveRefSiblings` must see a field's
            // `$ref` once its null alternative is gone.
            s.transforms
                .insert(0, Box::new(RecursiveTransform(no_null)));
            s.transforms
                .push(Box::new(RecursiveTransform(committed_form)));
            // A documented unit variant is `"const": "x"` in schemars 1; the schema has
            // always said `"enum": ["x"]`, which editors and `enum_values` read alike.
            s.transforms.push(Box::new(ReplaceConstValue::default()));
        })
        .into_generator()
}

/// TOML has no null: an unset optional key is simply absent. schemars 1 writes an
/// `Option<T>` field as "T or null"; take the null back out, leaving T.
fn no_null(schema: &mut Schema) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(types)) = obj.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            obj.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(values)) = obj.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    let Some(Value::Array(alternatives)) = obj.get_mut("anyOf") else {
        return;
    };
    alternatives.retain(|a| a.get("type").and_then(Value::as_str) != Some("null"));
    if let [Value::Object(only)] = alternatives.as_slice() {
        // "T or null" minus null is T itself: its keys join the field's own (description,
        // default), as an optional field without the null wrapper.
        let only = only.clone();
        obj.remove("anyOf");
        for (k, v) in only {
            obj.entry(k).or_insert(v);
        }
    }
}

/// What the committed schemas have always said, where schemars 1 writes it otherwise.
fn committed_form(schema: &mut Schema) {
    sorted_data(schema);
    paragraphs(schema);
    float_bounds(schema);
}

/// A doc comment's line breaks are source formatting: a description is paragraphs, each
/// on one line (editors show `description` as plain text).
fn paragraphs(schema: &mut Schema) {
    if let Some(Value::String(d)) = schema.get_mut("description") {
        *d = d
            .split("\n\n")
            .map(|p| p.lines().map(str::trim).collect::<Vec<_>>().join(" "))
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n");
    }
}

/// Integer bounds as floats (`1.0`), as they have always been written; the same number.
fn float_bounds(schema: &mut Schema) {
    for key in ["minimum", "maximum"] {
        if let Some(bound) = schema.get_mut(key) {
            if let Some(f) = bound.as_f64() {
                *bound = f.into();
            }
        }
    }
}

/// Sorted as with schemars 0.8 (see docs/ARCHITECTURE.md): `required` was a set, so the
/// validator reports missing keys in name order; a default is data, whose keys serde_json
/// sorted before `preserve_order`. The schema and the key reference keep that order.
fn sorted_data(schema: &mut Schema) {
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        required.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    }
    if let Some(default) = schema.get_mut("default") {
        default.sort_all_objects();
    }
}

/// Schema of `hearth.toml`.
pub fn fleet_schema() -> Schema {
    let mut root = generator().into_root_schema_for::<FleetFile>();
    annotate_root(&mut root);
    root
}

/// Appends what each kind of string accepts to the description of the field holding it,
/// so editors' hover text and docs/HOST_FILE.md say it.
fn annotate_root(root: &mut Schema) {
    let obj = root.ensure_object();
    annotate(obj);
    if let Some(Value::Object(defs)) = obj.get_mut("definitions") {
        for def in defs.values_mut() {
            if let Value::Object(o) = def {
                annotate(o);
            }
        }
    }
}

/// The kind of string a schema describes, from its `format`.
pub fn kind_of(s: &Value) -> Option<Kind> {
    s.get("format")?.as_str().and_then(Kind::from_format)
}

fn annotate(s: &mut Map<String, Value>) {
    let own = s
        .get("format")
        .and_then(Value::as_str)
        .and_then(Kind::from_format);
    let item = s.get("items").and_then(kind_of);
    let names = s.get("propertyNames").and_then(kind_of);
    let extra = match (own, item, names) {
        (Some(k), _, _) => Some(format!("Accepted: {}.", k.allowed())),
        (_, Some(k), _) => Some(format!("Each: {}.", k.allowed())),
        (_, _, Some(k)) => Some(format!("Names: {}.", k.allowed())),
        _ => None,
    };
    if let Some(extra) = extra {
        let description = match s.get("description").and_then(Value::as_str) {
            Some(d) if d.contains(&extra) => d.to_string(),
            Some(d) if d.starts_with("Accepted: ") => extra,
            Some(d) => format!("{d} {extra}"),
            None => extra,
        };
        s.insert("description".into(), description.into());
    }
    if let Some(Value::Object(props)) = s.get_mut("properties") {
        for p in props.values_mut() {
            if let Value::Object(p) = p {
                annotate(p);
            }
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(list)) = s.get_mut(key) {
            for p in list.iter_mut() {
                if let Value::Object(p) = p {
                    annotate(p);
                }
            }
        }
    }
}

/// Metadata keywords of a schema, carried over when hearth replaces one.
const METADATA: &[&str] = &[
    "$id",
    "title",
    "description",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "examples",
];

/// Schema of a host file; `[services.<name>]` is spelled out from the catalog. With an
/// empty catalog any service name and setting is accepted.
pub fn host_schema(catalog: &Catalog) -> Schema {
    let mut root = generator().into_root_schema_for::<HostFile>();
    annotate_root(&mut root);
    if catalog.services.is_empty() {
        return root;
    }
    let mut services = json_schema!({ "type": "object" });
    if let Some(old) = root.pointer("/properties/services") {
        for key in METADATA {
            if let Some(v) = old.get(key) {
                services.insert(key.to_string(), v.clone());
            }
        }
    }
    let props: Map<String, Value> = catalog
        .services
        .iter()
        .map(|(name, def)| (name.clone(), service_schema(def).to_value()))
        .collect();
    services.insert("properties".into(), props.into());
    services.insert("additionalProperties".into(), false.into());
    let root_props = root
        .ensure_object()
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(root_props) = root_props {
        root_props.insert("services".into(), services.to_value());
    }
    root
}

fn service_schema(def: &crate::catalog::ServiceDef) -> Schema {
    let mut s = json_schema!({ "type": "object" });
    if !def.description.is_empty() {
        s.insert("description".into(), def.description.clone().into());
    }
    fill_fields(&mut s, &def.settings);
    s
}

/// Declared keys of a table: properties, required ones, nothing else.
fn fill_fields(s: &mut Schema, fields: &BTreeMap<String, SettingDef>) {
    let props: Map<String, Value> = fields
        .iter()
        .map(|(key, setting)| (key.clone(), setting_schema(setting).to_value()))
        .collect();
    let required: Vec<Value> = fields
        .iter()
        .filter(|(_, setting)| setting.required)
        .map(|(key, _)| key.clone().into())
        .collect();
    // Empty lists and maps are left out, as in every other schema object.
    if !required.is_empty() {
        s.insert("required".into(), required.into());
    }
    if !props.is_empty() {
        s.insert("properties".into(), props.into());
    }
    s.insert("additionalProperties".into(), false.into());
}

fn setting_schema(def: &SettingDef) -> Schema {
    let mut p = setting_type(def);
    let doc = Some(def.doc.clone()).filter(|d| !d.is_empty());
    let own = p
        .remove("description")
        .and_then(|d| d.as_str().map(String::from));
    // A kind's own description says what it accepts; keep it after the setting's doc.
    let description = match (doc, own) {
        (Some(d), Some(k)) => Some(format!("{d} {k}")),
        (d, k) => d.or(k),
    };
    if let Some(d) = description {
        p.insert("description".into(), d.into());
    }
    if let Some(mut default) = def
        .default
        .as_ref()
        .and_then(|v| serde_json::to_value(v).ok())
    {
        // Keys sorted, as the model's defaults are (`sorted_data`).
        default.sort_all_objects();
        p.insert("default".into(), default);
    }
    p
}

fn setting_type(def: &SettingDef) -> Schema {
    let int = |(lo, hi): (i64, i64), format: Option<&str>| {
        let mut s = json_schema!({ "type": "integer" });
        if let Some(f) = format {
            s.insert("format".into(), f.into());
        }
        // Written as floats, as the bounds of the model's own integers are.
        if hi < i64::MAX {
            s.insert("maximum".into(), (hi as f64).into());
        }
        if lo > i64::MIN {
            s.insert("minimum".into(), (lo as f64).into());
        }
        s
    };
    let list_of = |item: Schema| json_schema!({ "type": "array", "items": item });
    match def.kind {
        SettingKind::Integer => int(def.int_range(), None),
        SettingKind::Boolean => json_schema!({ "type": "boolean" }),
        SettingKind::Port => int((1, 65535), Some("port")),
        SettingKind::Enum => json_schema!({ "type": "string", "enum": def.values }),
        SettingKind::StringList => list_of(Kind::Line.schema()),
        SettingKind::PortList => list_of(int((1, 65535), Some("port"))),
        SettingKind::List => match &def.item {
            Some(item) => list_of(setting_schema(item)),
            None => json_schema!({ "type": "array" }),
        },
        SettingKind::Table => {
            let mut s = json_schema!({ "type": "object" });
            match &def.entries {
                Some(entry) => {
                    s.insert(
                        "additionalProperties".into(),
                        setting_schema(entry).to_value(),
                    );
                    s.insert("propertyNames".into(), def.key_kind().schema().to_value());
                }
                None => fill_fields(&mut s, &def.fields),
            }
            s
        }
        _ if def.secret => Kind::SecretRef.schema(),
        kind => kind.string_kind().unwrap_or(Kind::Line).schema(),
    }
}

/// Pretty JSON with a trailing newline, as `hearth schema` prints it.
pub fn to_json(schema: &Schema) -> String {
    let mut s = serde_json::to_string_pretty(&ordered(schema.as_value())).expect("JSON");
    s.push('\n');
    s
}

/// Keywords in the order the committed schemas have always had (schemars 0.8's), so that
/// they don't reshuffle with the order schemars happens to insert keywords in. Unknown
/// keywords go after `$ref`, definitions last.
const KEYWORD_ORDER: &[&str] = &[
    "$schema",
    "$id",
    "title",
    "description",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "examples",
    "type",
    "format",
    "enum",
    "const",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "items",
    "additionalItems",
    "maxItems",
    "minItems",
    "uniqueItems",
    "contains",
    "maxProperties",
    "minProperties",
    "required",
    "properties",
    "patternProperties",
    "additionalProperties",
    "propertyNames",
    "$ref",
];

fn keyword_rank(key: &str) -> usize {
    match key {
        "definitions" => KEYWORD_ORDER.len() + 1,
        _ => KEYWORD_ORDER
            .iter()
            .position(|k| *k == key)
            .unwrap_or(KEYWORD_ORDER.len()),
    }
}

/// A schema with its keywords in [`KEYWORD_ORDER`]; the names under `properties` and
/// `definitions` keep their (declaration) order, values that are data stay as they are.
fn ordered(schema: &Value) -> Value {
    let Value::Object(obj) = schema else {
        return schema.clone();
    };
    let mut keys: Vec<&String> = obj.keys().collect();
    keys.sort_by_key(|k| keyword_rank(k));
    let subschemas = |v: &Value| match v {
        Value::Array(list) => Value::Array(list.iter().map(ordered).collect()),
        other => ordered(other),
    };
    let named = |v: &Value| match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), ordered(v))).collect()),
        other => other.clone(),
    };
    keys.into_iter()
        .map(|k| {
            let v = &obj[k.as_str()];
            let v = match k.as_str() {
                "properties" | "patternProperties" | "definitions" => named(v),
                "allOf"
                | "anyOf"
                | "oneOf"
                | "items"
                | "not"
                | "if"
                | "then"
                | "else"
                | "additionalItems"
                | "contains"
                | "additionalProperties"
                | "propertyNames" => subschemas(v),
                _ => v.clone(),
            };
            (k.clone(), v)
        })
        .collect::<Map<_, _>>()
        .into()
}

// ---------------------------------------------------------------------------
// Markdown reference

pub const MARKDOWN_BEGIN: &str = "<!-- BEGIN GENERATED REFERENCE: `hearth schema --markdown` -->";
pub const MARKDOWN_END: &str = "<!-- END GENERATED REFERENCE -->";

/// The key reference for both files, one table per TOML table, between markers.
pub fn markdown(host: &Schema, fleet: &Schema) -> String {
    let mut out = String::new();
    out.push_str(MARKDOWN_BEGIN);
    out.push_str("\n\n");
    out.push_str("## `hearth.toml`\n\n");
    let fleet = fleet.as_value();
    Markdown {
        root: fleet,
        out: &mut out,
    }
    .table("", fleet, 3);
    out.push_str("## `hosts/<name>.toml`\n\n");
    let host = host.as_value();
    Markdown {
        root: host,
        out: &mut out,
    }
    .table("", host, 3);
    out.push_str(MARKDOWN_END);
    out.push('\n');
    out
}

struct Markdown<'a> {
    root: &'a Value,
    out: &'a mut String,
}

fn description(s: &Value) -> Option<&str> {
    s.get("description").and_then(Value::as_str)
}

/// Whether a schema describes a table's keys (0.8's "object validation").
fn is_table(s: &Value) -> bool {
    [
        "required",
        "properties",
        "patternProperties",
        "additionalProperties",
        "propertyNames",
        "maxProperties",
        "minProperties",
    ]
    .iter()
    .any(|k| s.get(k).is_some())
}

/// The named keys of a table schema, in declaration order.
fn properties(s: &Value) -> Option<&Map<String, Value>> {
    s.get("properties")?.as_object()
}

fn has_properties(s: &Value) -> bool {
    properties(s).is_some_and(|p| !p.is_empty())
}

impl<'a> Markdown<'a> {
    fn resolve(&self, s: &'a Value) -> &'a Value {
        resolve(self.root, s)
    }

    fn description(&self, field: &'a Value) -> String {
        let own = description(field);
        let target = self.resolve(field);
        let theirs = description(target);
        // A table's own description heads its section; a value type's belongs here.
        let desc = match (own, theirs) {
            (Some(o), Some(t)) if !is_table(target) && o != t => format!("{o} {t}"),
            (own, theirs) => own.or(theirs).unwrap_or_default().to_string(),
        };
        let mut d = desc.replace('\n', " ").replace('|', "\\|");
        if let Some(values) = enum_docs(target) {
            if !values.is_empty() {
                if !d.is_empty() {
                    d.push(' ');
                }
                d.push_str(&values);
            }
        }
        d
    }

    fn type_name(&self, s: &'a Value) -> String {
        let t = self.resolve(s);
        if let Some(k) = kind_of(t) {
            return format!("string ({})", k.noun());
        }
        if let Some(values) = enum_values(t) {
            return values
                .iter()
                .map(|v| format!("`\"{v}\"`"))
                .collect::<Vec<_>>()
                .join(" \\| ");
        }
        let ty = match t.get("type") {
            Some(Value::String(ty)) => ty.as_str(),
            Some(Value::Array(v)) => v.first().and_then(Value::as_str).unwrap_or("object"),
            _ => return "any".into(),
        };
        match ty {
            "string" | "boolean" | "number" | "null" => ty.into(),
            "integer" => match int_range(t) {
                Some((lo, hi)) if hi >= u32::MAX as i64 => format!("integer ≥ {lo}"),
                Some((lo, hi)) => format!("integer ({lo}–{hi})"),
                None => "integer".into(),
            },
            "array" => match t.get("items") {
                Some(item @ Value::Object(_)) => format!("array of {}", self.type_name(item)),
                _ => "array".into(),
            },
            "object" => "table".into(),
            _ => "any".into(),
        }
    }

    /// One Markdown table for the object `s` at TOML path `path`, then its sub-tables.
    fn table(&mut self, path: &str, s: &'a Value, depth: usize) {
        let s = self.resolve(s);
        if !is_table(s) {
            return;
        }
        let heading = if path.is_empty() {
            "top level".to_string()
        } else {
            format!("`[{path}]`")
        };
        let _ = writeln!(self.out, "{} {heading}\n", "#".repeat(depth));
        if let Some(d) = description(s).filter(|_| !path.is_empty()) {
            let _ = writeln!(self.out, "{}\n", d.replace('\n', " "));
        }
        let mut subtables = self.rows(path, s);
        if let Some(extra @ Value::Object(_)) = s.get("additionalProperties") {
            let child = if path.is_empty() {
                "<name>".to_string()
            } else {
                format!("{path}.<name>")
            };
            let t = self.resolve(extra);
            if has_properties(t) {
                subtables.push((child, t));
            } else if !has_properties(s) {
                let _ = writeln!(
                    self.out,
                    "Any key; each value is {}.",
                    article(&self.type_name(extra))
                );
            }
        }
        self.out.push('\n');
        for (child, sub) in subtables {
            self.table(&child, sub, depth);
        }
    }

    /// The rows of the named keys of `s`; returns the sub-tables to describe after it.
    fn rows(&mut self, path: &str, s: &'a Value) -> Vec<(String, &'a Value)> {
        let mut subtables = Vec::new();
        let required = |key: &str| {
            s.get("required")
                .and_then(Value::as_array)
                .is_some_and(|r| r.iter().any(|k| k == key))
        };
        let rows: Vec<_> = properties(s)
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != "$schema")
            .collect();
        if !rows.is_empty() {
            self.out
                .push_str("| key | type | default | description |\n|---|---|---|---|\n");
        }
        for (key, field) in rows.into_iter().filter(|(_, f)| f.is_object()) {
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            let default = if required(key) {
                "*required*".to_string()
            } else {
                field
                    .get("default")
                    .map(render_default)
                    .unwrap_or_else(|| "—".into())
            };
            let (ty, sub) = self.field_kind(&child, self.resolve(field), field);
            let _ = writeln!(
                self.out,
                "| `{key}` | {ty} | {default} | {} |",
                self.description(field)
            );
            subtables.extend(sub);
        }
        subtables
    }

    /// The type column, and the sub-table to describe after this one.
    fn field_kind(
        &self,
        child: &str,
        target: &'a Value,
        field: &'a Value,
    ) -> (String, Option<(String, &'a Value)>) {
        if !is_table(target) {
            return (self.type_name(field), None);
        }
        if has_properties(target) {
            return (
                format!("table, see `[{child}]`"),
                Some((child.to_string(), target)),
            );
        }
        match target.get("additionalProperties") {
            Some(v @ Value::Object(_)) => {
                let v = self.resolve(v);
                if has_properties(v) {
                    let sub = format!("{child}.<name>");
                    (format!("table of tables, see `[{sub}]`"), Some((sub, v)))
                } else {
                    (format!("table of {}", self.type_name(v)), None)
                }
            }
            _ => ("table".into(), None),
        }
    }
}

/// Follow `$ref` and single-element `allOf`/`anyOf` wrappers.
fn resolve<'s>(root: &'s Value, s: &'s Value) -> &'s Value {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/definitions/");
        if let Some(def @ Value::Object(_)) = root.get("definitions").and_then(|d| d.get(name)) {
            return resolve(root, def);
        }
    }
    for key in ["allOf", "anyOf"] {
        if let Some(Value::Array(list)) = s.get(key) {
            if let [one @ Value::Object(_)] = list.as_slice() {
                return resolve(root, one);
            }
        }
    }
    s
}

fn article(s: &str) -> String {
    let vowel = s.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {s}", if vowel { "an" } else { "a" })
}

fn render_default(v: &Value) -> String {
    let text = match toml::Value::try_from(v) {
        Ok(t) => match &t {
            toml::Value::Table(tab) if tab.is_empty() => "{}".to_string(),
            toml::Value::Table(tab) => {
                let inner: Vec<String> = tab.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", inner.join(", "))
            }
            other => other.to_string(),
        },
        Err(_) => v.to_string(),
    };
    format!("`{}`", text.replace('|', "\\|"))
}

/// Enum values of a string schema, merging `oneOf` variants that carry docs.
pub fn enum_values(s: &Value) -> Option<Vec<String>> {
    if let Some(Value::Array(values)) = s.get("enum") {
        return Some(
            values
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
        );
    }
    let variants = s.get("oneOf")?.as_array()?;
    let mut out = Vec::new();
    for v in variants {
        out.extend(enum_values(v)?);
    }
    Some(out)
}

/// "`a`: doc; `b`: doc" for enums whose variants are documented.
fn enum_docs(s: &Value) -> Option<String> {
    let variants = s.get("oneOf")?.as_array()?;
    let mut parts = Vec::new();
    for v in variants.iter().filter(|v| v.is_object()) {
        for value in enum_values(v).unwrap_or_default() {
            match description(v) {
                Some(d) => parts.push(format!(
                    "`{value}`: {}",
                    d.replace('\n', " ").trim_end_matches('.')
                )),
                None => parts.push(format!("`{value}`")),
            }
        }
    }
    let mut text = parts.join("; ");
    if !text.is_empty() {
        text.push('.');
    }
    Some(text.replace('|', "\\|"))
}

/// Inclusive integer bounds from `minimum`/`maximum` or the `uintN` format.
pub fn int_range(s: &Value) -> Option<(i64, i64)> {
    let by_format = match s.get("format").and_then(Value::as_str) {
        Some("uint8") => Some((0, u8::MAX as i64)),
        Some("uint16") => Some((0, u16::MAX as i64)),
        Some("uint32") => Some((0, u32::MAX as i64)),
        Some("uint64") | Some("uint") => Some((0, i64::MAX)),
        Some("int8") => Some((i8::MIN as i64, i8::MAX as i64)),
        Some("int16") => Some((i16::MIN as i64, i16::MAX as i64)),
        Some("int32") => Some((i32::MIN as i64, i32::MAX as i64)),
        _ => None,
    };
    // `as` saturates: a bound past i64 (schemars writes u64::MAX for none) means none.
    let bound = |k: &str| s.get(k).and_then(Value::as_f64).map(|v| v as i64);
    match (by_format, bound("minimum"), bound("maximum")) {
        (None, None, None) => None,
        (f, lo, hi) => {
            let (flo, fhi) = f.unwrap_or((i64::MIN, i64::MAX));
            Some((lo.unwrap_or(flo).max(flo), hi.unwrap_or(fhi).min(fhi)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Value {
        host_schema(&Catalog::default()).to_value()
    }

    #[test]
    fn optional_keys_never_admit_null() {
        for schema in [host(), fleet_schema().to_value()] {
            let text = schema.to_string();
            assert!(!text.contains("\"null\""), "TOML has no null: {text}");
        }
    }

    #[test]
    fn keys_keep_their_declaration_order() {
        let host = host();
        let keys: Vec<&str> = host["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .take(4)
            .collect();
        assert_eq!(keys, ["$schema", "system", "hardware", "boot_loader"]);
        // An optional field of a named type is that type with a description beside it.
        assert_eq!(
            host["properties"]["boot_loader"]["allOf"],
            serde_json::json!([{ "$ref": "#/definitions/BootLoader" }])
        );
    }

    #[test]
    fn json_lists_keywords_in_a_fixed_order() {
        let schema = json_schema!({
            "properties": { "b": { "type": "string", "description": "x" }, "a": {} },
            "type": "object",
            "$schema": "s",
        });
        let text = to_json(&schema);
        let at = |k: &str| text.find(k).unwrap();
        assert!(at("$schema") < at("\"type\": \"object\"") && at("\"object\"") < at("properties"));
        assert!(at("\"b\"") < at("\"a\""), "names keep their order");
        assert!(at("\"description\"") < at("\"string\""));
    }

    #[test]
    fn documented_unit_variants_read_as_enum_values() {
        let roles = &host()["definitions"]["Role"];
        assert_eq!(
            enum_values(roles).unwrap(),
            ["builder", "monitoring", "backup-target"]
        );
        assert!(enum_docs(roles).unwrap().starts_with("`builder`: Builds"));
    }
}
