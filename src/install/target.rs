//! What the target has, read over SSH before anything is touched, and whether the host's
//! disk layout can be installed on it. Parsers and the decision are pure.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One script, one round trip: the by-id links, the block devices, the mounts.
pub fn probe_script() -> &'static str {
    "echo '== by-id'\n\
     for l in /dev/disk/by-id/*; do [ -L \"$l\" ] && printf '%s %s\\n' \"$l\" \"$(readlink -f \"$l\")\"; done\n\
     echo '== lsblk'\n\
     lsblk --json -b -o NAME,PATH,SIZE,MODEL,MOUNTPOINT 2>/dev/null || echo '{}'\n\
     echo '== mounts'\n\
     cat /proc/mounts\n\
     echo '== zpool'\n\
     if command -v zpool >/dev/null 2>&1; then zpool list -vHP 2>/dev/null || true; fi\n"
}

/// A block device as lsblk reports it (with its partitions).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockDev {
    pub path: String,
    pub size: u64,
    pub model: String,
    pub mountpoint: Option<String>,
    pub children: Vec<BlockDev>,
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// `/dev/disk/by-id/…` → the device it resolves to.
    pub by_id: BTreeMap<String, String>,
    pub devices: Vec<BlockDev>,
    /// (source, mount point) from /proc/mounts.
    pub mounts: Vec<(String, String)>,
    /// (pool, member device) of imported ZFS pools: their file systems show in /proc/mounts
    /// by dataset name, not by device.
    pub pools: Vec<(String, String)>,
}

/// Split the probe's output into its sections and parse each.
pub fn parse_probe(text: &str) -> Result<Facts> {
    let mut sections: BTreeMap<&str, String> = BTreeMap::new();
    let mut cur = "";
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            cur = name.trim();
            sections.entry(cur).or_default();
        } else if !cur.is_empty() {
            let s = sections.entry(cur).or_default();
            s.push_str(line);
            s.push('\n');
        }
    }
    let get = |k: &str| sections.get(k).map(String::as_str).unwrap_or("");
    Ok(Facts {
        by_id: parse_by_id(get("by-id")),
        devices: parse_lsblk(get("lsblk")).context("reading lsblk --json from the target")?,
        mounts: parse_mounts(get("mounts")),
        pools: parse_zpool(get("zpool")),
    })
}

/// `<link> <resolved>` lines.
pub fn parse_by_id(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.trim().to_string()))
        .collect()
}

/// `/proc/mounts`: source and mount point (octal escapes left as they are).
pub fn parse_mounts(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
}

/// `zpool list -vHP`: a pool's line starts in column 0; its vdevs' lines start with tabs,
/// and the leaves among them are full device paths.
pub fn parse_zpool(text: &str) -> Vec<(String, String)> {
    let mut pool = String::new();
    let mut out = Vec::new();
    for l in text.lines() {
        let first = l.split('\t').map(str::trim).find(|w| !w.is_empty());
        match first {
            Some(w) if !l.starts_with('\t') => pool = w.to_string(),
            Some(w) if w.starts_with("/dev/") && !pool.is_empty() => {
                out.push((pool.clone(), w.to_string()))
            }
            _ => {}
        }
    }
    out
}

/// `lsblk --json -b`: sizes are numbers in new util-linux and strings in old ones.
pub fn parse_lsblk(text: &str) -> Result<Vec<BlockDev>> {
    let v: serde_json::Value = serde_json::from_str(text.trim()).context("not JSON")?;
    let list = v.get("blockdevices").and_then(|b| b.as_array());
    Ok(list
        .map(|l| l.iter().map(block_dev).collect())
        .unwrap_or_default())
}

fn block_dev(v: &serde_json::Value) -> BlockDev {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let size = match v.get("size") {
        Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(serde_json::Value::String(t)) => t.parse().unwrap_or(0),
        _ => 0,
    };
    let name = s("name").unwrap_or_default();
    BlockDev {
        path: s("path").unwrap_or_else(|| format!("/dev/{name}")),
        size,
        model: s("model").unwrap_or_default().trim().to_string(),
        mountpoint: s("mountpoint"),
        children: v
            .get("children")
            .and_then(|c| c.as_array())
            .map(|c| c.iter().map(block_dev).collect())
            .unwrap_or_default(),
    }
}

/// One disk the install will erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erase {
    pub by_id: String,
    pub device: String,
    pub size: u64,
    pub model: String,
    /// Mount points on it now (refused without --wipe).
    pub mounted: Vec<String>,
}

/// Why the install won't start; every item names what the target showed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_refusal(missing, mounted))]
pub struct Refusal {
    pub missing: Vec<String>,
    pub mounted: Vec<Erase>,
}

fn render_refusal(missing: &[String], mounted: &[Erase]) -> String {
    let mut s = String::from("refusing to install; the target is left untouched:\n");
    for m in missing {
        let _ = writeln!(s, "  missing: {m} (the host file's disk layout names it; the target has no such /dev/disk/by-id entry)");
    }
    for e in mounted {
        let _ = writeln!(
            s,
            "  in use: {} ({}) has mounted file systems at {}",
            e.by_id,
            e.device,
            e.mounted.join(", ")
        );
    }
    if missing.is_empty() {
        s.push_str("pass --wipe to erase disks that hold mounted file systems\n");
    } else {
        s.push_str("fix the device ids in the host file (`ls -l /dev/disk/by-id` on the target)\n");
    }
    s
}

/// The disks of the layout, checked against the target. Only these are ever erased.
pub fn decide(layout: &[String], facts: &Facts, wipe: bool) -> Result<Vec<Erase>, Refusal> {
    let mut missing = Vec::new();
    let mut erase = Vec::new();
    for id in layout {
        let Some(dev) = facts.by_id.get(id) else {
            missing.push(id.clone());
            continue;
        };
        let blk = find(&facts.devices, dev);
        let parts: Vec<&str> = blk
            .map(|b| b.children.iter().map(|c| c.path.as_str()).collect())
            .unwrap_or_default();
        let on_disk = |p: &str| {
            let p = facts.by_id.get(p).map_or(p, String::as_str);
            p == dev || parts.contains(&p)
        };
        let mut mounted: Vec<String> = facts
            .mounts
            .iter()
            .filter(|(src, _)| on_disk(src))
            .map(|(_, at)| at.clone())
            .collect();
        for (pool, _) in facts.pools.iter().filter(|(_, v)| on_disk(v)) {
            mounted.push(format!("zfs pool {pool}"));
        }
        mounted.dedup();
        erase.push(Erase {
            by_id: id.clone(),
            device: dev.clone(),
            size: blk.map_or(0, |b| b.size),
            model: blk.map(|b| b.model.clone()).unwrap_or_default(),
            mounted,
        });
    }
    let busy: Vec<Erase> = erase
        .iter()
        .filter(|e| !e.mounted.is_empty())
        .cloned()
        .collect();
    if !missing.is_empty() || (!wipe && !busy.is_empty()) {
        return Err(Refusal {
            missing,
            mounted: if wipe { Vec::new() } else { busy },
        });
    }
    Ok(erase)
}

fn find<'a>(devs: &'a [BlockDev], path: &str) -> Option<&'a BlockDev> {
    devs.iter()
        .find(|d| d.path == path)
        .or_else(|| devs.iter().find_map(|d| find(&d.children, path)))
}

/// The erase list as printed before asking.
pub fn render_erase(erase: &[Erase]) -> String {
    if erase.is_empty() {
        return "will erase no disk (the host file's layout names none)\n".to_string();
    }
    let mut s = String::from("will ERASE these disks (and nothing else):\n");
    for e in erase {
        let _ = write!(
            s,
            "  {}  ->  {}  {}  {}",
            e.by_id,
            e.device,
            crate::builders::check::human_bytes(e.size),
            if e.model.is_empty() {
                "(no model)"
            } else {
                &e.model
            }
        );
        if !e.mounted.is_empty() {
            let _ = write!(s, "  [mounted: {}]", e.mounted.join(", "));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: &str = "== by-id\n\
/dev/disk/by-id/ata-DISK_A /dev/sda\n\
/dev/disk/by-id/ata-DISK_A-part1 /dev/sda1\n\
/dev/disk/by-id/nvme-ROOT /dev/nvme0n1\n\
== lsblk\n\
{\"blockdevices\": [\n\
 {\"name\":\"sda\",\"path\":\"/dev/sda\",\"size\":4000787030016,\"model\":\"WDC WD40EFZX  \",\"mountpoint\":null,\n\
  \"children\":[{\"name\":\"sda1\",\"path\":\"/dev/sda1\",\"size\":\"1000\",\"model\":null,\"mountpoint\":\"/data\"}]},\n\
 {\"name\":\"nvme0n1\",\"size\":\"512110190592\",\"model\":\"Samsung 980\",\"mountpoint\":null}\n\
]}\n\
== mounts\n\
/dev/sda1 /data ext4 rw 0 0\n\
proc /proc proc rw 0 0\n";

    fn facts() -> Facts {
        parse_probe(PROBE).unwrap()
    }

    #[test]
    fn parses_every_section() {
        let f = facts();
        assert_eq!(f.by_id["/dev/disk/by-id/nvme-ROOT"], "/dev/nvme0n1");
        assert_eq!(f.devices[0].model, "WDC WD40EFZX");
        assert_eq!(f.devices[0].children[0].size, 1000);
        assert_eq!(f.devices[1].path, "/dev/nvme0n1");
        assert_eq!(f.devices[1].size, 512110190592);
        assert_eq!(f.mounts[0], ("/dev/sda1".into(), "/data".into()));
    }

    #[test]
    fn unmounted_disk_is_listed_for_erase() {
        let e = decide(&["/dev/disk/by-id/nvme-ROOT".into()], &facts(), false).unwrap();
        assert_eq!(
            render_erase(&e),
            "will ERASE these disks (and nothing else):\n  /dev/disk/by-id/nvme-ROOT  ->  /dev/nvme0n1  476.9 GiB  Samsung 980\n"
        );
    }

    #[test]
    fn missing_id_refuses_even_with_wipe() {
        let r = decide(&["/dev/disk/by-id/ata-GONE".into()], &facts(), true).unwrap_err();
        assert_eq!(r.missing, vec!["/dev/disk/by-id/ata-GONE".to_string()]);
        assert!(r.to_string().contains("missing: /dev/disk/by-id/ata-GONE"));
    }

    #[test]
    fn mounted_partition_refuses_without_wipe() {
        let ids = vec!["/dev/disk/by-id/ata-DISK_A".to_string()];
        let r = decide(&ids, &facts(), false).unwrap_err();
        assert_eq!(
            r.to_string(),
            "refusing to install; the target is left untouched:\n  in use: /dev/disk/by-id/ata-DISK_A (/dev/sda) has mounted file systems at /data\npass --wipe to erase disks that hold mounted file systems\n"
        );
        let e = decide(&ids, &facts(), true).unwrap();
        assert_eq!(e[0].mounted, vec!["/data".to_string()]);
    }

    #[test]
    fn imported_pool_counts_as_in_use() {
        let text = format!(
            "{PROBE}== zpool\n\
tank\t3.62T\t1.2T\t2.4T\t-\t-\t1%\t33%\t1.00x\tONLINE\t-\n\
\tmirror-0\t3.62T\t1.2T\t2.4T\t-\t-\t1%\t33.0%\t-\tONLINE\n\
\t\t/dev/disk/by-id/ata-DISK_A-part1\t3.64T\t-\t-\t-\t-\t-\t-\t-\tONLINE\n\
\t\t/dev/nvme0n1\t3.64T\t-\t-\t-\t-\t-\t-\t-\tONLINE\n"
        );
        let f = parse_probe(&text).unwrap();
        assert_eq!(
            f.pools,
            vec![
                (
                    "tank".to_string(),
                    "/dev/disk/by-id/ata-DISK_A-part1".to_string()
                ),
                ("tank".to_string(), "/dev/nvme0n1".to_string())
            ]
        );
        let r = decide(&["/dev/disk/by-id/nvme-ROOT".into()], &f, false).unwrap_err();
        assert!(
            r.to_string()
                .contains("in use: /dev/disk/by-id/nvme-ROOT (/dev/nvme0n1) has mounted file systems at zfs pool tank"),
            "{r}"
        );
        let e = decide(&["/dev/disk/by-id/ata-DISK_A".into()], &f, true).unwrap();
        assert_eq!(
            e[0].mounted,
            vec!["/data".to_string(), "zfs pool tank".to_string()]
        );
    }

    #[test]
    fn bad_lsblk_is_an_error() {
        assert!(parse_probe("== lsblk\nnot json\n").is_err());
    }
}
