//! `hearth secrets`: create, edit, re-key, check and list the agenix secrets the
//! inventory declares (`[secrets.<name>] hosts = [...]`, admins always), with the age
//! crate and SSH recipients, so the files stay what agenix and `age -d` read.
//!
//! One job per file: `name` (which names are allowed), `header` (the age header, read
//! without decrypting), `recipients` (who may read what, from the inventory), `crypt`
//! (encrypt / decrypt / identities), `files` (safe reads, atomic writes), `editor` (the
//! plaintext session), `status` (ok / missing / stale / unreadable), `commands`.

mod commands;
pub mod crypt;
pub mod editor;
pub mod files;
pub mod header;
pub mod name;
pub mod recipients;
pub mod status;

pub use commands::{rekey_for_host, rekey_for_host_with, run};
pub use name::validate_secret_name;

use crate::catalog::Catalog;
use crate::inventory::{Diagnostic, Inventory};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  printf %s \"$PASSWORD\" | hearth secrets set restic-password\n  hearth secrets set rclone-offsite --from-file rclone.conf\n  hearth secrets edit restic-password            decrypts with ~/.ssh/id_ed25519\n  hearth secrets rekey                           re-encrypt every stale secret\n  hearth secrets check                           no private key needed\n  hearth secrets list"
)]
pub struct SecretsArgs {
    #[command(subcommand)]
    pub command: SecretsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum SecretsCommand {
    /// Encrypt a secret (stdin, or --from-file) to the keys the inventory gives; replaces the old file.
    Set {
        name: String,
        /// Read the plaintext from FILE instead of stdin.
        #[arg(long, value_name = "FILE")]
        from_file: Option<PathBuf>,
    },
    /// Decrypt into $VISUAL / $EDITOR (on a memory file system), re-encrypt on save.
    Edit {
        name: String,
        #[command(flatten)]
        ids: IdentityArgs,
    },
    /// Re-encrypt secrets for the inventory's current keys (all stale ones without NAME).
    Rekey {
        names: Vec<String>,
        #[command(flatten)]
        ids: IdentityArgs,
    },
    /// Check every secret file against the inventory from its header, without decrypting.
    Check,
    /// Each secret: its recipients (admins, hosts) and state (ok / missing / stale / unreadable).
    List {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct IdentityArgs {
    /// A private key to decrypt with: an SSH key (ssh-ed25519 / ssh-rsa) or an age
    /// identity file; repeatable. Default: ~/.ssh/id_ed25519 and ~/.ssh/id_rsa.
    #[arg(short = 'i', long = "identity", value_name = "FILE")]
    pub identity: Vec<PathBuf>,
}

/// `hearth check`'s part: one diagnostic per secret problem (see `status::diagnostics`).
pub fn check_diagnostics(root: &Path, inv: &Inventory) -> Vec<Diagnostic> {
    let bad_names: Vec<Diagnostic> = inv
        .fleet
        .secrets
        .keys()
        .filter_map(|n| validate_secret_name(n).err())
        .map(|e| {
            Diagnostic::error(format!("{}: {e}", crate::inventory::FLEET_FILE))
                .help("the name becomes secrets/<name>.age: use letters, digits, `-`, `_` and `.`")
        })
        .collect();
    if !bad_names.is_empty() {
        return bad_names;
    }
    let grants = Catalog::load(root).and_then(|c| recipients::grants(inv, &c));
    match grants {
        Ok(grants) => status::diagnostics(root, &grants),
        Err(e) => vec![Diagnostic::warning(format!("secrets not checked: {e:#}"))],
    }
}

/// `hearth deploy`'s gate, before anything is built: refuse when a selected host's
/// secrets are missing, unreadable, or not encrypted for its key.
pub fn deploy_gate(root: &Path, inv: &Inventory, hosts: &[String]) -> Result<()> {
    let catalog = Catalog::load(root)?;
    let grants = recipients::grants(inv, &catalog)?;
    let mut lines = Vec::new();
    for host in hosts {
        for (msg, help) in status::host_blockers(root, &grants, host) {
            lines.push(format!("{host}: {msg}\n  help: {help}"));
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    bail!(
        "refusing to deploy: the host would fail to decrypt its secrets at activation\n{}",
        lines.join("\n")
    )
}
