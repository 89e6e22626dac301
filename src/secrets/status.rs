//! The state of each secret file against the inventory, from the age header alone (no
//! private key needed): ok, missing, stale (recipients differ) or unreadable. `check`,
//! `list`, `hearth check` and the deploy gate all read it from here.

use super::files;
use super::header::{self, Stanza};
use super::recipients::{Grant, SECRETS_DIR};
use crate::inventory::Diagnostic;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Ok,
    Missing,
    /// The file's recipients differ from the inventory's; why, one line each.
    Stale(Vec<String>),
    /// Not a regular file, or not a readable age header.
    Unreadable(String),
}

impl State {
    pub fn word(&self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Missing => "missing",
            State::Stale(_) => "stale",
            State::Unreadable(_) => "unreadable",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Status {
    pub state: State,
    /// The header's stanzas, when it could be read.
    pub stanzas: Option<Vec<Stanza>>,
}

/// Read the header of `grant`'s file under `root` and compare it with the inventory.
pub fn status(root: &Path, grant: &Grant) -> Status {
    let path = root.join(&grant.file);
    let bytes = match files::read(&path) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Status {
                state: State::Missing,
                stanzas: None,
            }
        }
        Err(e) => {
            return Status {
                state: State::Unreadable(format!("{e:#}")),
                stanzas: None,
            }
        }
    };
    match header::parse(&bytes) {
        Err(e) => Status {
            state: State::Unreadable(e.to_string()),
            stanzas: None,
        },
        Ok(stanzas) => {
            let reasons = compare(grant, &stanzas);
            let state = if reasons.is_empty() {
                State::Ok
            } else {
                State::Stale(reasons)
            };
            Status {
                state,
                stanzas: Some(stanzas),
            }
        }
    }
}

/// Why the stanzas don't match the grant's recipients; empty when they do.
pub fn compare(grant: &Grant, stanzas: &[Stanza]) -> Vec<String> {
    let have: BTreeSet<&str> = stanzas.iter().filter_map(Stanza::tag).collect();
    let want: BTreeSet<&str> = grant
        .recipients
        .iter()
        .filter_map(|r| r.tag.as_deref())
        .collect();
    let mut out = Vec::new();
    for r in &grant.recipients {
        match &r.tag {
            Some(t) if have.contains(t.as_str()) => {}
            Some(_) => out.push(format!("not encrypted for {}", r.label())),
            None => out.push(format!("the key of {} is not valid base64", r.label())),
        }
    }
    let extra: Vec<&str> = have.difference(&want).copied().collect();
    if !extra.is_empty() {
        out.push(format!(
            "encrypted for {} the inventory no longer lists (tag {})",
            plural(extra.len(), "key"),
            extra.join(", ")
        ));
    }
    let x25519 = stanzas.iter().filter(|s| **s == Stanza::X25519).count();
    if x25519 > 0 {
        out.push(format!(
            "encrypted for {} (native age keys carry no tag, so they can't be matched to the inventory's SSH keys)",
            plural(x25519, "X25519 recipient")
        ));
    }
    for s in stanzas {
        if let Stanza::Other(t) = s {
            out.push(format!(
                "has a `{t}` recipient, which the inventory can't express"
            ));
        }
    }
    out
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `hearth check`'s error for a secret that is not ok: (message, help).
pub fn problem(grant: &Grant, state: &State) -> Option<(String, String)> {
    let (name, file) = (&grant.name, grant.file.display());
    match state {
        State::Ok => None,
        State::Missing => Some((
            format!("secret `{name}`: {file} does not exist"),
            format!("create it: `hearth secrets set {name}` (from stdin or --from-file)"),
        )),
        State::Stale(reasons) => Some((
            format!("secret `{name}`: {file} is stale: {}", reasons.join("; ")),
            format!("re-encrypt it for the inventory's keys: `hearth secrets rekey {name}` (or replace it: `hearth secrets set {name}`)"),
        )),
        State::Unreadable(why) => Some((
            format!("secret `{name}`: {file} is unreadable: {why}"),
            format!("replace it: `hearth secrets set {name}` (or restore it from git)"),
        )),
    }
}

/// `.age` files under `secrets/` that no secret of the inventory refers to.
pub fn unreferenced(root: &Path, grants: &BTreeMap<String, Grant>) -> Vec<PathBuf> {
    let known: BTreeSet<&Path> = grants.values().map(|g| g.file.as_path()).collect();
    let Ok(entries) = std::fs::read_dir(root.join(SECRETS_DIR)) else {
        return vec![];
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".age") && !n.starts_with('.'))
        .map(|n| Path::new(SECRETS_DIR).join(n))
        .filter(|p| !known.contains(p.as_path()))
        .collect();
    out.sort();
    out
}

/// Every secret problem as diagnostics: errors for secrets that are not ok, warnings for
/// unreferenced files and keys age can't use.
pub fn diagnostics(root: &Path, grants: &BTreeMap<String, Grant>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for grant in grants.values() {
        if let Some((msg, help)) = problem(grant, &status(root, grant).state) {
            out.push(Diagnostic::error(msg).help(help));
        }
        for r in &grant.unsupported {
            out.push(Diagnostic::warning(format!(
                "secret `{}`: {} has a key age can't encrypt to (`{}`); it is left out",
                grant.name,
                r.label(),
                r.key.split_whitespace().next().unwrap_or("")
            )));
        }
    }
    for p in unreferenced(root, grants) {
        out.push(
            Diagnostic::warning(format!(
                "{} belongs to no secret in the inventory",
                p.display()
            ))
            .help(
                "delete it, or declare the secret in hearth.toml: `[secrets.NAME] hosts = [...]`",
            ),
        );
    }
    out
}

/// Why `host` can't be deployed with its secrets as they are; empty when it can. A
/// secret blocks the host when its file is missing or unreadable, or is not encrypted
/// for this host's key (other recipients' staleness doesn't stop this host's activation).
pub fn host_blockers(
    root: &Path,
    grants: &BTreeMap<String, Grant>,
    host: &str,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for grant in grants
        .values()
        .filter(|g| g.hosts.iter().any(|h| h == host))
    {
        let st = status(root, grant);
        let Some(mine) = grant.host_recipient(host) else {
            out.push((
                format!("host `{host}` has no usable `host_key`, so it can't decrypt secret `{}` ({})", grant.name, grant.file.display()),
                format!("record its ed25519 host key in hosts/{host}.toml, then `hearth secrets rekey {}`", grant.name),
            ));
            continue;
        };
        let for_me = st.stanzas.as_ref().is_some_and(|s| {
            mine.tag
                .as_deref()
                .is_some_and(|t| s.iter().any(|x| x.tag() == Some(t)))
        });
        match &st.state {
            State::Missing | State::Unreadable(_) => out.extend(problem(grant, &st.state)),
            State::Stale(_) | State::Ok if !for_me => out.push((
                format!("secret `{}`: {} is not encrypted for host `{host}`", grant.name, grant.file.display()),
                format!("re-encrypt it for the inventory's keys: `hearth secrets rekey {}` (or replace it: `hearth secrets set {}`)", grant.name, grant.name),
            )),
            _ => {}
        }
    }
    out
}
