//! Jellyfin's media libraries: each library's `path` must be the mountpoint of a dataset
//! the host declares (or lie below one), so the media lives on the pool, not on the root
//! filesystem by accident. The paths reach the template as `facts.jellyfin.library_paths`.

use crate::compile::resolve::ResolvedHost;
use crate::inventory::Inventory;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Library {
    pub host: String,
    pub name: String,
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `<pool>/<dataset>` holding the path.
    pub dataset: String,
}

pub fn derive(
    inv: &Inventory,
    hosts: &mut BTreeMap<String, ResolvedHost>,
    errors: &mut Vec<String>,
) -> Vec<Library> {
    let mut out = Vec::new();
    for (name, rh) in hosts.iter_mut() {
        let Some(s) = rh.services.get("jellyfin") else {
            continue;
        };
        let datasets = datasets(inv, name);
        let mut paths = Vec::new();
        let libs = s.get("libraries").and_then(|v| v.as_table());
        for (lib, e) in libs.into_iter().flatten() {
            let path = e.get("path").and_then(|v| v.as_str()).unwrap_or_default();
            let kind = e.get("type").and_then(|v| v.as_str()).unwrap_or("mixed");
            match dataset_of(&datasets, path) {
                Some(ds) => {
                    paths.push(path.to_string());
                    out.push(Library {
                        host: name.clone(),
                        name: lib.clone(),
                        path: path.to_string(),
                        kind: kind.to_string(),
                        dataset: ds,
                    });
                }
                None => errors.push(format!(
                    "{}: `libraries.{lib}` of jellyfin: `{path}` is not on a dataset of this host; use the mountpoint of a dataset in `[disks.pools.<pool>.datasets]` ({}) or a directory below it",
                    rh.source,
                    if datasets.is_empty() {
                        "the host declares none".to_string()
                    } else {
                        datasets.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                )),
            }
        }
        paths.sort();
        paths.dedup();
        rh.facts.insert(
            "jellyfin".into(),
            serde_json::json!({ "library_paths": paths }),
        );
    }
    out
}

/// The host's datasets with a mountpoint: mountpoint → `pool/dataset`.
fn datasets(inv: &Inventory, host: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(disks) = &inv.hosts[host].file.disks else {
        return out;
    };
    for (pool, p) in &disks.pools {
        for (ds, d) in &p.datasets {
            if let Some(mp) = d.mountpoint.as_ref().filter(|m| m.starts_with('/')) {
                out.insert(mp.clone(), format!("{pool}/{ds}"));
            }
        }
    }
    out
}

/// The dataset whose mountpoint is `path` or its nearest ancestor (by path components,
/// so `/srv/media2` is not below `/srv/media`).
fn dataset_of(datasets: &BTreeMap<String, String>, path: &str) -> Option<String> {
    Path::new(path)
        .ancestors()
        .find_map(|a| datasets.get(a.to_str()?).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_belongs_to_the_nearest_dataset_by_component() {
        let ds: BTreeMap<String, String> = [
            ("/srv/media".to_string(), "tank/media".to_string()),
            (
                "/srv/media/films".to_string(),
                "tank/media/films".to_string(),
            ),
        ]
        .into();
        assert_eq!(dataset_of(&ds, "/srv/media").as_deref(), Some("tank/media"));
        assert_eq!(
            dataset_of(&ds, "/srv/media/films/new").as_deref(),
            Some("tank/media/films")
        );
        assert_eq!(dataset_of(&ds, "/srv/media2"), None);
        assert_eq!(dataset_of(&ds, "/srv"), None);
    }
}
