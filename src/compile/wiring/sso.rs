//! Single sign-on: when the proxy host also runs `authelia`, every virtual host whose UI
//! has no login of its own (`[web] login = false`) asks Authelia first (Caddy's
//! `forward_auth`), and the login portal gets a virtual host of its own. Authelia's session
//! cookie covers caddy's domain, so every guarded name must lie below it.

use super::vhosts::Vhost;
use crate::compile::resolve::ResolvedHost;
use crate::lines::caddyfile::Tls;
use std::collections::BTreeMap;

/// Where Authelia listens (loopback on the proxy host; its template says the same).
pub const AUTHZ: &str = "127.0.0.1:9091";

/// Authelia with no reverse proxy in the fleet guards nothing: an error on its host.
pub fn without_proxy(hosts: &BTreeMap<String, ResolvedHost>, errors: &mut Vec<String>) {
    for rh in hosts
        .values()
        .filter(|h| h.services.contains_key("authelia"))
    {
        errors.push(format!(
            "{}: `services.authelia` guards the virtual hosts of caddy, but no host runs caddy: add `[services.caddy]` to this host",
            rh.source
        ));
    }
}

/// Mark the guarded vhosts, add the portal, and hand Authelia its facts.
pub fn guard(
    hosts: &mut BTreeMap<String, ResolvedHost>,
    proxy: &str,
    domain: &str,
    tls: Tls,
    vhosts: &mut Vec<Vhost>,
    errors: &mut Vec<String>,
) {
    for rh in hosts
        .values()
        .filter(|h| h.services.contains_key("authelia"))
    {
        if rh.name != proxy {
            errors.push(format!(
                "{}: `services.authelia` runs next to the reverse proxy: move it to `{proxy}`, the host with `[services.caddy]`",
                rh.source
            ));
        }
    }
    let Some(settings) = hosts[proxy].services.get("authelia").cloned() else {
        return;
    };
    let src = hosts[proxy].source.clone();
    let portal = format!("{}.{domain}", super::setting(&settings, "portal"));
    let mut protected = Vec::new();
    for v in vhosts.iter_mut().filter(|v| !v.login) {
        if v.name != domain && !v.name.ends_with(&format!(".{domain}")) {
            errors.push(format!(
                "{src}: `services.authelia` cannot guard `{}` ({} on {}): its session cookie covers `{domain}` and names below it; name it under `{domain}` in caddy's `names`",
                v.name, v.service, v.host
            ));
            continue;
        }
        v.sso = true;
        protected.push(v.name.clone());
    }
    vhosts.push(Vhost {
        url: format!("https://{portal}/"),
        name: portal.clone(),
        proxy: proxy.to_string(),
        service: "authelia".into(),
        host: proxy.to_string(),
        upstream: AUTHZ.into(),
        tls: if tls == Tls::Internal {
            "internal"
        } else {
            "acme"
        }
        .into(),
        health: Some("/api/health".into()),
        sso: false,
        login: true,
    });
    hosts.get_mut(proxy).unwrap().facts.insert(
        "authelia".into(),
        serde_json::json!({
            "cookie_domain": domain,
            "portal_url": format!("https://{portal}"),
            "protected": protected,
        }),
    );
}
