//! The build step: hosts grouped by [`BuildPlacement`]; every local host in ONE `nix build`
//! (one evaluator), results from `--json`, a GC root per host under `.hearth/gcroots/`.

use super::plan::{BuildPlacement, Plan};
pub use crate::builders::exec::Built;
use crate::events::{Event, Sink};
use crate::inventory::Inventory;
use crate::nix::build as nb;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Build every host of the plan; returns host → its toplevel, and where it is now (the
/// deployer's store, or already the target's when a builder copied it there).
pub fn build_all(
    root: &Path,
    inv: &Inventory,
    plan: &Plan,
    sink: &Sink,
) -> Result<BTreeMap<String, Built>> {
    let mut groups: BTreeMap<String, (BuildPlacement, Vec<String>)> = BTreeMap::new();
    for h in &plan.hosts {
        groups
            .entry(h.placement.describe())
            .or_insert_with(|| (h.placement.clone(), Vec::new()))
            .1
            .push(h.name.clone());
    }
    let mut out = BTreeMap::new();
    for (_, (placement, hosts)) in groups {
        sink.emit(Event::BuildStarted {
            hosts: hosts.clone(),
            placement: placement.describe(),
        });
        let built: BTreeMap<String, Built> = match placement {
            BuildPlacement::Local => build_local(&plan.flake, &hosts, sink)?
                .into_iter()
                .map(|(h, out)| (h, Built::Local { out }))
                .collect(),
            BuildPlacement::Builder { .. } | BuildPlacement::Target => {
                build_placed(inv, plan, &placement, &hosts)?
            }
        };
        let local: BTreeMap<String, String> = built
            .iter()
            .filter(|(_, b)| matches!(b, Built::Local { .. }))
            .map(|(h, b)| (h.clone(), b.out().to_string()))
            .collect();
        add_gc_roots(root, &local)?;
        for (h, b) in &built {
            sink.emit(Event::Built {
                host: h.clone(),
                toplevel: b.out().to_string(),
            });
        }
        out.extend(built);
    }
    Ok(out)
}

/// Hosts built on a builder or on the target (issue 5).
fn build_placed(
    inv: &Inventory,
    plan: &Plan,
    placement: &BuildPlacement,
    hosts: &[String],
) -> Result<BTreeMap<String, Built>> {
    use crate::builders::{exec, mechanism::Runner, sshenv::SshEnv, Where};
    let ssh = SshEnv::new(inv, plan.remote_build.local_identity.as_deref())?;
    let runner = Runner {
        version: plan.local.nix_version(),
        ssh: &ssh,
    };
    let location = match placement {
        BuildPlacement::Builder { name, emulated } => Where::Builder {
            name: name.clone(),
            emulated: *emulated,
        },
        BuildPlacement::Target => Where::Target,
        BuildPlacement::Local => Where::Local,
    };
    // Hosts on the same builder (or targets) build side by side; the builder's own
    // max-jobs bounds the real work.
    let results: Vec<(String, Result<exec::Built>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = hosts
            .iter()
            .map(|h| {
                let (runner, location) = (&runner, &location);
                let handle = scope.spawn(move || {
                    let host = inv.host(h).with_context(|| format!("unknown host `{h}`"))?;
                    let installable = nb::toplevel_attr(&plan.flake, h);
                    exec::build_placed(
                        inv,
                        runner,
                        host,
                        location,
                        &installable,
                        &plan.remote_build,
                    )
                    .with_context(|| format!("building `{h}` {}", placement.describe()))
                });
                (h.clone(), handle)
            })
            .collect();
        handles
            .into_iter()
            .map(|(h, t)| {
                (
                    h,
                    t.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("build thread panicked"))),
                )
            })
            .collect()
    });
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for (h, r) in results {
        match r {
            Ok(built) => {
                out.insert(h, built);
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(out)
}

fn build_local(flake: &str, hosts: &[String], sink: &Sink) -> Result<BTreeMap<String, String>> {
    let installables: Vec<String> = hosts.iter().map(|h| nb::toplevel_attr(flake, h)).collect();
    let mut cmd = crate::nix::command();
    cmd.args(nb::build_args(&installables));
    let what = crate::process::display_command(&cmd);
    let output = cmd.output().with_context(|| format!("starting `{what}`"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let f = nb::parse_build_failure(&stderr);
        let log_tail = f
            .drv
            .as_deref()
            .and_then(|d| crate::process::run_stdout(&mut nb::log_command(d)).ok())
            .map(|l| crate::process::tail(l.trim_end(), 25))
            .unwrap_or_default();
        let log_path = f
            .drv
            .as_deref()
            .and_then(nb::log_path)
            .map(|p| p.display().to_string());
        sink.emit(Event::BuildFailed {
            drv: f.drv.clone(),
            log_tail: log_tail.clone(),
            log_path: log_path.clone(),
            message: f.message.clone(),
        });
        let mut msg = String::from("build failed");
        if let Some(d) = &f.drv {
            msg.push_str(&format!(" in {d}"));
        }
        if let Some(p) = &log_path {
            msg.push_str(&format!(
                " (full log: {p}, or `nix log {}`)",
                f.drv.as_deref().unwrap_or("")
            ));
        }
        if log_tail.is_empty() {
            msg.push_str(&format!(":\n{}", crate::process::tail(&f.message, 25)));
        }
        bail!(msg);
    }
    let results = nb::parse_build_json(&String::from_utf8_lossy(&output.stdout))?;
    Ok(nb::results_by_host(hosts, results)?
        .into_iter()
        .map(|(h, r)| (h, r.out))
        .collect())
}

fn add_gc_roots(root: &Path, built: &BTreeMap<String, String>) -> Result<()> {
    let dir = root.join(".hearth").join("gcroots");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // An unchanged root needs no nix-store call (keeps a no-op redeploy fast); the others
    // are added side by side, since each call is mostly Nix start-up.
    let changed: Vec<(&String, &String)> = built
        .iter()
        .filter(|(h, p)| !std::fs::read_link(dir.join(h)).is_ok_and(|t| t == Path::new(p)))
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = changed
            .iter()
            .map(|(h, p)| {
                let dir = &dir;
                scope.spawn(move || {
                    crate::process::run(&mut nb::gcroot_command(dir, h, p))
                        .with_context(|| format!("adding a GC root for `{h}`"))
                })
            })
            .collect();
        handles.into_iter().try_for_each(|t| {
            t.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("GC root thread panicked")))
                .map(|_| ())
        })
    })
}

/// What the repository builds now for each host, evaluated without building (for status).
pub fn evaluate_toplevels(flake: &str, hosts: &[String]) -> Result<BTreeMap<String, String>> {
    let names: Vec<String> = hosts
        .iter()
        .map(|h| format!("\"{}\" = null;", h.replace('"', "\\\"")))
        .collect();
    let apply = format!(
        "cs: builtins.mapAttrs (n: c: c.config.system.build.toplevel.outPath) (builtins.intersectAttrs {{ {} }} cs)",
        names.join(" ")
    );
    let out = crate::process::run_stdout(
        crate::nix::command()
            .args([
                "eval",
                "--json",
                &format!("{flake}#nixosConfigurations"),
                "--apply",
            ])
            .arg(apply),
    )?;
    serde_json::from_str(&out).context("parsing `nix eval --json` output")
}
