//! The per-host pipeline: connect and probe (while the build runs) → copy → activate
//! (supervisor) → confirm over a fresh connection, with the health checks alongside →
//! the final state, read back from the host.

use super::build::Built;
use super::fanout::{self, FanOut};
use super::health;
use super::plan::{HostPlan, Plan};
use super::supervisor::{self, Action, Mode, Params, Probe, Status};
use crate::events::{Event, HostOutcome, HostResult, Phase, Sink};
use crate::nix::copy::{self, CopyProgress};
use crate::nix::pathinfo;
use crate::ssh::{self, Session, SshFiles};
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

/// Reading an outcome back over fresh connections: a new attempt this often, each with
/// this deadline, so one stuck on a link that was down never delays seeing it come back.
const READ_BACK_EVERY: Duration = Duration::from_millis(400);
/// How long one read-back waits on the host for a final state before it reports.
const READ_BACK_WAIT_SECS: u32 = 2;
/// One read-back's deadline: connect (ssh's ConnectTimeout is 3 s) plus the wait.
const READ_BACK_ATTEMPT: Duration = Duration::from_secs(3 + READ_BACK_WAIT_SECS as u64);

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
    /// Hosts pull shared paths from each other (needs a signing key); `--no-fan-out` clears it.
    pub fan_out: bool,
}

pub struct Ctx {
    pub ssh: SshFiles,
    pub control_dir: PathBuf,
    pub sink: Sink,
    pub opts: Options,
    pub deployer: String,
    /// The deployer's signing key: what it pushes is signed, and copied without
    /// `--no-check-sigs`. None: the old way (unsigned, to a user the target trusts).
    pub signing: Option<crate::nix::sign::DeployerKey>,
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
        self.split(p, Instant::now());
    }
    /// End the current phase at `at` (which may be a moment ago) and start `p` there.
    fn split(&mut self, p: Phase, at: Instant) {
        self.stop_at(at);
        self.ctx.emit(Event::PhaseStarted {
            host: self.host.clone(),
            phase: p,
        });
        self.current = Some((p, at));
    }
    fn stop_at(&mut self, at: Instant) {
        if let Some((p, t)) = self.current.take() {
            let secs = at.saturating_duration_since(t).as_secs_f64();
            self.ctx.emit(Event::PhaseFinished {
                host: self.host.clone(),
                phase: p,
                secs,
            });
            self.phases.push((p, secs));
        }
    }
    fn outcome(mut self, mut o: HostOutcome) -> HostOutcome {
        self.stop_at(Instant::now());
        o.phases = self.phases;
        o
    }
}

/// Connect (or reuse a live master) and read what the host runs: done while the build runs,
/// so that after it only the comparison with the built toplevel is left.
pub async fn connect_and_probe(ctx: &Ctx, hp: &HostPlan) -> Result<(Session, Probe)> {
    let session = Session::connect(&ctx.ssh, &hp.ssh, &ctx.control_dir).await;
    probe_with_retry(ctx, hp, session).await
}

/// Deploy one host whose toplevel is built already.
pub async fn deploy_host(
    ctx: &Ctx,
    hp: &HostPlan,
    built: &Built,
    connected: tokio::task::JoinHandle<Result<(Session, Probe)>>,
    fan: Option<Arc<FanOut>>,
) -> HostOutcome {
    let o = deploy_host_inner(ctx, hp, built, connected, fan.as_deref()).await;
    // Hosts pulling from this one stop waiting (a no-op once it holds its closure).
    if let Some(f) = &fan {
        f.done(&hp.name, false);
    }
    o
}

async fn deploy_host_inner(
    ctx: &Ctx,
    hp: &HostPlan,
    built: &Built,
    connected: tokio::task::JoinHandle<Result<(Session, Probe)>>,
    fan: Option<&FanOut>,
) -> HostOutcome {
    let mut t = Timer::new(ctx, &hp.name);
    t.start(Phase::Connect);
    let (session, probe) = match connected.await.map_err(anyhow::Error::from).and_then(|r| r) {
        Ok(x) => x,
        Err(e) => {
            let mut o = HostOutcome::new(&hp.name, HostResult::Failed);
            o.detail = format!("{e:#}");
            return t.outcome(o);
        }
    };
    let out = deploy_connected(ctx, hp, built, &session, probe, &mut t, fan).await;
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
    built: &Built,
    session: &Session,
    probe: Probe,
    t: &mut Timer<'_>,
    fan: Option<&FanOut>,
) -> Result<HostOutcome> {
    let toplevel = built.out();
    let sets_profile = matches!(ctx.opts.mode, Mode::Switch | Mode::Boot);
    // "Unchanged" only if the host also runs it: after `--mode boot`, or a `test`, the
    // profile and the running system differ and a switch must still activate.
    let unchanged = match ctx.opts.mode {
        Mode::Switch => probe.current == toplevel && probe.running_system() == toplevel,
        _ => probe.current == toplevel,
    };
    if probe.current == toplevel {
        if let Some(f) = fan {
            f.done(&hp.name, true);
        }
    }
    if unchanged && sets_profile && !ctx.opts.force {
        let mut o = HostOutcome::new(&hp.name, HostResult::Unchanged);
        o.old_generation = probe.current_gen;
        o.new_generation = probe.current_gen;
        o.current = Some(probe.current);
        return Ok(o);
    }
    t.start(Phase::Copy);
    if probe.current == toplevel {
        ctx.emit(Event::CopySkipped {
            host: hp.name.clone(),
            reason: "the host runs this system already".into(),
        });
    } else if matches!(built, Built::OnTarget { .. }) {
        // Activation fails, and says so, if the path is not there after all.
        ctx.emit(Event::CopySkipped {
            host: hp.name.clone(),
            reason: "the builder put the closure on the host directly".into(),
        });
    } else {
        let copied = copy_closure(ctx, hp, toplevel, session, fan).await?;
        if copied.paths_done == 0 {
            ctx.emit(Event::CopySkipped {
                host: hp.name.clone(),
                reason: "the host already has the closure".into(),
            });
        }
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
) -> Result<(Session, Probe)> {
    let session = session?;
    if session.reused {
        let first = tokio::time::timeout(Duration::from_secs(3), probe(hp, &session));
        if let Ok(Ok(p)) = first.await {
            return Ok((session, p));
        }
        let session = session
            .reconnect(&ctx.ssh, &hp.ssh, &ctx.control_dir)
            .await?;
        let p = probe(hp, &session).await?;
        return Ok((session, p));
    }
    let p = probe(hp, &session).await?;
    Ok((session, p))
}

async fn probe(hp: &HostPlan, session: &Session) -> Result<Probe> {
    let cmd = root_cmd(
        hp,
        &supervisor::probe_command(supervisor::STATE_DIR, supervisor::SYSTEM_PROFILE),
    );
    let out = session.sh(&cmd).await?;
    if !out.success() {
        anyhow::bail!(
            "reading the current generation on `{}` failed: {}",
            hp.name,
            crate::process::tail(out.stderr.trim(), 10)
        );
    }
    Ok(supervisor::parse_probe(&out.stdout))
}

/// Copy the closure, with fan-out when there is a tree. No separate "has it already?" round
/// trip: `nix copy` asks the host which paths it lacks and copies only those.
///
/// A host with a peer starts a direct push like every other host (so on a fast link it is
/// never later than without fan-out) and stops it for the peer only once the deployer's
/// link is judged slow; then the shared paths come over the LAN and the push sends the rest.
async fn copy_closure(
    ctx: &Ctx,
    hp: &HostPlan,
    toplevel: &str,
    session: &Session,
    fan: Option<&FanOut>,
) -> Result<CopyProgress> {
    let Some(f) = fan else {
        return Ok(push(ctx, hp, toplevel, session, None)
            .await?
            .unwrap_or_default());
    };
    let has_peer = f.peer_of(&hp.name).is_some();
    let judged_slow = matches!(f.link(), Some(fanout::Link::Slow(_)));
    let mut copied = None;
    if !(has_peer && judged_slow) {
        f.copy_started();
        copied = push(ctx, hp, toplevel, session, Some(f).filter(|_| has_peer)).await?;
        if copied.is_some() && has_peer {
            let note = match f.link() {
                Some(fanout::Link::Fast(b)) => format!(
                    "this machine's link is fast ({} Mbit/s over all copies): direct",
                    b * 8 / 1_000_000
                ),
                _ => "copied directly before the link was judged".to_string(),
            };
            ctx.emit(Event::CopySource {
                host: hp.name.clone(),
                from: None,
                paths: 0,
                note,
            });
        }
    }
    let copied = match copied {
        Some(p) => p,
        None => {
            fanout::pull_from_peer(ctx, f, hp, session).await;
            push(ctx, hp, toplevel, session, None)
                .await?
                .unwrap_or_default()
        }
    };
    f.done(&hp.name, true);
    Ok(copied)
}

/// Copy the closure; Nix skips what the host already has. Returns the final progress, or
/// None when `yield_to`'s link was judged slow first (the copy is stopped for the peer).
/// Signed when the fleet has a key; a host that does not trust the key yet (its first deploy
/// since the key was made) gets the closure the old way, from a user it trusts.
async fn push(
    ctx: &Ctx,
    hp: &HostPlan,
    toplevel: &str,
    session: &Session,
    yield_to: Option<&FanOut>,
) -> Result<Option<CopyProgress>> {
    let signed = ctx.signing.is_some();
    match push_once(ctx, hp, toplevel, session, signed, yield_to).await {
        Err(e) if signed && format!("{e:#}").contains("lacks a valid signature") => {
            ctx.msg(
                &hp.name,
                "the host does not trust the deployer's signing key yet; copying unsigned (as a trusted user) — this deploy gives it the key",
            );
            push_once(ctx, hp, toplevel, session, false, yield_to).await
        }
        r => r,
    }
}

async fn push_once(
    ctx: &Ctx,
    hp: &HostPlan,
    toplevel: &str,
    session: &Session,
    signed: bool,
    yield_to: Option<&FanOut>,
) -> Result<Option<CopyProgress>> {
    let uri = copy::store_uri(ctx.opts.ssh_ng, &hp.ssh.user, &hp.name);
    let sshopts = copy::nix_sshopts(&ctx.ssh.config, Some(session.control_socket()));
    // The local closure's size, for the progress bar before Nix reports its own figures;
    // asked concurrently so it never delays the copy.
    let mut progress = CopyProgress::default();
    let mut closure = Some(tokio::spawn(
        tokio::process::Command::from(pathinfo::command(None, toplevel, true, false)).output(),
    ));
    let mut cmd = crate::nix::tokio_command();
    cmd.args(copy::copy_args(
        &uri,
        toplevel,
        hp.policy.substitute_on_destination,
        signed,
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
    let slow = async {
        match yield_to {
            Some(f) => f.slow().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(slow);
    loop {
        let line = tokio::select! {
            l = lines.next_line() => l?,
            // The link is slow: this host's peer will have the paths sooner than this copy.
            _ = &mut slow => {
                let _ = child.kill().await;
                return Ok(None);
            }
        };
        let Some(line) = line else { break };
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
    if let Some(c) = closure {
        c.abort();
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
    Ok(Some(progress))
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
///
/// Round trips on the way: one to start it and wait (on the host) until activation is
/// over; then, side by side, a fresh connection that confirms and waits (on the host) for
/// the final state, and the health checks over the multiplexed session, whose verdict is
/// sent as soon as they finish (the supervisor only reads it once confirmed).
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
    // Long enough for the supervisor to get a verdict and, failing that, to roll back.
    let settle_secs = params.verdict_timeout + ctx.opts.activation_timeout.min(60);
    t.start(Phase::Activate);
    let start = root_cmd(
        hp,
        &supervisor::start_command(&params, ctx.opts.activation_timeout + 15),
    );
    let read_back_cmd = root_cmd(
        hp,
        &supervisor::wait_final_command(&sd, &token, READ_BACK_WAIT_SECS),
    );
    let read_back_secs = confirm_timeout + settle_secs;
    let mut lost = false;
    let mut st = match watch(
        ctx,
        hp,
        session,
        "starting the activation supervisor",
        &start,
        &read_back_cmd,
        read_back_secs,
    )
    .await?
    {
        Watch::Reported(s) => s,
        Watch::Lost => {
            lost = true;
            None
        }
        Watch::GaveUp => return Ok(unreachable_outcome(hp)),
    };
    let mut health_failed: Option<String> = None;
    if st.as_ref().is_some_and(|s| s.state == "waiting-confirm") {
        t.start(Phase::Confirm);
        let confirm_cmd = root_cmd(
            hp,
            &supervisor::confirm_command(&sd, &token, no_checks, settle_secs),
        );
        let confirm = confirm_fresh(ctx, hp, &confirm_cmd, confirm_timeout, settle_secs);
        let health = async {
            if !no_checks {
                let verdict = run_health(ctx, hp, session).await;
                send_verdict(ctx, hp, session, &sd, &token, &verdict, &mut health_failed).await;
            }
        };
        let (confirmed, ()) = tokio::join!(confirm, health);
        st = match confirmed {
            Ok((at, final_state)) => {
                t.split(Phase::Health, at);
                final_state
            }
            Err(last_err) => {
                ctx.msg(
                    &hp.name,
                    format!(
                        "could not confirm over a new SSH connection ({last_err}); the host rolls back by itself"
                    ),
                );
                None
            }
        };
        if let Some(s) = &st {
            emit_state(ctx, hp, s);
        }
    } else if st.as_ref().is_some_and(|s| s.state == "confirmed") {
        // Without magic rollback: nothing to confirm, only the health verdict to give.
        t.start(Phase::Health);
        let verdict = if no_checks {
            Ok(())
        } else {
            run_health(ctx, hp, session).await
        };
        send_verdict(ctx, hp, session, &sd, &token, &verdict, &mut health_failed).await;
        st = None;
    }
    if !lost && !st.as_ref().is_some_and(|s| s.is_final()) {
        // Not final yet (not confirmed, a verdict just given, or a slow host): wait on the
        // host, over the master.
        let wait = root_cmd(
            hp,
            &supervisor::wait_final_command(&sd, &token, read_back_secs),
        );
        st = match watch(
            ctx,
            hp,
            session,
            "waiting for the outcome",
            &wait,
            &read_back_cmd,
            read_back_secs,
        )
        .await?
        {
            Watch::Reported(s) => s.filter(|s| s.is_final()),
            Watch::Lost => None,
            Watch::GaveUp => return Ok(unreachable_outcome(hp)),
        };
        lost = st.is_none();
    }
    if lost || !st.as_ref().is_some_and(|s| s.is_final()) {
        // The pipeline connection is gone or the host is slow: the supervisor decides on its
        // own within the confirmation window. Read its verdict over fresh connections.
        st = read_back_fresh(ctx, hp, &read_back_cmd, read_back_secs).await;
    }
    let Some(s) = st else {
        return Ok(unreachable_outcome(hp));
    };
    Ok(outcome_from(&hp.name, &s, health_failed))
}

fn unreachable_outcome(hp: &HostPlan) -> HostOutcome {
    let mut o = HostOutcome::new(&hp.name, HostResult::Unknown);
    o.detail = "could not read the outcome back from the host (unreachable)".into();
    o
}

/// What a command that waits on the host (over the master) told us.
enum Watch {
    /// The host's state at the end (None: it printed none).
    Reported(Option<Status>),
    /// The connection broke before the host answered.
    Lost,
    /// The connection went quiet and fresh connections found no final state either.
    GaveUp,
}

/// No line (not even a heartbeat) for this long: the link may be down.
const SILENCE: Duration = Duration::from_secs(3);

/// Run a command that waits on the host and prints heartbeats, then the attempt's state.
/// The heartbeat shows the link is alive; once it goes quiet (activation may have taken
/// the network down), the outcome is also read over fresh connections, and whichever
/// answers first wins: the master can take many seconds to give up on a dead link.
async fn watch(
    ctx: &Ctx,
    hp: &HostPlan,
    session: &Session,
    what: &str,
    cmd: &str,
    read_back_cmd: &str,
    read_back_secs: u32,
) -> Result<Watch> {
    let lost = |e: &dyn std::fmt::Display| {
        ctx.msg(&hp.name, format!("lost the connection: {e}"));
        Watch::Lost
    };
    let mut child = match session.spawn_sh(cmd).await {
        Ok(c) => c,
        Err(e) => return Ok(lost(&format!("{e:#}"))),
    };
    let mut text = String::new();
    let keep = |text: &mut String, l: String| {
        if l.trim() != supervisor::HEARTBEAT {
            text.push_str(&l);
            text.push('\n');
        }
    };
    let mut silent = false;
    loop {
        match tokio::time::timeout(SILENCE, child.next_line()).await {
            Ok(Ok(Some(l))) => keep(&mut text, l),
            Ok(Ok(None)) => break,
            Ok(Err(e)) => return Ok(lost(&format!("{e:#}"))),
            Err(_) => {
                silent = true;
                break;
            }
        }
    }
    let finished = if !silent {
        child.finish().await
    } else {
        ctx.msg(
            &hp.name,
            format!(
                "no word from the host for {}s (activation may have cut its link); also reading its state over new connections",
                SILENCE.as_secs()
            ),
        );
        let mut text = std::mem::take(&mut text);
        let master = async move {
            while let Ok(Some(l)) = child.next_line().await {
                keep(&mut text, l);
            }
            (child.finish().await, text)
        };
        let fresh = read_back_fresh(ctx, hp, read_back_cmd, read_back_secs);
        tokio::pin!(master, fresh);
        let from_fresh = tokio::select! {
            (out, text) = &mut master => match out {
                Ok(o) if o.code.is_some() && o.code != Some(255) => {
                    return finish_watch(ctx, hp, what, o, &text);
                }
                // The master gave up on the link: the fresh read-backs carry on.
                _ => fresh.await,
            },
            st = &mut fresh => st,
        };
        return Ok(match from_fresh {
            Some(s) => Watch::Reported(Some(s)),
            None => Watch::GaveUp,
        });
    };
    let out = match finished {
        Ok(o) => o,
        Err(e) => return Ok(lost(&format!("{e:#}"))),
    };
    if out.code.is_none() || out.code == Some(255) {
        return Ok(lost(&out.stderr.trim()));
    }
    finish_watch(ctx, hp, what, out, &text)
}

/// A watched command that ran to its end: its state, or why it failed.
fn finish_watch(
    ctx: &Ctx,
    hp: &HostPlan,
    what: &str,
    out: ssh::RemoteOutput,
    text: &str,
) -> Result<Watch> {
    if !out.success() {
        anyhow::bail!(
            "{what} on `{}` failed: {}",
            hp.name,
            crate::process::tail(out.stderr.trim(), 10)
        );
    }
    let st = supervisor::parse_status(text);
    if let Some(s) = &st {
        emit_state(ctx, hp, s);
    }
    Ok(Watch::Reported(st))
}

fn emit_state(ctx: &Ctx, hp: &HostPlan, s: &Status) {
    ctx.emit(Event::Supervisor {
        host: hp.name.clone(),
        state: s.state.clone(),
    });
}

/// Confirm over fresh connections until one succeeds or the window closes. On success:
/// when the confirmation landed, and the final state if the host reported it in time.
async fn confirm_fresh(
    ctx: &Ctx,
    hp: &HostPlan,
    cmd: &str,
    confirm_timeout: u32,
    settle_secs: u32,
) -> std::result::Result<(Instant, Option<Status>), String> {
    let deadline = Instant::now() + Duration::from_secs(confirm_timeout as u64);
    let mut last_err = String::from("no attempt finished in time");
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match confirm_once(ctx, hp, cmd, left.max(Duration::from_secs(1)), settle_secs).await {
            Ok(x) => return Ok(x),
            Err(e) => last_err = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last_err)
}

async fn confirm_once(
    ctx: &Ctx,
    hp: &HostPlan,
    cmd: &str,
    window: Duration,
    settle_secs: u32,
) -> std::result::Result<(Instant, Option<Status>), String> {
    let mut child = ssh::fresh_command(&ctx.ssh, &hp.name, cmd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting ssh: {e}"))?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut stderr = child.stderr.take().expect("piped");
    // Until the host says it is confirmed: bounded by the confirmation window.
    let confirmed = tokio::time::timeout(window, async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.trim() == supervisor::CONFIRMED_MARK {
                return true;
            }
        }
        false
    })
    .await;
    match confirmed {
        Ok(true) => {}
        Ok(false) => {
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err).await;
            let code = child.wait().await.ok().and_then(|s| s.code());
            return Err(match (err.trim(), code) {
                ("", Some(3)) => "the attempt is not on the host".to_string(),
                ("", c) => format!("ssh exited with {c:?}"),
                (e, _) => e.to_string(),
            });
        }
        Err(_) => return Err(format!("no answer within {}s", window.as_secs())),
    }
    let at = Instant::now();
    // Then the final state, which the host prints once it has one.
    let rest = tokio::time::timeout(Duration::from_secs(settle_secs as u64 + 5), async {
        let mut text = String::new();
        while let Ok(Some(l)) = lines.next_line().await {
            text.push_str(&l);
            text.push('\n');
        }
        text
    })
    .await
    .unwrap_or_default();
    Ok((at, supervisor::parse_status(&rest).filter(|s| s.is_final())))
}

/// Commit, or ask for a rollback with the health checks' reason (kept with --no-rollback).
async fn send_verdict(
    ctx: &Ctx,
    hp: &HostPlan,
    session: &Session,
    sd: &str,
    token: &str,
    verdict: &std::result::Result<(), String>,
    health_failed: &mut Option<String>,
) {
    let cmd = match verdict {
        Ok(()) => supervisor::commit_command(sd, token),
        Err(why) if ctx.opts.no_rollback => {
            *health_failed = Some(format!("{why} (kept: --no-rollback)"));
            supervisor::commit_command(sd, token)
        }
        Err(why) => supervisor::rollback_request_command(sd, token, why),
    };
    let cmd = root_cmd(hp, &cmd);
    let Err(e) = session.sh(&cmd).await else {
        return;
    };
    // A lost main connection must not turn a failed check into a kept system: deliver
    // the verdict over fresh connections.
    ctx.msg(
        &hp.name,
        format!(
            "could not send the verdict over the main connection ({e:#}); retrying over new ones"
        ),
    );
    for _ in 0..3 {
        if ssh::fresh_run(&ctx.ssh, &hp.name, &cmd, READ_BACK_ATTEMPT)
            .await
            .is_ok_and(|o| o.success())
        {
            return;
        }
    }
    if let Err(why) = verdict {
        // Whatever the host does with no verdict, this deploy failed its checks.
        *health_failed = Some(format!(
            "{why}; the rollback request could not be delivered"
        ));
    }
}

/// Read the attempt's state over fresh connections until it is final or `secs` pass.
/// While the host is unreachable, attempts overlap: a new one starts every
/// [`READ_BACK_EVERY`], so the host is seen soon after its link comes back even while older
/// attempts still wait on theirs. Once one gets through, one attempt at a time, each
/// waiting on the host (up to [`READ_BACK_WAIT_SECS`]) for the final state.
async fn read_back_fresh(ctx: &Ctx, hp: &HostPlan, cmd: &str, secs: u32) -> Option<Status> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs as u64);
    let mut attempts = tokio::task::JoinSet::new();
    let mut next = tokio::time::Instant::now();
    let mut reachable = false;
    let mut last: Option<Status> = None;
    while tokio::time::Instant::now() < deadline {
        let now = tokio::time::Instant::now();
        if attempts.is_empty() || (!reachable && now >= next && attempts.len() < 8) {
            let (files, alias, cmd) = (ctx.ssh.clone(), hp.name.clone(), cmd.to_string());
            attempts.spawn(
                async move { ssh::fresh_run(&files, &alias, &cmd, READ_BACK_ATTEMPT).await },
            );
            next = now + READ_BACK_EVERY;
        }
        tokio::select! {
            Some(done) = attempts.join_next() => {
                let status = match done {
                    Ok(Ok(o)) if o.success() => supervisor::parse_status(&o.stdout),
                    _ => None,
                };
                match status {
                    Some(s) if s.is_final() => {
                        last = Some(s);
                        break;
                    }
                    Some(s) => {
                        last = Some(s);
                        reachable = true;
                        // The others are stuck on a link that was down; one at a time now.
                        attempts.abort_all();
                    }
                    None => {
                        reachable = false;
                        tokio::time::sleep_until(next.min(deadline)).await;
                    }
                }
            }
            _ = tokio::time::sleep_until(next.min(deadline)), if !reachable => {}
        }
    }
    attempts.abort_all();
    if let Some(s) = &last {
        emit_state(ctx, hp, s);
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
        (HostResult::Failed, Some(h)) => h,
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
    toplevels: &BTreeMap<String, Built>,
    mut sessions: BTreeMap<String, tokio::task::JoinHandle<Result<(Session, Probe)>>>,
) -> Vec<HostOutcome> {
    let sem = Arc::new(tokio::sync::Semaphore::new(ctx.opts.parallel.max(1)));
    let mut outcomes = Vec::new();
    let mut stop = false;
    if let Err(e) = sign_local(&ctx, toplevels).await {
        return fail_all(&ctx, plan, &format!("{e:#}"), sessions);
    }
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
        let fan = batch_fan_out(&ctx, plan, batch, toplevels).await;
        let mut tasks = Vec::new();
        for h in batch {
            let fan = fan.clone();
            let hp = plan.host(h).clone();
            let built = toplevels[h].clone();
            let session = sessions.remove(h).expect("session task per host");
            let ctx = ctx.clone();
            // Slots are taken in batch order, so a fan-out peer (always earlier in the
            // batch) holds a slot or is done before a host waiting for it takes one: with
            // fewer slots than hosts, no host waits on a peer that waits for a slot.
            let permit = sem.clone().acquire_owned().await.expect("semaphore open");
            tasks.push(tokio::spawn(async move {
                let _permit = permit;
                let o = deploy_host(&ctx, &hp, &built, session, fan).await;
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

/// Sign every closure the deployer will push (when the fleet has a signing key).
async fn sign_local(ctx: &Ctx, toplevels: &BTreeMap<String, Built>) -> Result<()> {
    let Some(key) = &ctx.signing else {
        return Ok(());
    };
    let local: BTreeSet<String> = toplevels
        .values()
        .filter(|b| matches!(b, Built::Local { .. }))
        .map(|b| b.out().to_string())
        .collect();
    if local.is_empty() {
        return Ok(());
    }
    ctx.emit(Event::Message {
        host: None,
        text: format!("signing {} closure(s) with {}", local.len(), key.public),
    });
    crate::nix::sign::sign_closure(key, &local.into_iter().collect::<Vec<_>>()).await
}

/// The batch's fan-out tree, when fan-out is on, the paths are signed, and at least two
/// hosts get a closure from this machine.
async fn batch_fan_out(
    ctx: &Ctx,
    plan: &Plan,
    batch: &[String],
    toplevels: &BTreeMap<String, Built>,
) -> Option<Arc<FanOut>> {
    if !ctx.opts.fan_out || ctx.signing.is_none() {
        return None;
    }
    let local: BTreeMap<String, String> = batch
        .iter()
        .filter_map(|h| match &toplevels[h] {
            Built::Local { out } => Some((h.clone(), out.clone())),
            Built::OnTarget { .. } => None,
        })
        .collect();
    if local.len() < 2 {
        return None;
    }
    let fan = FanOut::new(batch, &local, &plan.peer_keys).with_plans(plan.hosts.iter().cloned());
    let fan = Arc::new(fan);
    if fan.has_pulls() {
        let addrs: Vec<(String, u16)> = local
            .keys()
            .map(|h| {
                let s = &plan.host(h).ssh;
                (s.address.clone(), s.port)
            })
            .collect();
        let meter = super::link::Meter::towards(&addrs).await;
        let threshold = fanout::fast_link_bytes_per_sec();
        let (f, sink) = (fan.clone(), ctx.sink.clone());
        // Nothing to measure with: fan out before any copy starts (none to stop).
        let judging = f.clone().judge(meter.clone(), threshold);
        let settled = meter.is_none() || threshold.is_none();
        let task = async move {
            let l = judging.await;
            sink.emit(Event::Message {
                host: None,
                text: fanout::describe_link(l, meter.as_ref()),
            });
        };
        if settled {
            task.await;
        } else {
            tokio::spawn(task);
        }
    }
    Some(fan)
}

fn fail_all(
    ctx: &Ctx,
    plan: &Plan,
    why: &str,
    sessions: BTreeMap<String, tokio::task::JoinHandle<Result<(Session, Probe)>>>,
) -> Vec<HostOutcome> {
    for s in sessions.into_values() {
        s.abort();
    }
    plan.hosts
        .iter()
        .map(|h| {
            let mut o = HostOutcome::new(&h.name, HostResult::Failed);
            o.detail = why.to_string();
            ctx.emit(Event::HostFinished { outcome: o.clone() });
            o
        })
        .collect()
}

/// `hearth rollback`: switch to the generation before the current one, through the
/// supervisor, with the same confirmation and health checks as a deploy.
pub async fn rollback_host(ctx: &Ctx, hp: &HostPlan) -> HostOutcome {
    let mut t = Timer::new(ctx, &hp.name);
    t.start(Phase::Connect);
    let (session, p) = match connect_and_probe(ctx, hp).await {
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
