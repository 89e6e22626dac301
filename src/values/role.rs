//! A host's role in the fleet: data that the catalog (services that need a role) and the
//! inventory (hosts that have one) both name, so it lives below both.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// What a host does for the rest of the fleet (no doc comment: it would enter the schema).
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Builds for other hosts: see `[builder]`.
    Builder,
    /// Runs Prometheus, scraping every host with node-exporter.
    Monitoring,
    /// Receives restic backups from other hosts: see `[backup_target]`.
    BackupTarget,
}
