//! The three ways a system gets built, as pure command builders plus thin runners:
//!
//! - **local with builders**: the deployer's `nix build` with a generated `--builders` list;
//!   outputs come back to the deployer, and deploy copies them to the target as usual.
//! - **builder to target**: realise the derivation in the builder's store, then the builder
//!   copies the closure straight to the target. Nothing passes through the deployer's store.
//! - **on the target**: realise the derivation in the target's own store.
//!
//! Realising in a remote store: Nix 2.13+ takes `nix build --eval-store auto --store ssh-ng://B
//! <drv>^out`. Nix 2.8 has neither `^out` nor a way to copy the derivation on demand (it rejects a
//! `.drv` the remote store doesn't have), so the `.drv` closure is copied first with
//! `nix copy --derivation`, which both versions accept; then the bare `.drv` is built there.

use super::machines::{builders_flags, Machine};
use super::sshenv::SshEnv;
use crate::nix::NixVersion;
use anyhow::{anyhow, Context, Result};
use std::process::Command;

/// A machine reached over SSH whose store we build in or copy to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// Host name in the inventory (for messages).
    pub name: String,
    pub user: String,
    pub address: String,
}

impl Remote {
    /// A remote whose `user@address` can't be read as an option by `ssh` or by the `ssh`
    /// Nix runs for a store URI (`ssh-ng://-oProxyCommand=…` would be one).
    pub fn new(name: &str, user: &str, address: &str) -> Result<Remote> {
        crate::ssh::config_writer::destination(user, address)
            .with_context(|| format!("reaching host `{name}`"))?;
        Ok(Remote {
            name: name.to_string(),
            user: user.to_string(),
            address: address.to_string(),
        })
    }
    pub fn store_uri(&self) -> String {
        format!("ssh-ng://{}@{}", self.user, self.address)
    }
    pub fn ssh_dest(&self) -> String {
        format!("{}@{}", self.user, self.address)
    }
}

/// A `.drv` as an installable that means "its `out` output".
pub fn drv_installable(version: NixVersion, drv: &str) -> String {
    if version >= NixVersion::new(2, 13, 0) {
        format!("{drv}^out")
    } else {
        drv.to_string()
    }
}

/// `nix path-info --derivation <installable>`: evaluate locally and write the `.drv` closure
/// (same on 2.8 and 2.18+).
pub fn instantiate_args(installable: &str) -> Vec<String> {
    vec![
        "path-info".into(),
        "--derivation".into(),
        installable.into(),
    ]
}

/// `nix copy --derivation --to <store> <drv>`: the build recipe, not its outputs.
pub fn copy_drv_args(remote: &Remote, drv: &str) -> Vec<String> {
    let mut a: Vec<String> = ["copy", "--derivation", "--to"].map(String::from).to_vec();
    a.push(remote.store_uri());
    a.push(drv.into());
    a
}

/// `nix build` of `drv` inside the remote store; prints `--json`.
pub fn remote_build_args(version: NixVersion, remote: &Remote, drv: &str) -> Vec<String> {
    let mut a: Vec<String> = ["build", "--no-link", "--json", "--store"]
        .map(String::from)
        .to_vec();
    a.push(remote.store_uri());
    if version >= NixVersion::new(2, 13, 0) {
        a.extend(["--eval-store".into(), "auto".into()]);
    }
    a.push(drv_installable(version, drv));
    a
}

/// Local `nix build` that hands the work to `machines`.
pub fn local_build_args(installable: &str, machines: &[Machine], only_remote: bool) -> Vec<String> {
    let mut a: Vec<String> = ["build", "--no-link", "--json"].map(String::from).to_vec();
    // No machines: leave the local Nix's own `builders` setting alone.
    if !machines.is_empty() {
        a.extend(builders_flags(machines, only_remote));
    }
    a.push(installable.into());
    a
}

/// How the builder reaches the target when it copies the closure there itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuilderSsh {
    /// The target's `known_hosts` line (from its `host_key`); the builder must know it.
    pub known_hosts_line: String,
    /// An identity file that exists on the builder; otherwise its default keys or a
    /// forwarded agent are used.
    pub identity: Option<String>,
    /// Forward the deployer's agent to the builder so it logs in to the target as you.
    pub forward_agent: bool,
    /// Let the target fetch what it can from its own substituters.
    pub substitute_on_destination: bool,
    /// The target's SSH port (a store URI can't carry it before Nix 2.31).
    pub port: u16,
    /// The builder signs its paths: copy without `--no-check-sigs` (the target's push user
    /// is not trusted and checks them).
    pub signed: bool,
}

/// The POSIX-sh script the builder runs to push `paths` to `target`. It writes the target's
/// host key to a private file, so strict checking holds without touching the builder's config.
pub fn copy_to_target_script(target: &Remote, paths: &[String], how: &BuilderSsh) -> String {
    let q = crate::lines::shell::quote;
    // `$kh` expands in the script; everything else is one quoted word appended to it.
    let mut opts = "-o StrictHostKeyChecking=yes -o BatchMode=yes".to_string();
    if how.port != 22 && how.port != 0 {
        opts.push_str(&format!(" -p {}", how.port));
    }
    if let Some(id) = &how.identity {
        opts.push_str(&format!(" -i {id} -o IdentitiesOnly=yes"));
    }
    let mut copy = format!(
        "{} copy{} --to {}",
        crate::nix::NIX_SH,
        if how.signed { "" } else { " --no-check-sigs" },
        q(&target.store_uri())
    );
    if how.substitute_on_destination {
        copy.push_str(" --substitute-on-destination");
    }
    for p in paths {
        copy.push(' ');
        copy.push_str(&q(p));
    }
    format!(
        "set -u\nkh=$(mktemp)\nprintf '%s\\n' {line} > \"$kh\"\nNIX_SSHOPTS=\"-o UserKnownHostsFile=$kh \"{opts} {copy}\nrc=$?\nrm -f \"$kh\"\nexit $rc\n",
        line = q(&how.known_hosts_line),
        opts = q(&opts),
    )
}

/// `ssh` arguments that run `script` on `remote`.
pub fn ssh_script_args(
    ssh: &[String],
    remote: &Remote,
    forward_agent: bool,
    script: &str,
) -> Vec<String> {
    let mut a = ssh.to_vec();
    if forward_agent {
        a.push("-A".into());
    }
    a.push(remote.ssh_dest());
    a.push("--".into());
    a.push(script.into());
    a
}

/// One entry of `nix build --json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub drv: String,
    pub out: String,
}

/// `nix build --json`: `[{"drvPath": …, "outputs": {"out": …}}]` on 2.8 and later alike.
pub fn parse_build_json(text: &str) -> Result<Vec<Built>> {
    let v: serde_json::Value =
        serde_json::from_str(text.trim()).context("`nix build --json` printed no JSON")?;
    let items = v
        .as_array()
        .ok_or_else(|| anyhow!("`nix build --json` did not print a list"))?;
    items
        .iter()
        .map(|i| {
            let drv = i["drvPath"].as_str().unwrap_or_default().to_string();
            let out = i["outputs"]["out"]
                .as_str()
                .ok_or_else(|| anyhow!("`nix build --json` entry without an `out` output: {i}"))?
                .to_string();
            Ok(Built { drv, out })
        })
        .collect()
}

/// Runs the mechanisms with the local Nix and the run's SSH settings.
pub struct Runner<'a> {
    pub version: NixVersion,
    pub ssh: &'a SshEnv,
}

impl Runner<'_> {
    fn nix(&self, args: &[String]) -> Command {
        let mut c = crate::nix::command();
        c.args(args).env("NIX_SSHOPTS", self.ssh.nix_sshopts());
        c
    }

    /// Evaluate `installable` (e.g. `.#nixosConfigurations.h.config.system.build.toplevel`)
    /// to its `.drv` in the local store.
    pub fn instantiate(&self, installable: &str) -> Result<String> {
        let out = crate::process::run_stdout(&mut self.nix(&instantiate_args(installable)))
            .with_context(|| format!("evaluating {installable}"))?;
        Ok(out.trim().to_string())
    }

    /// Build `drv` in `remote`'s store; returns the output path (which stays there).
    pub fn realise_on(&self, remote: &Remote, drv: &str) -> Result<String> {
        let ctx = || format!("building on {} ({})", remote.name, remote.address);
        crate::process::run(&mut self.nix(&copy_drv_args(remote, drv))).with_context(ctx)?;
        let out = crate::process::run_stdout(&mut self.nix(&remote_build_args(
            self.version,
            remote,
            drv,
        )))
        .with_context(ctx)?;
        let built = parse_build_json(&out).with_context(ctx)?;
        built
            .into_iter()
            .next()
            .map(|b| b.out)
            .ok_or_else(|| anyhow!("{}: nix build reported no output", ctx()))
    }

    /// Have `builder` copy `paths` to `target` directly.
    pub fn copy_builder_to_target(
        &self,
        builder: &Remote,
        target: &Remote,
        paths: &[String],
        how: &BuilderSsh,
    ) -> Result<()> {
        let script = copy_to_target_script(target, paths, how);
        let args = ssh_script_args(&self.ssh.ssh_args(), builder, how.forward_agent, &script);
        crate::process::run(Command::new("ssh").args(&args)).with_context(|| {
            format!(
                "builder {} ({}) copying to {} ({}); the builder must reach the target and log in there",
                builder.name, builder.address, target.name, target.address
            )
        })?;
        Ok(())
    }

    /// Local build dispatched to `machines`; the output lands in the local store.
    pub fn build_local_with_builders(
        &self,
        installable: &str,
        machines: &[Machine],
        only_remote: bool,
    ) -> Result<String> {
        let names: Vec<&str> = machines.iter().map(|m| m.name.as_str()).collect();
        let out = crate::process::run_stdout(&mut self.nix(&local_build_args(
            installable,
            machines,
            only_remote,
        )))
        .with_context(|| {
            format!(
                "building {installable} through builder(s) {}",
                names.join(", ")
            )
        })?;
        parse_build_json(&out)?
            .into_iter()
            .next()
            .map(|b| b.out)
            .ok_or_else(|| anyhow!("nix build reported no output for {installable}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b() -> Remote {
        Remote {
            name: "big".into(),
            user: "nixbuild".into(),
            address: "10.0.0.9".into(),
        }
    }
    const OLD: NixVersion = NixVersion::new(2, 8, 0);
    const NEW: NixVersion = NixVersion::new(2, 18, 1);

    #[test]
    fn remote_build_branches_on_version() {
        let d = "/nix/store/abc-x.drv";
        assert_eq!(drv_installable(OLD, d), d);
        assert_eq!(drv_installable(NEW, d), "/nix/store/abc-x.drv^out");
        let old = remote_build_args(OLD, &b(), d);
        assert_eq!(
            old.join(" "),
            "build --no-link --json --store ssh-ng://nixbuild@10.0.0.9 /nix/store/abc-x.drv"
        );
        let new = remote_build_args(NEW, &b(), d);
        assert_eq!(
            new.join(" "),
            "build --no-link --json --store ssh-ng://nixbuild@10.0.0.9 --eval-store auto /nix/store/abc-x.drv^out"
        );
        assert_eq!(
            copy_drv_args(&b(), d).join(" "),
            "copy --derivation --to ssh-ng://nixbuild@10.0.0.9 /nix/store/abc-x.drv"
        );
    }

    #[test]
    fn instantiate_asks_for_drv_path() {
        assert_eq!(
            instantiate_args(".#a.b"),
            ["path-info", "--derivation", ".#a.b"]
        );
    }

    #[test]
    fn copy_script_quotes_and_keeps_checking_strict() {
        let t = Remote {
            name: "nas".into(),
            user: "root".into(),
            address: "10.0.0.2".into(),
        };
        let how = BuilderSsh {
            known_hosts_line: "10.0.0.2 ssh-ed25519 AAAA".into(),
            identity: Some("/k/id".into()),
            forward_agent: false,
            substitute_on_destination: true,
            port: 2222,
            signed: false,
        };
        let signed = copy_to_target_script(
            &Remote {
                user: "hearth-push".into(),
                ..t.clone()
            },
            &["/nix/store/x-y".into()],
            &BuilderSsh {
                signed: true,
                substitute_on_destination: false,
                ..how.clone()
            },
        );
        assert!(
            signed.contains("flakes' copy --to 'ssh-ng://hearth-push@10.0.0.2' /nix/store/x-y"),
            "{signed}"
        );
        let s = copy_to_target_script(&t, &["/nix/store/x-y".into()], &how);
        assert!(
            s.contains("printf '%s\\n' '10.0.0.2 ssh-ed25519 AAAA' > \"$kh\""),
            "{s}"
        );
        assert!(s.contains("StrictHostKeyChecking=yes"), "{s}");
        assert!(
            s.contains(
                "NIX_SSHOPTS=\"-o UserKnownHostsFile=$kh \"'-o StrictHostKeyChecking=yes \
                        -o BatchMode=yes -p 2222 -i /k/id -o IdentitiesOnly=yes' nix "
            ),
            "{s}"
        );
        assert!(s.contains("nix --extra-experimental-features 'nix-command flakes' copy --no-check-sigs --to 'ssh-ng://root@10.0.0.2' --substitute-on-destination /nix/store/x-y"), "{s}");
        assert!(s.ends_with("rm -f \"$kh\"\nexit $rc\n"), "{s}");
        let a = ssh_script_args(&["-F".into(), "/c".into()], &b(), true, "true");
        assert_eq!(a, ["-F", "/c", "-A", "nixbuild@10.0.0.9", "--", "true"]);
        assert!(Remote::new("b", "root", "-oProxyCommand=touch /tmp/x").is_err());
        assert!(Remote::new("b", "-oProxyCommand=x", "10.0.0.9").is_err());
        assert_eq!(
            Remote::new("b", "root", "10.0.0.9").unwrap().ssh_dest(),
            "root@10.0.0.9"
        );
    }

    #[test]
    fn copy_script_runs_in_sh() {
        // The script must at least parse as POSIX sh.
        let t = Remote {
            name: "t".into(),
            user: "root".into(),
            address: "h".into(),
        };
        let s = copy_to_target_script(&t, &["/nix/store/a b".into()], &BuilderSsh::default());
        let st = Command::new("sh").args(["-n", "-c", &s]).status().unwrap();
        assert!(st.success(), "{s}");
    }

    #[test]
    fn parses_build_json() {
        let j = r#"[{"drvPath":"/nix/store/a.drv","outputs":{"out":"/nix/store/a"}}]"#;
        assert_eq!(
            parse_build_json(j).unwrap(),
            [Built {
                drv: "/nix/store/a.drv".into(),
                out: "/nix/store/a".into()
            }]
        );
        assert!(parse_build_json("nope").is_err());
        assert!(parse_build_json(r#"[{"drvPath":"x","outputs":{}}]"#).is_err());
    }

    #[test]
    fn local_build_uses_generated_builders() {
        let m = Machine {
            name: "big".into(),
            uri: "ssh://nixbuild@10.0.0.9".into(),
            systems: vec!["aarch64-linux".into()],
            ssh_key: None,
            max_jobs: 2,
            speed_factor: 1,
            features: vec![],
            mandatory_features: vec![],
            host_key_base64: None,
            substitutes: true,
            port: 22,
        };
        let a = local_build_args(".#x", &[m], true);
        assert_eq!(a[..3], ["build", "--no-link", "--json"]);
        assert!(a.windows(2).any(|w| w == ["--max-jobs", "0"]));
        assert!(a.windows(2).any(|w| w
            == [
                "--builders",
                "ssh://nixbuild@10.0.0.9 aarch64-linux - 2 1 - - -"
            ]));
        assert_eq!(a.last().unwrap(), ".#x");
        let plain = local_build_args(".#x", &[], false);
        assert_eq!(plain.join(" "), "build --no-link --json .#x");
    }
}
