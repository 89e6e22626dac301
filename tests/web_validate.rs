//! The derived reverse-proxy configuration accepted by the real Caddy: the Caddyfile the
//! real NixOS caddy module assembles from a generated host module (tests/web/caddyfile.nix,
//! evaluated with the vendored nixpkgs trees) is checked with Debian's `caddy validate`,
//! which parses it, adapts it to JSON and provisions every module (TLS issuers, the internal
//! CA, reverse_proxy upstreams) without starting a server. No network traffic: validation
//! opens no sockets, and the ACME directory used here is on loopback.
//!
//! blocky has no Debian package, so its derived YAML is checked only by the module harness
//! (tests/nixos_eval.rs) and the exact-record tests (tests/web_wiring.rs).
//!
//! Skips without `caddy` or the trees; fails instead under HEARTH_REQUIRE_EVAL=1.

mod checkouts;
mod compile_common;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `caddy` on PATH, or why not (a failure under HEARTH_REQUIRE_EVAL=1).
fn caddy() -> Option<()> {
    let found = Command::new("caddy").arg("version").output();
    match found {
        Ok(o) if o.status.success() => Some(()),
        _ if checkouts::strict() => {
            panic!("HEARTH_REQUIRE_EVAL=1 but `caddy` is not installed (Debian package caddy)")
        }
        _ => {
            println!("SKIPPED: `caddy` is not installed (Debian package caddy)");
            None
        }
    }
}

/// The Caddyfile the real module writes for the generated module `host`, access logs in `log_dir`.
fn caddyfile(host: &Path, log_dir: &Path) -> Option<String> {
    let dirs = match checkouts::checkouts(&["HEARTH_NIXPKGS_LIB", "HEARTH_NIXPKGS_SPARSE"]) {
        Ok(d) => d,
        Err(reason) => {
            println!("SKIPPED: {reason}");
            return None;
        }
    };
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(repo().join("tests/web/caddyfile.nix"))
        .args(["--arg", "nixpkgsLib"])
        .arg(&dirs[0])
        .args(["--arg", "sparse"])
        .arg(&dirs[1])
        .args(["--arg", "host"])
        .arg(host)
        .args(["--argstr", "logDir"])
        .arg(log_dir)
        .output()
        .expect("nix-instantiate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: String = serde_json::from_slice(&out.stdout).unwrap();
    let text = s
        .strip_prefix("/CADDYFILE-BEGIN\n")
        .and_then(|t| t.strip_suffix("\nCADDYFILE-END/Caddyfile"))
        .unwrap_or_else(|| panic!("unexpected configFile shape: {s}"));
    Some(text.to_string())
}

/// `caddy validate` on `text`: Ok(stderr) or Err(stderr). Caddy's storage (the internal
/// CA it provisions) goes to a temporary home.
fn validate(text: &str, dir: &Path) -> Result<String, String> {
    let file = dir.join("Caddyfile");
    std::fs::write(&file, text).unwrap();
    let out = Command::new("caddy")
        .args(["validate", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .output()
        .expect("caddy");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(format!("{stdout}{stderr}"))
    } else {
        Err(format!("{stdout}{stderr}"))
    }
}

/// The Caddyfile for `generated/<host>/default.nix` of the fleet at `root`, and a temp dir.
fn derived(root: &Path, host: &str) -> Option<(String, tempfile::TempDir)> {
    caddy()?;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("log")).unwrap();
    let module = root.join(format!("generated/{host}/default.nix"));
    let text = caddyfile(&module, &dir.path().join("log"))?;
    Some((text, dir))
}

/// The example fleet's proxy (tls internal): every site, as Caddy reads it.
#[test]
fn the_example_fleets_caddyfile_is_valid() {
    let Some((text, dir)) = derived(&repo(), "nixos") else {
        return;
    };
    for site in [
        "prometheus.nixos.home.arpa",
        "restic-server.helios64.home.arpa",
        "media.home.arpa",
    ] {
        assert!(text.contains(&format!("{site}  {{")), "{site} in\n{text}");
    }
    assert!(
        text.contains(
            "reverse_proxy 192.168.1.20:8096 {\nhealth_uri /health\nhealth_interval 10s\n}"
        ),
        "{text}"
    );
    let out = validate(&text, dir.path()).unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    assert!(out.contains("Valid configuration"), "{out}");
    // The internal CA was provisioned: `tls internal` reached Caddy's PKI app.
    assert!(dir.path().join("data/caddy/pki/authorities/local").is_dir());
}

/// The validator is not a rubber stamp: a broken site body in the same file fails it.
#[test]
fn a_broken_site_fails_caddy_validate() {
    let Some((text, dir)) = derived(&repo(), "nixos") else {
        return;
    };
    let broken = text.replacen(
        "reverse_proxy 192.168.1.20:8000",
        "reverse_proxy 192.168.1.20:8000 {\nbogus_subdirective\n}",
        1,
    );
    assert_ne!(broken, text);
    let err = validate(&broken, dir.path()).expect_err("must be refused");
    assert!(err.contains("bogus_subdirective"), "{err}");
}

/// `tls = "acme"` with an e-mail and a CA (the global options the module writes from
/// `services.caddy.email` / `acmeCA`): valid. The CA is a loopback URL: nothing is contacted.
#[test]
fn an_acme_proxy_is_valid() {
    let fleet = compile_common::copy_fixture("everything");
    let edge = fleet.path().join("hosts/edge.toml");
    let text = std::fs::read_to_string(&edge).unwrap();
    let text = text
        .replace(
            "https://acme-staging-v02.api.letsencrypt.org/directory",
            "https://127.0.0.1:14000/dir",
        )
        .replace("acme_dns_provider = \"cloudflare\"\n", "");
    std::fs::write(&edge, text).unwrap();
    let out = hearth::compile::compile_repo(fleet.path()).unwrap();
    for (rel, text) in &out.files {
        let p = fleet.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let Some((caddyfile, dir)) = derived(fleet.path(), "edge") else {
        return;
    };
    assert!(caddyfile.contains("email admin@example.org"), "{caddyfile}");
    assert!(
        caddyfile.contains("acme_ca https://127.0.0.1:14000/dir"),
        "{caddyfile}"
    );
    assert!(!caddyfile.contains("tls internal"), "{caddyfile}");
    // authelia runs next to caddy: the UIs without a login ask it first, the portal has a site.
    let site = |name: &str| {
        let start = caddyfile
            .find(&format!("{name}  {{"))
            .unwrap_or_else(|| panic!("{name}"));
        // Up to the next site (every site name here ends in `.org`).
        let rest = &caddyfile[start + name.len()..];
        rest[..rest.find(".org  {").unwrap_or(rest.len())].to_string()
    };
    assert!(
        site("metrics.example.org").contains("forward_auth 127.0.0.1:9091 {"),
        "{caddyfile}"
    );
    assert!(
        !site("jellyfin.helios64.example.org").contains("forward_auth"),
        "{caddyfile}"
    );
    assert!(
        site("auth.example.org").contains("reverse_proxy 127.0.0.1:9091"),
        "{caddyfile}"
    );
    // Sites on other hosts are proxied to their SSH address and the UI port.
    assert!(
        caddyfile.contains("reverse_proxy 192.168.1.20:8096"),
        "{caddyfile}"
    );
    let res = validate(&caddyfile, dir.path());
    assert!(res.is_ok(), "{res:?}\n---\n{caddyfile}");
}

/// With a DNS provider the global `acme_dns` option needs Caddy built with that provider's
/// plugin; Debian's caddy has none, and says which module is missing. (docs/CATALOG.md tells
/// users to set `services.caddy.package` to a build with the plugin.)
#[test]
fn acme_dns_without_the_plugin_names_the_missing_module() {
    let fleet = compile_common::copy_fixture("everything");
    let out = hearth::compile::compile_repo(fleet.path()).unwrap();
    for (rel, text) in &out.files {
        let p = fleet.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let Some((caddyfile, dir)) = derived(fleet.path(), "edge") else {
        return;
    };
    assert!(
        caddyfile.contains("acme_dns cloudflare {env.CF_API_TOKEN}"),
        "{caddyfile}"
    );
    let err = validate(&caddyfile, dir.path()).expect_err("no cloudflare module in Debian's caddy");
    assert!(err.contains("dns.providers.cloudflare"), "{err}");
}

/// The example fleet's proxy, running: Caddy serves the Caddyfile the module assembled, in
/// a private network namespace where dummy upstreams listen at the derived addresses, and
/// every site answers over HTTPS with its upstream's page, trusting only the root that
/// Caddy's internal CA wrote (the `trust_root` procedure of docs/CATALOG.md). Needs root
/// (`unshare --net`); skips without, fails under HEARTH_REQUIRE_EVAL=1.
#[test]
fn the_derived_proxy_serves_every_site_over_https() {
    if unsafe { libc::geteuid() } != 0 {
        assert!(!checkouts::strict(), "HEARTH_REQUIRE_EVAL=1 but not root");
        println!("SKIPPED: running the proxy needs root (a network namespace)");
        return;
    }
    let Some((text, dir)) = derived(&repo(), "nixos") else {
        return;
    };
    let d = dir.path();
    std::fs::write(d.join("Caddyfile"), &text).unwrap();
    std::fs::copy(repo().join("tests/web/fetch.py"), d.join("fetch.py")).unwrap();
    // site → upstream, as `hearth show --wiring` lists them, each with its health path.
    let sites = [
        ("media.home.arpa", "192.168.1.20:8096", "health"),
        ("prometheus.nixos.home.arpa", "127.0.0.1:9090", "-/ready"),
        ("restic-server.helios64.home.arpa", "192.168.1.20:8000", ""),
    ];
    let mut args = Vec::new();
    for (site, upstream, health) in sites {
        let www = d.join("www").join(site);
        std::fs::create_dir_all(www.join("-")).unwrap();
        std::fs::write(www.join("index.html"), format!("upstream of {site}\n")).unwrap();
        if !health.is_empty() {
            std::fs::write(www.join(health), "ok\n").unwrap();
        }
        args.push(format!("{site}={upstream}"));
    }
    let out = std::process::Command::new("timeout")
        .args(["60", "unshare", "--net", "bash"])
        .arg(repo().join("tests/web/serve.sh"))
        .arg(d)
        .args(&args)
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = std::fs::read_to_string(d.join("caddy.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{stdout}\n{}\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (site, _, _) in sites {
        let want = format!("{site} 200 upstream of {site}");
        assert!(
            stdout.lines().any(|l| l == want),
            "{want}\n--- got\n{stdout}\n--- caddy\n{log}"
        );
    }
}
