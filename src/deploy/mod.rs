//! `hearth deploy`: select → eval/build → push → activate (magic rollback) → health → report.
//! Also `hearth rollback` and `hearth status`, which share the supervisor and the probe.

pub mod build;
pub mod fanout;
pub mod health;
pub mod link;
pub mod pipeline;
pub mod plan;
pub mod select;
pub mod supervisor;

use crate::events::{Event, HostOutcome, HostResult, Sink};
use crate::inventory::{self, Inventory};
use anyhow::{Context, Result};
use pipeline::{Ctx, Options};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use supervisor::Mode;

/// Options shared by deploy, rollback and status.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Flake to build from (default: the repository root).
    #[arg(long, env = "HEARTH_FLAKE", value_name = "REF")]
    pub flake: Option<String>,
    /// SSH private key to use for every host.
    #[arg(long, env = "HEARTH_SSH_IDENTITY", value_name = "FILE")]
    pub ssh_identity: Option<PathBuf>,
    /// Extra ssh config to include after hearth's own (which sets strict host-key checking).
    #[arg(long, env = "HEARTH_SSH_CONFIG", value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Print one JSON event per line instead of progress and tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// Hosts: names, `@tag`, or globs (quote them).
    pub hosts: Vec<String>,
    /// Deploy every host in the inventory.
    #[arg(long)]
    pub all: bool,
    /// Print the plan (what builds where, what is copied where, what activates); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, value_enum, default_value = "switch")]
    pub mode: Mode,
    /// Hosts copied and activated at the same time.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub parallel: usize,
    /// Rolling deploy: K hosts per batch; stops after a failed batch unless --keep-going.
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub batch_size: usize,
    #[arg(long)]
    pub keep_going: bool,
    /// Copy and activate even when the host already runs this system.
    #[arg(long)]
    pub force: bool,
    /// Keep a generation whose health checks failed (activation failures and missing
    /// confirmations still roll back).
    #[arg(long)]
    pub no_rollback: bool,
    /// Override every host's confirm_timeout (seconds).
    #[arg(long, value_name = "SECS")]
    pub confirm_timeout: Option<u32>,
    /// Longest switch-to-configuration may run before it counts as failed.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub activation_timeout: u32,
    /// Copy with `ssh://` (nix-store --serve) instead of `ssh-ng://` (nix-daemon --stdio).
    #[arg(long)]
    pub legacy_ssh_store: bool,
    /// Push every host's closure from this machine (no host-to-host copies), as before
    /// signing and fan-out.
    #[arg(long)]
    pub no_fan_out: bool,
    /// Make the deployer's signing key (secret in ~/.config/hearth/signing/, public half in
    /// keys/deployer.pub), then stop: run `hearth gen`, commit keys/, and deploy.
    #[arg(long)]
    pub init_signing: bool,
    #[command(flatten)]
    pub builders: crate::builders::RemoteBuildArgs,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    pub host: String,
    #[arg(long, value_name = "SECS")]
    pub confirm_timeout: Option<u32>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Hosts (names, `@tag`, globs); all when empty.
    pub hosts: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

fn sink(json: bool) -> Sink {
    if json {
        Arc::new(crate::ui::JsonLines)
    } else {
        Arc::new(crate::ui::Progress::new())
    }
}

fn deployer_id() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{host}/pid{}", std::process::id())
}

fn flake_ref(root: &Path, common: &Common) -> Result<String> {
    match &common.flake {
        Some(f) => Ok(f.clone()),
        None => crate::nix::flake::repo_flake_ref(root),
    }
}

fn candidates(inv: &Inventory) -> Vec<select::Candidate<'_>> {
    inv.hosts
        .values()
        .map(|h| select::Candidate {
            name: &h.name,
            tags: &h.file.tags,
        })
        .collect()
}

fn ssh_setup(
    root: &Path,
    inv: &Inventory,
    hosts: &[String],
    common: &Common,
) -> Result<crate::ssh::SshFiles> {
    let ssh_hosts = hosts
        .iter()
        .map(|h| inv.ssh_host(h))
        .collect::<Result<Vec<_>>>()?;
    let settings = crate::ssh::SshSettings {
        identity: common.ssh_identity.clone(),
        include: common.ssh_config.clone(),
    };
    crate::ssh::write_files(&crate::ssh::repo_files_dir(root), &ssh_hosts, &settings)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn run_deploy(root: &Path, args: DeployArgs) -> Result<u8> {
    let inv = inventory::load(root)?;
    if args.init_signing {
        return init_signing(root, &inv);
    }
    let selected = select::select(&candidates(&inv), &args.hosts, args.all)?;
    crate::secrets::deploy_gate(root, &inv, &selected)?;
    let plan = deploy_plan(root, &inv, &selected, &args)?;
    let sink = sink(args.common.json);
    sink.emit(Event::Plan {
        hosts: plan.describe(),
        dry_run: args.dry_run,
    });
    if args.dry_run {
        if !args.common.json {
            print!("{}", plan::render(&plan));
        }
        return Ok(0);
    }
    let ssh = ssh_setup(root, &inv, &selected, &args.common)?;
    let ctx = Arc::new(Ctx {
        ssh: ssh.clone(),
        control_dir: crate::ssh::control_dir(),
        sink: sink.clone(),
        opts: options(&args),
        deployer: deployer_id(),
        signing: crate::nix::sign::deployer_key(root, &inv.fleet.domain)?,
    });
    let rt = runtime()?;
    let outcomes = rt.block_on(build_and_deploy(root, &inv, &plan, &selected, ctx, &sink));
    finish(&sink, outcomes)
}

/// `deploy --init-signing`: make the deployer's signing key and say what to do next.
fn init_signing(root: &Path, inv: &Inventory) -> Result<u8> {
    let version = plan::local_nix().nix_version();
    let key = crate::nix::sign::create_deployer_key(root, &inv.fleet.domain, version)?;
    println!(
        "deployer signing key {}\n  secret: {} (keep it; copy it to other machines you deploy from)\n  public: keys/deployer.pub\nNext: `hearth gen`, commit keys/ and generated/, and deploy.",
        key.public,
        key.secret.display()
    );
    Ok(0)
}

/// The plan: placement and batches, remote builds, fan-out and the peers' keys.
fn deploy_plan(
    root: &Path,
    inv: &Inventory,
    selected: &[String],
    args: &DeployArgs,
) -> Result<plan::Plan> {
    let flake = flake_ref(root, &args.common)?;
    let mut plan = plan::make_plan(inv, selected, flake, args.mode, args.batch_size)?;
    plan.remote_build = args.builders.exec_options(args.common.ssh_identity.clone());
    plan.fan_out = !args.no_fan_out && root.join("keys").join("deployer.pub").exists();
    plan.peer_keys = selected
        .iter()
        .filter(|h| crate::nix::sign::peer_public_key(root, h).is_some())
        .cloned()
        .collect();
    Ok(plan)
}

fn options(args: &DeployArgs) -> Options {
    Options {
        mode: args.mode,
        force: args.force,
        no_rollback: args.no_rollback,
        parallel: args.parallel,
        keep_going: args.keep_going,
        confirm_timeout: args.confirm_timeout,
        activation_timeout: args.activation_timeout,
        ssh_ng: !args.legacy_ssh_store,
        fan_out: !args.no_fan_out,
    }
}

/// Connect to every host and read what it runs while the build runs; then the batches.
async fn build_and_deploy(
    root: &Path,
    inv: &Inventory,
    plan: &plan::Plan,
    selected: &[String],
    ctx: Arc<Ctx>,
    sink: &Sink,
) -> Vec<HostOutcome> {
    let sessions: BTreeMap<_, _> = selected
        .iter()
        .map(|h| {
            let ctx = ctx.clone();
            let hp = plan.host(h).clone();
            (
                h.clone(),
                tokio::spawn(async move { pipeline::connect_and_probe(&ctx, &hp).await }),
            )
        })
        .collect();
    let built = {
        let plan = plan.clone();
        let root = root.to_path_buf();
        let inv = inv.clone();
        let sink = sink.clone();
        tokio::task::spawn_blocking(move || build::build_all(&root, &inv, &plan, &sink))
            .await
            .expect("build task")
    };
    match built {
        Ok(toplevels) => pipeline::run_batches(ctx.clone(), plan, &toplevels, sessions).await,
        Err(e) => {
            sink.emit(Event::Message {
                host: None,
                text: format!("{e:#}"),
            });
            selected
                .iter()
                .map(|h| {
                    let mut o = HostOutcome::new(h, HostResult::Skipped);
                    o.detail = "not attempted: the build failed".into();
                    o
                })
                .collect()
        }
    }
}

fn finish(sink: &Sink, outcomes: Vec<HostOutcome>) -> Result<u8> {
    let ok = outcomes.iter().all(|o| o.result.is_success());
    sink.emit(Event::Summary {
        hosts: outcomes,
        ok,
    });
    Ok(if ok { 0 } else { 1 })
}

/// `hearth rollback HOST`: back to the previous generation, through the supervisor (so an
/// unreachable result rolls forward again by itself).
pub fn run_rollback(root: &Path, args: RollbackArgs) -> Result<u8> {
    let inv = inventory::load(root)?;
    let selected = select::select(&candidates(&inv), std::slice::from_ref(&args.host), false)?;
    let plan = plan::make_plan(
        &inv,
        &selected,
        flake_ref(root, &args.common)?,
        Mode::Switch,
        0,
    )?;
    let hp = plan.hosts[0].clone();
    let ssh = ssh_setup(root, &inv, &selected, &args.common)?;
    let sink = sink(args.common.json);
    let ctx = Ctx {
        ssh: ssh.clone(),
        control_dir: crate::ssh::control_dir(),
        sink: sink.clone(),
        opts: Options {
            mode: Mode::Switch,
            force: true,
            no_rollback: false,
            parallel: 1,
            keep_going: false,
            confirm_timeout: args.confirm_timeout,
            activation_timeout: 300,
            ssh_ng: true,
            fan_out: false,
        },
        deployer: deployer_id(),
        signing: None,
    };
    let rt = runtime()?;
    let outcome = rt.block_on(pipeline::rollback_host(&ctx, &hp));
    sink.emit(Event::HostFinished {
        outcome: outcome.clone(),
    });
    finish(&sink, vec![outcome])
}

/// One row of `hearth status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostStatus {
    pub host: String,
    pub reachable: bool,
    pub generation: Option<u32>,
    pub current: String,
    /// What the repository builds now (evaluated, not built).
    pub repo: Option<String>,
    pub drift: Option<bool>,
    pub last_deploy: String,
    pub lock: String,
    pub error: String,
}

pub fn run_status(root: &Path, args: StatusArgs) -> Result<u8> {
    let inv = inventory::load(root)?;
    let selected = select::select(&candidates(&inv), &args.hosts, args.hosts.is_empty())?;
    let flake = flake_ref(root, &args.common)?;
    let ssh = ssh_setup(root, &inv, &selected, &args.common)?;
    let rt = runtime()?;
    let repo = {
        let selected = selected.clone();
        let flake = flake.clone();
        std::thread::spawn(move || build::evaluate_toplevels(&flake, &selected))
    };
    let probes = rt.block_on(async {
        let tasks: Vec<_> = selected
            .iter()
            .map(|h| {
                let (ssh, target) = (ssh.clone(), inv.ssh_host(h));
                tokio::spawn(async move { probe_host(&ssh, target?).await })
            })
            .collect();
        let mut v = Vec::new();
        for t in tasks {
            v.push(t.await.map_err(anyhow::Error::from).and_then(|r| r));
        }
        v
    });
    let repo = repo.join().expect("eval thread");
    let repo_err = repo.as_ref().err().map(|e| format!("{e:#}"));
    let repo = repo.unwrap_or_default();
    let rows: Vec<HostStatus> = selected
        .iter()
        .zip(probes)
        .map(|(h, p)| status_row(h, repo.get(h).cloned(), p))
        .collect();
    if args.common.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
    } else {
        print!("{}", status_table(&rows));
        if let Some(e) = &repo_err {
            eprintln!("could not evaluate what the repository builds: {e}");
        }
    }
    Ok(if rows.iter().all(|r| r.reachable) {
        0
    } else {
        1
    })
}

/// What a host runs, read over the deploy's session (`Profile::Deploy`) with the
/// supervisor's probe, as root.
async fn probe_host(
    ssh: &crate::ssh::SshFiles,
    target: crate::ssh::SshHost,
) -> Result<supervisor::Probe> {
    let dir = crate::ssh::control_dir();
    let s = crate::ssh::Session::connect(ssh, &target, &dir).await?;
    let probe = supervisor::probe_command(supervisor::STATE_DIR, supervisor::SYSTEM_PROFILE);
    let out = s.sh(&crate::ssh::as_root(&target, &probe)).await;
    s.close();
    let out = out?;
    // An empty answer is not "runs nothing": it is never drift.
    if !out.success() {
        anyhow::bail!("{}", probe_failure(&out.stderr));
    }
    Ok(supervisor::parse_probe(&out.stdout))
}

/// One row of `hearth status`: what the host runs against what the repository builds.
fn status_row(h: &str, want: Option<String>, p: Result<supervisor::Probe>) -> HostStatus {
    match p {
        Ok(p) => HostStatus {
            host: h.to_string(),
            reachable: true,
            generation: p.current_gen,
            drift: want
                .as_ref()
                .map(|w| w != &p.current || w != p.running_system()),
            current: p.current,
            repo: want,
            last_deploy: if p.last_reason.is_empty() {
                p.last_state
            } else {
                format!("{} ({})", p.last_state, p.last_reason)
            },
            lock: p.lock_holder,
            error: String::new(),
        },
        Err(e) => HostStatus {
            host: h.to_string(),
            reachable: false,
            generation: None,
            current: String::new(),
            repo: want,
            drift: None,
            last_deploy: String::new(),
            lock: String::new(),
            error: format!("{e:#}"),
        },
    }
}

fn short(p: &str) -> String {
    p.strip_prefix("/nix/store/")
        .map(|s| {
            s.get(..8)
                .map(|h| format!("{h}…{}", &s[32.min(s.len())..]))
                .unwrap_or(s.into())
        })
        .unwrap_or_else(|| if p.is_empty() { "-".into() } else { p.into() })
}

pub fn status_table(rows: &[HostStatus]) -> String {
    let mut s = String::from("HOST\tGEN\tRUNNING\tDRIFT\tLAST DEPLOY\n");
    for r in rows {
        if !r.reachable {
            s.push_str(&format!(
                "{}\t-\tunreachable: {}\t-\t-\n",
                r.host,
                r.error.replace('\n', " ")
            ));
            continue;
        }
        let drift = match r.drift {
            Some(true) => format!(
                "drift (repo builds {})",
                short(r.repo.as_deref().unwrap_or(""))
            ),
            Some(false) => "in sync".into(),
            None => "unknown".into(),
        };
        let gen = r
            .generation
            .map(|g| g.to_string())
            .unwrap_or_else(|| "-".into());
        let mut last = if r.last_deploy.is_empty() {
            "-".to_string()
        } else {
            r.last_deploy.clone()
        };
        if !r.lock.is_empty() {
            last.push_str(&format!(" [locked: {}]", r.lock));
        }
        s.push_str(&format!(
            "{}\t{gen}\t{}\t{drift}\t{last}\n",
            r.host,
            short(&r.current)
        ));
    }
    s
}

/// Why a probe that reached the host got no answer: refused (sudo, permissions) or not.
pub fn probe_failure(stderr: &str) -> String {
    let tail = crate::process::tail(stderr.trim(), 3);
    let refused = [
        "Permission denied",
        "sudo:",
        "not in the sudoers",
        "a password is required",
    ];
    if refused.iter().any(|r| stderr.contains(r)) {
        format!("unauthorised: {tail}")
    } else {
        format!("could not query the host: {tail}")
    }
}

#[cfg(test)]
mod probe_failure_tests {
    #[test]
    fn refusals_are_unauthorised() {
        assert_eq!(
            super::probe_failure("sudo: a password is required\n"),
            "unauthorised: sudo: a password is required"
        );
        assert_eq!(
            super::probe_failure("sh: 1: oops\n"),
            "could not query the host: sh: 1: oops"
        );
    }
}
