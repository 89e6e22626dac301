//! The JSON Schemas of `hosts/<name>.toml` and `hearth.toml`, derived from the model
//! (schemars) plus the service catalog, and the Markdown reference generated from them.
//!
//! The validator (`shape`) is compiled from these same schemas, so the checker, the
//! editor schema and the docs cannot drift from the serde model.

use super::model::values::Kind;
use super::model::{FleetFile, HostFile};
use crate::catalog::{Catalog, SettingDef, SettingKind};
use schemars::gen::SchemaSettings;
use schemars::schema::{
    ArrayValidation, InstanceType, Metadata, NumberValidation, RootSchema, Schema, SchemaObject,
    SingleOrVec,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

fn generator() -> schemars::gen::SchemaGenerator {
    // TOML has no null: an unset optional key is simply absent.
    SchemaSettings::draft07()
        .with(|s| s.option_add_null_type = false)
        .into_generator()
}

/// Schema of `hearth.toml`.
pub fn fleet_schema() -> RootSchema {
    let mut root = generator().into_root_schema_for::<FleetFile>();
    annotate_root(&mut root);
    root
}

/// Appends what each kind of string accepts to the description of the field holding it,
/// so editors' hover text and docs/HOST_FILE.md say it.
fn annotate_root(root: &mut RootSchema) {
    annotate(&mut root.schema);
    for def in root.definitions.values_mut() {
        if let Schema::Object(o) = def {
            annotate(o);
        }
    }
}

fn kind_of(s: &Schema) -> Option<Kind> {
    match s {
        Schema::Object(o) => o.format.as_deref().and_then(Kind::from_format),
        Schema::Bool(_) => None,
    }
}

fn annotate(s: &mut SchemaObject) {
    let own = s.format.as_deref().and_then(Kind::from_format);
    let item = match s.array.as_ref().and_then(|a| a.items.as_ref()) {
        Some(SingleOrVec::Single(i)) => kind_of(i),
        _ => None,
    };
    let names = s
        .object
        .as_ref()
        .and_then(|o| o.property_names.as_deref())
        .and_then(kind_of);
    let extra = match (own, item, names) {
        (Some(k), _, _) => Some(format!("Accepted: {}.", k.allowed())),
        (_, Some(k), _) => Some(format!("Each: {}.", k.allowed())),
        (_, _, Some(k)) => Some(format!("Names: {}.", k.allowed())),
        _ => None,
    };
    if let Some(extra) = extra {
        let meta = s.metadata();
        meta.description = match meta.description.take() {
            Some(d) if d.contains(&extra) => Some(d),
            Some(d) if d.starts_with("Accepted: ") => Some(extra),
            Some(d) => Some(format!("{d} {extra}")),
            None => Some(extra),
        };
    }
    if let Some(o) = s.object.as_mut() {
        for p in o.properties.values_mut() {
            if let Schema::Object(p) = p {
                annotate(p);
            }
        }
    }
    if let Some(sub) = s.subschemas.as_mut() {
        for list in [&mut sub.all_of, &mut sub.any_of, &mut sub.one_of]
            .into_iter()
            .flatten()
        {
            for p in list.iter_mut() {
                if let Schema::Object(p) = p {
                    annotate(p);
                }
            }
        }
    }
}

/// Schema of a host file; `[services.<name>]` is spelled out from the catalog. With an
/// empty catalog any service name and setting is accepted.
pub fn host_schema(catalog: &Catalog) -> RootSchema {
    let mut root = generator().into_root_schema_for::<HostFile>();
    annotate_root(&mut root);
    if catalog.services.is_empty() {
        return root;
    }
    let services = root
        .schema
        .object()
        .properties
        .entry("services".to_string())
        .or_insert_with(|| Schema::Object(SchemaObject::default()));
    let mut obj = SchemaObject {
        instance_type: Some(InstanceType::Object.into()),
        ..Default::default()
    };
    if let Schema::Object(old) = services {
        obj.metadata = old.metadata.clone();
    }
    let props = &mut obj.object().properties;
    for (name, def) in &catalog.services {
        props.insert(name.clone(), Schema::Object(service_schema(def)));
    }
    obj.object().additional_properties = Some(Box::new(Schema::Bool(false)));
    *services = Schema::Object(obj);
    root
}

fn service_schema(def: &crate::catalog::ServiceDef) -> SchemaObject {
    let mut s = SchemaObject {
        instance_type: Some(InstanceType::Object.into()),
        metadata: Some(Box::new(Metadata {
            description: Some(def.description.clone()).filter(|d| !d.is_empty()),
            ..Default::default()
        })),
        ..Default::default()
    };
    fill_fields(&mut s, &def.settings);
    s
}

/// Declared keys of a table: properties, required ones, nothing else.
fn fill_fields(s: &mut SchemaObject, fields: &BTreeMap<String, SettingDef>) {
    let o = s.object();
    for (key, setting) in fields {
        o.properties
            .insert(key.clone(), Schema::Object(setting_schema(setting)));
        if setting.required {
            o.required.insert(key.clone());
        }
    }
    o.additional_properties = Some(Box::new(Schema::Bool(false)));
}

fn setting_schema(def: &SettingDef) -> SchemaObject {
    let mut p = setting_type(def);
    let meta = p.metadata();
    let doc = Some(def.doc.clone()).filter(|d| !d.is_empty());
    // A kind's own description says what it accepts; keep it after the setting's doc.
    meta.description = match (doc, meta.description.take()) {
        (Some(d), Some(k)) => Some(format!("{d} {k}")),
        (d, k) => d.or(k),
    };
    meta.default = def
        .default
        .as_ref()
        .and_then(|v| serde_json::to_value(v).ok());
    p
}

fn setting_type(def: &SettingDef) -> SchemaObject {
    let typed = |t: InstanceType| SchemaObject {
        instance_type: Some(t.into()),
        ..Default::default()
    };
    let int = |(lo, hi): (i64, i64), format: Option<&str>| SchemaObject {
        instance_type: Some(InstanceType::Integer.into()),
        format: format.map(String::from),
        number: Some(Box::new(NumberValidation {
            minimum: Some(lo as f64).filter(|_| lo > i64::MIN),
            maximum: Some(hi as f64).filter(|_| hi < i64::MAX),
            ..Default::default()
        })),
        ..Default::default()
    };
    let list_of = |item: SchemaObject| SchemaObject {
        instance_type: Some(InstanceType::Array.into()),
        array: Some(Box::new(ArrayValidation {
            items: Some(SingleOrVec::Single(Box::new(Schema::Object(item)))),
            ..Default::default()
        })),
        ..Default::default()
    };
    match def.kind {
        SettingKind::Integer => int(def.int_range(), None),
        SettingKind::Boolean => typed(InstanceType::Boolean),
        SettingKind::Port => int((1, 65535), Some("port")),
        SettingKind::Enum => SchemaObject {
            instance_type: Some(InstanceType::String.into()),
            enum_values: Some(
                def.values
                    .iter()
                    .map(|v| Value::String(v.clone()))
                    .collect(),
            ),
            ..Default::default()
        },
        SettingKind::StringList => list_of(Kind::Line.schema()),
        SettingKind::PortList => list_of(int((1, 65535), Some("port"))),
        SettingKind::List => match &def.item {
            Some(item) => list_of(setting_schema(item)),
            None => typed(InstanceType::Array),
        },
        SettingKind::Table => {
            let mut s = typed(InstanceType::Object);
            match &def.entries {
                Some(entry) => {
                    let o = s.object();
                    o.additional_properties = Some(Box::new(Schema::Object(setting_schema(entry))));
                    o.property_names = Some(Box::new(Schema::Object(def.key_kind().schema())));
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
pub fn to_json(schema: &RootSchema) -> String {
    let mut s = serde_json::to_string_pretty(schema).expect("a schema serializes");
    s.push('\n');
    s
}

// ---------------------------------------------------------------------------
// Markdown reference

pub const MARKDOWN_BEGIN: &str = "<!-- BEGIN GENERATED REFERENCE: `hearth schema --markdown` -->";
pub const MARKDOWN_END: &str = "<!-- END GENERATED REFERENCE -->";

/// The key reference for both files, one table per TOML table, between markers.
pub fn markdown(host: &RootSchema, fleet: &RootSchema) -> String {
    let mut out = String::new();
    out.push_str(MARKDOWN_BEGIN);
    out.push_str("\n\n");
    out.push_str("## `hearth.toml`\n\n");
    Markdown {
        root: fleet,
        out: &mut out,
    }
    .table("", &fleet.schema, 3);
    out.push_str("## `hosts/<name>.toml`\n\n");
    Markdown {
        root: host,
        out: &mut out,
    }
    .table("", &host.schema, 3);
    out.push_str(MARKDOWN_END);
    out.push('\n');
    out
}

struct Markdown<'a> {
    root: &'a RootSchema,
    out: &'a mut String,
}

impl<'a> Markdown<'a> {
    fn resolve<'s>(&self, s: &'s SchemaObject) -> &'s SchemaObject
    where
        'a: 's,
    {
        resolve(self.root, s)
    }

    fn description(&self, field: &SchemaObject) -> String {
        let own = field.metadata.as_ref().and_then(|m| m.description.clone());
        let target = self.resolve(field);
        let theirs = target.metadata.as_ref().and_then(|m| m.description.clone());
        // A table's own description heads its section; a value type's belongs here.
        let desc = match (own, theirs) {
            (Some(o), Some(t)) if target.object.is_none() && o != t => format!("{o} {t}"),
            (own, theirs) => own.or(theirs).unwrap_or_default(),
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

    fn type_name(&self, s: &SchemaObject) -> String {
        let t = self.resolve(s);
        if let Some(k) = t.format.as_deref().and_then(Kind::from_format) {
            return format!("string ({})", k.noun());
        }
        if let Some(values) = enum_values(t) {
            return values
                .iter()
                .map(|v| format!("`\"{v}\"`"))
                .collect::<Vec<_>>()
                .join(" \\| ");
        }
        let ty = match &t.instance_type {
            Some(SingleOrVec::Single(t)) => **t,
            Some(SingleOrVec::Vec(v)) => v.first().copied().unwrap_or(InstanceType::Object),
            None => return "any".into(),
        };
        match ty {
            InstanceType::String => match t.format.as_deref().and_then(Kind::from_format) {
                Some(k) => format!("string ({})", k.noun()),
                None => "string".into(),
            },
            InstanceType::Boolean => "boolean".into(),
            InstanceType::Number => "number".into(),
            InstanceType::Integer => match int_range(t) {
                Some((lo, hi)) if hi >= u32::MAX as i64 => format!("integer ≥ {lo}"),
                Some((lo, hi)) => format!("integer ({lo}–{hi})"),
                None => "integer".into(),
            },
            InstanceType::Array => match t.array.as_ref().and_then(|a| a.items.as_ref()) {
                Some(SingleOrVec::Single(item)) => match &**item {
                    Schema::Object(o) => format!("array of {}", self.type_name(o)),
                    Schema::Bool(_) => "array".into(),
                },
                _ => "array".into(),
            },
            InstanceType::Object => "table".into(),
            InstanceType::Null => "null".into(),
        }
    }

    /// One Markdown table for the object `s` at TOML path `path`, then its sub-tables.
    fn table(&mut self, path: &str, s: &SchemaObject, depth: usize) {
        let s = resolve(self.root, s);
        let Some(obj) = &s.object else { return };
        let heading = if path.is_empty() {
            "top level".to_string()
        } else {
            format!("`[{path}]`")
        };
        let _ = writeln!(self.out, "{} {heading}\n", "#".repeat(depth));
        if let Some(d) = s.metadata.as_ref().and_then(|m| m.description.as_ref()) {
            if !path.is_empty() {
                let _ = writeln!(self.out, "{}\n", d.replace('\n', " "));
            }
        }
        let mut subtables = Vec::new();
        let rows: Vec<_> = obj
            .properties
            .iter()
            .filter(|(k, _)| k.as_str() != "$schema")
            .collect();
        if !rows.is_empty() {
            self.out
                .push_str("| key | type | default | description |\n|---|---|---|---|\n");
        }
        for (key, field) in rows {
            let Schema::Object(field) = field else {
                continue;
            };
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            let target = self.resolve(field);
            let default = if obj.required.contains(key) {
                "*required*".to_string()
            } else {
                field
                    .metadata
                    .as_ref()
                    .and_then(|m| m.default.as_ref())
                    .map(render_default)
                    .unwrap_or_else(|| "—".into())
            };
            let (ty, sub) = self.field_kind(&child, target, field);
            let _ = writeln!(
                self.out,
                "| `{key}` | {ty} | {default} | {} |",
                self.description(field)
            );
            if let Some(sub) = sub {
                subtables.push(sub);
            }
        }
        if let Some(extra) = &obj.additional_properties {
            if let Schema::Object(extra) = &**extra {
                let child = if path.is_empty() {
                    "<name>".to_string()
                } else {
                    format!("{path}.<name>")
                };
                let t = self.resolve(extra);
                if t.object.as_ref().is_some_and(|o| !o.properties.is_empty()) {
                    subtables.push((child, t.clone()));
                } else if obj.properties.is_empty() {
                    let _ = writeln!(
                        self.out,
                        "Any key; each value is {}.",
                        article(&self.type_name(extra))
                    );
                }
            }
        }
        self.out.push('\n');
        for (child, sub) in subtables {
            self.table(&child, &sub, depth);
        }
    }

    /// The type column, and the sub-table to describe after this one.
    fn field_kind(
        &self,
        child: &str,
        target: &SchemaObject,
        field: &SchemaObject,
    ) -> (String, Option<(String, SchemaObject)>) {
        let Some(obj) = target.object.as_ref() else {
            return (self.type_name(field), None);
        };
        if !obj.properties.is_empty() {
            return (
                format!("table, see `[{child}]`"),
                Some((child.to_string(), target.clone())),
            );
        }
        match obj.additional_properties.as_deref() {
            Some(Schema::Object(v)) => {
                let v = self.resolve(v);
                if v.object.as_ref().is_some_and(|o| !o.properties.is_empty()) {
                    let sub = format!("{child}.<name>");
                    (
                        format!("table of tables, see `[{sub}]`"),
                        Some((sub, v.clone())),
                    )
                } else {
                    (format!("table of {}", self.type_name(v)), None)
                }
            }
            _ => ("table".into(), None),
        }
    }
}

/// Follow `$ref` and single-element `allOf`/`anyOf` wrappers.
fn resolve<'s>(root: &'s RootSchema, s: &'s SchemaObject) -> &'s SchemaObject {
    if let Some(r) = &s.reference {
        let name = r.trim_start_matches("#/definitions/");
        if let Some(Schema::Object(o)) = root.definitions.get(name) {
            return resolve(root, o);
        }
    }
    if let Some(sub) = &s.subschemas {
        for list in [&sub.all_of, &sub.any_of].into_iter().flatten() {
            if let [Schema::Object(o)] = list.as_slice() {
                return resolve(root, o);
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
pub fn enum_values(s: &SchemaObject) -> Option<Vec<String>> {
    if let Some(values) = &s.enum_values {
        return Some(
            values
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
        );
    }
    let variants = s.subschemas.as_ref()?.one_of.as_ref()?;
    let mut out = Vec::new();
    for v in variants {
        let Schema::Object(o) = v else { return None };
        out.extend(enum_values(o)?);
    }
    Some(out)
}

/// "`a`: doc; `b`: doc" for enums whose variants are documented.
fn enum_docs(s: &SchemaObject) -> Option<String> {
    let variants = s.subschemas.as_ref()?.one_of.as_ref()?;
    let mut parts = Vec::new();
    for v in variants {
        let Schema::Object(o) = v else { continue };
        let doc = o.metadata.as_ref().and_then(|m| m.description.as_deref());
        for value in enum_values(o).unwrap_or_default() {
            match doc {
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
pub fn int_range(s: &SchemaObject) -> Option<(i64, i64)> {
    let by_format = match s.format.as_deref() {
        Some("uint8") => Some((0, u8::MAX as i64)),
        Some("uint16") => Some((0, u16::MAX as i64)),
        Some("uint32") => Some((0, u32::MAX as i64)),
        Some("uint64") | Some("uint") => Some((0, i64::MAX)),
        Some("int8") => Some((i8::MIN as i64, i8::MAX as i64)),
        Some("int16") => Some((i16::MIN as i64, i16::MAX as i64)),
        Some("int32") => Some((i32::MIN as i64, i32::MAX as i64)),
        _ => None,
    };
    let n = s.number.as_ref();
    let lo = n.and_then(|n| n.minimum).map(|v| v as i64);
    let hi = n.and_then(|n| n.maximum).map(|v| v as i64);
    match (by_format, lo, hi) {
        (None, None, None) => None,
        (f, lo, hi) => {
            let (flo, fhi) = f.unwrap_or((i64::MIN, i64::MAX));
            Some((lo.unwrap_or(flo).max(flo), hi.unwrap_or(fhi).min(fhi)))
        }
    }
}
