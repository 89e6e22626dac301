//! The per-host pipeline: connect → probe → copy → activate (supervisor) → confirm over a
//! fresh connection → health → verdict → read the final state back from the host.

use super::health;
use super::plan::{HostPlan, Plan};
use super::supervisor::{self, Action, Mode, Params, Status};
use crate::events::{Event, HostOutcome, HostResult, Phase, Sink};
use crate::nix::copy::{self, CopyProgress};
use crate::nix::pathinfo;
use crate::ssh::{self, Session, SshFiles};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// How often the supervisor's state is read over the multiplexed session.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub force: bool,
    pub no_rollback: bool,
    pub parallel: usize,
    pub keep_going: bool,
    pub confirm_timeout: Option<u32>,
    pub activation_timeout: u32,
    /// `ssh-ng://` (nix-daemon --stdio) rather than `ssh://` (nix-store --serve).
    pub ssh_ng: bool,
}

pub struct Ctx {
    pub ssh: SshFiles,
    pub control_dir: PathBuf,
    pub sink: Sink,
    pub opts: Options,
    pub deployer: String,
}

impl Ctx {
    fn emit(&self, e: Event) {
        self.sink.emit(e);
    }
    fn msg(&self, host: &str, text: impl Into<String>) {
        self.emit(Event::Message {
            host: Some(host.to_string()),
            text: text.into(),
        });
    }
}

/// Times each phase and reports it.
pub struct Timer<'a> {
    ctx: &'a Ctx,
    host: String,
    phases: Vec<(Phase, f64)>,
    current: Option<(Phase, Instant)>,
}

impl<'a> Timer<'a> {
    fn new(ctx: &'a Ctx, host: &str) -> Self {
        Self {
            ctx,
            host: host.to_string(),
            phases: Vec::new(),
            current: None,
        }
    }
    fn start(&mut self, p: Phase) {
        self.stop();
        self.ctx.emit(Event::PhaseStarted {
            host: self.host.clone(),
            phase: p,
        });
        self.current = Some((p, Instant::now()));
    }
    fn stop(&mut self) {
        if let Some((p, t)) = self.current.take() {
            let secs = t.elapsed().as_secs_f64();
            self.ctx.emit(Event::PhaseFinished {
                host: self.host.clone(),
                phase: p,
                secs,
            });
            self.phases.push((p, secs));
        }
    }
    fn outcome(mut self, mut o: HostOutcome) -> HostOutcome {
        self.stop();
        o.phases = self.phases;
        o
    }
}

pub async fn connect(ctx: &Ctx, host: &crate::ssh::SshHost) -> Result<Session> {
    Session::connect(&ctx.ssh, host, &ctx.control_dir).await
}

/// Deploy one host whose closure is `toplevel` (built already).
pub async fn deploy_host(
    ctx: &Ctx,
    hp: &HostPlan,
    toplevel: &str,
    session: tokio::task::JoinHandle<Result<Session>>,
) -> HostOutcome {
    let mut t = Timer::new(ctx, &hp.name);
    t.start(Phase::Connect);
    let session = session.await.map_err(anyhow::Error::from).and_then(|r| r);
    let (session, probe) = match probe_with_retry(ctx, hp, session, Some(toplevel)).await {
        Ok(x) => x,
        Err(e) => {
            let mut o = HostOutcome::new(&hp.name, HostResult::Failed);
            o.detail = format!("{e:#}");
            return t.outcome(o);
        }
    };
    let out = deploy_connected(ctx, hp, toplevel, &session, probe, &mut t).await;
    let o = match out {
        Ok(o) => o,
        Err(e) => {
            let mut o = HostOutcome::new(&hp.name, HostResult::Failed);
            o.detail = format!("{e:#}");
            o
        }
    };
    session.close();
    t.outcome(o)
}

async fn deploy_connected(
    ctx: &Ctx,
    hp: &HostPlan,
    toplevel: &str,
    session: &Session,
    probe: supervisor::Probe,
    t: &mut Timer<'_>,
) -> Result<HostOutcome> {
    let sets_profile = matches!(ctx.opts.mode, Mode::Switch | Mode::Boot);
    if probe.current == toplevel && sets_profile && !ctx.opts.force {
        let mut o = HostOutcome::new(&hp.name, HostResult::Unchanged);
        o.old_generation = probe.current_gen;
        o.new_generation = probe.current_gen;
        o.current = Some(probe.current);
        return Ok(o);
    }
    t.start(Phase::Copy);
    if probe.has_closure {
        ctx.emit(Event::CopySkipped {
            host: hp.name.clone(),
            reason: "the host already has the closure".into(),
        });
    } else {
        push(ctx, hp, toplevel, session).await?;
    }
    activate(
        ctx,
        hp,
        Action::Deploy {
            toplevel: toplevel.to_string(),
        },
        session,
        t,
    )
    .await
}

/// The first command on a host. A master reused from an earlier run may have lost its
/// link: give it a short deadline and start a new master if it doesn't answer.
async fn probe_with_retry(
    ctx: &Ctx,
    hp: &HostPlan,
    session: Result<Session>,
    toplevel: Option<&str>,
) -> Result<(Session, supervisor::Probe)> {
    let session = session?;
    if session.reused {
        let first =
            tokio::time::timeout(Duration::from_secs(3), probe(ctx, hp, &session, toplevel));
        if let Ok(Ok(p)) = first.await {
            return Ok((session, p));
        }
        let session = session
            .reconnect(&ctx.ssh, &hp.ssh, &ctx.control_dir)
            .await?;
        let p = probe(ctx, hp, &session, toplevel).await?;
        return Ok((session, p));
    }
    let p = probe(ctx, hp, &session, toplevel).await?;
    Ok((session, p))
}

async fn probe(
    ctx: &Ctx,
    hp: &HostPlan,
    session: &Session,
    toplevel: Option<&str>,
) -> Result<supervisor::Probe> {
    let cmd = format!(
        "{}sh -c {}",
        hp.ssh.root_prefix(),
        ssh::quote(&supervisor::probe_command(
            supervisor::STATE_DIR,
            supervisor::SYSTEM_PROFILE,
            toplevel
        ))
    );
    let out = session.sh(&cmd).await?;
    if !out.success() {
        anyhow::bail!(
            "reading the current generation on `{}` failed: {}",
            hp.name,
            crate::process::tail(out.stderr.trim(), 10)
        );
    }
    let _ = ctx;
    Ok(supervisor::parse_probe(&out.stdout))
}

/// Copy the closure unless the host already has it.
async fn push(ctx: &Ctx, hp: &HostPlan, toplevel: &str, session: &Session) -> Result<()> {
    let uri = copy::store_uri(ctx.opts.ssh_ng, &hp.ssh.user, &hp.name);
    let sshopts = copy::nix_sshopts(&ctx.ssh.config, Some(session.control_socket()));
    // The local closure's size, for the progress bar before Nix reports its own figures;
    // asked concurrently so it never delays the copy.
    let mut progress = CopyProgress::default();
    let mut closure = Some(tokio::spawn(
        tokio::process::Command::from(pathinfo::command(None, toplevel, true, false)).output(),
    ));
    let mut cmd = tokio::process::Command::new("nix");
    cmd.args(copy::copy_args(
        &uri,
        toplevel,
        hp.policy.substitute_on_destination,
    ))
    .env("NIX_SSHOPTS", &sshopts)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd.spawn().context("starting `nix copy`")?;
    let stderr = child.stderr.take().expect("piped");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut other = Vec::new();
    let mut last_emit = Instant::now() - Duration::from_secs(1);
    while let Some(line) = lines.next_line().await? {
        if !line.starts_with("@nix ") {
            other.push(line);
            continue;
        }
        let mut changed = progress.feed(&line);
        if closure.as_ref().is_some_and(|c| c.is_finished()) {
            if let Ok(Ok(out)) = closure.take().expect("checked").await {
                let infos = pathinfo::parse(&String::from_utf8_lossy(&out.stdout));
                // Only an estimate until Nix says what it will copy (it skips what the
                // host already has).
                if let (Ok(infos), 0) = (infos, progress.paths_expected) {
                    let (bytes, paths) = pathinfo::totals(&infos);
                    progress.bytes_expected = bytes;
                    progress.paths_expected = paths;
                    changed = true;
                }
            }
        }
        if changed && last_emit.elapsed() >= Duration::from_millis(100) {
            last_emit = Instant::now();
            emit_progress(ctx, &hp.name, &progress);
        }
    }
    let status = child.wait().await?;
    emit_progress(ctx, &hp.name, &progress);
    if !status.success() {
        let mut why = progress.errors.join("\n");
        if why.is_empty() {
            why = crate::process::tail(&other.join("\n"), 15);
        }
        anyhow::bail!("nix copy to `{}` failed: {}", hp.name, why.trim());
    }
    Ok(())
}

fn emit_progress(ctx: &Ctx, host: &str, p: &CopyProgress) {
    ctx.emit(Event::CopyProgress {
        host: host.to_string(),
        paths_done: p.paths_done,
        paths_expected: p.paths_expected,
        bytes_done: p.bytes_done,
        bytes_expected: p.bytes_expected,
    });
}

fn root_cmd(hp: &HostPlan, script: &str) -> String {
    format!("{}sh -c {}", hp.ssh.root_prefix(), ssh::quote(script))
}

/// Start the supervisor and drive it to a final state; the outcome is what the host says.
pub async fn activate(
    ctx: &Ctx,
    hp: &HostPlan,
    action: Action,
    session: &Session,
    t: &mut Timer<'_>,
) -> Result<HostOutcome> {
    let confirm_timeout = ctx
        .opts
        .confirm_timeout
        .unwrap_or(hp.policy.confirm_timeout);
    let checks = &hp.policy.health;
    let no_checks = health::is_empty(checks);
    let params = Params {
        action,
        mode: ctx.opts.mode,
        token: supervisor::new_token(),
        confirm_timeout,
        verdict_timeout: hp.policy.health_timeout + 30,
        activation_timeout: ctx.opts.activation_timeout,
        magic_rollback: hp.policy.magic_rollback,
        deployer: ctx.deployer.clone(),
        state_dir: supervisor::STATE_DIR.into(),
        profile: supervisor::SYSTEM_PROFILE.into(),
    };
    let token = params.token.clone();
    let sd = params.state_dir.clone();
    t.start(Phase::Activate);
    let out = session
        .sh(&root_cmd(hp, &supervisor::launcher(&params)))
        .await?;
    if !out.success() {
        anyhow::bail!(
            "starting the activation supervisor on `{}` failed: {}",
            hp.name,
            crate::process::tail(out.stderr.trim(), 10)
        );
    }
    let status_cmd = root_cmd(hp, &supervisor::status_command(&sd, &token));
    // Until the supervisor reports activation done: nothing to do but watch.
    let activation_deadline =
        Instant::now() + Duration::from_secs(ctx.opts.activation_timeout as u64 + 15);
    let mut last_state = String::new();
    let mut lost = false;
    let mut st = loop {
        match read_status(session, &status_cmd).await {
            Ok(Some(s)) => {
                if s.state != last_state {
                    last_state = s.state.clone();
                    ctx.emit(Event::Supervisor {
                        host: hp.name.clone(),
                        state: s.state.clone(),
                    });
                }
                if s.is_final() || s.state == "waiting-confirm" || s.state == "confirmed" {
                    break Some(s);
                }
            }
            Ok(None) => {}
            Err(e) => {
                ctx.msg(
                    &hp.name,
                    format!("lost the connection during activation: {e:#}"),
                );
                lost = true;
                break None;
            }
        }
        if Instant::now() > activation_deadline {
            break None;
        }
        tokio::time::sleep(POLL).await;
    };
    let mut health_failed: Option<String> = None;
    if st.as_ref().is_some_and(|s| s.state == "waiting-confirm") {
        // Confirm over a NEW connection (proves new logins still work) and, meanwhile, run
        // the health checks over the pipeline connection; the verdict needs both.
        t.start(Phase::Confirm);
        let cmd = root_cmd(hp, &supervisor::confirm_command(&sd, &token, no_checks));
        let confirm = confirm_fresh(ctx, hp, &cmd, confirm_timeout);
        let health = async {
            if no_checks {
                Ok(())
            } else {
                run_health(ctx, hp, session).await
            }
        };
        let (confirmed, verdict) = tokio::join!(confirm, health);
        match confirmed {
            Ok(()) => {
                t.start(Phase::Health);
                send_verdict(ctx, hp, session, &sd, &token, no_checks, &verdict, &mut health_failed)
                    .await;
            }
            Err(last_err) => ctx.msg(
                &hp.name,
                format!(
                    "could not confirm over a new SSH connection ({last_err}); the host rolls back by itself"
                ),
            ),
        }
        let wait = supervisor::wait_final_command(
            &sd,
            &token,
            confirm_timeout + hp.policy.health_timeout + 30,
        );
        st = match session.sh(&root_cmd(hp, &wait)).await {
            Ok(o) => supervisor::parse_status(&o.stdout).filter(|s| s.is_final()),
            Err(_) => None,
        };
        if let Some(s) = &st {
            ctx.emit(Event::Supervisor {
                host: hp.name.clone(),
                state: s.state.clone(),
            });
        }
        lost = st.is_none();
    }
    if let Some(s) = st.clone().filter(|s| s.state == "confirmed") {
        t.start(Phase::Health);
        let verdict = if no_checks {
            Ok(())
        } else {
            run_health(ctx, hp, session).await
        };
        send_verdict(
            ctx,
            hp,
            session,
            &sd,
            &token,
            no_checks,
            &verdict,
            &mut health_failed,
        )
        .await;
        let _ = s;
        st = wait_for(ctx, hp, session, &status_cmd, &mut last_state, |s| {
            s.is_final()
        })
        .await;
        lost = st.is_none();
    }
    if lost || st.as_ref().is_some_and(|s| !s.is_final()) || st.is_none() {
        // The pipeline connection is gone or the host is slow: the supervisor decides on its
        // own within the confirmation window. Read its verdict over fresh connections.
        st = read_back_fresh(
            ctx,
            hp,
            &status_cmd,
            confirm_timeout + hp.policy.health_timeout + 30,
        )
        .await;
    }
    let Some(s) = st else {
        let mut o = HostOutcome::new(&hp.name, HostResult::Unknown);
        o.detail = "could not read the outcome back from the host (unreachable)".into();
        return Ok(o);
    };
    Ok(outcome_from(&hp.name, &s, health_failed))
}

/// Confirm over fresh connections until one succeeds or the window closes.
async fn confirm_fresh(
    ctx: &Ctx,
    hp: &HostPlan,
    cmd: &str,
    confirm_timeout: u32,
) -> std::result::Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(confirm_timeout as u64);
    let mut last_err = String::from("no attempt finished in time");
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match ssh::fresh_run(&ctx.ssh, &hp.name, cmd, left.max(Duration::from_secs(1))).await {
            Ok(o) if o.success() => return Ok(()),
            Ok(o) => last_err = o.stderr.trim().to_string(),
            Err(e) => last_err = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(last_err)
}

/// Commit, or ask for a rollback with the health checks' reason (kept with --no-rollback).
#[allow(clippy::too_many_arguments)]
async fn send_verdict(
    ctx: &Ctx,
    hp: &HostPlan,
    session: &Session,
    sd: &str,
    token: &str,
    no_checks: bool,
    verdict: &std::result::Result<(), String>,
    health_failed: &mut Option<String>,
) {
    let cmd = match verdict {
        // Without checks the confirmation already carried the commit.
        Ok(()) if no_checks => return,
        Ok(()) => supervisor::commit_command(sd, token),
        Err(why) if ctx.opts.no_rollback => {
            *health_failed = Some(why.clone());
            supervisor::commit_command(sd, token)
        }
        Err(why) => supervisor::rollback_request_command(sd, token, why),
    };
    if let Err(e) = session.sh(&root_cmd(hp, &cmd)).await {
        ctx.msg(&hp.name, format!("could not send the verdict: {e:#}"));
    }
}

async fn read_status(session: &Session, cmd: &str) -> Result<Option<Status>> {
    let out = session.sh(cmd).await?;
    if out.code.is_none() || out.code == Some(255) {
        anyhow::bail!("ssh failed: {}", out.stderr.trim());
    }
    Ok(supervisor::parse_status(&out.stdout))
}

async fn wait_for(
    ctx: &Ctx,
    hp: &HostPlan,
    session: &Session,
    cmd: &str,
    last_state: &mut String,
    done: impl Fn(&Status) -> bool,
) -> Option<Status> {
    let deadline = Instant::now() + Duration::from_secs(ctx.opts.activation_timeout as u64 + 60);
    while Instant::now() < deadline {
        match read_status(session, cmd).await {
            Ok(Some(s)) => {
                if s.state != *last_state {
                    *last_state = s.state.clone();
                    ctx.emit(Event::Supervisor {
                        host: hp.name.clone(),
                        state: s.state.clone(),
                    });
                }
                if done(&s) {
                    return Some(s);
                }
            }
            Ok(None) => {}
            Err(_) => return None,
        }
        tokio::time::sleep(POLL).await;
    }
    None
}

/// Poll the attempt's state over fresh connections until it is final or `secs` pass.
async fn read_back_fresh(ctx: &Ctx, hp: &HostPlan, cmd: &str, secs: u32) -> Option<Status> {
    let deadline = Instant::now() + Duration::from_secs(secs as u64);
    let mut last: Option<Status> = None;
    while Instant::now() < deadline {
        // Short attempts: one started while the link is down must not wait out its SYN
        // retries once the host is back.
        if let Ok(o) = ssh::fresh_run(&ctx.ssh, &hp.name, cmd, Duration::from_secs(3)).await {
            if o.success() {
                if let Some(s) = supervisor::parse_status(&o.stdout) {
                    let fin = s.is_final();
                    last = Some(s);
                    if fin {
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
    if let Some(s) = &last {
        ctx.emit(Event::Supervisor {
            host: hp.name.clone(),
            state: s.state.clone(),
        });
    }
    last.filter(|s| s.is_final())
}

/// Run the health checks until they pass or the health timeout ends.
async fn run_health(
    ctx: &Ctx,
    hp: &HostPlan,
    session: &Session,
) -> std::result::Result<(), String> {
    let checks = &hp.policy.health;
    let script = root_cmd(hp, &health::script(checks));
    let deadline = Instant::now() + Duration::from_secs(hp.policy.health_timeout as u64);
    loop {
        let results = match session.sh(&script).await {
            Ok(o) => health::parse(&o.stdout),
            Err(e) => return Err(format!("health checks could not run: {e:#}")),
        };
        let ok = health::all_ok(checks, &results);
        if ok || Instant::now() >= deadline {
            for r in &results {
                ctx.emit(Event::HealthCheck {
                    host: hp.name.clone(),
                    check: r.name.clone(),
                    ok: r.ok,
                    detail: r.detail.clone(),
                });
            }
            if ok {
                return Ok(());
            }
            let failed: Vec<String> = results
                .iter()
                .filter(|r| !r.ok)
                .map(|r| format!("{} ({})", r.name, r.detail))
                .collect();
            return Err(format!(
                "health check failed after {}s: {}",
                hp.policy.health_timeout,
                failed.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Map the supervisor's final state to the host's outcome.
pub fn outcome_from(host: &str, s: &Status, health_failed: Option<String>) -> HostOutcome {
    let result = match s.state.as_str() {
        "committed" if health_failed.is_some() => HostResult::Failed,
        "committed" => HostResult::Deployed,
        "dry-activated" => HostResult::DryActivated,
        "rolled-back" => HostResult::RolledBack,
        "refused" => HostResult::Refused,
        _ => HostResult::Failed,
    };
    let mut o = HostOutcome::new(host, result);
    o.old_generation = s.old_gen;
    o.new_generation = s.cur_gen;
    o.current = Some(s.cur_path.clone()).filter(|p| !p.is_empty());
    o.rolled_back = s.state == "rolled-back";
    o.detail = match (result, health_failed) {
        (HostResult::Failed, Some(h)) => format!("{h} (kept: --no-rollback)"),
        (HostResult::Failed, None) if s.state != "failed" => {
            format!("{}: {}", s.state, s.reason)
        }
        _ => s.reason.clone(),
    };
    o
}

/// Run hosts in rolling batches, `parallel` at a time; stop after a failed batch unless
/// `keep_going`.
pub async fn run_batches(
    ctx: Arc<Ctx>,
    plan: &Plan,
    toplevels: &BTreeMap<String, String>,
    mut sessions: BTreeMap<String, tokio::task::JoinHandle<Result<Session>>>,
) -> Vec<HostOutcome> {
    let sem = Arc::new(tokio::sync::Semaphore::new(ctx.opts.parallel.max(1)));
    let mut outcomes = Vec::new();
    let mut stop = false;
    for batch in &plan.batches {
        if stop {
            for h in batch {
                let mut o = HostOutcome::new(h, HostResult::Skipped);
                o.detail = "not attempted: an earlier batch failed (use --keep-going)".into();
                ctx.emit(Event::HostFinished { outcome: o.clone() });
                outcomes.push(o);
                if let Some(s) = sessions.remove(h) {
                    s.abort();
                }
            }
            continue;
        }
        let mut tasks = Vec::new();
        for h in batch {
            let hp = plan.host(h).clone();
            let toplevel = toplevels[h].clone();
            let session = sessions.remove(h).expect("session task per host");
            let ctx = ctx.clone();
            let sem = sem.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore open");
                let o = deploy_host(&ctx, &hp, &toplevel, session).await;
                ctx.emit(Event::HostFinished { outcome: o.clone() });
                o
            }));
        }
        for (h, task) in batch.iter().zip(tasks) {
            let o = task.await.unwrap_or_else(|e| {
                let mut o = HostOutcome::new(h, HostResult::Failed);
                o.detail = format!("internal error: {e}");
                o
            });
            if !o.result.is_success() {
                stop = !ctx.opts.keep_going;
            }
            outcomes.push(o);
        }
    }
    outcomes
}

/// `hearth rollback`: switch to the generation before the current one, through the
/// supervisor, with the same confirmation and health checks as a deploy.
pub async fn rollback_host(ctx: &Ctx, hp: &HostPlan) -> HostOutcome {
    let mut t = Timer::new(ctx, &hp.name);
    t.start(Phase::Connect);
    let session = connect(ctx, &hp.ssh).await;
    let (session, p) = match probe_with_retry(ctx, hp, session, None).await {
        Ok(x) => x,
        Err(e) => {
            let mut o = HostOutcome::new(&hp.name, HostResult::Failed);
            o.detail = format!("{e:#}");
            return t.outcome(o);
        }
    };
    let result = async {
        let Some((gen, path)) = p.previous_generation() else {
            anyhow::bail!(
                "`{}` has no generation before {} to roll back to",
                hp.name,
                p.current_gen
                    .map(|g| g.to_string())
                    .unwrap_or_else(|| "the current one".into())
            );
        };
        ctx.msg(
            &hp.name,
            format!("rolling back to generation {gen} ({path})"),
        );
        activate(
            ctx,
            hp,
            Action::Rollback { generation: gen },
            &session,
            &mut t,
        )
        .await
    }
    .await;
    session.close();
    let o = result.unwrap_or_else(|e| {
        let mut o = HostOutcome::new(&hp.name, HostResult::Failed);
        o.detail = format!("{e:#}");
        o
    });
    t.outcome(o)
}
