//! Nix's machines list, generated from the inventory so nobody hand-writes `--builders` strings.
//!
//! One line per builder: `URI systems ssh-key max-jobs speed-factor features mandatory-features
//! host-key`, with `-` for an empty field and the host key as base64 of `type key` (the form
//! `nix.buildMachines.*.publicHostKey` and `/etc/nix/machines` use).

use super::placement::{builder_role, builds, native_systems};
use crate::inventory::{Host, Inventory};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// The builder's host name in the inventory.
    pub name: String,
    pub uri: String,
    pub systems: Vec<String>,
    pub ssh_key: Option<String>,
    pub max_jobs: u32,
    pub speed_factor: u32,
    pub features: Vec<String>,
    pub mandatory_features: Vec<String>,
    pub host_key_base64: Option<String>,
    /// The builder may fetch dependencies from its own caches.
    pub substitutes: bool,
    /// SSH port; a machines-list URI can't carry it before Nix 2.31, so ssh config must.
    pub port: u16,
}

impl Machine {
    pub fn line(&self) -> String {
        fn list(v: &[String]) -> String {
            if v.is_empty() {
                "-".into()
            } else {
                v.join(",")
            }
        }
        [
            self.uri.clone(),
            list(&self.systems),
            self.ssh_key.clone().unwrap_or_else(|| "-".into()),
            self.max_jobs.to_string(),
            self.speed_factor.to_string(),
            list(&self.features),
            list(&self.mandatory_features),
            self.host_key_base64.clone().unwrap_or_else(|| "-".into()),
        ]
        .join(" ")
    }
}

/// The `ssh://user@address` store URI of a builder (the protocol Nix's build hook speaks
/// on every version we support).
pub fn builder_uri(host: &Host, user: &str) -> String {
    format!("ssh://{user}@{}", host.file.ssh.address)
}

/// The machine line for one builder host; `None` when it lacks the `builder` role.
pub fn machine(host: &Host, identity: Option<&Path>) -> Option<Machine> {
    let role = builder_role(host)?;
    let mut systems = native_systems(host, &role);
    for s in &role.emulated {
        if !systems.iter().any(|x| x == s.as_str()) {
            systems.push(s.as_str().to_string());
        }
    }
    Some(Machine {
        name: host.name.clone(),
        uri: builder_uri(host, &role.user),
        systems,
        ssh_key: identity.map(|p| p.display().to_string()),
        max_jobs: role.max_jobs,
        speed_factor: role.speed_factor,
        features: role.features.clone(),
        mandatory_features: Vec::new(),
        host_key_base64: host.file.host_key.as_deref().map(host_key_base64),
        substitutes: role.substitutes,
        port: host.file.ssh.port,
    })
}

/// Every builder in the inventory, optionally only those that build `system`, by name.
pub fn machines(inv: &Inventory, system: Option<&str>, identity: Option<&Path>) -> Vec<Machine> {
    inv.hosts
        .values()
        .filter(|h| match (system, builder_role(h)) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(s), Some(role)) => builds(h, &role, s).is_some(),
        })
        .filter_map(|h| machine(h, identity))
        .collect()
}

/// The whole list as Nix reads it from a file (one machine per line).
pub fn machines_file(ms: &[Machine]) -> String {
    ms.iter().map(|m| m.line() + "\n").collect()
}

/// Flags that make a local `nix build` use exactly these builders. `only_remote` adds
/// `--max-jobs 0`, so nothing is built on the deployer even if it could.
pub fn builders_flags(ms: &[Machine], only_remote: bool) -> Vec<String> {
    let spec = ms.iter().map(Machine::line).collect::<Vec<_>>().join(" ; ");
    // A global setting: only on when every builder allows it.
    let subst = !ms.is_empty() && ms.iter().all(|m| m.substitutes);
    let mut flags = vec![
        "--builders".to_string(),
        spec,
        "--option".into(),
        "builders-use-substitutes".into(),
        subst.to_string(),
    ];
    if only_remote {
        flags.extend(["--max-jobs".into(), "0".into()]);
    }
    flags
}

/// Base64 of `type key` from a public-key line, dropping any comment.
pub fn host_key_base64(key_line: &str) -> String {
    let mut words = key_line.split_whitespace();
    let kind = words.next().unwrap_or("");
    let key = words.next().unwrap_or("");
    base64(format!("{kind} {key}").trim().as_bytes())
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::placement::tests::{host, inventory};

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
    }

    #[test]
    fn host_key_drops_the_comment() {
        let k = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK root@builder";
        assert_eq!(
            host_key_base64(k),
            base64(b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK")
        );
    }

    #[test]
    fn line_has_every_field_in_order() {
        let b = host(
            "big",
            "host_key = \"ssh-ed25519 AAAAKEY big\"\nroles = [\"builder\"]\n[builder]\nsystems = [\"x86_64-linux\"]\nemulated = [\"aarch64-linux\"]\nmax_jobs = 8\nspeed_factor = 4\nfeatures = [\"big-parallel\", \"kvm\"]\nuser = \"nixremote\"\n",
        );
        let m = machine(&b, Some(Path::new("/root/.ssh/id_builder"))).unwrap();
        assert_eq!(
            m.line(),
            format!(
                "ssh://nixremote@10.0.0.3 x86_64-linux,aarch64-linux /root/.ssh/id_builder 8 4 big-parallel,kvm - {}",
                base64(b"ssh-ed25519 AAAAKEY")
            )
        );
    }

    #[test]
    fn defaults_give_dashes() {
        let b = host("pi", "system = \"aarch64-linux\"\nroles = [\"builder\"]\n");
        assert_eq!(
            machine(&b, None).unwrap().line(),
            "ssh://nixbuild@10.0.0.2 aarch64-linux - 4 1 - - -"
        );
        assert!(machine(&host("web", ""), None).is_none());
    }

    #[test]
    fn machines_filters_by_system_and_sorts_by_name() {
        let inv = inventory(vec![
            host(
                "zz",
                "roles = [\"builder\"]\n[builder]\nemulated = [\"aarch64-linux\"]\n",
            ),
            host("aa", "roles = [\"builder\"]\n"),
            host("web", ""),
        ]);
        let all: Vec<_> = machines(&inv, None, None)
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(all, ["aa", "zz"]);
        let arm: Vec<_> = machines(&inv, Some("aarch64-linux"), None)
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(arm, ["zz"]);
        assert_eq!(
            machines_file(&machines(&inv, Some("aarch64-linux"), None))
                .lines()
                .count(),
            1
        );
    }

    #[test]
    fn flags_join_machines_and_gate_substitutes() {
        let inv = inventory(vec![
            host("a", "roles = [\"builder\"]\n"),
            host(
                "b",
                "roles = [\"builder\"]\n[builder]\nsubstitutes = false\n",
            ),
        ]);
        let ms = machines(&inv, None, None);
        let f = builders_flags(&ms, true);
        assert_eq!(f[0], "--builders");
        assert_eq!(f[1], format!("{} ; {}", ms[0].line(), ms[1].line()));
        assert_eq!(
            &f[2..],
            [
                "--option",
                "builders-use-substitutes",
                "false",
                "--max-jobs",
                "0"
            ]
        );
        let f = builders_flags(&ms[..1], false);
        assert_eq!(&f[2..], ["--option", "builders-use-substitutes", "true"]);
    }
}
