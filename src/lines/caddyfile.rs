//! Caddyfile lines for the derived virtual hosts and global options. Caddyfile tokens are
//! split on whitespace, `{`/`}` open and close blocks, `#` starts a comment and `"`/`` ` ``
//! quote: every token hearth writes is checked to hold none of these, so a value can
//! never add a directive or a site.

use super::{no_control, LineError};

/// How a site gets its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Caddy's own CA (`tls internal`).
    Internal,
    /// ACME, Caddy's default: no `tls` line.
    Acme,
}

/// One bare Caddyfile token of the characters `allowed` (plus ASCII letters and digits).
fn token<'a>(format: &str, value: &'a str, allowed: &str) -> Result<&'a str, LineError> {
    no_control(format, value)?;
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || allowed.contains(c));
    if ok {
        Ok(value)
    } else {
        Err(LineError::new(
            format,
            value,
            format!("must be one Caddyfile token of letters, digits and `{allowed}`"),
        ))
    }
}

/// A site address (the virtual host's name): a DNS name.
pub fn site_name(name: &str) -> Result<&str, LineError> {
    token("Caddyfile site address", name, ".-")
}

/// The body of a reverse-proxy site: `tls internal` when asked, then `reverse_proxy`
/// to `upstream` (`host:port`, `[v6]:port`), with an active health check of `health`
/// (a URL path) when the service has one, every 10 s (Caddy's default, 30 s, would keep
/// a restarted UI unreachable for that long). No indentation inside the block: the generated
/// Nix then keeps the text as a readable `''…''` string (`nix::indented_ok`); Caddy does
/// not care.
pub fn proxy_site(tls: Tls, upstream: &str, health: Option<&str>) -> Result<String, LineError> {
    let upstream = token("Caddyfile reverse_proxy upstream", upstream, ".-:[]")?;
    let mut out = String::new();
    if tls == Tls::Internal {
        out.push_str("tls internal\n");
    }
    match health {
        Some(path) => {
            let path = token("Caddyfile health_uri", path, "/-._~%=&")?;
            out.push_str(&format!(
                "reverse_proxy {upstream} {{\nhealth_uri {path}\nhealth_interval 10s\n}}\n"
            ));
        }
        None => out.push_str(&format!("reverse_proxy {upstream}\n")),
    }
    Ok(out)
}

/// Ask the single sign-on server at `authz` (`host:port`) before proxying: Authelia's
/// forward-auth endpoint, with the user it authenticated passed on in headers.
pub fn forward_auth(authz: &str) -> Result<String, LineError> {
    let authz = token("Caddyfile forward_auth upstream", authz, ".-:[]")?;
    Ok(format!(
        "forward_auth {authz} {{\nuri /api/authz/forward-auth\ncopy_headers Remote-User Remote-Groups Remote-Email Remote-Name\n}}\n"
    ))
}

/// The global option that keeps Caddy from installing its internal root into the system
/// trust store at start.
pub const SKIP_INSTALL_TRUST: &str = "skip_install_trust\n";

/// The global option for the ACME DNS-01 challenge through `provider`, its API token
/// read from the environment variable `env` at start (never written into the file).
pub fn acme_dns(provider: &str, env: &str) -> Result<String, LineError> {
    let provider = token("Caddyfile acme_dns provider", provider, "_-")?;
    let env = token("Caddyfile environment variable", env, "_")?;
    Ok(format!("acme_dns {provider} {{env.{env}}}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_are_exact() {
        assert_eq!(
            proxy_site(Tls::Internal, "192.168.1.10:9090", None).unwrap(),
            "tls internal\nreverse_proxy 192.168.1.10:9090\n"
        );
        assert_eq!(
            proxy_site(Tls::Acme, "[fd00::1]:8096", Some("/health")).unwrap(),
            "reverse_proxy [fd00::1]:8096 {\nhealth_uri /health\nhealth_interval 10s\n}\n"
        );
        assert_eq!(
            forward_auth("127.0.0.1:9091").unwrap(),
            "forward_auth 127.0.0.1:9091 {\nuri /api/authz/forward-auth\n\
             copy_headers Remote-User Remote-Groups Remote-Email Remote-Name\n}\n"
        );
        assert!(forward_auth("127.0.0.1:9091 {").is_err());
        assert_eq!(
            acme_dns("cloudflare", "CF_API_TOKEN").unwrap(),
            "acme_dns cloudflare {env.CF_API_TOKEN}\n"
        );
        assert_eq!(
            site_name("grafana.nixos.home.arpa").unwrap(),
            "grafana.nixos.home.arpa"
        );
    }

    #[test]
    fn values_that_would_add_directives_are_refused() {
        for bad in [
            "a:1 {\n}",
            "a:1\nrespond 200",
            "a:1 # x",
            "a:1}",
            "\"a\"",
            "",
        ] {
            assert!(proxy_site(Tls::Internal, bad, None).is_err(), "{bad:?}");
            assert!(
                proxy_site(Tls::Internal, "a:1", Some(bad)).is_err(),
                "{bad:?}"
            );
        }
        for bad in ["x.home.arpa {", "*.home.arpa", "x home.arpa", "x\u{7f}"] {
            assert!(site_name(bad).is_err(), "{bad:?}");
        }
        assert!(acme_dns("cloudflare", "X} respond").is_err());
        assert!(acme_dns("cf {", "X").is_err());
    }
}
