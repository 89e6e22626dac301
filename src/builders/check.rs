//! `hearth builders check`: log in to each builder and report what it really is.
//!
//! Everything is measured, not read back from the inventory: the Nix version and systems
//! come from the builder's own configuration, trust from whether it accepts an unsigned path,
//! and each claimed system from building a trivial derivation there.

use super::localnix::LocalNix;
use super::mechanism::{Remote, Runner};
use super::placement::{builder_role, builds, native_systems};
use super::sshenv::SshEnv;
use crate::inventory::{Host, Inventory};
use anyhow::{anyhow, Context, Result};
use std::process::Command;

/// The traps every remote-build setup falls into once. Printed by `builders check`.
pub const TRAPS: &str = "\
Well-known traps:
  - A local build with builders is run by the Nix daemon, which connects as root with root's
    SSH configuration: root needs the key (ssh-key field of the machines list) and must know the
    builder's host key. `ssh you@builder` working proves nothing about root.
  - A user the builder's Nix does not trust (trusted-users) can't import unsigned paths, so
    copying locally built inputs there fails with \"lacks a valid signature\". Add the user to
    nix.settings.trusted-users on the builder, or sign your paths.
  - The builder's host key must be known (here: `host_key` in its host file). With strict
    checking an unknown key fails with \"Host key verification failed\", never a prompt.";

/// What one SSH round trip learned about a builder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    pub nix_version: String,
    pub system: String,
    pub extra_platforms: Vec<String>,
    pub trusted_users: Vec<String>,
    pub user: String,
    pub groups: Vec<String>,
    /// Free bytes on the filesystem holding /nix.
    pub free_bytes: Option<u64>,
    /// Registered binfmt_misc handlers (e.g. `aarch64-linux` on NixOS).
    pub binfmt: Vec<String>,
}

impl Probe {
    pub fn systems(&self) -> Vec<String> {
        let mut v = vec![self.system.clone()];
        v.extend(
            self.extra_platforms
                .iter()
                .filter(|p| **p != self.system)
                .cloned(),
        );
        v
    }

    /// Whether `trusted-users` names the user, one of its groups (`@g`), or everyone (`*`).
    pub fn config_trusts_user(&self) -> bool {
        self.trusted_users.iter().any(|t| {
            t == "*"
                || *t == self.user
                || t.strip_prefix('@')
                    .is_some_and(|g| self.groups.iter().any(|x| x == g))
        })
    }
}

/// Shell script run on the builder; sections are separated by marker lines.
pub const PROBE_SCRIPT: &str = "\
echo '@@version'; nix --version
echo '@@config'; nix --extra-experimental-features 'nix-command flakes' config show --json 2>/dev/null || nix --extra-experimental-features 'nix-command flakes' show-config --json
echo '@@user'; id -un; id -Gn
echo '@@df'; df -Pk /nix 2>/dev/null | tail -n 1
echo '@@binfmt'; ls /proc/sys/fs/binfmt_misc 2>/dev/null
echo '@@end'
";

pub fn parse_probe(text: &str) -> Result<Probe> {
    let mut sections: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    let mut current = "";
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("@@") {
            current = name.trim();
            sections.entry(current).or_default();
        } else if !current.is_empty() {
            sections.entry(current).or_default().push(line);
        }
    }
    if !sections.contains_key("end") {
        return Err(anyhow!("the probe did not finish; output was:\n{text}"));
    }
    let get = |k: &str| sections.get(k).cloned().unwrap_or_default();
    let config = get("config").join("\n");
    let nix =
        LocalNix::parse_config_json(&config).context("reading the builder's Nix configuration")?;
    let user = get("user");
    let df = get("df");
    let free_bytes = df
        .first()
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024);
    Ok(Probe {
        nix_version: get("version")
            .first()
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        system: nix.system,
        extra_platforms: nix.extra_platforms,
        trusted_users: nix.trusted_users,
        user: user
            .first()
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        groups: user
            .get(1)
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        free_bytes,
        binfmt: get("binfmt")
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s != "register" && s != "status")
            .collect(),
    })
}

/// A derivation that only runs `/bin/sh` for `system`; `nonce` keeps it from being cached.
pub fn trivial_drv_expr(system: &str, nonce: &str) -> String {
    format!(
        "derivation {{ name = \"hearth-check-{nonce}\"; system = \"{system}\"; builder = \"/bin/sh\"; args = [ \"-c\" \"echo ok > $out\" ]; }}"
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemCheck {
    pub system: String,
    pub emulated: bool,
    /// The builder's Nix lists it (`system` or `extra-platforms`).
    pub advertised: bool,
    /// Building a trivial derivation there: `Ok` or the error's first lines.
    pub built: Result<(), String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub name: String,
    pub address: String,
    pub user: String,
    pub probe: Result<Probe, String>,
    /// `Some(false)` when the builder refused an unsigned path from us.
    pub accepts_unsigned: Option<Result<(), String>>,
    pub systems: Vec<SystemCheck>,
}

impl Report {
    /// Problems a user must fix, as sentences.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let probe = match &self.probe {
            Ok(p) => p,
            Err(e) => return vec![format!("{} is unreachable: {}", self.name, first_line(e))],
        };
        if let Some(Err(e)) = &self.accepts_unsigned {
            out.push(format!(
                "{}: user `{}` is not trusted: the builder refused an unsigned path ({}); add it to nix.settings.trusted-users there",
                self.name,
                self.user,
                first_line(e)
            ));
        } else if self.accepts_unsigned.is_none()
            && !probe.config_trusts_user()
            && probe.user != "root"
        {
            out.push(format!(
                "{}: user `{}` is not in trusted-users ({})",
                self.name,
                self.user,
                probe.trusted_users.join(" ")
            ));
        }
        for s in &self.systems {
            if !s.advertised {
                out.push(format!(
                    "{}: claims {} but its Nix builds only {}; {}",
                    self.name,
                    s.system,
                    probe.systems().join(", "),
                    if s.emulated {
                        format!("set boot.binfmt.emulatedSystems = [ \"{}\" ] (which adds extra-platforms)", s.system)
                    } else {
                        "fix `systems` in its [builder] section".into()
                    }
                ));
            } else if let Err(e) = &s.built {
                out.push(format!(
                    "{}: building a trivial {} derivation failed: {}",
                    self.name,
                    s.system,
                    first_line(e)
                ));
            }
        }
        out
    }

    pub fn render(&self) -> String {
        let mut s = format!("{} ({}@{})\n", self.name, self.user, self.address);
        match &self.probe {
            Err(e) => s.push_str(&format!("  unreachable: {}\n", first_line(e))),
            Ok(p) => {
                s.push_str(&format!("  nix:        {}\n", p.nix_version));
                s.push_str(&format!("  systems:    {}\n", p.systems().join(", ")));
                let trust = match &self.accepts_unsigned {
                    Some(Ok(())) => "yes (accepted an unsigned path)".to_string(),
                    Some(Err(_)) => "NO (refused an unsigned path)".to_string(),
                    None => format!(
                        "{} (from trusted-users: {})",
                        yes_no(p.config_trusts_user() || p.user == "root"),
                        p.trusted_users.join(" ")
                    ),
                };
                s.push_str(&format!("  trusted:    {trust}\n"));
                s.push_str(&format!(
                    "  free disk:  {}\n",
                    p.free_bytes
                        .map(human_bytes)
                        .unwrap_or_else(|| "unknown".into())
                ));
                if !p.binfmt.is_empty() {
                    s.push_str(&format!("  binfmt:     {}\n", p.binfmt.join(", ")));
                }
                for c in &self.systems {
                    let state = match (&c.built, c.advertised) {
                        (_, false) => "NOT ADVERTISED".to_string(),
                        (Ok(()), _) => "builds".to_string(),
                        (Err(e), _) => format!("FAILED: {}", first_line(e)),
                    };
                    let how = if c.emulated { " (emulated)" } else { "" };
                    s.push_str(&format!("  {}{how}: {state}\n", c.system));
                }
            }
        }
        for p in self.problems() {
            s.push_str(&format!("  problem: {p}\n"));
        }
        s
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

fn first_line(e: &str) -> String {
    // The interesting line of a Nix/ssh failure is usually the last `error:` one.
    let lines: Vec<&str> = e.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines
        .iter()
        .rev()
        .find(|l| l.starts_with("error:") || l.contains("ssh:") || l.contains("Permission denied"))
        .or(lines.last())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", UNITS[i])
}

/// Check one builder host.
pub fn check_builder(
    host: &Host,
    runner: &Runner,
    ssh: &SshEnv,
    local: &LocalNix,
) -> Result<Report> {
    let role =
        builder_role(host).ok_or_else(|| anyhow!("{} lacks the `builder` role", host.name))?;
    let remote = Remote::new(&host.name, &role.user, &host.file.ssh.address)?;
    let mut report = Report {
        name: host.name.clone(),
        address: remote.address.clone(),
        user: role.user.clone(),
        probe: Err(String::new()),
        accepts_unsigned: None,
        systems: Vec::new(),
    };
    let mut cmd = Command::new("ssh");
    cmd.args(ssh.ssh_args())
        .arg(remote.ssh_dest())
        .arg("--")
        .arg(PROBE_SCRIPT);
    let probe = crate::process::run_stdout(&mut cmd)
        .map_err(|e| format!("{e:#}"))
        .and_then(|out| parse_probe(&out).map_err(|e| format!("{e:#}")));
    report.probe = probe.clone();
    let Ok(probe) = probe else { return Ok(report) };

    let nonce = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    report.accepts_unsigned =
        Some(unsigned_copy(runner, &remote, local, &nonce).map_err(|e| format!("{e:#}")));
    let mut claimed: Vec<(String, bool)> = native_systems(host, &role)
        .into_iter()
        .map(|s| (s, false))
        .collect();
    claimed.extend(role.emulated.iter().map(|s| (s.as_str().to_string(), true)));
    for (system, _) in claimed.clone() {
        let emulated = builds(host, &role, &system) == Some(true);
        let advertised = probe.systems().contains(&system);
        let built = if advertised {
            build_trivial(runner, &remote, &system, &nonce).map_err(|e| format!("{e:#}"))
        } else {
            Err("not advertised".into())
        };
        report.systems.push(SystemCheck {
            system,
            emulated,
            advertised,
            built,
        });
    }
    Ok(report)
}

fn build_trivial(runner: &Runner, remote: &Remote, system: &str, nonce: &str) -> Result<()> {
    let mut cmd = crate::nix::command();
    cmd.args(["path-info", "--derivation", "--impure", "--expr"])
        .arg(trivial_drv_expr(system, nonce));
    let drv = crate::process::run_stdout(&mut cmd)?;
    runner.realise_on(remote, drv.trim())?;
    Ok(())
}

/// Build a tiny input-addressed (hence unsigned) path locally and copy it to the builder
/// without `--no-check-sigs` leniency on its side: only a trusted user may import it.
fn unsigned_copy(runner: &Runner, remote: &Remote, local: &LocalNix, nonce: &str) -> Result<()> {
    let mut cmd = crate::nix::command();
    cmd.args(["build", "--no-link", "--json", "--expr"])
        .arg(format!(
            "derivation {{ name = \"hearth-trust-probe-{nonce}\"; system = \"{}\"; builder = \"/bin/sh\"; args = [ \"-c\" \"echo trust > $out\" ]; }}",
            local.system
        ))
        .arg("--impure");
    let out = crate::process::run_stdout(&mut cmd).context("building the local trust probe")?;
    let path = super::mechanism::parse_build_json(&out)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no trust probe output"))?
        .out;
    let mut cp = crate::nix::command();
    cp.args(["copy", "--no-check-sigs", "--to"])
        .arg(remote.store_uri())
        .arg(&path)
        .env("NIX_SSHOPTS", runner.ssh.nix_sshopts());
    crate::process::run(&mut cp)?;
    Ok(())
}

/// Check every builder (or those named). Returns the reports in name order.
pub fn check_all(
    inv: &Inventory,
    names: &[String],
    ssh: &SshEnv,
    runner: &Runner,
    local: &LocalNix,
) -> Result<Vec<Report>> {
    let mut out = Vec::new();
    for h in inv.hosts.values() {
        if !names.is_empty() && !names.contains(&h.name) {
            continue;
        }
        if builder_role(h).is_none() {
            if !names.is_empty() {
                anyhow::bail!(
                    "{} ({}) lacks the `builder` role",
                    h.name,
                    h.source.display()
                );
            }
            continue;
        }
        out.push(check_builder(h, runner, ssh, local)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "@@version\nnix (Nix) 2.8.0\n@@config\n{\"system\":{\"value\":\"x86_64-linux\"},\"extra-platforms\":{\"value\":[\"aarch64-linux\"]},\"trusted-users\":{\"value\":[\"root\",\"@wheel\"]}}\n@@user\nnixbuild\nnixbuild wheel\n@@df\n/dev/sda1 1000 10 2048 1% /\n@@binfmt\naarch64-linux\nregister\nstatus\n@@end\n";

    #[test]
    fn parses_probe_output() {
        let p = parse_probe(OUT).unwrap();
        assert_eq!(p.nix_version, "nix (Nix) 2.8.0");
        assert_eq!(p.systems(), ["x86_64-linux", "aarch64-linux"]);
        assert_eq!(p.user, "nixbuild");
        assert_eq!(p.groups, ["nixbuild", "wheel"]);
        assert_eq!(p.free_bytes, Some(2048 * 1024));
        assert_eq!(p.binfmt, ["aarch64-linux"]);
        assert!(p.config_trusts_user());
    }

    #[test]
    fn truncated_probe_is_an_error() {
        assert!(parse_probe("@@version\nnix (Nix) 2.8.0\n").is_err());
    }

    #[test]
    fn trust_by_name_group_or_star() {
        let mut p = Probe {
            user: "u".into(),
            groups: vec!["g".into()],
            ..Default::default()
        };
        p.trusted_users = vec!["root".into()];
        assert!(!p.config_trusts_user());
        for t in ["u", "@g", "*"] {
            p.trusted_users = vec![t.into()];
            assert!(p.config_trusts_user(), "{t}");
        }
    }

    fn report(
        probe: Probe,
        unsigned: Option<Result<(), String>>,
        systems: Vec<SystemCheck>,
    ) -> Report {
        Report {
            name: "b".into(),
            address: "10.0.0.9".into(),
            user: "nixbuild".into(),
            probe: Ok(probe),
            accepts_unsigned: unsigned,
            systems,
        }
    }

    #[test]
    fn problems_name_the_fix() {
        let p = parse_probe(OUT).unwrap();
        let r = report(
            p.clone(),
            Some(Err(
                "copying\nerror: cannot add path '/nix/store/x' because it lacks a valid signature"
                    .into(),
            )),
            vec![SystemCheck {
                system: "riscv64-linux".into(),
                emulated: true,
                advertised: false,
                built: Err("not advertised".into()),
            }],
        );
        let probs = r.problems();
        assert_eq!(probs.len(), 2, "{probs:?}");
        assert!(
            probs[0].contains("user `nixbuild` is not trusted")
                && probs[0].contains("lacks a valid signature"),
            "{}",
            probs[0]
        );
        assert!(
            probs[1].contains(
                "claims riscv64-linux but its Nix builds only x86_64-linux, aarch64-linux"
            ),
            "{}",
            probs[1]
        );
        assert!(
            probs[1].contains("boot.binfmt.emulatedSystems"),
            "{}",
            probs[1]
        );
        let text = r.render();
        assert!(text.contains("trusted:    NO"), "{text}");
        assert!(text.contains("free disk:  2.0 MiB"), "{text}");

        let ok = report(
            p,
            Some(Ok(())),
            vec![SystemCheck {
                system: "aarch64-linux".into(),
                emulated: true,
                advertised: true,
                built: Ok(()),
            }],
        );
        assert!(ok.problems().is_empty());
        assert!(ok.render().contains("aarch64-linux (emulated): builds"));
    }

    #[test]
    fn unreachable_builder_is_one_problem() {
        let r = Report {
            name: "b".into(),
            address: "a".into(),
            user: "u".into(),
            probe: Err("`ssh ...` failed (exit code 255):\nssh: connect to host a port 22: Connection refused".into()),
            accepts_unsigned: None,
            systems: vec![],
        };
        assert_eq!(
            r.problems(),
            ["b is unreachable: ssh: connect to host a port 22: Connection refused"]
        );
    }

    #[test]
    fn trivial_expr_names_system() {
        let e = trivial_drv_expr("aarch64-linux", "42");
        assert!(
            e.contains("system = \"aarch64-linux\"") && e.contains("hearth-check-42"),
            "{e}"
        );
    }
}
