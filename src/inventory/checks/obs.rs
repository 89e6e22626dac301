//! Load-time checks of the observability services' cross-host settings (what
//! `compile::wiring` derives from them), located in the host files: which Loki each alloy
//! ships to, Alertmanager's e-mail settings, schedules the staleness alerts can't measure,
//! restore tests off a backup target.

use super::{Checks, HostIn, P};
use crate::inventory::diag::Diagnostic;
use crate::inventory::schedule::calendar_period;
use crate::inventory::{Hardware, Role};

fn setting<'a>(h: &'a HostIn, service: &str, key: &str) -> Option<&'a toml::Value> {
    h.file.services.get(service)?.get(key)
}

fn text(h: &HostIn, service: &str, key: &str) -> String {
    setting(h, service, key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

impl Checks<'_> {
    pub(super) fn observability(&mut self, hosts: &[HostIn]) {
        let lokis: Vec<&str> = hosts
            .iter()
            .filter(|h| h.file.services.contains_key("loki"))
            .map(|h| h.name)
            .collect();
        let monitored = hosts.iter().any(|h| {
            h.file.services.contains_key("prometheus") || h.file.roles.contains(&Role::Monitoring)
        });
        let mut ambiguous_reported = false;
        for h in hosts.iter().filter(|h| h.file.hardware != Hardware::Lab) {
            ambiguous_reported |= self.alloy(h, &lokis, ambiguous_reported);
            self.alertmanager(h);
            if monitored {
                for service in ["restic", "restic-restore-test"] {
                    self.schedule(h, service);
                }
            }
            self.restore_test(h);
        }
    }

    /// Returns whether it reported the fleet-wide "several Lokis" error.
    fn alloy(&mut self, h: &HostIn, lokis: &[&str], reported: bool) -> bool {
        if setting(h, "alloy", "enable").and_then(|v| v.as_bool()) == Some(false) {
            return false;
        }
        let chosen = text(h, "alloy", "loki");
        if !chosen.is_empty() {
            if !lokis.contains(&chosen.as_str()) {
                let l = self.at(
                    h.src,
                    &[P::K("services"), P::K("alloy"), P::K("loki")],
                    "no Loki there",
                );
                let d = Diagnostic::error(format!(
                    "alloy ships to `{chosen}`, which does not run loki"
                ))
                .at(l);
                let d = self.suggest_host(d, &chosen);
                self.push(
                    d.help(match lokis {
                        [] => "no host has `[services.loki]`; add it to one, or leave `loki` out"
                            .to_string(),
                        _ => format!("hosts with loki: {}", lokis.join(", ")),
                    }),
                );
            }
            return false;
        }
        if lokis.len() > 1 && !reported {
            let l = self.at(
                h.src,
                &[P::K("services"), P::K("alloy")],
                "ships its journal where?",
            );
            self.push(
                Diagnostic::error(format!(
                    "several hosts run loki ({}) and this host's alloy names none",
                    lokis.join(", ")
                ))
                .at(l)
                .help(
                    "set `loki = \"<host>\"` in `[services.alloy]` of every host, or run one Loki",
                ),
            );
            return true;
        }
        false
    }

    fn alertmanager(&mut self, h: &HostIn) {
        if !h.file.services.contains_key("alertmanager") {
            return;
        }
        let at = |c: &Self, key: &str, label: &str| {
            c.at(
                h.src,
                &[P::K("services"), P::K("alertmanager"), P::K(key)],
                label.to_string(),
            )
        };
        let to = setting(h, "alertmanager", "email_to")
            .and_then(|v| v.as_array())
            .is_some_and(|a| !a.is_empty());
        let (from, smarthost) = (
            text(h, "alertmanager", "email_from"),
            text(h, "alertmanager", "smarthost"),
        );
        if to && (from.is_empty() || smarthost.is_empty()) {
            let l = at(self, "email_to", "mail to these");
            self.push(
                Diagnostic::error("alert mail needs a sender and an SMTP server")
                    .at(l)
                    .help("set `email_from = \"hearth@example.org\"` and `smarthost = \"mail.example.org:587\"` in `[services.alertmanager]`"),
            );
        } else if !to && (!from.is_empty() || !smarthost.is_empty()) {
            let key = if from.is_empty() {
                "smarthost"
            } else {
                "email_from"
            };
            let l = at(self, key, "mail from here");
            self.push(
                Diagnostic::error("alert mail settings without `email_to`")
                    .at(l)
                    .help("list who gets the mail in `email_to`, or remove the mail settings"),
            );
        }
        let (user, secret) = (
            text(h, "alertmanager", "smtp_user"),
            text(h, "alertmanager", "smtp_password_secret"),
        );
        if user.is_empty() != secret.is_empty() {
            let key = if user.is_empty() {
                "smtp_password_secret"
            } else {
                "smtp_user"
            };
            let l = at(self, key, "needs its partner");
            self.push(
                Diagnostic::error("`smtp_user` and `smtp_password_secret` go together")
                    .at(l)
                    .help("set both to authenticate to the smarthost, or neither"),
            );
        }
    }

    fn schedule(&mut self, h: &HostIn, service: &str) {
        if !h.file.services.contains_key(service) || !text(h, service, "max_age").is_empty() {
            return;
        }
        let schedule = text(h, service, "schedule");
        if schedule.is_empty() || calendar_period(&schedule).is_some() {
            return; // the default schedules are named ones
        }
        let l = self.at(
            h.src,
            &[P::K("services"), P::K(service), P::K("schedule")],
            "how often is that?",
        );
        self.push(
            Diagnostic::warning(format!(
                "hearth cannot tell how often `{schedule}` runs, so there is no alert for a stale `{service}` on this host"
            ))
            .at(l)
            .help("set `max_age = \"2d\"` (alert when the last run is older), or use a named schedule (`daily`, `weekly`, …) or `[weekdays] [date] HH:MM`"),
        );
    }

    fn restore_test(&mut self, h: &HostIn) {
        if h.file.services.contains_key("restic-restore-test")
            && !h.file.roles.contains(&Role::BackupTarget)
        {
            let l = self.at(
                h.src,
                &[P::K("services"), P::K("restic-restore-test")],
                "not a backup target",
            );
            self.push(
                Diagnostic::error("restic-restore-test runs on a backup target")
                    .at(l)
                    .help("it reads the repositories the restic REST server keeps there; add \"backup-target\" to `roles`, or remove the service"),
            );
        }
    }
}
