//! Two views of the deploy event stream: live progress (bars on a terminal, plain lines
//! otherwise) with a summary table, and `--json` (one event per line).

use crate::events::{Event, EventSink, HostOutcome};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// `--json`: every event as one line on stdout.
pub struct JsonLines;

impl EventSink for JsonLines {
    fn emit(&self, event: Event) {
        let line = serde_json::to_string(&event).expect("events serialize");
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Live progress on stderr, summary table on stdout.
pub struct Progress {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    tty: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        let tty = std::io::stderr().is_terminal();
        let multi = if tty {
            MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10))
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        Self {
            multi,
            bars: Mutex::new(HashMap::new()),
            tty,
        }
    }

    fn bar(&self, host: &str) -> ProgressBar {
        let mut bars = self.bars.lock().unwrap();
        bars.entry(host.to_string())
            .or_insert_with(|| {
                let b = self.multi.add(ProgressBar::new(0));
                b.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>12.bold} {spinner} {wide_msg} {bytes:>10}/{total_bytes:<10}",
                    )
                    .expect("static template"),
                );
                b.set_prefix(host.to_string());
                b.enable_steady_tick(std::time::Duration::from_millis(120));
                b
            })
            .clone()
    }

    fn line(&self, text: &str) {
        if self.tty {
            let _ = self.multi.println(text);
        } else {
            eprintln!("{text}");
        }
    }
}

impl EventSink for Progress {
    fn emit(&self, event: Event) {
        if std::env::var_os("HEARTH_TRACE").is_some() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            eprintln!(
                "[{t:.3}] {}",
                serde_json::to_string(&event).unwrap_or_default()
            );
        }
        match event {
            Event::Plan { hosts, dry_run } => {
                if !dry_run {
                    self.line(&format!("deploying {} host(s)", hosts.len()));
                }
            }
            Event::BuildStarted { hosts, placement } => {
                self.line(&format!("building {} system(s) ({placement})", hosts.len()))
            }
            Event::Built { host, toplevel } => self.line(&format!("{host}: built {toplevel}")),
            Event::BuildFailed {
                drv,
                log_tail,
                log_path,
                message,
            } => {
                let mut s = String::from("build failed");
                if let Some(d) = drv {
                    s.push_str(&format!(": {d}"));
                }
                if !log_tail.is_empty() {
                    s.push_str(&format!("\n--- last log lines ---\n{log_tail}\n---"));
                }
                if let Some(p) = log_path {
                    s.push_str(&format!("\nfull log: {p}"));
                }
                if log_tail.is_empty() {
                    s.push_str(&format!("\n{message}"));
                }
                self.line(&s);
            }
            Event::PhaseStarted { host, phase } => {
                let b = self.bar(&host);
                b.set_message(phase.as_str().to_string());
                if !self.tty {
                    eprintln!("{host}: {}", phase.as_str());
                }
            }
            Event::PhaseFinished { .. } => {}
            Event::CopyProgress {
                host,
                paths_done,
                paths_expected,
                bytes_done,
                bytes_expected,
            } => {
                let b = self.bar(&host);
                b.set_length(bytes_expected);
                b.set_position(bytes_done);
                b.set_message(format!("copy {paths_done}/{paths_expected} paths"));
            }
            Event::CopySource {
                host,
                from,
                paths,
                note,
            } => {
                let text = match from {
                    Some(peer) => format!("copy {paths} shared paths from peer {peer}: {note}"),
                    None => format!("copy from this machine: {note}"),
                };
                self.bar(&host).set_message(text.clone());
                if !self.tty {
                    eprintln!("{host}: {text}");
                }
            }
            Event::CopySkipped { host, reason } => {
                self.bar(&host)
                    .set_message(format!("copy skipped: {reason}"));
                if !self.tty {
                    eprintln!("{host}: copy skipped: {reason}");
                }
            }
            Event::Supervisor { host, state } => {
                self.bar(&host).set_message(format!("host: {state}"));
                if !self.tty {
                    eprintln!("{host}: supervisor {state}");
                }
            }
            Event::HealthCheck {
                host,
                check,
                ok,
                detail,
            } => {
                if !ok {
                    self.line(&format!("{host}: check {check} failed: {detail}"));
                }
            }
            Event::Message { host, text } => match host {
                Some(h) => self.line(&format!("{h}: {text}")),
                None => self.line(&text),
            },
            Event::HostFinished { outcome } => {
                let b = self.bar(&outcome.host);
                b.finish_with_message(outcome.result.as_str().to_string());
                if !self.tty {
                    eprintln!("{}: {}", outcome.host, outcome.result.as_str());
                }
            }
            Event::Summary { hosts, .. } => {
                let _ = self.multi.clear();
                print!("{}", summary_table(&hosts));
                let _ = std::io::stdout().flush();
            }
        }
    }
}

fn gen(g: Option<u32>) -> String {
    g.map(|g| g.to_string()).unwrap_or_else(|| "-".into())
}

/// The summary table: host, result, old → new generation, time per phase, rolled back.
pub fn summary_table(hosts: &[HostOutcome]) -> String {
    let rows: Vec<[String; 5]> = hosts
        .iter()
        .map(|o| {
            let phases = o
                .phases
                .iter()
                .map(|(p, s)| format!("{} {:.1}s", p.as_str(), s))
                .collect::<Vec<_>>()
                .join(", ");
            [
                o.host.clone(),
                o.result.as_str().to_string(),
                format!("{} → {}", gen(o.old_generation), gen(o.new_generation)),
                if o.rolled_back {
                    "yes".into()
                } else {
                    "no".into()
                },
                phases,
            ]
        })
        .collect();
    let head = ["HOST", "RESULT", "GENERATION", "ROLLED BACK", "TIME"];
    let mut w = head.map(|h| h.chars().count());
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let fmt = |r: &[String; 5]| {
        let mut s = String::new();
        for (i, c) in r.iter().enumerate() {
            if i == 4 {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c}{}  ", " ".repeat(w[i] - c.chars().count())));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = fmt(&head.map(String::from));
    for (r, o) in rows.iter().zip(hosts) {
        out.push_str(&fmt(r));
        if !o.detail.is_empty() {
            out.push_str(&format!("  └ {}\n", o.detail));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{HostResult, Phase};

    #[test]
    fn table_shows_generations_phases_and_reasons() {
        let mut a = HostOutcome::new("h1", HostResult::Deployed);
        a.old_generation = Some(3);
        a.new_generation = Some(4);
        a.phases = vec![(Phase::Copy, 1.25), (Phase::Activate, 0.5)];
        let mut b = HostOutcome::new("host-two", HostResult::RolledBack);
        b.old_generation = Some(7);
        b.new_generation = Some(7);
        b.rolled_back = true;
        b.detail = "no confirmation within 3s".into();
        let t = summary_table(&[a, b]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("HOST      RESULT"), "{t}");
        assert!(
            lines[1].contains("deployed") && lines[1].contains("3 → 4"),
            "{t}"
        );
        assert!(lines[1].ends_with("copy 1.2s, activate 0.5s"), "{t}");
        assert!(
            lines[2].contains("rolled-back") && lines[2].contains("yes"),
            "{t}"
        );
        assert_eq!(lines[3], "  └ no confirmation within 3s");
    }
}
