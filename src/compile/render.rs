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
    Ok(tera::Value::String(nix::inline(&Value::from_json(v))))
}

/// `{{ x | nix_key }}`: a string as an attribute name (bare or quoted).
fn nix_key_filter(v: &tera::Value, _: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    match v.as_str() {
        Some(s) => Ok(tera::Value::String(nix::key(s))),
        None => Err(tera::Error::msg(format!("nix_key needs a string, got {v}"))),
    }
}

/// The `nix` filter as a plain function, for tests and other callers.
pub fn nix_literal(v: &serde_json::Value) -> String {
    nix::inline(&Value::from_json(v))
}

impl Renderer {
    pub fn new(catalog: &Catalog) -> anyhow::Result<Renderer> {
        let mut tera = tera::Tera::default();
        tera.autoescape_on(vec![]);
        tera.register_filter("nix", nix_filter);
        tera.register_filter("nix_key", nix_key_filter);
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
        let parsed = nix::parse_value(&nix_literal(&v)).unwrap();
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
