//! Fan-out: the deployer's link carries each store path once. The first host of a batch gets
//! its closure from the deployer; every other host pulls the paths it shares with a peer
//! that already has them, over the LAN, in a spreading tree (1 → 2 → 4 → …), and only the
//! rest (its own toplevel and what no peer has) from the deployer.
//!
//! Trust: the pull runs `nix copy --from ssh-ng://hearth-push@peer` as root on the receiving
//! host *without* `--no-check-sigs`, so every path must carry a signature from a key in its
//! `trusted-public-keys` (the deployer signs what it pushes). The peer login is the host's
//! own peer key, authorised on the peer for `nix-daemon --stdio` only, as a user the peer's
//! Nix does not trust (reading paths needs no trust). A peer that is down, slow or refuses
//! is routed around: the deployer pushes directly, as without fan-out.

use super::pipeline::Ctx;
use super::plan::HostPlan;
use crate::builders::sshenv::known_hosts_line;
use crate::events::Event;
use crate::nix::sign::{PEER_KEY_PATH, PUSH_USER};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::watch;

/// How long a host waits for its peer to hold the shared paths before it asks the deployer.
/// Long on purpose: on a slow deployer link the first host's copy takes as long as the link
/// needs, and going direct instead would share that same link. A peer always says when it
/// is done or has failed, so this only bounds a peer that hangs.
pub const PEER_WAIT: Duration = Duration::from_secs(3600);
/// How long one peer pull may take before the deployer pushes instead.
pub const PEER_COPY_TIMEOUT: Duration = Duration::from_secs(300);

/// A deployer link at least this fast (measured over the first host's whole copy) gains
/// nothing from fan-out: the hosts waiting for a peer take the closure directly instead.
/// `HEARTH_FAN_OUT_FAST_LINK_MBIT` overrides it (0: always fan out).
pub const FAST_LINK_MBIT: u64 = 400;
/// A first copy smaller than this is too short to judge the link by.
pub const JUDGE_AFTER_BYTES: u64 = 8 << 20;

pub fn fast_link_bytes_per_sec() -> Option<u64> {
    let mbit = std::env::var("HEARTH_FAN_OUT_FAST_LINK_MBIT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(FAST_LINK_MBIT);
    (mbit > 0).then_some(mbit * 1_000_000 / 8)
}

/// Is a copy that moved `bytes` in `secs` on a link fast enough to skip fan-out?
pub fn link_is_fast(bytes: u64, secs: f64, threshold: Option<u64>) -> bool {
    match threshold {
        Some(t) if bytes >= JUDGE_AFTER_BYTES && secs > 0.0 => bytes as f64 / secs >= t as f64,
        _ => false,
    }
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
    /// host → (peer, paths shared with it).
    pulls: BTreeMap<String, (String, Vec<String>)>,
    ready: BTreeMap<String, Ready>,
    /// Every host's plan (a pull needs its peer's address and host key).
    plans: BTreeMap<String, HostPlan>,
    /// The deployer's link proved fast (bytes/s seen): waiting hosts go direct.
    fast: watch::Sender<Option<u64>>,
    /// The first host, whose copy from the deployer measures the link.
    pub root: Option<String>,
    /// NAR bytes and paths of the first host's closure (Nix 2.8 often reports no bytes for
    /// a quick copy; the paths it copied, in this proportion, stand in).
    pub root_closure: (u64, u64),
}

/// Why a host stopped waiting for its peer.
#[derive(Debug, PartialEq, Eq)]
enum Wait {
    Ready,
    PeerFailed,
    FastLink(u64),
}

impl FanOut {
    /// Plan the tree over `hosts` (deploy order) given each one's closure; a host pulls from
    /// its tree parent only the paths both closures hold, and only when it has a peer key
    /// (`with_key`: hosts with `keys/peer-<host>.pub`, which every peer authorises).
    pub fn new(
        hosts: &[String],
        closures: &BTreeMap<String, BTreeSet<String>>,
        with_key: &BTreeSet<String>,
    ) -> FanOut {
        let hosts: Vec<String> = hosts
            .iter()
            .filter(|h| closures.contains_key(*h))
            .cloned()
            .collect();
        let mut pulls = BTreeMap::new();
        for (h, parent) in tree(&hosts) {
            let Some(p) = parent.filter(|_| with_key.contains(&h)) else {
                continue;
            };
            let shared: Vec<String> = closures[&h].intersection(&closures[&p]).cloned().collect();
            if !shared.is_empty() {
                pulls.insert(h, (p, shared));
            }
        }
        let root = hosts.first().cloned();
        let ready = hosts
            .into_iter()
            .map(|h| (h, watch::channel(None).0))
            .collect();
        FanOut {
            pulls,
            ready,
            plans: BTreeMap::new(),
            fast: watch::channel(None).0,
            root_closure: root
                .as_ref()
                .map(|r| (0, closures[r].len() as u64))
                .unwrap_or_default(),
            root,
        }
    }

    pub fn with_root_bytes(mut self, bytes: &BTreeMap<String, u64>) -> FanOut {
        if let Some(b) = self.root.as_ref().and_then(|r| bytes.get(r)) {
            self.root_closure.0 = *b;
        }
        self
    }

    /// Bytes the first host's copy moved: Nix's figure, or its share of the closure.
    pub fn copied_bytes(&self, bytes_done: u64, paths_done: u64) -> u64 {
        let (bytes, paths) = self.root_closure;
        let share = if paths == 0 {
            0
        } else {
            bytes * paths_done.min(paths) / paths
        };
        bytes_done.max(share)
    }

    pub fn with_plans(mut self, plans: impl IntoIterator<Item = HostPlan>) -> FanOut {
        self.plans = plans.into_iter().map(|p| (p.name.clone(), p)).collect();
        self
    }

    /// The peer `host` pulls from, if any.
    pub fn peer_of(&self, host: &str) -> Option<&str> {
        self.pulls.get(host).map(|(p, _)| p.as_str())
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

    /// The first copy showed the deployer's link at `bytes_per_sec`, fast enough to go direct.
    pub fn link_fast(&self, bytes_per_sec: u64) {
        self.fast
            .send_if_modified(|v| v.replace(bytes_per_sec).is_none());
    }

    /// Whether this host's copy from the deployer measures the link (and has pullers).
    pub fn measures_link(&self, host: &str) -> bool {
        self.root.as_deref() == Some(host) && !self.pulls.is_empty()
    }

    /// Wait until `peer` holds its closure, fails, or the link proves fast.
    async fn peer_ready(&self, peer: &str, wait: Duration) -> Wait {
        let Some(tx) = self.ready.get(peer) else {
            return Wait::PeerFailed;
        };
        let mut rx = tx.subscribe();
        let mut fast = self.fast.subscribe();
        let r = tokio::time::timeout(wait, async {
            tokio::select! {
                // The fast-link word comes first: it is sent just before the peer's "done".
                biased;
                f = fast.wait_for(|f| f.is_some()) => match f.map(|f| *f) {
                    Ok(Some(b)) => Wait::FastLink(b),
                    _ => Wait::PeerFailed,
                },
                v = rx.wait_for(|v| v.is_some()) => match v.map(|v| *v) {
                    Ok(Some(true)) => Wait::Ready,
                    _ => Wait::PeerFailed,
                },
            }
        })
        .await;
        r.unwrap_or(Wait::PeerFailed)
    }
}

/// Pull the paths `hp` shares with its peer, if it has one. True when they arrived (the
/// deployer's push then sends only the rest); false to fall back to a direct push.
pub async fn pull_from_peer(
    ctx: &Ctx,
    fan: &FanOut,
    hp: &HostPlan,
    session: &crate::ssh::Session,
) -> bool {
    let Some((peer, paths)) = fan.pulls.get(&hp.name) else {
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
        Wait::FastLink(b) => {
            return from_deployer(format!(
                "this machine's link is fast ({} Mbit/s on the first copy): direct",
                b * 8 / 1_000_000
            ))
        }
    }
    ctx.sink.emit(Event::CopySource {
        host: hp.name.clone(),
        from: Some(peer.clone()),
        paths: paths.len() as u64,
        note: "pulling shared paths over the LAN, signatures checked".into(),
    });
    let pull = match pull_script(peer_plan, paths) {
        Ok(p) => p,
        Err(e) => {
            return from_deployer(format!(
                "no pull from peer {peer} ({e:#}); from this machine"
            ))
        }
    };
    let script = format!("{}sh -c {}", hp.ssh.root_prefix(), crate::ssh::quote(&pull));
    match tokio::time::timeout(PEER_COPY_TIMEOUT, session.sh(&script)).await {
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

/// The closure of each local toplevel (`nix path-info -r`), for the tree's shared paths,
/// and each one's NAR bytes.
pub async fn closures(
    toplevels: &BTreeMap<String, String>,
) -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, u64>) {
    let mut out = BTreeMap::new();
    let mut bytes = BTreeMap::new();
    for (h, top) in toplevels {
        let cmd = crate::nix::pathinfo::command(None, top, true, false);
        let Ok(o) = tokio::process::Command::from(cmd).output().await else {
            continue;
        };
        if let Ok(infos) = crate::nix::pathinfo::parse(&String::from_utf8_lossy(&o.stdout)) {
            bytes.insert(h.clone(), crate::nix::pathinfo::totals(&infos).0);
            out.insert(h.clone(), infos.into_iter().map(|i| i.path).collect());
        }
    }
    (out, bytes)
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
    fn a_fast_link_is_judged_after_enough_bytes() {
        let t = Some(50_000_000);
        assert!(!link_is_fast(1 << 20, 0.001, t), "too few bytes to judge");
        assert!(link_is_fast(100 << 20, 1.0, t));
        assert!(!link_is_fast(100 << 20, 4.0, t));
        assert!(!link_is_fast(100 << 20, 1.0, None), "0 Mbit: never");
    }

    #[test]
    fn pulls_only_shared_paths_from_its_parent() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let mut c = BTreeMap::new();
        c.insert("h1".to_string(), set(&["/p/a", "/p/b", "/p/t1"]));
        c.insert("h2".to_string(), set(&["/p/a", "/p/b", "/p/t2"]));
        c.insert("h3".to_string(), set(&["/p/t3"]));
        c.insert("h5".to_string(), set(&["/p/a", "/p/t5"]));
        let hosts = ["h1", "h2", "h3", "h4", "h5"].map(String::from);
        let keyed: BTreeSet<String> = ["h2", "h3", "h4"].map(String::from).into();
        let f = FanOut::new(&hosts, &c, &keyed);
        assert_eq!(f.peer_of("h1"), None);
        assert_eq!(f.peer_of("h2"), Some("h1"));
        assert_eq!(f.pulls["h2"].1, ["/p/a", "/p/b"]);
        // Nothing in common: straight from the deployer.
        assert_eq!(f.peer_of("h3"), None);
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
