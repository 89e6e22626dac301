//! Text `hearth update` and `hearth diff` emit: the pull-request body (Markdown), the
//! commit message, and the terminal diff. All pure.

use super::closure_diff::{ChangeKind, HostDiff, PackageChange};
use super::lock::{compare_link, describe_source, format_date, short_rev, LockDiff, SourceRef};
use crate::nix::flake::BuildFailure;
use std::fmt::Write;

/// What happened to one host.
#[derive(Debug, Clone, PartialEq)]
pub enum HostOutcome {
    Diff(HostDiff),
    /// Built with the new lock; no diff was asked for.
    Built,
    /// Old and new toplevel are the same store path.
    Unchanged,
    NewBuildFailed(BuildFailure),
    /// The host did not build with the old lock, so there is nothing to diff against.
    OldBuildFailed(BuildFailure),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostReport {
    pub host: String,
    pub outcome: HostOutcome,
}

fn rev_with_date(r: &SourceRef) -> String {
    match r.last_modified {
        Some(t) => format!("`{}` ({})", short_rev(r), format_date(t)),
        None => format!("`{}`", short_rev(r)),
    }
}

/// `1.5 GiB`-style size.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `+12.0 MiB` / `-3 B` / `±0 B`.
pub fn signed_size(delta: i64) -> String {
    match delta.signum() {
        0 => "±0 B".into(),
        1 => format!("+{}", human_size(delta as u64)),
        _ => format!("-{}", human_size(delta.unsigned_abs())),
    }
}

fn follows_text(f: &Option<String>) -> String {
    match f {
        Some(t) if t.is_empty() => "follows the root flake".into(),
        Some(t) => format!("follows `{t}`"),
        None => "locked on its own".into(),
    }
}

/// The lock part of the body.
pub fn render_lock_diff(d: &LockDiff) -> String {
    let mut s = String::new();
    if d.is_empty() {
        s.push_str("No flake input changed.\n");
        return s;
    }
    if !d.changed.is_empty() {
        s.push_str("### Changed inputs\n\n| Input | Old | New | Diff |\n|---|---|---|---|\n");
        for c in &d.changed {
            let link = compare_link(&c.old, &c.new)
                .map(|u| format!("[compare]({u})"))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {} |",
                c.name,
                rev_with_date(&c.old),
                rev_with_date(&c.new),
                link
            );
        }
        s.push('\n');
    }
    for (title, list) in [("Added inputs", &d.added), ("Removed inputs", &d.removed)] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(s, "### {title}\n");
        for (name, r) in list {
            let _ = writeln!(
                s,
                "- `{name}`: {} at {}",
                describe_source(r),
                rev_with_date(r)
            );
        }
        s.push('\n');
    }
    if !d.follows.is_empty() {
        s.push_str("### Changed `follows`\n\n");
        for f in &d.follows {
            let _ = writeln!(
                s,
                "- `{}`: {} → {}",
                f.name,
                follows_text(&f.old),
                follows_text(&f.new)
            );
        }
        s.push('\n');
    }
    s
}

fn change_label(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Upgraded => "upgraded",
        ChangeKind::Downgraded => "**downgraded**",
        ChangeKind::Changed => "changed",
        ChangeKind::Added => "added",
        ChangeKind::Removed => "removed",
    }
}

fn versions(v: &[String]) -> String {
    if v.is_empty() {
        return "—".into();
    }
    v.iter()
        .map(|x| {
            if x.is_empty() {
                "(no version)".to_string()
            } else {
                x.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn package_table(s: &mut String, title: &str, changes: &[&PackageChange]) {
    if changes.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "**{title}**\n\n| Package | Change | Old | New |\n|---|---|---|---|"
    );
    let mut sorted = changes.to_vec();
    sorted.sort_by(|a, b| a.kind.cmp(&b.kind).then_with(|| a.name.cmp(&b.name)));
    for c in sorted {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} |",
            c.name,
            change_label(c.kind),
            versions(&c.old),
            versions(&c.new)
        );
    }
    s.push('\n');
}

/// One-line summary: `2 upgraded, 1 downgraded; closure 1.0 GiB → 1.1 GiB (+100.0 MiB)`.
pub fn summary(d: &HostDiff) -> String {
    let mut parts = Vec::new();
    for k in [
        ChangeKind::Upgraded,
        ChangeKind::Downgraded,
        ChangeKind::Changed,
        ChangeKind::Added,
        ChangeKind::Removed,
    ] {
        let n = d.diff.count(k);
        if n > 0 {
            parts.push(format!("{n} {}", change_label(k).trim_matches('*')));
        }
    }
    if parts.is_empty() {
        parts.push("no version changes".into());
    }
    format!(
        "{}; closure {} → {} ({})",
        parts.join(", "),
        human_size(d.diff.old_size),
        human_size(d.diff.new_size),
        signed_size(d.diff.size_delta())
    )
}

fn failure_block(s: &mut String, f: &BuildFailure) {
    match &f.derivation {
        Some(d) => {
            let _ = writeln!(s, "Failing derivation: `{d}`\n");
        }
        None => s.push_str("Evaluation failed (no derivation was built).\n\n"),
    }
    let _ = writeln!(s, "```\n{}\n```", f.log_tail.replace("```", "'''"));
}

/// One collapsible section per host.
pub fn render_host(r: &HostReport) -> String {
    let mut s = String::new();
    match &r.outcome {
        HostOutcome::Diff(d) => {
            let _ = writeln!(
                s,
                "<details>\n<summary><b>{}</b>: {}</summary>\n",
                r.host,
                summary(d)
            );
            let (sys, other) = d.split();
            if d.system_packages.is_some() {
                package_table(&mut s, "environment.systemPackages", &sys);
                package_table(&mut s, "Other packages in the closure", &other);
            } else {
                package_table(&mut s, "Packages in the closure", &other);
            }
            s.push_str("</details>\n");
        }
        HostOutcome::Built => {
            let _ = writeln!(s, "- <b>{}</b>: builds with the new lock", r.host);
        }
        HostOutcome::Unchanged => {
            let _ = writeln!(s, "- <b>{}</b>: system unchanged", r.host);
        }
        HostOutcome::NewBuildFailed(f) => {
            let _ = writeln!(
                s,
                "<details open>\n<summary><b>{}</b>: ❌ does not build with the new lock</summary>\n",
                r.host
            );
            failure_block(&mut s, f);
            s.push_str("</details>\n");
        }
        HostOutcome::OldBuildFailed(f) => {
            let _ = writeln!(
                s,
                "<details>\n<summary><b>{}</b>: builds with the new lock, but not with the old one (no diff)</summary>\n",
                r.host
            );
            failure_block(&mut s, f);
            s.push_str("</details>\n");
        }
    }
    s
}

/// The whole pull-request body.
pub fn render_body(lock: &LockDiff, hosts: &[HostReport]) -> String {
    let mut s = String::from("## Flake inputs\n\n");
    s.push_str(&render_lock_diff(lock));
    let failed: Vec<&str> = hosts
        .iter()
        .filter(|h| matches!(h.outcome, HostOutcome::NewBuildFailed(_)))
        .map(|h| h.host.as_str())
        .collect();
    if !hosts.is_empty() {
        s.push_str("## Hosts\n\n");
        if !failed.is_empty() {
            let _ = writeln!(
                s,
                "❌ Does not build with the new lock: {}\n",
                failed.join(", ")
            );
        }
        for h in hosts {
            s.push_str(&render_host(h));
            s.push('\n');
        }
    }
    s.push_str("<sub>Written by `hearth update`.</sub>\n");
    s
}

/// Conventional commit message listing what changed.
pub fn commit_message(d: &LockDiff) -> String {
    let mut s = String::from("chore(flake): update inputs\n\n");
    for c in &d.changed {
        let _ = writeln!(
            s,
            "- {}: {} → {}",
            c.name,
            short_rev(&c.old),
            short_rev(&c.new)
        );
    }
    for (n, r) in &d.added {
        let _ = writeln!(s, "- {n}: added at {}", short_rev(r));
    }
    for (n, _) in &d.removed {
        let _ = writeln!(s, "- {n}: removed");
    }
    for f in &d.follows {
        let _ = writeln!(
            s,
            "- {}: {} → {}",
            f.name,
            follows_text(&f.old),
            follows_text(&f.new).replace('`', "")
        );
    }
    s.trim_end().replace('`', "") + "\n"
}

/// Plain-text diff for the terminal (`hearth diff`).
pub fn render_host_text(host: &str, d: &HostDiff) -> String {
    let mut s = format!("{host}: {}\n", summary(d).replace("**", ""));
    let (sys, other) = d.split();
    let groups: Vec<(&str, Vec<&PackageChange>)> = if d.system_packages.is_some() {
        vec![
            ("environment.systemPackages", sys),
            ("other packages", other),
        ]
    } else {
        vec![("packages", other)]
    };
    for (title, list) in groups {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{title}:");
        for c in list {
            let mark = match c.kind {
                ChangeKind::Upgraded => "[U]",
                ChangeKind::Downgraded => "[D]",
                ChangeKind::Changed => "[C]",
                ChangeKind::Added => "[A]",
                ChangeKind::Removed => "[R]",
            };
            let _ = writeln!(
                s,
                "  {mark} {}  {} → {}",
                c.name,
                versions(&c.old),
                versions(&c.new)
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(signed_size(2048), "+2.0 KiB");
        assert_eq!(signed_size(-5), "-5 B");
        assert_eq!(signed_size(0), "±0 B");
    }

    #[test]
    fn build_failure_section_names_derivation_and_log() {
        let r = HostReport {
            host: "nas".into(),
            outcome: HostOutcome::NewBuildFailed(BuildFailure {
                derivation: Some("/nix/store/x-samba-4.21.0.drv".into()),
                log_tail: "> make: *** [all] Error 2".into(),
            }),
        };
        let body = render_body(&LockDiff::default(), &[r]);
        assert!(
            body.contains("❌ Does not build with the new lock: nas"),
            "{body}"
        );
        assert!(
            body.contains("Failing derivation: `/nix/store/x-samba-4.21.0.drv`"),
            "{body}"
        );
        assert!(body.contains("> make: *** [all] Error 2"), "{body}");
    }
}
