//! Host selection: names, `@tag`, globs, or all. An empty selection is an error.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};

/// What the selector needs to know about a host.
pub struct Candidate<'a> {
    pub name: &'a str,
    pub tags: &'a [String],
}

/// Resolve selectors against the inventory's hosts, in inventory (name) order.
pub fn select(candidates: &[Candidate], selectors: &[String], all: bool) -> Result<Vec<String>> {
    if all && !selectors.is_empty() {
        bail!("give host selectors or --all, not both");
    }
    if !all && selectors.is_empty() {
        bail!("no hosts selected: name hosts (`helios64`), tags (`@nas`), globs (`'web-*'`), or pass --all");
    }
    let mut chosen = BTreeSet::new();
    if all {
        chosen.extend(candidates.iter().map(|c| c.name.to_string()));
    }
    for sel in selectors {
        let mut matched = false;
        if let Some(tag) = sel.strip_prefix('@') {
            for c in candidates
                .iter()
                .filter(|c| c.tags.iter().any(|t| t == tag))
            {
                chosen.insert(c.name.to_string());
                matched = true;
            }
            if !matched {
                bail!("no host has tag `{tag}` (selector `{sel}`)");
            }
        } else if sel.contains(['*', '?', '[', '{']) {
            let glob = globset::Glob::new(sel)
                .with_context(|| format!("invalid glob `{sel}`"))?
                .compile_matcher();
            for c in candidates.iter().filter(|c| glob.is_match(c.name)) {
                chosen.insert(c.name.to_string());
                matched = true;
            }
            if !matched {
                bail!("glob `{sel}` matches no host");
            }
        } else if candidates.iter().any(|c| c.name == sel) {
            chosen.insert(sel.clone());
        } else {
            let names: Vec<&str> = candidates.iter().map(|c| c.name).collect();
            let hint = names
                .iter()
                .map(|n| (strsim::levenshtein(n, sel), *n))
                .filter(|(d, _)| *d <= 2)
                .min()
                .map(|(_, n)| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            bail!(
                "unknown host `{sel}`{hint}; known hosts: {}",
                names.join(", ")
            );
        }
    }
    if chosen.is_empty() {
        bail!("the selection is empty: the inventory has no hosts");
    }
    Ok(chosen.into_iter().collect())
}

/// Split hosts into rolling batches of `size` (0 = one batch).
pub fn batches(hosts: &[String], size: usize) -> Vec<Vec<String>> {
    if size == 0 || size >= hosts.len() {
        return vec![hosts.to_vec()];
    }
    hosts.chunks(size).map(|c| c.to_vec()).collect()
}

/// Batch number per host.
pub fn batch_of(batches: &[Vec<String>]) -> BTreeMap<String, usize> {
    batches
        .iter()
        .enumerate()
        .flat_map(|(i, b)| b.iter().map(move |h| (h.clone(), i + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Vec<(String, Vec<String>)> {
        vec![
            ("helios64".into(), vec!["nas".into()]),
            ("web-1".into(), vec!["web".into()]),
            ("web-2".into(), vec!["web".into(), "nas".into()]),
        ]
    }

    fn sel(s: &[&str], all: bool) -> Result<Vec<String>> {
        let i = inv();
        let c: Vec<Candidate> = i
            .iter()
            .map(|(n, t)| Candidate { name: n, tags: t })
            .collect();
        select(
            &c,
            &s.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            all,
        )
    }

    #[test]
    fn names_tags_globs_all() {
        assert_eq!(sel(&["web-1"], false).unwrap(), vec!["web-1"]);
        assert_eq!(sel(&["@nas"], false).unwrap(), vec!["helios64", "web-2"]);
        assert_eq!(sel(&["web-*"], false).unwrap(), vec!["web-1", "web-2"]);
        assert_eq!(sel(&["web-*", "@nas"], false).unwrap().len(), 3);
        assert_eq!(sel(&[], true).unwrap().len(), 3);
    }

    #[test]
    fn empty_or_unknown_selection_is_an_error() {
        assert!(sel(&[], false)
            .unwrap_err()
            .to_string()
            .contains("no hosts selected"));
        assert!(sel(&["@nope"], false)
            .unwrap_err()
            .to_string()
            .contains("tag `nope`"));
        assert!(sel(&["db-*"], false)
            .unwrap_err()
            .to_string()
            .contains("matches no host"));
        let e = sel(&["helios46"], false).unwrap_err().to_string();
        assert!(e.contains("did you mean `helios64`"), "{e}");
        assert!(sel(&["x"], true).is_err());
        let c: Vec<Candidate> = vec![];
        assert!(select(&c, &[], true).is_err());
    }

    #[test]
    fn rolling_batches() {
        let h: Vec<String> = (1..=5).map(|i| format!("h{i}")).collect();
        let b = batches(&h, 2);
        assert_eq!(b.len(), 3);
        assert_eq!(b[2], vec!["h5"]);
        assert_eq!(batches(&h, 0).len(), 1);
        assert_eq!(batch_of(&b)["h3"], 2);
    }
}
