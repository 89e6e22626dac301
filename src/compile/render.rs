//! Render catalog templates with Tera. Each template produces one Nix attribute
//! set; its text is parsed back (rnix) into a `Value` so the host module can merge
//! services and print everything in one consistent format.

use super::nix::{self, Value};
use crate::catalog::Catalog;
use std::collections::HashMap;
use std::sync::Mutex;

pub struct Renderer {
    tera: tera::Tera,
    /// (service, context as JSON) → parsed output. Templates are pure, and many hosts
    /// share settings, so most renders and rnix parses are skipped in a big fleet.
    cache: Mutex<HashMap<(String, String), Value>>,
}

/// `{{ x | nix }}`: any value as a Nix literal.
fn nix_filter(v: &tera::Value, _: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    nix_literal(v).map(tera::Value::String)
}

/// `{{ x | nix_key }}`: a string as an attribute name (bare or quoted).
fn nix_key_filter(v: &tera::Value, _: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    match v.as_str() {
        Some(s) => nix::key(s)
            .map(tera::Value::String)
            .map_err(|e| tera::Error::msg(format!("the attribute name {s:?} {e}"))),
        None => Err(tera::Error::msg(format!("nix_key needs a string, got {v}"))),
    }
}

/// `{{ x | smb }}`: a smb.conf value (a string, or a list joined by spaces) as a Nix string,
/// refused when it would not stay one `key = value` line (see `lines::smb`).
fn smb_filter(v: &tera::Value, _: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    let text = match v {
        tera::Value::String(s) => s.clone(),
        tera::Value::Array(items) => {
            let parts: Option<Vec<&str>> = items.iter().map(|i| i.as_str()).collect();
            parts
                .ok_or_else(|| tera::Error::msg(format!("smb needs strings, got {v}")))?
                .join(" ")
        }
        tera::Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        tera::Value::Number(n) => n.to_string(),
        other => return Err(tera::Error::msg(format!("smb needs a string, got {other}"))),
    };
    crate::lines::smb::value(&text).map_err(|e| tera::Error::msg(e.to_string()))?;
    nix_literal(&tera::Value::String(text)).map(tera::Value::String)
}

/// `{{ name | smb_section }}`: a smb.conf section (share) name as a Nix string.
fn smb_section_filter(
    v: &tera::Value,
    _: &HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let s = v
        .as_str()
        .ok_or_else(|| tera::Error::msg(format!("smb_section needs a string, got {v}")))?;
    crate::lines::smb::section(s).map_err(|e| tera::Error::msg(e.to_string()))?;
    nix_literal(v).map(tera::Value::String)
}

/// The `nix` filter as a plain function, for tests and other callers.
pub fn nix_literal(v: &serde_json::Value) -> tera::Result<String> {
    nix::inline_checked(&Value::from_json(v)).map_err(|e| tera::Error::msg(e.to_string()))
}

/// The filters whose output is Nix text this module made: the only ones a `{{ … }}` in a
/// catalog template may end with.
pub const NIX_FILTERS: &[&str] = &["nix", "nix_key", "smb", "smb_section"];

/// Refuse a template that could put text into the Nix it renders without quoting it.
///
/// Why a check of the parsed template and not Tera's autoescape with a Nix-quoting escape
/// function: autoescape only applies to string results (an array or object still renders
/// its strings raw), and `| safe` or `{% filter safe %}` skip it inside Tera's renderer, so
/// it can't be made airtight. Here every `{{ … }}` must end in one of [`NIX_FILTERS`],
/// which quote (or refuse) whatever they get, and constructs that could splice rendered
/// text from elsewhere (filter sections, includes, macros) are refused outright.
pub fn check_template(tpl: &tera::Template) -> Result<(), String> {
    check_nodes(&tpl.ast)
}

fn check_nodes(nodes: &[tera::ast::Node]) -> Result<(), String> {
    use tera::ast::Node;
    for node in nodes {
        match node {
            Node::VariableBlock(_, expr) => check_output(expr)?,
            Node::Forloop(_, f, _) => {
                check_nodes(&f.body)?;
                if let Some(empty) = &f.empty_body {
                    check_nodes(empty)?;
                }
            }
            Node::If(i, _) => {
                for (_, _, body) in &i.conditions {
                    check_nodes(body)?;
                }
                if let Some((_, body)) = &i.otherwise {
                    check_nodes(body)?;
                }
            }
            Node::Block(_, b, _) => check_nodes(&b.body)?,
            Node::FilterSection(..) => return Err("`{% filter %}` sections are not allowed".into()),
            Node::Include(..) | Node::Extends(..) | Node::ImportMacro(..) | Node::Super => {
                return Err("templates cannot include, extend or import other templates".into())
            }
            Node::MacroDefinition(..) => return Err("macros are not allowed".into()),
            Node::Text(_)
            | Node::Raw(..)
            | Node::Set(..)
            | Node::Break(_)
            | Node::Continue(_)
            | Node::Comment(..) => {}
        }
    }
    Ok(())
}

fn check_output(expr: &tera::ast::Expr) -> Result<(), String> {
    match expr.filters.last() {
        Some(f) if NIX_FILTERS.contains(&f.name.as_str()) => Ok(()),
        last => Err(format!(
            "`{{{{ {} }}}}` must end with a filter that writes Nix ({}), not {}: host-file \
             text must never be spliced into Nix unquoted",
            match &expr.val {
                tera::ast::ExprVal::Ident(name) => name.as_str(),
                _ => "…",
            },
            NIX_FILTERS
                .iter()
                .map(|f| format!("`| {f}`"))
                .collect::<Vec<_>>()
                .join(", "),
            last.map_or("nothing".to_string(), |f| format!("`| {}`", f.name))
        )),
    }
}

impl Renderer {
    pub fn new(catalog: &Catalog) -> anyhow::Result<Renderer> {
        let mut tera = tera::Tera::default();
        tera.autoescape_on(vec![]);
        tera.register_filter("nix", nix_filter);
        tera.register_filter("nix_key", nix_key_filter);
        tera.register_filter("smb", smb_filter);
        tera.register_filter("smb_section", smb_section_filter);
        for def in catalog.services.values() {
            tera.add_raw_template(&def.name, &def.template)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{}: template of `{}` does not parse: {}",
                        def.origin,
                        def.name,
                        chain(&e)
                    )
                })?;
            check_template(tera.get_template(&def.name)?)
                .map_err(|e| anyhow::anyhow!("{}: template of `{}`: {e}", def.origin, def.name))?;
        }
        Ok(Renderer {
            tera,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Render one service for one host into a `Value`.
    pub fn render(
        &self,
        service: &str,
        origin: &str,
        context: &tera::Context,
    ) -> Result<Value, String> {
        let key = (service.to_string(), context.clone().into_json().to_string());
        if let Some(v) = self.cache.lock().unwrap().get(&key) {
            return Ok(v.clone());
        }
        let value = self.render_uncached(service, origin, context)?;
        self.cache.lock().unwrap().insert(key, value.clone());
        Ok(value)
    }

    fn render_uncached(
        &self,
        service: &str,
        origin: &str,
        context: &tera::Context,
    ) -> Result<Value, String> {
        let text = self.tera.render(service, context).map_err(|e| {
            format!(
                "service `{service}` ({origin}): template failed: {}",
                chain(&e)
            )
        })?;
        nix::parse_value(&text).map_err(|e| {
            format!("service `{service}` ({origin}) rendered invalid Nix at {e}\n--- rendered ---\n{text}")
        })
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nix_filter_renders_literals() {
        let nix_literal = |v: &serde_json::Value| nix_literal(v).unwrap();
        assert_eq!(nix_literal(&json!("a\"b${c}\\")), r#""a\"b\${c}\\""#);
        assert_eq!(nix_literal(&json!(42)), "42");
        assert_eq!(nix_literal(&json!(true)), "true");
        assert_eq!(nix_literal(&json!(null)), "null");
        assert_eq!(nix_literal(&json!(["x", 1])), r#"[ "x" 1 ]"#);
        assert_eq!(
            nix_literal(&json!({"read only": "no", "path": "/x"})),
            r#"{ path = "/x"; "read only" = "no"; }"#
        );
        assert_eq!(nix_literal(&json!([])), "[ ]");
    }

    #[test]
    fn nix_filter_output_parses_back_to_the_same_data() {
        let v = json!({"s": "${evil} \"q\" \\ \n", "l": [1, "two", {"x y": false}], "n": null});
        let parsed = nix::parse_value(&nix_literal(&v).unwrap()).unwrap();
        assert_eq!(parsed, Value::from_json(&v));
    }

    #[test]
    fn templates_render_through_filters() {
        let mut catalog = Catalog::default();
        let def = crate::catalog::ServiceDef::parse(
            "t",
            "description = \"t\"",
            "{ a.{{ k | nix_key }} = {{ v | nix }}; }".into(),
            "test",
        )
        .unwrap();
        catalog.services.insert("t".into(), def);
        let r = Renderer::new(&catalog).unwrap();
        let mut ctx = tera::Context::new();
        ctx.insert("k", "with space");
        ctx.insert("v", "${x}");
        let v = r.render("t", "test", &ctx).unwrap();
        assert_eq!(nix::inline(&v), r#"{ a = { "with space" = "\${x}"; }; }"#);
    }

    fn renderer_for(template: &str) -> anyhow::Result<Renderer> {
        let mut catalog = Catalog::default();
        let def = crate::catalog::ServiceDef::parse(
            "t",
            "description = \"t\"",
            template.into(),
            "catalog/t.toml",
        )
        .unwrap();
        catalog.services.insert("t".into(), def);
        Renderer::new(&catalog)
    }

    #[test]
    fn templates_that_could_splice_raw_text_are_refused_at_load() {
        for (template, why) in [
            (
                "{ a = \"{{ settings.x }}\"; }",
                "`{{ settings.x }}` must end with",
            ),
            ("{ a = {{ settings.x | safe }}; }", "not `| safe`"),
            ("{ a = {{ settings.x | nix | upper }}; }", "not `| upper`"),
            ("{ a = {{ settings.l }}; }", "not nothing"),
            (
                "{% for x in settings.l %}{ a = {{ x }}; }{% endfor %}",
                "must end with",
            ),
            (
                "{% if true %}{{ settings.x | trim }}{% endif %}",
                "not `| trim`",
            ),
            (
                "{% filter safe %}{{ settings.x | nix }}{% endfilter %}",
                "`{% filter %}`",
            ),
            ("{% macro m() %}x{% endmacro %}{ }", "macros"),
        ] {
            let err = format!("{:#}", renderer_for(template).err().expect(template));
            assert!(
                err.starts_with("catalog/t.toml: template of `t`: ") && err.contains(why),
                "{template}: {err}"
            );
        }
        assert!(renderer_for("{ a = {{ settings.x | nix }}; b.{{ k | nix_key }} = 1; }").is_ok());
    }

    #[test]
    fn filters_refuse_what_nix_or_smb_conf_cannot_hold() {
        let r = renderer_for("{ a = {{ settings.x | nix }}; }").unwrap();
        let mut ctx = tera::Context::new();
        ctx.insert("settings", &json!({"x": "a\u{0}b"}));
        let err = r.render("t", "catalog/t.toml", &ctx).unwrap_err();
        assert!(err.contains("control character U+0000"), "{err}");
        let r = renderer_for("{ w = {{ settings.x | smb }}; }").unwrap();
        ctx.insert("settings", &json!({"x": "WG\n[root]\npath = /"}));
        let err = r.render("t", "catalog/t.toml", &ctx).unwrap_err();
        assert!(err.contains("smb.conf value"), "{err}");
        ctx.insert("settings", &json!({"x": ["alice", "bob"]}));
        let v = r.render("t", "catalog/t.toml", &ctx).unwrap();
        assert_eq!(nix::inline(&v), r#"{ w = "alice bob"; }"#);
    }

    #[test]
    fn invalid_template_output_is_reported_with_the_text() {
        let mut catalog = Catalog::default();
        let def = crate::catalog::ServiceDef::parse(
            "t",
            "description = \"t\"",
            "{ a = ; }".into(),
            "catalog/t.toml",
        )
        .unwrap();
        catalog.services.insert("t".into(), def);
        let r = Renderer::new(&catalog).unwrap();
        let err = r
            .render("t", "catalog/t.toml", &tera::Context::new())
            .unwrap_err();
        assert!(
            err.contains("catalog/t.toml") && err.contains("1:"),
            "{err}"
        );
    }
}
