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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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
    let (mut session, probe) = match connected.await.map_err(anyhow::Error::from).and_then(|r| r) {
        Ok(x) => x,
        Err(e) => {
            let mut o = HostOutcome::new(&hp.name, HostResult::Failed);
            o.detail = format!("{e:#}");
            return t.outcome(o);
        }
    };
    let out = deploy_connected(ctx, hp, built, &mut session, probe, &mut t, fan).await;
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
    session: &mut Session,
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
    // The master idled through the build (and, below, maybe through a wait for a peer).
    revive(ctx, hp, session, "while the build ran").await?;
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
    revive(ctx, hp, session, "before activation").await?;
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

/// How long a master may take to answer (locally, over its control socket) before a new
/// one replaces it.
const MASTER_CHECK: Duration = Duration::from_secs(3);

/// Start a new master if this one has died. An idle master can die while the host is fine:
/// on a saturated slow uplink (another host's copy, a push to a builder) its keepalives
/// lose out in the uplink's queue until ssh gives up. Asking the master costs no round trip
/// to the host.
pub(super) async fn revive(
    ctx: &Ctx,
    hp: &HostPlan,
    session: &mut Session,
    when: &str,
) -> Result<()> {
    if session
        .revive(&ctx.ssh, &hp.ssh, &ctx.control_dir, MASTER_CHECK)
        .await?
    {
        ctx.msg(
            &hp.name,
            format!("its connection was lost {when}; reconnected"),
        );
    }
    Ok(())
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
    session: &mut Session,
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

/// One try at the verdict, over the master or a new connection.
const VERDICT_ATTEMPT: Duration = Duration::from_secs(5);

/// Start the supervisor and drive it to a final state; the outcome is what the host says.
///
/// Round trips on the way: one to start it and wait (on the host) until activation is
/// over; then, side by side, a fresh connection that confirms and waits (on the host) for
/// the final state, and the health checks, whose verdict is sent as soon as they finish
/// (the supervisor only reads it once confirmed). A lost main connection is not a rollback
/// by itself: the state is read over new logins, a host found waiting is confirmed, and the
/// checks and the verdict carry on over new connections.
pub async fn activate(
    ctx: &Ctx,
    hp: &HostPlan,
    action: Action,
    session: &Session,
    t: &mut Timer<'_>,
) -> Result<HostOutcome> {
    let (a, params) = Attempt::new(ctx, hp, action, session);
    t.start(Phase::Activate);
    let st = match a.start(&params).await? {
        Watch::Reported(s) => s,
        Watch::Lost | Watch::GaveUp => return Ok(unreachable_outcome(hp)),
    };
    let mut health_failed: Option<String> = None;
    let st = match st.as_ref().map(|s| s.state.as_str()) {
        Some("waiting-confirm") => a.confirm_and_check(t, &mut health_failed).await,
        Some("confirmed") => {
            // Without magic rollback: nothing to confirm, only the health verdict to give.
            t.start(Phase::Health);
            a.check_and_give_verdict(&mut health_failed).await;
            None
        }
        _ => st,
    };
    let st = match st.filter(Status::is_final) {
        Some(s) => Some(s),
        None => a.final_state().await?,
    };
    let Some(s) = st else {
        return Ok(unreachable_outcome(hp));
    };
    let mut o = outcome_from(&hp.name, &s, health_failed);
    a.annotate(&mut o);
    Ok(o)
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
    /// The connection went quiet and fresh connections found no state either.
    GaveUp,
}

/// No line (not even a heartbeat) for this long: the link may be down.
const SILENCE: Duration = Duration::from_secs(3);

/// Past activation: waiting for confirmation, confirmed, or final.
fn started(s: &Status) -> bool {
    s.state == "waiting-confirm" || s.state == "confirmed" || s.is_final()
}

/// One activation attempt on one host: its settings, the commands it sends, and what
/// happened to the main connection on the way.
struct Attempt<'a> {
    ctx: &'a Ctx,
    hp: &'a HostPlan,
    session: &'a Session,
    sd: String,
    token: String,
    confirm_timeout: u32,
    verdict_timeout: u32,
    /// Long enough for the supervisor to get a verdict and, failing that, to roll back.
    settle_secs: u32,
    no_checks: bool,
    /// Over a fresh connection: the state once final (waiting on the host a moment).
    read_final_cmd: String,
    /// Over a fresh connection: the state once past activation.
    read_started_cmd: String,
    read_back_secs: u32,
    /// The main connection failed: from then on everything goes over new connections.
    main_lost: AtomicBool,
    /// When it failed.
    lost_at: Mutex<Option<Instant>>,
    /// How the outcome was reached, when that is worth a line in the report.
    notes: Mutex<Vec<String>>,
}

impl<'a> Attempt<'a> {
    fn new(ctx: &'a Ctx, hp: &'a HostPlan, action: Action, session: &'a Session) -> (Self, Params) {
        let confirm_timeout = ctx
            .opts
            .confirm_timeout
            .unwrap_or(hp.policy.confirm_timeout);
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
            running_links: supervisor::RUNNING_LINKS
                .iter()
                .map(|l| l.to_string())
                .collect(),
        };
        let (sd, token) = (params.state_dir.clone(), params.token.clone());
        let settle_secs = params.verdict_timeout + ctx.opts.activation_timeout.min(60);
        let a = Attempt {
            ctx,
            hp,
            session,
            read_final_cmd: root_cmd(
                hp,
                &supervisor::wait_final_command(&sd, &token, READ_BACK_WAIT_SECS),
            ),
            read_started_cmd: root_cmd(
                hp,
                &supervisor::wait_started_command(&sd, &token, READ_BACK_WAIT_SECS),
            ),
            sd,
            token,
            confirm_timeout,
            verdict_timeout: params.verdict_timeout,
            settle_secs,
            no_checks: health::is_empty(&hp.policy.health),
            read_back_secs: confirm_timeout + settle_secs,
            main_lost: AtomicBool::new(false),
            lost_at: Mutex::new(None),
            notes: Mutex::new(Vec::new()),
        };
        (a, params)
    }

    fn note(&self, text: impl Into<String>) {
        self.notes.lock().expect("notes").push(text.into());
    }

    /// The main connection is gone (said once); the rest goes over new connections.
    fn lose(&self, why: &str) {
        if !self.main_lost.swap(true, Ordering::SeqCst) {
            *self.lost_at.lock().expect("lost_at") = Some(Instant::now());
            self.ctx.msg(
                &self.hp.name,
                format!("lost the main connection ({why}); carrying on over new connections"),
            );
            self.note("the main connection was lost; the rest went over new SSH logins");
        }
    }

    fn is_lost(&self) -> bool {
        self.main_lost.load(Ordering::SeqCst)
    }

    /// Add what the report should say about the way there to the outcome's detail.
    fn annotate(&self, o: &mut HostOutcome) {
        let notes = self.notes.lock().expect("notes");
        if notes.is_empty() {
            return;
        }
        let text = notes.join("; ");
        o.detail = if o.detail.is_empty() {
            text
        } else {
            format!("{} ({text})", o.detail)
        };
    }

    /// Start the supervisor and wait (on the host) until activation is over. With the
    /// main connection lost, the state comes over new logins.
    async fn start(&self, params: &Params) -> Result<Watch> {
        let start = root_cmd(
            self.hp,
            &supervisor::start_command(params, self.ctx.opts.activation_timeout + 15),
        );
        let w = self
            .watch(
                "starting the activation supervisor",
                &start,
                &self.read_started_cmd,
                started,
            )
            .await?;
        if !matches!(w, Watch::Lost) {
            return Ok(w);
        }
        let st = read_back_fresh(
            self.ctx,
            self.hp,
            &self.read_started_cmd,
            self.read_back_secs,
            started,
        )
        .await;
        Ok(match st {
            Some(s) => Watch::Reported(Some(s)),
            None => Watch::GaveUp,
        })
    }

    /// The host waits for confirmation: confirm over a new login, with the health checks
    /// and their verdict alongside. The final state, if the confirmation carried it back.
    async fn confirm_and_check(
        &self,
        t: &mut Timer<'_>,
        health_failed: &mut Option<String>,
    ) -> Option<Status> {
        t.start(Phase::Confirm);
        let confirm_cmd = root_cmd(
            self.hp,
            &supervisor::confirm_command(&self.sd, &self.token, self.no_checks, self.settle_secs),
        );
        let confirm = confirm_fresh(
            self.ctx,
            self.hp,
            &confirm_cmd,
            self.confirm_timeout,
            self.settle_secs,
        );
        let health = async {
            if !self.no_checks {
                self.check_and_give_verdict(health_failed).await;
            }
        };
        let (confirmed, ()) = tokio::join!(confirm, health);
        let st = match confirmed {
            Ok((at, final_state)) => {
                t.split(Phase::Health, at);
                if self
                    .lost_at
                    .lock()
                    .expect("lost_at")
                    .is_some_and(|l| l < at)
                {
                    self.note("the host was found waiting and confirmed over a new login");
                }
                final_state
            }
            Err(last_err) => {
                self.ctx.msg(
                    &self.hp.name,
                    format!(
                        "could not confirm over a new SSH connection ({last_err}); the host rolls back by itself"
                    ),
                );
                None
            }
        };
        if let Some(s) = &st {
            emit_state(self.ctx, self.hp, s);
        }
        st
    }

    async fn check_and_give_verdict(&self, health_failed: &mut Option<String>) {
        let verdict = if self.no_checks {
            Ok(())
        } else {
            self.run_health().await
        };
        self.send_verdict(&verdict, health_failed).await;
    }

    /// Not final yet (a verdict just given, or a slow host): wait on the host over the
    /// master; failing that, read the state over new connections.
    async fn final_state(&self) -> Result<Option<Status>> {
        if !self.is_lost() {
            let wait = root_cmd(
                self.hp,
                &supervisor::wait_final_command(&self.sd, &self.token, self.read_back_secs),
            );
            match self
                .watch(
                    "waiting for the outcome",
                    &wait,
                    &self.read_final_cmd,
                    Status::is_final,
                )
                .await?
            {
                Watch::Reported(Some(s)) if s.is_final() => return Ok(Some(s)),
                Watch::Reported(_) | Watch::Lost => {}
                Watch::GaveUp => return Ok(None),
            }
        }
        Ok(read_back_fresh(
            self.ctx,
            self.hp,
            &self.read_final_cmd,
            self.read_back_secs,
            Status::is_final,
        )
        .await)
    }

    /// Run a command over the master while it works, else over a new connection.
    async fn on_host(&self, cmd: &str, limit: Duration) -> Result<ssh::RemoteOutput> {
        if !self.is_lost() {
            let why = match tokio::time::timeout(limit, self.session.sh(cmd)).await {
                Ok(Ok(o)) if o.code.is_some_and(|c| c != 255) => return Ok(o),
                Ok(Ok(o)) => o.stderr.trim().to_string(),
                Ok(Err(e)) => format!("{e:#}"),
                Err(_) => format!("no answer within {}s", limit.as_secs()),
            };
            self.lose(&why);
        }
        let o = ssh::fresh_run(&self.ctx.ssh, &self.hp.name, cmd, limit).await?;
        if o.code.is_none() || o.code == Some(255) {
            anyhow::bail!("ssh to `{}` failed: {}", self.hp.name, o.stderr.trim());
        }
        Ok(o)
    }

    /// Run the health checks until they pass or the health timeout ends. A connection
    /// that fails on the way is not a failed check: they go on over a new one.
    async fn run_health(&self) -> std::result::Result<(), String> {
        let (hp, checks) = (self.hp, &self.hp.policy.health);
        let script = root_cmd(hp, &health::script(checks));
        let deadline = Instant::now() + Duration::from_secs(hp.policy.health_timeout as u64);
        let limit = Duration::from_secs(hp.policy.health_timeout as u64 + 10);
        let mut results = None;
        let mut last_err = String::new();
        loop {
            match self.on_host(&script, limit).await {
                Ok(o) => {
                    let r = health::parse(&o.stdout);
                    let ok = health::all_ok(checks, &r);
                    results = Some(r);
                    if ok {
                        break;
                    }
                }
                Err(e) => last_err = format!("{e:#}"),
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let Some(results) = results else {
            return Err(format!("health checks could not run: {last_err}"));
        };
        for r in &results {
            self.ctx.emit(Event::HealthCheck {
                host: hp.name.clone(),
                check: r.name.clone(),
                ok: r.ok,
                detail: r.detail.clone(),
            });
        }
        if health::all_ok(checks, &results) {
            return Ok(());
        }
        let failed: Vec<String> = results
            .iter()
            .filter(|r| !r.ok)
            .map(|r| format!("{} ({})", r.name, r.detail))
            .collect();
        Err(format!(
            "health check failed after {}s: {}",
            hp.policy.health_timeout,
            failed.join(", ")
        ))
    }

    /// Commit, or ask for a rollback with the health checks' reason (kept with
    /// --no-rollback). A verdict that cannot be delivered is retried over new connections
    /// for as long as the host waits for one; a failed check is never reported as deployed.
    async fn send_verdict(
        &self,
        verdict: &std::result::Result<(), String>,
        health_failed: &mut Option<String>,
    ) {
        let (sd, token) = (&self.sd, &self.token);
        let cmd = match verdict {
            Ok(()) => supervisor::commit_command(sd, token),
            Err(why) if self.ctx.opts.no_rollback => {
                *health_failed = Some(format!("{why} (kept: --no-rollback)"));
                supervisor::commit_command(sd, token)
            }
            Err(why) => supervisor::rollback_request_command(sd, token, why),
        };
        let cmd = root_cmd(self.hp, &cmd);
        let deadline = Instant::now() + Duration::from_secs(self.verdict_timeout as u64);
        let mut tries = 0;
        let last_err = loop {
            tries += 1;
            let err = match self.on_host(&cmd, VERDICT_ATTEMPT).await {
                Ok(o) if o.success() => {
                    if tries > 1 {
                        self.note(format!("the verdict got through on try {tries}"));
                    }
                    return;
                }
                Ok(o) => format!("exit {:?}: {}", o.code, o.stderr.trim()),
                Err(e) => format!("{e:#}"),
            };
            if tries == 1 {
                self.ctx.msg(
                    &self.hp.name,
                    format!("could not send the verdict ({err}); retrying over new connections"),
                );
            }
            if Instant::now() >= deadline {
                break err;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        if let Err(why) = verdict {
            // Whatever the host does with no verdict, this deploy failed its checks.
            *health_failed = Some(format!(
                "{why}; the rollback request could not be delivered in {tries} tries ({last_err})"
            ));
        }
    }

    /// Run a command that waits on the host and prints heartbeats, then the attempt's
    /// state. The heartbeat shows the link is alive; once it goes quiet (activation may
    /// have taken the network down), the state is also read over fresh connections until
    /// `done` holds, and whichever answers first wins: the master can take many seconds to
    /// give up on a dead link.
    async fn watch(
        &self,
        what: &str,
        cmd: &str,
        read_back_cmd: &str,
        done: fn(&Status) -> bool,
    ) -> Result<Watch> {
        let (ctx, hp) = (self.ctx, self.hp);
        let lost = |e: &dyn std::fmt::Display| {
            self.lose(&format!("{e}"));
            Watch::Lost
        };
        let mut child = match self.session.spawn_sh(cmd).await {
            Ok(c) => c,
            Err(e) => return Ok(lost(&format!("{e:#}"))),
        };
        let mut text = String::new();
        loop {
            match tokio::time::timeout(SILENCE, child.next_line()).await {
                Ok(Ok(Some(l))) => keep_line(&mut text, l),
                Ok(Ok(None)) => break,
                Ok(Err(e)) => return Ok(lost(&format!("{e:#}"))),
                Err(_) => {
                    return self
                        .watch_silent(what, child, text, read_back_cmd, done)
                        .await
                }
            }
        }
        let out = match child.finish().await {
            Ok(o) => o,
            Err(e) => return Ok(lost(&format!("{e:#}"))),
        };
        if out.code.is_none() || out.code == Some(255) {
            return Ok(lost(&out.stderr.trim()));
        }
        finish_watch(ctx, hp, what, out, &text)
    }

    /// [`Attempt::watch`] once the master went quiet: it and fresh read-backs race.
    async fn watch_silent(
        &self,
        what: &str,
        mut child: ssh::StreamingCommand<'_>,
        mut text: String,
        read_back_cmd: &str,
        done: fn(&Status) -> bool,
    ) -> Result<Watch> {
        let (ctx, hp) = (self.ctx, self.hp);
        ctx.msg(
            &hp.name,
            format!(
                "no word from the host for {}s (activation may have cut its link); also reading its state over new connections",
                SILENCE.as_secs()
            ),
        );
        let master = async move {
            while let Ok(Some(l)) = child.next_line().await {
                keep_line(&mut text, l);
            }
            (child.finish().await, text)
        };
        let fresh = read_back_fresh(ctx, hp, read_back_cmd, self.read_back_secs, done);
        tokio::pin!(master, fresh);
        let from_fresh = tokio::select! {
            (out, text) = &mut master => match out {
                Ok(o) if o.code.is_some() && o.code != Some(255) => {
                    return finish_watch(ctx, hp, what, o, &text);
                }
                // The master gave up on the link: the fresh read-backs carry on.
                Ok(o) => {
                    self.lose(o.stderr.trim());
                    fresh.await
                }
                Err(e) => {
                    self.lose(&format!("{e:#}"));
                    fresh.await
                }
            },
            st = &mut fresh => st,
        };
        Ok(match from_fresh {
            Some(s) => Watch::Reported(Some(s)),
            None => Watch::GaveUp,
        })
    }
}

/// Keep a line of a watched command's output unless it is a heartbeat.
fn keep_line(text: &mut String, l: String) {
    if l.trim() != supervisor::HEARTBEAT {
        text.push_str(&l);
        text.push('\n');
    }
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

/// Read the attempt's state over fresh connections until `done` holds (it is final, or
/// past activation) or `secs` pass.
/// While the host is unreachable, attempts overlap: a new one starts every
/// [`READ_BACK_EVERY`], so the host is seen soon after its link comes back even while older
/// attempts still wait on theirs. Once one gets through, one attempt at a time, each
/// waiting on the host (up to [`READ_BACK_WAIT_SECS`]) for the final state.
async fn read_back_fresh(
    ctx: &Ctx,
    hp: &HostPlan,
    cmd: &str,
    secs: u32,
    done: fn(&Status) -> bool,
) -> Option<Status> {
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
            Some(joined) = attempts.join_next() => {
                let status = match joined {
                    Ok(Ok(o)) if o.success() => supervisor::parse_status(&o.stdout),
                    _ => None,
                };
                match status {
                    Some(s) if done(&s) => {
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
    last.filter(done)
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
