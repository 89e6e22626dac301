//! Fan-out: the deployer's link carries each store path once. The first host of a batch gets
//! its closure from the deployer; every other host pulls the paths it shares with a peer
//! that already has them, over the LAN, in a spreading tree (1 → 2 → 4 → …), and only the
//! rest (its own toplevel and what no peer has) from the deployer.
//!
//! Only when the deployer's link is slow: every host starts a direct push as without
//! fan-out, the link is judged on the bytes all of them get out (see [`super::link`]), and
//! the hosts with a peer stop their push only once it is judged slow. A fast link is thus
//! never slower than `--no-fan-out` but for the judgement's bookkeeping.
//!
//! Trust: the pull runs `nix copy --from ssh-ng://hearth-push@peer` as root on the receiving
//! host *without* `--no-check-sigs`, so every path must carry a signature from a key in its
//! `trusted-public-keys` (the deployer signs what it pushes). The peer login is the host's
//! own peer key, authorised on the peer for `nix-daemon --stdio` only, as a user the peer's
//! Nix does not trust (reading paths needs no trust). A peer that is down, slow or refuses
//! is routed around: the deployer pushes directly, as without fan-out.

use super::link::Meter;
use super::pipeline::Ctx;
use super::plan::HostPlan;
use crate::builders::sshenv::known_hosts_line;
use crate::events::Event;
use crate::nix::sign::{PEER_KEY_PATH, PUSH_USER};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, OnceCell};

/// How long a host waits for its peer to hold the shared paths before it asks the deployer.
/// Long on purpose: on a slow deployer link the first host's copy takes as long as the link
/// needs, and going direct instead would share that same link. A peer always says when it
/// is done or has failed, so this only bounds a peer that hangs.
pub const PEER_WAIT: Duration = Duration::from_secs(3600);
/// How long one peer pull may take before the deployer pushes instead.
pub const PEER_COPY_TIMEOUT: Duration = Duration::from_secs(300);

/// How the deployer's link is judged (the hosts that have a peer start a direct push like
/// everyone else, and stop it for the peer only once the link proves slow):
/// an aggregate rate over every copy of at least this is fast: nobody waits on a peer.
/// Above it, one copy over the deployer's link plus the LAN hops of the tree cannot beat
/// parallel direct copies by enough to pay for the hops. `HEARTH_FAN_OUT_FAST_LINK_MBIT`
/// overrides it (0: always fan out, no direct push to a host that has a peer).
pub const FAST_LINK_MBIT: u64 = 300;
/// How long the copies run side by side before the link is judged slow. What the hosts with
/// a peer receive meanwhile is the waste on a slow link (at 200 Mbit/s about 13 MB of a 200 MiB
/// closure), so short; the clock starts once data flows, so start-up does not count.
pub const JUDGE_WINDOW: Duration = Duration::from_millis(600);
/// Bytes out before the judgement's clock starts (the copies' data is flowing).
const FLOWING_BYTES: u64 = 256 << 10;

pub fn fast_link_bytes_per_sec() -> Option<u64> {
    let mbit = std::env::var("HEARTH_FAN_OUT_FAST_LINK_MBIT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(FAST_LINK_MBIT);
    (mbit > 0).then_some(mbit * 1_000_000 / 8)
}

/// The deployer's link, as judged: bytes per second over all copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Every host takes its closure directly (as with `--no-fan-out`).
    Fast(u64),
    /// Hosts with a peer stop their direct push and pull from the peer (0: not measured).
    Slow(u64),
}

/// The verdict on `sent` bytes `secs` into the copies, or None to keep watching: fast as
/// soon as more has gone out than a link at `threshold` could send in the whole window
/// (so a fast link is known early), slow only once the window has passed.
pub fn judge_link(sent: u64, secs: f64, threshold: u64) -> Option<Link> {
    let window = JUDGE_WINDOW.as_secs_f64();
    if sent as f64 >= threshold as f64 * window {
        return Some(Link::Fast((sent as f64 / secs.max(1e-3)) as u64));
    }
    (secs >= window).then(|| Link::Slow((sent as f64 / secs) as u64))
}

/// The parent of position `i` in the spreading tree: in round r the first 2^r hosts hold
/// the paths and host j serves j + 2^r, so every round doubles the hosts that have them.
pub fn tree_parent(i: usize) -> Option<usize> {
    if i == 0 {
        return None;
    }
    let top = usize::BITS - 1 - i.leading_zeros();
    Some(i - (1 << top))
}

/// `(host, peer it pulls from)` for hosts in deploy order; the first has no peer.
pub fn tree(hosts: &[String]) -> Vec<(String, Option<String>)> {
    hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.clone(), tree_parent(i).map(|p| hosts[p].clone())))
        .collect()
}

/// The POSIX-sh script the receiving host runs (as root) to pull `paths` from `peer`.
/// The peer's host key goes to a private known_hosts file, so checking stays strict.
pub fn pull_script(peer: &HostPlan, paths: &[String]) -> anyhow::Result<String> {
    let q = crate::lines::shell::quote;
    let line = known_hosts_line(&peer.ssh.address, peer.ssh.port, &peer.ssh.host_key)?;
    let mut opts = format!(
        "-o UserKnownHostsFile=$kh -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=5 -i {PEER_KEY_PATH} -o IdentitiesOnly=yes"
    );
    if peer.ssh.port != 22 && peer.ssh.port != 0 {
        opts.push_str(&format!(" -p {}", peer.ssh.port));
    }
    let mut copy = format!(
        "{} copy --from {}",
        crate::nix::NIX_SH,
        q(&format!("ssh-ng://{PUSH_USER}@{}", peer.ssh.address))
    );
    for p in paths {
        copy.push(' ');
        copy.push_str(&q(p));
    }
    Ok(format!(
        "set -u\nkh=$(mktemp)\nprintf '%s\\n' {line} > \"$kh\"\nNIX_SSHOPTS=\"{opts}\" {copy}\nrc=$?\nrm -f \"$kh\"\nexit $rc\n",
        line = q(&line),
    ))
}

/// Whether a host holds its closure yet: None while its copy runs.
type Ready = watch::Sender<Option<bool>>;

/// The fan-out of one batch: who pulls what from whom, and who holds their closure.
pub struct FanOut {
    /// host → the peer it pulls from.
    pulls: BTreeMap<String, String>,
    /// The hosts' toplevels (built here), whose closures give the shared paths.
    toplevels: BTreeMap<String, String>,
    /// host → paths it shares with its peer: worked out only when a host pulls (the link
    /// proved slow), so a fast link never waits for it.
    shared: OnceCell<BTreeMap<String, Vec<String>>>,
    ready: BTreeMap<String, Ready>,
    /// Every host's plan (a pull needs its peer's address and host key).
    plans: BTreeMap<String, HostPlan>,
    /// The deployer's link as judged; None while the copies are being watched.
    link: watch::Sender<Option<Link>>,
    /// Set when the first copy starts: the judgement watches from there.
    started: watch::Sender<bool>,
}

/// Why a host stopped waiting for its peer.
#[derive(Debug, PartialEq, Eq)]
enum Wait {
    Ready,
    PeerFailed,
}

impl FanOut {
    /// Plan the tree over `hosts` (deploy order) among those with a toplevel built here
    /// (`toplevels`); a host pulls from its tree parent only when it has a peer key
    /// (`with_key`: hosts with `keys/peer-<host>.pub`, which every peer authorises).
    pub fn new(
        hosts: &[String],
        toplevels: &BTreeMap<String, String>,
        with_key: &BTreeSet<String>,
    ) -> FanOut {
        let hosts: Vec<String> = hosts
            .iter()
            .filter(|h| toplevels.contains_key(*h))
            .cloned()
            .collect();
        let pulls = tree(&hosts)
            .into_iter()
            .filter(|(h, _)| with_key.contains(h))
            .filter_map(|(h, p)| Some((h, p?)))
            .collect();
        let ready = hosts
            .into_iter()
            .map(|h| (h, watch::channel(None).0))
            .collect();
        FanOut {
            pulls,
            toplevels: toplevels.clone(),
            shared: OnceCell::new(),
            ready,
            plans: BTreeMap::new(),
            link: watch::channel(None).0,
            started: watch::channel(false).0,
        }
    }

    /// The paths `host` shares with its peer (none: nothing to pull).
    async fn shared_paths(&self, host: &str) -> Vec<String> {
        let shared = self
            .shared
            .get_or_init(|| async { self.shared_from(&closures(&self.toplevels).await) })
            .await;
        shared.get(host).cloned().unwrap_or_default()
    }

    fn shared_from(
        &self,
        closures: &BTreeMap<String, BTreeSet<String>>,
    ) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for (h, p) in &self.pulls {
            if let (Some(a), Some(b)) = (closures.get(h), closures.get(p)) {
                out.insert(h.clone(), a.intersection(b).cloned().collect());
            }
        }
        out
    }

    pub fn with_plans(mut self, plans: impl IntoIterator<Item = HostPlan>) -> FanOut {
        self.plans = plans.into_iter().map(|p| (p.name.clone(), p)).collect();
        self
    }

    /// The peer `host` pulls from, if any.
    pub fn peer_of(&self, host: &str) -> Option<&str> {
        self.pulls.get(host).map(String::as_str)
    }

    /// Whether any host has a peer (else there is nothing to judge).
    pub fn has_pulls(&self) -> bool {
        !self.pulls.is_empty()
    }

    /// `host` holds its closure (`true`) or will not (`false`); only the first word counts.
    pub fn done(&self, host: &str, has_closure: bool) {
        if let Some(tx) = self.ready.get(host) {
            tx.send_if_modified(|v| {
                if v.is_none() {
                    *v = Some(has_closure);
                    true
                } else {
                    false
                }
            });
        }
    }

    /// A copy from the deployer starts (the judgement's clock starts with the first).
    pub fn copy_started(&self) {
        self.started
            .send_if_modified(|s| !std::mem::replace(s, true));
    }

    /// The link as judged so far.
    pub fn link(&self) -> Option<Link> {
        *self.link.borrow()
    }

    /// Settle the judgement (the first word counts).
    pub fn set_link(&self, l: Link) {
        self.link
            .send_if_modified(|v| v.is_none() && v.replace(l).is_none());
    }

    /// Resolves once the link is judged slow (never, if it is judged fast).
    pub async fn slow(&self) -> u64 {
        let mut rx = self.link.subscribe();
        match rx.wait_for(|l| l.is_some()).await.map(|l| *l) {
            Ok(Some(Link::Slow(b))) => b,
            _ => std::future::pending().await,
        }
    }

    /// Judge the deployer's link on the bytes its interfaces send once the copies start;
    /// without a threshold or a meter, fan out at once (no direct push to be stopped).
    pub async fn judge(self: Arc<Self>, meter: Option<Meter>, threshold: Option<u64>) -> Link {
        let (Some(meter), Some(threshold)) = (meter, threshold) else {
            self.set_link(Link::Slow(0));
            return Link::Slow(0);
        };
        let mut started = self.started.subscribe();
        let _ = started.wait_for(|s| *s).await;
        // The clock starts when bytes flow, not when `nix copy` starts: its start-up (ssh
        // channel, path queries) is slower on a loaded machine and says nothing of the link.
        let mut base = meter.tx().unwrap_or(0);
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = meter.tx().unwrap_or(base);
            if now.saturating_sub(base) >= FLOWING_BYTES {
                base = now;
                break;
            }
        }
        let t0 = Instant::now();
        let verdict = loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let sent = meter.tx().unwrap_or(base).saturating_sub(base);
            if let Some(l) = judge_link(sent, t0.elapsed().as_secs_f64(), threshold) {
                break l;
            }
        };
        self.set_link(verdict);
        verdict
    }

    /// Wait until `peer` holds its closure or fails.
    async fn peer_ready(&self, peer: &str, wait: Duration) -> Wait {
        let Some(tx) = self.ready.get(peer) else {
            return Wait::PeerFailed;
        };
        let mut rx = tx.subscribe();
        let r = tokio::time::timeout(wait, async {
            match rx.wait_for(|v| v.is_some()).await.map(|v| *v) {
                Ok(Some(true)) => Wait::Ready,
                _ => Wait::PeerFailed,
            }
        })
        .await;
        r.unwrap_or(Wait::PeerFailed)
    }
}

/// What the judgement says, for the progress and `--json`.
pub fn describe_link(l: Link, meter: Option<&Meter>) -> String {
    let mbit = |b: u64| b * 8 / 1_000_000;
    match (l, meter) {
        (Link::Fast(b), _) => format!(
            "this machine's link: {} Mbit/s over all copies (fast): every host takes its closure directly",
            mbit(b)
        ),
        (Link::Slow(b), Some(m)) => format!(
            "this machine's link: {} Mbit/s over all copies (counted on {}): hosts with a peer pull from it",
            mbit(b),
            m.devices.join(", ")
        ),
        (Link::Slow(_), None) => {
            "fan-out without judging the link (no meter, or HEARTH_FAN_OUT_FAST_LINK_MBIT=0): hosts with a peer pull from it".into()
        }
    }
}

/// Pull the paths `hp` shares with its peer, if it has one. True when they arrived (the
/// deployer's push then sends only the rest); false to fall back to a direct push.
pub async fn pull_from_peer(
    ctx: &Ctx,
    fan: &FanOut,
    hp: &HostPlan,
    session: &mut crate::ssh::Session,
) -> bool {
    let Some(peer) = fan.pulls.get(&hp.name) else {
        return false;
    };
    let Some(peer_plan) = fan.plans.get(peer) else {
        return false;
    };
    let from_deployer = |why: String| {
        ctx.sink.emit(Event::CopySource {
            host: hp.name.clone(),
            from: None,
            paths: 0,
            note: why,
        });
        false
    };
    match fan.peer_ready(peer, PEER_WAIT).await {
        Wait::Ready => {}
        Wait::PeerFailed => {
            return from_deployer(format!(
                "peer {peer} does not hold the closure; from this machine"
            ))
        }
    }
    let paths = fan.shared_paths(&hp.name).await;
    if paths.is_empty() {
        return from_deployer(format!(
            "no paths in common with peer {peer}; from this machine"
        ));
    }
    ctx.sink.emit(Event::CopySource {
        host: hp.name.clone(),
        from: Some(peer.clone()),
        paths: paths.len() as u64,
        note: "pulling shared paths over the LAN, signatures checked".into(),
    });
    let pull = match pull_script(peer_plan, &paths) {
        Ok(p) => p,
        Err(e) => {
            return from_deployer(format!(
                "no pull from peer {peer} ({e:#}); from this machine"
            ))
        }
    };
    let script = format!("{}sh -c {}", hp.ssh.root_prefix(), crate::ssh::quote(&pull));
    // The master idled while the peer's copy ran: on a saturated slow uplink ssh may have
    // given up on it (the uplink is free by now). A new one carries the pull, the rest of
    // the copy and the activation, instead of the closure going over the slow link again.
    if let Err(e) = super::pipeline::revive(ctx, hp, session, "while it waited for its peer").await
    {
        return from_deployer(format!("{e:#}; from this machine"));
    }
    match run_pull(ctx, hp, session, &script).await {
        Ok(Ok(o)) if o.success() => true,
        Ok(Ok(o)) => from_deployer(format!(
            "pull from peer {peer} failed ({}); from this machine",
            crate::process::tail(o.stderr.trim(), 3)
        )),
        Ok(Err(e)) => from_deployer(format!(
            "pull from peer {peer} failed ({e:#}); from this machine"
        )),
        Err(_) => from_deployer(format!(
            "peer {peer} too slow (>{}s); from this machine",
            PEER_COPY_TIMEOUT.as_secs()
        )),
    }
}

/// Run the pull on `hp` over its session; if the session itself is lost underway, once more
/// over a new master (the pull needs only the LAN: losing the master must not send the
/// closure over the slow link again).
async fn run_pull(
    ctx: &Ctx,
    hp: &HostPlan,
    session: &mut crate::ssh::Session,
    script: &str,
) -> Result<anyhow::Result<crate::ssh::RemoteOutput>, tokio::time::error::Elapsed> {
    let first = tokio::time::timeout(PEER_COPY_TIMEOUT, session.sh(script)).await;
    let Ok(Err(lost)) = first else {
        return first;
    };
    ctx.sink.emit(Event::Message {
        host: Some(hp.name.clone()),
        text: format!("{lost:#}; pulling over a new connection"),
    });
    if let Err(e) = super::pipeline::revive(ctx, hp, session, "during the pull").await {
        return Ok(Err(e));
    }
    tokio::time::timeout(PEER_COPY_TIMEOUT, session.sh(script)).await
}

/// The closure of each local toplevel, for the tree's shared paths: one
/// `nix path-info -r` over all of them (it starts before any copy, so one process, not one
/// per host), each closure walked from the references.
pub async fn closures(toplevels: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut tops = toplevels.values();
    let Some(first) = tops.next() else {
        return BTreeMap::new();
    };
    let mut cmd =
        tokio::process::Command::from(crate::nix::pathinfo::command(None, first, true, false));
    cmd.args(tops);
    let Ok(o) = cmd.output().await else {
        return BTreeMap::new();
    };
    match crate::nix::pathinfo::parse(&String::from_utf8_lossy(&o.stdout)) {
        Ok(infos) => closures_from(&infos, toplevels),
        Err(_) => BTreeMap::new(),
    }
}

/// Each toplevel's closure through the references of `infos` (hosts whose toplevel is not
/// among them are left out).
pub fn closures_from(
    infos: &[crate::nix::pathinfo::PathInfo],
    toplevels: &BTreeMap<String, String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let refs: BTreeMap<&str, &Vec<String>> = infos
        .iter()
        .map(|i| (i.path.as_str(), &i.references))
        .collect();
    let mut out = BTreeMap::new();
    for (h, top) in toplevels {
        if !refs.contains_key(top.as_str()) {
            continue;
        }
        let mut seen = BTreeSet::new();
        let mut todo = vec![top.clone()];
        while let Some(p) = todo.pop() {
            if let Some(r) = refs.get(p.as_str()) {
                todo.extend(r.iter().filter(|q| !seen.contains(*q)).cloned());
            }
            seen.insert(p);
        }
        out.insert(h.clone(), seen);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::EffectiveDeploy;

    #[test]
    fn the_tree_doubles_every_round() {
        let parents: Vec<Option<usize>> = (0..8).map(tree_parent).collect();
        assert_eq!(
            parents,
            [
                None,
                Some(0),
                Some(0),
                Some(1),
                Some(0),
                Some(1),
                Some(2),
                Some(3)
            ]
        );
        let hosts: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            tree(&hosts),
            vec![
                ("a".to_string(), None),
                ("b".into(), Some("a".to_string())),
                ("c".into(), Some("a".to_string()))
            ]
        );
    }

    #[test]
    fn a_fast_link_is_known_early_a_slow_one_after_the_window() {
        let t = 37_500_000; // 300 Mbit/s
        let w = JUDGE_WINDOW.as_secs_f64();
        assert_eq!(judge_link(1 << 20, 0.1, t), None, "too early to say");
        // More than the threshold could send in the whole window, early: fast.
        let early = (t as f64 * w) as u64 + 1;
        assert!(matches!(judge_link(early, 0.2 * w, t), Some(Link::Fast(_))));
        assert_eq!(judge_link(early - 2, 0.9 * w, t), None, "not yet slow");
        // 200 Mbit/s over the window: slow.
        let slow = (25_000_000.0 * w) as u64;
        assert_eq!(judge_link(slow, w, t), Some(Link::Slow(25_000_000)));
        assert_eq!(judge_link(0, w, t), Some(Link::Slow(0)));
    }

    #[test]
    fn closures_are_walked_from_the_references() {
        let info = |p: &str, r: &[&str]| crate::nix::pathinfo::PathInfo {
            path: p.into(),
            valid: true,
            nar_size: 1,
            closure_size: None,
            references: r.iter().map(|s| s.to_string()).collect(),
        };
        let infos = [
            info("/t1", &["/a", "/t1"]),
            info("/t2", &["/a", "/b"]),
            info("/a", &["/c"]),
            info("/b", &[]),
            info("/c", &["/c"]),
        ];
        let tops: BTreeMap<String, String> = [("h1", "/t1"), ("h2", "/t2"), ("h3", "/gone")]
            .map(|(h, t)| (h.to_string(), t.to_string()))
            .into();
        let c = closures_from(&infos, &tops);
        let v = |h: &str| c[h].iter().cloned().collect::<Vec<_>>();
        assert_eq!(v("h1"), ["/a", "/c", "/t1"]);
        assert_eq!(v("h2"), ["/a", "/b", "/c", "/t2"]);
        assert!(!c.contains_key("h3"));
    }

    #[test]
    fn pulls_only_shared_paths_from_its_parent() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let mut c = BTreeMap::new();
        c.insert("h1".to_string(), set(&["/p/a", "/p/b", "/p/t1"]));
        c.insert("h2".to_string(), set(&["/p/a", "/p/b", "/p/t2"]));
        c.insert("h3".to_string(), set(&["/p/t3"]));
        c.insert("h5".to_string(), set(&["/p/a", "/p/t5"]));
        let tops: BTreeMap<String, String> = c
            .keys()
            .map(|h| (h.clone(), format!("/p/t{}", &h[1..])))
            .collect();
        let hosts = ["h1", "h2", "h3", "h4", "h5"].map(String::from);
        let keyed: BTreeSet<String> = ["h2", "h3", "h4"].map(String::from).into();
        let f = FanOut::new(&hosts, &tops, &keyed);
        assert_eq!(f.peer_of("h1"), None);
        assert_eq!(f.peer_of("h2"), Some("h1"));
        let shared = f.shared_from(&c);
        assert_eq!(shared["h2"], ["/p/a", "/p/b"]);
        // Nothing in common: nothing to pull, straight from the deployer.
        assert_eq!(f.peer_of("h3"), Some("h1"));
        assert!(shared["h3"].is_empty());
        // h4 has no local closure (built elsewhere): not in the tree.
        assert_eq!(f.peer_of("h4"), None);
        // h5 (tree parent h1, which shares /p/a) has no peer key: from the deployer.
        assert_eq!(f.peer_of("h5"), None);
        f.done("h1", true);
        f.done("h1", false);
        assert_eq!(*f.ready["h1"].borrow(), Some(true));
    }

    #[test]
    fn pull_script_checks_the_peer_and_its_signatures() {
        let peer = HostPlan {
            name: "h1".into(),
            system: "x86_64-linux".into(),
            placement: super::super::plan::BuildPlacement::Local,
            placement_reason: String::new(),
            ssh: crate::ssh::SshHost {
                alias: "h1".into(),
                address: "10.0.0.1".into(),
                port: 2222,
                user: "root".into(),
                host_key: "ssh-ed25519 AAAAK h1".into(),
            },
            policy: EffectiveDeploy {
                magic_rollback: true,
                confirm_timeout: 10,
                health_timeout: 10,
                substitute_on_destination: false,
                health: Default::default(),
            },
            batch: 0,
        };
        let s = pull_script(&peer, &["/nix/store/a-x".into()]).unwrap();
        assert_eq!(
            s,
            "set -u\nkh=$(mktemp)\nprintf '%s\\n' '[10.0.0.1]:2222 ssh-ed25519 AAAAK' > \"$kh\"\n\
             NIX_SSHOPTS=\"-o UserKnownHostsFile=$kh -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=5 -i /nix/var/hearth/peer/id_ed25519 -o IdentitiesOnly=yes -p 2222\" \
             nix --extra-experimental-features 'nix-command flakes' copy --from 'ssh-ng://hearth-push@10.0.0.1' /nix/store/a-x\n\
             rc=$?\nrm -f \"$kh\"\nexit $rc\n"
        );
        assert!(!s.contains("no-check-sigs"));
    }
}
