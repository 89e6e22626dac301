//! Health checks, run on the host itself after confirmation. One pure function makes
//! the script; it prints one `check <name> ok|fail <detail>` line per check.

use crate::inventory::HealthChecks;
use crate::ssh::quote;

/// True when there is nothing to check (then confirmation and commit go together).
pub fn is_empty(c: &HealthChecks) -> bool {
    c.units.is_empty() && c.tcp.is_empty() && c.http.is_empty()
}

/// The check script. systemd checks only run where systemd is PID 1 in the host's own
/// mount namespace (on lab hosts `systemctl` would talk to the machine's systemd).
/// TCP uses bash's /dev/tcp (present on NixOS and Debian); HTTP uses curl, else wget.
pub fn script(c: &HealthChecks) -> String {
    let mut s = String::from(
        "has_systemd() { [ -d /run/systemd/system ] && \
         [ \"$(readlink /proc/1/ns/mnt 2>/dev/null)\" = \"$(readlink /proc/self/ns/mnt)\" ]; }\n",
    );
    for u in &c.units {
        let q = quote(u);
        s.push_str(&format!(
            "if ! has_systemd; then echo \"check unit:\"{q}\" fail no systemd on this host\"; \
             elif systemctl is-active --quiet {q}; then echo \"check unit:\"{q}\" ok active\"; \
             else echo \"check unit:\"{q}\" fail $(systemctl is-active {q} 2>&1 | head -n 1)\"; fi\n"
        ));
    }
    if !c.units.is_empty() {
        s.push_str(
            "if has_systemd; then f=$(systemctl --failed --no-legend --plain 2>/dev/null | awk '{print $1}' | tr '\\n' ' '); \
             if [ -z \"$f\" ]; then echo 'check failed-units ok none'; else echo \"check failed-units fail $f\"; fi; fi\n",
        );
    }
    for p in &c.tcp {
        s.push_str(&format!(
            "if timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{p}' 2>/dev/null; \
             then echo 'check tcp:{p} ok open'; else echo 'check tcp:{p} fail closed'; fi\n"
        ));
    }
    for url in &c.http {
        let q = quote(url);
        s.push_str(&format!(
            "if command -v curl >/dev/null 2>&1; then \
             code=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 {q}); \
             case $code in 2??) echo \"check http:\"{q}\" ok $code\";; *) echo \"check http:\"{q}\" fail HTTP $code\";; esac; \
             elif wget -q -O /dev/null -T 5 {q}; then echo \"check http:\"{q}\" ok 2xx\"; \
             else echo \"check http:\"{q}\" fail no 2xx answer\"; fi\n"
        ));
    }
    s
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

pub fn parse(out: &str) -> Vec<CheckResult> {
    out.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("check ")?;
            let (name, rest) = rest.split_once(' ')?;
            let (verdict, detail) = rest.split_once(' ').unwrap_or((rest, ""));
            Some(CheckResult {
                name: name.to_string(),
                ok: verdict == "ok",
                detail: detail.trim().to_string(),
            })
        })
        .collect()
}

/// Every expected check reported, and all passed.
pub fn all_ok(c: &HealthChecks, results: &[CheckResult]) -> bool {
    let expected = c.units.len() + c.tcp.len() + c.http.len();
    results.iter().all(|r| r.ok) && results.len() >= expected
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn script_checks_ports_locally() {
        // A port that listens (our own listener) and one that does not.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap().port();
        let c = HealthChecks {
            units: vec![],
            tcp: vec![open, 9],
            http: vec![],
        };
        let s = script(&c);
        let out = Command::new("sh").args(["-c", &s]).output().unwrap();
        let r = parse(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r[0].ok, "{r:?}");
        assert_eq!(
            r[1],
            CheckResult {
                name: "tcp:9".into(),
                ok: false,
                detail: "closed".into()
            }
        );
        assert!(!all_ok(&c, &r));
        assert!(!all_ok(&c, &r[..1]), "a missing result is a failure");
    }

    #[test]
    fn script_is_valid_sh_with_units_and_urls() {
        let c = HealthChecks {
            units: vec!["nginx.service".into()],
            tcp: vec![],
            http: vec!["http://127.0.0.1:1/x'y".into()],
        };
        let s = script(&c);
        let out = Command::new("sh").args(["-n", "-c", &s]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("sh").args(["-c", &s]).output().unwrap();
        let r = parse(&String::from_utf8_lossy(&out.stdout));
        let http = r.iter().find(|r| r.name.starts_with("http:")).unwrap();
        assert!(!http.ok, "{r:?}");
        assert!(is_empty(&HealthChecks::default()));
    }
}
