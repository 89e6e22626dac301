//! The `hearth secrets` subcommands: each loads the inventory's grants, works on one
//! secret file at a time, and only ever replaces a file with a complete new one.

use super::crypt::{self, DecryptFailure, Identities};
use super::header::{self, Stanza};
use super::recipients::{self, Grant};
use super::status::{self, State};
use super::{editor, files, IdentityArgs, SecretsArgs, SecretsCommand};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

pub fn run(root: &Path, args: SecretsArgs) -> Result<u8> {
    let (_, grants) = recipients::load(root)?;
    match args.command {
        SecretsCommand::Set { name, from_file } => set(root, &grants, &name, from_file.as_deref()),
        SecretsCommand::Edit { name, ids } => edit(root, &grants, &name, &ids),
        SecretsCommand::Rekey { names, ids } => rekey(root, &grants, &names, &ids),
        SecretsCommand::Check => check(root, &grants),
        SecretsCommand::List { json } => list(root, &grants, json),
    }
}

fn set(
    root: &Path,
    grants: &BTreeMap<String, Grant>,
    name: &str,
    from: Option<&Path>,
) -> Result<u8> {
    let grant = recipients::find(grants, name)?;
    let keys = grant.age_recipients()?;
    let path = root.join(&grant.file);
    // Refuse a symlink or FIFO before taking the plaintext.
    files::metadata(&path)?;
    let plaintext = match from {
        Some(f) => std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
        None => {
            if std::io::stdin().is_terminal() {
                eprintln!("reading `{name}` from stdin; end with Ctrl-D");
            }
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading stdin")?;
            buf
        }
    };
    if plaintext.is_empty() {
        // Most likely a mistake (`< /dev/null`, an empty file) that would wipe the secret.
        bail!(
            "the input is empty; {} is left as it was",
            grant.file.display()
        );
    }
    write(root, grant, &keys, &plaintext)?;
    Ok(0)
}

fn write(root: &Path, grant: &Grant, keys: &[age::ssh::Recipient], plaintext: &[u8]) -> Result<()> {
    let bytes = crypt::encrypt(keys, plaintext)?;
    files::write_atomic(&root.join(&grant.file), &bytes)?;
    let who: Vec<String> = grant.recipients.iter().map(|r| r.label()).collect();
    eprintln!("wrote {} for {}", grant.file.display(), who.join(", "));
    Ok(())
}

/// Decrypt the file's bytes, explaining a file that isn't for the given keys.
fn decrypt(ids: &Identities, grant: &Grant, path: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
    match crypt::decrypt(ids, &grant.name, &grant.file, bytes) {
        Ok(p) => Ok(p),
        Err(e @ DecryptFailure::NotRecipient { .. }) => {
            let readers = readers(grant, bytes);
            bail!(
                "{e} (it is encrypted for: {readers}); decrypt with one of those keys (`-i FILE`), or replace the secret: `hearth secrets set {}`",
                grant.name
            )
        }
        Err(e) => Err(e).with_context(|| format!("decrypting {}", path.display())),
    }
}

/// Who the file's header says can read it, in inventory terms where the tag matches.
fn readers(grant: &Grant, bytes: &[u8]) -> String {
    let Ok(stanzas) = header::parse(bytes) else {
        return "unknown".into();
    };
    let names: Vec<String> = stanzas
        .iter()
        .map(|s| match s.tag() {
            Some(t) => grant
                .recipients
                .iter()
                .find(|r| r.tag.as_deref() == Some(t))
                .map_or_else(|| format!("an unknown SSH key (tag {t})"), |r| r.label()),
            None if *s == Stanza::X25519 => "an X25519 key".into(),
            None => "an unknown recipient".into(),
        })
        .collect();
    names.join(", ")
}

fn edit(
    root: &Path,
    grants: &BTreeMap<String, Grant>,
    name: &str,
    ids: &IdentityArgs,
) -> Result<u8> {
    let grant = recipients::find(grants, name)?;
    let keys = grant.age_recipients()?;
    let path = root.join(&grant.file);
    let old = files::read(&path)?;
    let plaintext = match &old {
        Some(bytes) => decrypt(&Identities::load(&ids.identity)?, grant, &path, bytes)?,
        None => Vec::new(),
    };
    let edited = editor::edit(name, &plaintext)?;
    if old.is_some() && edited == plaintext {
        eprintln!(
            "{}: no changes; the file is left as it was",
            grant.file.display()
        );
        return Ok(0);
    }
    if old.is_none() && edited.is_empty() {
        eprintln!("{}: empty; nothing written", grant.file.display());
        return Ok(0);
    }
    write(root, grant, &keys, &edited)?;
    Ok(0)
}

fn rekey(
    root: &Path,
    grants: &BTreeMap<String, Grant>,
    names: &[String],
    ids: &IdentityArgs,
) -> Result<u8> {
    let chosen: Vec<&Grant> = if names.is_empty() {
        let mut stale = Vec::new();
        for g in grants.values() {
            match status::status(root, g).state {
                State::Stale(_) => stale.push(g),
                State::Ok => {}
                state => eprintln!(
                    "warning: {} is {}, so there is nothing to re-key: `hearth secrets set {}`",
                    g.file.display(),
                    state.word(),
                    g.name
                ),
            }
        }
        stale
    } else {
        names
            .iter()
            .map(|n| recipients::find(grants, n))
            .collect::<Result<_>>()?
    };
    if chosen.is_empty() {
        eprintln!("every secret is encrypted for the inventory's keys; nothing to re-key");
        return Ok(0);
    }
    let identities = Identities::load(&ids.identity)?;
    let mut failed = 0;
    for grant in chosen {
        if let Err(e) = rekey_one(root, grant, &identities) {
            eprintln!("error: {e:#}");
            failed += 1;
        }
    }
    Ok(u8::from(failed > 0))
}

fn rekey_one(root: &Path, grant: &Grant, ids: &Identities) -> Result<()> {
    let keys = grant.age_recipients()?;
    let path = root.join(&grant.file);
    let Some(bytes) = files::read(&path)? else {
        bail!(
            "secret `{}`: {} does not exist; create it: `hearth secrets set {}`",
            grant.name,
            grant.file.display(),
            grant.name
        );
    };
    let plaintext = decrypt(ids, grant, &path, &bytes)?;
    write(root, grant, &keys, &plaintext)
}

fn check(root: &Path, grants: &BTreeMap<String, Grant>) -> Result<u8> {
    let diags = status::diagnostics(root, grants);
    eprint!("{}", render_diagnostics(&diags));
    let errors = diags.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        eprintln!("error: {errors} of {} secrets need attention", grants.len());
        return Ok(1);
    }
    eprintln!("ok: {} secrets match the inventory", grants.len());
    Ok(0)
}

/// `error: …` / `warning: …` with `= help:` lines, as `hearth check` prints them.
pub fn render_diagnostics(diags: &[crate::inventory::Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        let kind = if d.is_error() { "error" } else { "warning" };
        out.push_str(&format!("{kind}: {}\n", d.message));
        for h in &d.help {
            out.push_str(&format!("  = help: {h}\n"));
        }
    }
    out
}

fn list(root: &Path, grants: &BTreeMap<String, Grant>, json: bool) -> Result<u8> {
    let rows: Vec<Row> = grants
        .values()
        .map(|g| Row {
            name: g.name.clone(),
            file: g.file.display().to_string(),
            admins: g.admins(),
            hosts: g.hosts.clone(),
            state: status::status(root, g).state,
        })
        .collect();
    if json {
        let mut v = serde_json::Value::Array(rows.iter().map(Row::json).collect());
        // Keys sorted, as `--json` has always printed them (docs/ARCHITECTURE.md,
        // "Dependencies").
        v.sort_all_objects();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", table(&rows));
    }
    Ok(0)
}

pub struct Row {
    pub name: String,
    pub file: String,
    pub admins: Vec<String>,
    pub hosts: Vec<String>,
    pub state: State,
}

impl Row {
    fn json(&self) -> serde_json::Value {
        let why = match &self.state {
            State::Stale(r) => r.clone(),
            State::Unreadable(w) => vec![w.clone()],
            _ => vec![],
        };
        serde_json::json!({
            "name": self.name, "file": self.file, "admins": self.admins,
            "hosts": self.hosts, "state": self.state.word(), "why": why,
        })
    }
}

/// The `list` table: one row per secret, columns aligned.
pub fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.state.word().to_string(),
                r.admins.join(","),
                r.hosts.join(","),
            ]
        })
        .collect();
    let head = ["SECRET", "STATE", "ADMINS", "HOSTS"].map(String::from);
    let mut width = [0; 4];
    for row in std::iter::once(&head).chain(&cells) {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&head).chain(&cells) {
        let line: Vec<String> = row
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Re-encrypt every secret granted to `host` for the inventory's current keys (after
/// `hearth install` gave the host a new key), with the user's default identities.
/// Returns one line that says what was done.
pub fn rekey_for_host(root: &Path, host: &str) -> Result<String> {
    rekey_for_host_with(root, host, &[])
}

/// [`rekey_for_host`], decrypting with `extra` keys first (the admin key `hearth install`
/// logs in with is usually also the admin's age recipient), then the default ones.
pub fn rekey_for_host_with(root: &Path, host: &str, extra: &[PathBuf]) -> Result<String> {
    let (_, grants) = recipients::load(root)?;
    let mine: Vec<&Grant> = grants
        .values()
        .filter(|g| g.hosts.iter().any(|h| h == host))
        .collect();
    if mine.is_empty() {
        return Ok(format!("secrets: none granted to {host}"));
    }
    let mut paths = extra.to_vec();
    for p in super::crypt::default_identity_paths() {
        if !paths.contains(&p) {
            paths.push(p);
        }
    }
    let identities = Identities::load(&paths)
        .context("re-keying the host's secrets needs an identity that can decrypt them")?;
    let mut names = Vec::new();
    for grant in mine {
        // A file nobody made yet has nothing to re-key; `hearth check` names it.
        if files::read(&root.join(&grant.file))?.is_none() {
            continue;
        }
        rekey_one(root, grant, &identities)?;
        names.push(grant.name.as_str());
    }
    Ok(format!(
        "secrets: re-keyed for {host}'s new key: {}",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_aligned() {
        let rows = vec![
            Row {
                name: "restic-password".into(),
                file: "secrets/restic-password.age".into(),
                admins: vec!["alice".into(), "bob".into()],
                hosts: vec!["helios64".into(), "nixos".into()],
                state: State::Ok,
            },
            Row {
                name: "x".into(),
                file: "secrets/x.age".into(),
                admins: vec!["alice".into()],
                hosts: vec![],
                state: State::Missing,
            },
        ];
        assert_eq!(
            table(&rows),
            "SECRET           STATE    ADMINS     HOSTS\n\
             restic-password  ok       alice,bob  helios64,nixos\n\
             x                missing  alice\n"
        );
    }
}
