//! Typed deploy events. The progress UI and `--json` are two views of one stream:
//! the pipeline only ever emits [`Event`]s into an [`EventSink`].

use serde::Serialize;
use std::sync::{Arc, Mutex};

/// Pipeline phases, in order. Times per phase are reported in the summary.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Build,
    Connect,
    Copy,
    Activate,
    Confirm,
    Health,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Build => "build",
            Phase::Connect => "connect",
            Phase::Copy => "copy",
            Phase::Activate => "activate",
            Phase::Confirm => "confirm",
            Phase::Health => "health",
        }
    }
}

/// What finally happened on a host, as read back from the host.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum HostResult {
    /// The new generation is active and confirmed (and healthy).
    Deployed,
    /// The host already ran this system; nothing was copied or activated.
    Unchanged,
    /// Activation, confirmation or health failed and the host is back on its old generation.
    RolledBack,
    /// Something failed and the host did not change (e.g. copy failed, lock held).
    Failed,
    /// A second deploy holds the host's lock.
    Refused,
    /// Not attempted (an earlier batch failed, or the build failed).
    Skipped,
    /// The host could not be reached to read back what happened.
    Unknown,
    /// `--dry-activate` ran; nothing changed.
    DryActivated,
}

impl HostResult {
    pub fn is_success(self) -> bool {
        matches!(
            self,
            HostResult::Deployed | HostResult::Unchanged | HostResult::DryActivated
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            HostResult::Deployed => "deployed",
            HostResult::Unchanged => "unchanged",
            HostResult::RolledBack => "rolled-back",
            HostResult::Failed => "failed",
            HostResult::Refused => "refused",
            HostResult::Skipped => "skipped",
            HostResult::Unknown => "unknown",
            HostResult::DryActivated => "dry-activated",
        }
    }
}

/// The per-host line of the summary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostOutcome {
    pub host: String,
    pub result: HostResult,
    /// Generation before the deploy (profile number), as read from the host.
    pub old_generation: Option<u32>,
    /// Generation the host is on at the end, as read from the host.
    pub new_generation: Option<u32>,
    /// The system the host runs at the end, as read from the host.
    pub current: Option<String>,
    pub rolled_back: bool,
    /// Seconds spent per phase, in pipeline order.
    pub phases: Vec<(Phase, f64)>,
    /// Why it failed or rolled back; empty on success.
    pub detail: String,
}

impl HostOutcome {
    pub fn new(host: &str, result: HostResult) -> Self {
        Self {
            host: host.to_string(),
            result,
            old_generation: None,
            new_generation: None,
            current: None,
            rolled_back: false,
            phases: Vec::new(),
            detail: String::new(),
        }
    }
}

/// One line of `--json`, or one update of the progress UI.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The plan: one entry per selected host.
    Plan {
        hosts: Vec<PlannedHost>,
        dry_run: bool,
    },
    BuildStarted {
        hosts: Vec<String>,
        placement: String,
    },
    Built {
        host: String,
        toplevel: String,
    },
    BuildFailed {
        drv: Option<String>,
        log_tail: String,
        log_path: Option<String>,
        message: String,
    },
    PhaseStarted {
        host: String,
        phase: Phase,
    },
    PhaseFinished {
        host: String,
        phase: Phase,
        secs: f64,
    },
    /// Copy progress from Nix's internal-json log.
    CopyProgress {
        host: String,
        paths_done: u64,
        paths_expected: u64,
        bytes_done: u64,
        bytes_expected: u64,
    },
    CopySkipped {
        host: String,
        reason: String,
    },
    /// Fan-out: where a host's shared paths come from. `from` is the peer it pulls them from
    /// over the LAN, or None when the deployer sends them (no peer, or the peer failed).
    CopySource {
        host: String,
        from: Option<String>,
        paths: u64,
        note: String,
    },
    /// A state the supervisor on the host reported (`activating`, `waiting-confirm`, …).
    Supervisor {
        host: String,
        state: String,
    },
    HealthCheck {
        host: String,
        check: String,
        ok: bool,
        detail: String,
    },
    Message {
        host: Option<String>,
        text: String,
    },
    HostFinished {
        outcome: HostOutcome,
    },
    Summary {
        hosts: Vec<HostOutcome>,
        ok: bool,
    },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlannedHost {
    pub host: String,
    pub system: String,
    /// Where the system is built (see `deploy::plan::BuildPlacement`).
    pub build: String,
    /// Where the closure is copied from and to.
    pub copy: String,
    /// What activates, and how.
    pub activate: String,
    pub batch: usize,
}

/// Receives every event; implementations render them.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

pub type Sink = Arc<dyn EventSink>;

/// Keeps every event (tests, and the summary table).
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<Event>>,
}

impl EventSink for Recorder {
    fn emit(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }
}

/// Sends every event to several sinks.
pub struct Tee(pub Vec<Sink>);

impl EventSink for Tee {
    fn emit(&self, event: Event) {
        for s in &self.0 {
            s.emit(event.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_as_tagged_lines() {
        let e = Event::CopyProgress {
            host: "h1".into(),
            paths_done: 1,
            paths_expected: 2,
            bytes_done: 3,
            bytes_expected: 4,
        };
        let line = serde_json::to_string(&e).unwrap();
        assert_eq!(
            line,
            r#"{"event":"copy_progress","host":"h1","paths_done":1,"paths_expected":2,"bytes_done":3,"bytes_expected":4}"#
        );
        let e = Event::CopySource {
            host: "h2".into(),
            from: Some("h1".into()),
            paths: 3,
            note: "n".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"event":"copy_source","host":"h2","from":"h1","paths":3,"note":"n"}"#
        );
        let o = HostOutcome::new("h1", HostResult::RolledBack);
        let line = serde_json::to_string(&Event::HostFinished { outcome: o }).unwrap();
        assert!(line.contains(r#""result":"rolled-back""#), "{line}");
    }
}
