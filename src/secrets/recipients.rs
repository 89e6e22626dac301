//! Who may read each secret, from the inventory: the same derivation `hearth gen` uses
//! for `secrets/secrets.nix` (`compile::emit::secret_recipients`), plus each key's
//! age stanza tag and its parsed age recipient.

use super::header::key_line_tag;
use super::name::validate_secret_name;
use crate::catalog::Catalog;
use crate::compile::emit::{secret_file, secret_recipients, RecipientOwner};
use crate::compile::resolve;
use crate::inventory::{self, Inventory};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const SECRETS_DIR: &str = "secrets";

/// One public key allowed to read a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub owner: RecipientOwner,
    pub key: String,
    /// The tag age writes for this key (`None` if the key is not base64).
    pub tag: Option<String>,
}

impl Recipient {
    /// `admin alice (alice@laptop)`, `host helios64`.
    pub fn label(&self) -> String {
        match &self.owner {
            RecipientOwner::Admin(a) => match self.key.split_whitespace().nth(2) {
                Some(comment) => format!("admin {a} ({comment})"),
                None => format!("admin {a}"),
            },
            RecipientOwner::Host(h) => format!("host {h}"),
        }
    }

    fn supported(&self) -> bool {
        matches!(
            self.key.split_whitespace().next(),
            Some("ssh-ed25519" | "ssh-rsa")
        )
    }
}

/// A secret as the inventory defines it.
#[derive(Debug, Clone)]
pub struct Grant {
    pub name: String,
    /// `secrets/<name>.age`, relative to the repository root.
    pub file: PathBuf,
    /// Keys the file must be encrypted to: admins first, then hosts.
    pub recipients: Vec<Recipient>,
    /// Hosts that use the secret, with or without a recorded host key.
    pub hosts: Vec<String>,
    /// Keys of a type age can't encrypt to (ecdsa, security keys): left out, with a warning.
    pub unsupported: Vec<Recipient>,
}

impl Grant {
    pub fn admins(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .recipients
            .iter()
            .filter_map(|r| match &r.owner {
                RecipientOwner::Admin(a) => Some(a.clone()),
                RecipientOwner::Host(_) => None,
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The host's own recipient entry, if it has a usable key.
    pub fn host_recipient(&self, host: &str) -> Option<&Recipient> {
        self.recipients
            .iter()
            .find(|r| r.owner == RecipientOwner::Host(host.to_string()))
    }

    /// The age recipients to encrypt to; an error names a key age can't use.
    pub fn age_recipients(&self) -> Result<Vec<age::ssh::Recipient>> {
        if self.recipients.is_empty() {
            bail!(
                "secret `{}` has no recipient: add an admin with an ssh-ed25519 or ssh-rsa key, or a host with a `host_key`",
                self.name
            );
        }
        self.recipients
            .iter()
            .map(|r| {
                r.key.parse::<age::ssh::Recipient>().map_err(|e| {
                    anyhow::anyhow!(
                        "{}: `{}` is not a key age can encrypt to ({e:?}); fix it in the inventory",
                        r.label(),
                        r.key
                    )
                })
            })
            .collect()
    }
}

/// The secrets of a loaded inventory, by name. Names are validated here: a bad name is
/// an error before any file is touched.
pub fn grants(inv: &Inventory, catalog: &Catalog) -> Result<BTreeMap<String, Grant>> {
    let res = resolve::resolve(inv, catalog)
        .map_err(|errors| anyhow::anyhow!("{}", errors.join("\n")))?;
    let mut out = BTreeMap::new();
    for (name, keys) in secret_recipients(inv, &res) {
        validate_secret_name(&name)
            .map_err(|e| anyhow::anyhow!("{}: {e}", inventory::FLEET_FILE))?;
        let all: Vec<Recipient> = keys
            .into_iter()
            .map(|r| Recipient {
                tag: key_line_tag(&r.key),
                owner: r.owner,
                key: r.key,
            })
            .collect();
        let (recipients, unsupported) = all.into_iter().partition(Recipient::supported);
        let grant = Grant {
            file: Path::new(SECRETS_DIR).join(secret_file(&name)),
            hosts: res.secrets.get(&name).cloned().unwrap_or_default(),
            name: name.clone(),
            recipients,
            unsupported,
        };
        out.insert(name, grant);
    }
    Ok(out)
}

/// Load the inventory at `root` and its secrets.
pub fn load(root: &Path) -> Result<(Inventory, BTreeMap<String, Grant>)> {
    let catalog = Catalog::load(root)?;
    let inv = inventory::load(root)?;
    let grants = grants(&inv, &catalog).context("reading the secrets of the inventory")?;
    Ok((inv, grants))
}

/// The grant for `name`, or an error saying how to declare it.
pub fn find<'a>(grants: &'a BTreeMap<String, Grant>, name: &str) -> Result<&'a Grant> {
    validate_secret_name(name).map_err(|e| anyhow::anyhow!(e))?;
    grants.get(name).with_context(|| {
        let known: Vec<&str> = grants.keys().map(String::as_str).collect();
        format!(
            "no secret `{name}` in the inventory (secrets: {}); declare it in {}: `[secrets.{name}] hosts = [\"HOST\"]`",
            if known.is_empty() { "none".into() } else { known.join(", ") },
            inventory::FLEET_FILE
        )
    })
}
