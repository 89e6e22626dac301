//! The reverse proxy's virtual hosts: on the one host running `caddy`, a site
//! `<service>.<host>.<domain>` (or the name caddy's `names` gives) for every service in the
//! fleet whose definition declares `[web]`, proxied to the host and port serving it.

use super::{host_port, setting};
use crate::catalog::Catalog;
use crate::compile::resolve::ResolvedHost;
use crate::inventory::values::Kind;
use crate::inventory::Inventory;
use crate::lines::caddyfile::{self, Tls};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vhost {
    /// The site's DNS name.
    pub name: String,
    /// The host running the proxy (its address answers for `name`).
    pub proxy: String,
    /// The service and the host serving the UI.
    pub service: String,
    pub host: String,
    /// Where the proxy sends requests.
    pub upstream: String,
    pub tls: String,
    /// The UI's address through the proxy.
    pub url: String,
    /// The path Caddy polls to take a dead upstream out (`health_uri`), if the service has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Guarded by the single sign-on server (the UI has no login of its own).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sso: bool,
    /// The UI has a login of its own (`[web] login`).
    #[serde(skip)]
    pub login: bool,
}

/// Every web UI behind the proxy; the caddy host gets them as `facts.caddy.vhosts`.
pub fn derive(
    inv: &Inventory,
    catalog: &Catalog,
    hosts: &mut BTreeMap<String, ResolvedHost>,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Vec<Vhost> {
    let Some(proxy) = proxy_host(hosts, errors) else {
        super::sso::without_proxy(hosts, errors);
        return vec![];
    };
    let src = hosts[&proxy].source.clone();
    let settings = hosts[&proxy].services["caddy"].clone();
    let domain = match setting(&settings, "domain") {
        "" => inv.fleet.domain.clone(),
        d => d.to_string(),
    };
    let tls = match setting(&settings, "tls") {
        "acme" => Tls::Acme,
        _ => Tls::Internal,
    };
    if tls == Tls::Acme && setting(&settings, "domain").is_empty() {
        errors.push(format!(
            "{src}: `services.caddy` with `tls = \"acme\"` needs `domain`: a public domain you own (ACME CAs do not issue certificates for the fleet domain `{domain}`)"
        ));
    }
    trust_root(inv, &src, &settings, hosts, errors);
    let mut names = overrides(&src, &settings, errors);
    let mut vhosts = sites(
        inv,
        catalog,
        hosts,
        (&proxy, &domain, tls),
        &mut names,
        warnings,
    );
    unused_names(&src, names, &vhosts, errors);
    super::sso::guard(hosts, &proxy, &domain, tls, &mut vhosts, errors);
    check_names(&src, &vhosts, errors);
    let facts = caddy_facts(&settings, tls, &vhosts).unwrap_or_else(|e| {
        errors.push(format!("{src}: `services.caddy`: {e}"));
        serde_json::json!({ "vhosts": [] })
    });
    hosts
        .get_mut(&proxy)
        .unwrap()
        .facts
        .insert("caddy".into(), facts);
    vhosts
}

/// One site per web UI of the fleet: `(proxy, domain, tls)` of the proxy; `names` are
/// caddy's overrides, removed as they are used.
fn sites(
    inv: &Inventory,
    catalog: &Catalog,
    hosts: &BTreeMap<String, ResolvedHost>,
    (proxy, domain, tls): (&str, &str, Tls),
    names: &mut BTreeMap<(String, String), String>,
    warnings: &mut Vec<String>,
) -> Vec<Vhost> {
    let mut vhosts = Vec::new();
    for (host, rh) in hosts.iter() {
        for (svc, s) in &rh.services {
            let Some(web) = catalog.get(svc).and_then(|d| d.web.as_ref()) else {
                continue;
            };
            let Some(port) = web.port(s) else { continue };
            if host != proxy && s.get("open_firewall").and_then(|v| v.as_bool()) == Some(false) {
                warnings.push(format!(
                    "{}: `{svc}` keeps its port {port} closed (`open_firewall = false`), so the proxy on `{proxy}` cannot reach it",
                    rh.source
                ));
            }
            // The proxy reaches UIs on its own host over loopback, others at their SSH address.
            let addr = match host == proxy {
                true => "127.0.0.1",
                false => inv.hosts[host].file.ssh.address.as_str(),
            };
            let name = names
                .remove(&(svc.clone(), host.clone()))
                .unwrap_or_else(|| format!("{svc}.{host}.{domain}"));
            vhosts.push(Vhost {
                url: format!("https://{name}{}", web.path),
                name,
                proxy: proxy.to_string(),
                service: svc.clone(),
                host: host.clone(),
                upstream: host_port(addr, port),
                tls: if tls == Tls::Internal {
                    "internal"
                } else {
                    "acme"
                }
                .into(),
                health: web.health.clone(),
                sso: false,
                login: web.login,
            });
        }
    }
    vhosts
}

/// Overrides in caddy's `names` that matched no web UI are errors.
fn unused_names(
    src: &str,
    names: BTreeMap<(String, String), String>,
    vhosts: &[Vhost],
    errors: &mut Vec<String>,
) {
    for ((svc, host), name) in names {
        errors.push(format!(
            "{src}: `{name}` in caddy's `names` is for `{svc}` on `{host}`, which is not a web UI of the fleet; the web UIs are: {}",
            vhosts.iter().map(|v| format!("{} on {}", v.service, v.host)).collect::<Vec<_>>().join(", ")
        ));
    }
}

/// The one host running caddy; none, or an error for each when several do.
fn proxy_host(hosts: &BTreeMap<String, ResolvedHost>, errors: &mut Vec<String>) -> Option<String> {
    let proxies: Vec<&String> = hosts
        .values()
        .filter(|h| h.services.contains_key("caddy"))
        .map(|h| &h.name)
        .collect();
    match proxies.as_slice() {
        [] => None,
        [one] => Some((*one).clone()),
        many => {
            for p in many {
                errors.push(format!(
                    "{}: `services.caddy` is on several hosts ({}); one reverse proxy serves the fleet's web UIs: keep `[services.caddy]` on one host",
                    hosts[p.as_str()].source,
                    many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ));
            }
            None
        }
    }
}

/// caddy's `names` as (service, host) → name; a second entry for one UI is an error.
fn overrides(
    src: &str,
    settings: &toml::Table,
    errors: &mut Vec<String>,
) -> BTreeMap<(String, String), String> {
    let field =
        |e: &toml::Value, k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let mut out = BTreeMap::new();
    let entries = settings.get("names").and_then(|v| v.as_array());
    for e in entries.into_iter().flatten() {
        let (svc, host, name) = (field(e, "service"), field(e, "host"), field(e, "name"));
        if let Some(first) = out.insert((svc.clone(), host.clone()), name.clone()) {
            errors.push(format!(
                "{src}: `{name}` in caddy's `names` is a second name for `{svc}` on `{host}` (the first is `{first}`); keep one"
            ));
        }
    }
    out
}

/// Each name a DNS name, and no two sites with the same name.
fn check_names(src: &str, vhosts: &[Vhost], errors: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    for v in vhosts {
        if let Err(e) = Kind::DomainName.check(&v.name) {
            errors.push(format!(
                "{src}: `services.caddy.names`: the virtual host name `{}` of `{}` on `{}` is not a DNS name ({e}); give it one in caddy's `names`",
                v.name, v.service, v.host
            ));
        }
        if !seen.insert(v.name.as_str()) {
            errors.push(format!(
                "{src}: `services.caddy.names`: two web UIs would share the virtual host `{}`; give one another name in caddy's `names`",
                v.name
            ));
        }
    }
}

/// What the caddy template needs: each site's Caddyfile body and the global options.
fn caddy_facts(
    settings: &toml::Table,
    tls: Tls,
    vhosts: &[Vhost],
) -> Result<serde_json::Value, crate::lines::LineError> {
    let mut sites = Vec::new();
    for v in vhosts {
        caddyfile::site_name(&v.name)?;
        let mut config = String::new();
        if v.sso {
            config.push_str(&caddyfile::forward_auth(super::sso::AUTHZ)?);
        }
        config.push_str(&caddyfile::proxy_site(
            tls,
            &v.upstream,
            v.health.as_deref(),
        )?);
        sites.push(serde_json::json!({ "name": v.name, "config": config }));
    }
    let acme = tls == Tls::Acme;
    let global = match (acme, setting(settings, "acme_dns_provider")) {
        (true, p) if !p.is_empty() => {
            caddyfile::acme_dns(p, setting(settings, "acme_dns_token_env"))?
        }
        (true, _) => String::new(),
        // NixOS's trust store is built from the configuration (`trust_root`), not edited at
        // run time: Caddy must not try to install its root there.
        (false, _) => caddyfile::SKIP_INSTALL_TRUST.to_string(),
    };
    let pick = |k: &str| if acme { setting(settings, k) } else { "" };
    Ok(serde_json::json!({
        "vhosts": sites,
        "global_config": global,
        "email": pick("acme_email"),
        "acme_ca": pick("acme_ca"),
    }))
}

/// caddy's `trust_root`: the PEM root of its internal CA, trusted by every host of the
/// fleet (`security.pki.certificateFiles`). Checked here: it must exist in the repository
/// and hold a certificate, or every host would build with a missing file.
fn trust_root(
    inv: &Inventory,
    src: &str,
    settings: &toml::Table,
    hosts: &mut BTreeMap<String, ResolvedHost>,
    errors: &mut Vec<String>,
) {
    let path = setting(settings, "trust_root");
    if path.is_empty() {
        return;
    }
    match crate::inventory::files::read_text(&inv.root.join(path)) {
        Ok(text) if text.contains("-----BEGIN CERTIFICATE-----") => {}
        Ok(_) => {
            errors.push(format!(
                "{src}: `services.caddy.trust_root`: `{path}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`); copy Caddy's root.crt there"
            ));
            return;
        }
        Err(e) => {
            errors.push(format!(
                "{src}: `services.caddy.trust_root`: `{path}` {e}; fetch the root as docs/CATALOG.md (caddy) says, or remove the setting"
            ));
            return;
        }
    }
    for rh in hosts.values_mut() {
        if rh.hardware != crate::inventory::Hardware::Lab {
            rh.trusted_ca_files.push(path.to_string());
        }
    }
}
